"""`kshock replay` with the real compiler, against ground truth that does not come from kshock.

- The intent (how many frames a rule means) comes from the sidecars: the workloads' own logs of
  every request they sent.
- Which packets the kernel acts on, and so which frames are hit, comes from a model of a
  one-packet-at-a-time rule built on independent_reader.read_view (scapy, streams stitched by
  sequence number, frames cut by their length prefixes): a u32 rule on header fields matches
  exactly the packets whose payload begins with an intent frame; a frame is hit when such a
  packet carries any of its bytes; a latch matches every packet toward the broker on the
  connection from the first such packet on; the stall of `match: any` drops every packet toward
  the broker that carries payload or a FIN.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import pytest

from independent_reader import WireView, read_view
from kshock.replay.coverage import load_rule_file, replay
from kshock.rules.rulefile import parse_rule_file

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = ROOT / "captures"
RULES = ROOT / "rules"


@lru_cache(maxsize=None)
def view(capture: str) -> WireView:
    return read_view(str(CAPTURES / f"{capture}.pcap"), 9092)


def sidecar_requests(capture: str) -> list[dict]:
    return json.loads((CAPTURES / f"{capture}.json").read_text())["requests"]


def one_rule(capture: str, text: str):
    (rule,) = replay(CAPTURES / f"{capture}.pcap", parse_rule_file("rules:\n  - name: r\n" + text)).rules
    return rule


def u32_model(capture: str, selects) -> tuple[list, set[int], int]:
    """(intent frames, packets a header rule matches, frames those packets carry)."""
    v = view(capture)
    intent = [f for f in v.frames if f.toward and selects(f)]
    packets = {p.number for p in map(v.starting, intent) if p is not None}
    hit = sum(v.carrying(f, packets) for f in intent)
    return intent, packets, hit


PRODUCE, JOIN_GROUP, SYNC_GROUP = 0, 11, 14
HEADER_RULES = [
    ("block-producer.yaml", "lab-kafka-python", "kp-orders", {"Produce"}),
    ("block-producer.yaml", "lab-mixed", "kp-orders", {"Produce"}),
    ("drop-client.yaml", "lab-compression", "rdk-gzip", None),
    ("drop-client.yaml", "lab-mixed", "rdk-gzip", None),
    ("reset-group-member.yaml", "lab-group", "pay-consumer-1", {"JoinGroup", "SyncGroup"}),
    ("reset-group-member.yaml", "lab-mixed", "pay-consumer-1", {"JoinGroup", "SyncGroup"}),
]
API_KEYS = {"Produce": PRODUCE, "JoinGroup": JOIN_GROUP, "SyncGroup": SYNC_GROUP}


@pytest.mark.parametrize("rule_file, capture, client, apis", HEADER_RULES,
                         ids=[f"{r}-{c}" for r, c, _, _ in HEADER_RULES])
def test_header_rules_hit_the_frames_the_workloads_sent(rule_file, capture, client, apis):
    keys = None if apis is None else {API_KEYS[a] for a in apis}
    logged = sum(1 for r in sidecar_requests(capture)
                 if r["client_id"] == client and (apis is None or r["api"] in apis))
    intent, packets, hit = u32_model(capture, lambda f: f.client_id == client and (keys is None or f.api_key in keys))
    assert len(intent) == logged > 0  # the model reads the same requests the workloads logged
    (rule,) = replay(CAPTURES / f"{capture}.pcap", load_rule_file(RULES / rule_file)).rules
    assert rule.intent_frames == logged
    assert set(rule.kernel_packet_numbers) == packets
    assert (rule.hit_frames, rule.missed_frames, rule.false_packets) == (hit, logged - hit, 0)
    assert hit == logged  # every request of these captures starts a segment


def test_behind_a_rate_limit_a_header_rule_hits_only_frames_that_start_a_packet():
    """lab-slow-link: 168 of 249 requests start mid-segment (README). The plain rule acts on the
    71 packets that begin with one of slow-producer's 239 Produce frames; they carry 112 of them."""
    logged = sum(1 for r in sidecar_requests("lab-slow-link") if r["client_id"] == "slow-producer"
                 and r["api"] == "Produce")
    intent, packets, hit = u32_model("lab-slow-link", lambda f: f.client_id == "slow-producer" and f.api_key == PRODUCE)
    assert len(intent) == logged == 239
    assert (len(packets), hit) == (71, 112)  # the model's numbers, also the README's
    rule = one_rule("lab-slow-link", '    match: api == Produce and client_id == "slow-producer"\n    action: drop\n')
    assert (rule.intent_frames, rule.hit_frames, rule.missed_frames, rule.false_packets) == (239, 112, 127, 0)
    assert set(rule.kernel_packet_numbers) == packets


def test_the_latch_covers_the_rest_of_each_connection_from_its_first_match():
    v = view("lab-slow-link")
    intent, packets, _ = u32_model("lab-slow-link", lambda f: f.client_id == "slow-producer" and f.api_key == PRODUCE)
    first: dict[tuple, int] = {}
    for p in v.packets:
        if p.number in packets:
            first[p.conn] = min(first.get(p.conn, p.number), p.number)
    latched = {p.number for p in v.packets if p.toward and p.conn in first and p.number >= first[p.conn]}
    carrying_intent = set().union(*map(v.carriers, intent))
    rule = one_rule("lab-slow-link", '    match: api == Produce and client_id == "slow-producer"\n    action: drop\n'
                                     '    latch: true\n')
    assert set(rule.kernel_packet_numbers) == latched
    assert (rule.intent_frames, rule.hit_frames, rule.missed_frames) == (239, 239, 0)
    assert set(rule.false_packet_numbers) == latched - carrying_intent and rule.false_packets > 0


@pytest.mark.parametrize("capture", ["lab-admin", "lab-slow-link", "lab-kafka-python"])
def test_the_syn_only_stall_drops_payload_and_fins_toward_the_broker(capture):
    v = view(capture)
    dropped = {p.number for p in v.packets if p.toward and (p.length or p.flags & 0x01)}
    bare_fins = {p.number for p in v.packets if p.toward and not p.length and p.flags & 0x01}
    requests = len(sidecar_requests(capture))
    (rule,) = replay(CAPTURES / f"{capture}.pcap", load_rule_file(RULES / "syn-only-handshake.yaml")).rules
    assert set(rule.kernel_packet_numbers) == dropped
    assert (rule.intent_frames, rule.hit_frames, rule.missed_frames) == (requests, requests, 0)
    assert set(rule.false_packet_numbers) == bare_fins  # no handshake packet is ever dropped
    assert not {p.number for p in v.packets if p.flags & 0x02} & set(rule.kernel_packet_numbers)
