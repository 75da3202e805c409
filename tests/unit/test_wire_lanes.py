"""The sniffer's fused lane, the decoder's lean lane (with its Produce shapes) and the compiled
JSON lane of `kshock decode --json` are only shortcuts: for any input they must give exactly the
events, stats and JSON of the general way (Segment -> StreamTable -> Data -> Framer -> RawFrame
-> Decoder with the fast-path readers, then json.dumps).

Every test feeds the same packets to a sniffer with all shortcuts, to a reference sniffer with
them switched off, and to a sniffer driven by the compiled lane, and compares everything."""

from __future__ import annotations

import json
import math
import random
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka.protocol.consumer import FetchRequest, FetchResponse
from kafka.protocol.producer import ProduceRequest, ProduceResponse

from kshock.wire import fastpath
from kshock.wire.decode import DEFAULT_MAX_OUTSTANDING
from kshock.wire.model import (
    ACK, FIN, PSH, RST, Gap, JsonLineEncoder, KafkaFrame, Malformed, Request, Response, json_line,
    new_malformed, new_request, new_response,
)
from kshock.wire.sniffer import Sniffer

try:
    from kshock.wire._lane import JsonLane
except ImportError:
    JsonLane = None

from wire_helpers import (
    BROKER, CLIENT, TOPIC_UUID, conversation, eth_packet, record_batch,
    request_frame, response_frame, resegment, sample_message,
)


def reference(ports=(9092,), **kw) -> Sniffer:
    """A sniffer that always goes the general way."""
    sniffer = Sniffer(ports, shortcuts=False, **kw)
    assert not sniffer.compiled
    return sniffer


def feed_all(sniffer: Sniffer, packets) -> list:
    events = []
    for ts, linktype, raw in packets:
        events.extend(sniffer.feed(ts, linktype, raw))
    events.extend(sniffer.finish())
    return events


def assert_same(packets, ports=(9092,), **kw) -> list:
    """Feed both ways; everything must agree. Returns the events."""
    fused, general = Sniffer(ports, **kw), reference(ports, **kw)
    got, want = feed_all(fused, packets), feed_all(general, packets)
    assert got == want
    assert [type(e) for e in got] == [type(e) for e in want]
    assert fused.stats == general.stats
    encoder = JsonLineEncoder()
    for event in got:
        if isinstance(event, KafkaFrame):
            assert encoder.encode(event) == json.dumps(event.as_json())
    if JsonLane is not None:  # (test_wire_lane.py fails where it was not built)
        text, compiled = compiled_json(packets, ports, **kw)
        assert text == "".join(json.dumps(e.as_json()) + "\n" for e in want if isinstance(e, KafkaFrame))
        assert compiled.stats == general.stats
    return got


def compiled_json(packets, ports=(9092,), **kw) -> tuple[str, Sniffer]:
    """The JSON lines `kshock decode --json` prints for these packets, through the compiled lane."""
    sniffer = Sniffer(ports, **kw)
    chunks: list[str] = []
    lane = JsonLane(sniffer)
    lane.run(iter(packets), sniffer.feed, sniffer.finish, JsonLineEncoder().encode, chunks.append, KafkaFrame)
    return "".join(chunks), sniffer


# -- frames ----------------------------------------------------------------------------------

def produce(version: int, cid: int, *, topic="orders", partition=0, records=None,
            transactional_id=None, client_id="client-1", acks=1) -> bytes:
    T = ProduceRequest.TopicProduceData
    P = T.PartitionProduceData
    kw = {"topic_id": TOPIC_UUID} if version >= 13 else {"name": topic}
    msg = ProduceRequest[version](
        transactional_id=transactional_id, acks=acks, timeout_ms=30000,
        topic_data=[T(partition_data=[P(index=partition, records=records if records is not None
                                        else record_batch(1 + cid % 3, base_sequence=cid))], **kw)])
    return request_frame(msg, correlation_id=cid, client_id=client_id)


def produce_response(version: int, cid: int, *, topic="orders", partition=0, error_code=0,
                     error_message=None, throttle=0) -> bytes:
    T = ProduceResponse.TopicProduceResponse
    P = T.PartitionProduceResponse
    kw = {"topic_id": TOPIC_UUID} if version >= 13 else {"name": topic}
    part = {"index": partition, "error_code": error_code, "base_offset": 1000 + cid,
            "log_append_time_ms": 5 * cid, "log_start_offset": cid}
    if error_message is not None:
        part["error_message"] = error_message
    msg = ProduceResponse[version](responses=[T(partition_responses=[P(**part)], **kw)],
                                   throttle_time_ms=throttle)
    return response_frame(msg, correlation_id=cid)


PRODUCE_VERSIONS = range(fastpath.PRODUCE_MAX_VERSION + 1)
FETCH_VERSIONS = range(fastpath.FETCH_MAX_VERSION + 1)


def produce_pairs(version: int, n: int = 12) -> list[tuple[bytes, bytes]]:
    pairs = []
    for cid in range(n):
        topic = ("orders", "payments")[cid % 5 == 4]  # mostly one shape, now and then another
        pairs.append((produce(version, cid, topic=topic, partition=cid % 3),
                      produce_response(version, cid, topic=topic, partition=cid % 3,
                                       error_code=(0, 0, 6)[cid % 3])))
    return pairs


# -- every version, every way of cutting the streams -------------------------------------------

@pytest.mark.parametrize("version", PRODUCE_VERSIONS)
def test_produce_every_version_whole_split_duplicated_reordered(version):
    pairs = produce_pairs(version)
    events = assert_same(conversation(pairs))
    requests = [e for e in events if type(e) is Request]
    assert len(requests) == len(pairs)
    assert sum(e.records for e in requests) == sum(1 + cid % 3 for cid in range(len(pairs)))
    assert all(type(e) is not Malformed for e in events)
    longest = max(len(r) for r, _ in pairs)
    for at in sorted({1, 3, 4, 5, 9, 17, longest // 2, longest - 1}):
        assert_same(resegment(pairs, lambda s, at=at: [s[i:i + at] for i in range(0, len(s), at)]))
    assert_same(resegment(pairs, lambda s: [s[i:i + 7] for i in range(0, len(s), 7)], duplicate=True))
    assert_same(resegment(pairs, lambda s: [s[i:i + 5] for i in range(0, len(s), 5)], reorder=True))


@pytest.mark.parametrize("version", FETCH_VERSIONS)
def test_fetch_every_version(version):
    pairs = []
    for cid in range(6):
        req = sample_message(FetchRequest, version, populated=cid % 2 == 0)
        resp = sample_message(FetchResponse, version, populated=cid % 2 == 0)
        pairs.append((request_frame(req, correlation_id=cid), response_frame(resp, correlation_id=cid)))
    assert_same(conversation(pairs))
    assert_same(resegment(pairs, lambda s: [s[i:i + 11] for i in range(0, len(s), 11)]))
    assert_same(resegment(pairs, lambda s: [s[i:i + 3] for i in range(0, len(s), 3)], duplicate=True))


@pytest.mark.parametrize("version", PRODUCE_VERSIONS)
def test_several_whole_frames_in_one_segment(version):
    pairs = produce_pairs(version, 9)
    batched = [(b"".join(r for r, _ in pairs[i:i + 3]), b"".join(p for _, p in pairs[i:i + 3]))
               for i in range(0, len(pairs), 3)]
    events = assert_same(conversation(batched))
    assert sum(type(e) is Request for e in events) == 9
    assert sum(type(e) is Response for e in events) == 9


# -- the shapes: what varies between frames of one shape, and what must not be taken for it ----

def _varied_produce_frames(version: int) -> list[tuple[bytes, bytes]]:
    big = record_batch(40)  # > 127 and > 16383 bytes: two- and three-byte compact lengths
    huge = record_batch(900)
    pairs = []
    for cid, records in enumerate([None, None, big, None, huge, b"", None, record_batch(1) * 2,
                                   record_batch(2)[:-3], None]):
        pairs.append((produce(version, cid, records=records, partition=cid % 2),
                      produce_response(version, cid, partition=cid % 2)))
    if version >= 3:
        pairs.append((produce(version, 20, transactional_id="tx-1"), produce_response(version, 20)))
    pairs.append((produce(version, 21, client_id=None), produce_response(version, 21)))
    pairs.append((produce(version, 22, client_id="other"), produce_response(version, 22)))
    if version >= 8:
        pairs.append((produce(version, 23), produce_response(version, 23, error_code=2,
                                                              error_message="corrupt")))
    if version >= 1:
        pairs.append((produce(version, 24), produce_response(version, 24, throttle=250)))
    pairs.append((produce(version, 25, records=record_batch(1)), produce_response(version, 25)))
    return pairs


@pytest.mark.parametrize("version", PRODUCE_VERSIONS)
def test_produce_shapes_equal_the_reader(version):
    pairs = _varied_produce_frames(version)
    assert_same(conversation(pairs))
    # the same frames with bytes changed where a shape must notice: trailing bytes, tagged
    # fields, lengths
    mutated = []
    for req, resp in pairs:
        mutated.append((req, resp))
        mutated.append((_bump_size(req + b"\x00"), _bump_size(resp + b"\x00")))
        mutated.append((req[:-1] + b"\x01", resp[:-1] + b"\x01"))
        mutated.append((req[:-2] + b"\x01" + req[-1:], resp[:-2] + b"\x01" + resp[-1:]))
    fixed = []
    for cid, (req, resp) in enumerate(mutated):  # unique correlation ids keep them paired
        fixed.append((req[:8] + struct.pack("!i", 100 + cid) + req[12:],
                      resp[:4] + struct.pack("!i", 100 + cid) + resp[8:]))
    assert_same(conversation(fixed))


def _bump_size(frame: bytes) -> bytes:
    return struct.pack("!i", len(frame) - 4) + frame[4:]


def test_shapes_across_many_topics_and_connections():
    pairs = [(produce(9, cid, topic=f"t{cid % 7}", partition=cid % 4),
              produce_response(9, cid, topic=f"t{cid % 7}", partition=cid % 4)) for cid in range(60)]
    second = (bytes([10, 0, 0, 3]), 40001)
    packets = conversation(pairs) + conversation(pairs, client=second, t0=2000.0)
    packets.sort(key=lambda p: p[0])
    assert_same(packets)


def test_topic_ids_resolved_after_metadata_like_the_general_way():
    from kafka.protocol.metadata import MetadataRequest, MetadataResponse

    T = MetadataResponse.MetadataResponseTopic
    meta = MetadataResponse[12](throttle_time_ms=0, brokers=[], cluster_id="c", controller_id=1,
                                topics=[T(error_code=0, name="named", topic_id=TOPIC_UUID,
                                          is_internal=False, partitions=[])])
    pairs = [(produce(13, 1), produce_response(13, 1)), (produce(13, 2), produce_response(13, 2)),
             (request_frame(MetadataRequest[12](topics=None), correlation_id=3), response_frame(meta, 3)),
             (produce(13, 4), produce_response(13, 4)), (produce(13, 5), produce_response(13, 5))]
    events = assert_same(conversation(pairs))
    topics = [e.topics for e in events if isinstance(e, KafkaFrame) and e.api == "Produce"]
    assert topics[0] != ("named",) and topics[-1] == ("named",)


# -- streams the lane must leave to the general way ------------------------------------------

def _stream(pairs, drop=(), dup=(), swap=(), acks=True, flags_at=None):
    """One packet per frame (requests and responses in turn), with packets dropped,
    duplicated or swapped by index; ACKs carried as in a real capture."""
    out = []
    cseq, sseq = 1000, 9000
    ts = 1000.0
    segs = [eth_packet(CLIENT, BROKER, cseq - 1, 0, 0x02), eth_packet(BROKER, CLIENT, sseq - 1, cseq, 0x12)]
    for req, resp in pairs:
        segs.append(eth_packet(CLIENT, BROKER, cseq, sseq, (ACK if acks else 0) | PSH, req))
        cseq += len(req)
        segs.append(eth_packet(BROKER, CLIENT, sseq, cseq, (ACK if acks else 0) | PSH, resp))
        sseq += len(resp)
        segs.append(eth_packet(CLIENT, BROKER, cseq, sseq, ACK))  # a bare ACK
    for i, j in swap:
        segs[i], segs[j] = segs[j], segs[i]
    for i, raw in enumerate(segs):
        if i in drop:
            continue
        out.append((ts, 1, raw))
        if i in dup:
            out.append((ts, 1, raw))
        ts += 0.000137  # odd steps: latencies with all their digits
    return out


def test_lost_segments_reordering_and_duplicates_fall_back_to_the_general_way():
    pairs = produce_pairs(9, 20)
    n = 2 + 3 * len(pairs)
    assert_same(_stream(pairs))
    for i in range(2, n):
        assert_same(_stream(pairs, drop={i}))
        assert_same(_stream(pairs, dup={i}))
        for step in (1, 2, 3):  # a reply captured before its request, and further apart
            if i + step < n:
                assert_same(_stream(pairs, swap=[(i, i + step)]))
    assert_same(_stream(pairs, drop={5, 6, 7, 20}, acks=False))


def test_replies_captured_before_their_requests_come_out_after_them():
    pairs = produce_pairs(9, 20)
    n = 2 + 3 * len(pairs)
    for i in range(2, n - 1, 3):  # every request swapped with its response
        events = assert_same(_stream(pairs, swap=[(i, i + 1)]))
        assert not any(isinstance(e, (Gap, Malformed)) for e in events)
        assert [(type(e), e.correlation_id) for e in events if isinstance(e, KafkaFrame)] == \
            [(kind, cid) for cid in range(20) for kind in (Request, Response)]


def test_data_after_the_peers_fin_was_acknowledged():
    # lab captures: the client sends FIN while a response is on its way; the broker ACKs FIN+1
    # and sends the response (acking FIN+1 again); the client answers with RST
    pairs = produce_pairs(9, 6)
    packets = _stream(pairs[:-1])
    last_c = 1000 + sum(len(r) for r, _ in pairs[:-1])
    last_s = 9000 + sum(len(p) for _, p in pairs[:-1])
    ts = packets[-1][0] + 0.001
    req, resp = pairs[-1]
    tail = [eth_packet(CLIENT, BROKER, last_c, last_s, ACK | PSH, req),
            eth_packet(CLIENT, BROKER, last_c + len(req), last_s, FIN | ACK),
            eth_packet(BROKER, CLIENT, last_s, last_c + len(req) + 1, ACK),
            eth_packet(BROKER, CLIENT, last_s, last_c + len(req) + 1, ACK | PSH, resp),
            eth_packet(CLIENT, BROKER, last_c + len(req) + 1, 0, RST)]
    events = assert_same(packets + [(ts + k * 0.001, 1, raw) for k, raw in enumerate(tail)])
    assert not any(isinstance(e, (Gap, Malformed)) for e in events)
    assert sum(isinstance(e, Response) for e in events) == 6


def test_acknowledged_hole_fin_rst_and_midstream_start():
    pairs = produce_pairs(9, 10)
    packets = _stream(pairs)
    assert_same(packets[5:])  # the capture starts mid-connection
    assert_same(packets[:12] + packets[13:])  # a hole the peer acknowledges
    ts = packets[-1][0] + 0.001
    assert_same(packets + [(ts, 1, eth_packet(CLIENT, BROKER, 999999, 0, RST))])
    last_c = 1000 + sum(len(r) for r, _ in pairs)
    last_s = 9000 + sum(len(p) for _, p in pairs)
    fin = [(ts, 1, eth_packet(CLIENT, BROKER, last_c, last_s, FIN | ACK)),
           (ts, 1, eth_packet(BROKER, CLIENT, last_s, last_c + 1, FIN | ACK | PSH, produce_response(9, 99)))]
    assert_same(packets + fin)


def test_idle_expiry_inside_the_lane_like_the_general_way():
    pairs = produce_pairs(9, 1500)  # > 4096 packets: the idle sweep runs during the lane
    other = (bytes([10, 0, 0, 9]), 41000)
    early = conversation([(produce(9, 1), b"")], client=other, close=False, t0=0.0)
    packets = early + [(ts + 500.0, lt, raw) for ts, lt, raw in _stream(pairs)]
    events = assert_same(packets, idle_timeout_s=1.0)
    assert any(getattr(e, "how", None) == "idle" for e in events)


def test_many_requests_in_flight_still_pair():
    n = 1500  # librdkafka floods keep more than 1,000 requests outstanding
    assert DEFAULT_MAX_OUTSTANDING >= 10 * n
    reqs = b"".join(produce(9, cid) for cid in range(n))
    resps = b"".join(produce_response(9, cid) for cid in range(n))
    events = assert_same(resegment([(reqs, resps)], lambda s: [s[i:i + 1400] for i in range(0, len(s), 1400)]))
    assert sum(type(e) is Response for e in events) == n


def test_other_link_layers_and_ipv4_details_agree():
    pairs = produce_pairs(9, 6)
    packets = _stream(pairs)
    vlan = [(ts, lt, raw[:12] + b"\x81\x00\x00\x05" + raw[12:]) for ts, lt, raw in packets]
    assert_same(vlan)
    mixed = [p if i % 2 else (p[0], 1, vlan[i][2]) for i, p in enumerate(packets)]
    assert_same(mixed)
    # padding after the IP datagram, a zero IP length (TSO), and bogus IP lengths
    padded = [(ts, lt, raw + b"\x00" * 6) for ts, lt, raw in packets]
    assert_same(padded)
    zero = [(ts, lt, raw[:16] + b"\x00\x00" + raw[18:]) for ts, lt, raw in packets]
    assert_same(zero)
    for bogus in (1, 19, 20, 39, 41):
        assert_same([(ts, lt, raw[:16] + struct.pack("!H", bogus) + raw[18:]) for ts, lt, raw in packets])


def test_non_kafka_bytes_and_bad_frames_through_the_lane():
    pairs = produce_pairs(9, 4)
    junk = [(b"\x00\x00\x00\x08" + b"\xff" * 8, b"\x00\x00\x00\x04\x00\x00\x00\x63"),  # unknown api, unpaired
            (b"\x00\x00\x00\x02ab", b"\x7f\xff\xff\xffxx"),  # implausible lengths
            (produce(9, 50)[:-3] + b"\x01\x02\x03", produce_response(9, 50)[:-1])]  # bad bodies
    assert_same(_stream(pairs[:2] + junk + pairs[2:]))


# -- randomised: any cutting, duplicating, reordering and dropping -----------------------------

@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), version=st.sampled_from([3, 7, 8, 9, 10, 12, 13]))
def test_random_segmentation_agrees(seed, version):
    rng = random.Random(seed)
    pairs = produce_pairs(version, 8)
    reqs, resps = b"".join(r for r, _ in pairs), b"".join(p for _, p in pairs)
    packets = []
    ts = 1000.0
    for stream, src, dst, seq0 in ((reqs, CLIENT, BROKER, 1000), (resps, BROKER, CLIENT, 9000)):
        at = 0
        while at < len(stream):
            size = rng.choice([1, 4, 9, 60, 200, 600, 5000])
            packets.append((src, dst, seq0 + at, stream[at:at + size]))
            at += size
    rng.shuffle(packets) if rng.random() < 0.2 else packets.sort(key=lambda p: (p[0] is BROKER, p[2]))
    out = [(999.0, 1, eth_packet(CLIENT, BROKER, 999, 0, 0x02)),
           (999.0, 1, eth_packet(BROKER, CLIENT, 8999, 1000, 0x12))]
    for src, dst, seq, payload in packets:
        if rng.random() < 0.05:
            continue  # lost
        raw = eth_packet(src, dst, seq, 0, PSH | (ACK if rng.random() < 0.5 else 0), payload)
        copies = 2 if rng.random() < 0.1 else 1
        for _ in range(copies):
            out.append((ts, 1, raw))
            ts += 0.0001
    assert_same(out)


# -- the JSON line encoder and the fast constructors -----------------------------------------

def test_json_line_encoder_equals_json_dumps_on_odd_values():
    encoder = JsonLineEncoder()
    base = dict(ts=1.5, src="10.0.0.2:40000", dst="[::1]:9092", api_key=0, api="Produce",
                api_version=9, correlation_id=-7, client_id="c\u00e9\n\"\\", topics=("a", "b\u2603"),
                partitions=(0, -1, 2**31 - 1), records=None, error_codes=(3, 6), latency_ms=0.001,
                conn_client_id=None, decoded=True, error=None, packets=(1, 2, 3), size=0, raw=b"",
                flow=None)
    variants = [{}, {"ts": float("nan")}, {"ts": float("inf")}, {"ts": 7}, {"latency_ms": math.inf},
                {"latency_ms": 3}, {"api_key": None, "api": None, "api_version": None,
                                     "correlation_id": None}, {"topics": ()}, {"packets": ()},
                {"packets": (5,)}, {"decoded": False, "error": "bad \u00ff"}, {"client_id": ""},
                {"ts": 1e300}, {"ts": -0.0}, {"records": 10**20}]
    for variant in variants:
        fields = {**base, **variant}
        for cls in (Request, Response):
            event = cls(**fields)
            assert encoder.encode(event) == json.dumps(event.as_json()) == json_line(event)
        malformed = Malformed(**fields, direction="request")
        assert encoder.encode(malformed) == json.dumps(malformed.as_json())


def test_fast_constructors_make_the_same_frozen_objects():
    args = (1.0, "a", "b", 0, "Produce", 9, 1, "x", ("t",), (0,), 1, (), None, "x", True, None,
            (1,), 10, b"raw", None)
    for make, cls in ((new_request, Request), (new_response, Response)):
        made = make(*args)
        assert type(made) is cls and made == cls(*args) and hash(made) == hash(cls(*args))
        assert repr(made) == repr(cls(*args))
        with pytest.raises(AttributeError):
            made.ts = 2.0
    made = new_malformed(*args, "response")
    assert type(made) is Malformed and made == Malformed(*args, "response")


@pytest.mark.parametrize("version", PRODUCE_VERSIONS)
def test_shapes_are_learnt_and_the_lane_is_taken(version):
    """(So that the tests above compare the shortcuts, not the general way with itself.)"""
    sniffer = Sniffer()
    for ts, linktype, raw in conversation(produce_pairs(version, 6), close=False):
        sniffer.feed(ts, linktype, raw)
    (state,) = sniffer._conns.values()
    assert state.decoder_conn.request_shapes and state.decoder_conn.response_shapes
    assert len(sniffer._lanes) == 2
