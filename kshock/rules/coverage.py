"""PURE: how well the kernel rules cover what a rule means — frames by intent vs packets by rule.

A rule's *intent* is the set of Kafka frames its condition selects (requests, unless the
condition tests `kind`). Its *kernel packets* are the packets its compiled action rules match,
one packet at a time, as the Emulator (and the kernel) sees them. A frame is *hit* when any
packet carrying any of its bytes is matched; a matched packet is *false* when it carries no
byte of an intent frame. Packet numbers are 1-based, as in Wireshark.

This module holds the bookkeeping and the pieces of the walk that need no I/O: which built-in
chain a packet enters, which kernel rule acts for which rule, the IPv4 bytes of a captured
packet. `kshock.replay.coverage` drives it over a capture.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from kshock.conditions import And, Compare, Condition, In, Matcher, fields_used
from kshock.rules.emulate import Emulator
from kshock.rules.kernel import KernelRule, RuleSet, U32Test
from kshock.rules.spec import RuleSpec
from kshock.wire.model import KafkaFrame

# Targets that do not act on a packet: bookkeeping (CONNMARK) or flow control.
NOT_ACTIONS = frozenset({"RETURN", "ACCEPT", "CONNMARK", "LOG", "NFLOG"})
COMMENT_PREFIX = "kshock:"

# Which built-in chain a packet enters, by the rules' direction (the host the rules sit on):
# (toward the Kafka port, from the Kafka port).
PERSPECTIVES = {
    "ingress": ("INPUT", "OUTPUT"),  # the broker's host: requests arrive, responses leave
    "both": ("INPUT", "OUTPUT"),
    "egress": ("OUTPUT", "INPUT"),  # a client's host: requests leave, responses arrive
    "forward": ("FORWARD", "FORWARD"),  # a host in between (the lab bridge, a router)
}
PERSPECTIVE_OF = {"ingress": "broker", "both": "broker", "egress": "client", "forward": "router"}


def intent_condition(spec: RuleSpec) -> Condition | None:
    """The condition a rule means, on frames: its own, limited to requests unless it tests
    `kind` itself (the compiler targets requests: the packets toward the Kafka port), and to
    the rule's target ports and host. None: every request frame of the target."""
    parts: list[Condition] = []
    condition = spec.condition
    if condition is None or "kind" not in fields_used(condition):
        parts.append(Compare("kind", "==", "request"))
    if condition is not None:
        parts.append(condition)
    parts.append(In("port", tuple(spec.target.ports)))
    if spec.target.host:
        parts.append(Compare("host", "==", ipaddress.ip_network(spec.target.host, strict=False)))
    tree = parts[0]
    for part in parts[1:]:
        tree = And(tree, part)
    return tree


class Intent:
    """`Matcher(intent_condition(spec))`, with the request and port tests done on the frame's
    fields directly (they run on every frame; the condition's own tests only on the rest)."""

    __slots__ = ("requests_only", "ports", "rest", "whole")

    def __init__(self, spec: RuleSpec, schemas: Any = None) -> None:
        condition = spec.condition
        self.requests_only = condition is None or "kind" not in fields_used(condition)
        self.ports = frozenset(spec.target.ports)
        rest = condition
        if spec.target.host:
            host = Compare("host", "==", ipaddress.ip_network(spec.target.host, strict=False))
            rest = host if rest is None else And(rest, host)
        self.rest = Matcher(rest, schemas) if rest is not None else None
        self.whole = Matcher(intent_condition(spec), schemas)

    def __call__(self, frame: KafkaFrame) -> bool:
        flow = frame.flow
        if flow is None:
            return self.whole(frame)
        if self.requests_only and not frame.is_request:
            return False
        if flow.sport not in self.ports and flow.dport not in self.ports:
            return False
        return self.rest is None or self.rest(frame)


def action_rules(ruleset: RuleSet, names: Iterable[str]) -> dict[tuple[str, int], str]:
    """(chain, index) -> the rule name, for every kernel rule that acts on packets (drops,
    rejects, marks for traffic control): its comment says `kshock:<name>` (the first word)."""
    wanted = set(names)
    chains = set(ruleset.chain_names)
    owners: dict[tuple[str, int], str] = {}
    for chain in ruleset.chains:
        for index, rule in enumerate(chain.rules):
            if rule.target in NOT_ACTIONS or rule.target in chains:
                continue
            owner = rule_owner(rule.comment, wanted)
            if owner is None and len(wanted) == 1:
                owner = next(iter(wanted))
            if owner is not None:
                owners[(chain.name, index)] = owner
    return owners


def rule_owner(comment: str, names: set[str]) -> str | None:
    """The rule a kernel rule's comment names: `kshock:<rule set>/<rule>` (the compiler's form)
    or `kshock:<rule>`, either perhaps followed by words."""
    if not comment.startswith(COMMENT_PREFIX):
        return None
    rest = comment[len(COMMENT_PREFIX):]
    candidates = [rest]
    if "/" in rest:
        candidates.insert(0, rest.split("/", 1)[1])
    for text in candidates:
        if text in names:
            return text
        head = text.split(" ", 1)[0]
        if head in names:
            return head
    return None


class RecordingEmulator(Emulator):
    """An Emulator that also lists the kernel rules a packet matched, in order (`matched`).

    It walks a copy of the rule set whose u32 groups remember their expression text (the
    Emulator asks for it on every packet); the programs it evaluates are unchanged."""

    __slots__ = ("entered",)

    def __init__(self, ruleset: RuleSet) -> None:
        Emulator.__init__(self, remembering(ruleset))
        self.matched = []
        # the built-in chains kshock jumps from: a packet entering any other meets no kshock rule
        self.entered = frozenset(jump.builtin for jump in ruleset.jumps)


class _JoinedTests(U32Test):
    """Stands for a whole u32 group: its expression is the group's tests joined with ' && ',
    computed once. `render.u32_text((joined,))` is then the very text `u32_text(group)` gives,
    so the Emulator parses and evaluates exactly the same program — without rebuilding the
    text of every test on every packet."""

    __slots__ = ("_text",)

    def expression(self) -> str:
        return self._text


def _joined(group: tuple[U32Test, ...]) -> tuple[U32Test, ...]:
    if not group:
        return group
    first = group[0]
    joined = _JoinedTests(first.offset, first.ranges, first.mask, first.shift, first.hops, first.field, first.note)
    object.__setattr__(joined, "_text", " && ".join(test.expression() for test in group))
    return (joined,)


def remembering(ruleset: RuleSet) -> RuleSet:
    """The same rule set for the Emulator, each u32 group's text computed once (see _JoinedTests);
    the kernel check renders the original rule set, so the kernel's limits are still checked."""

    def rule(r: KernelRule) -> KernelRule:
        if not r.u32:
            return r
        return replace(r, u32=tuple(_joined(group) for group in r.u32))

    chains = tuple(replace(c, rules=tuple(rule(r) for r in c.rules)) for c in ruleset.chains)
    jumps = tuple(replace(j, rule=rule(j.rule)) for j in ruleset.jumps)
    return replace(ruleset, chains=chains, jumps=jumps)


# -- IPv4 bytes of a captured packet ---------------------------------------------------------

_VLAN = (0x8100, 0x88A8, 0x9100, 0x9200)


def ipv4_packet(linktype: int, raw: bytes) -> bytes | None:
    """The IPv4 packet inside a captured frame, cut to its total length (link-layer padding
    removed, as the kernel does), or None for anything else."""
    if linktype == 1:  # Ethernet, with any number of VLAN tags
        at = 12
        if len(raw) < 14:
            return None
        ethertype = (raw[12] << 8) | raw[13]
        while ethertype in _VLAN and len(raw) >= at + 6:
            at += 4
            ethertype = (raw[at] << 8) | raw[at + 1]
        if ethertype != 0x0800:
            return None
        start = at + 2
    elif linktype == 113:  # Linux cooked v1
        if len(raw) < 16 or raw[14:16] != b"\x08\x00":
            return None
        start = 16
    elif linktype == 276:  # Linux cooked v2
        if len(raw) < 20 or raw[0:2] != b"\x08\x00":
            return None
        start = 20
    elif linktype in (101, 12, 14, 228):  # raw IP
        start = 0
    elif linktype in (0, 108):  # BSD loopback: a 4-byte address family (2 = IPv4)
        if len(raw) < 4 or (raw[0:4] != b"\x02\x00\x00\x00" and raw[0:4] != b"\x00\x00\x00\x02"):
            return None
        start = 4
    else:
        return None
    if len(raw) < start + 20 or raw[start] >> 4 != 4:
        return None
    total = (raw[start + 2] << 8) | raw[start + 3]
    end = start + total if total >= 20 else len(raw)
    return raw[start:end] if end < len(raw) else raw[start:] if start else raw


_PORTS_SEQ = struct.Struct("!HHI")


def tcp_ports(packet: bytes) -> tuple[int, int, int, int] | None:
    """(source port, destination port, sequence number, payload length) of an IPv4/TCP packet
    that is not a fragment, or None."""
    if packet[9] != 6 or len(packet) < 40 or (packet[6] & 0x3F) or packet[7]:
        return None
    ihl = (packet[0] & 0x0F) * 4
    if len(packet) < ihl + 20:
        return None
    sport, dport, seq = _PORTS_SEQ.unpack_from(packet, ihl)
    payload = len(packet) - ihl - (packet[ihl + 12] >> 4) * 4
    return sport, dport, seq, max(0, payload)


def kafka_tcp(linktype: int, raw: bytes, ports: Collection[int]) -> tuple[bytes, tuple, bool] | None:
    """(the IPv4 packet, tcp_ports' fields, toward a Kafka port?) of a captured frame to or
    from one of `ports`, or None: the packets replay walks through the rules."""
    packet = ipv4_packet(linktype, raw)
    if packet is None:
        return None
    tcp = tcp_ports(packet)
    if tcp is None:
        return None
    if tcp[1] in ports:
        return packet, tcp, True
    if tcp[0] in ports:
        return packet, tcp, False
    return None


# -- the bookkeeping -------------------------------------------------------------------------

@dataclass(slots=True)
class RuleTally:
    """What one rule's intent selected and its kernel rules matched, during a walk."""

    spec: RuleSpec
    intent: list[tuple[int, ...]] = field(default_factory=list)  # packets of each intent frame
    matched: list[int] = field(default_factory=list)  # packet numbers, in order
    counters: dict[tuple[str, int], int] = field(default_factory=dict)  # its action rules' hits


@dataclass(frozen=True, slots=True)
class RuleCoverage:
    """One rule's result; `as_json()` gives the keys of `kshock replay --json`."""

    rule: str
    match: str
    action: str
    direction: str
    trigger: str
    intent_frames: int
    kernel_packets: int
    hit_frames: int
    missed_frames: int
    false_packets: int
    missed_frame_packets: tuple[int, ...]
    false_packet_numbers: tuple[int, ...]
    kernel_packet_numbers: tuple[int, ...] = ()
    kernel_rules: tuple[tuple[str, int, int], ...] = ()  # (chain, index, emulated hits)
    kernel_counters: tuple[int, ...] | None = None  # the kernel's own, with --kernel
    notes: tuple[str, ...] = ()

    def as_json(self) -> dict:
        out = {
            "rule": self.rule,
            "match": self.match,
            "action": self.action,
            "direction": self.direction,
            "trigger": self.trigger,
            "intent_frames": self.intent_frames,
            "kernel_packets": self.kernel_packets,
            "hit_frames": self.hit_frames,
            "missed_frames": self.missed_frames,
            "false_packets": self.false_packets,
            "missed_frame_packets": list(self.missed_frame_packets),
            "false_packet_numbers": list(self.false_packet_numbers),
            "kernel_packet_numbers": list(self.kernel_packet_numbers),
            "kernel_rules": [{"chain": c, "index": i, "emulated": n} for c, i, n in self.kernel_rules],
            "notes": list(self.notes),
        }
        if self.kernel_counters is not None:
            for entry, counter in zip(out["kernel_rules"], self.kernel_counters):
                entry["kernel"] = counter
            out["kernel_agrees"] = self.kernel_agrees
        return out

    @property
    def kernel_agrees(self) -> bool | None:
        if self.kernel_counters is None:
            return None
        return tuple(n for _, _, n in self.kernel_rules) == self.kernel_counters


def tally_coverage(tally: RuleTally, alias: dict[int, int], notes: tuple[str, ...] = ()) -> RuleCoverage:
    """Intent frames vs matched packets. `alias` maps a retransmitted packet to the first
    packet that carried the same bytes, so a matched retransmission counts for its frame."""
    matched = set(tally.matched)
    acted = {alias.get(n, n) for n in matched}
    carried: set[int] = set()
    hit = 0
    missed: list[int] = []
    for packets in tally.intent:
        carried.update(packets)
        if any(p in acted for p in packets):
            hit += 1
        elif packets:
            missed.append(packets[0])
    false = sorted(n for n in matched if alias.get(n, n) not in carried)
    spec = tally.spec
    return RuleCoverage(
        rule=spec.name,
        match="any" if spec.condition is None else str(spec.condition),
        action=str(spec.action),
        direction=spec.target.direction,
        trigger=describe_trigger(spec),
        intent_frames=len(tally.intent),
        kernel_packets=len(matched),
        hit_frames=hit,
        missed_frames=len(missed),
        false_packets=len(false),
        missed_frame_packets=tuple(sorted(missed)),
        false_packet_numbers=tuple(false),
        kernel_packet_numbers=tuple(sorted(matched)),
        kernel_rules=tuple((c, i, n) for (c, i), n in sorted(tally.counters.items())),
        notes=notes,
    )


def describe_trigger(spec: RuleSpec) -> str:
    trigger = spec.trigger
    if trigger.mode == "nth":
        text = f"every {ordinal(trigger.every)} matching packet"
    elif trigger.mode == "probability":
        text = f"with probability {trigger.probability:g}"
    else:
        text = {"always": "every matching packet", "once-per-connection": "once per connection"}.get(
            trigger.mode, trigger.mode)
    return text + (", latched to the connection" if spec.latch else "")


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 12th, 13th, 21st ..."""
    suffix = "th" if n % 100 in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _random_share(spec: RuleSpec) -> float | None:
    """The chance the kernel acts on one candidate packet: the trigger's probability times the
    action's loss rate (loss N% is a random drop too); None when the rule is not random."""
    share = spec.trigger.probability if spec.trigger.mode == "probability" else None
    if spec.action.kind == "loss" and spec.action.percent is not None:
        share = (1.0 if share is None else share) * spec.action.percent / 100
    return share


def trigger_notes(spec: RuleSpec) -> tuple[str, ...]:
    """What a reader must know to read this rule's numbers."""
    notes = []
    share = _random_share(spec)
    if share is not None:
        notes.append(f"the kernel acts on a matching packet with probability {share:g}; "
                     "kernel_packets counts every candidate (a real run acts on about that share of them)")
    if spec.trigger.mode == "nth":
        notes.append(f"the kernel acts on every {ordinal(spec.trigger.every)} matching packet, so most intent "
                     "frames are missed by design")
    elif spec.trigger.mode == "once-per-connection":
        notes.append("the kernel acts once per connection, so later intent frames of a connection are missed "
                     "by design")
    if spec.latch:
        notes.append("latched: after the first match the action covers the rest of the connection, so "
                     "frames outside the intent on that connection count as false packets")
    return tuple(notes)


__all__ = ["PERSPECTIVES", "RecordingEmulator", "kafka_tcp", "RuleCoverage", "RuleTally", "action_rules", "intent_condition",
           "ipv4_packet", "tally_coverage", "tcp_ports"]
