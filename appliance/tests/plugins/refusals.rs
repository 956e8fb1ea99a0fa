//! Every way the plugin host refuses a plugin, each with a purpose-built bad plugin compiled
//! from `tests/plugins/test_plugin.c`. Each refused plugin sits next to a good one, which must
//! still load (refusals never stop the others unless the bad one is required).

use crate::support::plugins::{build, fresh_plugin_dir, name};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use weir::plugin_host::{check, Error, PluginOptions, PluginRegistry, Refusal, RefusalReason};

/// Load a dir with one good plugin ("good", in `liba_good.so`, which sorts first) and one built
/// with `defines` as `libbad.so`; return the single refusal, after checking the good one loaded.
fn refuse(defines: &[&str]) -> Refusal {
    let dir = fresh_plugin_dir();
    build(&dir, "liba_good.so", &[&name("good")]);
    build(&dir, "libbad.so", defines);
    let (reg, refusals) = PluginRegistry::load(&PluginOptions::new(&dir)).expect("load");
    let names: Vec<_> = reg.plugins().iter().map(|p| p.desc.name.as_str()).collect();
    assert_eq!(names, ["good"], "refusals: {refusals:?}");
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    let r = refusals.into_iter().next().unwrap();
    assert_eq!(r.path, dir.join("libbad.so"));
    // The message names the file.
    assert!(r.to_string().contains("libbad.so"), "{r}");
    r
}

#[test]
fn no_entry_symbol() {
    let r = refuse(&["NO_ENTRY"]);
    assert_eq!(r.reason, RefusalReason::NoEntrySymbol { others: vec![] });
    assert!(r.to_string().contains("no `weir_plugin_entry_v1`"), "{r}");
}

#[test]
fn entry_of_another_abi_major_is_named() {
    let r = refuse(&["ENTRY_V2"]);
    assert_eq!(
        r.reason,
        RefusalReason::NoEntrySymbol {
            others: vec!["weir_plugin_entry_v2".into()]
        }
    );
    assert!(r.to_string().contains("weir_plugin_entry_v2"), "{r}");
}

#[test]
fn entry_returns_null() {
    assert_eq!(
        refuse(&["ENTRY_NULL"]).reason,
        RefusalReason::EntryReturnedNull
    );
}

#[test]
fn bad_magic() {
    let r = refuse(&["MAGIC=0x12345678u"]);
    assert_eq!(r.reason, RefusalReason::BadMagic(0x1234_5678));
    assert!(r.to_string().contains("0x12345678"), "{r}");
}

#[test]
fn another_major() {
    let r = refuse(&["MAJOR=2"]);
    assert_eq!(r.reason, RefusalReason::AbiMajor { plugin: 2, host: 1 });
}

#[test]
fn newer_minor() {
    let r = refuse(&["MINOR=99"]);
    assert_eq!(
        r.reason,
        RefusalReason::AbiMinorNewer {
            plugin: 99,
            host: weir_plugin_api::WEIR_ABI_MINOR
        }
    );
}

#[test]
fn interval_part_without_interval_callbacks() {
    let r = refuse(&["INTERVAL_STATE_SIZE=16"]);
    let RefusalReason::BadDescriptor(why) = &r.reason else {
        panic!("{r}")
    };
    assert!(why.contains("interval_emit is NULL"), "{r}");
    let r = refuse(&["INTERVAL_TAIL", "TAIL_NO_UPDATE"]);
    let RefusalReason::BadDescriptor(why) = &r.reason else {
        panic!("{r}")
    };
    assert!(
        why.contains("interval_state_size is 8 but update_burst_intervals is NULL"),
        "{r}"
    );
}

/// ABI 1.3: an instance may ask for less than the declared state, never for more (a 1.2 host
/// allocates only the declared size), and the limit applies to what the config asks for.
#[test]
fn flow_state_size_over_the_declared_or_the_limit() {
    let r = refuse(&["FLOW_STATE_SIZE=64"]);
    let RefusalReason::BadDescriptor(why) = &r.reason else {
        panic!("{r}")
    };
    assert!(
        why.contains("flow_state_size answered 64 bytes, more than the declared state_size of 24"),
        "{r}"
    );
    let r = refuse(&["STATE_SIZE=2097152", "FLOW_STATE_SIZE=1048576"]);
    assert_eq!(
        r.reason,
        RefusalReason::StateTooLarge {
            size: 1 << 20,
            max: weir::plugin_host::DEFAULT_MAX_STATE_BYTES
        }
    );
}

#[test]
fn struct_too_small() {
    let r = refuse(&["STRUCT_SIZE=8"]);
    assert_eq!(
        r.reason,
        RefusalReason::StructTooSmall { size: 8, need: 120 }
    );
}

#[test]
fn null_update_burst() {
    let r = refuse(&["NULL_UPDATE"]);
    assert_eq!(r.reason, RefusalReason::NullCallback("update_burst"));
    assert_eq!(r.plugin_name.as_deref(), Some("counter"));
}

#[test]
fn bad_plugin_name() {
    let r = refuse(&[&name("Bad-Name")]);
    assert!(
        matches!(&r.reason, RefusalReason::BadPluginName { name, .. } if name == "Bad-Name"),
        "{r}"
    );
}

#[test]
fn duplicate_feature_within_plugin() {
    let r = refuse(&["DUP_FEATURE"]);
    assert!(
        matches!(&r.reason, RefusalReason::DuplicateFeature { name, .. } if name == "counter_s2d_packets"),
        "{r}"
    );
}

#[test]
fn feature_named_like_a_core_column() {
    let r = refuse(&["FEATURE0=\"src_port\""]);
    assert_eq!(
        r.reason,
        RefusalReason::DuplicateFeature {
            name: "src_port".into(),
            owner: "the record's own columns".into()
        }
    );
}

#[test]
fn feature_taken_by_another_plugin() {
    // Loaded after liba_good.so (file order), it reuses good's first column name.
    let r = refuse(&[&name("other"), "FEATURE0=\"good_s2d_packets\""]);
    assert!(
        matches!(&r.reason, RefusalReason::DuplicateFeature { name, owner }
            if name == "good_s2d_packets" && owner.contains("plugin good")),
        "{r}"
    );
}

#[test]
fn duplicate_plugin_name() {
    // Same name "good" as liba_good.so, which sorts first and wins.
    let r = refuse(&[&name("good")]);
    assert!(
        matches!(&r.reason, RefusalReason::DuplicatePlugin { name, other }
            if name == "good" && other.ends_with("liba_good.so")),
        "{r}"
    );
}

#[test]
fn bad_feature_kind() {
    let r = refuse(&["BAD_KIND"]);
    assert!(
        matches!(r.reason, RefusalReason::BadFeatureKind { kind: 7, .. }),
        "{r}"
    );
}

#[test]
fn state_over_the_limit() {
    let r = refuse(&["STATE_SIZE=1048576"]);
    assert_eq!(
        r.reason,
        RefusalReason::StateTooLarge {
            size: 1 << 20,
            max: weir::plugin_host::DEFAULT_MAX_STATE_BYTES
        }
    );
}

#[test]
fn bad_state_alignment() {
    assert_eq!(
        refuse(&["STATE_ALIGN=3"]).reason,
        RefusalReason::BadStateAlign(3)
    );
    assert_eq!(
        refuse(&["STATE_ALIGN=128"]).reason,
        RefusalReason::BadStateAlign(128)
    );
}

#[test]
fn self_test_update_error_carries_last_error() {
    let r = refuse(&["FAIL_AT=1"]);
    match &r.reason {
        RefusalReason::SelfTest { stage, message } => {
            assert_eq!(*stage, "update_burst");
            assert_eq!(message, "failing on purpose at packet counter");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn self_test_unwritten_feature() {
    let r = refuse(&["SKIP_LAST"]);
    match &r.reason {
        RefusalReason::SelfTest { stage, message } => {
            assert_eq!(*stage, "flow_emit");
            assert!(
                message.contains("counter_bytes") && message.contains("not written"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn self_test_value_that_does_not_fit_its_kind() {
    // Declared bool, but the plugin writes a packet count (5 for the synthetic TCP flow).
    let r = refuse(&["KIND0=WEIR_FEATURE_BOOL"]);
    match &r.reason {
        RefusalReason::SelfTest { stage, message } => {
            assert_eq!(*stage, "flow_emit");
            assert!(message.contains("kind bool got the value 5"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn self_test_create_failure() {
    let r = refuse(&["CREATE_FAIL"]);
    assert_eq!(
        r.reason,
        RefusalReason::SelfTest {
            stage: "create",
            message: "create refused as built (CREATE_FAIL)".into()
        }
    );
}

#[test]
fn self_test_emit_failure() {
    let r = refuse(&["EMIT_FAIL"]);
    assert!(
        matches!(
            r.reason,
            RefusalReason::SelfTest {
                stage: "flow_emit",
                ..
            }
        ),
        "{r}"
    );
}

#[test]
fn dlopen_failure_reports_dlerror() {
    let dir = fresh_plugin_dir();
    build(&dir, "libgood.so", &[&name("good")]);
    let junk = dir.join("libjunk.so");
    std::fs::write(
        &junk,
        b"this is not an ELF file, just text long enough to be read",
    )
    .unwrap();
    std::fs::set_permissions(&junk, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (reg, refusals) = PluginRegistry::load(&PluginOptions::new(&dir)).unwrap();
    assert_eq!(reg.plugins().len(), 1);
    match &refusals[0].reason {
        // glibc's dlerror names the file and the problem.
        RefusalReason::Dlopen(msg) => assert!(msg.contains("libjunk.so"), "{msg}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn world_writable_file() {
    let dir = fresh_plugin_dir();
    build(&dir, "libgood.so", &[&name("good")]);
    let bad = build(&dir, "libbad.so", &[]);
    std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o757)).unwrap();
    let (reg, refusals) = PluginRegistry::load(&PluginOptions::new(&dir)).unwrap();
    assert_eq!(reg.plugins().len(), 1);
    assert!(
        matches!(refusals[0].reason, RefusalReason::InsecureFile { mode, .. } if mode & 0o777 == 0o757),
        "{:?}",
        refusals
    );
    assert!(refusals[0].to_string().contains("0757"), "{}", refusals[0]);
    // Group-writable is refused as well.
    std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o775)).unwrap();
    let (_, refusals) = PluginRegistry::load(&PluginOptions::new(&dir)).unwrap();
    assert!(matches!(
        refusals[0].reason,
        RefusalReason::InsecureFile { .. }
    ));
}

#[test]
fn file_or_directory_owned_by_another_user() {
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if me != 0 {
        eprintln!("skipped: changing a file's owner needs root");
        return;
    }
    let stranger = 54321;
    let dir = fresh_plugin_dir();
    build(&dir, "liba_good.so", &[&name("good")]);
    let bad = build(&dir, "libbad.so", &[]);
    std::os::unix::fs::chown(&bad, Some(stranger), None).unwrap();
    let (reg, refusals) = PluginRegistry::load(&PluginOptions::new(&dir)).unwrap();
    assert_eq!(reg.plugins().len(), 1);
    assert_eq!(
        refusals[0].reason,
        RefusalReason::InsecureFile {
            mode: 0o100755,
            uid: stranger
        }
    );
    std::os::unix::fs::chown(&dir, Some(stranger), None).unwrap();
    let (reg, refusals) = PluginRegistry::load(&PluginOptions::new(&dir)).unwrap();
    assert!(reg.plugins().is_empty());
    assert!(refusals.iter().all(
        |r| matches!(r.reason, RefusalReason::InsecureDirectory { uid, .. } if uid == stranger)
    ));
}

#[test]
fn world_writable_directory_refuses_every_file() {
    let dir = fresh_plugin_dir();
    build(&dir, "liba.so", &[&name("a")]);
    build(&dir, "libb.so", &[&name("b")]);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (reg, refusals) = PluginRegistry::load(&PluginOptions::new(&dir)).unwrap();
    assert!(reg.plugins().is_empty());
    assert_eq!(refusals.len(), 2);
    for r in &refusals {
        assert!(
            matches!(&r.reason, RefusalReason::InsecureDirectory { dir: d, .. } if *d == dir),
            "{r}"
        );
    }
    // Required: the whole load fails.
    let mut opts = PluginOptions::new(&dir);
    opts.required = vec!["a".into()];
    assert!(matches!(
        PluginRegistry::load(&opts),
        Err(Error::RequiredRefused(_))
    ));
}

#[test]
fn required_plugin_refused_fails_the_load() {
    let dir = fresh_plugin_dir();
    build(&dir, "libgood.so", &[&name("good")]);
    build(&dir, "libbad.so", &["MAJOR=2"]);
    let mut opts = PluginOptions::new(&dir);
    opts.required = vec!["libbad.so".into()];
    match PluginRegistry::load(&opts) {
        Err(Error::RequiredRefused(r)) => {
            assert_eq!(r.reason, RefusalReason::AbiMajor { plugin: 2, host: 1 });
            let msg = Error::RequiredRefused(r).to_string();
            assert!(
                msg.contains("libbad.so") && msg.contains("major 2"),
                "{msg}"
            );
        }
        other => panic!("{:?}", other.map(|(_, r)| r)),
    }
    // By plugin name (the descriptor was readable enough to be refused by name): NULL
    // update_burst is refused after the name is known.
    let dir2 = fresh_plugin_dir();
    build(&dir2, "libnull.so", &[&name("nullcb"), "NULL_UPDATE"]);
    let mut opts = PluginOptions::new(&dir2);
    opts.required = vec!["nullcb".into()];
    assert!(matches!(
        PluginRegistry::load(&opts),
        Err(Error::RequiredRefused(_))
    ));
    // A required plugin that is not there at all.
    let mut opts = PluginOptions::new(&dir);
    opts.required = vec!["flowstats".into()];
    assert!(matches!(
        PluginRegistry::load(&opts),
        Err(Error::RequiredMissing { .. })
    ));
    // Required and good: loads.
    let mut opts = PluginOptions::new(&dir);
    opts.required = vec!["good".into()];
    let (reg, refusals) = PluginRegistry::load(&opts).unwrap();
    assert_eq!(reg.plugins().len(), 1);
    assert!(reg.plugins()[0].required);
    assert_eq!(refusals.len(), 1);
}

#[test]
fn max_state_bytes_is_configurable() {
    let dir = fresh_plugin_dir();
    build(&dir, "libgood.so", &[&name("good")]);
    let mut opts = PluginOptions::new(&dir);
    opts.max_state_bytes = 16; // the test plugin's state is 24 bytes
    let (reg, refusals) = PluginRegistry::load(&opts).unwrap();
    assert!(reg.plugins().is_empty());
    assert_eq!(
        refusals[0].reason,
        RefusalReason::StateTooLarge { size: 24, max: 16 }
    );
}

#[test]
fn enabled_and_disabled_lists() {
    let dir = fresh_plugin_dir();
    build(&dir, "liba.so", &[&name("a")]);
    build(&dir, "libb.so", &[&name("b")]);
    build(&dir, "libc_plugin.so", &[&name("c")]);
    let mut opts = PluginOptions::new(&dir);
    opts.disabled = vec!["libb.so".into(), "c".into()];
    let (reg, refusals) = PluginRegistry::load(&opts).unwrap();
    assert!(refusals.is_empty());
    let names: Vec<_> = reg.plugins().iter().map(|p| p.desc.name.clone()).collect();
    assert_eq!(names, ["a"]);
    assert_eq!(reg.skipped().len(), 2);
    let mut opts = PluginOptions::new(&dir);
    opts.enabled = Some(vec!["b".into(), "libc_plugin".into()]);
    let (reg, _) = PluginRegistry::load(&opts).unwrap();
    let names: Vec<_> = reg.plugins().iter().map(|p| p.desc.name.clone()).collect();
    assert_eq!(names, ["b", "c"]);
}

#[test]
fn check_reports_each_file_in_order() {
    let dir = fresh_plugin_dir();
    let good = build(&dir, "libgood.so", &[&name("good")]);
    let v2 = build(&dir, "libv2.so", &["ENTRY_V2"]);
    let dup = build(&dir, "libdup.so", &[&name("good")]);
    let missing = dir.join("libmissing.so");
    let files: Vec<PathBuf> = vec![good.clone(), v2, dup, missing];
    let res = check(&files, &PluginOptions::new(&dir));
    assert_eq!(res.len(), 4);
    let info = res[0].as_ref().expect("good plugin passes");
    assert_eq!(info.name, "good");
    assert_eq!(info.path, good);
    assert_eq!(info.state_size, 24);
    assert_eq!(info.features.len(), 3);
    assert!(matches!(
        res[1].as_ref().unwrap_err().reason,
        RefusalReason::NoEntrySymbol { .. }
    ));
    assert!(matches!(
        res[2].as_ref().unwrap_err().reason,
        RefusalReason::DuplicatePlugin { .. }
    ));
    assert!(matches!(
        res[3].as_ref().unwrap_err().reason,
        RefusalReason::Io(_)
    ));
}

#[test]
fn unreadable_directory_is_an_error() {
    let missing = fresh_plugin_dir().join("nope");
    match PluginRegistry::load(&PluginOptions::new(&missing)) {
        Err(e @ Error::Dir { .. }) => assert!(e.to_string().contains("nope"), "{e}"),
        other => panic!("{:?}", other.map(|(_, r)| r)),
    }
}

/// A plugin that writes one word past its flow state is refused at load (the guard bytes
/// around each self-test state), naming the file, the stage and the overrun.
#[test]
fn self_test_state_overrun() {
    let r = refuse(&["OVERRUN_STATE"]);
    match &r.reason {
        RefusalReason::SelfTest { stage, message } => {
            assert_eq!(*stage, "update_burst");
            assert!(
                message.contains("past the end of its 24-byte flow state")
                    && message.contains("byte 8 after it"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(r.to_string().contains("libbad.so"), "{r}");
}

/// A plugin that writes past the output array of `flow_emit` is refused at load.
#[test]
fn self_test_output_overrun() {
    let r = refuse(&["OVERRUN_OUT"]);
    match &r.reason {
        RefusalReason::SelfTest { stage, message } => {
            assert_eq!(*stage, "flow_emit");
            assert!(
                message.contains("past the end of its 3-value output array"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
}

/// The self-test hands plugins malformed packets too (here ICMP, which the well-formed round
/// has none of): a plugin that fails on them is refused at load, not in production.
#[test]
fn self_test_includes_malformed_packets() {
    let r = refuse(&["REJECT_ICMP"]);
    match &r.reason {
        RefusalReason::SelfTest { stage, message } => {
            assert_eq!(*stage, "update_burst");
            assert_eq!(message, "cannot handle ICMP (REJECT_ICMP)");
        }
        other => panic!("{other:?}"),
    }
}

/// A parent of the plugin directory that others can write refuses every plugin in it (they
/// could rename the plugin directory and put another in its place); a sticky root-owned
/// parent (like /tmp) does not.
#[test]
fn writable_parent_directory_refuses_every_file() {
    let top = fresh_plugin_dir();
    let dir = top.join("plugins");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    build(&dir, "liba.so", &[&name("a")]);
    let (reg, refusals) = PluginRegistry::load(&PluginOptions::new(&dir)).unwrap();
    assert_eq!(reg.plugins().len(), 1, "{refusals:?}");
    std::fs::set_permissions(&top, std::fs::Permissions::from_mode(0o775)).unwrap();
    let (reg, refusals) = PluginRegistry::load(&PluginOptions::new(&dir)).unwrap();
    assert!(reg.plugins().is_empty());
    assert_eq!(refusals.len(), 1);
    match &refusals[0].reason {
        RefusalReason::InsecureParent { dir: d, mode, .. } => {
            assert_eq!(*d, top.canonicalize().unwrap());
            assert_eq!(mode & 0o7777, 0o775);
        }
        other => panic!("{other:?}"),
    }
    let msg = refusals[0].to_string();
    assert!(
        msg.contains("liba.so") && msg.contains("parent directory"),
        "{msg}"
    );
    // `weir plugins check FILE` applies the same gate to the file's directory.
    let checked = check(&[dir.join("liba.so")], &PluginOptions::new(&dir));
    assert!(
        matches!(&checked[0], Err(r) if matches!(r.reason, RefusalReason::InsecureParent { .. })),
        "{checked:?}"
    );
    // Sticky (and owned by root, when we are root): allowed again, like /tmp.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        std::fs::set_permissions(&top, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let (reg, refusals) = PluginRegistry::load(&PluginOptions::new(&dir)).unwrap();
        assert_eq!(reg.plugins().len(), 1, "{refusals:?}");
    }
}

/// `weir plugins check` and the loader open each file once, judge its descriptor and load that
/// descriptor (`/proc/self/fd/N`). Distinct plugins loaded one after the other get their own
/// library even where descriptor numbers repeat, and a symlink is judged by its target.
#[test]
fn plugins_are_loaded_by_descriptor() {
    let dir = fresh_plugin_dir();
    let good = build(&dir, "libgood.so", &[&name("good")]);
    let checked = check(std::slice::from_ref(&good), &PluginOptions::new(&dir));
    assert!(checked[0].is_ok(), "{checked:?}");
    // Distinct plugins loaded one after the other through /proc/self/fd/N: each gets its own
    // library even when the descriptor numbers repeat.
    let other = fresh_plugin_dir();
    build(&other, "liba.so", &[&name("one")]);
    build(&other, "libb.so", &[&name("two")]);
    let (reg, refusals) = PluginRegistry::load(&PluginOptions::new(&other)).unwrap();
    let names: Vec<_> = reg.plugins().iter().map(|p| p.desc.name.as_str()).collect();
    assert_eq!(names, ["one", "two"], "{refusals:?}");
    let third = fresh_plugin_dir();
    let bad = build(&third, "libthree.so", &[&name("three")]);
    std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o777)).unwrap();
    let swapped = dir.join("libswap.so");
    std::os::unix::fs::symlink(&bad, &swapped).unwrap();
    let checked = check(&[swapped], &PluginOptions::new(&dir));
    assert!(
        matches!(&checked[0], Err(r) if matches!(r.reason, RefusalReason::InsecureFile { .. })),
        "{checked:?}"
    );
}
