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
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from struct import Struct

from kshock.wire.decode import Connection, Decoder
from kshock.wire.framing import Framer
from kshock.wire.model import Closed, Data, Event, Flow, Gap, Malformed, RawFrame
from kshock.wire.packet import parse_packet
from kshock.wire.schema import SchemaTable
from kshock.wire.stream import DEFAULT_IDLE_TIMEOUT_S, DEFAULT_MAX_FLOW_BYTES, StreamTable, connection_key

_EXPIRE_EVERY = 4096  # packets between idle sweeps
_U16 = Struct("!H")
_TCP = Struct("!HHIIBB")


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


class _ConnState:
    __slots__ = ("client", "framers", "decoder_conn")

    def __init__(self, client: Flow, framers: dict[Flow, Framer], decoder_conn: Connection) -> None:
        self.client = client
        self.framers = framers
        self.decoder_conn = decoder_conn


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
    ) -> None:
        self.ports = frozenset(ports)
        self.stats = SnifferStats()
        self.decoder = Decoder(schemas, fast=fast)
        self._streams = StreamTable(self.ports, max_flow_bytes, idle_timeout_s)
        self._keep_limit = max_flow_bytes - self._streams.pending_limit
        self._conns: dict[tuple, _ConnState] = {}
        self._framers: dict[Flow, Framer] = {}
        self._last_ts = 0.0
        self._next_expire = _EXPIRE_EVERY

    @property
    def schemas(self) -> SchemaTable:
        return self.decoder.schemas

    def identity(self, flow: Flow):
        """The ConnectionIdentity of the connection `flow` belongs to, if it is open."""
        state = self._conns.get(connection_key(flow))
        return state.decoder_conn.identity if state else None

    def feed(self, ts: float, linktype: int, raw: bytes) -> list[Event]:
        """Take one captured packet; return the events it completes, in order."""
        stats = self.stats
        stats.packets += 1
        packet = stats.packets
        # hot lane: Ethernet + IPv4 (no options, not a fragment) + TCP, else the general parser
        if linktype == 1 and raw[12:14] == b"\x08\x00" and raw[14] == 0x45 and raw[23] == 6 \
                and not _U16.unpack_from(raw, 20)[0] & 0x3FFF and len(raw) >= 54:
            total = _U16.unpack_from(raw, 16)[0]
            end = 14 + total
            if total < 40 or end > len(raw):
                end = len(raw)
            sport, dport, seq, ack, off, flags = _TCP.unpack_from(raw, 34)
            ports = self.ports
            if dport not in ports and sport not in ports:
                return []
            data_at = 34 + (off >> 4) * 4
            if off >> 4 < 5 or data_at > end:
                return []
            src, dst, payload = raw[26:30], raw[30:34], raw[data_at:end]
        else:
            seg = parse_packet(linktype, raw)
            if seg is None:
                return []
            ports = self.ports
            sport, dport = seg.sport, seg.dport
            if dport not in ports and sport not in ports:
                return []
            src, dst, seq, ack, flags, payload = seg.src, seg.dst, seg.seq, seg.ack, seg.flags, seg.payload
        stats.kafka_segments += 1
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
                stats.frames += 1
                if type(event) is Malformed:
                    stats.malformed += 1
                elif framer.is_request:
                    stats.requests += 1
                else:
                    stats.responses += 1
            else:  # Skipped
                stats.skipped_bytes += item.length
                event = item
            out.append(event)
        frames.clear()
