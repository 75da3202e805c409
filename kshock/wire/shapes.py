"""Produce shapes: what repeats from one Produce frame to the next on a connection.

A producer sends request after request that differ only in the correlation id, the partition
index and the record batch (and the broker answers with responses that differ only in the
correlation id, the partition, the error code and the offsets/timestamps). For a frame with
one topic and one partition, everything the fast-path readers take from the bytes before the
partition index is fixed by those bytes, so the decoder (decode.Decoder.decode_data) remembers
it as a shape keyed by the bytes themselves and reads only the parts that vary; the compiled
lane (_lane.pyx) reads the same shapes. fastpath.py finds where the partition index sits.

Offsets here count from the start of the frame without its length prefix (`RawFrame.data`).
"""

from __future__ import annotations

from struct import Struct

from kshock.wire import fastpath, layout
from kshock.wire.records import count_records
from kshock.wire.schema import Summary

SHAPES_PER_DIRECTION = 4  # Produce shapes remembered per connection and direction (in turn)
_I32 = Struct("!i")
_I16_I16 = Struct("!hh")
_I32_I16 = Struct("!ih")
_CORRELATION = layout.CORRELATION_AT - layout.LENGTH_PREFIX  # 4
_AFTER_CORRELATION = _CORRELATION + 4  # 8
_RESPONSE_BODY = layout.RESPONSE_CORRELATION_AT - layout.LENGTH_PREFIX + 4  # 4
_RECORDS = layout.PARTITION_INDEX_SIZE  # a partition's records, from its index
_BATCH_LENGTH = layout.BATCH_LENGTH_AT
_BATCH_MAGIC = layout.BATCH_MAGIC_AT
_BATCH_COUNT = layout.BATCH_RECORD_COUNT_AT
_BATCH_OVERHEAD = layout.BATCH_OVERHEAD


class RequestShape:
    """A one-topic, one-partition Produce request: every byte but the correlation id and
    what follows the partition index is `head` + correlation id + `middle`."""

    __slots__ = ("head", "middle", "index_at", "flexible", "api_key", "api_version", "api",
                 "topics", "topic_ids", "client_id")

    def __init__(self, head: bytes, middle: bytes, index_at: int, flexible: bool, api_key: int,
                 api_version: int, api: str, topics: tuple[str, ...],
                 topic_ids: tuple[bytes, ...], client_id: str | None) -> None:
        self.head = head  # the bytes before the correlation id (api key and version)
        self.middle = middle  # from after the correlation id to the partition index
        self.index_at = index_at  # offset of the partition index
        self.flexible = flexible  # compact records and tagged fields after them
        self.api_key = api_key
        self.api_version = api_version
        self.api = api
        self.topics = topics
        self.topic_ids = topic_ids
        self.client_id = client_id


class ResponseShape:
    """A one-topic, one-partition Produce response without record errors, error message or
    tags, to a request of this api key and version: `head` from the end of the correlation id
    to the partition index, then index, error code, offsets, the `fixed` bytes at `fixed_at`
    from the index, and the frame ends `total` bytes after the index."""

    __slots__ = ("api_key", "api_version", "head", "index_at", "fixed", "total", "fixed_at",
                 "flexible", "api", "topics", "topic_ids")

    def __init__(self, api_key: int, api_version: int, head: bytes, index_at: int, fixed: bytes,
                 total: int, fixed_at: int, flexible: bool, api: str, topics: tuple[str, ...],
                 topic_ids: tuple[bytes, ...]) -> None:
        self.api_key = api_key
        self.api_version = api_version
        self.head = head
        self.index_at = index_at
        self.fixed = fixed
        self.total = total
        self.fixed_at = fixed_at
        self.flexible = flexible  # the frame ends with (empty) tagged fields
        self.api = api
        self.topics = topics
        self.topic_ids = topic_ids


def learn_request_shape(shapes: tuple, data: bytes, pos: int, api: str, flexible: bool,
                        summary: Summary, client_id: str | None) -> tuple:
    """`shapes` with this request's shape first, when it is of the simple kind (its body,
    read by the fast-path reader into `summary`, starts at `pos`), else `shapes` as they are."""
    api_key, api_version = _I16_I16.unpack_from(data, 0)
    at = fastpath.produce_request_index_at(data, pos, api_version)
    if at is None:
        return shapes
    shape = RequestShape(data[:_CORRELATION], data[_AFTER_CORRELATION:at], at, flexible, api_key,
                         api_version, api, summary.topics, summary.topic_ids, client_id)
    found = match_request_shape(shape, data)
    if found is None or (summary.topics, summary.topic_ids, (found[0],), (), found[1]) \
            != tuple(summary):
        return shapes  # not the simple kind after all: the reader keeps reading these
    return (shape, *shapes[:SHAPES_PER_DIRECTION - 1])


def learn_response_shape(shapes: tuple, data: bytes, pos: int, api_key: int, api_version: int,
                         api: str, flexible: bool, summary: Summary) -> tuple:
    """`shapes` with this response's shape first, when it is of the simple kind."""
    at = fastpath.produce_response_index_at(data, pos, api_version)
    if at is None:
        return shapes
    fixed_at, fixed, total = fastpath.produce_response_layout(api_version)
    if len(data) != at + total or not data.startswith(fixed, at + fixed_at) \
            or flexible and data[-1]:
        return shapes
    partition, error_code = _I32_I16.unpack_from(data, at)
    if (summary.topics, summary.topic_ids, (partition,),
            (error_code,) if error_code else (), None) != tuple(summary):
        return shapes
    shape = ResponseShape(api_key, api_version, data[_RESPONSE_BODY:at], at, fixed, total,
                          fixed_at, flexible, api, summary.topics, summary.topic_ids)
    return (shape, *shapes[:SHAPES_PER_DIRECTION - 1])


def match_request_shape(shape: RequestShape, data: bytes) -> tuple[int, int] | None:
    """(partition, records) of a Produce request of this shape, or None when the bytes after
    the partition index are not one record set and empty tagged fields up to the end."""
    partition = _I32.unpack_from(data, shape.index_at)[0]
    at = shape.index_at + _RECORDS
    if shape.flexible:  # compact bytes, then partition, topic and body tags
        b = data[at]
        if b < 0x80:
            start = at + 1
        else:
            b2 = data[at + 1]
            if b2 >= 0x80:
                return None
            b = (b & 0x7F) | (b2 << 7)
            start = at + 2
        end = start + b - 1
        if b < 1 or len(data) != end + 3 or not data.endswith(b"\x00\x00\x00"):
            return None
    else:
        length = _I32.unpack_from(data, at)[0]
        start = at + 4
        end = start + length
        if length < 0 or len(data) != end:
            return None
    # one magic-2 batch filling the record set exactly: its count (as count_records reads it)
    length = _I32.unpack_from(data, start + _BATCH_LENGTH)[0] \
        if end - start > _BATCH_MAGIC else -1
    if length >= layout.BATCH_MIN_LENGTH and start + _BATCH_OVERHEAD + length == end \
            and data[start + _BATCH_MAGIC] == 2:
        return partition, _I32.unpack_from(data, start + _BATCH_COUNT)[0]
    return partition, count_records(data[start:end])
