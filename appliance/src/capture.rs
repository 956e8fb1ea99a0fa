//! Reading capture files (pcap and pcapng) for `weir extract`.
//!
//! The `pcap-file` crate parses the blocks; this module adds what a flow meter needs on top:
//! exact nanosecond timestamps for pcapng (the crate reads an Enhanced Packet Block's timestamp
//! as nanoseconds whatever the interface's `if_tsresol` says; pcapng's default is microseconds,
//! RFC draft-ietf-opsawg-pcapng section 4.2), each packet's link type, and Ethernet framing for
//! captures of other link types (raw IP, Linux cooked, BSD loopback), because DPDK ports carry
//! Ethernet frames. The original wire length is kept apart from the data, so byte counts stay
//! those of the wire.

mod blocks;
mod framing;
mod head_start;
mod mapped;
mod swapped;

use blocks::*;
pub use framing::to_ethernet;
pub use head_start::HashHeadStart;
pub use mapped::CaptureMap;
use mapped::*;
use swapped::*;

use pcap_file::pcap::{PcapParser, PcapReader};
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::pcapng::{Block, PcapNgParser, PcapNgReader};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Link types (LINKTYPE_* of the tcpdump.org registry) that weir can frame as Ethernet.
pub mod linktype {
    pub const NULL: u32 = 0;
    pub const ETHERNET: u32 = 1;
    pub const RAW_OLD: u32 = 12;
    pub const RAW_OLD_BSD: u32 = 14;
    pub const RAW: u32 = 101;
    pub const LOOP: u32 = 108;
    pub const LINUX_SLL: u32 = 113;
    pub const IPV4: u32 = 228;
    pub const IPV6: u32 = 229;
    pub const LINUX_SLL2: u32 = 276;
}

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    // The reason is in the message and not a `source`: with `{:#}` the error chain would
    // print it twice ("...: No such file or directory (os error 2): No such file ...").
    #[error("cannot open capture {path}: {reason}")]
    Open {
        path: PathBuf,
        reason: std::io::Error,
    },
    #[error("{path} is not a pcap or pcapng capture: {reason}")]
    NotACapture { path: PathBuf, reason: String },
    #[error("{path}: corrupt capture after {packets} packets: {reason}")]
    Corrupt {
        path: PathBuf,
        packets: u64,
        reason: String,
    },
}

/// The latest packet time weir keeps, in ns since 1970: `i64::MAX` (2262-04-11), so every time
/// and its milliseconds fit a signed 64-bit column and the clocks have room for deadlines.
/// A pcapng time outside 0..=MAX_TS_NS is clamped to the nearer end, never wrapped: the
/// first one of a file is logged with the file, the packet number and the computation, and
/// the count at the end of the file ([`CaptureReader::clamped_times`]).
pub const MAX_TS_NS: u64 = i64::MAX as u64;

/// One packet as read from the file.
pub struct CapturedPacket<'a> {
    pub data: &'a [u8],
    /// Length on the wire (the record's byte counts use this, not `data.len()`).
    pub orig_len: u32,
    pub ts_ns: u64,
    pub linktype: u32,
}

/// An interface of a pcapng section: link type, time resolution, time offset (s).
type Iface = (u32, TsResol, i64);

/// How the file is read: mapped (a regular file: packets are slices of the mapping, no copy)
/// or through a buffer (anything else, e.g. a pipe).
enum Inner {
    /// The reader, the link type, and ns per unit of the header's fractional timestamp.
    Pcap(PcapReader<BufReader<HashingReader>>, u32, u64),
    PcapNg(PcapNgReader<BufReader<HashingReader>>, Vec<Iface>),
    /// A classic pcap of format version 2.0 to 2.2, read record by record here: libpcap
    /// before 0.5 wrote each record's captured and original lengths the other way round, and
    /// libpcap and Wireshark swap them back when reading (`pcap-file` does not).
    PcapSwapped(SwappedPcap),
    MappedPcap {
        map: Arc<Mapping>,
        pos: usize,
        parser: PcapParser,
        linktype: u32,
        frac_ns: u64,
    },
    MappedPcapNg {
        map: Arc<Mapping>,
        pos: usize,
        parser: PcapNgParser,
        ifaces: Vec<Iface>,
    },
}

/// A pcap or pcapng file, read packet by packet.
pub struct CaptureReader {
    path: PathBuf,
    inner: Inner,
    packets: u64,
    size: u64,
    /// The sha256 of the bytes read so far, when asked for ([`CaptureReader::hash_as_read`]).
    hash: Option<Sha256>,
    /// Mapped path: bytes hashed so far.
    hashed: usize,
    /// Mapped path: bytes whose lines were asked for ahead of the parser (see [`read_ahead`]).
    warmed: usize,
    /// Mapped path: bytes of the mapping given back (see [`Mapping::release_before`]).
    released: usize,
    /// Packets whose time was clamped into 1970..2262.
    clamped: u64,
    /// Mapped path: pages are given back only this many bytes behind what must be kept
    /// (see [`CaptureReader::lend_mapping`]).
    release_lag: usize,
}

impl CaptureReader {
    pub fn open(path: &Path) -> Result<CaptureReader, CaptureError> {
        Self::open_with(path, false, None)
    }

    /// Open `path` and compute its sha256 as it is read (see [`CaptureReader::finish_hash`]):
    /// the data manifest's capture hash without a second pass over the file. With `head`,
    /// it goes on from what the head start hashed of the file (when it is this file, read
    /// mapped; otherwise the hash starts over from the file's start).
    pub fn hash_as_read(
        path: &Path,
        head: Option<HashHeadStart>,
    ) -> Result<CaptureReader, CaptureError> {
        // Stopped before the file is opened here: the bytes it hashed are of the file as it
        // was then, and the identity check in `open_with` compares with the file opened now.
        let part = head.and_then(HashHeadStart::take);
        if let Some(p) = &part {
            tracing::debug!(bytes = p.bytes, "hash head start taken over");
        }
        Self::open_with(path, true, part)
    }

    fn open_with(
        path: &Path,
        hash: bool,
        head: Option<head_start::Partial>,
    ) -> Result<CaptureReader, CaptureError> {
        let open_err = |reason| CaptureError::Open {
            path: path.to_path_buf(),
            reason,
        };
        let f = File::open(path).map_err(open_err)?;
        let meta = f.metadata().map_err(open_err)?;
        let size = meta.len();
        if meta.is_dir() {
            return Err(CaptureError::NotACapture {
                path: path.to_path_buf(),
                reason: "it is a directory".into(),
            });
        }
        let not = |reason: String| CaptureError::NotACapture {
            path: path.to_path_buf(),
            reason,
        };
        let map = if meta.is_file() {
            Mapping::new(&f, size).map(Arc::new)
        } else {
            None
        };
        let inner = match map {
            Some(map) => {
                let bytes = map.bytes();
                if bytes.len() < 4 {
                    return Err(not(format!("the file has only {} bytes", bytes.len())));
                }
                let magic: [u8; 4] = bytes[..4].try_into().expect("4 bytes");
                if magic == [0x0a, 0x0d, 0x0d, 0x0a] {
                    let (rest, parser) =
                        PcapNgParser::new(bytes).map_err(|e| not(e.to_string()))?;
                    let pos = bytes.len() - rest.len();
                    Inner::MappedPcapNg {
                        map,
                        pos,
                        parser,
                        ifaces: Vec::new(),
                    }
                } else {
                    let (rest, parser) = PcapParser::new(bytes)
                        .map_err(|e| not(format!("{e} (magic {magic:02x?})")))?;
                    let pos = bytes.len() - rest.len();
                    let (linktype, frac_ns) = pcap_header(&parser.header());
                    match swapped_pcap(path, &parser.header(), linktype, frac_ns)
                        .map_err(open_err)?
                    {
                        Some(sp) => Inner::PcapSwapped(sp),
                        None => Inner::MappedPcap {
                            map,
                            pos,
                            parser,
                            linktype,
                            frac_ns,
                        },
                    }
                }
            }
            None => {
                // Read once, front to back, never rewound: a pipe (`tcpdump -w - | weir
                // extract /dev/stdin`) has no second reading. The magic chooses the parser and
                // is then handed to it again by the reader.
                let mut r = HashingReader::new(f, hash);
                let mut magic = [0u8; 4];
                let n = r.read_magic(&mut magic).map_err(open_err)?;
                if n < 4 {
                    return Err(not(format!("the file has only {n} bytes")));
                }
                let r = BufReader::with_capacity(1 << 20, r);
                if magic == [0x0a, 0x0d, 0x0d, 0x0a] {
                    Inner::PcapNg(
                        PcapNgReader::new(r).map_err(|e| not(e.to_string()))?,
                        Vec::new(),
                    )
                } else {
                    let rd =
                        PcapReader::new(r).map_err(|e| not(format!("{e} (magic {magic:02x?})")))?;
                    let (lt, frac_ns) = pcap_header(&rd.header());
                    match swapped_pcap(path, &rd.header(), lt, frac_ns).map_err(open_err)? {
                        Some(sp) => Inner::PcapSwapped(sp),
                        None => Inner::Pcap(rd, lt, frac_ns),
                    }
                }
            }
        };
        let mapped = matches!(inner, Inner::MappedPcap { .. } | Inner::MappedPcapNg { .. });
        // The head start's bytes count only for this very file, read through the mapping.
        let head = head.filter(|p| mapped && p.file == head_start::FileId::of(&meta));
        let (hash, hashed) = match head {
            Some(p) if hash => (Some(p.hash), p.bytes as usize),
            _ => ((hash && mapped).then(Sha256::new), 0),
        };
        Ok(CaptureReader {
            path: path.to_path_buf(),
            inner,
            packets: 0,
            size,
            hash,
            hashed,
            warmed: 0,
            released: 0,
            clamped: 0,
            release_lag: 0,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// File size in bytes (for progress).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Packets read so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Packets whose time was clamped into 1970..2262 (see [`MAX_TS_NS`]).
    pub fn clamped_times(&self) -> u64 {
        self.clamped
    }

    /// Whether packets are slices of a mapping of the file (no copy).
    pub fn is_mapped(&self) -> bool {
        matches!(
            self.inner,
            Inner::MappedPcap { .. } | Inner::MappedPcapNg { .. }
        )
    }

    /// A handle that keeps the file mapped while it lives, for packets handed on without a
    /// copy (their bytes borrowed beyond the next read); `None` when the capture is not
    /// mapped (a pipe, or a pcap read record by record). From then on the pages behind the
    /// reader are given back only `lag` bytes late, as the borrowers may still read them
    /// (such a read is correct either way: a page given back is read again from the page
    /// cache, it only costs a fault).
    pub fn lend_mapping(&mut self, lag: usize) -> Option<CaptureMap> {
        let map = match &self.inner {
            Inner::MappedPcap { map, .. } | Inner::MappedPcapNg { map, .. } => map,
            _ => return None,
        };
        self.release_lag = lag;
        Some(CaptureMap(map.clone()))
    }

    /// The sha256 (hex) and byte count of the whole file, after the last packet was read;
    /// `None` unless opened with [`CaptureReader::hash_as_read`]. The bytes after the last
    /// packet (if any) are hashed too, so this is the hash of the file.
    pub fn finish_hash(self) -> Option<(String, u64)> {
        match self.inner {
            Inner::MappedPcap { map, .. } | Inner::MappedPcapNg { map, .. } => {
                let mut h = self.hash?;
                h.update(&map.bytes()[self.hashed..]);
                Some((hex(&h.finalize()), map.len as u64))
            }
            Inner::Pcap(rd, ..) => finish_stream(rd.into_reader().into_inner()),
            // Read apart from the mapping or the hashing reader: the manifest hashes it.
            Inner::PcapSwapped(_) => None,
            Inner::PcapNg(rd, _) => finish_stream(rd.into_inner().into_inner()),
        }
    }

    /// Read the next packet and hand it to `f`; `Ok(None)` at the end of the file.
    pub fn next_with<T>(
        &mut self,
        f: impl FnOnce(CapturedPacket<'_>) -> T,
    ) -> Result<Option<T>, CaptureError> {
        let path = &self.path;
        let corrupt = |packets, reason: String| CaptureError::Corrupt {
            path: path.clone(),
            packets,
            reason,
        };
        let packets = &mut self.packets;
        let clamped = &mut self.clamped;
        match &mut self.inner {
            Inner::PcapSwapped(sp) => match sp.next() {
                Ok(None) => Ok(None),
                Err(e) => Err(corrupt(*packets, e)),
                Ok(Some((sec, frac, orig))) => {
                    *packets += 1;
                    Ok(Some(f(CapturedPacket {
                        data: &sp.data,
                        orig_len: orig,
                        ts_ns: pcap_ts_ns(sec, frac, sp.frac_ns),
                        linktype: sp.linktype,
                    })))
                }
            },
            // Raw records: a fractional part out of range (which libpcap passes through, and
            // NFStream adds as is) must not make the whole capture unreadable.
            Inner::Pcap(rd, lt, frac_ns) => match rd.next_raw_packet() {
                None => Ok(None),
                Some(Err(e)) => Err(corrupt(*packets, e.to_string())),
                Some(Ok(p)) => {
                    *packets += 1;
                    Ok(Some(f(CapturedPacket {
                        data: &p.data,
                        orig_len: p.orig_len,
                        ts_ns: pcap_ts_ns(p.ts_sec, p.ts_frac, *frac_ns),
                        linktype: *lt,
                    })))
                }
            },
            Inner::MappedPcap {
                map,
                pos,
                parser,
                linktype,
                frac_ns,
            } => {
                // Everything before the position was handed out, and hashed (the hash runs
                // ahead of it; a page given back is read again from the file anyway).
                map.release_before(pos.saturating_sub(self.release_lag), &mut self.released);
                let bytes = map.bytes();
                if *pos >= bytes.len() {
                    return Ok(None);
                }
                read_ahead(
                    &mut self.hash,
                    &mut self.hashed,
                    &mut self.warmed,
                    bytes,
                    *pos,
                );
                let (rest, p) = parser
                    .next_raw_packet(&bytes[*pos..])
                    .map_err(|e| corrupt(*packets, e.to_string()))?;
                *pos = bytes.len() - rest.len();
                *packets += 1;
                Ok(Some(f(CapturedPacket {
                    data: &p.data,
                    orig_len: p.orig_len,
                    ts_ns: pcap_ts_ns(p.ts_sec, p.ts_frac, *frac_ns),
                    linktype: *linktype,
                })))
            }
            Inner::PcapNg(rd, ifaces) => loop {
                let block = match rd.next_block() {
                    None => {
                        warn_clamped(path, *clamped);
                        return Ok(None);
                    }
                    Some(Err(e)) => return Err(corrupt(*packets, e.to_string())),
                    Some(Ok(b)) => b,
                };
                if let Some(p) = on_block(block, ifaces, packets, clamped, path, &corrupt)? {
                    return Ok(Some(f(p.captured())));
                }
            },
            Inner::MappedPcapNg {
                map,
                pos,
                parser,
                ifaces,
            } => loop {
                // Everything before the position was handed out, and hashed (the hash runs
                // ahead of it; a page given back is read again from the file anyway).
                map.release_before(pos.saturating_sub(self.release_lag), &mut self.released);
                let bytes = map.bytes();
                if *pos >= bytes.len() {
                    warn_clamped(path, *clamped);
                    return Ok(None);
                }
                read_ahead(
                    &mut self.hash,
                    &mut self.hashed,
                    &mut self.warmed,
                    bytes,
                    *pos,
                );
                let (rest, block) = parser
                    .next_block(&bytes[*pos..])
                    .map_err(|e| corrupt(*packets, e.to_string()))?;
                *pos = bytes.len() - rest.len();
                if let Some(p) = on_block(block, ifaces, packets, clamped, path, &corrupt)? {
                    return Ok(Some(f(p.captured())));
                }
            },
        }
    }
}

/// The link type and ns per fractional unit of a classic pcap header.
fn pcap_header(h: &pcap_file::pcap::PcapHeader) -> (u32, u64) {
    let frac_ns = match h.ts_resolution {
        pcap_file::TsResolution::MicroSecond => 1000,
        pcap_file::TsResolution::NanoSecond => 1,
    };
    (u32::from(h.datalink), frac_ns)
}

/// Count the packets of a capture (a full read; for tests and checks).
pub fn count_packets(path: &Path) -> Result<u64, CaptureError> {
    let mut r = CaptureReader::open(path)?;
    while r.next_with(|_| ())?.is_some() {}
    Ok(r.packets())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcap_times_read_as_libpcap_does() {
        assert_eq!(pcap_ts_ns(10, 250_000, 1000), 10_250_000_000);
        assert_eq!(pcap_ts_ns(10, 7, 1), 10_000_000_007);
        // A negative tv_usec moves the time back, truncating toward zero like C.
        let us = -1_500i32 as u32;
        assert_eq!(pcap_ts_ns(10, us, 1000) / 1_000_000, 10_000 - 1);
    }

    #[test]
    fn pcap_times_never_wrap() {
        // Every extreme of the two 32-bit fields, checked against i128 arithmetic.
        for sec in [0u32, 1, i32::MAX as u32, i32::MIN as u32, u32::MAX] {
            for frac in [0u32, 999_999, 999_999_999, i32::MAX as u32, u32::MAX] {
                let (s, f) = (sec as i32 as i128, frac as i32 as i128);
                let want_ns = (s * 1_000_000_000 + frac as i128).max(0);
                assert_eq!(pcap_ts_ns(sec, frac, 1) as i128, want_ns, "{sec} {frac} ns");
                let ms = s * 1000 + f / 1000; // C's truncating division
                let want_us = (ms * 1_000_000 + (f % 1000).max(0) * 1000).max(0);
                assert_eq!(
                    pcap_ts_ns(sec, frac, 1000) as i128,
                    want_us,
                    "{sec} {frac} us"
                );
                assert!(pcap_ts_ns(sec, frac, 1) <= MAX_TS_NS);
            }
        }
    }

    #[test]
    fn tsresol_conversions() {
        assert_eq!(TsResol::Pow10(6).to_ns(1_500_000), 1_500_000_000);
        assert_eq!(TsResol::Pow10(9).to_ns(7), 7);
        assert_eq!(TsResol::Pow10(12).to_ns(5_000), 5);
        assert_eq!(TsResol::Pow2(10).to_ns(1024), 1_000_000_000);
        // No wrap at the extremes: exact in u128.
        assert_eq!(
            TsResol::Pow10(0).to_ns(u64::MAX),
            u64::MAX as u128 * 1_000_000_000
        );
        assert_eq!(
            TsResol::Pow2(0).to_ns(u64::MAX),
            u64::MAX as u128 * 1_000_000_000
        );
        assert_eq!(TsResol::Pow10(127).to_ns(u64::MAX), 0);
    }

    #[test]
    fn pcapng_times_in_range_or_refused() {
        let us = TsResol::Pow10(6);
        assert_eq!(pcapng_ts_ns(us, 0, 1_500_000), Ok(1_500_000_000));
        assert_eq!(pcapng_ts_ns(us, 10, 1), Ok(10_000_001_000));
        assert_eq!(pcapng_ts_ns(us, -1, 1_500_000), Ok(500_000_000));
        // The largest time accepted, and one ns past it.
        assert_eq!(pcapng_ts_ns(TsResol::Pow10(9), 0, MAX_TS_NS), Ok(MAX_TS_NS));
        let high = |r: Result<u64, (u64, String)>| r.unwrap_err().0 == MAX_TS_NS;
        let low = |r: Result<u64, (u64, String)>| r.unwrap_err().0 == 0;
        assert!(high(pcapng_ts_ns(TsResol::Pow10(9), 0, MAX_TS_NS + 1)));
        // The offsets and resolutions that wrapped or saturated before: clamped to the
        // nearer end, never wrapped.
        let e = pcapng_ts_ns(us, i64::MAX, 0).unwrap_err();
        assert_eq!(e.0, MAX_TS_NS);
        assert!(e.1.contains("if_tsoffset 9223372036854775807"), "{}", e.1);
        assert!(low(pcapng_ts_ns(us, i64::MIN, u64::MAX)));
        assert!(low(pcapng_ts_ns(us, -1, 0)));
        assert!(high(pcapng_ts_ns(TsResol::Pow10(0), 0, u64::MAX)));
        assert!(high(pcapng_ts_ns(TsResol::Pow2(0), 0, 1 << 40)));
        assert!(high(pcapng_ts_ns(us, 0, u64::MAX)));
        // A raw time past the range brought back into it by a negative offset is fine.
        assert_eq!(
            pcapng_ts_ns(TsResol::Pow10(9), -1, MAX_TS_NS + 1_000_000_000),
            Ok(MAX_TS_NS)
        );
    }

    #[test]
    fn raw_ip_gets_an_ethernet_header() {
        let ip = [0x45u8, 0, 0, 20];
        let mut s = Vec::new();
        let f = to_ethernet(linktype::RAW, &ip, &mut s).unwrap();
        assert_eq!(&f[12..14], &[0x08, 0x00]);
        assert_eq!(&f[14..], &ip);
        let mut sll = vec![0u8; 16];
        sll[14] = 0x86;
        sll[15] = 0xdd;
        sll.extend_from_slice(&[0x60, 0, 0, 0]);
        let f = to_ethernet(linktype::LINUX_SLL, &sll, &mut s).unwrap();
        assert_eq!(&f[12..], &[0x86, 0xdd, 0x60, 0, 0, 0]);
        assert!(to_ethernet(105, &ip, &mut s).is_none());
    }

    #[test]
    fn not_a_capture_is_refused_clearly() {
        let dir = std::env::temp_dir().join(format!("weir-cap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("x.pcap");
        std::fs::write(&p, b"hello world, not a capture").unwrap();
        let e = CaptureReader::open(&p).err().unwrap().to_string();
        assert!(e.contains("not a pcap or pcapng"), "{e}");
        let e = CaptureReader::open(&dir.join("missing.pcap"))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("cannot open capture"), "{e}");
    }
}
