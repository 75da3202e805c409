"""Apply and revert of a 20-rule set (target: each < 100 ms), and what 20 installed rules that
match nothing cost an unaffected confluent-kafka producer (target: < 5% throughput).

    sudo .venv/bin/python benchmarks/apply.py [--lab NAME] [--seconds 2] [--pairs 5]

Makes its own lab (removed at the end) unless --lab names one that is up. The rules go into
the broker's namespace (INPUT, as a broker-side fault would); the producer is the flood
workload (librdkafka, linger.ms=0, batch.num.messages=1: one small Produce per record, as many
packets per second as it can), in client c1. Runs without and with the rules alternate, in
pairs, in the same lab, so drift in the machine's load hits both sides alike.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kshock.apply import faults
from kshock.apply.scope import Scope
from kshock.conditions import parse_condition
from kshock.rules.compile import compile_rules
from kshock.rules.spec import Action, RuleSpec

RULES = 20


def twenty_rules() -> list[RuleSpec]:
    """Rules a broker-side chaos run might hold, none of which matches the producer under test
    (client id "bench-flood"): other clients' Produce and Fetch, other topics, other APIs."""
    specs = []
    for i in range(RULES):
        text = [f'api == Produce and client_id == "other-producer-{i}"',
                f'api == Fetch and topic == "other-topic-{i}" and api_version < 13',
                f'api == JoinGroup and client_id == "consumer-{i}"',
                f"api == Metadata and correlation_id == {1_000_000 + i}"][i % 4]
        specs.append(RuleSpec(f"r{i}", parse_condition(text), Action("drop")))
    return specs


def time_apply_revert(scope: Scope, rounds: int) -> tuple[list[float], list[float], int]:
    expires = time.time() + 600
    ruleset = compile_rules(twenty_rules(), "bench20",
                            expires_at=time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(expires)))
    kernel_rules = sum(len(chain.rules) for chain in ruleset.chains) + len(ruleset.jumps)
    applied, reverted = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        record = faults.install(ruleset, scope, expires, {"rules": kernel_rules})
        middle = time.perf_counter()
        faults.remove(record)
        applied.append((middle - started) * 1000)
        reverted.append((time.perf_counter() - middle) * 1000)
    return applied, reverted, kernel_rules


def time_rule_file(scope: Scope, rounds: int) -> dict[str, list[float]]:
    """A 20-rule file as `kshock apply FILE` installs it: one fault per rule (each revertable by
    name), all in one iptables-restore run (faults.install_many), and `revert --all` taking them
    out together (faults.remove_many) — against one run per rule, both ways."""
    expires = time.time() + 600
    stop = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(expires))
    claims = faults.Claims(scope)  # one fault per rule: each with connmark bits of its own
    planned = [faults.Planned(claims.compile([spec], spec.name, expires_at=stop), expires, {}) for spec in twenty_rules()]
    times: dict[str, list[float]] = {"apply together": [], "revert together": [], "apply one by one": [],
                                     "revert one by one": []}
    for _ in range(rounds):
        started = time.perf_counter()
        records = faults.install_many(planned, scope)
        middle = time.perf_counter()
        faults.remove_many(records)
        times["apply together"].append((middle - started) * 1000)
        times["revert together"].append((time.perf_counter() - middle) * 1000)
        started = time.perf_counter()
        records = [faults.install(p.ruleset, scope, p.expires_at, {}) for p in planned]
        middle = time.perf_counter()
        for record in records:
            faults.remove(record)
        times["apply one by one"].append((middle - started) * 1000)
        times["revert one by one"].append((time.perf_counter() - middle) * 1000)
    return times


def flood(client_ns: str, bootstrap: str, seconds: float, report: Path) -> float:
    """Records per second the flood producer got acknowledged, from its start to its last
    acknowledgement. It offers 20,000 records/s for `seconds`, more than the lab's broker takes
    (~8,000/s here), so the queue drains at the pace of the broker's host: the side the rules
    load."""
    argv = [sys.executable, "-m", "kshock.workloads", "rdk-producer", "--bootstrap", bootstrap, "--client-id",
            "bench-flood", "--topic", "bench-flood", "--duration", str(seconds), "--report", str(report),
            "--message-size", "100", "--linger-ms", "0", "--batch-num-messages", "1", "--rate", "20000"]
    subprocess.run(["ip", "netns", "exec", client_ns, *argv], capture_output=True, timeout=seconds + 60)
    data = json.loads(report.read_text())
    if data["errors"]:
        raise SystemExit(f"benchmarks/apply.py: the producer failed: {data['errors'][:2]}")
    return sum(data["produced"].values()) / (data["ended"] - data["started"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab", help="use this lab (up already) instead of making one")
    parser.add_argument("--seconds", type=float, default=2.0, help="how long each producer run offers records (default 2)")
    parser.add_argument("--pairs", type=int, default=5, help="without/with pairs (default 5)")
    parser.add_argument("--rounds", type=int, default=20, help="apply+revert rounds (default 20)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("benchmarks/apply.py: needs root (namespaces, iptables)", file=sys.stderr)
        return 2
    lab = args.lab or f"bap{os.getpid() % 100000}"
    kshock = [sys.executable, "-m", "kshock"]
    if not args.lab:
        subprocess.run([*kshock, "lab", "up", "--name", lab, "--clients", "1"], check=True, capture_output=True)
    try:
        state = json.loads(subprocess.run([*kshock, "lab", "status", "--name", lab, "--json"], check=True,
                                          capture_output=True, text=True).stdout)[0]
        scope = Scope(name=state["broker"]["netns"])
        client_ns = state["clients"][0]["netns"]
        bootstrap = state["bootstrap"]

        applied, reverted, kernel_rules = time_apply_revert(scope, args.rounds)
        print(f"apply/revert of a {RULES}-rule set ({kernel_rules} kernel rules, one iptables-restore each), "
              f"{args.rounds} rounds in {scope.describe()}:")
        print(f"  apply   median {statistics.median(applied):6.1f} ms   max {max(applied):6.1f} ms   (target < 100 ms)")
        print(f"  revert  median {statistics.median(reverted):6.1f} ms   max {max(reverted):6.1f} ms   (target < 100 ms)")

        times = time_rule_file(scope, max(3, args.rounds // 4))
        print(f"a {RULES}-rule file (one fault per rule), {max(3, args.rounds // 4)} rounds, median:")
        print("  " + "   ".join(f"{what} {statistics.median(ms):6.1f} ms" for what, ms in times.items()))

        with tempfile.TemporaryDirectory() as tmp:
            report = Path(tmp) / "flood.json"
            flood(client_ns, bootstrap, 1.0, report)  # warm up: topic created, broker caches hot
            expires = time.time() + 3600
            ruleset = compile_rules(twenty_rules(), "bench20",
                                    expires_at=time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(expires)))
            without, with_rules, hits = [], [], 0
            for pair in range(args.pairs):
                # ABBA order: a slow drift of the machine's load does not favour either side.
                for loaded_run in ((False, True) if pair % 2 == 0 else (True, False)):
                    if not loaded_run:
                        without.append(flood(client_ns, bootstrap, args.seconds, report))
                        continue
                    record = faults.install(ruleset, scope, expires, {})
                    try:
                        with_rules.append(flood(client_ns, bootstrap, args.seconds, report))
                        hits += _matched(scope, record)
                    finally:
                        faults.remove(record)
        base, loaded = statistics.median(without), statistics.median(with_rules)
        cost = statistics.median((a - b) / a * 100 for a, b in zip(without, with_rules))
        print(f"flood producer, {args.pairs} pairs of {args.seconds:g} s runs (records/s):")
        print(f"  no rules        {'  '.join(f'{r:8.0f}' for r in without)}   median {base:8.0f}")
        print(f"  {RULES} rules       {'  '.join(f'{r:8.0f}' for r in with_rules)}   median {loaded:8.0f}")
        print(f"  cost {cost:+.1f}% throughput, median of the pairs (target < 5%); packets the rules acted on: {hits}")
        ok = max(statistics.median(applied), statistics.median(reverted)) < 100 and cost < 5 and hits == 0
        return 0 if ok else 1
    finally:
        if not args.lab:
            subprocess.run([*kshock, "lab", "down", "--name", lab], capture_output=True)


def _matched(scope: Scope, record: faults.FaultRecord) -> int:
    """Packets that reached a DROP (must be 0: the rules match nothing of this producer)."""
    from kshock.apply import netfilter

    backend = netfilter.detect_backend()
    total = 0
    for table, chains in record.tables.items():
        for rules in netfilter.counters(backend, scope, table, set(chains)).values():
            total += sum(packets for packets, _, text in rules if text.endswith("-j DROP"))
    return total


if __name__ == "__main__":
    sys.exit(main())
