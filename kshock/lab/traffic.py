"""EDGE: run a scenario's real Kafka clients inside the lab's client namespaces and gather the
ground truth each one reports (records acknowledged, every request it wrote to a socket)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from kshock.host import netns
from kshock.errors import OperationFailed
from kshock.lab.plan import Host
from kshock.lab.scenarios import LinkShaping, Scenario, Workload, scenario
from kshock.lab.state import LabState
from kshock.rules.durations import seconds_text

# Workloads stop by themselves at their duration; this is the most they may take on top
# (flush, close, LeaveGroup) before they are killed.
GRACE_S = 30.0


@dataclass(slots=True)
class WorkloadRun:
    workload: Workload
    host: Host
    report: dict | None
    exit_code: int | None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None and self.exit_code == 0 and not (self.report or {}).get("errors")


@dataclass(slots=True)
class TrafficResult:
    scenario: Scenario
    duration_s: float
    bootstrap: str
    runs: list[WorkloadRun] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(run.ok for run in self.runs)

    def ground_truth(self) -> dict:
        """What the workloads did, in the shape of a capture's sidecar JSON."""
        clients: dict[str, dict] = {}
        requests: list[dict] = []
        for run in self.runs:
            report = run.report or {}
            cid = run.workload.client_id
            clients[cid] = {
                "kind": run.workload.kind,
                "library": report.get("library"),
                "host": run.host.name,
                "ip": run.host.ip,
                "topics": list(run.workload.topics),
                "produced": report.get("produced", {}),
                "consumed": report.get("consumed", {}),
                "requests": len(report.get("requests", [])),
                "errors": report.get("errors", []) + ([run.problem] if run.problem else []),
                "exit_code": run.exit_code,
            }
            requests += [{"client_id": cid, "ip": run.host.ip, **request} for request in report.get("requests", [])]
        produced = {cid: info["produced"] for cid, info in clients.items() if info["produced"]}
        return {
            "scenario": self.scenario.name,
            "summary": self.scenario.summary,
            "duration_s": self.duration_s,
            "bootstrap": self.bootstrap,
            "client_ids": sorted(clients),
            "topics": sorted({t for run in self.runs for t in run.workload.topics}),
            "records_produced": produced,
            "records_produced_total": sum(n for per_topic in produced.values() for n in per_topic.values()),
            "requests_per_api": dict(sorted(Counter(r["api"] for r in requests).items())),
            "requests_total": len(requests),
            "clients": clients,
            "requests": requests,
        }


def run_scenario(lab: LabState, name: str, duration_s: float | None = None) -> TrafficResult:
    chosen = scenario(name)
    duration_s = chosen.duration_s if duration_s is None else duration_s
    if duration_s <= 0 or duration_s > 3600:
        raise OperationFailed(f"--duration {duration_s:g} is out of range", "use 0 < duration <= 3600 seconds")
    result = TrafficResult(chosen, duration_s, lab.plan.bootstrap)
    out_dir = lab.work_dir / "traffic" / f"{name}-{int(time.time() * 1000)}"
    out_dir.mkdir(parents=True, exist_ok=True)
    hosts = lab.plan.clients
    # Admin workloads create the topics the others use, so they run to completion first.
    first = [w for w in chosen.workloads if w.kind.endswith("admin")]
    rest = [w for w in chosen.workloads if not w.kind.endswith("admin")]
    with shaped_links(chosen.shaping, hosts):
        for batch in (first, rest):
            result.runs += _run_batch(batch, hosts, lab.plan.bootstrap, duration_s, out_dir)
    return result


def _run_batch(workloads: list[Workload], hosts: tuple[Host, ...], bootstrap: str, duration_s: float,
               out_dir: Path) -> list[WorkloadRun]:
    started = []
    try:
        for workload in workloads:
            host = hosts[workload.host % len(hosts)]
            report = out_dir / f"{workload.client_id}.json"
            argv = [sys.executable, "-m", "kshock.workloads", workload.kind, "--bootstrap", bootstrap,
                    "--client-id", workload.client_id, "--duration", seconds_text(duration_s), "--report", str(report)]
            for topic in workload.topics:
                argv += ["--topic", topic]
            argv += list(workload.options)
            log = open(out_dir / f"{workload.client_id}.log", "wb")
            process = subprocess.Popen(netns.exec_argv(host.netns, argv), stdin=subprocess.DEVNULL,
                                       stdout=log, stderr=subprocess.STDOUT)
            log.close()
            started.append((workload, host, report, process))
        deadline = time.monotonic() + duration_s + GRACE_S
        runs = []
        for workload, host, report, process in started:
            problem = None
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                problem = f"killed after {duration_s + GRACE_S:g} s"
            data = _read_report(report)
            if data is None and problem is None:
                problem = f"no report (exit {process.returncode}); log: {report.with_suffix('.log')}"
            runs.append(WorkloadRun(workload, host, data, process.returncode, problem))
        return runs
    finally:
        for *_, process in started:
            if process.poll() is None:
                process.kill()
                process.wait()


def _read_report(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def shaped_links(shaping: tuple[LinkShaping, ...], hosts: tuple[Host, ...]) -> Iterator[None]:
    """Put a tbf qdisc on each shaped client link for the duration of the block, then remove it."""
    from pyroute2 import NetNS

    applied: list[Host] = []
    try:
        for shape in shaping:
            host = hosts[shape.host % len(hosts)]
            with NetNS(host.netns) as ns:
                index = ns.link_lookup(ifname=host.ifname)[0]
                ns.tc("add", "tbf", index=index, handle="1:", rate=shape.rate, burst=shape.burst_bytes,
                      latency=f"{shape.latency_ms}ms")
            applied.append(host)
        yield
    finally:
        for host in applied:
            if netns.exists(host.netns):
                with NetNS(host.netns) as ns:
                    index = ns.link_lookup(ifname=host.ifname)[0]
                    ns.tc("del", index=index, handle="1:", root=True)


def render_summary(result: TrafficResult) -> str:
    truth = result.ground_truth()
    rows = [("client-id", "host", "workload", "library", "topics", "produced", "consumed", "requests", "status")]
    for cid, info in truth["clients"].items():
        rows.append((
            cid, f"{info['host']} {info['ip']}", info["kind"], info["library"] or "?",
            ",".join(info["topics"]), str(sum(info["produced"].values())), str(sum(info["consumed"].values())),
            str(info["requests"]), "ok" if not info["errors"] and info["exit_code"] == 0 else "; ".join(info["errors"])[:60] or f"exit {info['exit_code']}",
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [f"scenario {result.scenario.name}: {result.scenario.summary} ({result.duration_s:g} s, broker {result.bootstrap})"]
    lines += ["  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    per_api = ", ".join(f"{api} {n}" for api, n in truth["requests_per_api"].items())
    lines.append(f"  {truth['records_produced_total']} records acknowledged; {truth['requests_total']} requests: {per_api}")
    return "\n".join(lines)
