//! Heavy-tailed flow sizes: a Zipf distribution over `min..=max` packets,
//! `P(k) ∝ k^-s`, sampled by binary search in its precomputed CDF (one search per flow, not per
//! packet, so a table of up to a few million entries costs nothing that matters).

use crate::rng::Rng;

pub struct Zipf {
    min: u32,
    cdf: Vec<f64>,
}

impl Zipf {
    pub fn new(s: f64, min: u32, max: u32) -> Zipf {
        let min = min.max(1);
        let max = max.max(min);
        let mut cdf = Vec::with_capacity((max - min + 1) as usize);
        let mut acc = 0.0;
        for k in min..=max {
            acc += (k as f64).powf(-s);
            cdf.push(acc);
        }
        for c in cdf.iter_mut() {
            *c /= acc;
        }
        Zipf { min, cdf }
    }

    pub fn sample(&self, rng: &mut Rng) -> u32 {
        let u = rng.unit();
        let i = self.cdf.partition_point(|&c| c < u);
        self.min + i.min(self.cdf.len() - 1) as u32
    }

    /// The distribution's mean (for the summary line).
    pub fn mean(&self) -> f64 {
        let mut prev = 0.0;
        let mut m = 0.0;
        for (i, &c) in self.cdf.iter().enumerate() {
            m += (self.min as f64 + i as f64) * (c - prev);
            prev = c;
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frequencies_follow_the_power_law() {
        // P(1)/P(2) = 2^s for a Zipf over 1..: check it on 10^6 samples.
        let z = Zipf::new(1.5, 1, 1000);
        let mut rng = Rng::new(7);
        let mut c = [0u32; 3];
        for _ in 0..1_000_000 {
            let k = z.sample(&mut rng);
            assert!((1..=1000).contains(&k));
            if k <= 2 {
                c[k as usize] += 1;
            }
        }
        let ratio = c[1] as f64 / c[2] as f64;
        assert!((ratio - 2f64.powf(1.5)).abs() < 0.05, "ratio {ratio}");
    }
}
