"""The rule emulator agrees with the kernel: the same rules, loaded with iptables-restore into a
throwaway namespace, count exactly the packets the emulator says they match.

Packets are the real client -> broker packets of a lab capture, re-addressed to the test's own
namespaces and sent with a raw socket.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from kernel_replay import client_packets, iptables_counts, namespace_pair, readdress, send_raw
from kshock.rules.emulate import Emulator
from kshock.rules.kernel import Chain, Hop, Jump, KernelRule, RuleSet, StringWindow, U32Test
from kshock.rules.render import render_restore

CAPTURE = Path(__file__).resolve().parents[2] / "captures" / "lab-mixed.pcap"
SENDER, RECEIVER = "198.19.254.1", "198.19.254.2"


def _rules() -> list[KernelRule]:
    produce = U32Test(4, ((0, 0),), shift=16, field="api_key")
    return [
        KernelRule("RETURN", u32=((produce,),)),
        KernelRule("RETURN", u32=((produce, U32Test(4, ((7, 11),), mask=0xFFFF, field="api_version")),)),
        KernelRule("RETURN", u32=((U32Test(12, ((8, 8),), shift=16), U32Test(14, ((0x72646B2D, 0x72646B2D),)),
                                   U32Test(18, ((0x677A6970, 0x677A6970),))),)),  # client_id == "rdk-gzip"
        KernelRule("RETURN", strings=(StringWindow(b"\x00\x08rdk-gzip", 52, 142),)),
        KernelRule("RETURN", strings=(StringWindow(b"payments", 40, 400),)),
        # Step over the client-id, then: the flexible header's empty tagged-field byte.
        KernelRule("RETURN", u32=((produce, U32Test(14, ((0, 0),), shift=24, hops=(Hop(12),))),)),
        KernelRule("RETURN", payload_required=True),
        KernelRule("RETURN", tcp_flags=("SYN,RST,ACK,FIN", "SYN")),
        KernelRule("RETURN", destination_port=9092, statistic=("nth", "3", "1")),
    ]


def _ruleset(rules: list[KernelRule]) -> RuleSet:
    chains = tuple(Chain(f"KSHOCK-EMU-{i}", (rule,)) for i, rule in enumerate(rules))
    jumps = tuple(Jump("INPUT", KernelRule(chain.name, source=SENDER)) for chain in chains)
    return RuleSet("emu", chains, jumps)


@pytest.fixture
def pair():
    with namespace_pair("kst", SENDER, RECEIVER) as namespaces:
        yield namespaces


def _kernel_counts(namespace: str) -> dict[str, int]:
    return {chain: n for (chain, _), n in iptables_counts(namespace).items()}


def test_emulator_counts_equal_kernel_counters(pair):
    sender, receiver = pair
    ruleset = _ruleset(_rules())
    subprocess.run(["ip", "netns", "exec", receiver, "iptables-restore", "--noflush"], input=render_restore(ruleset),
                   text=True, check=True)
    packets = [readdress(p, SENDER, RECEIVER) for p in client_packets(CAPTURE, skip_syn=False)]
    assert len(packets) > 1000

    emulator = Emulator(ruleset)
    for packet in packets:
        emulator.verdict("INPUT", packet)

    send_raw(sender, packets, RECEIVER)
    deadline = time.monotonic() + 5
    expected = {chain.name: emulator.hits.get((chain.name, 0), 0) for chain in ruleset.chains}
    while time.monotonic() < deadline and _kernel_counts(receiver) != expected:
        time.sleep(0.1)
    assert _kernel_counts(receiver) == expected
    # The rules are not vacuous: each matched something, and none matched everything.
    assert all(0 < n < len(packets) for n in expected.values()), expected
