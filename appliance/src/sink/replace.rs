//! Overwriting a large records file without waiting for the old one to be freed.
//!
//! `File::create` on an existing file truncates it inside the `open` call, and the kernel
//! frees the old file's page-cache pages right there: about 50 ms for a 296 MB CSV on the
//! bench machine (`strace -tt -e trace=openat target/release/weir extract perf/out/many.pcap
//! --out /tmp/y.csv ...` a second time: the `openat` with `O_TRUNC`). `weir extract` opens its
//! records file before DPDK starts, so every re-run onto the same `--out` waited that long
//! with a core idle. [`create_replacing`] instead makes the new file beside the old one, with
//! the old one's permissions and owner, renames it over the old one (one atomic step: the path
//! always names a whole file), and closes the old file on a thread of its own, which is where
//! the kernel then frees its pages, while the caller goes on.
//!
//! Only where nothing else could tell the difference: a regular file (not a symlink, which
//! `O_TRUNC` writes through), with no other hard link (which `O_TRUNC` would empty too), whose
//! owner this process can give the new file. Anything else, and small files, are truncated as
//! before. What a reader that has the old file open sees differs: the old bytes, where a
//! truncation would show it an empty file.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Files smaller than this are truncated in place: freeing them costs less than a thread.
const REPLACE_MIN_BYTES: u64 = 8 << 20;

/// Create `path` for writing, empty, as `File::create` does; an existing large file is
/// replaced rather than truncated (see the module's doc).
pub fn create_replacing(path: &Path) -> io::Result<File> {
    create_replacing_from(path, REPLACE_MIN_BYTES)
}

/// [`create_replacing`] with the size from which files are replaced (the tests' small files).
pub(crate) fn create_replacing_from(path: &Path, min_bytes: u64) -> io::Result<File> {
    match replace(path, min_bytes) {
        Some(f) => Ok(f),
        None => File::create(path),
    }
}

/// The new file renamed over `path`, or `None` (nothing changed) where it should be truncated.
fn replace(path: &Path, min_bytes: u64) -> Option<File> {
    let m = std::fs::symlink_metadata(path).ok()?;
    if !m.file_type().is_file() || m.nlink() != 1 || m.len() < min_bytes {
        return None;
    }
    // SAFETY: geteuid and getegid only read the calling process's credentials.
    let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let root = euid == 0;
    if !root && (m.uid() != euid || m.gid() != egid) {
        return None; // the new file could not be given the old one's owner
    }
    // Held open across the rename: the old file's last reference is then this handle, and
    // whoever drops it frees the pages.
    let old = File::open(path).ok()?;
    let held = old.metadata().ok()?;
    if (held.dev(), held.ino()) != (m.dev(), m.ino()) {
        return None; // replaced under us: leave it to File::create
    }
    // The sinks' hidden temporary name (as Parquet's), made only if no such file is there.
    let tmp = super::parquet::temp_path(path);
    let new = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .ok()?;
    // The owner first: a change of owner clears set-user-ID and set-group-ID bits.
    let owned = if root {
        std::os::unix::fs::fchown(&new, Some(m.uid()), Some(m.gid()))
    } else {
        Ok(())
    };
    let settled = owned
        .and_then(|()| new.set_permissions(std::fs::Permissions::from_mode(m.mode() & 0o7777)))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = settled {
        tracing::debug!(file = %path.display(), error = %e, "file truncated in place");
        let _ = std::fs::remove_file(&tmp);
        return None;
    }
    let dropped = std::thread::Builder::new()
        .name("weir-discard".into())
        .spawn(move || drop(old));
    if let Err(e) = dropped {
        // No thread: the old file was freed here, with the closure that held it.
        tracing::debug!(error = %e, "cannot start a thread to free the replaced file");
    }
    Some(new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn write(path: &Path, bytes: &[u8]) {
        std::fs::write(path, bytes).unwrap();
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// A large file is replaced: the path holds only the new bytes, with the old mode, and
    /// a reader holding the old file still reads the old bytes (it was not truncated); no
    /// temporary file is left.
    #[test]
    fn a_large_file_is_replaced_with_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.csv");
        write(&p, b"old old old\n");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        let mut reader = File::open(&p).unwrap();
        let ino = std::fs::metadata(&p).unwrap().ino();
        let mut f = create_replacing_from(&p, 1).unwrap();
        f.write_all(b"new\n").unwrap();
        drop(f);
        assert_eq!(std::fs::read(&p).unwrap(), b"new\n");
        let m = std::fs::metadata(&p).unwrap();
        assert_ne!(m.ino(), ino, "a new file");
        assert_eq!(m.mode() & 0o7777, 0o640);
        let mut old = String::new();
        reader.read_to_string(&mut old).unwrap();
        assert_eq!(old, "old old old\n");
        assert_eq!(names(dir.path()), ["r.csv"]);
    }

    /// Where replacing would change what the user sees, the file is truncated in place: a
    /// symlink keeps pointing at its (emptied) target, a hard-linked file is emptied under
    /// both names, and a small one stays the same file.
    #[test]
    fn symlinks_hard_links_and_small_files_are_truncated_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target.csv");
        let link = dir.path().join("link.csv");
        write(&target, b"old old old\n");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let mut f = create_replacing_from(&link, 1).unwrap();
        f.write_all(b"new\n").unwrap();
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read(&target).unwrap(), b"new\n");

        let a = dir.path().join("a.csv");
        let b = dir.path().join("b.csv");
        write(&a, b"old old old\n");
        std::fs::hard_link(&a, &b).unwrap();
        let mut f = create_replacing_from(&a, 1).unwrap();
        f.write_all(b"new\n").unwrap();
        assert_eq!(std::fs::read(&b).unwrap(), b"new\n");

        let small = dir.path().join("small.csv");
        write(&small, b"old old old\n");
        let ino = std::fs::metadata(&small).unwrap().ino();
        let f = create_replacing_from(&small, 1 << 20).unwrap();
        drop(f);
        let m = std::fs::metadata(&small).unwrap();
        assert_eq!((m.ino(), m.len()), (ino, 0));
        assert_eq!(
            names(dir.path()),
            ["a.csv", "b.csv", "link.csv", "small.csv", "target.csv"]
        );
    }

    /// As root, the new file gets the old one's owner and group, and its mode whole (set
    /// after the owner: a change of owner clears the set-user-ID bit).
    #[test]
    fn as_root_the_owner_and_the_whole_mode_are_kept() {
        // SAFETY: geteuid only reads the process's credentials.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: not root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.csv");
        write(&p, b"old old old\n");
        std::os::unix::fs::chown(&p, Some(12345), Some(23456)).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o4640)).unwrap();
        let ino = std::fs::metadata(&p).unwrap().ino();
        drop(create_replacing_from(&p, 1).unwrap());
        let m = std::fs::metadata(&p).unwrap();
        assert_ne!(m.ino(), ino, "a new file");
        assert_eq!(
            (m.uid(), m.gid(), m.mode() & 0o7777),
            (12345, 23456, 0o4640)
        );
    }

    /// A path that does not exist yet is created, as `File::create` does.
    #[test]
    fn a_new_path_is_created() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("new.csv");
        create_replacing_from(&p, 1)
            .unwrap()
            .write_all(b"x\n")
            .unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"x\n");
    }
}
