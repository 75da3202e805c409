"""Hypothesis: arbitrary bytes and mutated real frames never raise, and keep the bounds the wire
core promises (README, "Every input has a bound"): bytes buffered per flow (--max-flow-mib,
stream.py/framing.py), connections tracked (stream.py, 100,000 by default; a small bound here),
decompressed bytes per batch and per frame and records per frame (records.py), checked on the
state the sniffer holds and with tracemalloc's peak of what the feeding allocated."""

from __future__ import annotations

import os
import struct
import tracemalloc
import gzip
from functools import lru_cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka.protocol.consumer import FetchResponse
from kafka.protocol.producer import ProduceRequest

from kshock.wire.model import ACK, FIN, PSH, RST, SYN, KafkaFrame
from kshock.wire.packet import parse_packet
from kshock.wire.records import (
    MAX_BATCH_BYTES, MAX_FRAME_DECOMPRESSED, MAX_FRAME_RECORDS, Budget, RecordError, count_records, records,
)
from kshock.wire.sniffer import Sniffer
from wire_helpers import BROKER, CLIENT, conversation, eth_packet, record_batch, request_frame, response_frame, \
    sample_message

REQ = request_frame(sample_message(ProduceRequest, 9), 1)
RESP = response_frame(sample_message(FetchResponse, 12), 1)
SETTINGS = settings(max_examples=int(os.environ.get("KSHOCK_FUZZ_EXAMPLES", "150")), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
FLOW_BOUND = 64 * 1024
MIB = 1 << 20


def assert_bounded(sniffer: Sniffer, flow_bound: int) -> None:
    """The state a sniffer holds: connections, framers and lanes within max_connections, and
    bytes buffered per direction within the flow bound (reordered bytes + a frame being built)."""
    limit = sniffer.max_connections
    assert len(sniffer._streams) <= limit and len(sniffer._conns) <= limit
    assert len(sniffer._framers) <= 2 * limit and len(sniffer._lanes) <= 2 * limit
    assert sniffer._streams.buffered_bytes() <= 2 * limit * flow_bound
    for framer in sniffer._framers.values():
        assert len(framer.buf) <= flow_bound + 1600  # the bound + the segment that crossed it


class Peak:
    """tracemalloc's peak of what the block allocated (the sniffer is built before it)."""

    def __enter__(self) -> Peak:
        tracemalloc.start()
        tracemalloc.reset_peak()
        self.base = tracemalloc.get_traced_memory()[0]
        return self

    def __exit__(self, *exc) -> None:
        self.bytes = tracemalloc.get_traced_memory()[1] - self.base
        tracemalloc.stop()


@SETTINGS
@given(st.integers(min_value=0, max_value=300), st.binary(max_size=200))
def test_any_packet_bytes(linktype, raw):
    parse_packet(linktype, raw)
    sniffer = Sniffer(max_flow_bytes=FLOW_BOUND)
    sniffer.feed(0.0, linktype, raw)
    assert len(sniffer._streams) <= 1  # one packet opens at most one connection
    assert sniffer._streams.buffered_bytes() <= len(raw)
    assert sniffer.stats.packets == 1
    sniffer.finish()
    assert not sniffer._framers and len(sniffer._streams) == 0


@SETTINGS
@given(st.lists(st.binary(max_size=300), max_size=8))
def test_arbitrary_stream_bytes_on_a_kafka_port(chunks):
    pairs = [(c, c[::-1]) for c in chunks if c]
    sniffer = Sniffer(max_flow_bytes=FLOW_BOUND)
    fed = 0
    with Peak() as peak:
        for ts, lt, raw in conversation(pairs):
            fed += len(raw)
            for event in sniffer.feed(ts, lt, raw):
                if isinstance(event, KafkaFrame):
                    event.as_json()
            assert_bounded(sniffer, FLOW_BOUND)
        sniffer.finish()
    assert not sniffer._framers and len(sniffer._streams) == 0
    # events and their JSON for at most 2 x 8 x 300 bytes of garbage: nothing near a flow bound
    assert peak.bytes < 2 * MIB, (peak.bytes, fed)


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
    sniffer = Sniffer(max_flow_bytes=FLOW_BOUND)
    for ts, lt, raw in conversation([(req, resp), (REQ, RESP)]):
        sniffer.feed(ts, lt, raw)
        assert sniffer._streams.buffered_bytes() <= FLOW_BOUND
        assert_bounded(sniffer, FLOW_BOUND)
    sniffer.finish()
    assert not sniffer._framers and len(sniffer._streams) == 0  # state freed on close


# -- many connections of garbage: the flow table stays within max_connections -----------------

segment = st.tuples(
    st.integers(0, 399),  # which client port (of 400): far more connections than the bound
    st.integers(0, 2**32 - 1),  # sequence number
    st.sampled_from([SYN, SYN | ACK, ACK, ACK | PSH, PSH, FIN | ACK, RST, 0]),
    st.binary(max_size=64),
    st.booleans(),  # toward the broker?
)


@SETTINGS
@given(st.lists(segment, min_size=1, max_size=300))
def test_garbage_from_many_connections_keeps_the_flow_table_bounded(segments):
    sniffer = Sniffer(max_flow_bytes=FLOW_BOUND, max_connections=16)
    assert sniffer.max_connections == 16
    for n, (port, seq, flags, payload, toward) in enumerate(segments):
        client = (CLIENT[0], 20000 + port)
        src, dst = (client, BROKER) if toward else (BROKER, client)
        sniffer.feed(1000.0 + n * 0.001, 1, eth_packet(src, dst, seq, seq, flags, payload))
        assert_bounded(sniffer, FLOW_BOUND)
        for state in sniffer._conns.values():
            assert len(state.decoder_conn.outstanding) <= state.decoder_conn.max_outstanding
    sniffer.finish()
    assert not sniffer._framers and len(sniffer._streams) == 0 and not sniffer._conns


# -- a frame that claims to be huge: buffered bytes stay within the flow bound ------------------

@settings(max_examples=min(15, int(os.environ.get("KSHOCK_FUZZ_EXAMPLES", "150"))), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 100_000_000), st.integers(2, 8), st.binary(min_size=1, max_size=64))
def test_a_frame_claiming_to_be_huge_buffers_at_most_the_flow_bound(declared, times, filler):
    bound = 64 * 1024
    head = struct.pack("!ihhih", declared, 0, 9, 1, 3) + b"cli"
    body = (filler * (times * bound // len(filler) + 1))[: times * bound]  # 2-8 flow bounds of bytes
    cut = [head + body[:1400]] + [body[i:i + 1400] for i in range(1400, len(body), 1400)]
    sniffer = Sniffer(max_flow_bytes=bound)
    seq = 1000
    with Peak() as peak:
        sniffer.feed(0.0, 1, eth_packet(CLIENT, BROKER, seq - 1, 0, SYN))
        for n, piece in enumerate(cut):
            sniffer.feed(0.001 * n, 1, eth_packet(CLIENT, BROKER, seq, 0, PSH, piece))
            seq += len(piece)
            assert_bounded(sniffer, bound)
        sniffer.finish()
    # what is kept of one frame is the flow bound; the rest is counted, not held: the peak is
    # a small multiple of the bound, never the frame's declared size or all the bytes fed
    assert peak.bytes < 3 * bound + 256 * 1024, (peak.bytes, declared, times)
    assert sniffer.stats.frames >= 1


# -- record sets of garbage: decompression and record counts within records.py's bounds ---------

BATCH = record_batch(3)
CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


def _batch(codec: int, count: int, body: bytes) -> bytes:
    head = bytearray(BATCH[:61])
    struct.pack_into("!i", head, 8, 49 + len(body))
    attrs = struct.unpack_from("!h", head, 21)[0]
    struct.pack_into("!h", head, 21, (attrs & ~0x07) | codec)
    struct.pack_into("!i", head, 57, count)
    return bytes(head) + body


@lru_cache(maxsize=None)
def _gzip_zeros(mib: int) -> bytes:
    """`mib` MiB of zeros, gzipped (a few KB): a bomb past the batch bound from 33 MiB on."""
    return gzip.compress(bytes(mib * MIB), 1)


record_sets = st.one_of(
    st.builds(_mutate, st.just(BATCH * 3), st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)),
                                                    max_size=8)),
    st.builds(_batch, st.sampled_from(sorted(CODECS.values())), st.integers(-2**31, 2**31 - 1),
              st.binary(max_size=300)),
)  # (the gzip bombs are test_gzip_bombs_inflate_at_most_one_batch_at_a_time's: tens of MiB per example)


@pytest.mark.filterwarnings("ignore:Generating overly large repr")
@settings(max_examples=min(40, int(os.environ.get("KSHOCK_FUZZ_EXAMPLES", "150"))), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(record_sets, min_size=1, max_size=3))
def test_garbage_record_sets_stay_within_the_record_bounds(sets):
    budget = Budget()
    read = 0
    with Peak() as peak:
        for data in sets:
            try:
                count_records(data, budget)
                for _ in records(data, budget):
                    read += 1
            except RecordError:
                pass  # one line in the event: bad bytes, or a bound reached
    assert read <= MAX_FRAME_RECORDS
    # never more than the frame's 64 MiB decompressed, never more records than the frame bound
    assert 0 <= budget.bytes_left <= MAX_FRAME_DECOMPRESSED and budget.records_left >= 0
    # garbage of a few hundred bytes, whatever sizes its headers claim, allocates little
    assert peak.bytes < 8 * MIB, peak.bytes


@pytest.mark.parametrize("mib, batches, cut", [
    (33, 1, "a gzip batch decompresses to more than 32 MiB"),
    (30, 3, "the frame's compressed batches hold more than 64 MiB"),
], ids=["batch-bound", "frame-bound"])
def test_gzip_bombs_inflate_at_most_one_batch_at_a_time(mib, batches, cut):
    data = _batch(1, 1, _gzip_zeros(mib)) * batches
    budget = Budget()
    with Peak() as peak:
        try:
            count_records(data, budget)
            for _ in records(data, budget):
                pass
        except RecordError as exc:
            error = str(exc)
        else:
            error = ""
    assert error.startswith(cut), error
    assert 0 <= budget.bytes_left <= MAX_FRAME_DECOMPRESSED
    # 30-33 MiB of zeros behind a gzip body, up to three in one frame: at most one batch's
    # 32 MiB (+1 byte) is inflated at a time. zlib hands its output over as a copy of the blocks
    # it filled, so that one batch exists twice for a moment: the peak is 2 x 32 MiB, never the
    # 90 MiB the batches hold
    assert peak.bytes < 2 * MAX_BATCH_BYTES + 8 * MIB, peak.bytes
