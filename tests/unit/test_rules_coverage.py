"""The key test: compiled rules, run by the emulator over every packet of the lab captures, hit
what the condition means on the decoded frames — and nothing else.

Intent = request frames the condition matches (`matches` on decoded frames; responses are left
out because a request-field condition compiles to the client -> broker direction). For each
rule: every intent frame whose first byte starts a segment must be hit on the packet carrying
that byte, and no packet may be hit that carries no byte of an intent frame (false packets = 0).
Frames that start mid-segment are counted as `mid_segment` and reported, not required.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import pytest

from kshock.capture.reader import CaptureReader
from kshock.conditions import Matcher, parse_condition
from kshock.replay.listing import open_run
from kshock.rules.compile import compile_rules
from kshock.rules.emulate import Emulator
from kshock.rules.spec import Action, RuleSpec, Target, Trigger
from kshock.wire.model import KafkaFrame

CAPTURES = Path(__file__).resolve().parents[2] / "captures"
PORT = 9092


@dataclass(frozen=True, slots=True)
class Packet:
    number: int
    ip: bytes
    key: tuple  # (src, sport, dst, dport, seq): retransmitted copies share it
    payload_start: bytes
    to_broker: bool


@dataclass(slots=True)
class Capture:
    packets: list[Packet]
    requests: list[KafkaFrame]
    topic_ids: dict[str, bytes]


@lru_cache(maxsize=None)
def load(name: str) -> Capture:
    path = CAPTURES / f"lab-{name}.pcap"
    run = open_run(str(path), [PORT])
    # Requests, and request frames whose body did not decode (they still have a header).
    requests = [ev for ev in run.events() if isinstance(ev, KafkaFrame) and ev.is_request]
    names = getattr(run.sniffer.decoder, "topic_names", {})
    topic_ids = {topic: tid for tid, topic in names.items()}
    packets = []
    reader = CaptureReader(str(path))
    for number, (_, _, raw) in enumerate(reader, start=1):
        if raw[12:14] != b"\x08\x00" or raw[14 + 9] != 6:
            continue
        ip = raw[14:]
        ihl = (ip[0] & 15) * 4
        total = struct.unpack_from(">H", ip, 2)[0]
        ip = ip[:total]
        sport, dport, seq = struct.unpack_from(">HHI", ip, ihl)
        data_at = ihl + (ip[ihl + 12] >> 4) * 4
        packets.append(Packet(number, ip, (ip[12:16], sport, ip[16:20], dport, seq), ip[data_at:data_at + 24],
                              dport == PORT))
    reader.close()
    return Capture(packets, requests, topic_ids)


@dataclass(slots=True)
class Coverage:
    intent_frames: int = 0
    at_boundary: int = 0  # intent frames whose first byte starts a segment
    boundary_hit: int = 0  # ... hit on the packet carrying that first byte
    hit_frames: int = 0  # intent frames with any packet hit
    kernel_packets: int = 0
    false_packets: list[int] = field(default_factory=list)
    missed_boundary: list[int] = field(default_factory=list)  # first packet numbers

    def line(self) -> str:
        return (f"intent {self.intent_frames} (at segment start {self.at_boundary}), boundary hit "
                f"{self.boundary_hit}, any-byte hit {self.hit_frames}, kernel packets {self.kernel_packets}, "
                f"false packets {len(self.false_packets)}")


def coverage(capture: Capture, spec: RuleSpec) -> Coverage:
    ruleset = compile_rules([spec], "cov", expires_at=None, topic_ids=capture.topic_ids)
    matcher = Matcher(spec.condition) if spec.condition is not None else (lambda frame: True)
    by_number = {p.number: p for p in capture.packets}
    intent = [frame for frame in capture.requests if matcher(frame)]
    emulator = Emulator(ruleset)
    hit: set[int] = set()
    for packet in capture.packets:
        builtin = "INPUT" if packet.to_broker else "OUTPUT"
        if emulator.verdict(builtin, packet.ip) is not None:
            hit.add(packet.number)
    hit_keys = {by_number[n].key for n in hit}
    result = Coverage(intent_frames=len(intent), kernel_packets=len(hit))
    intent_keys = set()
    for frame in intent:
        keys = {by_number[n].key for n in frame.packets if n in by_number}
        intent_keys |= keys
        if keys & hit_keys:
            result.hit_frames += 1
        first = by_number.get(frame.packets[0]) if frame.packets else None
        prefix = struct.pack(">i", frame.size) + frame.raw[:16]
        if first is not None and first.payload_start.startswith(prefix[:len(first.payload_start)]) \
                and len(first.payload_start) >= 8:
            result.at_boundary += 1
            if first.key in hit_keys:
                result.boundary_hit += 1
            else:
                result.missed_boundary.append(first.number)
    result.false_packets = sorted(n for n in hit if by_number[n].key not in intent_keys)
    return result


def spec(text: str | None, *, action: str = "drop", latch: bool = False, approximate: bool = False,
         trigger: Trigger = Trigger()) -> RuleSpec:
    condition = parse_condition(text) if text is not None else None
    return RuleSpec("r", condition, Action(action), Target(ports=(PORT,)), latch=latch, approximate=approximate,
                    trigger=trigger)


# (capture, condition): each must have intent frames in that capture.
CASES = [
    ("compression", 'api == Produce'),
    ("compression", 'api == Produce and client_id == "rdk-gzip"'),
    ("compression", 'client_id == "rdk-zstd" and api_version >= 10'),
    ("group", 'api == Fetch and topic == "payments"'),
    ("group", 'api == Produce and topic == "payments"'),
    ("group", 'api in {JoinGroup, SyncGroup} and client_id == "pay-consumer-1"'),
    ("group", 'api == Heartbeat or api == OffsetCommit'),
    ("group", 'not api in {Produce, Fetch, Metadata}'),
    ("group", 'api == Metadata and topic == "payments"'),
    ("group", 'api == ListOffsets and topic == "payments"'),
    ("kafka-python", 'client_id == "kp-orders"'),
    ("kafka-python", 'api == Fetch and topic == "orders"'),
    ("kafka-python", 'api == Produce and topic == "orders" and acks == all'),
    ("kafka-python", 'api == Produce and not transactional_id'),
    ("kafka-python", 'client_id != "kp-orders"'),
    ("mixed", 'api == Produce and client_id == "rdk-gzip"'),
    ("mixed", 'api == Fetch and topic in {"orders", "payments"}'),
    ("mixed", 'api == Produce and topic == "metrics-zstd" and client_id == "rdk-zstd"'),
    ("mixed", 'not client_id == "kp-orders" and api == Produce'),
    ("mixed", 'api == Metadata and correlation_id < 3'),
    ("large", 'api == Produce and topic == "blobs"'),
    ("admin", 'api == CreateTopics or api == DescribeConfigs'),
    ("slow-link", 'api == Produce and client_id == "slow-producer"'),
    ("slow-link", 'api == Produce and topic == "telemetry"'),
]


@pytest.mark.parametrize("capture,text", CASES)
def test_compiled_rules_hit_exactly_the_intended_frames(capture, text):
    result = coverage(load(capture), spec(text))
    assert result.intent_frames > 0, "the case selects nothing in its capture"
    assert result.false_packets == [], result.line()
    assert result.missed_boundary == [], result.line()
    if capture != "slow-link":
        assert result.at_boundary == result.intent_frames, result.line()


def test_slow_link_frames_start_mid_segment_and_the_latch_recovers_them():
    capture = load("slow-link")
    plain = coverage(capture, spec('api == Produce and client_id == "slow-producer"'))
    assert plain.at_boundary < plain.intent_frames  # the rate-limited link packs frames mid-segment
    assert plain.boundary_hit == plain.at_boundary
    latched = coverage(capture, spec('api == Produce and client_id == "slow-producer"', latch=True))
    assert latched.hit_frames == latched.intent_frames
    assert latched.hit_frames > plain.hit_frames


def test_latch_hits_the_rest_of_the_connection_only():
    capture = load("group")
    latched = coverage(capture, spec('api == Fetch and topic == "payments"', latch=True))
    assert latched.hit_frames == latched.intent_frames
    assert latched.false_packets  # later non-Fetch packets of the connection: the point of a latch


@pytest.mark.parametrize("latch", [False, True])
@pytest.mark.parametrize("capture,text", CASES[::3] + [("mixed", 'api == Fetch and topic == "orders"')])
def test_chain_prefilters_change_no_hit(capture, text, latch):
    """The Emulator skips a chain's u32 rules when a packet fails what all of them test
    (emulate.chain_prefilter); without that shortcut every hit and verdict is the same."""
    loaded = load(capture)
    ruleset = compile_rules([spec(text, latch=latch)], "pre", expires_at=None, topic_ids=loaded.topic_ids)
    fast, plain = Emulator(ruleset), Emulator(ruleset)
    plain._prefilters = dict.fromkeys(plain._prefilters)
    for packet in loaded.packets:
        builtin = "INPUT" if packet.to_broker else "OUTPUT"
        assert fast.verdict(builtin, packet.ip) == plain.verdict(builtin, packet.ip)
    assert fast.hits == plain.hits and sum(fast.hits.values()) > 0
    assert any(p is not None for p in fast._prefilters.values()) or len(ruleset.chains[0].rules) < 3


MANY = ['api == Produce and client_id == "rdk-gzip"', 'api == Fetch and topic in {"orders", "payments"}',
        'api == Produce and topic == "metrics-zstd" and client_id == "rdk-zstd"',
        'not client_id == "kp-orders" and api == Produce', "api == Metadata and correlation_id < 3",
        'api == Fetch and client_id == "kp-audit"', 'api == Produce and client_id == "nobody-here"',
        'api == JoinGroup and client_id == "nobody-here"', "api == Metadata and correlation_id == 99999",
        'api == Fetch and topic == "no-such-topic" and api_version < 13']


def many_specs() -> list[RuleSpec]:
    return [RuleSpec(f"m{i}", parse_condition(text), Action(("drop", "reset")[i % 2]), Target(ports=(PORT,)))
            for i, text in enumerate(MANY)]


def test_a_long_chain_sends_each_apis_rules_to_a_chain_of_their_own_and_matches_the_same(monkeypatch):
    """chains.dispatch: rules pinned to one API key move behind one jump per key; every packet
    of lab-mixed meets the same verdict, and every spec's action rules the same hits, as in the
    chain compiled without it."""
    from kshock.rules import chains

    loaded = load("mixed")
    dispatched = compile_rules(many_specs(), "many", expires_at=None, topic_ids=loaded.topic_ids)
    monkeypatch.setattr(chains, "_DISPATCH_CHAIN", 10**6)
    plain = compile_rules(many_specs(), "many", expires_at=None, topic_ids=loaded.topic_ids)
    monkeypatch.undo()
    per_api = [c.name for c in dispatched.chains if "-a" in c.name[len("KSHOCK-many"):]]
    assert len(per_api) >= 2 and len(plain.chains) == 1, [c.name for c in dispatched.chains]
    main = dispatched.chains[0]
    assert len(main.rules) < len(plain.chains[0].rules)  # the Produce packets' walk is shorter
    fast, slow = Emulator(dispatched), Emulator(plain)
    for packet in loaded.packets:
        builtin = "INPUT" if packet.to_broker else "OUTPUT"
        assert fast.verdict(builtin, packet.ip) == slow.verdict(builtin, packet.ip), packet.number

    def per_spec(ruleset, emulator):
        totals: dict[str, int] = {}
        for chain in ruleset.chains:
            for index, rule in enumerate(chain.rules):
                if rule.target in ("DROP", "REJECT"):
                    name = rule.comment.split("/")[-1]
                    totals[name] = totals.get(name, 0) + emulator.hits.get((chain.name, index), 0)
        return totals

    assert per_spec(dispatched, fast) == per_spec(plain, slow)
    assert sum(per_spec(plain, slow).values()) > 100


@pytest.mark.parametrize(("n", "text"), [(1, "1st"), (2, "2nd"), (3, "3rd"), (4, "4th"), (11, "11th"), (12, "12th"),
                                         (13, "13th"), (21, "21st"), (102, "102nd"), (111, "111th")])
def test_ordinals_read_as_english(n, text):
    from kshock.rules.coverage import ordinal

    assert ordinal(n) == text
