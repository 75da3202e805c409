"""Hypothesis: arbitrary bytes and mutated real frames never raise and keep memory bounded."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka.protocol.consumer import FetchResponse
from kafka.protocol.producer import ProduceRequest

from kshock.wire.model import KafkaFrame
from kshock.wire.packet import parse_packet
from kshock.wire.sniffer import Sniffer
from wire_helpers import conversation, request_frame, response_frame, sample_message

REQ = request_frame(sample_message(ProduceRequest, 9), 1)
RESP = response_frame(sample_message(FetchResponse, 12), 1)
SETTINGS = settings(max_examples=int(__import__("os").environ.get("KSHOCK_FUZZ_EXAMPLES", "150")), deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.integers(min_value=0, max_value=300), st.binary(max_size=200))
def test_any_packet_bytes(linktype, raw):
    parse_packet(linktype, raw)
    Sniffer().feed(0.0, linktype, raw)


@SETTINGS
@given(st.lists(st.binary(max_size=300), max_size=8))
def test_arbitrary_stream_bytes_on_a_kafka_port(chunks):
    pairs = [(c, c[::-1]) for c in chunks if c]
    sniffer = Sniffer(max_flow_bytes=64 * 1024)
    for ts, lt, raw in conversation(pairs):
        for event in sniffer.feed(ts, lt, raw):
            if isinstance(event, KafkaFrame):
                event.as_json()
    sniffer.finish()


def _mutate(data: bytes, edits) -> bytes:
    out = bytearray(data)
    for at, value in edits:
        if out:
            out[at % len(out)] = value
    return bytes(out)


@SETTINGS
@given(st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=6),
       st.integers(0, len(REQ)))
def test_mutated_real_frames(edits, cut):
    req = _mutate(REQ, edits)[: max(cut, 4)]
    resp = _mutate(RESP, edits)
    sniffer = Sniffer(max_flow_bytes=64 * 1024)
    for ts, lt, raw in conversation([(req, resp), (REQ, RESP)]):
        sniffer.feed(ts, lt, raw)
        assert sniffer._streams.buffered_bytes() <= 64 * 1024
        for framer in sniffer._framers.values():
            assert len(framer.buf) <= 64 * 1024 + 1600
    sniffer.finish()
    assert not sniffer._framers and len(sniffer._streams) == 0  # state freed on close
