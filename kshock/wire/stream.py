"""TCP reassembly per connection and direction: Segment -> Data | Gap | Closed.

- Sequence numbers become 64-bit stream offsets counted from the first byte seen.
- Retransmitted and overlapping bytes are delivered once (the first copy wins).
- Out-of-order segments wait, up to a per-direction byte bound; the hole before them becomes a
  Gap when the bound is hit, when the peer acknowledges past the hole twice, the second time
  further (the bytes were received, the capture lost them), at close, at idle timeout and at
  `finish`. The FIN's sequence number is no data byte: acknowledging it proves nothing lost.
- Captures reorder the two directions (a reply captured before the bytes it answers): the bytes
  of a segment that acknowledges peer bytes not yet seen are held back until those bytes arrive
  or are declared lost, so a request always comes out before its response and a late segment is
  never taken for a lost one. Only one direction of a connection waits at a time.
- A capture that starts mid-connection starts the stream at the first data seen and marks it
  `midstream` (framing then resynchronises).
- FIN on both sides or RST close the connection; idle connections are closed by packet time,
  never a clock. All state of a closed connection is dropped.
"""

from __future__ import annotations

import heapq
from collections.abc import Collection

from kshock.wire.model import ACK, FIN, RST, SYN, Closed, Data, Flow, Gap, Segment, format_endpoint, new_data

DEFAULT_MAX_FLOW_BYTES = 64 * 1024 * 1024
DEFAULT_IDLE_TIMEOUT_S = 300.0
# connections tracked at once: a capture of a million one-segment flows must not take gigabytes;
# past the bound the least recently active eighth is closed ("evicted")
DEFAULT_MAX_CONNECTIONS = 100_000
_ACKS_PAST_HOLE = 2  # the peer acknowledged bytes we never saw, twice, each time further: lost
LOST_ACKNOWLEDGED = "lost segment (acknowledged, not captured)"
_MOD = 1 << 32
_HALF = 1 << 31


class _Half:
    """One direction of a connection."""

    __slots__ = (
        "flow", "started", "base_seq", "next_off", "pending", "pending_bytes",
        "fin_off", "finished", "midstream", "acks_past_hole", "hole_at", "hole_witness",
        "pending_limit", "conn", "other", "gate",
    )

    def __init__(self, flow: Flow, pending_limit: int) -> None:
        self.flow = flow
        self.started = False
        self.base_seq = 0
        self.next_off = 0
        self.pending: dict[int, tuple[bytes, int, float]] = {}
        self.pending_bytes = 0
        self.fin_off: int | None = None
        self.finished = False
        self.midstream = False
        # acknowledgements of the peer past the hole at `hole_at` (a hole once filled counts
        # nothing for the next), the furthest of them `hole_witness`
        self.acks_past_hole = 0
        self.hole_at = 0
        self.hole_witness = 0
        self.pending_limit = pending_limit
        self.conn: _Connection | None = None
        self.other: _Half | None = None
        # while set: nothing is delivered until the peer's stream reaches this offset (the
        # bytes waiting in `pending` answer peer bytes the capture has not shown yet)
        self.gate: int | None = None

    def offset_of(self, seq: int) -> int:
        delta = (seq - self.base_seq - self.next_off) % _MOD
        if delta >= _HALF:
            delta -= _MOD
        return self.next_off + delta

    def add(self, off: int, data: bytes, ts: float, packet: int, out: list) -> None:
        next_off = self.next_off
        end = off + len(data)
        if end <= next_off:
            return  # a retransmission of bytes already delivered
        if off <= next_off and self.gate is None:
            if off < next_off:
                data = data[next_off - off :]
            out.append(new_data(self.flow, ts, next_off, data, packet))
            self.next_off = end
            if self.pending:
                self._drain(out)
            elif self.other.gate is not None:
                self._advanced(out)
            return
        old = self.pending.get(off)
        if old is not None and len(old[0]) >= len(data):
            return
        if old is not None:
            self.pending_bytes -= len(old[0])
        self.pending[off] = (data, packet, ts)
        self.pending_bytes += len(data)
        if self.pending_bytes > self.pending_limit:
            if self.gate is not None:
                self.open_gate(ts, out)
            if self.pending_bytes > self.pending_limit:
                self.skip_hole(ts, out, "reorder buffer full")

    def hold(self, off: int, end: int, upto: int) -> None:
        """The segment [off, end) answers peer bytes up to `upto` not seen yet: hold it back."""
        if self.gate is not None:
            if upto > self.gate:
                self.gate = upto  # later bytes wait for more (never earlier than they did)
        elif off <= self.next_off < end and self.other.gate is None:
            self.gate = upto

    def open_gate(self, ts: float, out: list) -> None:
        """Stop waiting: the peer bytes this direction waits for are lost to the capture."""
        other = self.other
        while self.gate is not None and other.next_off < self.gate:
            before = other.next_off
            other.skip_hole(ts, out, LOST_ACKNOWLEDGED, self.gate)
            if other.next_off == before:
                break
        if self.gate is not None:
            self.gate = None
            self._drain(out)

    def _advanced(self, out: list) -> None:
        """This direction moved on: release the peer's held bytes if they waited for it."""
        other = self.other
        if other.gate is not None and self.next_off >= other.gate:
            other.gate = None
            other._drain(out)

    def _drain(self, out: list) -> None:
        if self.gate is not None:
            return
        pending = self.pending
        while pending:
            off = min(pending)
            if off > self.next_off:
                break  # another hole
            data, packet, ts = pending.pop(off)
            self.pending_bytes -= len(data)
            end = off + len(data)
            if end > self.next_off:
                if off < self.next_off:
                    data = data[self.next_off - off :]
                out.append(Data(self.flow, ts, self.next_off, data, packet))
                self.next_off = end
        if self.other.gate is not None:
            self._advanced(out)

    def skip_hole(self, ts: float, out: list, reason: str, upto: int | None = None) -> None:
        """Report the bytes before the first waiting segment (or up to `upto`) as lost."""
        target = min(self.pending) if self.pending else upto
        if upto is not None:
            target = min(target, upto)
        if target is None or target <= self.next_off:
            return
        flow = self.flow
        out.append(
            Gap(flow, ts, self.next_off, target - self.next_off,
                format_endpoint(flow.src, flow.sport), format_endpoint(flow.dst, flow.dport), reason)
        )
        self.next_off = target
        self._drain(out)

    def flush(self, ts: float, out: list, reason: str) -> None:
        if self.gate is not None:
            self.open_gate(ts, out)
        while self.pending:
            self.skip_hole(ts, out, reason)


class _Connection:
    __slots__ = ("key", "halves", "client", "last_ts")

    def __init__(self, key: tuple, client: Flow, pending_limit: int) -> None:
        self.key = key
        self.client = client  # the client -> broker direction (best knowledge)
        server = client.reversed()
        a, b = _Half(client, pending_limit), _Half(server, pending_limit)
        a.conn = b.conn = self
        a.other, b.other = b, a
        self.halves = {client: a, server: b}
        self.last_ts = 0.0


class StreamTable:
    """All TCP connections of a capture; `feed` appends events to `out`."""

    def __init__(
        self,
        server_ports: Collection[int] = (9092,),
        max_flow_bytes: int = DEFAULT_MAX_FLOW_BYTES,
        idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        self.server_ports = frozenset(server_ports)
        self.max_connections = max(1, max_connections)
        self.pending_limit = max(1, max_flow_bytes // 4)
        self.idle_timeout_s = idle_timeout_s
        self._conns: dict[tuple, _Connection] = {}
        self._halves: dict[tuple, _Half] = {}  # (src, sport, dst, dport) -> direction

    def __len__(self) -> int:
        return len(self._conns)

    def connection_client(self, flow: Flow) -> Flow | None:
        conn = self._conns.get(connection_key(flow))
        return conn.client if conn is not None else None

    def is_midstream(self, flow: Flow) -> bool:
        conn = self._conns.get(connection_key(flow))
        return conn is not None and conn.halves[flow].midstream

    def half(self, flow: Flow) -> _Half | None:
        """The direction state of `flow` (the sniffer's fused lane reads and advances it)."""
        return self._halves.get((flow.src, flow.sport, flow.dst, flow.dport))

    def buffered_bytes(self) -> int:
        return sum(h.pending_bytes for c in self._conns.values() for h in c.halves.values())

    def feed(self, seg: Segment, ts: float, packet: int, out: list) -> None:
        """Take one segment; append Data/Gap/Closed events to `out`."""
        self.feed_fields(seg.src, seg.sport, seg.dst, seg.dport, seg.seq, seg.ack, seg.flags,
                         seg.payload, ts, packet, out)

    def feed_fields(self, src: bytes, sport: int, dst: bytes, dport: int, seq: int, ack: int,
                    flags: int, payload: bytes, ts: float, packet: int, out: list) -> None:
        """`feed` without the Segment object (the sniffer's hot path)."""
        half = self._halves.get((src, sport, dst, dport))
        if half is None:
            if flags & RST or not (payload or flags & SYN):
                return  # nothing to learn from a stray ACK, FIN or RST
            half = self._open(Flow(src, sport, dst, dport), flags, ts, out)
        elif flags & SYN and not flags & ACK and half.started \
                and (seq + 1) % _MOD != half.base_seq:
            self._close(half.conn, ts, "reused", out)  # a new connection on the same ports
            half = self._open(Flow(src, sport, dst, dport), flags, ts, out)
        conn = half.conn
        if ts > conn.last_ts:
            conn.last_ts = ts
        if flags & RST:
            self._close(conn, ts, "rst", out)
            return
        if flags & SYN:
            if not half.started:
                half.started = True
                half.base_seq = (seq + 1) % _MOD
            off = half.offset_of((seq + 1) % _MOD)
        elif not half.started:
            if not payload:
                return
            half.started = True
            half.midstream = True
            half.base_seq = seq
            off = 0
        else:
            off = half.offset_of(seq)
        if flags & ACK:
            # first: the peer's bytes that this segment acknowledges
            other = half.other
            if other.started:
                ack_off = other.offset_of(ack)
                fin_off = other.fin_off
                if fin_off is not None and ack_off > fin_off:
                    ack_off = fin_off  # the FIN takes a sequence number, but it is no data byte
                if ack_off > other.next_off and ack_off - other.next_off < _HALF:
                    if other.hole_at != other.next_off:  # a new hole: count afresh
                        other.hole_at = other.hole_witness = other.next_off
                        other.acks_past_hole = 0
                    if ack_off > other.hole_witness:
                        # only an acknowledgement further than the last one counts: a copy
                        # of a packet, more segments of one reply or an older ACK prove nothing
                        other.hole_witness = ack_off
                        other.acks_past_hole += 1
                        if other.acks_past_hole >= _ACKS_PAST_HOLE:
                            other.skip_hole(ts, out, LOST_ACKNOWLEDGED, ack_off)
                    if payload and ack_off > other.next_off:
                        # a reply captured before what it answers: its bytes come after them
                        half.hold(off, off + len(payload), ack_off)
        if payload:
            half.add(off, payload, ts, packet, out)
        if flags & FIN:
            half.fin_off = off + len(payload)
        if half.fin_off is not None or half.other.fin_off is not None:
            self._check_fin(conn, ts, out)

    def _check_fin(self, conn: _Connection, ts: float, out: list) -> None:
        done = True
        for half in conn.halves.values():
            if not half.finished:
                if half.fin_off is not None and half.next_off >= half.fin_off and not half.pending:
                    half.finished = True
                else:
                    done = False
        if done:
            self._close(conn, ts, "fin", out)

    def expire(self, now: float, out: list) -> None:
        """Close connections with no packets for idle_timeout_s (by packet time)."""
        limit = now - self.idle_timeout_s
        for conn in [c for c in self._conns.values() if c.last_ts < limit]:
            self._close(conn, now, "idle", out)

    def finish(self, ts: float, out: list) -> None:
        for conn in list(self._conns.values()):
            self._close(conn, max(ts, conn.last_ts), "end", out)

    def _evict(self, ts: float, out: list) -> None:
        """Too many connections at once: close the least recently active eighth ("evicted";
        their partial frames come out as with any close). By packet time, ties in open order."""
        count = max(1, len(self._conns) // 8)
        for conn in heapq.nsmallest(count, self._conns.values(), key=_last_ts):
            self._close(conn, ts, "evicted", out)

    def _open(self, flow: Flow, flags: int, ts: float, out: list) -> _Half:
        if len(self._conns) >= self.max_connections:
            self._evict(ts, out)
        if flags & SYN:
            client = flow if not flags & ACK else flow.reversed()
        elif flow.dport in self.server_ports or flow.sport not in self.server_ports:
            client = flow
        else:
            client = flow.reversed()
        conn = _Connection(connection_key(flow), client, self.pending_limit)
        self._conns[conn.key] = conn
        for f, h in conn.halves.items():
            self._halves[(f.src, f.sport, f.dst, f.dport)] = h
        return conn.halves[flow]

    def _close(self, conn: _Connection, ts: float, how: str, out: list) -> None:
        for half in conn.halves.values():
            half.flush(ts, out, f"lost segment (connection closed: {how})")
        client = conn.client
        out.append(
            Closed(client, ts, how, format_endpoint(client.src, client.sport),
                   format_endpoint(client.dst, client.dport))
        )
        self._conns.pop(conn.key, None)
        for f in conn.halves:
            self._halves.pop((f.src, f.sport, f.dst, f.dport), None)


def _last_ts(conn: _Connection) -> float:
    return conn.last_ts


def connection_key(flow: Flow) -> tuple:
    a = (flow.src, flow.sport)
    b = (flow.dst, flow.dport)
    return (a, b) if a <= b else (b, a)
