"""EDGE: `kshock apply`, `kshock revert`, `kshock status` — the command handlers."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import sys
import time

from kshock.apply.faults import human_duration as _human, utc_text as _utc
from kshock.host import netns
from kshock.apply import faults, netfilter
from kshock.apply.scope import Scope, locate, resolve_scope, same_namespace
from kshock.errors import ExitStatus, UserError
from kshock.rules.spec import RuleSpec


def specs_from_args(args: argparse.Namespace) -> list[RuleSpec]:
    """A rule file, or one rule from --match/--action/--port/... (apply/cli.add_rule_source), read by
    the same validator."""
    import yaml

    from kshock.rules.rulefile import parse_rule_file

    if args.rulefile:
        if args.match or args.action:
            raise UserError("give a rule file or --match/--action, not both", "one source of rules per command")
        from kshock.host.files import read_text

        specs = parse_rule_file(read_text(args.rulefile, "rule file"), args.rulefile)
    else:
        if not args.action:
            raise UserError("nothing to apply", "give a rule file, or --action (with --match for Kafka frames)")
        target: dict = {"ports": args.port or [9092], "direction": args.direction}
        if args.host:
            target["host"] = args.host
        if args.interface:
            target["interface"] = args.interface
        rule = {"name": args.name or "adhoc", "match": args.match or "any", "action": args.action, "target": target}
        specs = parse_rule_file(yaml.safe_dump({"rules": [rule]}, sort_keys=False), "<command line>")
    if args.duration is not None:  # seconds (cli.duration_type read and bounded them); default: 5m, or the file's
        specs = [_replace(spec, duration_s=args.duration) for spec in specs]
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
    from kshock.rules.guard import cuts_ssh, warning as ssh_warning
    from kshock.rules.render import render_restore

    specs = specs_from_args(args)
    scope = resolve_scope(args.netns, args.pid)
    # The SSH guard goes wherever the target IS the host's namespace: no --netns/--pid, or a
    # --pid/--netns that leads there (compared by namespace inode, not by how it was named).
    guarded = not args.force and scope.is_host()
    session = os.environ.get("SSH_CONNECTION")
    warning = ssh_warning(session) if guarded else None
    if warning:
        print(f"kshock: warning: {warning}", file=sys.stderr)
    if not args.dry_run:
        netns.require_root("kshock apply")
        faults.collect_expired()  # an expired fault's marks are free again
    now = time.time()
    claims = faults.Claims(scope)  # marks no other fault of the namespace (nor of this command) holds
    plans = []
    for name, members in _faults_of(specs, getattr(args, "set_name", None)):
        duration = members[0].duration_s
        expires = faults.kernel_end(now + duration)  # what kshock records as the end
        ruleset = claims.compile(members, name, expires_at=_utc(now + duration))
        if guarded and cuts_ssh(ruleset, session):
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
    # With --hold, a hangup or SIGTERM from here on reverts (a closed terminal sends SIGHUP).
    with _stop_signals(args.hold) as stop:
        # every fault of the command in one iptables-restore run: all of them are in, or none
        applied = faults.install_many([faults.Planned(ruleset, expires, faults.summary_of(members, ruleset),
                                                      host=members[0].target.host)
                                       for members, ruleset, expires in plans], scope)
        for (members, ruleset, expires), record in zip(plans, applied):
            for warning in ruleset.warnings:
                print(f"kshock: warning: {warning}", file=sys.stderr)
            summary = record.summary
            print(f"fault {ruleset.name} active in {scope.describe()} until {_utc(expires - 1)} UTC "
                  f"({_human(members[0].duration_s)}): {summary['action']} {summary['match']} on {summary['target']}; "
                  f"{summary['rules']} rules in {', '.join(ruleset.chain_names)}"
                  + (f"; {', '.join(summary['tc'])}" if record.tc else ""))
        if not args.hold:
            print(f"  revert: kshock revert {' '.join(r.name for r in applied)}{_scope_flags(scope)}")
            return ExitStatus.OK
        return _hold(applied, stop)


def _scope_flags(scope: Scope) -> str:
    """The options that name `scope` to revert (the host's namespace is pid 1's)."""
    if scope.name:
        return f" --netns {scope.name}"
    if scope.pid:
        return f" --pid {scope.pid}"
    return ""


@contextlib.contextmanager
def _stop_signals(active: bool):
    """While active: SIGTERM and SIGHUP ask to stop (and revert) instead of killing kshock."""
    stop = {"now": False}
    if not active:
        yield stop
        return

    def request_stop(signum, frame) -> None:
        stop["now"] = True

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _hold(applied: list[faults.FaultRecord], stop: dict) -> int:
    """Stay in the foreground until the faults expire, Ctrl-C, SIGTERM or SIGHUP, then remove
    them. The terminal may be gone (SIGHUP): removing comes first, and printing never stops it."""
    status = ExitStatus.OK
    talking = True
    try:
        while not stop["now"]:
            left = max(record.seconds_left() for record in applied)
            if left <= 0:
                break
            if talking:
                talking = _say(f"\r  holding: {_human(left)} left — Ctrl-C reverts now ", sys.stderr, end="")
            time.sleep(min(1.0, left))
    except KeyboardInterrupt:
        status = ExitStatus.INTERRUPTED
    finally:
        faults.remove_many(applied)
        _say("", sys.stderr)
        _say("reverted: " + ", ".join(record.name for record in applied), sys.stdout)
    return status


def _say(text: str, stream, end: str = "\n") -> bool:
    """Print, unless the terminal is gone (EIO after a hangup, a closed pipe): then False."""
    try:
        print(text, end=end, file=stream, flush=True)
        return True
    except (OSError, ValueError):
        return False


def _warn_damaged() -> None:
    for path, problem in faults.damaged():
        print(f"kshock: warning: skipped damaged state file {path}: {problem} — kshock revert --all removes it "
              "(and still finds its chains by name)", file=sys.stderr)


def _selection(name: str | None, pid: int | None, host: bool = False):
    """What --netns NAME / --pid PID / --host select among the recorded faults: (the scope, when
    it still leads somewhere; a test on a record; words for messages). A recorded name or pid
    selects its faults even when it no longer leads anywhere (a process that exited)."""
    if (name is not None) + (pid is not None) + host > 1:
        raise UserError("give one of --netns, --pid and --host", "a fault is in one network namespace")
    if name is None and pid is None and not host:
        return None, (lambda record: True), ""
    if host:
        here = Scope().pinned()
        return here, (lambda record: same_namespace(record.scope, here)), "the host"
    if name is not None:
        netns.check_name(name)
        here = resolve_scope(name, None) if netns.exists(name) else None
        words = f"namespace {name}"

        def picks(record: faults.FaultRecord) -> bool:
            # the name leads to one namespace now: only its faults (an older namespace of that
            # name, still held by a process, is another place: --pid of its holder reaches it),
            # and the faults of a namespace of that name nothing holds any more
            if here is not None:
                return same_namespace(record.scope, here) or (record.scope.name == name
                                                              and locate(record.scope) is None)
            return record.scope.name == name
    else:
        if isinstance(pid, bool) or pid <= 0:
            raise UserError(f"{pid} is not a process id", "give the PID the fault was applied with")
        here = resolve_scope(None, pid) if os.path.exists(f"/proc/{pid}/ns/net") else None
        words = f"the namespace of pid {pid}"

        def picks(record: faults.FaultRecord) -> bool:
            return record.scope.pid == pid or (here is not None and same_namespace(record.scope, here))
    if here is None and not [record for record in faults.records() if picks(record)]:
        if name is not None:
            known = ", ".join(netns.names()) or "none"
            raise UserError(f"there is no network namespace {name!r} (and no fault recorded for one)",
                            f"choose one of: {known}")
        raise UserError(f"there is no process {pid} (and no fault recorded for one)",
                        "give the PID the fault was applied with, or see kshock status")
    return here, picks, words


def _places(found: list[faults.FaultRecord]) -> list[faults.FaultRecord]:
    """One record per namespace among `found`."""
    out: list[faults.FaultRecord] = []
    for record in found:
        if not any(same_namespace(record.scope, other.scope) for other in out):
            out.append(record)
    return out


def _flags_for(scope: Scope) -> str:
    """The options that select `scope`'s namespace now: its name or pid while they lead to it,
    else the pid (or other name) of what holds it; "" when nothing names it (--all-scopes then)."""
    where = locate(scope)
    if where is None or not where.via:
        return _scope_flags(scope) or " --host"
    held = re.fullmatch(r"/proc/(\d+)(?:/task/(\d+))?/ns/net", where.via)
    if held:
        return f" --pid {held.group(2) or held.group(1)}"
    named = re.fullmatch(re.escape(str(netns.NETNS_DIR)) + r"/([^/]+)", where.via)
    if named and netns.valid_name(named.group(1)):
        return f" --netns {named.group(1)}"
    return ""


def _revert_command(name: str, scope: Scope) -> str:
    flags = _flags_for(scope)
    return f"kshock revert {name}{flags}" if flags else f"kshock revert {name} --all-scopes"


def revert(args: argparse.Namespace) -> int:
    netns.require_root("kshock revert")
    names = list(dict.fromkeys(getattr(args, "names", None) or []))
    everything, all_scopes = bool(args.all), bool(getattr(args, "all_scopes", False))
    if bool(names) == everything:
        raise UserError("say what to revert", "give one or more fault NAMEs, or --all")
    host = bool(getattr(args, "host", False))
    scoped = args.netns is not None or args.pid is not None or host
    if all_scopes and scoped:
        raise UserError("--all-scopes reverts the faults in every namespace", "give it without --netns/--pid/--host")
    faults.collect_expired()
    _warn_damaged()
    here, picks, words = _selection(args.netns, args.pid, host)
    if everything:
        return _revert_all(here, picks, scoped)
    active = [record for record in faults.records() if picks(record)]
    chosen: list[faults.FaultRecord] = []
    for name in names:
        matching = [record for record in active if record.name == name]
        if not matching:
            elsewhere = _places([record for record in faults.records() if record.name == name])
            if scoped and elsewhere:
                hint = "it is active in " + ", ".join(f"{r.scope.describe()} ({_revert_command(name, r.scope)})"
                                                      for r in elsewhere)
            else:
                hint = "active faults: " + (", ".join(sorted({r.name for r in faults.records()})) or "none")
            raise UserError(f"no active fault named {name!r}" + (f" in {words}" if scoped else ""), hint)
        places = _places(matching)
        if len(places) > 1 and not scoped and not all_scopes:
            raise UserError(f"a fault named {name!r} is active in {len(places)} namespaces: "
                            + ", ".join((locate(record.scope) or record.scope).describe() for record in places),
                            "say which: " + " or ".join(dict.fromkeys(_revert_command(name, r.scope) for r in places))
                            + f"; or all of them: kshock revert {name} --all-scopes")
        chosen += matching
    outcomes = faults.revert_many(chosen)
    done = [o.record.name for o in outcomes if not o.gone]
    if done:
        print("reverted: " + ", ".join(done))
    for outcome in outcomes:
        if outcome.gone:
            print(f"{outcome.record.name}: {outcome.record.scope.describe()} is gone, and the fault's rules went "
                  "with it (nothing was left to remove)")
        elif outcome.where is not None and outcome.where.via:
            print(f"  {outcome.record.name}: removed from {outcome.where.describe()}")
    return ExitStatus.OK


def _revert_all(here: Scope | None, picks, scoped: bool) -> int:
    active = [record for record in faults.records() if picks(record)]
    outcomes = faults.revert_many(active)
    removed = [o.record.name for o in outcomes if not o.gone]
    removed += [f"{o.record.name} (its namespace is gone, its rules with it)" for o in outcomes if o.gone]
    broken = faults.damaged()
    if scoped:
        scopes = [here] if here is not None else []
        broken = [(path, problem) for path, problem in broken
                  if here is not None and (where := faults.damaged_scope(path)) is not None
                  and same_namespace(where, here)]
    else:
        scopes = [Scope().pinned()] + [Scope(name=n).pinned() for n in netns.names() if netns.valid_name(n)]
        scopes += [o.where for o in outcomes if o.where is not None]
        scopes += [where for path, _ in broken if (where := faults.damaged_scope(path)) is not None]
    distinct: list[Scope] = []
    for scope in scopes:
        if not any(same_namespace(scope, other) for other in distinct):
            distinct.append(scope)
    for scope in distinct:
        removed += [f"{chain} (left over)" for chain in faults.remove_leftovers(scope)]
    for path, _ in broken:
        if faults.discard_damaged(path):
            removed.append(f"damaged state file {path.name} (removed)")
        else:
            print(f"kshock: warning: could not remove damaged state entry {path} — remove it by hand",
                  file=sys.stderr)
    print("reverted: " + ", ".join(removed) if removed else "nothing to revert")
    return ExitStatus.OK


def status(args: argparse.Namespace) -> int:
    netns.require_root("kshock status")
    expired = faults.collect_expired()
    _warn_damaged()
    backend = netfilter.detect_backend()
    report = []
    gone = []
    for record in faults.records():
        where = locate(record.scope)
        if where is None:  # nothing holds its namespace any more: the kernel freed it with its rules
            gone.append(record)
            continue
        counters: dict = {}
        shaping: list[dict] = []
        problem = None
        try:
            for table, chains in record.tables.items():
                counters.update(netfilter.counters(backend, where, table, set(chains)))
            if record.tc:
                from kshock.apply import tc

                shaping = tc.stats(where, record.tc)
        except Exception as error:  # noqa: BLE001 — a namespace that went away meanwhile: say so, go on
            problem = f"counters unavailable: {str(error).splitlines()[0] if str(error) else type(error).__name__}"
        report.append((record, where, counters, shaping, problem))
    faults.revert_many(gone)  # forgets them: nothing is left in any kernel
    if args.json:
        print(json.dumps([{**record.to_json(), "where": where.describe(), "reached_via": where.via,
                           "seconds_left": round(record.seconds_left(), 1),
                           "counters": {chain: [{"packets": p, "bytes": b, "rule": text} for p, b, text in rules]
                                        for chain, rules in counters.items()},
                           **({"tc_counters": shaping} if record.tc else {}),
                           **({"problem": problem} if problem else {})}
                          for record, where, counters, shaping, problem in report], indent=2))
        return ExitStatus.OK
    for record in expired:
        print(f"expired and removed: {record.name}")
    for record in gone:
        print(f"gone with its namespace: {record.name} ({record.scope.describe()} no longer exists)")
    if not report:
        print("no active faults")
        return ExitStatus.OK
    from kshock.wire.text import terminal_safe  # (state-file text reaches the terminal)

    for record, where, counters, shaping, problem in report:
        summary = record.summary
        print(terminal_safe(f"{record.name}  in {where.describe()}  {summary.get('action')} {summary.get('match')} "
                            f"on {summary.get('target')}  {_human(record.seconds_left())} left"))
        if problem:
            print(f"  {problem}")
        for chain, rules in counters.items():
            for packets, size, text in rules:
                print(f"  {packets:>9} pkts {size:>11} bytes  {chain}: {_short_rule(text)}")
        for each in shaping:
            print(f"  {each['packets']:>9} pkts {each['bytes']:>11} bytes  tc {each['qdisc']} in class {each['class']} "
                  f"on {each['interface']}: {each['drops']} dropped, {each['overlimits']} over the limit")
    return ExitStatus.OK


def _short_rule(text: str) -> str:
    import re

    text = re.sub(r' -m comment --comment "?kshock:[^" ]*"?', "", text)
    text = re.sub(r" -m time --datestop \S+", "", text)
    return text if len(text) <= 110 else text[:107] + "..."
