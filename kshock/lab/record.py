"""EDGE: record a scenario with tcpdump on the lab bridge and write its ground-truth sidecar."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from kshock import __version__
from kshock.host import netns
from kshock.errors import OperationFailed
from kshock.lab.state import LabState
from kshock.lab.traffic import TrafficResult, run_scenario

READY_TIMEOUT_S = 10.0


@dataclass(slots=True)
class RecordOutcome:
    pcap: Path
    sidecar: Path
    packets: int
    kernel_drops: int
    traffic: TrafficResult

    @property
    def ok(self) -> bool:
        return self.traffic.ok and self.kernel_drops == 0

    def describe(self) -> str:
        from kshock.lab.traffic import render_summary

        size = self.pcap.stat().st_size
        drops = "" if self.kernel_drops == 0 else f", {self.kernel_drops} DROPPED by the kernel"
        return (f"{render_summary(self.traffic)}\nrecorded {self.packets} packets ({size:,} bytes{drops}) to "
                f"{self.pcap}; ground truth in {self.sidecar}")


def record(lab: LabState, scenario_name: str, out: str, duration_s: float | None = None) -> RecordOutcome:
    pcap = Path(out)
    if pcap.suffix != ".pcap":
        raise OperationFailed(f"{out} does not end in .pcap", "name the output NAME.pcap; the sidecar is NAME.json")
    pcap.parent.mkdir(parents=True, exist_ok=True)
    partial = pcap.with_name(pcap.name + ".partial")
    plan = lab.plan
    # Immediate mode and a 16 MiB buffer: without them tcpdump loses the last packets on SIGINT
    # and drops bursts of large messages.
    argv = ["tcpdump", "-i", plan.broker.ifname, "--immediate-mode", "-B", "16384", "-U", "-s", "0", "-Z", "root",
            "-n", "-w", str(partial.resolve()), f"tcp port {plan.port}"]
    dump = subprocess.Popen(netns.exec_argv(plan.broker.netns, argv), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait_listening(dump)
        traffic = run_scenario(lab, scenario_name, duration_s)
        time.sleep(0.3)  # the last ACKs and FINs are still on their way to the bridge
    finally:
        if dump.poll() is None:
            dump.send_signal(signal.SIGINT)
        try:
            _, stderr = dump.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            dump.kill()
            _, stderr = dump.communicate()
    packets = _stat(stderr, "captured")
    drops = _stat(stderr, "dropped by kernel")
    if not partial.exists():
        raise OperationFailed(f"tcpdump wrote nothing ({stderr.strip()[-200:]})")
    os.replace(partial, pcap)  # only a complete capture gets the real name
    sidecar = pcap.with_suffix(".json")
    truth = traffic.ground_truth()
    truth["capture"] = {
        "file": pcap.name,
        "packets": packets,
        "kernel_drops": drops,
        "interface": f"{plan.broker.netns}:{plan.broker.ifname}",
        "broker": plan.bootstrap,
        "kafka_port": plan.port,
        "broker_software": lab.broker_version,
        "recorded_by": f"kshock {__version__}: kshock lab record {scenario_name} {pcap.name} "
                       f"--duration {traffic.duration_s:g}",
    }
    tmp = sidecar.with_suffix(".json.partial")
    tmp.write_text(render_sidecar(truth))
    os.replace(tmp, sidecar)
    return RecordOutcome(pcap, sidecar, packets, drops, traffic)


def render_sidecar(truth: dict) -> str:
    """Indented JSON, but one line per request: readable, and diffs stay small."""
    requests = truth.get("requests", [])
    head = json.dumps({**truth, "requests": []}, indent=1)
    lines = ",\n  ".join(json.dumps(request, separators=(",", ":")) for request in requests)
    return head.replace('"requests": []', '"requests": [\n  ' + lines + "\n ]" if requests else '"requests": []') + "\n"


def _wait_listening(dump: subprocess.Popen) -> None:
    """tcpdump says 'listening on' once its socket is open; traffic before that would be lost."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    assert dump.stderr is not None
    os.set_blocking(dump.stderr.fileno(), False)
    seen = ""
    while time.monotonic() < deadline:
        if dump.poll() is not None:
            raise OperationFailed(f"tcpdump exited: {seen.strip() or dump.stderr.read()}")
        chunk = dump.stderr.readline()
        seen += chunk or ""
        if "listening on" in seen:
            os.set_blocking(dump.stderr.fileno(), True)
            return
        if not chunk:
            time.sleep(0.02)
    raise OperationFailed(f"tcpdump did not start within {READY_TIMEOUT_S:g} s")


def _stat(stderr: str, label: str) -> int:
    found = re.search(rf"(\d+) packets? {label}", stderr)
    return int(found.group(1)) if found else 0
