//! The configuration reference (`deploy/docs/config.md`) against the config types, the
//! example configs through `weir check-config`, and check-config's refusals (key and line).
//!
//! The reference is checked both ways: a config built from the example column of every row
//! must load (a documented key that does not exist, or an example of the wrong type, fails),
//! and every key the config types accept must have a row. The accepted keys are found by
//! deserializing `Config` from a deserializer that answers each `deserialize_struct` call by
//! recording the field names serde's derive hands it, and recursing into each field, so a new
//! field fails this test until it is documented.

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use weir::config::Config;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// (dotted key, example) of every table row of the reference.
fn doc_rows() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(workspace().join("deploy/docs/config.md")).unwrap();
    let mut rows = Vec::new();
    for line in text.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // | key | type | default | example | meaning |
        if cells.len() < 7 || !cells[1].starts_with('`') {
            continue;
        }
        let key = cells[1].trim_matches('`').to_string();
        rows.push((key, cells[4].to_string()));
    }
    assert!(rows.len() > 30, "too few rows parsed: {rows:?}");
    rows
}

/// A config with every documented example value.
fn config_from_examples(rows: &[(String, String)]) -> String {
    let mut sections: BTreeMap<(String, bool), Vec<String>> = BTreeMap::new();
    for (key, example) in rows {
        if example.is_empty() {
            continue;
        }
        let (section, field) = key.rsplit_once('.').expect("section.key");
        let array = section.ends_with("[]");
        let section = section.trim_end_matches("[]").to_string();
        sections
            .entry((section, array))
            .or_default()
            .push(format!("{field} = {}", example.trim_matches('`')));
    }
    let mut out = String::new();
    for ((section, array), lines) in sections {
        if array {
            out += &format!("[[{section}]]\n");
        } else {
            out += &format!("[{section}]\n");
        }
        for l in lines {
            out += &l;
            out += "\n";
        }
        out += "\n";
    }
    out
}

#[test]
fn every_documented_key_parses_with_its_example() {
    let rows = doc_rows();
    let keys: Vec<&String> = rows.iter().map(|r| &r.0).collect();
    let unique: BTreeSet<&String> = keys.iter().copied().collect();
    assert_eq!(keys.len(), unique.len(), "a key documented twice");
    let text = config_from_examples(&rows);
    if let Err(e) = Config::parse(&text, Path::new("config.md examples")) {
        panic!("{e}\n---\n{text}");
    }
}

#[test]
fn every_config_key_is_documented() {
    let mut found = BTreeSet::new();
    let _ = Config::deserialize(Walker {
        prefix: String::new(),
        keys: &mut found,
    });
    // Sanity: the walker sees the keys it must see.
    for k in [
        "flows.capacity",
        "ports[].pci",
        "model.batch",
        "metrics.listen",
    ] {
        assert!(found.contains(k), "walker missed {k}: {found:?}");
    }
    let documented: BTreeSet<String> = doc_rows().into_iter().map(|r| r.0).collect();
    let missing: Vec<&String> = found.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "keys the config accepts but deploy/docs/config.md does not document: {missing:?}"
    );
    let stale: Vec<&String> = documented.difference(&found).collect();
    assert!(
        stale.is_empty(),
        "documented keys the config does not have: {stale:?}"
    );
}

/// A deserializer that visits every field of a serde-derived struct tree and records each
/// leaf's dotted name (`section.key`, `array[].key`).
struct Walker<'a> {
    prefix: String,
    keys: &'a mut BTreeSet<String>,
}

#[derive(Debug)]
struct WalkError(String);
impl std::fmt::Display for WalkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for WalkError {}
impl de::Error for WalkError {
    fn custom<T: std::fmt::Display>(m: T) -> Self {
        WalkError(m.to_string())
    }
}

impl Walker<'_> {
    /// A value with no fields: its key is documented as is (a list of plain values is one
    /// key, `workers.cores`, not `workers.cores[]`).
    fn leaf(self) {
        let key = self.prefix.trim_end_matches("[]");
        if !key.is_empty() {
            self.keys.insert(key.to_string());
        }
    }
}

macro_rules! leaf {
    ($($m:ident => $visit:ident($v:expr)),* $(,)?) => {
        $(fn $m<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
            self.leaf();
            v.$visit($v)
        })*
    };
}

impl<'de> de::Deserializer<'de> for Walker<'_> {
    type Error = WalkError;

    leaf! {
        deserialize_bool => visit_bool(false),
        deserialize_i8 => visit_i8(0), deserialize_i16 => visit_i16(0),
        deserialize_i32 => visit_i32(0), deserialize_i64 => visit_i64(0),
        deserialize_u8 => visit_u8(0), deserialize_u16 => visit_u16(0),
        deserialize_u32 => visit_u32(0), deserialize_u64 => visit_u64(0),
        deserialize_f32 => visit_f32(0.0), deserialize_f64 => visit_f64(0.0),
        deserialize_char => visit_char('x'),
        deserialize_str => visit_str(""), deserialize_string => visit_str(""),
        deserialize_bytes => visit_bytes(b""), deserialize_byte_buf => visit_bytes(b""),
        deserialize_identifier => visit_str(""),
    }

    fn deserialize_unit<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        self.leaf();
        v.visit_unit()
    }

    /// Maps without a struct behind them (`plugins.config`): a leaf.
    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        self.leaf();
        v.visit_map(de::value::MapDeserializer::<
            std::iter::Empty<(String, String)>,
            WalkError,
        >::new(std::iter::empty()))
    }
    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        self.deserialize_any(v)
    }
    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        v.visit_unit()
    }
    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        v.visit_some(self)
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        v: V,
    ) -> Result<V::Value, WalkError> {
        self.leaf();
        v.visit_unit()
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        v: V,
    ) -> Result<V::Value, WalkError> {
        v.visit_newtype_struct(self)
    }
    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        v.visit_seq(OneElement {
            walker: Some(Walker {
                prefix: format!("{}[]", self.prefix),
                keys: self.keys,
            }),
        })
    }
    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, v: V) -> Result<V::Value, WalkError> {
        self.deserialize_seq(v)
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        v: V,
    ) -> Result<V::Value, WalkError> {
        self.deserialize_seq(v)
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, WalkError> {
        v.visit_map(Fields {
            prefix: self.prefix,
            keys: self.keys,
            fields: fields.iter(),
            current: None,
        })
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, WalkError> {
        self.leaf();
        v.visit_enum(variants[0].into_deserializer())
    }
}

/// A sequence holding one walked element (so `[[ports]]` tables are walked as `ports[]`).
struct OneElement<'a> {
    walker: Option<Walker<'a>>,
}

impl<'de> SeqAccess<'de> for OneElement<'_> {
    type Error = WalkError;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, WalkError> {
        match self.walker.take() {
            Some(w) => seed.deserialize(w).map(Some),
            None => Ok(None),
        }
    }
}

/// A struct's fields, each handed its own walker.
struct Fields<'a> {
    prefix: String,
    keys: &'a mut BTreeSet<String>,
    fields: std::slice::Iter<'static, &'static str>,
    current: Option<&'static str>,
}

impl<'de> MapAccess<'de> for Fields<'_> {
    type Error = WalkError;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, WalkError> {
        match self.fields.next() {
            Some(f) => {
                self.current = Some(f);
                seed.deserialize(f.into_deserializer()).map(Some)
            }
            None => Ok(None),
        }
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, WalkError> {
        let f = self.current.take().expect("key before value");
        let prefix = if self.prefix.is_empty() {
            f.to_string()
        } else {
            format!("{}.{f}", self.prefix)
        };
        seed.deserialize(Walker {
            prefix,
            keys: self.keys,
        })
    }
}

fn check_config(path: &Path) -> (bool, String) {
    let out = crate::support::run::weir()
        .arg("check-config")
        .arg(path)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn example_configs_pass_check_config() {
    for f in ["weir-2port.toml", "weir-offline.toml", "services.toml"] {
        let p = workspace().join("deploy/examples").join(f);
        let (ok, msg) = check_config(&p);
        assert!(ok, "{f}: {msg}");
        assert!(msg.contains("OK"), "{msg}");
    }
    let c = Config::load(&workspace().join("deploy/examples/weir-2port.toml")).unwrap();
    assert_eq!(c.ports.len(), 2);
    assert_eq!(c.workers.cores, vec![2, 3, 4, 5]);
    let o = Config::load(&workspace().join("deploy/examples/weir-offline.toml")).unwrap();
    assert!(o.ports.is_empty() && o.eal.no_huge && !o.metrics.enabled);
}

#[test]
fn kubernetes_configmap_config_passes_check_config() {
    let text =
        std::fs::read_to_string(workspace().join("deploy/kubernetes/configmap.yaml")).unwrap();
    let v: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let toml_text = v["data"]["weir.toml"].as_str().expect("data.weir.toml");
    // The DaemonSet substitutes the VF's PCI address at start.
    let toml_text = toml_text.replace("${WEIR_PCI}", "0000:3b:02.0");
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("weir.toml");
    std::fs::write(&p, toml_text).unwrap();
    let (ok, msg) = check_config(&p);
    assert!(ok, "{msg}");
}

/// Each kind of error: the message names the key and its line, and the exit status is 1.
#[test]
fn check_config_rejects_each_kind_of_error_with_key_and_line() {
    let cases: &[(&str, &str, &[&str])] = &[
        // unknown key (serde, deny_unknown_fields)
        (
            "[flows]\ncapacity = 10\nidle_timout_s = 3\n",
            "unknown",
            &["idle_timout_s", "line 3"],
        ),
        // unknown section
        (
            "[log]\nformat = \"json\"\n\n[metric]\nlisten = \"x\"\n",
            "unknown section",
            &["metric", "line 4"],
        ),
        // wrong type
        ("[workers]\ncount = \"two\"\n", "type", &["line 2"]),
        // bad enum value
        (
            "[flows]\neviction = \"random\"\n",
            "enum",
            &["random", "line 2"],
        ),
        // TOML syntax
        ("[flows\ncapacity = 1\n", "syntax", &["line 1"]),
        // value out of range (validate)
        (
            "# x\n[flows]\n\ncapacity = 0\n",
            "range",
            &["flows.capacity", "line 4"],
        ),
        (
            "[workers]\ncount = 2\ncores = [1]\n",
            "cores",
            &["workers.cores", "line 3"],
        ),
        (
            "[workers]\nburst = 1000\n",
            "burst",
            &["workers.burst", "line 2"],
        ),
        (
            "[eal]\nmemory_mb = 8\n",
            "memory",
            &["eal.memory_mb", "line 2"],
        ),
        (
            "[metrics]\nenabled = true\nlisten = \"localhost\"\n",
            "listen",
            &["metrics.listen", "line 3"],
        ),
        (
            "[[ports]]\nrx_desc = 512\n",
            "port source",
            &["ports", "line 1", "pci", "vdev"],
        ),
        (
            "[[heavy_hitters]]\nkey = \"src_prefix\"\nprefix_len = 40\n",
            "heavy hitter",
            &["heavy_hitters[0].prefix_len", "line 3"],
        ),
        (
            "[rates]\ntau_ms = 0\n",
            "rates",
            &["rates.tau_ms", "line 2"],
        ),
        (
            "[model]\nbatch = 0\n",
            "model",
            &["model", "batch", "line 1"],
        ),
    ];
    let tmp = tempfile::tempdir().unwrap();
    for (i, (text, what, needles)) in cases.iter().enumerate() {
        let p = tmp.path().join(format!("bad{i}.toml"));
        std::fs::write(&p, text).unwrap();
        let (ok, msg) = check_config(&p);
        assert!(!ok, "{what}: accepted:\n{text}");
        assert!(
            msg.contains(&*p.to_string_lossy()),
            "{what}: no file name in {msg}"
        );
        for n in *needles {
            assert!(msg.contains(n), "{what}: `{n}` missing from: {msg}");
        }
    }
    // A file that does not exist.
    let (ok, msg) = check_config(&tmp.path().join("nope.toml"));
    assert!(!ok && msg.contains("nope.toml"), "{msg}");
}

/// What only the target host can tell is a warning, not an error: the file still passes.
#[test]
fn check_config_warns_about_host_paths_and_open_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("w.toml");
    std::fs::write(
        &p,
        "[model]\ndir = \"/nonexistent/model\"\n\n[sinks]\nrecords = \"/nonexistent/dir/f.csv\"\n\n[metrics]\nlisten = \"0.0.0.0:9464\"\n",
    )
    .unwrap();
    let (ok, msg) = check_config(&p);
    assert!(ok, "{msg}");
    for n in [
        "model.dir /nonexistent/model: no model.onnx",
        "sinks.records: directory /nonexistent/dir",
        "metrics.listen 0.0.0.0:9464 is reachable",
        "OK (0 port(s), 1 worker(s), metrics 0.0.0.0:9464)",
    ] {
        assert!(msg.contains(n), "`{n}` missing from: {msg}");
    }
}
