"""Benchmark: does `kshock shell`'s live capture keep up with a flood of Produce requests?

Brings up a lab of its own, opens the shell's capture path (kshock.capture_live.LiveCapture on
the broker's bridge, decoded into a kshock.shell Session by the same thread the shell uses),
then runs N confluent-kafka producers (linger.ms=0, batch.num.messages=1: one small Produce
request per record) in the lab's client namespaces for --duration seconds. Reports requests/s
captured and decoded, the kernel's drop counter (PACKET_STATISTICS), and checks the count
against what every producer itself reports having sent. The lab is always removed.

    sudo .venv/bin/python benchmarks/live_capture.py [--producers 3] [--rate 9000] [--duration 10]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def kshock(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "kshock", *args], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--producers", type=int, default=3, help="parallel producers, one per client (default 3)")
    parser.add_argument("--rate", type=float, default=9000, help="records (= requests) per second per producer")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of flood (default 10)")
    parser.add_argument("--name", default=f"lc{os.getpid() % 100000}", help="lab name (default: unique)")
    args = parser.parse_args()

    from kshock.capture_live import LiveCapture
    from kshock.lab import state
    from kshock.shell.app import LiveSource
    from kshock.shell.session import Session

    kshock("lab", "up", "--name", args.name, "--clients", str(args.producers))
    source = None
    processes: list[subprocess.Popen] = []
    try:
        plan = state.load(args.name).plan
        session = Session((plan.port,), max_frames=1_000_000, max_packets=50_000)  # every frame: the rate below
        source = LiveSource(LiveCapture({plan.port}, interface=plan.broker.ifname, netns=plan.broker.netns), session)
        source.start()
        out = Path(tempfile.mkdtemp(prefix="kshock-bench-"))
        for i, host in enumerate(plan.clients[: args.producers]):
            argv = [sys.executable, "-m", "kshock.workloads", "rdk-producer", "--bootstrap", plan.bootstrap,
                    "--client-id", f"flood-{i + 1}", "--topic", f"flood-{i + 1}", "--duration", f"{args.duration:g}",
                    "--report", str(out / f"flood-{i + 1}.json"), "--message-size", "100", "--linger-ms", "0",
                    "--batch-num-messages", "1", "--rate", f"{args.rate:g}"]
            processes.append(subprocess.Popen(["ip", "netns", "exec", host.netns, *argv], cwd=ROOT,
                                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                              stderr=subprocess.DEVNULL))
        cpu_before, wall_before = time.process_time(), time.monotonic()
        for process in processes:
            process.wait(timeout=args.duration + 60)
        time.sleep(1.0)  # the capture thread drains what is queued
        cpu, wall = time.process_time() - cpu_before, time.monotonic() - wall_before
        source.stop()
        stats = source.capture.totals
        with session.lock:
            produce = session.by_api.get("Produce")
            frames = list(session.frames)
            per_client = {c: t.requests for c, t in session.by_client.items() if c.startswith("flood-")}
        truth = {}
        for path in sorted(out.glob("flood-*.json")):
            report = json.loads(path.read_text())
            truth[path.stem] = Counter(r["api"] for r in report.get("requests", []))
        sent_produce = sum(c["Produce"] for c in truth.values())
        sent_total = sum(sum(c.values()) for c in truth.values())
        produce_ts = [f.ts for f in frames if f.api == "Produce" and f.kind == "request"]
        window = (max(produce_ts) - min(produce_ts)) if len(produce_ts) > 1 else 0.0
        rate = (produce.requests / window) if produce and window else 0.0
        per_second = Counter(int(ts) for ts in produce_ts)
        seconds = sorted(per_second)
        best10 = max((sum(per_second.get(s, 0) for s in range(first, first + 10)) for first in seconds), default=0)
        print(f"lab {args.name}: {args.producers} librdkafka producers x {args.rate:g} records/s for {args.duration:g} s "
              f"(one Produce request per record)")
        print(f"  producers report sending {sent_total:,} requests ({sent_produce:,} Produce)")
        print(f"  captured and decoded      {session.requests:,} requests ({produce.requests if produce else 0:,} Produce), "
              f"{session.responses:,} responses, {session.sniffer.stats.packets:,} packets")
        print(f"  Produce requests/s        {best10 / 10:,.0f} over the busiest 10 s, peak second "
              f"{max(per_second.values(), default=0):,}; {rate:,.0f} averaged over the {window:.1f} s from first to last")
        print(f"  kernel (PACKET_STATISTICS): {stats.packets:,} packets passed the filter, {stats.drops:,} dropped")
        print(f"  gaps in TCP streams       {session.sniffer.stats.gaps} ({session.sniffer.stats.gap_bytes:,} bytes)")
        print(f"  capture+decode CPU        {cpu:.1f} s in {wall:.1f} s ({100 * cpu / wall:.0f}% of one core)")
        print(f"  per client: " + ", ".join(f"{c} {n:,} captured / {sum(truth.get(c, {}).values()):,} sent"
                                          for c, n in sorted(per_client.items())))
        ok = stats.drops == 0 and session.requests == sent_total
        print("  keeps up: " + ("yes — every request sent was captured and decoded, zero kernel drops" if ok else "NO"))
        return 0 if ok else 1
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        if source is not None:
            try:
                source.stop()
            except Exception:  # noqa: BLE001 - the lab goes regardless
                pass
        subprocess.run([sys.executable, "-m", "kshock", "lab", "down", "--name", args.name], cwd=ROOT,
                       stdout=subprocess.DEVNULL)


if __name__ == "__main__":
    sys.exit(main())
