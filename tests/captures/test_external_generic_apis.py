"""Generic-path APIs in the public captures (../shared/captures/external, see its SOURCES.md),
against what tshark 4.0 reads from the same packets — written down here as literals, never
computed by kshock's schema walk.

Obtained with
    tshark -r FILE -d tcp.port==36333,kafka -Y kafka -T fields -E occurrence=a -E aggregator=, \
        -e frame.number -e kafka.request_key -e kafka.response_key -e kafka.api_version \
        -e kafka.correlation_id -e kafka.topic_name -e kafka.partition_id -e kafka.error
kshock shows non-zero error codes only (tshark lists the zeros too). Where tshark 4.0 cannot
decode a frame (Metadata v12), the value was read from the hex of the TCP payload; the comment
says so. Produce and Fetch (the fast path) are not here: tests/unit/test_wire_decode.py.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from kshock.capture.reader import CaptureReader
from kshock.wire.model import KafkaFrame
from kshock.wire.sniffer import Sniffer

ROOT = Path(__file__).resolve().parents[2]
EXTERNAL = ROOT / ".." / "shared" / "captures" / "external"

# (file, packet) -> (kind, api, api_version, correlation_id, topics, partitions, non-zero error codes)
EXPECTED = {
    # tshark: ListOffsets(2) v0 corr 0, topic integration.test.topic1475007069352, partition 0
    ("arkime/kafka.pcap", 4): ("request", "ListOffsets", 0, 0, ("integration.test.topic1475007069352",), (0,), ()),
    # tshark: JoinGroup(11) v7 corr 120; response kafka.error -1
    ("deepflow/11-join-group-v7.pcap", 1): ("request", "JoinGroup", 7, 120, (), (), ()),
    ("deepflow/11-join-group-v7.pcap", 2): ("response", "JoinGroup", 7, 120, (), (), (-1,)),
    # tshark: LeaveGroup(13) v4 corr 201; response kafka.error 0,0 (top level and member)
    ("deepflow/13-leave-group-v4.pcap", 1): ("request", "LeaveGroup", 4, 201, (), (), ()),
    ("deepflow/13-leave-group-v4.pcap", 2): ("response", "LeaveGroup", 4, 201, (), (), ()),
    # tshark: SyncGroup(14) v5 corr 120; response kafka.error -1
    ("deepflow/14-sync-group-v5.pcap", 1): ("request", "SyncGroup", 5, 120, (), (), ()),
    ("deepflow/14-sync-group-v5.pcap", 2): ("response", "SyncGroup", 5, 120, (), (), (-1,)),
    # tshark: ApiVersions(18) v3 corr 2; response kafka.error 0
    ("deepflow/18-api-versions-v3.pcap", 1): ("request", "ApiVersions", 3, 2, (), (), ()),
    ("deepflow/18-api-versions-v3.pcap", 2): ("response", "ApiVersions", 3, 2, (), (), ()),
    # tshark: OffsetCommit(8) v8 corr 15551977 orders/0; response orders/0 error 0
    ("deepflow/mixed-with-unsupported.pcap", 3): ("request", "OffsetCommit", 8, 15551977, ("orders",), (0,), ()),
    ("deepflow/mixed-with-unsupported.pcap", 4): ("response", "OffsetCommit", 8, 15551977, ("orders",), (0,), ()),
    # tshark: Heartbeat(12) v4 corr 15551978; response error 0
    ("deepflow/mixed-with-unsupported.pcap", 6): ("request", "Heartbeat", 4, 15551978, (), (), ()),
    ("deepflow/mixed-with-unsupported.pcap", 7): ("response", "Heartbeat", 4, 15551978, (), (), ()),
    # tshark: Metadata(3) v0 corr 1 topic test; response test, partition 0, errors 0,0
    ("go-sniffer/kafka.pcap", 4): ("request", "Metadata", 0, 1, ("test",), (), ()),
    ("go-sniffer/kafka.pcap", 6): ("response", "Metadata", 0, 1, ("test",), (0,), ()),
    # tshark: ApiVersions(18) v0 corr 129; Metadata(3) v2 corr 130 topic LB_MAIN_LOG_INPUT,
    # response partition 0, errors 0,0
    ("ndpi/kafka.pcapng", 1): ("request", "ApiVersions", 0, 129, (), (), ()),
    ("ndpi/kafka.pcapng", 2): ("response", "ApiVersions", 0, 129, (), (), ()),
    ("ndpi/kafka.pcapng", 3): ("request", "Metadata", 2, 130, ("LB_MAIN_LOG_INPUT",), (), ()),
    ("ndpi/kafka.pcapng", 4): ("response", "Metadata", 2, 130, ("LB_MAIN_LOG_INPUT",), (0,), ()),
    ("ndpi/kafka.pcapng", 12): ("response", "Metadata", 2, 164, ("LB_MAIN_LOG_INPUT",), (0,), ()),
    # tshark: InitProducerId(22) v4 corr 4; response error 0
    ("ndpi/kafka.pcapng", 30): ("request", "InitProducerId", 4, 4, (), (), ()),
    ("ndpi/kafka.pcapng", 31): ("response", "InitProducerId", 4, 4, (), (), ()),
    # Metadata v12 corr 5: tshark 4.0 shows the request topic as "[ Null ]" (malformed). The hex:
    # topics 02 | topic_id 00*16 | name 0c "sampleTopic" | 00 -> sampleTopic. Response: topic
    # sampleTopic error 0000, partitions 02 | error 0000 | partition_index 00000000 -> partition 0.
    ("ndpi/kafka.pcapng", 33): ("request", "Metadata", 12, 5, ("sampleTopic",), (), ()),
    ("ndpi/kafka.pcapng", 34): ("response", "Metadata", 12, 5, ("sampleTopic",), (0,), ()),
}
FILES = sorted({name for name, _ in EXPECTED})


def external() -> Path:
    """The public captures beside the project; their absence fails (never skips) the test."""
    if not EXTERNAL.is_dir():
        pytest.fail(f"the public captures are missing: expected them in {EXTERNAL.resolve()} "
                    "(../shared/captures/external beside the project, see its SOURCES.md)", pytrace=False)
    return EXTERNAL


def decoded(name: str) -> dict[int, KafkaFrame]:
    """kshock's frame events of one capture, by the (single) packet that carried each."""
    sniffer = Sniffer(ports=(9092, 36333))
    events = []
    with CaptureReader(external() / name) as reader:
        for ts, linktype, raw in reader:
            events += sniffer.feed(ts, linktype, raw)
    events += sniffer.finish()
    out = {}
    for event in events:
        if isinstance(event, KafkaFrame) and len(event.packets) == 1:
            out[event.packets[0]] = event
    return out


@pytest.mark.parametrize("name", FILES)
def test_generic_api_frames_show_what_tshark_reads(name):
    got = decoded(name)
    for (file, packet), want in EXPECTED.items():
        if file != name:
            continue
        assert packet in got, f"{name}: no frame carried by packet {packet}"
        frame = got[packet]
        assert frame.decoded and frame.error is None, (name, packet, frame.error)
        assert (frame.kind, frame.api, frame.api_version, frame.correlation_id, frame.topics, frame.partitions,
                frame.error_codes) == want, (name, packet)


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed (make setup)")
@pytest.mark.parametrize("name", FILES)
def test_the_written_down_values_are_still_tsharks(name):
    """The literals above against tshark itself, where tshark decodes the frame."""
    out = subprocess.run(["tshark", "-r", str(external() / name), "-d", "tcp.port==36333,kafka", "-Y", "kafka",
                          "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,", "-e", "frame.number",
                          "-e", "kafka.correlation_id", "-e", "kafka.topic_name", "-e", "kafka.partition_id",
                          "-e", "kafka.error"], capture_output=True, text=True, timeout=60, check=True).stdout
    rows = {int(line.split("\t")[0]): line.split("\t")[1:] for line in out.splitlines() if line}
    for (file, packet), (_, api, version, correlation_id, topics, partitions, errors) in EXPECTED.items():
        if file != name or (api, version) == ("Metadata", 12):
            continue
        corr, tshark_topics, tshark_partitions, tshark_errors = rows[packet]
        assert int(corr) == correlation_id
        assert tuple(dict.fromkeys(t for t in tshark_topics.split(",") if t)) == topics
        assert tuple(dict.fromkeys(int(p) for p in tshark_partitions.split(",") if p)) == partitions
        assert tuple(dict.fromkeys(int(e) for e in tshark_errors.split(",") if e and int(e))) == errors
