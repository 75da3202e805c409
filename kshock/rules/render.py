"""PURE: a RuleSet as text — iptables-restore (applied with --noflush), iptables commands, JSON.

Every word written is checked against audit's allowlist for its option (user strings reach the
kernel only as hex), and every restore text passes audit_restore before it is returned.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict

from kshock.rules.audit import BUILTINS, TABLES, UnsafeRuleText, audit_restore, check_chain, check_token
from kshock.rules.kernel import IHL_IS_5, IPV4_TO_PAYLOAD, U32_MAX_TESTS, KernelRule, RuleSet

# "There is at least one payload byte... four, in fact": xt_u32 fails a read past the packet's
# end, so reading the first payload word matches exactly the segments with >= 4 payload bytes.
PAYLOAD_PRESENT = f"{IPV4_TO_PAYLOAD}@0=0x0:0xFFFFFFFF"


def rule_args(rule: KernelRule) -> list[str]:
    """The iptables arguments of one rule, after `-A CHAIN`."""
    args: list[str] = ["-p", rule.protocol]
    if rule.source:
        args += ["-s", rule.source]
    if rule.destination:
        args += ["-d", rule.destination]
    if rule.in_interface:
        args += ["-i", rule.in_interface]
    if rule.out_interface:
        args += ["-o", rule.out_interface]
    if rule.source_port is not None or rule.destination_port is not None or rule.tcp_flags:
        args += ["-m", rule.protocol]
        if rule.source_port is not None:
            args += ["--sport", str(rule.source_port)]
        if rule.destination_port is not None:
            args += ["--dport", str(rule.destination_port)]
        if rule.tcp_flags:
            args += ["--tcp-flags", *rule.tcp_flags]
    if rule.connmark:
        value, mask = rule.connmark
        args += ["-m", "connmark", "--mark", f"0x{value:x}/0x{mask:x}"]
    if rule.payload_required:
        args += ["-m", "u32", "--u32", PAYLOAD_PRESENT]
    for group in rule.u32:
        args += ["-m", "u32", "--u32", u32_text(group)]
    for window in rule.strings:
        args += ["-m", "string", "--algo", "kmp", "--from", str(window.from_offset), "--to", str(window.to_offset),
                 "--hex-string", hex_string(window.pattern)]
    if rule.statistic:
        mode, *values = rule.statistic
        args += ["-m", "statistic", "--mode", mode]
        args += ["--probability", values[0]] if mode == "random" else ["--every", values[0], "--packet", values[1]]
    if rule.datestop:
        args += ["-m", "time", "--datestop", rule.datestop]
    if rule.comment:
        args += ["-m", "comment", "--comment", rule.comment]
    args += ["-j", rule.target, *rule.target_args]
    return args


def u32_text(group) -> str:
    """One `--u32` argument: the IHL guard, then the group's tests, the most selective first.

    xt_u32 stops at the first test that fails, and a chain tries every rule on every Kafka
    packet that enters it: with the exact tests (a client id's bytes, an API key, a topic name)
    before the ranges every real frame passes (the frame-start guard), a packet that is not the
    rule's fails sooner (measured: 20.3 -> 14.8 us of CPU per Produce packet through 20 rules,
    benchmarks/rule_cost.py). The tests are one conjunction: the order changes no match."""
    if len(group) + 1 > U32_MAX_TESTS:
        raise ValueError(f"a u32 match holds at most {U32_MAX_TESTS} tests, got {len(group) + 1}")
    return " && ".join([IHL_IS_5, *(test.expression() for test in sorted(group, key=_selectivity))])


def _selectivity(test) -> tuple[int, int]:
    """Sort key: exact values before ranges, fixed offsets before hops (fewer reads)."""
    exact = len(test.ranges) == 1 and test.ranges[0][0] == test.ranges[0][1]
    return (0 if exact else 1, len(test.hops))


def hex_string(pattern: bytes) -> str:
    """iptables' --hex-string form, all hex (`|6b73|`): no byte of a user's string is ever
    written as text, whatever it holds (quotes, line breaks, NUL)."""
    if not pattern:
        raise UnsafeRuleText("an empty --hex-string pattern")
    return f"|{bytes(pattern).hex()}|"


def render_restore(ruleset: RuleSet) -> str:
    """Text for `iptables-restore --noflush`: creates (or empties) kshock's chains, fills them,
    and adds the jumps — one transaction."""
    return render_restore_many([ruleset])


def render_restore_many(rulesets: Sequence[RuleSet]) -> str:
    """render_restore for several rule sets at once: one block (one transaction) per table,
    every chain declared before any rule jumps to it."""
    lines = []
    for table in dict.fromkeys(ruleset.table for ruleset in rulesets):
        group = [ruleset for ruleset in rulesets if ruleset.table == table]
        lines.append(f"*{_table(table)}")
        lines += [f":{check_chain(name)} - [0:0]" for ruleset in group for name in ruleset.chain_names]
        for ruleset in group:
            for chain in ruleset.chains:
                lines += [_line("-A", chain.name, rule) for rule in chain.rules]
        lines += [_line("-A", jump.builtin, jump.rule) for ruleset in group for jump in ruleset.jumps]
        lines.append("COMMIT")
    text = "\n".join(lines) + "\n"
    if rulesets:
        audit_restore(text, require_expiry=all(ruleset.expires_at for ruleset in rulesets))
    return text


def render_revert(ruleset: RuleSet) -> str:
    """Text for `iptables-restore --noflush` that removes exactly what render_restore added."""
    lines = [f"*{_table(ruleset.table)}"]
    lines += [_line("-D", jump.builtin, jump.rule) for jump in ruleset.jumps]
    lines += [f"-F {check_chain(name)}" for name in ruleset.chain_names]
    lines += [f"-X {check_chain(name)}" for name in ruleset.chain_names]
    lines.append("COMMIT")
    text = "\n".join(lines) + "\n"
    audit_restore(text, revert=True)
    return text


def render_commands(ruleset: RuleSet, binary: str = "iptables") -> str:
    """The same rule set as individual iptables commands (for reading, not for applying:
    only iptables-restore applies a rule set atomically)."""
    lines = [f"{binary} -t {_table(ruleset.table)} -N {check_chain(name)}" for name in ruleset.chain_names]
    for chain in ruleset.chains:
        lines += [f"{binary} -t {ruleset.table} {_line('-A', chain.name, rule)}" for rule in chain.rules]
    lines += [f"{binary} -t {ruleset.table} {_line('-A', jump.builtin, jump.rule)}" for jump in ruleset.jumps]
    return "\n".join(lines) + "\n"


def render_json(ruleset: RuleSet) -> str:
    data = asdict(ruleset)
    for chain in data["chains"]:
        for rule in chain["rules"]:
            for window in rule["strings"]:
                window["pattern"] = window["pattern"].hex()
    data["restore"] = render_restore(ruleset)
    return json.dumps(data, indent=2)


def checked_args(rule: KernelRule) -> list[str]:
    """rule_args, each word checked against the allowlist for its option (an option itself
    against the plain one); UnsafeRuleText for the first that fails. render_nft checks with it too."""
    words, option = [], ""
    for arg in rule_args(rule):
        words.append(check_token(arg, "" if arg.startswith("-") else option))
        option = arg if arg.startswith("-") else ""
    return words


def _line(op: str, chain: str, rule: KernelRule) -> str:
    if chain not in BUILTINS:
        check_chain(chain)
    return " ".join([op, chain, *(_quote(arg) for arg in checked_args(rule))])


def _quote(arg: str) -> str:
    # iptables-restore splits on whitespace and honours double quotes; the allowlist already
    # keeps quotes, backslashes and line breaks out, so quoting never has to escape anything.
    return f'"{arg}"' if any(c in arg for c in " |&<>") else arg


def _table(table: str) -> str:
    if table not in TABLES:
        raise UnsafeRuleText(f"table {table!r} is not one kshock uses ({', '.join(TABLES)})")
    return table


__all__ = ["checked_args", "hex_string", "render_commands", "render_json", "render_restore", "render_revert",
           "rule_args"]
