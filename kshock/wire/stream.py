"""TCP reassembly per connection and direction: Segment -> Data | Gap | Closed.

- Sequence numbers become 64-bit stream offsets counted from the first byte seen.
- Retransmitted and overlapping bytes are delivered once (the first copy wins).
- Out-of-order segments wait, up to a per-direction byte bound; the hole before them becomes a
  Gap when the bound is hit, when the peer acknowledges past the hole twice (the bytes were
  received, the capture lost them), at close, at idle timeout and at `finish`.
- A capture that starts mid-connection starts the stream at the first data seen and marks it
  `midstream` (framing then resynchronises).
- FIN on both sides or RST close the connection; idle connections are closed by packet time,
  never a clock. All state of a closed connection is dropped.
"""

from __future__ import annotations

from collections.abc import Collection

from kshock.wire.model import ACK, FIN, RST, SYN, Closed, Data, Flow, Gap, Segment, format_endpoint, new_data

DEFAULT_MAX_FLOW_BYTES = 64 * 1024 * 1024
DEFAULT_IDLE_TIMEOUT_S = 300.0
_ACKS_PAST_HOLE = 2  # the peer acknowledged bytes we never saw, this many times: they are lost
_MOD = 1 << 32
_HALF = 1 << 31


class _Half:
    """One direction of a connection."""

    __slots__ = (
        "flow", "started", "base_seq", "next_off", "pending", "pending_bytes",
        "fin_off", "finished", "midstream", "acks_past_hole", "pending_limit", "conn", "other",
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
        self.acks_past_hole = 0
        self.pending_limit = pending_limit
        self.conn: _Connection | None = None
        self.other: _Half | None = None

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
        if off <= next_off:
            if off < next_off:
                data = data[next_off - off :]
            out.append(new_data(self.flow, ts, next_off, data, packet))
            self.next_off = end
            if self.pending:
                self._drain(out)
            return
        old = self.pending.get(off)
        if old is not None and len(old[0]) >= len(data):
            return
        if old is not None:
            self.pending_bytes -= len(old[0])
        self.pending[off] = (data, packet, ts)
        self.pending_bytes += len(data)
        if self.pending_bytes > self.pending_limit:
            self.skip_hole(ts, out, "reorder buffer full")

    def _drain(self, out: list) -> None:
        pending = self.pending
        while pending:
            off = min(pending)
            if off > self.next_off:
                return
            data, packet, ts = pending.pop(off)
            self.pending_bytes -= len(data)
            end = off + len(data)
            if end > self.next_off:
                if off < self.next_off:
                    data = data[self.next_off - off :]
                out.append(Data(self.flow, ts, self.next_off, data, packet))
                self.next_off = end
        self.acks_past_hole = 0

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
        self.acks_past_hole = 0
        self._drain(out)

    def flush(self, ts: float, out: list, reason: str) -> None:
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
    ) -> None:
        self.server_ports = frozenset(server_ports)
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
            half = self._open(Flow(src, sport, dst, dport), flags)
        elif flags & SYN and not flags & ACK and half.started \
                and (seq + 1) % _MOD != half.base_seq:
            self._close(half.conn, ts, "reused", out)  # a new connection on the same ports
            half = self._open(Flow(src, sport, dst, dport), flags)
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
            # first: the peer's bytes that this segment acknowledges (a reply to bytes past a
            # hole is proof enough that the hole was lost, and must come after them)
            other = half.other
            if other.started:
                ack_off = other.offset_of(ack)
                if ack_off > other.next_off and ack_off - other.next_off < _HALF:
                    other.acks_past_hole += 2 if payload else 1
                    if other.acks_past_hole >= _ACKS_PAST_HOLE:
                        other.skip_hole(ts, out, "lost segment (acknowledged, not captured)", ack_off)
        if payload:
            half.add(off, payload, ts, packet, out)
        if flags & FIN:
            half.fin_off = off + len(payload)
        if half.fin_off is not None and half.next_off >= half.fin_off and not half.pending:
            half.finished = True
            if half.other.finished:
                self._close(conn, ts, "fin", out)

    def expire(self, now: float, out: list) -> None:
        """Close connections with no packets for idle_timeout_s (by packet time)."""
        limit = now - self.idle_timeout_s
        for conn in [c for c in self._conns.values() if c.last_ts < limit]:
            self._close(conn, now, "idle", out)

    def finish(self, ts: float, out: list) -> None:
        for conn in list(self._conns.values()):
            self._close(conn, max(ts, conn.last_ts), "end", out)

    def _open(self, flow: Flow, flags: int) -> _Half:
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


def connection_key(flow: Flow) -> tuple:
    a = (flow.src, flow.sport)
    b = (flow.dst, flow.dport)
    return (a, b) if a <= b else (b, a)
