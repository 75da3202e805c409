"""Sniffer: (timestamp, link-type, raw packet) in, Kafka events out. Composes the wire core.

    sniffer = Sniffer(ports={9092})
    for ts, linktype, raw in packets:
        for event in sniffer.feed(ts, linktype, raw):
            ...
    for event in sniffer.finish():
        ...

Events: Request, Response, Malformed (a frame that did not decode; header fields kept), Gap
(bytes the capture lost), Skipped (bytes dropped while resynchronising) and Closed. Packets
are numbered from 1 in the order fed; a frame event's `packets` names the packets that carried
its bytes. No clocks: idle connections expire by packet time.

Shortcuts, each proven to give the same events (tests/unit/test_wire_lanes.py): the fused
lane in `feed` (in-order segments of known flows, without the stream machinery), the
decoder's lean lane (decode.Decoder.decode_data), and, where it was built, the compiled lane
(wire/_lane.pyx: one whole Produce frame of a learnt shape per segment). The switches:

    Sniffer(compiled=False)   pure Python: no compiled lane (`sniffer.compiled` says whether
                              it is in use; it is optional, see setup.py)
    Sniffer(shortcuts=False)  the reference path: no shortcut at all, every packet the general
                              way (Segment -> StreamTable -> Data -> Framer -> RawFrame ->
                              Decoder.decode with the fast-path body readers); what the tests
                              compare the shortcuts with
    Sniffer(fast=False)       the reference path, and kafka-python's schema classes for every
                              body (no fast-path readers either)
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from struct import Struct

from kshock.wire.decode import Connection, Decoder
from kshock.wire.framing import MAX_FRAME_BYTES, Framer
from kshock.wire.model import Closed, Data, Event, Flow, Gap, Malformed, RawFrame
from kshock.wire.packet import parse_packet
from kshock.wire.schema import SchemaTable
from kshock.wire.stream import (DEFAULT_IDLE_TIMEOUT_S, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_FLOW_BYTES, StreamTable,
                                connection_key)

_EXPIRE_EVERY = 4096  # packets between idle sweeps
# from the EtherType on: ethertype, version/ihl, total length, flags/fragment, protocol,
# src+dst+sport+dport (the lane key), seq, ack, data offset, TCP flags
_HOT = Struct("!HBxHxxHxBxx12sIIBB")
_PORTS = Struct("!HH")
_I32 = Struct("!i")
_MOD = 1 << 32
_HALF = 1 << 31


@dataclass(slots=True)
class SnifferStats:
    packets: int = 0
    kafka_segments: int = 0  # TCP segments to or from a Kafka port
    frames: int = 0  # requests + responses + malformed
    requests: int = 0
    responses: int = 0
    malformed: int = 0
    gaps: int = 0
    gap_bytes: int = 0
    skipped_bytes: int = 0
    connections: int = 0
    closed: dict[str, int] = field(default_factory=dict)

    def count_frame(self, event: Event, is_request: bool) -> None:
        """One decoded frame: a request, a response, or (either way) a Malformed one."""
        self.frames += 1
        if type(event) is Malformed:
            self.malformed += 1
        elif is_request:
            self.requests += 1
        else:
            self.responses += 1


class _ConnState:
    __slots__ = ("client", "framers", "decoder_conn")

    def __init__(self, client: Flow, framers: dict[Flow, Framer], decoder_conn: Connection) -> None:
        self.client = client
        self.framers = framers
        self.decoder_conn = decoder_conn


class _FusedDirection:
    """What the fused lane (and the compiled lane, _lane.pyx) needs of one IPv4 direction
    that already has a framer: its stream half, the other half, framer and decoder state."""

    __slots__ = ("half", "other", "framer", "dconn", "flow", "is_request", "src", "dst",
                 "min_size", "max_size")

    def __init__(self, half, framer: Framer, dconn: Connection) -> None:
        self.half = half
        self.other = half.other
        self.framer = framer
        self.dconn = dconn
        self.flow = framer.flow
        self.is_request = framer.is_request
        self.src = framer.src
        self.dst = framer.dst
        self.min_size = framer.min_size
        self.max_size = min(MAX_FRAME_BYTES, framer.keep_limit)


def _frame_lane(sniffer: Sniffer):
    """FrameLane(sniffer).feed, or None where the extension was not built (pure Python then)."""
    try:
        from kshock.wire._lane import FrameLane
    except ImportError:
        return None
    from kshock.wire.model import new_request, new_response

    return FrameLane(sniffer, new_request, new_response).feed


def _lane_key(flow: Flow) -> bytes:
    return flow.src + flow.dst + _PORTS.pack(flow.sport, flow.dport)


class Sniffer:
    """Decodes the Kafka traffic of any number of connections from raw packets."""

    def __init__(
        self,
        ports: Collection[int] = (9092,),
        *,
        max_flow_bytes: int = DEFAULT_MAX_FLOW_BYTES,
        idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
        fast: bool = True,
        schemas: SchemaTable | None = None,
        compiled: bool = True,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        shortcuts: bool = True,
    ) -> None:
        self.ports = frozenset(ports)
        self.stats = SnifferStats()
        # False: the reference path, no shortcuts (see the module docstring); the same events
        self.shortcuts = shortcuts and fast
        self.decoder = Decoder(schemas, fast=fast, shortcuts=self.shortcuts)
        self._streams = StreamTable(self.ports, max_flow_bytes, idle_timeout_s, max_connections)
        self._keep_limit = max_flow_bytes - self._streams.pending_limit
        self._conns: dict[tuple, _ConnState] = {}
        self._framers: dict[Flow, Framer] = {}
        # IPv4 flows with a framer, by their addresses and ports as they sit in the packet
        # (none on the reference path: every packet goes the general way)
        self._lanes: dict[bytes, _FusedDirection] = {}
        self._decode_data = self.decoder.decode_data
        self._last_ts = 0.0
        self._next_expire = _EXPIRE_EVERY
        # the compiled lane (wire/_lane.pyx) where it was built: the same events, sooner
        self._compiled = _frame_lane(self) if self.shortcuts and compiled else None

    @property
    def compiled(self) -> bool:
        """Whether the compiled lane is in use (asked for, built, and shortcuts on)."""
        return self._compiled is not None

    @property
    def max_connections(self) -> int:
        """Connections tracked at once; past it the least recently active are evicted."""
        return self._streams.max_connections

    @property
    def schemas(self) -> SchemaTable:
        return self.decoder.schemas

    def identity(self, flow: Flow):
        """The ConnectionIdentity of the connection `flow` belongs to, if it is open."""
        state = self._conns.get(connection_key(flow))
        return state.decoder_conn.identity if state else None

    def feed(self, ts: float, linktype: int, raw: bytes) -> list[Event]:
        """Take one captured packet; return the events it completes, in order."""
        compiled = self._compiled
        if compiled is not None and type(raw) is bytes:
            events = compiled(ts, linktype, raw)
            if events is not None:
                return events
        stats = self.stats
        stats.packets += 1
        packet = stats.packets
        # Ethernet + IPv4 (no options, not a fragment) + TCP is parsed here, with one unpack;
        # anything else goes through parse_packet (which gives the same Segment for these)
        if linktype == 1 and len(raw) >= 54:
            ethertype, vihl, total, frag, proto, key, seq, ack, off, flags = _HOT.unpack_from(raw, 12)
            if ethertype != 0x0800 or vihl != 0x45 or proto != 6 or frag & 0x3FFF:
                return self._feed_general(ts, linktype, raw, packet)
            end = 14 + total
            if total == 0 or end > len(raw):  # TSO captures write 0; short captures are cut
                end = len(raw)
            elif total < 40:
                return []
            data_at = 34 + (off >> 4) * 4
            if off < 0x50 or data_at > end:
                return []
            lane = self._lanes.get(key)
            if lane is not None and not flags & 0x07:  # no FIN, SYN or RST
                # The fused lane: the next in-order bytes of an established flow, nothing
                # waiting (in either direction: held replies wait for these bytes), no hole
                # acknowledged: the same events as the general way (Segment -> StreamTable ->
                # Data -> Framer -> RawFrame -> decode) without the stream machinery, and a
                # segment of exactly one whole frame without any objects.
                half = lane.half
                other = lane.other
                if not half.pending and half.fin_off is None and other.gate is None \
                        and not (seq - half.base_seq - half.next_off) % _MOD \
                        and (not flags & 0x10 or not other.started  # ACK: not past a hole
                             or not 0 < (ack - other.base_seq - other.next_off) % _MOD < _HALF):
                    stats.kafka_segments += 1
                    if ts > self._last_ts:
                        self._last_ts = ts
                    conn = half.conn
                    if ts > conn.last_ts:
                        conn.last_ts = ts
                    n = end - data_at
                    if n == 0:  # a bare ACK: nothing to frame
                        if packet >= self._next_expire:
                            return self._expire(packet, [])
                        return []
                    framer = lane.framer
                    offset = half.next_off
                    half.next_off = offset + n
                    if not framer.buf and not framer.hunting and framer.skip_to is None \
                            and n >= 4:
                        size = _I32.unpack_from(raw, data_at)[0]
                        if size + 4 == n and lane.min_size <= size <= lane.max_size:
                            # one whole frame, the common case: framed and decoded right here
                            framer.buf_off = offset + n
                            event = self._decode_data(ts, raw[data_at + 4 : end], size,
                                                      (packet,), lane.flow, lane.is_request,
                                                      lane.dconn, lane.src, lane.dst)
                            stats.count_frame(event, lane.is_request)
                            if packet >= self._next_expire:
                                return self._expire(packet, [event])
                            return [event]
                    # anything else: the framer as the general way would feed it
                    frames = []
                    framer.feed(offset, raw[data_at:end], ts, packet, frames)
                    out: list = []
                    if frames:
                        decode_data = self._decode_data
                        for item in frames:
                            if type(item) is RawFrame and not item.truncated:
                                event = decode_data(item.ts, item.data, item.size, item.packets,
                                                    item.flow, lane.is_request, lane.dconn,
                                                    lane.src, lane.dst)
                                stats.count_frame(event, lane.is_request)
                                out.append(event)
                            else:
                                self._decode_all([item], out)
                    if packet >= self._next_expire:
                        return self._expire(packet, out)
                    return out
            sport, dport = _PORTS.unpack_from(raw, 34)
            ports = self.ports
            if dport not in ports and sport not in ports:
                return []
            src, dst, payload = raw[26:30], raw[30:34], raw[data_at:end]
        else:
            return self._feed_general(ts, linktype, raw, packet)
        return self._feed_segment(src, sport, dst, dport, seq, ack, flags, payload, ts, packet)

    def _feed_general(self, ts: float, linktype: int, raw: bytes, packet: int) -> list[Event]:
        seg = parse_packet(linktype, raw)
        if seg is None:
            return []
        ports = self.ports
        if seg.dport not in ports and seg.sport not in ports:
            return []
        return self._feed_segment(seg.src, seg.sport, seg.dst, seg.dport, seg.seq, seg.ack,
                                  seg.flags, seg.payload, ts, packet)

    def _feed_segment(self, src: bytes, sport: int, dst: bytes, dport: int, seq: int, ack: int,
                      flags: int, payload: bytes, ts: float, packet: int) -> list[Event]:
        self.stats.kafka_segments += 1
        if ts > self._last_ts:
            self._last_ts = ts
        stream_events: list = []
        self._streams.feed_fields(src, sport, dst, dport, seq, ack, flags, payload, ts, packet,
                                  stream_events)
        if packet >= self._next_expire:
            self._next_expire = packet + _EXPIRE_EVERY
            self._streams.expire(self._last_ts, stream_events)
        if not stream_events:
            return []
        return self._process(stream_events)

    def _expire(self, packet: int, out: list) -> list[Event]:
        self._next_expire = packet + _EXPIRE_EVERY
        stream_events: list = []
        self._streams.expire(self._last_ts, stream_events)
        if stream_events:
            out.extend(self._process(stream_events))
        return out

    def finish(self) -> list[Event]:
        """The capture ended: flush every connection (partial frames become Malformed)."""
        stream_events: list = []
        self._streams.finish(self._last_ts, stream_events)
        return self._process(stream_events)

    def _process(self, stream_events: list) -> list[Event]:
        out: list[Event] = []
        frames: list = []
        for ev in stream_events:
            if type(ev) is Data:
                framer = self._framers.get(ev.flow) or self._framer(ev.flow)
                framer.feed(ev.offset, ev.data, ev.ts, ev.packet, frames)
                if frames:
                    self._decode_all(frames, out)
            elif type(ev) is Gap:
                self.stats.gaps += 1
                self.stats.gap_bytes += ev.length
                out.append(ev)
                framer = self._framers.get(ev.flow) or self._framer(ev.flow)
                framer.gap(ev.offset, ev.length, ev.ts, frames)
                self._decode_all(frames, out)
            elif type(ev) is Closed:
                state = self._conns.pop(connection_key(ev.flow), None)
                if state is not None:
                    for framer in state.framers.values():
                        framer.close(ev.ts, frames)
                    self._decode_all(frames, out)
                    for flow in state.framers:
                        self._framers.pop(flow, None)
                        self._lanes.pop(_lane_key(flow), None)
                self.stats.closed[ev.how] = self.stats.closed.get(ev.how, 0) + 1
                out.append(ev)
        return out

    def _framer(self, flow: Flow) -> Framer:
        key = connection_key(flow)
        state = self._conns.get(key)
        if state is None:
            client = self._streams.connection_client(flow) or flow
            state = _ConnState(client, {}, Connection())
            self._conns[key] = state
            self.stats.connections += 1
        is_request = flow == state.client
        framer = Framer(
            flow,
            is_request=is_request,
            plausible=self.decoder.plausible_request if is_request
            else state.decoder_conn.plausible_response,
            keep_limit=self._keep_limit,
            midstream=self._streams.is_midstream(flow),
        )
        framer.state = state
        state.framers[flow] = framer
        self._framers[flow] = framer
        half = self._streams.half(flow)
        if len(flow.src) == 4 and half is not None and self.shortcuts:
            self._lanes[_lane_key(flow)] = _FusedDirection(half, framer, state.decoder_conn)
        return framer

    def _decode_all(self, frames: list, out: list) -> None:
        stats = self.stats
        decode = self.decoder.decode
        framers = self._framers
        for item in frames:
            if type(item) is RawFrame:
                framer = framers[item.flow]
                event = decode(item, framer.is_request, framer.state.decoder_conn, framer.src,
                               framer.dst)
                stats.count_frame(event, framer.is_request)
            else:  # Skipped
                stats.skipped_bytes += item.length
                event = item
            out.append(event)
        frames.clear()
