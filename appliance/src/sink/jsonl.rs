//! JSON Lines records: one object per flow, keys in header order, NaN as `null`. Each line is
//! formatted straight into the file's buffer ([`super::text`]): no allocation per field or
//! per record.

use super::text::{push_f64, push_i64, push_ip, push_json_str, push_short, push_u64};
use super::textfile::{TextFile, TextOptions};
use super::{walk, Field, LineFormat, LineSink, Runs, Visit};
use crate::flow::record::{FlowRecord, RecordSchema};
use std::io;
use std::path::Path;

/// A JSON Lines records file.
pub type JsonlSink = LineSink<JsonlLines>;

/// Makes JSON Lines; the sink's own, and a copy for the output stage's other thread
/// ([`RecordSink::line_format`]).
#[derive(Clone)]
pub struct JsonlLines {
    schema: RecordSchema,
    /// Each key, quoted and escaped, with its `:` and the `{` or `,` before it.
    keys: Vec<Vec<u8>>,
    runs: Runs,
}

/// A record's object being written: field `i` gets key `i`.
struct Object<'b> {
    line: &'b mut Vec<u8>,
    keys: &'b [Vec<u8>],
    i: usize,
}

impl Object<'_> {
    #[inline]
    fn key(&mut self) {
        match self.keys.get(self.i) {
            Some(k) => push_short(self.line, k),
            // More fields than header names (cannot happen: both come from the schema).
            None => self.line.push(if self.i == 0 { b'{' } else { b',' }),
        }
        self.i += 1;
    }
}

impl<'a> Visit<'a> for Object<'_> {
    #[inline(always)]
    fn field(&mut self, f: Field<'a>) {
        self.key();
        let line = &mut *self.line;
        match f {
            Field::Str(s) => push_json_str(line, s),
            Field::Ip(ip) => {
                line.push(b'"');
                push_ip(line, ip);
                line.push(b'"');
            }
            Field::Int(v) => push_i64(line, v),
            Field::UInt(v) => push_u64(line, v),
            Field::Float(x) if x.is_finite() => push_f64(line, x),
            Field::Float(_) | Field::Missing => line.extend_from_slice(b"null"),
        }
    }

    fn floats(&mut self, v: &'a [f64]) {
        for &x in v {
            self.key();
            if x.is_finite() {
                push_f64(self.line, x);
            } else {
                push_short(self.line, b"null");
            }
        }
    }

    fn ints(&mut self, v: &'a [f64]) {
        for &x in v {
            self.key();
            if x.is_nan() {
                push_short(self.line, b"null");
            } else {
                push_i64(self.line, x as i64);
            }
        }
    }
}

impl JsonlSink {
    pub fn create(path: &Path, schema: RecordSchema, opts: TextOptions) -> io::Result<Self> {
        let keys = schema
            .header()
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let mut k = vec![if i == 0 { b'{' } else { b',' }];
                push_json_str(&mut k, h);
                k.push(b':');
                k
            })
            .collect();
        Ok(LineSink::new(
            TextFile::open(path, Vec::new(), opts)?,
            JsonlLines {
                runs: Runs::new(&schema),
                schema,
                keys,
            },
        ))
    }
}

impl LineFormat for JsonlLines {
    fn format(&self, rec: &FlowRecord, line: &mut Vec<u8>) {
        let mut obj = Object {
            line,
            keys: &self.keys,
            i: 0,
        };
        walk(rec, &self.schema, &self.runs, &mut obj);
        let (line, i) = (obj.line, obj.i);
        if i == 0 {
            line.push(b'{');
        }
        line.extend_from_slice(b"}\n");
    }
}
