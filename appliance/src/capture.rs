//! Reading capture files (pcap and pcapng) for `weir extract`.
//!
//! The `pcap-file` crate parses the blocks; this module adds what a flow meter needs on top:
//! exact nanosecond timestamps for pcapng (the crate reads an Enhanced Packet Block's timestamp
//! as nanoseconds whatever the interface's `if_tsresol` says; pcapng's default is microseconds,
//! RFC draft-ietf-opsawg-pcapng section 4.2), each packet's link type, and Ethernet framing for
//! captures of other link types (raw IP, Linux cooked, BSD loopback), because DPDK ports carry
//! Ethernet frames. The original wire length is kept apart from the data, so byte counts stay
//! those of the wire.

use pcap_file::pcap::{PcapParser, PcapReader};
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::pcapng::{Block, PcapNgParser, PcapNgReader};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::{Path, PathBuf};

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
    #[error("cannot open capture {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
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

#[derive(Clone, Copy)]
enum TsResol {
    Pow10(u32),
    Pow2(u32),
}

impl TsResol {
    fn from_option(v: u8) -> TsResol {
        if v & 0x80 == 0 {
            TsResol::Pow10(v as u32)
        } else {
            TsResol::Pow2((v & 0x7f) as u32)
        }
    }

    /// `raw` units in ns, exactly (no wrap: `u64 * 1e9` fits a u128); sub-ns parts truncate.
    fn to_ns(self, raw: u64) -> u128 {
        match self {
            TsResol::Pow10(p) if p <= 9 => raw as u128 * 10u128.pow(9 - p),
            TsResol::Pow10(p) => raw as u128 / 10u128.pow((p - 9).min(38)),
            TsResol::Pow2(p) => (raw as u128 * 1_000_000_000u128) >> p.min(127),
        }
    }

    fn describe(self) -> String {
        match self {
            TsResol::Pow10(p) => format!("10^-{p} s"),
            TsResol::Pow2(p) => format!("2^-{p} s"),
        }
    }
}

/// A pcapng packet's time in ns: `raw` units of the interface's `if_tsresol` plus its
/// `if_tsoffset` seconds, computed exactly; outside 0..=MAX_TS_NS, an `Err` with the time
/// clamped to the nearer end and why.
fn pcapng_ts_ns(res: TsResol, off_s: i64, raw: u64) -> Result<u64, (u64, String)> {
    // |raw ns| < 2^94 and |off_s * 1e9| < 2^93: the sum fits an i128.
    let t = res.to_ns(raw) as i128 + off_s as i128 * 1_000_000_000;
    if (0..=MAX_TS_NS as i128).contains(&t) {
        Ok(t as u64)
    } else {
        let clamped = if t < 0 { 0 } else { MAX_TS_NS };
        Err((
            clamped,
            format!(
                "timestamp {raw} x {} + if_tsoffset {off_s} s = {t} ns since 1970, outside \
                 0..={MAX_TS_NS} (1970 to 2262)",
                res.describe()
            ),
        ))
    }
}

/// Records of a classic pcap whose header says version 2.0 to 2.2.
struct SwappedPcap {
    r: BufReader<File>,
    big_endian: bool,
    linktype: u32,
    frac_ns: u64,
    data: Vec<u8>,
}

/// Largest record weir reads from such a file (libpcap's largest snapshot length).
const MAX_SWAPPED_RECORD: usize = 262_144;

impl SwappedPcap {
    /// The next record: `Ok(None)` at a clean end of file.
    fn next(&mut self) -> Result<Option<(u32, u32, u32)>, String> {
        let mut h = [0u8; 16];
        let mut got = 0;
        while got < h.len() {
            match self.r.read(&mut h[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        if got == 0 {
            return Ok(None);
        }
        if got < h.len() {
            return Err(format!(
                "the file ends inside a record header ({got} of 16 bytes)"
            ));
        }
        let f = |i: usize| {
            let b = [h[i], h[i + 1], h[i + 2], h[i + 3]];
            if self.big_endian {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            }
        };
        // Swapped: the third field is the original length, the fourth the captured one.
        let (sec, frac, orig, incl) = (f(0), f(4), f(8), f(12));
        let incl = incl as usize;
        if incl > MAX_SWAPPED_RECORD {
            return Err(format!("a record of {incl} captured bytes"));
        }
        self.data.resize(incl, 0);
        self.r
            .read_exact(&mut self.data)
            .map_err(|e| format!("the file ends inside a record ({e})"))?;
        Ok(Some((sec, frac, orig)))
    }
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
        map: Mapping,
        pos: usize,
        parser: PcapParser,
        linktype: u32,
        frac_ns: u64,
    },
    MappedPcapNg {
        map: Mapping,
        pos: usize,
        parser: PcapNgParser,
        ifaces: Vec<Iface>,
    },
}

/// A read-only mapping of a whole regular file. (The `memmap2` crate is not among the build's
/// dependencies; this is the part of it the reader needs.) A capture truncated by another
/// process while it is mapped ends the process with SIGBUS, as it would for any mmap reader.
struct Mapping {
    ptr: *mut libc::c_void,
    len: usize,
}

// SAFETY: the mapping is read-only and owned by one reader; moving it between threads is fine.
unsafe impl Send for Mapping {}

impl Mapping {
    fn new(f: &File, len: u64) -> Option<Mapping> {
        use std::os::fd::AsRawFd;
        let len = usize::try_from(len).ok().filter(|&l| l > 0)?;
        // SAFETY: a new private read-only mapping of an open descriptor; failure is checked.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                f.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return None;
        }
        // SAFETY: advice on the mapping just made; a failure only loses the read-ahead hint.
        unsafe { libc::madvise(ptr, len, libc::MADV_SEQUENTIAL) };
        Some(Mapping { ptr, len })
    }

    /// Give back the pages before `upto` once [`RELEASE_CHUNK`] more of them were read. A
    /// capture is read once, front to back: without this every page read would stay in the
    /// process's resident memory until the end of the file (the page cache still keeps them).
    fn release_before(&self, upto: usize, released: &mut usize) {
        let upto = upto & !(RELEASE_ALIGN - 1);
        if upto >= *released + RELEASE_CHUNK {
            // SAFETY: a range inside the mapping (`released < upto <= len`) whose bytes no
            // slice borrows any more (packets before the reader's position were handed out
            // and dropped); a private read-only mapping reads them again from the file if
            // touched. A failure only keeps the pages resident.
            unsafe {
                libc::madvise(
                    (self.ptr as *mut u8).add(*released) as *mut libc::c_void,
                    upto - *released,
                    libc::MADV_DONTNEED,
                )
            };
            *released = upto;
        }
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` maps `len` readable bytes for as long as `self` lives.
        unsafe { std::slice::from_raw_parts(self.ptr as *const u8, self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmapping what `new` mapped, once; no slice of it outlives `self`.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

/// A reader that hashes what passes through it (the buffered path's capture hash).
struct HashingReader {
    file: File,
    hash: Option<Sha256>,
    bytes: u64,
}

impl Read for HashingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read(buf)?;
        if let Some(h) = &mut self.hash {
            h.update(&buf[..n]);
        }
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Read pages of a mapped capture are given back this many bytes at a time, on boundaries of
/// `RELEASE_ALIGN` (a multiple of every common page size).
const RELEASE_CHUNK: usize = 8 << 20;
const RELEASE_ALIGN: usize = 64 << 10;

/// The mapped path hashes in pieces of this size, just behind the parser (while the bytes are
/// still in cache).
const HASH_CHUNK: usize = 1 << 20;

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
    /// Mapped path: bytes of the mapping given back (see [`Mapping::release_before`]).
    released: usize,
    /// Packets whose time was clamped into 1970..2262.
    clamped: u64,
}

impl CaptureReader {
    pub fn open(path: &Path) -> Result<CaptureReader, CaptureError> {
        Self::open_with(path, false)
    }

    /// Open `path` and compute its sha256 as it is read (see [`CaptureReader::finish_hash`]):
    /// the data manifest's capture hash without a second pass over the file.
    pub fn hash_as_read(path: &Path) -> Result<CaptureReader, CaptureError> {
        Self::open_with(path, true)
    }

    fn open_with(path: &Path, hash: bool) -> Result<CaptureReader, CaptureError> {
        let open_err = |source| CaptureError::Open {
            path: path.to_path_buf(),
            source,
        };
        let mut f = File::open(path).map_err(open_err)?;
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
            Mapping::new(&f, size)
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
                let mut magic = [0u8; 4];
                let n = f.read(&mut magic).map_err(open_err)?;
                if n < 4 {
                    return Err(not(format!("the file has only {n} bytes")));
                }
                // Not seekable (a pipe): the magic is read again through the reader.
                let r = match f.rewind() {
                    Ok(()) => HashingReader {
                        file: f,
                        hash: hash.then(Sha256::new),
                        bytes: 0,
                    },
                    Err(e) => return Err(open_err(e)),
                };
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
        Ok(CaptureReader {
            path: path.to_path_buf(),
            inner,
            packets: 0,
            size,
            hash: (hash && mapped).then(Sha256::new),
            hashed: 0,
            released: 0,
            clamped: 0,
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
                // Everything before the position was handed out; what the hash still needs
                // stays.
                let keep = if self.hash.is_some() {
                    self.hashed
                } else {
                    *pos
                };
                map.release_before(keep, &mut self.released);
                let bytes = map.bytes();
                if *pos >= bytes.len() {
                    return Ok(None);
                }
                let (rest, p) = parser
                    .next_raw_packet(&bytes[*pos..])
                    .map_err(|e| corrupt(*packets, e.to_string()))?;
                *pos = bytes.len() - rest.len();
                hash_upto(&mut self.hash, &mut self.hashed, bytes, *pos);
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
                let keep = if self.hash.is_some() {
                    self.hashed
                } else {
                    *pos
                };
                map.release_before(keep, &mut self.released);
                let bytes = map.bytes();
                if *pos >= bytes.len() {
                    warn_clamped(path, *clamped);
                    return Ok(None);
                }
                let (rest, block) = parser
                    .next_block(&bytes[*pos..])
                    .map_err(|e| corrupt(*packets, e.to_string()))?;
                *pos = bytes.len() - rest.len();
                hash_upto(&mut self.hash, &mut self.hashed, bytes, *pos);
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

/// Hash the mapped bytes up to `pos` once a chunk's worth is waiting.
#[inline]
fn hash_upto(hash: &mut Option<Sha256>, hashed: &mut usize, bytes: &[u8], pos: usize) {
    if let Some(h) = hash {
        if pos - *hashed >= HASH_CHUNK {
            h.update(&bytes[*hashed..pos]);
            *hashed = pos;
        }
    }
}

/// The buffered path's hash: read what the parser left (trailing bytes) through the hasher.
fn finish_stream(mut r: HashingReader) -> Option<(String, u64)> {
    r.hash.as_ref()?;
    let mut buf = [0u8; 8192];
    while matches!(r.read(&mut buf), Ok(n) if n > 0) {}
    let h = r.hash.take()?;
    Some((hex(&h.finalize()), r.bytes))
}

fn hex(b: &[u8]) -> String {
    use std::fmt::Write;
    b.iter()
        .fold(String::with_capacity(b.len() * 2), |mut s, x| {
            let _ = write!(s, "{x:02x}");
            s
        })
}

/// A packet of a pcapng block (its data borrowed from the block when it can be).
struct BlockPacket<'a> {
    data: std::borrow::Cow<'a, [u8]>,
    orig_len: u32,
    ts_ns: u64,
    linktype: u32,
}

impl BlockPacket<'_> {
    fn captured(&self) -> CapturedPacket<'_> {
        CapturedPacket {
            data: &self.data,
            orig_len: self.orig_len,
            ts_ns: self.ts_ns,
            linktype: self.linktype,
        }
    }
}

/// One pcapng block: an interface is recorded, a packet is returned.
fn on_block<'a>(
    block: Block<'a>,
    ifaces: &mut Vec<Iface>,
    packets: &mut u64,
    clamped: &mut u64,
    path: &Path,
    corrupt: &dyn Fn(u64, String) -> CaptureError,
) -> Result<Option<BlockPacket<'a>>, CaptureError> {
    match block {
        Block::SectionHeader(_) => ifaces.clear(),
        Block::InterfaceDescription(idb) => {
            let mut res = TsResol::Pow10(6);
            let mut off = 0i64;
            for o in &idb.options {
                match o {
                    InterfaceDescriptionOption::IfTsResol(v) => res = TsResol::from_option(*v),
                    // A signed 64-bit count of seconds (pcapng 4.2).
                    InterfaceDescriptionOption::IfTsOffset(s) => off = *s as i64,
                    _ => {}
                }
            }
            ifaces.push((u32::from(idb.linktype), res, off));
        }
        Block::EnhancedPacket(epb) => {
            let Some(&(lt, res, off)) = ifaces.get(epb.interface_id as usize) else {
                return Err(corrupt(
                    *packets,
                    format!("packet for undeclared interface {}", epb.interface_id),
                ));
            };
            // The crate reads the 64-bit timestamp as ns: these are raw units.
            let raw = epb.timestamp.as_nanos() as u64;
            let ts = clamp_time(path, *packets, clamped, pcapng_ts_ns(res, off, raw));
            *packets += 1;
            return Ok(Some(BlockPacket {
                data: epb.data,
                orig_len: epb.original_len,
                ts_ns: ts,
                linktype: lt,
            }));
        }
        Block::Packet(pb) => {
            let Some(&(lt, res, off)) = ifaces.get(pb.interface_id as usize) else {
                return Err(corrupt(
                    *packets,
                    format!("packet for undeclared interface {}", pb.interface_id),
                ));
            };
            let ts = clamp_time(
                path,
                *packets,
                clamped,
                pcapng_ts_ns(res, off, pb.timestamp),
            );
            *packets += 1;
            return Ok(Some(BlockPacket {
                data: pb.data,
                orig_len: pb.original_len,
                ts_ns: ts,
                linktype: lt,
            }));
        }
        Block::SimplePacket(sp) => {
            // No timestamp in a Simple Packet Block: it takes time 0, which the
            // monotonic clamp turns into "the latest time seen".
            let lt = ifaces.first().map(|i| i.0).unwrap_or(linktype::ETHERNET);
            *packets += 1;
            return Ok(Some(BlockPacket {
                data: sp.data,
                orig_len: sp.original_len,
                ts_ns: 0,
                linktype: lt,
            }));
        }
        _ => {}
    }
    Ok(None)
}

/// A classic pcap record's time in ns, read as libpcap reads it: the fields are the signed
/// 32-bit `tv_sec`/`tv_usec` of `struct pcap_sf_pkthdr`, so a corrupt fraction outside
/// 0..1e6 (seen in fuzzed captures) shifts the time as it does for every libpcap-based tool.
/// Times before 1970 are clamped to 0 (as before; NFStream's parity captures include such
/// fuzzed records). Nothing here can wrap: `|sec| < 2^31`, so `sec * 1e9 + frac < 2^63`, and
/// the latest time is 2038, well under [`MAX_TS_NS`].
fn pcap_ts_ns(sec: u32, frac: u32, frac_ns: u64) -> u64 {
    let sec = sec as i32 as i64;
    if frac_ns == 1 {
        let ns = sec * 1_000_000_000 + frac as i64;
        return ns.max(0) as u64;
    }
    let usec = frac as i32 as i64;
    // Milliseconds as C computes them (division truncating toward zero), then the
    // sub-millisecond rest, so that ts / 1e6 is exactly that millisecond.
    let ms = sec * 1000 + usec / 1000;
    let rest_us = (usec % 1000).max(0);
    (ms * 1_000_000 + rest_us * 1000).max(0) as u64
}

/// The time of packet `packets + 1` of `path`, clamped if out of range (the first logged).
fn clamp_time(path: &Path, packets: u64, clamped: &mut u64, t: Result<u64, (u64, String)>) -> u64 {
    match t {
        Ok(t) => t,
        Err((to, reason)) => {
            if *clamped == 0 {
                tracing::warn!(
                    "{}: packet {}: time out of range: {reason}; clamped to {to} ns, as is every \
                     later such packet of this file (counted at its end)",
                    path.display(),
                    packets + 1
                );
            }
            *clamped += 1;
            to
        }
    }
}

/// At the end of a pcapng file: how many of its times were clamped, if any.
fn warn_clamped(path: &Path, clamped: u64) {
    if clamped > 0 {
        tracing::warn!(
            "{}: {} packet times were out of range and clamped",
            path.display(),
            clamped
        );
    }
}

/// A classic pcap of format 2.0 to 2.2 gets its own reader (see [`Inner::PcapSwapped`]).
fn swapped_pcap(
    path: &Path,
    hdr: &pcap_file::pcap::PcapHeader,
    linktype: u32,
    frac_ns: u64,
) -> std::io::Result<Option<SwappedPcap>> {
    if !(hdr.version_major == 2 && hdr.version_minor < 3) {
        return Ok(None);
    }
    let mut f = File::open(path)?;
    f.seek(std::io::SeekFrom::Start(24))?;
    Ok(Some(SwappedPcap {
        r: BufReader::with_capacity(1 << 20, f),
        big_endian: hdr.endianness == pcap_file::Endianness::Big,
        linktype,
        frac_ns,
        data: Vec::with_capacity(65536),
    }))
}

/// Count the packets of a capture (a full read; for tests and checks).
pub fn count_packets(path: &Path) -> Result<u64, CaptureError> {
    let mut r = CaptureReader::open(path)?;
    while r.next_with(|_| ())?.is_some() {}
    Ok(r.packets())
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86DD;

/// Give a captured packet an Ethernet header, if its link type needs one.
///
/// Returns the frame to hand to the data path: `data` itself for Ethernet, else `scratch`
/// holding a synthetic 14-byte Ethernet header (zero MACs, the right EtherType) followed by the
/// network-layer bytes. `None` for link types weir does not read (counted by the caller).
pub fn to_ethernet<'a>(
    linktype: u32,
    data: &'a [u8],
    scratch: &'a mut Vec<u8>,
) -> Option<&'a [u8]> {
    use linktype::*;
    let (ethertype, l3): (u16, &[u8]) = match linktype {
        ETHERNET => return Some(data),
        RAW | RAW_OLD | RAW_OLD_BSD | IPV4 | IPV6 => {
            let v = data.first()? >> 4;
            match v {
                4 => (ETHERTYPE_IPV4, data),
                6 => (ETHERTYPE_IPV6, data),
                _ => return None,
            }
        }
        NULL | LOOP => {
            // A 4-byte address family in the capturing host's byte order (LOOP: network order).
            let fam_bytes: [u8; 4] = data.get(..4)?.try_into().ok()?;
            // NULL's family is in the capturing host's order: a small value read big-endian
            // has its two high bytes zero.
            let big_endian = linktype == LOOP || (fam_bytes[0] == 0 && fam_bytes[1] == 0);
            let fam = if big_endian {
                u32::from_be_bytes(fam_bytes)
            } else {
                u32::from_le_bytes(fam_bytes)
            };
            match fam {
                2 => (ETHERTYPE_IPV4, &data[4..]),
                10 | 24 | 28 | 30 => (ETHERTYPE_IPV6, &data[4..]),
                _ => return None,
            }
        }
        LINUX_SLL => (
            u16::from_be_bytes(data.get(14..16)?.try_into().ok()?),
            &data[16..],
        ),
        LINUX_SLL2 => (
            u16::from_be_bytes(data.get(0..2)?.try_into().ok()?),
            data.get(20..)?,
        ),
        _ => return None,
    };
    scratch.clear();
    scratch.extend_from_slice(&[0u8; 12]);
    scratch.extend_from_slice(&ethertype.to_be_bytes());
    scratch.extend_from_slice(l3);
    Some(&scratch[..])
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
