"""The kernel filter of live capture (capture/bpf.py), run by a small classic-BPF interpreter on real and built
packets; the builder is pure."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from kshock.capture import bpf
from kshock.capture.bpf import SNAPLEN, bpf_program, run_bpf
from kshock.capture.reader import CaptureReader
from kshock.errors import UserError

CAPTURES = Path(__file__).resolve().parents[2] / "captures"


def test_every_packet_of_a_lab_capture_passes_on_its_port():
    ethernet = bpf_program({9092})
    other = bpf_program({9093})
    with CaptureReader(CAPTURES / "lab-mixed.pcap") as reader:
        packets = [raw for _, _, raw in reader]
    assert len(packets) == 2636
    assert all(run_bpf(ethernet, raw) == len(raw) for raw in packets)
    assert not any(run_bpf(other, raw) for raw in packets)


def built(*layers) -> bytes:
    packet = layers[0]
    for layer in layers[1:]:
        packet = packet / layer
    return bytes(packet)


@pytest.mark.parametrize("packet, kept", [
    (built(Ether(), IP(), TCP(sport=40000, dport=9092)), True),
    (built(Ether(), IP(), TCP(sport=9093, dport=40000)), True),
    (built(Ether(), IP(options=b"\x01\x01\x01\x00"), TCP(sport=40000, dport=9092)), True),  # 24-byte IP header
    (built(Ether(), IP(), TCP(sport=40000, dport=9094)), False),
    (built(Ether(), IP(), UDP(sport=40000, dport=9092)), False),
    (built(Ether(), IP(frag=100), TCP(sport=40000, dport=9092)), False),  # not the first fragment
    (built(Ether(), IPv6(), TCP(sport=40000, dport=9092)), True),
    (built(Ether(), IPv6(), UDP(sport=40000, dport=9092)), False),
    (built(Ether(type=0x0806), b"\x00" * 28), False),
])
def test_ethernet_filter(packet, kept):
    program = bpf_program({9092, 9093})
    assert run_bpf(program, packet) == (len(packet) if kept else 0)


@pytest.mark.parametrize("packet, kept", [
    (built(IP(), TCP(sport=40000, dport=9092)), True),
    (built(IPv6(), TCP(sport=9092, dport=40000)), True),
    (built(IP(), TCP(sport=40000, dport=80)), False),
    (built(IP(), UDP(sport=9092, dport=9092)), False),
])
def test_cooked_filter_starts_at_the_ip_header(packet, kept):
    assert run_bpf(bpf_program({9092}, ethernet=False), packet) == (len(packet) if kept else 0)


def test_truncated_packets_are_dropped_not_read_past():
    packet = built(Ether(), IP(), TCP(sport=40000, dport=9092))
    program = bpf_program({9092})
    assert run_bpf(program, packet[:30]) == 0


def test_the_program_keeps_whole_packets_and_refuses_bad_ports():
    program = bpf_program({9092})
    assert program[-2] == (0x06, 0, 0, SNAPLEN) and program[-1] == (0x06, 0, 0, 0)
    with pytest.raises(UserError):
        bpf_program(set())
    with pytest.raises(UserError):
        bpf_program({70000})
    with pytest.raises(UserError):  # the jumps are 8-bit
        bpf_program(set(range(1000, 1200)))


def test_the_builder_is_pure():
    """capture/bpf.py builds and interprets programs; attaching one to a socket is live.py's job."""
    tree = ast.parse(Path(bpf.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= {"__future__", "collections.abc", "kshock.errors"}, imported
