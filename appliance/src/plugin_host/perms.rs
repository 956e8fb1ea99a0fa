//! Who may change the code weir runs: a plugin file and its directory must be writable only by
//! their owner, and owned by root or by the user weir runs as (the rule sshd applies to
//! `authorized_keys` and its parents, and the one DESIGN.md sets for plugins).

use super::refusal::RefusalReason;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Group- or other-writable bits.
const WRITABLE_BY_OTHERS: u32 = 0o022;

fn owner_ok(uid: u32) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    uid == 0 || uid == unsafe { libc::geteuid() }
}

/// Check the plugin directory.
pub fn check_dir(dir: &Path) -> Result<(), RefusalReason> {
    let md =
        std::fs::metadata(dir).map_err(|e| RefusalReason::Io(format!("{}: {e}", dir.display())))?;
    if md.mode() & WRITABLE_BY_OTHERS != 0 || !owner_ok(md.uid()) {
        return Err(RefusalReason::InsecureDirectory {
            dir: dir.to_path_buf(),
            mode: md.mode(),
            uid: md.uid(),
        });
    }
    Ok(())
}

/// Check one plugin file (symlinks are followed: the target is what gets mapped).
pub fn check_file(path: &Path) -> Result<(), RefusalReason> {
    let md = std::fs::metadata(path).map_err(|e| RefusalReason::Io(e.to_string()))?;
    if !md.is_file() {
        return Err(RefusalReason::NotRegularFile);
    }
    if md.mode() & WRITABLE_BY_OTHERS != 0 || !owner_ok(md.uid()) {
        return Err(RefusalReason::InsecureFile {
            mode: md.mode(),
            uid: md.uid(),
        });
    }
    Ok(())
}
