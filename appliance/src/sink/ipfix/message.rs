//! IPFIX messages and sets (RFC 7011 §3), written in place into one preallocated buffer.
//!
//! ```text
//! message header (§3.1), 16 octets        set header (§3.3.2), 4 octets
//!  0      2      4            8          12          16     0      2      4
//!  +------+------+------------+-----------+-----------+     +------+------+-----------
//!  | 10   |length| export time| sequence  | obs domain|     |set id|length| records...
//!  +------+------+------------+-----------+-----------+     +------+------+-----------
//! ```
//!
//! A [`MessageBuf`] holds one message under construction: the header is reserved at the start,
//! sets are opened and closed in place (their length filled in when closed, padded to a 4-octet
//! boundary with zeros, §3.3.1), and [`MessageBuf::finish`] fills the header. Nothing is
//! allocated after [`MessageBuf::new`]: the buffer's capacity is the largest message allowed
//! (the path MTU budget), and callers ask [`MessageBuf::fits`] before writing a record.

/// `Version` of every IPFIX message (§3.1).
pub const VERSION: u16 = 10;
/// Octets of the message header (§3.1).
pub const HEADER_LEN: usize = 16;
/// Octets of a set header (§3.3.2).
pub const SET_HEADER_LEN: usize = 4;
/// Set ID of a Template Set (§3.3.2).
pub const TEMPLATE_SET_ID: u16 = 2;
/// The first Set ID usable for a Data Set, i.e. the smallest Template ID (§3.3.2, §3.4.1).
pub const MIN_DATA_SET_ID: u16 = 256;
/// The largest IPFIX message: `Length` is 16 bits (§3.1).
pub const MAX_MESSAGE_LEN: usize = u16::MAX as usize;

/// Octets of zero padding that bring `len` to a multiple of 4 (§3.3.1: padding is optional,
/// must be zero and shorter than any record of the set).
pub fn padding(len: usize) -> usize {
    (4 - len % 4) % 4
}

/// One IPFIX message under construction.
pub struct MessageBuf {
    buf: Vec<u8>,
    max: usize,
    /// Where the open set's header starts, and its Set ID.
    set: Option<(usize, u16)>,
    /// Data records written into this message (they advance the sequence number, §3.1).
    data_records: u32,
}

impl MessageBuf {
    /// An empty message of at most `max` octets (at least a header and an empty set).
    pub fn new(max: usize) -> MessageBuf {
        let max = max.clamp(HEADER_LEN + SET_HEADER_LEN, MAX_MESSAGE_LEN);
        let mut m = MessageBuf {
            buf: Vec::with_capacity(max),
            max,
            set: None,
            data_records: 0,
        };
        m.clear();
        m
    }

    /// Start over: only the (reserved) header.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.buf.resize(HEADER_LEN, 0);
        self.set = None;
        self.data_records = 0;
    }

    /// The largest message this buffer builds.
    pub fn max_len(&self) -> usize {
        self.max
    }

    /// Octets written so far (header included).
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Nothing but the header.
    pub fn is_empty(&self) -> bool {
        self.buf.len() == HEADER_LEN
    }

    /// Data records written into this message.
    pub fn data_records(&self) -> u32 {
        self.data_records
    }

    /// Whether a record of `len` octets fits in a set with `set_id`: in the open set if it has
    /// that id, else in a new set after the open one is closed (and padded).
    pub fn fits(&self, set_id: u16, len: usize) -> bool {
        let used = match self.set {
            Some((_, id)) if id == set_id => self.buf.len(),
            Some(_) => self.buf.len() + padding(self.buf.len()) + SET_HEADER_LEN,
            None => self.buf.len() + SET_HEADER_LEN,
        };
        used + len <= self.max
    }

    /// Make sure the open set has `set_id`, closing another one first. The caller checked
    /// [`MessageBuf::fits`].
    pub fn set(&mut self, set_id: u16) {
        if let Some((_, id)) = self.set {
            if id == set_id {
                return;
            }
            self.close_set();
        }
        let start = self.buf.len();
        self.put_u16(set_id);
        self.put_u16(0); // the length, filled in by close_set
        self.set = Some((start, set_id));
    }

    /// Close the open set: pad it to a 4-octet boundary and write its length (§3.3.2).
    pub fn close_set(&mut self) {
        if let Some((start, _)) = self.set.take() {
            let pad = padding(self.buf.len() - start);
            self.buf.resize(self.buf.len() + pad, 0);
            let len = (self.buf.len() - start) as u16;
            self.buf[start + 2..start + 4].copy_from_slice(&len.to_be_bytes());
        }
    }

    /// Count one data record written into the open set (for the sequence number).
    pub fn count_data_record(&mut self) {
        self.data_records += 1;
    }

    /// Close the open set and fill in the message header (§3.1): `export_time` in seconds
    /// since the UNIX epoch, `sequence` the data records sent before this message in this
    /// observation domain (modulo 2^32). The message is the returned slice.
    pub fn finish(&mut self, export_time: u32, sequence: u32, domain: u32) -> &[u8] {
        self.close_set();
        let len = self.buf.len() as u16;
        let h = &mut self.buf[..HEADER_LEN];
        h[0..2].copy_from_slice(&VERSION.to_be_bytes());
        h[2..4].copy_from_slice(&len.to_be_bytes());
        h[4..8].copy_from_slice(&export_time.to_be_bytes());
        h[8..12].copy_from_slice(&sequence.to_be_bytes());
        h[12..16].copy_from_slice(&domain.to_be_bytes());
        &self.buf
    }

    // Network byte order writers (RFC 7011 §6.1: every field is big-endian). The capacity is
    // reserved, so none of these reallocates while the caller stays within `fits`.

    #[inline]
    pub fn put_u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    #[inline]
    pub fn put_u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    #[inline]
    pub fn put_u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    #[inline]
    pub fn put_u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    /// float64 (§6.1.3): IEEE 754 binary64, big-endian; NaN stays NaN.
    #[inline]
    pub fn put_f64(&mut self, v: f64) {
        self.buf.extend_from_slice(&v.to_bits().to_be_bytes());
    }
    #[inline]
    pub fn put_bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }
    /// A variable-length field (§7): one length octet below 255, else 255 and a 16-bit length.
    pub fn put_varlen(&mut self, b: &[u8]) {
        let b = &b[..b.len().min(u16::MAX as usize)];
        if b.len() < 255 {
            self.put_u8(b.len() as u8);
        } else {
            self.put_u8(255);
            self.put_u16(b.len() as u16);
        }
        self.put_bytes(b);
    }
}

/// Octets a variable-length field of `n` octets takes on the wire (§7).
pub fn varlen_size(n: usize) -> usize {
    let n = n.min(u16::MAX as usize);
    if n < 255 {
        1 + n
    } else {
        3 + n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn be16(b: &[u8], at: usize) -> u16 {
        u16::from_be_bytes([b[at], b[at + 1]])
    }
    fn be32(b: &[u8], at: usize) -> u32 {
        u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
    }

    #[test]
    fn header_fields_and_length() {
        let mut m = MessageBuf::new(1400);
        assert!(m.is_empty());
        m.set(300);
        m.put_u32(0xdead_beef);
        m.count_data_record();
        let b = m.finish(1_700_000_000, 42, 7).to_vec();
        assert_eq!(be16(&b, 0), 10);
        assert_eq!(be16(&b, 2) as usize, b.len());
        assert_eq!(b.len(), HEADER_LEN + SET_HEADER_LEN + 4);
        assert_eq!(be32(&b, 4), 1_700_000_000);
        assert_eq!(be32(&b, 8), 42);
        assert_eq!(be32(&b, 12), 7);
        assert_eq!(be16(&b, 16), 300);
        assert_eq!(be16(&b, 18), 8);
        assert_eq!(be32(&b, 20), 0xdead_beef);
    }

    #[test]
    fn sets_are_padded_to_four_octets_with_zeros() {
        let mut m = MessageBuf::new(1400);
        m.set(256);
        m.put_bytes(&[1, 2, 3, 4, 5]); // 4 + 5 = 9 octets: 3 of padding
        m.set(257); // closes 256
        m.put_u16(9);
        let b = m.finish(0, 0, 0).to_vec();
        assert_eq!(be16(&b, 16), 256);
        assert_eq!(be16(&b, 18), 12, "set 256 padded from 9 to 12 octets");
        assert_eq!(&b[16 + 9..16 + 12], &[0, 0, 0]);
        assert_eq!(be16(&b, 28), 257);
        assert_eq!(be16(&b, 30), 8, "set 257: 6 octets padded to 8");
        assert_eq!(b.len(), 16 + 12 + 8);
        assert_eq!(be16(&b, 2) as usize, b.len());
    }

    #[test]
    fn fits_counts_set_headers_and_padding() {
        let mut m = MessageBuf::new(40);
        assert!(m.fits(256, 40 - 16 - 4));
        assert!(!m.fits(256, 40 - 16 - 4 + 1));
        m.set(256);
        m.put_bytes(&[0; 5]); // 25 octets used
        assert!(m.fits(256, 15));
        assert!(!m.fits(256, 16));
        // Another set: 3 octets of padding and a new header first (25 + 3 + 4 = 32).
        assert!(m.fits(257, 8));
        assert!(!m.fits(257, 9));
    }

    #[test]
    fn variable_length_encoding() {
        let mut m = MessageBuf::new(2000);
        m.set(256);
        m.put_varlen(b"abc");
        let long = vec![b'x'; 300];
        m.put_varlen(&long);
        let b = m.finish(0, 0, 0).to_vec();
        assert_eq!(b[20], 3);
        assert_eq!(&b[21..24], b"abc");
        assert_eq!(b[24], 255);
        assert_eq!(be16(&b, 25), 300);
        assert_eq!(varlen_size(3), 4);
        assert_eq!(varlen_size(300), 303);
        assert_eq!(varlen_size(254), 255);
        assert_eq!(varlen_size(255), 258);
    }

    #[test]
    fn clear_starts_a_new_message() {
        let mut m = MessageBuf::new(100);
        m.set(256);
        m.put_u64(1);
        m.count_data_record();
        m.clear();
        assert!(m.is_empty());
        assert_eq!(m.data_records(), 0);
        assert_eq!(m.finish(0, 0, 0).len(), HEADER_LEN);
    }
}
