//! JSON Lines records: one object per flow, keys in header order, NaN as `null`.

use super::{fields, Field, RecordSink};
use crate::flow::record::{FlowRecord, RecordSchema};
use std::io::{self, Write};

pub struct JsonlSink<W: Write> {
    w: W,
    schema: RecordSchema,
    header: Vec<String>,
    line: String,
}

impl<W: Write> JsonlSink<W> {
    pub fn new(w: W, schema: RecordSchema) -> Self {
        let header = schema
            .header()
            .into_iter()
            .map(|h| serde_json::to_string(&h).expect("string"))
            .collect();
        JsonlSink {
            w,
            schema,
            header,
            line: String::new(),
        }
    }
}

impl<W: Write + Send> RecordSink for JsonlSink<W> {
    fn write(&mut self, rec: &FlowRecord) -> io::Result<()> {
        use std::fmt::Write as _;
        let mut line = std::mem::take(&mut self.line);
        line.clear();
        line.push('{');
        let mut i = 0;
        let header = &self.header;
        fields(rec, &self.schema, |f| {
            if i > 0 {
                line.push(',');
            }
            line.push_str(&header[i]);
            line.push(':');
            let _ = match f {
                Field::Str(s) => write!(line, "{}", serde_json::Value::from(s)),
                Field::Owned(s) => write!(line, "{}", serde_json::Value::from(s)),
                Field::Int(v) => write!(line, "{v}"),
                Field::UInt(v) => write!(line, "{v}"),
                Field::Float(x) if x.is_finite() => write!(line, "{x:?}"),
                Field::Float(_) => write!(line, "null"),
                Field::Missing => write!(line, "null"),
            };
            i += 1;
        });
        line.push_str("}\n");
        let r = self.w.write_all(line.as_bytes());
        self.line = line;
        r
    }

    fn finish(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}
