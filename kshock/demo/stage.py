"""EDGE: the demo's stage — a lab, the demo scenario's clients running in the background, a live
tap on the bridge, and every fault the acts apply; `close()` takes all of it down again.
The clients keep their own records (kshock.demo.clients): a live log each, read by the acts as
they go, and a report each, written when `close()` stops them (`stage.reports()`).

    with Stage.open("demo", work_dir) as stage:
        stage.start_tap()
        stage.start_workloads(duration_s=240)
        fault = stage.apply(spec, scope)       # kshock.apply.faults, in one of the lab's namespaces
        stage.clients.count("billing", "received", "Produce", fault.applied_at)  # billing's own acks
        stage.revert(fault)
    reports = stage.reports()                  # what each client wrote when it was stopped

Everything that is made is recorded on the stage first, so `close()` (also on Ctrl-C, on an
error, or from atexit in a notebook) removes exactly what this stage made: its workloads (by
pid), its faults, the tap, and the lab it brought up. It never touches another lab.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import io
import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from kshock.host import netns
from kshock.apply.scope import Scope
from kshock.errors import OperationFailed, UserError
from kshock.lab.plan import Host
from kshock.lab.scenarios import Workload, scenario
from kshock.rules.durations import seconds_text
from kshock.rules.spec import RuleSpec

SCENARIO = "demo"
LAB_CLIENTS = 5  # one per workload of the demo scenario, and c5 for probes
WORKLOAD_STOP_S = 8.0


@dataclass(slots=True)
class RunningWorkload:
    workload: Workload
    host: Host
    process: subprocess.Popen
    report_path: Path
    client_log: Path
    report: dict | None = None


@dataclass(slots=True)
class AppliedFault:
    spec: RuleSpec
    scope: Scope
    record: object  # kshock.apply.faults.FaultRecord
    applied_at: float
    expires_at: float
    reverted_at: float | None = None
    counters: dict = field(default_factory=dict)  # chain -> [(packets, bytes, rule)] when reverted

    @property
    def rules(self) -> int:
        return sum(len(rules) for rules in self.counters.values())

    def packets_hit(self) -> int:
        """Packets the kernel acted on (rules ending in DROP/REJECT), read before reverting."""
        return sum(p for rules in self.counters.values() for p, _, text in rules
                   if "-j DROP" in text or "-j REJECT" in text)


class Stage:
    def __init__(self, lab_name: str, work_dir: Path, *, own_lab: bool = True) -> None:
        self.lab_name = lab_name
        self.work_dir = work_dir
        self.own_lab = own_lab
        self.lab = None  # kshock.lab.state.LabState
        self.tap = None  # observe.LiveTap
        self.workloads: list[RunningWorkload] = []
        self.clients = None  # clients.ClientLogs: the workloads' own live logs
        self.faults: list[AppliedFault] = []
        self.closed = False
        self.notes: list[str] = []  # what close() did, for the narrator

    # -- the lab ---------------------------------------------------------------------------

    @classmethod
    def open(cls, lab_name: str, work_dir: Path) -> Stage:
        """Bring a fresh lab up (refusing one that exists: it is somebody else's)."""
        from kshock.lab import handlers, state

        netns.require_root("kshock demo")
        if state.load(lab_name) is not None or any(n.startswith(f"ksl-{lab_name}-") for n in netns.names()):
            raise UserError(f"lab {lab_name} already exists",
                            f"remove it (kshock lab down --name {lab_name}) or give the demo another --lab NAME")
        stage = cls(lab_name, work_dir)
        atexit.register(stage.close)
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                handlers.up(argparse.Namespace(name=lab_name, clients=LAB_CLIENTS, port=9092, timeout=20.0))
            stage.lab = state.load(lab_name)
            if stage.lab is None:
                raise OperationFailed(f"lab {lab_name} came up but left no state", "run kshock lab status")
        except BaseException:
            stage.close()
            raise
        stage.up_message = out.getvalue().splitlines()[0] if out.getvalue() else ""
        return stage

    def __enter__(self) -> Stage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def broker(self) -> Host:
        return self.lab.plan.broker

    @property
    def port(self) -> int:
        return self.lab.plan.port

    def client_host(self, client_id: str) -> Host:
        for running in self.workloads:
            if running.workload.client_id == client_id:
                return running.host
        raise KeyError(client_id)

    @property
    def probe_host(self) -> Host:
        return self.lab.plan.clients[-1]

    # -- the tap and the clients -----------------------------------------------------------

    def start_tap(self):
        from kshock.demo.observe import LiveTap

        self.tap = LiveTap(self.broker.netns, self.broker.ifname, self.port, self.work_dir / "demo.pcap").start()
        return self.tap

    def start_workloads(self, duration_s: float, only: tuple[str, ...] | None = None) -> list[RunningWorkload]:
        """Start the demo scenario's clients in their namespaces; they run until stopped (or
        `duration_s`). Like `kshock lab traffic`, but in the background; each also keeps its
        client library's own log (`--client-log`), which `self.clients` reads as it grows."""
        from kshock.demo.clients import ClientLogs

        chosen = scenario(SCENARIO)
        hosts = self.lab.plan.clients
        out_dir = self.work_dir / "workloads"
        out_dir.mkdir(parents=True, exist_ok=True)
        for workload in chosen.workloads:
            if only is not None and workload.client_id not in only:
                continue
            host = hosts[workload.host % len(hosts)]
            report = out_dir / f"{workload.client_id}.json"
            client_log = out_dir / f"{workload.client_id}.client.log"
            argv = [sys.executable, "-m", "kshock.workloads", workload.kind, "--bootstrap", self.lab.plan.bootstrap,
                    "--client-id", workload.client_id, "--duration", seconds_text(duration_s), "--report", str(report),
                    "--client-log", str(client_log)]
            for topic in workload.topics:
                argv += ["--topic", topic]
            argv += list(workload.options)
            with open(out_dir / f"{workload.client_id}.log", "wb") as log:
                # Its own session: a Ctrl-C at the terminal reaches the demo, which stops them in order.
                process = subprocess.Popen(netns.exec_argv(host.netns, argv), stdin=subprocess.DEVNULL,
                                           stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            self.workloads.append(RunningWorkload(workload, host, process, report, client_log))
        self.clients = ClientLogs({w.workload.client_id: w.client_log for w in self.workloads})
        return self.workloads

    def reports(self) -> dict[str, dict]:
        """client-id -> the report its workload wrote when it was stopped (empty before)."""
        return {w.workload.client_id: w.report for w in self.workloads if w.report is not None}

    def stop_workloads(self) -> None:
        """SIGTERM (the workloads write their reports and leave), then SIGKILL what is left."""
        running = [w for w in self.workloads if w.process.poll() is None]
        for each in running:
            with contextlib.suppress(ProcessLookupError):
                each.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + WORKLOAD_STOP_S
        for each in running:
            try:
                each.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                each.process.kill()
                each.process.wait()
        for each in self.workloads:
            if each.report is None:
                with contextlib.suppress(OSError, ValueError):
                    each.report = json.loads(each.report_path.read_text())
        if running:
            self.notes.append(f"{len(running)} client process(es) stopped")

    # -- faults ----------------------------------------------------------------------------

    def scope_of(self, host: Host) -> Scope:
        return Scope(name=host.netns).pinned()  # named by its inode, as the fault's record names it

    def apply(self, spec: RuleSpec, scope: Scope) -> AppliedFault:
        """Compile and load one rule as a kshock fault with a kernel-enforced expiry."""
        from kshock.apply import faults

        now = time.time()
        # --datestop has whole seconds and includes its last one: the kernel applies the rule
        # until datestop + 1 s, and that is the expiry the state file records.
        datestop = int(now + spec.duration_s) - 1
        expires = datestop + 1
        utc = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(datestop))
        ruleset = faults.Claims(scope).compile([spec], spec.name, expires_at=utc)  # marks no active fault holds
        summary = {"match": str(spec.condition) if spec.condition is not None else "all traffic",
                   "action": str(spec.action),
                   "target": f"port {','.join(map(str, spec.target.ports))} {spec.target.direction}",
                   "rules": sum(len(chain.rules) for chain in ruleset.chains)}
        record = faults.install(ruleset, scope, float(expires), summary)
        applied = AppliedFault(spec, scope, record, now, float(expires))
        self.faults.append(applied)
        return applied

    def counters(self, fault: AppliedFault) -> dict:
        from kshock.apply import netfilter

        backend = netfilter.detect_backend()
        out = {}
        for table, chains in fault.record.tables.items():
            out.update(netfilter.counters(backend, fault.scope, table, set(chains)))
        return out

    def chains_loaded(self, fault: AppliedFault) -> bool:
        from kshock.apply import netfilter

        backend = netfilter.detect_backend()
        for table, chains in fault.record.tables.items():
            present = netfilter.kshock_chains(backend, fault.scope).get(table, set())
            if set(chains) & set(present):
                return True
        return False

    def revert(self, fault: AppliedFault) -> None:
        from kshock.apply import faults

        if fault.reverted_at is not None:
            return
        with contextlib.suppress(Exception):
            fault.counters = self.counters(fault)
        faults.remove(fault.record)
        fault.reverted_at = time.time()

    # -- the end ---------------------------------------------------------------------------

    def close(self) -> None:
        """Idempotent; safe to call from a finally, a signal handler's unwinding, or atexit."""
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(Exception):
            atexit.unregister(self.close)
        problems = []
        for step in (self.stop_workloads, self._revert_all, self._stop_tap, self._lab_down):
            try:
                step()
            except Exception as error:  # noqa: BLE001 — go on cleaning; say what failed
                problems.append(f"{step.__name__.strip('_')}: {error}")
        if problems:
            self.notes.append("cleanup problems: " + "; ".join(problems))

    def _revert_all(self) -> None:
        active = [f for f in self.faults if f.reverted_at is None]
        for fault in active:
            self.revert(fault)
        if active:
            self.notes.append(f"{len(active)} fault(s) reverted")

    def _stop_tap(self) -> None:
        if self.tap is not None:
            self.tap.stop()

    def _lab_down(self) -> None:
        if not self.own_lab:
            return
        from kshock.lab import handlers

        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            handlers.down(argparse.Namespace(name=self.lab_name))
        self.notes.append(f"lab {self.lab_name} removed")
