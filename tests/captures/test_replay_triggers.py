"""Rules on responses, `loss`, and probability / every-N triggers, replayed on the lab captures
with the real compiler and checked against independent_reader.read_view (scapy, stitched
streams, frames cut by their length prefixes; a response's api and client id come from its
request by correlation id) — never against kshock's own decoder.

What replay promises (kshock/rules/coverage.py, README "kshock replay"): the emulator models
`-m statistic --mode nth` exactly, but counts every candidate of `--mode random` (probability
triggers and `loss`): a coin the kernel tosses is not modelled, so there is no share to hold to
a binomial bound here; what is checked is that every candidate is counted and that the rule
the kernel gets carries the rate. (The kernel's own share is checked in tests/integration.)
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from functools import lru_cache
from pathlib import Path

import pytest

from independent_reader import WireView, read_view
from kshock.replay.coverage import replay
from kshock.rules.rulefile import parse_rule_file

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = ROOT / "captures"
PRODUCE = 0
KP_ORDERS_PRODUCE = '    match: api == Produce and client_id == "kp-orders"\n'


@lru_cache(maxsize=None)
def view(capture: str) -> WireView:
    return read_view(str(CAPTURES / f"{capture}.pcap"), 9092)


def replayed(capture: str, text: str):
    report = replay(CAPTURES / f"{capture}.pcap", parse_rule_file("rules:\n  - name: r\n" + text))
    return report, report.rules[0]


def starting_packets(v: WireView, frames) -> list[int]:
    return sorted({p.number for p in map(v.starting, frames) if p is not None})


# -- rules on responses ----------------------------------------------------------------------

@pytest.mark.parametrize("capture", ["lab-kafka-python", "lab-mixed"])
def test_kind_response_hits_every_response_and_only_the_brokers_payload(capture):
    v = view(capture)
    responses = [f for f in v.frames if not f.toward]
    payload_from_broker = {p.number for p in v.packets if not p.toward and p.length}
    _, rule = replayed(capture, "    match: kind == response\n    action: drop\n")
    assert rule.intent_frames == len(responses) > 0
    assert set(rule.kernel_packet_numbers) == payload_from_broker
    assert (rule.hit_frames, rule.missed_frames, rule.false_packets) == (len(responses), 0, 0)


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed (make setup)")
@pytest.mark.parametrize("capture", ["lab-kafka-python", "lab-mixed"])
def test_tshark_counts_the_same_responses(capture):
    out = subprocess.run(["tshark", "-r", str(CAPTURES / f"{capture}.pcap"), "-d", "tcp.port==9092,kafka",
                          "-Y", "kafka and tcp.srcport == 9092", "-T", "fields", "-E", "occurrence=a",
                          "-E", "aggregator=,", "-e", "kafka.correlation_id"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    tshark_responses = sum(len(line.split(",")) for line in out.splitlines() if line)
    assert tshark_responses == sum(1 for f in view(capture).frames if not f.toward)


def test_responses_of_one_client_are_the_responses_on_its_connections():
    v = view("lab-kafka-python")
    answered = [f for f in v.frames if not f.toward and f.client_id == "kp-orders"]
    conns = {f.conn for f in v.frames if f.toward and f.client_id == "kp-orders"}
    on_its_connections = [f for f in v.frames if not f.toward and f.conn in conns]
    assert len(answered) == len(on_its_connections) > 0
    _, rule = replayed("lab-kafka-python", '    match: kind == response and client_id == "kp-orders"\n'
                                           '    action: drop\n')
    assert rule.intent_frames == len(answered)
    assert set(rule.kernel_packet_numbers) == {p.number for p in v.packets
                                                if not p.toward and p.length and p.conn in conns}
    assert (rule.hit_frames, rule.missed_frames, rule.false_packets) == (len(answered), 0, 0)


@pytest.mark.parametrize("capture", ["lab-kafka-python", "lab-mixed"])
def test_a_response_size_rule_hits_the_large_responses(capture):
    """`kind == response and size > 1000` reads the first 4 payload bytes of each packet from the
    broker as a frame size: it hits every large response that starts a packet, and also matches
    packets inside a large Fetch response whose bytes happen to read as a size over 1000."""
    v = view(capture)
    big = [f for f in v.frames if not f.toward and f.size > 1000]
    reads_large = {p.number for p in v.packets if not p.toward and p.length >= 4
                   and struct.unpack("!i", p.head)[0] > 1000}
    starting = set(starting_packets(v, big))
    assert starting <= reads_large
    hit = sum(v.carrying(f, reads_large) for f in big)
    carried = set().union(*map(v.carriers, big))
    _, rule = replayed(capture, "    match: kind == response and size > 1000\n    action: drop\n")
    assert rule.intent_frames == len(big) > 0
    assert set(rule.kernel_packet_numbers) == reads_large
    assert (rule.hit_frames, rule.missed_frames) == (hit, len(big) - hit)
    assert set(rule.false_packet_numbers) == reads_large - carried


# -- every N ---------------------------------------------------------------------------------

@pytest.mark.parametrize("every", [2, 3, 7])
def test_every_n_acts_on_every_nth_matching_packet_from_the_first(every):
    v = view("lab-kafka-python")
    intent = [f for f in v.frames if f.toward and f.api_key == PRODUCE and f.client_id == "kp-orders"]
    candidates = starting_packets(v, intent)
    assert len(intent) == len(candidates) == 80
    chosen = candidates[::every]  # xt_statistic nth, --packet 0: candidates 0, n, 2n, ...
    hit = sum(v.carrying(f, set(chosen)) for f in intent)
    _, rule = replayed("lab-kafka-python", KP_ORDERS_PRODUCE + f"    action: drop\n    trigger: every {every}\n")
    assert list(rule.kernel_packet_numbers) == chosen
    assert len(chosen) == -(-80 // every)
    assert (rule.intent_frames, rule.hit_frames, rule.missed_frames, rule.false_packets) == \
        (80, hit, 80 - hit, 0)
    assert hit == len(chosen)  # one Produce frame per packet


# -- probability and loss: every candidate counted, the rate in the rule -----------------------

def _random_rates(report) -> set[str]:
    return {rule.statistic[1] for chain in report.ruleset.chains for rule in chain.rules
            if rule.statistic and rule.statistic[0] == "random"}


@pytest.mark.parametrize("text, rate", [
    ("    action: drop\n    trigger: probability 30%\n", "0.3"),
    ("    action: loss 30%\n", "0.3"),
    ("    action: loss 40%\n    trigger: probability 50%\n", "0.2"),
])
def test_random_rules_count_every_candidate_and_carry_the_rate(text, rate):
    v = view("lab-kafka-python")
    intent = [f for f in v.frames if f.toward and f.api_key == PRODUCE and f.client_id == "kp-orders"]
    report, rule = replayed("lab-kafka-python", KP_ORDERS_PRODUCE + text)
    assert list(rule.kernel_packet_numbers) == starting_packets(v, intent)
    assert (rule.intent_frames, rule.hit_frames) == (80, 80)
    assert _random_rates(report) == {rate}


def test_a_probability_trigger_says_its_numbers_are_candidates():
    _, rule = replayed("lab-kafka-python", KP_ORDERS_PRODUCE + "    action: drop\n    trigger: probability 30%\n")
    assert any("probability 0.3" in note and "every candidate" in note for note in rule.notes), rule.notes


# A `loss 30%` rule compiles to `-m statistic --mode random --probability 0.3` like a probability
# trigger, and replay counts every candidate the same way: its note must say so, or a reader takes
# "hit 80 (100.0% of intent)" to mean every frame is dropped, where a real run drops about 30%.
def test_a_loss_rule_says_its_numbers_are_candidates():
    _, rule = replayed("lab-kafka-python", KP_ORDERS_PRODUCE + "    action: loss 30%\n")
    assert any("0.3" in note and "every candidate" in note for note in rule.notes), rule.notes


def test_loss_with_a_probability_trigger_notes_the_product_of_both():
    _, rule = replayed("lab-kafka-python", KP_ORDERS_PRODUCE + "    action: loss 40%\n    trigger: probability 50%\n")
    assert any("probability 0.2;" in note for note in rule.notes), rule.notes
