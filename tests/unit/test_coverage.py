"""The pure coverage bookkeeping: hits, misses and false packets; retransmissions; which kernel
rule acts for which rule; the IPv4 bytes of a captured packet; the intent's fast path."""

from __future__ import annotations

import struct

from kshock.rules.coverage import (
    Intent,
    RecordingEmulator,
    RuleTally,
    action_rules,
    intent_condition,
    ipv4_packet,
    remembering,
    rule_owner,
    tally_coverage,
    tcp_ports,
)
from kshock.rules.kernel import Chain, Hop, Jump, KernelRule, RuleSet, U32Test
from kshock.rules.rulefile import parse_rule_file
from kshock.wire.model import Flow, Malformed, Request, Response


def _spec(match="api == Produce", extra=""):
    return parse_rule_file(f"rules:\n  - name: r\n    match: {match}\n    action: drop\n{extra}")[0]


def test_hits_misses_and_false_packets():
    tally = RuleTally(_spec(), intent=[(3,), (5, 6), (9, 10, 11)], matched=[6, 7, 20])
    c = tally_coverage(tally, alias={})
    assert (c.intent_frames, c.kernel_packets, c.hit_frames, c.missed_frames, c.false_packets) == (3, 3, 1, 2, 2)
    assert c.missed_frame_packets == (3, 9)
    assert c.false_packet_numbers == (7, 20)
    assert c.kernel_packet_numbers == (6, 7, 20)


def test_a_matched_retransmission_hits_its_frame_and_is_not_false():
    tally = RuleTally(_spec(), intent=[(3,)], matched=[8])
    c = tally_coverage(tally, alias={8: 3})
    assert (c.hit_frames, c.false_packets) == (1, 0)


def test_json_keys_are_integers_and_lists():
    c = tally_coverage(RuleTally(_spec(), intent=[(1,)], matched=[1]), {})
    data = c.as_json()
    assert data["rule"] == "r" and data["intent_frames"] == 1 and data["missed_frame_packets"] == []
    assert "kernel_agrees" not in data


def test_action_rules_follow_the_comment_and_skip_bookkeeping():
    rules = (
        KernelRule("CONNMARK", ("--set-xmark", "0x1/0x1"), comment="kshock:a latch"),
        KernelRule("DROP", comment="kshock:a"),
        KernelRule("REJECT", ("--reject-with", "tcp-reset"), comment="kshock:b"),
        KernelRule("RETURN", comment="kshock:b"),
        KernelRule("KSHOCK-x-2", comment="kshock:b"),
    )
    ruleset = RuleSet("x", (Chain("KSHOCK-x", rules), Chain("KSHOCK-x-2", ())), ())
    assert action_rules(ruleset, ["a", "b"]) == {("KSHOCK-x", 1): "a", ("KSHOCK-x", 2): "b"}


def test_rule_owner_reads_the_first_word_or_a_prefix():
    names = {"block", "block-more"}
    assert rule_owner("kshock:block", names) == "block"
    assert rule_owner("kshock:block-more v9+", names) == "block-more"
    assert rule_owner("kshock:set/block-more", names) == "block-more"
    assert rule_owner("kshock:set/identity client_id == x", names) is None
    assert rule_owner("kshock:set", names) is None
    assert rule_owner("someone else", names) is None


def _ipv4_tcp(payload=b"", flags=0x18, frag=0) -> bytes:
    tcp = struct.pack("!HHIIBBHHH", 50000, 9092, 7, 0, 5 << 4, flags, 65535, 0, 0) + payload
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, frag, 64, 6, 0, bytes([198, 18, 0, 11]),
                       bytes([198, 18, 0, 1])) + tcp


def test_ipv4_packet_cuts_ethernet_padding_and_skips_vlan_tags():
    packet = _ipv4_tcp()
    ether = b"\x02" * 12 + b"\x08\x00" + packet + b"\0" * 6
    assert ipv4_packet(1, ether) == packet
    tagged = b"\x02" * 12 + b"\x81\x00\x00\x05\x08\x00" + packet
    assert ipv4_packet(1, tagged) == packet
    assert ipv4_packet(101, packet) == packet
    assert ipv4_packet(113, b"\0" * 14 + b"\x08\x00" + packet) == packet
    assert ipv4_packet(1, b"\x02" * 12 + b"\x86\xdd" + b"\x60" + b"\0" * 60) is None


def test_tcp_ports_and_fragments():
    assert tcp_ports(_ipv4_tcp(b"abcd")) == (50000, 9092, 7, 4)
    assert tcp_ports(_ipv4_tcp(b"abcd", frag=0x2000)) is None  # more fragments
    assert tcp_ports(_ipv4_tcp(b"abcd", frag=0x0001)) is None  # a later fragment


def test_the_recording_emulator_lists_matches_in_order():
    produce = U32Test(4, ((0, 0),), shift=16)
    ruleset = RuleSet("t", (Chain("KSHOCK-t", (KernelRule("CONNMARK", ("--set-xmark", "0x1/0x1"), u32=((produce,),)),
                                               KernelRule("DROP", connmark=(1, 1)))),),
                      (Jump("INPUT", KernelRule("KSHOCK-t", destination_port=9092)),))
    emulator = RecordingEmulator(ruleset)
    frame = struct.pack("!iHHi", 20, 0, 9, 1) + b"\0\x02ab" + b"\0" * 8
    assert emulator.verdict("INPUT", _ipv4_tcp(frame)) == "DROP"
    assert emulator.matched == [("jump:INPUT", 0), ("KSHOCK-t", 0), ("KSHOCK-t", 1)]
    emulator.matched.clear()
    assert emulator.verdict("INPUT", _ipv4_tcp(b"", flags=0x10)) == "DROP"  # the latch holds
    assert emulator.entered == {"INPUT"}


def test_remembering_keeps_the_u32_text():
    from kshock.rules.render import u32_text

    group = (U32Test(12, ((8, 8),), shift=16, field="client_id length"), U32Test(4, ((0, 0),), shift=16),
             U32Test(14, ((0x72646B2D, 0x72646B2D),), hops=(Hop(12),)))
    ruleset = RuleSet("t", (Chain("KSHOCK-t", (KernelRule("DROP", u32=(group, group[:1])),)),), ())
    copy = remembering(ruleset).chains[0].rules[0]
    assert [u32_text(g) for g in copy.u32] == [u32_text(group), u32_text(group[:1])]


def _frame(cls, sport, dport, api_key=0, **more):
    flow = Flow(bytes([198, 18, 0, 11]), sport, bytes([198, 18, 0, 1]), dport)
    return cls(1.0, f"198.18.0.11:{sport}", f"198.18.0.1:{dport}", api_key, "Produce", 9, 1, "c",
               flow=flow, **more)


def test_the_intent_fast_path_equals_the_condition():
    from kshock.conditions import Matcher

    frames = [_frame(Request, 50000, 9092), _frame(Response, 9092, 50000), _frame(Request, 50000, 9093),
              _frame(Malformed, 50000, 9092, direction="request"), _frame(Malformed, 9092, 50000, direction="response"),
              _frame(Request, 50000, 9092, api_key=1), _frame(Malformed, 50000, 9092)]
    for match, extra in (("api == Produce", ""), ("kind == response", ""), ("any", ""),
                         ("api == Produce", "    target: {ports: [9093], host: 198.18.0.0/24}\n"),
                         ("api == Produce", "    target: {host: 10.0.0.1}\n")):
        spec = _spec(match, extra)
        fast, slow = Intent(spec), Matcher(intent_condition(spec))
        assert [fast(f) for f in frames] == [slow(f) for f in frames], match
