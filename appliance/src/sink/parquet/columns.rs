//! How records map to Parquet columns: each column's kind and physical type, and the
//! buffers values gather in until a row group is written.

use super::*;
use crate::flow::schema::ColumnType;

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
        // Dictionary encoding pays for text, ports and counters (few distinct values), not
        // for doubles (means, deviations, rates: nearly all distinct), where hashing every
        // value before falling back to plain encoding is most of the writer's time.
        // Statistics per column chunk, not per page: readers prune by row group.
        let mut props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_statistics_enabled(EnabledStatistics::Chunk)
            .set_created_by(format!("weir {}", env!("CARGO_PKG_VERSION")));
        for (name, kind) in names.iter().zip(&kinds) {
            if *kind == ColKind::Double {
                props = props.set_column_dictionary_enabled(ColumnPath::from(name.as_str()), false);
            }
        }
        let props = Arc::new(props.build());
        Ok(Arc::new(Layout {
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

/// One column's buffered values; `def` is 1 for a value, 0 for a null (values hold only the
/// non-null ones, as Parquet's definition levels want). Text values are kept end to end in
/// one byte buffer (offsets apart), so a record adds no allocation.
pub(super) enum Values {
    Bytes { data: Vec<u8>, ends: Vec<u32> },
    Int(Vec<i64>),
    Float(Vec<f64>),
}

pub(super) struct Column {
    pub(super) values: Values,
    pub(super) def: Vec<i16>,
}

impl Column {
    pub(super) fn new(kind: ColKind) -> Column {
        Column {
            values: match kind {
                ColKind::Utf8 => Values::Bytes {
                    data: Vec::new(),
                    ends: Vec::new(),
                },
                ColKind::Int64 | ColKind::UInt64 => Values::Int(Vec::new()),
                ColKind::Double => Values::Float(Vec::new()),
            },
            def: Vec::new(),
        }
    }

    /// Append one field; returns the bytes it adds (for the row-group and rotation sizes).
    #[inline]
    pub(super) fn push(&mut self, f: Field<'_>) -> u64 {
        use crate::sink::text::{push_f64, push_i64, push_ip, push_u64};
        let present = match (&mut self.values, f) {
            (_, Field::Missing) => None,
            (Values::Bytes { data, ends }, f) => {
                let start = data.len();
                match f {
                    Field::Str(s) => data.extend_from_slice(s.as_bytes()),
                    Field::Ip(ip) => push_ip(data, ip),
                    Field::Int(i) => push_i64(data, i),
                    Field::UInt(u) => push_u64(data, u),
                    Field::Float(x) => push_f64(data, x),
                    Field::Missing => {}
                }
                ends.push(data.len() as u32);
                Some((data.len() - start) as u64 + 4)
            }
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

pub(super) fn push8<T>(v: &mut Vec<T>, x: T) -> u64 {
    v.push(x);
    8
}
