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

    @property
    def is_request(self) -> bool:
        """Headed to the broker: a Request, or a Malformed frame read as a request."""
        return self.kind == "request"

    @property
    def is_response(self) -> bool:
        """Headed from the broker: a Response, or a Malformed frame read as a response."""
        return self.kind == "response"

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

    @property
    def is_request(self) -> bool:
        return self.direction == "request"

    @property
    def is_response(self) -> bool:
        return self.direction == "response"

    def as_json(self) -> dict:
        out = KafkaFrame.as_json(self)
        out["kind"] = self.direction or "unknown"
        return out


_JSON_KEYS = ("ts", "src", "dst", "kind", "api_key", "api", "api_version", "correlation_id",
              "client_id", "topics", "partitions", "records", "error_codes", "latency_ms",
              "conn_client_id", "decoded", "error", "packets", "size")
_CACHE_MAX = 4096


def line_parts(cls: type, one_item: tuple[str, ...] = (), **known: str) -> list[str]:
    """The `kshock decode --json` line of a `cls` frame (Request or Response) as a template:
    the literal text around its holes, with the JSON text of the `known` fields (by their
    as_json() key) written in and a hole left for every other field, in as_json() order (for
    the list fields named in `one_item` the hole is inside the brackets: their one item).
    JsonLineEncoder fills the bare template (`line_template`); the compiled lane (_lane.pyx)
    fills it in once per Produce shape and then joins the pieces with each frame's values."""
    parts = []
    text = "{"
    for key in _JSON_KEYS:
        text += f'"{key}": ' if text == "{" else f', "{key}": '
        if key == "kind":
            text += f'"{cls.kind}"'
        elif key in known:
            text += known[key]
        elif key in one_item:
            parts.append(text + "[")
            text = "]"
        else:
            parts.append(text)
            text = ""
    parts.append(text + "}")
    return parts


def line_template(cls: type, one_item: tuple[str, ...] = (), **known: str) -> str:
    """`line_parts` as a %-template: "%s" in each hole."""
    return "%s".join(part.replace("%", "%%") for part in line_parts(cls, one_item, **known))


class JsonLineEncoder:
    """`json.dumps(event.as_json())` for frame events, byte for byte, several times faster.

    `kshock decode --json` prints one line per frame, and json.dumps of the 19-key dict costs
    more than decoding the frame. This fills a precompiled template instead, with the JSON
    text of repeated strings and lists (endpoints, client ids, topic and partition lists)
    cached (bounded). Anything unusual (a Malformed frame, a non-finite or non-float time, a
    subclass) goes through json.dumps. One encoder per output stream; not thread-safe.
    """

    __slots__ = ("_strings", "_lists", "_templates")

    def __init__(self) -> None:
        self._strings: dict = {None: "null"}
        self._lists: dict = {(): "[]"}
        self._templates = {Request: line_template(Request), Response: line_template(Response)}

    def encode(self, event: KafkaFrame) -> str:
        template = self._templates.get(type(event))
        ts = event.ts
        latency = event.latency_ms
        if template is None or type(ts) is not float or ts - ts != 0.0 or (
                latency is not None and (type(latency) is not float or latency - latency != 0.0)):
            return _json_dumps(event.as_json())
        strings = self._strings
        lists = self._lists
        src = strings.get(event.src) or self._string(event.src)
        dst = strings.get(event.dst) or self._string(event.dst)
        api = strings.get(event.api) or self._string(event.api)
        client_id = strings.get(event.client_id) or self._string(event.client_id)
        conn_client_id = strings.get(event.conn_client_id) or self._string(event.conn_client_id)
        topics = lists.get(event.topics) or self._strings_list(event.topics)
        partitions = lists.get(event.partitions) or self._ints_list(event.partitions)
        error_codes = lists.get(event.error_codes) or self._ints_list(event.error_codes)
        packets = event.packets
        error = event.error
        api_key = event.api_key
        api_version = event.api_version
        correlation_id = event.correlation_id
        records = event.records
        # ints go in as ints ("%s" % 5 is json's "5"); the decoder never makes bools of them
        return template % (
            repr(ts), src, dst,
            "null" if api_key is None else api_key, api,
            "null" if api_version is None else api_version,
            "null" if correlation_id is None else correlation_id,
            client_id, topics, partitions,
            "null" if records is None else records,
            error_codes,
            "null" if latency is None else repr(latency),
            conn_client_id,
            "true" if event.decoded is True else "false" if event.decoded is False
            else _json_dumps(event.decoded),
            "null" if error is None else _json_dumps(error),
            "[%d]" % packets[0] if len(packets) == 1 else _json_dumps(list(packets)),
            event.size,
        )

    def _string(self, text) -> str:
        out = _json_dumps(text)
        if type(text) is str:
            if len(self._strings) >= _CACHE_MAX:
                self._strings = {None: "null"}
            self._strings[text] = out
        return out

    def _strings_list(self, items: tuple) -> str:
        out = _json_dumps(list(items))
        if len(self._lists) >= _CACHE_MAX:
            self._lists = {(): "[]"}
        self._lists[items] = out
        return out

    _ints_list = _strings_list


def _json_dumps(value) -> str:
    import json

    return json.dumps(value)


def json_line(event: KafkaFrame) -> str:
    """One `kshock decode --json` line (no newline): json.dumps(event.as_json()), faster.
    For many events, keep one JsonLineEncoder and call its `encode` (it caches)."""
    return JsonLineEncoder().encode(event)


@dataclass(frozen=True, slots=True)
class ConnectionIdentity:
    """What a connection's first requests said about its client."""

    client_id: str | None = None
    software_name: str | None = None
    software_version: str | None = None


Event = Request | Response | Malformed | Gap | Closed | Skipped


def _factory(cls):
    """A positional constructor for a frozen slotted dataclass that skips the frozen guard:
    hot path only, same object as cls(...) (tests/unit/test_wire_lanes.py proves it).

    It builds an instance of a plain slotted twin with the same slot layout (whose __init__
    stores slots directly, ~3x faster than the frozen __init__'s object.__setattr__ calls)
    and then retags it as `cls`. Where the interpreter refuses the retag, it falls back to
    setting the slots through their descriptors."""
    from dataclasses import fields

    names = [f.name for f in fields(cls)]
    args = ", ".join(names)
    env: dict = {"_cls": cls, "_new": object.__new__}
    stores = "".join(f"        self.{n} = {n}\n" for n in names)
    exec(f"class _Twin:\n    __slots__ = {tuple(names)!r}\n"  # noqa: S102
         f"    def __init__(self, {args}):\n{stores}", env)
    twin = env["_Twin"]
    try:
        probe = twin(*range(len(names)))
        probe.__class__ = cls
        if [getattr(probe, n) for n in names] != list(range(len(names))):
            raise TypeError("slot layout differs")
    except TypeError:
        env.update({f"_s_{n}": getattr(cls, n).__set__ for n in names})
        body = "".join(f"    _s_{n}(o, {n})\n" for n in names)
        exec(f"def make({args}):\n    o = _new(_cls)\n{body}    return o\n", env)  # noqa: S102
        return env["make"]
    exec(f"def make({args}):\n    o = _Twin({args})\n    o.__class__ = _cls\n    return o\n",  # noqa: S102
         env)
    return env["make"]


new_data = _factory(Data)
new_raw_frame = _factory(RawFrame)
new_request = _factory(Request)
new_response = _factory(Response)
new_malformed = _factory(Malformed)
