"""EDGE: what the demo's clients say they did — their own records, the acts' yardstick.

The acts grade themselves by these, not by kshock's tap. Two records per client:

- its live log: every workload runs with `--client-log`, so librdkafka's own debug log
  (debug=protocol,broker) is kept in a file as it is written, one line per request it sent, per
  response it received (with the round trip it measured) and per connection it lost, each with
  the client's own timestamp — read while the acts run;
- its report (kshock/workloads/report.py), written when the stage stops it: records acknowledged,
  failed and consumed, every request it sent, its errors and warnings — read by the acts' last
  checks (`grade_reports`).

    logs = ClientLogs({"billing": Path(".../billing.client.log")})
    logs.count("billing", "received", "Produce", start, end)     # acks billing got in [start, end]
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from kshock.workloads.rdkafka_log import ClientEvent, parse_event

MAX_LOG_BYTES = 64 << 20  # a demo's client log is a few hundred KB; past this the rest is not read


@dataclass(slots=True)
class ClientLog:
    """One client's log file, parsed as it grows (complete lines only)."""

    path: Path
    events: list[ClientEvent] = field(default_factory=list)
    offset: int = 0
    _partial: bytes = b""

    def refresh(self) -> list[ClientEvent]:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return self.events
        try:
            while self.offset < MAX_LOG_BYTES and (chunk := os.pread(fd, 1 << 20, self.offset)):
                self.offset += len(chunk)
                lines = (self._partial + chunk).split(b"\n")
                self._partial = lines.pop()
                for line in lines:
                    event = parse_event(line.decode("utf-8", "replace"))
                    if event is not None:
                        self.events.append(event)
        finally:
            os.close(fd)
        return self.events


class ClientLogs:
    """Every client's log, by client-id; each question reads what has been written since the last."""

    def __init__(self, paths: dict[str, Path]) -> None:
        self.logs = {client: ClientLog(path) for client, path in paths.items()}

    def events(self, client: str, what: str | None = None, api: str | None = None, start: float = 0.0,
               end: float = float("inf")) -> list[ClientEvent]:
        log = self.logs.get(client)
        if log is None:
            return []
        return [e for e in log.refresh() if (what is None or e.what == what) and (api is None or e.api == api)
                and start <= e.ts <= end]

    def count(self, client: str, what: str, api: str | None = None, start: float = 0.0,
              end: float = float("inf")) -> int:
        return len(self.events(client, what, api, start, end))

    def selected(self, condition, until: float = float("inf")) -> list[float]:
        """When each request the clients logged as completely sent by `until` that a condition
        selects was sent (their clocks, in order)."""
        from kshock.conditions.match import matches
        from kshock.wire.model import Request

        return sorted(e.ts for client in self.logs for e in self.events(client, "sent", None, 0.0, until)
                      if matches(condition, Request(e.ts, "", "", e.api_key, e.api, None, e.correlation_id, client)))


def report_totals(report: dict | None) -> dict:
    """A workload report's headline numbers (records summed over topics)."""
    report = report or {}
    return {"produced": sum(report.get("produced", {}).values()),
            "produce_failed": sum(report.get("produce_failed", {}).values()),
            "consumed": sum(report.get("consumed", {}).values()),
            "requests_per_api": report.get("requests_per_api", {}),
            "errors": [e for e in report.get("errors", []) if not of_the_stop(e)],
            "warnings": report.get("warnings", [])}


def of_the_stop(error: str) -> bool:
    """An error every stopped workload reports: the stop itself (SIGTERM -> "interrupted"), and a
    producer's records still queued or in flight then, which it purges (librdkafka's _PURGE_QUEUE,
    _PURGE_INFLIGHT) — a record lost to a fault would fail with another error (e.g. _MSG_TIMED_OUT)."""
    return error == "interrupted" or "_PURGE_" in error
