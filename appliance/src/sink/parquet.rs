//! Parquet records: one file, typed columns with the CSV header's names.
//!
//! The column types come from the same walk that writes a record ([`super::fields`]): a
//! probe record with every value present is walked once at start, and each field's variant
//! gives its column's type (text `BYTE_ARRAY` UTF8, `INT64`, `DOUBLE`). A column added to the
//! walk thus gets a Parquet type with no change here. Every column is `OPTIONAL`: NaN and
//! missing values are nulls.
//!
//! Unsigned fields (counters, ports, `*_seen_ms` milliseconds since the epoch) are written as
//! plain signed `INT64` (logical type INTEGER(64, signed)), not `UINT_64`: Spark reads UINT_64
//! as `decimal(20,0)` and pandas as `uint64`, which then need casts, while every value weir
//! counts fits in 63 bits. Times stay integer milliseconds, as in the CSV and NFStream.
//!
//! Rows are buffered per column and written as a row group when the buffer is large; the file
//! is written under a hidden temporary name (`.NAME.parquet.tmp`, which pyarrow, Spark and
//! Hive skip) and only renamed to `NAME.parquet` once its footer is written and it is fsynced,
//! then the directory is fsynced: a crash leaves no half file under a final name.
//!
//! The low-level typed column writer of the `parquet` crate is used rather than its Arrow
//! writer: records go straight from [`FlowRecord`] into column buffers (no Arrow arrays in
//! between) and the build does not pull in arrow-rs.

use super::{fields, Field, RecordSink};
use crate::flow::record::{Expiration, FlowRecord, RecordSchema, ScoreStatus};
use parquet::basic::{Compression, LogicalType, Repetition, Type as Physical};
use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int64Type};
use parquet::file::properties::{WriterProperties, WriterPropertiesPtr};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::{Type, TypePtr};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// A row group is written once this many rows are buffered...
const ROW_GROUP_ROWS: usize = 128 * 1024;
/// ... or once the buffered values take about this many bytes.
const ROW_GROUP_BYTES: u64 = 64 << 20;

/// The Parquet type of one column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ColKind {
    Utf8,
    Int64,
    UInt64,
    Double,
}

/// The columns of a run's records, their Parquet schema and the writer settings, shared by
/// every file of a dataset.
pub(crate) struct Layout {
    pub schema: RecordSchema,
    pub kinds: Vec<ColKind>,
    parquet_schema: TypePtr,
    props: WriterPropertiesPtr,
}

fn to_io(e: parquet::errors::ParquetError) -> io::Error {
    io::Error::other(e)
}

impl Layout {
    pub fn new(schema: &RecordSchema) -> io::Result<Arc<Layout>> {
        let names = schema.header();
        let kinds = column_kinds(schema);
        if names.len() != kinds.len() {
            return Err(io::Error::other(format!(
                "parquet: the record walk gives {} columns but the header names {}",
                kinds.len(),
                names.len()
            )));
        }
        let mut cols = Vec::with_capacity(names.len());
        for (name, kind) in names.iter().zip(&kinds) {
            let (physical, logical) = match kind {
                ColKind::Utf8 => (Physical::BYTE_ARRAY, Some(LogicalType::String)),
                ColKind::Int64 => (Physical::INT64, Some(LogicalType::integer(64, true))),
                // Signed on purpose (see the module doc): what Spark and pandas read as long.
                ColKind::UInt64 => (Physical::INT64, Some(LogicalType::integer(64, true))),
                ColKind::Double => (Physical::DOUBLE, None),
            };
            let t = Type::primitive_type_builder(name, physical)
                .with_repetition(Repetition::OPTIONAL)
                .with_logical_type(logical)
                .build()
                .map_err(to_io)?;
            cols.push(Arc::new(t));
        }
        let parquet_schema = Arc::new(
            Type::group_type_builder("weir_flow")
                .with_fields(cols)
                .build()
                .map_err(to_io)?,
        );
        let props = Arc::new(
            WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .set_created_by(format!("weir {}", env!("CARGO_PKG_VERSION")))
                .build(),
        );
        Ok(Arc::new(Layout {
            schema: schema.clone(),
            kinds,
            parquet_schema,
            props,
        }))
    }
}

/// Each column's type, from walking records whose every value is present: a flow record,
/// then an interval record for the columns a flow record leaves empty (the interval bounds).
pub(crate) fn column_kinds(schema: &RecordSchema) -> Vec<ColKind> {
    let probe = |interval| FlowRecord {
        key: weir_plugin_api::FlowKeyV1 {
            ip_version: 4,
            ..Default::default()
        },
        expiration: Expiration::Idle,
        worker: 0,
        interval,
        service: 0,
        bidirectional: Default::default(),
        src2dst: Default::default(),
        dst2src: Default::default(),
        values: vec![0.0; schema.extra.len()],
        score_status: ScoreStatus::Scored,
        prediction: Some(0),
        scores: vec![0.0; schema.scores.len()],
        icmp: [0; 2],
        community_id: Default::default(),
        model: None,
    };
    let walk = |rec: &FlowRecord| {
        let mut kinds = Vec::new();
        fields(rec, schema, |f| {
            kinds.push(match f {
                Field::Str(_) | Field::Owned(_) => Some(ColKind::Utf8),
                Field::Int(_) => Some(ColKind::Int64),
                Field::UInt(_) => Some(ColKind::UInt64),
                Field::Float(_) => Some(ColKind::Double),
                Field::Missing => None,
            })
        });
        kinds
    };
    let flow = walk(&probe(None));
    let span = crate::flow::record::IntervalSpan {
        start_ms: 0,
        end_ms: 0,
    };
    let interval = walk(&probe(Some(span)));
    flow.into_iter()
        .zip(interval)
        // A column both walks leave empty can only hold numbers or nothing.
        .map(|(f, i)| f.or(i).unwrap_or(ColKind::Double))
        .collect()
}

/// One column's buffered values; `def` is 1 for a value, 0 for a null (values hold only the
/// non-null ones, as Parquet's definition levels want).
enum Values {
    Bytes(Vec<ByteArray>),
    Int(Vec<i64>),
    Float(Vec<f64>),
}

struct Column {
    values: Values,
    def: Vec<i16>,
}

impl Column {
    fn new(kind: ColKind) -> Column {
        Column {
            values: match kind {
                ColKind::Utf8 => Values::Bytes(Vec::new()),
                ColKind::Int64 | ColKind::UInt64 => Values::Int(Vec::new()),
                ColKind::Double => Values::Float(Vec::new()),
            },
            def: Vec::new(),
        }
    }

    /// Append one field; returns the bytes it adds (for the row-group and rotation sizes).
    fn push(&mut self, f: Field<'_>) -> u64 {
        let present = match (&mut self.values, f) {
            (_, Field::Missing) => None,
            (Values::Bytes(v), Field::Str(s)) => Some(push_len(v, s.as_bytes().to_vec())),
            (Values::Bytes(v), Field::Owned(s)) => Some(push_len(v, s.into_bytes())),
            (Values::Bytes(v), Field::Int(i)) => Some(push_len(v, i.to_string().into_bytes())),
            (Values::Bytes(v), Field::UInt(u)) => Some(push_len(v, u.to_string().into_bytes())),
            (Values::Bytes(v), Field::Float(x)) => Some(push_len(v, format!("{x:?}").into_bytes())),
            (Values::Int(v), Field::Int(i)) => Some(push8(v, i)),
            // UINT_64 is stored in INT64's bits.
            (Values::Int(v), Field::UInt(u)) => Some(push8(v, u as i64)),
            (Values::Int(v), Field::Float(x)) if !x.is_nan() => Some(push8(v, x as i64)),
            (Values::Float(v), Field::Float(x)) if !x.is_nan() => Some(push8(v, x)),
            (Values::Float(v), Field::Int(i)) => Some(push8(v, i as f64)),
            (Values::Float(v), Field::UInt(u)) => Some(push8(v, u as f64)),
            // Text in a numeric column, or NaN: a null rather than a wrong number.
            _ => None,
        };
        self.def.push(present.is_some() as i16);
        present.unwrap_or(0) + 2
    }

    fn clear(&mut self) {
        self.def.clear();
        match &mut self.values {
            Values::Bytes(v) => v.clear(),
            Values::Int(v) => v.clear(),
            Values::Float(v) => v.clear(),
        }
    }
}

fn push_len(v: &mut Vec<ByteArray>, b: Vec<u8>) -> u64 {
    let n = b.len() as u64 + 4;
    v.push(ByteArray::from(b));
    n
}

fn push8<T>(v: &mut Vec<T>, x: T) -> u64 {
    v.push(x);
    8
}

/// The hidden name a file is written under until it is complete: `.NAME.tmp`.
pub(crate) fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
}

/// fsync a directory, so a rename or a new entry in it survives a crash.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    File::open(dir)?.sync_all()
}

/// One Parquet file being written.
pub(crate) struct ParquetFile {
    layout: Arc<Layout>,
    writer: SerializedFileWriter<File>,
    path: PathBuf,
    tmp: PathBuf,
    cols: Vec<Column>,
    rows_buffered: usize,
    bytes_buffered: u64,
    /// Rows in the file (written and buffered).
    pub rows: u64,
    /// When the file was opened (for rotation by time).
    pub opened: Instant,
}

impl ParquetFile {
    /// Start `path` (under its temporary name; its directory must exist).
    pub fn create(path: &Path, layout: &Arc<Layout>) -> io::Result<ParquetFile> {
        let tmp = temp_path(path);
        let file = File::create(&tmp)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", tmp.display())))?;
        let writer =
            SerializedFileWriter::new(file, layout.parquet_schema.clone(), layout.props.clone())
                .map_err(to_io)?;
        Ok(ParquetFile {
            layout: layout.clone(),
            writer,
            path: path.to_path_buf(),
            tmp,
            cols: layout.kinds.iter().map(|k| Column::new(*k)).collect(),
            rows_buffered: 0,
            bytes_buffered: 0,
            rows: 0,
            opened: Instant::now(),
        })
    }

    pub fn push(&mut self, rec: &FlowRecord) -> io::Result<()> {
        let mut i = 0;
        let mut bytes = 0u64;
        let cols = &mut self.cols;
        fields(rec, &self.layout.schema, |f| {
            if let Some(c) = cols.get_mut(i) {
                bytes += c.push(f);
            }
            i += 1;
        });
        if i != cols.len() {
            return Err(io::Error::other(format!(
                "parquet: a record has {i} fields, the schema {} columns",
                cols.len()
            )));
        }
        self.rows_buffered += 1;
        self.rows += 1;
        self.bytes_buffered += bytes;
        if self.rows_buffered >= ROW_GROUP_ROWS || self.bytes_buffered >= ROW_GROUP_BYTES {
            self.flush_row_group()?;
        }
        Ok(())
    }

    /// About how large the file is: row groups written (compressed) plus rows buffered.
    pub fn approx_bytes(&self) -> u64 {
        self.writer.bytes_written() as u64 + self.bytes_buffered
    }

    fn flush_row_group(&mut self) -> io::Result<()> {
        if self.rows_buffered == 0 {
            return Ok(());
        }
        let mut rg = self.writer.next_row_group().map_err(to_io)?;
        for col in &mut self.cols {
            let mut cw = rg
                .next_column()
                .map_err(to_io)?
                .ok_or_else(|| io::Error::other("parquet: fewer column writers than columns"))?;
            let def = Some(col.def.as_slice());
            match &col.values {
                Values::Bytes(v) => cw.typed::<ByteArrayType>().write_batch(v, def, None),
                Values::Int(v) => cw.typed::<Int64Type>().write_batch(v, def, None),
                Values::Float(v) => cw.typed::<DoubleType>().write_batch(v, def, None),
            }
            .map_err(to_io)?;
            cw.close().map_err(to_io)?;
            col.clear();
        }
        rg.close().map_err(to_io)?;
        self.rows_buffered = 0;
        self.bytes_buffered = 0;
        Ok(())
    }

    /// Write the last row group and the footer, fsync, rename to the final name and fsync
    /// the directory. Returns the final path.
    pub fn commit(mut self) -> io::Result<PathBuf> {
        self.flush_row_group()?;
        let file = self.writer.into_inner().map_err(to_io)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&self.tmp, &self.path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot rename {} to {}: {e}",
                    self.tmp.display(),
                    self.path.display()
                ),
            )
        })?;
        sync_dir(self.path.parent().unwrap_or(Path::new(".")))?;
        Ok(self.path)
    }
}

/// A single `.parquet` records file (`weir extract --out flows.parquet`): no rotation, visible
/// under its name once the run has finished.
pub struct ParquetSink {
    file: Option<ParquetFile>,
}

impl ParquetSink {
    pub fn create(path: &Path, schema: &RecordSchema) -> io::Result<ParquetSink> {
        let layout = Layout::new(schema)?;
        Ok(ParquetSink {
            file: Some(ParquetFile::create(path, &layout)?),
        })
    }
}

impl RecordSink for ParquetSink {
    fn write(&mut self, rec: &FlowRecord) -> io::Result<()> {
        match &mut self.file {
            Some(f) => f.push(rec),
            None => Err(io::Error::other("the parquet file is already finished")),
        }
    }

    fn finish(&mut self) -> io::Result<()> {
        match self.file.take() {
            Some(f) => f.commit().map(|_| ()),
            None => Ok(()),
        }
    }
}
