//! Reading and checking a plugin's static descriptor (`weir_plugin_v1`).
//!
//! The order follows the header's rules: the frozen 16-byte header first (magic, ABI major,
//! minor, struct_size), and only when struct_size says the ABI 1.0 fields are there are they
//! read. The result is an owned [`Descriptor`]: names copied into Rust strings once, callbacks
//! copied out, so the hot path never touches C strings.

use super::refusal::RefusalReason;
use std::ffi::{c_char, CStr};
use weir_plugin_api::{
    CreateFn, DestroyFn, FlowEmitFn, FlowEmitTextFn, FlowInitFn, FlowStateSizeFn, IntervalEmitFn,
    LastErrorFn, PluginV1, UpdateBurstFn, PLUGIN_HEADER_SIZE, PLUGIN_V1_0_SIZE, PLUGIN_V1_1_SIZE,
    PLUGIN_V1_2_SIZE, PLUGIN_V1_3_SIZE, PLUGIN_V1_4_SIZE, WEIR_ABI_MAJOR, WEIR_ABI_MINOR,
    WEIR_FEATURE_BOOL, WEIR_FEATURE_F64, WEIR_FEATURE_TEXT, WEIR_FEATURE_U64, WEIR_PLUGIN_MAGIC,
};

/// Longest plugin name accepted.
pub const MAX_PLUGIN_NAME: usize = 64;
/// Longest feature name accepted.
pub const MAX_FEATURE_NAME: usize = 128;
/// Most features one plugin may declare.
pub const MAX_FEATURES: u32 = 4096;
/// Longest descriptor string read (version, descriptions, config schema).
const MAX_STRING: usize = 1 << 16;

/// How a feature's value is meant to be written (numbers cross the ABI as f64, text through
/// ABI 1.4's host-owned buffers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeatureKind {
    F64,
    U64,
    Bool,
    /// ABI 1.4: a UTF-8 string column.
    Text,
}

impl FeatureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FeatureKind::F64 => "f64",
            FeatureKind::U64 => "u64",
            FeatureKind::Bool => "bool",
            FeatureKind::Text => "text",
        }
    }
}

impl std::fmt::Display for FeatureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct FeatureInfo {
    pub name: String,
    pub kind: FeatureKind,
    pub description: Option<String>,
}

/// The callbacks of a plugin; all but `destroy` are required.
#[derive(Clone, Copy)]
pub struct Callbacks {
    pub create: CreateFn,
    /// Optional: NULL means the plugin has nothing to free.
    pub destroy: Option<DestroyFn>,
    pub flow_init: FlowInitFn,
    pub update_burst: UpdateBurstFn,
    pub flow_emit: FlowEmitFn,
    pub last_error: LastErrorFn,
    /// ABI 1.1, optional: NULL (or a 1.0 descriptor) means NaN in interval records.
    pub interval_emit: Option<IntervalEmitFn>,
    /// ABI 1.2, optional: the update used when interval records are on.
    pub update_burst_intervals: Option<UpdateBurstFn>,
    /// ABI 1.3, optional: an instance's per-flow state bytes, from its config.
    pub flow_state_size: Option<FlowStateSizeFn>,
    /// ABI 1.4: called instead of `flow_emit` when set; set whenever a feature is text.
    pub flow_emit_text: Option<FlowEmitTextFn>,
}

/// A checked descriptor.
#[derive(Clone)]
pub struct Descriptor {
    pub name: String,
    pub version: String,
    pub description: Option<String>,
    pub abi_minor: u16,
    pub features: Vec<FeatureInfo>,
    /// Bytes of per-flow state in this run: the descriptor's `state_size` (or what the ABI 1.3
    /// `flow_state_size` answered, see [`Descriptor::with_flow_state_size`]), plus its ABI 1.2
    /// `interval_state_size` once [`Descriptor::for_run`] turned interval records on.
    pub state_size: u32,
    /// The descriptor's own `state_size`: the most any config of the plugin needs.
    pub declared_state_size: u32,
    /// ABI 1.3: what `flow_state_size` answered for this run's config (every worker's
    /// instance must answer the same).
    pub flow_state_size: Option<u32>,
    pub state_align: u32,
    /// ABI 1.2: bytes of interval state appended when interval records are on (0 before 1.2).
    pub interval_state_size: u32,
    pub config_schema: Option<String>,
    /// The callbacks; after [`Descriptor::for_run`], `update_burst` is the one this run calls.
    pub cb: Callbacks,
}

impl Descriptor {
    /// Features of kind text (ABI 1.4): the `n_texts` of `flow_emit_text`.
    pub fn n_texts(&self) -> usize {
        self.features
            .iter()
            .filter(|f| f.kind == FeatureKind::Text)
            .count()
    }

    /// Fix the descriptor for a run with interval records `on` or off (ABI 1.2): on, the state
    /// grows by `interval_state_size` and bursts go to `update_burst_intervals` when the
    /// plugin has one; off, `interval_emit` is dropped (never called: no schedule exists, and
    /// a 1.2 state has no interval part then). Fails when the grown state exceeds
    /// `max_state_bytes`.
    /// Size the flow state by the instances' answer to `flow_state_size` (ABI 1.3), asked of
    /// an instance made with this run's config. Fails when the answer exceeds the declared
    /// `state_size` (a 1.2 host would allocate only that) or `max_state_bytes`.
    pub fn with_flow_state_size(
        mut self,
        size: u32,
        max_state_bytes: u32,
    ) -> Result<Descriptor, RefusalReason> {
        if size > self.declared_state_size {
            return Err(RefusalReason::BadDescriptor(format!(
                "flow_state_size answered {size} bytes, more than the declared state_size of {}",
                self.declared_state_size
            )));
        }
        if size > max_state_bytes {
            return Err(RefusalReason::StateTooLarge {
                size,
                max: max_state_bytes,
            });
        }
        self.state_size = size;
        self.flow_state_size = Some(size);
        Ok(self)
    }

    pub fn for_run(mut self, on: bool, max_state_bytes: u32) -> Result<Descriptor, RefusalReason> {
        if !on {
            self.cb.interval_emit = None;
            return Ok(self);
        }
        if self.cb.interval_emit.is_none() {
            return Ok(self);
        }
        let size = self.state_size as u64 + self.interval_state_size as u64;
        if size > max_state_bytes as u64 {
            return Err(RefusalReason::StateTooLarge {
                size: size.min(u32::MAX as u64) as u32,
                max: max_state_bytes,
            });
        }
        self.state_size = size as u32;
        if let Some(f) = self.cb.update_burst_intervals {
            self.cb.update_burst = f;
        }
        Ok(self)
    }
}

/// Copy a NUL-terminated string of at most `max` bytes; `Ok(None)` for NULL.
///
/// # Safety
/// `p` is NULL or points to readable memory up to a NUL or `max` bytes.
pub(crate) unsafe fn c_string(p: *const c_char, max: usize) -> Result<Option<String>, String> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: forwarded; strnlen reads at most max bytes.
    let len = unsafe { libc::strnlen(p, max) };
    if len == max {
        return Err(format!(
            "string longer than {max} bytes or not NUL-terminated"
        ));
    }
    // SAFETY: p[len] is the NUL found by strnlen.
    let s = unsafe { CStr::from_ptr(p) };
    s.to_str()
        .map(|s| Some(s.to_string()))
        .map_err(|_| "string is not UTF-8".to_string())
}

/// Check a column or plugin name against the header's rule `[a-z0-9_]+`.
pub fn check_name(name: &str, max: usize) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty");
    }
    if name.len() > max {
        return Err("too long");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err("only a-z, 0-9 and _ are allowed");
    }
    Ok(())
}

/// Read and check the descriptor at `p` (the value the entry symbol returned).
///
/// On refusal the plugin's name is returned with the reason when it could be read.
///
/// # Safety
/// `p` is NULL or points to a descriptor that lives forever (the library is never unloaded)
/// and is at least 16 bytes long; fields past the header are read only if struct_size covers
/// them.
// Long: every field of the ABI descriptor checked in the header's order, one refusal each.
pub unsafe fn read(
    p: *const PluginV1,
    max_state_bytes: u32,
) -> Result<Descriptor, (Option<String>, RefusalReason)> {
    if p.is_null() {
        return Err((None, RefusalReason::EntryReturnedNull));
    }
    // SAFETY: the frozen header is always present; read field by field through raw pointers
    // so no reference to a possibly shorter struct is formed.
    let (magic, major, minor, size) = unsafe {
        (
            std::ptr::addr_of!((*p).magic).read_unaligned(),
            std::ptr::addr_of!((*p).abi_major).read_unaligned(),
            std::ptr::addr_of!((*p).abi_minor).read_unaligned(),
            std::ptr::addr_of!((*p).struct_size).read_unaligned(),
        )
    };
    let refuse = |r| Err((None, r));
    if magic != WEIR_PLUGIN_MAGIC {
        return refuse(RefusalReason::BadMagic(magic));
    }
    if major != WEIR_ABI_MAJOR {
        return refuse(RefusalReason::AbiMajor {
            plugin: major,
            host: WEIR_ABI_MAJOR,
        });
    }
    if minor > WEIR_ABI_MINOR {
        return refuse(RefusalReason::AbiMinorNewer {
            plugin: minor,
            host: WEIR_ABI_MINOR,
        });
    }
    // A 1.0 descriptor is shorter than today's PluginV1: only the 1.0 fields are required,
    // and a later one is read only when struct_size says it is there.
    let need = PLUGIN_V1_0_SIZE as u32;
    if size < need {
        return refuse(RefusalReason::StructTooSmall { size, need });
    }
    debug_assert!(size as usize >= PLUGIN_HEADER_SIZE);
    // Copy the part the plugin declared (at most today's struct) into a zeroed descriptor: a
    // 1.0 plugin's static ends after last_error, so no reference to a whole PluginV1 over it is
    // formed, and fields it does not have read as NULL (None).
    let mut local = std::mem::MaybeUninit::<PluginV1>::zeroed();
    let n = (size as usize).min(std::mem::size_of::<PluginV1>());
    // SAFETY: the plugin's descriptor has struct_size >= n readable bytes; the local has
    // size_of::<PluginV1>() >= n; every all-zero field of PluginV1 is valid (NULL pointers,
    // None callbacks, zero integers).
    let local = unsafe {
        std::ptr::copy_nonoverlapping(p.cast::<u8>(), local.as_mut_ptr().cast::<u8>(), n);
        local.assume_init()
    };
    let d: &PluginV1 = &local;
    // ABI 1.1 fields, present only when struct_size covers them (else zero from the copy).
    let interval_emit = if size as usize >= PLUGIN_V1_1_SIZE {
        d.interval_emit
    } else {
        None
    };
    // ABI 1.2 fields, likewise.
    let (interval_state_size, update_burst_intervals) = if size as usize >= PLUGIN_V1_2_SIZE {
        (d.interval_state_size, d.update_burst_intervals)
    } else {
        (0, None)
    };
    // ABI 1.3, likewise.
    let flow_state_size = if size as usize >= PLUGIN_V1_3_SIZE {
        d.flow_state_size
    } else {
        None
    };
    // ABI 1.4, likewise (a 1.3 plugin's descriptor ends before it).
    let flow_emit_text = if size as usize >= PLUGIN_V1_4_SIZE {
        d.flow_emit_text
    } else {
        None
    };

    // SAFETY: descriptor strings are static NUL-terminated text or NULL, per the header (so
    // for every c_string call below).
    let name = match unsafe { c_string(d.name, MAX_PLUGIN_NAME + 1) } {
        Ok(Some(n)) => n,
        Ok(None) => return refuse(RefusalReason::BadDescriptor("name is NULL".into())),
        Err(e) => return refuse(RefusalReason::BadDescriptor(format!("name: {e}"))),
    };
    let named = |r| Err((Some(name.clone()), r));
    if let Err(why) = check_name(&name, MAX_PLUGIN_NAME) {
        return named(RefusalReason::BadPluginName {
            name: name.clone(),
            why,
        });
    }
    // SAFETY: as for the name.
    let version = match unsafe { c_string(d.version, MAX_STRING) } {
        Ok(Some(v)) => v,
        Ok(None) => return named(RefusalReason::BadDescriptor("version is NULL".into())),
        Err(e) => return named(RefusalReason::BadDescriptor(format!("version: {e}"))),
    };
    // SAFETY: as for the name.
    let description = match unsafe { c_string(d.description, MAX_STRING) } {
        Ok(v) => v,
        Err(e) => return named(RefusalReason::BadDescriptor(format!("description: {e}"))),
    };
    // SAFETY: as for the name.
    let config_schema = match unsafe { c_string(d.config_schema, MAX_STRING) } {
        Ok(v) => v,
        Err(e) => return named(RefusalReason::BadDescriptor(format!("config_schema: {e}"))),
    };

    let cb = match (
        d.create,
        d.flow_init,
        d.update_burst,
        d.flow_emit,
        d.last_error,
    ) {
        (Some(create), Some(flow_init), Some(update_burst), Some(flow_emit), Some(last_error)) => {
            Callbacks {
                create,
                destroy: d.destroy,
                flow_init,
                update_burst,
                flow_emit,
                last_error,
                interval_emit,
                update_burst_intervals,
                flow_state_size,
                flow_emit_text,
            }
        }
        (c, i, u, e, _) => {
            let which = if c.is_none() {
                "create"
            } else if i.is_none() {
                "flow_init"
            } else if u.is_none() {
                "update_burst"
            } else if e.is_none() {
                "flow_emit"
            } else {
                "last_error"
            };
            return named(RefusalReason::NullCallback(which));
        }
    };

    // An interval part nothing would update, or interval callbacks without interval_emit,
    // would make interval records silently wrong: refuse them.
    if (interval_state_size > 0 || update_burst_intervals.is_some()) && interval_emit.is_none() {
        return named(RefusalReason::BadDescriptor(
            "interval_state_size or update_burst_intervals is set but interval_emit is NULL".into(),
        ));
    }
    if interval_state_size > 0 && update_burst_intervals.is_none() {
        return named(RefusalReason::BadDescriptor(format!(
            "interval_state_size is {interval_state_size} but update_burst_intervals is NULL"
        )));
    }
    // With flow_state_size the limit applies to what this run's config asks for (checked in
    // with_flow_state_size): the declared size is only the most any config needs.
    if d.state_size > max_state_bytes && flow_state_size.is_none() {
        return named(RefusalReason::StateTooLarge {
            size: d.state_size,
            max: max_state_bytes,
        });
    }
    // A stateless plugin may leave the alignment 0.
    let state_align = if d.state_size == 0 && d.state_align == 0 {
        1
    } else {
        d.state_align
    };
    if !state_align.is_power_of_two() || state_align > 64 {
        return named(RefusalReason::BadStateAlign(d.state_align));
    }

    if d.n_features > MAX_FEATURES {
        return named(RefusalReason::BadDescriptor(format!(
            "{} features, at most {MAX_FEATURES} allowed",
            d.n_features
        )));
    }
    if d.n_features > 0 && d.features.is_null() {
        return named(RefusalReason::BadDescriptor(format!(
            "n_features is {} but features is NULL",
            d.n_features
        )));
    }
    let mut features = Vec::with_capacity(d.n_features as usize);
    for i in 0..d.n_features {
        // SAFETY: features points to n_features static descriptors (checked non-NULL above).
        let f = unsafe { &*d.features.add(i as usize) };
        // SAFETY: a feature's strings are static NUL-terminated text or NULL, per the header.
        let fname = match unsafe { c_string(f.name, MAX_FEATURE_NAME + 1) } {
            Ok(Some(n)) => n,
            Ok(None) => {
                return named(RefusalReason::BadFeatureName {
                    index: i,
                    name: String::new(),
                    why: "name is NULL",
                })
            }
            Err(_) => {
                return named(RefusalReason::BadFeatureName {
                    index: i,
                    name: String::new(),
                    why: "name is too long or not UTF-8",
                })
            }
        };
        if let Err(why) = check_name(&fname, MAX_FEATURE_NAME) {
            return named(RefusalReason::BadFeatureName {
                index: i,
                name: fname,
                why,
            });
        }
        let kind = match f.kind {
            WEIR_FEATURE_F64 => FeatureKind::F64,
            WEIR_FEATURE_U64 => FeatureKind::U64,
            WEIR_FEATURE_BOOL => FeatureKind::Bool,
            // Text exists from ABI 1.4 on: an older plugin cannot mean it.
            WEIR_FEATURE_TEXT if minor >= 4 => FeatureKind::Text,
            k => {
                return named(RefusalReason::BadFeatureKind {
                    name: fname,
                    kind: k,
                })
            }
        };
        // SAFETY: as for the feature's name.
        let fdesc = unsafe { c_string(f.description, MAX_STRING) }.unwrap_or(None);
        if features.iter().any(|x: &FeatureInfo| x.name == fname) {
            return named(RefusalReason::DuplicateFeature {
                owner: format!("plugin {name} itself (declared twice)"),
                name: fname,
            });
        }
        features.push(FeatureInfo {
            name: fname,
            kind,
            description: fdesc,
        });
    }

    if features.iter().any(|f| f.kind == FeatureKind::Text) && cb.flow_emit_text.is_none() {
        return named(RefusalReason::BadDescriptor(
            "a feature is of kind text but flow_emit_text is NULL (or struct_size is older \
             than ABI 1.4)"
                .into(),
        ));
    }

    Ok(Descriptor {
        name,
        version,
        description,
        abi_minor: minor,
        features,
        state_size: d.state_size,
        declared_state_size: d.state_size,
        flow_state_size: None,
        state_align,
        interval_state_size,
        config_schema,
        cb,
    })
}

#[cfg(test)]
mod tests {
    use super::check_name;

    #[test]
    fn names_follow_the_header_rule() {
        assert!(check_name("bidirectional_min_ps", 64).is_ok());
        assert!(check_name("splt_ps_0", 64).is_ok());
        assert!(check_name("", 64).is_err());
        assert!(check_name("Bad", 64).is_err());
        assert!(check_name("a-b", 64).is_err());
        assert!(check_name("a b", 64).is_err());
        assert!(check_name(&"a".repeat(65), 64).is_err());
    }
}
