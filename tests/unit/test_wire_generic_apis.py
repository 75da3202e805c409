"""The generic (schema-walking) path, checked against expectations written by hand.

Every API but Produce and Fetch is summarised by walking kafka-python's schema
(kshock/wire/schema.py: `summarize`). Here the request/response bytes are built field by field
with `struct`, following the Kafka protocol guide (https://kafka.apache.org/protocol), and the
expected topics, partitions and error codes are written down from what the bytes say — not
computed by `summarize` or by kafka-python. What a frame event shows, by the README's field
table: topic names it carries, partition indexes (not replica or leader ids, not partition
counts), non-zero error codes, each once, in order of first appearance.
"""

from __future__ import annotations

import struct

import pytest

from kshock.wire.model import Request, Response
from wire_helpers import conversation, frames, run


# -- the protocol's primitive types ----------------------------------------------------------

def i8(v: int) -> bytes:
    return struct.pack("!b", v)


def i16(v: int) -> bytes:
    return struct.pack("!h", v)


def i32(v: int) -> bytes:
    return struct.pack("!i", v)


def i64(v: int) -> bytes:
    return struct.pack("!q", v)


def string(s: str | None) -> bytes:
    if s is None:
        return i16(-1)
    return i16(len(s)) + s.encode()


def array(items: list[bytes]) -> bytes:
    return i32(len(items)) + b"".join(items)


def uvarint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def compact_string(s: str | None) -> bytes:
    if s is None:
        return b"\x00"
    return uvarint(len(s) + 1) + s.encode()


def compact_array(items: list[bytes]) -> bytes:
    return uvarint(len(items) + 1) + b"".join(items)


NO_TAGS = b"\x00"


def request(api_key: int, version: int, correlation_id: int, body: bytes, *, flexible: bool = False,
            client_id: str = "hand-built") -> bytes:
    """Request header v1 (v2 when flexible: + empty tagged fields), size-prefixed."""
    head = i16(api_key) + i16(version) + i32(correlation_id) + string(client_id)
    if flexible:
        head += NO_TAGS
    return i32(len(head) + len(body)) + head + body


def response(correlation_id: int, body: bytes, *, flexible: bool = False) -> bytes:
    """Response header v0 (v1 when flexible: + empty tagged fields), size-prefixed."""
    head = i32(correlation_id) + (NO_TAGS if flexible else b"")
    return i32(len(head) + len(body)) + head + body


def exchange(req: bytes, resp: bytes) -> tuple[Request, Response]:
    events = frames(run(conversation([(req, resp)])))
    assert [type(e) for e in events] == [Request, Response], [e.error for e in events]
    return events[0], events[1]


def shown(event) -> tuple:
    return event.topics, event.partitions, event.error_codes


# -- the cases -------------------------------------------------------------------------------

def metadata_v1():
    # MetadataRequest v1: topics [name]
    req = request(3, 1, 11, array([string("ghost"), string("orders")]))
    # MetadataResponse v1: brokers [node_id host port rack], controller_id,
    # topics [error_code name is_internal partitions [error_code partition_index leader_id
    # replica_nodes [int32] isr_nodes [int32]]]
    broker = i32(1) + string("b1") + i32(9092) + string(None)
    partition = lambda error, index: (i16(error) + i32(index) + i32(1) + array([i32(1), i32(2), i32(3)])
                                      + array([i32(1)]))
    topics = [i16(3) + string("ghost") + i8(0) + array([]),  # UNKNOWN_TOPIC_OR_PARTITION, no partitions
              i16(0) + string("orders") + i8(0) + array([partition(5, 0), partition(0, 1), partition(5, 2)])]
    resp = response(11, array([broker]) + i32(1) + array(topics))
    # replica and isr ids (1, 2, 3) are not partitions; LEADER_NOT_AVAILABLE (5) is shown once
    return req, resp, (("ghost", "orders"), (), ()), (("ghost", "orders"), (0, 1, 2), (3, 5))


def offset_commit_v2():
    # OffsetCommitRequest v2: group_id generation_id member_id retention_time_ms
    # topics [name partitions [partition_index committed_offset committed_metadata]]
    parts = [i32(7) + i64(100) + string(None), i32(2) + i64(200) + string("m")]
    body = (string("grp") + i32(4) + string("member-1") + i64(-1)
            + array([string("audit") + array(parts)]))
    req = request(8, 2, 12, body)
    # OffsetCommitResponse v2: topics [name partitions [partition_index error_code]]
    # 22 ILLEGAL_GENERATION on partition 2, 0 on partition 7
    resp = response(12, array([string("audit") + array([i32(7) + i16(0), i32(2) + i16(22)])]))
    return req, resp, (("audit",), (7, 2), ()), (("audit",), (7, 2), (22,))


def list_offsets_v1():
    # ListOffsetsRequest v1: replica_id topics [name partitions [partition_index timestamp]]
    req = request(2, 1, 13, i32(-1) + array([string("payments") + array([i32(4) + i64(-1)])]))
    # ListOffsetsResponse v1: topics [name partitions [partition_index error_code timestamp offset]]
    resp = response(13, array([string("payments") + array([i32(4) + i16(6) + i64(-1) + i64(-1)])]))
    return req, resp, (("payments",), (4,), ()), (("payments",), (4,), (6,))  # 6 NOT_LEADER_OR_FOLLOWER


def find_coordinator_v1():
    # FindCoordinatorRequest v1: key key_type
    req = request(10, 1, 14, string("grp") + i8(0))
    # FindCoordinatorResponse v1: throttle_time_ms error_code error_message node_id host port
    resp = response(14, i32(0) + i16(15) + string("not yet") + i32(-1) + string("") + i32(-1))
    # a group key is no topic; node_id -1 and port -1 are no partitions
    return req, resp, ((), (), ()), ((), (), (15,))  # 15 COORDINATOR_NOT_AVAILABLE


def add_partitions_to_txn_v0():
    # AddPartitionsToTxnRequest v0: transactional_id producer_id producer_epoch
    # topics [name partitions [int32]]
    body = string("tx-1") + i64(77) + i16(0) + array([string("ledger") + array([i32(0), i32(3)])])
    req = request(24, 0, 15, body)
    # AddPartitionsToTxnResponse v0: throttle_time_ms results [name results [partition_index error_code]]
    resp = response(15, i32(0) + array([string("ledger") + array([i32(0) + i16(0), i32(3) + i16(48)])]))
    return req, resp, (("ledger",), (0, 3), ()), (("ledger",), (0, 3), (48,))  # 48 INVALID_TXN_STATE


def delete_topics_v4_flexible():
    # DeleteTopicsRequest v4 (flexible): topic_names compact [compact string] timeout_ms, tags
    req = request(20, 4, 16, compact_array([compact_string("old-a"), compact_string("old-b")]) + i32(3000)
                  + NO_TAGS, flexible=True)
    # DeleteTopicsResponse v4: throttle_time_ms responses compact [name error_code tags], tags
    results = [compact_string("old-a") + i16(0) + NO_TAGS, compact_string("old-b") + i16(41) + NO_TAGS]
    resp = response(16, i32(0) + compact_array(results) + NO_TAGS, flexible=True)
    return req, resp, (("old-a", "old-b"), (), ()), (("old-a", "old-b"), (), (41,))  # 41 NOT_CONTROLLER


def heartbeat_v0():
    # HeartbeatRequest v0: group_id generation_id member_id
    req = request(12, 0, 17, string("grp") + i32(9) + string("member-1"))
    # HeartbeatResponse v0: error_code
    resp = response(17, i16(27))
    return req, resp, ((), (), ()), ((), (), (27,))  # 27 REBALANCE_IN_PROGRESS (generation 9 no partition)


def delete_records_v0():
    # DeleteRecordsRequest v0: topics [name partitions [partition_index offset]] timeout_ms
    req = request(21, 0, 18, array([string("big") + array([i32(1) + i64(50), i32(0) + i64(60)])]) + i32(100))
    # DeleteRecordsResponse v0: throttle_time_ms topics [name partitions [partition_index low_watermark error_code]]
    parts = [i32(1) + i64(50) + i16(0), i32(0) + i64(-1) + i16(1)]  # 1 OFFSET_OUT_OF_RANGE
    resp = response(18, i32(0) + array([string("big") + array(parts)]))
    return req, resp, (("big",), (1, 0), ()), (("big",), (1, 0), (1,))


CASES = {
    "Metadata-v1": metadata_v1,
    "OffsetCommit-v2": offset_commit_v2,
    "ListOffsets-v1": list_offsets_v1,
    "FindCoordinator-v1": find_coordinator_v1,
    "DeleteTopics-v4-flexible": delete_topics_v4_flexible,
    "Heartbeat-v0": heartbeat_v0,
    "DeleteRecords-v0": delete_records_v0,
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hand_built_frames_show_what_their_bytes_say(case):
    req_bytes, resp_bytes, want_req, want_resp = CASES[case]()
    api_name, _, version = case.partition("-v")
    req, resp = exchange(req_bytes, resp_bytes)
    assert (req.api, req.api_version, req.client_id, req.decoded, req.error) == \
        (api_name, int(version.split("-")[0]), "hand-built", True, None)
    assert (resp.api, resp.correlation_id, resp.decoded, resp.error) == (api_name, req.correlation_id, True, None)
    assert shown(req) == want_req
    assert shown(resp) == want_resp


# The AddPartitionsToTxn response (every version) names its per-partition error
# `partition_error_code` (and CreateTopics v5+ has `topic_config_error_code`): they are error
# codes too, or `error_code == 48` would never match an AddPartitionsToTxn response carrying it.
def test_add_partitions_to_txn_shows_its_partition_error_codes():
    req_bytes, resp_bytes, want_req, want_resp = add_partitions_to_txn_v0()
    req, resp = exchange(req_bytes, resp_bytes)
    assert (req.api, resp.api, req.decoded, resp.decoded) == ("AddPartitionsToTxn", "AddPartitionsToTxn", True, True)
    assert shown(req) == want_req
    assert shown(resp) == want_resp


def test_a_body_one_byte_short_is_malformed_not_summarised():
    req_bytes, resp_bytes, _, _ = offset_commit_v2()
    short = i32(len(resp_bytes) - 5) + resp_bytes[4:-1]  # the last error code loses a byte
    req, resp = frames(run(conversation([(req_bytes, short)])))
    assert req.decoded and not resp.decoded and resp.error
    assert shown(resp) == ((), (), ())
