"""`kshock replay --kernel`: the emulation agrees with the kernel's own counters on every lab
capture, for every example rule file; the throwaway namespaces are always removed.

Not vacuous: how many packets each rule file's rule acts on in each capture is predicted here,
never from kshock's replay — from the capture's ground-truth sidecar (captures/lab-*.json: the
workloads' own log of every request, with its client id, API and version) for the drop and
reset rules, from the capture's bytes (read with a pcap reader of this file's own) for the
SYN-only handshake, and as a lower bound for the latched Fetch stall (every Fetch of a
kafka-python consumer of `orders`, which fetches with v12, and then the rest of its connection).
The kernel must act on exactly (or, for the latch, at least) that many packets, and on exactly as
many as replay predicted; a pair predicted to act on nothing must count nothing, in every line.
The kernel's counters are read by this test itself — `iptables-save -c` in the replay's
namespace, rules found by their `kshock:<set>/<rule>` comment — not through kshock's parser.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import lab_skip_reason
from kshock.replay import kernel as replay_kernel
from kshock.replay.coverage import load_rule_file, replay

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = sorted((ROOT / "captures").glob("lab-*.pcap"))
RULE_FILES = sorted((ROOT / "rules").glob("*.yaml"))
PORT = 9092
ACTING_TARGETS = {"DROP", "REJECT"}  # what a rule does to a packet it acts on (CONNMARK only marks)


# -- what should act, from the ground truth -------------------------------------------------

def _sidecar(capture: Path) -> dict:
    return json.loads(capture.with_suffix(".json").read_text())


def _requests(capture: Path, client_ids, apis=None, below_version: int | None = None) -> int:
    """Requests in the sidecar's log from these clients (of these APIs, under this version)."""
    return sum(1 for request in _sidecar(capture)["requests"]
               if request["client_id"] in client_ids and (apis is None or request["api"] in apis)
               and (below_version is None or request["api_version"] < below_version))


def _kafka_python_consumers(capture: Path, topic: str) -> set[str]:
    """kafka-python 3 consumers of `topic`: they fetch with Fetch v12, which names topics."""
    return {name for name, client in _sidecar(capture)["clients"].items()
            if client["library"].startswith("kafka-python") and client["consumed"].get(topic)}


# rule file -> (packets its rule acts on in the capture, exact? else a lower bound)
EXPECTED = {
    "block-producer.yaml": lambda c: (_requests(c, {"kp-orders"}, {"Produce"}), True),
    "drop-client.yaml": lambda c: (_requests(c, {"rdk-gzip"}), True),
    "reset-group-member.yaml": lambda c: (_requests(c, {"pay-consumer-1"}, {"JoinGroup", "SyncGroup"}), True),
    "stall-fetch-topic.yaml": lambda c: (_requests(c, _kafka_python_consumers(c, "orders"), {"Fetch"}, 13), False),
    "syn-only-handshake.yaml": lambda c: (_payload_or_fin_to_port(c), True),
}


# -- an independent reading of the capture ---------------------------------------------------

def _pcap_frames(path: Path):
    """(linktype, frame) for each record of a classic pcap file (read here, not by kshock)."""
    data = path.read_bytes()
    magic = data[:4]
    endian = {b"\xd4\xc3\xb2\xa1": "<", b"\x4d\x3c\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">",
              b"\xa1\xb2\x3c\x4d": ">"}[magic]
    linktype = struct.unpack_from(endian + "I", data, 20)[0]
    at = 24
    while at + 16 <= len(data):
        caplen = struct.unpack_from(endian + "I", data, at + 8)[0]
        yield linktype, data[at + 16: at + 16 + caplen]
        at += 16 + caplen


def _payload_or_fin_to_port(path: Path) -> int:
    """IPv4 TCP segments to the Kafka port that carry payload or a FIN: what a stall drops at the
    broker (`match: any`: every such segment, whatever its bytes)."""
    count = 0
    for linktype, frame in _pcap_frames(path):
        assert linktype == 1, "the lab captures are Ethernet"
        if frame[12:14] != b"\x08\x00" or frame[14 + 9] != 6:
            continue
        ip = frame[14:]
        ihl = (ip[0] & 0x0F) * 4
        total = struct.unpack_from(">H", ip, 2)[0]
        tcp = ip[ihl:]
        if struct.unpack_from(">H", tcp, 2)[0] != PORT:
            continue
        payload = total - ihl - (tcp[12] >> 4) * 4
        if payload > 0 or tcp[13] & 0x01:
            count += 1
    return count


# -- an independent reading of the kernel ----------------------------------------------------

@dataclass(frozen=True)
class Line:
    chain: str
    index: int  # its place in the chain
    packets: int
    comment: str
    target: str


def _parse_save(text: str) -> list[Line]:
    """Every `-A` rule line of an `iptables-save -c` text."""
    lines, position = [], {}
    for raw in text.splitlines():
        found = re.match(r"\[(\d+):\d+\] -A (\S+) (.*)", raw)
        if not found:
            continue
        words = shlex.split(found.group(3))
        comment = words[words.index("--comment") + 1] if "--comment" in words else ""
        target = words[words.index("-j") + 1] if "-j" in words else ""
        chain = found.group(2)
        index = position.get(chain, 0)
        position[chain] = index + 1
        lines.append(Line(chain, index, int(found.group(1)), comment, target))
    return lines


def _rule_lines(lines: list[Line], rule: str) -> list[Line]:
    return [line for line in lines if line.comment.startswith("kshock:") and line.comment.endswith("/" + rule)]


# the save binary of the host's iptables backend, read here as a person would (`iptables -V`)
SAVE = "iptables-legacy-save" if "legacy" in subprocess.run(["iptables", "-V"], capture_output=True,
                                                            text=True).stdout else "iptables-save"


@pytest.fixture
def kernel_texts(monkeypatch):
    """namespace -> the last `iptables-save -c -t filter` this test read there itself, read each
    time kshock reads its counters (the last time: after they settled, before the namespaces go)."""
    texts: dict[str, str] = {}
    original = replay_kernel.kernel_counters

    def reading(namespace, ruleset, *rest):
        counters = original(namespace, ruleset, *rest)
        texts[namespace] = subprocess.run(["ip", "netns", "exec", namespace, SAVE, "-c", "-t", "filter"],
                                          capture_output=True, text=True, check=True).stdout
        return counters

    monkeypatch.setattr(replay_kernel, "kernel_counters", reading)
    return texts


def _texts_of(texts: dict[str, str], side: str) -> str:
    """The text read in the namespace playing `side` (client c, broker b, router r)."""
    (text,) = [text for namespace, text in texts.items() if namespace.endswith(f"-{side[0]}")]
    return text


# -- the tests ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def compile_rules():
    reason = lab_skip_reason()
    if reason:
        pytest.skip(reason)
    from kshock.rules.compile import compile_rules

    return lambda specs, name: compile_rules(specs, name, expires_at="2037-12-31T00:00:00")


def _ours() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.startswith(f"{replay_kernel.PREFIX}-{os.getpid()}-")}


def test_the_predictions_name_acting_and_idle_pairs():
    """The table of pairs is not all one way: each rule file acts on some captures, and all but
    the SYN-only handshake leave some capture alone."""
    assert {p.name for p in RULE_FILES} == set(EXPECTED)
    for rule_file in RULE_FILES:
        acting = [c.stem for c in CAPTURES if EXPECTED[rule_file.name](c)[0] > 0]
        assert acting, rule_file.name
        if rule_file.name != "syn-only-handshake.yaml":
            assert len(acting) < len(CAPTURES), rule_file.name


@pytest.mark.parametrize("rule_file", RULE_FILES, ids=lambda p: p.name)
@pytest.mark.parametrize("capture", CAPTURES, ids=lambda p: p.stem)
def test_emulation_equals_kernel(compile_rules, kernel_texts, rule_file, capture):
    specs = load_rule_file(rule_file)
    report = replay(capture, specs, compile=compile_rules)
    replay_kernel.check(report, str(capture))
    assert _ours() == set()
    assert report.kernel["agrees"], report.kernel["summary"]
    lines = _parse_save(_texts_of(kernel_texts, "broker"))
    # every line of kshock's chains and every jump into them, as this test read them, equals the
    # emulation's count for it
    emulated = {(c["chain"], c["index"]): c["emulated"] for c in report.kernel["counters"]}
    ours = [line for line in lines if line.chain.startswith("KSHOCK-")]
    assert ours and {(line.chain, line.index): line.packets for line in ours} == {
        key: n for key, n in emulated.items() if not key[0].startswith("jump:")}
    jumps = [line for line in lines if not line.chain.startswith("KSHOCK-") and line.target.startswith("KSHOCK-")]
    assert jumps
    for builtin in {line.chain for line in jumps}:
        assert [line.packets for line in jumps if line.chain == builtin] == [
            n for (chain, _), n in sorted(emulated.items()) if chain == f"jump:{builtin}"], builtin
    expected, exact = EXPECTED[rule_file.name](capture)
    (rule,) = report.rules  # one rule per example file
    assert rule.kernel_agrees, rule
    mine = _rule_lines(lines, rule.rule)
    acting = [line for line in mine if line.target in ACTING_TARGETS]
    assert [(line.chain, line.index, line.packets) for line in acting] == list(rule.kernel_rules)
    acted = sum(line.packets for line in acting)
    assert acted == rule.kernel_packets, (acted, rule.kernel_packets)
    if exact:
        assert acted == expected, (acted, expected)
    else:
        assert acted >= expected, (acted, expected)
    if expected == 0:
        assert all(line.packets == 0 for line in mine), mine

def test_all_three_hosts(compile_rules, kernel_texts):
    """The same rule from the broker's, a client's and a router's point of view: the same packets
    are acted on wherever the rules are loaded."""
    from dataclasses import replace

    capture = ROOT / "captures" / "lab-mixed.pcap"
    expected, _ = EXPECTED["block-producer.yaml"](capture)
    (spec,) = load_rule_file(ROOT / "rules" / "block-producer.yaml")
    acted_by_view = {}
    for direction, side in (("ingress", "broker"), ("egress", "client"), ("forward", "router")):
        kernel_texts.clear()
        moved = replace(spec, target=replace(spec.target, direction=direction))
        ruleset = compile_rules([moved], "dirs")
        assert {jump.builtin for jump in ruleset.jumps} == {{"ingress": "INPUT", "egress": "OUTPUT",
                                                             "forward": "FORWARD"}[direction]}
        report = replay(capture, [moved], ruleset=ruleset)
        replay_kernel.check(report, str(capture))
        assert report.kernel["agrees"], (direction, report.kernel["summary"])
        mine = _rule_lines(_parse_save(_texts_of(kernel_texts, side)), spec.name)
        acted = sum(line.packets for line in mine if line.target in ACTING_TARGETS)
        assert acted == report.rules[0].kernel_packets == expected > 0, (direction, acted, expected)
        acted_by_view[direction] = acted
    assert len(set(acted_by_view.values())) == 1, acted_by_view
    assert _ours() == set()


def test_namespaces_are_removed_on_error(compile_rules, monkeypatch):
    capture = ROOT / "captures" / "lab-admin.pcap"
    specs = load_rule_file(ROOT / "rules" / "syn-only-handshake.yaml")
    report = replay(capture, specs, compile=compile_rules)

    def broken(namespace, ruleset, *rest):
        assert len(_ours()) == 2  # the namespaces exist while the run is on
        raise KeyboardInterrupt

    monkeypatch.setattr(replay_kernel, "kernel_counters", broken)
    with pytest.raises(KeyboardInterrupt):
        replay_kernel.check(report, str(capture))
    assert _ours() == set()

