"""`render_nft` output loads with `nft -f` into a throwaway namespace and counts, rule by rule,
exactly what the same rule set counts as iptables rules and what the emulator says it matches.

The packets are the client -> broker packets of captures/lab-mixed.pcap, re-addressed to the
test's namespaces and sent with a raw socket (as in test_compile_kernel.py and
test_emulate_kernel.py). Compiled rule sets (connection marks included) are forwarded by the
receiver, so no RST from a closed port resets conntrack's entries; each backend gets its own
fresh namespaces, as a DROP in one would hide packets from the other. The hand-made rule set only
RETURNs, so its nft table and iptables chains sit side by side and see the very same packets.
Namespaces are always deleted, and with them the tables.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from conftest import lab_skip_reason
from kernel_replay import client_packets, iptables_counts, ip, namespace_pair, readdress, send_raw
from kshock.conditions import parse_condition
from kshock.rules.compile import compile_rules
from kshock.rules.emulate import Emulator
from kshock.rules.kernel import Chain, Jump, KernelRule, RuleSet, U32Test
from kshock.rules.render import render_restore
from kshock.rules.render_nft import nft_table, render_nft
from kshock.rules.spec import Action, RuleSpec, Target, Trigger

CAPTURE = Path(__file__).resolve().parents[2] / "captures" / "lab-mixed.pcap"
SENDER, RECEIVER = "198.19.251.1", "198.19.251.2"
FAR = "198.19.250.9"  # routed through the receiver onto a veth that leads nowhere

# Hop-free conditions only: nft cannot step over the client-id to the topics.
SPECS = [
    RuleSpec("produce-gzip", parse_condition('api == Produce and client_id == "rdk-gzip"'), Action("reset")),
    RuleSpec("kp-orders", parse_condition('client_id == "kp-orders" and not api == Produce'), Action("drop")),
    RuleSpec("group", parse_condition("api in {JoinGroup, SyncGroup, Heartbeat}"), Action("drop")),
    RuleSpec("metadata", parse_condition("api == Metadata and correlation_id <= 5"), Action("drop"),
             trigger=Trigger("once-per-connection")),
    RuleSpec("produce-latch", parse_condition("api == Produce and api_version >= 9"), Action("drop"), latch=True),
    RuleSpec("every-3rd-fetch", parse_condition("api == Fetch"), Action("drop"), trigger=Trigger("nth", every=3)),
]


@pytest.fixture(scope="module")
def environment():
    reason = lab_skip_reason()
    if reason:
        pytest.skip(reason)
    for tool in ("nft", "iptables-restore"):
        if subprocess.run(["which", tool], capture_output=True).returncode:
            pytest.skip(f"needs {tool}")


def _nft_load(namespace: str, ruleset: RuleSet, env: dict | None = None) -> None:
    ip(namespace, "nft", "-f", "-", input=render_nft(ruleset), env=env)
    listed = ip(namespace, "nft", "list", "table", *nft_table(ruleset).split()).stdout
    assert f"table {nft_table(ruleset)} {{" in listed
    for name in ruleset.chain_names:
        assert f"\tchain {name} {{" in listed


def _nft_counts(namespace: str, ruleset: RuleSet) -> dict[tuple[str, int], int]:
    listed = json.loads(ip(namespace, "nft", "-j", "list", "table", *nft_table(ruleset).split()).stdout)
    counts, index = {}, {}
    for item in listed["nftables"]:
        rule = item.get("rule")
        if not rule or rule["chain"] not in ruleset.chain_names:
            continue
        chain = rule["chain"]
        index[chain] = index.get(chain, -1) + 1
        counters = [e["counter"]["packets"] for e in rule["expr"] if "counter" in e]
        assert len(counters) == 1, rule
        counts[(chain, index[chain])] = counters[0]
    return counts


def _settled(read, expected=None, timeout_s: float = 5.0):
    """The counters once they stop changing (or reach `expected`)."""
    deadline = time.monotonic() + timeout_s
    last = read()
    while time.monotonic() < deadline and last != expected:
        time.sleep(0.2)
        now = read()
        if expected is None and now == last:
            return now
        last = now
    return last


def _emulated(ruleset: RuleSet, builtin: str, packets: list[bytes]) -> dict[tuple[str, int], int]:
    """The emulator's hits per rule (its `statistic nth` follows the kernel: of the packets that
    reach `--every N --packet P`, those numbered P, P+N, ... from 0 match)."""
    emulator = Emulator(ruleset)
    for packet in packets:
        emulator.verdict(builtin, packet)
    return {(chain.name, i): emulator.hits.get((chain.name, i), 0)
            for chain in ruleset.chains for i in range(len(chain.rules))}


def test_compiled_rule_sets_count_the_same_in_nft_iptables_and_emulator(environment):
    specs = [replace(spec, target=Target(direction="forward")) for spec in SPECS]
    ruleset = compile_rules(specs, "nftcmp", expires_at="2037-12-31T00:00:00")
    packets = [readdress(p, SENDER, FAR) for p in client_packets(CAPTURE, skip_syn=True)]
    assert len(packets) > 1000
    expected = _emulated(ruleset, "FORWARD", packets)

    with namespace_pair("ksn", SENDER, RECEIVER, far=FAR) as (sender, receiver):
        ip(receiver, "iptables-restore", "--noflush", input=render_restore(ruleset))
        send_raw(sender, packets, FAR)
        iptables = _settled(lambda: iptables_counts(receiver, ruleset.table, set(ruleset.chain_names)), expected)

    with namespace_pair("ksn", SENDER, RECEIVER, far=FAR) as (sender, receiver):
        before = ip(receiver, "nft", "list", "ruleset").stdout
        assert "kshock" not in before
        _nft_load(receiver, ruleset)
        _nft_load(receiver, ruleset)  # loading again replaces the table: no rule twice
        send_raw(sender, packets, FAR)
        nft = _settled(lambda: _nft_counts(receiver, ruleset), expected)
        ip(receiver, "nft", "delete", "table", *nft_table(ruleset).split())
        assert "kshock" not in ip(receiver, "nft", "list", "ruleset").stdout

    assert nft == iptables == expected
    # Not vacuous: every spec's rules matched something.
    for spec in SPECS:
        hits = sum(n for (chain, i), n in expected.items()
                   if next(c for c in ruleset.chains if c.name == chain).rules[i].comment.endswith("/" + spec.name))
        assert hits > 0, spec.name


def _hand_rules(now: datetime) -> list[KernelRule]:
    produce = U32Test(4, ((0, 0),), shift=16, field="api_key")
    soon = (now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
    return [
        KernelRule("RETURN", u32=((produce,),)),
        KernelRule("RETURN", u32=((produce, U32Test(4, ((7, 11),), mask=0xFFFF, field="api_version")),)),
        KernelRule("RETURN", u32=((U32Test(12, ((8, 8),), shift=16), U32Test(14, ((0x72646B2D, 0x72646B2D),)),
                                   U32Test(18, ((0x677A6970, 0x677A6970),))),)),  # client_id == "rdk-gzip"
        # A mask with holes and a shift: (word & 0xFF00F0) >> 4 = api_key's low byte << 12 | the
        # version's second nibble; {0..7, 0x1000..0x1007}: Produce or Fetch.
        KernelRule("RETURN", u32=((U32Test(4, ((0x1000, 0x1007), (0, 7)), mask=0xFF00F0, shift=4),),)),
        KernelRule("RETURN", u32=((U32Test(4, ((0, 3),), mask=0xFFFF, shift=2),),)),  # api_version 0..15
        KernelRule("RETURN", u32=((U32Test(0, ((0, 2000), (1500, 3000), (3001, 3001))),),)),  # size <= 3001
        KernelRule("RETURN", u32=((U32Test(4, ((3, 3),), shift=24),),)),  # api_key >> 8 == 3: none
        KernelRule("RETURN", payload_required=True),
        KernelRule("RETURN", tcp_flags=("SYN,RST,ACK,FIN", "SYN")),
        KernelRule("RETURN", tcp_flags=("PSH,ACK", "PSH,ACK")),
        KernelRule("RETURN", destination_port=9092, statistic=("nth", "3", "1")),
        KernelRule("RETURN", destination_port=9092, statistic=("nth", "5", "4")),
        KernelRule("RETURN", datestop=soon),
    ]


def _hand_ruleset(rules: list[KernelRule]) -> RuleSet:
    chains = tuple(Chain(f"KSHOCK-NFT-{i}", (rule,)) for i, rule in enumerate(rules))
    jumps = tuple(Jump("INPUT", KernelRule(chain.name, source=SENDER)) for chain in chains)
    return RuleSet("nfthand", chains, jumps)


def test_hand_made_rules_count_the_same_side_by_side(environment):
    now = datetime.now(timezone.utc)
    rules = _hand_rules(now)
    checked = _hand_ruleset(rules)
    # Outside the emulator's view: time (it ignores --datestop) and chance (it counts candidates).
    past = (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
    coin = KernelRule("RETURN", payload_required=True, statistic=("random", "0.5"))
    ruleset = _hand_ruleset([*rules, KernelRule("RETURN", datestop=past), coin])
    packets = [readdress(p, SENDER, RECEIVER) for p in client_packets(CAPTURE, skip_syn=False)]
    expected = _emulated(checked, "INPUT", packets)

    with namespace_pair("ksn", SENDER, RECEIVER, far=FAR) as (sender, receiver):
        ip(receiver, "iptables-restore", "--noflush", input=render_restore(ruleset))
        # nft reads a quoted date in the loader's time zone; kshock writes UTC epoch seconds, so
        # a loader 14 hours ahead of UTC still keeps the rule of the coming hour alive.
        _nft_load(receiver, ruleset, env={**os.environ, "TZ": "Pacific/Kiritimati"})
        send_raw(sender, packets, RECEIVER)
        iptables = _settled(lambda: iptables_counts(receiver, ruleset.table, set(ruleset.chain_names)))
        nft = _settled(lambda: _nft_counts(receiver, ruleset))

    coin_key = (f"KSHOCK-NFT-{len(rules) + 1}", 0)
    assert {k: n for k, n in nft.items() if k != coin_key} == {k: n for k, n in iptables.items() if k != coin_key}
    assert {key: n for key, n in nft.items() if key in expected} == expected
    # Not vacuous: each rule matched some packets and not all, save two by design.
    none, every = ("KSHOCK-NFT-6", 0), (f"KSHOCK-NFT-{len(rules) - 1}", 0)
    assert all(0 < n < len(packets) for key, n in expected.items() if key not in (none, every)), expected
    assert expected[none] == 0
    assert expected[every] == len(packets)  # the coming hour: every packet
    assert nft[(f"KSHOCK-NFT-{len(rules)}", 0)] == 0  # the hour gone: none
    # A fair coin over n candidates: within 6 standard deviations of n/2 (p ~ 1e-9 to fail).
    candidates = expected[("KSHOCK-NFT-7", 0)]  # the payload-present rule: the coin's candidates
    for counts in (nft, iptables):
        heads = counts[coin_key]
        assert abs(heads - candidates / 2) <= 6 * (candidates / 4) ** 0.5, (heads, candidates)
