//! The plugin host tests' C plugin: compile `tests/plugins/test_plugin.c` with -D macros into
//! a plugin directory, and hold slabs for flows.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use weir::plugin_host::SlabLayout;

/// A fresh plugin directory (mode 0755). Never deleted: a plugin stays mapped after its file
/// is gone (RTLD_NODELETE), and glibc would hand back that old library for a new file that
/// reuses its inode, so the directories live as long as the test process.
pub fn fresh_plugin_dir() -> PathBuf {
    let d = tempfile::Builder::new()
        .prefix("weir-plugin-test-")
        .tempdir()
        .expect("temp dir")
        .keep();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

/// Compile the test plugin with `defines` (each passed as `-D<define>`) to `dir/file`, mode
/// 0755, and return its path.
pub fn build(dir: &Path, file: &str, defines: &[&str]) -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = manifest.join("tests/plugins/test_plugin.c");
    let include = manifest.join("../plugin-api/include");
    let out = dir.join(file);
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let mut cmd = Command::new(&cc);
    cmd.args(["-shared", "-fPIC", "-O1", "-std=c11", "-Wall"])
        .arg("-I")
        .arg(&include)
        .arg("-o")
        .arg(&out)
        .arg(&src);
    for d in defines {
        cmd.arg(format!("-D{d}"));
    }
    let res = cmd.output().unwrap_or_else(|e| panic!("running {cc}: {e}"));
    assert!(
        res.status.success(),
        "{cc} failed for {file} {defines:?}:\n{}",
        String::from_utf8_lossy(&res.stderr)
    );
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o755)).unwrap();
    out
}

/// A C string literal define, e.g. `name("x")` -> `NAME="x"`.
pub fn name(n: &str) -> String {
    format!("NAME=\"{n}\"")
}

/// Aligned, preallocated slabs for `n` flows, as the flow table would hold them.
pub struct Slabs {
    buf: Vec<u8>,
    stride: usize,
    base: usize,
}

impl Slabs {
    pub fn new(layout: &SlabLayout, n: usize) -> Slabs {
        let stride = layout.stride();
        let align = layout.slab_align();
        let buf = vec![0xa5u8; stride * n + align];
        let base = buf.as_ptr().align_offset(align);
        Slabs { buf, stride, base }
    }

    pub fn get(&mut self, i: usize) -> *mut u8 {
        let off = self.base + i * self.stride;
        assert!(off + self.stride <= self.buf.len());
        // SAFETY: off is inside buf (checked above).
        unsafe { self.buf.as_mut_ptr().add(off) }
    }
}
