"""stream.py: reassembly, gaps, closing, idle, memory bounds."""

from __future__ import annotations

from kshock.wire.model import ACK, FIN, PSH, RST, SYN, Closed, Data, Gap, Segment
from kshock.wire.stream import StreamTable
from wire_helpers import BROKER, CLIENT


def seg(src, dst, seq, payload=b"", flags=PSH, ack=0):
    return Segment(src[0], src[1], dst[0], dst[1], seq, ack, flags, payload)


def feed(table, segments, ts=1.0):
    out = []
    for i, s in enumerate(segments, 1):
        table.feed(s, ts + i, i, out)
    return out


def data_of(events):
    return b"".join(e.data for e in events if isinstance(e, Data))


def test_out_of_order_duplicates_and_overlaps_deliver_each_byte_once():
    t = StreamTable()
    events = feed(t, [
        seg(CLIENT, BROKER, 99, flags=SYN),
        seg(CLIENT, BROKER, 105, b"fghij"),
        seg(CLIENT, BROKER, 100, b"abcde"),
        seg(CLIENT, BROKER, 100, b"abcde"),  # retransmission
        seg(CLIENT, BROKER, 103, b"defghijkl"),  # overlap
        seg(CLIENT, BROKER, 112, b"mn"),
    ])
    assert data_of(events) == b"abcdefghijklmn"
    offsets = [(e.offset, e.packet) for e in events if isinstance(e, Data)]
    assert offsets == [(0, 3), (5, 2), (10, 5), (12, 6)]


def test_sequence_numbers_wrap():
    t = StreamTable()
    events = feed(t, [seg(CLIENT, BROKER, 2**32 - 3, flags=SYN), seg(CLIENT, BROKER, 2**32 - 2, b"ab"),
                      seg(CLIENT, BROKER, 0, b"cd")])
    assert data_of(events) == b"abcd"


def test_lost_segment_acknowledged_by_the_peer_becomes_a_gap():
    t = StreamTable()
    events = feed(t, [
        seg(CLIENT, BROKER, 99, flags=SYN),
        seg(BROKER, CLIENT, 499, flags=SYN | ACK, ack=100),
        seg(CLIENT, BROKER, 100, b"aaaa"),
        seg(CLIENT, BROKER, 108, b"cccc"),  # bytes 104..108 never captured
        seg(BROKER, CLIENT, 500, flags=ACK, ack=112),
        seg(BROKER, CLIENT, 500, flags=ACK, ack=112),
    ])
    gaps = [e for e in events if isinstance(e, Gap)]
    assert [(g.offset, g.length) for g in gaps] == [(4, 4)]
    assert data_of(events) == b"aaaacccc"  # nothing invented


def test_fin_on_both_sides_closes_and_frees():
    t = StreamTable()
    events = feed(t, [
        seg(CLIENT, BROKER, 99, flags=SYN), seg(BROKER, CLIENT, 499, flags=SYN | ACK, ack=100),
        seg(CLIENT, BROKER, 100, b"x", flags=FIN | ACK | PSH),
        seg(BROKER, CLIENT, 500, flags=FIN | ACK, ack=102),
    ])
    assert [e.how for e in events if isinstance(e, Closed)] == ["fin"]
    assert len(t) == 0


def test_rst_closes_and_a_stray_ack_after_it_opens_nothing():
    t = StreamTable()
    events = feed(t, [seg(CLIENT, BROKER, 99, flags=SYN), seg(CLIENT, BROKER, 100, b"x"),
                      seg(BROKER, CLIENT, 7, flags=RST), seg(CLIENT, BROKER, 101, flags=ACK)])
    assert [e.how for e in events if isinstance(e, Closed)] == ["rst"]
    assert len(t) == 0


def test_idle_timeout_by_packet_time_and_finish():
    t = StreamTable(idle_timeout_s=10)
    out = []
    t.feed(seg(CLIENT, BROKER, 1, b"abc"), 100.0, 1, out)
    t.expire(105.0, out)
    assert len(t) == 1
    t.expire(111.0, out)
    assert [e.how for e in out if isinstance(e, Closed)] == ["idle"] and len(t) == 0
    t.feed(seg(CLIENT, BROKER, 1, b"abc"), 200.0, 2, out)
    t.finish(200.0, out)
    assert [e.how for e in out if isinstance(e, Closed)][-1] == "end"


def test_mid_stream_start_and_memory_bound():
    t = StreamTable(max_flow_bytes=4000)  # reorder buffer: 1000 bytes
    out = []
    t.feed(seg(CLIENT, BROKER, 5000, b"a" * 10), 1.0, 1, out)
    assert t.is_midstream(t.connection_client(seg_flow := out[0].flow) or seg_flow)
    for i in range(5):  # far ahead of a hole: held until the bound is hit
        t.feed(seg(CLIENT, BROKER, 6000 + 300 * i, b"b" * 300), 2.0, 2 + i, out)
    assert t.buffered_bytes() <= 1000
    gaps = [e for e in out if isinstance(e, Gap)]
    assert gaps and gaps[0].offset == 10 and gaps[0].reason == "reorder buffer full"


def test_new_syn_on_the_same_ports_starts_a_new_connection():
    t = StreamTable()
    events = feed(t, [seg(CLIENT, BROKER, 99, flags=SYN), seg(CLIENT, BROKER, 100, b"old"),
                      seg(CLIENT, BROKER, 7777, flags=SYN), seg(CLIENT, BROKER, 7778, b"new")])
    assert [e.how for e in events if isinstance(e, Closed)] == ["reused"]
    assert data_of(events) == b"oldnew"
