"""The public captures in ../shared/captures/external (see its SOURCES.md), decoded whole and
edited (packets dropped, duplicated, reordered) to make gaps and mid-stream starts."""

from __future__ import annotations

import pytest

from kshock.capture.reader import CaptureReader
from kshock.wire.model import Gap, Malformed, Request, Response
from wire_helpers import EXTERNAL, essence, external_captures, frames, run

PORTS = (9092, 36333)
ALL = [p.relative_to(EXTERNAL).as_posix() for p in external_captures()]


def packets(name):
    with CaptureReader(EXTERNAL / name) as reader:
        out = list(reader)
    assert reader.problem is None
    return out


def decode(name, edit=None):
    pk = packets(name)
    if edit:
        pk = edit(pk)
    return frames(run(pk, PORTS))


def table(name):
    return [(e.kind, e.api, e.api_version, e.correlation_id, e.client_id, e.topics,
             e.error_codes) for e in decode(name)]


def test_all_fifteen_captures_are_here():
    assert len(ALL) == 15


@pytest.mark.parametrize("name", ALL)
def test_no_unexpected_malformed(name):
    events = decode(name)
    bad = [e for e in events if isinstance(e, Malformed)]
    if name == "ndpi/kafka.pcapng":  # three responses whose requests were not captured
        assert sorted(e.correlation_id for e in bad) == [131, 140, 141]
        assert all("no request" in e.error for e in bad)
    else:
        assert bad == []
    assert events


def test_deepflow_api_versions_v3_identity():
    req, resp = decode("deepflow/18-api-versions-v3.pcap")
    assert (req.api, req.api_version, req.correlation_id, req.client_id) == ("ApiVersions", 3, 2, "adminclient-1")
    assert (resp.kind, resp.api, resp.client_id, resp.error_codes) == ("response", "ApiVersions", "adminclient-1", ())


def test_deepflow_produce_and_fetch():
    assert table("deepflow/00-produce-v2.pcap") == [
        ("request", "Produce", 2, 1, "console-producer", ("topic2",), ()),
        ("response", "Produce", 2, 1, "console-producer", ("topic2",), ())]
    req, resp = decode("deepflow/00-produce-v7-sw8.pcap")
    assert (req.topics, req.records, resp.latency_ms) == (("quickstart-events",), 1, 28.415)
    assert table("deepflow/00-produce-v9.pcap")[0][:6] == ("request", "Produce", 9, 47, "console-producer", ("zqy-test",))
    req, resp = decode("deepflow/01-fetch-v12-ok.pcap")
    assert (req.api_version, req.correlation_id, req.topics, req.partitions) == (12, 15603, ("zqy-test",), (0,))
    assert resp.records == 0 and resp.error_codes == ()
    assert decode("deepflow/01-fetch-v12-unknown.pcap")[1].error_codes == (5120,)
    assert decode("deepflow/history/produce-v9.2023-b3b9b60.pcap")[0].correlation_id == 5


def test_deepflow_group_apis():
    assert table("deepflow/11-join-group-v7.pcap")[1] == ("response", "JoinGroup", 7, 120, "consumer-zzzz12-1", (), (-1,))
    assert table("deepflow/13-leave-group-v4.pcap")[1][1:3] == ("LeaveGroup", 4)
    assert table("deepflow/14-sync-group-v5.pcap")[1][-1] == (-1,)


def test_mixed_with_unsupported_fetch_v13_pairs_across_interleaved_streams():
    rows = table("deepflow/mixed-with-unsupported.pcap")
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        ("request", "Fetch", 13, 15551976), ("request", "OffsetCommit", 8, 15551977),
        ("response", "OffsetCommit", 8, 15551977), ("request", "Heartbeat", 4, 15551978),
        ("response", "Heartbeat", 4, 15551978), ("response", "Fetch", 13, 15551976)]
    assert rows[1][5] == ("orders",)
    assert {r[4] for r in rows} == {"consumer-frauddetectionservice-1"}


def test_arkime_vlan_list_offsets_v0():
    (req,) = decode("arkime/kafka.pcap")
    assert (req.api, req.api_version, req.client_id, req.topics, req.partitions) == \
        ("ListOffsets", 0, "", ("integration.test.topic1475007069352",), (0,))


def test_go_sniffer_sll_with_incl_len_quirk():
    rows = table("go-sniffer/kafka.pcap")
    assert [(r[0], r[1], r[2]) for r in rows] == [("request", "Metadata", 0), ("response", "Metadata", 0),
                                                   ("request", "Produce", 1), ("response", "Produce", 1)]
    assert decode("go-sniffer/kafka.pcap")[2].records == 1


def test_ndpi_pcapng_with_retransmissions_and_out_of_order():
    events = decode("ndpi/kafka.pcapng")
    assert len(events) == 28  # as tshark: duplicated segments counted once
    reqs = [e for e in events if isinstance(e, Request)]
    assert sorted({(e.api, e.api_version) for e in reqs}) == [
        ("ApiVersions", 0), ("ApiVersions", 3), ("InitProducerId", 4), ("Metadata", 2),
        ("Metadata", 12), ("Produce", 3), ("Produce", 9)]
    assert {e.client_id for e in reqs} == {"rdkafka", "console-producer"}
    produce = [e for e in reqs if e.api == "Produce"]
    assert [e.records for e in produce] == [1, 1, 1]
    meta12 = next(e for e in events if isinstance(e, Response) and e.api_version == 12)
    assert meta12.topics == ("sampleTopic",)


def _console_session(pk):
    """nDPI capture (b): the loopback console-producer session (packets 23..)."""
    return [p for p in pk[22:]]


def _index_of(pk, api_key_version: bytes) -> int:
    from kshock.wire.packet import parse_packet

    for i, (_, linktype, raw) in enumerate(pk):
        seg = parse_packet(linktype, raw)
        if seg and seg.dport == 9092 and seg.payload[4:8] == api_key_version:
            return i
    raise AssertionError("request not found")


def test_lost_request_segment_becomes_a_gap_and_decoding_resumes():
    base = _console_session(packets("ndpi/kafka.pcapng"))
    full = frames(run(base, PORTS))
    lost = _index_of(base, b"\x00\x16\x00\x04")  # InitProducerId v4 request
    edited = base[:lost] + base[lost + 1:]
    events = run(edited, PORTS)
    assert any(isinstance(e, Gap) for e in events)
    got = [(e.kind, e.api, e.correlation_id, e.decoded) for e in frames(events)]
    assert ("request", "InitProducerId", 4, True) not in got
    assert ("request", "Metadata", 5, True) in got and ("request", "Produce", 6, True) in got
    assert ("malformed", None, 4, False) in got  # its response is reported unpaired
    assert ("response", "Metadata", 5, True) in got
    assert len(got) == len(full) - 1


def test_capture_starting_mid_connection_resynchronises():
    base = _console_session(packets("ndpi/kafka.pcapng"))
    start = _index_of(base, b"\x00\x03\x00\x0c")  # Metadata v12 request
    got = [(e.kind, e.api, e.correlation_id, e.decoded) for e in frames(run(base[start:], PORTS))]
    assert got[:2] == [("request", "Metadata", 5, True), ("response", "Metadata", 5, True)]
    assert ("request", "Produce", 6, True) in got


@pytest.mark.parametrize("name", ["ndpi/kafka.pcapng", "go-sniffer/kafka.pcap", "deepflow/00-produce-v7-sw8.pcap"])
def test_duplicated_and_swapped_packets_change_nothing(name):
    pk = packets(name)
    want = essence(run(pk, PORTS))
    assert essence(run([p for p in pk for _ in (0, 1)], PORTS)) == want
