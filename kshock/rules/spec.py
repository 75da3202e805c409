"""PURE: what the user asked for — one rule as data, from a rule file, the shell or the command line.

The compiler turns a sequence of RuleSpec into a RuleSet; `apply` puts a RuleSet into a kernel.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kshock.conditions import Condition

ACTIONS = ("drop", "reset", "stall", "loss", "rate", "delay", "duplicate", "corrupt", "reorder")
DIRECTIONS = ("ingress", "egress", "forward", "both")


@dataclass(frozen=True, slots=True)
class Action:
    kind: str  # one of ACTIONS
    percent: float | None = None  # loss / duplicate / corrupt / reorder
    rate_bit_s: int | None = None  # rate
    delay_ms: float | None = None  # delay
    jitter_ms: float | None = None

    def __str__(self) -> str:
        if self.kind in ("loss", "duplicate", "corrupt", "reorder"):
            return f"{self.kind} {self.percent:g}%"
        if self.kind == "rate":
            return f"rate {self.rate_bit_s}bit"
        if self.kind == "delay":
            return f"delay {self.delay_ms:g}ms" + (f" jitter {self.jitter_ms:g}ms" if self.jitter_ms else "")
        return self.kind


@dataclass(frozen=True, slots=True)
class Target:
    """Where the fault applies, seen from the host (or namespace) the rules are loaded into.
    ingress: Kafka requests arrive here (a broker) -> INPUT; egress: they leave here (a client)
    -> OUTPUT; forward: they pass through (a router, the lab bridge's host) -> FORWARD."""

    ports: tuple[int, ...] = (9092,)
    host: str | None = None  # the broker's (or peer's) address or network; None = any
    interface: str | None = None
    direction: str = "ingress"

    def __str__(self) -> str:
        text = f"port {','.join(map(str, self.ports))} {self.direction}"
        text += f" host {self.host}" if self.host else ""
        return text + (f" interface {self.interface}" if self.interface else "")


@dataclass(frozen=True, slots=True)
class Trigger:
    mode: str = "always"  # always | probability | nth | once-per-connection
    probability: float | None = None  # 0 < p <= 1, for "probability"
    every: int | None = None  # for "nth"


@dataclass(frozen=True, slots=True)
class RuleSpec:
    name: str
    condition: Condition | None  # None: a plain network fault on the target
    action: Action
    target: Target = field(default_factory=Target)
    duration_s: float = 300.0
    trigger: Trigger = field(default_factory=Trigger)
    latch: bool = False  # once a packet of a connection matches, act on the rest of the connection
    approximate: bool = False  # allow widening what the kernel cannot express exactly, with a warning
    source: str = ""  # "rules/x.yaml:12" for messages

    @property
    def match_text(self) -> str:
        return str(self.condition) if self.condition is not None else "all traffic"
