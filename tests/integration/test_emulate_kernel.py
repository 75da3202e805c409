"""The rule emulator agrees with the kernel: the same rules, loaded with iptables-restore into a
throwaway namespace, count exactly the packets the emulator says they match.

Packets are the real client -> broker packets of a lab capture, re-addressed to the test's own
namespaces and sent with a raw socket.
"""

from __future__ import annotations

import os
import re
import socket
import struct
import subprocess
import time

import pytest

from conftest import lab_skip_reason
from kshock.capture import CaptureReader
from kshock.rules.emulate import Emulator
from kshock.rules.kernel import Chain, Hop, Jump, KernelRule, RuleSet, StringWindow, U32Test
from kshock.rules.render import render_restore
from pathlib import Path

CAPTURE = Path(__file__).resolve().parents[2] / "captures" / "lab-mixed.pcap"
SENDER, RECEIVER = "198.19.254.1", "198.19.254.2"


def _ip(name: str, *args: str) -> None:
    subprocess.run(["ip", "netns", "exec", name, *args] if name else list(args), check=True, capture_output=True)


@pytest.fixture
def namespace_pair():
    reason = lab_skip_reason()
    if reason:
        pytest.skip(reason)
    a, b = f"kst-{os.getpid()}-a", f"kst-{os.getpid()}-b"
    try:
        for name in (a, b):
            subprocess.run(["ip", "netns", "add", name], check=True)
            _ip(name, "ip", "link", "set", "lo", "up")
        subprocess.run(["ip", "link", "add", "kstemu0", "netns", a, "type", "veth", "peer", "name", "kstemu1",
                        "netns", b], check=True)
        _ip(a, "ip", "addr", "add", f"{SENDER}/24", "dev", "kstemu0")
        _ip(b, "ip", "addr", "add", f"{RECEIVER}/24", "dev", "kstemu1")
        _ip(a, "ip", "link", "set", "kstemu0", "up")
        _ip(b, "ip", "link", "set", "kstemu1", "up")
        yield a, b
    finally:
        for name in (a, b):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


def _client_packets() -> list[bytes]:
    """IPv4 packets from the lab's clients to the broker (Ethernet header stripped)."""
    reader = CaptureReader(str(CAPTURE))
    packets = [raw[14:] for _, _, raw in reader if raw[12:14] == b"\x08\x00" and raw[14 + 9] == 6
               and struct.unpack_from(">H", raw, 14 + (raw[14] & 15) * 4 + 2)[0] == 9092]
    reader.close()
    return packets


def _readdress(packet: bytes) -> bytes:
    return packet[:12] + socket.inet_aton(SENDER) + socket.inet_aton(RECEIVER) + packet[20:]


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


def _kernel_counts(namespace: str) -> dict[str, int]:
    saved = subprocess.run(["ip", "netns", "exec", namespace, "iptables-save", "-c", "-t", "filter"],
                           capture_output=True, text=True, check=True).stdout
    counts = {}
    for line in saved.splitlines():
        found = re.match(r"\[(\d+):\d+\] -A (KSHOCK-EMU-\d+) ", line)
        if found:
            counts[found.group(2)] = int(found.group(1))
    return counts


def test_emulator_counts_equal_kernel_counters(namespace_pair):
    sender, receiver = namespace_pair
    ruleset = _ruleset(_rules())
    subprocess.run(["ip", "netns", "exec", receiver, "iptables-restore", "--noflush"], input=render_restore(ruleset),
                   text=True, check=True)
    packets = [_readdress(p) for p in _client_packets()]
    assert len(packets) > 1000

    emulator = Emulator(ruleset)
    for packet in packets:
        emulator.verdict("INPUT", packet)

    from pyroute2 import netns

    netns.pushns(sender)
    try:
        raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    finally:
        netns.popns()
    with raw:
        for packet in packets:
            raw.sendto(packet, (RECEIVER, 0))
    deadline = time.monotonic() + 5
    expected = {chain.name: emulator.hits.get((chain.name, 0), 0) for chain in ruleset.chains}
    while time.monotonic() < deadline and _kernel_counts(receiver) != expected:
        time.sleep(0.1)
    assert _kernel_counts(receiver) == expected
    # The rules are not vacuous: each matched something, and none matched everything.
    assert all(0 < n < len(packets) for n in expected.values()), expected
