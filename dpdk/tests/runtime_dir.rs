//! A private EAL (its own `--file-prefix`, `--no-shconf`) leaves no runtime directory behind:
//! `rte_eal_cleanup` does not remove it, `Eal::cleanup` does. One process, one EAL.

use weir_dpdk::Eal;

#[test]
fn private_runtime_dir_is_removed_at_cleanup() {
    let prefix = format!("weirtest{}", std::process::id());
    let args: Vec<String> = [
        "--no-huge",
        "-m",
        "64",
        "--no-pci",
        "--no-shconf",
        "--no-telemetry",
        &format!("--file-prefix={prefix}"),
        "-l",
        "0",
        "--log-level=*:error",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let eal = Eal::init(&args).expect("EAL init");
    let dir = eal.runtime_dir();
    assert!(dir.ends_with(&prefix), "{}", dir.display());
    assert!(dir.is_dir(), "the EAL made {}", dir.display());
    eal.cleanup().expect("cleanup");
    assert!(!dir.exists(), "{} left behind", dir.display());
}
