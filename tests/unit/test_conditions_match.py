"""matches(): semantics on built frames, then the lab captures against their ground-truth sidecars."""

from __future__ import annotations

import collections
import functools
import json
from pathlib import Path

import pytest
from kafka.protocol.producer import ProduceRequest
from wire_helpers import conversation, frames, record_batch, request_frame, run

from kshock.conditions import Matcher, matches, needs_records, parse_condition
from kshock.wire.model import Flow, KafkaFrame, Malformed, Request, Response
from kshock.wire.schema import SchemaTable

CAPTURES = Path(__file__).resolve().parents[2] / "captures"
SCHEMAS = SchemaTable()


def test(text: str, frame: KafkaFrame) -> bool:
    return matches(parse_condition(text), frame, SCHEMAS)


test.__test__ = False  # a helper, not a test


def _frame(cls=Request, **kw) -> KafkaFrame:
    base = dict(ts=1.0, src="10.0.0.2:40000", dst="10.0.0.1:9092", api_key=0, api="Produce",
                api_version=9, correlation_id=7, client_id="shop", topics=("orders", "payments"),
                partitions=(0, 3), records=2,
                flow=Flow(bytes([10, 0, 0, 2]), 40000, bytes([10, 0, 0, 1]), 9092))
    base.update(kw)
    return cls(**base)


# -- semantics on built frames ----------------------------------------------------------------

def test_header_fields_and_kind():
    req = _frame()
    assert test("api == Produce and api == produce and api == 0 and api_version == 9", req)
    assert test('kind == request and correlation_id == 7 and client_id == "shop"', req)
    assert not test("kind == response", req)
    assert test("kind == response", _frame(Response))
    assert test('client_id contains "ho" and client_id matches "^s.o"', req)
    assert test("api_version >= 9 and api_version < 10 and not api_version > 9", req)
    assert test("api in {Fetch, Produce}", req) and not test("api in {Fetch, 3}", req)


def test_multi_valued_fields_match_when_any_value_does():
    req = _frame()
    assert test('topic == "payments"', req) and test('topic == "orders"', req)
    assert test('topic in {"x", "payments"}', req)
    assert test("partition > 2", req) and test("partition < 1", req) and not test("partition > 3", req)
    # != means: the frame has values and none of them equals
    assert not test('topic != "orders"', req)
    assert test('topic != "audit"', req)
    assert test('topic contains "pay" and topic matches "^ord"', req)


def test_a_missing_field_fails_every_test_even_not_equal():
    fetch = _frame(api_key=1, api="Fetch", topics=(), partitions=(), records=None, client_id=None)
    assert not test('topic != "orders"', fetch)
    assert test('not topic == "orders"', fetch)
    assert not test("records != 1", fetch) and not test("records", fetch)
    assert not test('client_id != "x"', fetch)
    assert not test("acks != 1", fetch) and test("not acks", fetch)


def test_client_id_falls_back_to_the_connections():
    kip_1313 = _frame(client_id=None, conn_client_id="svc-a")
    assert test('client_id == "svc-a"', kip_1313)
    assert test('client_id == ""', _frame(client_id="", conn_client_id="svc-a"))


def test_endpoints_hosts_networks_and_ports():
    req = _frame()
    assert test("src.host == 10.0.0.2 and dst.host == 10.0.0.1", req)
    assert test("src.port == 40000 and dst.port == 9092 and src.port > 1024", req)
    assert test("src.host == 10.0.0.0/24 and not dst.host == 10.0.1.0/24", req)
    assert test('src.host == "10.0.0.2"', req)
    assert test("host == 10.0.0.1 and host == 10.0.0.2 and port == 9092 and port == 40000", req)
    assert test("host in {192.168.0.0/16, 10.0.0.1}", req)
    assert not test("host == ::1", req) and not test("host == ::/0", req)
    assert test("dst.host != 10.0.0.2", req)
    no_flow = _frame(flow=None, src="[fe80::1]:5000", dst="[fe80::2]:9092")
    assert test("src.host == fe80::/64 and src.port == 5000 and dst.port == 9092", no_flow)


def test_malformed_frames_match_on_their_header_fields():
    bad = _frame(Malformed, api_key=42, api="DeleteGroups", api_version=99, client_id="x",
                 topics=(), partitions=(), records=None, decoded=False, error="unknown version",
                 raw=b"\x00*\x00c\x00\x00\x00\x07\x00\x01x", direction="request")
    assert test('api == DeleteGroups and api_version == 99 and client_id == "x" and kind == request', bad)
    assert not test('value contains "x"', bad) and not test("acks", bad)
    unknown = _frame(Malformed, api_key=None, api=None, api_version=None, decoded=False, direction="")
    assert not test("kind == request or kind == response or api == 0", unknown)
    assert test("not kind", unknown)


def _produce(version: int, transactional_id: str | None, acks: int, batch: bytes | None = None) -> KafkaFrame:
    T = ProduceRequest.TopicProduceData
    fields = dict(acks=acks, timeout_ms=1000, topic_data=[
        T(name="orders", partition_data=[T.PartitionProduceData(index=1, records=batch or record_batch(3))])])
    if version >= 3:
        fields["transactional_id"] = transactional_id
    (frame,) = frames(run(conversation([(request_frame(ProduceRequest[version](**fields)), b"")])))
    assert frame.decoded
    return frame


@pytest.mark.parametrize("version", [2, 3, 8, 9, 11])
def test_acks_and_transactional_id_from_produce_requests(version):
    plain = _produce(version, None, 1)
    assert test("acks == 1", plain) and not test("acks == all", plain)
    assert not test("transactional_id", plain)
    if version >= 3:
        tx = _produce(version, "tx-orders", -1)
        assert test('acks == all and transactional_id == "tx-orders"', tx)
        assert test('transactional_id matches "^tx-"', tx)


def test_transactional_id_of_transaction_requests():
    from kafka.protocol.producer import AddPartitionsToTxnRequest, EndTxnRequest, InitProducerIdRequest

    init = InitProducerIdRequest[4](transactional_id="tx-a", transaction_timeout_ms=1000,
                                    producer_id=-1, producer_epoch=-1)
    end = EndTxnRequest[3](transactional_id="tx-b", producer_id=1, producer_epoch=0, committed=True)
    cls = AddPartitionsToTxnRequest
    batch = cls[4](transactions=[cls.AddPartitionsToTxnTransaction(
        transactional_id=t, producer_id=1, producer_epoch=0, verify_only=False, topics=[])
        for t in ("tx-c", "tx-d")])
    events = frames(run(conversation([(request_frame(m, i), b"") for i, m in enumerate((init, end, batch))])))
    got = [[t for t in ("tx-a", "tx-b", "tx-c", "tx-d") if test(f'transactional_id == "{t}"', e)] for e in events]
    assert got == [["tx-a"], ["tx-b"], ["tx-c", "tx-d"]]


def test_record_fields_decode_lazily_and_once(monkeypatch):
    import kshock.wire.decode as decode

    calls = []
    real = decode.frame_records
    monkeypatch.setattr(decode, "frame_records", lambda *a: calls.append(1) or real(*a))
    frame = _produce(9, None, 1)
    assert test('key == "k0" and value == "v2" and header == "h" and header["h"] == "x"', frame)
    assert len(calls) == 1
    assert not test('api == Fetch and value contains "v"', frame)
    assert test('api == Produce or value contains "v"', frame)
    assert len(calls) == 1
    assert not test('header["h"] == "y" or header["nope"] or key == "k9"', frame)
    assert needs_records(parse_condition('api == 0 or not header["h"]'))
    assert not needs_records(parse_condition("api == 0 and acks == 1"))


def test_records_that_do_not_parse_are_absent_not_raised():
    frame = _produce(9, None, 1)
    broken = _frame(raw=frame.raw[:-5], api_version=9)
    assert not test('value contains "v" or key or header', broken)
    assert test("not value", broken)


def test_matches_without_schemas_and_matcher_share_one_table():
    frame = _produce(9, "tx", -1)
    cond = parse_condition('transactional_id == "tx" and value == "v1"')
    assert matches(cond, frame)
    matcher = Matcher(cond)
    assert matcher(frame) and matcher(frame)


# -- the lab captures and their ground truth ---------------------------------------------------

@functools.cache
def _decoded(name: str) -> tuple[list[KafkaFrame], dict]:
    from kshock.replay.listing import open_run  # EDGE: reads the file; the test may, the package not

    run_ = open_run(str(CAPTURES / f"lab-{name}.pcap"), [9092])
    events = [e for e in run_.events() if isinstance(e, KafkaFrame)]
    return events, json.loads((CAPTURES / f"lab-{name}.json").read_text())


def count(name: str, text: str) -> int:
    matcher = Matcher(parse_condition(text), SCHEMAS)
    return sum(1 for e in _decoded(name)[0] if matcher(e))


LABS = ["admin", "compression", "group", "kafka-python", "large", "mixed", "slow-link"]


@pytest.mark.parametrize("name", LABS)
def test_every_client_and_api_matches_the_sidecars_requests(name):
    _, side = _decoded(name)
    truth = collections.Counter((r["client_id"], r["api"]) for r in side["requests"])
    got = {(c, a): count(name, f'kind == request and client_id == "{c}" and api == {a}') for c, a in truth}
    assert got == dict(truth)


@pytest.mark.parametrize("name", LABS)
def test_source_hosts_match_the_sidecars_client_addresses(name):
    _, side = _decoded(name)
    truth = collections.Counter(r["ip"] for r in side["requests"])
    assert {ip: count(name, f"kind == request and src.host == {ip}") for ip in truth} == dict(truth)
    assert count(name, "kind == request and dst.port == 9092") == side["requests_total"]


def test_requests_and_responses_both_match_a_bare_api_test():
    _, side = _decoded("compression")
    produce = sum(1 for r in side["requests"] if r["client_id"] == "rdk-gzip" and r["api"] == "Produce")
    assert count("compression", 'api == Produce and client_id == "rdk-gzip" and kind == request') == produce
    assert count("compression", 'api == Produce and client_id == "rdk-gzip"') == 2 * produce


def test_topic_and_kind_on_the_group_capture():
    _, side = _decoded("group")
    produce = side["requests_per_api"]["Produce"]
    assert count("group", 'topic == "payments" and kind == response and api == Produce') == produce
    assert count("group", 'topic == "payments" and kind == request and api == Produce') == produce
    assert count("group", 'api == Fetch and kind == response and topic == "payments"') == \
        side["requests_per_api"]["Fetch"]
    assert count("group", 'topic != "payments" and api != Metadata') == 0  # the broker knows older topics


CODECS = {"rdk-gzip": "gzip", "rdk-snappy": "snappy", "rdk-lz4": "lz4", "rdk-zstd": "zstd"}


@pytest.mark.parametrize("client", sorted(CODECS))
def test_compressed_record_content_is_matched_decompressed(client):
    """What kshock.workloads.records wrote: keys CLIENT-SEQ, headers kshock-client/kshock-seq,
    JSON-ish values naming the client, padded with 'lorem ipsum kafka'."""
    events, side = _decoded("compression")
    produce = sum(1 for r in side["requests"] if r["client_id"] == client and r["api"] == "Produce")
    produced = side["records_produced"][client][f"metrics-{CODECS[client]}"]
    header = f'header["kshock-client"] == "{client}"'
    assert count("compression", f"kind == request and {header}") == produce
    assert count("compression", f'value contains "\\"client\\":\\"{client}\\""') == produce
    keys = ", ".join(f'"{client}-{i}"' for i in range(produced))
    matcher = Matcher(parse_condition(f"key in {{{keys}}}"), SCHEMAS)
    hits = [e for e in events if matcher(e)]
    assert len(hits) == produce and sum(e.records for e in hits) == produced
    assert count("compression", f'key == "{client}-{produced}"') == 0
    assert count("compression", f'header == "kshock-seq" and value matches "^\\{{\\"client\\":\\"{client}\\",'
                                f'\\"seq\\":\\d+,.*\\"}}$"') == produce
    # the bytes on the wire are compressed: the raw frames do not contain the text
    assert not any(f'"client":"{client}"'.encode() in e.raw for e in hits)


def test_fetch_responses_match_on_the_records_they_carry():
    _, side = _decoded("kafka-python")
    carrying = count("kafka-python", "api == Fetch and kind == response and records > 0")
    assert carrying > 0
    assert count("kafka-python", 'api == Fetch and header["kshock-client"] == "kp-orders"') == carrying
    assert count("kafka-python", 'kind == response and key matches "^kp-orders-\\d+$"') == carrying
    matcher = Matcher(parse_condition('kind == response and value contains "kp-orders"'), SCHEMAS)
    fetched = sum(e.records for e in _decoded("kafka-python")[0] if matcher(e))
    assert fetched >= side["clients"]["kp-audit"]["consumed"]["orders"]


@pytest.mark.parametrize("name", LABS)
def test_acks_on_real_produce_requests(name):
    produce = _decoded(name)[1]["requests_per_api"].get("Produce", 0)
    assert count(name, "acks == all") == count(name, "acks") == produce  # every workload asks for all
    assert count(name, "acks == 0 or acks == 1 or transactional_id") == 0
