//! The crate's error type: every variant names the thing that failed and DPDK's reason.

use std::ffi::CStr;

/// Errors from EAL, ports, queues, pools, rings, dynamic fields and lcores.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `rte_eal_init` failed (bad argument, no memory, a vdev that cannot be probed, ...).
    #[error("DPDK EAL init failed: {reason} (rte_errno {errno}); EAL args: {args:?}")]
    EalInit {
        args: Vec<String>,
        errno: i32,
        reason: String,
    },
    /// `rte_eal_init` parsed fewer arguments than given: the rest are not EAL options.
    #[error("DPDK EAL init: arguments not understood by EAL: {unparsed:?}; EAL args: {args:?}")]
    EalUnparsedArgs {
        args: Vec<String>,
        unparsed: Vec<String>,
    },
    /// EAL started but a `--vdev` Ethernet device was not created (its driver refused it).
    #[error(
        "DPDK EAL init: virtual device {vdev:?} was not created (its driver refused the \
         arguments, e.g. a missing capture file or an unknown driver; the DPDK log above says \
         why); EAL args: {args:?}"
    )]
    VdevNotCreated { vdev: String, args: Vec<String> },
    /// EAL can be initialised once per process (even after a failed attempt).
    #[error("DPDK EAL was already initialised (or tried) in this process: rte_eal_init runs once")]
    EalAlreadyInitialized,
    /// A DPDK call was made before `Eal::init` or after the EAL was cleaned up.
    #[error("{0}: DPDK EAL is not initialised (call Eal::init first)")]
    EalNotInitialized(&'static str),
    /// Other `Eal` handles or resources (pools, ports, rings) are still alive.
    #[error("DPDK EAL cleanup deferred: {0} other handle(s) still alive (pools, ports, rings)")]
    EalInUse(usize),
    /// `rte_eal_cleanup` returned an error.
    #[error("DPDK EAL cleanup failed: {reason} (code {code})")]
    EalCleanup { code: i32, reason: String },
    /// A string given to DPDK contains a NUL byte.
    #[error("{what} {value:?} contains a NUL byte")]
    Nul { what: &'static str, value: String },
    /// A named DPDK object (mempool, ring, dynamic field) could not be created or found.
    #[error("{what} {name:?}: {reason} (errno {errno})")]
    Object {
        what: &'static str,
        name: String,
        errno: i32,
        reason: String,
    },
    /// An ethdev operation failed.
    #[error("port {port} ({name}): {op} failed: {reason} (code {code})")]
    Port {
        port: u16,
        name: String,
        op: &'static str,
        code: i32,
        reason: String,
    },
    /// More queues were requested than the device supports.
    #[error(
        "port {port} ({name}, driver {driver}): {requested} {dir} queue(s) requested but the device \
         supports at most {max}"
    )]
    TooManyQueues {
        port: u16,
        name: String,
        driver: String,
        dir: &'static str,
        requested: u16,
        max: u16,
    },
    /// RSS was requested but the device can hash none of the requested packet types.
    #[error(
        "port {port} ({name}, driver {driver}): RSS requested for hash types {requested:#x} but the \
         device offers {offered:#x} (no overlap); use one queue or software spreading"
    )]
    RssUnsupported {
        port: u16,
        name: String,
        driver: String,
        requested: u64,
        offered: u64,
    },
    /// No ethdev has this name or id.
    #[error("no DPDK port {0} (available: {1:?})")]
    NoSuchPort(String, Vec<String>),
    /// This port or queue already has an owner in this process.
    #[error("{0} is already taken by another handle")]
    InUse(String),
    /// A ring bound to a port was used in the direction the port owns.
    #[error("ring {name:?}: {op} is done by port {port} it is bound to")]
    RingRole {
        name: String,
        op: &'static str,
        port: String,
    },
    /// An lcore could not be launched or does not exist.
    #[error("lcore {lcore}: {reason}")]
    Lcore { lcore: u32, reason: String },
    /// A pool could not give the requested mbufs, or an mbuf has no room left.
    #[error("{0}")]
    NoMbufs(String),
}

/// `rte_strerror` text for a positive or negative errno.
pub(crate) fn errno_text(errno: i32) -> String {
    // SAFETY: rte_strerror returns a pointer to a static or thread-local NUL-terminated string.
    unsafe {
        let p = weir_dpdk_sys::rte_strerror(errno.abs());
        if p.is_null() {
            return format!("error {errno}");
        }
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

/// The calling thread's `rte_errno`.
pub(crate) fn rte_errno() -> i32 {
    // SAFETY: reads a thread-local int through the shim.
    unsafe { weir_dpdk_sys::weir_rte_errno() }
}

/// A `CString` for DPDK, or an error naming what it was.
pub(crate) fn cstring(what: &'static str, s: &str) -> Result<std::ffi::CString, Error> {
    std::ffi::CString::new(s).map_err(|_| Error::Nul {
        what,
        value: s.to_owned(),
    })
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
