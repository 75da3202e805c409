"""Benchmark: does `kshock shell`'s live capture keep up with a flood of Produce requests?

The issue's bar: live capture keeps up with a confluent-kafka producer sending >= 20,000
requests/s for 10 s with zero kernel drops. Both modes measure the shell's own capture path:
kshock.capture.live.LiveCapture (AF_PACKET, kernel BPF filter, PACKET_STATISTICS) emptied by
kshock.shell.sources.LiveSource's reader thread and decoded by its decoder thread into a
kshock.shell.session.Session (kshock.wire.Sniffer underneath) — what the shell ingests, not
only what the socket receives.

producers  A lab of its own; N confluent-kafka producers (linger.ms=0, batch.num.messages=1:
           one small Produce request per record) in the lab's client namespaces for --duration
           seconds, captured on the broker's interface. Checked against what every producer
           itself reports having sent. On a 2-core machine the producers and the broker are
           CPU-bound well below 20,000 requests/s, so this mode alone cannot show the bar.
replay     The load of a REAL librdkafka producer at a fixed, higher rate: the lab's `flood`
           scenario is recorded once (`kshock lab record flood`, tcpdump on the broker's
           interface: one librdkafka producer, linger.ms=0, batch.num.messages=1), then
           tcpreplay sends its packets at --pps out of one end of a veth pair whose other end
           sits in a throwaway namespace where the live capture listens. The packets keep the
           198.18.x.y addresses this run's lab assigned; nothing in the capture namespace has an
           address or a route, so the kernel only hands them to the packet socket. To offer
           10 s at 40,000 requests/s the recording is repeated back to back, each copy with its
           own client ports (new TCP connections, SYN to FIN; checksums updated) so the Sniffer
           decodes every copy instead of dropping it as a retransmission. The rate is stepped
           (--rates) and the highest rate with zero drops is reported.

Offered load is counted, not assumed: the recording is decoded offline once to know the Kafka
requests each packet completes (checked against the lab's ground truth), so the requests in the
first N packets tcpreplay says it sent are exact; offered requests/s divides them by tcpreplay's
own send time, and the kernel's packet count (PACKET_STATISTICS) must equal tcpreplay's.

    sudo .venv/bin/python benchmarks/live_capture.py                 # both modes
    sudo .venv/bin/python benchmarks/live_capture.py --mode replay --rates 20000,30000,40000
    sudo .venv/bin/python benchmarks/live_capture.py --mode replay --pcap flood.pcap  # reuse a recording
    sudo .venv/bin/python benchmarks/live_capture.py --mode producers [--producers 3] [--rate 9000]

Labs and namespaces are always removed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ANCHOR = 20_000  # requests/s: the bar


def kshock(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "kshock", *args], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)


def run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def drain(session, quiet_s: float = 1.0, limit_s: float = 120.0) -> None:
    """Wait until the session has decoded every packet the kernel passed (the reader updates
    session.kernel_packets twice a second) and no new packet came for `quiet_s`."""
    start = still = time.monotonic()
    last = -1
    while time.monotonic() - start < limit_s:
        time.sleep(0.05)
        kernel = session.kernel_packets
        if kernel != last:
            last, still = kernel, time.monotonic()
        elif session.sniffer.stats.packets >= kernel and time.monotonic() - still >= quiet_s:
            return


# -- mode 1: live librdkafka producers ---------------------------------------------------------

def producer_mode(lab: str, args: argparse.Namespace) -> dict:
    from kshock.capture.live import LiveCapture
    from kshock.lab import state
    from kshock.shell.sources import LiveSource
    from kshock.shell.session import Session

    source = None
    processes: list[subprocess.Popen] = []
    out = Path(tempfile.mkdtemp(prefix="kshock-bench-"))
    try:
        plan = state.load(lab).plan
        session = Session((plan.port,), max_frames=1_000_000, max_packets=50_000)  # every frame: the rate below
        source = LiveSource(LiveCapture({plan.port}, interface=plan.broker.ifname, netns=plan.broker.netns), session)
        source.start()
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
        drain(session)  # the decoder may be seconds behind: stop() would lose what is still queued
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
        drops = stats.drops + source.backlog_drops
        ok = drops == 0 and session.requests == sent_total
        print(f"\n== producers: lab {lab}, {args.producers} librdkafka producers x {args.rate:g} records/s for "
              f"{args.duration:g} s (one Produce request per record)")
        print(f"  producers report sending {sent_total:,} requests ({sent_produce:,} Produce)")
        print(f"  captured and decoded      {session.requests:,} requests ({produce.requests if produce else 0:,} "
              f"Produce), {session.responses:,} responses, {session.sniffer.stats.packets:,} packets")
        print(f"  Produce requests/s        {best10 / 10:,.0f} over the busiest 10 s, peak second "
              f"{max(per_second.values(), default=0):,}; {rate:,.0f} averaged over the {window:.1f} s from first to last")
        print(f"  kernel (PACKET_STATISTICS): {stats.packets:,} packets passed the filter, {stats.drops:,} dropped"
              f" (+{source.backlog_drops} past the shell's backlog bound)")
        print(f"  gaps in TCP streams       {session.sniffer.stats.gaps} ({session.sniffer.stats.gap_bytes:,} bytes)")
        print(f"  capture+decode CPU        {cpu:.1f} s in {wall:.1f} s ({100 * cpu / wall:.0f}% of one core)")
        print("  per client: " + ", ".join(f"{c} {n:,} captured / {sum(truth.get(c, {}).values()):,} sent"
                                         for c, n in sorted(per_client.items())))
        print("  keeps up: " + ("yes — every request sent was captured and decoded, zero kernel drops" if ok else "NO"))
        return {"busiest10_rps": best10 / 10, "peak_second": max(per_second.values(), default=0), "drops": drops,
                "sent": sent_total, "decoded": session.requests, "gaps": session.sniffer.stats.gaps, "ok": ok}
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
        shutil.rmtree(out, ignore_errors=True)


# -- mode 2: a real librdkafka capture replayed at a fixed rate --------------------------------

_PCAP_HEADER = struct.Struct("<IHHiIII")
_RECORD = struct.Struct("<IIII")
_PCAP_MAGICS = {0xA1B2C3D4: 1e-6, 0xA1B23C4D: 1e-9}


@dataclass
class Recording:
    """A pcap of real Kafka traffic and, per packet, the Kafka requests it completes."""

    path: Path
    header: bytes
    records: list[tuple[int, int, bytes]]  # (seconds, fraction, frame): tcpdump's order
    port: int
    tick: float  # seconds per timestamp fraction unit
    requests_at: list[int] = field(default_factory=list)  # requests completed by packet i
    apis: Counter = field(default_factory=Counter)
    truth: int | None = None  # requests the lab's producers reported (the sidecar)

    @property
    def requests(self) -> int:
        return sum(self.requests_at)


def load_recording(path: Path, port: int) -> Recording:
    from kshock.wire.model import KafkaFrame
    from kshock.wire.sniffer import Sniffer

    data = path.read_bytes()
    if len(data) < _PCAP_HEADER.size:
        raise SystemExit(f"{path}: not a pcap file")
    magic, _, _, _, _, _, linktype = _PCAP_HEADER.unpack_from(data)
    if magic not in _PCAP_MAGICS or linktype != 1:
        raise SystemExit(f"{path}: need a little-endian classic pcap of Ethernet frames (tcpdump -w on Linux)")
    records, at = [], _PCAP_HEADER.size
    while at + _RECORD.size <= len(data):
        sec, frac, caplen, wirelen = _RECORD.unpack_from(data, at)
        at += _RECORD.size
        if caplen != wirelen:
            raise SystemExit(f"{path}: packet {len(records) + 1} was cut at {caplen} bytes; record with -s 0")
        records.append((sec, frac, data[at:at + caplen]))
        at += caplen
    rec = Recording(path, data[:_PCAP_HEADER.size], records, port, _PCAP_MAGICS[magic])
    sniffer = Sniffer((port,))
    for sec, frac, raw in records:
        n = 0
        for event in sniffer.feed(sec + frac * rec.tick, 1, raw):
            if isinstance(event, KafkaFrame) and event.is_request:
                n += 1
                rec.apis[event.api or f"key {event.api_key}"] += 1
        rec.requests_at.append(n)
    tail = [e for e in sniffer.finish() if isinstance(e, KafkaFrame) and e.is_request]
    if tail:  # a request cut off by the end of the recording: never offered whole
        print(f"  ({len(tail)} request(s) incomplete at the end of the recording: not counted)")
    sidecar = path.with_suffix(".json")
    if sidecar.exists():
        rec.truth = len(json.loads(sidecar.read_text()).get("requests", []))
    return rec


def build_replay_file(rec: Recording, copies: int, out: Path) -> int:
    """The recording `copies` times back to back, copy k's client ports moved by k * stride
    (each copy: new connections, SYN to FIN; TCP checksums updated incrementally; timestamps
    continue). Kafka-port side, addresses and MACs are untouched. Returns the packet count."""
    client_ports = set()
    for _, _, raw in rec.records:
        ihl = (raw[14] & 0xF) * 4
        sport, dport = struct.unpack_from("!HH", raw, 14 + ihl)
        client_ports.add(dport if sport == rec.port else sport)
    low, high = min(client_ports), max(client_ports)
    stride = high - low + 1
    if 1024 + copies * stride > 65535 - 1024:
        raise SystemExit(f"too many copies ({copies}) for the client port span {low}-{high}")

    def moved(p: int, k: int) -> int:
        return (p - 1024 + k * stride) % (65536 - 2048) + 1024

    for k in range(copies):
        taken = {moved(p, k) for p in client_ports}
        if rec.port in taken:
            raise SystemExit(f"copy {k} would move a client port onto the Kafka port {rec.port}")
    first = rec.records[0][0] + rec.records[0][1] * rec.tick
    span = rec.records[-1][0] + rec.records[-1][1] * rec.tick - first + 0.001
    units = round(1 / rec.tick)
    with open(out, "wb") as f:
        f.write(rec.header)
        for k in range(copies):
            shift = k * span
            for sec, frac, raw in rec.records:
                frame = bytearray(raw)
                if k:
                    ihl = (frame[14] & 0xF) * 4
                    tcp = 14 + ihl
                    sport, dport = struct.unpack_from("!HH", frame, tcp)
                    at = tcp + (2 if sport == rec.port else 0)
                    old = dport if sport == rec.port else sport
                    new = moved(old, k)
                    struct.pack_into("!H", frame, at, new)
                    _fix_checksum(frame, tcp + 16, old, new)
                t = sec + frac * rec.tick + shift
                whole = int(t)
                f.write(_RECORD.pack(whole, min(units - 1, round((t - whole) * units)), len(frame), len(frame)))
                f.write(frame)
    return copies * len(rec.records)


def _fix_checksum(frame: bytearray, at: int, old: int, new: int) -> None:
    """RFC 1624: HC' = ~(~HC + ~m + m'). A checksum the capture left partial (offloaded)
    stays exactly as wrong as it was."""
    (hc,) = struct.unpack_from("!H", frame, at)
    total = (~hc & 0xFFFF) + (~old & 0xFFFF) + new
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    struct.pack_into("!H", frame, at, ~total & 0xFFFF)


class Sandbox:
    """Two throwaway namespaces joined by a veth pair: tcpreplay sends from one end, the live
    capture listens on the other. No addresses, no routes, IPv6 off: the replayed packets reach
    the packet socket and are then discarded (not for this host, not forwarded)."""

    def __init__(self, tag: str) -> None:
        self.tx, self.cap = f"kshock-{tag}-tx", f"kshock-{tag}-cap"
        self.tx_if, self.cap_if = f"{tag}a"[:15], f"{tag}b"[:15]

    def __enter__(self) -> Sandbox:
        try:
            for ns in (self.tx, self.cap):
                run("ip", "netns", "add", ns)
                run("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
                    "net.ipv6.conf.default.disable_ipv6=1", "net.ipv4.ip_forward=0")
            run("ip", "link", "add", self.tx_if, "netns", self.tx, "type", "veth", "peer", "name", self.cap_if,
                "netns", self.cap)
            for ns, ifname in ((self.tx, self.tx_if), (self.cap, self.cap_if)):
                run("ip", "-n", ns, "link", "set", ifname, "txqueuelen", "10000", "up")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for ns in (self.tx, self.cap):  # the veth pair goes with its namespaces
            subprocess.run(["ip", "netns", "delete", ns], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@dataclass
class Step:
    target: int  # requests/s asked for
    pps: float
    limit: int
    sent: int = 0  # packets, tcpreplay's count
    failed: int = 0
    send_s: float = 0.0  # tcpreplay's own "sent in X seconds"
    offered: int = 0  # Kafka requests in the packets sent
    kernel_packets: int = 0
    drops: int = 0
    backlog_drops: int = 0
    backlog_peak: int = 0  # packets the shell's reader held for its decoder (sampled)
    decoded: int = 0  # requests the shell session counted
    decoded_in_window: int = 0  # ... by the time tcpreplay finished
    produce: int = 0
    responses: int = 0
    session_packets: int = 0
    gaps: int = 0
    gap_bytes: int = 0
    lag_s: float = 0.0  # after tcpreplay ended, until the session had decoded everything
    cpu_s: float = 0.0
    wall_s: float = 0.0
    per_second: list = field(default_factory=list)  # (offered-ish packets, decoded requests) per second

    @property
    def offered_rps(self) -> float:
        return self.offered / self.send_s if self.send_s else 0.0

    @property
    def decoded_rps(self) -> float:
        return self.decoded_in_window / self.send_s if self.send_s else 0.0

    @property
    def ok(self) -> bool:
        return (self.drops == 0 and self.backlog_drops == 0 and self.failed == 0 and self.gaps == 0
                and self.kernel_packets == self.sent and self.decoded == self.offered)


def replay_step(rec: Recording, replay_file: Path, box: Sandbox, target: int, duration: float,
                pps_multi: int, nice: int) -> Step:
    from kshock.capture.live import LiveCapture
    from kshock.shell.sources import LiveSource
    from kshock.shell.session import Session

    per_request = len(rec.records) / rec.requests
    step = Step(target, target * per_request, int(target * per_request * duration))
    session = Session((rec.port,))  # the shell's own bounds (kshock shell makes Session(ports))
    source = LiveSource(LiveCapture({rec.port}, interface=box.cap_if, netns=box.cap), session)
    samples: list[tuple[float, int, int]] = []
    backlog_peak = [0]
    sampling = threading.Event()

    def sample() -> None:  # what the shell has ingested, twice a second, from outside its threads
        while not sampling.wait(0.5):
            samples.append((time.monotonic(), session.kernel_packets, session.requests))
            backlog_peak[0] = max(backlog_peak[0], source._pending)  # read but not yet decoded

    sampler = threading.Thread(target=sample, daemon=True)
    source.start()
    try:
        time.sleep(0.3)
        cpu0, wall0 = time.process_time(), time.monotonic()
        sampler.start()
        argv = ["nice", "-n", str(nice), "ip", "netns", "exec", box.tx, "tcpreplay", "-i", box.tx_if,
                "--preload-pcap", "--no-flow-stats", f"--pps={step.pps:.0f}", f"--limit={step.limit}"]
        if pps_multi > 1:
            argv.append(f"--pps-multi={pps_multi}")
        done = subprocess.run([*argv, str(replay_file)], capture_output=True, text=True)
        sent_at = time.monotonic()
        decoded_at_end = session.requests
        if done.returncode != 0:
            raise SystemExit(f"tcpreplay failed: {done.stderr.strip() or done.stdout.strip()}")
        text = done.stdout + done.stderr
        found = re.search(r"Actual: (\d+) packets \(\d+ bytes\) sent in ([\d.]+) seconds", text)
        if not found:
            raise SystemExit(f"tcpreplay said nothing about what it sent:\n{text}")
        step.sent, step.send_s = int(found.group(1)), float(found.group(2))
        failed = re.search(r"Failed packets:\s+(\d+)", text)
        step.failed = int(failed.group(1)) if failed else 0
        # the session catches up: wait until it has decoded every packet sent (or stops moving)
        last, still = -1, time.monotonic()
        while session.sniffer.stats.packets < step.sent:
            now = time.monotonic()
            if session.sniffer.stats.packets != last:
                last, still = session.sniffer.stats.packets, now
            elif now - still > 3.0 or now - sent_at > 120:
                break
            time.sleep(0.005)
        step.lag_s = time.monotonic() - sent_at
        step.cpu_s, step.wall_s = time.process_time() - cpu0, time.monotonic() - wall0
    finally:
        sampling.set()
        source.stop()
    step.decoded_in_window = decoded_at_end
    step.backlog_peak = backlog_peak[0]
    full, rest = divmod(step.sent, len(rec.records))
    step.offered = full * rec.requests + sum(rec.requests_at[:rest])
    stats = source.capture.totals
    step.kernel_packets, step.drops, step.backlog_drops = stats.packets, stats.drops, source.backlog_drops
    with session.lock:
        step.decoded, step.responses = session.requests, session.responses
        produce = session.by_api.get("Produce")
        step.produce = produce.requests if produce else 0
        step.session_packets = session.sniffer.stats.packets
        step.gaps, step.gap_bytes = session.sniffer.stats.gaps, session.sniffer.stats.gap_bytes
    # per second of the send: packets the kernel passed, requests the session had decoded
    if samples:
        start = samples[0][0] - 0.5
        by_second: dict[int, tuple[int, int]] = {}
        prev = (start, 0, 0)
        for t, packets, requests in samples:
            second = int(t - start - 1e-9)
            p, r = by_second.get(second, (0, 0))
            by_second[second] = (p + packets - prev[1], r + requests - prev[2])
            prev = (t, packets, requests)
        step.per_second = [by_second[s] for s in sorted(by_second)]
    return step


def print_step(step: Step) -> None:
    mark = "zero drops" if step.ok else "NOT kept up"
    print(f"  target {step.target:,} requests/s: tcpreplay --pps {step.pps:,.0f} --limit {step.limit:,}")
    print(f"    offered   {step.offered:,} requests in {step.sent:,} packets sent in {step.send_s:.2f} s "
          f"(tcpreplay) = {step.offered_rps:,.0f} requests/s ({step.sent / step.send_s if step.send_s else 0:,.0f} "
          f"packets/s), {step.failed} failed sends")
    print(f"    kernel    {step.kernel_packets:,} packets passed the filter (sent {step.sent:,}), "
          f"{step.drops:,} dropped (PACKET_STATISTICS), {step.backlog_drops:,} past the shell's backlog bound "
          f"(peak backlog {step.backlog_peak:,} packets read, not yet decoded)")
    print(f"    session   {step.decoded:,} requests decoded ({step.produce:,} Produce), {step.responses:,} responses, "
          f"{step.session_packets:,} packets; {step.decoded_in_window:,} already decoded when the send ended = "
          f"{step.decoded_rps:,.0f} requests/s, the rest within {step.lag_s:.2f} s")
    print(f"    TCP gaps  {step.gaps} ({step.gap_bytes:,} bytes); capture+decode CPU {step.cpu_s:.1f} s in "
          f"{step.wall_s:.1f} s ({100 * step.cpu_s / step.wall_s if step.wall_s else 0:.0f}% of one core)")
    if step.per_second:
        print("    per second (kernel packets, as the shell's toolbar sees them / requests decoded): "
              + "  ".join(f"{p:,}/{r:,}" for p, r in step.per_second))
    print(f"    -> {mark}: {step.offered_rps / ANCHOR:.2f}x the {ANCHOR:,} requests/s bar")


def replay_mode(args: argparse.Namespace, pcap: Path, work: Path) -> list[Step]:
    print(f"\n== replay: {pcap}")
    rec = load_recording(pcap, args.port)
    apis = ", ".join(f"{api} {n:,}" for api, n in rec.apis.most_common())
    truth = f"; the lab's producers reported {rec.truth:,}" if rec.truth is not None else ""
    print(f"  recording: {len(rec.records):,} packets, {rec.requests:,} Kafka requests decoded offline ({apis}){truth}")
    if rec.truth is not None and rec.truth != rec.requests:
        print("  WARNING: the offline decode and the ground truth disagree; offered counts follow the decode")
    rates = sorted(args.rates)
    per_request = len(rec.records) / rec.requests
    copies = math.ceil(max(rates) * per_request * args.replay_duration / len(rec.records)) + 1
    replay_file = work / "replay.pcap"
    packets = build_replay_file(rec, copies, replay_file)
    print(f"  replay file: {copies} copies back to back (client ports moved per copy), {packets:,} packets, "
          f"{replay_file.stat().st_size / 2**20:,.0f} MiB; {per_request:.3f} packets per request")
    steps = []
    with Sandbox(f"lcr{os.getpid() % 100000}") as box:
        print(f"  namespaces {box.tx} ({box.tx_if}, tcpreplay) -> {box.cap} ({box.cap_if}, live capture)")
        for target in rates:
            step = replay_step(rec, replay_file, box, target, args.replay_duration, args.pps_multi,
                               args.tcpreplay_nice)
            print_step(step)
            steps.append(step)
            if not step.ok and not args.keep_going:
                break
    return steps


# -- the run ---------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("both", "producers", "replay"), default="both")
    parser.add_argument("--producers", type=int, default=3, help="parallel producers, one per client (default 3)")
    parser.add_argument("--rate", type=float, default=9000, help="records (= requests) per second per producer")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of producer flood (default 10)")
    parser.add_argument("--name", default=f"lc{os.getpid() % 100000}", help="lab name (default: unique)")
    parser.add_argument("--pcap", type=Path, help="replay: a recording to reuse (default: record the lab's "
                        "flood scenario now)")
    parser.add_argument("--save-pcap", type=Path, help="replay: keep the recording made here at this path")
    parser.add_argument("--rates", type=lambda s: [int(float(x)) for x in s.split(",")],
                        default=[20_000, 22_500, 25_000, 30_000, 40_000], help="replay: requests/s to step through, up "
                        "to the first that is not kept up (default 20000,22500,25000,30000,40000)")
    parser.add_argument("--replay-duration", type=float, default=10.0, help="replay: seconds per step (default 10)")
    parser.add_argument("--pps-multi", type=int, default=1, help="replay: tcpreplay --pps-multi (default 1)")
    parser.add_argument("--tcpreplay-nice", type=int, default=19, help="replay: nice value of tcpreplay, whose "
                        "--pps pacing spins on a whole core; the load generator gets what the capture leaves "
                        "(default 19; its real rate is measured either way)")
    parser.add_argument("--keep-going", action="store_true", help="replay: step on after a rate that drops")
    parser.add_argument("--port", type=int, default=9092, help="replay: the Kafka port in the recording")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: labs, namespaces and packet sockets")
    if args.mode != "producers" and not args.pcap:
        for tool in ("tcpreplay", "tcpdump"):
            if not shutil.which(tool):
                raise SystemExit(f"the replay mode needs {tool}")

    load = os.getloadavg()[0]
    print(f"{os.cpu_count()} cores, load average {load:.2f} at the start"
          + (" — other work is competing for the CPU: figures will be lower" if load > 0.5 else ""))
    work = Path(tempfile.mkdtemp(prefix="kshock-bench-"))
    producers: dict | None = None
    steps: list[Step] = []
    lab_up = False
    try:
        pcap = args.pcap
        if args.mode != "replay" or pcap is None:
            kshock("lab", "up", "--name", args.name, "--clients", str(max(args.producers, 1)))
            lab_up = True
            if args.mode != "replay":
                producers = producer_mode(args.name, args)
            if args.mode != "producers" and pcap is None:
                pcap = work / "flood.pcap"
                print(f"\nrecording: kshock lab record --name {args.name} flood {pcap}")
                subprocess.run([sys.executable, "-m", "kshock", "lab", "record", "--name", args.name, "flood",
                                str(pcap)], check=True, cwd=ROOT)
                if args.save_pcap:
                    shutil.copy(pcap, args.save_pcap)
                    shutil.copy(pcap.with_suffix(".json"), args.save_pcap.with_suffix(".json"))
            subprocess.run([sys.executable, "-m", "kshock", "lab", "down", "--name", args.name], cwd=ROOT,
                           stdout=subprocess.DEVNULL)
            lab_up = False
        if args.mode != "producers":
            steps = replay_mode(args, pcap, work)
    finally:
        if lab_up:
            subprocess.run([sys.executable, "-m", "kshock", "lab", "down", "--name", args.name], cwd=ROOT,
                           stdout=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)

    print(f"\n== summary (the bar: {ANCHOR:,} requests/s for 10 s, zero kernel drops)")
    ok = True
    if producers is not None:
        print(f"  producers (live librdkafka, CPU-bound here): {producers['busiest10_rps']:,.0f} requests/s over the "
              f"busiest 10 s = {producers['busiest10_rps'] / ANCHOR:.2f}x the bar; peak second "
              f"{producers['peak_second']:,}; {producers['drops']} drops; "
              f"{'all' if producers['ok'] else 'NOT all'} {producers['sent']:,} sent requests decoded")
        ok &= producers["ok"]
    if args.mode != "producers":
        kept = [s for s in steps if s.ok]
        for s in steps:
            print(f"  replay at {s.target:,}/s: offered {s.offered_rps:,.0f} requests/s for {s.send_s:.1f} s "
                  f"({s.offered_rps / ANCHOR:.2f}x), decoded {s.decoded:,}/{s.offered:,}, drops {s.drops}, "
                  f"gaps {s.gaps}, lag {s.lag_s:.2f} s -> {'ok' if s.ok else 'NOT kept up'}")
        if kept:
            best = max(kept, key=lambda s: s.offered_rps)
            print(f"  highest replayed rate with zero drops, every request decoded: {best.offered_rps:,.0f} requests/s "
                  f"for {best.send_s:.1f} s = {best.offered_rps / ANCHOR:.2f}x the {ANCHOR:,} requests/s bar")
            ok &= best.offered_rps >= ANCHOR and best.send_s >= 10.0 - 0.05
        else:
            print("  no replayed rate kept up")
            ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
