"""EDGE: a workload's ground-truth report, and writing it atomically."""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(slots=True)
class Report:
    """What one workload did. Counters are updated from client callbacks (possibly on the client's
    own threads), so every change goes through the lock."""

    kind: str
    client_id: str
    library: str
    bootstrap: str
    topics: list[str]
    started: float = field(default_factory=time.time)
    produced: Counter = field(default_factory=Counter)  # records the broker acknowledged
    produce_failed: Counter = field(default_factory=Counter)
    consumed: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # the client's non-fatal complaints
    # Returns every request written to a socket so far; set by the workload once its client exists.
    requests: Callable[[], list[dict]] = lambda: []
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, counter: Counter, topic: str, n: int = 1) -> None:
        with self.lock:
            counter[topic] += n

    def error(self, message: str) -> None:
        with self.lock:
            if message not in self.errors:
                self.errors.append(message)

    def warning(self, message: str) -> None:
        with self.lock:
            if message not in self.warnings and len(self.warnings) < 100:
                self.warnings.append(message)

    def to_json(self) -> dict:
        requests = self.requests()
        with self.lock:
            return {
                "kind": self.kind,
                "client_id": self.client_id,
                "library": self.library,
                "bootstrap": self.bootstrap,
                "topics": list(self.topics),
                "produced": {t: self.produced[t] for t in self.topics} if self.kind.endswith("producer") else {},
                "produce_failed": {t: n for t, n in self.produce_failed.items() if n},
                "consumed": {t: self.consumed[t] for t in self.topics} if self.kind.endswith("consumer") else {},
                "requests": requests,
                "requests_per_api": dict(sorted(Counter(r["api"] for r in requests).items())),
                "started": round(self.started, 6),
                "ended": round(time.time(), 6),
                "errors": list(self.errors),
                "warnings": list(self.warnings),
            }


def write_report(path: Path, data: dict) -> None:
    """Write the report so that a reader sees either nothing or the whole file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as out:
        json.dump(data, out, indent=1)
        out.write("\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
