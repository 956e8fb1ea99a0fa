//! A capture's SHA-256 begun before the data path is up.
//!
//! `weir extract` spends its first ~0.2 s starting DPDK, most of it with one thread asleep
//! (the EAL calibrates the TSC for 100 ms where the CPU does not report its frequency) and the
//! other core idle; the manifest's `captures[].sha256` then costs the feeder ~0.6 ns a byte
//! (a 1 GB capture: 0.6 s of its core). A [`HashHeadStart`] hashes the first capture's leading
//! bytes on the idle core meanwhile, and the reader takes the hash over where it stopped
//! ([`super::CaptureReader::hash_as_read`]): the same SHA-256 of the same bytes, read
//! once more from the page cache, in time that was idle.
//!
//! It reads through a small buffer (not a mapping), so the bytes it hashed never count as the
//! process's resident memory, and it only ever reads regular files (a pipe's bytes would be
//! lost to the reader). A capture that is not the file the head start hashed (replaced or
//! modified in between: another inode, size or modification time) is hashed from its start.

use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Bytes hashed between two looks at the stop flag (~0.2 ms of SHA-NI): taking the hash over
/// waits at most this long.
const PIECE: usize = 256 << 10;

/// Which file a hash is of: the same inode, size and modification time.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) struct FileId {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
}

impl FileId {
    pub(super) fn of(m: &std::fs::Metadata) -> FileId {
        FileId {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        }
    }
}

/// The hash of a file's first `bytes` bytes.
pub(super) struct Partial {
    pub(super) file: FileId,
    pub(super) hash: Sha256,
    pub(super) bytes: u64,
}

/// The first capture's hash, begun on a thread of its own (see the module's doc).
pub struct HashHeadStart {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Option<Partial>>>,
}

impl HashHeadStart {
    /// Start hashing `path` on a new thread, if it is a regular file (otherwise, or if no
    /// thread can be made, the reader hashes all of it, as without a head start).
    pub fn spawn(path: &Path) -> HashHeadStart {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::fs::metadata(path)
            .ok()
            .filter(|m| m.is_file())
            .and_then(|_| {
                let (p, s) = (path.to_path_buf(), stop.clone());
                std::thread::Builder::new()
                    .name("weir-hash-in".into())
                    .spawn(move || hash_until(&p, &s))
                    .ok()
            });
        HashHeadStart {
            path: path.to_path_buf(),
            stop,
            thread,
        }
    }

    /// Whether this head start is of `path` (as named on the command line).
    pub fn is_of(&self, path: &Path) -> bool {
        self.path == path
    }

    /// Stop the thread and take what it hashed (`None` if it could not read the file).
    pub(super) fn take(mut self) -> Option<Partial> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take()?.join().ok().flatten()
    }
}

impl Drop for HashHeadStart {
    fn drop(&mut self) {
        // Not taken (the run ended before the capture was opened): stop reading it.
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Hash `path` from its start until `stop` is raised or the file ends.
fn hash_until(path: &Path, stop: &AtomicBool) -> Option<Partial> {
    let mut f = File::open(path).ok()?;
    let file = FileId::of(&f.metadata().ok()?);
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; PIECE];
    let mut bytes = 0u64;
    while !stop.load(Ordering::Relaxed) && bytes < file.len {
        // Whole pieces only, up to the size the file had when opened: a short read (the end,
        // or a file that shrank) stops here, and the reader goes on from `bytes`.
        let want = PIECE.min((file.len - bytes) as usize);
        let mut got = 0;
        while got < want {
            match f.read(&mut buf[got..want]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        hash.update(&buf[..got]);
        bytes += got as u64;
        if got < want {
            break;
        }
    }
    Some(Partial { file, hash, bytes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_head_start_is_the_hash_of_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let data: Vec<u8> = (0..3 * PIECE + 17).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&p, &data).unwrap();
        let h = HashHeadStart::spawn(&p);
        assert!(h.is_of(&p));
        // Let it finish: a stop raised now may take it mid-file, which the next test covers.
        while !h.thread.as_ref().unwrap().is_finished() {
            std::thread::yield_now();
        }
        let part = h.take().unwrap();
        assert_eq!(part.bytes, data.len() as u64);
        assert_eq!(part.hash.finalize()[..], Sha256::digest(&data)[..]);
        assert_eq!(part.file, FileId::of(&std::fs::metadata(&p).unwrap()));
    }

    #[test]
    fn a_stopped_head_start_is_the_hash_of_a_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let data: Vec<u8> = (0..64 * PIECE).map(|i| (i % 253) as u8).collect();
        std::fs::write(&p, &data).unwrap();
        let part = HashHeadStart::spawn(&p).take().unwrap();
        let n = part.bytes as usize;
        assert!(n <= data.len());
        assert_eq!(part.hash.finalize()[..], Sha256::digest(&data[..n])[..]);
    }

    /// The reader goes on from a head start's prefix to the file's SHA-256, and starts over
    /// when the prefix is of another file.
    #[test]
    fn the_reader_takes_the_hash_over_where_the_head_start_stopped() {
        let cap = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/nfstream/pcaps/tor.pcap");
        let data = std::fs::read(&cap).unwrap();
        let file = FileId::of(&std::fs::metadata(&cap).unwrap());
        let other = FileId {
            ino: file.ino ^ 1,
            ..file
        };
        let zeros = vec![0u8; PIECE];
        let cases = [
            (&data[..PIECE], file),
            (&data[..], file),
            (&data[..0], file),
            // Another file's prefix (here: bytes this file does not start with) is not used.
            (&zeros[..], other),
        ];
        for (prefix, id) in cases {
            let n = prefix.len();
            let mut hash = Sha256::new();
            hash.update(prefix);
            let bytes = n as u64;
            let part = Partial {
                file: id,
                hash,
                bytes,
            };
            let mut rd = super::super::CaptureReader::open_with(&cap, true, Some(part)).unwrap();
            while rd.next_with(|_| ()).unwrap().is_some() {}
            let (sha, len) = rd.finish_hash().unwrap();
            assert_eq!(sha, super::super::hex(&Sha256::digest(&data)), "prefix {n}");
            assert_eq!(len, data.len() as u64);
        }
    }

    #[test]
    fn no_head_start_for_what_is_not_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        assert!(HashHeadStart::spawn(dir.path()).take().is_none());
        assert!(HashHeadStart::spawn(&dir.path().join("absent"))
            .take()
            .is_none());
    }
}
