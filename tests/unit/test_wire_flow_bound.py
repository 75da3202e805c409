"""The number of tracked connections is bounded: past max_connections the least recently active
are closed ("evicted"), the same way in every lane (pure Python, fused, compiled)."""

from __future__ import annotations

from kafka.protocol.metadata import MetadataRequest

from wire_helpers import CLIENT, conversation, request_frame

from kshock.wire.model import Closed, KafkaFrame, Malformed
from kshock.wire.sniffer import Sniffer
from kshock.wire.stream import DEFAULT_MAX_CONNECTIONS, StreamTable


def _flows(n: int, *, whole: bool = True) -> list:
    frame = request_frame(MetadataRequest[1](topics=None))
    packets = []
    for i in range(n):
        client = (CLIENT[0], 20000 + i)
        payload = frame if whole else frame[:-3]  # unfinished: comes out Malformed at close
        packets += conversation([(payload, b"")], handshake=i % 2 == 0, close=False, client=client, t0=1000 + i)
    return packets


def _events(packets, **kw) -> tuple[list, Sniffer]:
    sniffer = Sniffer((9092,), **kw)
    events = []
    for ts, linktype, raw in packets:
        events += sniffer.feed(ts, linktype, raw)
        assert len(sniffer._streams) <= sniffer.max_connections
        assert len(sniffer._conns) <= sniffer.max_connections
        assert len(sniffer._framers) <= 2 * sniffer.max_connections
    events += sniffer.finish()
    return events, sniffer


def _essence(events) -> list[tuple]:
    return [(type(e).__name__, getattr(e, "ts", None), getattr(e, "src", None), getattr(e, "how", None),
             getattr(e, "correlation_id", None)) for e in events]


def test_default_bound():
    assert DEFAULT_MAX_CONNECTIONS == 100_000
    assert StreamTable().max_connections == 100_000


def test_connections_past_the_bound_are_evicted_least_recent_first():
    events, sniffer = _events(_flows(40), max_connections=8)
    closed = [e for e in events if isinstance(e, Closed)]
    assert sniffer.stats.closed["evicted"] == 32 and sniffer.stats.closed["end"] == 8
    evicted_ports = [e.flow.sport for e in closed if e.how == "evicted"]
    assert evicted_ports == list(range(20000, 20032))  # the oldest first
    assert sum(isinstance(e, KafkaFrame) and not isinstance(e, Malformed) for e in events) == 40


def test_unfinished_frames_of_evicted_connections_come_out():
    events, sniffer = _events(_flows(20, whole=False), max_connections=4)
    assert sniffer.stats.closed["evicted"] == 16
    assert sum(isinstance(e, Malformed) for e in events) == 20


def test_every_lane_evicts_the_same():
    packets = _flows(60)
    reference, _ = _events(packets, max_connections=10, fast=False)
    for kw in ({}, {"compiled": False}):
        events, _ = _events(packets, max_connections=10, **kw)
        assert _essence(events) == _essence(reference)


def test_decode_summary_reports_evictions(tmp_path, monkeypatch):
    import io

    from kshock.replay import listing as decoding
    from kshock.capture.writer import write_pcap

    path = tmp_path / "many.pcap"
    write_pcap(str(path), 1, [(ts, raw) for ts, _link, raw in _flows(12)])
    run = decoding.open_run(str(path), [9092])
    monkeypatch.setattr(run.sniffer._streams, "max_connections", 5)
    decoding.write_table(run, io.StringIO())
    text = decoding.summary(run)
    assert "evicted 7" in text and "7 connections were evicted: more than 5 were open at once" in text
