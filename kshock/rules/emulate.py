"""PURE: evaluate a RuleSet on IPv4 packets exactly as netfilter would, one packet at a time.

The u32 evaluator runs the expression *text* that iptables receives, with xt_u32.c's own
algorithm (reads past the packet's end make a test false), and the string matcher follows
skb_find_text(): the whole pattern must lie inside [from, to). So what the emulator says about
a capture is what the kernel's counters will say — a test in a namespace holds it to that.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Sequence
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
    per program (replay evaluates every rule on every packet; the loop above is the reference).

    Tests that start with the same hops (the IP header length, then the TCP header length, ...)
    reuse the position an earlier test reached: the packet does not change between tests, and
    a hop that failed there has already failed the program."""
    lines = ["def match(p, _u=_unpack):", "    n = len(p)"]
    known: dict[tuple, str] = {}  # (first, ops before a hop) -> the variable holding `at` after it
    for first, ops, ranges in program.tests:
        hops = [k for k, (op, _) in enumerate(ops) if op == "at"]
        resume = next((k for k in reversed(hops) if (first, ops[:k]) in known), None)
        if resume is None:
            lines += [f"    if n < 4 or {first} > n - 4: return False", f"    v = _u('>I', p, {first})[0]",
                      "    at = 0"]
            todo = list(enumerate(ops))
        else:
            number = ops[resume][1]
            lines += [f"    at = {known[(first, ops[:resume])]}",
                      f"    if at + 4 > {_MASK32} or n < at + 4 or {number} > n - at - 4: return False",
                      f"    v = _u('>I', p, at + {number})[0]"]
            todo = list(enumerate(ops))[resume + 1:]
        for k, (op, number) in todo:
            if op == "and":
                lines.append(f"    v &= {number}")
            elif op == "shl":
                lines.append(f"    v = (v << {number}) & {_MASK32}")
            elif op == "shr":
                lines.append(f"    v >>= {number}")
            else:
                name = f"a{len(known)}"
                known[(first, ops[:k])] = name
                lines += [f"    if at + v > {_MASK32}: return False", "    at += v", f"    {name} = at",
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


def _programs(rule: KernelRule) -> list[U32Program]:
    return ([parse_u32(PAYLOAD_PRESENT)] if rule.payload_required else []) + \
        [parse_u32(u32_text(group)) for group in rule.u32]


def chain_prefilter(rules: Sequence[KernelRule]) -> Callable[[bytes], bool] | None:
    """A test every u32 rule of a chain implies: for each word location (first number and
    operations) that all of them test, the word must lie in the union of their ranges. A packet
    that fails it matches none of those rules (a failed read fails each rule's own test too),
    so the walk skips them. None when the chain has no such location."""
    per_rule = []
    for rule in rules:
        if rule.protocol == "tcp" and (rule.u32 or rule.payload_required):
            locations: dict[tuple, tuple] = {}
            for program in _programs(rule):
                for first, ops, ranges in program.tests:
                    locations.setdefault((first, ops), ranges)  # any one of a rule's tests there will do
            per_rule.append(locations)
    if len(per_rule) < 2:
        return None
    common = [loc for loc in per_rule[0] if all(loc in other for other in per_rule[1:])]
    if not common:
        return None
    tests = tuple((first, ops, tuple(sorted({r for locations in per_rule for r in locations[(first, ops)]})))
                  for first, ops in common)
    return compile_u32(U32Program(tests))


def compile_rule(rule: KernelRule) -> Callable[[PacketView], bool]:
    """The stateless part of a rule (addresses, ports, flags, u32, string) as one predicate;
    connmark and nth keep state and are checked by the Emulator itself. Generated once per rule
    as a single `and` expression (replay evaluates every rule on every packet)."""
    if rule.protocol != "tcp":
        return lambda packet: False
    terms: list[str] = []
    env: dict = {"_string": string_matches}
    if rule.source:
        network, mask = _network(rule.source)
        terms.append(f"p.src_int & {mask} == {network}")
    if rule.destination:
        network, mask = _network(rule.destination)
        terms.append(f"p.dst_int & {mask} == {network}")
    if rule.source_port is not None:
        terms.append(f"p.sport == {int(rule.source_port)}")
    if rule.destination_port is not None:
        terms.append(f"p.dport == {int(rule.destination_port)}")
    if rule.tcp_flags:
        flag_mask, flag_value = _flag_mask(rule.tcp_flags[0]), _flag_mask(rule.tcp_flags[1])
        terms.append(f"p.flags & {flag_mask} == {flag_value}")
    for k, program in enumerate(_programs(rule)):
        env[f"_u{k}"] = compile_u32(program)
        terms.append(f"_u{k}(p.raw)")
    for k, window in enumerate(rule.strings):
        env[f"_w{k}"] = window
        terms.append(f"_string(_w{k}.pattern, _w{k}.from_offset, _w{k}.to_offset, p.raw)")
    source = f"def check(p):\n    return {' and '.join(terms) or 'True'}\n"
    exec(compile(source, "<rule>", "exec"), env)  # numbers and names only: built above
    return env["check"]


class Emulator:
    """Walks a packet through a RuleSet's chains with the state the kernel keeps
    (connection marks set by CONNMARK, nth counters), and counts hits per rule.

    Each rule is compiled once into (rule, stateless predicate, hit key, stateful?); a walk is
    one loop over a chain's entries. With `matched` set to a list, the (chain, index) of every
    rule a packet matched is appended to it, in order."""

    __slots__ = ("ruleset", "hits", "matched", "_marks", "_nth", "_chains", "_jumps", "_prefilters")

    def __init__(self, ruleset: RuleSet) -> None:
        self.ruleset = ruleset
        self.hits: dict[tuple[str, int], int] = {}
        self.matched: list[tuple[str, int]] | None = None
        self._marks: dict[tuple, int] = {}
        self._nth: dict[tuple[str, int], int] = {}
        self._chains = {chain.name: [_entry(rule, (chain.name, index)) for index, rule in enumerate(chain.rules)]
                        for chain in ruleset.chains}
        self._jumps = [(jump.builtin, _entry(jump.rule, (f"jump:{jump.builtin}", index)))
                       for index, jump in enumerate(ruleset.jumps)]
        self._prefilters = {chain.name: chain_prefilter(chain.rules) for chain in ruleset.chains}

    def verdict(self, builtin: str, raw: bytes) -> str | None:
        """The final target (DROP/REJECT/...) the packet meets entering `builtin`, or None
        when it passes through kshock's rules untouched."""
        packet = view_ipv4_tcp(raw)
        if packet is None:
            return None
        for chain, entry in self._jumps:
            if chain != builtin or not self._matches(entry, packet):
                continue
            result = self._walk(entry[0].target, packet, depth=0)
            if result is not None:
                return result
        return None

    def _walk(self, name: str, packet: PacketView, depth: int) -> str | None:
        if depth > 8:
            raise ValueError("chain nesting too deep")
        chains = self._chains
        prefilter = self._prefilters[name]
        skip_u32 = prefilter is not None and not prefilter(packet.raw)
        for entry in chains[name]:
            rule, check, key, stateful, has_u32 = entry
            if skip_u32 and has_u32 or not check(packet):
                continue
            if stateful:
                if not self._stateful(rule, key, packet):
                    continue
            else:
                self._hit(key)
            target = rule.target
            if target == "RETURN":
                return None
            if target == "CONNMARK":
                self._set_mark(rule, packet)
                continue
            if target in NON_TERMINATING:
                continue  # the packet goes on to the next rule, as in the kernel
            if target in chains:
                result = self._walk(target, packet, depth + 1)
                if result is not None:
                    return result
                continue
            return target
        return None

    def _set_mark(self, rule: KernelRule, packet: PacketView) -> None:
        args = list(rule.target_args)
        option = "--set-xmark" if "--set-xmark" in args else "--set-mark"
        value, _, mask = args[args.index(option) + 1].partition("/")
        mask_int = int(mask, 0) if mask else 0xFFFFFFFF
        old = self._marks.get(packet.conn, 0)
        # --set-xmark value/mask: zero the mask bits, then XOR the value (iptables-extensions(8)).
        self._marks[packet.conn] = (old & ~mask_int & 0xFFFFFFFF) ^ int(value, 0)

    def _matches(self, entry: tuple, packet: PacketView) -> bool:
        rule, check, key, stateful, _ = entry
        if not check(packet):
            return False
        if stateful:
            return self._stateful(rule, key, packet)
        self._hit(key)
        return True

    def _stateful(self, rule: KernelRule, key: tuple[str, int], packet: PacketView) -> bool:
        """The connmark and nth tests of a rule whose stateless part matched; counts the hit."""
        if rule.connmark:
            value, mask = rule.connmark
            if self._marks.get(packet.conn, 0) & mask != value:
                return False
        if rule.statistic and rule.statistic[0] == "nth":
            every, start = int(rule.statistic[1]), int(rule.statistic[2])
            count = self._nth.get(key, -1) + 1
            self._nth[key] = count
            # xt_statistic as iptables sets it up: of the packets reaching the rule (counted from
            # 0), those numbered --packet, --packet + every, ... match (measured in the kernel).
            if count % every != start:
                return False
        # statistic random is a coin the kernel tosses: the emulator counts every candidate.
        self._hit(key)
        return True

    def _hit(self, key: tuple[str, int]) -> None:
        """A rule matched: count it (and list it, for the RecordingEmulator)."""
        self.hits[key] = self.hits.get(key, 0) + 1
        if self.matched is not None:
            self.matched.append(key)


def _entry(rule: KernelRule, key: tuple[str, int]) -> tuple:
    stateful = bool(rule.connmark) or bool(rule.statistic and rule.statistic[0] == "nth")
    has_u32 = rule.protocol == "tcp" and bool(rule.u32 or rule.payload_required)  # (what chain_prefilter covers)
    return (rule, compile_rule(rule), key, stateful, has_u32)


def _network(spec: str) -> tuple[int, int]:
    address, _, bits = spec.partition("/")
    prefix = int(bits) if bits else 32
    mask = (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF if prefix else 0
    return _ip_int(address) & mask, mask


def _ip_int(text: str) -> int:
    a, b, c, d = (int(part) for part in text.split("."))
    return (a << 24) | (b << 16) | (c << 8) | d
