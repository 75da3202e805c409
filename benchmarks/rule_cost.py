"""Benchmark: what 20 installed kshock rules that match nothing cost the kernel per Kafka packet.

benchmarks/apply.py measures the same cost as a producer's lost throughput, which on a 2-core
machine (producer, broker and the rules' softirq work sharing the CPUs) moves by +-10% from one
run pair to the next. This measures the cost itself: the client -> broker packets of a real
librdkafka flood (the lab's `flood` recording: small Produce requests) are sent with a raw
socket from one throwaway namespace through a second one that forwards them onto a veth that
leads nowhere, with and without the 20-rule set of benchmarks/apply.py in the forwarding
namespace's FORWARD chain (the rules' target direction: forward). The CPU time the whole
machine spends (/proc/stat, all CPUs) is compared per packet; runs alternate.

    sudo .venv/bin/python benchmarks/rule_cost.py [--pcap flood.pcap] [--packets 300000] [--rounds 3] [--as-file]

Prints microseconds of CPU per packet without and with the rules, the difference, and what
that difference is at the flood's rate. Namespaces are always removed.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from apply import twenty_rules  # noqa: E402

from kshock.capture.reader import CaptureReader  # noqa: E402
from kshock.replay.kernel import fix_tcp_checksum  # noqa: E402
from kshock.rules.compile import compile_rules  # noqa: E402
from kshock.rules.render import render_restore_many  # noqa: E402
from kshock.rules.spec import Target  # noqa: E402

SENDER, RECEIVER, FAR = "198.19.241.1", "198.19.241.2", "198.19.240.9"


def sh(*argv: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kw)


def netns(name: str, *argv: str, **kw) -> subprocess.CompletedProcess:
    return sh("ip", "netns", "exec", name, *argv, **kw)


def make_pair(tag: str) -> tuple[str, str]:
    a, b = f"{tag}a", f"{tag}b"
    for name in (a, b):
        sh("ip", "netns", "add", name)
        netns(name, "ip", "link", "set", "lo", "up")
    sh("ip", "link", "add", "rc0", "netns", a, "type", "veth", "peer", "name", "rc1", "netns", b)
    sh("ip", "link", "add", "rc2", "netns", b, "type", "veth", "peer", "name", "rc3", "netns", b)
    netns(a, "ip", "addr", "add", f"{SENDER}/24", "dev", "rc0")
    netns(b, "ip", "addr", "add", f"{RECEIVER}/24", "dev", "rc1")
    netns(b, "ip", "addr", "add", "198.19.240.1/24", "dev", "rc2")
    for name, link in ((a, "rc0"), (b, "rc1"), (b, "rc2"), (b, "rc3")):
        netns(name, "ip", "link", "set", link, "up")
    netns(a, "ip", "route", "add", "198.19.240.0/24", "via", RECEIVER)
    netns(b, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    netns(b, "ip", "neigh", "add", FAR, "lladdr", "02:00:00:00:00:09", "dev", "rc2")  # no ARP for the dead end
    netns(b, "iptables", "-P", "FORWARD", "ACCEPT")  # the filter table is there in both kinds of run
    return a, b


def remove_pair(a: str, b: str) -> None:
    for name in (a, b):
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def client_packets(pcap: Path, port: int = 9092) -> list[bytes]:
    """The IPv4 packets with payload to `port`, re-addressed SENDER -> FAR, TCP checksum fixed."""
    out = []
    with CaptureReader(pcap) as reader:
        for _, _, raw in reader:
            if raw[12:14] != b"\x08\x00" or raw[23] != 6:
                continue
            ip = raw[14:14 + struct.unpack_from(">H", raw, 16)[0]]
            ihl = (ip[0] & 15) * 4
            if struct.unpack_from(">H", ip, ihl + 2)[0] != port or len(ip) <= ihl + (ip[ihl + 12] >> 4) * 4:
                continue
            out.append(readdress(ip))
    return out


def readdress(ip: bytes) -> bytes:
    """SENDER -> FAR, with the TCP checksum to match (the kernel fills in the IP header's)."""
    ihl = (ip[0] & 15) * 4
    return fix_tcp_checksum(ip[:12] + socket.inet_aton(SENDER) + socket.inet_aton(FAR) + ip[20:ihl] + ip[ihl:])


def busy_seconds() -> float:
    """CPU time spent by the whole machine (all CPUs, every state but idle and iowait)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def send(namespace: str, packets: list[bytes], count: int) -> tuple[float, float]:
    """(CPU seconds, wall seconds) to push `count` packets (the list, round and round)."""
    from kshock.host.netns import entered

    with entered(namespace):
        raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    n = len(packets)
    with raw:
        sendto = raw.sendto
        target = (FAR, 0)
        busy, wall = busy_seconds(), time.perf_counter()
        for i in range(count):
            sendto(packets[i % n], target)
        return busy_seconds() - busy, time.perf_counter() - wall


def forwarded(namespace: str) -> int:
    """Packets that left towards the dead end (so: through FORWARD, whatever the rules)."""
    return int(netns(namespace, "cat", "/sys/class/net/rc2/statistics/tx_packets").stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pcap", type=Path, help="the flood recording (default: record one in a lab)")
    parser.add_argument("--packets", type=int, default=300_000, help="packets per run (default 300000)")
    parser.add_argument("--rounds", type=int, default=3, help="runs without and with the rules (default 3)")
    parser.add_argument("--rate", type=float, default=9000, help="Produce packets/s to express the cost at")
    parser.add_argument("--as-file", action="store_true", help="load the 20 rules as `kshock apply FILE` does: one "
                        "fault (rule set, chain, jump) per rule, instead of one rule set")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("benchmarks/rule_cost.py: needs root (namespaces, iptables)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        pcap = args.pcap
        if pcap is None:
            from decode import record_flood

            pcap, _ = record_flood(Path(tmp))
        packets = client_packets(pcap)
        if not packets:
            print(f"no Kafka packets with payload to port 9092 in {pcap}", file=sys.stderr)
            return 2
        specs = [replace(spec, target=Target(direction="forward")) for spec in twenty_rules()]
        stop = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 3600))
        rulesets = [compile_rules([spec], spec.name, expires_at=stop) for spec in specs] if args.as_file \
            else [compile_rules(specs, "cost20", expires_at=stop)]
        kernel_rules = sum(len(chain.rules) for rs in rulesets for chain in rs.chains) + \
            sum(len(rs.jumps) for rs in rulesets)
        a, b = make_pair(f"kscost{os.getpid() % 10000}")
        try:
            per_packet: dict[str, list[float]] = {"without": [], "with": []}
            send(a, packets, 20_000)  # warm up (neighbour entries, caches)
            for _ in range(args.rounds):
                for loaded in (False, True):
                    if loaded:
                        netns(b, "iptables-restore", "--noflush", input=render_restore_many(rulesets))
                    before = forwarded(b)
                    cpu, wall = send(a, packets, args.packets)
                    passed = forwarded(b) - before
                    if passed < args.packets:  # (plus the odd IPv6 neighbour message)
                        print(f"only {passed} of {args.packets} packets were forwarded", file=sys.stderr)
                        return 1
                    per_packet["with" if loaded else "without"].append(cpu / args.packets * 1e6)
                    if loaded:
                        netns(b, "iptables", "-F")
                        netns(b, "iptables", "-X")
            without, with_rules = statistics.median(per_packet["without"]), statistics.median(per_packet["with"])
            cost = with_rules - without
            print(("20 faults, one per rule (as `kshock apply FILE` loads a file); " if args.as_file else
                   "one 20-rule set; ") +
                  f"{len(packets):,} client -> broker packets of {pcap.name} (Produce requests), sent round and round, "
                  f"{args.packets:,} a run, {args.rounds} runs each way:")
            print(f"  no rules                 {'  '.join(f'{x:5.2f}' for x in per_packet['without'])} "
                  f"us CPU/packet   median {without:5.2f}")
            print(f"  20 rules ({kernel_rules} kernel rules) {'  '.join(f'{x:5.2f}' for x in per_packet['with'])} "
                  f"us CPU/packet   median {with_rules:5.2f}")
            print(f"  the rules cost {cost:.2f} us per packet: at {args.rate:,.0f} Produce packets/s, "
                  f"{cost * args.rate / 1e4:.1f}% of one CPU")
        finally:
            remove_pair(a, b)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
