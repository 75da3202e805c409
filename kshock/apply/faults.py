"""EDGE: active faults — apply, revert, expire, report. State lives under /run/kshock/faults/.

A fault is a RuleSet loaded into one network namespace (the host's, a named one, or a PID's).
The state file is written before the rules go in and removed after they come out, so `status`
and `revert --all` work after a crash. Every rule also carries `-m time --datestop`, so an
expired fault stops acting even if nothing ever runs kshock again; kshock removes expired
chains at the start of its next command.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from kshock.apply import netfilter
from kshock.apply.scope import Scope
from kshock.errors import UserError
from kshock.lab.state import run_dir
from kshock.rules.kernel import RuleSet
from kshock.rules.spec import RuleSpec


@dataclass(slots=True)
class FaultRecord:
    name: str
    scope: Scope
    tables: dict[str, list[str]]  # table -> kshock chains
    created_at: float
    expires_at: float  # epoch seconds
    summary: dict = field(default_factory=dict)  # match, action, target, rules: for status
    tc: list[dict] = field(default_factory=list)  # qdiscs kshock added, to remove on revert
    restore: str = ""  # the iptables-restore text that was applied

    def seconds_left(self, now: float | None = None) -> float:
        return self.expires_at - (time.time() if now is None else now)

    def to_json(self) -> dict:
        data = asdict(self)
        data["scope"] = {"name": self.scope.name, "pid": self.scope.pid}
        data["expires_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.expires_at))
        return data


def utc_text(epoch: float) -> str:
    """The form `-m time --datestop` takes (UTC)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch))


def kernel_end(expires: float) -> float:
    """When the kernel really stops a rule whose --datestop is utc_text(expires): xt_time has 1 s
    granularity and still matches during the datestop second, so at the next whole second."""
    return float(int(expires) + 1)


def human_duration(seconds: float) -> str:
    """4m05s, 1h02m, 9s: for countdowns and summaries."""
    seconds = max(0, int(round(seconds)))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


def summary_of(specs: RuleSpec | list[RuleSpec], ruleset: RuleSet) -> dict:
    """What `status` shows of a fault: its match, action, target and number of kernel rules
    (for a fault of several rules, each rule's name and match)."""
    specs = specs if isinstance(specs, list) else [specs]
    if len(specs) == 1:
        match = specs[0].match_text
    else:
        match = f"{len(specs)} rules: " + "; ".join(f"{spec.name}: {spec.match_text}" for spec in specs)
    return {"match": match, "action": ", ".join(dict.fromkeys(str(spec.action) for spec in specs)),
            "target": ", ".join(dict.fromkeys(str(spec.target) for spec in specs)),
            "rules": sum(len(chain.rules) for chain in ruleset.chains)}


def faults_dir() -> Path:
    return run_dir() / "faults"


def _path(scope: Scope, name: str) -> Path:
    return faults_dir() / scope.key / f"{name}.json"


def save(record: FaultRecord) -> None:
    path = _path(record.scope, record.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record.to_json(), indent=2) + "\n")
    os.replace(tmp, path)


def forget(record: FaultRecord) -> None:
    path = _path(record.scope, record.name)
    path.unlink(missing_ok=True)
    try:
        path.parent.rmdir()  # only when empty: no other fault (nor a created-tables note) is left
    except OSError:
        pass


def records(scope: Scope | None = None) -> list[FaultRecord]:
    base = faults_dir()
    if not base.is_dir():
        return []
    found = []
    for path in sorted(base.glob("*/*.json") if scope is None else (base / scope.key).glob("*.json")):
        try:
            data = json.loads(path.read_text())
            found.append(FaultRecord(
                name=data["name"], scope=Scope(**data["scope"]), tables=data["tables"],
                created_at=data["created_at"], expires_at=data["expires_at"], summary=data.get("summary", {}),
                tc=data.get("tc", []), restore=data.get("restore", "")))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a damaged state file: `revert --all` still finds the chains by name
    return found


@dataclass(frozen=True, slots=True)
class Planned:
    """One fault to install: its rule set, when the kernel ends it, what status shows."""

    ruleset: RuleSet
    expires_at: float  # epoch seconds
    summary: dict
    host: str | None = None  # picks the interface of a tc fault that names none (the route to it)


def install(ruleset: RuleSet, scope: Scope, expires_at: float, summary: dict, host: str | None = None) -> FaultRecord:
    """Load one rule set (and its tc classes) and record it; see install_many."""
    return install_many([Planned(ruleset, expires_at, summary, host)], scope)[0]


def install_many(planned: list[Planned], scope: Scope) -> list[FaultRecord]:
    """Load several faults together and record each; on any failure none of them stays behind.

    Order: the state files (so a crash from here on is found by `revert --all`), then the tc
    classes (harmless until something classifies into them), then every rule set's iptables
    rules in one iptables-restore run (one transaction per table)."""
    if not planned:
        return []
    backend = netfilter.detect_backend()
    from kshock.rules.render import render_restore

    # before any state file is written: one would overwrite the active fault's of the same name
    netfilter.check_free(backend, scope, [item.ruleset for item in planned])
    active = {record.name for record in records(scope)}
    for item in planned:
        if item.ruleset.name in active:
            raise UserError(f"a fault named {item.ruleset.name!r} is already active in {scope.describe()}",
                            f"revert it first (kshock revert {item.ruleset.name}) or choose another name")
    made, plans = [], []
    for item in planned:
        ruleset = item.ruleset
        record = FaultRecord(name=ruleset.name, scope=scope, tables={ruleset.table: list(ruleset.chain_names)},
                             created_at=time.time(), expires_at=item.expires_at, summary=item.summary)
        record.restore = render_restore(ruleset)
        if ruleset.traffic_control:
            from kshock.apply import tc

            mine = [tc.plan_from(control, control.interface or tc.resolve_interface(scope, item.host))
                    for control in ruleset.traffic_control]
            record.tc = [{"interface": plan.interface, "what": "class", "classid": plan.classid, "kind": plan.kind}
                         for plan in mine]
            record.summary = {**item.summary, "tc": [plan.describe for plan in mine]}
            plans += mine
        made.append(record)
    present = netfilter.tables(backend, scope)
    for table in dict.fromkeys(item.ruleset.table for item in planned):
        if table not in present:
            _note_created(scope, table)  # kshock's rules bring the table; the last one out takes it away
    saved: list[FaultRecord] = []
    try:
        for record in made:  # first, so a crash between here and the end is still found by revert --all
            save(record)
            saved.append(record)
        if plans:
            from kshock.apply import tc

            tc.install(scope, plans)
        try:
            netfilter.load_many(backend, scope, [item.ruleset for item in planned])
        except BaseException:
            if plans:
                tc.remove(scope, [entry for record in made for entry in record.tc])
            raise
    except BaseException:
        for record in saved:
            forget(record)
        _drop_created(backend, scope)
        raise
    return made


def remove(record: FaultRecord) -> list[str]:
    """Take the fault's chains (and qdiscs) out; idempotent."""
    return remove_many([record])


def remove_many(faults: list[FaultRecord]) -> list[str]:
    """Take several faults out, one iptables-restore run per namespace and table; idempotent."""
    removed: list[str] = []
    by_scope: dict[str, list[FaultRecord]] = {}
    for record in faults:
        by_scope.setdefault(record.scope.key, []).append(record)
    for group in by_scope.values():
        scope = group[0].scope
        if not _scope_alive(scope):  # the namespace is gone, and its tables with it
            for record in group:
                forget(record)
            if not records(scope):
                _forget_created(scope)
            continue
        backend = netfilter.detect_backend()
        tables: dict[str, set[str]] = {}
        for record in group:
            for table, chains in record.tables.items():
                tables.setdefault(table, set()).update(chains)
        for table, chains in tables.items():
            removed += netfilter.remove_chains(backend, scope, table, chains)
        for record in group:
            if record.tc:
                from kshock.apply import tc

                removed += tc.remove(scope, record.tc)
            forget(record)
        _drop_created(backend, scope)
    return removed


def remove_leftovers(scope: Scope) -> list[str]:
    """Every KSHOCK-* chain and kshock root htb (handle 4b53:) in the scope, with or without a
    state file (crashed runs)."""
    from kshock.apply import tc

    backend = netfilter.detect_backend()
    removed = []
    for table, chains in netfilter.kshock_chains(backend, scope).items():
        removed += netfilter.remove_chains(backend, scope, table, chains)
    removed += tc.remove_leftovers(scope)
    _drop_created(backend, scope)
    return removed


def _created_path(scope: Scope) -> Path:
    return faults_dir() / scope.key / "created-tables"


def _note_created(scope: Scope, table: str) -> None:
    path = _created_path(scope)
    path.parent.mkdir(parents=True, exist_ok=True)
    known = set(path.read_text().split()) if path.exists() else set()
    path.write_text("\n".join(sorted(known | {table})) + "\n")


def _drop_created(backend: netfilter.Backend, scope: Scope) -> None:
    """Delete the tables kshock created in `scope` once no kshock fault uses them any more."""
    path = _created_path(scope)
    if not path.exists():
        return
    in_use = {table for record in records(scope) for table in record.tables}
    present = netfilter.tables(backend, scope)
    left = set()
    for table in path.read_text().split():
        if table in present and (table in in_use or not netfilter.drop_if_empty(backend, scope, table)):
            left.add(table)
    if left:
        path.write_text("\n".join(sorted(left)) + "\n")
        return
    _forget_created(scope)


def _forget_created(scope: Scope) -> None:
    """The note of tables kshock created goes, and the scope's state folder once it is empty."""
    path = _created_path(scope)
    path.unlink(missing_ok=True)
    try:
        path.parent.rmdir()
    except OSError:
        pass


def collect_expired(now: float | None = None) -> list[FaultRecord]:
    """Remove faults whose time is up (the kernel already stopped applying them)."""
    expired = [r for r in records() if r.seconds_left(now) <= 0]
    remove_many(expired)
    return expired


def _scope_alive(scope: Scope) -> bool:
    path = scope.netns_path()
    return path is None or os.path.exists(path)
