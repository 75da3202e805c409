"""PURE: the one table of where Kafka request fields sit on the wire, per API and version.

Read by the decoder's fast readers (fastpath.py, decode.py), the compiled lane (_lane.pyx,
through constants taken from here when it is imported), the condition fields' kernel column
(conditions/fields.py) and the rule compiler (rules/placement.py, rules/classify.py). Sources:
the message schemas in Kafka's clients/src/main/resources/common/message/ (the same JSON
kafka-python 3 decodes with); tests/unit/test_wire_layout.py checks the Produce rows against
kafka-python's schemas and encoder, and the decoder's and compiler's tests check the others.

Offsets count bytes from the start of the Kafka frame, its int32 length prefix included (the
first byte of the TCP payload when the frame starts a segment). The decoder keeps frames
without the prefix (`RawFrame.data`, `KafkaFrame.raw`): there a field sits `LENGTH_PREFIX`
bytes earlier. Every request header v1/v2 is

    0  int32  size            (the length prefix)
    4  int16  api_key         } the word at offset 4 (API_AT): api_key << 16 | api_version
    6  int16  api_version     }
    8  int32  correlation_id
    12 int16  client_id length (-1: null)
    14 ...    client_id bytes
    [header v2, flexible versions: tagged fields (a uvarint count, 0x00 when there are none)]

(header v0, without the client id, is used only by ControlledShutdown v0). A response header
is the int32 correlation_id at offset 4, followed in flexible versions (header v1) by tagged
fields — except ApiVersions responses, always header v0. A `BodyLayout` then describes, for one
API and a range of versions sharing one encoding, the request body up to its first topic
entry: the optional transactional id, the fixed-size fields, the topics array, and what a
topic entry starts with. Past that, the Produce request's entries are

    topic_data[]:      name (string; a 16-byte topic id from v13), partition_data[], [tags]
    partition_data[]:  int32 index, records (nullable bytes), [tags]
    ... body [tags]

"Flexible" (header v2 / v1, compact strings, arrays and bytes with uvarint lengths stored +1,
tagged fields) is stated once, in FLEXIBLE_FROM.

The names exported here are an API other packages build on: add to them, never rename.
"""

from __future__ import annotations

from dataclasses import dataclass

# -- API keys this table describes ------------------------------------------------------------
PRODUCE, FETCH, LIST_OFFSETS, METADATA = 0, 1, 2, 3
API_VERSIONS = 18  # (its responses always use header v0)

# -- headers: offsets from the frame start, length prefix included -----------------------------
LENGTH_PREFIX = 4  # the int32 size before every frame; decoded frames are kept without it
SIZE_AT = 0
API_AT = 4  # api_key and api_version together make the word at offset 4
API_KEY_AT = 4
API_VERSION_AT = 6
CORRELATION_AT = 8
CLIENT_ID_AT = 12  # request header v1+: int16 length, then the bytes
CLIENT_ID_BYTES_AT = 14
REQUEST_HEADER_FIXED = 14  # size .. client id length: the header bytes before the client id
RESPONSE_CORRELATION_AT = 4

# The first flexible version of each API whose body is described here (request header v2,
# response header v1, compact encodings, tagged fields).
FLEXIBLE_FROM: dict[int, int] = {PRODUCE: 9, FETCH: 12, LIST_OFFSETS: 6, METADATA: 9}
# From this version on, Produce and Fetch name topics by a 16-byte topic id.
TOPIC_ID_FROM: dict[int, int] = {PRODUCE: 13, FETCH: 13}
# Produce requests start with a nullable transactional id from this version on.
TRANSACTIONAL_ID_FROM: dict[int, int] = {PRODUCE: 3}


def is_flexible(api_key: int, api_version: int) -> bool:
    """Whether a version of an API in FLEXIBLE_FROM is flexible (KeyError for other APIs: the
    decoder asks kafka-python's schemas about those)."""
    return api_version >= FLEXIBLE_FROM[api_key]


def request_header_version(flexible: bool) -> int:
    """2 (with tagged fields) for flexible requests, else 1 (0 is ControlledShutdown v0's)."""
    return 2 if flexible else 1


def response_header_version(api_key: int, flexible: bool) -> int:
    """1 (with tagged fields) for flexible responses, 0 for the rest and for ApiVersions."""
    return 1 if flexible and api_key != API_VERSIONS else 0


# -- request bodies up to the first topic entry -----------------------------------------------

@dataclass(frozen=True, slots=True)
class BodyLayout:
    """One API's request body, up to the first topic entry, for versions low..high."""

    api_key: int
    low: int  # first version of the family
    high: int  # last version of the family
    flexible: bool  # header v2; compact strings and arrays (uvarint lengths, stored +1)
    transactional_id: bool  # the body starts with a nullable transactional id
    fixed: tuple[tuple[str, int], ...]  # (field, size) after the transactional id, before topics
    topic: str  # "name": a topic entry starts with its name; "id": with a 16-byte topic id
    topic_skip: int = 0  # bytes in a topic entry before its name (Metadata v10+: the topic id)
    nullable_topics: bool = False  # the topics array may be null (Metadata v1+: all topics)

    @property
    def versions(self) -> str:
        return f"v{self.low}" if self.low == self.high else f"v{self.low}-{self.high}"

    def fixed_offset(self, name: str) -> int | None:
        """Offset of a fixed field from the end of the transactional id (the body start when
        there is none)."""
        at = 0
        for field, size in self.fixed:
            if field == name:
                return at
            at += size
        return None

    @property
    def fixed_size(self) -> int:
        return sum(size for _, size in self.fixed)


def _family(api_key: int, low: int, high: int, fixed: tuple[tuple[str, int], ...], **more) -> BodyLayout:
    topic = "id" if api_key in TOPIC_ID_FROM and low >= TOPIC_ID_FROM[api_key] else "name"
    txn = api_key in TRANSACTIONAL_ID_FROM and low >= TRANSACTIONAL_ID_FROM[api_key]
    return BodyLayout(api_key, low, high, is_flexible(api_key, low), txn, fixed, topic, **more)


_PRODUCE_FIXED = (("acks", 2), ("timeout_ms", 4))
_FETCH_V0 = (("replica_id", 4), ("max_wait_ms", 4), ("min_bytes", 4))
_FETCH_V3 = _FETCH_V0 + (("max_bytes", 4),)
_FETCH_V4 = _FETCH_V3 + (("isolation_level", 1),)
_FETCH_V7 = _FETCH_V4 + (("session_id", 4), ("session_epoch", 4))
_FETCH_V15 = _FETCH_V7[1:]  # v15 moved replica_id into a tagged ReplicaState
_LIST_OFFSETS_V0 = (("replica_id", 4),)
_LIST_OFFSETS_V2 = _LIST_OFFSETS_V0 + (("isolation_level", 1),)

# Every family, split where the encoding changes (flexible, transactional id, topic ids).
LAYOUTS: tuple[BodyLayout, ...] = (
    _family(PRODUCE, 0, 2, _PRODUCE_FIXED),
    _family(PRODUCE, 3, 8, _PRODUCE_FIXED),
    _family(PRODUCE, 9, 12, _PRODUCE_FIXED),
    _family(PRODUCE, 13, 13, _PRODUCE_FIXED),
    _family(FETCH, 0, 2, _FETCH_V0),
    _family(FETCH, 3, 3, _FETCH_V3),
    _family(FETCH, 4, 6, _FETCH_V4),
    _family(FETCH, 7, 11, _FETCH_V7),
    _family(FETCH, 12, 12, _FETCH_V7),
    _family(FETCH, 13, 14, _FETCH_V7),
    _family(FETCH, 15, 18, _FETCH_V15),
    _family(LIST_OFFSETS, 0, 1, _LIST_OFFSETS_V0),
    _family(LIST_OFFSETS, 2, 5, _LIST_OFFSETS_V2),
    _family(LIST_OFFSETS, 6, 11, _LIST_OFFSETS_V2),
    _family(METADATA, 0, 0, ()),
    _family(METADATA, 1, 8, (), nullable_topics=True),
    _family(METADATA, 9, 9, (), nullable_topics=True),
    _family(METADATA, 10, 13, (), topic_skip=16, nullable_topics=True),
)


def layouts_for(api_key: int) -> tuple[BodyLayout, ...]:
    """The families of one API, oldest first."""
    return tuple(layout for layout in LAYOUTS if layout.api_key == api_key)


def layout_for(api_key: int, api_version: int) -> BodyLayout | None:
    """The family of one API version, or None when the table does not describe it."""
    for layout in LAYOUTS:
        if layout.api_key == api_key and layout.low <= api_version <= layout.high:
            return layout
    return None


# -- inside Produce requests and responses ----------------------------------------------------
PARTITION_INDEX_SIZE = 4  # int32 partition index, first in a partition entry (both directions)
ERROR_CODE_SIZE = 2  # int16 error_code after the index in a Produce/Fetch response partition


def produce_response_partition_fixed(api_version: int) -> int:
    """Bytes after index and error_code in a Produce response partition: base_offset,
    log_append_time_ms (v2+), log_start_offset (v5+)."""
    return 8 + (8 if api_version >= 2 else 0) + (8 if api_version >= 5 else 0)


def produce_response_has_record_errors(api_version: int) -> bool:
    """record_errors[] and error_message follow the fixed fields of a partition (v8+)."""
    return api_version >= 8


def throttle_time_size(api_version: int) -> int:
    """The int32 throttle_time_ms at the end of a Produce response (v1+), before its tags."""
    return 4 if api_version >= 1 else 0


# -- a record batch (magic 2) header, from the batch start ------------------------------------
BATCH_LENGTH_AT = 8  # int32 batch length, counting from after it (offset 12)
BATCH_OVERHEAD = 12  # base_offset and batch length: the bytes the length does not count
BATCH_MAGIC_AT = 16
BATCH_RECORD_COUNT_AT = 57
BATCH_MIN_LENGTH = 49  # the smallest batch length a magic-2 header fits in
BATCH_HEADER_SIZE = 61  # the records follow


__all__ = [
    "API_AT", "API_KEY_AT", "API_VERSIONS", "API_VERSION_AT", "BATCH_HEADER_SIZE",
    "BATCH_LENGTH_AT", "BATCH_MAGIC_AT", "BATCH_MIN_LENGTH", "BATCH_OVERHEAD",
    "BATCH_RECORD_COUNT_AT", "BodyLayout", "CLIENT_ID_AT", "CLIENT_ID_BYTES_AT",
    "CORRELATION_AT", "ERROR_CODE_SIZE", "FETCH", "FLEXIBLE_FROM", "LAYOUTS", "LENGTH_PREFIX",
    "LIST_OFFSETS", "METADATA", "PARTITION_INDEX_SIZE", "PRODUCE", "REQUEST_HEADER_FIXED",
    "RESPONSE_CORRELATION_AT", "SIZE_AT", "TOPIC_ID_FROM", "TRANSACTIONAL_ID_FROM",
    "is_flexible", "layout_for", "layouts_for", "produce_response_has_record_errors",
    "produce_response_partition_fixed", "request_header_version", "response_header_version",
    "throttle_time_size",
]
