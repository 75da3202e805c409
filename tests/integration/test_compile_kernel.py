"""Compiled rule sets load into a real kernel and count what the emulator says they match.

Each rule set is loaded with `iptables-restore --noflush` into an empty namespace (then
`iptables-save` must show its chains); the lab capture's client -> broker packets, re-addressed
to the test's namespaces, are sent through it with a raw socket, and the kernel's per-rule
counters must equal the emulator's hits (conntrack marks included: the two-step client-id rules
and the latch). The packets are *forwarded* by the receiver (target direction: forward) into a
veth that leads nowhere: delivered locally, they would be answered with RSTs (no socket listens), and a RST
resets conntrack's entry — and its mark — where the real broker never sends one.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from kernel_replay import client_packets, iptables_counts, namespace_pair, readdress, send_raw
from kshock.conditions import parse_condition
from kshock.rules.compile import compile_rules
from kshock.rules.emulate import Emulator
from kshock.rules.render import render_restore
from kshock.rules.spec import Action, RuleSpec, Target, Trigger

CAPTURE = Path(__file__).resolve().parents[2] / "captures" / "lab-mixed.pcap"
SENDER, RECEIVER = "198.19.253.1", "198.19.253.2"
FAR = "198.19.252.9"  # routed through the receiver onto a veth that leads nowhere: forwarded, never answered

SPECS = [
    RuleSpec("produce-gzip", parse_condition('api == Produce and client_id == "rdk-gzip"'), Action("reset")),
    RuleSpec("fetch-orders", parse_condition('api == Fetch and topic == "orders" and api_version < 13'),
             Action("drop")),
    RuleSpec("kp-orders", parse_condition('client_id == "kp-orders" and not api == Produce'), Action("drop")),
    RuleSpec("metadata", parse_condition("api == Metadata and correlation_id <= 5"), Action("drop"),
             trigger=Trigger("once-per-connection")),
    RuleSpec("zstd-latch", parse_condition('api == Produce and topic == "metrics-zstd" and api_version < 13'),
             Action("drop"), latch=True),
    RuleSpec("every-3rd-fetch", parse_condition("api == Fetch"), Action("drop"), trigger=Trigger("nth", every=3)),
]


@pytest.fixture
def pair():
    with namespace_pair("ksc", SENDER, RECEIVER, far=FAR) as namespaces:
        yield namespaces


def test_compiled_rules_load_and_kernel_counts_equal_emulator(pair):
    sender, receiver = pair
    specs = [replace(spec, target=Target(direction="forward")) for spec in SPECS]
    ruleset = compile_rules(specs, "cmp", expires_at="2037-12-31T00:00:00")
    before = subprocess.run(["ip", "netns", "exec", receiver, "iptables-save"], capture_output=True, text=True,
                            check=True).stdout
    assert "KSHOCK" not in before
    subprocess.run(["ip", "netns", "exec", receiver, "iptables-restore", "--noflush"], input=render_restore(ruleset),
                   text=True, check=True)
    saved = subprocess.run(["ip", "netns", "exec", receiver, "iptables-save"], capture_output=True, text=True,
                           check=True).stdout
    for name in ruleset.chain_names:
        assert f":{name} - [0:0]" in saved
    assert "-A FORWARD -p tcp -m tcp --dport 9092" in saved

    packets = [readdress(p, SENDER, FAR) for p in client_packets(CAPTURE, skip_syn=True)]
    emulator = Emulator(ruleset)
    for packet in packets:
        emulator.verdict("FORWARD", packet)
    expected = {}
    for chain in ruleset.chains:
        for i, _ in enumerate(chain.rules):
            expected[(chain.name, i)] = emulator.hits.get((chain.name, i), 0)

    send_raw(sender, packets, FAR)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and iptables_counts(receiver) != expected:
        time.sleep(0.1)
    assert iptables_counts(receiver) == expected
    # Not vacuous: every spec's first rule matched something.
    for spec in SPECS:
        hits = sum(n for (chain, i), n in expected.items()
                   if any(r.comment.endswith("/" + spec.name) for r in
                          next(c for c in ruleset.chains if c.name == chain).rules[i:i + 1]))
        assert hits > 0, spec.name


def test_a_dispatched_rule_set_counts_in_the_kernel_what_the_emulator_says(pair):
    """A set long enough for chains.dispatch (a chain per API key behind one jump each): the
    kernel's per-rule counters, sub-chains and dispatch jumps included, equal the emulator's."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
    from test_rules_coverage import many_specs

    sender, receiver = pair
    specs = [replace(spec, target=Target(direction="forward")) for spec in many_specs()]
    from kshock.replay.coverage import learn_topic_ids

    ruleset = compile_rules(specs, "many", expires_at="2037-12-31T00:00:00",
                            topic_ids=learn_topic_ids(CAPTURE, [9092]))
    assert any("-a" in chain.name[len("KSHOCK-many"):] for chain in ruleset.chains)
    subprocess.run(["ip", "netns", "exec", receiver, "iptables-restore", "--noflush"], input=render_restore(ruleset),
                   text=True, check=True)
    packets = [readdress(p, SENDER, FAR) for p in client_packets(CAPTURE, skip_syn=True)]
    emulator = Emulator(ruleset)
    for packet in packets:
        emulator.verdict("FORWARD", packet)
    expected = {(chain.name, i): emulator.hits.get((chain.name, i), 0)
                for chain in ruleset.chains for i, _ in enumerate(chain.rules)}
    send_raw(sender, packets, FAR)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and iptables_counts(receiver) != expected:
        time.sleep(0.1)
    assert iptables_counts(receiver) == expected
    assert sum(n for (chain, _), n in expected.items() if "-a" in chain[len("KSHOCK-many"):]) > 100
