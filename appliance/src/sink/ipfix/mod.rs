//! IPFIX export (RFC 7011 over UDP) of finished flow records to a NetFlow/IPFIX collector
//! (nfdump's `nfcapd`, pmacct, Elastiflow, ...): `[sinks] ipfix = "HOST:PORT"` or
//! `weir extract --ipfix HOST:PORT`.
//!
//! Written by hand: there is no well-kept Rust crate for IPFIX *export*. The IPFIX crates are
//! mostly parsers for collectors; the exporters found (2026-12) are parts of other tools:
//! netring's has fixed IANA fields (no RFC 5103 biflow, no enterprise elements), rustflow's
//! encoder builds a `Vec` of field values per record (an allocation per record on the output
//! thread) inside a young command-line tool. What weir needs is small: [`message`] writes
//! message and set headers (RFC 7011 §3) in place into one buffer per message, [`template`]
//! says which Information Element carries which record column (standard elements, RFC 5103
//! biflow reverse elements, weir's enterprise elements; the numbering is documented there).
//!
//! The sink runs on the output thread (off the data path). Each record becomes one Data Record
//! of its IP version's template; records are packed into messages of at most
//! `sinks.ipfix_mtu` octets (the UDP payload), and a message is sent when the next record does
//! not fit, when it is [`FLUSH_AFTER`] old, or at the end. Templates (RFC 7011 §8.4, UDP):
//! sent before the first data, then again every `sinks.ipfix_template_refresh_s` seconds
//! and/or every `sinks.ipfix_template_refresh_messages` data messages, and after a send error
//! (the collector may have restarted and lost them). The sequence number counts every data
//! record handed to the socket, so a collector sees records lost in transit as a gap.
//!
//! A send that fails (collector down: ICMP port unreachable comes back as ECONNREFUSED on the
//! connected socket) is counted and logged (the first at once, then a summary at most every
//! 10 s) and never stops the run: the records file is the record of truth, export is best
//! effort like any UDP flow export.

pub mod message;
pub mod template;

use crate::flow::record::{FlowRecord, RecordSchema};
use message::{MessageBuf, HEADER_LEN, SET_HEADER_LEN, TEMPLATE_SET_ID};
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use template::{Selection, Template};

/// A buffered record waits at most this long for more to fill its message.
pub const FLUSH_AFTER: Duration = Duration::from_millis(500);
/// Defaults of the `sinks.ipfix_*` keys.
pub const DEFAULT_TEMPLATE_REFRESH_S: u64 = 60;
pub const DEFAULT_MTU: u32 = 1400;
pub const DEFAULT_OBSERVATION_DOMAIN: u32 = 1;
/// Smallest and largest `sinks.ipfix_mtu`: room for IPv6/UDP headers in a 1280-octet IPv6
/// minimum MTU down to 512, up to the largest UDP payload over IPv4.
pub const MIN_MTU: u32 = 512;
pub const MAX_MTU: u32 = 65_507;
/// Error log lines at most this often (the count of the others is in the next line).
const ERROR_LOG_EVERY: Duration = Duration::from_secs(10);

/// The IPFIX export settings (`[sinks] ipfix*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpfixConfig {
    /// The collector as written (`HOST:PORT`), resolved when the sink opens.
    pub collector: String,
    /// Resend templates after this many seconds (0 = time-based refresh off).
    pub template_refresh_s: u64,
    /// Resend templates after this many data messages (0 = off).
    pub template_refresh_messages: u64,
    pub observation_domain: u32,
    /// Largest IPFIX message (UDP payload), octets.
    pub mtu: u32,
    /// weir's Private Enterprise Number for its own elements.
    pub enterprise_number: u32,
    /// Named columns to export (`["*"]` = all); `None` = the rates and scores.
    pub columns: Option<Vec<String>>,
    /// Pace sends to at most this many messages per second (0 = no limit).
    pub max_messages_per_s: u32,
}

impl IpfixConfig {
    /// Defaults for a collector (given on the command line; `[sinks]` overrides them, see
    /// `SinksConfig::ipfix_config`).
    pub fn for_collector(collector: &str) -> IpfixConfig {
        IpfixConfig {
            collector: collector.to_string(),
            template_refresh_s: DEFAULT_TEMPLATE_REFRESH_S,
            template_refresh_messages: 0,
            observation_domain: DEFAULT_OBSERVATION_DOMAIN,
            mtu: DEFAULT_MTU,
            enterprise_number: template::DEFAULT_WEIR_PEN,
            columns: None,
            max_messages_per_s: 0,
        }
    }

    /// Check the values (not the name: resolving it is the sink's job at start).
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        match self.collector.rsplit_once(':') {
            Some((host, port))
                if !host.trim_matches(|c| c == '[' || c == ']').is_empty()
                    && port.parse::<u16>().is_ok_and(|p| p > 0) => {}
            _ => {
                return Err((
                    "sinks.ipfix",
                    format!(
                        "`{}` is not HOST:PORT (e.g. \"127.0.0.1:4739\", \"[::1]:4739\", \"collector.example:4739\")",
                        self.collector
                    ),
                ))
            }
        }
        if !(MIN_MTU..=MAX_MTU).contains(&self.mtu) {
            return Err((
                "sinks.ipfix_mtu",
                format!("must be between {MIN_MTU} and {MAX_MTU} octets"),
            ));
        }
        if self.enterprise_number == 0 || self.enterprise_number == template::REVERSE_PEN {
            return Err((
                "sinks.ipfix_enterprise_number",
                format!(
                    "must not be 0 (IANA) or {} (RFC 5103 reverse elements)",
                    template::REVERSE_PEN
                ),
            ));
        }
        Ok(())
    }
}

/// What the exporter did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IpfixStats {
    /// Data records handed to the socket.
    pub records_sent: u64,
    /// Messages sent (data and template ones).
    pub messages_sent: u64,
    /// Template messages sent.
    pub template_messages: u64,
    /// `send` calls that failed, and the data records in them.
    pub send_errors: u64,
    pub records_unsent: u64,
    /// Records larger than a message (a very long class label): never sendable.
    pub records_too_large: u64,
    /// Interval records, never exported (see [`IpfixSink::export`]).
    pub interval_records_skipped: u64,
    pub first_error: Option<String>,
}

/// The IPFIX exporter of one run.
pub struct IpfixSink {
    cfg: IpfixConfig,
    addr: SocketAddr,
    sock: UdpSocket,
    v4: Template,
    v6: Template,
    msg: MessageBuf,
    /// Data records sent or attempted so far (the next message's sequence number, mod 2^32).
    sequence: u32,
    templates_due: bool,
    templates_sent_at: Option<Instant>,
    messages_since_templates: u64,
    /// When the oldest record of the message under construction was written.
    buffered_since: Option<Instant>,
    last_error_log: Option<Instant>,
    errors_not_logged: u64,
    /// Pacing: the earliest time of the next send.
    next_send: Option<Instant>,
    stats: IpfixStats,
}

impl IpfixSink {
    /// Resolve the collector, open a connected UDP socket, build the templates of `schema`.
    /// Refused (with the reason) when the name does not resolve or a template cannot fit in
    /// one message.
    pub fn open(cfg: &IpfixConfig, schema: &RecordSchema) -> Result<IpfixSink, String> {
        cfg.validate().map_err(|(k, m)| format!("{k}: {m}"))?;
        let addr = cfg
            .collector
            .to_socket_addrs()
            .map_err(|e| format!("sinks.ipfix: cannot resolve `{}`: {e}", cfg.collector))?
            .next()
            .ok_or_else(|| format!("sinks.ipfix: `{}` resolves to no address", cfg.collector))?;
        let local: SocketAddr = if addr.is_ipv4() {
            "0.0.0.0:0".parse().expect("literal")
        } else {
            "[::]:0".parse().expect("literal")
        };
        let sock = UdpSocket::bind(local)
            .and_then(|s| s.connect(addr).map(|_| s))
            .map_err(|e| format!("sinks.ipfix: cannot open a UDP socket to {addr}: {e}"))?;
        let sel = match &cfg.columns {
            None => Selection::default_for(schema),
            Some(names) => Selection::named(schema, names).map_err(|n| {
                format!(
                    "sinks.ipfix_columns: `{n}` is not a feature, rate or score column of this run's records ({})",
                    schema.extra.iter().chain(&schema.scores).cloned().collect::<Vec<_>>().join(", ")
                )
            })?,
        };
        let (v4, c4) = Template::for_schema(schema, &sel, 4, cfg.enterprise_number);
        let (v6, _) = Template::for_schema(schema, &sel, 6, cfg.enterprise_number);
        if !c4.is_empty() {
            tracing::warn!(
                columns = ?c4,
                "IPFIX: these columns' hashed enterprise element ids collided; they get the next free ids"
            );
        }
        for t in [&v4, &v6] {
            let need = HEADER_LEN + SET_HEADER_LEN + t.definition_len().max(t.min_record_len());
            if need > cfg.mtu as usize {
                return Err(format!(
                    "sinks.ipfix_mtu: {} octets cannot hold template {} ({} fields: a {}-octet template record, {}-octet data records); raise it to at least {need}, or export fewer columns (sinks.ipfix_columns)",
                    cfg.mtu,
                    t.id,
                    t.specs().count(),
                    t.definition_len(),
                    t.min_record_len()
                ));
            }
        }
        tracing::info!(
            collector = %addr,
            template_fields = v4.specs().count(),
            record_octets = v4.min_record_len(),
            mtu = cfg.mtu,
            "IPFIX export"
        );
        Ok(IpfixSink {
            cfg: cfg.clone(),
            addr,
            sock,
            v4,
            v6,
            msg: MessageBuf::new(cfg.mtu as usize),
            sequence: 0,
            templates_due: true,
            templates_sent_at: None,
            messages_since_templates: 0,
            buffered_since: None,
            last_error_log: None,
            errors_not_logged: 0,
            next_send: None,
            stats: IpfixStats::default(),
        })
    }

    /// The collector's address.
    pub fn collector(&self) -> SocketAddr {
        self.addr
    }

    /// Buffer one record (sending the message before it when it is full). Interval records
    /// (`[intervals]`) are not exported: their counters are the interval's while a flow
    /// record's are the flow's totals, so a collector would count every packet twice.
    pub fn export(&mut self, rec: &FlowRecord) {
        if rec.interval.is_some() {
            self.stats.interval_records_skipped += 1;
            return;
        }
        let now = Instant::now();
        let t = if rec.key.ip_version == 6 {
            &self.v6
        } else {
            &self.v4
        };
        let len = t.record_len(rec);
        if HEADER_LEN + SET_HEADER_LEN + len > self.msg.max_len() {
            self.stats.records_too_large += 1;
            self.error(format!(
                "a {len}-octet record does not fit in sinks.ipfix_mtu = {}; not exported",
                self.cfg.mtu
            ));
            return;
        }
        if !self.msg.fits(t.id, len) {
            self.flush();
        }
        // Templates go before the message that starts here (RFC 7011 §8.4 refresh).
        if self.msg.is_empty() && self.refresh_due(now) {
            self.send_templates();
        }
        let t = if rec.key.ip_version == 6 {
            &self.v6
        } else {
            &self.v4
        };
        self.msg.set(t.id);
        t.write_record(rec, &mut self.msg);
        self.buffered_since.get_or_insert(now);
    }

    /// Called when no record came for a while: send a message that waited long enough.
    pub fn tick(&mut self) {
        if self
            .buffered_since
            .is_some_and(|t| t.elapsed() >= FLUSH_AFTER)
        {
            self.flush();
        }
    }

    /// Send what is buffered; return the totals.
    pub fn finish(&mut self) -> IpfixStats {
        self.flush();
        if self.errors_not_logged > 0 {
            tracing::warn!(
                more = self.errors_not_logged,
                "IPFIX: further send errors since the last log line"
            );
            self.errors_not_logged = 0;
        }
        let s = &self.stats;
        tracing::info!(
            collector = %self.addr,
            records = s.records_sent,
            messages = s.messages_sent,
            template_messages = s.template_messages,
            send_errors = s.send_errors,
            records_unsent = s.records_unsent,
            "IPFIX export finished"
        );
        self.stats.clone()
    }

    pub fn stats(&self) -> &IpfixStats {
        &self.stats
    }

    fn refresh_due(&self, now: Instant) -> bool {
        if self.templates_due {
            return true;
        }
        let by_time = self.cfg.template_refresh_s > 0
            && self.templates_sent_at.is_some_and(|t| {
                now.duration_since(t) >= Duration::from_secs(self.cfg.template_refresh_s)
            });
        let by_count = self.cfg.template_refresh_messages > 0
            && self.messages_since_templates >= self.cfg.template_refresh_messages;
        by_time || by_count
    }

    /// Send both templates, packed into as few messages as the MTU allows.
    fn send_templates(&mut self) {
        self.templates_due = false;
        self.templates_sent_at = Some(Instant::now());
        self.messages_since_templates = 0;
        let max = self.msg.max_len();
        let mut msgs = vec![MessageBuf::new(max)];
        for t in [&self.v4, &self.v6] {
            let last = msgs.last_mut().expect("one message");
            if !last.fits(TEMPLATE_SET_ID, t.definition_len()) {
                msgs.push(MessageBuf::new(max));
            }
            let last = msgs.last_mut().expect("one message");
            last.set(TEMPLATE_SET_ID);
            t.write_definition(last);
        }
        for m in msgs {
            self.send_template_message(m);
        }
    }

    /// Wait for the next send slot when sends are paced (`sinks.ipfix_max_messages_per_s`).
    /// Sleeping here holds up the output thread only; the bounded queues then slow the workers,
    /// so pace only for collectors that cannot absorb a burst (an offline extract sends all of
    /// a capture's records at its end).
    fn pace(&mut self) {
        if self.cfg.max_messages_per_s == 0 {
            return;
        }
        let now = Instant::now();
        let at = self.next_send.map_or(now, |t| t.max(now));
        if at > now {
            std::thread::sleep(at - now);
        }
        self.next_send = Some(at + Duration::from_secs(1) / self.cfg.max_messages_per_s);
    }

    fn send_template_message(&mut self, mut m: MessageBuf) {
        self.pace();
        let bytes = m.finish(export_time(), self.sequence, self.cfg.observation_domain);
        match self.sock.send(bytes) {
            Ok(_) => {
                self.stats.messages_sent += 1;
                self.stats.template_messages += 1;
            }
            Err(e) => {
                self.stats.send_errors += 1;
                self.templates_due = true;
                self.error(format!("cannot send templates to {}: {e}", self.addr));
            }
        }
    }

    /// Send the message under construction, if it holds records.
    fn flush(&mut self) {
        self.buffered_since = None;
        if self.msg.is_empty() {
            return;
        }
        self.pace();
        let n = self.msg.data_records();
        let seq = self.sequence;
        // Attempted records count: a collector sees records lost on the way as a gap.
        self.sequence = self.sequence.wrapping_add(n);
        let bytes = self
            .msg
            .finish(export_time(), seq, self.cfg.observation_domain);
        let res = self.sock.send(bytes);
        self.msg.clear();
        match res {
            Ok(_) => {
                self.stats.messages_sent += 1;
                self.stats.records_sent += n as u64;
                self.messages_since_templates += 1;
            }
            Err(e) => {
                self.stats.send_errors += 1;
                self.stats.records_unsent += n as u64;
                // The collector may come back without our templates.
                self.templates_due = true;
                self.error(format!(
                    "cannot send {n} records to the IPFIX collector {}: {e}",
                    self.addr
                ));
            }
        }
    }

    /// Log an error: the first at once, then at most one line per [`ERROR_LOG_EVERY`].
    fn error(&mut self, what: String) {
        self.stats.first_error.get_or_insert_with(|| what.clone());
        let now = Instant::now();
        match self.last_error_log {
            Some(t) if now.duration_since(t) < ERROR_LOG_EVERY => self.errors_not_logged += 1,
            _ => {
                tracing::error!(
                    error = %what,
                    earlier_not_logged = self.errors_not_logged,
                    send_errors = self.stats.send_errors,
                    "IPFIX export (the run goes on)"
                );
                self.last_error_log = Some(now);
                self.errors_not_logged = 0;
            }
        }
    }
}

impl crate::sink::RecordSink for IpfixSink {
    fn write(&mut self, rec: &FlowRecord) -> std::io::Result<()> {
        self.export(rec);
        Ok(())
    }

    fn finish(&mut self) -> std::io::Result<()> {
        IpfixSink::finish(self);
        Ok(())
    }
}

/// `Export Time` (RFC 7011 §3.1): seconds since the UNIX epoch.
fn export_time() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
