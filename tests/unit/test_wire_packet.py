"""packet.py: link layers, IPv4/IPv6 and TCP by hand."""

from __future__ import annotations

import struct

import pytest

from kshock.wire.model import format_addr, format_endpoint
from kshock.wire.packet import parse_packet
from wire_helpers import BROKER, CLIENT, ether, ipv4, ipv6, tcp

SEG = tcp(CLIENT, BROKER, 123, 456, 0x18, b"kafka!")
IP4 = ipv4(CLIENT[0], BROKER[0], SEG)
V6A = bytes.fromhex("20010db8000000000000000000000001")
V6B = bytes.fromhex("20010db8000000000000000000000002")
IP6 = ipv6(V6A, V6B, SEG)


def _sll(ethertype, ip):
    return struct.pack("!HHH8sH", 0, 772, 6, b"\0" * 8, ethertype) + ip


def _sll2(ethertype, ip):
    return struct.pack("!HHIHBB8s", ethertype, 0, 1, 772, 0, 6, b"\0" * 8) + ip


@pytest.mark.parametrize("linktype,raw", [
    (1, ether(IP4)),
    (1, ether(IP4, vlans=[300])),
    (1, ether(IP4, vlans=[10, 20])),  # QinQ
    (1, ether(IP4) + b"\0" * 20),  # Ethernet padding is not payload
    (113, _sll(0x0800, IP4)),
    (276, _sll2(0x0800, IP4)),
    (101, IP4), (12, IP4), (14, IP4), (228, IP4),
    (0, struct.pack("<I", 2) + IP4),
    (0, struct.pack(">I", 2) + IP4),  # null header written on a big-endian machine
    (108, struct.pack(">I", 2) + IP4),
], ids=lambda v: str(v)[:20])
def test_ipv4_under_every_link_layer(linktype, raw):
    seg = parse_packet(linktype, raw)
    assert (seg.src, seg.sport, seg.dst, seg.dport, seg.seq, seg.ack, seg.flags, seg.payload) == \
        (CLIENT[0], CLIENT[1], BROKER[0], BROKER[1], 123, 456, 0x18, b"kafka!")


@pytest.mark.parametrize("linktype,raw", [
    (1, ether(IP6, 0x86DD)), (113, _sll(0x86DD, IP6)), (276, _sll2(0x86DD, IP6)), (101, IP6),
    (0, struct.pack("<I", 30) + IP6), (0, struct.pack("<I", 24) + IP6),
    (1, ether(ipv6(V6A, V6B, SEG, next_header=0, ext=bytes([43, 0]) + b"\0" * 6
                   + bytes([6, 0]) + b"\0" * 6), 0x86DD)),  # hop-by-hop then routing
])
def test_ipv6_and_extension_headers(linktype, raw):
    seg = parse_packet(linktype, raw)
    assert (seg.src, seg.dst, seg.payload) == (V6A, V6B, b"kafka!")
    assert format_endpoint(seg.src, seg.sport) == "[2001:db8::1]:40000"


def test_ipv4_options_are_skipped():
    raw = ether(ipv4(CLIENT[0], BROKER[0], SEG, options=b"\x01\x01\x01\x00"))
    assert parse_packet(1, raw).payload == b"kafka!"


@pytest.mark.parametrize("raw", [
    ether(ipv4(CLIENT[0], BROKER[0], SEG, frag=0x2000)),  # first fragment (MF)
    ether(ipv4(CLIENT[0], BROKER[0], SEG[8:], frag=0x0001)),  # a later fragment
    ether(ipv4(CLIENT[0], BROKER[0], SEG, proto=17)),  # UDP
    ether(IP4, 0x0806),  # ARP
    ether(ipv6(V6A, V6B, SEG, next_header=44, ext=bytes([6, 0, 0, 1]) + b"\0" * 4), 0x86DD),
    ether(IP4)[:30],  # cut short
    b"",
])
def test_not_a_whole_tcp_segment(raw):
    assert parse_packet(1, raw) is None


def test_unknown_linktype_and_garbage_are_none():
    assert parse_packet(147, ether(IP4)) is None
    for n in range(len(ether(IP4))):
        parse_packet(1, ether(IP4)[:n])  # never raises


def test_ipv6_text_follows_rfc5952():
    assert format_addr(bytes(16)) == "::"
    assert format_addr(bytes.fromhex("20010db8000000010000000000000001")) == "2001:db8:0:1::1"
    assert format_addr(bytes.fromhex("fe800000000000000202b3fffe1e8329")) == "fe80::202:b3ff:fe1e:8329"
