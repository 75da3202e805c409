"""The emulator's u32 and string semantics, and its compiled u32 programs equal the reference."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from kshock.rules.emulate import compile_u32, parse_u32, string_matches, u32_matches

numbers = st.integers(min_value=0, max_value=64)
ops = st.lists(st.tuples(st.sampled_from(["&", "<<", ">>", "@"]), st.integers(min_value=0, max_value=70)), max_size=4)
ranges = st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)).map(sorted), min_size=1, max_size=3)


def _text(tests) -> str:
    parts = []
    for first, test_ops, test_ranges in tests:
        location = str(first) + "".join(f"{op}{n}" for op, n in test_ops)
        parts.append(location + "=" + ",".join(f"{lo}:{hi}" for lo, hi in test_ranges))
    return " && ".join(parts)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(numbers, ops, ranges), min_size=1, max_size=3), st.binary(max_size=120))
def test_compiled_u32_equals_the_reference(tests, packet):
    program = parse_u32(_text(tests))
    assert compile_u32(program)(packet) == u32_matches(program, packet)


# kshock's tests start by hopping over the IP header (0>>22&0x3C@...) and the TCP header
# (...>>26&0x3C@...): small masked values, so the hops land inside short packets
header_hop = st.tuples(st.integers(0, 8), st.integers(20, 28), st.sampled_from([0x3C, 0x1C, 0x0F]))
suffix = st.lists(st.tuples(st.sampled_from(["&", ">>", "@"]), st.integers(0, 30)), max_size=3)


@settings(max_examples=500, deadline=None)
@given(header_hop, st.integers(0, 24), st.lists(st.tuples(suffix, ranges), min_size=2, max_size=4),
       st.binary(min_size=40, max_size=120))
def test_tests_sharing_their_hops_decide_as_the_reference(hop, at, suffixes, packet):
    """compile_u32 reuses the position an earlier test's hops reached (the IP and TCP header
    lengths every kshock test starts with): still the reference's decision."""
    first, shift, mask = hop
    common = [(">>", shift), ("&", mask), ("@", at), (">>", shift), ("&", mask), ("@", 4)]
    tests = [(first, common[:3 + 3 * (k % 2)] + suffix_ops, suffix_ranges)
             for k, (suffix_ops, suffix_ranges) in enumerate(suffixes)]
    program = parse_u32(_text(tests))
    assert compile_u32(program)(packet) == u32_matches(program, packet)


def test_u32_reads_past_the_end_are_false():
    packet = bytes(range(20))
    assert u32_matches(parse_u32("16=0x10111213"), packet)
    assert not u32_matches(parse_u32("17=0:0xFFFFFFFF"), packet)  # would read byte 20
    # `@` moves the cursor by the value read: 0x0000000C then read at 12+4.
    at_twelve = struct.pack(">I", 12) + bytes(12) + b"\xAA\xBB\xCC\xDD"
    assert u32_matches(parse_u32("0@4=0xAABBCCDD"), at_twelve)


def test_string_must_lie_wholly_inside_the_window():
    packet = b"0123456789abcdef"
    assert string_matches(b"abc", 10, 13, packet)
    assert not string_matches(b"abc", 10, 12, packet)  # ends past --to
    assert not string_matches(b"abc", 11, 16, packet)  # starts before --from
    assert string_matches(b"ef", 0, 1000, packet)


def test_nth_matches_packet_p_then_every_nth_as_the_kernel_does():
    """Measured in the kernel (iptables and nft alike): `--every 3 --packet 1` matches the packets
    numbered 1, 4, 7, ... (from 0) of those reaching the rule."""
    from kshock.rules.emulate import Emulator
    from kshock.rules.guard import _ipv4_tcp
    from kshock.rules.kernel import Chain, Jump, KernelRule, RuleSet

    rule = KernelRule("DROP", statistic=("nth", "3", "1"))
    ruleset = RuleSet("n", (Chain("KSHOCK-n", (rule,)),), (Jump("INPUT", KernelRule("KSHOCK-n")),))
    emulator = Emulator(ruleset)
    packet = _ipv4_tcp("198.18.0.2", 40000, "198.18.0.1", 9092, 0x18, b"data")
    verdicts = [emulator.verdict("INPUT", packet) for _ in range(8)]
    assert [i for i, v in enumerate(verdicts) if v == "DROP"] == [1, 4, 7]
