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
        seg(BROKER, CLIENT, 500, flags=ACK, ack=108),
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


# -- the FIN's sequence number; replies captured before what they answer ----------------------

def _handshake():
    return [seg(CLIENT, BROKER, 99, flags=SYN), seg(BROKER, CLIENT, 499, flags=SYN | ACK, ack=100),
            seg(CLIENT, BROKER, 100, flags=ACK, ack=500)]


def _gaps(events):
    return [(e.flow, e.offset, e.length) for e in events if isinstance(e, Gap)]


def test_the_peer_acknowledging_a_fin_is_no_lost_byte():
    # lab-kafka-python's last packets: the client's FIN, the broker's ACK of FIN+1, then a
    # Fetch response (acking FIN+1 again) and the client's RST
    t = StreamTable()
    events = feed(t, _handshake() + [
        seg(CLIENT, BROKER, 100, b"request", flags=ACK | PSH, ack=500),
        seg(CLIENT, BROKER, 107, flags=FIN | ACK, ack=500),
        seg(BROKER, CLIENT, 500, flags=ACK, ack=108),
        seg(BROKER, CLIENT, 500, b"response", flags=ACK | PSH, ack=108),
        seg(CLIENT, BROKER, 108, flags=RST),
    ])
    assert _gaps(events) == []
    assert data_of(events) == b"requestresponse"
    assert [e.how for e in events if isinstance(e, Closed)] == ["rst"]


def test_fin_acknowledged_then_fin_back_closes_by_fin_without_a_gap():
    t = StreamTable()
    events = feed(t, _handshake() + [
        seg(CLIENT, BROKER, 100, b"abc", flags=ACK | PSH, ack=500),
        seg(CLIENT, BROKER, 103, flags=FIN | ACK, ack=500),
        seg(BROKER, CLIENT, 500, flags=ACK, ack=104),
        seg(BROKER, CLIENT, 500, b"xy", flags=ACK | PSH, ack=104),
        seg(BROKER, CLIENT, 502, flags=FIN | ACK, ack=104),
        seg(CLIENT, BROKER, 104, flags=ACK, ack=503),
    ])
    assert _gaps(events) == []
    assert [e.how for e in events if isinstance(e, Closed)] == ["fin"] and len(t) == 0


def test_a_reply_captured_before_the_request_it_answers_waits_for_it():
    t = StreamTable()
    events = feed(t, _handshake() + [
        seg(BROKER, CLIENT, 500, b"RESPONSE", flags=ACK | PSH, ack=107),  # captured first
        seg(CLIENT, BROKER, 100, b"request", flags=ACK | PSH, ack=500),
        seg(CLIENT, BROKER, 107, flags=ACK, ack=508),
    ])
    assert _gaps(events) == []
    assert [e.data for e in events if isinstance(e, Data)] == [b"request", b"RESPONSE"]
    assert [e.packet for e in events if isinstance(e, Data)] == [5, 4]


def test_a_reply_of_many_segments_waits_whole_and_witnesses_once():
    t = StreamTable()
    events = feed(t, _handshake() + [
        seg(BROKER, CLIENT, 500, b"R1a", flags=ACK | PSH, ack=104),  # one reply, three segments,
        seg(BROKER, CLIENT, 503, b"R1b", flags=ACK | PSH, ack=104),  # all captured before the
        seg(BROKER, CLIENT, 506, b"R1c", flags=ACK | PSH, ack=104),  # request they answer
        seg(CLIENT, BROKER, 100, b"q1q1", flags=ACK | PSH, ack=500),
    ])
    assert _gaps(events) == []
    assert [e.data for e in events if isinstance(e, Data)] == [b"q1q1", b"R1a", b"R1b", b"R1c"]


def test_a_lost_request_is_one_gap_and_its_held_reply_follows():
    t = StreamTable()
    events = feed(t, _handshake() + [
        seg(BROKER, CLIENT, 500, b"R1", flags=ACK | PSH, ack=102),  # answers q1, never captured
        seg(CLIENT, BROKER, 102, b"q2", flags=ACK | PSH, ack=502),
        seg(BROKER, CLIENT, 502, flags=ACK, ack=104),  # a second witness: q1 is lost
    ])
    assert [(g.offset, g.length, g.reason) for g in events if isinstance(g, Gap)] == \
        [(0, 2, "lost segment (acknowledged, not captured)")]
    kinds = [(type(e).__name__, getattr(e, "data", None)) for e in events]
    assert kinds == [("Gap", None), ("Data", b"q2"), ("Data", b"R1")]


def test_a_duplicated_packet_is_no_second_witness():
    t = StreamTable()
    reply = seg(BROKER, CLIENT, 500, b"R1", flags=ACK | PSH, ack=102)
    events = feed(t, _handshake() + [reply, reply])
    assert _gaps(events) == [] and data_of(events) == b""  # still waiting for q1
    t.finish(99.0, events)
    assert _gaps(events)[0][1:] == (0, 2) and data_of(events) == b"R1"  # released at the end


def test_an_earlier_filled_hole_does_not_count_for_the_next():
    t = StreamTable()
    events = feed(t, _handshake() + [
        seg(BROKER, CLIENT, 500, flags=ACK, ack=102),  # captured before q1 (a witness for offset 0)
        seg(CLIENT, BROKER, 100, b"q1", flags=ACK | PSH, ack=500),  # fills it
        seg(BROKER, CLIENT, 500, b"R1", flags=ACK | PSH, ack=104),  # captured before q2
        seg(CLIENT, BROKER, 102, b"q2", flags=ACK | PSH, ack=502),
    ])
    assert _gaps(events) == []
    assert [e.data for e in events if isinstance(e, Data)] == [b"q1", b"q2", b"R1"]


def test_a_held_reply_is_released_at_rst_after_the_gap():
    t = StreamTable()
    events = feed(t, _handshake() + [
        seg(BROKER, CLIENT, 500, b"R1", flags=ACK | PSH, ack=102),
        seg(CLIENT, BROKER, 102, flags=RST),
    ])
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["Gap", "Data", "Closed"] and len(t) == 0


def test_held_bytes_are_bounded_too():
    t = StreamTable(max_flow_bytes=4000)  # reorder buffer: 1000 bytes
    out = []
    for i, s in enumerate(_handshake(), 1):
        t.feed(s, 1.0, i, out)
    for i in range(5):  # replies to a request the capture lost
        t.feed(seg(BROKER, CLIENT, 500 + 300 * i, b"r" * 300, flags=ACK | PSH, ack=110), 2.0, 4 + i, out)
    assert t.buffered_bytes() <= 1000
    assert _gaps(out)[0][1:] == (0, 10) and len(data_of(out)) >= 900


def test_a_retransmission_acking_a_held_reply_does_not_deadlock():
    t = StreamTable()
    events = feed(t, _handshake() + [
        seg(BROKER, CLIENT, 500, b"R1", flags=ACK | PSH, ack=102),  # q1 not captured (yet)
        seg(CLIENT, BROKER, 100, b"q1", flags=ACK | PSH, ack=502),  # its retransmission acks R1
    ])
    assert _gaps(events) == []
    assert [e.data for e in events if isinstance(e, Data)] == [b"q1", b"R1"]
