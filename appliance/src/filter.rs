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
//! Why an interpreter here rather than DPDK's `rte_bpf` (cBPF converted to eBPF, x86 JIT):
//! - semantics: a converted program reads `len` from the mbuf's `pkt_len`, which for a capture
//!   cut by its snap length is the captured length, not the wire length tcpdump's `len` (and
//!   `greater`/`less`) means; the worker also sees frames as byte slices (a chained frame is
//!   copied out first), not as mbufs;
//! - cost: the programs libpcap emits for real expressions run 4 to 20 instructions that end
//!   at the first mismatch; decoded to one `match` arm each they cost a few tens of cycles per
//!   packet, measured on the data path (`weir cost --filter`, the `filter` row; numbers in
//!   `perf/RESULTS.md`), about what a call into `rte_bpf_exec_burst` costs per packet before
//!   the JIT'd code runs.
//!
//! Semantics are libpcap's `bpf_filter` (what `tcpdump -r` runs): the program sees the captured
//! bytes, `len` is the wire length, a load past the captured bytes (or an index that
//! overflows) rejects the packet, a division by zero in X rejects it, shifts by 32 or more give
//! 0, and any non-zero return accepts.

use crate::config::Config;
use weir_dpdk::bpf::BpfInsn;

/// The kernel's and libpcap's limits: `BPF_MAXINSNS`, `BPF_MEMWORDS`.
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
#[derive(Clone, Debug)]
pub struct Filter {
    ops: Box<[Op]>,
    /// The expression, for messages.
    expr: String,
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
        Ok(Filter {
            ops: ops.into_boxed_slice(),
            expr: expr.to_string(),
        })
    }

    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// Does the frame pass? `data` is the captured bytes, `wire_len` its length on the wire.
    #[inline]
    pub fn matches(&self, data: &[u8], wire_len: u32) -> bool {
        let ops = &*self.ops;
        let (mut a, mut x) = (0u32, 0u32);
        let mut mem = [0u32; MEM_WORDS as usize];
        let mut pc = 0usize;
        // Terminates: every jump goes forward and the last instruction returns (checked at
        // load), so `pc` only grows and stays inside `ops`.
        loop {
            let op = ops[pc];
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

/// Decode instruction `pc` of an `n`-instruction program, checking what the kernel checks.
fn decode(pc: usize, i: &BpfInsn, n: usize) -> Result<Op, String> {
    let k = i.k;
    let mem = |k: u32| -> Result<u8, String> {
        if k < MEM_WORDS {
            Ok(k as u8)
        } else {
            Err(format!("scratch memory word {k} (0 to {})", MEM_WORDS - 1))
        }
    };
    // A jump `off` instructions past the next one: forward by construction (unsigned), and it
    // must land inside the program.
    let target = |off: u32| -> Result<u16, String> {
        let to = pc as u64 + 1 + off as u64;
        if to < n as u64 {
            Ok(to as u16)
        } else {
            Err(format!("jump to {to}, past the end ({n} instructions)"))
        }
    };
    let alu_op = |code: u16| -> Option<AluOp> {
        Some(match code & 0xf0 {
            0x00 => AluOp::Add,
            0x10 => AluOp::Sub,
            0x20 => AluOp::Mul,
            0x30 => AluOp::Div,
            0x40 => AluOp::Or,
            0x50 => AluOp::And,
            0x60 => AluOp::Lsh,
            0x70 => AluOp::Rsh,
            0x90 => AluOp::Mod,
            0xa0 => AluOp::Xor,
            _ => return None,
        })
    };
    let op = match i.code {
        // BPF_LD | size | mode
        0x20 => Op::LdAbsW(k),
        0x28 => Op::LdAbsH(k),
        0x30 => Op::LdAbsB(k),
        0x40 => Op::LdIndW(k),
        0x48 => Op::LdIndH(k),
        0x50 => Op::LdIndB(k),
        0x00 => Op::LdImm(k),
        0x60 => Op::LdMem(mem(k)?),
        0x80 => Op::LdLen,
        // BPF_LDX
        0x01 => Op::LdxImm(k),
        0x61 => Op::LdxMem(mem(k)?),
        0x81 => Op::LdxLen,
        0xb1 => Op::LdxMsh(k),
        // BPF_ST, BPF_STX
        0x02 => Op::St(mem(k)?),
        0x03 => Op::Stx(mem(k)?),
        // BPF_ALU | BPF_NEG
        0x84 => Op::Neg,
        // BPF_ALU | op | BPF_K / BPF_X
        c if c & 0x07 == 0x04 && c & !0xf8 == 0x04 => {
            let op = alu_op(c).ok_or("unknown ALU operation")?;
            if c & 0x08 == 0 {
                if k == 0 && matches!(op, AluOp::Div | AluOp::Mod) {
                    return Err("division by the constant 0".into());
                }
                Op::Alu(op, k)
            } else {
                Op::AluX(op)
            }
        }
        // BPF_JMP | BPF_JA
        0x05 => Op::Ja(target(k)?),
        // BPF_JMP | op | BPF_K / BPF_X
        c if c & 0x07 == 0x05 && c & !0xf8 == 0x05 => {
            let op = match c & 0xf0 {
                0x10 => JmpOp::Eq,
                0x20 => JmpOp::Gt,
                0x30 => JmpOp::Ge,
                0x40 => JmpOp::Set,
                _ => return Err("unknown jump".into()),
            };
            let (t, f) = (target(i.jt as u32)?, target(i.jf as u32)?);
            if c & 0x08 == 0 {
                Op::Jmp(op, k, t, f)
            } else {
                Op::JmpX(op, t, f)
            }
        }
        // BPF_RET | BPF_K / BPF_A
        0x06 => Op::Ret(k),
        0x16 => Op::RetA,
        // BPF_MISC | BPF_TAX / BPF_TXA
        0x07 => Op::Tax,
        0x87 => Op::Txa,
        _ => return Err("unknown or unsupported opcode".into()),
    };
    Ok(op)
}

/// Every scratch word is written on every path before it is read (the kernel's
/// `check_load_and_stores`). With forward jumps only, one pass in program order sees every
/// predecessor of an instruction before the instruction itself.
fn check_mem_written(ops: &[Op]) -> Result<(), String> {
    // Words surely written when reaching each instruction (all ones: not reached yet).
    let mut written = vec![u16::MAX; ops.len()];
    written[0] = 0;
    for (pc, op) in ops.iter().enumerate() {
        let mut w = written[pc];
        match *op {
            Op::LdMem(m) | Op::LdxMem(m) if w & (1 << m) == 0 => {
                return Err(format!(
                    "BPF instruction {pc} reads scratch word {m} before any write"
                ));
            }
            Op::St(m) | Op::Stx(m) => w |= 1 << m,
            _ => {}
        }
        let mut flow_to = |to: usize| written[to] &= w;
        match *op {
            Op::Ja(to) => flow_to(to as usize),
            Op::Jmp(_, _, t, f) | Op::JmpX(_, t, f) => {
                flow_to(t as usize);
                flow_to(f as usize);
            }
            Op::Ret(_) | Op::RetA => {}
            _ => flow_to(pc + 1),
        }
    }
    Ok(())
}

/// The filter of each packet source of a worker: source 0 is `[capture] filter` (`weir extract
/// --filter` overrides it), source `i + 1` is `ports[i]` (its own `filter`, else `[capture]
/// filter`). Empty when no source has one: the worker then runs no filter stage at all.
#[derive(Clone, Debug, Default)]
pub struct Filters {
    by_source: Vec<Option<Filter>>,
}

impl Filters {
    /// Compile every filter of `cfg`; `Err` names the key and gives libpcap's message.
    pub fn from_config(cfg: &Config) -> Result<Filters, String> {
        let capture = match &cfg.capture.filter {
            Some(e) => Some(Filter::compile(e).map_err(|m| format!("capture.filter: {m}"))?),
            None => None,
        };
        let mut by_source = vec![capture.clone()];
        for (i, p) in cfg.ports.iter().enumerate() {
            by_source.push(match &p.filter {
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
