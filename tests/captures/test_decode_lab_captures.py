"""`kshock decode` on the lab captures agrees with the workloads' ground truth, and survives
the damage real captures suffer (lost, duplicated and reordered segments, mid-stream starts)."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from kshock.capture.reader import CaptureReader
from kshock.replay.listing import open_run
from kshock.wire.model import Gap, KafkaFrame, Skipped

CAPTURES = Path(__file__).resolve().parents[2] / "captures"
SIDECARS = sorted(CAPTURES.glob("lab-*.json"))
# API keys the broker and librdkafka speak but kafka-python 3.0 has no schema for.
NO_SCHEMA = {71}  # GetTelemetrySubscriptions


def _decode(pcap: Path) -> tuple[list[KafkaFrame], list, object]:
    run = open_run(str(pcap), [9092])
    frames, trouble = [], []
    for event in run.events():
        if isinstance(event, KafkaFrame):
            frames.append(event)
        elif isinstance(event, (Gap, Skipped)):
            trouble.append(event)
    return frames, trouble, run


def _ip(endpoint: str) -> str:
    return endpoint.rsplit(":", 1)[0]


@pytest.mark.parametrize("sidecar", SIDECARS, ids=lambda p: p.stem)
def test_every_request_matches_the_ground_truth(sidecar):
    truth = json.loads(sidecar.read_text())
    frames, trouble, run = _decode(sidecar.with_suffix(".pcap"))
    assert trouble == [], "a loss-free lab capture has no gaps and nothing to skip"
    requests = [f for f in frames if f.is_request]
    decoded = Counter((_ip(f.src), f.client_id, f.api_key, f.api_version, f.correlation_id) for f in requests)
    logged = Counter((r["ip"], r["client_id"], r["api_key"], r["api_version"], r["correlation_id"])
                     for r in truth["requests"])
    assert decoded == logged
    assert {f.api_key for f in frames if not f.decoded} <= NO_SCHEMA
    assert all(f.conn_client_id == f.client_id for f in requests)
    assert run.problem is None


@pytest.mark.parametrize("sidecar", SIDECARS, ids=lambda p: p.stem)
def test_every_produced_record_is_counted_once(sidecar):
    truth = json.loads(sidecar.read_text())
    frames, _, _ = _decode(sidecar.with_suffix(".pcap"))
    counted = Counter()
    for frame in frames:
        if frame.kind == "request" and frame.api_key == 0:
            assert len(frame.topics) == 1
            counted[(frame.client_id, frame.topics[0])] += frame.records
    acknowledged = {(cid, topic): n for cid, topics in truth["records_produced"].items() for topic, n in topics.items()}
    assert dict(counted) == acknowledged


@pytest.mark.parametrize("sidecar", SIDECARS, ids=lambda p: p.stem)
def test_every_response_is_paired_with_its_request(sidecar):
    frames, _, _ = _decode(sidecar.with_suffix(".pcap"))
    requests = Counter((f.src, f.dst, f.correlation_id, f.api_key) for f in frames if f.kind == "request")
    responses = Counter((f.dst, f.src, f.correlation_id, f.api_key) for f in frames if f.kind == "response")
    assert responses - requests == Counter()  # no response without its request
    # Every client waited for its answers (acks >= 1), except for a request still in flight when
    # it closed the connection (lab-group: pay-consumer-1 sends Metadata, correlation id 27, then
    # FIN at once; the broker's last packet is the Fetch response 26, then the client's RST).
    last = {}
    for f in frames:
        if f.kind == "request":
            last[(f.src, f.dst)] = max(last.get((f.src, f.dst), -1), f.correlation_id)
    assert all(cid == last[(src, dst)] for src, dst, cid, _ in requests - responses)
    assert all(f.latency_ms is not None and f.latency_ms >= 0 for f in frames if f.kind == "response")


def test_fetch_responses_count_the_records_the_group_consumed():
    truth = json.loads((CAPTURES / "lab-group.json").read_text())
    frames, _, _ = _decode(CAPTURES / "lab-group.pcap")
    fetched = Counter()
    for frame in frames:
        if frame.kind == "response" and frame.api_key == 1 and frame.records:
            fetched[frame.client_id] += frame.records
    for member in ("pay-consumer-1", "pay-consumer-2"):
        # A consumer hands out at most what it fetched; it may fetch more than it had time to poll.
        assert fetched[member] >= truth["clients"][member]["consumed"]["payments"] > 0


def test_json_lines_from_the_command_line():
    out = subprocess.run([sys.executable, "-m", "kshock", "decode", "--json", str(CAPTURES / "lab-admin.pcap")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    truth = json.loads((CAPTURES / "lab-admin.json").read_text())
    assert sum(1 for line in lines if line["kind"] == "request") == truth["requests_total"]
    required = {"ts", "src", "dst", "kind", "api_key", "api", "api_version", "correlation_id", "client_id", "topics",
                "records", "error_codes", "latency_ms", "conn_client_id", "decoded"}
    assert all(required <= set(line) for line in lines)
    assert "frames:" in out.stderr


# --- damaged copies of a real capture ------------------------------------------------------------

def _packets(pcap: Path) -> list[tuple[float, int, bytes]]:
    reader = CaptureReader(str(pcap))
    packets = list(reader)
    reader.close()
    return packets


def _write_pcap(path: Path, packets: list[tuple[float, int, bytes]]) -> Path:
    linktype = packets[0][1]
    with open(path, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype))
        for ts, _, raw in packets:
            seconds = int(ts)
            out.write(struct.pack("<IIII", seconds, int(round((ts - seconds) * 1e6)), len(raw), len(raw)))
            out.write(raw)
    return path


def _requests(pcap: Path) -> list[tuple]:
    frames, _, _ = _decode(pcap)
    return [(f.src, f.api_key, f.api_version, f.correlation_id, f.records) for f in frames if f.kind == "request"]


def _payload_length(raw: bytes) -> int:
    ihl = (raw[14] & 0x0F) * 4
    total = struct.unpack_from(">H", raw, 16)[0]
    tcp = 14 + ihl
    return total - ihl - (raw[tcp + 12] >> 4) * 4


@pytest.fixture(scope="module")
def original():
    pcap = CAPTURES / "lab-kafka-python.pcap"
    return pcap, _packets(pcap), _requests(pcap)


def test_duplicated_packets_change_nothing(original, tmp_path):
    pcap, packets, expected = original
    doubled = [p for packet in packets for p in (packet, packet)]
    assert _requests(_write_pcap(tmp_path / "dup.pcap", doubled)) == expected


def test_reordered_packets_change_nothing(original, tmp_path):
    pcap, packets, expected = original
    swapped = list(packets)
    data = [i for i, p in enumerate(packets) if _payload_length(p[2]) > 0]
    for i in data[5:-5:7]:  # swap every 7th data packet with its successor
        swapped[i], swapped[i + 1] = swapped[i + 1], swapped[i]
    assert swapped != packets
    # Per connection, in order (a swap of two packets of different connections swaps their frames).
    assert _per_connection(_requests(_write_pcap(tmp_path / "reordered.pcap", swapped))) == _per_connection(expected)


def _per_connection(requests: list[tuple]) -> dict[str, list[tuple]]:
    out: dict[str, list[tuple]] = {}
    for request in requests:
        out.setdefault(request[0], []).append(request)
    return out


def test_a_lost_segment_is_a_gap_and_decoding_resumes(original, tmp_path):
    pcap, packets, expected = original
    # Drop one client -> broker data packet in the middle of the capture.
    victims = [i for i, p in enumerate(packets) if _payload_length(p[2]) > 0 and p[2][36:38] == b"\x23\x84"]
    victim = victims[len(victims) // 2]
    damaged = packets[:victim] + packets[victim + 1:]
    frames, trouble, _ = _decode(_write_pcap(tmp_path / "lost.pcap", damaged))
    gaps = [t for t in trouble if isinstance(t, Gap)]
    assert len(gaps) == 1
    got = [(f.src, f.api_key, f.api_version, f.correlation_id, f.records) for f in frames if f.kind == "request"]
    missing = set(expected) - set(got)
    assert 1 <= len(missing) <= 2  # the frame(s) the lost packet carried bytes of
    assert set(got) <= set(expected)  # nothing invented
    assert len(got) >= len(expected) - 2


def test_a_capture_that_starts_mid_connection_resynchronises(original, tmp_path):
    pcap, packets, expected = original
    cut = len(packets) // 3
    frames, _, run = _decode(_write_pcap(tmp_path / "late.pcap", packets[cut:]))
    got = {(f.src, f.api_key, f.api_version, f.correlation_id, f.records) for f in frames if f.kind == "request"}
    assert got <= set(expected)
    # Everything wholly after the cut is decoded again.
    later = [r for r in expected if r not in got]
    assert len(got) >= len(expected) * 0.5, (len(got), len(expected), later[:3])


def test_filter_shows_only_matching_frames():
    truth = json.loads((CAPTURES / "lab-mixed.json").read_text())
    expected = sum(1 for r in truth["requests"] if r["client_id"] == "kp-orders" and r["api"] == "Produce")
    out = subprocess.run([sys.executable, "-m", "kshock", "decode", "--json", str(CAPTURES / "lab-mixed.pcap"),
                          "--filter", 'api == Produce and kind == request and client_id == "kp-orders"'],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(lines) == expected > 0
    assert {(line["api"], line["client_id"], line["kind"]) for line in lines} == {("Produce", "kp-orders", "request")}
    assert f"{expected} of " in out.stderr


def test_filter_syntax_error_is_a_caret_message():
    out = subprocess.run([sys.executable, "-m", "kshock", "decode", str(CAPTURES / "lab-admin.pcap"),
                          "--filter", "api == Produc"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr == ("kshock: column 8: unknown API 'Produc' — did you mean Produce?\n"
                          "  api == Produc\n"
                          "         ^^^^^^\n")
