"""`kshock lab traffic`: every scenario runs real clients in the lab and reports what they did."""

from __future__ import annotations

import json

import pytest

from conftest import kshock


def _traffic(lab, scenario: str, *extra: str) -> dict:
    result = lab.kshock("traffic", "--scenario", scenario, "--json", *extra, timeout=180)
    assert result.returncode == 0, result.stderr + result.stdout[-2000:]
    truth = json.loads(result.stdout)
    for client_id, info in truth["clients"].items():
        assert info["errors"] == [] and info["exit_code"] == 0, (client_id, info)
    return truth


def _apis(truth: dict, client_id: str) -> set[str]:
    return {r["api"] for r in truth["requests"] if r["client_id"] == client_id}


def test_kafka_python_producer_and_assigned_consumer(lab):
    truth = _traffic(lab, "kafka-python")
    orders, audit = truth["clients"]["kp-orders"], truth["clients"]["kp-audit"]
    assert orders["library"].startswith("kafka-python 3.")
    assert 0 < audit["consumed"]["orders"] <= orders["produced"]["orders"]
    assert {"Produce", "ApiVersions", "Metadata"} <= _apis(truth, "kp-orders")
    assert "Fetch" in _apis(truth, "kp-audit")


def test_compressed_and_idempotent_librdkafka_producers(lab):
    truth = _traffic(lab, "compression", "--duration", "2")
    for codec in ("gzip", "snappy", "lz4", "zstd"):
        info = truth["clients"][f"rdk-{codec}"]
        assert info["library"].startswith("librdkafka")
        assert info["produced"][f"metrics-{codec}"] > 10
    # Idempotent producers ask for a producer id first.
    assert "InitProducerId" in _apis(truth, "rdk-gzip") and "InitProducerId" not in _apis(truth, "rdk-lz4")


def test_consumer_group_members_share_the_topic(lab):
    truth = _traffic(lab, "group")
    produced = truth["clients"]["pay-producer"]["produced"]["payments"]
    consumed = [truth["clients"][f"pay-consumer-{i}"]["consumed"].get("payments", 0) for i in (1, 2)]
    assert all(n > 0 for n in consumed), consumed  # two partitions, one per member
    assert sum(consumed) <= produced
    assert {"JoinGroup", "SyncGroup", "OffsetCommit", "LeaveGroup"} <= _apis(truth, "pay-consumer-1")


def test_admin_calls(lab):
    truth = _traffic(lab, "admin")
    assert {"CreateTopics", "Metadata", "DescribeConfigs"} <= _apis(truth, "ops-admin")


def test_large_messages(lab):
    truth = _traffic(lab, "large", "--duration", "2")
    assert truth["clients"]["bulk-loader"]["produced"]["blobs"] >= 2
    assert truth["clients"]["kp-bulk"]["produced"]["blobs-kp"] >= 2


def test_slow_link_is_shaped_only_while_the_scenario_runs(lab):
    truth = _traffic(lab, "slow-link", "--duration", "2")
    assert truth["clients"]["slow-producer"]["produced"]["telemetry"] > 50
    qdiscs = lab.exec("c1", "tc", "qdisc", "show", "dev", "eth0").stdout
    assert "tbf" not in qdiscs


def test_human_summary_and_errors(lab):
    shown = lab.kshock("traffic", "--scenario", "admin", "--duration", "1", timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("scenario admin: CreateTopics, Metadata and describe calls")
    assert "ops-admin" in shown.stdout and " ok" in shown.stdout
    unknown = lab.kshock("traffic", "--scenario", "nope")
    assert unknown.returncode == 2
    assert unknown.stderr.startswith("kshock: unknown scenario 'nope' — choose one of: admin, compression,")


def test_traffic_needs_a_lab(lab_environment):
    result = kshock("lab", "traffic", "--name", "nosuchlab")
    assert result.returncode == 2
    assert result.stderr.strip() == "kshock: lab nosuchlab is not up — start it with: kshock lab up --name nosuchlab"


@pytest.mark.parametrize("scenario", ["admin"])
def test_record_writes_capture_and_sidecar(lab, tmp_path, scenario):
    out = tmp_path / f"{scenario}.pcap"
    result = lab.kshock("record", scenario, str(out), "--duration", "1", timeout=120)
    assert result.returncode == 0, result.stderr
    truth = json.loads(out.with_suffix(".json").read_text())
    assert truth["scenario"] == scenario and truth["capture"]["packets"] > 10
    assert out.read_bytes()[:4] in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4")  # a pcap file
    assert not list(tmp_path.glob("*.partial"))
