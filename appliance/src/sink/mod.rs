//! Sinks: where finished records and alerts go.
//!
//! Writers run on the output thread, never on a worker. The record format follows the file
//! extension (`.csv`, `.jsonl`, `.parquet`), and a directory is a partitioned Parquet dataset;
//! all write the same columns in the same order ([`RecordSchema::header`]), with NaN written
//! as an empty CSV field, JSON `null` or a Parquet null.
//! Beside the records file, [`ipfix`] exports the same records to a NetFlow/IPFIX collector.

pub mod csv;
pub mod eve;
pub mod ipfix;
pub mod jsonl;
pub mod parquet;
pub mod parquet_dataset;
pub mod text;
pub mod textfile;

pub use parquet_dataset::Rotation;
pub use textfile::{Start, TextOptions};

use crate::flow::record::{FlowRecord, RecordSchema};
use std::io;
use std::path::Path;

/// A destination for flow records.
pub trait RecordSink: Send {
    fn write(&mut self, rec: &FlowRecord) -> io::Result<()>;
    /// Flush buffers and make the file complete.
    fn finish(&mut self) -> io::Result<()>;
    /// Called about once a second by the output stage, records or not (time-based rotation).
    fn tick(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// Close and open the file at the configured path again (SIGUSR1, after logrotate moved
    /// it). Files that are only visible once complete (Parquet) ignore it.
    fn reopen(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// Records accepted but lost to a failed write that could not be retried (a Parquet row
    /// group that did not fit on the disk).
    fn lost(&self) -> u64 {
        0
    }
}

/// The format of a records file, from its extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    JsonLines,
    /// One `.parquet` file.
    Parquet,
    /// A directory (an existing one, or a path ending in `/`): `date=/hour=` partitions of
    /// rotated Parquet files.
    ParquetDataset,
}

impl Format {
    pub fn from_path(path: &Path) -> Result<Format, String> {
        if path.as_os_str().to_string_lossy().ends_with('/') || path.is_dir() {
            return Ok(Format::ParquetDataset);
        }
        match path.extension().and_then(|e| e.to_str()) {
            Some("csv") => Ok(Format::Csv),
            Some("jsonl") | Some("ndjson") => Ok(Format::JsonLines),
            Some("parquet") => Ok(Format::Parquet),
            other => Err(format!(
                "{}: unknown records format {:?}: use a .csv or .jsonl file name, a .parquet file, or a directory (ending in /) for a partitioned Parquet dataset",
                path.display(),
                other.unwrap_or("")
            )),
        }
    }
}

/// Open a records sink for `path` (format from the extension) with the default rotation.
pub fn open(path: &Path, schema: &RecordSchema) -> Result<Box<dyn RecordSink>, String> {
    open_rotated(path, schema, Rotation::default())
}

/// Open a records sink for `path`; a Parquet dataset rotates its files by `rotation`. A CSV or
/// JSON Lines file replaces an existing one ([`Start::Truncate`]).
pub fn open_rotated(
    path: &Path,
    schema: &RecordSchema,
    rotation: Rotation,
) -> Result<Box<dyn RecordSink>, String> {
    open_with(path, schema, rotation, TextOptions::default())
}

/// Open a records sink for `path`: a Parquet dataset rotates its files by `rotation`, a CSV or
/// JSON Lines file is started, flushed and rotated as `text` says.
pub fn open_with(
    path: &Path,
    schema: &RecordSchema,
    rotation: Rotation,
    text: TextOptions,
) -> Result<Box<dyn RecordSink>, String> {
    let fmt = Format::from_path(path)?;
    let err = |e: io::Error| format!("cannot create records file {}: {e}", path.display());
    Ok(match fmt {
        Format::Parquet => Box::new(parquet::ParquetSink::create(path, schema).map_err(err)?),
        Format::ParquetDataset => Box::new(
            parquet_dataset::ParquetDataset::create(path, schema, rotation)
                .map_err(|e| format!("cannot create records directory {}: {e}", path.display()))?,
        ),
        Format::Csv => Box::new(csv::CsvSink::create(path, schema.clone(), text).map_err(err)?),
        Format::JsonLines => {
            Box::new(jsonl::JsonlSink::create(path, schema.clone(), text).map_err(err)?)
        }
    })
}

/// One field of a record, formatted for text output.
pub(crate) enum Field<'a> {
    Str(&'a str),
    Ip(std::net::IpAddr),
    Int(i64),
    UInt(u64),
    Float(f64),
    Missing,
}

/// Walk a record's columns in header order.
pub(crate) fn fields<'a>(
    rec: &'a FlowRecord,
    schema: &'a RecordSchema,
    mut f: impl FnMut(Field<'a>),
) {
    use weir_plugin_api::{WEIR_FEATURE_BOOL, WEIR_FEATURE_TEXT, WEIR_FEATURE_U64};
    f(Field::Ip(rec.src_ip()));
    f(Field::UInt(rec.key.src_port as u64));
    f(Field::Ip(rec.dst_ip()));
    f(Field::UInt(rec.key.dst_port as u64));
    f(Field::UInt(rec.key.protocol as u64));
    f(Field::UInt(rec.key.ip_version as u64));
    f(Field::UInt(rec.key.vlan_id as u64));
    f(Field::UInt(rec.key.tunnel_id as u64));
    for c in [&rec.bidirectional, &rec.src2dst, &rec.dst2src] {
        f(Field::UInt(c.first_seen_ms));
        f(Field::UInt(c.last_seen_ms));
        f(Field::UInt(c.duration_ms()));
        f(Field::UInt(c.packets));
        f(Field::UInt(c.bytes));
    }
    match rec.interval {
        // An interval does not end a flow: no expiration_id.
        Some(_) => f(Field::Missing),
        None => f(Field::Int(rec.expiration as i8 as i64)),
    }
    f(Field::UInt(rec.worker as u64));
    f(Field::Str(rec.kind().as_str()));
    match rec.interval {
        Some(iv) => {
            f(Field::UInt(iv.start_ms));
            f(Field::UInt(iv.end_ms));
        }
        None => {
            f(Field::Missing);
            f(Field::Missing);
        }
    }
    f(Field::Str(schema.service_name(rec.service)));
    f(Field::Str(rec.community_id.as_str()));
    let mut text = 0;
    for (i, v) in rec.values.iter().enumerate() {
        let kind = schema.kinds.get(i).copied().unwrap_or(0);
        if kind == WEIR_FEATURE_TEXT {
            f(match rec.texts.get(text) {
                Some(s) => Field::Str(s),
                None => Field::Missing,
            });
            text += 1;
            continue;
        }
        f(if v.is_nan() {
            Field::Missing
        } else if kind == WEIR_FEATURE_U64 || kind == WEIR_FEATURE_BOOL {
            Field::Int(*v as i64)
        } else {
            Field::Float(*v)
        });
    }
    if schema.scored {
        match rec.prediction {
            Some(p) if !schema.classes.is_empty() => f(Field::Str(
                schema
                    .classes
                    .get(p as usize)
                    .map(|s| s.as_str())
                    .unwrap_or(""),
            )),
            Some(p) => f(Field::UInt(p as u64)),
            None => f(Field::Missing),
        }
        for i in 0..schema.scores.len() {
            match rec.scores.get(i) {
                Some(v) if !v.is_nan() => f(Field::Float(*v)),
                _ => f(Field::Missing),
            }
        }
        f(Field::Str(rec.score_status.as_str()));
        match &rec.model {
            Some(t) => {
                f(Field::Str(&t.name));
                f(Field::Str(&t.version));
            }
            None => {
                f(Field::Str(""));
                f(Field::Str(""));
            }
        }
    }
}
