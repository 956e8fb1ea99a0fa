//! A small log-linear histogram of cycles per packet, cheap enough to record once per call of
//! every stage and plugin.
//!
//! Values below 8 have a bucket each; above, every power of two is cut into 8 equal buckets
//! (the three bits after the leading one), so a bucket spans at most 1/8 of its lower bound and
//! a reported quantile is the bucket's midpoint, within 6.25 % of any value in it. Values are
//! clamped to `2^32 - 1` cycles. 240 `u64` counters: 1.9 KiB per row, where the hdrhistogram
//! used before (2 significant digits up to 2^32) kept ~26 KiB per row, and recording into it
//! (bounds checks, its index arithmetic, a counter in a large array) was most of the cost
//! accounting's 3.4 % overhead in `perf/RESULTS.md`. Recording is a `lzcnt`, two shifts and one
//! increment.

/// Mantissa bits kept below the leading one.
const SUB_BITS: u32 = 3;
const SUB: usize = 1 << SUB_BITS;
/// Largest value tracked: larger ones are counted here.
const MAX: u64 = (1 << 32) - 1;
/// Buckets: 8 exact ones for 0..7, then 8 per power of two from 2^3 to 2^31.
const BUCKETS: usize = SUB + (32 - SUB_BITS as usize) * SUB;

/// Counts of values per log-linear bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CycleHist {
    counts: Box<[u64; BUCKETS]>,
    len: u64,
}

impl Default for CycleHist {
    fn default() -> Self {
        CycleHist {
            counts: Box::new([0; BUCKETS]),
            len: 0,
        }
    }
}

#[inline(always)]
fn bucket(v: u64) -> usize {
    let v = v.min(MAX);
    if v < SUB as u64 {
        return v as usize;
    }
    let e = 63 - v.leading_zeros(); // >= SUB_BITS
    let m = (v >> (e - SUB_BITS)) as usize & (SUB - 1);
    SUB + (e - SUB_BITS) as usize * SUB + m
}

/// Lowest value and width of bucket `i`.
fn bounds(i: usize) -> (u64, u64) {
    if i < SUB {
        return (i as u64, 1);
    }
    let e = (i - SUB) / SUB + SUB_BITS as usize;
    let m = ((i - SUB) % SUB) as u64;
    let width = 1u64 << (e - SUB_BITS as usize);
    ((SUB as u64 + m) * width, width)
}

impl CycleHist {
    /// Count one value (clamped to 2^32 - 1).
    #[inline(always)]
    pub fn record(&mut self, v: u64) {
        self.counts[bucket(v)] += 1;
        self.len += 1;
    }

    /// Values recorded.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Add another histogram's counts.
    pub fn add(&mut self, other: &CycleHist) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.len += other.len;
    }

    /// The value at quantile `q` (0..=1): the midpoint of the bucket holding the
    /// `ceil(q * len)`-th smallest value (the value itself below 8); 0 when empty.
    pub fn value_at_quantile(&self, q: f64) -> u64 {
        if self.len == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.len as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (lo, w) = bounds(i);
                return lo + w / 2;
            }
        }
        let (lo, w) = bounds(BUCKETS - 1);
        lo + w / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_once_in_order() {
        // Every bucket's range starts where the previous one ended, up to 2^32.
        let mut next = 0u64;
        for i in 0..BUCKETS {
            let (lo, w) = bounds(i);
            assert_eq!(lo, next, "bucket {i}");
            assert_eq!(bucket(lo), i);
            assert_eq!(bucket(lo + w - 1), i);
            next = lo + w;
        }
        assert_eq!(next, 1 << 32);
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn quantiles_are_within_one_sixteenth_against_sorted_values() {
        // Against the exact order statistic of the same values.
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut values = Vec::new();
        let mut h = CycleHist::default();
        for _ in 0..10_000 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let v = 1 + (rng % 5000) * (rng % 7 + 1);
            values.push(v);
            h.record(v);
        }
        values.sort_unstable();
        for q in [0.01, 0.5, 0.9, 0.99, 1.0] {
            let exact = values[((q * values.len() as f64).ceil() as usize).max(1) - 1];
            let got = h.value_at_quantile(q);
            let err = (got as f64 - exact as f64).abs() / exact as f64;
            assert!(err <= 1.0 / 16.0, "q {q}: {got} vs {exact}");
        }
        assert_eq!(h.len(), 10_000);
    }

    #[test]
    fn small_values_are_exact_and_merge_adds() {
        let mut a = CycleHist::default();
        let mut b = CycleHist::default();
        a.record(3);
        b.record(3);
        b.record(7);
        a.add(&b);
        assert_eq!(a.len(), 3);
        assert_eq!(a.value_at_quantile(0.5), 3);
        assert_eq!(a.value_at_quantile(1.0), 7);
        assert_eq!(CycleHist::default().value_at_quantile(0.5), 0);
    }
}
