//! DNS responses (RFC 1035 section 4): the A, AAAA and CNAME records of the answer section.
//!
//! The parser reads a message in place, bounds-checked at every field, and never panics or
//! allocates: the records of interest are kept as offsets into the message in fixed arrays
//! ([`MAX_RECORDS`] of each kind; more are ignored), and names are decoded into a 255-byte
//! stack buffer when needed. Anything that does not parse is [`Malformed`] (counted by the
//! caller), never guessed at.
//!
//! The work per message is bounded whatever it holds: at most [`MAX_ANSWERS`] answer records
//! are read, a name follows at most 32 compression pointers (each strictly backwards) and 255
//! octets, each CNAME's names are decoded once (then chained by hash), and an address's name
//! chain is at most [`MAX_CHAIN`] hops.

/// Most answer records of each kind (addresses, CNAMEs) kept from one response.
pub const MAX_RECORDS: usize = 32;
/// Most answer records read from one message (the rest are ignored, not an error): a
/// 64 KiB message could otherwise hold thousands.
pub const MAX_ANSWERS: usize = 64;
/// Most CNAME hops followed from an address back to the question (a loop cannot hang us).
pub const MAX_CHAIN: usize = 8;
/// Longest name on the wire (RFC 1035 2.3.4: 255 octets).
const MAX_NAME: usize = 255;
/// Most compression pointers followed in one name.
const MAX_POINTERS: usize = 32;

const TYPE_A: u16 = 1;
const TYPE_CNAME: u16 = 5;
const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;

/// Why a message was not read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    /// A field runs past the end of the message.
    Truncated,
    /// A name breaks RFC 1035 4.1.4: a reserved label type, a pointer that does not point
    /// backwards, too many pointers, or more than 255 octets.
    BadName,
    /// An A or AAAA record whose RDLENGTH is not 4 or 16.
    BadRdata,
}

/// A decoded name: lower-case ASCII labels joined by dots, no trailing dot ("" is the root).
pub struct Name {
    buf: [u8; MAX_NAME],
    len: usize,
}

impl Default for Name {
    fn default() -> Self {
        Name {
            buf: [0; MAX_NAME],
            len: 0,
        }
    }
}

impl Name {
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The name as text, when every byte is printable ASCII (names used for matching are).
    pub fn as_str(&self) -> Option<&str> {
        let b = self.as_bytes();
        if b.iter().all(|c| c.is_ascii_graphic()) {
            std::str::from_utf8(b).ok()
        } else {
            None
        }
    }
}

fn u16_at(m: &[u8], off: usize) -> Result<u16, Malformed> {
    match m.get(off..off + 2) {
        Some(b) => Ok(u16::from_be_bytes([b[0], b[1]])),
        None => Err(Malformed::Truncated),
    }
}

fn u32_at(m: &[u8], off: usize) -> Result<u32, Malformed> {
    match m.get(off..off + 4) {
        Some(b) => Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        None => Err(Malformed::Truncated),
    }
}

/// Decode the name at `off` into `out`; returns the offset just after the name's bytes in
/// place (after the first pointer when the name is compressed).
pub fn read_name(m: &[u8], mut off: usize, out: &mut Name) -> Result<usize, Malformed> {
    out.len = 0;
    let mut end = None;
    let mut pointers = 0;
    // A pointer must point strictly before the label that holds it: names can only refer to
    // earlier data, so every jump goes backwards and the walk ends.
    let mut limit = off;
    loop {
        let len = *m.get(off).ok_or(Malformed::Truncated)? as usize;
        match len & 0xc0 {
            0x00 => {
                if len == 0 {
                    return Ok(end.unwrap_or(off + 1));
                }
                let label = m.get(off + 1..off + 1 + len).ok_or(Malformed::Truncated)?;
                let dot = usize::from(out.len > 0);
                if out.len + dot + len > MAX_NAME {
                    return Err(Malformed::BadName);
                }
                if dot == 1 {
                    out.buf[out.len] = b'.';
                    out.len += 1;
                }
                for &c in label {
                    out.buf[out.len] = c.to_ascii_lowercase();
                    out.len += 1;
                }
                off += 1 + len;
            }
            0xc0 => {
                let target = (u16_at(m, off)? & 0x3fff) as usize;
                pointers += 1;
                if target >= limit || pointers > MAX_POINTERS {
                    return Err(Malformed::BadName);
                }
                if end.is_none() {
                    end = Some(off + 2);
                }
                limit = target;
                off = target;
            }
            // 0x40 and 0x80: extended label types (RFC 6891 deprecated them), not names here.
            _ => return Err(Malformed::BadName),
        }
    }
}

/// FNV-1a of a decoded (lower-case) name, to compare names without decoding them again.
pub fn name_hash(name: &[u8]) -> u64 {
    name.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The transaction id and the hash of the question name of a message with exactly one
/// question (standard queries and their answers have one).
pub fn question(m: &[u8]) -> Result<(u16, u64), Malformed> {
    let id = u16_at(m, 0)?;
    if u16_at(m, 4)? != 1 {
        return Err(Malformed::BadName);
    }
    let mut n = Name::default();
    read_name(m, 12, &mut n)?;
    Ok((id, name_hash(n.as_bytes())))
}

/// Whether a message is a standard query (QR = 0, OPCODE = 0).
pub fn is_query(m: &[u8]) -> bool {
    matches!(u16_at(m, 2), Ok(flags) if flags & 0x8000 == 0 && (flags >> 11) & 0xf == 0)
}

/// Skip the name at `off` without decoding it (still checked).
fn skip_name(m: &[u8], off: usize) -> Result<usize, Malformed> {
    let mut scratch = Name::default();
    read_name(m, off, &mut scratch)
}

/// An A or AAAA record: its owner name (offset), address and TTL in seconds.
#[derive(Clone, Copy, Debug, Default)]
pub struct AddrRecord {
    pub owner: u16,
    /// IPv4 in the first 4 bytes (flow-key layout).
    pub addr: [u8; 16],
    pub ip_version: u8,
    pub ttl: u32,
}

/// The answer section of one response, as offsets into the message.
pub struct Response {
    pub addrs: [AddrRecord; MAX_RECORDS],
    pub n_addrs: usize,
    /// (owner, target) name offsets of each CNAME record.
    pub cnames: [(u16, u16); MAX_RECORDS],
    /// (owner, target) name hashes of each CNAME record.
    pub cname_hashes: [(u64, u64); MAX_RECORDS],
    pub n_cnames: usize,
}

impl Default for Response {
    fn default() -> Self {
        Response {
            addrs: [AddrRecord::default(); MAX_RECORDS],
            n_addrs: 0,
            cnames: [(0, 0); MAX_RECORDS],
            cname_hashes: [(0, 0); MAX_RECORDS],
            n_cnames: 0,
        }
    }
}

/// Whether a message is worth parsing: a standard query's response (QR = 1, OPCODE = 0)
/// without error (RCODE = 0) that is not truncated (TC = 0) and has answers.
pub fn is_answer(m: &[u8]) -> bool {
    let Ok(flags) = u16_at(m, 2) else {
        return false;
    };
    let Ok(an) = u16_at(m, 6) else { return false };
    flags & 0x8000 != 0
        && (flags >> 11) & 0xf == 0
        && flags & 0x0200 == 0
        && flags & 0xf == 0
        && an > 0
}

/// Parse the answer section of a response (check [`is_answer`] first) into `out`.
pub fn parse_response(m: &[u8], out: &mut Response) -> Result<(), Malformed> {
    out.n_addrs = 0;
    out.n_cnames = 0;
    let qd = u16_at(m, 4)?;
    let an = u16_at(m, 6)?;
    // Offsets are kept in u16: a UDP payload never exceeds 65535 bytes, but be explicit.
    if m.len() > u16::MAX as usize {
        return Err(Malformed::Truncated);
    }
    let mut off = 12;
    for _ in 0..qd {
        off = skip_name(m, off)? + 4;
        if off > m.len() {
            return Err(Malformed::Truncated);
        }
    }
    for _ in 0..(an as usize).min(MAX_ANSWERS) {
        let owner = off;
        off = skip_name(m, off)?;
        let rtype = u16_at(m, off)?;
        let class = u16_at(m, off + 2)?;
        let ttl = u32_at(m, off + 4)?;
        let rdlen = u16_at(m, off + 8)? as usize;
        let rdata = off + 10;
        if rdata + rdlen > m.len() {
            return Err(Malformed::Truncated);
        }
        // RFC 2181 8: a TTL with the top bit set is read as zero.
        let ttl = if ttl & 0x8000_0000 != 0 { 0 } else { ttl };
        if class == CLASS_IN {
            match rtype {
                TYPE_A | TYPE_AAAA => {
                    let (want, ver) = if rtype == TYPE_A { (4, 4) } else { (16, 6) };
                    if rdlen != want {
                        return Err(Malformed::BadRdata);
                    }
                    if out.n_addrs < MAX_RECORDS {
                        let r = &mut out.addrs[out.n_addrs];
                        r.owner = owner as u16;
                        r.addr = [0; 16];
                        r.addr[..want].copy_from_slice(&m[rdata..rdata + want]);
                        r.ip_version = ver;
                        r.ttl = ttl;
                        out.n_addrs += 1;
                    }
                }
                TYPE_CNAME => {
                    // The target must be a whole, valid name inside the RDATA.
                    let mut name = Name::default();
                    let end = read_name(m, rdata, &mut name)?;
                    if end > rdata + rdlen {
                        return Err(Malformed::BadName);
                    }
                    if out.n_cnames < MAX_RECORDS {
                        let target = name_hash(name.as_bytes());
                        read_name(m, owner, &mut name)?;
                        out.cnames[out.n_cnames] = (owner as u16, rdata as u16);
                        out.cname_hashes[out.n_cnames] = (name_hash(name.as_bytes()), target);
                        out.n_cnames += 1;
                    }
                }
                _ => {}
            }
        }
        off = rdata + rdlen;
    }
    Ok(())
}

/// Call `f` with every name an address record answers for: its owner, then the owners of
/// the CNAMEs leading to it (up to [`MAX_CHAIN`] hops back, towards the question's name),
/// until `f` returns `Some`.
pub fn names_of<T>(
    m: &[u8],
    resp: &Response,
    rec: &AddrRecord,
    mut f: impl FnMut(&Name) -> Option<T>,
) -> Option<T> {
    let mut cur = Name::default();
    read_name(m, rec.owner as usize, &mut cur).ok()?;
    let mut h = name_hash(cur.as_bytes());
    for _ in 0..=MAX_CHAIN {
        if let Some(v) = f(&cur) {
            return Some(v);
        }
        // Which CNAME points at the current name? (By hash: each was decoded once already.)
        let i = resp.cname_hashes[..resp.n_cnames]
            .iter()
            .position(|&(_, target)| target == h)?;
        read_name(m, resp.cnames[i].0 as usize, &mut cur).ok()?;
        h = resp.cname_hashes[i].0;
    }
    None
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Encode a name without compression.
    pub fn name(s: &str) -> Vec<u8> {
        let mut v = Vec::new();
        for l in s.split('.').filter(|l| !l.is_empty()) {
            v.push(l.len() as u8);
            v.extend_from_slice(l.as_bytes());
        }
        v.push(0);
        v
    }

    /// A response to `q` with the given answers (owner, type, ttl, rdata).
    pub fn response(q: &str, answers: &[(Vec<u8>, u16, u32, Vec<u8>)]) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1];
        m.extend_from_slice(&(answers.len() as u16).to_be_bytes());
        m.extend_from_slice(&[0, 0, 0, 0]);
        m.extend(name(q));
        m.extend_from_slice(&[0, 1, 0, 1]);
        for (owner, t, ttl, rdata) in answers {
            m.extend_from_slice(owner);
            m.extend_from_slice(&t.to_be_bytes());
            m.extend_from_slice(&[0, 1]);
            m.extend_from_slice(&ttl.to_be_bytes());
            m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            m.extend_from_slice(rdata);
        }
        m
    }

    /// A standard query for `q` (id 0x1234, as [`response`]'s).
    pub fn query(q: &str) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        m.extend(name(q));
        m.extend_from_slice(&[0, 1, 0, 1]);
        m
    }

    #[test]
    fn work_per_answer_is_bounded() {
        // 2000 answers (A records pointing at the question, a CNAME ring): only MAX_ANSWERS
        // are read, the addresses kept are capped, and the CNAME walk ends.
        let mut answers = vec![];
        for i in 0..2000u32 {
            answers.push((vec![0xc0, 12], TYPE_A, 60, i.to_be_bytes().to_vec()));
        }
        let m = response("a.b", &answers);
        let mut r = Response::default();
        parse_response(&m, &mut r).unwrap();
        assert_eq!(r.n_addrs, MAX_RECORDS);
        // x.y CNAME a.b and a.b CNAME x.y: a loop the chain walk leaves after MAX_CHAIN hops.
        let ring = response(
            "a.b",
            &[
                (vec![0xc0, 12], TYPE_CNAME, 60, name("x.y")),
                (name("x.y"), TYPE_CNAME, 60, name("a.b")),
                (vec![0xc0, 12], TYPE_A, 60, vec![1, 2, 3, 4]),
            ],
        );
        parse_response(&ring, &mut r).unwrap();
        let mut calls = 0;
        assert!(names_of::<()>(&ring, &r, &r.addrs[0], |_| {
            calls += 1;
            None
        })
        .is_none());
        assert_eq!(calls, MAX_CHAIN + 1);
    }

    fn all_names(m: &[u8], r: &Response, i: usize) -> Vec<String> {
        let mut v = Vec::new();
        names_of::<()>(m, r, &r.addrs[i], |n| {
            v.push(n.as_str().unwrap().to_string());
            None
        });
        v
    }

    #[test]
    fn cname_chain_with_compression() {
        // www.Example.COM CNAME edge.cdn.net (pointer to the question), edge.cdn.net A.
        let target = name("edge.cdn.net");
        let ptr_q = vec![0xc0, 12];
        let mut m = response("www.Example.COM", &[(ptr_q, TYPE_CNAME, 300, target)]);
        // The A record's owner points at the CNAME's RDATA (after the first answer's header).
        let rdata_off = 12 + name("www.example.com").len() + 4 + 2 + 10;
        let owner = vec![0xc0, rdata_off as u8];
        m[7] = 2;
        m.extend_from_slice(&owner);
        m.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 7]);
        assert!(is_answer(&m));
        let mut r = Response::default();
        parse_response(&m, &mut r).unwrap();
        assert_eq!((r.n_addrs, r.n_cnames), (1, 1));
        assert_eq!(&r.addrs[0].addr[..4], &[192, 0, 2, 7]);
        assert_eq!((r.addrs[0].ttl, r.addrs[0].ip_version), (60, 4));
        assert_eq!(all_names(&m, &r, 0), ["edge.cdn.net", "www.example.com"]);
    }

    #[test]
    fn aaaa_and_ttl_top_bit() {
        let ip6: Vec<u8> = "2001:db8::5"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets()
            .to_vec();
        let m = response(
            "v6.test",
            &[(vec![0xc0, 12], TYPE_AAAA, 0x8000_0001, ip6.clone())],
        );
        let mut r = Response::default();
        parse_response(&m, &mut r).unwrap();
        assert_eq!(r.n_addrs, 1);
        assert_eq!(r.addrs[0].addr.to_vec(), ip6);
        assert_eq!((r.addrs[0].ip_version, r.addrs[0].ttl), (6, 0));
    }

    #[test]
    fn malformed_messages_are_refused_not_panicked_on() {
        let good = response("a.b", &[(vec![0xc0, 12], TYPE_A, 5, vec![1, 2, 3, 4])]);
        let mut r = Response::default();
        // Every truncation of a good message fails cleanly (or parses what is whole).
        for cut in 0..good.len() {
            let _ = is_answer(&good[..cut]);
            assert!(
                parse_response(&good[..cut], &mut r).is_err(),
                "cut at {cut}"
            );
        }
        // A pointer to itself (a loop), a forward pointer, a reserved label type.
        let mut looped = good.clone();
        looped[12] = 0xc0;
        looped[13] = 12;
        assert_eq!(parse_response(&looped, &mut r), Err(Malformed::BadName));
        let mut fwd = good.clone();
        let a_owner = 12 + name("a.b").len() + 4;
        fwd[a_owner + 1] = 200;
        assert_eq!(parse_response(&fwd, &mut r), Err(Malformed::BadName));
        let mut ext = good.clone();
        ext[12] = 0x41;
        assert_eq!(parse_response(&ext, &mut r), Err(Malformed::BadName));
        // An A record with 5 bytes of RDATA.
        let bad = response("a.b", &[(vec![0xc0, 12], TYPE_A, 5, vec![1, 2, 3, 4, 5])]);
        assert_eq!(parse_response(&bad, &mut r), Err(Malformed::BadRdata));
        // Arbitrary bytes never panic.
        let mut x: u32 = 0x9e37_79b9;
        for len in 0..600 {
            let msg: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            if is_answer(&msg) {
                let _ = parse_response(&msg, &mut r);
            }
            let _ = read_name(&msg, 12, &mut Name::default());
        }
    }

    #[test]
    fn queries_and_errors_are_not_answers() {
        let mut m = response("a.b", &[(vec![0xc0, 12], TYPE_A, 5, vec![1, 2, 3, 4])]);
        assert!(is_answer(&m));
        m[2] &= 0x7f; // a query
        assert!(!is_answer(&m));
        m[2] |= 0x80;
        m[3] |= 3; // NXDOMAIN
        assert!(!is_answer(&m));
    }

    #[test]
    fn long_names_are_bounded() {
        let long = format!("{}.com", vec!["a".repeat(63); 4].join("."));
        let m = response(&long, &[]);
        let mut r = Response::default();
        assert_eq!(parse_response(&m, &mut r), Err(Malformed::BadName));
    }
}
