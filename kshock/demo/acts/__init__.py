"""The demo's acts, one module each; every act returns an ActResult of measured facts and checks.

An act claims something ("A's acks stop while B's go on") and checks it against what the clients
themselves say they did — their own live logs while it runs, and the reports they write when the
stage stops them (kshock.demo.clients) — or against the kernel's rule counters and the probe's
own result; never against kshock's own tap, whose numbers are narrated alongside as what kshock
saw, and never with scripted text. An act module has `run(show, result)`, and may have
`grade_reports(reports, result)`: checks of the clients' final reports, which the runner calls
once the stage has stopped the clients.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from kshock.conditions import parse_condition
from kshock.demo.narrator import Narrator
from kshock.demo.observe import client_of
from kshock.demo.stage import Stage
from kshock.rules.spec import Action, RuleSpec, Target
from kshock.wire.model import KafkaFrame

# The clients of the demo scenario (kshock/lab/scenarios.py: DEMO) and what each act does to them.
VICTIM_PRODUCER = "shop-frontend"
OTHER_PRODUCER = "billing"
GROUP_MEMBERS = ("ledger-1", "ledger-2")
GROUP_PARTITIONS = frozenset({0, 1})
GROUP_APIS = ("JoinGroup", "SyncGroup", "Heartbeat", "Fetch", "OffsetCommit", "OffsetFetch", "ListOffsets")


@dataclass(slots=True)
class Check:
    claim: str
    ok: bool
    detail: str = ""


@dataclass(slots=True)
class ActResult:
    number: int
    title: str
    applied: str = "-"
    clients_saw: str = "-"
    measured: dict = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.checks) and all(c.ok for c in self.checks)

    def check(self, claim: str, ok: bool, detail: str = "") -> bool:
        self.checks.append(Check(claim, bool(ok), detail))
        return bool(ok)

    def as_json(self) -> dict:
        return {"act": self.number, "title": self.title, "ok": self.ok, "applied": self.applied,
                "clients_saw": self.clients_saw, "measured": self.measured, "seconds": round(self.seconds, 2),
                "error": self.error,
                "checks": [{"claim": c.claim, "ok": c.ok, "detail": c.detail} for c in self.checks]}


@dataclass(slots=True)
class Show:
    """What every act gets: the stage and the narrator."""

    stage: Stage
    narrator: Narrator


def quoted(text: str) -> str:
    return json.dumps(text)


def block_spec(frame: KafkaFrame, port: int, duration_s: float, name: str = "demo-block-produce") -> RuleSpec:
    """Drop at the broker every request like `frame`: its API from its client-id."""
    condition = parse_condition(f"api == {frame.api} and client_id == {quoted(client_of(frame))}")
    return RuleSpec(name, condition, Action("drop"), Target(ports=(port,), direction="ingress"), duration_s,
                    source="kshock demo, act 2")


def reset_spec(frame: KafkaFrame, port: int, duration_s: float, name: str = "demo-reset-member") -> RuleSpec:
    """Reset (TCP RST from the broker) every group-protocol and Fetch request of `frame`'s client."""
    apis = ", ".join(GROUP_APIS)
    condition = parse_condition(f"api in {{{apis}}} and client_id == {quoted(client_of(frame))}")
    return RuleSpec(name, condition, Action("reset"), Target(ports=(port,), direction="ingress"), duration_s,
                    source="kshock demo, act 3")


def stall_spec(port: int, duration_s: float, name: str = "demo-syn-only") -> RuleSpec:
    """Handshake, then nothing: every payload segment (and FIN) leaving toward the Kafka port is
    dropped — loaded in the probe's own namespace, so no other client is touched."""
    return RuleSpec(name, None, Action("stall"), Target(ports=(port,), direction="egress"), duration_s,
                    source="kshock demo")


def frame_line(frame: KafkaFrame) -> str:
    from kshock.replay.listing import clock

    arrow = "<" if frame.kind == "response" else ">"
    api = f"{frame.api or frame.api_key} v{frame.api_version}"
    parts = [clock(frame.ts), f"{frame.src:>21} {arrow} {frame.dst:<21}", f"{api:<16}",
             f"corr {frame.correlation_id!s:<5}", f"{client_of(frame):<14}"]
    if frame.topics:
        parts.append(",".join(frame.topics))
    if frame.partitions:
        parts.append("p" + ",".join(map(str, frame.partitions)))
    if frame.records:
        parts.append(f"{frame.records} rec")
    if frame.latency_ms is not None:
        parts.append(f"{frame.latency_ms:.2f} ms")
    return " ".join(parts)


def since(t: float) -> float:
    return time.time() - t


def act_modules() -> dict[int, str]:
    return {1: "watch", 2: "block", 3: "rebalance", 4: "stall", 5: "deadman", 6: "coverage"}


TITLES = {1: "watch", 2: "block one producer", 3: "reset a group member", 4: "SYN-only stall",
          5: "the dead-man switch", 6: "replay: rule coverage"}
