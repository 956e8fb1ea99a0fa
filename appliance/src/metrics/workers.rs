//! The per-worker families of the exposition: every counter of [`WorkerStats`], the
//! `[[services]]` counters, and the cost tables (stages and plugins).

use super::families::{counters, gauges, w, Labels, Out};
use super::Sources;
use crate::parse::SkipReason;
use crate::stats::WorkerStats;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Unit;

/// Every counter of [`WorkerStats`], per worker, and its open flows.
// Long: one family per counter, each named and described in place, in exposition order.
pub(super) fn workers(e: &mut DescriptorEncoder, ws: &[(WorkerStats, u64)]) -> Out {
    let col = |f: &dyn Fn(&WorkerStats) -> u64| -> Vec<(Labels, u64)> {
        ws.iter()
            .enumerate()
            .map(|(i, m)| (w(i), f(&m.0)))
            .collect()
    };
    let by = |label: &'static str, f: &dyn Fn(&WorkerStats) -> Vec<(&'static str, u64)>| {
        let mut v = Vec::new();
        for (i, (m, _)) in ws.iter().enumerate() {
            for (name, n) in f(m) {
                v.push((
                    vec![("worker", i.to_string()), (label, name.to_string())],
                    n,
                ));
            }
        }
        v
    };
    counters(
        e,
        "weir_worker_packets",
        "Packets a worker received.",
        None,
        &col(&|m| m.packets),
    )?;
    counters(
        e,
        "weir_worker_rx",
        "Wire bytes a worker received.",
        Some(&Unit::Bytes),
        &col(&|m| m.bytes),
    )?;
    counters(
        e,
        "weir_worker_flow_packets",
        "Packets counted into a flow.",
        None,
        &col(&|m| m.accepted),
    )?;
    counters(
        e,
        "weir_worker_flows_created",
        "Flows created.",
        None,
        &col(&|m| m.flows_created),
    )?;
    let ended = by("reason", &|m| {
        vec![
            ("idle", m.expired_idle),
            ("active", m.expired_active),
            ("teardown", m.teardown),
            ("evicted", m.evicted),
            ("flush", m.flushed),
        ]
    });
    counters(e, "weir_worker_flows_ended", "Flows ended, by reason (idle or active timeout, TCP teardown, evicted from a full table, flushed at shutdown).", None, &ended)?;
    counters(
        e,
        "weir_worker_flows_evicted",
        "Flows evicted from a full table.",
        None,
        &col(&|m| m.evicted),
    )?;
    counters(
        e,
        "weir_worker_table_full_packets",
        "Packets of new flows skipped because the table was full and eviction is off.",
        None,
        &col(&|m| m.table_full),
    )?;
    counters(
        e,
        "weir_worker_rx_cut_frames",
        "Frames not received whole: as long as the port's receive limit (raise ports[].mtu) \
         or a chain longer than the worker's buffer.",
        None,
        &col(&|m| m.cut_frames),
    )?;
    counters(
        e,
        "weir_worker_filtered_packets",
        "Packets the capture filter ([capture] filter, ports[].filter) rejected: counted \
         in weir_worker_packets, in no flow.",
        None,
        &col(&|m| m.filtered),
    )?;
    let refused = by("reason", &|m| {
        vec![
            ("too_long", m.text_refused.too_long),
            ("invalid_utf8", m.text_refused.invalid_utf8),
        ]
    });
    counters(
        e,
        "weir_worker_plugin_text_refused",
        "Plugin text values (ABI 1.4) refused and written as missing: longer than 256 bytes \
         (too_long) or not UTF-8 (invalid_utf8).",
        None,
        &refused,
    )?;
    counters(
        e,
        "weir_worker_records",
        "Flow records a worker handed to the output stage.",
        None,
        &col(&|m| m.records),
    )?;
    counters(
        e,
        "weir_worker_interval_records",
        "Of weir_worker_records, the interval records ([intervals] every_ms).",
        None,
        &col(&|m| m.interval_records),
    )?;
    gauges(
        e,
        "weir_worker_active_flows",
        "Flows open in a worker's table.",
        None,
        &ws.iter()
            .enumerate()
            .map(|(i, m)| (w(i), m.1))
            .collect::<Vec<_>>(),
    )?;
    parse_skips(e, ws)?;
    services(e, ws)
}

/// Packets the parser skipped, by reason, and IPv4 packets cut on the wire.
fn parse_skips(e: &mut DescriptorEncoder, ws: &[(WorkerStats, u64)]) -> Out {
    let mut skipped = Vec::new();
    for (i, (m, _)) in ws.iter().enumerate() {
        for r in SkipReason::ALL {
            skipped.push((
                vec![("worker", i.to_string()), ("reason", r.name().to_string())],
                m.skipped.get(*r),
            ));
        }
    }
    counters(
        e,
        "weir_worker_parse_skipped_packets",
        "Packets skipped by the parser, by reason.",
        None,
        &skipped,
    )?;
    counters(
        e,
        "weir_worker_ipv4_truncated_packets",
        "IPv4 packets longer (by their Total Length) than the frame on the wire, counted in \
         their flows with the bytes that were on the wire.",
        None,
        &ws.iter()
            .enumerate()
            .map(|(i, m)| (w(i), m.0.skipped.ipv4_truncated))
            .collect::<Vec<_>>(),
    )
}

/// The `[[services]]` counters: DNS learning, and flows by how their service was found.
fn services(e: &mut DescriptorEncoder, ws: &[(WorkerStats, u64)]) -> Out {
    let col = |f: &dyn Fn(&crate::services::ServiceStats) -> u64| -> Vec<(Labels, u64)> {
        ws.iter()
            .enumerate()
            .map(|(i, m)| (w(i), f(&m.0.services)))
            .collect()
    };
    counters(
        e,
        "weir_worker_dns_answers",
        "DNS answers read (with [[services]]).",
        None,
        &col(&|s| s.dns_answers),
    )?;
    counters(
        e,
        "weir_worker_dns_malformed",
        "DNS answers that did not parse; nothing learned.",
        None,
        &col(&|s| s.dns_malformed),
    )?;
    counters(
        e,
        "weir_worker_dns_unsolicited",
        "DNS answers to no query this worker saw (or too late); nothing learned.",
        None,
        &col(&|s| s.dns_unsolicited),
    )?;
    counters(
        e,
        "weir_worker_dns_learned",
        "Address-to-service mappings learned from DNS answers.",
        None,
        &col(&|s| s.dns_learned),
    )?;
    counters(
        e,
        "weir_worker_dns_replaced_live",
        "Learned mappings pushed out of a full table before their TTL.",
        None,
        &col(&|s| s.dns_replaced_live),
    )?;
    let mut by = Vec::new();
    for (i, (m, _)) in ws.iter().enumerate() {
        let s = &m.services;
        for (how, n) in [
            ("dns", s.flows_by_dns),
            ("prefix", s.flows_by_prefix),
            ("none", s.flows_without_service),
        ] {
            by.push((vec![("worker", i.to_string()), ("by", how.to_string())], n));
        }
    }
    counters(
        e,
        "weir_worker_service_flows",
        "Flows started, by how their service was found (a name learned from DNS, a prefix, \
         none).",
        None,
        &by,
    )
}

/// Cycle accounting: stages and plugins as two sets of families; the TSC frequency.
pub(super) fn cost(e: &mut DescriptorEncoder, s: &Sources) -> Out {
    let (stages, plugins) = cost_rows(s);
    counters(
        e,
        "weir_stage_cycles",
        "TSC cycles spent in a built-in stage.",
        None,
        &stages.cycles,
    )?;
    counters(
        e,
        "weir_stage_packets",
        "Packets through a built-in stage.",
        None,
        &stages.packets,
    )?;
    counters(
        e,
        "weir_stage_calls",
        "Accounted calls of a built-in stage (one per burst).",
        None,
        &stages.calls,
    )?;
    gauges(
        e,
        "weir_stage_cycles_per_packet",
        "Mean TSC cycles per packet of a stage since start.",
        None,
        &stages.per_packet,
    )?;
    counters(
        e,
        "weir_plugin_cycles",
        "TSC cycles spent in a plugin (update_burst, flow_init, flow_emit).",
        None,
        &plugins.cycles,
    )?;
    counters(
        e,
        "weir_plugin_packets",
        "Packets handed to a plugin.",
        None,
        &plugins.packets,
    )?;
    counters(
        e,
        "weir_plugin_calls",
        "update_burst calls of a plugin.",
        None,
        &plugins.calls,
    )?;
    counters(
        e,
        "weir_plugin_flows",
        "Flows a plugin started (flow_init calls).",
        None,
        &plugins.flows,
    )?;
    counters(
        e,
        "weir_plugin_errors",
        "Errors a plugin returned.",
        None,
        &plugins.errors,
    )?;
    gauges(
        e,
        "weir_plugin_quarantined",
        "1 when the plugin is quarantined on this worker.",
        None,
        &plugins.quarantined,
    )?;
    gauges(
        e,
        "weir_plugin_cycles_per_packet",
        "Mean TSC cycles per packet of a plugin since start.",
        None,
        &plugins.per_packet,
    )?;
    gauges(
        e,
        "weir_tsc_hz",
        "TSC frequency, to turn cycles into seconds.",
        None,
        &[(vec![], s.tsc_hz)],
    )?;

    Ok(())
}

/// The published cost tables as samples: built-in stages and plugins apart.
#[derive(Default)]
struct Rows {
    cycles: Vec<(Labels, u64)>,
    packets: Vec<(Labels, u64)>,
    calls: Vec<(Labels, u64)>,
    per_packet: Vec<(Labels, f64)>,
    flows: Vec<(Labels, u64)>,
    errors: Vec<(Labels, u64)>,
    quarantined: Vec<(Labels, u64)>,
}

/// Every worker's published cost rows: (stages, plugins).
fn cost_rows(s: &Sources) -> (Rows, Rows) {
    let (mut stages, mut plugins) = (Rows::default(), Rows::default());
    for (i, m) in s.workers.iter().enumerate() {
        for row in m.cost_rows() {
            let (rows, key) = if row.is_plugin {
                (&mut plugins, "plugin")
            } else {
                (&mut stages, "stage")
            };
            let l = vec![("worker", i.to_string()), (key, row.name.clone())];
            let per = if row.packets == 0 {
                0.0
            } else {
                row.cycles as f64 / row.packets as f64
            };
            rows.cycles.push((l.clone(), row.cycles));
            rows.packets.push((l.clone(), row.packets));
            rows.calls.push((l.clone(), row.calls));
            rows.per_packet.push((l.clone(), per));
            rows.flows.push((l.clone(), row.flows));
            rows.errors.push((l.clone(), row.errors));
            rows.quarantined.push((l, row.quarantined));
        }
    }
    (stages, plugins)
}
