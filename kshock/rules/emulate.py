"""PURE: evaluate a RuleSet on IPv4 packets exactly as netfilter would, one packet at a time.

The u32 evaluator runs the expression *text* that iptables receives, with xt_u32.c's own
algorithm (reads past the packet's end make a test false), and the string matcher follows
skb_find_text(): the whole pattern must lie inside [from, to). So what the emulator says about
a capture is what the kernel's counters will say — a test in a namespace holds it to that.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from dataclasses import dataclass

from kshock.rules.kernel import KernelRule, RuleSet
from kshock.rules.render import PAYLOAD_PRESENT, u32_text

# Targets after which netfilter carries on with the next rule.
NON_TERMINATING = frozenset({"MARK", "CLASSIFY", "LOG", "NFLOG"})
_U32_OPS = {"&": "and", "<<": "shl", ">>": "shr", "@": "at"}
_TOKEN = re.compile(r"\s*(0[xX][0-9a-fA-F]+|\d+|<<|>>|&&|[&@=,:])")
_MASK32 = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class U32Program:
    """Parsed xt_u32 tests: each is (first number, ((op, number), ...), ((min, max), ...))."""

    tests: tuple[tuple[int, tuple[tuple[str, int], ...], tuple[tuple[int, int], ...]], ...]


def parse_u32(text: str) -> U32Program:
    tokens = _tokens(text)
    tests = []
    i = 0

    def number() -> int:
        nonlocal i
        value = int(tokens[i], 0)
        if value > _MASK32:
            raise ValueError(f"u32 number {tokens[i]} exceeds 32 bits")
        i += 1
        return value

    while True:
        first = number()
        ops = []
        while i < len(tokens) and tokens[i] in _U32_OPS:
            op = _U32_OPS[tokens[i]]
            i += 1
            ops.append((op, number()))
        if i >= len(tokens) or tokens[i] != "=":
            raise ValueError(f"u32 test without '=': {text!r}")
        i += 1
        ranges = []
        while True:
            low = number()
            high = low
            if i < len(tokens) and tokens[i] == ":":
                i += 1
                high = number()
            ranges.append((low, high))
            if i < len(tokens) and tokens[i] == ",":
                i += 1
                continue
            break
        tests.append((first, tuple(ops), tuple(ranges)))
        if i == len(tokens):
            return U32Program(tuple(tests))
        if tokens[i] != "&&":
            raise ValueError(f"unexpected {tokens[i]!r} in u32 expression {text!r}")
        i += 1


def _tokens(text: str) -> list[str]:
    tokens, position = [], 0
    text = text.strip()
    while position < len(text):
        found = _TOKEN.match(text, position)
        if not found:
            raise ValueError(f"cannot read u32 expression at {text[position:]!r}")
        tokens.append(found.group(1))
        position = found.end()
    return tokens


def u32_matches(program: U32Program, packet: bytes) -> bool:
    """xt_u32's u32_match_it() on the IP packet bytes."""
    length = len(packet)
    for first, ops, ranges in program.tests:
        at = 0
        position = first
        if length < 4 or position > length - 4:
            return False
        value = struct.unpack_from(">I", packet, position)[0]
        for op, number in ops:
            if op == "and":
                value &= number
            elif op == "shl":
                value = (value << number) & _MASK32
            elif op == "shr":
                value >>= number
            else:  # at
                if at + value > _MASK32:
                    return False
                at += value
                position = number
                if at + 4 > _MASK32 or length < at + 4 or position > length - at - 4:
                    return False
                value = struct.unpack_from(">I", packet, at + position)[0]
        if not any(low <= value <= high for low, high in ranges):
            return False
    return True


def compile_u32(program: U32Program) -> Callable[[bytes], bool]:
    """The same decision as u32_matches(program, packet), as straight-line Python generated once
    per program (replay evaluates every rule on every packet; the loop above is the reference)."""
    lines = ["def match(p, _u=_unpack):", "    n = len(p)"]
    for first, ops, ranges in program.tests:
        lines += [f"    if n < 4 or {first} > n - 4: return False", f"    v = _u('>I', p, {first})[0]", "    at = 0"]
        for op, number in ops:
            if op == "and":
                lines.append(f"    v &= {number}")
            elif op == "shl":
                lines.append(f"    v = (v << {number}) & {_MASK32}")
            elif op == "shr":
                lines.append(f"    v >>= {number}")
            else:
                lines += [f"    if at + v > {_MASK32}: return False", "    at += v",
                          f"    if at + 4 > {_MASK32} or n < at + 4 or {number} > n - at - 4: return False",
                          f"    v = _u('>I', p, at + {number})[0]"]
        accept = " or ".join(f"{low} <= v <= {high}" for low, high in ranges)
        lines.append(f"    if not ({accept}): return False")
    lines.append("    return True")
    namespace = {"_unpack": struct.unpack_from}
    exec(compile("\n".join(lines), "<u32>", "exec"), namespace)  # numbers only: parsed above
    return namespace["match"]


def string_matches(pattern: bytes, from_offset: int, to_offset: int, packet: bytes) -> bool:
    """skb_find_text(): the pattern must lie wholly inside [from, to) of the IP packet."""
    end = min(to_offset, len(packet))
    if from_offset >= end:
        return False
    return packet.find(pattern, from_offset, end) >= 0


class PacketView:
    """The fields of an IPv4/TCP packet the rules look at."""

    __slots__ = ("raw", "src_int", "dst_int", "sport", "dport", "flags", "conn")

    def __init__(self, raw: bytes, src_int: int, dst_int: int, sport: int, dport: int, flags: int, conn: tuple) -> None:
        self.raw = raw
        self.src_int = src_int
        self.dst_int = dst_int
        self.sport = sport
        self.dport = dport
        self.flags = flags
        self.conn = conn  # a direction-free connection key, for connmark state

    @property
    def src(self) -> str:
        return "%d.%d.%d.%d" % tuple(self.raw[12:16])

    @property
    def dst(self) -> str:
        return "%d.%d.%d.%d" % tuple(self.raw[16:20])


def view_ipv4_tcp(raw: bytes) -> PacketView | None:
    if len(raw) < 20 or raw[0] >> 4 != 4 or raw[9] != 6:
        return None
    ihl = (raw[0] & 0x0F) * 4
    if len(raw) < ihl + 20:
        return None
    src_int, dst_int = struct.unpack_from(">II", raw, 12)
    sport, dport = struct.unpack_from(">HH", raw, ihl)
    flags = raw[ihl + 13]
    a, b = (src_int, sport), (dst_int, dport)
    conn = (a, b) if a <= b else (b, a)
    return PacketView(raw, src_int, dst_int, sport, dport, flags, conn)


_FLAG_BITS = {"FIN": 0x01, "SYN": 0x02, "RST": 0x04, "PSH": 0x08, "ACK": 0x10, "URG": 0x20, "ECE": 0x40,
              "CWR": 0x80, "ALL": 0xFF, "NONE": 0}


def _flag_mask(names: str) -> int:
    mask = 0
    for name in names.split(","):
        mask |= _FLAG_BITS[name]
    return mask


def compile_rule(rule: KernelRule) -> Callable[[PacketView], bool]:
    """The stateless part of a rule (addresses, ports, flags, u32, string) as one predicate;
    connmark and nth keep state and are checked by the Emulator itself."""
    checks: list[Callable[[PacketView], bool]] = []
    if rule.protocol != "tcp":
        return lambda packet: False
    if rule.source:
        network, mask = _network(rule.source)
        checks.append(lambda p: p.src_int & mask == network)
    if rule.destination:
        network_d, mask_d = _network(rule.destination)
        checks.append(lambda p: p.dst_int & mask_d == network_d)
    if rule.source_port is not None:
        sport = rule.source_port
        checks.append(lambda p: p.sport == sport)
    if rule.destination_port is not None:
        dport = rule.destination_port
        checks.append(lambda p: p.dport == dport)
    if rule.tcp_flags:
        flag_mask, flag_value = _flag_mask(rule.tcp_flags[0]), _flag_mask(rule.tcp_flags[1])
        checks.append(lambda p: p.flags & flag_mask == flag_value)
    programs = ([parse_u32(PAYLOAD_PRESENT)] if rule.payload_required else []) + \
        [parse_u32(u32_text(group)) for group in rule.u32]
    for program in programs:
        compiled = compile_u32(program)
        checks.append(lambda p, compiled=compiled: compiled(p.raw))
    for window in rule.strings:
        checks.append(lambda p, w=window: string_matches(w.pattern, w.from_offset, w.to_offset, p.raw))
    if not checks:
        return lambda packet: True
    if len(checks) == 1:
        return checks[0]
    checks_tuple = tuple(checks)
    return lambda p: all(check(p) for check in checks_tuple)


class Emulator:
    """Walks a packet through a RuleSet's chains with the state the kernel keeps
    (connection marks set by CONNMARK, nth counters), and counts hits per rule."""

    __slots__ = ("ruleset", "hits", "_marks", "_nth", "_chains", "_compiled")

    def __init__(self, ruleset: RuleSet) -> None:
        self.ruleset = ruleset
        self.hits: dict[tuple[str, int], int] = {}
        self._marks: dict[tuple, int] = {}
        self._nth: dict[tuple[str, int], int] = {}
        self._chains = {chain.name: chain for chain in ruleset.chains}
        self._compiled: dict[int, Callable[[PacketView], bool]] = {}

    def verdict(self, builtin: str, raw: bytes) -> str | None:
        """The final target (DROP/REJECT/...) the packet meets entering `builtin`, or None
        when it passes through kshock's rules untouched."""
        packet = view_ipv4_tcp(raw)
        if packet is None:
            return None
        for index, jump in enumerate(self.ruleset.jumps):
            if jump.builtin != builtin or not self._matches(jump.rule, f"jump:{builtin}", index, packet):
                continue
            result = self._walk(jump.rule.target, packet, depth=0)
            if result is not None:
                return result
        return None

    def _walk(self, name: str, packet: PacketView, depth: int) -> str | None:
        if depth > 8:
            raise ValueError("chain nesting too deep")
        chains = self._chains
        for index, rule in enumerate(chains[name].rules):
            if not self._matches(rule, name, index, packet):
                continue
            if rule.target == "RETURN":
                return None
            if rule.target == "CONNMARK":
                self._set_mark(rule, packet)
                continue
            if rule.target in NON_TERMINATING:
                continue  # the packet goes on to the next rule, as in the kernel
            if rule.target in chains:
                result = self._walk(rule.target, packet, depth + 1)
                if result is not None:
                    return result
                continue
            return rule.target
        return None

    def _set_mark(self, rule: KernelRule, packet: PacketView) -> None:
        args = list(rule.target_args)
        option = "--set-xmark" if "--set-xmark" in args else "--set-mark"
        value, _, mask = args[args.index(option) + 1].partition("/")
        mask_int = int(mask, 0) if mask else 0xFFFFFFFF
        old = self._marks.get(packet.conn, 0)
        # --set-xmark value/mask: zero the mask bits, then XOR the value (iptables-extensions(8)).
        self._marks[packet.conn] = (old & ~mask_int & 0xFFFFFFFF) ^ int(value, 0)

    def _matches(self, rule: KernelRule, chain: str, index: int, packet: PacketView) -> bool:
        check = self._compiled.get(id(rule))
        if check is None:
            check = self._compiled[id(rule)] = compile_rule(rule)
        if not check(packet):
            return False
        if rule.connmark:
            value, mask = rule.connmark
            if self._marks.get(packet.conn, 0) & mask != value:
                return False
        key = (chain, index)
        if rule.statistic and rule.statistic[0] == "nth":
            every, start = int(rule.statistic[1]), int(rule.statistic[2])
            count = self._nth.get(key, -1) + 1
            self._nth[key] = count
            # xt_statistic as iptables sets it up: of the packets reaching the rule (counted from
            # 0), those numbered --packet, --packet + every, ... match (measured in the kernel).
            if count % every != start:
                return False
        # statistic random is a coin the kernel tosses: the emulator counts every candidate.
        self.hits[key] = self.hits.get(key, 0) + 1
        return True


def _network(spec: str) -> tuple[int, int]:
    address, _, bits = spec.partition("/")
    prefix = int(bits) if bits else 32
    mask = (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF if prefix else 0
    return _ip_int(address) & mask, mask


def _ip_int(text: str) -> int:
    a, b, c, d = (int(part) for part in text.split("."))
    return (a << 24) | (b << 16) | (c << 8) | d
