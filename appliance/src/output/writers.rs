//! The writer threads of the output stage: records to the records sink and the IPFIX exporter,
//! alert lines to the alerts file.

use super::{OutputStats, SinkBatch, TICK};
use crate::flow::record::FlowRecord;
use crate::metrics::AlertCounts;
use crate::sink::{self, RecordSink};
use crossbeam_channel::{Receiver, RecvTimeoutError, Select};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// The sink thread: records (scored one by one, or the workers' batches) to the records sink
/// and the IPFIX exporter; flushes, rotates and reopens the records file.
pub(super) struct SinkWriter {
    pub batch_rx: Receiver<SinkBatch>,
    /// Lines the dispatch thread formatted go back to it once written.
    pub lines_back: crossbeam_channel::Sender<sink::Lines>,
    /// Batches sent without lines not taken yet (see `Dispatch`).
    pub unformatted: Arc<AtomicUsize>,
    pub rec_rx: Receiver<FlowRecord>,
    /// Written batches go back to the workers (`Output::recycled`) for their memory; when
    /// none is taking them (the channel is full) they are dropped here.
    pub recycle: crossbeam_channel::Sender<Vec<FlowRecord>>,
    /// Batches the dispatch thread emptied into the scorer, to return scored records in.
    pub empties: Receiver<Vec<FlowRecord>>,
    pub records_sink: Option<Box<dyn RecordSink>>,
    pub exporter: Option<crate::sink::ipfix::IpfixSink>,
    pub written: Arc<AtomicU64>,
    pub reopen: Arc<AtomicBool>,
}

impl SinkWriter {
    pub fn run(self) -> OutputStats {
        let SinkWriter {
            batch_rx,
            lines_back,
            unformatted,
            rec_rx,
            recycle,
            empties,
            mut records_sink,
            mut exporter,
            written,
            reopen,
        } = self;
        let mut st = OutputStats::default();
        let mut returns = Returns {
            batch: Vec::new(),
            empties,
            recycle: recycle.clone(),
        };
        let mut sel = Select::new();
        let batches = sel.recv(&batch_rx);
        let scored = sel.recv(&rec_rx);
        let mut open = 2;
        let mut last_tick = Instant::now();
        while open > 0 {
            // A timeout so a sink flushes and rotates its files by time, and the IPFIX
            // exporter sends a waiting message, on a quiet link too.
            match sel.select_timeout(TICK) {
                Ok(op) if op.index() == batches => match op.recv(&batch_rx) {
                    Ok(SinkBatch { records, lines }) => {
                        if lines.is_none() {
                            unformatted.fetch_sub(1, Ordering::AcqRel);
                        }
                        for (i, rec) in records.iter().enumerate() {
                            let line = lines.as_ref().map(|l| l.line(i));
                            if let (None, Some(next)) = (line, records.get(i + 1)) {
                                // Formatted here: ask for the next one's values meanwhile.
                                crate::sink::prefetch_values(next);
                            }
                            write(&mut st, rec, line, &mut records_sink, &mut exporter);
                        }
                        written.fetch_add(records.len() as u64, Ordering::Relaxed);
                        let _ = recycle.try_send(records);
                        if let Some(l) = lines {
                            let _ = lines_back.try_send(l);
                        }
                    }
                    Err(_) => {
                        sel.remove(batches);
                        open -= 1;
                    }
                },
                Ok(op) => match op.recv(&rec_rx) {
                    // The only other operation: the scorer's records.
                    Ok(rec) => {
                        write(&mut st, &rec, None, &mut records_sink, &mut exporter);
                        written.fetch_add(1, Ordering::Relaxed);
                        returns.push(rec);
                    }
                    Err(_) => {
                        sel.remove(scored);
                        open -= 1;
                    }
                },
                Err(_) => {}
            }
            if last_tick.elapsed() >= TICK {
                last_tick = Instant::now();
                returns.send();
                if let Some(x) = exporter.as_mut() {
                    x.tick();
                }
                if let Some(s) = records_sink.as_mut() {
                    if reopen.swap(false, Ordering::AcqRel) {
                        match s.reopen() {
                            Ok(()) => tracing::info!("records file reopened"),
                            Err(e) => error(&mut st, "cannot reopen the records file", e),
                        }
                    }
                    if let Err(e) = s.tick() {
                        error(&mut st, "cannot flush or rotate the records file", e);
                    }
                }
            }
        }
        if let Some(s) = records_sink.as_mut() {
            if let Err(e) = s.finish() {
                st.write_errors += 1;
                tracing::error!(error = %e, "cannot finish the records file");
                st.first_error.get_or_insert(e.to_string());
            }
            st.records_lost = s.lost();
            if st.records_lost > 0 {
                tracing::error!(records = st.records_lost, "records lost to failed writes");
            }
        }
        st.ipfix = exporter.as_mut().map(|x| x.finish());
        st
    }
}

/// Count a failed write; the first one is logged and kept for the run's summary.
fn error(st: &mut OutputStats, what: &str, e: std::io::Error) {
    st.write_errors += 1;
    if st.first_error.is_none() {
        tracing::error!(error = %e, "{what}");
        st.first_error = Some(e.to_string());
    }
}

/// One record to the IPFIX exporter and the records sink, counted; `line` is its line when
/// the dispatch thread formatted it.
fn write(
    st: &mut OutputStats,
    rec: &FlowRecord,
    line: Option<&[u8]>,
    sink: &mut Option<Box<dyn RecordSink>>,
    exporter: &mut Option<crate::sink::ipfix::IpfixSink>,
) {
    if let Some(x) = exporter.as_mut() {
        x.export(rec);
    }
    st.records += 1;
    if rec.interval.is_some() {
        st.interval_records += 1;
    } else {
        st.packets += rec.bidirectional.packets;
    }
    if let Some(s) = sink.as_mut() {
        let r = match line {
            Some(l) => s.write_line(l),
            None => s.write(rec),
        };
        if let Err(e) = r {
            error(st, "cannot write flow record", e);
        }
    }
}

/// Scored records (written one by one) the workers get back per this many, as a batch
/// written whole (about a worker's batch: the emptied batches they come in hold as many).
const RETURN_BATCH: usize = 64;

/// Scored records gathered into batches for the workers to reuse their memory (feature
/// vectors, texts, scores), as the batches written whole are: so making and scoring a record
/// allocates nothing once records come back. The batches are the workers' own, emptied by
/// the dispatch thread; a new one is only made when none is waiting.
struct Returns {
    batch: Vec<FlowRecord>,
    empties: Receiver<Vec<FlowRecord>>,
    recycle: crossbeam_channel::Sender<Vec<FlowRecord>>,
}

impl Returns {
    fn push(&mut self, rec: FlowRecord) {
        self.batch.push(rec);
        if self.batch.len() >= RETURN_BATCH {
            self.send();
        }
    }

    /// Hand the gathered records back (dropped here when the workers are not taking them).
    fn send(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let next = self.empties.try_recv().unwrap_or_default();
        let _ = self
            .recycle
            .try_send(std::mem::replace(&mut self.batch, next));
    }
}

/// The alerts thread: alert lines to the alerts file (as eve.json events when asked), counted
/// by kind.
pub(super) struct AlertWriter {
    pub alert_rx: Receiver<String>,
    pub alert_file: Option<sink::textfile::TextFile>,
    pub alerts_format: sink::eve::AlertsFormat,
    pub counts: Arc<AlertCounts>,
    pub reopen: Arc<AtomicBool>,
}

impl AlertWriter {
    pub fn run(self) -> (u64, Option<String>) {
        let AlertWriter {
            alert_rx,
            mut alert_file,
            alerts_format,
            counts,
            reopen,
        } = self;
        let mut n = 0u64;
        let mut err = None;
        let mut last_tick = Instant::now();
        loop {
            match alert_rx.recv_timeout(TICK) {
                Ok(line) => {
                    n += 1;
                    counts.count_line(&line);
                    if let Some(f) = alert_file.as_mut() {
                        let line = match alerts_format {
                            sink::eve::AlertsFormat::Eve => {
                                sink::eve::to_eve(&line).unwrap_or(line)
                            }
                            sink::eve::AlertsFormat::Jsonl => line,
                        };
                        let buf = f.line();
                        buf.extend_from_slice(line.as_bytes());
                        buf.push(b'\n');
                        if let Err(e) = f.end_line() {
                            err.get_or_insert(e.to_string());
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if last_tick.elapsed() >= TICK {
                last_tick = Instant::now();
                if let Some(f) = alert_file.as_mut() {
                    if reopen.swap(false, Ordering::AcqRel) {
                        if let Err(e) = f.reopen() {
                            err.get_or_insert(e.to_string());
                        }
                    }
                    if let Err(e) = f.tick() {
                        err.get_or_insert(e.to_string());
                    }
                }
            }
        }
        if let Some(f) = alert_file.as_mut() {
            if let Err(e) = f.finish() {
                err.get_or_insert(e.to_string());
            }
        }
        (n, err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::record::RecordSchema;
    use crate::flow::schema::tests::full_record;
    use crossbeam_channel::bounded;

    #[test]
    fn scored_records_go_back_in_the_batches_the_dispatch_emptied() {
        let (empties_tx, empties) = bounded(8);
        let (recycle, recycled) = bounded(8);
        let rec = || full_record(&RecordSchema::default(), None);
        let mut r = Returns {
            batch: Vec::new(),
            empties,
            recycle,
        };
        let emptied: Vec<FlowRecord> = Vec::with_capacity(RETURN_BATCH);
        let at = emptied.as_ptr();
        empties_tx.send(emptied).unwrap();
        for _ in 0..RETURN_BATCH {
            r.push(rec());
        }
        assert_eq!(recycled.try_recv().unwrap().len(), RETURN_BATCH);
        // The next ones gather in the emptied batch, and a tick sends what there is.
        r.push(rec());
        r.send();
        let second = recycled.try_recv().unwrap();
        assert_eq!((second.len(), second.as_ptr()), (1, at));
        r.send();
        assert!(
            recycled.try_recv().is_err(),
            "nothing gathered, nothing sent"
        );
    }
}
