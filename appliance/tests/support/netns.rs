//! A network namespace holding a veth pair, for tests that run `weir run` on af_packet ports:
//! IPv6 off (the kernel would send router solicitations, MLD reports and DAD probes a port
//! would count), loopback up (for scraping the metrics endpoint inside), deleted on drop.

use std::process::Command;

/// Run a command; `Err` with its stderr when it fails.
pub fn sh(args: &[&str]) -> Result<(), String> {
    let o = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("cannot run {args:?}: {e}"))?;
    if !o.status.success() {
        return Err(format!(
            "{args:?} failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        ));
    }
    Ok(())
}

pub struct Netns {
    pub name: String,
}

impl Netns {
    /// Namespace `PREFIX<pid>` with veth ends `a` <-> `b`, up, of MTU `mtu` when given.
    pub fn with_veth(
        prefix: &str,
        (a, b): (&str, &str),
        mtu: Option<u32>,
    ) -> Result<Netns, String> {
        let ns = Netns {
            name: format!("{prefix}{}", std::process::id()),
        };
        let n = ns.name.as_str();
        sh(&["ip", "netns", "add", n]).map_err(|e| {
            format!("{e}\n(this test needs root and iproute2 to create a network namespace)")
        })?;
        sh(&[
            "ip",
            "netns",
            "exec",
            n,
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ])?;
        sh(&[
            "ip", "-n", n, "link", "add", a, "type", "veth", "peer", "name", b,
        ])?;
        let mtu = mtu.map(|m| m.to_string());
        for l in [a, b] {
            match &mtu {
                Some(m) => sh(&["ip", "-n", n, "link", "set", l, "mtu", m, "up"])?,
                None => sh(&["ip", "-n", n, "link", "set", l, "up"])?,
            }
        }
        sh(&["ip", "-n", n, "link", "set", "lo", "up"])?;
        Ok(ns)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = sh(&["ip", "netns", "del", &self.name]);
    }
}
