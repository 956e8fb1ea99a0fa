//! Captures: reading every frame of a pcap or pcapng file, writing generated frames to one.

use pcap_file::pcap::PcapReader;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::pcapng::{Block, PcapNgReader};
use pcap_file::DataLink;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;
use std::time::Duration;

/// One captured frame: its bytes and its length on the wire.
pub struct Frame {
    pub data: Vec<u8>,
    pub wire_len: u32,
}

/// Read all frames of a capture (pcap in either byte order and resolution, or pcapng). Pcap
/// records are read raw, without pcap-file's validation, so that odd records (a fuzzed
/// timestamp, orig_len > snaplen) are still seen, as libpcap sees them.
pub fn read_frames(path: &Path) -> Vec<Frame> {
    let mut magic = [0u8; 4];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let file = BufReader::new(File::open(path).unwrap());
    let mut out = Vec::new();
    if magic == [0x0a, 0x0d, 0x0d, 0x0a] {
        let mut r = PcapNgReader::new(file).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for (i, idb) in r.interfaces().iter().enumerate() {
            assert_eq!(
                u32::from(idb.linktype),
                1,
                "{}: interface {i} is not Ethernet",
                path.display()
            );
        }
        while let Some(b) = r.next_block() {
            match b.unwrap_or_else(|e| panic!("{}: {e}", path.display())) {
                Block::EnhancedPacket(p) => out.push(Frame {
                    data: p.data.to_vec(),
                    wire_len: p.original_len,
                }),
                Block::SimplePacket(p) => out.push(Frame {
                    data: p.data.to_vec(),
                    wire_len: p.original_len,
                }),
                Block::Packet(p) => out.push(Frame {
                    data: p.data.to_vec(),
                    wire_len: p.original_len,
                }),
                Block::InterfaceDescription(idb) => {
                    assert_eq!(
                        u32::from(idb.linktype),
                        1,
                        "{}: non-Ethernet interface",
                        path.display()
                    )
                }
                _ => {}
            }
        }
    } else {
        let mut r = PcapReader::new(file).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            u32::from(r.header().datalink),
            1,
            "{}: not Ethernet",
            path.display()
        );
        while let Some(p) = r.next_raw_packet() {
            let p = p.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            out.push(Frame {
                data: p.data.to_vec(),
                wire_len: p.orig_len,
            });
        }
    }
    out
}

/// A frame and its length on the wire.
#[derive(Clone)]
pub struct Pkt {
    pub data: Vec<u8>,
    pub wire_len: u32,
}

/// Write a classic Ethernet pcap (ns resolution), one packet per `step_ns` from `t0_ns`.
pub fn write_pcap(path: &Path, pkts: &[Pkt], t0_ns: u64, step_ns: u64) {
    let hdr = PcapHeader {
        datalink: DataLink::ETHERNET,
        snaplen: 262_144,
        ts_resolution: pcap_file::TsResolution::NanoSecond,
        ..Default::default()
    };
    let mut w = PcapWriter::with_header(File::create(path).unwrap(), hdr).unwrap();
    for (i, p) in pkts.iter().enumerate() {
        let ts = t0_ns + i as u64 * step_ns;
        w.write_packet(&PcapPacket::new_owned(
            Duration::from_nanos(ts),
            p.wire_len,
            p.data.clone(),
        ))
        .unwrap();
    }
}
