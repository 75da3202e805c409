"""Generic-path frames (every API but Produce and Fetch) of the lab captures against tshark's
reading of the same packets: the topics, partitions and non-zero error codes kshock shows are
the ones tshark's Kafka dissector finds — an oracle that shares no code with kshock's schema walk.

tshark 4.0 decodes only older versions of several APIs (Metadata v12, OffsetCommit v9, ...):
frames it marks malformed or annotates with an expert message, and packets holding several
PDUs, are left out; the test insists that enough frames of enough APIs are compared.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from kshock.replay.listing import open_run
from kshock.wire.model import KafkaFrame

CAPTURES = Path(__file__).resolve().parents[2] / "captures"
FAST_PATH = {0, 1}  # Produce, Fetch: tests/unit/test_wire_decode.py
# capture -> (at least this many frames compared, of at least these APIs)
MINIMUM = {
    "lab-group": (55, {"ApiVersions", "Heartbeat", "CreateTopics", "FindCoordinator", "JoinGroup", "LeaveGroup",
                       "DescribeConfigs", "SyncGroup"}),
    "lab-mixed": (75, {"ApiVersions", "Heartbeat", "CreateTopics", "FindCoordinator", "JoinGroup", "LeaveGroup",
                       "DescribeConfigs", "SyncGroup"}),
    "lab-admin": (8, {"ApiVersions", "CreateTopics", "DescribeConfigs"}),
}


def tshark_pdus(pcap: Path) -> dict[int, tuple]:
    """packet number -> (topics, partitions, non-zero errors) of packets holding one PDU that
    tshark decodes cleanly."""
    out = subprocess.run(["tshark", "-r", str(pcap), "-d", "tcp.port==9092,kafka", "-Y", "kafka", "-T", "fields",
                          "-E", "occurrence=a", "-E", "aggregator=|", "-e", "frame.number",
                          "-e", "kafka.correlation_id", "-e", "kafka.topic_name", "-e", "kafka.partition_id",
                          "-e", "kafka.error", "-e", "_ws.malformed", "-e", "_ws.expert"],
                         capture_output=True, text=True, timeout=300, check=True).stdout
    pdus = {}
    for line in out.splitlines():
        number, correlation_ids, topics, partitions, errors, malformed, expert = line.split("\t")
        if "|" in correlation_ids or malformed or expert:
            continue
        # kshock lists each value once, in order of first appearance (errors: non-zero only)
        pdus[int(number)] = (tuple(dict.fromkeys(filter(None, topics.split("|")))),
                             tuple(dict.fromkeys(int(p) for p in partitions.split("|") if p)),
                             tuple(dict.fromkeys(int(e) for e in errors.split("|") if e and int(e))))
    return pdus


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed (make setup)")
@pytest.mark.parametrize("capture", sorted(MINIMUM))
def test_generic_frames_show_what_tshark_reads(capture):
    pcap = CAPTURES / f"{capture}.pcap"
    pdus = tshark_pdus(pcap)
    compared, apis, differ = 0, set(), []
    for event in open_run(str(pcap), [9092]).events():
        if not isinstance(event, KafkaFrame) or event.api_key in FAST_PATH or len(event.packets) != 1:
            continue
        want = pdus.get(event.packets[0])
        if want is None:
            continue
        got = (tuple(event.topics), tuple(event.partitions), tuple(event.error_codes))
        compared += 1
        apis.add(event.api)
        if got != want:
            differ.append((event.packets[0], event.api, event.api_version, event.kind, got, want))
    assert differ == []
    least, must = MINIMUM[capture]
    assert compared >= least and must <= apis, (compared, sorted(apis))
