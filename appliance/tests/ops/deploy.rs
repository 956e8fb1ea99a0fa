//! The files in `deploy/`: every YAML and JSON file parses; the Kubernetes manifests pass the
//! Kubernetes API schema (`kubernetes-validate --strict`, which bundles the schemas and runs
//! offline) and agree with each other (labels, ports, guaranteed QoS); the Dockerfile passes
//! hadolint and copies files that exist; the shell scripts pass shellcheck.
//!
//! The tools come from `deploy/requirements-test.txt` (into `.venv` by the Makefile) and the
//! Debian package `shellcheck`; a missing tool fails the test with what to install.

use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

fn deploy() -> PathBuf {
    workspace().join("deploy")
}

fn files(dir: &Path, exts: &[&str], out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, exts, out);
        } else if p
            .extension()
            .and_then(|x| x.to_str())
            .is_some_and(|x| exts.contains(&x))
        {
            out.push(p);
        }
    }
    out.sort();
}

/// A tool from `$WEIR_<NAME>`, the workspace's `.venv/bin`, or `PATH`.
fn tool(name: &str, install: &str) -> PathBuf {
    let var = format!("WEIR_{}", name.to_uppercase().replace('-', "_"));
    if let Ok(p) = std::env::var(&var) {
        return PathBuf::from(p);
    }
    let venv = workspace().join(".venv/bin").join(name);
    if venv.exists() {
        return venv;
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for d in std::env::split_paths(&paths) {
            if d.join(name).is_file() {
                return d.join(name);
            }
        }
    }
    panic!("{name} not found (set {var}, or install it: {install})");
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn yaml_docs(p: &Path) -> Vec<serde_yaml::Value> {
    let text = std::fs::read_to_string(p).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| {
            serde_yaml::Value::deserialize(d).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        })
        .collect()
}

use serde::Deserialize;

#[test]
fn every_yaml_and_json_file_parses() {
    let mut ys = Vec::new();
    files(&deploy(), &["yaml", "yml"], &mut ys);
    assert!(ys.len() >= 7, "{ys:?}");
    for p in &ys {
        let docs = yaml_docs(p);
        assert!(!docs.is_empty(), "{}: empty", p.display());
        for d in docs {
            assert!(
                d.is_mapping(),
                "{}: a document is not a mapping",
                p.display()
            );
        }
    }
    let mut js = Vec::new();
    files(&deploy(), &["json"], &mut js);
    assert!(!js.is_empty());
    for p in &js {
        let text = std::fs::read_to_string(p).unwrap();
        serde_json::from_str::<serde_json::Value>(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    }
}

#[test]
fn kubernetes_manifests_pass_the_schema() {
    let kv = tool(
        "kubernetes-validate",
        "pip install -r deploy/requirements-test.txt",
    );
    let mut ms = Vec::new();
    files(&deploy().join("kubernetes"), &["yaml"], &mut ms);
    let (ok, msg) = run(Command::new(&kv).arg("--strict").args(&ms));
    assert!(ok, "{msg}");
    // Every built-in kind was checked against a schema; only the operator's CRD has none.
    for p in &ms {
        for d in yaml_docs(p) {
            let kind = d["kind"].as_str().unwrap();
            if kind == "ServiceMonitor" {
                continue;
            }
            let name = d["metadata"]["name"].as_str().unwrap();
            let needle = format!("passed for resource {}/{}", kind.to_lowercase(), name);
            assert!(msg.contains(&needle), "{needle} not in:\n{msg}");
        }
    }
    // The validator does reject a wrong manifest (a misspelled field, a string for a number).
    let tmp = tempfile::tempdir().unwrap();
    let ds = std::fs::read_to_string(deploy().join("kubernetes/daemonset.yaml")).unwrap();
    for (from, to) in [
        ("      containers:", "      containrs:"),
        ("containerPort: 9464", "containerPort: \"nine\""),
    ] {
        assert!(ds.contains(from));
        let bad = tmp.path().join("bad.yaml");
        std::fs::write(&bad, ds.replacen(from, to, 1)).unwrap();
        let (ok, msg) = run(Command::new(&kv).arg("--strict").arg(&bad));
        assert!(!ok, "{to}: accepted: {msg}");
    }
}

#[test]
fn kubernetes_manifests_agree_with_each_other() {
    let k = deploy().join("kubernetes");
    let ds = yaml_docs(&k.join("daemonset.yaml")).remove(0);
    let svc = yaml_docs(&k.join("service.yaml")).remove(0);
    let sm = yaml_docs(&k.join("servicemonitor.yaml")).remove(0);
    let cm = yaml_docs(&k.join("configmap.yaml")).remove(0);
    assert_eq!(sm["apiVersion"], "monitoring.coreos.com/v1");
    let pod = &ds["spec"]["template"];
    let pod_labels = &pod["metadata"]["labels"];
    assert_eq!(&ds["spec"]["selector"]["matchLabels"], pod_labels);
    assert_eq!(&svc["spec"]["selector"], pod_labels);
    assert_eq!(
        &sm["spec"]["selector"]["matchLabels"],
        &svc["metadata"]["labels"]
    );
    let c = &pod["spec"]["containers"][0];
    let port = &c["ports"][0];
    assert_eq!(port["name"], "metrics");
    let n = port["containerPort"].as_u64().unwrap();
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "metrics");
    assert_eq!(
        sm["spec"]["endpoints"][0]["port"],
        svc["spec"]["ports"][0]["name"]
    );
    assert_eq!(
        pod["metadata"]["annotations"]["prometheus.io/port"].as_str(),
        Some(n.to_string().as_str())
    );
    // weir listens where the pod says: the ConfigMap's [metrics] listen.
    let toml_text = cm["data"]["weir.toml"].as_str().unwrap();
    let cfg: toml::Table = toml::from_str(toml_text).unwrap();
    let listen = cfg["metrics"]["listen"].as_str().unwrap();
    assert!(listen.ends_with(&format!(":{n}")), "{listen}");
    // Guaranteed QoS with exclusive cores: requests == limits, whole CPUs; hugepages asked.
    let r = &c["resources"];
    assert_eq!(r["requests"], r["limits"]);
    let cpu = r["requests"]["cpu"].as_str().unwrap();
    assert!(
        cpu.parse::<u32>().is_ok(),
        "cpu {cpu} is not a whole number"
    );
    assert!(r["requests"]
        .as_mapping()
        .unwrap()
        .keys()
        .any(|k| k.as_str().is_some_and(|k| k.starts_with("hugepages-"))));
    // The mounts the image expects.
    let mounts: Vec<&str> = c["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|m| m["mountPath"].as_str().unwrap())
        .collect();
    for m in [
        "/etc/weir",
        "/usr/lib/weir/plugins",
        "/var/lib/weir/model",
        "/dev/hugepages",
    ] {
        assert!(mounts.contains(&m), "{m} not mounted: {mounts:?}");
    }
    assert_eq!(
        cfg["plugins"]["dir"].as_str(),
        Some("/usr/lib/weir/plugins")
    );
}

#[test]
fn dockerfile_passes_hadolint_and_copies_what_exists() {
    let hl = tool("hadolint", "pip install -r deploy/requirements-test.txt");
    let df = deploy().join("docker/Dockerfile");
    let (ok, msg) = run(Command::new(&hl).arg(&df));
    assert!(ok, "hadolint:\n{msg}");
    // hadolint does flag a bad Dockerfile (so a pass above means something).
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("Dockerfile");
    std::fs::write(&bad, "FROM debian\nRUN apt-get install curl\n").unwrap();
    let (ok, _) = run(Command::new(&hl).arg(&bad));
    assert!(!ok, "hadolint accepted a bad Dockerfile");
    // Every COPY from the build context names a file of the repository.
    let text = std::fs::read_to_string(&df).unwrap();
    for line in text
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let parts: Vec<&str> = line.split_whitespace().collect();
        for src in &parts[1..parts.len() - 1] {
            assert!(workspace().join(src).exists(), "{line}: {src} missing");
        }
    }
    assert!(text.contains("/usr/lib/weir/plugins"));
    assert!(text.contains("USER "), "non-root default");
}

#[test]
fn shell_scripts_pass_shellcheck() {
    let sc = tool("shellcheck", "apt-get install shellcheck");
    let mut ss = Vec::new();
    files(&deploy(), &["sh"], &mut ss);
    assert!(!ss.is_empty());
    let (ok, msg) = run(Command::new(&sc).args(["--severity=style"]).args(&ss));
    assert!(ok, "shellcheck:\n{msg}");
    for s in &ss {
        let (ok, msg) = run(Command::new("bash").arg("-n").arg(s));
        assert!(ok, "{}: {msg}", s.display());
    }
}

#[test]
fn systemd_unit_runs_weir_with_the_config() {
    let text = std::fs::read_to_string(deploy().join("systemd/weir.service")).unwrap();
    let mut sections = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            sections.push(line.to_string());
        } else if !line.is_empty() && !line.starts_with('#') {
            assert!(line.contains('='), "not key=value: {line}");
        }
    }
    assert_eq!(sections, ["[Unit]", "[Service]", "[Install]"]);
    assert!(text.contains("ExecStart=/usr/bin/weir run --config /etc/weir/weir.toml"));
    assert!(text.contains("ExecReload=/bin/kill -HUP $MAINPID"));
    assert!(text.contains("ExecStartPre=/usr/bin/weir check-config"));
    // Ready means the ports are up (weir sends READY=1 itself).
    assert!(text.contains("Type=notify") && text.contains("NotifyAccess=main"));
    // systemd's own check, where systemd is installed (it is not in minimal CI images): the
    // unit pointed at the weir binary of this build must draw no complaint at all.
    let Ok(out) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("systemd-analyze not installed: structural checks only");
        return;
    };
    assert!(out.status.success());
    let tmp = tempfile::tempdir().unwrap();
    let unit = tmp.path().join("weir.service");
    std::fs::write(
        &unit,
        text.replace("/usr/bin/weir", env!("CARGO_BIN_EXE_weir")),
    )
    .unwrap();
    // Its Documentation= man pages as `make install` puts them (generated by the binary).
    let man = tmp.path().join("man");
    let (ok, msg) = run(Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("man")
        .arg(man.join("man1")));
    assert!(ok, "weir man: {msg}");
    let (ok, msg) = run(Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .env("MANPATH", &man));
    assert!(
        ok && msg.trim().is_empty(),
        "systemd-analyze verify:\n{msg}"
    );
    // And it does complain about a unit with a mistake.
    let bad = tmp.path().join("bad.service");
    std::fs::write(&bad, text.replace("KillSignal=", "KilSignal=")).unwrap();
    let (_, msg) = run(Command::new("systemd-analyze").arg("verify").arg(&bad));
    assert!(msg.contains("KilSignal"), "{msg}");
}

/// The `job` label each deployment gives weir's scrape: the ServiceMonitor's (the value of
/// the Service label named by `jobLabel`, else the Service's name, as the Prometheus Operator
/// does) and the bare-metal Prometheus config's `job_name`.
fn scrape_jobs() -> Vec<(String, String)> {
    let k8s = deploy().join("kubernetes");
    let sm: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(k8s.join("servicemonitor.yaml")).unwrap())
            .unwrap();
    let svc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(k8s.join("service.yaml")).unwrap()).unwrap();
    // The ServiceMonitor must select this Service.
    let selector = sm["spec"]["selector"]["matchLabels"].as_mapping().unwrap();
    for (k, v) in selector {
        assert_eq!(
            &svc["metadata"]["labels"][k.as_str().unwrap()],
            v,
            "the ServiceMonitor does not select the Service"
        );
    }
    let k8s_job = match sm["spec"]["jobLabel"].as_str() {
        Some(l) => svc["metadata"]["labels"][l]
            .as_str()
            .unwrap_or_else(|| panic!("jobLabel {l} is not a label of the Service"))
            .to_string(),
        None => svc["metadata"]["name"].as_str().unwrap().to_string(),
    };
    let prom: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(deploy().join("monitoring/prometheus.yml")).unwrap(),
    )
    .unwrap();
    let mut jobs = vec![("ServiceMonitor".to_string(), k8s_job)];
    for sc in prom["scrape_configs"].as_sequence().unwrap() {
        jobs.push((
            "prometheus.yml".into(),
            sc["job_name"].as_str().unwrap().to_string(),
        ));
    }
    jobs
}

#[test]
fn alert_rules_select_the_jobs_the_scrapes_give() {
    let rules: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(deploy().join("monitoring/weir-alerts.yml")).unwrap(),
    )
    .unwrap();
    let jobs = scrape_jobs();
    let re = regex::Regex::new(r#"\bjob\s*(=~?|!=)\s*"([^"]*)""#).unwrap();
    let mut matched = 0;
    for g in rules["groups"].as_sequence().unwrap() {
        for r in g["rules"].as_sequence().unwrap() {
            let expr = r["expr"].as_str().unwrap();
            for c in re.captures_iter(expr) {
                assert_eq!(&c[1], "=", "{expr}: only exact job matchers are checked");
                for (source, job) in &jobs {
                    assert_eq!(
                        &c[2], job,
                        "alert {:?} selects job=\"{}\" but {source} gives job=\"{job}\"",
                        r["alert"], &c[2]
                    );
                }
                matched += 1;
            }
        }
    }
    assert!(
        matched > 0,
        "no alert selects a job: the check checks nothing"
    );
}
