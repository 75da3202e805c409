"""PURE: a RuleSet as one nft script (`nft -f`), in kshock's own table `ip kshock_<name>`.

The script is one transaction: it creates the table if missing, deletes it (dropping whatever an
earlier load left), and defines it whole, so loading twice replaces rather than duplicates.
`delete table ip kshock_<name>` removes it all. Base chains hook input/output/forward at the
priority of the iptables table the rule set was compiled for and hold the jumps; kshock's chains
become regular chains. Every rule gets a `counter`.

The translation keeps the kernel's decisions the same as the iptables rules':
- a u32 test reads 4 bytes at an offset of the TCP payload, `& mask`, `>> shift`, and fails when
  the 4 bytes are not all there. nft loads the same 4 bytes (`@ih,OFFSET*8,32`, which also breaks
  the rule when they are missing), masks them with the mask cleared below the shift, and compares
  with the ranges shifted left: (word & mask') >> shift is in [lo, hi] exactly when
  word & mask' is in [lo << shift, hi << shift]. Loading fewer bits would require fewer bytes.
  u32 reaches the payload through the IHL-5 guard; `ip hdrlength 5` keeps that guard.
- nft payload offsets are fixed numbers. A u32 test with `hops` (read a length, step over it — the
  client_id before the topics, a transactional_id) and a string window (nft has no string
  match) cannot be expressed: render_nft raises CompileError naming the rule and the field.
- `-m time --datestop` (UTC, inclusive of its second) is `meta time < <epoch seconds + 1>`: nft
  reads a quoted date in the local time zone of whoever runs `nft -f`, an integer as UTC seconds.
- every word comes from audit's allowlists (user strings are only ever numbers here), and the
  whole script passes audit_nft: it touches only its own table.
- `statistic random` is xt_statistic's own test, `meta random & 0x7fffffff < round(p * 2^31)`;
  `statistic nth --every N --packet P` is `numgen inc mod N == P`: both match the packets
  P, P+N, P+2N, ... (0-based) of those that reach them (measured in a namespace).
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone

from kshock.rules.audit import UnsafeRuleText, audit_nft, check_token
from kshock.rules.compile import CompileError
from kshock.rules.kernel import KernelRule, RuleSet, U32Test
from kshock.rules.render import checked_args

_MASK32 = 0xFFFFFFFF
_FAMILIES = {"ipv4": "ip"}
_HOOKS = {"INPUT": "input", "OUTPUT": "output", "FORWARD": "forward"}
_PRIORITIES = {"filter": "filter", "mangle": "mangle"}
_VERDICTS = {"DROP": "drop", "ACCEPT": "accept", "RETURN": "return"}
_FLAGS = {"FIN": "fin", "SYN": "syn", "RST": "rst", "PSH": "psh", "ACK": "ack", "URG": "urg", "ECE": "ecn",
          "CWR": "cwr"}
_REJECT_WITH = {"tcp-reset": "tcp reset", "icmp-port-unreachable": "icmp type port-unreachable",
                "icmp-host-unreachable": "icmp type host-unreachable",
                "icmp-net-unreachable": "icmp type net-unreachable",
                "icmp-admin-prohibited": "icmp type admin-prohibited"}
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]{0,71}\Z")
_SAFE_STRING = re.compile(r"[A-Za-z0-9_.:/@*-]{1,128}\Z")
_COMMENT_MAX = 128
_HINT = "use --format iptables-restore"


def nft_table(ruleset: RuleSet) -> str:
    """`ip kshock_<name>`: the family and table render_nft creates (for `delete table`)."""
    family = _FAMILIES.get(ruleset.family)
    if family is None:
        raise ValueError(f"no nft family for rule set family {ruleset.family!r}")
    return f"{family} {_identifier('kshock_' + ruleset.name)}"


def render_nft(ruleset: RuleSet) -> str:
    """Text for `nft -f`: kshock's table, replaced whole in one transaction."""
    priority = _PRIORITIES.get(ruleset.table)
    if priority is None:
        raise ValueError(f"no nft priority for iptables table {ruleset.table!r}")
    table = nft_table(ruleset)
    chains = {chain.name for chain in ruleset.chains}
    lines = [f"# kshock rule set {ruleset.name}: load with `nft -f`, remove with `nft delete table {table}`"]
    if ruleset.expires_at:
        check_token(ruleset.expires_at, "--datestop")
        lines.append(f"# expires {ruleset.expires_at} UTC (`meta time <` takes UTC epoch seconds)")
    lines += [f"table {table}", f"delete table {table}", f"table {table} {{"]
    blocks = []
    for builtin, hook in _HOOKS.items():
        jumps = [jump.rule for jump in ruleset.jumps if jump.builtin == builtin]
        if not jumps:
            continue
        # In the mangle table, iptables re-routes a locally generated packet whose mark changed;
        # an nft chain does that when it is of type route.
        kind = "route" if priority == "mangle" and hook == "output" else "filter"
        body = [f"\t\ttype {kind} hook {hook} priority {priority}; policy accept;"]
        body += [f"\t\t{_rule(rule, chains, builtin, i)}" for i, rule in enumerate(jumps)]
        blocks.append([f"\tchain {hook} {{", *body, "\t}"])
    for chain in ruleset.chains:
        body = [f"\t\t{_rule(rule, chains, chain.name, i)}" for i, rule in enumerate(chain.rules)]
        blocks.append([f"\tchain {_identifier(chain.name)} {{", *body, "\t}"])
    for i, block in enumerate(blocks):
        if i:
            lines.append("")
        lines += block
    lines.append("}")
    text = "\n".join(lines) + "\n"
    audit_nft(text, require_expiry=bool(ruleset.expires_at))
    return text


def _rule(rule: KernelRule, chains: set[str], chain: str, index: int) -> str:
    """One nft rule: the matches in iptables' order (so numgen counts what statistic counts),
    then counter, the statement, the comment."""
    name = _rule_name(rule, chain, index)
    checked_args(rule)  # every field a valid token, as for iptables, before any is formatted
    _refuse(rule, name)
    parts: list[str] = []
    proto = rule.protocol
    if rule.source_port is None and rule.destination_port is None and not rule.tcp_flags:
        parts.append(f"meta l4proto {proto}")
    if rule.source:
        parts.append(f"ip saddr {check_token(rule.source, '-s')}")
    if rule.destination:
        parts.append(f"ip daddr {check_token(rule.destination, '-d')}")
    if rule.in_interface:
        parts.append(f"iifname {_interface(rule.in_interface)}")
    if rule.out_interface:
        parts.append(f"oifname {_interface(rule.out_interface)}")
    if rule.source_port is not None:
        parts.append(f"{proto} sport {rule.source_port}")
    if rule.destination_port is not None:
        parts.append(f"{proto} dport {rule.destination_port}")
    if rule.tcp_flags:
        parts.append(_tcp_flags(*rule.tcp_flags))
    if rule.connmark:
        value, mask = rule.connmark
        parts.append(f"ct mark & 0x{mask:x} == 0x{value:x}")
    if rule.payload_required:
        # PAYLOAD_PRESENT: the first payload word can be read (any IP header length).
        parts.append("@ih,0,32 == 0x0-0xffffffff")
    if rule.u32:
        parts.append("ip hdrlength 5")
        parts += [_u32(test) for group in rule.u32 for test in group]
    if rule.statistic:
        parts.append(_statistic(rule.statistic))
    if rule.datestop:
        parts.append(f"meta time < {_epoch(check_token(rule.datestop, '--datestop')) + 1}")
    parts.append("counter")
    parts.append(_statement(rule, chains, name))
    if rule.comment:
        parts.append(f"comment {_string(_comment(check_token(rule.comment, '--comment')))}")
    return " ".join(parts)


def _refuse(rule: KernelRule, name: str) -> None:
    """The parts of a rule nft cannot express: say which, never drop them."""
    hopped = [test for group in rule.u32 for test in group if test.hops]
    if hopped:
        steps = " and ".join(dict.fromkeys(hop.field or f"the length at offset {hop.offset}"
                                           for test in hopped for hop in test.hops))
        fields = " and ".join(f"`{f}`" for f in dict.fromkeys(test.field or f"offset {test.offset}" for test in hopped))
        raise CompileError(f"rule {name!r}: nft cannot follow {steps} to reach {fields} (nft payload matches "
                           "read at fixed offsets; u32's `@` reads the offset from the packet)", _HINT, rule=name,
                           part=hopped[0].field)
    if rule.strings:
        fields = " and ".join(f"`{w.field or repr(w.pattern)}`" for w in rule.strings)
        raise CompileError(f"rule {name!r}: nft has no string match for {fields} (a byte pattern searched "
                           "within a window)", _HINT, rule=name, part=rule.strings[0].field)


def _u32(test: U32Test) -> str:
    """xt_u32's read of 4 payload bytes at test.offset, `& mask >> shift` in test.ranges."""
    mask = test.mask & (_MASK32 << test.shift) & _MASK32  # bits the shift discards do not count
    top = mask >> test.shift
    ranges = []
    for low, high in sorted(test.ranges):
        high = min(high, top)
        if low > high:
            continue  # no value of the field lies in it
        if ranges and low <= ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], max(ranges[-1][1], high))
        else:
            ranges.append((low, high))
    if not ranges:
        raise CompileError(f"a test on {test.field or f'offset {test.offset}'} can never match, and nft has no form "
                           "for a test that never matches", _HINT, part=test.field)
    values = [_range(low << test.shift, high << test.shift) for low, high in ranges]
    load = f"@ih,{test.offset * 8},32"
    if mask != _MASK32:
        load += f" & 0x{mask:x}"
    return f"{load} == {values[0]}" if len(values) == 1 else f"{load} == {{ {', '.join(values)} }}"


def _range(low: int, high: int) -> str:
    return f"0x{low:x}" if low == high else f"0x{low:x}-0x{high:x}"


def _tcp_flags(mask: str, compare: str) -> str:
    def flags(names: str) -> list[str]:
        if names == "ALL":
            return list(_FLAGS.values())
        if names == "NONE":
            return []
        return [_FLAGS[name] for name in names.split(",")]

    masked, wanted = flags(mask), flags(compare)
    masked_text = " | ".join(masked)
    return (f"tcp flags & {f'({masked_text})' if len(masked) > 1 else masked_text} == "
            f"{' | '.join(wanted) if wanted else '0x0'}")


def _statistic(statistic: tuple[str, ...]) -> str:
    mode, *values = statistic
    if mode == "random":
        # iptables stores lround(p * 2^31) and the kernel tests (random & 0x7fffffff) < it.
        threshold = math.floor(float(values[0]) * 0x80000000 + 0.5)
        return f"meta random & 0x7fffffff < {threshold}"
    if mode == "nth":
        every, packet = int(values[0]), int(values[1])
        # Both count the packets that reach them from 0: xt_statistic (iptables stores
        # every-1-packet as its start) fires on packets packet, packet+every, ...; numgen inc
        # gives packet k the value k % every (it starts at every-1 and returns the incremented).
        return f"numgen inc mod {every} == {packet}"
    raise ValueError(f"no nft form for statistic mode {mode!r}")


def _statement(rule: KernelRule, chains: set[str], name: str) -> str:
    target, args = rule.target, list(rule.target_args)
    if target in _VERDICTS:
        return _VERDICTS[target]
    if target == "REJECT":
        kind = args[args.index("--reject-with") + 1] if "--reject-with" in args else "icmp-port-unreachable"
        if kind not in _REJECT_WITH:
            raise ValueError(f"rule {name!r}: no nft form for REJECT --reject-with {kind}")
        return f"reject with {_REJECT_WITH[kind]}"
    if target in ("CONNMARK", "MARK"):
        key = "ct mark" if target == "CONNMARK" else "meta mark"
        return f"{key} set {_mark_value(key, args, name)}"
    if target == "CLASSIFY" and "--set-class" in args:
        major, _, minor = args[args.index("--set-class") + 1].partition(":")
        return f"meta priority set {int(major, 16):x}:{int(minor, 16):x}"  # skb->priority, as CLASSIFY
    if target in chains:
        return f"jump {_identifier(target)}"
    raise ValueError(f"rule {name!r}: no nft form for target {target}")


def _mark_value(key: str, args: list[str], name: str) -> str:
    """--set-xmark value/mask: (old & ~mask) ^ value; --set-mark value/mask: (old & ~mask) | value."""
    for option, op in (("--set-xmark", "xor"), ("--set-mark", "or")):
        if option in args:
            value_text, _, mask_text = args[args.index(option) + 1].partition("/")
            value, mask = int(value_text, 0), int(mask_text, 0) if mask_text else _MASK32
            if mask == _MASK32:
                return f"0x{value:x}"
            if op == "xor" and value & ~mask:
                return f"{key} and 0x{~mask & _MASK32:x} xor 0x{value:x}"
            if value == mask:
                return f"{key} or 0x{value:x}"  # the bits set, whatever they were
            return f"{key} and 0x{~mask & _MASK32:x} {op} 0x{value:x}"
    raise ValueError(f"rule {name!r}: no nft form for mark arguments {args}")


def _comment(text: str) -> str:
    """nft keeps at most 128 bytes of comment (iptables 256); the rest is cut, marked with `...`."""
    if len(text.encode()) <= _COMMENT_MAX:
        return text
    return text.encode()[:_COMMENT_MAX - 3].decode(errors="ignore") + "..."


def _epoch(utc: str) -> int:
    return int(datetime.strptime(utc, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp())


def _rule_name(rule: KernelRule, chain: str, index: int) -> str:
    """The kshock rule a kernel rule came from (its comment is kshock:<set>/<rule>)."""
    _, _, rest = rule.comment.partition(":")
    _, slash, name = rest.partition("/")
    return name if slash and name else f"{chain} #{index + 1}"


def _identifier(name: str) -> str:
    if not _NAME.match(name):
        raise UnsafeRuleText(f"{name!r} is not an nft table or chain name (letters, digits, _ . -)")
    return name


def _interface(name: str) -> str:
    # iptables' trailing `+` (any interface with this prefix) is nft's `*`.
    check_token(name, "-i")
    return _string(name[:-1] + "*" if name.endswith("+") else name)


def _string(text: str) -> str:
    # only names reach an nft string (comments, interfaces): nothing that could need escaping
    if not _SAFE_STRING.match(text):
        raise UnsafeRuleText(f"{text!r} cannot be an nft string")
    return f'"{text}"'


__all__ = ["nft_table", "render_nft"]
