//! CSV records: a header line, then one line per flow, quoted as the `csv` crate quotes (only
//! fields holding a comma, a quote or a line break). Each line is formatted straight into the
//! file's buffer ([`super::text`]): no allocation per field or per record.

use super::text::push_u64;
use super::text::{push_csv_floats, push_csv_ints, push_csv_str, push_f64, push_i64, push_ip};
use super::textfile::{TextFile, TextOptions};
use super::{walk, Field, LineFormat, LineSink, Runs, Visit};
use crate::flow::record::{FlowRecord, RecordSchema};
use std::io;
use std::path::Path;

/// A CSV records file.
pub type CsvSink = LineSink<CsvLines>;

/// Makes CSV lines; the sink's own, and a copy for the output stage's other thread
/// ([`RecordSink::line_format`]).
#[derive(Clone)]
pub struct CsvLines {
    schema: RecordSchema,
    runs: Runs,
}

/// A record's line being written: every field is followed by a comma (the last one becomes
/// the newline).
struct Line<'b>(&'b mut Vec<u8>);

impl<'a> Visit<'a> for Line<'_> {
    #[inline(always)]
    fn field(&mut self, f: Field<'a>) {
        let line = &mut *self.0;
        match f {
            Field::Str(s) => push_csv_str(line, s),
            Field::Ip(ip) => push_ip(line, ip),
            Field::Int(i) => push_i64(line, i),
            Field::UInt(u) => push_u64(line, u),
            Field::Float(x) => push_f64(line, x),
            Field::Missing => {}
        }
        line.push(b',');
    }

    fn floats(&mut self, v: &'a [f64]) {
        push_csv_floats(self.0, v);
    }

    fn ints(&mut self, v: &'a [f64]) {
        push_csv_ints(self.0, v);
    }
}

/// The header line of `schema`, with its newline.
pub fn header_line(schema: &RecordSchema) -> Vec<u8> {
    let mut h = Vec::new();
    for (i, name) in schema.header().iter().enumerate() {
        if i > 0 {
            h.push(b',');
        }
        push_csv_str(&mut h, name);
    }
    h.push(b'\n');
    h
}

impl CsvSink {
    pub fn create(path: &Path, schema: RecordSchema, opts: TextOptions) -> io::Result<Self> {
        let out = TextFile::open(path, header_line(&schema), opts)?;
        let runs = Runs::new(&schema);
        Ok(LineSink::new(out, CsvLines { schema, runs }))
    }
}

impl LineFormat for CsvLines {
    fn format(&self, rec: &FlowRecord, line: &mut Vec<u8>) {
        let start = line.len();
        walk(rec, &self.schema, &self.runs, &mut Line(line));
        if line.len() > start {
            let end = line.len() - 1;
            line[end] = b'\n';
        } else {
            line.push(b'\n');
        }
    }
}
