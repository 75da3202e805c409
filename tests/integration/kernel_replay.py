"""Shared by the tests that hold rules to the kernel's own counters: throwaway namespaces, a lab
capture's client -> broker packets re-addressed to them and sent with a raw socket, and the
kernel's per-rule counters read back."""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import socket
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

from kshock.capture.reader import CaptureReader

_pairs = itertools.count(1)


def ip(namespace: str, *args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", namespace, *args], check=True, capture_output=True, text=True, **kw)


@contextlib.contextmanager
def namespace_pair(tag: str, sender: str, receiver: str, far: str | None = None) -> Iterator[tuple[str, str]]:
    """A sender and a receiver joined by a veth; always deleted.

    With `far`, the receiver forwards packets for far's /24 onto a second veth that leads
    nowhere: they cross its FORWARD chain and are never answered. Delivered locally they would
    be answered with RSTs (no socket listens), and a RST resets conntrack's entry — and its mark
    — where the real broker never sends one. Only the client's half of each connection is
    replayed, so conntrack is told to be liberal about the window it never saw. Skips the test
    where namespaces cannot be made (not root, tools missing)."""
    import pytest

    from conftest import lab_skip_reason

    reason = lab_skip_reason()
    if reason:
        pytest.skip(reason)
    n = next(_pairs)
    a, b = f"{tag}-{os.getpid()}-{n}a", f"{tag}-{os.getpid()}-{n}b"
    try:
        for name in (a, b):
            subprocess.run(["ip", "netns", "add", name], check=True)
            ip(name, "ip", "link", "set", "lo", "up")
        subprocess.run(["ip", "link", "add", "kr0", "netns", a, "type", "veth", "peer", "name", "kr1", "netns", b],
                       check=True)
        ip(a, "ip", "addr", "add", f"{sender}/24", "dev", "kr0")
        ip(b, "ip", "addr", "add", f"{receiver}/24", "dev", "kr1")
        ip(a, "ip", "link", "set", "kr0", "up")
        ip(b, "ip", "link", "set", "kr1", "up")
        if far is not None:
            far_net = far.rsplit(".", 1)[0] + ".0/24"
            ip(a, "ip", "route", "add", far_net, "via", receiver)
            ip(b, "sysctl", "-qw", "net.ipv4.ip_forward=1")
            ip(b, "sysctl", "-qw", "net.netfilter.nf_conntrack_tcp_be_liberal=1")
            subprocess.run(["ip", "link", "add", "kro0", "netns", b, "type", "veth", "peer", "name", "kro1",
                            "netns", a], check=True)
            ip(b, "ip", "link", "set", "kro0", "up")
            ip(a, "ip", "link", "set", "kro1", "up")
            ip(b, "ip", "route", "add", far_net, "dev", "kro0")
            ip(b, "ip", "neigh", "add", far, "lladdr", "02:00:00:00:00:01", "dev", "kro0", "nud", "permanent")
        yield a, b
    finally:
        for name in (a, b):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert a not in listed and b not in listed


def client_packets(capture: Path, skip_syn: bool, port: int = 9092) -> list[bytes]:
    """The IPv4 packets to `port` in an Ethernet capture, cut to their IP total length. With
    skip_syn, SYNs are left out: without the broker's SYN-ACK conntrack would wait on them,
    while a connection picked up mid-stream is tracked (and can carry a mark)."""
    reader = CaptureReader(str(capture))
    packets = []
    for _, _, raw in reader:
        if raw[12:14] != b"\x08\x00" or raw[14 + 9] != 6:
            continue
        packet = raw[14:]
        ihl = (packet[0] & 15) * 4
        if struct.unpack_from(">H", packet, ihl + 2)[0] == port and not (skip_syn and packet[ihl + 13] & 0x02):
            packets.append(packet[:struct.unpack_from(">H", packet, 2)[0]])
    reader.close()
    return packets


def readdress(packet: bytes, source: str, destination: str) -> bytes:
    """New addresses, and a TCP checksum to match: conntrack drops a segment with a bad
    checksum as INVALID, and a connection mark needs a conntrack entry."""
    from kshock.replay.kernel import fix_tcp_checksum

    return fix_tcp_checksum(packet[:12] + socket.inet_aton(source) + socket.inet_aton(destination) + packet[20:])


def send_raw(namespace: str, packets: list[bytes], destination: str) -> None:
    from kshock.host import netns

    with netns.entered(namespace):
        raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    with raw:
        for packet in packets:
            raw.sendto(packet, (destination, 0))


def iptables_counts(namespace: str, table: str = "filter", chains=None) -> dict[tuple[str, int], int]:
    """(chain, rule index) -> packets, for kshock's chains (or only `chains`)."""
    saved = ip(namespace, "iptables-save", "-c", "-t", table).stdout
    counts, index = {}, {}
    for line in saved.splitlines():
        found = re.match(r"\[(\d+):\d+\] -A (KSHOCK-\S+) ", line)
        if found and (chains is None or found.group(2) in chains):
            chain = found.group(2)
            index[chain] = index.get(chain, -1) + 1
            counts[(chain, index[chain])] = int(found.group(1))
    return counts
