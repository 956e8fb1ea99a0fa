//! CSV records: a header line, then one line per flow (the `csv` crate does the quoting).

use super::{fields, Field, RecordSink};
use crate::flow::record::{FlowRecord, RecordSchema};
use std::io::{self, Write};

pub struct CsvSink<W: Write> {
    w: csv::Writer<W>,
    schema: RecordSchema,
    buf: Vec<String>,
}

impl<W: Write> CsvSink<W> {
    pub fn new(w: W, schema: RecordSchema) -> io::Result<Self> {
        let mut w = csv::WriterBuilder::new().from_writer(w);
        w.write_record(schema.header())?;
        Ok(CsvSink {
            w,
            schema,
            buf: Vec::new(),
        })
    }
}

impl<W: Write + Send> RecordSink for CsvSink<W> {
    fn write(&mut self, rec: &FlowRecord) -> io::Result<()> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        fields(rec, &self.schema, |f| {
            buf.push(match f {
                Field::Str(s) => s.to_string(),
                Field::Owned(s) => s,
                Field::Int(i) => i.to_string(),
                Field::UInt(u) => u.to_string(),
                Field::Float(x) => format!("{x:?}"),
                Field::Missing => String::new(),
            })
        });
        let r = self.w.write_record(&buf);
        self.buf = buf;
        r.map_err(io::Error::other)
    }

    fn finish(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}
