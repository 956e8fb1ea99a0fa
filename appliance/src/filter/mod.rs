//! Capture filters in libpcap's language (`tcp port 443 or udp port 53`): `weir extract
//! --filter`, `[capture] filter` and `[[ports]] filter`.
//!
//! An expression is compiled by libpcap itself (`pcap_compile` for Ethernet, as tcpdump does,
//! through `weir_dpdk::bpf`), so it means exactly what it means to tcpdump, and a bad one is
//! refused with libpcap's own message. The classic BPF program is then checked as the Linux
//! kernel checks a socket filter (`bpf_check_classic`: at most 4096 instructions, known
//! opcodes only, jumps forward and inside the program, no division by a constant zero, scratch
//! memory in range and written before it is read, a return at the end) and decoded once into
//! [`Op`]s, which [`Filter::matches`] runs over each frame.
//!
//! Why an interpreter written here rather than DPDK's librte_bpf (`rte_bpf_convert` to eBPF,
//! `rte_bpf_load`, the x86 JIT of `rte_bpf_get_jit`), measured side by side on the frames of
//! a bundled capture (`perf/bpf_engines.sh`; numbers in `perf/RESULTS.md`):
//! - safety: the JIT of the DPDK weir builds against (22.11) generates code that crashes
//!   (SIGSEGV inside it, with real mbufs too) for common libpcap programs such as
//!   `tcp[tcpflags] & tcp-syn != 0`; a filter must never take a worker down;
//! - semantics: a converted program reads `len` from the mbuf's `pkt_len`, the captured length,
//!   where tcpdump's `len` (`greater`, `less`) is the wire length, and the worker sees frames as
//!   byte slices (a chained frame is copied out first), not as mbufs;
//! - cost: in a tight loop over a capture's frames, where the JIT works it takes 8-24 cycles
//!   per packet, DPDK's eBPF interpreter (`rte_bpf_exec_burst`) 29-92, libpcap's `bpf_filter`
//!   21-59, this one 11-88, about libpcap's; on the data path the stage's row is dominated by
//!   the first read of each frame, which parsing would pay otherwise. The main cost here is
//!   the indirect branch of each dispatch. Hence one variant per
//!   comparison and fused load-and-jump variants ([`Op`]), which halve the dispatches of the
//!   `ld; jeq` pairs libpcap emits.
//!
//! Semantics are libpcap's `bpf_filter` (what `tcpdump -r` runs): the program sees the captured
//! bytes, `len` is the wire length, a load past the captured bytes (or an index that
//! overflows) rejects the packet, a division by zero in X rejects it, shifts by 32 or more give
//! 0, and any non-zero return accepts.

use weir_dpdk::bpf::BpfInsn;

/// The kernel's and libpcap's limits: `BPF_MAXINSNS`, `BPF_MEMWORDS`.
mod check;
use check::{check_mem_written, decode, fuse_loads_and_jumps};

const MAX_INSNS: usize = 4096;
const MEM_WORDS: u32 = 16;

/// One decoded instruction. Jump targets are absolute instruction indexes (checked forward
/// and in range at load).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    LdAbsW(u32),
    LdAbsH(u32),
    LdAbsB(u32),
    LdIndW(u32),
    LdIndH(u32),
    LdIndB(u32),
    LdImm(u32),
    LdMem(u8),
    LdLen,
    LdxImm(u32),
    LdxMem(u8),
    LdxLen,
    LdxMsh(u32),
    St(u8),
    Stx(u8),
    Alu(AluOp, u32),
    AluX(AluOp),
    Neg,
    Ja(u16),
    Jmp(JmpOp, u32, u16, u16),
    JmpX(JmpOp, u16, u16),
    Ret(u32),
    RetA,
    Tax,
    Txa,
    // Conditional jumps, one variant per comparison (one dispatch each).
    JEqK(u32, u16, u16),
    JGtK(u32, u16, u16),
    JGeK(u32, u16, u16),
    JSetK(u32, u16, u16),
    JEqX(u16, u16),
    JGtX(u16, u16),
    JGeX(u16, u16),
    JSetX(u16, u16),
    // A load into A and the conditional jump on a constant after it (`ldh [12]; jeq #0x800`,
    // most of what libpcap emits) as one step, one variant per load and comparison: a
    // dispatch is the interpreter's main cost (an indirect branch), and these halve them on
    // the usual paths. The fused op replaces the load; the jump stays at its own index for
    // the jumps that land on it. (k, value, jt, jf)
    AbsWJEq(u32, u32, u16, u16),
    AbsWJGt(u32, u32, u16, u16),
    AbsWJGe(u32, u32, u16, u16),
    AbsWJSet(u32, u32, u16, u16),
    AbsHJEq(u32, u32, u16, u16),
    AbsHJGt(u32, u32, u16, u16),
    AbsHJGe(u32, u32, u16, u16),
    AbsHJSet(u32, u32, u16, u16),
    AbsBJEq(u32, u32, u16, u16),
    AbsBJGt(u32, u32, u16, u16),
    AbsBJGe(u32, u32, u16, u16),
    AbsBJSet(u32, u32, u16, u16),
    IndWJEq(u32, u32, u16, u16),
    IndWJGt(u32, u32, u16, u16),
    IndWJGe(u32, u32, u16, u16),
    IndWJSet(u32, u32, u16, u16),
    IndHJEq(u32, u32, u16, u16),
    IndHJGt(u32, u32, u16, u16),
    IndHJGe(u32, u32, u16, u16),
    IndHJSet(u32, u32, u16, u16),
    IndBJEq(u32, u32, u16, u16),
    IndBJGt(u32, u32, u16, u16),
    IndBJGe(u32, u32, u16, u16),
    IndBJSet(u32, u32, u16, u16),
    LenJEq(u32, u32, u16, u16),
    LenJGt(u32, u32, u16, u16),
    LenJGe(u32, u32, u16, u16),
    LenJSet(u32, u32, u16, u16),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AluOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Or,
    And,
    Xor,
    Lsh,
    Rsh,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum JmpOp {
    Eq,
    Gt,
    Ge,
    Set,
}

/// A compiled, checked filter.
#[derive(Clone)]
pub struct Filter {
    ops: Box<[Op]>,
    /// The expression, for messages.
    expr: String,
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filter")
            .field("expr", &self.expr)
            .field("instructions", &self.ops.len())
            .finish()
    }
}

impl Filter {
    /// Compile a libpcap expression; `Err` carries libpcap's message (or why the program was
    /// refused).
    pub fn compile(expr: &str) -> Result<Filter, String> {
        let insns = weir_dpdk::bpf::compile_pcap_filter(expr)?;
        Filter::from_insns(&insns, expr)
    }

    /// Check and decode a classic BPF program.
    fn from_insns(insns: &[BpfInsn], expr: &str) -> Result<Filter, String> {
        let n = insns.len();
        if n == 0 || n > MAX_INSNS {
            return Err(format!(
                "BPF program of {n} instructions (1 to {MAX_INSNS})"
            ));
        }
        let mut ops = Vec::with_capacity(n);
        for (pc, i) in insns.iter().enumerate() {
            let op = decode(pc, i, n).map_err(|e| {
                format!(
                    "BPF instruction {pc} (code {:#06x}, k {}): {e}",
                    i.code, i.k
                )
            })?;
            ops.push(op);
        }
        if !matches!(ops[n - 1], Op::Ret(_) | Op::RetA) {
            return Err("BPF program does not end with a return".into());
        }
        check_mem_written(&ops)?;
        fuse_loads_and_jumps(&mut ops);
        Ok(Filter {
            ops: ops.into_boxed_slice(),
            expr: expr.to_string(),
        })
    }

    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// Does the frame pass? `data` is the captured bytes, `wire_len` its length on the wire.
    // Long: the interpreter's dispatch loop, one arm per instruction kind; split, each
    // instruction would pay a call.
    #[inline]
    pub fn matches(&self, data: &[u8], wire_len: u32) -> bool {
        let ops = &*self.ops;
        let (mut a, mut x) = (0u32, 0u32);
        let mut mem = [0u32; MEM_WORDS as usize];
        let mut pc = 0usize;
        // Terminates: every jump goes forward and the last instruction returns (checked at
        // load), so `pc` only grows and stays inside `ops`.
        loop {
            debug_assert!(pc < ops.len());
            // SAFETY: `pc` is in bounds: it starts at 0, steps to the next instruction only
            // from one that is not the last (the last returns), and jumps only to targets
            // checked at load to lie inside the program.
            let op = unsafe { *ops.get_unchecked(pc) };
            pc += 1;
            match op {
                Op::LdAbsW(k) => match load::<4>(data, Some(k)) {
                    Some(v) => a = u32::from_be_bytes(v),
                    None => return false,
                },
                Op::LdAbsH(k) => match load::<2>(data, Some(k)) {
                    Some(v) => a = u16::from_be_bytes(v) as u32,
                    None => return false,
                },
                Op::LdAbsB(k) => match load::<1>(data, Some(k)) {
                    Some(v) => a = v[0] as u32,
                    None => return false,
                },
                Op::LdIndW(k) => match load::<4>(data, x.checked_add(k)) {
                    Some(v) => a = u32::from_be_bytes(v),
                    None => return false,
                },
                Op::LdIndH(k) => match load::<2>(data, x.checked_add(k)) {
                    Some(v) => a = u16::from_be_bytes(v) as u32,
                    None => return false,
                },
                Op::LdIndB(k) => match load::<1>(data, x.checked_add(k)) {
                    Some(v) => a = v[0] as u32,
                    None => return false,
                },
                Op::LdImm(k) => a = k,
                Op::LdMem(m) => a = mem[(m & 15) as usize],
                Op::LdLen => a = wire_len,
                Op::LdxImm(k) => x = k,
                Op::LdxMem(m) => x = mem[(m & 15) as usize],
                Op::LdxLen => x = wire_len,
                Op::LdxMsh(k) => match load::<1>(data, Some(k)) {
                    Some(v) => x = ((v[0] & 0x0f) as u32) << 2,
                    None => return false,
                },
                Op::St(m) => mem[(m & 15) as usize] = a,
                Op::Stx(m) => mem[(m & 15) as usize] = x,
                Op::Alu(op, k) => a = alu(op, a, k),
                Op::AluX(op) => {
                    if x == 0 && matches!(op, AluOp::Div | AluOp::Mod) {
                        return false;
                    }
                    a = alu(op, a, x)
                }
                Op::Neg => a = a.wrapping_neg(),
                Op::Ja(to) => pc = to as usize,
                Op::Jmp(op, k, t, f) => pc = if cond(op, a, k) { t } else { f } as usize,
                Op::JmpX(op, t, f) => pc = if cond(op, a, x) { t } else { f } as usize,
                Op::Ret(k) => return k != 0,
                Op::RetA => return a != 0,
                Op::Tax => x = a,
                Op::Txa => a = x,
                Op::JEqK(v, t, f) => pc = if a == v { t } else { f } as usize,
                Op::JGtK(v, t, f) => pc = if a > v { t } else { f } as usize,
                Op::JGeK(v, t, f) => pc = if a >= v { t } else { f } as usize,
                Op::JSetK(v, t, f) => pc = if a & v != 0 { t } else { f } as usize,
                Op::JEqX(t, f) => pc = if a == x { t } else { f } as usize,
                Op::JGtX(t, f) => pc = if a > x { t } else { f } as usize,
                Op::JGeX(t, f) => pc = if a >= x { t } else { f } as usize,
                Op::JSetX(t, f) => pc = if a & x != 0 { t } else { f } as usize,
                Op::AbsWJEq(k, v, t, f) => match load::<4>(data, Some(k)).map(u32::from_be_bytes) {
                    Some(loaded) => {
                        a = loaded;
                        pc = if a == v { t } else { f } as usize;
                    }
                    None => return false,
                },
                Op::AbsWJGt(k, v, t, f) => match load::<4>(data, Some(k)).map(u32::from_be_bytes) {
                    Some(loaded) => {
                        a = loaded;
                        pc = if a > v { t } else { f } as usize;
                    }
                    None => return false,
                },
                Op::AbsWJGe(k, v, t, f) => match load::<4>(data, Some(k)).map(u32::from_be_bytes) {
                    Some(loaded) => {
                        a = loaded;
                        pc = if a >= v { t } else { f } as usize;
                    }
                    None => return false,
                },
                Op::AbsWJSet(k, v, t, f) => {
                    match load::<4>(data, Some(k)).map(u32::from_be_bytes) {
                        Some(loaded) => {
                            a = loaded;
                            pc = if a & v != 0 { t } else { f } as usize;
                        }
                        None => return false,
                    }
                }
                Op::AbsHJEq(k, v, t, f) => {
                    match load::<2>(data, Some(k)).map(|b| u16::from_be_bytes(b) as u32) {
                        Some(loaded) => {
                            a = loaded;
                            pc = if a == v { t } else { f } as usize;
                        }
                        None => return false,
                    }
                }
                Op::AbsHJGt(k, v, t, f) => {
                    match load::<2>(data, Some(k)).map(|b| u16::from_be_bytes(b) as u32) {
                        Some(loaded) => {
                            a = loaded;
                            pc = if a > v { t } else { f } as usize;
                        }
                        None => return false,
                    }
                }
                Op::AbsHJGe(k, v, t, f) => {
                    match load::<2>(data, Some(k)).map(|b| u16::from_be_bytes(b) as u32) {
                        Some(loaded) => {
                            a = loaded;
                            pc = if a >= v { t } else { f } as usize;
                        }
                        None => return false,
                    }
                }
                Op::AbsHJSet(k, v, t, f) => {
                    match load::<2>(data, Some(k)).map(|b| u16::from_be_bytes(b) as u32) {
                        Some(loaded) => {
                            a = loaded;
                            pc = if a & v != 0 { t } else { f } as usize;
                        }
                        None => return false,
                    }
                }
                Op::AbsBJEq(k, v, t, f) => match load::<1>(data, Some(k)).map(|b| b[0] as u32) {
                    Some(loaded) => {
                        a = loaded;
                        pc = if a == v { t } else { f } as usize;
                    }
                    None => return false,
                },
                Op::AbsBJGt(k, v, t, f) => match load::<1>(data, Some(k)).map(|b| b[0] as u32) {
                    Some(loaded) => {
                        a = loaded;
                        pc = if a > v { t } else { f } as usize;
                    }
                    None => return false,
                },
                Op::AbsBJGe(k, v, t, f) => match load::<1>(data, Some(k)).map(|b| b[0] as u32) {
                    Some(loaded) => {
                        a = loaded;
                        pc = if a >= v { t } else { f } as usize;
                    }
                    None => return false,
                },
                Op::AbsBJSet(k, v, t, f) => match load::<1>(data, Some(k)).map(|b| b[0] as u32) {
                    Some(loaded) => {
                        a = loaded;
                        pc = if a & v != 0 { t } else { f } as usize;
                    }
                    None => return false,
                },
                Op::IndWJEq(k, v, t, f) => {
                    match load::<4>(data, x.checked_add(k)).map(u32::from_be_bytes) {
                        Some(loaded) => {
                            a = loaded;
                            pc = if a == v { t } else { f } as usize;
                        }
                        None => return false,
                    }
                }
                Op::IndWJGt(k, v, t, f) => {
                    match load::<4>(data, x.checked_add(k)).map(u32::from_be_bytes) {
                        Some(loaded) => {
                            a = loaded;
                            pc = if a > v { t } else { f } as usize;
                        }
                        None => return false,
                    }
                }
                Op::IndWJGe(k, v, t, f) => {
                    match load::<4>(data, x.checked_add(k)).map(u32::from_be_bytes) {
                        Some(loaded) => {
                            a = loaded;
                            pc = if a >= v { t } else { f } as usize;
                        }
                        None => return false,
                    }
                }
                Op::IndWJSet(k, v, t, f) => {
                    match load::<4>(data, x.checked_add(k)).map(u32::from_be_bytes) {
                        Some(loaded) => {
                            a = loaded;
                            pc = if a & v != 0 { t } else { f } as usize;
                        }
                        None => return false,
                    }
                }
                Op::IndHJEq(k, v, t, f) => {
                    match load::<2>(data, x.checked_add(k)).map(|b| u16::from_be_bytes(b) as u32) {
                        Some(loaded) => {
                            a = loaded;
                            pc = if a == v { t } else { f } as usize;
                        }
                        None => return false,
                    }
                }
                Op::IndHJGt(k, v, t, f) => {
                    match load::<2>(data, x.checked_add(k)).map(|b| u16::from_be_bytes(b) as u32) {
                        Some(loaded) => {
                            a = loaded;
                            pc = if a > v { t } else { f } as usize;
                        }
                        None => return false,
                    }
                }
                Op::IndHJGe(k, v, t, f) => {
                    match load::<2>(data, x.checked_add(k)).map(|b| u16::from_be_bytes(b) as u32) {
                        Some(loaded) => {
                            a = loaded;
                            pc = if a >= v { t } else { f } as usize;
                        }
                        None => return false,
                    }
                }
                Op::IndHJSet(k, v, t, f) => {
                    match load::<2>(data, x.checked_add(k)).map(|b| u16::from_be_bytes(b) as u32) {
                        Some(loaded) => {
                            a = loaded;
                            pc = if a & v != 0 { t } else { f } as usize;
                        }
                        None => return false,
                    }
                }
                Op::IndBJEq(k, v, t, f) => {
                    match load::<1>(data, x.checked_add(k)).map(|b| b[0] as u32) {
                        Some(loaded) => {
                            a = loaded;
                            pc = if a == v { t } else { f } as usize;
                        }
                        None => return false,
                    }
                }
                Op::IndBJGt(k, v, t, f) => {
                    match load::<1>(data, x.checked_add(k)).map(|b| b[0] as u32) {
                        Some(loaded) => {
                            a = loaded;
                            pc = if a > v { t } else { f } as usize;
                        }
                        None => return false,
                    }
                }
                Op::IndBJGe(k, v, t, f) => {
                    match load::<1>(data, x.checked_add(k)).map(|b| b[0] as u32) {
                        Some(loaded) => {
                            a = loaded;
                            pc = if a >= v { t } else { f } as usize;
                        }
                        None => return false,
                    }
                }
                Op::IndBJSet(k, v, t, f) => {
                    match load::<1>(data, x.checked_add(k)).map(|b| b[0] as u32) {
                        Some(loaded) => {
                            a = loaded;
                            pc = if a & v != 0 { t } else { f } as usize;
                        }
                        None => return false,
                    }
                }
                Op::LenJEq(_, v, t, f) => match Some(wire_len) {
                    Some(loaded) => {
                        a = loaded;
                        pc = if a == v { t } else { f } as usize;
                    }
                    None => return false,
                },
                Op::LenJGt(_, v, t, f) => match Some(wire_len) {
                    Some(loaded) => {
                        a = loaded;
                        pc = if a > v { t } else { f } as usize;
                    }
                    None => return false,
                },
                Op::LenJGe(_, v, t, f) => match Some(wire_len) {
                    Some(loaded) => {
                        a = loaded;
                        pc = if a >= v { t } else { f } as usize;
                    }
                    None => return false,
                },
                Op::LenJSet(_, v, t, f) => match Some(wire_len) {
                    Some(loaded) => {
                        a = loaded;
                        pc = if a & v != 0 { t } else { f } as usize;
                    }
                    None => return false,
                },
            }
        }
    }
}

/// `N` bytes at `off`, or `None` past the captured bytes (the packet is then rejected).
#[inline(always)]
fn load<const N: usize>(data: &[u8], off: Option<u32>) -> Option<[u8; N]> {
    let o = off? as usize;
    data.get(o..o.checked_add(N)?)?.try_into().ok()
}

#[inline(always)]
fn alu(op: AluOp, a: u32, v: u32) -> u32 {
    match op {
        AluOp::Add => a.wrapping_add(v),
        AluOp::Sub => a.wrapping_sub(v),
        AluOp::Mul => a.wrapping_mul(v),
        // A zero divisor was refused at load (K) or rejected the packet (X).
        AluOp::Div => a.checked_div(v).unwrap_or(0),
        AluOp::Mod => a.checked_rem(v).unwrap_or(0),
        AluOp::Or => a | v,
        AluOp::And => a & v,
        AluOp::Xor => a ^ v,
        AluOp::Lsh => a.checked_shl(v).unwrap_or(0),
        AluOp::Rsh => a.checked_shr(v).unwrap_or(0),
    }
}

#[inline(always)]
fn cond(op: JmpOp, a: u32, v: u32) -> bool {
    match op {
        JmpOp::Eq => a == v,
        JmpOp::Gt => a > v,
        JmpOp::Ge => a >= v,
        JmpOp::Set => a & v != 0,
    }
}

/// The filter of each packet source of a worker: source 0 is `[capture] filter` (`weir extract
/// --filter` overrides it), source `i + 1` is `ports[i]` (its own `filter`, else `[capture]
/// filter`). Empty when no source has one: the worker then runs no filter stage at all.
#[derive(Clone, Debug, Default)]
pub struct Filters {
    by_source: Vec<Option<Filter>>,
}

impl Filters {
    /// Compile `[capture] filter` (`capture`) and each port's `filter` (`ports`, in
    /// `ports[]` order); `Err` names the key and gives libpcap's message.
    pub fn new<'a>(
        capture: Option<&str>,
        ports: impl IntoIterator<Item = Option<&'a str>>,
    ) -> Result<Filters, String> {
        let capture = match capture {
            Some(e) => Some(Filter::compile(e).map_err(|m| format!("capture.filter: {m}"))?),
            None => None,
        };
        let mut by_source = vec![capture.clone()];
        for (i, p) in ports.into_iter().enumerate() {
            by_source.push(match p {
                Some(e) => Some(Filter::compile(e).map_err(|m| format!("ports[{i}].filter: {m}"))?),
                None => capture.clone(),
            });
        }
        if by_source.iter().all(Option::is_none) {
            by_source.clear();
        }
        Ok(Filters { by_source })
    }

    /// No source has a filter.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.by_source.is_empty()
    }

    /// The filter of a packet source (`None`: every packet passes).
    #[inline]
    pub fn get(&self, source: u16) -> Option<&Filter> {
        self.by_source.get(source as usize)?.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insn(code: u16, jt: u8, jf: u8, k: u32) -> BpfInsn {
        BpfInsn { code, jt, jf, k }
    }

    /// An Ethernet + IPv4 + TCP frame from `sport` to `dport`, `pad` payload bytes.
    fn tcp4(sport: u16, dport: u16, pad: usize) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00]);
        let total = (20 + 20 + pad) as u16;
        f.extend_from_slice(&[
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            1,
            0x40,
            0,
            64,
            6,
        ]);
        f.extend_from_slice(&[0, 0, 10, 0, 0, 1, 192, 0, 2, 7]);
        f.extend_from_slice(&sport.to_be_bytes());
        f.extend_from_slice(&dport.to_be_bytes());
        f.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
        f.extend(std::iter::repeat_n(0u8, pad));
        f
    }

    #[test]
    fn libpcap_expressions_match_as_tcpdump_reads_them() {
        let f = Filter::compile("tcp port 443 or udp port 53").unwrap();
        assert!(f.matches(&tcp4(50000, 443, 0), 54));
        assert!(f.matches(&tcp4(443, 50000, 0), 54));
        assert!(!f.matches(&tcp4(50000, 80, 0), 54));
        let syn = Filter::compile("tcp[tcpflags] & tcp-syn != 0").unwrap();
        assert!(syn.matches(&tcp4(1, 2, 0), 54));
        let net = Filter::compile("src net 10.0.0.0/8").unwrap();
        assert!(net.matches(&tcp4(1, 2, 0), 54));
        assert!(!Filter::compile("ip6").unwrap().matches(&tcp4(1, 2, 0), 54));
        // `len` is the wire length, not the captured length.
        let big = Filter::compile("greater 200").unwrap();
        assert!(!big.matches(&tcp4(1, 2, 0), 54));
        assert!(big.matches(&tcp4(1, 2, 0), 1500));
    }

    #[test]
    fn loads_past_the_captured_bytes_reject() {
        let f = Filter::compile("tcp dst port 443").unwrap();
        let full = tcp4(50000, 443, 0);
        assert!(f.matches(&full, 54));
        // Cut before the TCP ports (a snap length of 36 bytes).
        assert!(!f.matches(&full[..36], 54));
        assert!(!f.matches(&[], 54));
    }

    #[test]
    fn bad_expressions_give_libpcaps_message() {
        let e = Filter::compile("tcp port").unwrap_err();
        assert!(e.contains("syntax error"), "{e}");
    }

    #[test]
    fn programs_are_checked_as_the_kernel_checks_them() {
        let ret1 = insn(0x06, 0, 0, 1);
        assert!(Filter::from_insns(&[ret1], "").is_ok());
        assert!(Filter::from_insns(&[], "").is_err());
        // No return at the end.
        let e = Filter::from_insns(&[insn(0x00, 0, 0, 1)], "").unwrap_err();
        assert!(e.contains("return"), "{e}");
        // A jump past the end (and so any "backward" offset, which wraps to a huge one).
        let e = Filter::from_insns(&[insn(0x05, 0, 0, 1), ret1], "").unwrap_err();
        assert!(e.contains("past the end"), "{e}");
        let e = Filter::from_insns(&[insn(0x05, 0, 0, u32::MAX), ret1], "").unwrap_err();
        assert!(e.contains("past the end"), "{e}");
        let e = Filter::from_insns(&[insn(0x15, 0, 5, 0), ret1], "").unwrap_err();
        assert!(e.contains("past the end"), "{e}");
        // Division by a constant zero, scratch memory out of range or read before written.
        let e = Filter::from_insns(&[insn(0x34, 0, 0, 0), ret1], "").unwrap_err();
        assert!(e.contains("division"), "{e}");
        let e = Filter::from_insns(&[insn(0x02, 0, 0, 16), ret1], "").unwrap_err();
        assert!(e.contains("scratch memory"), "{e}");
        let e = Filter::from_insns(&[insn(0x60, 0, 0, 3), ret1], "").unwrap_err();
        assert!(e.contains("before any write"), "{e}");
        // Written on one branch only.
        let prog = [
            insn(0x15, 0, 1, 0), // jeq #0 -> st, else skip it
            insn(0x02, 0, 0, 3), // st M[3]
            insn(0x60, 0, 0, 3), // ld M[3]
            insn(0x16, 0, 0, 0),
        ];
        assert!(Filter::from_insns(&prog, "").is_err());
        // Unknown opcode.
        assert!(Filter::from_insns(&[insn(0xff, 0, 0, 0), ret1], "").is_err());
    }

    #[test]
    fn alu_edge_cases_follow_bpf_filter() {
        // A = len; X = 0; A /= X -> reject; A <<= 40 -> 0 -> ret A rejects.
        let div0 = [
            insn(0x80, 0, 0, 0),
            insn(0x01, 0, 0, 0),
            insn(0x3c, 0, 0, 0),
            insn(0x16, 0, 0, 0),
        ];
        assert!(!Filter::from_insns(&div0, "").unwrap().matches(&[], 100));
        let shl = [
            insn(0x80, 0, 0, 0),
            insn(0x64, 0, 0, 40),
            insn(0x16, 0, 0, 0),
        ];
        assert!(!Filter::from_insns(&shl, "").unwrap().matches(&[], 100));
        let ret_len = [insn(0x80, 0, 0, 0), insn(0x16, 0, 0, 0)];
        let f = Filter::from_insns(&ret_len, "").unwrap();
        assert!(f.matches(&[], 1) && !f.matches(&[], 0));
    }
}
