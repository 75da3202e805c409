"""PURE: where request fields sit on the wire, per API and version family (the compiler's map).

Offsets count bytes from the start of the Kafka frame, length prefix included — the first
byte of the TCP payload when the frame starts a segment. Every request header (v1 and v2) is

    0  int32  size            (the length prefix)
    4  int16  api_key
    6  int16  api_version
    8  int32  correlation_id
    12 int16  client_id length (-1: null)
    14 ...    client_id bytes
    [header v2, flexible versions: a uvarint count of tagged fields, 0x00 when there are none]

and the body follows. A `BodyLayout` describes, for one API and a range of versions sharing
one encoding, the body up to the first topic entry: the optional transactional id (Produce
v3+), the fixed-size fields, the topics array count, and what a topic entry starts with.
Sources: the request schemas in Kafka's clients/src/main/resources/common/message/ (the same
JSON kafka-python 3 decodes with).
"""

from __future__ import annotations

from dataclasses import dataclass

SIZE_AT = 0
API_AT = 4  # api_key and api_version together make the word at offset 4
CORRELATION_AT = 8
CLIENT_ID_AT = 12
RESPONSE_CORRELATION_AT = 4

PRODUCE, FETCH, LIST_OFFSETS, METADATA = 0, 1, 2, 3


@dataclass(frozen=True, slots=True)
class BodyLayout:
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


_PRODUCE_FIXED = (("acks", 2), ("timeout_ms", 4))
_FETCH_V0 = (("replica_id", 4), ("max_wait_ms", 4), ("min_bytes", 4))
_FETCH_V3 = _FETCH_V0 + (("max_bytes", 4),)
_FETCH_V4 = _FETCH_V3 + (("isolation_level", 1),)
_FETCH_V7 = _FETCH_V4 + (("session_id", 4), ("session_epoch", 4))
_FETCH_V15 = _FETCH_V7[1:]  # v15 moved replica_id into a tagged ReplicaState

LAYOUTS: tuple[BodyLayout, ...] = (
    BodyLayout(PRODUCE, 0, 2, False, False, _PRODUCE_FIXED, "name"),
    BodyLayout(PRODUCE, 3, 8, False, True, _PRODUCE_FIXED, "name"),
    BodyLayout(PRODUCE, 9, 12, True, True, _PRODUCE_FIXED, "name"),
    BodyLayout(PRODUCE, 13, 13, True, True, _PRODUCE_FIXED, "id"),
    BodyLayout(FETCH, 0, 2, False, False, _FETCH_V0, "name"),
    BodyLayout(FETCH, 3, 3, False, False, _FETCH_V3, "name"),
    BodyLayout(FETCH, 4, 6, False, False, _FETCH_V4, "name"),
    BodyLayout(FETCH, 7, 11, False, False, _FETCH_V7, "name"),
    BodyLayout(FETCH, 12, 12, True, False, _FETCH_V7, "name"),
    BodyLayout(FETCH, 13, 14, True, False, _FETCH_V7, "id"),
    BodyLayout(FETCH, 15, 18, True, False, _FETCH_V15, "id"),
    BodyLayout(LIST_OFFSETS, 0, 1, False, False, (("replica_id", 4),), "name"),
    BodyLayout(LIST_OFFSETS, 2, 5, False, False, (("replica_id", 4), ("isolation_level", 1)), "name"),
    BodyLayout(LIST_OFFSETS, 6, 11, True, False, (("replica_id", 4), ("isolation_level", 1)), "name"),
    BodyLayout(METADATA, 0, 0, False, False, (), "name"),
    BodyLayout(METADATA, 1, 8, False, False, (), "name", nullable_topics=True),
    BodyLayout(METADATA, 9, 9, True, False, (), "name", nullable_topics=True),
    BodyLayout(METADATA, 10, 13, True, False, (), "name", topic_skip=16, nullable_topics=True),
)

# Request header v2 (tagged fields after the client id) from this version on, per API key.
# Needed only for the APIs whose body the compiler reads; the rest never reach a body offset.
FLEXIBLE_FROM = {PRODUCE: 9, FETCH: 12, LIST_OFFSETS: 6, METADATA: 9}

# Which body fields the compiler can place, and in which APIs.
BODY_FIELDS = {
    "topic": (PRODUCE, FETCH, LIST_OFFSETS, METADATA),
    "acks": (PRODUCE,),
    "transactional_id": (PRODUCE,),
}


def layouts_for(api_key: int) -> tuple[BodyLayout, ...]:
    return tuple(layout for layout in LAYOUTS if layout.api_key == api_key)


__all__ = ["BODY_FIELDS", "BodyLayout", "FLEXIBLE_FROM", "LAYOUTS", "layouts_for"]
