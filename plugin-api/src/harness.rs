//! A small loader for plugin authors' tests (feature `harness`): open a built plugin `.so` with
//! libloading, check its descriptor the way a host would, and run flows through its `extern "C"`
//! callbacks. It is not the appliance's host (no quarantine, no accounting): it exists so that
//! each plugin crate can prove its exported symbol and descriptor are right.

use core::ffi::{c_char, c_void, CStr};
use std::ffi::CString;
use std::path::{Path, PathBuf};

use crate::abi::{
    EntryFn, FlowKeyV1, PacketV1, PluginV1, PLUGIN_V1_0_SIZE, PLUGIN_V1_1_SIZE, PLUGIN_V1_2_SIZE,
    PLUGIN_V1_3_SIZE, WEIR_ABI_MAJOR, WEIR_ABI_MINOR, WEIR_OK, WEIR_PLUGIN_ENTRY_SYMBOL,
    WEIR_PLUGIN_MAGIC,
};

/// A loaded plugin library and its checked descriptor.
pub struct LoadedPlugin {
    desc: &'static PluginV1,
    path: PathBuf,
    // Keeps the library mapped for as long as `desc` is used.
    _lib: libloading::Library,
}

/// One feature as the descriptor declares it.
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureInfo {
    pub name: String,
    pub kind: u32,
    pub description: Option<String>,
}

fn c_str(p: *const c_char) -> Option<String> {
    // SAFETY: descriptor strings are NUL-terminated static strings (checked non-null here).
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

/// Where cargo put `lib{name}.so` for the profile the calling test was built with: the test
/// executable lives in `target/<profile>/deps/`, the library in `target/<profile>/`.
pub fn built_library(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let deps = exe.parent().expect("target/<profile>/deps");
    let file = format!("lib{name}.so");
    let profile_dir = deps.parent().expect("target/<profile>");
    let direct = profile_dir.join(&file);
    if direct.exists() {
        direct
    } else {
        deps.join(file)
    }
}

impl LoadedPlugin {
    /// Open `path`, resolve `weir_plugin_entry_v1`, call it as a 1.0 host and check magic,
    /// version, struct size and callbacks.
    pub fn open(path: &Path) -> Result<Self, String> {
        let shown = path.display();
        // SAFETY: loading a plugin runs its initialisers; the tests load only weir's own plugins.
        let lib = unsafe { libloading::Library::new(path) }
            .map_err(|e| format!("{shown}: cannot load: {e}"))?;
        // SAFETY: the symbol has the ABI's entry signature (weir_plugin_entry_v1_fn).
        let entry: EntryFn = unsafe {
            *lib.get::<EntryFn>(WEIR_PLUGIN_ENTRY_SYMBOL)
                .map_err(|e| format!("{shown}: no entry symbol: {e}"))?
        };
        // SAFETY: calling the entry as the header allows; it returns a static descriptor or NULL.
        let desc = unsafe { entry(WEIR_ABI_MAJOR, WEIR_ABI_MINOR) };
        // SAFETY: non-null descriptors are static and live as long as the library (kept in self).
        let desc: &'static PluginV1 = unsafe { desc.as_ref() }
            .ok_or_else(|| format!("{shown}: entry returned NULL for host 1.0"))?;
        if desc.magic != WEIR_PLUGIN_MAGIC {
            return Err(format!("{shown}: bad magic {:#x}", desc.magic));
        }
        if desc.abi_major != WEIR_ABI_MAJOR || desc.abi_minor > WEIR_ABI_MINOR {
            return Err(format!(
                "{shown}: ABI {}.{} does not fit host {WEIR_ABI_MAJOR}.{WEIR_ABI_MINOR}",
                desc.abi_major, desc.abi_minor
            ));
        }
        if (desc.struct_size as usize) < PLUGIN_V1_0_SIZE {
            return Err(format!(
                "{shown}: struct_size {} too small",
                desc.struct_size
            ));
        }
        if desc.create.is_none()
            || desc.destroy.is_none()
            || desc.flow_init.is_none()
            || desc.update_burst.is_none()
            || desc.flow_emit.is_none()
            || desc.last_error.is_none()
            || desc.name.is_null()
            || (desc.n_features > 0 && desc.features.is_null())
        {
            return Err(format!("{shown}: a required callback or field is NULL"));
        }
        if !desc.state_align.is_power_of_two() || desc.state_align > 64 {
            return Err(format!("{shown}: bad state_align {}", desc.state_align));
        }
        Ok(LoadedPlugin {
            desc,
            path: path.to_owned(),
            _lib: lib,
        })
    }

    /// The entry point itself, to probe other host versions.
    pub fn entry(&self) -> Result<EntryFn, String> {
        // SAFETY: as in open.
        unsafe {
            self._lib
                .get::<EntryFn>(WEIR_PLUGIN_ENTRY_SYMBOL)
                .map(|s| *s)
                .map_err(|e| e.to_string())
        }
    }

    pub fn descriptor(&self) -> &'static PluginV1 {
        self.desc
    }

    pub fn name(&self) -> String {
        c_str(self.desc.name).unwrap_or_default()
    }

    pub fn features(&self) -> Vec<FeatureInfo> {
        (0..self.desc.n_features as usize)
            .map(|i| {
                // SAFETY: open checked features is non-null with n_features entries.
                let f = unsafe { &*self.desc.features.add(i) };
                FeatureInfo {
                    name: c_str(f.name).unwrap_or_default(),
                    kind: f.kind,
                    description: c_str(f.description),
                }
            })
            .collect()
    }

    /// Create an instance for worker `worker`.
    pub fn instance(&self, config_json: &str, worker: u32) -> Result<LoadedInstance<'_>, String> {
        let config = CString::new(config_json).map_err(|e| e.to_string())?;
        let mut inst: *mut c_void = core::ptr::null_mut();
        let create = self.desc.create.expect("checked in open");
        // SAFETY: valid config string and out pointer, as the header requires.
        let rc = unsafe { create(config.as_ptr(), worker, &mut inst) };
        if rc != WEIR_OK {
            return Err(self.last_error(core::ptr::null_mut()));
        }
        Ok(LoadedInstance {
            plugin: self,
            inst,
            intervals: false,
        })
    }

    /// Create an instance for a run with interval records on: with an ABI 1.2 interval part,
    /// flows get `state_size + interval_state_size` bytes and bursts go to
    /// `update_burst_intervals`, as the host does.
    pub fn instance_with_intervals(
        &self,
        config_json: &str,
        worker: u32,
    ) -> Result<LoadedInstance<'_>, String> {
        let mut i = self.instance(config_json, worker)?;
        i.intervals = true;
        Ok(i)
    }

    /// ABI 1.2's `interval_state_size` (0 for an older descriptor).
    pub fn interval_state_size(&self) -> u32 {
        if (self.desc.struct_size as usize) < PLUGIN_V1_2_SIZE {
            0
        } else {
            self.desc.interval_state_size
        }
    }

    /// ABI 1.2's `update_burst_intervals` (None for an older descriptor or a NULL field).
    pub fn update_burst_intervals(&self) -> Option<crate::abi::UpdateBurstFn> {
        if (self.desc.struct_size as usize) < PLUGIN_V1_2_SIZE {
            None
        } else {
            self.desc.update_burst_intervals
        }
    }

    fn last_error(&self, inst: *mut c_void) -> String {
        let f = self.desc.last_error.expect("checked in open");
        // SAFETY: inst is null or an instance of this plugin; the string is NUL-terminated.
        c_str(unsafe { f(inst) }).unwrap_or_else(|| "(null message)".into())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Per-flow state the way the host keeps it: zeroed, aligned to 64 bytes, exactly `size`
/// bytes long as far as the plugin may know. The bytes after it (at least 8) hold a canary
/// that every call checks: in the host the next plugin's state is there.
pub struct StateBuf {
    lines: Vec<[u64; 8]>,
    size: usize,
}

const CANARY: u8 = 0xA5;

impl StateBuf {
    fn new(size: usize) -> Self {
        // Vec<[u64; 8]> is only 8-aligned: over-allocate one line and align by hand in ptr().
        let mut b = StateBuf {
            lines: vec![[0u64; 8]; size.div_ceil(64) + 1],
            size,
        };
        b.tail().fill(CANARY);
        b
    }

    fn ptr(&mut self) -> *mut c_void {
        let base = self.lines.as_mut_ptr() as *mut u8;
        let pad = base.align_offset(64);
        // SAFETY: pad < 64 and the buffer has one spare line.
        unsafe { base.add(pad) as *mut c_void }
    }

    /// The bytes after the state, to the end of the buffer.
    fn tail(&mut self) -> &mut [u8] {
        let start = self.ptr() as usize - self.lines.as_ptr() as usize + self.size;
        let all = self.lines.len() * 64;
        // SAFETY: the buffer is `all` initialised bytes; start <= all (pad < 64, spare line).
        let bytes =
            unsafe { core::slice::from_raw_parts_mut(self.lines.as_mut_ptr() as *mut u8, all) };
        &mut bytes[start..]
    }

    /// Err when the plugin wrote past its `size` bytes.
    fn check_canary(&mut self) -> Result<(), String> {
        let size = self.size;
        match self.tail().iter().position(|&b| b != CANARY) {
            None => Ok(()),
            Some(i) => Err(format!(
                "the plugin wrote past its {size}-byte state (byte {} after it)",
                i
            )),
        }
    }
}

/// One instance of a loaded plugin; destroyed on drop.
pub struct LoadedInstance<'a> {
    plugin: &'a LoadedPlugin,
    inst: *mut c_void,
    /// Interval records on (see [`LoadedPlugin::instance_with_intervals`]).
    intervals: bool,
}

impl LoadedInstance<'_> {
    /// The per-flow state bytes the host gives this instance (before any interval part): its
    /// ABI 1.3 `flow_state_size` answer, or the descriptor's `state_size`.
    pub fn flow_state_size(&self) -> u32 {
        let d = self.plugin.desc;
        match d.flow_state_size {
            // SAFETY: a live instance of this plugin; the field is there (struct_size checked).
            Some(f) if d.struct_size as usize >= PLUGIN_V1_3_SIZE => unsafe { f(self.inst) },
            _ => d.state_size,
        }
    }

    /// A zeroed state for a new flow, after `flow_init`.
    pub fn new_flow(&mut self, key: &FlowKeyV1) -> Result<StateBuf, String> {
        let tail = if self.intervals {
            self.plugin.interval_state_size() as usize
        } else {
            0
        };
        let size = self.flow_state_size();
        if size > self.plugin.desc.state_size {
            return Err(format!(
                "flow_state_size answered {size}, more than the declared state_size {}",
                self.plugin.desc.state_size
            ));
        }
        let mut st = StateBuf::new(size as usize + tail);
        let f = self.plugin.desc.flow_init.expect("checked in open");
        // SAFETY: live instance, key and a zeroed, aligned state of state_size bytes.
        let rc = unsafe { f(self.inst, key, st.ptr()) };
        self.check(rc)?;
        Ok(st)
    }

    /// One `update_burst` call: packet `i` belongs to flow `flows[pkts[i].0]`. Returns `done`.
    pub fn update_burst(
        &mut self,
        flows: &mut [StateBuf],
        pkts: &[(usize, PacketV1)],
    ) -> Result<Vec<u8>, String> {
        let states: Vec<*mut c_void> = pkts.iter().map(|(f, _)| flows[*f].ptr()).collect();
        let packets: Vec<PacketV1> = pkts.iter().map(|(_, p)| *p).collect();
        let mut done = vec![0u8; pkts.len()];
        let f = match self.plugin.update_burst_intervals() {
            Some(f) if self.intervals => f,
            _ => self.plugin.desc.update_burst.expect("checked in open"),
        };
        // SAFETY: n matching states, packets and done flags; packets' data outlive the call.
        let rc = unsafe {
            f(
                self.inst,
                states.as_ptr(),
                packets.as_ptr(),
                done.as_mut_ptr(),
                pkts.len() as u32,
            )
        };
        self.check(rc)?;
        for &(f, _) in pkts {
            flows[f].check_canary()?;
        }
        Ok(done)
    }

    /// `flow_emit` into a fresh vector of n_features values.
    pub fn emit(&mut self, key: &FlowKeyV1, state: &mut StateBuf) -> Result<Vec<f64>, String> {
        let n = self.plugin.desc.n_features;
        let mut out = vec![-12345.0; n as usize];
        let f = self.plugin.desc.flow_emit.expect("checked in open");
        // SAFETY: live instance, the flow's state, n writable doubles.
        let rc = unsafe { f(self.inst, key, state.ptr(), out.as_mut_ptr(), n) };
        self.check(rc)?;
        state.check_canary()?;
        Ok(out)
    }

    /// ABI 1.4 `flow_emit_text`: the numeric values and, per text feature, the raw value the
    /// plugin reported (`None`: missing; a length over `WEIR_TEXT_MAX` is kept as reported, the
    /// bytes cut to what the buffer held) so tests can see what the host would refuse. Falls
    /// back to `flow_emit` (no texts) for a plugin without the callback.
    #[allow(clippy::type_complexity)]
    pub fn emit_text(
        &mut self,
        key: &FlowKeyV1,
        state: &mut StateBuf,
    ) -> Result<(Vec<f64>, Vec<Option<(u32, Vec<u8>)>>), String> {
        let d = self.plugin.desc;
        let f = match d.flow_emit_text {
            Some(f) if d.struct_size as usize >= crate::abi::PLUGIN_V1_4_SIZE => f,
            _ => return self.emit(key, state).map(|v| (v, vec![])),
        };
        let n_texts = self
            .plugin
            .features()
            .iter()
            .filter(|x| x.kind == crate::abi::WEIR_FEATURE_TEXT)
            .count();
        let cap = crate::abi::WEIR_TEXT_MAX as usize;
        let mut bufs = vec![0u8; n_texts * cap];
        let mut texts: Vec<crate::abi::TextV1> = bufs
            .chunks_exact_mut(cap)
            .map(|c| crate::abi::TextV1 {
                buf: c.as_mut_ptr().cast(),
                cap: cap as u32,
                len: crate::abi::WEIR_TEXT_MISSING,
            })
            .collect();
        let mut out = vec![-12345.0; d.n_features as usize];
        // SAFETY: live instance, the flow's state, n writable doubles, n_texts views over cap
        // writable bytes each.
        let rc = unsafe {
            f(
                self.inst,
                key,
                state.ptr(),
                out.as_mut_ptr(),
                d.n_features,
                texts.as_mut_ptr(),
                n_texts as u32,
            )
        };
        self.check(rc)?;
        state.check_canary()?;
        let vals = texts
            .iter()
            .enumerate()
            .map(|(j, t)| {
                (t.len != crate::abi::WEIR_TEXT_MISSING).then(|| {
                    let n = (t.len as usize).min(cap);
                    (t.len, bufs[j * cap..j * cap + n].to_vec())
                })
            })
            .collect();
        Ok((out, vals))
    }

    /// ABI 1.1 `interval_emit` into a fresh vector of n_features values; `None` when the
    /// plugin has no such callback (a 1.0 descriptor, or a NULL field).
    pub fn interval_emit(
        &mut self,
        key: &FlowKeyV1,
        state: &mut StateBuf,
    ) -> Result<Option<Vec<f64>>, String> {
        let d = self.plugin.desc;
        if (d.struct_size as usize) < PLUGIN_V1_1_SIZE {
            return Ok(None);
        }
        let Some(f) = d.interval_emit else {
            return Ok(None);
        };
        if self.plugin.interval_state_size() > 0 && !self.intervals {
            // The host never calls it then: the states have no interval part.
            return Err("interval_emit on an instance without interval records \
                 (use instance_with_intervals)"
                .into());
        }
        let mut out = vec![-12345.0; d.n_features as usize];
        // SAFETY: live instance, the flow's state, n writable doubles.
        let rc = unsafe { f(self.inst, key, state.ptr(), out.as_mut_ptr(), d.n_features) };
        self.check(rc)?;
        state.check_canary()?;
        Ok(Some(out))
    }

    /// A whole flow as the host would run it: init, bursts of `burst` packets (skipping the
    /// flow's packets once it is done), emit.
    pub fn run_flow(
        &mut self,
        key: &FlowKeyV1,
        pkts: &[PacketV1],
        burst: usize,
    ) -> Result<Vec<f64>, String> {
        let mut flows = vec![self.new_flow(key)?];
        for chunk in pkts.chunks(burst.max(1)) {
            let batch: Vec<(usize, PacketV1)> = chunk.iter().map(|p| (0, *p)).collect();
            let done = self.update_burst(&mut flows, &batch)?;
            if done.iter().any(|&d| d != 0) {
                break;
            }
        }
        self.emit(key, &mut flows[0])
    }

    fn check(&self, rc: i32) -> Result<(), String> {
        if rc == WEIR_OK {
            Ok(())
        } else {
            Err(format!("rc {rc}: {}", self.plugin.last_error(self.inst)))
        }
    }
}

impl Drop for LoadedInstance<'_> {
    fn drop(&mut self) {
        if let Some(d) = self.plugin.desc.destroy {
            // SAFETY: the instance came from create and is destroyed once.
            unsafe { d(self.inst) }
        }
    }
}
