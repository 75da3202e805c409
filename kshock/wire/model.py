"""The wire core's plain data: what packets, streams and Kafka frames turn into.

Everything here is a frozen, slotted dataclass, so events can be kept, compared and hashed
without surprises. Addresses are kept as raw bytes (4 or 16) and formatted on demand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

# TCP flag bits (RFC 793 / 3168)
FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10


def format_addr(addr: bytes) -> str:
    """Text form of a 4- or 16-byte IP address (RFC 5952 for IPv6), without the socket module."""
    if len(addr) == 4:
        return "%d.%d.%d.%d" % (addr[0], addr[1], addr[2], addr[3])
    groups = [(addr[i] << 8) | addr[i + 1] for i in range(0, 16, 2)]
    # RFC 5952: compress the longest run (>= 2) of zero groups, the first one on ties
    best_at, best_len, run_at, run_len = -1, 1, -1, 0
    for i, g in enumerate(groups):
        if g == 0:
            if run_len == 0:
                run_at = i
            run_len += 1
            if run_len > best_len:
                best_at, best_len = run_at, run_len
        else:
            run_len = 0
    if best_at < 0:
        return ":".join("%x" % g for g in groups)
    head = ":".join("%x" % g for g in groups[:best_at])
    tail = ":".join("%x" % g for g in groups[best_at + best_len :])
    return head + "::" + tail


def format_endpoint(addr: bytes, port: int) -> str:
    """'ip:port', with IPv6 addresses in brackets ('[::1]:9092')."""
    text = format_addr(addr)
    return f"[{text}]:{port}" if len(addr) == 16 else f"{text}:{port}"


@dataclass(frozen=True, slots=True)
class Segment:
    """One TCP segment as it came off the wire (IP fragments are never reassembled)."""

    src: bytes  # 4 or 16 bytes
    sport: int
    dst: bytes
    dport: int
    seq: int
    ack: int
    flags: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Flow:
    """One direction of a TCP connection."""

    src: bytes
    sport: int
    dst: bytes
    dport: int

    @property
    def src_text(self) -> str:
        return format_endpoint(self.src, self.sport)

    @property
    def dst_text(self) -> str:
        return format_endpoint(self.dst, self.dport)

    def reversed(self) -> Flow:
        return Flow(self.dst, self.dport, self.src, self.sport)


@dataclass(frozen=True, slots=True)
class Data:
    """In-order stream bytes of one direction: `offset` counts bytes from the first byte seen."""

    flow: Flow
    ts: float
    offset: int
    data: bytes
    packet: int  # 1-based number of the fed packet that carried these bytes


@dataclass(frozen=True, slots=True)
class Gap:
    """Bytes of a direction the capture never saw: they are reported, never invented."""

    flow: Flow
    ts: float
    offset: int
    length: int
    src: str = ""
    dst: str = ""
    reason: str = "lost segment"
    kind: ClassVar[str] = "gap"


@dataclass(frozen=True, slots=True)
class Closed:
    """A connection ended: how is 'fin', 'rst', 'idle' (no packets for idle_timeout_s),
    'reused' (a new SYN on the same ports), 'memory' (over its memory bound) or 'end'
    (the capture ended)."""

    flow: Flow  # the client -> broker direction when known
    ts: float
    how: str
    src: str = ""
    dst: str = ""
    kind: ClassVar[str] = "closed"


@dataclass(frozen=True, slots=True)
class Skipped:
    """Stream bytes dropped while looking for the next plausible Kafka frame."""

    flow: Flow
    ts: float
    offset: int
    length: int
    src: str = ""
    dst: str = ""
    kind: ClassVar[str] = "skipped"


@dataclass(frozen=True, slots=True)
class RawFrame:
    """One length-prefixed Kafka frame: `data` excludes the 4-byte length prefix.

    `size` is the length from the prefix; `data` may be shorter when the frame was too large to
    keep (`truncated`) or was cut by a gap or a close. `packets` are the 1-based numbers of the
    packets whose bytes made up the frame (first delivery; retransmitted copies excluded).
    """

    flow: Flow
    ts: float
    offset: int  # stream offset of the length prefix
    size: int
    data: bytes
    packets: tuple[int, ...]
    truncated: str = ""  # why `data` is incomplete, or ""


@dataclass(frozen=True, slots=True)
class KafkaFrame:
    """A Kafka request or response (or a frame that failed to decode: `Malformed`).

    Header fields are kept even when the body cannot be decoded. `raw` is the frame without
    its length prefix, for on-demand full decoding (`decode.decode_body`) and record access.
    """

    ts: float
    src: str
    dst: str
    api_key: int | None
    api: str | None
    api_version: int | None
    correlation_id: int | None
    client_id: str | None
    topics: tuple[str, ...] = ()
    partitions: tuple[int, ...] = ()
    records: int | None = None
    error_codes: tuple[int, ...] = ()
    latency_ms: float | None = None
    conn_client_id: str | None = None
    decoded: bool = True
    error: str | None = None
    packets: tuple[int, ...] = ()
    size: int = 0
    raw: bytes = b""
    flow: Flow | None = None
    kind: ClassVar[str] = "frame"

    def as_json(self) -> dict:
        """The keys of `kshock decode --json` (tshark-like names where they exist)."""
        return {
            "ts": self.ts,
            "src": self.src,
            "dst": self.dst,
            "kind": self.kind,
            "api_key": self.api_key,
            "api": self.api,
            "api_version": self.api_version,
            "correlation_id": self.correlation_id,
            "client_id": self.client_id,
            "topics": list(self.topics),
            "partitions": list(self.partitions),
            "records": self.records,
            "error_codes": list(self.error_codes),
            "latency_ms": self.latency_ms,
            "conn_client_id": self.conn_client_id,
            "decoded": self.decoded,
            "error": self.error,
            "packets": list(self.packets),
            "size": self.size,
        }


@dataclass(frozen=True, slots=True)
class Request(KafkaFrame):
    kind: ClassVar[str] = "request"


@dataclass(frozen=True, slots=True)
class Response(KafkaFrame):
    kind: ClassVar[str] = "response"


@dataclass(frozen=True, slots=True)
class Malformed(KafkaFrame):
    """A frame that could not be decoded; `error` says why, `direction` is 'request',
    'response' or '' (unknown), header fields are kept where they could be read."""

    direction: str = ""
    kind: ClassVar[str] = "malformed"

    def as_json(self) -> dict:
        out = KafkaFrame.as_json(self)
        out["kind"] = self.direction or "unknown"
        return out


@dataclass(frozen=True, slots=True)
class ConnectionIdentity:
    """What a connection's first requests said about its client."""

    client_id: str | None = None
    software_name: str | None = None
    software_version: str | None = None


Event = Request | Response | Malformed | Gap | Closed | Skipped


def _factory(cls):
    """A positional constructor for a frozen slotted dataclass that sets the slots directly,
    skipping the frozen guard (about twice as fast as cls(...); same object). Hot path only."""
    from dataclasses import fields

    names = [f.name for f in fields(cls)]
    env = {"_new": object.__new__, "_cls": cls}
    env.update({f"_s_{n}": getattr(cls, n).__set__ for n in names})
    body = "".join(f"    _s_{n}(o, {n})\n" for n in names)
    exec(f"def make({', '.join(names)}):\n    o = _new(_cls)\n{body}    return o\n", env)  # noqa: S102
    return env["make"]


new_data = _factory(Data)
new_raw_frame = _factory(RawFrame)
new_request = _factory(Request)
new_response = _factory(Response)
