//! A minimal pcap writer (the classic libpcap format, microsecond timestamps, LINKTYPE_ETHERNET;
//! see https://www.ietf.org/archive/id/draft-ietf-opsawg-pcap-04.html). Buffered: one `write`
//! system call per megabyte, not per packet.

use std::io::{self, Write};

const MAGIC_US: u32 = 0xA1B2_C3D4;
const LINKTYPE_ETHERNET: u32 = 1;

pub struct PcapWriter<W: Write> {
    out: io::BufWriter<W>,
    snaplen: u32,
}

impl<W: Write> PcapWriter<W> {
    pub fn new(out: W, snaplen: u32) -> io::Result<Self> {
        let mut out = io::BufWriter::with_capacity(1 << 20, out);
        let mut h = [0u8; 24];
        h[0..4].copy_from_slice(&MAGIC_US.to_le_bytes());
        h[4..6].copy_from_slice(&2u16.to_le_bytes());
        h[6..8].copy_from_slice(&4u16.to_le_bytes());
        // thiszone and sigfigs stay 0.
        h[16..20].copy_from_slice(&snaplen.to_le_bytes());
        h[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        out.write_all(&h)?;
        Ok(PcapWriter { out, snaplen })
    }

    /// Write one frame seen at `ts_ns`; it is cut to the snap length (its original length is
    /// kept in the record header, as a capture tool does).
    #[inline]
    pub fn write(&mut self, ts_ns: u64, frame: &[u8]) -> io::Result<()> {
        let caplen = (frame.len() as u32).min(self.snaplen);
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&((ts_ns / 1_000_000_000) as u32).to_le_bytes());
        h[4..8].copy_from_slice(&((ts_ns % 1_000_000_000 / 1000) as u32).to_le_bytes());
        h[8..12].copy_from_slice(&caplen.to_le_bytes());
        h[12..16].copy_from_slice(&(frame.len() as u32).to_le_bytes());
        self.out.write_all(&h)?;
        self.out.write_all(&frame[..caplen as usize])
    }

    pub fn finish(self) -> io::Result<W> {
        self.out.into_inner().map_err(|e| e.into_error())
    }
}
