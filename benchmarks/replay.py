"""Benchmark: `kshock replay` against `kshock decode` on the same capture (target: replay at
least half as fast as decode, i.e. ratio decode_s / replay_s >= 0.5).

Times, in one process and on one file, (1) decoding every frame (`listing.open_run(...)` and
its events, as `kshock decode` does without formatting) and (2) `replay.coverage.replay(...)` with each
example rule file and the real compiler (decode + intent on every frame + the emulated kernel on every packet). The
capture is lab-mixed.pcap repeated --copies times (client ports shifted per copy, so every copy
is a set of new connections), or --pcap FILE.

    .venv/bin/python benchmarks/replay.py [--copies 20] [--pcap FILE] [--rules rules/x.yaml ...]
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kshock.replay import listing  # noqa: E402
from kshock.capture.reader import CaptureReader  # noqa: E402
from kshock.replay.coverage import load_rule_file, replay  # noqa: E402


def enlarged(source: Path, copies: int, out: Path) -> int:
    """`source` (an Ethernet pcap) `copies` times over, client ports shifted by 1000 per copy."""
    reader = CaptureReader(str(source))
    packets = list(reader)
    reader.close()
    count = 0
    with open(out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        span = packets[-1][0] - packets[0][0] + 1
        for copy in range(copies):
            for ts, _, raw in packets:
                data = bytearray(raw)
                if data[12:14] == b"\x08\x00" and data[23] == 6:
                    at = 14 + (data[14] & 15) * 4
                    sport, dport = struct.unpack_from("!HH", data, at)
                    if dport == 9092:
                        struct.pack_into("!H", data, at, (sport + 1000 * copy) % 65536)
                    elif sport == 9092:
                        struct.pack_into("!H", data, at + 2, (dport + 1000 * copy) % 65536)
                stamp = ts + copy * span
                f.write(struct.pack("<IIII", int(stamp), int(stamp % 1 * 1e6), len(data), len(data)))
                f.write(data)
                count += 1
    return count


def time_decode(path: Path, json_lines: bool) -> float:
    """`kshock decode --json` without the process start (json_lines), or the decoding alone."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        run = listing.open_run(str(path), [9092])
        if json_lines:
            with open(os.devnull, "w") as sink:
                listing.write_json_lines(run, sink)
        else:
            for _ in run.events():
                pass
        best = min(best, time.perf_counter() - started)
    return best


def time_replay(path: Path, rules: Path) -> tuple[float, object]:
    specs = load_rule_file(rules)
    best, report = float("inf"), None
    for _ in range(3):
        started = time.perf_counter()
        report = replay(path, specs)
        best = min(best, time.perf_counter() - started)
    return best, report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pcap", type=Path)
    parser.add_argument("--copies", type=int, default=20)
    parser.add_argument("--rules", type=Path, nargs="*", default=sorted((ROOT / "rules").glob("*.yaml")))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.pcap
        if path is None:
            path = Path(tmp) / "mixed-x.pcap"
            enlarged(ROOT / "captures" / "lab-mixed.pcap", args.copies, path)
        packets = sum(1 for _ in CaptureReader(str(path)))
        decode_s = time_decode(path, json_lines=True)
        core_s = time_decode(path, json_lines=False)
        print(f"{path.name}: {packets} packets")
        print(f"  kshock decode --json        {decode_s:7.3f} s  {packets / decode_s:>9,.0f} packets/s  (the target's baseline)")
        print(f"  decoding alone, no output   {core_s:7.3f} s  {packets / core_s:>9,.0f} packets/s")
        worst = worst_core = float("inf")
        for rules in args.rules:
            replay_s, report = time_replay(path, rules)
            ratio = decode_s / replay_s
            worst = min(worst, ratio)
            worst_core = min(worst_core, core_s / replay_s)
            kernel_rules = sum(len(c.rules) for c in report.ruleset.chains)
            print(f"  replay {rules.name:<22} {replay_s:7.3f} s  {packets / replay_s:>9,.0f} packets/s  "
                  f"ratio {ratio:.2f} (vs decoding alone {core_s / replay_s:.2f})  ({kernel_rules} kernel rules, {report.rules[0].intent_frames} intent frames)")
        print(f"worst ratio decode/replay: {worst:.2f} (target >= 0.5): {'OK' if worst >= 0.5 else 'TOO SLOW'}; "
              f"against decoding alone: {worst_core:.2f}")
        return 0 if worst >= 0.5 else 1


if __name__ == "__main__":
    sys.exit(main())
