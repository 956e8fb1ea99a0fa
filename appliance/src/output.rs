//! The output stage: a thread that takes finished records from the workers (in per-burst
//! batches over a bounded channel) and writes them to the records sink. Scoring, when a model
//! is loaded, sits in front of it.
//!
//! Backpressure instead of loss: when the sink is slower than the workers, the channel fills and
//! workers wait in `send` (visible as NIC `imissed` on a live port, never as a lost record).

use crate::flow::record::{FlowRecord, RecordSchema};
use crate::sink::{self, RecordSink};
use crossbeam_channel::{bounded, Receiver, Sender};
use std::path::PathBuf;
use std::thread::JoinHandle;

/// Totals of what the output stage wrote.
#[derive(Debug, Default, Clone)]
pub struct OutputStats {
    pub records: u64,
    pub packets: u64,
    pub write_errors: u64,
    pub first_error: Option<String>,
}

pub struct Output {
    pub tx: Sender<Vec<FlowRecord>>,
    handle: JoinHandle<OutputStats>,
}

impl Output {
    /// Start the output thread writing to `path` (format from the extension), or discarding
    /// records when `path` is `None` (counting them still).
    pub fn start(path: Option<PathBuf>, schema: &RecordSchema) -> Result<Output, String> {
        let mut sink: Option<Box<dyn RecordSink>> = match &path {
            Some(p) => Some(sink::open(p, schema)?),
            None => None,
        };
        let (tx, rx): (Sender<Vec<FlowRecord>>, Receiver<Vec<FlowRecord>>) = bounded(1024);
        let handle = std::thread::Builder::new()
            .name("weir-output".into())
            .spawn(move || {
                let mut st = OutputStats::default();
                for batch in rx {
                    for rec in &batch {
                        st.records += 1;
                        st.packets += rec.bidirectional.packets;
                        if let Some(s) = sink.as_mut() {
                            if let Err(e) = s.write(rec) {
                                st.write_errors += 1;
                                if st.first_error.is_none() {
                                    tracing::error!(error = %e, "cannot write flow record");
                                    st.first_error = Some(e.to_string());
                                }
                            }
                        }
                    }
                }
                if let Some(s) = sink.as_mut() {
                    if let Err(e) = s.finish() {
                        st.write_errors += 1;
                        st.first_error.get_or_insert(e.to_string());
                    }
                }
                st
            })
            .map_err(|e| format!("cannot start the output thread: {e}"))?;
        Ok(Output { tx, handle })
    }

    /// Wait for every sender to be dropped and the sink to be finished.
    pub fn finish(self) -> OutputStats {
        drop(self.tx);
        self.handle.join().unwrap_or_default()
    }
}
