"""PURE: a RuleSet, annotated byte by byte for a person.

    print(explain(ruleset))
    print(explain_condition('api == Fetch and topic == "payments"'))

Each rule is shown as the iptables line it becomes, then one line per test: which Kafka field
it reads, at which frame offset (bytes from the start of the frame, length prefix included;
after a variable-length field, "+ len(client_id)"), for which API versions, and what it wants.
"""

from __future__ import annotations

from collections.abc import Mapping

from kshock.rules.kernel import IP_HEADER, KernelRule, RuleSet, StringWindow, TrafficControl, U32Test
from kshock.rules.render import rule_args

_PREAMBLE = """\
How to read this: every Kafka test reads the TCP payload of one packet, as if a Kafka frame
started there. A frame that starts in the middle of a segment is not seen (a latch, `latch: true`,
acts on the rest of a connection once one packet matched). Offsets are bytes from the frame
start (the length prefix's first byte). Packets with IPv4 options (IHL > 5) never match a
Kafka test (the `0>>24=0x45` guard)."""


def explain(ruleset: RuleSet) -> str:
    lines = [f"rule set {ruleset.name} (table {ruleset.table}"
             + (f", expires {ruleset.expires_at} UTC" if ruleset.expires_at else "") + ")", _PREAMBLE, ""]
    marks = _mark_names(ruleset)
    if ruleset.connmark_mask:
        lines.append(f"connection marks used: 0x{ruleset.connmark_mask:x} (conntrack mark bits, see below)")
    for jump in ruleset.jumps:
        lines.append(f"{jump.builtin} -> {jump.rule.target}: {_where(jump.rule)}")
    for chain in ruleset.chains:
        lines += ["", f"chain {chain.name}"]
        for number, rule in enumerate(chain.rules, start=1):
            lines.append(f"  {number}. -A {chain.name} {' '.join(rule_args(rule))}")
            lines += [f"       {text}" for text in _annotate(rule, marks)]
    for plan in ruleset.traffic_control:
        what = _tc_what(plan)
        lines.append(f"\ntc plan for rule {plan.rule}: packets classified {plan.classid >> 16:x}:{plan.classid & 0xFFFF:x} "
                     f"get {what} as they leave {plan.interface or 'the interface apply resolves'} (classified from "
                     f"{plan.hook}); the apply step adds kshock's htb root, the class and its qdisc")
    if ruleset.warnings:
        lines.append("\nwarnings:")
        lines += [f"  - {warning}" for warning in ruleset.warnings]
    return "\n".join(lines) + "\n"


def explain_condition(text: str, *, action: str = "drop", topic_ids: Mapping[str, bytes] | None = None,
                      approximate: bool = False, latch: bool = False) -> str:
    """Compile one condition (as rule `expr` of rule set `explain`) and explain it."""
    from kshock.conditions import parse_condition
    from kshock.rules.compile import compile_rules
    from kshock.rules.spec import Action, RuleSpec

    spec = RuleSpec("expr", parse_condition(text) if text.strip() != "any" else None, Action(action),
                    approximate=approximate, latch=latch)
    return explain(compile_rules([spec], "explain", expires_at=None, topic_ids=topic_ids))


def _tc_what(plan: TrafficControl) -> str:
    """The treatment of one tc plan (only the fields of its kind are set)."""
    if plan.kind == "rate":
        return f"rate {plan.rate_bit_s}bit"
    if plan.kind == "delay":
        return f"delay {plan.delay_ms or 0:g}ms" + (f" jitter {plan.jitter_ms:g}ms" if plan.jitter_ms else "")
    return f"{plan.kind} {plan.percent or 0:g}%"


def _where(rule: KernelRule) -> str:
    parts = []
    if rule.destination_port is not None:
        parts.append(f"TCP to port {rule.destination_port} (requests)")
    if rule.source_port is not None:
        parts.append(f"TCP from port {rule.source_port} (responses)")
    if rule.destination:
        parts.append(f"to {rule.destination}")
    if rule.source:
        parts.append(f"from {rule.source}")
    if rule.in_interface:
        parts.append(f"in on {rule.in_interface}")
    if rule.out_interface:
        parts.append(f"out on {rule.out_interface}")
    return ", ".join(parts) or "all TCP"


def _mark_names(ruleset: RuleSet) -> dict[int, str]:
    """conntrack mark bit -> what setting it means, from the CONNMARK rules' comments."""
    names: dict[int, str] = {}
    for chain in ruleset.chains:
        for rule in chain.rules:
            if rule.target == "CONNMARK" and "--set-xmark" in rule.target_args:
                value = int(rule.target_args[rule.target_args.index("--set-xmark") + 1].split("/")[0], 16)
                what = rule.comment.split("/", 1)[-1]
                if what.startswith("identity:"):
                    # the comment names only the bit (no user text goes into a comment): the
                    # client id is in the tests' notes
                    notes = [t.note for group in rule.u32 for t in group if t.field == "client_id"]
                    what = f"identity: client id {notes[0]}" if notes else "identity"
                else:
                    what = f"rule {what} fired on this connection" + (
                        " (latch)" if not chain.name.endswith("t") else " (once)")
                names.setdefault(value, what)
    return names


def _annotate(rule: KernelRule, marks: dict[int, str]) -> list[str]:
    out = []
    if rule.connmark:
        value, mask = rule.connmark
        for bit in _bits(mask):
            meaning = marks.get(bit, "a kshock state bit")
            out.append(f"connection mark bit 0x{bit:x} {'set' if value & bit else 'clear'}: {meaning}")
    if rule.payload_required:
        out.append("the segment carries at least 4 payload bytes")
    if rule.tcp_flags:
        out.append(f"TCP flags {rule.tcp_flags[1]} among {rule.tcp_flags[0]}")
    if rule.source_port is not None or rule.destination_port is not None or rule.source or rule.destination:
        out.append(_where(rule))
    for group in rule.u32:
        for test in group:
            out.append(_test_text(test))
    for window in rule.strings:
        out.append(_window_text(window))
    if rule.statistic:
        mode, *values = rule.statistic
        out.append(f"with probability {values[0]}" if mode == "random" else f"every {values[0]}th packet that gets here")
    if rule.target == "CONNMARK":
        value = int(rule.target_args[1].split("/")[0], 16)
        out.append(f"then: mark the connection (bit 0x{value:x}) and go on")
    elif rule.target == "MARK":
        out.append(f"then: mark the packet {rule.target_args[1]} for traffic control")
    elif rule.target == "CLASSIFY":
        out.append(f"then: put the packet in htb class {rule.target_args[1]} (skb->priority) for traffic control")
    elif rule.target == "RETURN":
        out.append("then: stop here (back to the calling chain)")
    return out


def _test_text(test: U32Test) -> str:
    width = {0: 4, 8: 3, 16: 2, 24: 1}.get(test.shift, 4)
    if test.mask != 0xFFFFFFFF:
        width = bin(test.mask).count("1") // 8 or width
    start = test.offset + (4 - width if test.mask == 0xFFFF and test.shift == 0 else 0)
    if test.mask not in (0xFFFFFFFF, 0xFFFF) and test.shift == 0:
        start = test.offset  # a masked leading part of the word
    skipped = " + ".join(hop.field or f"the length at {hop.offset}" for hop in test.hops)
    span = f"byte {start}" if width == 1 else f"bytes {start}-{start + width - 1}"
    where = f"frame {span}" + (f" + {skipped}" if skipped else "")
    wanted = ", ".join(_value(low, high, test.field) for low, high in test.ranges)
    note = f" [{test.note}]" if test.note else ""
    return f"{where}: {test.field} in {wanted}{note}"


def _value(low: int, high: int, field: str) -> str:
    if low == high:
        text = f"0x{low:x}"
        raw = low.to_bytes(4, "big")
        if field in ("client_id", "topic", "transactional_id") and any(0x20 <= b < 0x7F for b in raw):
            text += f" ({''.join(chr(b) if 0x20 <= b < 0x7F else '.' for b in raw)})"
        return text
    return f"0x{low:x}-0x{high:x}"


def _window_text(window: StringWindow) -> str:
    return (f"bytes {window.pattern!r} within IP packet bytes {window.from_offset}-{window.to_offset} "
            f"(frame offsets {window.from_offset - IP_HEADER - 20}+ with a 20-byte TCP header): {window.field}"
            + (f" [{window.note}]" if window.note else ""))


def _bits(mask: int) -> list[int]:
    return [1 << i for i in range(32) if mask >> i & 1]


__all__ = ["explain", "explain_condition"]
