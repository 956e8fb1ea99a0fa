//! Who may change the code weir runs: a plugin file and its directory must be writable only by
//! their owner, and owned by root or by the user weir runs as; so must every directory above
//! it, except a sticky directory owned by root (like `/tmp`), where others may add entries but
//! not rename or remove ours. This is the rule sshd applies to `authorized_keys` and its
//! parents, and the one DESIGN.md sets for plugins. The same checks guard the ONNX Runtime
//! library and the model directory (`scoring::runtime`, `scoring::model`).
//!
//! A file is checked through an open descriptor ([`open_checked`]): its `fstat` is what is
//! judged, and the caller loads that same descriptor (`/proc/self/fd/N`), so the file checked
//! is the file loaded even if the path is swapped in between.

use super::refusal::RefusalReason;
use std::fmt;
use std::fs::{File, Metadata};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Group- or other-writable bits.
const WRITABLE_BY_OTHERS: u32 = 0o022;
const STICKY: u32 = 0o1000;

fn owner_ok(uid: u32) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    uid == 0 || uid == unsafe { libc::geteuid() }
}

/// A path that others could change, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Untrusted {
    /// "file", "directory" or "parent directory".
    pub what: &'static str,
    pub path: PathBuf,
    pub mode: u32,
    pub uid: u32,
}

impl fmt::Display for Untrusted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rule = if self.what == "parent directory" {
            "each parent must be owned by root or the user weir runs as and writable only by \
             its owner (or be sticky and owned by root, like /tmp)"
        } else {
            "it must be writable only by its owner, and owned by root or the user weir runs as"
        };
        write!(
            f,
            "{} {} is mode {:04o} owned by uid {}: {rule}",
            self.what,
            self.path.display(),
            self.mode & 0o7777,
            self.uid
        )
    }
}

/// Why a path failed the checks.
#[derive(Clone, Debug, PartialEq)]
pub enum PermError {
    Io(String),
    NotRegularFile(PathBuf),
    Untrusted(Untrusted),
}

impl fmt::Display for PermError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PermError::Io(e) => write!(f, "{e}"),
            PermError::NotRegularFile(p) => write!(f, "{} is not a regular file", p.display()),
            PermError::Untrusted(u) => u.fmt(f),
        }
    }
}

fn untrusted(what: &'static str, path: &Path, md: &Metadata) -> PermError {
    PermError::Untrusted(Untrusted {
        what,
        path: path.to_path_buf(),
        mode: md.mode(),
        uid: md.uid(),
    })
}

/// Every directory above `dir` (of its canonical path), up to `/`: owned by root or us, and
/// not writable by group/other unless sticky and owned by root.
pub fn check_parents(dir: &Path) -> Result<(), PermError> {
    let canon = dir
        .canonicalize()
        .map_err(|e| PermError::Io(format!("{}: {e}", dir.display())))?;
    for p in canon.ancestors().skip(1) {
        let md =
            std::fs::metadata(p).map_err(|e| PermError::Io(format!("{}: {e}", p.display())))?;
        let sticky_root = md.mode() & STICKY != 0 && md.uid() == 0;
        if !owner_ok(md.uid()) || (md.mode() & WRITABLE_BY_OTHERS != 0 && !sticky_root) {
            return Err(untrusted("parent directory", p, &md));
        }
    }
    Ok(())
}

/// A directory weir loads code or models from, and its parents.
pub fn check_trusted_dir(dir: &Path) -> Result<(), PermError> {
    let md =
        std::fs::metadata(dir).map_err(|e| PermError::Io(format!("{}: {e}", dir.display())))?;
    if !md.is_dir() {
        return Err(PermError::Io(format!("{}: not a directory", dir.display())));
    }
    if md.mode() & WRITABLE_BY_OTHERS != 0 || !owner_ok(md.uid()) {
        return Err(untrusted("directory", dir, &md));
    }
    check_parents(dir)
}

/// Open `path` (symlinks followed: the target is what gets mapped) and check the open file
/// by `fstat`: a regular file, owned by root or us, writable only by its owner. Load the
/// returned descriptor through [`fd_path`], not `path`.
pub fn open_checked(path: &Path) -> Result<File, PermError> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| PermError::Io(format!("{}: {e}", path.display())))?;
    let md = f
        .metadata()
        .map_err(|e| PermError::Io(format!("{}: {e}", path.display())))?;
    if !md.is_file() {
        return Err(PermError::NotRegularFile(path.to_path_buf()));
    }
    if md.mode() & WRITABLE_BY_OTHERS != 0 || !owner_ok(md.uid()) {
        return Err(untrusted("file", path, &md));
    }
    Ok(f)
}

/// The path that names an open descriptor of this process, for `dlopen`.
pub fn fd_path(f: &File) -> PathBuf {
    use std::os::fd::AsRawFd;
    PathBuf::from(format!("/proc/self/fd/{}", f.as_raw_fd()))
}

/// A file and the directories it is in, for code loaded outside the plugin gate (ONNX
/// Runtime): the file by descriptor, its directory and every parent.
pub fn open_trusted_file(path: &Path) -> Result<File, PermError> {
    let f = open_checked(path)?;
    let canon = path
        .canonicalize()
        .map_err(|e| PermError::Io(format!("{}: {e}", path.display())))?;
    if let Some(dir) = canon.parent() {
        check_trusted_dir(dir)?;
    }
    Ok(f)
}

fn refusal(e: PermError, plugin_dir: bool) -> RefusalReason {
    match e {
        PermError::Io(s) => RefusalReason::Io(s),
        PermError::NotRegularFile(_) => RefusalReason::NotRegularFile,
        PermError::Untrusted(u) if u.what == "parent directory" => RefusalReason::InsecureParent {
            dir: u.path,
            mode: u.mode,
            uid: u.uid,
        },
        PermError::Untrusted(u) if plugin_dir || u.what == "directory" => {
            RefusalReason::InsecureDirectory {
                dir: u.path,
                mode: u.mode,
                uid: u.uid,
            }
        }
        PermError::Untrusted(u) => RefusalReason::InsecureFile {
            mode: u.mode,
            uid: u.uid,
        },
    }
}

/// Check the plugin directory and every directory above it.
pub fn check_dir(dir: &Path) -> Result<(), RefusalReason> {
    check_trusted_dir(dir).map_err(|e| refusal(e, true))
}

/// Open one plugin file and check it by descriptor (see [`open_checked`]).
pub fn open_file(path: &Path) -> Result<File, RefusalReason> {
    open_checked(path).map_err(|e| refusal(e, false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn parents_are_checked_and_sticky_root_dirs_allowed() {
        let t = tempfile::tempdir().unwrap();
        let mid = t.path().join("mid");
        let leaf = mid.join("plugins");
        std::fs::create_dir_all(&leaf).unwrap();
        // /tmp (sticky, root) above: fine.
        assert_eq!(check_trusted_dir(&leaf), Ok(()));
        std::fs::set_permissions(&mid, std::fs::Permissions::from_mode(0o777)).unwrap();
        match check_trusted_dir(&leaf) {
            Err(PermError::Untrusted(u)) => {
                assert_eq!(u.what, "parent directory");
                assert_eq!(u.path, mid.canonicalize().unwrap());
            }
            other => panic!("{other:?}"),
        }
        // Sticky but owned by us (not root): still refused unless we are root.
        std::fs::set_permissions(&mid, std::fs::Permissions::from_mode(0o1777)).unwrap();
        // SAFETY: geteuid cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        assert_eq!(check_trusted_dir(&leaf).is_ok(), root);
        std::fs::set_permissions(&mid, std::fs::Permissions::from_mode(0o755)).unwrap();
        // The directory itself may not be sticky-writable.
        std::fs::set_permissions(&leaf, std::fs::Permissions::from_mode(0o1777)).unwrap();
        assert!(check_trusted_dir(&leaf).is_err());
    }

    #[test]
    fn files_are_checked_by_descriptor() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("x.so");
        std::fs::write(&p, b"x").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let f = open_checked(&p).unwrap();
        let fp = fd_path(&f);
        assert_eq!(std::fs::read(&fp).unwrap(), b"x");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o664)).unwrap();
        let e = open_checked(&p).unwrap_err().to_string();
        assert!(
            e.contains("mode 0664") && e.contains(&*p.display().to_string()),
            "{e}"
        );
        assert!(matches!(
            open_checked(t.path()),
            Err(PermError::NotRegularFile(_))
        ));
    }
}
