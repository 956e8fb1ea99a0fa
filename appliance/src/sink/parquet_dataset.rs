//! A partitioned Parquet dataset: records in `DIR/date=YYYY-MM-DD/hour=HH/*.parquet`, so
//! Spark (`spark.read.parquet(DIR)`) and pandas/pyarrow (`pd.read_parquet(DIR)`) read the
//! directory as one table with `date` and `hour` partition columns.
//!
//! A record's partition is the UTC hour of its `bidirectional_last_seen_ms` (when the flow
//! ended, which is when weir emits it): a live run then writes mostly into the current hour,
//! as a NetFlow collector files flows by the time they were exported.
//!
//! Each partition has at most one open file. A file is closed, and only then visible under its
//! final name (see [`super::parquet`]), when it reaches the size limit, when it has been open
//! for the time limit (checked on every record and on the output stage's tick, so a quiet link
//! still publishes its records), when more than [`MAX_OPEN`] partitions are open (the least
//! recently written is closed), and at the end of the run. File names are
//! `flows-<unix ms when opened>-<pid>-<sequence>.parquet`, unique across runs and restarts.

use super::parquet::{sync_dir, Layout, ParquetFile};
use super::RecordSink;
use crate::flow::record::{FlowRecord, RecordSchema};
use chrono::{DateTime, Datelike, Timelike};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Open files (partitions) at most; records arrive roughly in end-time order, so more than
/// two are open only at the end flush of an offline capture.
pub const MAX_OPEN: usize = 8;

/// When a dataset file is closed and a new one started (`[sinks] parquet_rotate_mb`,
/// `parquet_rotate_s`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rotation {
    /// Close a file once it holds about this many bytes (row groups written, compressed, plus
    /// the rows buffered for the next one).
    pub max_bytes: u64,
    /// Close a file once it has been open this long.
    pub max_age: Duration,
}

impl Default for Rotation {
    fn default() -> Self {
        Rotation {
            max_bytes: 128 << 20,
            max_age: Duration::from_secs(300),
        }
    }
}

impl Rotation {
    /// From the config's megabytes and seconds.
    pub fn from_config(mb: f64, secs: f64) -> Rotation {
        Rotation {
            max_bytes: (mb * 1024.0 * 1024.0).round().max(1.0) as u64,
            max_age: Duration::from_secs_f64(secs),
        }
    }
}

/// `(date=YYYY-MM-DD, hour=HH)` of a time in Unix milliseconds (UTC).
pub fn partition_of(ms: u64) -> (String, String) {
    let t = DateTime::from_timestamp_millis(ms.min(i64::MAX as u64) as i64).unwrap_or_default();
    (
        format!("date={:04}-{:02}-{:02}", t.year(), t.month(), t.day()),
        format!("hour={:02}", t.hour()),
    )
}

struct Open {
    dir: PathBuf,
    file: ParquetFile,
    /// A counter value at the last write (least recently written is closed first).
    last_write: u64,
}

pub struct ParquetDataset {
    root: PathBuf,
    layout: Arc<Layout>,
    rotation: Rotation,
    open: Vec<Open>,
    writes: u64,
    seq: u64,
    pid: u32,
    /// The last time every open file was checked against the age limit: on a busy sink the
    /// output stage's tick never comes, and a partition no longer written must still close.
    last_sweep: Instant,
}

impl ParquetDataset {
    /// Create the dataset directory if needed and check that files can be made in it.
    pub fn create(
        root: &Path,
        schema: &RecordSchema,
        rotation: Rotation,
    ) -> io::Result<ParquetDataset> {
        // The caller's message names `root`.
        std::fs::create_dir_all(root)?;
        let probe = root.join(format!(".weir-probe-{}.tmp", std::process::id()));
        std::fs::File::create(&probe)?;
        let _ = std::fs::remove_file(&probe);
        Ok(ParquetDataset {
            root: root.to_path_buf(),
            layout: Layout::new(schema)?,
            rotation,
            open: Vec::new(),
            writes: 0,
            seq: 0,
            pid: std::process::id(),
            last_sweep: Instant::now(),
        })
    }

    /// The open file of a partition directory, opening one (and closing the least recently
    /// written when too many are open).
    fn file_for(&mut self, dir: PathBuf) -> io::Result<usize> {
        if let Some(i) = self.open.iter().position(|o| o.dir == dir) {
            return Ok(i);
        }
        if self.open.len() >= MAX_OPEN {
            let lru = (0..self.open.len())
                .min_by_key(|&i| self.open[i].last_write)
                .expect("open is not empty");
            self.open.swap_remove(lru).file.commit()?;
        }
        if !dir.is_dir() {
            std::fs::create_dir_all(&dir)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
            // The new `date=`/`hour=` entries must survive a crash as the files in them do.
            let mut d = dir.as_path();
            while let Some(parent) = d.parent() {
                sync_dir(parent)?;
                if parent == self.root {
                    break;
                }
                d = parent;
            }
        }
        self.seq += 1;
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let name = format!("flows-{now_ms}-{}-{:06}.parquet", self.pid, self.seq);
        let file = ParquetFile::create(&dir.join(name), &self.layout)?;
        self.open.push(Open {
            dir,
            file,
            last_write: 0,
        });
        Ok(self.open.len() - 1)
    }

    fn expired(&self, o: &Open) -> bool {
        o.file.approx_bytes() >= self.rotation.max_bytes
            || o.file.opened.elapsed() >= self.rotation.max_age
    }

    /// Close every file past a rotation limit; the first error, after trying all.
    fn rotate(&mut self) -> io::Result<()> {
        let mut first_err = None;
        let mut i = 0;
        while i < self.open.len() {
            if self.expired(&self.open[i]) {
                if let Err(e) = self.open.swap_remove(i).file.commit() {
                    first_err.get_or_insert(e);
                }
            } else {
                i += 1;
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

impl RecordSink for ParquetDataset {
    fn write(&mut self, rec: &FlowRecord) -> io::Result<()> {
        let (date, hour) = partition_of(rec.bidirectional.last_seen_ms);
        let dir = self.root.join(date).join(hour);
        self.writes += 1;
        let n = self.writes;
        let i = match self.file_for(dir) {
            Ok(i) => i,
            Err(e) => {
                self.layout
                    .lost
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return Err(e);
            }
        };
        self.open[i].last_write = n;
        if let Err(e) = self.open[i].file.push(rec) {
            if self.open[i].file.broken {
                // Closed with the row groups written whole (the loss is counted); the next
                // record of this partition starts a new file.
                let _ = self.open.swap_remove(i).file.commit();
            }
            return Err(e);
        }
        if self.expired(&self.open[i]) {
            self.open.swap_remove(i).file.commit()?;
        }
        if self.last_sweep.elapsed() >= Duration::from_secs(1) {
            self.last_sweep = Instant::now();
            self.rotate()?;
        }
        Ok(())
    }

    fn tick(&mut self) -> io::Result<()> {
        self.last_sweep = Instant::now();
        self.rotate()
    }

    fn lost(&self) -> u64 {
        self.layout.lost.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn finish(&mut self) -> io::Result<()> {
        let mut first_err = None;
        for o in self.open.drain(..) {
            if let Err(e) = o.file.commit() {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_utc_hours() {
        // 2024-02-29T23:59:59.999Z and one millisecond later.
        assert_eq!(
            partition_of(1_709_251_199_999),
            ("date=2024-02-29".into(), "hour=23".into())
        );
        assert_eq!(
            partition_of(1_709_251_200_000),
            ("date=2024-03-01".into(), "hour=00".into())
        );
        assert_eq!(
            partition_of(0),
            ("date=1970-01-01".into(), "hour=00".into())
        );
    }

    fn record(last_seen_ms: u64) -> FlowRecord {
        let c = crate::flow::record::DirCounters {
            first_seen_ms: last_seen_ms,
            last_seen_ms,
            packets: 1,
            bytes: 60,
        };
        FlowRecord {
            key: weir_plugin_api::FlowKeyV1 {
                ip_version: 4,
                ..Default::default()
            },
            expiration: crate::flow::record::Expiration::Idle,
            worker: 0,
            service: 0,
            interval: None,
            bidirectional: c,
            src2dst: c,
            dst2src: Default::default(),
            values: vec![],
            texts: Default::default(),
            score_status: Default::default(),
            prediction: None,
            scores: vec![],
            icmp: [0; 2],
            community_id: Default::default(),
            model: None,
        }
    }

    /// (final files, hidden files) under `root`.
    fn files(root: &Path) -> (usize, usize) {
        let (mut done, mut tmp) = (0, 0);
        let mut dirs = vec![root.to_path_buf()];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                if e.path().is_dir() {
                    dirs.push(e.path());
                } else if e.file_name().to_string_lossy().starts_with('.') {
                    tmp += 1;
                } else {
                    done += 1;
                }
            }
        }
        (done, tmp)
    }

    #[test]
    fn files_are_published_by_age_on_a_quiet_sink() {
        let dir = tempfile::tempdir().unwrap();
        let rot = Rotation {
            max_bytes: 1 << 30,
            max_age: Duration::from_millis(200),
        };
        let mut ds = ParquetDataset::create(dir.path(), &RecordSchema::default(), rot).unwrap();
        // Two hours: two files open, nothing visible yet.
        ds.write(&record(1_709_251_199_000)).unwrap();
        ds.write(&record(1_709_251_200_000)).unwrap();
        ds.tick().unwrap();
        assert_eq!(files(dir.path()), (0, 2));
        std::thread::sleep(Duration::from_millis(250));
        // No record comes: the tick alone publishes both.
        ds.tick().unwrap();
        assert_eq!(files(dir.path()), (2, 0));
        ds.write(&record(1_709_251_200_001)).unwrap();
        ds.finish().unwrap();
        assert_eq!(files(dir.path()), (3, 0));
    }

    #[test]
    fn a_partition_no_longer_written_closes_by_age_on_a_busy_sink() {
        let dir = tempfile::tempdir().unwrap();
        let rot = Rotation {
            max_bytes: 1 << 30,
            max_age: Duration::from_millis(300),
        };
        let mut ds = ParquetDataset::create(dir.path(), &RecordSchema::default(), rot).unwrap();
        ds.write(&record(1_709_251_199_000)).unwrap(); // hour 23, then never again
                                                       // Records of the next hour keep coming, with no tick in between.
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(1500) {
            ds.write(&record(1_709_251_200_000)).unwrap();
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            dir.path()
                .join("date=2024-02-29/hour=23")
                .read_dir()
                .unwrap()
                .any(|e| !e.unwrap().file_name().to_string_lossy().starts_with('.')),
            "the hour-23 file is published while hour 00 is written"
        );
        ds.finish().unwrap();
    }

    #[test]
    fn more_partitions_than_open_files_closes_the_least_recent() {
        let dir = tempfile::tempdir().unwrap();
        let mut ds =
            ParquetDataset::create(dir.path(), &RecordSchema::default(), Rotation::default())
                .unwrap();
        for h in 0..(MAX_OPEN as u64 + 1) {
            ds.write(&record(h * 3_600_000)).unwrap();
        }
        assert_eq!(ds.open.len(), MAX_OPEN);
        assert_eq!(files(dir.path()), (1, MAX_OPEN));
        assert!(dir.path().join("date=1970-01-01/hour=00").is_dir());
        ds.finish().unwrap();
        assert_eq!(files(dir.path()), (MAX_OPEN + 1, 0));
    }
}
