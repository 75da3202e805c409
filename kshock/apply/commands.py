"""EDGE: `kshock apply`, `kshock revert`, `kshock status` — the command handlers."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

from kshock.apply.faults import human_duration as _human, utc_text as _utc
from kshock import netns
from kshock.apply import faults, netfilter
from kshock.apply.scope import Scope, resolve_scope
from kshock.errors import ExitStatus, UserError
from kshock.rules.spec import RuleSpec


def specs_from_args(args: argparse.Namespace) -> list[RuleSpec]:
    """A rule file, or one rule from --match/--action/--port/..., read by the same validator."""
    import yaml

    from kshock.rules.rulefile import parse_rule_file

    if args.rulefile:
        if args.match or args.action:
            raise UserError("give a rule file or --match/--action, not both", "one source of rules per command")
        try:
            text = Path(args.rulefile).read_text()
        except OSError as error:
            raise UserError(f"cannot read {args.rulefile}: {error.strerror}", "check the path") from None
        specs = parse_rule_file(text, args.rulefile)
    else:
        if not args.action:
            raise UserError("nothing to apply", "give a rule file, or --action (with --match for Kafka frames)")
        target: dict = {"ports": args.port or [9092], "direction": args.direction}
        if args.host:
            target["host"] = args.host
        if args.interface:
            target["interface"] = args.interface
        rule = {"name": args.name or "adhoc", "match": args.match or "any", "action": args.action, "target": target,
                "duration": args.duration or "5m"}
        specs = parse_rule_file(yaml.safe_dump({"rules": [rule]}, sort_keys=False), "<command line>")
    if args.duration and args.rulefile:
        from kshock.rules.rulefile import parse_duration

        seconds = parse_duration(args.duration)
        specs = [_replace(spec, duration_s=seconds) for spec in specs]
    return specs


def _faults_of(specs: list[RuleSpec], set_name: str | None) -> list[tuple[str, list[RuleSpec]]]:
    """(fault name, its rules): one fault per rule, or with --set-name the whole file as one
    rule set (one chain, a chain per API behind it: cheaper for traffic it does not touch)."""
    if not set_name:
        return [(spec.name, [spec]) for spec in specs]
    durations = sorted({spec.duration_s for spec in specs})
    if len(durations) > 1:
        raise UserError(f"the rules of one set end together, and these have durations "
                        f"{', '.join(_human(d) for d in durations)}",
                        "give one --duration for all of them, or apply without --set-name (a fault per rule)")
    return [(set_name, list(specs))]


def _replace(spec: RuleSpec, **changes) -> RuleSpec:
    import dataclasses

    return dataclasses.replace(spec, **changes)


def apply(args: argparse.Namespace) -> int:
    from kshock.rules.compile import compile_rules
    from kshock.rules.guard import cuts_ssh
    from kshock.rules.render import render_restore

    specs = specs_from_args(args)
    scope = resolve_scope(args.netns, args.pid)
    now = time.time()
    plans = []
    for name, members in _faults_of(specs, getattr(args, "set_name", None)):
        duration = members[0].duration_s
        expires = faults.kernel_end(now + duration)  # what kshock records as the end
        ruleset = compile_rules(members, name, expires_at=_utc(now + duration))
        if scope.name is None and scope.pid is None and not args.force and cuts_ssh(ruleset, os.environ.get("SSH_CONNECTION")):
            raise UserError(f"rule {name!r} would cut this SSH session",
                            "narrow its target (port, host), apply it in a namespace, or add --force")
        plans.append((members, ruleset, expires))
    if args.dry_run:
        for members, ruleset, _ in plans:
            print(f"# {ruleset.name}: {', '.join(sorted({str(m.action) for m in members}))} for "
                  f"{members[0].duration_s:g} s in {scope.describe()} — would load:")
            print(render_restore(ruleset), end="")
            if ruleset.traffic_control:
                from kshock.apply import tc

                for control in ruleset.traffic_control:
                    interface = control.interface or tc.resolve_interface(scope, members[0].target.host)
                    print(f"# and in {scope.describe()}, as pyroute2 netlink requests equivalent to:")
                    print("\n".join(tc.render(tc.plan_from(control, interface))))
            for warning in ruleset.warnings:
                print(f"# warning: {warning}")
        return ExitStatus.OK
    netns.require_root("kshock apply")
    faults.collect_expired()
    # every fault of the command in one iptables-restore run: all of them are in, or none
    applied = faults.install_many([faults.Planned(ruleset, expires, faults.summary_of(members, ruleset),
                                                  host=members[0].target.host) for members, ruleset, expires in plans],
                                  scope)
    for (members, ruleset, expires), record in zip(plans, applied):
        for warning in ruleset.warnings:
            print(f"kshock: warning: {warning}", file=sys.stderr)
        summary = record.summary
        print(f"fault {ruleset.name} active in {scope.describe()} until {_utc(expires - 1)} UTC "
              f"({_human(members[0].duration_s)}): {summary['action']} {summary['match']} on {summary['target']}; "
              f"{summary['rules']} rules in {', '.join(ruleset.chain_names)}"
              + (f"; {', '.join(summary['tc'])}" if record.tc else ""))
    if not args.hold:
        print(f"  revert: kshock revert {' '.join(r.name for r in applied)}"
              + (f" --netns {scope.name}" if scope.name else f" --pid {scope.pid}" if scope.pid else ""))
        return ExitStatus.OK
    return _hold(applied)


def _hold(applied: list[faults.FaultRecord]) -> int:
    """Stay in the foreground until the faults expire or Ctrl-C, then remove them."""
    stop = {"now": False}

    def request_stop(signum, frame) -> None:
        stop["now"] = True

    previous = signal.signal(signal.SIGTERM, request_stop)
    status = ExitStatus.OK
    try:
        while not stop["now"]:
            left = max(record.seconds_left() for record in applied)
            if left <= 0:
                break
            print(f"\r  holding: {_human(left)} left — Ctrl-C reverts now ", end="", file=sys.stderr, flush=True)
            time.sleep(min(1.0, left))
    except KeyboardInterrupt:
        status = ExitStatus.INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous)
        print(file=sys.stderr)
        faults.remove_many(applied)
        print("reverted: " + ", ".join(record.name for record in applied))
    return status


def revert(args: argparse.Namespace) -> int:
    netns.require_root("kshock revert")
    if bool(args.name) == bool(args.all):
        raise UserError("say what to revert", "give a fault NAME, or --all")
    faults.collect_expired()
    scope = resolve_scope(args.netns, args.pid) if (args.netns or args.pid) else None
    removed: list[str] = []
    if args.all:
        active = faults.records(scope)
        faults.remove_many(active)
        removed += [record.name for record in active]
        scopes = [scope] if scope else [Scope()] + [Scope(name=n) for n in netns.names()]
        for each in scopes:
            removed += [f"{chain} (left over)" for chain in faults.remove_leftovers(each)]
    else:
        matching = [r for r in faults.records(scope) if r.name == args.name]
        if not matching:
            active = ", ".join(sorted({r.name for r in faults.records()})) or "none"
            raise UserError(f"no active fault named {args.name!r}" + (f" in {scope.describe()}" if scope else ""),
                            f"active faults: {active}")
        faults.remove_many(matching)
        removed += [record.name for record in matching]
    print("reverted: " + ", ".join(removed) if removed else "nothing to revert")
    return ExitStatus.OK


def status(args: argparse.Namespace) -> int:
    netns.require_root("kshock status")
    expired = faults.collect_expired()
    backend = netfilter.detect_backend()
    report = []
    shaping: dict[str, list[dict]] = {}
    for record in faults.records():
        counters = {}
        if record.scope.netns_path() is None or os.path.exists(record.scope.netns_path()):
            for table, chains in record.tables.items():
                counters.update(netfilter.counters(backend, record.scope, table, set(chains)))
            if record.tc:
                from kshock.apply import tc

                shaping[record.name] = tc.stats(record.scope, record.tc)
        report.append((record, counters))
    if args.json:
        print(json.dumps([{**record.to_json(), "seconds_left": round(record.seconds_left(), 1),
                           "counters": {chain: [{"packets": p, "bytes": b, "rule": text} for p, b, text in rules]
                                        for chain, rules in counters.items()},
                           **({"tc_counters": shaping.get(record.name, [])} if record.tc else {})}
                          for record, counters in report], indent=2))
        return ExitStatus.OK
    for record in expired:
        print(f"expired and removed: {record.name}")
    if not report:
        print("no active faults")
        return ExitStatus.OK
    for record, counters in report:
        summary = record.summary
        print(f"{record.name}  in {record.scope.describe()}  {summary.get('action')} {summary.get('match')} "
              f"on {summary.get('target')}  {_human(record.seconds_left())} left")
        for chain, rules in counters.items():
            for packets, size, text in rules:
                print(f"  {packets:>9} pkts {size:>11} bytes  {chain}: {_short_rule(text)}")
        for each in shaping.get(record.name, []):
            print(f"  {each['packets']:>9} pkts {each['bytes']:>11} bytes  tc {each['qdisc']} in class {each['class']} "
                  f"on {each['interface']}: {each['drops']} dropped, {each['overlimits']} over the limit")
    return ExitStatus.OK


def _short_rule(text: str) -> str:
    import re

    text = re.sub(r' -m comment --comment "?kshock:[^" ]*"?', "", text)
    text = re.sub(r" -m time --datestop \S+", "", text)
    return text if len(text) <= 110 else text[:107] + "..."


