//! The Rust SDK: implement [`Plugin`] for a type, call [`export_plugin!`](crate::export_plugin)
//! once in a `cdylib` crate, and the crate exports a complete ABI v1 plugin.
//!
//! The macro writes `weir_plugin_entry_v1` and a static descriptor; the `extern "C"` callbacks
//! are the generic functions in [`ffi`], instantiated for the plugin type. Each callback runs
//! the plugin inside [`std::panic::catch_unwind`]: a panic, or an `Err` from
//! [`Plugin::create`], becomes `WEIR_ERR` and its message is kept for `last_error` (per
//! instance; `create`'s in a thread-local read through `last_error(NULL)`). A panicked instance
//! stays failed: every later call returns `WEIR_ERR` with the first message. The generated code
//! allocates nothing per packet or per burst (only on error paths, to keep the message).
//!
//! Per-flow state is plain data owned by the host, which hands the plugin `state_size` zeroed
//! bytes per flow: hence `State: Zeroable + Copy`, so the all-zero value is a valid initial state
//! ([`bytemuck::Zeroable`]'s derive checks every field at compile time). Put anything else a new
//! flow needs into [`Plugin::flow_init`].
//!
//! ```
//! use std::ffi::CStr;
//! use weir_plugin_api::sdk::{Feature, Plugin, Verdict, Zeroable};
//! use weir_plugin_api::{FlowKeyV1, PacketV1};
//!
//! struct Count;
//! #[derive(Clone, Copy, Zeroable)]
//! #[bytemuck(crate = "weir_plugin_api::sdk::bytemuck")] // or depend on bytemuck directly
//! #[repr(C)]
//! struct State { packets: u64 }
//!
//! impl Plugin for Count {
//!     const NAME: &'static CStr = c"count";
//!     const VERSION: &'static CStr = c"1.0.0";
//!     const FEATURES: &'static [Feature] = &[Feature::u64(c"count_packets", c"packets seen")];
//!     type State = State;
//!     fn create(_config: &str, _worker: u32) -> Result<Self, String> { Ok(Count) }
//!     fn update(&mut self, s: &mut State, _pkt: &PacketV1) -> Verdict {
//!         s.packets += 1;
//!         Verdict::Continue
//!     }
//!     fn emit(&mut self, _key: &FlowKeyV1, s: &State, out: &mut [f64]) { out[0] = s.packets as f64 }
//! }
//! weir_plugin_api::export_plugin!(Count);
//! ```
//!
//! Two variants pay per flow only for what a run uses: an [`IntervalPlugin`]
//! (`export_plugin!(P, intervals)`, ABI 1.2) keeps its interval accounting out of flows when
//! interval records are off, and a [`SizedPlugin`] (`export_plugin!(P, sized)`, ABI 1.3) sizes
//! part of its state by its config (splt: N packets, not the 32 it could hold).

use core::ffi::{c_void, CStr};
use core::marker::PhantomData;
use core::mem::{align_of, size_of};

use crate::abi::{
    FeatureV1, FlowKeyV1, PacketV1, PluginV1, TextV1, WEIR_ABI_MAJOR, WEIR_ABI_MINOR,
    WEIR_FEATURE_BOOL, WEIR_FEATURE_F64, WEIR_FEATURE_TEXT, WEIR_FEATURE_U64, WEIR_PLUGIN_MAGIC,
    WEIR_TEXT_MISSING,
};

pub use bytemuck::{self, Zeroable};

/// How sinks write a feature column (every value crosses the ABI as an f64).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum FeatureKind {
    /// A float column.
    F64 = WEIR_FEATURE_F64,
    /// An integer column (the f64 holds an exact integer).
    U64 = WEIR_FEATURE_U64,
    /// A 0/1 column.
    Bool = WEIR_FEATURE_BOOL,
    /// ABI 1.4: a UTF-8 text column, written by [`Plugin::emit_text`] (its f64 slot is unused).
    Text = WEIR_FEATURE_TEXT,
}

/// One feature column a plugin writes at flow end.
#[derive(Clone, Copy, Debug)]
pub struct Feature {
    /// Column name, `[a-z0-9_]+`, unique across all loaded plugins (checked at compile time
    /// within the plugin, and by the host across plugins).
    pub name: &'static CStr,
    pub kind: FeatureKind,
    /// One line.
    pub description: &'static CStr,
}

impl Feature {
    pub const fn new(name: &'static CStr, kind: FeatureKind, description: &'static CStr) -> Self {
        Feature {
            name,
            kind,
            description,
        }
    }
    pub const fn f64(name: &'static CStr, description: &'static CStr) -> Self {
        Self::new(name, FeatureKind::F64, description)
    }
    pub const fn u64(name: &'static CStr, description: &'static CStr) -> Self {
        Self::new(name, FeatureKind::U64, description)
    }
    pub const fn bool(name: &'static CStr, description: &'static CStr) -> Self {
        Self::new(name, FeatureKind::Bool, description)
    }
    /// ABI 1.4: a text column (see [`Plugin::emit_text`]).
    pub const fn text(name: &'static CStr, description: &'static CStr) -> Self {
        Self::new(name, FeatureKind::Text, description)
    }
}

/// How many of `features` are text (ABI 1.4).
pub const fn text_features(features: &[Feature]) -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < features.len() {
        if features[i].kind as u32 == WEIR_FEATURE_TEXT {
            n += 1;
        }
        i += 1;
    }
    n
}

/// One text value of [`Plugin::emit_text`] (ABI 1.4): a host-owned buffer of
/// [`TextOut::capacity`] bytes. Missing unless set.
#[repr(transparent)]
pub struct TextOut {
    t: TextV1,
}

impl TextOut {
    /// Bytes the host accepts (`WEIR_TEXT_MAX`).
    pub fn capacity(&self) -> usize {
        self.t.cap as usize
    }

    /// Write `s`. A string longer than [`TextOut::capacity`] is reported with its full length,
    /// so the host refuses it (and counts it) instead of writing a cut value.
    pub fn set(&mut self, s: &str) {
        self.set_bytes(s.as_bytes())
    }

    /// Write raw bytes; the host refuses them unless they are UTF-8 (and short enough).
    pub fn set_bytes(&mut self, b: &[u8]) {
        let n = b.len().min(self.capacity());
        if n > 0 && !self.t.buf.is_null() {
            // SAFETY: the host's buffer has cap >= n writable bytes for this call.
            unsafe { core::ptr::copy_nonoverlapping(b.as_ptr(), self.t.buf.cast::<u8>(), n) };
        }
        self.t.len = b.len().min(u32::MAX as usize - 1) as u32;
    }

    /// Leave the value missing (the default).
    pub fn clear(&mut self) {
        self.t.len = WEIR_TEXT_MISSING;
    }
}

/// What [`Plugin::update`] wants next for this flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Keep passing this flow's packets.
    Continue,
    /// This plugin needs no more packets of this flow (the host sets `done` and stops passing
    /// them; packets of the same flow later in the same burst may still arrive).
    Done,
}

/// A feature-extractor plugin. One value of the type is one instance, used by one worker thread.
pub trait Plugin: Sized + 'static {
    /// `[a-z0-9_]+`, unique among loaded plugins.
    const NAME: &'static CStr;
    /// Free text, e.g. `c"1.2.0"`.
    const VERSION: &'static CStr;
    /// One line, optional.
    const DESCRIPTION: Option<&'static CStr> = None;
    /// Optional JSON text describing the config keys [`Plugin::create`] accepts.
    const CONFIG_SCHEMA: Option<&'static CStr> = None;
    /// The columns [`Plugin::emit`] writes, in order.
    const FEATURES: &'static [Feature];

    /// Per-flow state. The host allocates and zeroes it, so the all-zero value must be a valid
    /// initial state (`Zeroable`); it is plain data (`Copy`: no destructor ever runs). Alignment
    /// at most 64.
    type State: Zeroable + Copy + 'static;

    /// Create the instance for worker `worker` from the plugin's config table as JSON text
    /// (`"{}"` when absent). An `Err` refuses the plugin with that message.
    fn create(config_json: &str, worker: u32) -> Result<Self, String>;

    /// A new flow; `state` is zeroed.
    fn flow_init(&mut self, _key: &FlowKeyV1, _state: &mut Self::State) {}

    /// One packet of the flow whose state is `state`.
    fn update(&mut self, state: &mut Self::State, pkt: &PacketV1) -> Verdict;

    /// A burst of packets in arrival order. The default calls [`Plugin::update`] on each;
    /// override it to batch work across packets (prefetching states, SIMD).
    #[inline]
    fn update_burst(&mut self, burst: &mut Burst<'_, Self::State>) {
        burst.for_each_prefetched(|b, i| {
            let (pkt, state) = b.get_mut(i);
            self.update(state, pkt)
        });
    }

    /// The flow ended: write the features. `out` has exactly `FEATURES.len()` slots, all NaN
    /// (= missing) on entry.
    fn emit(&mut self, key: &FlowKeyV1, state: &Self::State, out: &mut [f64]);

    /// ABI 1.4, for a plugin with [`FeatureKind::Text`] features (the host then calls this
    /// instead of [`Plugin::emit`]): write the numeric features to `out` as `emit` does and the
    /// text ones to `texts`, one per text feature in declaration order, all missing on entry.
    /// `state` is mutable: this is the flow's last call. The default calls `emit` and leaves
    /// the texts missing.
    fn emit_text(
        &mut self,
        key: &FlowKeyV1,
        state: &mut Self::State,
        out: &mut [f64],
        texts: &mut [TextOut],
    ) {
        let _ = texts;
        self.emit(key, state, out)
    }

    /// Whether the plugin implements [`Plugin::interval_emit`] (ABI 1.1). When false (the
    /// default) the descriptor's `interval_emit` is NULL and the host writes NaN for this
    /// plugin's columns in interval records.
    const INTERVALS: bool = false;

    /// The flow's current interval ended (only called when [`Plugin::INTERVALS`] is true):
    /// write the features of the packets since the previous call (or since `flow_init`), then
    /// reset the interval part of `state`, leaving what [`Plugin::emit`] reads untouched.
    /// `out` has exactly `FEATURES.len()` slots, all NaN on entry.
    fn interval_emit(&mut self, _key: &FlowKeyV1, _state: &mut Self::State, _out: &mut [f64]) {}
}

/// A plugin whose interval accounting is a separate part of its state (ABI 1.2), exported with
/// `export_plugin!(P, intervals)`. With interval records off the host allocates only
/// [`Plugin::State`] per flow and calls [`Plugin::update`]: the plugin pays nothing for
/// intervals. With them on, each flow's state is a [`WithInterval`] and the host calls
/// [`IntervalPlugin::update_with_interval`] and [`IntervalPlugin::emit_interval`] instead.
/// (The 1.1 way, [`Plugin::INTERVALS`] with the interval part inside `State`, must then stay
/// false.)
pub trait IntervalPlugin: Plugin {
    /// The interval part: zeroed at flow start, after the flow's `State`.
    type Interval: Zeroable + Copy + 'static;

    /// One packet with interval records on: account it in `state` (as [`Plugin::update`]
    /// does) and in `interval`.
    fn update_with_interval(
        &mut self,
        state: &mut Self::State,
        interval: &mut Self::Interval,
        pkt: &PacketV1,
    ) -> Verdict;

    /// The flow's current interval ended: write the features of its packets since the previous
    /// call (or since `flow_init`), then reset `interval`. `out` has exactly `FEATURES.len()`
    /// slots, all NaN on entry.
    fn emit_interval(
        &mut self,
        key: &FlowKeyV1,
        state: &Self::State,
        interval: &mut Self::Interval,
        out: &mut [f64],
    );

    /// A burst with interval records on; the default calls
    /// [`IntervalPlugin::update_with_interval`] on each packet, prefetching ahead.
    #[inline]
    fn update_burst_with_interval(
        &mut self,
        burst: &mut Burst<'_, WithInterval<Self::State, Self::Interval>>,
    ) {
        burst.for_each_prefetched(|b, i| {
            let (pkt, w) = b.get_mut(i);
            self.update_with_interval(&mut w.state, &mut w.interval, pkt)
        });
    }
}

/// A flow's whole state with interval records on: the plugin's `State` first (so the host's
/// `state_size` prefix is exactly it), then the interval part.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct WithInterval<S, I> {
    pub state: S,
    pub interval: I,
}

// SAFETY: a repr(C) pair of Zeroable fields (padding is not read); all-zero is valid.
unsafe impl<S: Zeroable, I: Zeroable> Zeroable for WithInterval<S, I> {}

/// A plugin part of whose per-flow state is sized by its config (ABI 1.3), exported with
/// `export_plugin!(P, sized)`: each flow's state is [`Plugin::State`] followed by
/// [`SizedPlugin::items`] values of [`SizedPlugin::Item`] (see [`items_offset`]), and the host
/// allocates only that, not room for [`SizedPlugin::MAX_ITEMS`]. The host then calls
/// [`SizedPlugin::update_sized`] and [`SizedPlugin::emit_sized`]; [`Plugin::update`] and
/// [`Plugin::emit`] are never called by it. (A 1.2 host allocates the descriptor's
/// `state_size`, room for `MAX_ITEMS`, and calls the same callbacks.) No interval records:
/// interval callbacks stay off for such a plugin.
pub trait SizedPlugin: Plugin {
    /// One element of the config-sized part (alignment at most `State`'s).
    type Item: Zeroable + Copy + 'static;
    /// The most items any config asks for: the descriptor's `state_size` has room for them.
    const MAX_ITEMS: usize;

    /// Items per flow for this instance, from its config: at most `MAX_ITEMS`.
    fn items(&self) -> usize;

    /// One packet: `items` has exactly [`SizedPlugin::items`] elements.
    fn update_sized(
        &mut self,
        state: &mut Self::State,
        items: &mut [Self::Item],
        pkt: &PacketV1,
    ) -> Verdict;

    /// The flow ended: write the features (`out` as in [`Plugin::emit`]).
    fn emit_sized(
        &mut self,
        key: &FlowKeyV1,
        state: &Self::State,
        items: &[Self::Item],
        out: &mut [f64],
    );

    /// A burst; the default calls [`SizedPlugin::update_sized`] on each packet, prefetching
    /// ahead.
    #[inline]
    fn update_burst_sized(&mut self, burst: &mut Burst<'_, Self::State>) {
        let n = self.items();
        burst.for_each_prefetched(|b, i| {
            let (pkt, state, items) = b.get_mut_items::<Self::Item>(i, n);
            self.update_sized(state, items, pkt)
        });
    }
}

/// Where the items of a [`SizedPlugin`] start in its state: after `S`, at `T`'s alignment.
pub const fn items_offset<S, T>() -> usize {
    size_of::<S>().next_multiple_of(align_of::<T>())
}

/// The per-flow state bytes of a [`SizedPlugin`] with `n` items (rounded up to `S`'s
/// alignment, which is the state's).
pub const fn sized_state_bytes<S, T>(n: usize) -> usize {
    (items_offset::<S, T>() + n * size_of::<T>()).next_multiple_of(align_of::<S>())
}

/// How many packets ahead the default [`Plugin::update_burst`] prefetches states. A flow's
/// state is usually not in cache (tens of thousands of flows' slabs exceed the L3), and the
/// first load of it was 40 % of flowstats' samples in `perf annotate`. A plugin's work on one
/// packet (60-100 cycles) is much shorter than a miss, so the prefetch must run well ahead:
/// on perf/out/bench.pcap, 4 ahead left flowstats at 100-105 cycles per packet and tcp at
/// 73-77, 12 ahead gave 63-65 and 61-63, and 16 was no better (perf/RESULTS.md, fourth pass).
pub const PREFETCH_AHEAD: usize = 12;

/// The packets of one `update_burst` call with their flows' states (one flow may appear several
/// times). [`Burst::get_mut`] hands out one state at a time, so aliasing states are never
/// borrowed together.
pub struct Burst<'a, S> {
    states: &'a [*mut c_void],
    pkts: &'a [PacketV1],
    done: &'a mut [u8],
    /// Bytes of each state: `size_of::<S>()`, or more for a [`SizedPlugin`]'s (see
    /// [`Burst::get_mut_items`]).
    state_bytes: usize,
    _state: PhantomData<&'a mut S>,
}

impl<'a, S: Zeroable + Copy> Burst<'a, S> {
    /// Wrap the host's arrays, checking every state pointer (non-null, aligned for `S`).
    ///
    /// # Safety
    /// Each non-null `states[i]` must point to a live `S` (zeroed by the host, then written only
    /// by this plugin) that nothing else accesses during the burst.
    pub unsafe fn new(
        states: &'a [*mut c_void],
        pkts: &'a [PacketV1],
        done: &'a mut [u8],
    ) -> Result<Self, String> {
        if states.len() != pkts.len() || done.len() != pkts.len() {
            return Err("states, packets and done differ in length".into());
        }
        for (i, &s) in states.iter().enumerate() {
            check_state_ptr::<S>(s).map_err(|e| format!("state pointer {i} of the burst {e}"))?;
        }
        Ok(Burst {
            states,
            pkts,
            done,
            state_bytes: size_of::<S>(),
            _state: PhantomData,
        })
    }

    /// Declare that each state is `bytes` long: `S` followed by items (a [`SizedPlugin`]).
    ///
    /// # Safety
    /// Each state pointer must point to at least `bytes` bytes of this plugin's state, and
    /// `bytes >= size_of::<S>()`.
    pub unsafe fn with_state_bytes(mut self, bytes: usize) -> Self {
        debug_assert!(bytes >= size_of::<S>());
        self.state_bytes = bytes;
        self
    }

    pub fn len(&self) -> usize {
        self.pkts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pkts.is_empty()
    }

    pub fn packets(&self) -> &'a [PacketV1] {
        self.pkts
    }

    /// Packet `i` and its flow's state. Panics when `i >= len()`, like slice indexing.
    #[inline]
    pub fn get_mut(&mut self, i: usize) -> (&'a PacketV1, &mut S) {
        let pkt = &self.pkts[i];
        let state = state_ptr::<S>(self.states[i]);
        // SAFETY: `new` checked the pointer is non-null and aligned, and its caller guaranteed
        // it points to a valid S used by nobody else; `&mut self` keeps this the only live
        // borrow of any state of the burst (two indices may alias one flow).
        (pkt, unsafe { &mut *state })
    }

    /// Packet `i`, its flow's state and the `n` items after it (a [`SizedPlugin`]'s state).
    /// Panics when `i >= len()` or when `n` items do not fit in the state's bytes.
    #[inline]
    pub fn get_mut_items<T: Zeroable + Copy>(
        &mut self,
        i: usize,
        n: usize,
    ) -> (&'a PacketV1, &mut S, &mut [T]) {
        let pkt = &self.pkts[i];
        let off = items_offset::<S, T>();
        assert!(
            off + n * size_of::<T>() <= self.state_bytes && align_of::<T>() <= align_of::<S>(),
            "{n} items do not fit the state"
        );
        let p = self.states[i] as *mut u8;
        // SAFETY: `new` checked p is non-null and aligned for S, and the caller of
        // `with_state_bytes` guaranteed state_bytes of state there, used by nobody else: S at
        // 0 and the n items at off (aligned: off is a multiple of T's alignment, which divides
        // S's) fit, as just asserted, and do not overlap. `&mut self` keeps these the only live
        // borrows of any state of the burst. All-zero is a valid T (Zeroable), and T is written
        // only by this plugin.
        unsafe {
            (
                pkt,
                &mut *(p as *mut S),
                core::slice::from_raw_parts_mut(p.add(off) as *mut T, n),
            )
        }
    }

    /// Hint the CPU to fetch every cache line of packet `i`'s state (nothing when `i >= len()`).
    #[inline(always)]
    pub fn prefetch(&self, i: usize) {
        #[cfg(target_arch = "x86_64")]
        if let Some(&p) = self.states.get(i) {
            let start = p as usize & !63;
            let end = p as usize + self.state_bytes;
            let mut line = start;
            while line < end {
                // SAFETY: a prefetch is a hint: it never faults and changes no memory.
                unsafe {
                    core::arch::x86_64::_mm_prefetch(
                        line as *const i8,
                        core::arch::x86_64::_MM_HINT_T0,
                    )
                };
                line += 64;
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = i;
    }

    /// The default updates' loop: `f(self, i)` for every packet in order, with the states
    /// [`PREFETCH_AHEAD`] packets ahead prefetched; a [`Verdict::Done`] marks that flow done.
    #[inline(always)]
    pub fn for_each_prefetched(&mut self, mut f: impl FnMut(&mut Self, usize) -> Verdict) {
        for i in 0..self.len().min(PREFETCH_AHEAD) {
            self.prefetch(i);
        }
        for i in 0..self.len() {
            self.prefetch(i + PREFETCH_AHEAD);
            if f(self, i) == Verdict::Done {
                self.set_done(i);
            }
        }
    }

    /// Whether packet `i`'s flow was marked done (by this call or earlier in the burst for
    /// the same index).
    pub fn is_done(&self, i: usize) -> bool {
        self.done[i] != 0
    }

    /// Tell the host this flow needs no more packets.
    #[inline]
    pub fn set_done(&mut self, i: usize) {
        self.done[i] = 1;
    }
}

/// Check a host-given state pointer for `S`: non-null and aligned (any pointer for a zero-sized
/// state, which the host may pass as NULL).
#[inline]
pub fn check_state_ptr<S>(p: *const c_void) -> Result<(), String> {
    if size_of::<S>() != 0 && (p.is_null() || (p as usize) & (align_of::<S>() - 1) != 0) {
        return Err(format!("is null or not aligned to {}", align_of::<S>()));
    }
    Ok(())
}

/// The state behind a checked pointer (dangling for a zero-sized state).
#[inline]
fn state_ptr<S>(p: *const c_void) -> *mut S {
    if size_of::<S>() == 0 {
        core::ptr::NonNull::<S>::dangling().as_ptr()
    } else {
        p as *mut S
    }
}

/// The feature table in ABI form, built at compile time by [`export_plugin!`](crate::export_plugin).
/// Fails compilation on a bad or duplicate feature name.
pub const fn features_v1<const N: usize>(features: &[Feature]) -> [FeatureV1; N] {
    assert!(features.len() == N, "feature table length mismatch");
    let mut out = [FeatureV1 {
        name: core::ptr::null(),
        kind: 0,
        reserved: 0,
        description: core::ptr::null(),
    }; N];
    let mut i = 0;
    while i < N {
        let f = &features[i];
        assert!(valid_name(f.name), "feature names must match [a-z0-9_]+");
        let mut j = 0;
        while j < i {
            assert!(
                !bytes_eq(f.name.to_bytes(), features[j].name.to_bytes()),
                "duplicate feature name"
            );
            j += 1;
        }
        out[i] = FeatureV1 {
            name: f.name.as_ptr(),
            kind: f.kind as u32,
            reserved: 0,
            description: f.description.as_ptr(),
        };
        i += 1;
    }
    out
}

const fn valid_name(name: &CStr) -> bool {
    let b = name.to_bytes();
    if b.is_empty() {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_') {
            return false;
        }
        i += 1;
    }
    true
}

const fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

const fn opt_ptr(s: Option<&'static CStr>) -> *const core::ffi::c_char {
    match s {
        Some(s) => s.as_ptr(),
        None => core::ptr::null(),
    }
}

/// The static descriptor of plugin `P`, built at compile time by
/// [`export_plugin!`](crate::export_plugin) (`features` comes from [`features_v1`]).
pub const fn descriptor<P: Plugin>(features: &'static [FeatureV1]) -> PluginV1 {
    assert!(features.len() == P::FEATURES.len());
    assert!(features.len() <= u32::MAX as usize);
    assert!(valid_name(P::NAME), "plugin names must match [a-z0-9_]+");
    assert!(size_of::<P::State>() <= u32::MAX as usize);
    assert!(
        align_of::<P::State>() <= 64,
        "state alignment must be at most 64"
    );
    PluginV1 {
        magic: WEIR_PLUGIN_MAGIC,
        abi_major: WEIR_ABI_MAJOR,
        abi_minor: WEIR_ABI_MINOR,
        struct_size: size_of::<PluginV1>() as u32,
        flags: 0,
        name: P::NAME.as_ptr(),
        version: P::VERSION.as_ptr(),
        description: opt_ptr(P::DESCRIPTION),
        features: features.as_ptr(),
        n_features: features.len() as u32,
        state_size: size_of::<P::State>() as u32,
        state_align: align_of::<P::State>() as u32,
        reserved0: 0,
        config_schema: opt_ptr(P::CONFIG_SCHEMA),
        create: Some(ffi::create::<P>),
        destroy: Some(ffi::destroy::<P>),
        flow_init: Some(ffi::flow_init::<P>),
        update_burst: Some(ffi::update_burst::<P>),
        flow_emit: Some(ffi::flow_emit::<P>),
        last_error: Some(ffi::last_error::<P>),
        interval_emit: if P::INTERVALS {
            Some(ffi::interval_emit::<P>)
        } else {
            None
        },
        interval_state_size: 0,
        reserved1: 0,
        update_burst_intervals: None,
        flow_state_size: None,
        flow_emit_text: if text_features(P::FEATURES) > 0 {
            Some(ffi::flow_emit_text::<P>)
        } else {
            None
        },
    }
}

/// The descriptor of an [`IntervalPlugin`] (ABI 1.2): `state_size` is `P::State`'s,
/// `interval_state_size` the rest of a [`WithInterval`] (padding included), and the interval
/// callbacks are set. Built by `export_plugin!(P, intervals)`.
pub const fn descriptor_with_intervals<P: IntervalPlugin>(
    features: &'static [FeatureV1],
) -> PluginV1 {
    assert!(
        !P::INTERVALS,
        "an IntervalPlugin keeps its interval part out of State: leave Plugin::INTERVALS false"
    );
    type W<P> = WithInterval<<P as Plugin>::State, <P as IntervalPlugin>::Interval>;
    assert!(size_of::<W<P>>() <= u32::MAX as usize);
    assert!(
        align_of::<W<P>>() <= 64,
        "state alignment must be at most 64"
    );
    let mut d = descriptor::<P>(features);
    d.state_align = align_of::<W<P>>() as u32;
    d.interval_state_size = (size_of::<W<P>>() - size_of::<P::State>()) as u32;
    d.interval_emit = Some(ffi::emit_interval::<P>);
    d.update_burst_intervals = Some(ffi::update_burst_intervals::<P>);
    d
}

/// The descriptor of a [`SizedPlugin`] (ABI 1.3): `state_size` has room for `MAX_ITEMS`
/// items, and `flow_state_size` tells the host what an instance's config needs. Built by
/// `export_plugin!(P, sized)`.
pub const fn descriptor_sized<P: SizedPlugin>(features: &'static [FeatureV1]) -> PluginV1 {
    assert!(
        !P::INTERVALS,
        "a SizedPlugin has no interval records: leave Plugin::INTERVALS false"
    );
    assert!(
        text_features(P::FEATURES) == 0,
        "a SizedPlugin has no text features (emit_sized writes numbers only)"
    );
    assert!(
        size_of::<P::State>() > 0,
        "a SizedPlugin's State must not be empty"
    );
    assert!(
        align_of::<P::Item>() <= align_of::<P::State>(),
        "a SizedPlugin's Item must not be more aligned than its State"
    );
    let max = sized_state_bytes::<P::State, P::Item>(P::MAX_ITEMS);
    assert!(max <= u32::MAX as usize);
    let mut d = descriptor::<P>(features);
    d.state_size = max as u32;
    d.update_burst = Some(ffi::update_burst_sized::<P>);
    d.flow_emit = Some(ffi::flow_emit_sized::<P>);
    d.flow_state_size = Some(ffi::flow_state_size::<P>);
    d
}

/// What `weir_plugin_entry_v1` returns: the descriptor, or NULL for a host of another major.
/// (An older host minor is fine: structs only grow by appending.)
pub fn entry(host_major: u16, _host_minor: u16, descriptor: &'static PluginV1) -> *const PluginV1 {
    if host_major != WEIR_ABI_MAJOR {
        return core::ptr::null();
    }
    descriptor
}

/// Export `$plugin` (a type implementing [`Plugin`]) as this library's ABI v1 plugin: writes
/// `#[no_mangle] extern "C" fn weir_plugin_entry_v1` and the static descriptor it returns. Use
/// it once per `cdylib`.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        $crate::export_plugin!(@with $plugin, descriptor);
    };
    // An IntervalPlugin (ABI 1.2: interval state only when interval records are on).
    ($plugin:ty, intervals) => {
        $crate::export_plugin!(@with $plugin, descriptor_with_intervals);
    };
    // A SizedPlugin (ABI 1.3: per-flow state sized by the instance's config).
    ($plugin:ty, sized) => {
        $crate::export_plugin!(@with $plugin, descriptor_sized);
    };
    // The entry symbol and the static descriptor `sdk::$descriptor::<$plugin>` builds.
    (@with $plugin:ty, $descriptor:ident) => {
        /// The ABI v1 entry point (generated by `weir_plugin_api::export_plugin!`).
        #[no_mangle]
        pub extern "C" fn weir_plugin_entry_v1(
            host_major: u16,
            host_minor: u16,
        ) -> *const $crate::PluginV1 {
            static FEATURES: [$crate::FeatureV1; <$plugin as $crate::sdk::Plugin>::FEATURES.len()] =
                $crate::sdk::features_v1(<$plugin as $crate::sdk::Plugin>::FEATURES);
            static DESCRIPTOR: $crate::PluginV1 = $crate::sdk::$descriptor::<$plugin>(&FEATURES);
            $crate::sdk::entry(host_major, host_minor, &DESCRIPTOR)
        }
    };
}

/// The `extern "C"` callbacks, generic over the plugin type. Each one catches panics.
pub mod ffi {
    use super::{
        check_state_ptr, items_offset, sized_state_bytes, state_ptr, Burst, IntervalPlugin, Plugin,
        SizedPlugin, WithInterval, Zeroable,
    };
    use crate::abi::{FlowKeyV1, PacketV1, TextV1, WEIR_ERR, WEIR_OK, WEIR_TEXT_MISSING};
    use core::ffi::{c_char, c_void, CStr};
    use std::any::Any;
    use std::cell::RefCell;
    use std::ffi::CString;
    use std::panic::{catch_unwind, AssertUnwindSafe};

    const NO_ERROR: &CStr = c"no error";

    thread_local! {
        // The last create (or null-instance) error on this thread, read by last_error(NULL).
        static THREAD_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
    }

    /// One instance: the plugin value plus its last error message.
    pub struct Instance<P> {
        plugin: P,
        error: Option<CString>,
        /// Set after a panic: the plugin's invariants may be broken, so it is never called again.
        panicked: bool,
    }

    fn c_message(msg: String) -> CString {
        // A NUL inside the message would cut it; keep the rest readable instead.
        CString::new(msg.replace('\0', " ")).unwrap_or_default()
    }

    fn set_thread_error(msg: String) {
        THREAD_ERROR.with(|e| *e.borrow_mut() = Some(c_message(msg)));
    }

    fn panic_message(payload: &(dyn Any + Send)) -> &str {
        if let Some(s) = payload.downcast_ref::<&str>() {
            s
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s
        } else {
            "a panic with a non-string payload"
        }
    }

    /// Run `f` on the instance behind `inst`, mapping `Err` and panics to `WEIR_ERR`.
    ///
    /// # Safety
    /// `inst` must be null or an instance made by [`create`] for the same `P`, used only by
    /// this thread.
    #[inline]
    unsafe fn guarded<P: Plugin>(
        inst: *mut c_void,
        what: &str,
        f: impl FnOnce(&mut P) -> Result<(), String>,
    ) -> i32 {
        if inst.is_null() {
            set_thread_error(format!("{what}: the host passed a null instance"));
            return WEIR_ERR;
        }
        // SAFETY: per this function's contract, a non-null inst is our live Instance<P>.
        let inst = unsafe { &mut *(inst as *mut Instance<P>) };
        if inst.panicked {
            return WEIR_ERR;
        }
        match catch_unwind(AssertUnwindSafe(|| f(&mut inst.plugin))) {
            Ok(Ok(())) => WEIR_OK,
            Ok(Err(msg)) => {
                inst.error = Some(c_message(format!("{what}: {msg}")));
                WEIR_ERR
            }
            Err(payload) => {
                inst.panicked = true;
                let msg = format!("{what} panicked: {}", panic_message(&*payload));
                inst.error = Some(c_message(msg));
                WEIR_ERR
            }
        }
    }

    /// `create`.
    ///
    /// # Safety
    /// `config_json` is null or a NUL-terminated string; `out` is null or writable.
    pub unsafe extern "C" fn create<P: Plugin>(
        config_json: *const c_char,
        worker: u32,
        out: *mut *mut c_void,
    ) -> i32 {
        if out.is_null() {
            set_thread_error("create: the host passed a null instance pointer".into());
            return WEIR_ERR;
        }
        let config = if config_json.is_null() {
            Ok("{}")
        } else {
            // SAFETY: the host passes a NUL-terminated string (header contract).
            unsafe { CStr::from_ptr(config_json) }.to_str()
        };
        let config = match config {
            Ok(c) => c,
            Err(e) => {
                set_thread_error(format!("create: the config is not UTF-8: {e}"));
                return WEIR_ERR;
            }
        };
        match catch_unwind(|| P::create(config, worker)) {
            Ok(Ok(plugin)) => {
                let inst = Box::new(Instance {
                    plugin,
                    error: None,
                    panicked: false,
                });
                // SAFETY: out checked non-null above; the host gives a writable slot.
                unsafe { *out = Box::into_raw(inst) as *mut c_void };
                WEIR_OK
            }
            Ok(Err(msg)) => {
                set_thread_error(format!("create: {msg}"));
                WEIR_ERR
            }
            Err(payload) => {
                set_thread_error(format!("create panicked: {}", panic_message(&*payload)));
                WEIR_ERR
            }
        }
    }

    /// `destroy`.
    ///
    /// # Safety
    /// `inst` is null or an instance from [`create`] for `P`, not used afterwards.
    pub unsafe extern "C" fn destroy<P: Plugin>(inst: *mut c_void) {
        if inst.is_null() {
            return;
        }
        // SAFETY: inst came from Box::into_raw in create and is given back exactly once.
        let boxed = unsafe { Box::from_raw(inst as *mut Instance<P>) };
        // A panicking Drop must not unwind into C; there is nobody to report it to.
        let _ = catch_unwind(AssertUnwindSafe(move || drop(boxed)));
    }

    /// `flow_init`.
    ///
    /// # Safety
    /// As for the header's `flow_init`: `key` readable, `state` points to `state_size` zeroed
    /// bytes aligned to `state_align`.
    pub unsafe extern "C" fn flow_init<P: Plugin>(
        inst: *mut c_void,
        key: *const FlowKeyV1,
        state: *mut c_void,
    ) -> i32 {
        // SAFETY: inst per contract.
        unsafe {
            guarded::<P>(inst, "flow_init", |p| {
                check_state_ptr::<P::State>(state).map_err(|e| format!("the state {e}"))?;
                let key = key.as_ref().ok_or("the host passed a null key")?;
                // SAFETY: the host gives the flow's zeroed state, checked non-null and aligned;
                // all-zero is a valid P::State (Zeroable).
                let s = &mut *state_ptr::<P::State>(state);
                p.flow_init(key, s);
                Ok(())
            })
        }
    }

    /// The host's burst arrays as a checked [`Burst`] (`None` for an empty burst): every
    /// state pointer non-null and aligned for `S`.
    ///
    /// # Safety
    /// As for the header's `update_burst`: `n` states, packets and done flags, exclusively the
    /// plugin's for the call, each state this plugin's `S` for that flow.
    unsafe fn host_burst<'a, S: Zeroable + Copy>(
        states: *const *mut c_void,
        pkts: *const PacketV1,
        done: *mut u8,
        n: u32,
    ) -> Result<Option<Burst<'a, S>>, String> {
        if n == 0 {
            return Ok(None);
        }
        if states.is_null() || pkts.is_null() || done.is_null() {
            return Err("the host passed a null array".into());
        }
        let n = n as usize;
        // SAFETY: the host passes n states, packets and done flags (header contract),
        // exclusively ours for the call; each state is this plugin's for that flow.
        unsafe {
            Burst::new(
                core::slice::from_raw_parts(states, n),
                core::slice::from_raw_parts(pkts, n),
                core::slice::from_raw_parts_mut(done, n),
            )
        }
        .map(Some)
    }

    /// An emit's key and output slots, checked (the count is `P`'s, nothing is NULL) and
    /// filled with NaN (= missing).
    ///
    /// # Safety
    /// As for the header's `flow_emit`: `key` readable, `out` has `n_features` writable doubles.
    unsafe fn host_emit<'a, P: Plugin>(
        key: *const FlowKeyV1,
        out: *mut f64,
        n_features: u32,
    ) -> Result<(&'a FlowKeyV1, &'a mut [f64]), String> {
        let want = P::FEATURES.len();
        if n_features as usize != want {
            return Err(format!(
                "the host asked for {n_features} features, the plugin has {want}"
            ));
        }
        if out.is_null() && want != 0 {
            return Err("the host passed a null output array".into());
        }
        // SAFETY: a non-null key is readable (caller's contract).
        let key = unsafe { key.as_ref() }.ok_or("the host passed a null key")?;
        let out: &mut [f64] = if want == 0 {
            &mut []
        } else {
            // SAFETY: the host gives n_features writable doubles (checked non-null).
            unsafe { core::slice::from_raw_parts_mut(out, want) }
        };
        out.fill(f64::NAN);
        Ok((key, out))
    }

    /// `update_burst`.
    ///
    /// # Safety
    /// As for the header's `update_burst`: `n` states, packets and done flags.
    pub unsafe extern "C" fn update_burst<P: Plugin>(
        inst: *mut c_void,
        states: *const *mut c_void,
        pkts: *const PacketV1,
        done: *mut u8,
        n: u32,
    ) -> i32 {
        // SAFETY: inst per contract.
        unsafe {
            guarded::<P>(inst, "update_burst", |p| {
                // SAFETY: forwarded (each state is this plugin's P::State for its flow).
                if let Some(mut burst) = host_burst::<P::State>(states, pkts, done, n)? {
                    p.update_burst(&mut burst);
                }
                Ok(())
            })
        }
    }

    /// `flow_emit`.
    ///
    /// # Safety
    /// As for the header's `flow_emit`.
    pub unsafe extern "C" fn flow_emit<P: Plugin>(
        inst: *mut c_void,
        key: *const FlowKeyV1,
        state: *const c_void,
        out: *mut f64,
        n_features: u32,
    ) -> i32 {
        // SAFETY: inst per contract.
        unsafe {
            guarded::<P>(inst, "flow_emit", |p| {
                let (key, out) = host_emit::<P>(key, out, n_features)?;
                check_state_ptr::<P::State>(state).map_err(|e| format!("the state {e}"))?;
                // SAFETY: the flow's state, checked non-null and aligned, valid as written by
                // this plugin; only read.
                let s = &*state_ptr::<P::State>(state);
                p.emit(key, s, out);
                Ok(())
            })
        }
    }

    /// `flow_emit_text` (ABI 1.4) of a plugin with text features.
    ///
    /// # Safety
    /// As for the header's `flow_emit_text`: `texts` has `n_texts` entries, each with `cap`
    /// writable bytes at `buf`.
    pub unsafe extern "C" fn flow_emit_text<P: Plugin>(
        inst: *mut c_void,
        key: *const FlowKeyV1,
        state: *mut c_void,
        out: *mut f64,
        n_features: u32,
        texts: *mut TextV1,
        n_texts: u32,
    ) -> i32 {
        // SAFETY: inst per contract.
        unsafe {
            guarded::<P>(inst, "flow_emit_text", |p| {
                let (key, out) = host_emit::<P>(key, out, n_features)?;
                let want = super::text_features(P::FEATURES);
                if n_texts as usize != want {
                    return Err(format!(
                        "the host passed {n_texts} text values, the plugin has {want}"
                    ));
                }
                if texts.is_null() && want != 0 {
                    return Err("the host passed a null text array".into());
                }
                check_state_ptr::<P::State>(state).map_err(|e| format!("the state {e}"))?;
                let raw: &mut [TextV1] = if want == 0 {
                    &mut []
                } else {
                    // SAFETY: the host passes n_texts entries (checked non-null), ours for the
                    // call.
                    core::slice::from_raw_parts_mut(texts, want)
                };
                for t in raw.iter_mut() {
                    t.len = WEIR_TEXT_MISSING;
                }
                // SAFETY: TextOut is repr(transparent) over TextV1.
                let texts = &mut *(raw as *mut [TextV1] as *mut [super::TextOut]);
                // SAFETY: the flow's state, checked non-null and aligned, valid as written by
                // this plugin; exclusively ours for the call (its last).
                let s = &mut *state_ptr::<P::State>(state);
                p.emit_text(key, s, out, texts);
                Ok(())
            })
        }
    }

    /// `interval_emit` (ABI 1.1, the interval part inside `State`).
    ///
    /// # Safety
    /// As for the header's `interval_emit`.
    pub unsafe extern "C" fn interval_emit<P: Plugin>(
        inst: *mut c_void,
        key: *const FlowKeyV1,
        state: *mut c_void,
        out: *mut f64,
        n_features: u32,
    ) -> i32 {
        // SAFETY: inst per contract.
        unsafe {
            guarded::<P>(inst, "interval_emit", |p| {
                let (key, out) = host_emit::<P>(key, out, n_features)?;
                check_state_ptr::<P::State>(state).map_err(|e| format!("the state {e}"))?;
                // SAFETY: the flow's state, checked non-null and aligned, valid as written by
                // this plugin; exclusively ours for the call.
                let s = &mut *state_ptr::<P::State>(state);
                p.interval_emit(key, s, out);
                Ok(())
            })
        }
    }

    /// `update_burst_intervals` (ABI 1.2) of an [`IntervalPlugin`]: states are
    /// [`WithInterval`]s.
    ///
    /// # Safety
    /// As for the header's `update_burst_intervals`: `n` states, packets and done flags.
    pub unsafe extern "C" fn update_burst_intervals<P: IntervalPlugin>(
        inst: *mut c_void,
        states: *const *mut c_void,
        pkts: *const PacketV1,
        done: *mut u8,
        n: u32,
    ) -> i32 {
        // SAFETY: inst per contract.
        unsafe {
            guarded::<P>(inst, "update_burst_intervals", |p| {
                // SAFETY: forwarded; with interval records on, each state is this plugin's
                // state and interval part for that flow (state_size + interval_state_size).
                let burst =
                    host_burst::<WithInterval<P::State, P::Interval>>(states, pkts, done, n)?;
                if let Some(mut burst) = burst {
                    p.update_burst_with_interval(&mut burst);
                }
                Ok(())
            })
        }
    }

    /// `interval_emit` of an [`IntervalPlugin`] (ABI 1.2 layout: the state is a
    /// [`WithInterval`]).
    ///
    /// # Safety
    /// As for the header's `interval_emit`, with interval records on.
    pub unsafe extern "C" fn emit_interval<P: IntervalPlugin>(
        inst: *mut c_void,
        key: *const FlowKeyV1,
        state: *mut c_void,
        out: *mut f64,
        n_features: u32,
    ) -> i32 {
        // SAFETY: inst per contract.
        unsafe {
            guarded::<P>(inst, "interval_emit", |p| {
                let (key, out) = host_emit::<P>(key, out, n_features)?;
                check_state_ptr::<WithInterval<P::State, P::Interval>>(state)
                    .map_err(|e| format!("the state {e}"))?;
                // SAFETY: the flow's whole state (interval records are on whenever the host
                // calls this), checked non-null and aligned; exclusively ours for the call.
                let w = &mut *state_ptr::<WithInterval<P::State, P::Interval>>(state);
                p.emit_interval(key, &w.state, &mut w.interval, out);
                Ok(())
            })
        }
    }

    /// `flow_state_size` (ABI 1.3) of a [`SizedPlugin`]: its state bytes for
    /// [`SizedPlugin::items`] items. A plugin that asks for more than `MAX_ITEMS` (or panics)
    /// answers `u32::MAX`, which the host refuses as more than the declared `state_size`.
    ///
    /// # Safety
    /// `inst` is null or an instance from [`create`] for `P`, used only by this thread.
    pub unsafe extern "C" fn flow_state_size<P: SizedPlugin>(inst: *mut c_void) -> u32 {
        if inst.is_null() {
            return u32::MAX;
        }
        // SAFETY: a non-null inst is our live Instance<P>.
        let inst = unsafe { &mut *(inst as *mut Instance<P>) };
        match catch_unwind(AssertUnwindSafe(|| inst.plugin.items())) {
            Ok(n) if n <= P::MAX_ITEMS => sized_state_bytes::<P::State, P::Item>(n) as u32,
            _ => u32::MAX,
        }
    }

    /// `update_burst` of a [`SizedPlugin`]: each state is `State` and its items.
    ///
    /// # Safety
    /// As for the header's `update_burst`, each state at least `flow_state_size(inst)` bytes.
    pub unsafe extern "C" fn update_burst_sized<P: SizedPlugin>(
        inst: *mut c_void,
        states: *const *mut c_void,
        pkts: *const PacketV1,
        done: *mut u8,
        n: u32,
    ) -> i32 {
        // SAFETY: inst per contract.
        unsafe {
            guarded::<P>(inst, "update_burst", |p| {
                let bytes = sized_state_bytes::<P::State, P::Item>(p.items());
                // SAFETY: forwarded; the host allocated flow_state_size bytes per state (a 1.2
                // host the declared state_size, room for MAX_ITEMS): at least `bytes`.
                if let Some(burst) = host_burst::<P::State>(states, pkts, done, n)? {
                    let mut burst = burst.with_state_bytes(bytes);
                    p.update_burst_sized(&mut burst);
                }
                Ok(())
            })
        }
    }

    /// `flow_emit` of a [`SizedPlugin`].
    ///
    /// # Safety
    /// As for the header's `flow_emit`, the state at least `flow_state_size(inst)` bytes.
    pub unsafe extern "C" fn flow_emit_sized<P: SizedPlugin>(
        inst: *mut c_void,
        key: *const FlowKeyV1,
        state: *const c_void,
        out: *mut f64,
        n_features: u32,
    ) -> i32 {
        // SAFETY: inst per contract.
        unsafe {
            guarded::<P>(inst, "flow_emit", |p| {
                let (key, out) = host_emit::<P>(key, out, n_features)?;
                check_state_ptr::<P::State>(state).map_err(|e| format!("the state {e}"))?;
                let n = p.items();
                // SAFETY: the flow's state, checked non-null and aligned for State (and so for
                // Item, asserted no more aligned), at least sized_state_bytes(n) long, valid as
                // written by this plugin; only read. State and items do not overlap.
                let (s, items) = (
                    &*state_ptr::<P::State>(state),
                    core::slice::from_raw_parts(
                        (state as *const u8).add(items_offset::<P::State, P::Item>())
                            as *const P::Item,
                        n,
                    ),
                );
                p.emit_sized(key, s, items, out);
                Ok(())
            })
        }
    }

    /// `last_error`.
    ///
    /// # Safety
    /// `inst` is null or an instance from [`create`] for `P`.
    pub unsafe extern "C" fn last_error<P: Plugin>(inst: *mut c_void) -> *const c_char {
        if inst.is_null() {
            return THREAD_ERROR.with(|e| match &*e.borrow() {
                // The CString's buffer lives until the next error on this thread.
                Some(msg) => msg.as_ptr(),
                None => NO_ERROR.as_ptr(),
            });
        }
        // SAFETY: a non-null inst is our live Instance<P>.
        let inst = unsafe { &*(inst as *const Instance<P>) };
        match &inst.error {
            Some(msg) => msg.as_ptr(),
            None => NO_ERROR.as_ptr(),
        }
    }
}
