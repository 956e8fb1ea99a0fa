//! Parquet records: one file, typed columns with the CSV header's names.
//!
//! The column types come from the record schema ([`RecordSchema::column_types`], whose walk
//! writes each record: [`super::walk`]): text `BYTE_ARRAY` UTF8, `INT64`, `DOUBLE`. A column
//! added to the schema thus gets a Parquet type with no change here. Every column is
//! `OPTIONAL`: NaN and missing values are nulls.
//!
//! Unsigned fields (counters, ports, `*_seen_ms` milliseconds since the epoch) are written as
//! plain signed `INT64` (logical type INTEGER(64, signed)), not `UINT_64`: Spark reads UINT_64
//! as `decimal(20,0)` and pandas as `uint64`, which then need casts, while every value weir
//! counts fits in 63 bits. Times stay integer milliseconds, as in the CSV and NFStream.
//!
//! Rows are buffered per column (numbers via a small row-major block, `columns::Block`) and
//! written as a row group when the buffer is large; the file is written under a hidden
//! temporary name (`.NAME.parquet.tmp`, which pyarrow, Spark and Hive skip) and only renamed
//! to `NAME.parquet` once its footer is written and it is fsynced, then the directory is
//! fsynced: a crash leaves no half file under a final name.
//!
//! The low-level typed column writer of the `parquet` crate is used rather than its Arrow
//! writer: records go straight from [`FlowRecord`] into column buffers (no Arrow arrays in
//! between) and the build does not pull in arrow-rs.

mod columns;

use super::{walk, Field, RecordSink, Visit};
use crate::flow::record::{FlowRecord, RecordSchema};
pub(crate) use columns::Layout;
use columns::*;
use parquet::basic::{Compression, LogicalType, Repetition, Type as Physical};
use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int64Type};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterPropertiesPtr};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::ColumnPath;
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

/// Where a Parquet file's bytes go: staged in memory and written to the file only in whole
/// pieces (the magic, a row group, the footer), so that a failed write (a full disk) is
/// known to have cost exactly one row group, and the file can be cut back to the row groups
/// before it and closed with a footer that lists them.
struct Staged {
    file: File,
    buf: Vec<u8>,
    /// Bytes of the file written whole.
    good: u64,
}

impl io::Write for Staged {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Staged {
    /// Write what is staged; on failure the file is cut back to what was whole before.
    fn commit(&mut self) -> io::Result<()> {
        use std::io::Write as _;
        let r = self.file.write_all(&self.buf);
        match r {
            Ok(()) => self.good += self.buf.len() as u64,
            Err(_) => {
                let _ = self.file.set_len(self.good);
                let _ = io::Seek::seek(&mut self.file, io::SeekFrom::Start(self.good));
            }
        }
        self.buf.clear();
        r
    }
}

/// One Parquet file being written.
pub(crate) struct ParquetFile {
    layout: Arc<Layout>,
    writer: SerializedFileWriter<Staged>,
    path: PathBuf,
    tmp: PathBuf,
    cols: Vec<Column>,
    /// The last few records' numbers, on their way into `cols`.
    block: Block,
    rows_buffered: usize,
    bytes_buffered: u64,
    /// Rows in the file (written and buffered).
    pub rows: u64,
    /// Rows in the row groups written whole.
    rows_good: u64,
    /// Row groups written whole.
    groups_good: usize,
    /// Set when a row group failed: the file takes no more rows (see [`ParquetFile::salvage`]).
    pub broken: bool,
    /// A second descriptor of the file, to cut it back and close it after a failure.
    salvage_fd: File,
    /// When the file was opened (for rotation by time).
    pub opened: Instant,
}

/// A record on its way into a file: text fields into their columns, numbers into the
/// block's next row.
struct Row<'b> {
    cols: &'b mut [Column],
    slots: &'b mut [u64],
    present: &'b mut [bool],
    /// The next column.
    i: usize,
    /// Bytes the record adds (for the row-group and rotation sizes).
    bytes: u64,
}

impl<'a> Visit<'a> for Row<'_> {
    #[inline(always)]
    fn field(&mut self, f: Field<'a>) {
        let i = self.i;
        if let (Some(c), Some(s), Some(p)) = (
            self.cols.get_mut(i),
            self.slots.get_mut(i),
            self.present.get_mut(i),
        ) {
            self.bytes += c.push(f, s, p);
        }
        self.i += 1;
    }

    /// Float columns (the layout's runs match its column kinds): the values' bits, NaN for
    /// a null.
    fn floats(&mut self, v: &'a [f64]) {
        let at = self.i..self.i + v.len();
        if let Some(slots) = self.slots.get_mut(at) {
            for (s, x) in slots.iter_mut().zip(v) {
                *s = x.to_bits();
            }
            self.bytes += 10 * v.len() as u64;
        }
        self.i += v.len();
    }

    /// Integer columns: the value, or absent for NaN.
    fn ints(&mut self, v: &'a [f64]) {
        let at = self.i..self.i + v.len();
        if let (Some(slots), Some(present)) =
            (self.slots.get_mut(at.clone()), self.present.get_mut(at))
        {
            let mut bytes = 0;
            for ((s, p), x) in slots.iter_mut().zip(present.iter_mut()).zip(v) {
                // NaN casts to 0, and is marked absent.
                *s = *x as i64 as u64;
                *p = !x.is_nan();
                bytes += 2 + 8 * *p as u64;
            }
            self.bytes += bytes;
        }
        self.i += v.len();
    }
}

impl ParquetFile {
    /// Start `path` (under its temporary name; its directory must exist).
    pub fn create(path: &Path, layout: &Arc<Layout>) -> io::Result<ParquetFile> {
        let tmp = temp_path(path);
        let file = File::create(&tmp)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", tmp.display())))?;
        let salvage_fd = file
            .try_clone()
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", tmp.display())))?;
        let staged = Staged {
            file,
            buf: Vec::new(),
            good: 0,
        };
        let mut writer =
            SerializedFileWriter::new(staged, layout.parquet_schema.clone(), layout.props.clone())
                .map_err(to_io)?;
        if let Err(e) = writer.inner_mut().commit() {
            let _ = std::fs::remove_file(&tmp);
            return Err(io::Error::new(e.kind(), format!("{}: {e}", tmp.display())));
        }
        Ok(ParquetFile {
            layout: layout.clone(),
            writer,
            path: path.to_path_buf(),
            tmp,
            cols: layout.kinds.iter().map(|k| Column::new(*k)).collect(),
            block: Block::new(layout.kinds.len()),
            rows_buffered: 0,
            bytes_buffered: 0,
            rows: 0,
            rows_good: 0,
            groups_good: 0,
            broken: false,
            salvage_fd,
            opened: Instant::now(),
        })
    }

    pub fn push(&mut self, rec: &FlowRecord) -> io::Result<()> {
        if self.broken {
            return Err(io::Error::other("parquet: the file had a failed row group"));
        }
        let (slots, present) = self.block.row();
        let mut row = Row {
            cols: &mut self.cols,
            slots,
            present,
            i: 0,
            bytes: 0,
        };
        walk(rec, &self.layout.schema, &self.layout.runs, &mut row);
        let (i, bytes) = (row.i, row.bytes);
        if i != self.cols.len() {
            return Err(io::Error::other(format!(
                "parquet: a record has {i} fields, the schema {} columns",
                self.cols.len()
            )));
        }
        self.block.rows += 1;
        if self.block.is_full() {
            self.block.drain(&mut self.cols);
        }
        self.rows_buffered += 1;
        self.rows += 1;
        self.bytes_buffered += bytes;
        if self.rows_buffered >= self.layout.row_group_rows
            || self.bytes_buffered >= ROW_GROUP_BYTES
        {
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
        let r = self.encode_row_group().and_then(|()| {
            self.writer
                .inner_mut()
                .commit()
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", self.tmp.display())))
        });
        for col in &mut self.cols {
            col.clear();
        }
        let rows = self.rows_buffered as u64;
        self.rows_buffered = 0;
        self.bytes_buffered = 0;
        match r {
            Ok(()) => {
                self.rows_good += rows;
                self.groups_good += 1;
                Ok(())
            }
            Err(e) => {
                self.broken = true;
                Err(e)
            }
        }
    }

    /// Encode the buffered rows as one row group (into the staging buffer).
    fn encode_row_group(&mut self) -> io::Result<()> {
        self.block.drain(&mut self.cols);
        let mut rg = self.writer.next_row_group().map_err(to_io)?;
        let (mut def, mut present) = (Vec::new(), Vec::new());
        for col in &self.cols {
            let mut cw = rg
                .next_column()
                .map_err(to_io)?
                .ok_or_else(|| io::Error::other("parquet: fewer column writers than columns"))?;
            match &col.values {
                Values::Bytes { data, ends } => {
                    let levels = Some(col.def.as_slice());
                    cw.typed::<ByteArrayType>()
                        .write_batch(&byte_arrays(data, ends), levels, None)
                        .map_err(to_io)?;
                }
                Values::Int(chunks) => {
                    for c in chunks.in_use() {
                        cw.typed::<Int64Type>()
                            .write_batch(&c.values, Some(&c.def), None)
                            .map_err(to_io)?;
                    }
                }
                Values::Float(chunks) => {
                    for rows in chunks.in_use() {
                        Column::floats(rows, &mut def, &mut present);
                        cw.typed::<DoubleType>()
                            .write_batch(&present, Some(&def), None)
                            .map_err(to_io)?;
                    }
                }
            }
            cw.close().map_err(to_io)?;
        }
        rg.close().map_err(to_io)?;
        Ok(())
    }

    /// [`ParquetFile::salvage`] after `e`; the error names what was kept and lost, which
    /// is counted in the layout's `lost`.
    fn salvaged(self, e: io::Error) -> io::Error {
        let layout = self.layout.clone();
        let (kept, lost) = self.salvage();
        layout
            .lost
            .fetch_add(lost, std::sync::atomic::Ordering::Relaxed);
        let kept = kept.map_or("nothing kept".to_string(), |p| {
            format!("the rows before it are in {}", p.display())
        });
        tracing::error!(error = %e, lost, "a parquet row group failed; {kept}");
        io::Error::new(e.kind(), format!("{e} ({lost} records lost; {kept})"))
    }

    /// Close a file whose row group failed with the row groups written whole before it: the
    /// file is cut back to them, given a footer that lists them, fsynced and renamed to its
    /// final name. Returns the final path (`None` if nothing could be kept: the file is
    /// removed) and the rows lost (the failed row group's, or all if the footer cannot be
    /// written either).
    fn salvage(self) -> (Option<PathBuf>, u64) {
        let lost = self.rows - self.rows_good;
        let groups: Vec<_> = self.writer.flushed_row_groups()[..self.groups_good].to_vec();
        let schema = Arc::new(parquet::schema::types::SchemaDescriptor::new(
            self.layout.parquet_schema.clone(),
        ));
        let good = self.writer.inner().good;
        let mut file = self.salvage_fd;
        let footer = || -> io::Result<()> {
            use parquet::file::metadata::{FileMetaData, ParquetMetaData, ParquetMetaDataWriter};
            file.set_len(good)?;
            io::Seek::seek(&mut file, io::SeekFrom::Start(good))?;
            let meta = FileMetaData::new(
                self.layout.props.writer_version().as_num(),
                self.rows_good as i64,
                Some(format!("weir {}", env!("CARGO_PKG_VERSION"))),
                None,
                schema,
                None,
            );
            let meta = ParquetMetaData::new(meta, groups);
            let mut out = io::BufWriter::new(&mut file);
            ParquetMetaDataWriter::new(&mut out, &meta)
                .finish()
                .map_err(to_io)?;
            io::Write::flush(&mut out)?;
            drop(out);
            file.sync_all()?;
            std::fs::rename(&self.tmp, &self.path)?;
            sync_dir(self.path.parent().unwrap_or(Path::new(".")))
        };
        match footer() {
            Ok(()) => (Some(self.path), lost),
            Err(e) => {
                tracing::error!(file = %self.tmp.display(), error = %e, "cannot close the parquet file after a failed row group; its rows are lost");
                let _ = std::fs::remove_file(&self.tmp);
                (None, self.rows)
            }
        }
    }

    /// Write the last row group and the footer, fsync, rename to the final name and fsync
    /// the directory. Returns the final path.
    pub fn commit(mut self) -> io::Result<PathBuf> {
        if self.broken {
            return Err(self.salvaged(io::Error::other("a row group could not be written")));
        }
        if let Err(e) = self.flush_row_group() {
            return Err(self.salvaged(e));
        }
        let footer = self.writer.finish().map_err(to_io).and_then(|_| {
            self.writer
                .inner_mut()
                .commit()
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", self.tmp.display())))
        });
        if let Err(e) = footer {
            return Err(self.salvaged(e));
        }
        let file = &self.salvage_fd;
        file.sync_all()?;
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
/// under its name once the run has finished. After a failed row group the file is closed with
/// the row groups before it and the records go on into `NAME-1.parquet`, `NAME-2.parquet`...
pub struct ParquetSink {
    file: Option<ParquetFile>,
    layout: Arc<Layout>,
    path: PathBuf,
    /// Files started after failures.
    restarts: u32,
    finished: bool,
}

impl ParquetSink {
    pub fn create(path: &Path, schema: &RecordSchema) -> io::Result<ParquetSink> {
        let layout = Layout::new(schema)?;
        Ok(ParquetSink {
            file: Some(ParquetFile::create(path, &layout)?),
            layout,
            path: path.to_path_buf(),
            restarts: 0,
            finished: false,
        })
    }
}

impl ParquetSink {
    /// The file written now: `NAME.parquet`, then `NAME-N.parquet` after N failures.
    fn current_path(&self) -> PathBuf {
        if self.restarts == 0 {
            return self.path.clone();
        }
        let stem = self
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.path
            .with_file_name(format!("{stem}-{}.parquet", self.restarts))
    }
}

impl RecordSink for ParquetSink {
    fn write(&mut self, rec: &FlowRecord) -> io::Result<()> {
        if self.finished {
            return Err(io::Error::other("the parquet file is already finished"));
        }
        if self.file.is_none() {
            let next = self.current_path();
            match ParquetFile::create(&next, &self.layout) {
                Ok(f) => {
                    tracing::warn!(file = %next.display(), "records go on into a new parquet file");
                    self.file = Some(f);
                }
                Err(e) => {
                    self.layout
                        .lost
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
        let f = self.file.as_mut().expect("opened above");
        let r = f.push(rec);
        if f.broken {
            // Close it with what was written whole (the loss is counted); the next record
            // starts the next file.
            if let Some(old) = self.file.take() {
                let _ = old.commit();
            }
            self.restarts += 1;
        }
        r
    }

    fn finish(&mut self) -> io::Result<()> {
        self.finished = true;
        match self.file.take() {
            Some(f) => f.commit().map(|_| ()),
            None => Ok(()),
        }
    }

    fn lost(&self) -> u64 {
        self.layout.lost.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::record::Expiration;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    fn record(i: u64, n: usize, seed: &mut u64) -> FlowRecord {
        let mut next = || {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            f64::from_bits((*seed >> 12) | 0x3ff0_0000_0000_0000)
        };
        FlowRecord {
            key: weir_plugin_api::FlowKeyV1 {
                ip_version: 4,
                src_port: i as u16,
                ..Default::default()
            },
            expiration: Expiration::Idle,
            worker: 0,
            service: 0,
            interval: None,
            bidirectional: crate::flow::record::DirCounters {
                first_seen_ms: i,
                last_seen_ms: i,
                packets: i,
                bytes: 60,
            },
            src2dst: Default::default(),
            dst2src: Default::default(),
            // Random doubles: Snappy cannot shrink them, so the disk fills predictably.
            values: (0..n).map(|_| next()).collect(),
            texts: Default::default(),
            score_status: Default::default(),
            prediction: None,
            scores: vec![],
            model: None,
            icmp: [0; 2],
            community_id: Default::default(),
        }
    }

    /// A sink at `path` for records with one plugin column of each kind in `kinds` (named
    /// `f0`, `f1`, ...), `row_group_rows` rows to a row group.
    fn test_sink(path: &Path, kinds: &[u32], row_group_rows: usize) -> ParquetSink {
        let mut schema = RecordSchema::default();
        for (j, &kind) in kinds.iter().enumerate() {
            schema.extra.push(format!("f{j}"));
            schema.provider.push("test".into());
            schema.kinds.push(kind);
        }
        let mut layout = Layout::new(&schema).unwrap();
        Arc::get_mut(&mut layout).unwrap().row_group_rows = row_group_rows;
        ParquetSink {
            file: Some(ParquetFile::create(path, &layout).unwrap()),
            layout,
            path: path.to_path_buf(),
            restarts: 0,
            finished: false,
        }
    }

    /// Numbers come back as written (nulls where NaN) from row groups that span several
    /// chunks of a column and end within one.
    #[test]
    fn numbers_come_back_across_chunks_and_row_groups() {
        use crate::flow::schema::CoreColumn;
        use parquet::record::Field as Value;
        use weir_plugin_api::{WEIR_FEATURE_F64 as F, WEIR_FEATURE_U64 as U};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.parquet");
        let mut sink = test_sink(&path, &[F, U, F, U], 5000);
        let value = |i: u64, j: usize| {
            if (i + j as u64).is_multiple_of(7) {
                f64::NAN
            } else {
                (i * 10 + j as u64) as f64 + if j.is_multiple_of(2) { 0.25 } else { 0.0 }
            }
        };
        let (n, mut seed) = (12_000u64, 1u64);
        for i in 0..n {
            let mut r = record(i, 4, &mut seed);
            r.values = (0..4).map(|j| value(i, j)).collect();
            sink.write(&r).unwrap();
        }
        sink.finish().unwrap();
        let reader = SerializedFileReader::new(File::open(&path).unwrap()).unwrap();
        assert_eq!(reader.metadata().num_row_groups(), 3);
        let first = CoreColumn::ALL.len();
        let mut rows = 0;
        for (i, row) in reader.get_row_iter(None).unwrap().enumerate() {
            let row = row.unwrap();
            let got: Vec<Value> = row.get_column_iter().map(|(_, f)| f.clone()).collect();
            for j in 0..4 {
                let want = value(i as u64, j);
                match &got[first + j] {
                    Value::Null => assert!(want.is_nan(), "row {i} column {j}"),
                    Value::Double(x) if j % 2 == 0 => assert_eq!(*x, want, "row {i}"),
                    Value::Long(v) if j % 2 == 1 => assert_eq!(*v as f64, want, "row {i}"),
                    other => panic!("row {i} column {j}: {other:?}"),
                }
            }
            rows += 1;
        }
        assert_eq!(rows, n);
    }

    /// A small tmpfs mounted on a temporary directory (root only), unmounted on drop.
    struct SmallFs(tempfile::TempDir);

    impl SmallFs {
        fn mount(size: &str) -> Option<SmallFs> {
            let d = tempfile::tempdir().ok()?;
            let ok = std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size}"), "weir-test"])
                .arg(d.path())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            ok.then_some(SmallFs(d))
        }
    }

    impl Drop for SmallFs {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg(self.0.path())
                .status();
        }
    }

    #[test]
    fn a_failed_row_group_closes_the_file_with_the_rows_before_it() {
        let Some(fs) = SmallFs::mount("2m") else {
            eprintln!("SKIPPED: cannot mount a tmpfs here (needs root)");
            return;
        };
        let dir = fs.0.path();
        let path = dir.join("flows.parquet");
        let mut sink = test_sink(&path, &[weir_plugin_api::WEIR_FEATURE_F64; 16], 1000);
        // About 150 kB per row group: 2 MiB holds a dozen, 40 are written.
        let (mut seed, mut errors, total) = (0x1234_5678u64, 0u64, 40_000u64);
        for i in 0..total {
            if sink.write(&record(i, 16, &mut seed)).is_err() {
                errors += 1;
            }
        }
        let _ = sink.finish();
        assert!(errors > 0, "the disk filled up");
        let lost = sink.lost();
        let mut kept = 0u64;
        let mut names = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            assert!(!name.starts_with('.'), "no temporary file left: {name}");
            let r = SerializedFileReader::new(File::open(&p).unwrap())
                .unwrap_or_else(|e| panic!("{name} is a readable parquet file: {e}"));
            kept += r.metadata().file_metadata().num_rows() as u64;
            names.push(name);
        }
        assert!(names.contains(&"flows.parquet".to_string()), "{names:?}");
        let first = SerializedFileReader::new(File::open(&path).unwrap()).unwrap();
        assert!(
            first.metadata().file_metadata().num_rows() >= 1000,
            "the row groups before the failure are kept"
        );
        assert!(lost > 0);
        assert_eq!(
            kept + lost,
            total,
            "every record is kept or counted as lost"
        );
    }
}
