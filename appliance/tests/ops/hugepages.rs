//! Flow tables on hugepages. `weir run` with the EAL on hugepages (a private hugetlbfs mount
//! and pages reserved for the test): the flow table comes from DPDK's hugepage heap. `weir
//! extract` with a prefaulted table and reserved pages free: the table is mapped from the
//! reserved pool (`flows.reserved_hugepages`). Each says so in its log, and the records equal
//! those of the same run without hugepages. Needs root, as the namespace tests do. One test,
//! so that nothing else in this binary takes the pages it reserved.

use std::path::{Path, PathBuf};
use std::process::Command;

const NR: &str = "/proc/sys/vm/nr_hugepages";
/// 2 MiB pages the run may use: the table (16 k flows), the mempool and the EAL's own zones.
const PAGES: u64 = 192;

/// Pages reserved and a hugetlbfs mounted for one test; both given back on drop.
struct Hugepages {
    before: u64,
    mount: PathBuf,
}

impl Hugepages {
    fn reserve(dir: &Path) -> Hugepages {
        let before: u64 = std::fs::read_to_string(NR)
            .expect("read nr_hugepages")
            .trim()
            .parse()
            .unwrap();
        let mount = dir.join("huge");
        std::fs::create_dir_all(&mount).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "hugetlbfs", "-o", "pagesize=2M", "nodev"])
            .arg(&mount)
            .status()
            .expect("run mount");
        assert!(
            ok.success(),
            "cannot mount hugetlbfs on {} (this test needs root)",
            mount.display()
        );
        let h = Hugepages { before, mount };
        std::fs::write(NR, (before + PAGES).to_string())
            .expect("write nr_hugepages (this test needs root)");
        let free = meminfo("HugePages_Free");
        assert!(
            free >= PAGES,
            "the kernel reserved only {free} free 2 MiB pages of the {PAGES} asked"
        );
        h
    }
}

impl Drop for Hugepages {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mount).status();
        let _ = std::fs::write(NR, self.before.to_string());
    }
}

fn meminfo(key: &str) -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix(key)?
                .trim_start_matches(':')
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// `weir run` over `capture` with `eal` as its [eal] table: (sorted records, log).
fn run(dir: &Path, name: &str, eal: &str, capture: &Path) -> (Vec<String>, String) {
    let records = dir.join(format!("{name}.csv"));
    let cfg = dir.join(format!("{name}.toml"));
    std::fs::write(
        &cfg,
        format!(
            "[eal]\n{eal}\n\n[workers]\nmbufs = 4095\n\n[flows]\ncapacity = 16384\n\n[[ports]]\nvdev = \"net_pcap0,rx_pcap={}\"\n\n[sinks]\nrecords = \"{}\"\n\n[log]\nstatus_interval_s = 0\n",
            capture.display(),
            records.display()
        ),
    )
    .unwrap();
    let out = crate::support::run::weir_logging("info")
        .args(["run", "--config"])
        .arg(&cfg)
        .args(["--duration-s", "3"])
        .output()
        .expect("start weir run");
    let log = crate::support::run::log_text(&out.stderr);
    assert!(out.status.success(), "weir run ({name}) failed:\n{log}");
    let text = std::fs::read_to_string(&records).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.sort();
    (lines, log)
}

/// `weir extract` of `capture` with a prefaulted 16 k-flow table, on the reserved pool or
/// not: (sorted records, log).
fn extract(dir: &Path, name: &str, reserved: bool, capture: &Path) -> (Vec<String>, String) {
    let records = dir.join(format!("{name}.csv"));
    let cfg = dir.join(format!("{name}.toml"));
    std::fs::write(
        &cfg,
        format!("[flows]\ncapacity = 16384\nprefault = true\nreserved_hugepages = {reserved}\n"),
    )
    .unwrap();
    let out = crate::support::run::weir_logging("info")
        .arg("extract")
        .arg(capture)
        .arg("--config")
        .arg(&cfg)
        .arg("--out")
        .arg(&records)
        .arg("--no-progress")
        .output()
        .expect("start weir extract");
    let log = crate::support::run::log_text(&out.stderr);
    assert!(out.status.success(), "weir extract ({name}) failed:\n{log}");
    let text = std::fs::read_to_string(&records).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.sort();
    (lines, log)
}

#[test]
fn flow_table_on_hugepages_gives_the_same_records() {
    let tmp = tempfile::tempdir().unwrap();
    let capture = crate::support::paths::data_dir().join("pcaps/instagram.pcap");
    let hp = Hugepages::reserve(tmp.path());
    let prefix = format!("weirhp{}", std::process::id());
    let (huge, huge_log) = run(
        tmp.path(),
        "huge",
        &format!(
            "no_huge = false\nno_pci = true\nargs = [\"--huge-dir={}\", \"--file-prefix={prefix}\", \"--huge-unlink\"]",
            hp.mount.display()
        ),
        &capture,
    );
    let (plain, plain_log) = run(
        tmp.path(),
        "plain",
        "no_huge = true\nno_pci = true\nmemory_mb = 256",
        &capture,
    );
    // The run gave its pages back at exit: the extract's table (16 k flows, about 18 MB)
    // takes them from the same reservation.
    let (pool, pool_log) = extract(tmp.path(), "pool", true, &capture);
    let (anon, anon_log) = extract(tmp.path(), "anon", false, &capture);
    drop(hp);
    assert!(
        pool_log.contains("memory=\"reserved hugepages (hugetlb)\""),
        "the prefaulted table did not come from the reserved pool:\n{pool_log}"
    );
    assert!(
        anon_log.contains("memory=\"anonymous mapping"),
        "with reserved_hugepages = false the table must be an anonymous mapping:\n{anon_log}"
    );
    assert!(pool.len() > 10, "too few records: {}", pool.len());
    assert_eq!(
        pool, anon,
        "records differ with the table on the reserved pool"
    );
    assert!(
        huge_log.contains("memory=\"DPDK hugepages\""),
        "the table did not come from hugepages:\n{huge_log}"
    );
    assert!(
        plain_log.contains("memory=\"anonymous mapping"),
        "without hugepages the table must be an anonymous mapping:\n{plain_log}"
    );
    assert!(huge.len() > 10, "too few records: {}", huge.len());
    assert_eq!(huge, plain, "records differ with the table on hugepages");
}
