"""EDGE: what a lab made, kept under /run/kshock/labs/ so `down` and `status` work after a crash.

The state file is written before anything is created and rewritten as the lab grows, so a lab
whose creator was killed with SIGKILL can still be found and removed.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from kshock.host.run_dir import run_dir
from kshock.lab.plan import Host, LabPlan


def labs_dir() -> Path:
    return run_dir() / "labs"


@dataclass(slots=True)
class LabState:
    plan: LabPlan
    creator_pid: int
    phase: str = "creating"  # creating -> ready
    broker_pid: int | None = None
    broker_version: str | None = None
    created_at: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def work_dir(self) -> Path:
        return labs_dir() / self.plan.name

    @property
    def broker_log(self) -> Path:
        return self.work_dir / "broker.log"

    def to_json(self) -> dict:
        return {
            "name": self.plan.name,
            "index": self.plan.index,
            "subnet": self.plan.subnet,
            "port": self.plan.port,
            "bootstrap": self.plan.bootstrap,
            "phase": self.phase,
            "creator_pid": self.creator_pid,
            "created_at": self.created_at,
            "broker": {**asdict(self.plan.broker), "pid": self.broker_pid, "version": self.broker_version,
                       "log": str(self.broker_log)},
            "clients": [asdict(client) for client in self.plan.clients],
            "extra": self.extra,
        }


def state_path(name: str) -> Path:
    return labs_dir() / f"{name}.json"


def save(state: LabState) -> None:
    path = state_path(state.plan.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    state.work_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state.to_json(), indent=2) + "\n")
    os.replace(tmp, path)  # atomic: a reader never sees half a file


def load(name: str) -> LabState | None:
    path = state_path(name)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None  # unreadable state: `down` falls back to the namespace names
    broker = data["broker"]
    plan = LabPlan(
        name=data["name"],
        index=data["index"],
        broker=Host(broker["name"], broker["netns"], broker["ifname"], broker["ip"], broker.get("peer_ifname")),
        clients=tuple(Host(**client) for client in data["clients"]),
        port=data["port"],
    )
    return LabState(
        plan=plan,
        creator_pid=data["creator_pid"],
        phase=data["phase"],
        broker_pid=broker.get("pid"),
        broker_version=broker.get("version"),
        created_at=data.get("created_at", 0.0),
        extra=data.get("extra", {}),
    )


def all_names() -> list[str]:
    if not labs_dir().is_dir():
        return []
    return sorted(p.stem for p in labs_dir().glob("*.json"))


def used_indexes() -> set[int]:
    return {state.plan.index for name in all_names() if (state := load(name)) is not None}


def forget(name: str) -> None:
    import shutil

    state_path(name).unlink(missing_ok=True)
    shutil.rmtree(labs_dir() / name, ignore_errors=True)
