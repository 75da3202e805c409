"""(link-type, raw bytes) -> TCP Segment, or None for anything that is not a whole TCP segment.

Headers are parsed by hand with struct: this is the hot path, and a general dissector is far
too slow. Ethernet padding is cut by the IP length; IP fragments are ignored (their bytes show
up downstream as a Gap, never as invented data).
"""

from __future__ import annotations

from struct import Struct

from kshock.wire.model import Segment

# pcap LINKTYPE_* values (https://www.tcpdump.org/linktypes.html)
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW_12 = 12  # DLT_RAW on some BSDs
LINKTYPE_RAW_14 = 14  # DLT_RAW on OpenBSD
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108  # OpenBSD loopback: family in network byte order
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

_ETH_IPV4 = 0x0800
_ETH_IPV6 = 0x86DD
_ETH_VLAN = frozenset({0x8100, 0x88A8, 0x9100, 0x9200})
# address families seen in BSD null/loopback headers: AF_INET and the BSDs' AF_INET6 values
_AF_INET = 2
_AF_INET6 = frozenset({10, 24, 28, 30})

_IPV6_EXT = frozenset({0, 43, 60, 135, 139, 140})  # hop-by-hop, routing, dest opts, mobility, HIP, shim6
_IPV6_FRAGMENT = 44
_IPV6_AH = 51

_H = Struct("!H")
_TCP = Struct("!HHIIBB")
_U32_LE = Struct("<I")
_U32_BE = Struct("!I")


def parse_packet(linktype: int, raw: bytes) -> Segment | None:
    """The TCP segment in one captured packet, or None (not TCP, a fragment, truncated, ...)."""
    if linktype == LINKTYPE_ETHERNET:
        if len(raw) < 14:
            return None
        return _from_ethertype(raw, 12)
    if linktype == LINKTYPE_LINUX_SLL:
        if len(raw) < 16:
            return None
        return _from_ethertype(raw, 14)
    if linktype == LINKTYPE_LINUX_SLL2:
        if len(raw) < 20:
            return None
        ethertype = _H.unpack_from(raw, 0)[0]
        return _from_ip_by_ethertype(raw, ethertype, 20)
    if linktype in (LINKTYPE_RAW, LINKTYPE_RAW_12, LINKTYPE_RAW_14, LINKTYPE_IPV4, LINKTYPE_IPV6):
        if not raw:
            return None
        version = raw[0] >> 4
        if version == 4:
            return _from_ipv4(raw, 0)
        if version == 6:
            return _from_ipv6(raw, 0)
        return None
    if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        if len(raw) < 4:
            return None
        if linktype == LINKTYPE_LOOP:
            family = _U32_BE.unpack_from(raw, 0)[0]
        else:
            # host byte order of the capturing machine: accept either
            family = _U32_LE.unpack_from(raw, 0)[0]
            if family > 0xFFFF:
                family = _U32_BE.unpack_from(raw, 0)[0]
        if family == _AF_INET:
            return _from_ipv4(raw, 4)
        if family in _AF_INET6:
            return _from_ipv6(raw, 4)
        return None
    return None


def _from_ethertype(raw: bytes, at: int) -> Segment | None:
    """`at` points at an EtherType field; 802.1Q/802.1ad tags (any depth) are skipped."""
    ethertype = _H.unpack_from(raw, at)[0]
    at += 2
    while ethertype in _ETH_VLAN:
        if len(raw) < at + 4:
            return None
        ethertype = _H.unpack_from(raw, at + 2)[0]
        at += 4
    return _from_ip_by_ethertype(raw, ethertype, at)


def _from_ip_by_ethertype(raw: bytes, ethertype: int, at: int) -> Segment | None:
    if ethertype == _ETH_IPV4:
        return _from_ipv4(raw, at)
    if ethertype == _ETH_IPV6:
        return _from_ipv6(raw, at)
    if ethertype in _ETH_VLAN:
        return _from_ethertype(raw, at - 2)
    return None


def _from_ipv4(raw: bytes, at: int) -> Segment | None:
    if len(raw) < at + 20:
        return None
    vihl = raw[at]
    if vihl >> 4 != 4:
        return None
    ihl = (vihl & 0x0F) * 4
    if ihl < 20 or raw[at + 9] != 6:  # not TCP
        return None
    flags_frag = _H.unpack_from(raw, at + 6)[0]
    if flags_frag & 0x3FFF:  # more-fragments set or a non-zero offset: a fragment
        return None
    total = _H.unpack_from(raw, at + 2)[0]
    end = at + total
    if total == 0 or end > len(raw):  # TSO captures write 0; short captures are cut
        end = len(raw)
    elif total < ihl:
        return None
    return _from_tcp(raw, at + ihl, end, raw[at + 12 : at + 16], raw[at + 16 : at + 20])


def _from_ipv6(raw: bytes, at: int) -> Segment | None:
    if len(raw) < at + 40 or raw[at] >> 4 != 6:
        return None
    payload_len = _H.unpack_from(raw, at + 4)[0]
    next_header = raw[at + 6]
    src = raw[at + 8 : at + 24]
    dst = raw[at + 24 : at + 40]
    end = at + 40 + payload_len
    if payload_len == 0 or end > len(raw):  # jumbogram or cut capture
        end = len(raw)
    pos = at + 40
    while next_header != 6:
        if pos + 8 > end:
            return None
        if next_header in _IPV6_EXT:
            next_header, pos = raw[pos], pos + (raw[pos + 1] + 1) * 8
        elif next_header == _IPV6_AH:
            next_header, pos = raw[pos], pos + (raw[pos + 1] + 2) * 4
        elif next_header == _IPV6_FRAGMENT:
            if _H.unpack_from(raw, pos + 2)[0] & 0xFFF9:  # offset != 0 or more fragments
                return None
            next_header, pos = raw[pos], pos + 8  # an atomic fragment: a whole datagram
        else:
            return None
    return _from_tcp(raw, pos, end, src, dst)


def _from_tcp(raw: bytes, at: int, end: int, src: bytes, dst: bytes) -> Segment | None:
    if end < at + 20:
        return None
    sport, dport, seq, ack, off, flags = _TCP.unpack_from(raw, at)
    data_at = at + (off >> 4) * 4
    if data_at > end or off >> 4 < 5:
        return None
    return Segment(src, sport, dst, dport, seq, ack, flags, raw[data_at:end])
