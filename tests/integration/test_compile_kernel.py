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

import os
import re
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest

from conftest import lab_skip_reason
from kshock.capture import CaptureReader
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


def _ip(name: str, *args: str) -> None:
    subprocess.run(["ip", "netns", "exec", name, *args], check=True, capture_output=True)


@pytest.fixture
def namespace_pair():
    reason = lab_skip_reason()
    if reason:
        pytest.skip(reason)
    a, b = f"ksc-{os.getpid()}-a", f"ksc-{os.getpid()}-b"
    try:
        for name in (a, b):
            subprocess.run(["ip", "netns", "add", name], check=True)
            _ip(name, "ip", "link", "set", "lo", "up")
        subprocess.run(["ip", "link", "add", "kscmp0", "netns", a, "type", "veth", "peer", "name", "kscmp1",
                        "netns", b], check=True)
        _ip(a, "ip", "addr", "add", f"{SENDER}/24", "dev", "kscmp0")
        _ip(b, "ip", "addr", "add", f"{RECEIVER}/24", "dev", "kscmp1")
        _ip(a, "ip", "link", "set", "kscmp0", "up")
        _ip(b, "ip", "link", "set", "kscmp1", "up")
        _ip(a, "ip", "route", "add", "198.19.252.0/24", "via", RECEIVER)
        _ip(b, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        # Out of the receiver on a second veth whose far end (in the sender's namespace, which
        # does not forward) has no address: the packets are dropped there, after the receiver's
        # FORWARD and conntrack confirmation.
        subprocess.run(["ip", "link", "add", "kscout0", "netns", b, "type", "veth", "peer", "name", "kscout1",
                        "netns", a], check=True)
        _ip(b, "ip", "link", "set", "kscout0", "up")
        _ip(a, "ip", "link", "set", "kscout1", "up")
        _ip(b, "ip", "route", "add", "198.19.252.0/24", "dev", "kscout0")
        _ip(b, "ip", "neigh", "add", FAR, "lladdr", "02:00:00:00:00:01", "dev", "kscout0", "nud", "permanent")
        yield a, b
    finally:
        for name in (a, b):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


def _client_packets() -> list[bytes]:
    reader = CaptureReader(str(CAPTURE))
    packets = []
    for _, _, raw in reader:
        if raw[12:14] != b"\x08\x00" or raw[14 + 9] != 6:
            continue
        ip = raw[14:]
        ihl = (ip[0] & 15) * 4
        # SYNs left out: conntrack would wait for the broker's SYN-ACK (never replayed) and call
        # the rest of the connection INVALID; picked up mid-stream, a connection is tracked.
        if struct.unpack_from(">H", ip, ihl + 2)[0] == 9092 and not ip[ihl + 13] & 0x02:
            packets.append(ip[:struct.unpack_from(">H", ip, 2)[0]])
    reader.close()
    return packets


def _readdress(packet: bytes) -> bytes:
    """New addresses, and a TCP checksum to match: conntrack drops a segment with a bad
    checksum as INVALID, and a connection mark needs a conntrack entry."""
    ihl = (packet[0] & 15) * 4
    src, dst = socket.inet_aton(SENDER), socket.inet_aton(FAR)
    tcp = bytearray(packet[ihl:])
    tcp[16:18] = b"\0\0"
    pseudo = src + dst + struct.pack(">BBH", 0, 6, len(tcp))
    data = pseudo + bytes(tcp) + (b"\0" if len(tcp) % 2 else b"")
    total = sum(struct.unpack(f">{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    tcp[16:18] = struct.pack(">H", ~total & 0xFFFF)
    return packet[:12] + src + dst + packet[20:ihl] + bytes(tcp)


def _counts(namespace: str) -> dict[tuple[str, int], int]:
    saved = subprocess.run(["ip", "netns", "exec", namespace, "iptables-save", "-c", "-t", "filter"],
                           capture_output=True, text=True, check=True).stdout
    counts, index = {}, {}
    for line in saved.splitlines():
        found = re.match(r"\[(\d+):\d+\] -A (KSHOCK-\S+) ", line)
        if found:
            chain = found.group(2)
            index[chain] = index.get(chain, -1) + 1
            counts[(chain, index[chain])] = int(found.group(1))
    return counts


def test_compiled_rules_load_and_kernel_counts_equal_emulator(namespace_pair):
    sender, receiver = namespace_pair
    from dataclasses import replace

    specs = [replace(spec, target=Target(direction="forward")) for spec in SPECS]
    ruleset = compile_rules(specs, "cmp", expires_at="2037-12-31T00:00:00")
    before = subprocess.run(["ip", "netns", "exec", receiver, "iptables-save"], capture_output=True, text=True,
                            check=True).stdout
    assert "KSHOCK" not in before
    subprocess.run(["ip", "netns", "exec", receiver, "iptables-restore", "--noflush"], input=render_restore(ruleset),
                   text=True, check=True)
    # Only the client's half of each connection is replayed, so conntrack never sees the broker's
    # window; without this it would call later segments INVALID (no entry, so no mark) where
    # the real two-way connection is fine.
    _ip(receiver, "sysctl", "-qw", "net.netfilter.nf_conntrack_tcp_be_liberal=1")
    saved = subprocess.run(["ip", "netns", "exec", receiver, "iptables-save"], capture_output=True, text=True,
                           check=True).stdout
    for name in ruleset.chain_names:
        assert f":{name} - [0:0]" in saved
    assert "-A FORWARD -p tcp -m tcp --dport 9092" in saved

    packets = [_readdress(p) for p in _client_packets()]
    emulator = Emulator(ruleset)
    for packet in packets:
        emulator.verdict("FORWARD", packet)
    expected = {}
    for chain in ruleset.chains:
        for i, _ in enumerate(chain.rules):
            expected[(chain.name, i)] = emulator.hits.get((chain.name, i), 0)

    from pyroute2 import netns

    netns.pushns(sender)
    try:
        raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    finally:
        netns.popns()
    with raw:
        for packet in packets:
            raw.sendto(packet, (FAR, 0))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _counts(receiver) != expected:
        time.sleep(0.1)
    assert _counts(receiver) == expected
    # Not vacuous: every spec's first rule matched something.
    for spec in SPECS:
        hits = sum(n for (chain, i), n in expected.items()
                   if any(r.comment.endswith("/" + spec.name) for r in
                          next(c for c in ruleset.chains if c.name == chain).rules[i:i + 1]))
        assert hits > 0, spec.name
