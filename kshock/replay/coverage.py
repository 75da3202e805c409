"""Glue for `kshock replay`: a capture and a rule file in, per-rule coverage out.

One pass over the capture: every packet is fed to the wire core (which yields the Kafka frames
each rule's condition is evaluated on: the intent) and, when it is IPv4/TCP on a Kafka port,
walked through the compiled rule set by the Emulator (what the kernel would match: u32 and
string semantics, one packet at a time, connmark and nth state across packets). The built-in
chain a packet enters follows the rule's direction: ingress (the broker's host) sends requests
to INPUT and responses to OUTPUT, egress (a client's host) the other way round, forward both to
FORWARD. `coverage` turns the two sides into numbers; `--kernel` (replay_kernel) asks the
kernel itself for the same counters.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TextIO

from kshock.capture.reader import CaptureReader
from kshock.errors import ExitStatus, OperationFailed, UserError
from kshock.rules.coverage import (
    PERSPECTIVE_OF,
    PERSPECTIVES,
    RecordingEmulator,
    RuleCoverage,
    RuleTally,
    action_rules,
    Intent,
    kafka_tcp,
    tally_coverage,
    trigger_notes,
)
from kshock.rules.kernel import RuleSet
from kshock.rules.rulefile import parse_rule_file
from kshock.rules.spec import RuleSpec
from kshock.wire.model import KafkaFrame
from kshock.wire.sniffer import Sniffer

LIST_LIMIT = 20  # packet numbers shown per list in the text output
Compile = Callable[[Sequence[RuleSpec], str], RuleSet]


def load_rule_file(path: str | os.PathLike) -> list[RuleSpec]:
    """Read and validate a rule file; UserError (one line, or a caret message) on any problem."""
    from kshock.host.files import read_text

    name = os.fspath(path)
    return parse_rule_file(read_text(name, "rule file"), name)


def learn_topic_ids(capture: str | os.PathLike, ports: Iterable[int]) -> dict[str, bytes]:
    """Topic name -> 16-byte id, from the Metadata responses in the capture (one decoding pass)."""
    from kshock.replay.listing import open_run

    run = open_run(os.fspath(capture), ports)
    for _ in run.events():
        pass
    return {name: topic_id for topic_id, name in run.sniffer.decoder.topic_names.items()}


def compile_for_replay(specs: Sequence[RuleSpec], name: str, topic_ids: object = None) -> RuleSet:
    """The compiler's rule set, expiring an hour from now (the kernel check needs a live
    --datestop; the emulator ignores it)."""
    try:
        from kshock.rules.compile import compile_rules
    except ImportError:
        raise OperationFailed("the rule compiler is not available in this build",
                              "update kshock (kshock/rules/compile.py is missing)") from None
    expires_at = (datetime.now(timezone.utc) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
    return compile_rules(specs, name, expires_at=expires_at, topic_ids=topic_ids)


@dataclass(slots=True)
class _Perspective:
    """The rules of one direction, emulated on the host that direction means."""

    name: str  # broker | client | router
    toward: str  # the built-in chain of packets toward the Kafka port
    back: str  # ... and of packets from it
    emulator: RecordingEmulator
    owners: dict[tuple[str, int], str]


@dataclass(slots=True)
class ReplayReport:
    capture: str
    rules_file: str
    ports: tuple[int, ...]
    ruleset: RuleSet
    rules: list[RuleCoverage]
    packets: int = 0
    emulated_packets: int = 0  # IPv4/TCP packets on a Kafka port, walked through the rules
    skipped_packets: int = 0  # on a Kafka port but not IPv4/TCP (IPv6, fragments): not emulated
    frames: int = 0
    requests: int = 0
    perspectives: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    problem: str | None = None  # the capture is damaged from here on
    seconds: float = 0.0
    kernel: dict | None = None  # with --kernel: what the kernel said (see replay_kernel)
    emulated_counters: dict[tuple[str, str, int], int] = field(default_factory=dict)  # (perspective, chain, index)

    def as_json(self) -> list[dict]:
        """One object per rule: the keys of `kshock replay --json`."""
        return [coverage.as_json() for coverage in self.rules]

    def json_lines(self) -> str:
        return "".join(json.dumps(entry) + "\n" for entry in self.as_json())

    def summary(self) -> str:
        ports = ",".join(map(str, self.ports))
        views = ", ".join(f"{p} ({'/'.join(dict.fromkeys(PERSPECTIVES[_direction_of(p)]))})"
                          for p in self.perspectives)
        lines = [f"{self.packets} packets, {self.emulated_packets} IPv4/TCP on Kafka port(s) {ports} walked through "
                 f"{_count(sum(len(c.rules) for c in self.ruleset.chains), 'kernel rule')}; "
                 f"{self.frames} frames ({self.requests} requests); rules seen from the {views} "
                 f"in {self.seconds:.2f}s"]
        if self.skipped_packets:
            lines.append(f"{self.skipped_packets} packets on the Kafka port(s) were not IPv4/TCP (IPv6 or fragments): "
                         "kernel rules are IPv4 only, so they were not walked")
        for warning in self.warnings:
            lines.append(f"compiler: {warning}")
        if self.problem:
            lines.append(f"the capture is damaged: {self.problem} — everything before the damage was replayed")
        if self.kernel is not None:
            lines.append(self.kernel.get("summary", ""))
        return "\n".join(line for line in lines if line)

    def render_text(self) -> str:
        blocks = [self.summary()]
        for coverage in self.rules:
            blocks.append(_rule_text(coverage))
        return "\n\n".join(blocks) + "\n"


def _direction_of(perspective: str) -> str:
    return {"broker": "ingress", "client": "egress", "router": "forward"}[perspective]


def _count(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")


def _rule_text(c: RuleCoverage) -> str:
    share = f"{100 * c.hit_frames / c.intent_frames:.1f}% of intent" if c.intent_frames else "no intent frames"
    kernel = ""
    if c.kernel_counters is not None:
        total = sum(c.kernel_counters)
        emulated = sum(n for _, _, n in c.kernel_rules)
        kernel = f"   kernel counters: {total} ({'same as' if c.kernel_agrees else 'DIFFERENT from'} " \
                 f"the emulation's {emulated})"
    rows = [
        f"rule {c.rule}: {c.action}, {c.direction}, {c.trigger}",
        f"  match            {c.match}",
        f"  intent frames    {c.intent_frames:>7}   frames the condition selects",
        f"  kernel packets   {c.kernel_packets:>7}   packets the compiled rules act on{kernel}",
        f"  hit frames       {c.hit_frames:>7}   {share}",
        f"  missed frames    {c.missed_frames:>7}   intent frames no matched packet carries",
        f"  false packets    {c.false_packets:>7}   matched packets carrying no byte of an intent frame",
        f"  missed frames start at packets: {_numbers(c.missed_frame_packets)}",
        f"  false packets: {_numbers(c.false_packet_numbers)}",
    ]
    if c.kernel_counters is not None:
        for (chain, index, emulated), counter in zip(c.kernel_rules, c.kernel_counters):
            mark = "" if emulated == counter else "   <- differs"
            rows.append(f"  {chain} rule {index + 1}: emulated {emulated}, kernel {counter}{mark}")
    rows += [f"  note: {note}" for note in c.notes]
    return "\n".join(rows)


def _numbers(numbers: Sequence[int]) -> str:
    if not numbers:
        return "-"
    shown = ", ".join(map(str, numbers[:LIST_LIMIT]))
    more = len(numbers) - LIST_LIMIT
    return shown + (f" … and {more} more" if more > 0 else "")


def replay(capture: str | os.PathLike, specs: Sequence[RuleSpec], ports: Iterable[int] | None = None, *,
           rules_file: str = "", ruleset: RuleSet | None = None, name: str = "replay",
           topic_ids: Mapping[str, bytes] | str | None = None, max_flow_mib: int = 64,
           compile: Compile | None = None) -> ReplayReport:
    """Replay a capture against rules: the intent on every frame, the emulated kernel on every
    packet. `ports`: the Kafka ports (default: the rules' target ports). `topic_ids`: name ->
    16-byte id for Fetch v13+/Produce v13 topic tests, or "auto" to learn them from the
    capture's Metadata responses (an extra decoding pass). `ruleset`: use this instead of
    compiling `specs` (tests, or a rule set compiled elsewhere)."""
    if not specs:
        raise UserError("no rules to replay", "give a rule file with at least one rule")
    chosen = tuple(sorted(set(ports) if ports else {p for spec in specs for p in spec.target.ports}))
    if topic_ids == "auto":
        topic_ids = learn_topic_ids(capture, chosen)
    if ruleset is None:
        ruleset = compile(specs, name) if compile else compile_for_replay(specs, name, topic_ids)
    reader = CaptureReader(capture)  # fails now when the file is not a capture
    sniffer = Sniffer(ports=frozenset(chosen), max_flow_bytes=max_flow_mib << 20)
    tallies = {spec.name: RuleTally(spec) for spec in specs}
    intents = [(Intent(spec, sniffer.decoder.schemas), tallies[spec.name].intent) for spec in specs]
    views = _perspectives(ruleset, specs)
    report = ReplayReport(os.fspath(capture), rules_file, chosen, ruleset, [],
                          perspectives=tuple(v.name for v in views), warnings=tuple(ruleset.warnings))
    started = time.perf_counter()
    alias: dict[int, int] = {}
    first_copy: dict[tuple, int] = {}
    port_set = frozenset(chosen)
    number = frames = requests = emulated = 0
    feed = sniffer.feed
    toward_views = [(v.emulator, v.toward, v.owners) for v in views if v.toward in v.emulator.entered]
    back_views = [(v.emulator, v.back, v.owners) for v in views if v.back in v.emulator.entered]
    try:
        for ts, linktype, raw in reader:
            number += 1
            events = feed(ts, linktype, raw)
            if events:
                for event in events:
                    if isinstance(event, KafkaFrame):
                        frames += 1
                        if event.is_request:
                            requests += 1
                        for keep, intent in intents:
                            if keep(event):
                                intent.append(event.packets)
            found = kafka_tcp(linktype, raw, port_set)
            if found is None:
                continue
            packet, (sport, dport, seq, payload), toward = found
            emulated += 1
            active = toward_views if toward else back_views
            if not active:  # no kshock jump in the chain this packet enters
                continue
            if payload:
                key = (packet[12:20], sport, dport, seq, payload)
                original = first_copy.setdefault(key, number)
                if original != number:
                    alias[number] = original
            for emulator, builtin, owners in active:
                matched = emulator.matched
                matched.clear()
                emulator.verdict(builtin, packet)
                last = None
                for key in matched:
                    owner = owners.get(key)
                    if owner is not None and owner != last:
                        tallies[owner].matched.append(number)
                        last = owner
        for event in sniffer.finish():
            if isinstance(event, KafkaFrame):
                frames += 1
                for keep, intent in intents:
                    if keep(event):
                        intent.append(event.packets)
    finally:
        report.problem = reader.problem
        reader.close()
    skipped = max(0, sniffer.stats.kafka_segments - emulated)
    for view in views:
        for key, owner in view.owners.items():
            tallies[owner].counters[key] = tallies[owner].counters.get(key, 0) + view.emulator.hits.get(key, 0)
        for (chain, index), hits in view.emulator.hits.items():
            report.emulated_counters[(view.name, chain, index)] = hits
    report.rules = [tally_coverage(tallies[spec.name], alias, trigger_notes(spec)) for spec in specs]
    report.packets, report.emulated_packets, report.skipped_packets = number, emulated, skipped
    report.frames, report.requests = frames, requests
    report.seconds = time.perf_counter() - started
    return report


def _perspectives(ruleset: RuleSet, specs: Sequence[RuleSpec]) -> list[_Perspective]:
    """One emulated host per direction the rules use; each attributes only its own rules."""
    by_view: dict[str, list[str]] = {}
    for spec in specs:
        by_view.setdefault(PERSPECTIVE_OF[spec.target.direction], []).append(spec.name)
    owners_all = action_rules(ruleset, [spec.name for spec in specs])
    views = []
    for view, names in by_view.items():
        toward, back = PERSPECTIVES[_direction_of(view)]
        owners = {key: owner for key, owner in owners_all.items() if owner in names}
        views.append(_Perspective(view, toward, back, RecordingEmulator(ruleset), owners))
    return views


# -- the command -----------------------------------------------------------------------------

def replay_command(args, out: TextIO | None = None) -> int:
    """`kshock replay FILE --rules RULEFILE [--port N ...] [--json] [--kernel] [--topic-ids FILE]`."""
    out = out or sys.stdout
    specs = load_rule_file(args.rules)
    report = replay(args.file, specs, args.port, rules_file=args.rules, name=_ruleset_name(args.rules),
                    topic_ids=getattr(args, "topic_ids", None))
    if getattr(args, "kernel", False):
        from kshock.replay import kernel as replay_kernel

        replay_kernel.check(report, args.file)
    if args.json:
        out.write(report.json_lines())
        out.flush()
        print(report.summary().replace("\n", "; "), file=sys.stderr)
    else:
        from kshock.wire.text import terminal_safe_lines

        out.write(terminal_safe_lines(report.render_text()))
    if report.problem:
        raise UserError(f"{args.file} is damaged: {report.problem}",
                        "the numbers above cover the packets before the damage; re-capture or cut the file "
                        "(editcap -r) to replay all of it")
    if report.kernel is not None and not report.kernel.get("agrees", True):
        return ExitStatus.FAILED
    return ExitStatus.OK


def _ruleset_name(path: str) -> str:
    """A short rule-set name from the file name (chains are KSHOCK-<name>...; iptables allows 28)."""
    stem = os.path.splitext(os.path.basename(path))[0]
    cleaned = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in stem).strip("-") or "replay"
    return cleaned[:12]


__all__ = ["ReplayReport", "compile_for_replay", "load_rule_file", "replay", "replay_command"]
