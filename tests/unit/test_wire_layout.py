"""layout.py, the one table of where request fields sit, against kafka-python's own schemas and
encoders: which versions are flexible, that the families cover every version, and that the
header and Produce body fields sit where the table says in frames kafka-python encodes."""

from __future__ import annotations

import struct

import pytest
from kafka.protocol.producer import ProduceRequest

from kshock.wire import layout
from kshock.wire.layout import FLEXIBLE_FROM, LAYOUTS, PRODUCE, is_flexible, layout_for, layouts_for
from kshock.wire.schema import SchemaTable

from wire_helpers import TOPIC_UUID, request_frame

SCHEMAS = SchemaTable()


@pytest.mark.parametrize("api_key", sorted(FLEXIBLE_FROM))
def test_flexible_versions_agree_with_the_schemas(api_key):
    spec = SCHEMAS.spec(api_key)
    for version in range(spec.max_version + 1):
        assert spec.request_flexible(version) == is_flexible(api_key, version), version
        assert spec.response_flexible(version) == is_flexible(api_key, version), version


@pytest.mark.parametrize("api_key", sorted(FLEXIBLE_FROM))
def test_the_families_cover_every_version_once(api_key):
    families = layouts_for(api_key)
    assert families[0].low == 0
    for before, after in zip(families, families[1:]):
        assert after.low == before.high + 1
    for family in families:
        assert family.flexible == is_flexible(api_key, family.low) == is_flexible(api_key, family.high)
        for version in range(family.low, family.high + 1):
            assert layout_for(api_key, version) is family
    assert layout_for(api_key, families[-1].high + 1) is None


def test_every_family_is_in_the_table():
    assert set(LAYOUTS) == {f for api_key in FLEXIBLE_FROM for f in layouts_for(api_key)}


def produce(version: int, transactional_id: str | None) -> bytes:
    T = ProduceRequest.TopicProduceData
    P = T.PartitionProduceData
    kw = {"topic_id": TOPIC_UUID} if version >= 13 else {"name": "orders"}
    msg = ProduceRequest[version](transactional_id=transactional_id, acks=-1, timeout_ms=1234,
                                  topic_data=[T(partition_data=[P(index=5, records=None)], **kw)])
    return request_frame(msg, correlation_id=0x01020304, client_id="client-1")


@pytest.mark.parametrize("version", range(SCHEMAS.spec(PRODUCE).max_version + 1))
@pytest.mark.parametrize("transactional_id", [None, "txn-1"])
def test_produce_request_fields_sit_where_the_table_says(version, transactional_id):
    frame = produce(version, transactional_id)
    family = layout_for(PRODUCE, version)
    assert struct.unpack_from("!i", frame, layout.SIZE_AT)[0] == len(frame) - layout.LENGTH_PREFIX
    assert struct.unpack_from("!hh", frame, layout.API_KEY_AT) == (PRODUCE, version)
    assert struct.unpack_from("!I", frame, layout.API_AT)[0] == (PRODUCE << 16) | version
    assert struct.unpack_from("!i", frame, layout.CORRELATION_AT)[0] == 0x01020304
    n = struct.unpack_from("!h", frame, layout.CLIENT_ID_AT)[0]
    assert frame[layout.CLIENT_ID_BYTES_AT : layout.CLIENT_ID_BYTES_AT + n] == b"client-1"
    pos = layout.CLIENT_ID_BYTES_AT + n
    assert layout.request_header_version(family.flexible) == (2 if family.flexible else 1)
    if family.flexible:
        assert frame[pos] == 0  # no tagged fields in the header
        pos += 1
    if family.transactional_id:
        if family.flexible:
            length = frame[pos] - 1
            pos += 1
        else:
            length = struct.unpack_from("!h", frame, pos)[0]
            pos += 2
        if transactional_id is None:
            assert length == -1
        else:
            assert frame[pos : pos + length] == transactional_id.encode()
            pos += length
    assert struct.unpack_from("!h", frame, pos + family.fixed_offset("acks"))[0] == -1
    assert struct.unpack_from("!i", frame, pos + family.fixed_offset("timeout_ms"))[0] == 1234
    pos += family.fixed_size
    if family.flexible:
        assert frame[pos] == 2  # one topic (compact array: stored + 1)
        pos += 1
    else:
        assert struct.unpack_from("!i", frame, pos)[0] == 1
        pos += 4
    if family.topic == "id":
        assert frame[pos : pos + 16] == TOPIC_UUID.bytes
        pos += 16
    elif family.flexible:
        assert frame[pos : pos + 7] == b"\x07orders"
        pos += 7
    else:
        assert frame[pos : pos + 8] == b"\x00\x06orders"
        pos += 8
    pos += 1 if family.flexible else 4  # one partition
    assert struct.unpack_from("!i", frame, pos)[0] == 5
    assert pos + layout.PARTITION_INDEX_SIZE < len(frame)


def test_response_headers():
    assert layout.response_header_version(PRODUCE, True) == 1
    assert layout.response_header_version(PRODUCE, False) == 0
    assert layout.response_header_version(layout.API_VERSIONS, True) == 0
