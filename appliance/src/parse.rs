//! TEMPORARY stub (the real parser lands from the parser branch).
use weir_plugin_api::{FlowKeyV1, PacketV1, WEIR_NO_OFFSET};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkipReason {
    NotIp,
    Truncated,
}
impl SkipReason {
    pub const ALL: [SkipReason; 2] = [SkipReason::NotIp, SkipReason::Truncated];
    pub fn name(self) -> &'static str {
        match self {
            SkipReason::NotIp => "not_ip",
            SkipReason::Truncated => "truncated",
        }
    }
}
#[derive(Clone, Debug, Default)]
pub struct SkipCounters {
    pub counts: [u64; 2],
}
impl SkipCounters {
    pub fn add(&mut self, r: SkipReason) {
        self.counts[r as usize] += 1;
    }
    pub fn merge(&mut self, o: &SkipCounters) {
        for (a, b) in self.counts.iter_mut().zip(o.counts.iter()) {
            *a += b;
        }
    }
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        SkipReason::ALL.iter().map(|r| (r.name(), self.counts[*r as usize]))
    }
}

pub fn parse(
    frame: &[u8],
    wire_len: u32,
    ts_ns: u64,
    pkt: &mut PacketV1,
    key: &mut FlowKeyV1,
) -> Result<(), SkipReason> {
    *pkt = PacketV1::EMPTY;
    *key = FlowKeyV1::default();
    pkt.ts_ns = ts_ns;
    pkt.data = frame.as_ptr();
    pkt.wire_len = wire_len;
    pkt.cap_len = frame.len() as u32;
    if frame.len() < 14 {
        return Err(SkipReason::Truncated);
    }
    let et = u16::from_be_bytes([frame[12], frame[13]]);
    if et != 0x0800 {
        return Err(SkipReason::NotIp);
    }
    let ip = &frame[14..];
    if ip.len() < 20 {
        return Err(SkipReason::Truncated);
    }
    let ihl = (ip[0] & 15) as usize * 4;
    key.ip_version = 4;
    key.protocol = ip[9];
    key.src_ip[..4].copy_from_slice(&ip[12..16]);
    key.dst_ip[..4].copy_from_slice(&ip[16..20]);
    pkt.ip_version = 4;
    pkt.protocol = ip[9];
    pkt.l3_off = 14;
    if (key.protocol == 6 || key.protocol == 17) && ip.len() >= ihl + 4 {
        key.src_port = u16::from_be_bytes([ip[ihl], ip[ihl + 1]]);
        key.dst_port = u16::from_be_bytes([ip[ihl + 2], ip[ihl + 3]]);
        pkt.l4_off = (14 + ihl) as u16;
        if key.protocol == 6 && ip.len() >= ihl + 14 {
            pkt.tcp_flags = ip[ihl + 13];
        }
    } else {
        pkt.l4_off = WEIR_NO_OFFSET;
    }
    Ok(())
}
