//! Classic BPF programs from libpcap's filter language (`tcp port 443 or udp port 53`), as
//! tcpdump compiles them: `pcap_compile` on a dead Ethernet handle. Only compilation goes
//! through libpcap; running the program is the caller's (weir runs it over its own frames).

use std::ffi::{CStr, CString};
use weir_dpdk_sys as sys;

/// One classic BPF instruction (`struct bpf_insn`, as in the kernel and libpcap).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BpfInsn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

/// The largest snap length tcpdump uses (`MAXIMUM_SNAPLEN`); only the accept value of the
/// program's `ret` depends on it.
pub const SNAPLEN: i32 = 262_144;

/// Compile `expr` for Ethernet frames (DLT_EN10MB), optimised, netmask unknown (as `tcpdump -r`
/// does for a file whose interface is gone). An expression libpcap refuses gives libpcap's own
/// message (`pcap_geterr`).
pub fn compile_pcap_filter(expr: &str) -> Result<Vec<BpfInsn>, String> {
    let c_expr = CString::new(expr).map_err(|_| "the filter contains a NUL byte".to_string())?;
    // SAFETY: pcap_open_dead only allocates a handle that records the link type and snap
    // length; it touches no device. A null return (out of memory) is checked.
    let p = unsafe { sys::pcap_open_dead(sys::DLT_EN10MB as i32, SNAPLEN) };
    if p.is_null() {
        return Err("libpcap could not allocate a handle (pcap_open_dead)".into());
    }
    let mut prog = sys::bpf_program {
        bf_len: 0,
        bf_insns: std::ptr::null_mut(),
    };
    // SAFETY: `p` is the live handle above, `prog` a valid out-parameter, `c_expr` a
    // NUL-terminated string that outlives the call. pcap_compile is thread-safe since
    // libpcap 1.8 (Debian 12 ships 1.10).
    let rc =
        unsafe { sys::pcap_compile(p, &mut prog, c_expr.as_ptr(), 1, sys::PCAP_NETMASK_UNKNOWN) };
    let out = if rc != 0 {
        // SAFETY: after a failed pcap_compile, pcap_geterr returns the handle's NUL-terminated
        // error buffer, valid until the handle is closed (below, after the copy).
        let msg = unsafe { CStr::from_ptr(sys::pcap_geterr(p)) };
        Err(msg.to_string_lossy().into_owned())
    } else {
        // SAFETY: on success `bf_insns` points to `bf_len` instructions that libpcap allocated
        // and owns until pcap_freecode; they are copied out before that.
        let raw = unsafe { std::slice::from_raw_parts(prog.bf_insns, prog.bf_len as usize) };
        let insns = raw
            .iter()
            .map(|i| BpfInsn {
                code: i.code,
                jt: i.jt,
                jf: i.jf,
                k: i.k,
            })
            .collect();
        // SAFETY: frees what pcap_compile allocated in `prog`, once.
        unsafe { sys::pcap_freecode(&mut prog) };
        Ok(insns)
    };
    // SAFETY: the handle from pcap_open_dead, closed once; nothing refers to it afterwards.
    unsafe { sys::pcap_close(p) };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_and_refuses_with_libpcaps_message() {
        let p = compile_pcap_filter("tcp port 443 or udp port 53").unwrap();
        assert!(p.len() > 5, "{p:?}");
        // The last instruction of every program libpcap emits is a return.
        assert_eq!(p.last().unwrap().code & 0x07, 0x06);
        let e = compile_pcap_filter("tcp port").unwrap_err();
        assert!(e.contains("syntax error"), "{e}");
        let e = compile_pcap_filter("port 99999").unwrap_err();
        assert!(e.contains("port"), "{e}");
    }
}
