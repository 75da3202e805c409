"""framing.py through the sniffer: every way of cutting bytes gives the same events;
resynchronisation after gaps and mid-stream starts; absurd lengths."""

from __future__ import annotations

import struct

import pytest
from kafka.protocol.consumer import FetchRequest, FetchResponse
from kafka.protocol.metadata import ApiVersionsRequest, ApiVersionsResponse
from kafka.protocol.producer import ProduceRequest, ProduceResponse

from kshock.wire.model import Gap, Malformed, Request, Response, Skipped
from wire_helpers import (
    conversation, every_way, frames, request_frame, response_frame, run, sample_message,
)


def _pairs():
    return [
        (request_frame(ApiVersionsRequest[3](client_software_name="k", client_software_version="1"), 1),
         response_frame(ApiVersionsResponse[3](error_code=0, throttle_time_ms=0, api_keys=[
             ApiVersionsResponse.ApiVersion(api_key=0, min_version=0, max_version=11)]), 1)),
        # two requests in one stream chunk, then both responses
        (request_frame(sample_message(ProduceRequest, 9), 2) + request_frame(sample_message(FetchRequest, 12), 3),
         response_frame(sample_message(ProduceResponse, 9), 2) + response_frame(sample_message(FetchResponse, 12), 3)),
    ]


def test_every_way_of_cutting_gives_the_same_events():
    ways = every_way(_pairs())
    whole = ways["whole"]
    assert [e[0] for e in whole] == ["request", "response", "request", "request", "response",
                                     "response", "closed"]
    assert all(e[9] for e in whole[:-1])  # all decoded
    for name, got in ways.items():
        assert got == whole, name


def test_frames_name_the_packets_that_carried_them():
    req = request_frame(sample_message(ProduceRequest, 9), 2)
    from wire_helpers import resegment

    packets = resegment([(req, b"")], lambda s: [s[:10], s[10:50], s[50:]])
    (event,) = frames(run(packets))
    assert event.packets == (3, 4, 5)  # after SYN and SYN/ACK


@pytest.mark.parametrize("length", [-5, 2, 100_000_001])
def test_absurd_lengths_are_reported_and_framing_resynchronises(length):
    good = request_frame(sample_message(ProduceRequest, 9), 9)
    junk = struct.pack("!i", length) + b"\x01" * 20
    events = run(conversation([(junk + good, b"")]))
    fr = frames(events)
    assert isinstance(fr[0], Malformed) and f"implausible frame length {length}" in fr[0].error
    assert isinstance(fr[-1], Request) and fr[-1].correlation_id == 9 and fr[-1].decoded
    assert any(isinstance(e, Skipped) for e in events)


def test_oversized_frame_keeps_its_header_within_the_memory_bound():
    big = sample_message(ProduceRequest, 9)
    data = request_frame(big, 4)
    head = struct.pack("!i", 300_000) + data[4:]
    rest = b"\0" * (300_000 - len(data) + 4)
    nxt = request_frame(sample_message(ProduceRequest, 9), 5)
    chunks = [(rest[i:i + 60_000], b"") for i in range(0, len(rest), 60_000)]
    events = frames(run(conversation([(head, b""), *chunks, (nxt, b"")]), max_flow_bytes=200_000))
    assert "exceeds the per-flow memory bound" in events[0].error
    assert events[0].correlation_id == 4 and events[0].size == 300_000
    assert events[1].decoded and events[1].correlation_id == 5
