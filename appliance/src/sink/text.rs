//! Number, address and string formatting for the text sinks (CSV, JSON Lines), appended to a
//! reused byte buffer: no allocation per field or per record.
//!
//! Floats print exactly as Rust's `{:?}` prints them (the shortest digits that read back as
//! the same `f64`, at least one decimal, exponent form below 1e-4 and from 1e16 up), which is
//! what the records have always been written as and what the parity tests compare. `zmij`
//! gives the same shortest digits several times faster than `core::fmt` (and about twice as
//! fast as `ryu`); it writes the decimal form over a wider range than `{:?}` and may break
//! an exact tie between two shortest forms the other way, so outside 1e-4..1e16, and for
//! values short enough in decimal that a tie is possible (0.5, 2.25, -1010791494722.40625),
//! the standard formatter is used. Whole numbers below 1e16 and thousandths (milliseconds
//! from microseconds) have fast paths of their own, exact by construction, that skip `zmij`.
//!
//! Numbers are written straight into the buffer's spare capacity (one capacity check per
//! field, or per run of plugin columns, no `memcpy` call per field): these run once per
//! column per record, about 200 times per record with the default plugins, so they are
//! hand-written here.

use std::io::Write;
use std::net::IpAddr;

/// Spare capacity a number needs: `{:?}` of an `f64` takes at most 24 bytes, an `i64` 20.
const NUM_BYTES: usize = 32;

/// Strings up to this long are copied without a `memcpy` call ([`push_short`]).
const SHORT_BYTES: usize = 64;

/// "00" to "99".
const PAIRS: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// 10^i.
const POW10: [u64; 20] = {
    let mut p = [1u64; 20];
    let mut i = 1;
    while i < 20 {
        p[i] = p[i - 1] * 10;
        i += 1;
    }
    p
};

/// Decimal digits of `v` (1 for 0).
#[inline]
fn digits(v: u64) -> usize {
    let bits = 64 - (v | 1).leading_zeros();
    // floor(log10(2^bits)): the digit count of `v` or one less.
    let t = (bits * 1233) >> 12;
    t as usize + ((v | 1) >= POW10[t as usize]) as usize
}

/// The spare capacity of `buf` after making sure it has `n` bytes.
#[inline]
fn spare(buf: &mut Vec<u8>, n: usize) -> *mut u8 {
    buf.reserve(n);
    // SAFETY: `len` is within the allocation (`len <= capacity`).
    unsafe { buf.as_mut_ptr().add(buf.len()) }
}

/// Mark `n` more bytes of `buf` written.
///
/// # Safety
/// The `n` bytes after `len` must have been written (and be within the capacity).
#[inline]
unsafe fn advance(buf: &mut Vec<u8>, n: usize) {
    // SAFETY: the caller wrote those bytes within the capacity.
    unsafe { buf.set_len(buf.len() + n) }
}

/// Write `v`'s digits at `dst`; returns how many.
///
/// # Safety
/// `dst` must be valid for 20 bytes of writes.
#[inline]
unsafe fn write_u64(dst: *mut u8, mut v: u64) -> usize {
    let n = digits(v);
    // SAFETY: `n <= 20` bytes from `dst` (the caller's guarantee); digits are written from
    // the end, two at a time, each pair within `dst..dst + n`.
    unsafe {
        let mut end = dst.add(n);
        while v >= 100 {
            let r = (v % 100) as usize * 2;
            v /= 100;
            end = end.sub(2);
            std::ptr::copy_nonoverlapping(PAIRS.as_ptr().add(r), end, 2);
        }
        if v >= 10 {
            std::ptr::copy_nonoverlapping(PAIRS.as_ptr().add(v as usize * 2), dst, 2);
        } else {
            *dst = b'0' + v as u8;
        }
    }
    n
}

/// Write `v` at `dst`; returns the bytes written.
///
/// # Safety
/// `dst` must be valid for 21 bytes of writes.
#[inline]
unsafe fn write_i64(dst: *mut u8, v: i64) -> usize {
    let neg = v < 0;
    // SAFETY: the sign takes one byte, the digits at most 20 (the caller's guarantee).
    unsafe {
        *dst = b'-';
        neg as usize + write_u64(dst.add(neg as usize), v.unsigned_abs())
    }
}

/// Copy `s` (at most [`SHORT_BYTES`]) to `dst` with a few overlapping word moves instead of
/// a `memcpy` call (which costs more than the copy at these sizes).
///
/// # Safety
/// `dst` must be valid for `s.len()` bytes of writes; `s.len() <= SHORT_BYTES`.
#[inline]
unsafe fn put_small(dst: *mut u8, s: &[u8]) {
    let n = s.len();
    debug_assert!(n <= SHORT_BYTES);
    // SAFETY: every write lies within `dst..dst + n` (the caller's guarantee); the reads are
    // of `s`, checked.
    unsafe {
        if n > 32 {
            let a = <[u8; 32]>::try_from(&s[..32]).unwrap_or_default();
            let b = <[u8; 32]>::try_from(&s[n - 32..]).unwrap_or_default();
            dst.cast::<[u8; 32]>().write_unaligned(a);
            dst.add(n - 32).cast::<[u8; 32]>().write_unaligned(b);
        } else if n >= 16 {
            let a = u128::from_ne_bytes(s[..16].try_into().unwrap_or_default());
            let b = u128::from_ne_bytes(s[n - 16..].try_into().unwrap_or_default());
            dst.cast::<u128>().write_unaligned(a);
            dst.add(n - 16).cast::<u128>().write_unaligned(b);
        } else if n >= 8 {
            let a = u64::from_ne_bytes(s[..8].try_into().unwrap_or_default());
            let b = u64::from_ne_bytes(s[n - 8..].try_into().unwrap_or_default());
            dst.cast::<u64>().write_unaligned(a);
            dst.add(n - 8).cast::<u64>().write_unaligned(b);
        } else if n >= 4 {
            let a = u32::from_ne_bytes(s[..4].try_into().unwrap_or_default());
            let b = u32::from_ne_bytes(s[n - 4..].try_into().unwrap_or_default());
            dst.cast::<u32>().write_unaligned(a);
            dst.add(n - 4).cast::<u32>().write_unaligned(b);
        } else if n > 0 {
            *dst = s[0];
            *dst.add(n / 2) = s[n / 2];
            *dst.add(n - 1) = s[n - 1];
        }
    }
}

/// Append a short byte string (a column name, an address, a number's text; longer ones than
/// [`SHORT_BYTES`] are copied as usual).
#[inline]
pub fn push_short(buf: &mut Vec<u8>, s: &[u8]) {
    if s.len() > SHORT_BYTES {
        buf.extend_from_slice(s);
        return;
    }
    let dst = spare(buf, SHORT_BYTES);
    // SAFETY: `dst` has SHORT_BYTES of capacity, `s` is at most as long; all of it written.
    unsafe {
        put_small(dst, s);
        advance(buf, s.len());
    }
}

/// Append an unsigned integer.
#[inline]
pub fn push_u64(buf: &mut Vec<u8>, v: u64) {
    let dst = spare(buf, NUM_BYTES);
    // SAFETY: 32 bytes of spare capacity; `write_u64` reports what it wrote.
    unsafe {
        let n = write_u64(dst, v);
        advance(buf, n);
    }
}

/// Append a signed integer.
#[inline]
pub fn push_i64(buf: &mut Vec<u8>, v: i64) {
    let dst = spare(buf, NUM_BYTES);
    // SAFETY: 32 bytes of spare capacity; `write_i64` reports what it wrote.
    unsafe {
        let n = write_i64(dst, v);
        advance(buf, n);
    }
}

/// Append a float as `{:?}` writes it.
#[inline]
pub fn push_f64(buf: &mut Vec<u8>, x: f64) {
    let dst = spare(buf, NUM_BYTES);
    // SAFETY: 32 bytes of spare capacity; `write_f64` reports what it wrote.
    unsafe {
        let n = write_f64(dst, x);
        advance(buf, n);
    }
}

/// Write `x` at `dst` as `{:?}` writes it (at most 24 bytes); returns how many.
///
/// # Safety
/// `dst` must be valid for [`NUM_BYTES`] bytes of writes.
#[inline]
pub(crate) unsafe fn write_f64(dst: *mut u8, x: f64) -> usize {
    let a = x.abs();
    let neg = x.is_sign_negative() as usize;
    // Whole numbers (packet sizes, directions, counts as doubles) are most of the values:
    // the integer and ".0", as `{:?}` prints them below 1e16. (Compared through an integer:
    // `fract` is a libm call without SSE4.1.)
    if a < 1e16 && (x as i64) as f64 == x {
        // SAFETY: at most 18 bytes for the sign and integer, 2 for ".0" (the caller's 32).
        unsafe {
            // -0.0 too (as `{:?}` writes it).
            *dst = b'-';
            let n = neg + write_u64(dst.add(neg), a as u64);
            dst.add(n).cast::<[u8; 2]>().write_unaligned(*b".0");
            return n + 2;
        }
    }
    if !(1e-4..1e16).contains(&a) {
        // SAFETY: the caller's 32 bytes.
        return unsafe { write_debug(dst, x) };
    }
    // Thousandths (milliseconds from microseconds, means of small counts): when `x` is the
    // double nearest to k / 1000 with k below 1e15, that decimal has at most 15 significant
    // digits, and no other decimal of 15 digits or fewer reads back as `x` (every one of them
    // round-trips), so it is the shortest form `{:?}` prints, with no tie to break.
    if a < 1e12 {
        let k = (a * 1000.0 + 0.5) as i64;
        if k as f64 / 1000.0 == a {
            let (int, frac) = (k as u64 / 1000, k as u64 % 1000);
            // Trailing zeros of the fraction are not printed (frac > 0: a whole `x` took the
            // path above).
            let len = if frac % 100 == 0 {
                1
            } else if frac % 10 == 0 {
                2
            } else {
                3
            };
            // SAFETY: sign, at most 12 integer digits, '.' and 3 digits: within 32 bytes.
            unsafe {
                *dst = b'-';
                let n = neg + write_u64(dst.add(neg), int);
                let r = (frac % 100) as usize * 2;
                let d = [b'.', b'0' + (frac / 100) as u8, PAIRS[r], PAIRS[r + 1]];
                dst.add(n).cast::<[u8; 4]>().write_unaligned(d);
                return n + 1 + len;
            }
        }
    }
    if never_a_tie(x) {
        let mut z = zmij::Buffer::new();
        let s = z.format_finite(x).as_bytes();
        // SAFETY: `{:?}` of an f64 takes at most 24 bytes, within the caller's 32.
        unsafe { put_small(dst, s) };
        s.len()
    } else {
        // SAFETY: the caller's 32 bytes.
        unsafe { write_debug(dst, x) }
    }
}

/// `{:?}` of `x` at `dst` through the standard formatter (the rare cases); returns the bytes.
///
/// # Safety
/// `dst` must be valid for [`NUM_BYTES`] bytes of writes.
#[cold]
unsafe fn write_debug(dst: *mut u8, x: f64) -> usize {
    let mut tmp = [0u8; NUM_BYTES];
    let mut w = &mut tmp[..];
    // At most 24 bytes: always fits.
    let _ = write!(w, "{x:?}");
    let n = NUM_BYTES - w.len();
    // SAFETY: the caller gave 32 writable bytes at `dst`; n <= 32.
    unsafe { std::ptr::copy_nonoverlapping(tmp.as_ptr(), dst, n) };
    n
}

/// Whether `x`'s exact decimal expansion has more than 20 significant digits. The shortest
/// round-tripping form has at most 17, so it can then never lie exactly halfway between two
/// candidates: the one case where the fast formatter (ties to even: 1658206780088562.25 ->
/// ...562.2) and `{:?}` (ties away: ...562.3) may differ. x = m * 2^e with m odd and e < 0 is
/// m * 5^-e / 10^-e, whose digits are those of m * 5^-e; a lower bound of their count is
/// enough.
#[inline]
fn never_a_tie(x: f64) -> bool {
    let bits = x.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    let frac = bits & ((1u64 << 52) - 1);
    let (m, e) = if exp == 0 {
        (frac, -1074)
    } else {
        (frac | (1u64 << 52), exp - 1075)
    };
    if m == 0 {
        return true;
    }
    let tz = m.trailing_zeros();
    let (m, e) = (m >> tz, e + tz as i32);
    if e >= 0 {
        // An integer: exact in few digits (whole numbers below 1e16 take the integer path).
        return false;
    }
    let m_bits = (64 - m.leading_zeros()) as f64;
    (m_bits - 1.0) * std::f64::consts::LOG10_2 + (-e) as f64 * 0.698_970_004_336_018_8 > 20.0
}

/// Append a run of float columns as CSV fields, each with its comma: `{:?}` of each value,
/// nothing for NaN (missing). One capacity check for the run.
pub fn push_csv_floats(buf: &mut Vec<u8>, v: &[f64]) {
    // SAFETY: `write_f64` writes at most 24 bytes given 32.
    unsafe { push_csv_run(buf, v, |dst, x| write_f64(dst, x)) }
}

/// Append a run of integer columns (held as doubles) as CSV fields, each with its comma;
/// nothing for NaN (missing). One capacity check for the run.
pub fn push_csv_ints(buf: &mut Vec<u8>, v: &[f64]) {
    // SAFETY: `write_i64` writes at most 21 bytes given 21.
    unsafe { push_csv_run(buf, v, |dst, x| write_i64(dst, x as i64)) }
}

/// A run of CSV fields, each value not NaN written by `write` and followed by a comma.
///
/// # Safety
/// `write` must write at most [`NUM_BYTES`] bytes at the pointer it is given (valid for
/// `NUM_BYTES` of writes) and return how many it wrote.
#[inline(always)]
unsafe fn push_csv_run(buf: &mut Vec<u8>, v: &[f64], write: impl Fn(*mut u8, f64) -> usize) {
    buf.reserve(v.len() * (NUM_BYTES + 1));
    let (base, mut n) = (buf.as_mut_ptr(), buf.len());
    for &x in v {
        // SAFETY: each field takes at most NUM_BYTES + 1 bytes (the caller's guarantee for
        // `write`, and the comma): the reserve above leaves that much per field from `len`.
        unsafe {
            if !x.is_nan() {
                n += write(base.add(n), x);
            }
            *base.add(n) = b',';
        }
        n += 1;
    }
    // SAFETY: every byte up to `n` was written, within the capacity.
    unsafe { buf.set_len(n) };
}

/// Append an address as `Display` writes it (dotted quad, RFC 5952 IPv6).
#[inline]
pub fn push_ip(buf: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            let dst = spare(buf, NUM_BYTES);
            let mut n = 0;
            // SAFETY: 32 bytes of spare capacity; a dotted quad takes at most 15.
            unsafe {
                for (i, o) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        *dst.add(n) = b'.';
                        n += 1;
                    }
                    n += write_u64(dst.add(n), o as u64);
                }
                advance(buf, n);
            }
        }
        IpAddr::V6(v6) => {
            let _ = write!(buf, "{v6}");
        }
    }
}

/// Append a CSV field as the `csv` crate writes it by default: quoted (quotes doubled) only
/// when it holds a comma, a quote or a line break.
pub fn push_csv_str(buf: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    if !b.iter().any(|&c| matches!(c, b',' | b'"' | b'\r' | b'\n')) {
        push_short(buf, b);
        return;
    }
    buf.push(b'"');
    for &c in b {
        if c == b'"' {
            buf.push(b'"');
        }
        buf.push(c);
    }
    buf.push(b'"');
}

/// Append a JSON string (quoted and escaped as `serde_json` escapes it).
pub fn push_json_str(buf: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    if !b.iter().any(|&c| c < 0x20 || c == b'"' || c == b'\\') && b.len() <= NUM_BYTES - 2 {
        // Nothing to escape (the usual case: names, addresses, community ids).
        let dst = spare(buf, NUM_BYTES);
        // SAFETY: 32 bytes of spare capacity for the two quotes and at most 30 bytes.
        unsafe {
            *dst = b'"';
            put_small(dst.add(1), b);
            *dst.add(1 + b.len()) = b'"';
            advance(buf, b.len() + 2);
        }
        return;
    }
    // serde_json writes straight into the Vec; a &str always serializes.
    let _ = serde_json::to_writer(&mut *buf, s);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(x: f64) -> String {
        let mut b = Vec::new();
        push_f64(&mut b, x);
        String::from_utf8(b).unwrap()
    }

    #[test]
    fn floats_print_as_debug_does() {
        let special = [
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.1,
            1e-4,
            9.999999999999999e-5,
            1e-5,
            1.5e-7,
            1e15,
            9.999999999999998e15,
            1e16,
            1.2345e17,
            1e21,
            1e22,
            123456789.0,
            1658206780088562.2,
            -1010791494722.4062,
            0.5,
            2.25,
            0.1 + 0.2,
            8796093022207.999,
            8796093022208.001,
            2.584962500721156,
            457.66666666666663,
            f64::MIN_POSITIVE,
            5e-324,
            f64::MAX,
            f64::MIN,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ];
        for x in special {
            assert_eq!(f(x), format!("{x:?}"), "{x:e}");
        }
        // Thousandths (their own fast path): near its bounds (1e12, 1e15 thousandths) and
        // halfway between two.
        for k in [
            1i64,
            5,
            10,
            999,
            1001,
            123_456,
            999_999_999_999_999,
            1_000_000_000_000_001,
        ] {
            for x in [
                k as f64 / 1000.0,
                k as f64 / 1000.0 + 0.0005,
                k as f64 / 1e4,
            ] {
                for x in [x, -x, x.next_up(), x.next_down()] {
                    assert_eq!(f(x), format!("{x:?}"), "{x:e}");
                }
            }
        }
        for x in [
            1e12,
            1e12 - 0.001,
            1e12 + 0.001,
            999_999_999_999.999,
            0.0005,
            0.00049,
        ] {
            assert_eq!(f(x), format!("{x:?}"), "{x:e}");
        }
        // Every power of ten and its neighbours (the fixed/exponent switch, digit counts).
        for k in -330..310 {
            let p: f64 = format!("1e{k}").parse().unwrap();
            for x in [p, p.next_up(), p.next_down(), -p, 5.0 * p, 0.5 * p, 2.5 * p] {
                assert_eq!(f(x), format!("{x:?}"), "{x:e}");
            }
        }
        // Millions of values from a fixed xorshift sequence: random bit patterns (every
        // exponent), values as the plugins make them, and short decimals and binary
        // fractions (where two shortest forms can tie).
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let (mut ours, mut std) = (Vec::new(), String::new());
        let mut check = |x: f64| {
            ours.clear();
            std.clear();
            push_f64(&mut ours, x);
            let _ = std::fmt::Write::write_fmt(&mut std, format_args!("{x:?}"));
            assert_eq!(ours, std.as_bytes(), "{x:e}");
        };
        for _ in 0..1_000_000 {
            check(f64::from_bits(next()));
            check((next() % 10_000_000) as f64 / (1 + next() % 1000) as f64);
            // Means, deviations, milliseconds from microseconds.
            check((next() % 100_000_000) as f64 / 1000.0);
            check((next() % 1_000_000) as f64 / 7.0);
            // Short decimals: 0.125, 12.5, 3.75e-3...
            let digits = next() % 100_000;
            let scale = POW10[(next() % 12) as usize] as f64;
            check(digits as f64 / scale);
            // Binary fractions of every size (ties are possible), and large ones.
            check((next() >> (next() % 64)) as f64 / (1u64 << (next() % 63)) as f64);
            check((next() % 40_000_000_000_000_000) as f64 / 8.0);
        }
    }

    /// A run of columns is written as its fields one by one would be.
    #[test]
    fn csv_runs_are_fields_with_commas() {
        let v = [
            1.0,
            f64::NAN,
            -0.0,
            12.345,
            1e300,
            f64::INFINITY,
            2.5e-7,
            1658206780088562.2,
            -3.0,
            9.2e18,
        ];
        for n in 0..=v.len() {
            let run = &v[..n];
            let (mut floats, mut ints) = (b"x,".to_vec(), Vec::new());
            push_csv_floats(&mut floats, run);
            push_csv_ints(&mut ints, run);
            let (mut want_f, mut want_i) = (b"x,".to_vec(), Vec::new());
            for &x in run {
                if !x.is_nan() {
                    push_f64(&mut want_f, x);
                    push_i64(&mut want_i, x as i64);
                }
                want_f.push(b',');
                want_i.push(b',');
            }
            assert_eq!(floats, want_f);
            assert_eq!(ints, want_i);
        }
    }

    #[test]
    fn integers_and_addresses_print_as_display_does() {
        let mut edges = vec![0u64, 1, 7, 65535, u64::MAX, u64::MAX - 1];
        for p in POW10 {
            edges.extend([p - 1, p, p + 1]);
        }
        let mut s = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        // Every magnitude: random values shifted down to 0..64 bits.
        edges.extend((0..200_000).map(|_| next() >> (next() % 64)));
        for v in edges {
            let mut b = b"x".to_vec();
            push_u64(&mut b, v);
            assert_eq!(b, format!("x{v}").as_bytes());
            for i in [v as i64, (v as i64).wrapping_neg(), i64::MIN, i64::MAX] {
                let mut b = Vec::new();
                push_i64(&mut b, i);
                assert_eq!(b, i.to_string().as_bytes());
            }
        }
        for ip in [
            "0.0.0.0",
            "10.234.147.17",
            "1.22.103.9",
            "100.9.10.99",
            "255.255.255.255",
            "2001:db8::1",
            "::",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let mut b = Vec::new();
            push_ip(&mut b, ip);
            assert_eq!(b, ip.to_string().as_bytes());
        }
    }

    #[test]
    fn csv_fields_are_quoted_as_the_csv_crate_quotes_them() {
        for s in [
            "",
            "plain",
            "a,b",
            "say \"hi\"",
            "two\nlines",
            "cr\r",
            "ünïcode",
        ] {
            let mut ours = Vec::new();
            push_csv_str(&mut ours, s);
            ours.extend_from_slice(b",x\n");
            let mut w = csv::Writer::from_writer(Vec::new());
            w.write_record([s, "x"]).unwrap();
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                String::from_utf8(w.into_inner().unwrap()).unwrap()
            );
        }
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let long = "x".repeat(40);
        for t in [
            "",
            "plain",
            "1:2a3b4c5d6e7f8091a2b3c4d5e6f=",
            &long,
            &"y".repeat(64),
            &"z".repeat(33),
            "say \"hi\"",
            "back\\slash",
            "tab\tnew\nline\u{1}",
            "ünïcode",
        ] {
            let mut ours = b"[".to_vec();
            push_json_str(&mut ours, t);
            assert_eq!(ours[1..], serde_json::to_vec(t).unwrap()[..], "{t}");
            let mut short = Vec::new();
            push_short(&mut short, t.as_bytes());
            assert_eq!(short, t.as_bytes());
        }
    }
}
