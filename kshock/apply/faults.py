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
from kshock.lab.state import run_dir
from kshock.rules.kernel import RuleSet


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
    _path(record.scope, record.name).unlink(missing_ok=True)


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


def install(ruleset: RuleSet, scope: Scope, expires_at: float, summary: dict) -> FaultRecord:
    """Load the rule set and record it; on any failure nothing stays behind."""
    backend = netfilter.detect_backend()
    record = FaultRecord(name=ruleset.name, scope=scope, tables={ruleset.table: list(ruleset.chain_names)},
                         created_at=time.time(), expires_at=expires_at, summary=summary)
    from kshock.rules.render import render_restore

    record.restore = render_restore(ruleset)
    save(record)  # first, so a crash between here and the end is still found by revert --all
    try:
        netfilter.load(backend, scope, ruleset)
    except BaseException:
        forget(record)
        raise
    return record


def remove(record: FaultRecord) -> list[str]:
    """Take the fault's chains (and qdiscs) out; idempotent."""
    removed: list[str] = []
    if _scope_alive(record.scope):
        backend = netfilter.detect_backend()
        for table, chains in record.tables.items():
            removed += netfilter.remove_chains(backend, record.scope, table, set(chains))
        if record.tc:
            from kshock.apply import tc

            removed += tc.remove(record.scope, record.tc)
    forget(record)
    return removed


def remove_leftovers(scope: Scope) -> list[str]:
    """Every KSHOCK-* chain in the scope, with or without a state file (crashed runs)."""
    backend = netfilter.detect_backend()
    removed = []
    for table, chains in netfilter.kshock_chains(backend, scope).items():
        removed += netfilter.remove_chains(backend, scope, table, chains)
    return removed


def collect_expired(now: float | None = None) -> list[FaultRecord]:
    """Remove faults whose time is up (the kernel already stopped applying them)."""
    expired = [r for r in records() if r.seconds_left(now) <= 0]
    for record in expired:
        remove(record)
    return expired


def _scope_alive(scope: Scope) -> bool:
    path = scope.netns_path()
    return path is None or os.path.exists(path)
