"""decode.py + fastpath.py + schema.py: every api key/version kafka-python knows, both ways."""

from __future__ import annotations

import struct

import pytest
from kafka.protocol.consumer import FetchRequest, FetchResponse
from kafka.protocol.metadata import ApiVersionsRequest, MetadataResponse
from kafka.protocol.producer import ProduceRequest, ProduceResponse

from kshock.wire import fastpath
from kshock.wire.decode import decode_body, frame_batches, frame_records
from kshock.wire.model import Malformed, Request, Response
from kshock.wire.schema import RECORD_COUNTING, SchemaTable, summarize
from wire_helpers import (
    TOPIC_UUID, conversation, frames, record_batch, request_frame, response_frame, run,
    sample_message,
)

SCHEMAS = SchemaTable()
# kafka-python's own encoder cannot round-trip these with every optional field populated
_UNPOPULATABLE = {("ApiVersionsResponse", 3), ("ApiVersionsResponse", 4)}
ALL_VERSIONS = [(key, v) for key, spec in SCHEMAS.specs.items() for v in range(spec.max_version + 1)]


def _message(cls, version):
    populated = (cls.__name__, version) not in _UNPOPULATABLE
    return sample_message(cls, version, populated)


def _expected(cls, raw_body, version, api_key, kind):
    body = cls.decode(raw_body, version=version)
    return summarize(body, version, (api_key, kind) in RECORD_COUNTING)


@pytest.mark.parametrize("api_key,version", ALL_VERSIONS,
                         ids=[f"{SCHEMAS.name(k)}-v{v}" for k, v in ALL_VERSIONS])
def test_every_api_version_decodes_back(api_key, version):
    spec = SCHEMAS.spec(api_key)
    req = _message(spec.request, version)
    resp = _message(spec.response, version)
    req_bytes = request_frame(req, correlation_id=1000 + version, client_id="cli-x")
    resp_bytes = response_frame(resp, correlation_id=1000 + version)
    events = frames(run(conversation([(req_bytes, resp_bytes)])))
    assert [type(e) for e in events] == [Request, Response], [e.error for e in events]
    request, response = events
    assert (request.api_key, request.api, request.api_version, request.correlation_id,
            request.client_id) == (api_key, spec.name, version, 1000 + version, "cli-x")
    assert (response.api_key, response.api_version, response.correlation_id,
            response.client_id) == (api_key, version, 1000 + version, "cli-x")
    assert response.latency_ms == pytest.approx(1.0, abs=0.01)
    # the summary matches the schema decoder's view of the bytes kafka-python encoded
    want_req = _expected(spec.request, bytes(req.encode()), version, api_key, "request")
    want_resp = _expected(spec.response, bytes(resp.encode()), version, api_key, "response")
    for event, want in ((request, want_req), (response, want_resp)):
        assert event.partitions == want.partitions
        assert event.error_codes == want.error_codes
        assert event.records == want.records
        assert set(want.topics) <= set(event.topics)
    # error codes, independently of summarize: sample_value writes 3 into every `error_code` and 4
    # into every other int16 `*_error_code` (partition_error_code, ...): read which the schema has
    # (not an ApiVersions v3+ response: with an error set, Kafka sends and reads its body as v0,
    # so a v3 body with error 3, as sampled, is no message a broker sends)
    for event, cls in ((request, spec.request), (response, spec.response)):
        if not (event.is_response and api_key == 18 and version >= 3):
            assert set(event.error_codes) == _error_code_sentinels(cls, version), (event.api, event.kind)
    # and full decoding on demand gives back the message
    assert decode_body(request, SCHEMAS) == spec.request.decode(bytes(req.encode()), version=version)


def _error_code_sentinels(cls, version: int) -> set[int]:
    """The sentinels sample_message put in this message's error-code fields, from its schema
    (non-empty arrays hold 2 elements, so every field present at the version carries its value)."""
    found = set()

    def walk(fields):
        for field in fields:
            if not field.for_version_q(version):
                continue
            if field.is_struct_array() or field.is_struct():
                walk(field._fields)
            elif field.type_str == "int16" and field.name == "error_code":
                found.add(3)
            elif field.type_str == "int16" and field.name.endswith("error_code"):
                found.add(4)

    walk(cls._struct._fields)
    return found


FAST = [(0, v) for v in range(fastpath.PRODUCE_MAX_VERSION + 1)] + \
       [(1, v) for v in range(fastpath.FETCH_MAX_VERSION + 1)]


@pytest.mark.parametrize("populated", [True, False], ids=["populated", "empty"])
@pytest.mark.parametrize("api_key,version", FAST, ids=[f"{k}-v{v}" for k, v in FAST])
def test_fast_path_equals_schema_decoder(api_key, version, populated):
    spec = SCHEMAS.spec(api_key)
    assert fastpath.READERS[(api_key, True)][1] == spec.max_version
    for cls, is_request, kind in ((spec.request, True, "request"), (spec.response, False, "response")):
        body = bytes(sample_message(cls, version, populated).encode())
        reader = fastpath.READERS[(api_key, is_request)][0]
        assert reader(body, 0, version) == _expected(cls, body, version, api_key, kind)
    # and through the whole pipeline, fast and schema-only sniffers agree
    req = request_frame(sample_message(spec.request, version, populated))
    resp = response_frame(sample_message(spec.response, version, populated))
    packets = conversation([(req, resp)])
    fast = [e.as_json() for e in frames(run(packets, fast=True))]
    slow = [e.as_json() for e in frames(run(packets, fast=False))]
    assert fast == slow
    if populated and api_key == 0 and version < 13:
        assert fast[0]["topics"] == ["topic-a", "topic-b"]
        assert fast[0]["partitions"] == [0, 1]
        assert fast[0]["records"] == 2 * 2 * 2  # 2 topics x 2 partitions x 2 records
        assert fast[1]["error_codes"] == [3]


def test_fast_path_rejects_truncated_bodies_like_the_schema_decoder():
    body = bytes(sample_message(ProduceRequest, 9).encode())
    for cut in range(len(body) - 1):
        with pytest.raises((ValueError, struct.error, IndexError)):
            fastpath.produce_request(body[:cut], 0, 9)


def _meta_v12(name="orders"):
    T = MetadataResponse.MetadataResponseTopic
    return MetadataResponse[12](brokers=[], cluster_id=None, controller_id=1,
                                topics=[T(error_code=0, name=name, topic_id=TOPIC_UUID,
                                          is_internal=False, partitions=[])])


def _fetch_v13():
    T = FetchRequest.FetchTopic
    P = T.FetchPartition
    return FetchRequest[13](max_wait_ms=500, min_bytes=1, max_bytes=1 << 20, isolation_level=0,
                            session_id=0, session_epoch=-1,
                            topics=[T(topic_id=TOPIC_UUID, partitions=[P(partition=4, fetch_offset=9)])],
                            forgotten_topics_data=[], rack_id="")


def test_topic_ids_resolve_from_an_earlier_metadata_response():
    meta_req = request_frame(sample_message(SCHEMAS.spec(3).request, 12), correlation_id=1)
    pairs = [(meta_req, response_frame(_meta_v12(), correlation_id=1)),
             (request_frame(_fetch_v13(), correlation_id=2), b"")]
    fetch = frames(run(conversation(pairs)))[-1]
    assert (fetch.api, fetch.api_version, fetch.topics, fetch.partitions) == ("Fetch", 13, ("orders",), (4,))


def test_unknown_topic_ids_are_kept_in_kafkas_text_form():
    fetch = frames(run(conversation([(request_frame(_fetch_v13()), b"")])))[0]
    assert fetch.decoded and fetch.topics == ("ahssPU5fSmuMfY6foLHC0w",)


def test_connection_identity_from_api_versions_and_kip_1313_frames():
    av = ApiVersionsRequest[3](client_software_name="apache-kafka-java",
                               client_software_version="3.9.0")
    later = sample_message(ProduceRequest, 9)
    pairs = [(request_frame(av, 1, client_id="svc-a"), b""),
             (request_frame(later, 2, client_id=None), b""),
             (request_frame(sample_message(ProduceRequest, 9), 3, client_id=""), b"")]
    from kshock.wire.sniffer import Sniffer

    sniffer = Sniffer()
    events = []
    for ts, lt, raw in conversation(pairs, close=False):
        events += sniffer.feed(ts, lt, raw)
    first, second, third = frames(events)
    assert first.client_id == "svc-a"
    assert (second.client_id, second.conn_client_id) == (None, "svc-a")
    assert (third.client_id, third.conn_client_id) == ("", "svc-a")
    identity = sniffer.identity(first.flow)
    assert (identity.client_id, identity.software_name, identity.software_version) == \
        ("svc-a", "apache-kafka-java", "3.9.0")


def test_unknown_api_key_keeps_header_fields():
    frame = struct.pack("!ihhih", 14, 99, 2, 77, 4) + b"abcd"
    (event,) = frames(run(conversation([(frame, b"")])))
    assert isinstance(event, Malformed)
    assert (event.api_key, event.api_version, event.correlation_id, event.client_id) == (99, 2, 77, "abcd")
    assert "unknown api key 99" in event.error
    assert event.as_json()["kind"] == "request" and event.as_json()["decoded"] is False


def test_an_api_without_a_schema_is_named_and_paired():
    # librdkafka's GetTelemetrySubscriptions v0 (header v2), as captured in lab-group, and the
    # broker's answer: kafka-python 3 has no schema for api key 71
    request = bytes.fromhex("00000025" "0047" "0000" "00000004" "0009") + b"pay-admin" + bytes(18)
    response = bytes.fromhex("0000002c" "00000004") + bytes(40)
    sent, answer = frames(run(conversation([(request, response)])))
    assert isinstance(sent, Malformed) and isinstance(answer, Malformed)
    why = f"{SCHEMAS.library} has no schema for GetTelemetrySubscriptions v0 (api key 71): header only"
    assert SCHEMAS.library.startswith("kafka-python 3.")
    assert (sent.as_json()["kind"], sent.api_key, sent.api, sent.api_version, sent.correlation_id, sent.client_id,
            sent.decoded, sent.error) == ("request", 71, "GetTelemetrySubscriptions", 0, 4, "pay-admin",
                                          False, why)
    assert (answer.as_json()["kind"], answer.api, answer.correlation_id, answer.client_id, answer.error) == \
        ("response", "GetTelemetrySubscriptions", 4, "pay-admin", why)
    assert answer.latency_ms is not None
    assert answer.as_json()["api"] == "GetTelemetrySubscriptions"


def test_api_names_are_the_spec_table_kept_in_the_wire_package():
    from kshock.wire import apis as condition_apis
    from kshock.wire import apis

    assert condition_apis.API_NAMES is apis.API_NAMES and condition_apis.api_name is apis.api_name
    assert len(apis.API_NAMES) == 93 and apis.api_name(71) == "GetTelemetrySubscriptions"
    assert all(SCHEMAS.name(key) == apis.api_name(key) for key in range(93))
    assert SCHEMAS.name(200) is None


def test_unsupported_version_and_bad_body_are_malformed_not_raised():
    bad = struct.pack("!ihhih", 12, 0, 99, 5, 2) + b"id"
    body = request_frame(sample_message(ProduceRequest, 3))
    cut = body[:4] + body[4:-9]  # wrong: header fine, body short...
    cut = struct.pack("!i", len(cut) - 4) + cut[4:]
    events = frames(run(conversation([(bad, b""), (cut, b"")])))
    assert [e.decoded for e in events] == [False, False]
    assert "Produce v99 is not a known version" in events[0].error
    assert events[1].api == "Produce" and events[1].correlation_id == 7


def test_api_versions_response_uses_header_v0_even_when_flexible():
    req = request_frame(ApiVersionsRequest[3](client_software_name="x", client_software_version="1"))
    cls = SCHEMAS.spec(18).response
    key = cls.ApiVersion(api_key=0, min_version=0, max_version=11)
    resp = response_frame(cls[3](error_code=0, api_keys=[key], throttle_time_ms=0))
    assert resp[8] == 0  # error_code high byte right after the correlation id: no tag buffer
    _, response = frames(run(conversation([(req, resp)])))
    assert response.decoded and response.api == "ApiVersions"
    assert decode_body(response, SCHEMAS).api_keys[0].max_version == 11


def test_response_without_request_is_reported():
    (event,) = frames(run(conversation([(b"", response_frame(sample_message(ProduceResponse, 9), 5))])))
    assert isinstance(event, Malformed) and event.correlation_id == 5
    assert "no request" in event.error


def _recompress(batch: bytes, codec: int) -> bytes:
    from kshock.wire.records import _XERIAL
    import cramjam
    import gzip

    raw = batch[61:]
    packed = {1: lambda d: gzip.compress(d), 2: lambda d: bytes(cramjam.snappy.compress_raw(d)),
              3: lambda d: bytes(cramjam.lz4.compress(d)), 4: lambda d: bytes(cramjam.zstd.compress(d))}[codec](raw)
    head = bytearray(batch[:61])
    struct.pack_into("!i", head, 8, 49 + len(packed))
    attrs = struct.unpack_from("!h", head, 21)[0]
    struct.pack_into("!h", head, 21, (attrs & ~0x07) | codec)
    return bytes(head) + packed


@pytest.mark.parametrize("codec,name", [(0, "none"), (1, "gzip"), (2, "snappy"), (3, "lz4"), (4, "zstd")])
def test_records_on_demand_every_codec(codec, name):
    batch = record_batch(3, base_sequence=40)
    if codec:
        batch = _recompress(batch, codec)
    T = ProduceRequest.TopicProduceData
    req = ProduceRequest[9](transactional_id=None, acks=-1, timeout_ms=1000,
                            topic_data=[T(name="t", partition_data=[T.PartitionProduceData(index=2, records=batch)])])
    (event,) = frames(run(conversation([(request_frame(req), b"")])))
    assert event.records == 3
    ((topic, partition, info),) = frame_batches(event, SCHEMAS)
    assert (topic, partition, info.codec, info.record_count, info.producer_id,
            info.producer_epoch, info.base_sequence, info.transactional) == ("t", 2, name, 3, 7, 1, 40, False)
    recs = frame_records(event, SCHEMAS)
    assert [(r.key, r.value, r.headers) for _, _, r in recs] == \
        [(b"k%d" % i, b"v%d" % i, (("h", b"x"),)) for i in range(3)]


def test_legacy_message_sets_count_and_decode():
    from kafka.record.legacy_records import LegacyRecordBatchBuilder

    for magic in (0, 1):
        for compression in (0, 1):
            builder = LegacyRecordBatchBuilder(magic=magic, compression_type=compression, batch_size=1 << 20)
            for i in range(4):
                builder.append(i, timestamp=1000 + i if magic else None, key=None, value=b"m%d" % i)
            data = bytes(builder.build())
            T = ProduceRequest.TopicProduceData
            req = ProduceRequest[2](acks=1, timeout_ms=1000, topic_data=[
                T(name="old", partition_data=[T.PartitionProduceData(index=0, records=data)])])
            (event,) = frames(run(conversation([(request_frame(req), b"")])))
            assert event.records == 4, (magic, compression)
            assert [r.value for _, _, r in frame_records(event, SCHEMAS)] == [b"m%d" % i for i in range(4)]


def test_fetch_response_partial_trailing_batch_is_not_counted():
    batch = record_batch(2)
    R = FetchResponse.FetchableTopicResponse
    P = R.PartitionData
    resp = FetchResponse[11](throttle_time_ms=0, error_code=0, session_id=0, responses=[
        R(topic="t", partitions=[P(partition_index=0, error_code=0, high_watermark=5,
                                   records=batch + batch[:30])])])
    req = request_frame(sample_message(FetchRequest, 11))
    _, response = frames(run(conversation([(req, response_frame(resp))])))
    assert response.records == 2
