//! The Environment Abstraction Layer: one `rte_eal_init` per process, cleaned up when the last
//! handle goes away.
//!
//! Pools, ports and rings hold an [`Eal`] handle, so `rte_eal_cleanup` (which unmaps DPDK
//! memory) cannot run while they exist. A pool dropped while mbufs are still out keeps its
//! handle forever (see `Mempool`), so memory that an mbuf may still point to is never unmapped.

use std::ffi::{c_char, CString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use crate::error::{cstring, errno_text, rte_errno, Error, Result};

static TRIED: AtomicBool = AtomicBool::new(false);
static CURRENT: Mutex<Weak<EalInner>> = Mutex::new(Weak::new());

/// A handle on the initialised EAL. Cloning is cheap; `rte_eal_cleanup` runs when the last
/// handle (including those held by pools, ports and rings) is dropped.
#[derive(Clone, Debug)]
pub struct Eal {
    inner: Arc<EalInner>,
}

#[derive(Debug)]
struct EalInner {
    args: Vec<String>,
}

impl Drop for EalInner {
    fn drop(&mut self) {
        // SAFETY: the last handle is gone: nothing of ours uses DPDK memory any more.
        unsafe { cleanup(&self.args) };
    }
}

/// `rte_eal_cleanup`, then the removal of the runtime directory when it was this process's
/// own ([`private_runtime_dir`]); returns the cleanup's code.
///
/// # Safety
/// The last [`Eal`] handle is gone: nothing uses DPDK memory any more.
unsafe fn cleanup(args: &[String]) -> i32 {
    let dir = private_runtime_dir(args);
    // SAFETY: the caller's guarantee.
    let code = unsafe { weir_dpdk_sys::rte_eal_cleanup() };
    remove_runtime_dir(dir);
    code
}

/// The EAL's runtime directory, while it is initialised.
fn runtime_dir() -> Option<std::path::PathBuf> {
    // SAFETY: the EAL is initialised (callers hold or are dropping a handle); it returns a
    // static, NUL-terminated path (or null).
    let p = unsafe { weir_dpdk_sys::rte_eal_get_runtime_dir() };
    if p.is_null() {
        return None;
    }
    // SAFETY: non-null NUL-terminated string, copied here.
    let s = unsafe { std::ffi::CStr::from_ptr(p) }.to_str().ok()?;
    (!s.is_empty()).then(|| s.into())
}

/// The EAL's runtime directory (`/var/run/dpdk/PREFIX`) when it is this process's own: a
/// `--file-prefix` of its own and nothing shared through it (`--no-shconf`). The EAL creates
/// it at every start and `rte_eal_cleanup` leaves it: with a prefix per process (as weir
/// gives), one empty directory per run would pile up. The default prefix's directory is left
/// alone: another process may be about to use it.
fn private_runtime_dir(args: &[String]) -> Option<std::path::PathBuf> {
    let no_shconf = args.iter().any(|a| a == "--no-shconf");
    let prefix = args
        .iter()
        .any(|a| a == "--file-prefix" || a.starts_with("--file-prefix="));
    if !(no_shconf && prefix) {
        return None;
    }
    runtime_dir()
}

/// Remove the runtime directory if it is empty (a file in it, such as another tool's socket,
/// keeps it).
fn remove_runtime_dir(dir: Option<std::path::PathBuf>) {
    if let Some(d) = dir {
        let _ = std::fs::remove_dir(d);
    }
}

impl Eal {
    /// Initialises the EAL with `args`, the EAL options without a program name
    /// (e.g. `["--no-huge", "-m", "512", "--no-pci", "--vdev=net_pcap0,rx_pcap=a.pcap"]`).
    ///
    /// The calling thread becomes the main lcore (EAL pins it to that core). Fails, without
    /// panicking, on a bad option, a device that cannot be probed, lack of memory, arguments
    /// EAL does not parse, or a second call in the same process.
    ///
    /// With a `--file-prefix` and `--no-shconf` the runtime directory the EAL creates is the
    /// process's own: cleanup removes it (if empty), which `rte_eal_cleanup` does not.
    pub fn init(args: &[String]) -> Result<Eal> {
        if TRIED.swap(true, Ordering::SeqCst) {
            return Err(Error::EalAlreadyInitialized);
        }
        let mut c_args: Vec<CString> = Vec::with_capacity(args.len() + 1);
        c_args.push(CString::from(c"weir"));
        for a in args {
            c_args.push(cstring("EAL argument", a)?);
        }
        // EAL may keep pointers into argv (and permutes it): leak the strings, once per process.
        let c_args: &'static [CString] = Vec::leak(c_args);
        let mut argv: Vec<*mut c_char> = c_args.iter().map(|s| s.as_ptr().cast_mut()).collect();
        let argc = argv.len() as i32;
        // SAFETY: argv holds argc valid NUL-terminated strings that live forever.
        let ret = unsafe { weir_dpdk_sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        if ret < 0 {
            let errno = rte_errno();
            return Err(Error::EalInit {
                args: args.to_vec(),
                errno,
                reason: errno_text(errno),
            });
        }
        let inner = Arc::new(EalInner {
            args: args.to_vec(),
        });
        // ret options (plus argv[0]) were consumed; the rest were not EAL options.
        if (ret as usize) < args.len() {
            let unparsed = argv[(ret as usize + 1)..]
                .iter()
                .map(|&p| {
                    // SAFETY: EAL permutes argv but keeps pointers to our leaked strings.
                    unsafe { std::ffi::CStr::from_ptr(p) }
                        .to_string_lossy()
                        .into_owned()
                })
                .collect();
            drop(inner); // cleans the EAL up again
            return Err(Error::EalUnparsedArgs {
                args: args.to_vec(),
                unparsed,
            });
        }
        // EAL only logs a vdev whose driver fails to probe it: check each Ethernet vdev exists.
        for vdev in vdev_args(args) {
            let name = vdev.split(',').next().unwrap_or_default();
            if !(name.starts_with("net_") || name.starts_with("eth_")) {
                continue; // not an ethdev (crypto, event, ...): not ours to check
            }
            let c = cstring("vdev name", name)?;
            let mut id = 0u16;
            // SAFETY: valid name and out-pointer.
            if unsafe { weir_dpdk_sys::rte_eth_dev_get_port_by_name(c.as_ptr(), &mut id) } != 0 {
                drop(inner);
                return Err(Error::VdevNotCreated {
                    vdev: vdev.to_owned(),
                    args: args.to_vec(),
                });
            }
        }
        *CURRENT.lock().unwrap_or_else(|e| e.into_inner()) = Arc::downgrade(&inner);
        Ok(Eal { inner })
    }

    /// The live EAL handle, if `init` succeeded and it has not been cleaned up.
    pub fn current() -> Option<Eal> {
        CURRENT
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .upgrade()
            .map(|inner| Eal { inner })
    }

    /// Like [`Eal::current`], as an error naming the operation that needed it.
    pub(crate) fn require(op: &'static str) -> Result<Eal> {
        Eal::current().ok_or(Error::EalNotInitialized(op))
    }

    /// The EAL's runtime directory (sockets and shared files; removed at cleanup when it is
    /// private, see [`Eal::init`]).
    pub fn runtime_dir(&self) -> std::path::PathBuf {
        runtime_dir().unwrap_or_default()
    }

    /// The arguments EAL was initialised with.
    pub fn args(&self) -> &[String] {
        &self.inner.args
    }

    /// Releases this handle and runs `rte_eal_cleanup` now if it was the last one.
    ///
    /// If pools, ports or rings still hold handles, returns [`Error::EalInUse`]; cleanup then
    /// happens when the last of them is dropped.
    pub fn cleanup(self) -> Result<()> {
        match Arc::try_unwrap(self.inner) {
            Ok(inner) => {
                // Cleaned up here, not again by its Drop.
                let inner = std::mem::ManuallyDrop::new(inner);
                // SAFETY: this was the last handle; nothing of ours uses DPDK memory.
                let code = unsafe { cleanup(&inner.args) };
                if code < 0 {
                    return Err(Error::EalCleanup {
                        code,
                        reason: errno_text(code),
                    });
                }
                Ok(())
            }
            Err(arc) => Err(Error::EalInUse(Arc::strong_count(&arc) - 1)),
        }
    }
}

/// The values of `--vdev=X` / `--vdev X` options.
fn vdev_args(args: &[String]) -> impl Iterator<Item = &str> {
    args.iter().enumerate().filter_map(|(i, a)| {
        if let Some(v) = a.strip_prefix("--vdev=") {
            Some(v)
        } else if a == "--vdev" {
            args.get(i + 1).map(String::as_str)
        } else {
            None
        }
    })
}
