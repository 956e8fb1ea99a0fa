//! `make install` and `make deb`: the files they put in place, exactly; the installed `weir`
//! finds its plugins with no flags; the systemd unit's `Documentation=` points at installed
//! files and its ordering names no unit that is not shipped; the package holds the same
//! files as `make install PREFIX=/usr` (listed by `dpkg-deb -c`, the package tool itself).
//!
//! Runs make with `SKIP_BUILD=1` and `WEIR_BIN` = the binary cargo built for this test (cargo
//! holds the build directory while tests run).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

fn make(args: &[String]) {
    let o = Command::new("make")
        .arg("-C")
        .arg(workspace())
        .arg("--no-print-directory")
        .args(args)
        .arg("SKIP_BUILD=1")
        .arg(format!("WEIR_BIN={}", env!("CARGO_BIN_EXE_weir")))
        .output()
        .expect("run make");
    assert!(
        o.status.success(),
        "make {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Every file under `root`, as paths relative to it.
fn tree(root: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.insert(p.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(root, root, &mut out);
    out
}

/// The plugins `make install` ships: the four always built, and ndpi when the build found
/// libndpi (it is installed only then).
fn shipped_plugins() -> Vec<&'static str> {
    let mut v = vec!["flowstats", "splt", "tcp", "entropy"];
    if weir_ndpi_build::LIBRARY_PATH.is_some() {
        v.push("ndpi");
    }
    v
}

/// What `make install PREFIX=prefix` must install (relative to the root), derived from the
/// sources: the CLI's visible subcommands give the man pages, `deploy/examples` the examples.
fn expected(prefix: &str) -> BTreeSet<String> {
    let p = prefix.trim_start_matches('/');
    let mut v: Vec<String> = vec![
        "bin/weir".into(),
        "include/weir/weir_plugin.h".into(),
        "lib/systemd/system/weir.service".into(),
        "share/doc/weir/README.md".into(),
        "share/doc/weir/config.md".into(),
        "share/doc/weir/deploy.md".into(),
        "share/weir/setup-host.sh".into(),
        "share/bash-completion/completions/weir".into(),
        "share/zsh/vendor-completions/_weir".into(),
        "share/fish/vendor_completions.d/weir.fish".into(),
    ];
    for plugin in shipped_plugins() {
        v.push(format!("lib/weir/plugins/libweir_{plugin}.so"));
    }
    for e in std::fs::read_dir(workspace().join("deploy/examples")).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".toml") {
            v.push(format!("share/doc/weir/examples/{name}"));
        }
    }
    for page in [
        "weir",
        "weir-run",
        "weir-extract",
        "weir-cost",
        "weir-plugins",
        "weir-plugins-list",
        "weir-plugins-check",
        "weir-models",
        "weir-models-inspect",
        "weir-check-config",
    ] {
        v.push(format!("share/man/man1/{page}.1.gz"));
    }
    v.into_iter().map(|f| format!("{p}/{f}")).collect()
}

fn check_installed(root: &Path, prefix: &str) {
    let got = tree(root);
    let want = expected(prefix);
    assert_eq!(
        got,
        want,
        "installed files differ: extra {:?}, missing {:?}",
        got.difference(&want).collect::<Vec<_>>(),
        want.difference(&got).collect::<Vec<_>>()
    );
    let base = root.join(prefix.trim_start_matches('/'));
    // The installed weir finds the installed plugins with no flags.
    let o = Command::new(base.join("bin/weir"))
        .args(["plugins", "list"])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for plugin in shipped_plugins() {
        assert!(
            out.contains(plugin),
            "plugin {plugin} not found by the installed weir:\n{out}"
        );
    }
    assert!(
        out.contains(&base.join("lib/weir/plugins").display().to_string()),
        "not the installed plugin directory:\n{out}"
    );
    // Completions are scripts for their shells, the man page is roff naming the commands.
    let bash =
        std::fs::read_to_string(base.join("share/bash-completion/completions/weir")).unwrap();
    assert!(
        bash.contains("complete -F") && bash.contains("check-config"),
        "{bash}"
    );
    let zcat = Command::new("zcat")
        .arg(base.join("share/man/man1/weir.1.gz"))
        .output()
        .unwrap();
    let man = String::from_utf8_lossy(&zcat.stdout);
    assert!(
        man.contains(".TH weir 1") && man.contains("check\\-config"),
        "{man}"
    );
    assert!(
        !man.contains("completions"),
        "hidden commands in the man page:\n{man}"
    );
    // The unit runs the installed binary and documents itself with installed files.
    let unit = std::fs::read_to_string(base.join("lib/systemd/system/weir.service")).unwrap();
    assert!(
        unit.contains(&format!("ExecStart={prefix}/bin/weir run")),
        "{unit}"
    );
    assert!(unit.contains("Type=notify"), "{unit}");
    for line in unit.lines().filter(|l| l.starts_with("Documentation=")) {
        for uri in line["Documentation=".len()..].split_whitespace() {
            let path = if let Some(f) = uri.strip_prefix("file://") {
                root.join(f.trim_start_matches('/'))
            } else if let Some(m) = uri.strip_prefix("man:") {
                let (name, section) = m.trim_end_matches(')').split_once('(').unwrap();
                base.join(format!("share/man/man{section}/{name}.{section}.gz"))
            } else {
                panic!("Documentation= {uri}: neither file:// nor man:");
            };
            assert!(
                path.is_file(),
                "Documentation= {uri} is not installed ({})",
                path.display()
            );
        }
    }
    for line in unit.lines().filter(|l| {
        l.starts_with("After=") || l.starts_with("Requires=") || l.starts_with("Wants=")
    }) {
        for u in line.split_once('=').unwrap().1.split_whitespace() {
            assert!(
                u.ends_with(".target") || base.join("lib/systemd/system").join(u).is_file(),
                "the unit orders after {u}, which is not shipped"
            );
        }
    }
}

#[test]
fn make_install_puts_every_file_in_place() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    make(&[
        "install".into(),
        format!("DESTDIR={}", root.display()),
        "PREFIX=/usr/local".into(),
    ]);
    check_installed(&root, "/usr/local");
}

#[test]
fn make_deb_holds_what_make_install_prefix_usr_installs() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    make(&["deb".into(), format!("DEB_OUT={}", out.display())]);
    let deb = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .expect("no .deb written");
    // dpkg-deb's own listing: regular files (not directories), without the leading "./".
    let o = Command::new("dpkg-deb")
        .arg("-c")
        .arg(&deb)
        .output()
        .unwrap();
    assert!(o.status.success());
    let listing = String::from_utf8_lossy(&o.stdout);
    let files: BTreeSet<String> = listing
        .lines()
        .filter(|l| l.starts_with('-'))
        .map(|l| {
            let path = l.split_whitespace().nth(5).unwrap();
            path.trim_start_matches("./").to_string()
        })
        .collect();
    assert_eq!(
        files,
        expected("/usr"),
        "package files differ from make install PREFIX=/usr:\n{listing}"
    );
    assert!(
        listing.lines().all(|l| l.contains(" root/root ")),
        "files not owned by root:\n{listing}"
    );
    let o = Command::new("dpkg-deb")
        .args(["-f"])
        .arg(&deb)
        .args(["Package", "Version", "Depends"])
        .output()
        .unwrap();
    let fields = String::from_utf8_lossy(&o.stdout);
    assert!(
        fields.contains("Package: weir")
            && fields.contains(&format!("Version: {}", env!("CARGO_PKG_VERSION")))
            && fields.contains("Depends: dpdk"),
        "{fields}"
    );
    // Unpacked as dpkg would, the package's weir finds its plugins with no flags.
    let root = tmp.path().join("unpacked");
    let o = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&root)
        .output()
        .unwrap();
    assert!(o.status.success());
    check_installed(&root, "/usr");
}
