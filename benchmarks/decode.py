"""Benchmark: `kshock decode --json` against tshark on a real lab capture of >= 100,000 Produce requests.

Records the `flood` scenario in a lab (confluent-kafka, linger.ms=0, batch.num.messages=1: one
small Produce request per record), then times, in the same run and on the same file:

    kshock decode --json FILE > out.jsonl
    tshark -r FILE -o kafka.tcp.ports:9092 -T fields -e kafka.api_key -e kafka.client_id -e kafka.topic_name > out.tsv

and prints packets/s, frames/s and MB/s for both and the ratio (target: kshock >= 5x tshark),
and checks that kshock counted every record the capture's Produce requests carry. For
orientation it also times kshock's pure-Python path (the same output without the compiled
JSON lane, kshock/wire/_lane.pyx).

    sudo .venv/bin/python benchmarks/decode.py [--pcap EXISTING.pcap] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KSHOCK = [sys.executable, "-m", "kshock"]


def record_flood(directory: Path) -> tuple[Path, dict]:
    lab = "bench"
    subprocess.run([*KSHOCK, "lab", "down", "--name", lab], capture_output=True)
    subprocess.run([*KSHOCK, "lab", "up", "--name", lab], check=True)
    try:
        pcap = directory / "flood.pcap"
        subprocess.run([*KSHOCK, "lab", "record", "--name", lab, "flood", str(pcap)], check=True)
        return pcap, json.loads(pcap.with_suffix(".json").read_text())
    finally:
        subprocess.run([*KSHOCK, "lab", "down", "--name", lab], capture_output=True)


# `kshock decode --json FILE` through the pure-Python path only
PURE = """import sys
from kshock.replay.listing import open_run
run = open_run(sys.argv[1], [9092], compiled=False)
run.write_json(sys.stdout.write)
"""
try:
    from kshock.wire import _lane  # noqa: F401
    LANE_BUILT = True
except ImportError:
    LANE_BUILT = False


def timed(argv: list[str], out: Path) -> float:
    started = time.perf_counter()
    with open(out, "wb") as sink:
        subprocess.run(argv, stdout=sink, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def packet_count(pcap: Path) -> int:
    from kshock.capture.reader import CaptureReader

    reader = CaptureReader(str(pcap))
    count = sum(1 for _ in reader)
    reader.close()
    return count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pcap", help="use this capture instead of recording one (needs its NAME.json sidecar)")
    parser.add_argument("--keep", help="keep the capture and outputs in this directory")
    args = parser.parse_args()
    if shutil.which("tshark") is None:
        print("tshark is not installed: make setup", file=sys.stderr)
        return 2
    work = Path(args.keep or tempfile.mkdtemp(prefix="kshock-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        if args.pcap:
            pcap = Path(args.pcap)
            truth = json.loads(pcap.with_suffix(".json").read_text())
        else:
            pcap, truth = record_flood(work)
        size_mb = pcap.stat().st_size / 1e6
        packets = packet_count(pcap)
        produce_requests = truth["requests_per_api"].get("Produce", 0)

        kshock_s = timed([*KSHOCK, "decode", "--json", str(pcap)], work / "kshock.jsonl")
        pure_s = timed([sys.executable, "-c", PURE, str(pcap)], work / "kshock-pure.jsonl")
        same = (work / "kshock.jsonl").read_bytes() == (work / "kshock-pure.jsonl").read_bytes()
        tshark_s = timed(["tshark", "-r", str(pcap), "-o", "kafka.tcp.ports:9092", "-T", "fields",
                          "-e", "kafka.api_key", "-e", "kafka.client_id", "-e", "kafka.topic_name"], work / "tshark.tsv")

        frames = records = requests = 0
        with open(work / "kshock.jsonl") as lines:
            for line in lines:
                frame = json.loads(line)
                frames += 1
                if frame["kind"] == "request" and frame["api_key"] == 0:
                    requests += 1
                    records += frame["records"] or 0
        tshark_frames = sum(1 for _ in open(work / "tshark.tsv"))

        print(f"capture: {pcap} — {packets:,} packets, {size_mb:.1f} MB, {produce_requests:,} Produce requests "
              f"({truth['records_produced_total']:,} records acknowledged)")
        print(f"kshock decode --json: {kshock_s:6.2f} s  {packets / kshock_s:>10,.0f} packets/s  "
              f"{frames / kshock_s:>10,.0f} frames/s  {size_mb / kshock_s:6.1f} MB/s  ({frames:,} frames)")
        print(f"tshark -T fields:     {tshark_s:6.2f} s  {packets / tshark_s:>10,.0f} packets/s  "
              f"{tshark_frames / tshark_s:>10,.0f} lines/s   {size_mb / tshark_s:6.1f} MB/s  ({tshark_frames:,} lines)")
        print(f"kshock, pure Python:  {pure_s:6.2f} s  {packets / pure_s:>10,.0f} packets/s  "
              f"(compiled lane {'built' if LANE_BUILT else 'NOT BUILT'}; output "
              f"{'identical' if same else 'DIFFERENT'})")
        print(f"ratio (tshark time / kshock time): {tshark_s / kshock_s:.2f}x   target >= 5x"
              f"   (pure Python: {tshark_s / pure_s:.2f}x)")
        complete = requests == produce_requests and records >= truth["records_produced_total"]
        print(f"records counted by kshock: {records:,} in {requests:,} Produce requests — "
              + ("every request and record accounted for" if complete else "MISMATCH with the ground truth"))
        return 0 if complete and same else 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.chdir(ROOT)
    raise SystemExit(main())
