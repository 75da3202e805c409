"""The committed lab captures hold exactly what their sidecars say the workloads did.

Checked with an independent reader (scapy + kafka-python, record counts from batch headers) and,
for the request headers, with tshark — never with kshock's own decoder alone.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from independent_reader import read_capture

CAPTURES = Path(__file__).resolve().parents[2] / "captures"
SIDECARS = sorted(CAPTURES.glob("lab-*.json"))
SCENARIOS = {"kafka-python", "compression", "group", "admin", "large", "slow-link", "mixed"}


def _load(sidecar: Path) -> tuple[dict, Path]:
    return json.loads(sidecar.read_text()), sidecar.with_suffix(".pcap")


def test_every_scenario_has_a_recorded_capture():
    assert {p.stem.removeprefix("lab-") for p in SIDECARS} == SCENARIOS
    for sidecar in SIDECARS:
        assert sidecar.with_suffix(".pcap").stat().st_size < 3_000_000, "captures must stay small"


@pytest.mark.parametrize("sidecar", SIDECARS, ids=lambda p: p.stem)
def test_capture_requests_equal_the_workloads_request_logs(sidecar):
    truth, pcap = _load(sidecar)
    facts = read_capture(str(pcap), truth["capture"]["kafka_port"])
    on_wire = Counter((r.client_ip, r.client_id, r.api_key, r.api_version, r.correlation_id) for r in facts.requests)
    logged = Counter((r["ip"], r["client_id"], r["api_key"], r["api_version"], r["correlation_id"])
                     for r in truth["requests"])
    assert on_wire == logged
    assert truth["requests_total"] == len(truth["requests"]) == sum(truth["requests_per_api"].values())
    assert truth["capture"]["kernel_drops"] == 0
    assert set(truth["client_ids"]) == {r.client_id for r in facts.requests}


@pytest.mark.parametrize("sidecar", SIDECARS, ids=lambda p: p.stem)
def test_records_on_the_wire_equal_records_acknowledged(sidecar):
    truth, pcap = _load(sidecar)
    facts = read_capture(str(pcap), truth["capture"]["kafka_port"])
    acknowledged = {(cid, topic): n for cid, topics in truth["records_produced"].items() for topic, n in topics.items()}
    assert dict(facts.records) == acknowledged
    assert sum(acknowledged.values()) == truth["records_produced_total"]


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed (make setup)")
@pytest.mark.parametrize("sidecar", SIDECARS, ids=lambda p: p.stem)
def test_tshark_reads_the_same_request_headers(sidecar):
    truth, pcap = _load(sidecar)
    port = truth["capture"]["kafka_port"]
    out = subprocess.run(
        ["tshark", "-r", str(pcap), "-o", f"kafka.tcp.ports:{port}", "-Y", f"kafka and tcp.dstport == {port}",
         "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,", "-e", "ip.src", "-e", "kafka.request_key", "-e", "kafka.api_version",
         "-e", "kafka.correlation_id"],
        capture_output=True, text=True, timeout=120, check=True).stdout
    seen = Counter()
    for line in filter(None, out.splitlines()):
        # One TCP segment may carry several Kafka frames: tshark lists their fields side by side.
        source, keys, versions, correlation_ids = line.split("\t")
        for frame in zip(keys.split(","), versions.split(","), correlation_ids.split(",")):
            seen[(source, *frame)] += 1
    logged = Counter((r["ip"], str(r["api_key"]), str(r["api_version"]), str(r["correlation_id"]))
                     for r in truth["requests"])
    assert seen == logged


def test_slow_link_frames_mostly_start_mid_segment():
    truth, pcap = _load(CAPTURES / "lab-slow-link.json")
    facts = read_capture(str(pcap), 9092)
    # The point of the scenario: behind a rate limit, requests queue and no longer start segments.
    assert facts.frames_starting_mid_segment / facts.frames > 0.3
    assert truth["records_produced_total"] > 100


def test_large_messages_span_many_mtu_sized_segments():
    truth, pcap = _load(CAPTURES / "lab-large.json")
    facts = read_capture(str(pcap), 9092)
    assert facts.max_segment_payload <= 1448  # offloads are off: what a real network carries
    assert max(len(r.frame) for r in facts.requests if r.api_key == 0) > 100 * 1448


def test_compression_capture_carries_each_producers_codec():
    _, pcap = _load(CAPTURES / "lab-compression.json")
    facts = read_capture(str(pcap), 9092)
    assert {cid: codecs for cid, codecs in facts.codecs.items()} == {
        "rdk-gzip": {"gzip"}, "rdk-snappy": {"snappy"}, "rdk-lz4": {"lz4"}, "rdk-zstd": {"zstd"}}
