//! What `weir extract` reports about a run: the summary on stderr and `--stats FILE`.

use super::feed::Fed;
use crate::output::OutputStats;
use crate::stats::WorkerStats;
use anyhow::{Context, Result};
use std::path::Path;
use std::time::Duration;

/// The run's summary on stderr: packets in flows and skipped (by reason), flows written, and
/// what went wrong short of failing.
pub(super) fn print_summary(
    fed: &Fed,
    total: &WorkerStats,
    out: &OutputStats,
    out_path: Option<&Path>,
    elapsed: Duration,
) {
    eprintln!(
        "weir extract: {} packets ({} in flows, {} skipped{}) -> {} flows in {} in {:.2} s ({:.0} packets/s)",
        fed.packets + fed.unsupported_linktype,
        total.accepted,
        total.skipped.total() + total.table_full + fed.unsupported_linktype,
        if total.filtered > 0 {
            format!(", {} filtered out", total.filtered)
        } else {
            String::new()
        },
        out.records - out.interval_records,
        out_path
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "(not written)".into()),
        elapsed.as_secs_f64(),
        fed.packets as f64 / elapsed.as_secs_f64().max(1e-9),
    );
    if out.interval_records > 0 {
        eprintln!("  and {} interval records", out.interval_records);
    }
    for (name, n) in total.skipped.iter().filter(|(_, n)| *n > 0) {
        eprintln!("  skipped {name}: {n}");
    }
    let tr = total.text_refused;
    if tr.too_long + tr.invalid_utf8 > 0 {
        eprintln!(
            "  plugin text values refused (written as missing): {} too long, {} not UTF-8",
            tr.too_long, tr.invalid_utf8
        );
    }
    if total.skipped.ipv4_truncated > 0 {
        eprintln!(
            "  ipv4_truncated (cut on the wire, counted in their flows): {}",
            total.skipped.ipv4_truncated
        );
    }
    if let Some(x) = &out.ipfix {
        eprintln!(
            "  ipfix: {} records in {} messages ({} template messages), {} send errors ({} records not sent)",
            x.records_sent, x.messages_sent, x.template_messages, x.send_errors, x.records_unsent
        );
    }
    for e in &fed.capture_errors {
        eprintln!("  not read to its end: {e}");
    }
    if fed.unsupported_linktype > 0 {
        eprintln!(
            "  skipped unsupported_linktype: {}",
            fed.unsupported_linktype
        );
    }
    if total.evicted > 0 || total.table_full > 0 {
        eprintln!(
            "  flow table full: {} flows evicted, {} packets not tracked",
            total.evicted, total.table_full
        );
    }
    if let Some(sc) = &out.scoring {
        eprintln!(
            "scored {} flows in {} batches (latency p50 {} us, p99 {} us; {} skipped under overload, {} errors); {} alerts",
            sc.rows, sc.batches, sc.latency_p50_us, sc.latency_p99_us, sc.overload_skips, sc.error_rows, out.alerts
        );
    }
}

/// `--stats FILE`: what the run did, as one JSON object. Every packet read is in exactly one
/// of `accepted`, `filtered` (the capture filter rejected it), `skipped` (by reason,
/// `table_full` and `unsupported_linktype` included), and
/// the packets in the records written equal `accepted` when nothing was lost.
pub(super) fn write_stats(
    path: &Path,
    fed: &Fed,
    total: &WorkerStats,
    out: &OutputStats,
) -> Result<()> {
    let mut skipped = serde_json::Map::new();
    for (name, n) in total.skipped.iter() {
        skipped.insert(name.to_string(), n.into());
    }
    skipped.insert("table_full".into(), total.table_full.into());
    skipped.insert(
        "unsupported_linktype".into(),
        fed.unsupported_linktype.into(),
    );
    let skipped_total = total.skipped.total() + total.table_full + fed.unsupported_linktype;
    let scoring = out.scoring.as_ref().map(|s| {
        serde_json::json!({
            "rows": s.rows,
            "batches": s.batches,
            "overload_skips": s.overload_skips,
            "error_rows": s.error_rows,
        })
    });
    let v = serde_json::json!({
        "packets_read": fed.packets + fed.unsupported_linktype,
        "packets_received": total.packets,
        "accepted": total.accepted,
        "filtered": total.filtered,
        "skipped_total": skipped_total,
        "skipped": skipped,
        "ipv4_truncated": total.skipped.ipv4_truncated,
        "capture_errors": fed.capture_errors,
        "truncated_to_mbuf": fed.truncated_to_mbuf,
        "frames_zero_copy": fed.zero_copy,
        "frames_copied": fed.copied,
        "flows_created": total.flows_created,
        "evicted": total.evicted,
        "flows": total.records - total.interval_records,
        "interval_records": total.interval_records,
        "records_written": out.records,
        "records_packets": out.packets,
        "write_errors": out.write_errors,
        "records_lost": out.records_lost,
        "alerts": out.alerts,
        "scoring": scoring,
        "ipfix": out.ipfix.as_ref().map(|x| serde_json::json!({
            "records_sent": x.records_sent,
            "messages_sent": x.messages_sent,
            "template_messages": x.template_messages,
            "send_errors": x.send_errors,
            "records_unsent": x.records_unsent,
            "records_too_large": x.records_too_large,
            "interval_records_skipped": x.interval_records_skipped,
        })),
        "interrupted": fed.interrupted,
        "text_refused": {
            "too_long": total.text_refused.too_long,
            "invalid_utf8": total.text_refused.invalid_utf8,
        },
        // Every counter the workers keep, summed (the same list `/metrics` publishes).
        "worker_counters": total.to_json(),
        "services": {
            "dns_answers": total.services.dns_answers,
            "dns_malformed": total.services.dns_malformed,
            "dns_learned": total.services.dns_learned,
            "dns_unsolicited": total.services.dns_unsolicited,
            "dns_replaced_live": total.services.dns_replaced_live,
            "flows_by_dns": total.services.flows_by_dns,
            "flows_by_prefix": total.services.flows_by_prefix,
            "flows_without_service": total.services.flows_without_service,
        },
    });
    let text = serde_json::to_string_pretty(&v)? + "\n";
    std::fs::write(path, text).with_context(|| format!("cannot write --stats {}", path.display()))
}
