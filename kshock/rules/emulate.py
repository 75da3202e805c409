"""PURE: evaluate a RuleSet on IPv4 packets exactly as netfilter would, one packet at a time.

The u32 evaluator runs the expression *text* that iptables receives, with xt_u32.c's own
algorithm (reads past the packet's end make a test false), and the string matcher follows
skb_find_text(): the whole pattern must lie inside [from, to). So what the emulator says about
a capture is what the kernel's counters will say — a test in a namespace holds it to that.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field

from kshock.rules.kernel import KernelRule, RuleSet
from kshock.rules.render import PAYLOAD_PRESENT, u32_text

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


def string_matches(pattern: bytes, from_offset: int, to_offset: int, packet: bytes) -> bool:
    """skb_find_text(): the pattern must lie wholly inside [from, to) of the IP packet."""
    end = min(to_offset, len(packet))
    if from_offset >= end:
        return False
    return packet.find(pattern, from_offset, end) >= 0


@dataclass(slots=True)
class PacketView:
    """The fields of an IPv4/TCP packet the rules look at."""

    raw: bytes
    src: str
    dst: str
    sport: int
    dport: int
    flags: int
    conn: tuple  # a direction-free connection key, for connmark state


def view_ipv4_tcp(raw: bytes) -> PacketView | None:
    if len(raw) < 20 or raw[0] >> 4 != 4 or raw[9] != 6:
        return None
    ihl = (raw[0] & 0x0F) * 4
    if len(raw) < ihl + 20:
        return None
    src = "%d.%d.%d.%d" % tuple(raw[12:16])
    dst = "%d.%d.%d.%d" % tuple(raw[16:20])
    sport, dport = struct.unpack_from(">HH", raw, ihl)
    flags = raw[ihl + 13]
    conn = tuple(sorted(((src, sport), (dst, dport))))
    return PacketView(raw, src, dst, sport, dport, flags, conn)


_FLAG_BITS = {"FIN": 0x01, "SYN": 0x02, "RST": 0x04, "PSH": 0x08, "ACK": 0x10, "URG": 0x20, "ECE": 0x40,
              "CWR": 0x80, "ALL": 0xFF, "NONE": 0}


def _flag_mask(names: str) -> int:
    mask = 0
    for name in names.split(","):
        mask |= _FLAG_BITS[name]
    return mask


@dataclass(slots=True)
class Emulator:
    """Walks a packet through a RuleSet's chains with the state the kernel keeps
    (connection marks set by CONNMARK, nth counters), and counts hits per rule."""

    ruleset: RuleSet
    hits: dict[tuple[str, int], int] = field(default_factory=dict)
    _marks: dict[tuple, int] = field(default_factory=dict)
    _nth: dict[tuple[str, int], int] = field(default_factory=dict)
    _programs: dict[str, U32Program] = field(default_factory=dict)

    def verdict(self, builtin: str, raw: bytes) -> str | None:
        """The final target (DROP/REJECT/...) the packet meets entering `builtin`, or None
        when it passes through kshock's rules untouched."""
        packet = view_ipv4_tcp(raw)
        if packet is None:
            return None
        chains = {chain.name: chain for chain in self.ruleset.chains}
        for index, jump in enumerate(self.ruleset.jumps):
            if jump.builtin != builtin or not self._matches(jump.rule, f"jump:{builtin}", index, packet):
                continue
            result = self._walk(chains, jump.rule.target, packet, depth=0)
            if result is not None:
                return result
        return None

    def _walk(self, chains: dict, name: str, packet: PacketView, depth: int) -> str | None:
        if depth > 8:
            raise ValueError("chain nesting too deep")
        for index, rule in enumerate(chains[name].rules):
            if not self._matches(rule, name, index, packet):
                continue
            if rule.target == "RETURN":
                return None
            if rule.target == "CONNMARK":
                self._set_mark(rule, packet)
                continue
            if rule.target in chains:
                result = self._walk(chains, rule.target, packet, depth + 1)
                if result is not None:
                    return result
                continue
            return rule.target
        return None

    def _set_mark(self, rule: KernelRule, packet: PacketView) -> None:
        args = list(rule.target_args)
        value = int(args[args.index("--set-xmark") + 1].split("/")[0], 0) if "--set-xmark" in args else \
            int(args[args.index("--set-mark") + 1].split("/")[0], 0)
        self._marks[packet.conn] = value

    def _matches(self, rule: KernelRule, chain: str, index: int, packet: PacketView) -> bool:
        if rule.protocol != "tcp":
            return False
        if rule.source and not _host_matches(rule.source, packet.src):
            return False
        if rule.destination and not _host_matches(rule.destination, packet.dst):
            return False
        if rule.source_port is not None and rule.source_port != packet.sport:
            return False
        if rule.destination_port is not None and rule.destination_port != packet.dport:
            return False
        if rule.tcp_flags and packet.flags & _flag_mask(rule.tcp_flags[0]) != _flag_mask(rule.tcp_flags[1]):
            return False
        if rule.connmark:
            value, mask = rule.connmark
            if self._marks.get(packet.conn, 0) & mask != value:
                return False
        if rule.payload_required and not self._u32(PAYLOAD_PRESENT, packet.raw):
            return False
        for group in rule.u32:
            if not self._u32(u32_text(group), packet.raw):
                return False
        for window in rule.strings:
            if not string_matches(window.pattern, window.from_offset, window.to_offset, packet.raw):
                return False
        if rule.statistic and rule.statistic[0] == "nth":
            key = (chain, index)
            every, start = int(rule.statistic[1]), int(rule.statistic[2])
            count = self._nth.get(key, -1) + 1
            self._nth[key] = count
            if count % every != start:
                return False
        # statistic random is a coin the kernel tosses: the emulator counts every candidate.
        key = (chain, index)
        self.hits[key] = self.hits.get(key, 0) + 1
        return True

    def _u32(self, text: str, raw: bytes) -> bool:
        program = self._programs.get(text)
        if program is None:
            program = self._programs[text] = parse_u32(text)
        return u32_matches(program, raw)


def _host_matches(spec: str, address: str) -> bool:
    if "/" not in spec:
        return spec == address
    network, bits = spec.split("/")
    prefix = int(bits)
    return _ip_int(network) >> (32 - prefix) == _ip_int(address) >> (32 - prefix) if prefix else True


def _ip_int(text: str) -> int:
    a, b, c, d = (int(part) for part in text.split("."))
    return (a << 24) | (b << 16) | (c << 8) | d
