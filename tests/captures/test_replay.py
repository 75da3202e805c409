"""`kshock replay` on the lab captures, with the real compiler: the intent agrees with the
ground-truth sidecars (the workloads' own request logs), the frames hit and the packets matched
agree with an independent model of a one-packet-at-a-time kernel rule (independent_reader.read_view:
scapy, stitched streams, frame boundaries from length prefixes), JSON and text carry the numbers,
and bad input is one clear line.
"""

from __future__ import annotations

import argparse
import io
import json
from collections import Counter
from pathlib import Path

import pytest

from kshock.errors import UserError
from kshock.replay.coverage import load_rule_file, replay, replay_command

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = ROOT / "captures"
RULES = ROOT / "rules"

# Each example rule file, and the lab captures where its rule has something to act on.
EXAMPLES = {
    "block-producer.yaml": ["lab-kafka-python", "lab-mixed"],
    "reset-group-member.yaml": ["lab-group", "lab-mixed"],
    "stall-fetch-topic.yaml": ["lab-kafka-python", "lab-mixed"],
    "syn-only-handshake.yaml": ["lab-admin", "lab-slow-link"],
    "drop-client.yaml": ["lab-compression", "lab-mixed"],
}
KEYS = {"rule", "intent_frames", "kernel_packets", "hit_frames", "missed_frames", "false_packets",
        "missed_frame_packets", "false_packet_numbers"}


# -- tests ------------------------------------------------------------------------------------

def _truth(capture: str) -> list[dict]:
    return json.loads((CAPTURES / f"{capture}.json").read_text())["requests"]


def _run(rule_file: str, capture: str):
    specs = load_rule_file(RULES / rule_file)
    return replay(CAPTURES / f"{capture}.pcap", specs, rules_file=str(RULES / rule_file))


CASES = [(rule_file, capture) for rule_file, captures in EXAMPLES.items() for capture in captures]


@pytest.mark.parametrize("rule_file, capture", CASES, ids=[f"{r}-{c}" for r, c in CASES])
def test_coverage_numbers_are_consistent(rule_file, capture):
    report = _run(rule_file, capture)
    assert report.packets > 0 and report.emulated_packets > 0 and report.problem is None
    for rule in report.rules:
        assert rule.intent_frames > 0, "the example must have something to act on in this capture"
        # every request of these captures starts its segment (README: 0 mid-segment), so the
        # kernel sees each intent frame whole: a compiler that hits nothing (or half) fails here
        assert (rule.hit_frames, rule.missed_frames) == (rule.intent_frames, 0)
        assert len(rule.missed_frame_packets) == rule.missed_frames
        assert len(rule.false_packet_numbers) == rule.false_packets <= rule.kernel_packets
        assert all(1 <= n <= report.packets for n in rule.missed_frame_packets + rule.false_packet_numbers)
        assert list(rule.false_packet_numbers) == sorted(rule.false_packet_numbers)
        assert sum(n for _, _, n in rule.kernel_rules) >= rule.kernel_packets
        assert rule.kernel_packets > 0


@pytest.mark.parametrize("rule_file, capture, api_names, client", [
    ("block-producer.yaml", "lab-kafka-python", {"Produce"}, "kp-orders"),
    ("block-producer.yaml", "lab-mixed", {"Produce"}, "kp-orders"),
    ("reset-group-member.yaml", "lab-group", {"JoinGroup", "SyncGroup"}, "pay-consumer-1"),
    ("reset-group-member.yaml", "lab-mixed", {"JoinGroup", "SyncGroup"}, "pay-consumer-1"),
    ("drop-client.yaml", "lab-compression", None, "rdk-gzip"),
])
def test_intent_equals_ground_truth(rule_file, capture, api_names, client):
    report = _run(rule_file, capture)
    expected = sum(1 for r in _truth(capture) if r["client_id"] == client and (api_names is None or r["api"] in api_names))
    assert report.rules[0].intent_frames == expected > 0


def test_a_rule_the_kernel_sees_whole_hits_every_frame_and_nothing_else():
    # kafka-python's Produce requests start their segments: the u32 rule sees every one.
    rule = _run("block-producer.yaml", "lab-kafka-python").rules[0]
    assert (rule.intent_frames, rule.hit_frames, rule.missed_frames, rule.false_packets) == (80, 80, 0, 0)
    assert rule.kernel_packets == 80


def test_the_stall_hits_every_request_and_spares_the_handshake():
    report = _run("syn-only-handshake.yaml", "lab-admin")
    rule = report.rules[0]
    requests = len(_truth("lab-admin"))
    assert rule.intent_frames == requests and rule.hit_frames == requests
    # what it also drops is FINs and payload that belongs to no request frame — never a bare handshake packet
    assert rule.false_packets < rule.kernel_packets


def test_latch_is_modelled_across_packets():
    report = _run("stall-fetch-topic.yaml", "lab-kafka-python")
    rule = report.rules[0]
    fetches = sum(1 for r in _truth("lab-kafka-python") if r["api"] == "Fetch")
    assert rule.intent_frames == fetches
    assert rule.hit_frames == fetches
    # the latch acts on the rest of the consumer's connection too: packets outside the intent
    assert rule.false_packets > 0
    assert any("latched" in note for note in rule.notes)


def test_json_has_the_keys_and_integer_counts():
    report = _run("block-producer.yaml", "lab-mixed")
    lines = report.json_lines().splitlines()
    assert len(lines) == len(report.rules)
    entry = json.loads(lines[0])
    assert KEYS <= set(entry)
    for key in ("intent_frames", "kernel_packets", "hit_frames", "missed_frames", "false_packets"):
        assert isinstance(entry[key], int)
    assert entry["missed_frame_packets"] == list(report.rules[0].missed_frame_packets)
    assert entry["rule"] == "block-kp-orders-produce"


def test_text_shows_the_table_and_truncated_lists():
    report = _run("stall-fetch-topic.yaml", "lab-mixed")
    text = report.render_text()
    assert "rule stall-orders-fetch: drop, ingress, every matching packet, latched to the connection" in text
    for label in ("intent frames", "kernel packets", "hit frames", "missed frames", "false packets"):
        assert f"  {label}" in text
    rule = report.rules[0]
    if rule.false_packets > 20:
        assert f"… and {rule.false_packets - 20} more" in text


def test_packet_numbers_are_wiresharks():
    import shutil
    import subprocess

    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed")
    out = subprocess.run(["tshark", "-r", str(CAPTURES / "lab-kafka-python.pcap"), "-d", "tcp.port==9092,kafka",
                          "-Y", 'kafka.api_key == 0 and kafka.client_id == "kp-orders"', "-T", "fields",
                          "-e", "frame.number"], capture_output=True, text=True, check=True).stdout.split()
    # kafka-python's Produce requests each fit one packet: tshark's frame numbers are the packets matched
    rule = _run("block-producer.yaml", "lab-kafka-python").rules[0]
    assert sorted(int(n) for n in out) == list(rule.kernel_packet_numbers)


def _args(**overrides) -> argparse.Namespace:
    values = {"file": str(CAPTURES / "lab-admin.pcap"), "rules": str(RULES / "syn-only-handshake.yaml"),
              "port": None, "json": False, "kernel": False}
    values.update(overrides)
    return argparse.Namespace(**values)


def test_command_text_and_json():
    out = io.StringIO()
    assert replay_command(_args(), out) == 0
    assert "rule syn-only-9092: stall, ingress" in out.getvalue()
    out = io.StringIO()
    assert replay_command(_args(json=True), out) == 0
    assert KEYS <= set(json.loads(out.getvalue().splitlines()[0]))


@pytest.mark.parametrize("overrides, message", [
    ({"file": "/nonexistent.pcap"}, "cannot read /nonexistent.pcap: No such file or directory — check the path and "
                                     "its permissions"),
    ({"file": str(RULES / "drop-client.yaml")}, f"{RULES / 'drop-client.yaml'} is not a pcap or pcapng file — give a "
                                                "capture written by tcpdump, tshark or dumpcap"),
    ({"rules": "/nonexistent.yaml"}, "cannot read /nonexistent.yaml: No such file or directory — check the path and "
                                     "its permissions"),
])
def test_bad_input_is_one_clear_line(overrides, message):
    with pytest.raises(UserError) as caught:
        replay_command(_args(**overrides), io.StringIO())
    assert str(caught.value) == message
    assert caught.value.status == 2


def test_a_damaged_capture_reports_what_it_could_and_fails(tmp_path):
    data = (CAPTURES / "lab-admin.pcap").read_bytes()
    damaged = tmp_path / "damaged.pcap"
    damaged.write_bytes(data[: len(data) // 2] + b"\xff" * 40)
    out = io.StringIO()
    with pytest.raises(UserError) as caught:
        replay_command(_args(file=str(damaged)), out)
    assert str(caught.value).startswith(f"{damaged} is damaged: ")
    assert caught.value.status == 2
    assert "rule syn-only-9092" in out.getvalue()


def test_a_broken_rule_file_is_one_clear_message(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("rules:\n  - name: x\n    match: api == Produce\n    action: dorp\n")
    with pytest.raises(UserError) as caught:
        replay_command(_args(rules=str(broken)), io.StringIO())
    assert str(caught.value) == (f"{broken}:4: action: unknown action 'dorp' — did you mean drop? actions: drop | reset "
                                 "| stall | loss 30% | rate 1mbit | delay 200ms [jitter 20ms] | duplicate 5% | "
                                 "corrupt 1% | reorder 10%")


def test_responses_only_when_the_condition_says_so():
    from kshock.rules.coverage import intent_condition
    from kshock.rules.rulefile import parse_rule_file

    (spec,) = parse_rule_file("rules:\n  - name: r\n    match: kind == response and api == Fetch\n    action: drop\n")
    assert "kind" in str(intent_condition(spec)) and "request" not in str(intent_condition(spec))
    (spec,) = parse_rule_file("rules:\n  - name: r\n    match: api == Fetch\n    action: drop\n")
    assert str(intent_condition(spec)).startswith("kind == request and api == Fetch")


def test_counts_per_api_are_plausible():
    report = _run("drop-client.yaml", "lab-mixed")
    truth = Counter(r["api"] for r in _truth("lab-mixed") if r["client_id"] == "rdk-gzip")
    assert report.rules[0].intent_frames == sum(truth.values())
