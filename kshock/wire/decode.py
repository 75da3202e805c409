"""Kafka frames -> Request | Response | Malformed: headers, bodies, pairing, identity.

- Request headers v0/v1/v2 (v2: flexible, tagged fields); response headers v0/v1, where the
  version follows the request's api/version (ApiVersions responses always use v0).
- Bodies: the fast path (fastpath.py) for Produce/Fetch, kafka-python's schema classes for
  every other api key/version they know; full schema decoding of any frame on demand
  (`decode_body`), records on demand (`frame_records`).
- Decoding errors are caught in one place (`_decode`) and become Malformed(error=...), with the
  header fields that could be read.
- Responses are paired with requests by correlation id per connection, for api, version,
  client id and latency. Fetch/Produce v13+ topic ids are resolved by Metadata responses seen
  earlier; unknown ids are shown in Kafka's own text form (base64url, as kafka-topics prints).
- Connection identity: the first non-empty client id and the ApiVersions v3+ client software
  name/version; frames without a client id (KIP-1313) still carry it as conn_client_id.
"""

from __future__ import annotations

import base64
import struct
from struct import Struct
from typing import Any

from kshock.wire import fastpath, layout
from kshock.wire.framing import MAX_FRAME_BYTES, NO, STRONG, WEAK
from kshock.wire.model import (
    ConnectionIdentity,
    Flow,
    KafkaFrame,
    Malformed,
    RawFrame,
    Request,
    Response,
    new_request,
    new_response,
)
from kshock.wire.records import Budget, Record, RecordError, RecordsCut, batches, records
from kshock.wire.schema import RECORD_COUNTING, SchemaTable, Summary, summarize
from kshock.wire.shapes import learn_request_shape, learn_response_shape, match_request_shape

# Header fields in a frame kept without its length prefix: layout.py's offsets less its 4 bytes.
_CORRELATION = layout.CORRELATION_AT - layout.LENGTH_PREFIX  # 4
_AFTER_CORRELATION = _CORRELATION + 4  # 8: a request's header goes on with the client id
_CLIENT_ID_BYTES = layout.CLIENT_ID_BYTES_AT - layout.LENGTH_PREFIX  # 10
_CLIENT_ID_LENGTH = layout.CLIENT_ID_AT - layout.LENGTH_PREFIX  # 8
_RESPONSE_BODY = layout.RESPONSE_CORRELATION_AT - layout.LENGTH_PREFIX + 4  # 4: after header v0
_RECORDS = layout.PARTITION_INDEX_SIZE  # a Produce partition's records, from its index
_BATCH_LENGTH = layout.BATCH_LENGTH_AT
_BATCH_MAGIC = layout.BATCH_MAGIC_AT
_BATCH_COUNT = layout.BATCH_RECORD_COUNT_AT
_BATCH_OVERHEAD = layout.BATCH_OVERHEAD
_REQ_HEAD = Struct("!hhih")  # api_key, api_version, correlation_id, client id length: offset 0
_SIZE_KEY_VERSION = Struct("!ihh")
_I16 = Struct("!h")
_I32 = Struct("!i")
_API_VERSIONS = layout.API_VERSIONS
_METADATA = layout.METADATA
# everything the schema classes and the fast path raise on bad bytes; caught only in _decode
_DECODE_ERRORS = (
    ValueError, struct.error, IndexError, KeyError, TypeError, UnicodeDecodeError,
    OverflowError, AttributeError, RecursionError, MemoryError, RecordError,
)
# requests awaiting a response per connection; librdkafka allows 1,000,000 in flight and a
# linger.ms=0 flood keeps over 1,000 outstanding, so the bound only guards memory (acks=0
# Produce requests are never answered): ~150 bytes an entry
DEFAULT_MAX_OUTSTANDING = 65536
_PRODUCE = layout.PRODUCE
_I32_I16 = Struct("!ih")


class Connection:
    """What the decoder knows about one TCP connection."""

    __slots__ = ("outstanding", "client_id", "software_name", "software_version", "max_outstanding",
                 "request_shapes", "response_shapes")

    def __init__(self, max_outstanding: int = DEFAULT_MAX_OUTSTANDING) -> None:
        # correlation id -> (api_key, api_version, ts, client_id)
        self.outstanding: dict[int, tuple[int, int, float, str | None]] = {}
        self.client_id: str | None = None
        self.software_name: str | None = None
        self.software_version: str | None = None
        self.max_outstanding = max_outstanding
        # the decoder's memory of this connection's Produce frames (Decoder.decode_data)
        self.request_shapes: tuple = ()
        self.response_shapes: tuple = ()

    @property
    def identity(self) -> ConnectionIdentity:
        return ConnectionIdentity(self.client_id, self.software_name, self.software_version)

    def plausible_response(self, buf: bytes | bytearray, at: int) -> int:
        size = _I32.unpack_from(buf, at)[0]
        if size < 4 or size > MAX_FRAME_BYTES:
            return NO
        return STRONG if _I32.unpack_from(buf, at + 4)[0] in self.outstanding else WEAK


class Decoder:
    """Decodes frames of many connections; holds the capture-wide topic-id -> name map."""

    def __init__(self, schemas: SchemaTable | None = None, *, fast: bool = True,
                 shortcuts: bool = True) -> None:
        """fast=False: kafka-python's schema classes for every body, no shortcuts;
        shortcuts=False: no lean lane (`decode_data` always goes the general way), the
        fast-path readers still read Produce and Fetch bodies."""
        self.schemas = schemas or SchemaTable()
        self.fast = fast
        self.topic_names: dict[bytes, str] = {}
        self._client_ids: dict[bytes, str] = {}
        # (api_key, api_version) -> (api name, flexible, fast reader): what decode_data reads
        # inline; everything else goes the general way
        self._request_lanes: dict[tuple[int, int], tuple] = {}
        self._response_lanes: dict[tuple[int, int], tuple] = {}
        for (api_key, is_request), (reader, max_version) in fastpath.READERS.items():
            if not shortcuts:
                break
            spec = self.schemas.spec(api_key)
            if spec is None or api_key in (_API_VERSIONS, _METADATA):
                continue  # (their bodies change connection and decoder state)
            lanes = self._request_lanes if is_request else self._response_lanes
            for version in range(min(max_version, spec.max_version) + 1):
                flexible = spec.request_flexible(version) if is_request \
                    else spec.response_flexible(version)
                lanes[(api_key, version)] = (spec.name, flexible, reader)

    # -- resynchronisation -----------------------------------------------------------------

    def plausible_request(self, buf: bytes | bytearray, at: int) -> int:
        """STRONG for a known api key/version with a sane client id, else NO (needs 14 bytes)."""
        size, api_key, api_version = _SIZE_KEY_VERSION.unpack_from(buf, at)
        if size < 8 or size > MAX_FRAME_BYTES or not self.schemas.known(api_key, api_version):
            return NO
        n = _I16.unpack_from(buf, at + layout.CLIENT_ID_AT)[0]
        if n == -1:
            return STRONG
        if n < 0 or n > size - _CLIENT_ID_BYTES:
            return NO
        head = bytes(buf[at + layout.CLIENT_ID_BYTES_AT : at + layout.CLIENT_ID_BYTES_AT + n])
        return STRONG if all(0x20 <= b < 0x7F for b in head) else NO

    # -- decoding --------------------------------------------------------------------------

    def decode(self, frame: RawFrame, is_request: bool, conn: Connection, src: str,
               dst: str) -> KafkaFrame:
        """The one place where bad bytes are caught: they become Malformed(error=...)."""
        if frame.truncated or not self.fast:
            return self._decode_general(frame.ts, frame.data, frame.size, frame.packets,
                                        frame.truncated, frame.flow, is_request, conn, src, dst)
        return self.decode_data(frame.ts, frame.data, frame.size, frame.packets, frame.flow,
                                is_request, conn, src, dst)

    def decode_data(self, ts: float, data: bytes, size: int, packets: tuple[int, ...],
                    flow: Flow | None, is_request: bool, conn: Connection, src: str,
                    dst: str) -> KafkaFrame:
        """`decode` of a whole frame (`data` without its length prefix), without a RawFrame.

        The lean lane for the hot APIs (the fast path's Produce/Fetch readers): header,
        pairing and body read inline, with no side effects until the body has been read, so
        anything unusual (unknown client id bytes, non-empty header tags, unknown api/version,
        a body that does not parse, an unpaired response) simply goes the general way and
        gives exactly what it would have given. One-topic, one-partition Produce frames are
        read by their shape (see shapes.py): only the bytes that vary between them.
        Proven equal by test_wire_lanes.py.
        """
        if self.fast:
            try:
                if is_request:
                    for shape in conn.request_shapes:
                        if data.startswith(shape.head) \
                                and data.startswith(shape.middle, _AFTER_CORRELATION):
                            # match_request_shape, inline for the common case: a compact
                            # record set of < 16 KiB holding one magic-2 batch
                            at = shape.index_at + _RECORDS
                            b = data[at]
                            if shape.flexible and 0x80 <= b and data[at + 1] < 0x80:
                                start = at + 2
                                end = start + ((b & 0x7F) | (data[at + 1] << 7)) - 1
                                if len(data) == end + 3 and data.endswith(b"\x00\x00\x00") \
                                        and _I32.unpack_from(data, start + _BATCH_LENGTH)[0] \
                                        + _BATCH_OVERHEAD == end - start \
                                        and data[start + _BATCH_MAGIC] == 2:
                                    found = (_I32.unpack_from(data, shape.index_at)[0],
                                             _I32.unpack_from(data, start + _BATCH_COUNT)[0])
                                else:
                                    found = match_request_shape(shape, data)
                            else:
                                found = match_request_shape(shape, data)
                            if found is None:
                                break
                            api_key = shape.api_key
                            api_version = shape.api_version
                            client_id = shape.client_id
                            correlation_id = _I32.unpack_from(data, _CORRELATION)[0]
                            outstanding = conn.outstanding  # (self._remember, inline)
                            if len(outstanding) >= conn.max_outstanding:
                                del outstanding[next(iter(outstanding))]
                            outstanding[correlation_id] = (api_key, api_version, ts, client_id)
                            if client_id and conn.client_id is None:
                                conn.client_id = client_id
                            topics = shape.topics
                            if shape.topic_ids:
                                topics = self._with_topic_ids(topics, shape.topic_ids)
                            return new_request(ts, src, dst, api_key, shape.api, api_version,
                                               correlation_id, client_id, topics, (found[0],),
                                               found[1], (), None, conn.client_id, True, None,
                                               packets, size, data, flow)
                    api_key, api_version, correlation_id, n = _REQ_HEAD.unpack_from(data, 0)
                    lane = self._request_lanes.get((api_key, api_version))
                    if lane is not None:
                        if n >= 0:
                            pos = _CLIENT_ID_BYTES + n
                            client_id = self._client_ids.get(data[_CLIENT_ID_BYTES:pos])
                        else:
                            pos = _CLIENT_ID_BYTES
                            client_id = None
                        if (n < 0 or client_id is not None) and len(data) >= pos:
                            api, flexible, reader = lane
                            if flexible:
                                if data[pos]:
                                    raise _Slow
                                pos += 1
                            summary = reader(data, pos, api_version)
                            if api_key == _PRODUCE:
                                conn.request_shapes = learn_request_shape(
                                    conn.request_shapes, data, pos, api, flexible, summary,
                                    client_id)
                            self._remember(conn, correlation_id, api_key, api_version, ts,
                                           client_id)
                            if client_id and conn.client_id is None:
                                conn.client_id = client_id
                            topics = summary[0]
                            if summary[1]:
                                topics = self._with_topic_ids(topics, summary[1])
                            return new_request(ts, src, dst, api_key, api, api_version,
                                               correlation_id, client_id, topics, summary[2],
                                               summary[4], summary[3], None, conn.client_id,
                                               True, None, packets, size, data, flow)
                else:
                    correlation_id = _I32.unpack_from(data, 0)[0]
                    outstanding = conn.outstanding
                    request = outstanding.get(correlation_id)
                    if request is not None:
                        api_key, api_version, req_ts, client_id = request
                        for shape in conn.response_shapes:
                            if shape.api_key == api_key and shape.api_version == api_version \
                                    and data.startswith(shape.head, _RESPONSE_BODY):
                                at = shape.index_at
                                if len(data) != at + shape.total \
                                        or not data.startswith(shape.fixed, at + shape.fixed_at) \
                                        or shape.flexible and data[-1]:
                                    break
                                partition, error_code = _I32_I16.unpack_from(data, at)
                                del outstanding[correlation_id]
                                topics = shape.topics
                                if shape.topic_ids:
                                    topics = self._with_topic_ids(topics, shape.topic_ids)
                                return new_response(ts, src, dst, api_key, shape.api,
                                                    api_version, correlation_id, client_id,
                                                    topics, (partition,), None,
                                                    (error_code,) if error_code else (),
                                                    round((ts - req_ts) * 1000.0, 3),
                                                    conn.client_id, True, None, packets, size,
                                                    data, flow)
                        lane = self._response_lanes.get((api_key, api_version))
                        if lane is not None:
                            api, flexible, reader = lane
                            pos = _RESPONSE_BODY
                            if flexible:
                                if data[pos]:
                                    raise _Slow
                                pos += 1
                            summary = reader(data, pos, api_version)
                            if api_key == _PRODUCE:
                                conn.response_shapes = learn_response_shape(
                                    conn.response_shapes, data, pos, api_key, api_version, api,
                                    flexible, summary)
                            del outstanding[correlation_id]
                            topics = summary[0]
                            if summary[1]:
                                topics = self._with_topic_ids(topics, summary[1])
                            return new_response(ts, src, dst, api_key, api, api_version,
                                                correlation_id, client_id, topics, summary[2],
                                                summary[4], summary[3],
                                                round((ts - req_ts) * 1000.0, 3),
                                                conn.client_id, True, None, packets, size,
                                                data, flow)
            except _FAST_LANE_ESCAPES:
                pass  # the general way says what went wrong
        return self._decode_general(ts, data, size, packets, "", flow, is_request, conn, src,
                                    dst)

    def _decode_general(self, ts: float, data: bytes, size: int, packets: tuple[int, ...],
                        truncated: str, flow: Flow | None, is_request: bool, conn: Connection,
                        src: str, dst: str) -> KafkaFrame:
        f = _Fields(truncated or None)
        try:
            if is_request:
                self._request(data, ts, conn, f)
            else:
                self._response(data, ts, conn, f)
        except _Unpaired:
            f.error = f.error or "no request with this correlation id was seen on this connection"
        except _DECODE_ERRORS as exc:
            f.error = f.error or _reason(exc)
        if is_request:
            if f.client_id and conn.client_id is None:
                conn.client_id = f.client_id
            body = f.body
            if body is not None and f.api_key == _API_VERSIONS and f.api_version >= 3:
                conn.software_name = body.client_software_name or conn.software_name
                conn.software_version = body.client_software_version or conn.software_version
        return self._event(Request if is_request else Response, ts, data, size, packets, flow,
                           src, dst, f, conn)

    def _request(self, data: bytes, ts: float, conn: Connection, f: _Fields) -> None:
        api_key, api_version, correlation_id, n = _REQ_HEAD.unpack_from(data, 0)
        f.api_key, f.api_version, f.correlation_id = api_key, api_version, correlation_id
        # header v1+: a nullable int16 string (header v0 is only ControlledShutdown v0)
        if n >= 0:
            raw_id = data[_CLIENT_ID_BYTES : _CLIENT_ID_BYTES + n]
            if len(raw_id) < n:
                raise ValueError("frame ends inside the client id")
            client_id = self._client_ids.get(raw_id)
            if client_id is None:
                client_id = raw_id.decode("utf-8")
                if len(self._client_ids) < 4096:
                    self._client_ids[raw_id] = client_id
            f.client_id = client_id
            pos = _CLIENT_ID_BYTES + n
        else:
            pos = _CLIENT_ID_BYTES
        self._remember(conn, correlation_id, api_key, api_version, ts, f.client_id)
        spec = self.schemas.spec(api_key)
        if spec is None:
            raise ValueError(self.schemas.missing(api_key, api_version))
        if not 0 <= api_version <= spec.max_version:
            raise ValueError(f"{spec.name} v{api_version} is not a known version")
        if spec.request_flexible(api_version):
            pos = _skip_tags(data, pos)
        if not f.error:
            f.summary, f.body = self._decode(data, pos, api_key, api_version, True)

    def _response(self, data: bytes, ts: float, conn: Connection, f: _Fields) -> None:
        correlation_id = f.correlation_id = _I32.unpack_from(data, 0)[0]
        request = conn.outstanding.pop(correlation_id, None)
        if request is None:
            raise _Unpaired
        api_key, api_version, req_ts, f.client_id = request
        f.api_key, f.api_version = api_key, api_version
        f.latency_ms = round((ts - req_ts) * 1000.0, 3)
        spec = self.schemas.spec(api_key)
        if spec is None:
            raise ValueError(self.schemas.missing(api_key, api_version))
        if not 0 <= api_version <= spec.max_version:
            raise ValueError(f"{spec.name} v{api_version} is not a known version")
        pos = _RESPONSE_BODY
        if api_key != _API_VERSIONS and spec.response_flexible(api_version):
            pos = _skip_tags(data, pos)
        if not f.error:
            f.summary, f.body = self._decode(data, pos, api_key, api_version, False)
            if api_key == _METADATA and f.body is not None:
                self._learn_topic_ids(f.body)

    def _decode(self, data: bytes, pos: int, api_key: int, api_version: int,
                is_request: bool) -> tuple[Summary, Any]:
        """The body: fast path when it covers the frame, else the schema classes."""
        reader = fastpath.READERS.get((api_key, is_request)) if self.fast else None
        if reader is not None and api_version <= reader[1]:
            return reader[0](data, pos, api_version), None
        spec = self.schemas.specs[api_key]
        cls = spec.request if is_request else spec.response
        body = cls.decode(memoryview(data)[pos:], version=api_version)
        kind = "request" if is_request else "response"
        return summarize(body, api_version, (api_key, kind) in RECORD_COUNTING), body

    def _remember(self, conn: Connection, correlation_id: int, api_key: int, api_version: int,
                  ts: float, client_id: str | None) -> None:
        outstanding = conn.outstanding
        if len(outstanding) >= conn.max_outstanding:
            del outstanding[next(iter(outstanding))]  # oldest (e.g. acks=0 Produce never answered)
        outstanding[correlation_id] = (api_key, api_version, ts, client_id)

    def _learn_topic_ids(self, body: Any) -> None:
        for topic in body.topics or ():
            topic_id = getattr(topic, "topic_id", None)
            if topic_id is not None and topic.name and any(topic_id.bytes):
                self.topic_names[topic_id.bytes] = topic.name

    def topic_text(self, topic_id: bytes) -> str:
        name = self.topic_names.get(topic_id)
        if name is None:
            name = base64.urlsafe_b64encode(topic_id).rstrip(b"=").decode("ascii")
        return name

    def _with_topic_ids(self, topics: tuple[str, ...], topic_ids: tuple[bytes, ...]) -> tuple:
        """Topic names followed by the (resolved) names of topic ids not already named."""
        names = list(topics)
        for tid in topic_ids:
            text = self.topic_text(tid)
            if text not in names:
                names.append(text)
        return tuple(names)

    def _event(self, cls, ts: float, data: bytes, size: int, packets: tuple[int, ...],
               flow: Flow | None, src: str, dst: str, f: _Fields,
               conn: Connection) -> KafkaFrame:
        api = self.schemas.name(f.api_key)
        summary = f.summary
        if summary is not None:
            topics = summary.topics
            if summary.topic_ids:
                topics = self._with_topic_ids(topics, summary.topic_ids)
            partitions, records, error_codes = summary.partitions, summary.records, summary.error_codes
        else:
            topics, partitions, records, error_codes = (), (), None, ()
        if f.error is not None:
            kind = "request" if cls is Request else "response"
            return Malformed(ts, src, dst, f.api_key, api, f.api_version, f.correlation_id,
                             f.client_id, topics, partitions, records, error_codes, f.latency_ms,
                             conn.client_id, False, f.error, packets, size, data, flow, kind)
        make = new_request if cls is Request else new_response
        return make(ts, src, dst, f.api_key, api, f.api_version, f.correlation_id,
                    f.client_id, topics, partitions, records, error_codes, f.latency_ms,
                    conn.client_id, True, None, packets, size, data, flow)


class _Unpaired(Exception):
    """A response whose request was not seen."""


class _Slow(Exception):
    """The lean lane hands a frame to the general way."""


_FAST_LANE_ESCAPES = (_Slow, *_DECODE_ERRORS)


class _Fields:
    """Header fields and results, filled in as far as decoding gets."""

    __slots__ = ("api_key", "api_version", "correlation_id", "client_id", "latency_ms",
                 "summary", "body", "error")

    def __init__(self, error: str | None) -> None:
        self.api_key = self.api_version = self.correlation_id = None
        self.client_id = self.latency_ms = self.summary = self.body = None
        self.error = error


def _skip_tags(data: bytes, pos: int) -> int:
    """Skip a tagged-field section (unsigned varints: count, then tag/size/bytes each)."""
    count, pos = fastpath.uvarint_at(data, pos)
    for _ in range(count):
        _, pos = fastpath.uvarint_at(data, pos)
        size, pos = fastpath.uvarint_at(data, pos)
        pos += size
        if pos > len(data):
            raise ValueError("frame ends inside a tagged field")
    return pos


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, (struct.error, IndexError)):
        return f"frame too short for its fields ({text})"
    return text


# -- on demand -----------------------------------------------------------------------------

def body_offset(frame: KafkaFrame, schemas: SchemaTable) -> int:
    """Where the body starts in frame.raw (after the request/response header)."""
    data = frame.raw
    spec = schemas.spec(frame.api_key) if frame.api_key is not None else None
    if spec is None or frame.api_version is None:
        raise ValueError("the frame's api key or version is unknown")
    if frame.is_request:
        n = _I16.unpack_from(data, _CLIENT_ID_LENGTH)[0]
        pos = _CLIENT_ID_BYTES + max(n, 0)
        return _skip_tags(data, pos) if spec.request_flexible(frame.api_version) else pos
    if frame.api_key != _API_VERSIONS and spec.response_flexible(frame.api_version):
        return _skip_tags(data, _RESPONSE_BODY)
    return _RESPONSE_BODY


def decode_body(frame: KafkaFrame, schemas: SchemaTable) -> Any:
    """The full kafka-python message object of a frame (raises ValueError on bad bytes)."""
    spec = schemas.spec(frame.api_key) if frame.api_key is not None else None
    if spec is None:
        raise ValueError("the frame's api key is unknown")
    cls = spec.request if frame.is_request else spec.response
    try:
        return cls.decode(memoryview(frame.raw)[body_offset(frame, schemas):],
                          version=frame.api_version)
    except _DECODE_ERRORS as exc:
        raise ValueError(_reason(exc)) from exc


def record_sets(frame: KafkaFrame, schemas: SchemaTable) -> list[tuple[str, int, bytes]]:
    """(topic, partition, record set bytes) of a Produce request or Fetch response."""
    body = decode_body(frame, schemas)
    out = []
    if frame.api_key == 0:
        for topic in body.topic_data:
            name = topic.name if frame.api_version < 13 else topic.topic_id.hex
            for part in topic.partition_data:
                out.append((name, part.index, bytes(part.records or b"")))
    elif frame.api_key == 1:
        for topic in body.responses:
            name = topic.topic if frame.api_version < 13 else topic.topic_id.hex
            for part in topic.partitions:
                out.append((name, part.partition_index, bytes(part.records or b"")))
    return out


def frame_batches(frame: KafkaFrame, schemas: SchemaTable):
    """Batch header facts (codec, producer id/epoch, base sequence, transactional, count)."""
    budget = Budget()  # (legacy wrappers are decompressed to be counted)
    return [(t, p, b) for t, p, data in record_sets(frame, schemas) for b in batches(data, budget)]


def frame_records(frame: KafkaFrame, schemas: SchemaTable) -> list[tuple[str, int, Record]]:
    """Every record, decompressed (raises ValueError on bad record sets, and at the bounds of
    records.py: RecordsCut, a ValueError)."""
    budget = Budget()
    try:
        return [(t, p, r) for t, p, data in record_sets(frame, schemas) for r in records(data, budget)]
    except RecordsCut:
        raise  # (a ValueError too; callers that count cut frames tell it apart)
    except RecordError as exc:
        raise ValueError(str(exc)) from exc
