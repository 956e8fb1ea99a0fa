//! Reading a capture file: mapped into memory (read pages given back as it goes), or
//! streamed through a reader that hashes what it reads; the SHA-256 of the file either way.

use super::*;

/// A read-only mapping of a whole regular file. (The `memmap2` crate is not among the build's
/// dependencies; this is the part of it the reader needs.) A capture truncated by another
/// process while it is mapped ends the process with SIGBUS, as it would for any mmap reader.
pub(super) struct Mapping {
    pub(super) ptr: *mut libc::c_void,
    pub(super) len: usize,
}

// SAFETY: the mapping is read-only; moving it between threads is fine.
unsafe impl Send for Mapping {}
// SAFETY: the mapped bytes are only ever read (PROT_READ), from any thread; `release_before`
// only drops pages, which a later read faults in again from the file.
unsafe impl Sync for Mapping {}

/// A mapped capture kept mapped while any handle lives: the feeder attaches packets of it to
/// mbufs without copying them, and keeps the handles until the workers are done with them
/// ([`super::CaptureReader::lend_mapping`]).
#[derive(Clone)]
pub struct CaptureMap(pub(super) std::sync::Arc<Mapping>);

impl CaptureMap {
    /// Whether all of `s` lies in the mapping (a packet as read from the file, not a copy
    /// rewritten elsewhere, e.g. given an Ethernet header).
    #[inline]
    pub fn holds(&self, s: &[u8]) -> bool {
        let base = self.0.ptr as usize;
        let p = s.as_ptr() as usize;
        p >= base && p + s.len() <= base + self.0.len
    }
}

impl Mapping {
    pub(super) fn new(f: &File, len: u64) -> Option<Mapping> {
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
    pub(super) fn release_before(&self, upto: usize, released: &mut usize) {
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

    pub(super) fn bytes(&self) -> &[u8] {
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

/// A reader that hashes what passes through it (the buffered path's capture hash), and
/// hands out the file's first bytes once more after [`HashingReader::read_magic`] (what a
/// seek back would do, which a pipe cannot).
pub(super) struct HashingReader {
    file: File,
    hash: Option<Sha256>,
    bytes: u64,
    magic: [u8; 4],
    /// Bytes of `magic` still to hand out again (none until `read_magic`).
    replay: std::ops::Range<usize>,
}

impl HashingReader {
    pub(super) fn new(file: File, hash: bool) -> HashingReader {
        HashingReader {
            file,
            hash: hash.then(Sha256::new),
            bytes: 0,
            magic: [0; 4],
            replay: 0..0,
        }
    }

    /// Read the file's first bytes into `magic` (fewer only at the end of the file): they
    /// are read again by the next reads, hashed and counted once.
    pub(super) fn read_magic(&mut self, magic: &mut [u8; 4]) -> std::io::Result<usize> {
        let mut n = 0;
        while n < magic.len() {
            match self.read(&mut magic[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.magic = *magic;
        self.replay = 0..n;
        Ok(n)
    }
}

impl Read for HashingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if !self.replay.is_empty() {
            let n = self.replay.len().min(buf.len());
            let from = self.replay.start;
            buf[..n].copy_from_slice(&self.magic[from..from + n]);
            self.replay.start += n;
            return Ok(n);
        }
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
pub(super) const RELEASE_CHUNK: usize = 8 << 20;
pub(super) const RELEASE_ALIGN: usize = 64 << 10;

/// The mapped path hashes in pieces of this size, just ahead of the parser: the hash reads
/// the capture as a stream (throughput-bound, prefetched by the hardware), so the parser's
/// read of each record header and the workers' later reads of the frames find the bytes in
/// cache. Hashing just behind the parser left it the first touch of every record, a miss per
/// packet (4 % of a many-flow extract's samples). A quarter of a MiB stays in L2.
pub(super) const HASH_CHUNK: usize = 256 << 10;

/// Before the parser reads at `pos`: hash the next piece of the mapped bytes once fewer than
/// half a piece past `pos` are hashed (a record is at most 64 KiB and a few bytes, well
/// within it).
#[inline]
pub(super) fn hash_ahead(hash: &mut Option<Sha256>, hashed: &mut usize, bytes: &[u8], pos: usize) {
    if let Some(h) = hash {
        if *hashed < bytes.len() && pos + HASH_CHUNK / 2 > *hashed {
            let end = (*hashed + HASH_CHUNK).min(bytes.len());
            h.update(&bytes[*hashed..end]);
            *hashed = end;
        }
    }
}

/// Where no hash runs just ahead of the parser (`weir cost` hashes nothing; a head start
/// hashed the file's first bytes long before), the parser's read of each record header was
/// the first touch of its line: a miss per packet (the hardware prefetchers stop at each
/// 4 KiB page, and a record header is every ~8 lines). The lines of the next piece of this
/// size are asked for instead, as the hash's read would have brought them.
pub(super) const WARM_CHUNK: usize = 64 << 10;

/// Before the parser reads at `pos`: hash ahead of it ([`hash_ahead`]) when the hash is at
/// the front, otherwise ask for the lines of the next [`WARM_CHUNK`] once fewer than half a
/// piece past `pos` were asked for.
#[inline]
pub(super) fn read_ahead(
    hash: &mut Option<Sha256>,
    hashed: &mut usize,
    warmed: &mut usize,
    bytes: &[u8],
    pos: usize,
) {
    if hash.is_some() && *hashed < pos + HASH_CHUNK {
        return hash_ahead(hash, hashed, bytes, pos);
    }
    if *warmed < bytes.len() && pos + WARM_CHUNK / 2 > *warmed {
        let start = (*warmed).max(pos);
        let end = (start + WARM_CHUNK).min(bytes.len());
        let piece = &bytes[start..end];
        crate::prefetch::lines(piece.as_ptr(), piece.len());
        *warmed = end;
    }
}

/// The buffered path's hash: read what the parser left (trailing bytes) through the hasher.
pub(super) fn finish_stream(mut r: HashingReader) -> Option<(String, u64)> {
    r.hash.as_ref()?;
    let mut buf = [0u8; 8192];
    while matches!(r.read(&mut buf), Ok(n) if n > 0) {}
    let h = r.hash.take()?;
    Some((hex(&h.finalize()), r.bytes))
}

pub(super) fn hex(b: &[u8]) -> String {
    use std::fmt::Write;
    b.iter()
        .fold(String::with_capacity(b.len() * 2), |mut s, x| {
            let _ = write!(s, "{x:02x}");
            s
        })
}
