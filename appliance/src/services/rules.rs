//! Service rules from the config: `[[services]]` tables (domain suffixes, regexes, prefixes,
//! plugins) and `[service_default]` (plugins of flows with no service, DNS table size).
//!
//! Compiled once at start into [`ServiceRules`]; workers share it read-only. Service ids are
//! 1-based in config order; 0 means "no service".

use super::prefix::{Prefix, PrefixTable};
use serde::Deserialize;

/// One `[[services]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// The name written in the records' `service` column.
    pub name: String,
    /// Domain suffixes: `googlevideo.com` matches it and every name below it.
    #[serde(default)]
    pub domains: Vec<String>,
    /// Regular expressions (Rust `regex` syntax) matched against whole lower-case names.
    #[serde(default)]
    pub regex: Vec<String>,
    /// IPv4/IPv6 prefixes (`203.0.113.0/24`, `2001:db8::/32`), longest match wins.
    #[serde(default)]
    pub prefixes: Vec<String>,
    /// Plugins run for this service's flows; absent = every loaded plugin.
    #[serde(default)]
    pub plugins: Option<Vec<String>>,
    /// Interval records of this service's flows every this many ms of packet time; absent =
    /// `[intervals] every_ms`; 0 = none for this service.
    #[serde(default)]
    pub every_ms: Option<u64>,
}

/// `[service_default]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceDefaults {
    /// Plugins run for flows with no service; absent = every loaded plugin.
    pub plugins: Option<Vec<String>>,
    /// Addresses learned from DNS answers each worker keeps (preallocated).
    pub dns_capacity: u32,
    /// Learn name-to-address mappings from DNS answers (UDP, source port 53).
    pub dns_learning: bool,
    /// A learned mapping lasts its record's TTL, at most this many seconds.
    pub dns_max_ttl_s: u64,
}

impl Default for ServiceDefaults {
    fn default() -> Self {
        ServiceDefaults {
            plugins: None,
            dns_capacity: 65_536,
            dns_learning: true,
            dns_max_ttl_s: 86_400,
        }
    }
}

/// A config error: the dotted key and why.
#[derive(Debug)]
pub struct RuleError {
    pub key: String,
    pub reason: String,
}

/// The compiled rules.
#[derive(Debug, Default)]
pub struct ServiceRules {
    /// Service names, id - 1.
    pub names: Vec<String>,
    /// (suffix, service id), longest suffix first.
    suffixes: Vec<(String, u16)>,
    regexes: Vec<(regex::Regex, u16)>,
    pub prefixes: PrefixTable<u16>,
    /// Plugin lists: index 0 the default, then one per service id.
    plugins: Vec<Option<Vec<String>>>,
    pub dns_capacity: usize,
    pub dns_learning: bool,
    pub dns_max_ttl_s: u64,
}

impl ServiceRules {
    /// Compile and check the config's services (empty rules without `[[services]]`).
    pub fn new(
        services: &[ServiceConfig],
        defaults: &ServiceDefaults,
    ) -> Result<ServiceRules, RuleError> {
        let mut r = ServiceRules {
            dns_capacity: defaults.dns_capacity as usize,
            dns_learning: defaults.dns_learning,
            dns_max_ttl_s: defaults.dns_max_ttl_s,
            plugins: vec![defaults.plugins.clone()],
            ..Default::default()
        };
        if services.len() >= u16::MAX as usize {
            return Err(RuleError {
                key: "services".into(),
                reason: "too many services (at most 65534)".into(),
            });
        }
        if defaults.dns_capacity == 0 || defaults.dns_capacity > 1 << 24 {
            return Err(RuleError {
                key: "service_default.dns_capacity".into(),
                reason: "must be between 1 and 16777216".into(),
            });
        }
        for (i, s) in services.iter().enumerate() {
            let id = (i + 1) as u16;
            let err = |k: &str, reason: String| RuleError {
                key: format!("services[{i}].{k}"),
                reason,
            };
            let name = s.name.trim();
            if name.is_empty() || name.contains(|c: char| c.is_control() || c == ',') {
                return Err(err(
                    "name",
                    "must be non-empty, without commas or control characters".into(),
                ));
            }
            if r.names.iter().any(|n| n == name) {
                return Err(err("name", format!("service `{name}` is defined twice")));
            }
            r.names.push(name.to_string());
            for d in &s.domains {
                let d = d.trim().trim_matches('.').to_ascii_lowercase();
                if d.is_empty() || !d.bytes().all(|c| c.is_ascii_graphic()) {
                    return Err(err("domains", format!("`{d}` is not a domain name")));
                }
                r.suffixes.push((d, id));
            }
            for x in &s.regex {
                let re = regex::Regex::new(x).map_err(|e| err("regex", format!("`{x}`: {e}")))?;
                r.regexes.push((re, id));
            }
            for p in &s.prefixes {
                let pfx = Prefix::parse(p.trim()).map_err(|e| err("prefixes", e))?;
                if let Some(other) = r.prefixes.insert(pfx, id) {
                    return Err(err(
                        "prefixes",
                        format!(
                            "{pfx} is already a prefix of service `{}`",
                            r.names[other as usize - 1]
                        ),
                    ));
                }
            }
            r.plugins.push(s.plugins.clone());
        }
        // Longest (most specific) suffix first; config order among equals.
        r.suffixes.sort_by_key(|s| std::cmp::Reverse(s.0.len()));
        Ok(r)
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Whether some service is found by name (so DNS answers are worth reading).
    pub fn has_name_rules(&self) -> bool {
        !self.suffixes.is_empty() || !self.regexes.is_empty()
    }

    /// The name of service `id` ("" for 0).
    pub fn name(&self, id: u16) -> &str {
        if id == 0 {
            ""
        } else {
            self.names.get(id as usize - 1).map_or("", |s| s.as_str())
        }
    }

    /// The service a DNS name belongs to: the longest matching domain suffix, else the first
    /// matching regex. Runs only on DNS answers (rare), never per packet.
    pub fn match_name(&self, name: &str) -> Option<u16> {
        for (suffix, id) in &self.suffixes {
            if name == suffix
                || (name.len() > suffix.len()
                    && name.ends_with(suffix.as_str())
                    && name.as_bytes()[name.len() - suffix.len() - 1] == b'.')
            {
                return Some(*id);
            }
        }
        self.regexes
            .iter()
            .find(|(re, _)| re.is_match(name))
            .map(|(_, id)| *id)
    }

    /// For each service id (0 = none) the plugins (bits in `loaded` order) that are NOT
    /// selected. A name no loaded plugin has is an error naming the key.
    pub fn skip_masks(&self, loaded: &[String]) -> Result<Vec<u64>, RuleError> {
        let mut masks = Vec::with_capacity(self.plugins.len());
        for (id, sel) in self.plugins.iter().enumerate() {
            let key = if id == 0 {
                "service_default.plugins".to_string()
            } else {
                format!("services[{}].plugins", id - 1)
            };
            let Some(sel) = sel else {
                masks.push(0);
                continue;
            };
            for n in sel {
                if !loaded.iter().any(|l| l == n) {
                    return Err(RuleError {
                        key,
                        reason: format!(
                            "no loaded plugin is named `{n}` (loaded: {})",
                            loaded.join(", ")
                        ),
                    });
                }
            }
            let mut skip = 0u64;
            for (bit, l) in loaded.iter().enumerate() {
                if !sel.contains(l) {
                    skip |= 1 << bit;
                }
            }
            masks.push(skip);
        }
        Ok(masks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(name: &str, domains: &[&str], regex: &[&str], prefixes: &[&str]) -> ServiceConfig {
        ServiceConfig {
            name: name.into(),
            domains: domains.iter().map(|s| s.to_string()).collect(),
            regex: regex.iter().map(|s| s.to_string()).collect(),
            prefixes: prefixes.iter().map(|s| s.to_string()).collect(),
            plugins: None,
            every_ms: None,
        }
    }

    #[test]
    fn suffixes_match_on_label_boundaries_most_specific_first() {
        let r = ServiceRules::new(
            &[
                svc("google", &["google.com"], &[], &[]),
                svc(
                    "video",
                    &["video.google.com", ".GoogleVideo.com."],
                    &[],
                    &[],
                ),
                svc("cdn", &[], &[r"^cdn[0-9]+\."], &[]),
            ],
            &ServiceDefaults::default(),
        )
        .unwrap();
        assert_eq!(r.match_name("google.com"), Some(1));
        assert_eq!(r.match_name("mail.google.com"), Some(1));
        assert_eq!(r.match_name("a.video.google.com"), Some(2));
        assert_eq!(r.match_name("r3---sn.googlevideo.com"), Some(2));
        assert_eq!(r.match_name("notgoogle.com"), None);
        assert_eq!(r.match_name("google.com.evil.net"), None);
        assert_eq!(r.match_name("cdn42.example.net"), Some(3));
        assert_eq!(r.match_name("xcdn42.example.net"), None);
        assert_eq!(r.name(2), "video");
        assert_eq!(r.name(0), "");
    }

    #[test]
    fn errors_name_the_key() {
        let d = ServiceDefaults::default();
        let e = ServiceRules::new(&[svc("a", &[], &["("], &[])], &d).unwrap_err();
        assert_eq!(e.key, "services[0].regex");
        let e = ServiceRules::new(
            &[
                svc("a", &[], &[], &["10.0.0.0/8"]),
                svc("b", &[], &[], &["10.0.0.0/8"]),
            ],
            &d,
        )
        .unwrap_err();
        assert_eq!(e.key, "services[1].prefixes");
        assert!(e.reason.contains("`a`"), "{}", e.reason);
        let e =
            ServiceRules::new(&[svc("a", &[], &[], &[]), svc("a", &[], &[], &[])], &d).unwrap_err();
        assert_eq!(e.key, "services[1].name");
    }

    #[test]
    fn plugin_selection_masks() {
        let mut v = svc("video", &["x.com"], &[], &[]);
        v.plugins = Some(vec!["splt".into()]);
        let d = ServiceDefaults {
            plugins: Some(vec![]),
            ..Default::default()
        };
        let r = ServiceRules::new(&[v, svc("all", &[], &[], &[])], &d).unwrap();
        let loaded: Vec<String> = ["flowstats", "splt", "tcp"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(r.skip_masks(&loaded).unwrap(), vec![0b111, 0b101, 0]);
        let mut bad = svc("v", &[], &[], &[]);
        bad.plugins = Some(vec!["nope".into()]);
        let r = ServiceRules::new(&[bad], &ServiceDefaults::default()).unwrap();
        assert_eq!(
            r.skip_masks(&loaded).unwrap_err().key,
            "services[0].plugins"
        );
    }
}
