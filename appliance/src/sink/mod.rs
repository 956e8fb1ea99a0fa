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
pub mod replace;
pub mod text;
pub mod textfile;

pub use parquet_dataset::Rotation;
pub use textfile::{Start, TextOptions};

use crate::flow::record::{FlowRecord, RecordSchema};
use crate::flow::schema::{ColumnType, Value};
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
    /// For a sink that writes one line per record (CSV, JSON Lines): what makes its lines, for
    /// another thread to format records while this one writes ([`RecordSink::write_line`]).
    fn line_format(&self) -> Option<Box<dyn LineFormat>> {
        None
    }
    /// Write a record's line made by [`RecordSink::line_format`] (with its newline): the
    /// same bytes, rotation and errors as [`RecordSink::write`] of that record.
    fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        let _ = line;
        Err(io::Error::other("this records sink does not take lines"))
    }
}

/// Ask for the lines of `rec`'s feature values, a record ahead of formatting it. A worker
/// wrote them on another core moments before (or long before, for the flows flushed at the
/// end of input): their first read was a miss a line, a third of a CSV line's formatting on
/// a many-flow extract (the default plugins' 169 values are 21 lines), and one record's
/// formatting (a few thousand cycles) hides the next one's.
#[inline]
pub fn prefetch_values(rec: &FlowRecord) {
    crate::prefetch::lines(
        rec.values.as_ptr().cast(),
        std::mem::size_of_val(&rec.values[..]),
    );
}

/// Formats a record as a sink's line.
pub trait LineFormat: Send {
    /// Append `rec`'s line, with its newline, to `line`.
    fn format(&self, rec: &FlowRecord, line: &mut Vec<u8>);
}

/// A records file of one line per record (CSV, JSON Lines): a [`textfile::TextFile`] and what
/// makes its lines, which the output stage's dispatch thread may borrow a copy of.
pub struct LineSink<L> {
    out: textfile::TextFile,
    lines: L,
}

impl<L> LineSink<L> {
    pub fn new(out: textfile::TextFile, lines: L) -> Self {
        LineSink { out, lines }
    }
}

impl<L: LineFormat + Clone + 'static> RecordSink for LineSink<L> {
    fn write(&mut self, rec: &FlowRecord) -> io::Result<()> {
        self.lines.format(rec, self.out.line());
        self.out.end_line()
    }

    fn line_format(&self) -> Option<Box<dyn LineFormat>> {
        Some(Box::new(self.lines.clone()))
    }

    fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        self.out.line().extend_from_slice(line);
        self.out.end_line()
    }

    fn tick(&mut self) -> io::Result<()> {
        self.out.tick()
    }

    fn reopen(&mut self) -> io::Result<()> {
        self.out.reopen()
    }

    fn finish(&mut self) -> io::Result<()> {
        self.out.finish()
    }
}

/// A batch's records formatted as lines: `bytes` holds them in order, line `i` ending at
/// `ends[i]`. Reused from batch to batch.
#[derive(Default)]
pub struct Lines {
    pub bytes: Vec<u8>,
    pub ends: Vec<u32>,
}

impl Lines {
    /// Format every record of `records` (after clearing what was there).
    pub fn format_all(&mut self, f: &dyn LineFormat, records: &[FlowRecord]) {
        self.bytes.clear();
        self.ends.clear();
        for (i, rec) in records.iter().enumerate() {
            if let Some(next) = records.get(i + 1) {
                prefetch_values(next);
            }
            f.format(rec, &mut self.bytes);
            self.ends.push(self.bytes.len() as u32);
        }
    }

    /// Line `i`, with its newline.
    pub fn line(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.bytes[start..self.ends[i] as usize]
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
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

impl<'a> From<Value<'a>> for Field<'a> {
    #[inline(always)]
    fn from(v: Value<'a>) -> Field<'a> {
        match v {
            Value::Str(s) => Field::Str(s),
            Value::Ip(ip) => Field::Ip(ip),
            Value::Int(i) => Field::Int(i),
            Value::UInt(u) => Field::UInt(u),
            Value::Float(x) => Field::Float(x),
            Value::Missing => Field::Missing,
        }
    }
}

/// What a sink does with a record's columns, in header order: one [`Field`] at a time, or a
/// run of plugin columns of one numeric type at once ([`walk`]).
pub(crate) trait Visit<'a> {
    fn field(&mut self, f: Field<'a>);

    /// A run of float columns; NaN is missing.
    fn floats(&mut self, v: &'a [f64]) {
        for &x in v {
            self.field(if x.is_nan() {
                Field::Missing
            } else {
                Field::Float(x)
            });
        }
    }

    /// A run of integer columns (held as doubles); NaN is missing.
    fn ints(&mut self, v: &'a [f64]) {
        for &x in v {
            self.field(if x.is_nan() {
                Field::Missing
            } else {
                Field::Int(x as i64)
            });
        }
    }
}

/// The plugin columns of a schema as runs of one type (`ColumnType`, first, end), so a sink
/// writes a run of numbers in a tight loop instead of matching on each field's kind: the
/// default plugins' 169 columns are 16 runs, the 96 of `splt` one.
#[derive(Clone, Debug, Default)]
pub(crate) struct Runs(Vec<(ColumnType, usize, usize)>);

impl Runs {
    pub(crate) fn new(schema: &RecordSchema) -> Runs {
        let mut runs: Vec<(ColumnType, usize, usize)> = Vec::new();
        for i in 0..schema.kinds.len() {
            let t = schema.extra_type(i);
            match runs.last_mut() {
                Some((last, _, end)) if *last == t => *end = i + 1,
                _ => runs.push((t, i, i + 1)),
            }
        }
        Runs(runs)
    }
}

/// Walk a record's columns in header order, the plugin columns by runs: the same values as
/// [`RecordSchema::walk`] (checked by the tests), with one call per run of numbers.
#[inline]
pub(crate) fn walk<'a>(
    rec: &'a FlowRecord,
    schema: &'a RecordSchema,
    runs: &Runs,
    v: &mut impl Visit<'a>,
) {
    crate::flow::schema::walk_core(rec, schema, &mut |c| v.field(c.into()));
    let values = &rec.values[..];
    let mut text = 0;
    for &(t, start, end) in &runs.0 {
        let run = values.get(start..end.min(values.len())).unwrap_or(&[]);
        match t {
            ColumnType::Float => v.floats(run),
            ColumnType::Int | ColumnType::UInt => v.ints(run),
            ColumnType::Text => {
                for _ in run {
                    v.field(rec.texts.get(text).map_or(Field::Missing, Field::Str));
                    text += 1;
                }
            }
        }
    }
    // Values past the declared kinds are floats, as in the schema's walk.
    if let Some(rest) = values.get(schema.kinds.len()..) {
        v.floats(rest);
    }
    if schema.scored {
        v.field(schema.prediction(rec).into());
        for i in 0..schema.scores.len() {
            v.field(match rec.scores.get(i) {
                Some(x) if !x.is_nan() => Field::Float(*x),
                _ => Field::Missing,
            });
        }
        v.field(Field::Str(rec.score_status.as_str()));
        match &rec.model {
            Some(t) => {
                v.field(Field::Str(&t.name));
                v.field(Field::Str(&t.version));
            }
            None => {
                v.field(Field::Str(""));
                v.field(Field::Str(""));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::schema::tests::{full_record, schemas};
    use crate::flow::schema::CoreColumn;
    use ::parquet::file::reader::{FileReader, SerializedFileReader};
    use ipfix::template::{Selection, Template, DEFAULT_WEIR_PEN};

    /// Lines made by a sink's `line_format` (on the dispatch thread) and written with
    /// `write_line` give the file `write` gives, byte for byte; Parquet takes no lines.
    #[test]
    fn lines_made_on_another_thread_are_the_lines_write_makes() {
        let dir = tempfile::tempdir().unwrap();
        for (n, s) in schemas().iter().enumerate() {
            let span = crate::flow::record::IntervalSpan {
                start_ms: 1_000,
                end_ms: 2_000,
            };
            let recs = [full_record(s, None), full_record(s, Some(span))];
            for ext in ["csv", "jsonl"] {
                let direct = dir.path().join(format!("d{n}.{ext}"));
                let mut sink = open(&direct, s).unwrap();
                for r in &recs {
                    sink.write(r).unwrap();
                }
                sink.finish().unwrap();
                let via = dir.path().join(format!("v{n}.{ext}"));
                let mut sink = open(&via, s).unwrap();
                let mut lines = Lines::default();
                let f = sink.line_format().expect("a text sink makes lines");
                lines.format_all(f.as_ref(), &recs);
                assert_eq!(lines.len(), recs.len());
                for i in 0..lines.len() {
                    assert_eq!(lines.line(i).last(), Some(&b'\n'));
                    sink.write_line(lines.line(i)).unwrap();
                }
                sink.finish().unwrap();
                let (a, b) = (
                    std::fs::read(&direct).unwrap(),
                    std::fs::read(&via).unwrap(),
                );
                assert!(a.len() > 100, "{ext}: too short");
                assert_eq!(a, b, "{ext}, schema {n}: the two paths differ");
            }
            let pq = open(&dir.path().join(format!("p{n}.parquet")), s).unwrap();
            assert!(pq.line_format().is_none());
        }
    }

    /// Every sink writes the schema's columns, in its order: the CSV header and row, the JSON
    /// Lines object, the Parquet file's columns; the IPFIX template carries the core columns
    /// and can select every named column but the model's bookkeeping.
    /// A field as text, to compare walks.
    fn show(f: Field<'_>) -> String {
        match f {
            Field::Str(s) => format!("s{s}"),
            Field::Ip(ip) => format!("a{ip}"),
            Field::Int(i) => format!("i{i}"),
            Field::UInt(u) => format!("u{u}"),
            Field::Float(x) => format!("f{x:?}"),
            Field::Missing => "-".into(),
        }
    }

    /// Collects fields (runs through the trait's per-field defaults).
    struct Collect(Vec<String>);

    impl<'a> Visit<'a> for Collect {
        fn field(&mut self, f: Field<'a>) {
            self.0.push(show(f));
        }
    }

    /// The sinks' walk by runs gives the values of the schema's walk, in its order: with every
    /// kind of column, missing values, text, scores, and records with fewer or more values than
    /// the schema declares.
    #[test]
    fn the_walk_by_runs_gives_the_schemas_values() {
        for s in schemas() {
            let runs = Runs::new(&s);
            let mut rec = full_record(&s, None);
            for n in [0, 1, 2, 3, 4, 5, 6] {
                rec.values = (0..n)
                    .map(|i| match i % 3 {
                        0 => f64::NAN,
                        1 => i as f64 * 1.5,
                        _ => -(i as f64),
                    })
                    .collect();
                if n == s.kinds.len() {
                    rec.scores.iter_mut().for_each(|x| *x = f64::NAN);
                }
                let mut want = Vec::new();
                s.walk(&rec, |v| want.push(show(v.into())));
                let mut got = Collect(Vec::new());
                walk(&rec, &s, &runs, &mut got);
                assert_eq!(got.0, want, "{n} values of {:?}", s.kinds);
            }
        }
    }

    #[test]
    fn every_sink_writes_the_schemas_columns() {
        let dir = tempfile::tempdir().unwrap();
        for (n, s) in schemas().iter().enumerate() {
            let header = s.header();
            let rec = full_record(s, None);
            let mut walked = 0;
            s.walk(&rec, |_| walked += 1);
            assert_eq!(walked, header.len());

            let path = |ext: &str| dir.path().join(format!("r{n}.{ext}"));
            for ext in ["csv", "jsonl", "parquet"] {
                let mut sink = open(&path(ext), s).unwrap();
                sink.write(&rec).unwrap();
                sink.finish().unwrap();
            }
            let csv = std::fs::read_to_string(path("csv")).unwrap();
            let lines: Vec<&str> = csv.lines().collect();
            assert_eq!(lines[0], header.join(","));
            assert_eq!(lines[1].split(',').count(), header.len());
            let json = std::fs::read_to_string(path("jsonl")).unwrap();
            let mut keys: Vec<String> = serde_json::from_str::<serde_json::Map<_, _>>(&json)
                .unwrap()
                .keys()
                .cloned()
                .collect();
            keys.sort();
            let mut sorted = header.clone();
            sorted.sort();
            assert_eq!(keys, sorted);
            let pq =
                SerializedFileReader::new(std::fs::File::open(path("parquet")).unwrap()).unwrap();
            let names: Vec<String> = pq
                .metadata()
                .file_metadata()
                .schema_descr()
                .columns()
                .iter()
                .map(|c| c.name().to_string())
                .collect();
            assert_eq!(names, header);

            let sel = Selection::all(s);
            let mut named: Vec<&str> = sel.names(s);
            let model = ["prediction", "score_status", "model_name", "model_version"];
            let mut rest: Vec<&str> = header[CoreColumn::ALL.len()..]
                .iter()
                .map(|h| h.as_str())
                .filter(|h| !model.contains(h))
                .collect();
            named.sort_unstable();
            rest.sort_unstable();
            assert_eq!(named, rest);
            let (t, _) = Template::for_schema(s, &sel, 4, DEFAULT_WEIR_PEN);
            // 21 core fields, the named ones, and prediction and score_status with a model.
            let model_fields = if s.scored { 2 } else { 0 };
            assert_eq!(t.specs().count(), 21 + named.len() + model_fields);
        }
    }
}
