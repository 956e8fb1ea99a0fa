//! Turning libpcap's classic BPF into the interpreter's program, and the checks a program
//! passes before it runs (as the Linux kernel checks a socket filter): known opcodes, forward
//! jumps inside the program, no division by a constant 0, scratch memory written before it is
//! read; then fusing libpcap's `ld; jeq` pairs into one dispatch.

use super::*;

/// Lower the checked program for the interpreter: each conditional jump to its own
/// comparison's variant, and each load into A followed by a conditional jump on a constant
/// fused with it (see [`Op`]).
pub(super) fn fuse_loads_and_jumps(ops: &mut [Op]) {
    let flat = |op: Op| match op {
        Op::Jmp(JmpOp::Eq, k, t, f) => Op::JEqK(k, t, f),
        Op::Jmp(JmpOp::Gt, k, t, f) => Op::JGtK(k, t, f),
        Op::Jmp(JmpOp::Ge, k, t, f) => Op::JGeK(k, t, f),
        Op::Jmp(JmpOp::Set, k, t, f) => Op::JSetK(k, t, f),
        Op::JmpX(JmpOp::Eq, t, f) => Op::JEqX(t, f),
        Op::JmpX(JmpOp::Gt, t, f) => Op::JGtX(t, f),
        Op::JmpX(JmpOp::Ge, t, f) => Op::JGeX(t, f),
        Op::JmpX(JmpOp::Set, t, f) => Op::JSetX(t, f),
        other => other,
    };
    for i in 0..ops.len() {
        let Some(Op::Jmp(op, v, t, f)) = ops.get(i + 1).copied() else {
            ops[i] = flat(ops[i]);
            continue;
        };
        ops[i] = match (ops[i], op) {
            (Op::LdAbsW(k), JmpOp::Eq) => Op::AbsWJEq(k, v, t, f),
            (Op::LdAbsW(k), JmpOp::Gt) => Op::AbsWJGt(k, v, t, f),
            (Op::LdAbsW(k), JmpOp::Ge) => Op::AbsWJGe(k, v, t, f),
            (Op::LdAbsW(k), JmpOp::Set) => Op::AbsWJSet(k, v, t, f),
            (Op::LdAbsH(k), JmpOp::Eq) => Op::AbsHJEq(k, v, t, f),
            (Op::LdAbsH(k), JmpOp::Gt) => Op::AbsHJGt(k, v, t, f),
            (Op::LdAbsH(k), JmpOp::Ge) => Op::AbsHJGe(k, v, t, f),
            (Op::LdAbsH(k), JmpOp::Set) => Op::AbsHJSet(k, v, t, f),
            (Op::LdAbsB(k), JmpOp::Eq) => Op::AbsBJEq(k, v, t, f),
            (Op::LdAbsB(k), JmpOp::Gt) => Op::AbsBJGt(k, v, t, f),
            (Op::LdAbsB(k), JmpOp::Ge) => Op::AbsBJGe(k, v, t, f),
            (Op::LdAbsB(k), JmpOp::Set) => Op::AbsBJSet(k, v, t, f),
            (Op::LdIndW(k), JmpOp::Eq) => Op::IndWJEq(k, v, t, f),
            (Op::LdIndW(k), JmpOp::Gt) => Op::IndWJGt(k, v, t, f),
            (Op::LdIndW(k), JmpOp::Ge) => Op::IndWJGe(k, v, t, f),
            (Op::LdIndW(k), JmpOp::Set) => Op::IndWJSet(k, v, t, f),
            (Op::LdIndH(k), JmpOp::Eq) => Op::IndHJEq(k, v, t, f),
            (Op::LdIndH(k), JmpOp::Gt) => Op::IndHJGt(k, v, t, f),
            (Op::LdIndH(k), JmpOp::Ge) => Op::IndHJGe(k, v, t, f),
            (Op::LdIndH(k), JmpOp::Set) => Op::IndHJSet(k, v, t, f),
            (Op::LdIndB(k), JmpOp::Eq) => Op::IndBJEq(k, v, t, f),
            (Op::LdIndB(k), JmpOp::Gt) => Op::IndBJGt(k, v, t, f),
            (Op::LdIndB(k), JmpOp::Ge) => Op::IndBJGe(k, v, t, f),
            (Op::LdIndB(k), JmpOp::Set) => Op::IndBJSet(k, v, t, f),
            (Op::LdLen, JmpOp::Eq) => Op::LenJEq(0, v, t, f),
            (Op::LdLen, JmpOp::Gt) => Op::LenJGt(0, v, t, f),
            (Op::LdLen, JmpOp::Ge) => Op::LenJGe(0, v, t, f),
            (Op::LdLen, JmpOp::Set) => Op::LenJSet(0, v, t, f),
            (other, _) => flat(other),
        };
    }
}

/// Decode instruction `pc` of an `n`-instruction program, checking what the kernel checks.
pub(super) fn decode(pc: usize, i: &BpfInsn, n: usize) -> Result<Op, String> {
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
pub(super) fn check_mem_written(ops: &[Op]) -> Result<(), String> {
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
