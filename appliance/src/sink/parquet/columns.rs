//! How records map to Parquet columns: each column's kind and physical type, and the
//! buffers values gather in until a row group is written.

use super::*;
use crate::flow::schema::{ColumnType, CoreColumn};

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
    /// The schema's plugin columns by runs of one type (see [`crate::sink::walk`]).
    pub(super) runs: crate::sink::Runs,
    pub kinds: Vec<ColKind>,
    pub(super) parquet_schema: TypePtr,
    pub(super) props: WriterPropertiesPtr,
    /// Records lost to failed row groups, in every file of this layout.
    pub lost: std::sync::atomic::AtomicU64,
    /// Rows per row group (at most).
    pub(super) row_group_rows: usize,
}

pub(super) fn to_io(e: parquet::errors::ParquetError) -> io::Error {
    io::Error::other(e)
}

impl Layout {
    pub fn new(schema: &RecordSchema) -> io::Result<Arc<Layout>> {
        let names = schema.header();
        let kinds = column_kinds(schema);
        if names.len() != kinds.len() {
            return Err(io::Error::other(format!(
                "parquet: the schema types {} columns but its header names {}",
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
        // Dictionary encoding is kept for text (kind, service, repeated addresses), not for
        // numbers: doubles (means, deviations, rates) are nearly all distinct, so hashing
        // every value before falling back to plain encoding is wasted, and small integers
        // (counters, flags, ports) compress as well under Snappy in plain encoding (the
        // sinks bench's file is 2 % smaller) while the writer is ~10 % faster without
        // interning every value.
        // Statistics per column chunk, not per page: readers prune by row group.
        let mut props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_statistics_enabled(EnabledStatistics::Chunk)
            .set_created_by(format!("weir {}", env!("CARGO_PKG_VERSION")));
        // `community_id` is a hash of the flow's key, nearly unique per record: a dictionary
        // of it is as large as the values and costs a hash and a comparison per value.
        let unique = CoreColumn::CommunityId.name();
        for (name, kind) in names.iter().zip(&kinds) {
            if *kind != ColKind::Utf8 || name == unique {
                props = props.set_column_dictionary_enabled(ColumnPath::from(name.as_str()), false);
            }
        }
        let props = Arc::new(props.build());
        Ok(Arc::new(Layout {
            runs: crate::sink::Runs::new(schema),
            schema: schema.clone(),
            kinds,
            parquet_schema,
            props,
            lost: Default::default(),
            row_group_rows: ROW_GROUP_ROWS,
        }))
    }
}

/// Each column's Parquet type, from the record schema's column types.
pub(crate) fn column_kinds(schema: &RecordSchema) -> Vec<ColKind> {
    schema
        .column_types()
        .into_iter()
        .map(|t| match t {
            ColumnType::Text => ColKind::Utf8,
            ColumnType::Int => ColKind::Int64,
            ColumnType::UInt => ColKind::UInt64,
            ColumnType::Float => ColKind::Double,
        })
        .collect()
}

/// One column's buffered values. A text column keeps its definition levels (`def`: 1 for a
/// value, 0 for a null) beside the values present, as Parquet's writer takes them, end to end
/// in one byte buffer (offsets apart), so a record adds no allocation. Numbers are kept in
/// chunks of [`CHUNK_ROWS`] rows, each written with its own `write_batch` call: a column that
/// grows gets a new chunk instead of moving what it holds (`realloc`'s copy of every column,
/// again and again while the first row group of a file fills), and the chunks stay allocated
/// for the next row group. An integer chunk keeps levels and values present; a float chunk one
/// slot per row, NaN for a null, whose levels and values present are made when the row group
/// is written ([`Column::floats`]).
pub(super) enum Values {
    Bytes { data: Vec<u8>, ends: Vec<u32> },
    Int(Chunks<IntChunk>),
    Float(Chunks<Vec<f64>>),
}

/// Rows per chunk of a numeric column: a multiple of [`BLOCK_ROWS`] (a block drains into one
/// chunk) and of the writer's 1024-value mini-batches (the pages come out as from one call).
pub(super) const CHUNK_ROWS: usize = 4096;
const _: () = assert!(CHUNK_ROWS.is_multiple_of(BLOCK_ROWS) && CHUNK_ROWS.is_multiple_of(1024));

/// Rows of an integer column: the values present and every row's definition level.
#[derive(Default)]
pub(super) struct IntChunk {
    pub(super) values: Vec<i64>,
    pub(super) def: Vec<i16>,
}

/// What a chunk needs: its row count, emptying, and a new one with room for a chunk's rows.
pub(super) trait Chunk {
    fn rows(&self) -> usize;
    fn clear(&mut self);
    fn with_room() -> Self;
}

impl Chunk for Vec<f64> {
    fn rows(&self) -> usize {
        self.len()
    }
    fn clear(&mut self) {
        Vec::clear(self);
    }
    fn with_room() -> Self {
        Vec::with_capacity(CHUNK_ROWS)
    }
}

impl Chunk for IntChunk {
    fn rows(&self) -> usize {
        self.def.len()
    }
    fn clear(&mut self) {
        self.values.clear();
        self.def.clear();
    }
    fn with_room() -> Self {
        IntChunk {
            values: Vec::with_capacity(CHUNK_ROWS),
            def: Vec::with_capacity(CHUNK_ROWS),
        }
    }
}

/// A numeric column's chunks: the first `used` hold this row group's rows, the rest are kept
/// empty from an earlier one.
pub(super) struct Chunks<T> {
    list: Vec<T>,
    used: usize,
}

impl<T: Chunk> Chunks<T> {
    fn new() -> Self {
        Chunks {
            list: Vec::new(),
            used: 0,
        }
    }

    /// The chunk that takes `n` more rows: the last one in use if they fit, else the next.
    fn room(&mut self, n: usize) -> &mut T {
        let fits = self
            .used
            .checked_sub(1)
            .and_then(|last| self.list.get(last))
            .is_some_and(|c| c.rows() + n <= CHUNK_ROWS);
        if !fits {
            if self.used == self.list.len() {
                self.list.push(T::with_room());
            }
            self.used += 1;
        }
        &mut self.list[self.used - 1]
    }

    /// The chunks holding this row group's rows, in order.
    pub(super) fn in_use(&self) -> &[T] {
        &self.list[..self.used]
    }

    fn clear(&mut self) {
        for c in &mut self.list[..self.used] {
            c.clear();
        }
        self.used = 0;
    }
}

pub(super) struct Column {
    pub(super) values: Values,
    /// Definition levels of a text column (empty for a numeric one).
    pub(super) def: Vec<i16>,
}

/// Numeric fields of the last few records, row-major: the record walk stores each field next
/// to the previous one instead of into ~200 column buffers on as many pages (a TLB and cache
/// miss per field), and [`Block::drain`] then moves them into the columns one column at a
/// time. Text fields go straight to their columns.
pub(super) struct Block {
    /// `rows * width` slots: an integer's or a float's bits.
    slots: Vec<u64>,
    /// Whether each slot holds a value (integer columns; a float's null is NaN).
    present: Vec<bool>,
    width: usize,
    pub(super) rows: usize,
}

/// Rows a [`Block`] holds (64 rows of 200 columns: 100 KiB, within L2).
pub(super) const BLOCK_ROWS: usize = 64;

impl Block {
    pub(super) fn new(width: usize) -> Block {
        Block {
            slots: vec![0; width * BLOCK_ROWS],
            present: vec![false; width * BLOCK_ROWS],
            width,
            rows: 0,
        }
    }

    /// The next row's slots (the block must not be full).
    #[inline]
    pub(super) fn row(&mut self) -> (&mut [u64], &mut [bool]) {
        let at = self.rows * self.width..(self.rows + 1) * self.width;
        (&mut self.slots[at.clone()], &mut self.present[at])
    }

    pub(super) fn is_full(&self) -> bool {
        self.rows == BLOCK_ROWS
    }

    /// Move the staged rows into the columns, column by column, and empty the block.
    pub(super) fn drain(&mut self, cols: &mut [Column]) {
        let (w, rows) = (self.width, self.rows);
        let (slots, present) = (&self.slots[..w * rows], &self.present[..w * rows]);
        for (i, col) in cols.iter_mut().enumerate().take(w) {
            // Column `i` of each staged row (no bounds check per value).
            let column = || slots.get(i..).unwrap_or(&[]).iter().step_by(w.max(1));
            match &mut col.values {
                Values::Bytes { .. } => {}
                Values::Float(v) => {
                    v.room(rows).extend(column().map(|&b| f64::from_bits(b)));
                }
                Values::Int(v) => {
                    let flags = || present.get(i..).unwrap_or(&[]).iter().step_by(w.max(1));
                    let c = v.room(rows);
                    c.def.extend(flags().map(|&p| p as i16));
                    // The values present, without a branch per value (at most a block's
                    // rows: `rows <= BLOCK_ROWS`).
                    let mut kept = [0i64; BLOCK_ROWS];
                    let mut n = 0;
                    for (&b, &p) in column().zip(flags()).take(BLOCK_ROWS) {
                        kept[n] = b as i64;
                        n += p as usize;
                    }
                    c.values.extend_from_slice(&kept[..n]);
                }
            }
        }
        self.rows = 0;
    }
}

impl Column {
    pub(super) fn new(kind: ColKind) -> Column {
        Column {
            values: match kind {
                ColKind::Utf8 => Values::Bytes {
                    data: Vec::new(),
                    ends: Vec::new(),
                },
                ColKind::Int64 | ColKind::UInt64 => Values::Int(Chunks::new()),
                ColKind::Double => Values::Float(Chunks::new()),
            },
            def: Vec::new(),
        }
    }

    /// Take one field: a text one into the column, a number into its row slot (`slot`,
    /// `present`) of a [`Block`]. Returns the bytes it adds (for the row-group and rotation
    /// sizes).
    #[inline]
    pub(super) fn push(&mut self, f: Field<'_>, slot: &mut u64, present: &mut bool) -> u64 {
        use crate::sink::text::{push_f64, push_i64, push_ip, push_u64};
        match &mut self.values {
            Values::Float(_) => {
                // Text in a float column would be a null (cannot happen: the kinds come from
                // the same walk).
                *slot = match f {
                    Field::Float(x) => x,
                    Field::Int(i) => i as f64,
                    Field::UInt(u) => u as f64,
                    Field::Str(_) | Field::Ip(_) | Field::Missing => f64::NAN,
                }
                .to_bits();
                10
            }
            Values::Int(_) => {
                // UINT_64 is stored in INT64's bits. Text in a numeric column, or NaN: a null
                // rather than a wrong number.
                let v = match f {
                    Field::Int(i) => Some(i),
                    Field::UInt(u) => Some(u as i64),
                    Field::Float(x) if !x.is_nan() => Some(x as i64),
                    _ => None,
                };
                *slot = v.unwrap_or(0) as u64;
                *present = v.is_some();
                if v.is_some() {
                    10
                } else {
                    2
                }
            }
            Values::Bytes { data, ends } => {
                let start = data.len();
                match f {
                    Field::Missing => {
                        self.def.push(0);
                        return 2;
                    }
                    Field::Str(s) => data.extend_from_slice(s.as_bytes()),
                    Field::Ip(ip) => push_ip(data, ip),
                    Field::Int(i) => push_i64(data, i),
                    Field::UInt(u) => push_u64(data, u),
                    Field::Float(x) => push_f64(data, x),
                }
                ends.push(data.len() as u32);
                self.def.push(1);
                (data.len() - start) as u64 + 6
            }
        }
    }

    /// A float column's definition levels and values present, into `def` and `present`
    /// (reused from column to column).
    pub(super) fn floats(rows: &[f64], def: &mut Vec<i16>, present: &mut Vec<f64>) {
        def.clear();
        def.extend(rows.iter().map(|x| !x.is_nan() as i16));
        // The values present, without a branch per value: each is stored, and kept by
        // moving on past it only when it is not NaN.
        present.clear();
        present.resize(rows.len(), 0.0);
        let mut n = 0;
        for &x in rows {
            if let Some(slot) = present.get_mut(n) {
                *slot = x;
            }
            n += !x.is_nan() as usize;
        }
        present.truncate(n);
    }

    pub(super) fn clear(&mut self) {
        self.def.clear();
        match &mut self.values {
            Values::Bytes { data, ends } => {
                data.clear();
                ends.clear();
            }
            Values::Int(v) => v.clear(),
            Values::Float(v) => v.clear(),
        }
    }
}

/// The text values of a column as `ByteArray`s: slices of one shared buffer (one allocation
/// per column and row group, none per value).
pub(super) fn byte_arrays(data: &[u8], ends: &[u32]) -> Vec<ByteArray> {
    let all = bytes::Bytes::copy_from_slice(data);
    let mut start = 0usize;
    ends.iter()
        .map(|&e| {
            let v = ByteArray::from(all.slice(start..e as usize));
            start = e as usize;
            v
        })
        .collect()
}
