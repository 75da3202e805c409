"""Lean readers for the hot APIs: Produce and Fetch, requests and responses, every version
kafka-python knows (Produce v0-13, Fetch v0-18).

They read exactly the fields `schema.summarize` extracts (topics, topic ids, partitions,
non-zero error codes, record counts) while stepping over everything else, without building
message objects. tests/unit/test_wire_decode.py proves them equal to the schema decoder for
every version. Bad input raises ValueError/struct.error/IndexError, like the schema classes. Where the
fields sit, per version, is layout.py's table; the readers take it from there.
"""

from __future__ import annotations

from struct import Struct

from kshock.wire.layout import (
    ERROR_CODE_SIZE, FETCH, FLEXIBLE_FROM, PARTITION_INDEX_SIZE, PRODUCE, TOPIC_ID_FROM, layout_for,
    produce_response_has_record_errors, produce_response_partition_fixed, throttle_time_size,
)
from kshock.wire.records import Budget, count_records
from kshock.wire.schema import Summary

_I16 = Struct("!h")
_I32 = Struct("!i")
_I32_I16 = Struct("!ih")

PRODUCE_MAX_VERSION = 13
FETCH_MAX_VERSION = 18
_PRODUCE_FLEX = FLEXIBLE_FROM[PRODUCE]
_FETCH_FLEX = FLEXIBLE_FROM[FETCH]
_TOPIC_ID_FROM = TOPIC_ID_FROM[PRODUCE]  # (_topic and _topic_at read both APIs' topics)
if TOPIC_ID_FROM[FETCH] != _TOPIC_ID_FROM:
    raise ImportError("the readers assume Produce and Fetch name topics by id from one version")
# the request body families of every version the readers cover (layout.py), by version
_PRODUCE_REQUEST = tuple(layout_for(PRODUCE, v) for v in range(PRODUCE_MAX_VERSION + 1))
_FETCH_REQUEST = tuple(layout_for(FETCH, v) for v in range(FETCH_MAX_VERSION + 1))
# a flexible Produce request: acks and timeout_ms between the transactional id and the topics
_PRODUCE_FLEX_FIXED = _PRODUCE_REQUEST[_PRODUCE_FLEX].fixed_size
# a flexible Produce response partition: from its index to its record_errors
_PRODUCE_FLEX_PARTITION = PARTITION_INDEX_SIZE + ERROR_CODE_SIZE \
    + produce_response_partition_fixed(_PRODUCE_FLEX)


class _Reader:
    """A cursor over one frame; `flex` selects compact encodings and tagged fields."""

    __slots__ = ("data", "pos", "flex", "end")

    def __init__(self, data: bytes, pos: int, flex: bool) -> None:
        self.data = data
        self.pos = pos
        self.flex = flex
        self.end = len(data)

    def skip(self, n: int) -> None:
        self.pos += n
        if self.pos > self.end:
            raise ValueError("frame ends inside a field")

    def int16(self) -> int:
        v = _I16.unpack_from(self.data, self.pos)[0]
        self.pos += 2
        return v

    def int32(self) -> int:
        v = _I32.unpack_from(self.data, self.pos)[0]
        self.pos += 4
        return v

    def uvarint(self) -> int:
        data = self.data
        pos = self.pos
        b = data[pos]
        if b < 0x80:
            self.pos = pos + 1
            return b
        value = b & 0x7F
        shift = 7
        while True:
            pos += 1
            b = data[pos]
            value |= (b & 0x7F) << shift
            if b < 0x80:
                break
            shift += 7
            if shift > 28:
                raise ValueError("varint too long")
        self.pos = pos + 1
        return value

    def length(self) -> int:
        """Length of a string/bytes/array: -1 for null."""
        if self.flex:
            return self.uvarint() - 1
        return self.int32()

    def array_length(self) -> int:
        n = self.uvarint() - 1 if self.flex else self.int32()
        if n > self.end - self.pos:
            raise ValueError(f"array of {n} items cannot fit in the frame")
        return n

    def string(self) -> str | None:
        n = self.uvarint() - 1 if self.flex else self.int16()
        if n < 0:
            return None
        start = self.pos
        self.skip(n)
        return self.data[start : self.pos].decode("utf-8")

    def skip_string(self) -> None:
        n = self.uvarint() - 1 if self.flex else self.int16()
        if n > 0:
            self.skip(n)

    def blob(self) -> bytes | None:
        n = self.length()
        if n < 0:
            return None
        start = self.pos
        self.skip(n)
        return self.data[start : self.pos]

    def uuid(self) -> bytes:
        start = self.pos
        self.skip(16)
        return self.data[start : self.pos]

    def tags(self) -> None:
        if not self.flex:
            return
        for _ in range(self.uvarint()):
            self.uvarint()
            self.skip(self.uvarint())


def _topic(r: _Reader, version: int, topics: list, topic_ids: list) -> None:
    if version >= _TOPIC_ID_FROM:
        tid = r.uuid()
        if any(tid) and tid not in topic_ids:
            topic_ids.append(tid)
    else:
        name = r.string()
        if name and name not in topics:
            topics.append(name)


def _topic_at(data: bytes, pos: int, version: int, topics: list, topic_ids: list) -> int:
    """`_topic` for the hand-inlined flexible readers: a topic id (v13+) or a compact name at
    `pos`; returns the position after it."""
    if version >= _TOPIC_ID_FROM:
        tid = data[pos : pos + 16]
        if any(tid) and tid not in topic_ids:
            topic_ids.append(tid)
        return pos + 16
    b = data[pos]
    if b >= 0x80:
        b, pos = uvarint_at(data, pos)
    else:
        pos += 1
    if b > 1:
        name = data[pos : pos + b - 1].decode("utf-8")
        pos += b - 1
        if name not in topics:
            topics.append(name)
    return pos


def uvarint_at(data: bytes, pos: int) -> tuple[int, int]:
    """An unsigned varint at `pos` (the flexible encoding's lengths): (value, next position)."""
    value = 0
    shift = 0
    while True:
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7
        if shift > 28:
            raise ValueError("varint too long")


def _skip_tags_at(data: bytes, pos: int) -> int:
    r = _Reader(data, pos, True)
    r.tags()
    return r.pos


def produce_request(data: bytes, pos: int, version: int) -> Summary:
    # Hand-inlined reads (this is the hottest function); the _Reader below is the slow lane.
    if version < _PRODUCE_FLEX:
        return _produce_request_reader(data, pos, version)
    topics: list[str] = []
    topic_ids: list[bytes] = []
    partitions: list[int] = []
    records = 0
    budget = Budget()  # one frame's decompression bound, shared by its record sets
    n = len(data)
    b = data[pos]  # transactional_id: compact nullable string
    if b >= 0x80:
        b, pos = uvarint_at(data, pos)
    else:
        pos += 1
    if b > 1:
        pos += b - 1
    pos += _PRODUCE_FLEX_FIXED  # acks, timeout_ms
    b = data[pos]
    if b >= 0x80:
        b, pos = uvarint_at(data, pos)
    else:
        pos += 1
    for _ in range(b - 1):
        pos = _topic_at(data, pos, version, topics, topic_ids)
        b = data[pos]
        if b >= 0x80:
            b, pos = uvarint_at(data, pos)
        else:
            pos += 1
        for _ in range(b - 1):
            p = _I32.unpack_from(data, pos)[0]
            pos += PARTITION_INDEX_SIZE
            if p not in partitions:
                partitions.append(p)
            b = data[pos]
            if b >= 0x80:
                b, pos = uvarint_at(data, pos)
            else:
                pos += 1
            if b > 0:
                end = pos + b - 1
                if end > n:
                    raise ValueError("frame ends inside the records")
                records += count_records(data[pos:end], budget)
                pos = end
            pos = _skip_tags_at(data, pos) if data[pos] else pos + 1
        pos = _skip_tags_at(data, pos) if data[pos] else pos + 1
    if data[pos]:
        pos = _skip_tags_at(data, pos)
    elif pos >= n:
        raise ValueError("frame ends before its tagged fields")
    return Summary(tuple(topics), tuple(topic_ids), tuple(partitions), (), records)


def _produce_request_reader(data: bytes, pos: int, version: int) -> Summary:
    layout = _PRODUCE_REQUEST[version]
    r = _Reader(data, pos, layout.flexible)
    topics: list[str] = []
    topic_ids: list[bytes] = []
    partitions: list[int] = []
    records = 0
    budget = Budget()
    if layout.transactional_id:
        r.skip_string()
    r.skip(layout.fixed_size)  # acks, timeout_ms
    for _ in range(r.array_length()):
        _topic(r, version, topics, topic_ids)
        for _ in range(r.array_length()):
            p = r.int32()
            if p not in partitions:
                partitions.append(p)
            records += count_records(r.blob(), budget)
            r.tags()
        r.tags()
    r.tags()
    return Summary(tuple(topics), tuple(topic_ids), tuple(partitions), (), records)


def produce_response(data: bytes, pos: int, version: int) -> Summary:
    if version < _PRODUCE_FLEX:
        return _produce_response_reader(data, pos, version)
    topics: list[str] = []
    topic_ids: list[bytes] = []
    partitions: list[int] = []
    errors: list[int] = []
    n = len(data)
    b = data[pos]
    if b >= 0x80:
        b, pos = uvarint_at(data, pos)
    else:
        pos += 1
    for _ in range(b - 1):
        pos = _topic_at(data, pos, version, topics, topic_ids)
        b = data[pos]
        if b >= 0x80:
            b, pos = uvarint_at(data, pos)
        else:
            pos += 1
        for _ in range(b - 1):
            p, err = _I32_I16.unpack_from(data, pos)
            pos += _PRODUCE_FLEX_PARTITION  # index, error_code, base_offset, log_append_time_ms,
            # log_start_offset
            if p not in partitions:
                partitions.append(p)
            if err and err not in errors:
                errors.append(err)
            r = _Reader(data, pos, True)
            for _ in range(r.array_length()):  # record_errors
                r.skip(4)
                r.skip_string()
                r.tags()
            r.skip_string()  # error_message
            r.tags()
            pos = r.pos
        pos = _skip_tags_at(data, pos) if data[pos] else pos + 1
    pos += 4  # throttle_time_ms
    if pos >= n:
        raise ValueError("frame ends before its tagged fields")
    if data[pos]:
        _skip_tags_at(data, pos)
    return Summary(tuple(topics), tuple(topic_ids), tuple(partitions), tuple(errors), None)


def _produce_response_reader(data: bytes, pos: int, version: int) -> Summary:
    r = _Reader(data, pos, version >= _PRODUCE_FLEX)
    topics: list[str] = []
    topic_ids: list[bytes] = []
    partitions: list[int] = []
    errors: list[int] = []
    # after index/error_code: base_offset, [log_append_time_ms v2+], [log_start_offset v5+]
    fixed = PARTITION_INDEX_SIZE + ERROR_CODE_SIZE + produce_response_partition_fixed(version)
    record_errors = produce_response_has_record_errors(version)
    for _ in range(r.array_length()):
        _topic(r, version, topics, topic_ids)
        for _ in range(r.array_length()):
            p, err = _I32.unpack_from(data, r.pos)[0], _I16.unpack_from(data, r.pos + 4)[0]
            r.skip(fixed)
            if p not in partitions:
                partitions.append(p)
            if err and err not in errors:
                errors.append(err)
            if record_errors:
                for _ in range(r.array_length()):  # record_errors
                    r.skip(4)
                    r.skip_string()
                    r.tags()
                r.skip_string()  # error_message
            r.tags()
        r.tags()
    r.skip(throttle_time_size(version))
    r.tags()
    return Summary(tuple(topics), tuple(topic_ids), tuple(partitions), tuple(errors), None)




def fetch_request(data: bytes, pos: int, version: int) -> Summary:
    layout = _FETCH_REQUEST[version]
    r = _Reader(data, pos, layout.flexible)
    topics: list[str] = []
    topic_ids: list[bytes] = []
    partitions: list[int] = []
    # replica_id (v0-14), max_wait_ms, min_bytes, max_bytes v3+, isolation_level v4+,
    # session_id + session_epoch v7+
    r.skip(layout.fixed_size)
    # per partition after its index: current_leader_epoch v9+, fetch_offset, last_fetched_epoch
    # v12+, log_start_offset v5+, partition_max_bytes
    fixed = (4 if version >= 9 else 0) + 8 + (4 if version >= 12 else 0) \
        + (8 if version >= 5 else 0) + 4
    for _ in range(r.array_length()):
        _topic(r, version, topics, topic_ids)
        for _ in range(r.array_length()):
            p = r.int32()
            r.skip(fixed)
            if p not in partitions:
                partitions.append(p)
            r.tags()
        r.tags()
    if version >= 7:
        for _ in range(r.array_length()):  # forgotten_topics_data: skipped like summarize
            if version >= _TOPIC_ID_FROM:
                r.skip(16)
            else:
                r.skip_string()
            n = r.array_length()
            if n > 0:
                r.skip(4 * n)
            r.tags()
    if version >= 11:
        r.skip_string()  # rack_id
    r.tags()
    return Summary(tuple(topics), tuple(topic_ids), tuple(partitions), (), None)


def fetch_response(data: bytes, pos: int, version: int) -> Summary:
    r = _Reader(data, pos, version >= _FETCH_FLEX)
    topics: list[str] = []
    topic_ids: list[bytes] = []
    partitions: list[int] = []
    errors: list[int] = []
    records = 0
    budget = Budget()
    if version >= 1:
        r.skip(4)  # throttle_time_ms
    if version >= 7:
        err = r.int16()
        if err:
            errors.append(err)
        r.skip(4)  # session_id
    # after partition_index/error_code: high_watermark, last_stable_offset v4+,
    # log_start_offset v5+
    fixed = 8 + (8 if version >= 4 else 0) + (8 if version >= 5 else 0)
    for _ in range(r.array_length()):
        _topic(r, version, topics, topic_ids)
        for _ in range(r.array_length()):
            p, err = _I32_I16.unpack_from(data, r.pos)
            r.skip(6 + fixed)
            if p not in partitions:
                partitions.append(p)
            if err and err not in errors:
                errors.append(err)
            if version >= 4:
                for _ in range(r.array_length()):  # aborted_transactions (nullable)
                    r.skip(16)
                    r.tags()
            if version >= 11:
                r.skip(4)  # preferred_read_replica
            records += count_records(r.blob(), budget)
            r.tags()
        r.tags()
    r.tags()
    return Summary(tuple(topics), tuple(topic_ids), tuple(partitions), tuple(errors), records)


# (api_key, is_request) -> (reader, max version it covers)
READERS = {
    (0, True): (produce_request, PRODUCE_MAX_VERSION),
    (0, False): (produce_response, PRODUCE_MAX_VERSION),
    (1, True): (fetch_request, FETCH_MAX_VERSION),
    (1, False): (fetch_response, FETCH_MAX_VERSION),
}


# -- where the varying parts of a Produce frame sit (for shapes.py) --------------------------
#
# For a frame with one topic and one partition, everything the readers above take from the
# bytes before the partition index is fixed by those bytes (shapes.py remembers them). These
# functions find where the partition index sits, or None when the frame is not of that kind.

def produce_request_index_at(data: bytes, pos: int, version: int) -> int | None:
    """Offset of the partition index of a one-topic, one-partition Produce request whose
    body starts at `pos`, or None."""
    layout = _PRODUCE_REQUEST[version]
    r = _Reader(data, pos, layout.flexible)
    if layout.transactional_id:
        r.skip_string()
    r.skip(layout.fixed_size)  # acks, timeout_ms
    return _one_topic_one_partition(r, version)


def produce_response_index_at(data: bytes, pos: int, version: int) -> int | None:
    """Offset of the partition index of a one-topic, one-partition Produce response whose
    body starts at `pos`, or None."""
    return _one_topic_one_partition(_Reader(data, pos, version >= _PRODUCE_FLEX), version)


def _one_topic_one_partition(r: _Reader, version: int) -> int | None:
    """From a Produce topics array: where the one partition of the one topic starts, or None."""
    if r.array_length() != 1:
        return None
    if version >= _TOPIC_ID_FROM:
        r.skip(16)
    else:
        r.skip_string()
    if r.array_length() != 1:
        return None
    return r.pos


def produce_response_layout(version: int) -> tuple[int, bytes, int]:
    """After the partition index of a one-topic, one-partition Produce response without
    record errors, error message or tagged fields: (where the fixed bytes after the varying
    offsets start, those bytes, the frame's length from the index), all relative to the
    index. The throttle time between them varies and is not read, like the reader."""
    # index, error_code, base_offset, log_append_time, log_start_offset
    at = PARTITION_INDEX_SIZE + ERROR_CODE_SIZE + produce_response_partition_fixed(version)
    throttle = throttle_time_size(version)
    if version >= _PRODUCE_FLEX:
        # record_errors [], error_message null, partition tags, topic tags | throttle | tags
        return at, b"\x01\x00\x00\x00", at + 4 + throttle + 1
    if produce_response_has_record_errors(version):
        # record_errors [] (int32 0), error_message null (int16 -1) | throttle
        return at, b"\x00\x00\x00\x00\xff\xff", at + 6 + throttle
    return at, b"", at + throttle
