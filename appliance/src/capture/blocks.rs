//! Packet timestamps: pcap's (micro- or nanoseconds) and pcapng's (each interface's
//! `if_tsresol` and `if_tsoffset`), clamped to what a record can hold; and a packet out of a
//! pcapng block.

use super::*;

#[derive(Clone, Copy)]
pub(super) enum TsResol {
    Pow10(u32),
    Pow2(u32),
}

impl TsResol {
    pub(super) fn from_option(v: u8) -> TsResol {
        if v & 0x80 == 0 {
            TsResol::Pow10(v as u32)
        } else {
            TsResol::Pow2((v & 0x7f) as u32)
        }
    }

    /// `raw` units in ns, exactly (no wrap: `u64 * 1e9` fits a u128); sub-ns parts truncate.
    pub(super) fn to_ns(self, raw: u64) -> u128 {
        match self {
            TsResol::Pow10(p) if p <= 9 => raw as u128 * 10u128.pow(9 - p),
            TsResol::Pow10(p) => raw as u128 / 10u128.pow((p - 9).min(38)),
            TsResol::Pow2(p) => (raw as u128 * 1_000_000_000u128) >> p.min(127),
        }
    }

    pub(super) fn describe(self) -> String {
        match self {
            TsResol::Pow10(p) => format!("10^-{p} s"),
            TsResol::Pow2(p) => format!("2^-{p} s"),
        }
    }
}

/// A pcapng packet's time in ns: `raw` units of the interface's `if_tsresol` plus its
/// `if_tsoffset` seconds, computed exactly; outside 0..=MAX_TS_NS, an `Err` with the time
/// clamped to the nearer end and why.
pub(super) fn pcapng_ts_ns(res: TsResol, off_s: i64, raw: u64) -> Result<u64, (u64, String)> {
    // |raw ns| < 2^94 and |off_s * 1e9| < 2^93: the sum fits an i128.
    let t = res.to_ns(raw) as i128 + off_s as i128 * 1_000_000_000;
    if (0..=MAX_TS_NS as i128).contains(&t) {
        Ok(t as u64)
    } else {
        let clamped = if t < 0 { 0 } else { MAX_TS_NS };
        Err((
            clamped,
            format!(
                "timestamp {raw} x {} + if_tsoffset {off_s} s = {t} ns since 1970, outside \
                 0..={MAX_TS_NS} (1970 to 2262)",
                res.describe()
            ),
        ))
    }
}
/// A packet of a pcapng block (its data borrowed from the block when it can be).
pub(super) struct BlockPacket<'a> {
    pub(super) data: std::borrow::Cow<'a, [u8]>,
    pub(super) orig_len: u32,
    pub(super) ts_ns: u64,
    pub(super) linktype: u32,
}

impl BlockPacket<'_> {
    pub(super) fn captured(&self) -> CapturedPacket<'_> {
        CapturedPacket {
            data: &self.data,
            orig_len: self.orig_len,
            ts_ns: self.ts_ns,
            linktype: self.linktype,
        }
    }
}

/// One pcapng block: an interface is recorded, a packet is returned.
pub(super) fn on_block<'a>(
    block: Block<'a>,
    ifaces: &mut Vec<Iface>,
    packets: &mut u64,
    clamped: &mut u64,
    path: &Path,
    corrupt: &dyn Fn(u64, String) -> CaptureError,
) -> Result<Option<BlockPacket<'a>>, CaptureError> {
    match block {
        Block::SectionHeader(_) => ifaces.clear(),
        Block::InterfaceDescription(idb) => {
            let mut res = TsResol::Pow10(6);
            let mut off = 0i64;
            for o in &idb.options {
                match o {
                    InterfaceDescriptionOption::IfTsResol(v) => res = TsResol::from_option(*v),
                    // A signed 64-bit count of seconds (pcapng 4.2).
                    InterfaceDescriptionOption::IfTsOffset(s) => off = *s as i64,
                    _ => {}
                }
            }
            ifaces.push((u32::from(idb.linktype), res, off));
        }
        Block::EnhancedPacket(epb) => {
            let Some(&(lt, res, off)) = ifaces.get(epb.interface_id as usize) else {
                return Err(corrupt(
                    *packets,
                    format!("packet for undeclared interface {}", epb.interface_id),
                ));
            };
            // The crate reads the 64-bit timestamp as ns: these are raw units.
            let raw = epb.timestamp.as_nanos() as u64;
            let ts = clamp_time(path, *packets, clamped, pcapng_ts_ns(res, off, raw));
            *packets += 1;
            return Ok(Some(BlockPacket {
                data: epb.data,
                orig_len: epb.original_len,
                ts_ns: ts,
                linktype: lt,
            }));
        }
        Block::Packet(pb) => {
            let Some(&(lt, res, off)) = ifaces.get(pb.interface_id as usize) else {
                return Err(corrupt(
                    *packets,
                    format!("packet for undeclared interface {}", pb.interface_id),
                ));
            };
            let ts = clamp_time(
                path,
                *packets,
                clamped,
                pcapng_ts_ns(res, off, pb.timestamp),
            );
            *packets += 1;
            return Ok(Some(BlockPacket {
                data: pb.data,
                orig_len: pb.original_len,
                ts_ns: ts,
                linktype: lt,
            }));
        }
        Block::SimplePacket(sp) => {
            // No timestamp in a Simple Packet Block: it takes time 0, which the
            // monotonic clamp turns into "the latest time seen".
            let lt = ifaces.first().map(|i| i.0).unwrap_or(linktype::ETHERNET);
            *packets += 1;
            return Ok(Some(BlockPacket {
                data: sp.data,
                orig_len: sp.original_len,
                ts_ns: 0,
                linktype: lt,
            }));
        }
        _ => {}
    }
    Ok(None)
}

/// A classic pcap record's time in ns, read as libpcap reads it: the fields are the signed
/// 32-bit `tv_sec`/`tv_usec` of `struct pcap_sf_pkthdr`, so a corrupt fraction outside
/// 0..1e6 (seen in fuzzed captures) shifts the time as it does for every libpcap-based tool.
/// Times before 1970 are clamped to 0 (as before; NFStream's parity captures include such
/// fuzzed records). Nothing here can wrap: `|sec| < 2^31`, so `sec * 1e9 + frac < 2^63`, and
/// the latest time is 2038, well under [`MAX_TS_NS`].
pub(super) fn pcap_ts_ns(sec: u32, frac: u32, frac_ns: u64) -> u64 {
    let sec = sec as i32 as i64;
    if frac_ns == 1 {
        let ns = sec * 1_000_000_000 + frac as i64;
        return ns.max(0) as u64;
    }
    let usec = frac as i32 as i64;
    // Milliseconds as C computes them (division truncating toward zero), then the
    // sub-millisecond rest, so that ts / 1e6 is exactly that millisecond.
    let ms = sec * 1000 + usec / 1000;
    let rest_us = (usec % 1000).max(0);
    (ms * 1_000_000 + rest_us * 1000).max(0) as u64
}

/// The time of packet `packets + 1` of `path`, clamped if out of range (the first logged).
pub(super) fn clamp_time(
    path: &Path,
    packets: u64,
    clamped: &mut u64,
    t: Result<u64, (u64, String)>,
) -> u64 {
    match t {
        Ok(t) => t,
        Err((to, reason)) => {
            if *clamped == 0 {
                tracing::warn!(
                    "{}: packet {}: time out of range: {reason}; clamped to {to} ns, as is every \
                     later such packet of this file (counted at its end)",
                    path.display(),
                    packets + 1
                );
            }
            *clamped += 1;
            to
        }
    }
}

/// At the end of a pcapng file: how many of its times were clamped, if any.
pub(super) fn warn_clamped(path: &Path, clamped: u64) {
    if clamped > 0 {
        tracing::warn!(
            "{}: {} packet times were out of range and clamped",
            path.display(),
            clamped
        );
    }
}
