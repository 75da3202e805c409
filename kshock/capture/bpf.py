"""PURE: the classic BPF program a live capture attaches to its socket, and an interpreter for it.

    program = bpf_program({9092}, ethernet=True)  # [(code, jt, jf, k), ...] for SO_ATTACH_FILTER
    run_bpf(program, frame)                       # bytes the kernel would keep; 0: dropped

Only IPv4 and IPv6 TCP segments to or from a Kafka port pass (IPv4: first fragments only, which
carry the TCP header). No sockets here: capture/live.py attaches the program.
"""

from __future__ import annotations

from collections.abc import Collection

from kshock.errors import UserError

SNAPLEN = 262144  # whole GRO/TSO super-packets fit

# classic BPF opcodes (linux/filter.h)
_LDH_ABS = 0x28
_LDB_ABS = 0x30
_LDH_IND = 0x48
_LDXB_MSH = 0xB1
_JEQ = 0x15
_JSET = 0x45
_RET = 0x06
_AND = 0x54
_RSH = 0x74

Instruction = tuple[int, int, int, int]  # code, jt, jf, k


def bpf_program(ports: Collection[int], ethernet: bool = True) -> list[Instruction]:
    """A classic BPF program accepting IPv4/IPv6 TCP segments with a source or destination port
    in `ports` (IPv4: only first fragments, which carry the TCP header). `ethernet`: packets
    start with a 14-byte Ethernet header; otherwise at the IP header (a cooked socket)."""
    chosen = sorted(set(ports))
    if not chosen or not all(0 < p < 65536 for p in chosen):
        raise UserError(f"bad Kafka port list {chosen}", "give ports from 1 to 65535")
    l3 = 14 if ethernet else 0
    code: list[tuple] = []  # (code, jt label or None, jf label or None, k, own label or None)

    def emit(op: int, k: int = 0, jt: str | None = None, jf: str | None = None, label: str | None = None):
        code.append((op, jt, jf, k, label))

    def port_tests(offset_op: int, at: int, last_jf: str) -> None:
        for direction, delta in (("src", 0), ("dst", 2)):
            emit(offset_op, at + delta)
            for i, port in enumerate(chosen):
                final = direction == "dst" and i == len(chosen) - 1
                emit(_JEQ, port, "accept", last_jf if final else None)

    if ethernet:
        emit(_LDH_ABS, 12)
        emit(_JEQ, 0x86DD, "v6", None)
        emit(_JEQ, 0x0800, None, "drop")
    else:
        emit(_LDB_ABS, 0)
        emit(_RSH, 4)
        emit(_JEQ, 6, "v6", None)
        emit(_JEQ, 4, None, "drop")
    emit(_LDB_ABS, l3 + 9)  # IPv4 protocol
    emit(_JEQ, 6, None, "drop")
    emit(_LDH_ABS, l3 + 6)  # flags and fragment offset
    emit(_JSET, 0x1FFF, "drop", None)
    emit(_LDXB_MSH, l3)  # X = IPv4 header length
    port_tests(_LDH_IND, l3, "drop")
    emit(_LDB_ABS, l3 + 6, label="v6")  # IPv6 next header (no extension headers)
    emit(_JEQ, 6, None, "drop")
    port_tests(_LDH_ABS, l3 + 40, "drop")
    emit(_RET, SNAPLEN, label="accept")
    emit(_RET, 0, label="drop")

    where = {label: i for i, (_, _, _, _, label) in enumerate(code) if label}
    program = []
    for i, (op, jt, jf, k, _) in enumerate(code):
        jt_off = where[jt] - i - 1 if jt else 0
        jf_off = where[jf] - i - 1 if jf else 0
        if not (0 <= jt_off < 256 and 0 <= jf_off < 256):
            raise UserError(f"too many Kafka ports ({len(chosen)}) for one kernel filter", "give fewer ports")
        program.append((op, jt_off, jf_off, k))
    return program


def run_bpf(program: list[Instruction], packet: bytes) -> int:
    """Interpret a classic BPF program of the kind bpf_program builds (for tests): the number of
    bytes the kernel would keep, 0 for a packet it drops."""
    a = x = 0
    pc = 0
    while True:
        op, jt, jf, k = program[pc]
        pc += 1
        if op in (_LDH_ABS, _LDH_IND):
            at = k + (x if op == _LDH_IND else 0)
            if at + 2 > len(packet):
                return 0
            a = int.from_bytes(packet[at:at + 2], "big")
        elif op == _LDB_ABS:
            if k >= len(packet):
                return 0
            a = packet[k]
        elif op == _LDXB_MSH:
            if k >= len(packet):
                return 0
            x = (packet[k] & 0xF) * 4
        elif op == _RSH:
            a >>= k
        elif op == _AND:
            a &= k
        elif op == _JEQ:
            pc += jt if a == k else jf
        elif op == _JSET:
            pc += jt if a & k else jf
        elif op == _RET:
            return min(k, len(packet))
        else:
            raise ValueError(f"opcode {op:#x} not interpreted")


__all__ = ["SNAPLEN", "Instruction", "bpf_program", "run_bpf"]
