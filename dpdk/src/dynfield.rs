//! Dynamic mbuf fields (`rte_mbuf_dyn.h`): the RX timestamp that net_pcap writes, and weir's
//! own per-packet capture metadata.
//!
//! A dynamic field is a name registered once per process that reserves bytes at a fixed
//! offset in every mbuf, usually paired with a flag bit in `ol_flags` saying it is set.
//! Registering an existing name returns the same offset, so every lookup here is idempotent.

use crate::error::{cstring, errno_text, rte_errno, Error, Result};
use crate::mbuf::Mbuf;

/// Access to the RX timestamp field (`rte_dynfield_timestamp`) and its flag
/// (`rte_dynflag_rx_timestamp`), registered with `rte_mbuf_dyn_rx_timestamp_register`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxTimestamp {
    offset: usize,
    flag: u64,
}

impl RxTimestamp {
    /// Registers (or finds) the RX timestamp field and flag.
    pub fn register() -> Result<RxTimestamp> {
        let mut offset: i32 = -1;
        let mut flag: u64 = 0;
        // SAFETY: out-pointers to locals.
        let ret =
            unsafe { weir_dpdk_sys::rte_mbuf_dyn_rx_timestamp_register(&mut offset, &mut flag) };
        if ret != 0 || offset < 0 {
            let errno = rte_errno();
            return Err(Error::Object {
                what: "mbuf dynamic field",
                name: "rte_dynfield_timestamp".into(),
                errno,
                reason: errno_text(errno),
            });
        }
        Ok(RxTimestamp {
            offset: offset as usize,
            flag,
        })
    }

    /// The raw timestamp, in the device's unit, when its flag is set on `m`.
    #[inline]
    pub fn raw(&self, m: &Mbuf) -> Option<u64> {
        if m.ol_flags() & self.flag == 0 {
            return None;
        }
        // SAFETY: the registered offset holds the 8-byte rte_mbuf_timestamp_t.
        Some(unsafe { m.field::<u64>(self.offset) })
    }

    /// net_pcap's timestamp in nanoseconds. net_pcap writes the capture time in microseconds
    /// (`tv_sec * 1000000 + tv_usec`, drivers/net/pcap/pcap_ethdev.c), so this is a multiple
    /// of 1000.
    #[inline]
    pub fn pcap_ns(&self, m: &Mbuf) -> Option<u64> {
        self.raw(m).map(|us| us.saturating_mul(1000))
    }
}

/// Exact capture metadata a feeder attaches to an mbuf: the packet's time in ns and its
/// original length on the wire (which a truncated capture's `pkt_len` does not carry).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WeirMeta {
    /// Capture timestamp, ns since the Unix epoch.
    pub ts_ns: u64,
    /// Original length on the wire, bytes.
    pub wire_len: u32,
}

/// Name of weir's metadata field.
pub const META_FIELD_NAME: &str = "weir_dynfield_meta";
/// Name of the flag saying the metadata field is set.
pub const META_FLAG_NAME: &str = "weir_dynflag_meta";

/// Access to weir's [`WeirMeta`] dynamic field. `Copy`: hand it to every thread that needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetaField {
    offset: usize,
    flag: u64,
}

impl MetaField {
    /// Registers (or finds) the field and its flag; needs an initialised EAL.
    pub fn register() -> Result<MetaField> {
        let mut field = weir_dpdk_sys::rte_mbuf_dynfield {
            size: std::mem::size_of::<WeirMeta>(),
            align: std::mem::align_of::<WeirMeta>(),
            ..Default::default()
        };
        copy_name(&mut field.name, META_FIELD_NAME)?;
        // SAFETY: valid parameter struct.
        let offset = unsafe { weir_dpdk_sys::rte_mbuf_dynfield_register(&field) };
        if offset < 0 {
            return Err(dyn_error(META_FIELD_NAME));
        }
        let mut flag = weir_dpdk_sys::rte_mbuf_dynflag::default();
        copy_name(&mut flag.name, META_FLAG_NAME)?;
        // SAFETY: valid parameter struct.
        let bit = unsafe { weir_dpdk_sys::rte_mbuf_dynflag_register(&flag) };
        if bit < 0 {
            return Err(dyn_error(META_FLAG_NAME));
        }
        Ok(MetaField {
            offset: offset as usize,
            flag: 1u64 << bit,
        })
    }

    /// Writes `meta` into `m` and sets the flag.
    #[inline]
    pub fn set(&self, m: &mut Mbuf, meta: WeirMeta) {
        // SAFETY: the registered offset reserves size_of::<WeirMeta>() bytes in every mbuf.
        unsafe { m.set_field(self.offset, meta) };
        m.set_ol_flags(m.ol_flags() | self.flag);
    }

    /// The metadata of `m`, if a feeder set it.
    #[inline]
    pub fn get(&self, m: &Mbuf) -> Option<WeirMeta> {
        if m.ol_flags() & self.flag == 0 {
            return None;
        }
        // SAFETY: the flag says the field was written with a WeirMeta.
        Some(unsafe { m.field::<WeirMeta>(self.offset) })
    }
}

fn copy_name(dst: &mut [std::ffi::c_char], name: &str) -> Result<()> {
    let c = cstring("mbuf dynamic field name", name)?;
    let bytes = c.as_bytes_with_nul();
    if bytes.len() > dst.len() {
        return Err(Error::Object {
            what: "mbuf dynamic field",
            name: name.into(),
            errno: 0,
            reason: format!("name longer than {} bytes", dst.len() - 1),
        });
    }
    for (d, &b) in dst.iter_mut().zip(bytes) {
        *d = b as std::ffi::c_char;
    }
    Ok(())
}

fn dyn_error(name: &str) -> Error {
    let errno = rte_errno();
    Error::Object {
        what: "mbuf dynamic field",
        name: name.into(),
        errno,
        reason: errno_text(errno),
    }
}
