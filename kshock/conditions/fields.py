"""PURE: the FIELDS table — every field a condition can test, one row each.

A row says what the field holds (its value type), which operators apply, how to read it from a
decoded frame, whether that needs the frame's records decoded, how the kernel can find it (the
`kernel` column, which the rule compiler dispatches on) and a line of help. Help text,
completion and docs come from here; adding a field is adding a row.

Every reader returns a tuple of values: () when the frame does not have the field, one value
for most fields, several for `topic`, `partition`, `host`, `port`, `error_code` and the
record fields (one per record, header or end of the connection). A test matches when ANY of
the values passes it; see match.py for the exact rules.

Offsets in the `kernel` column count bytes from the start of the Kafka frame, length prefix
included (the first byte after the TCP header when the frame starts a segment); they, and every
per-version fact about request bodies, come from kshock.wire.layout.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from struct import Struct
from typing import Any

from kshock.wire.apis import API_NAMES
from kshock.wire.fastpath import uvarint_at
from kshock.wire.layout import (
    API_KEY_AT,
    API_VERSION_AT,
    CLIENT_ID_AT,
    CLIENT_ID_BYTES_AT,
    CORRELATION_AT,
    FETCH,
    LIST_OFFSETS,
    METADATA,
    PRODUCE,
    RESPONSE_CORRELATION_AT,
    SIZE_AT,
    TRANSACTIONAL_ID_FROM,
    is_flexible,
)
from kshock.wire.model import KafkaFrame
from kshock.wire.records import Record, RecordsCut

ORDERED = ("==", "!=", "<", "<=", ">", ">=", "in")
EQUALITY = ("==", "!=", "in")
TEXT = ("==", "!=", "in", "contains", "matches")
KINDS = ("request", "response")

_I16 = Struct("!h")
_TXN_APIS = frozenset({22, 24, 25, 26, 28})  # InitProducerId ... TxnOffsetCommit


class FrameView:
    """One frame as conditions see it: the frame and what was decoded of it on demand.

    Records and the Produce/transaction body fields are read at most once per view and only
    when a condition asks for them. Bad bytes never raise: the field is simply absent.
    """

    __slots__ = ("frame", "_schemas", "_records", "_txn", "cut")

    def __init__(self, frame: KafkaFrame, schemas: Callable[[], Any]) -> None:
        self.frame = frame
        self._schemas = schemas  # () -> SchemaTable, only called when a body must be decoded
        self._records: tuple[Record, ...] | None = None
        self._txn: tuple[tuple[str, ...], tuple[int, ...]] | None = None
        self.cut: str | None = None  # why the records were not read: a bound of wire/records.py

    @property
    def kind(self) -> str | None:
        """'request' or 'response'; a Malformed frame's direction when it is known."""
        frame = self.frame
        return "request" if frame.is_request else "response" if frame.is_response else None

    def records(self) -> tuple[Record, ...]:
        """Records of a Produce request or Fetch response, decompressed; () for any other frame."""
        if self._records is None:
            self._records = ()
            frame = self.frame
            carries = (frame.api_key == PRODUCE and frame.is_request) or (frame.api_key == FETCH and frame.is_response)
            if carries and frame.decoded and frame.raw:
                from kshock.wire.decode import frame_records

                try:
                    self._records = tuple(r for _, _, r in frame_records(frame, self._schemas()))
                except RecordsCut as exc:
                    self.cut = str(exc)
                except (ValueError, TypeError, KeyError, IndexError):
                    pass
        return self._records

    def transaction(self) -> tuple[tuple[str, ...], tuple[int, ...]]:
        """(transactional ids, acks) of a request body that has them."""
        if self._txn is None:
            self._txn = ((), ())
            frame = self.frame
            if frame.is_request and frame.raw and frame.api_version is not None:
                try:
                    if frame.api_key == PRODUCE:
                        self._txn = _produce_head(frame, self._schemas())
                    elif frame.api_key in _TXN_APIS:
                        self._txn = (_transactional_ids(frame, self._schemas()), ())
                except (ValueError, TypeError, KeyError, IndexError, UnicodeDecodeError):
                    pass
        return self._txn


def _produce_head(frame: KafkaFrame, schemas: Any) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """transactional_id (nullable, from TRANSACTIONAL_ID_FROM) and acks, read straight from the
    body's first bytes."""
    from kshock.wire.decode import body_offset

    data = frame.raw
    pos = body_offset(frame, schemas)
    txn: tuple[str, ...] = ()
    if frame.api_version >= TRANSACTIONAL_ID_FROM[PRODUCE]:
        if is_flexible(PRODUCE, frame.api_version):
            n, pos = uvarint_at(data, pos)
            n -= 1
        else:
            n = _I16.unpack_from(data, pos)[0]
            pos += 2
        if n >= 0:
            if pos + n > len(data):
                raise ValueError("transactional id beyond the frame")
            txn = (data[pos : pos + n].decode("utf-8"),)
            pos += n
    return txn, (_I16.unpack_from(data, pos)[0],)


def _transactional_ids(frame: KafkaFrame, schemas: Any) -> tuple[str, ...]:
    from kshock.wire.decode import decode_body

    body = decode_body(frame, schemas)
    ids = [getattr(body, "transactional_id", None), getattr(body, "v3_and_below_transactional_id", None)]
    ids += [t.transactional_id for t in getattr(body, "transactions", None) or ()]
    return tuple(i for i in ids if i)


def _endpoint(text: str) -> tuple[Any, int] | None:
    """('ip:port' or '[ip6]:port') -> (ip address, port)."""
    host, _, port = text.rpartition(":")
    try:
        return ipaddress.ip_address(host.strip("[]")), int(port)
    except ValueError:
        return None


def _ends(view: FrameView) -> tuple[tuple[Any, int] | None, tuple[Any, int] | None]:
    flow = view.frame.flow
    if flow is not None:
        return ((ipaddress.ip_address(flow.src), flow.sport),
                (ipaddress.ip_address(flow.dst), flow.dport))
    return _endpoint(view.frame.src), _endpoint(view.frame.dst)


def _one(value: Any) -> tuple:
    return () if value is None else (value,)


# -- readers: (view, arg) -> tuple of values --------------------------------------------------

def _read_src_host(view: FrameView, arg: str | None) -> tuple:
    end = _ends(view)[0]
    return (end[0],) if end else ()


def _read_src_port(view: FrameView, arg: str | None) -> tuple:
    end = _ends(view)[0]
    return (end[1],) if end else ()


def _read_dst_host(view: FrameView, arg: str | None) -> tuple:
    end = _ends(view)[1]
    return (end[0],) if end else ()


def _read_dst_port(view: FrameView, arg: str | None) -> tuple:
    end = _ends(view)[1]
    return (end[1],) if end else ()


def _read_host(view: FrameView, arg: str | None) -> tuple:
    return tuple(end[0] for end in _ends(view) if end)


def _read_port(view: FrameView, arg: str | None) -> tuple:
    return tuple(end[1] for end in _ends(view) if end)


def _read_client_id(view: FrameView, arg: str | None) -> tuple:
    frame = view.frame
    return _one(frame.client_id if frame.client_id is not None else frame.conn_client_id)


def _read_keys(view: FrameView, arg: str | None) -> tuple:
    return tuple(r.key for r in view.records() if r.key is not None)


def _read_values(view: FrameView, arg: str | None) -> tuple:
    return tuple(r.value for r in view.records() if r.value is not None)


def _read_headers(view: FrameView, arg: str | None) -> tuple:
    if arg is None:
        return tuple(name for r in view.records() for name, _ in r.headers)
    return tuple(value for r in view.records() for name, value in r.headers
                 if name == arg and value is not None)


class Place(Enum):
    """How the kernel's packet filter can find a field; the rule compiler dispatches on it."""

    HEADER_INT = "an integer at a fixed offset of the frame header"
    DIRECTION = "the way a frame travels: requests go to the broker's port"
    CLIENT_ID = "the request header's length-prefixed client id (int16 length, -1: null)"
    BODY_INT = "an integer among a request body's fixed fields (placed per version family)"
    BODY_STRING = "the nullable string that opens a request body (placed per version family)"
    FIRST_TOPIC = "the first topic entry of a request body (a name, or a 16-byte topic id)"
    ADDRESS = "an IP header address (iptables -s/-d)"
    PORT = "a TCP header port (iptables --sport/--dport)"
    HIDDEN = "nowhere the kernel can find it"


@dataclass(frozen=True, slots=True)
class Kernel:
    """A row's kernel column: where the field sits, in the terms the compiler needs."""

    place: Place
    text: str  # where, in words (docs and `explain`)
    bits: int = 0  # HEADER_INT, BODY_INT: the width of the value on the wire
    request_at: int | None = None  # HEADER_INT: the offset in a request
    response_at: int | None = None  # HEADER_INT: the offset in a response (None: responses lack it)
    apis: tuple[int, ...] = ()  # BODY_*, FIRST_TOPIC: the APIs whose body layouts place it
    end: str = ""  # ADDRESS, PORT: "src", "dst" or "either"
    why_not: str = ""  # HIDDEN: why the kernel cannot see it

    @property
    def request_only(self) -> bool:
        """Only requests carry it: a rule on responses cannot test it."""
        if self.place is Place.HEADER_INT:
            return self.response_at is None
        return self.place in (Place.CLIENT_ID, Place.BODY_INT, Place.BODY_STRING, Place.FIRST_TOPIC)

    @property
    def one_value_per_rule(self) -> bool:
        """A kernel rule tests one value of it (`in {a, b}`: one rule per value)."""
        return self.place in (Place.CLIENT_ID, Place.BODY_STRING, Place.FIRST_TOPIC) or (
            self.place in (Place.ADDRESS, Place.PORT) and self.end != "either")

    @property
    def either_end(self) -> bool:
        """An address or port of either end: `src.<name>` or `dst.<name>`."""
        return self.place in (Place.ADDRESS, Place.PORT) and self.end == "either"


def _header(text: str, bits: int, request_at: int | None, response_at: int | None = None) -> Kernel:
    return Kernel(Place.HEADER_INT, text, bits, request_at, response_at)


def _hidden(text: str, why_not: str) -> Kernel:
    return Kernel(Place.HIDDEN, text, why_not=why_not)


_IN_RECORDS = "inside record batches, compressed or not: not visible to the kernel in general"


@dataclass(frozen=True, slots=True)
class Field:
    """One row of the FIELDS table."""

    name: str
    type: str  # "int" | "str" | "bytes" | "ip" | "api" | "kind": what a value is
    read: Callable[[FrameView, str | None], tuple]
    help: str
    kernel: Kernel  # how the kernel can find it: the compiler dispatches on kernel.place
    ops: tuple[str, ...] = EQUALITY
    multi: bool = False  # may hold several values per frame; tests match when ANY value does
    needs_records: bool = False  # reading it decodes (and decompresses) record batches
    arg_type: str | None = None  # `header["NAME"]`: the type of a subscripted field, if allowed
    symbols: tuple[tuple[str, int], ...] = ()  # bare words allowed as values (`acks == all`)
    domain: tuple[int, int] | None = None  # an int field: every value its wire encoding can hold
    max_bytes: int | None = None  # a string field: the longest its wire encoding can hold

    def type_of(self, arg: str | None) -> str:
        return self.type if arg is None else self.arg_type or self.type

    def ops_of(self, arg: str | None) -> tuple[str, ...]:
        return self.ops if arg is None else _OPS[self.type_of(arg)]


# Wire widths: a value outside them can never be on the wire, so a condition naming one is a
# mistake (src.port == 70000), refused when it is parsed rather than compiled into a dead rule.
INT16 = (-(1 << 15), (1 << 15) - 1)
INT32 = (-(1 << 31), (1 << 31) - 1)
PORT = (0, 0xFFFF)
INT16_STRING = (1 << 15) - 1  # Kafka's STRING: an int16 length, so at most 32767 bytes
WIDTH_NAMES = {INT16: "an int16", INT32: "an int32", PORT: "a TCP port"}

_OPS = {"int": ORDERED, "str": TEXT, "bytes": TEXT, "ip": EQUALITY, "api": EQUALITY, "kind": EQUALITY}
_TYPE_NAMES = {"int": "a number", "str": "a string", "bytes": "bytes", "ip": "an IP address",
               "api": "an API name or key", "kind": "request or response"}


def _row(name: str, type_: str, read: Callable, help_: str, kernel: Kernel, **more: Any) -> Field:
    return Field(name, type_, read, help_, kernel, _OPS[type_], **more)


FIELDS: dict[str, Field] = {f.name: f for f in (
    _row("api", "api", lambda v, a: _one(v.frame.api_key),
         "the API, by name (Produce, fetch: any case) or key (0)",
         _header(f"request header: int16 api_key at offset {API_KEY_AT}; responses: the paired request's",
                 16, API_KEY_AT)),
    _row("api_version", "int", lambda v, a: _one(v.frame.api_version),
         "the API version of the request (a response: its request's)",
         _header(f"request header: int16 api_version at offset {API_VERSION_AT}; responses: the paired "
                 "request's", 16, API_VERSION_AT), domain=INT16),
    _row("kind", "kind", lambda v, a: _one(v.kind),
         "request (client to broker) or response (broker to client)",
         Kernel(Place.DIRECTION, "direction: requests go to the broker port, responses come from it")),
    _row("correlation_id", "int", lambda v, a: _one(v.frame.correlation_id),
         "the correlation id pairing a response with its request",
         _header(f"request header: int32 at offset {CORRELATION_AT}; response header: int32 at offset "
                 f"{RESPONSE_CORRELATION_AT}", 32, CORRELATION_AT, RESPONSE_CORRELATION_AT), domain=INT32),
    _row("client_id", "str", _read_client_id,
         "the client id the frame carries, or its connection's when it carries none "
         "(KIP-1313 clients, responses)",
         Kernel(Place.CLIENT_ID, f"request header v1+: int16 length at offset {CLIENT_ID_AT}, bytes from offset "
                f"{CLIENT_ID_BYTES_AT} (-1: null)"),
         max_bytes=INT16_STRING),
    _row("size", "int", lambda v, a: (v.frame.size,),
         "the frame size in bytes, from its length prefix (the prefix excluded)",
         _header(f"int32 length prefix at offset {SIZE_AT}", 32, SIZE_AT, SIZE_AT), domain=INT32),
    _row("topic", "str", lambda v, a: v.frame.topics,
         "a topic the frame names (topic ids of Fetch/Produce v13+ resolved when known)",
         Kernel(Place.FIRST_TOPIC, "request body: int16-length (classic) or uvarint-length (flexible) names "
                "after the body's fixed fields; Fetch/Produce v13+: 16-byte topic ids",
                apis=(PRODUCE, FETCH, LIST_OFFSETS, METADATA)), multi=True, max_bytes=INT16_STRING),
    _row("partition", "int", lambda v, a: v.frame.partitions,
         "a partition index the frame names",
         _hidden("request body: int32 per partition, after its topic",
                 "partition indexes sit after each topic's variable-length entries"), multi=True, domain=INT32),
    _row("acks", "int", lambda v, a: v.transaction()[1],
         "the acks of a Produce request: 0, 1 or -1 (all)",
         Kernel(Place.BODY_INT, "Produce request body: int16 right after transactional_id (v3+) or first "
                "(v0-2)", 16, apis=(PRODUCE,)), symbols=(("all", -1),), domain=INT16),
    _row("transactional_id", "str", lambda v, a: v.transaction()[0],
         "the transactional id of a Produce (v3+) or transaction request",
         Kernel(Place.BODY_STRING, "Produce v3+ request body: first field, nullable string (int16 or uvarint "
                "length)", apis=(PRODUCE,)), multi=True, max_bytes=INT16_STRING),
    _row("records", "int", lambda v, a: _one(v.frame.records),
         "how many records a Produce request or Fetch response carries",
         _hidden("record batch headers: int32 record count at batch offset 57 (inside the body)",
                 "the record count sits in record batch headers deep in the body"), domain=INT32),
    _row("error_code", "int", lambda v, a: v.frame.error_codes,
         "a non-zero error code in a response",
         _hidden("response body only", "error codes are in responses, whose bodies the kernel cannot place"),
         multi=True, domain=INT16),
    _row("key", "bytes", _read_keys, "a record key (Produce requests, Fetch responses)",
         _hidden(_IN_RECORDS, "record keys sit inside record batches, often compressed"),
         multi=True, needs_records=True),
    _row("value", "bytes", _read_values, "a record value (Produce requests, Fetch responses)",
         _hidden(_IN_RECORDS, "record values sit inside record batches, often compressed"),
         multi=True, needs_records=True),
    _row("header", "str", _read_headers,
         'a record header name; header["NAME"]: the value of header NAME',
         _hidden(_IN_RECORDS, "record headers sit inside record batches, often compressed"),
         multi=True, needs_records=True, arg_type="bytes"),
    _row("src.host", "ip", _read_src_host, "the sending end's IP address (or network: a.b.c.d/n)",
         Kernel(Place.ADDRESS, "IP header source address (iptables -s)", end="src")),
    _row("src.port", "int", _read_src_port, "the sending end's TCP port",
         Kernel(Place.PORT, "TCP header source port (iptables --sport)", end="src"), domain=PORT),
    _row("dst.host", "ip", _read_dst_host, "the receiving end's IP address (or network)",
         Kernel(Place.ADDRESS, "IP header destination address (iptables -d)", end="dst")),
    _row("dst.port", "int", _read_dst_port, "the receiving end's TCP port",
         Kernel(Place.PORT, "TCP header destination port (iptables --dport)", end="dst"), domain=PORT),
    _row("host", "ip", _read_host, "either end's IP address (or network)",
         Kernel(Place.ADDRESS, "IP header source or destination address", end="either"), multi=True),
    _row("port", "int", _read_port, "either end's TCP port",
         Kernel(Place.PORT, "TCP header source or destination port", end="either"), multi=True, domain=PORT),
)}


def field_names() -> list[str]:
    """Every field name, in table order (for completion)."""
    return list(FIELDS)


def api_names() -> list[str]:
    """Every API name a condition accepts, in key order (for completion)."""
    return list(API_NAMES)


def type_name(type_: str) -> str:
    return _TYPE_NAMES[type_]


def describe_fields() -> str:
    """The field reference for --help and docs: name, operators and help, one field a line."""
    lines = []
    for row in FIELDS.values():
        name = row.name + ('["NAME"]' if row.arg_type else "")
        notes = []
        if row.multi:
            notes.append("any of several")
        if row.needs_records:
            notes.append("decodes records")
        extra = f" [{', '.join(notes)}]" if notes else ""
        lines.append(f"  {name:<22} {' '.join(row.ops):<28} {row.help}{extra}")
    return "\n".join(lines)
