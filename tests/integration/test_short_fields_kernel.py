"""A client id that ends its frame — and its packet — still matches: ApiVersions v0-2 requests end
with the client id, and xt_u32 never matches a word read past the packet's end, so the compiler
reads the last word of a field back from its last byte (for ids of 1-3 bytes too, masking the
bytes before it). Held to the kernel's counters and to the emulator, id lengths 1 to 9."""

from __future__ import annotations

import struct
import time

from kafka.protocol.metadata import ApiVersionsRequest, MetadataRequest

from kernel_replay import ip, iptables_counts, namespace_pair, readdress, send_raw
from kshock.conditions import parse_condition
from kshock.rules.compile import compile_rules
from kshock.rules.emulate import Emulator
from kshock.rules.render import render_restore
from kshock.rules.spec import Action, RuleSpec, Target

SENDER, RECEIVER = "198.19.251.1", "198.19.251.2"
FAR = "198.19.250.9"  # forwarded by the receiver onto a veth that leads nowhere
IDS = ["a", "ab", "abc", "abcd", "abcde", "abcdef", "abcdefg", "abcdefgh", "abcdefghi"]


def frame(request, client_id: str, correlation_id: int) -> bytes:
    request.with_header(correlation_id=correlation_id, client_id=client_id)
    return bytes(request.encode(header=True, framed=True))


def segment(payload: bytes, sport: int) -> bytes:
    """One IPv4/TCP segment (ACK|PSH) to the broker's port carrying exactly `payload`."""
    tcp = struct.pack(">HHIIBBHHH", sport, 9092, 1000, 1, 0x50, 0x18, 65535, 0, 0) + payload
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0x4000, 64, 6, 0, bytes(4), bytes(4))
    return readdress(ip + tcp, SENDER, FAR)


def packets() -> list[tuple[str, bytes]]:
    """(client id, packet): every id in ApiVersions v0-3 (v0-2 end with the id) and Metadata v1."""
    out = []
    sport = 40000
    for client_id in IDS + ["b", "xb", "abd", "abce", "zbcdefghi"]:  # near misses of the same lengths
        requests = [ApiVersionsRequest[v]() for v in range(3)] + [
            ApiVersionsRequest[3](client_software_name="kshock-test", client_software_version="1.0"),
            MetadataRequest[1](topics=[])]
        for n, request in enumerate(requests):
            sport += 1
            out.append((client_id, segment(frame(request, client_id, n + 1), sport)))
    return out


def test_client_ids_of_every_length_match_where_the_frame_ends_with_them():
    specs = [RuleSpec(f"id{len(i)}", parse_condition(f'client_id == "{i}"'), Action("drop"),
                      Target(direction="forward")) for i in IDS]
    ruleset = compile_rules(specs, "ids", expires_at="2037-12-31T00:00:00")
    sent = packets()
    emulator = Emulator(ruleset)
    verdicts = [(client_id, emulator.verdict("FORWARD", packet)) for client_id, packet in sent]
    # the emulator: each id's five requests are dropped, the near misses pass
    for client_id in IDS:
        assert [v for c, v in verdicts if c == client_id] == ["DROP"] * 5, client_id
    assert all(v is None for c, v in verdicts if c not in IDS)

    expected = {(chain.name, k): emulator.hits.get((chain.name, k), 0)
                for chain in ruleset.chains for k, _ in enumerate(chain.rules)}
    with namespace_pair("kss", SENDER, RECEIVER, far=FAR) as (sender, receiver):
        ip(receiver, "iptables-restore", "--noflush", input=render_restore(ruleset))
        send_raw(sender, [packet for _, packet in sent], FAR)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and iptables_counts(receiver) != expected:
            time.sleep(0.1)
        assert iptables_counts(receiver) == expected  # the kernel agrees, rule for rule
    assert sum(expected.values()) >= len(IDS) * 5
