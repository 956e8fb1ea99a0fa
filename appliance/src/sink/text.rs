//! Number, address and string formatting for the text sinks (CSV, JSON Lines), appended to a
//! reused byte buffer: no allocation per field or per record.
//!
//! Floats print exactly as Rust's `{:?}` prints them (the shortest digits that read back as
//! the same `f64`, at least one decimal, exponent form below 1e-4 and from 1e16 up), which is
//! what the records have always been written as and what the parity tests compare. `ryu`
//! gives the same shortest digits several times faster than `core::fmt`; it writes the
//! decimal form over a wider range than `{:?}` and breaks exact ties between two shortest
//! forms the other way, so outside 1e-4..1e16, and for values short enough in decimal that
//! a tie is possible (0.5, 2.25, -1010791494722.40625), the standard formatter is used
//! (whole numbers up to 1e16 have a fast path of their own).

use std::io::Write;
use std::net::IpAddr;

/// Append an unsigned integer.
#[inline]
pub fn push_u64(buf: &mut Vec<u8>, v: u64) {
    buf.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// Append a signed integer.
#[inline]
pub fn push_i64(buf: &mut Vec<u8>, v: i64) {
    buf.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// Append a float as `{:?}` writes it.
#[inline]
pub fn push_f64(buf: &mut Vec<u8>, x: f64) {
    let a = x.abs();
    // Whole numbers (packet sizes, directions, counts as doubles) are most of the values:
    // the integer and ".0", as `{:?}` prints them below 1e16.
    if (1.0..1e16).contains(&a) && x.fract() == 0.0 {
        push_i64(buf, x as i64);
        buf.extend_from_slice(b".0");
        return;
    }
    if a == 0.0 || ((1e-4..1e16).contains(&a) && never_a_tie(x)) {
        buf.extend_from_slice(ryu::Buffer::new().format_finite(x).as_bytes());
    } else {
        // Writing into a Vec cannot fail.
        let _ = write!(buf, "{x:?}");
    }
}

/// Whether `x`'s exact decimal expansion has more than 20 significant digits. The shortest
/// round-tripping form has at most 17, so it can then never lie exactly halfway between two
/// candidates: the one case where ryu (ties to even: 1658206780088562.25 -> ...562.2) and
/// `{:?}` (ties away: ...562.3) differ. x = m * 2^e with m odd and e < 0 is m * 5^-e / 10^-e,
/// whose digits are those of m * 5^-e; a lower bound of their count is enough.
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

/// Append an address as `Display` writes it (dotted quad, RFC 5952 IPv6).
#[inline]
pub fn push_ip(buf: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            let mut b = itoa::Buffer::new();
            for (i, x) in o.iter().enumerate() {
                if i > 0 {
                    buf.push(b'.');
                }
                buf.extend_from_slice(b.format(*x).as_bytes());
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
        buf.extend_from_slice(b);
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
        // Random bit patterns (every exponent) and random values in the feature range, from
        // a fixed xorshift sequence.
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        for _ in 0..200_000 {
            let bits = f64::from_bits(next());
            assert_eq!(f(bits), format!("{bits:?}"));
            let v = (next() % 10_000_000) as f64 / (1 + next() % 1000) as f64;
            assert_eq!(f(v), format!("{v:?}"));
            // Large values with binary fractions (where ties are possible).
            let w = (next() % 40_000_000_000_000_000) as f64 / 8.0;
            assert_eq!(f(w), format!("{w:?}"));
        }
    }

    #[test]
    fn integers_and_addresses_print_as_display_does() {
        for v in [0u64, 7, 10, 65535, u64::MAX] {
            let mut b = Vec::new();
            push_u64(&mut b, v);
            assert_eq!(b, v.to_string().as_bytes());
        }
        for v in [0i64, -1, i64::MIN, i64::MAX] {
            let mut b = Vec::new();
            push_i64(&mut b, v);
            assert_eq!(b, v.to_string().as_bytes());
        }
        for ip in [
            "0.0.0.0",
            "10.234.147.17",
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
}
