//! One worker's plugin instances and the per-burst dispatch.
//!
//! A [`WorkerPlugins`] is created on (and used by) one worker thread. It owns scratch arrays
//! sized for [`MAX_BURST`] packets at creation, so dispatching a burst allocates nothing, takes
//! no lock and makes no syscall. For each plugin in load order it hands over the burst with
//! `states[i]` pointing into packet i's flow slab; packets of flows whose done bit that plugin
//! set are filtered out (the copy into a sub-burst is made only when such a flow is present).
//! The TSC is read once per plugin call and chained, so the end of one plugin's call is the
//! start of the next's (as VPP's dispatcher does).
//!
//! A plugin that returns an error is quarantined on this worker: counted in the cost table,
//! logged at most once per 10 s per plugin (across workers), never called again here, its
//! features NaN from then on. Traffic and the other plugins go on.

use super::descriptor::Callbacks;
use super::loader::{PluginRegistry, PluginShared};
use super::slab::SlabLayout;
use super::{selftest, Error};
use crate::cost::{CostTable, RowId};
use crate::flow::record::Texts;
use std::ffi::{c_void, CString};
use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Instant;
use weir_plugin_api::{FlowKeyV1, PacketV1, TextV1, WEIR_OK, WEIR_TEXT_MAX, WEIR_TEXT_MISSING};

/// Largest burst handed to a plugin in one call; longer bursts are split.
pub const MAX_BURST: usize = 512;

/// Minimum time between two quarantine log lines of one plugin.
const LOG_INTERVAL_MS: u64 = 10_000;

struct Slot {
    name: String,
    cb: Callbacks,
    inst: *mut c_void,
    /// Whether `inst` came from a successful create (and must be destroyed).
    created: bool,
    offset: usize,
    cols: Range<usize>,
    /// Its text features (ABI 1.4) among all plugins' text features, in record order.
    texts: Range<usize>,
    row: RowId,
    quarantined: bool,
    shared: Arc<PluginShared>,
}

/// One worker's instances of every loaded plugin.
pub struct WorkerPlugins {
    worker: u32,
    slots: Vec<Slot>,
    slab_size: usize,
    slab_align: usize,
    n_features: usize,
    quarantines: u64,
    /// ABI 1.4: text values refused (see [`TextRefusals`]).
    text_refused: TextRefusals,
    /// One host-owned buffer of `WEIR_TEXT_MAX` bytes per text feature, and the views handed
    /// to `flow_emit_text` over them: allocated once, reused for every flow.
    text_buf: Vec<u8>,
    text_views: Vec<TextV1>,
    // Scratch for one burst, allocated once.
    states: Vec<*mut c_void>,
    pkts: Vec<PacketV1>,
    done: Vec<u8>,
    idx: Vec<u32>,
}

/// Text values (ABI 1.4) refused on one worker: never written, the record's cell is missing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TextRefusals {
    /// The plugin reported a value longer than `WEIR_TEXT_MAX` bytes.
    pub too_long: u64,
    /// The value's bytes were not UTF-8.
    pub invalid_utf8: u64,
}

// SAFETY: a WorkerPlugins is used by one thread at a time (&mut self everywhere); the raw
// pointers are plugin instances, which the ABI lets any one thread call, scratch pointers
// rewritten on every burst, and the text views, which point into `text_buf` (a heap block
// that moves with the value).
unsafe impl Send for WorkerPlugins {}

impl PluginRegistry {
    /// Create every plugin's instance for `worker`. Call it on the worker's own thread: the
    /// ABI promises plugins that an instance is only ever called from one thread.
    ///
    /// A plugin whose `create` fails is quarantined on this worker from the start (logged),
    /// unless it is required, which fails the call.
    pub fn instantiate(&self, worker: u32) -> Result<WorkerPlugins, Error> {
        let layout = self.layout();
        let n_texts: usize = self.plugins().iter().map(|p| p.desc.n_texts()).sum();
        let mut text_buf = vec![0u8; n_texts * WEIR_TEXT_MAX as usize];
        let text_views = text_buf
            .chunks_exact_mut(WEIR_TEXT_MAX as usize)
            .map(|c| TextV1 {
                buf: c.as_mut_ptr().cast(),
                cap: WEIR_TEXT_MAX,
                len: WEIR_TEXT_MISSING,
            })
            .collect();
        let mut w = WorkerPlugins {
            worker,
            slots: Vec::with_capacity(self.plugins().len()),
            slab_size: layout.slab_size(),
            slab_align: layout.slab_align(),
            n_features: self.n_features(),
            quarantines: 0,
            text_refused: TextRefusals::default(),
            text_buf,
            text_views,
            states: vec![std::ptr::null_mut(); MAX_BURST],
            pkts: vec![PacketV1::EMPTY; MAX_BURST],
            done: vec![0; MAX_BURST],
            idx: vec![0; MAX_BURST],
        };
        let mut next_text = 0;
        for (i, p) in self.plugins().iter().enumerate() {
            let texts = next_text..next_text + p.desc.n_texts();
            next_text = texts.end;
            let mut inst: *mut c_void = std::ptr::null_mut();
            // The loader took config_json from a Rust String; a NUL inside fails the self-test
            // already, so this cannot fail for a plugin that was admitted with the self-test.
            let config = CString::new(p.config_json.as_str()).unwrap_or_default();
            // SAFETY: create is a checked callback of a loaded (never unloaded) plugin.
            let rc = unsafe { (p.desc.cb.create)(config.as_ptr(), worker, &mut inst) };
            let mut created = rc == WEIR_OK;
            let mut msg = String::new();
            if !created {
                // SAFETY: last_error(NULL) reports a failed create.
                msg = unsafe { selftest::last_error(&p.desc.cb, std::ptr::null_mut()) };
            } else if let (Some(f), Some(want)) =
                (p.desc.cb.flow_state_size, p.desc.flow_state_size)
            {
                // The slab was laid out with the loader's probe instance's answer: an instance
                // that wants more would write past its state.
                // SAFETY: inst is this plugin's live instance.
                let got = unsafe { f(inst) };
                if got != want {
                    msg = format!(
                        "flow_state_size answered {got} bytes on worker {worker} but {want} \
                         at load: the answer must depend on the config only"
                    );
                    if let Some(destroy) = p.desc.cb.destroy {
                        // SAFETY: inst came from create and is not used afterwards.
                        unsafe { destroy(inst) };
                    }
                    inst = std::ptr::null_mut();
                    created = false;
                }
            }
            if !created {
                if p.required {
                    return Err(Error::Create {
                        plugin: p.desc.name.clone(),
                        worker,
                        message: msg,
                    });
                }
                tracing::error!(plugin = %p.desc.name, worker, "plugin create failed, \
                    quarantined on this worker: {msg}");
                w.quarantines += 1;
            }
            w.slots.push(Slot {
                name: p.desc.name.clone(),
                cb: p.desc.cb,
                inst,
                created,
                offset: layout.offset(i),
                cols: p.columns.clone(),
                texts,
                row: RowId::plugin(i),
                quarantined: !created,
                shared: p.shared.clone(),
            });
        }
        Ok(w)
    }
}

fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

/// Mark a slot quarantined, count it and log at a limited rate. Off the hot path.
#[cold]
fn quarantine(slot: &mut Slot, worker: u32, call: &'static str, cost: &mut CostTable) {
    // SAFETY: inst is this plugin's live instance; last_error is valid right after the call
    // that failed.
    let msg = unsafe { selftest::last_error(&slot.cb, slot.inst) };
    slot.quarantined = true;
    cost.note_error(slot.row, true);
    let now = now_ms();
    let last = slot.shared.last_log_ms.load(Ordering::Relaxed);
    if (last == 0 || now.saturating_sub(last) >= LOG_INTERVAL_MS)
        && slot
            .shared
            .last_log_ms
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        let suppressed = slot.shared.suppressed.swap(0, Ordering::Relaxed);
        tracing::error!(plugin = %slot.name, worker, call, suppressed,
            "plugin failed and is quarantined on this worker (its features are NaN from now \
             on): {msg}");
    } else {
        slot.shared.suppressed.fetch_add(1, Ordering::Relaxed);
    }
}

impl WorkerPlugins {
    pub fn worker(&self) -> u32 {
        self.worker
    }

    /// Bytes each flow's slab must have (see [`SlabLayout`]).
    pub fn slab_size(&self) -> usize {
        self.slab_size
    }

    pub fn slab_align(&self) -> usize {
        self.slab_align
    }

    /// Doubles [`WorkerPlugins::flow_emit`] writes.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Whether plugin `i` (registry order) is quarantined on this worker.
    pub fn quarantined(&self, i: usize) -> bool {
        self.slots[i].quarantined
    }

    /// Plugins quarantined on this worker so far.
    pub fn quarantine_count(&self) -> u64 {
        self.quarantines
    }

    /// Text features of all plugins (ABI 1.4): the values [`WorkerPlugins::flow_emit_texts`]
    /// pushes per flow.
    pub fn n_texts(&self) -> usize {
        self.text_views.len()
    }

    /// Text values refused on this worker so far.
    pub fn text_refused(&self) -> TextRefusals {
        self.text_refused
    }

    /// A new flow: zero its slab and call every plugin's flow_init.
    ///
    /// # Safety
    /// `slab` points to `slab_size()` writable bytes aligned to `slab_align()`, not aliased
    /// during the call.
    pub unsafe fn flow_init(&mut self, key: &FlowKeyV1, slab: *mut u8, cost: &mut CostTable) {
        // SAFETY: forwarded.
        unsafe { self.flow_init_selected(key, slab, 0, cost) }
    }

    /// Like [`WorkerPlugins::flow_init`], with the plugins of bit mask `skip` not selected
    /// for this flow: never called for it (not even flow_init), features NaN.
    ///
    /// # Safety
    /// As for [`WorkerPlugins::flow_init`].
    pub unsafe fn flow_init_selected(
        &mut self,
        key: &FlowKeyV1,
        slab: *mut u8,
        skip: u64,
        cost: &mut CostTable,
    ) {
        debug_assert_eq!(slab as usize % self.slab_align, 0, "misaligned slab");
        // SAFETY: the caller guarantees slab_size writable bytes.
        unsafe { std::ptr::write_bytes(slab, 0, self.slab_size) };
        if skip != 0 {
            // SAFETY: a zeroed slab of this layout.
            unsafe { SlabLayout::set_skip(slab, skip) };
        }
        let mut t = cost.start();
        for (pi, slot) in self.slots.iter_mut().enumerate() {
            if slot.quarantined || skip & (1u64 << pi) != 0 {
                continue;
            }
            // SAFETY: offset lies inside the slab and is aligned to the plugin's state_align;
            // key outlives the call.
            let rc = unsafe { (slot.cb.flow_init)(slot.inst, key, slab.add(slot.offset).cast()) };
            t = cost.lap_flows(slot.row, 1, t);
            if rc != WEIR_OK {
                self.quarantines += 1;
                quarantine(slot, self.worker, "flow_init", cost);
            }
        }
    }

    /// Hand a burst to every plugin. `slabs[i]` is the slab of `pkts[i]`'s flow (a flow may
    /// appear several times); both slices have the same length.
    ///
    /// # Safety
    /// Every `slabs[i]` is a slab initialised by [`WorkerPlugins::flow_init`] and not yet
    /// emitted, not aliased during the call; every packet's `data` points to `cap_len`
    /// readable bytes for the duration of the call.
    pub unsafe fn update_burst(
        &mut self,
        slabs: &[*mut u8],
        pkts: &[PacketV1],
        cost: &mut CostTable,
    ) {
        debug_assert_eq!(slabs.len(), pkts.len());
        let n = slabs.len().min(pkts.len());
        let mut start = 0;
        while start < n {
            let end = (start + MAX_BURST).min(n);
            // SAFETY: forwarded.
            unsafe { self.dispatch(&slabs[start..end], &pkts[start..end], cost) };
            start = end;
        }
    }

    /// One burst of at most MAX_BURST packets.
    unsafe fn dispatch(&mut self, slabs: &[*mut u8], pkts: &[PacketV1], cost: &mut CostTable) {
        let n = slabs.len();
        // Which plugins some flow of this burst is done for: one pass over the headers.
        let mut any_done = 0u64;
        for &s in slabs {
            // SAFETY: every slab starts with the host header (caller's contract).
            any_done |= unsafe { SlabLayout::done_mask(s) };
        }
        let worker = self.worker;
        let Self {
            slots,
            states,
            pkts: sub,
            done,
            idx,
            quarantines,
            ..
        } = self;
        let mut t = cost.start();
        for (pi, slot) in slots.iter_mut().enumerate() {
            if slot.quarantined {
                continue;
            }
            let bit = 1u64 << pi;
            let filtered = any_done & bit != 0;
            let (pkt_ptr, m) = if !filtered {
                for (st, &s) in states.iter_mut().zip(slabs) {
                    // SAFETY: offset is inside every slab of this layout.
                    *st = unsafe { s.add(slot.offset) }.cast();
                }
                (pkts.as_ptr(), n)
            } else {
                let mut m = 0;
                for (i, &s) in slabs.iter().enumerate() {
                    // SAFETY: as above.
                    if unsafe { SlabLayout::done_mask(s) } & bit == 0 {
                        // SAFETY: offset is inside every slab of this layout.
                        states[m] = unsafe { s.add(slot.offset) }.cast();
                        sub[m] = pkts[i];
                        idx[m] = i as u32;
                        m += 1;
                    }
                }
                (sub.as_ptr(), m)
            };
            if m == 0 {
                continue;
            }
            done[..m].fill(0);
            // SAFETY: states, packets and done have m valid entries; the instance is live and
            // only this thread calls it.
            let rc = unsafe {
                (slot.cb.update_burst)(
                    slot.inst,
                    states.as_ptr(),
                    pkt_ptr,
                    done.as_mut_ptr(),
                    m as u32,
                )
            };
            t = cost.lap(slot.row, m as u32, t);
            if rc != WEIR_OK {
                *quarantines += 1;
                quarantine(slot, worker, "update_burst", cost);
                continue;
            }
            for (j, &d) in done[..m].iter().enumerate() {
                if d != 0 {
                    let i = if filtered { idx[j] as usize } else { j };
                    // SAFETY: slabs[i] is a live slab (caller's contract).
                    unsafe { SlabLayout::set_done(slabs[i], pi) };
                }
            }
        }
    }

    /// The flow ended: write every plugin's features into its columns of `out` (which holds
    /// at least `n_features()` doubles); a quarantined plugin's columns are NaN.
    ///
    /// # Safety
    /// `slab` is a slab initialised by [`WorkerPlugins::flow_init`] for this flow.
    pub unsafe fn flow_emit(
        &mut self,
        key: &FlowKeyV1,
        slab: *const u8,
        out: &mut [f64],
        cost: &mut CostTable,
    ) {
        let mut texts = Texts::default();
        // SAFETY: forwarded; the texts are dropped (callers without text columns).
        unsafe { self.flow_emit_texts(key, slab.cast_mut(), out, &mut texts, cost) }
    }

    /// [`WorkerPlugins::flow_emit`], with the text features (ABI 1.4) appended to `texts`,
    /// [`WorkerPlugins::n_texts`] of them in record order. A value the plugin left missing, or
    /// that is refused (longer than `WEIR_TEXT_MAX` bytes, not UTF-8: counted in
    /// [`WorkerPlugins::text_refused`]), is pushed as missing.
    ///
    /// # Safety
    /// `slab` is a slab initialised by [`WorkerPlugins::flow_init`] for this flow, not aliased
    /// during the call (a plugin's `flow_emit_text` may write its state: the flow's last call).
    pub unsafe fn flow_emit_texts(
        &mut self,
        key: &FlowKeyV1,
        slab: *mut u8,
        out: &mut [f64],
        texts: &mut Texts,
        cost: &mut CostTable,
    ) {
        for v in &mut self.text_views {
            v.len = WEIR_TEXT_MISSING;
        }
        // SAFETY: forwarded.
        unsafe { self.emit(Emit::Flow, key, slab, out, cost) };
        let refused = &mut self.text_refused;
        for (j, v) in self.text_views.iter().enumerate() {
            if v.len == WEIR_TEXT_MISSING {
                texts.push(None);
                continue;
            }
            if v.len > v.cap {
                refused.too_long += 1;
                texts.push(None);
                continue;
            }
            let start = j * WEIR_TEXT_MAX as usize;
            let bytes = &self.text_buf[start..start + v.len as usize];
            match std::str::from_utf8(bytes) {
                Ok(s) => texts.push(Some(s)),
                Err(_) => {
                    refused.invalid_utf8 += 1;
                    texts.push(None);
                }
            }
        }
    }

    /// The flow's interval ended: write every plugin's interval features into its columns of
    /// `out` (at least `n_features()` doubles) and let it reset its interval state. A plugin
    /// without `interval_emit` (ABI 1.0, or NULL), or quarantined, gets NaN columns.
    ///
    /// # Safety
    /// `slab` is a slab initialised by [`WorkerPlugins::flow_init`] for this flow, not aliased
    /// during the call.
    pub unsafe fn interval_emit(
        &mut self,
        key: &FlowKeyV1,
        slab: *mut u8,
        out: &mut [f64],
        cost: &mut CostTable,
    ) {
        // SAFETY: forwarded.
        unsafe { self.emit(Emit::Interval, key, slab, out, cost) }
    }

    /// Both emits: each plugin's columns from its callback, or NaN when it is quarantined, not
    /// selected for the flow's service (never initialised on it) or lacks the callback.
    ///
    /// # Safety
    /// As for [`WorkerPlugins::interval_emit`].
    unsafe fn emit(
        &mut self,
        which: Emit,
        key: &FlowKeyV1,
        slab: *mut u8,
        out: &mut [f64],
        cost: &mut CostTable,
    ) {
        let call = match which {
            Emit::Flow => "flow_emit",
            Emit::Interval => "interval_emit",
        };
        assert!(
            out.len() >= self.n_features,
            "{call} needs {} output columns, got {}",
            self.n_features,
            out.len()
        );
        // SAFETY: the slab of this flow (caller's contract).
        let skip = unsafe { SlabLayout::skip_mask(slab) };
        let mut t = cost.start();
        for (pi, slot) in self.slots.iter_mut().enumerate() {
            let cols = &mut out[slot.cols.clone()];
            let live = !slot.quarantined && skip & (1u64 << pi) == 0;
            let state = slab.wrapping_add(slot.offset).cast();
            let (ptr, n) = (cols.as_mut_ptr(), cols.len() as u32);
            let rc = match (which, slot.cb.interval_emit) {
                (Emit::Flow, _) if live => match slot.cb.flow_emit_text {
                    // SAFETY: as above; the slot's views point to its WEIR_TEXT_MAX-byte
                    // buffers in text_buf, reset to missing by flow_emit_texts.
                    Some(f) => unsafe {
                        let tv = &mut self.text_views[slot.texts.clone()];
                        f(
                            slot.inst,
                            key,
                            state,
                            ptr,
                            n,
                            tv.as_mut_ptr(),
                            tv.len() as u32,
                        )
                    },
                    // SAFETY: the state lies inside the slab; cols has exactly n_features doubles.
                    None => unsafe { (slot.cb.flow_emit)(slot.inst, key, state, ptr, n) },
                },
                // SAFETY: as for flow_emit.
                (Emit::Interval, Some(f)) if live => unsafe { f(slot.inst, key, state, ptr, n) },
                _ => {
                    cols.fill(f64::NAN);
                    continue;
                }
            };
            t = cost.lap_flows(slot.row, 0, t);
            if rc != WEIR_OK {
                cols.fill(f64::NAN);
                for v in &mut self.text_views[slot.texts.clone()] {
                    v.len = WEIR_TEXT_MISSING;
                }
                self.quarantines += 1;
                quarantine(slot, self.worker, call, cost);
            }
        }
    }
}

/// Which emit callback [`WorkerPlugins::emit`] calls.
#[derive(Clone, Copy)]
enum Emit {
    Flow,
    Interval,
}

impl Drop for WorkerPlugins {
    fn drop(&mut self) {
        for s in &self.slots {
            if let (true, Some(destroy)) = (s.created, s.cb.destroy) {
                // SAFETY: the instance came from this plugin's create and is not used again.
                unsafe { destroy(s.inst) };
            }
        }
    }
}
