"""Issue 10, section 1: user strings never reach iptables-restore as text (real iptables, real
CLI, throwaway namespaces).

The issue's command used to put `-A INPUT -s 10.88.0.66/32 -j ACCEPT` and a nat table into the
namespace, strip the identity rule of its CONNMARK target, and outlive `revert`. Now the client
id goes in as u32 hex words: the namespace holds kshock's chain and jump only, revert leaves
`iptables-save` exactly as before, and the kernel matches the hostile id byte for byte.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import struct
import subprocess
import time
from collections.abc import Iterator

import pytest
import yaml

from conftest import kshock, scratch_namespace
from kernel_replay import iptables_counts, namespace_pair, readdress, send_raw
from kshock.conditions.parse import quote
from kshock.rules.emulate import Emulator
from kshock.rules.rulefile import parse_rule_file

# The issue's reproduction, as typed in a shell between single quotes.
INJECTION = (r'api == Produce and client_id == "x\nCOMMIT\n*nat\n-A OUTPUT -j ACCEPT\nCOMMIT\n*filter\n'
             r'-I INPUT 1 -s 10.88.0.66 -j ACCEPT\n#"')
# Legal Kafka strings with every kind of byte that used to break the text: quote, line breaks,
# NUL, a tab, a space, Unicode, and restore syntax.
HOSTILE = 'q"\n\x00 é\t*nat\r\n-j ACCEPT #'
SENDER, RECEIVER, FAR = "198.19.251.1", "198.19.251.2", "198.19.250.9"
_names = itertools.count(1)


def _in(namespace: str, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", namespace, *argv], capture_output=True, text=True, timeout=60)


def _saved(namespace: str) -> str:
    """iptables-save without its timestamps and counters."""
    out = _in(namespace, "iptables-save").stdout
    return "\n".join(re.sub(r"\[\d+:\d+\]", "[0:0]", line) for line in out.splitlines() if not line.startswith("#"))


def _tables(namespace: str) -> str:
    return _in(namespace, "nft", "list", "tables").stdout if shutil.which("nft") else ""


@pytest.fixture
def namespace() -> Iterator[str]:
    """An empty network namespace of this test's own; kshock's faults in it and it go afterwards."""
    with scratch_namespace(f"ksinj-{os.getpid()}-{next(_names)}") as name:
        try:
            yield name
        finally:
            kshock("revert", "--all", "--netns", name)
    assert name not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


def _only_kshocks_rules(namespace: str, fault: str) -> list[str]:
    """The namespace's rules, checked to be kshock's chain and jump, each with its dead-man switch."""
    saved = _saved(namespace)
    assert "*nat" not in saved and "10.88.0.66" not in saved and "-j ACCEPT" not in saved
    assert re.findall(r"^\*(\w+)$", saved, re.M) == ["filter"]
    assert "table ip nat" not in _tables(namespace)
    rules = [line for line in saved.splitlines() if line.startswith("-")]
    assert rules
    for line in rules:
        assert re.match(rf"-A (KSHOCK-{fault}|INPUT) ", line), line
        assert line.startswith(f"-A KSHOCK-{fault} ") or line.endswith(f"-j KSHOCK-{fault}"), line
        assert "-m time --datestop " in line and "-j ACCEPT" not in line, line
        assert re.search(r" -j (DROP|CONNMARK --set-xmark 0x[0-9a-f]+/0x[0-9a-f]+|KSHOCK-\S+)$", line), line
    return rules


def test_the_issues_injection_loads_only_kshocks_rules_and_revert_restores_everything(namespace):
    before = _saved(namespace)
    applied = kshock("apply", "--netns", namespace, "--name", "inj1", "--duration", "2m", "--action", "drop",
                     "--match", INJECTION)
    assert applied.returncode == 0, applied.stderr  # a legal client id: it goes in, as hex
    assert "Traceback" not in applied.stderr
    rules = _only_kshocks_rules(namespace, "inj1")
    identity = [line for line in rules if "kshock:inj1/identity:" in line]
    assert identity and all("-j CONNMARK --set-xmark" in line for line in identity)  # keeps its target
    reverted = kshock("revert", "inj1", "--netns", namespace)
    assert reverted.returncode == 0, reverted.stderr
    assert _saved(namespace) == before
    assert "table ip nat" not in _tables(namespace)


@pytest.mark.parametrize("condition", [r'client_id == "a\x00b"', r'client_id == "a\"b"',
                                       r'api == Produce and client_id != "x\"\n\x00y"'],
                         ids=["NUL", "double quote", "all of them, !="])
def test_nul_and_quotes_apply_whole_rules_and_revert_all_restores_everything(namespace, condition):
    before = _saved(namespace)
    applied = kshock("apply", "--netns", namespace, "--name", "odd", "--duration", "2m", "--action", "drop",
                     "--match", condition)
    assert applied.returncode == 0 and "Traceback" not in applied.stderr, applied.stderr
    _only_kshocks_rules(namespace, "odd")  # every rule whole: no line cut by a NUL
    status = kshock("status", "--json")
    assert status.returncode == 0 and '"odd"' in status.stdout
    assert kshock("revert", "--all", "--netns", namespace).returncode == 0
    assert _saved(namespace) == before


def test_a_rule_file_with_hostile_topic_and_client_id_strings(namespace, tmp_path):
    before = _saved(namespace)
    rules = tmp_path / "hostile.yaml"
    rules.write_text(yaml.safe_dump({"rules": [
        {"name": "by-client", "match": f"client_id == {quote(HOSTILE)}", "action": "drop", "duration": "2m"},
        {"name": "by-topic", "match": f"api == Produce and api_version < 13 and topic == {quote(HOSTILE)}",
         "action": "drop", "duration": "2m"}]}, allow_unicode=True))
    applied = kshock("apply", str(rules), "--netns", namespace, "--set-name", "file")
    assert applied.returncode == 0 and "Traceback" not in applied.stderr, applied.stderr
    _only_kshocks_rules(namespace, "file")
    assert kshock("revert", "file", "--netns", namespace).returncode == 0
    assert _saved(namespace) == before


# -- the kernel matches the hostile strings, byte for byte ------------------------------------

def _segment(sport: int, frame: bytes) -> bytes:
    """One TCP segment (ACK|PSH, no SYN: conntrack picks the connection up) from SENDER to FAR."""
    tcp = struct.pack("!HHIIBBHHH", sport, 9092, 1000, 1, 5 << 4, 0x18, 65535, 0, 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40 + len(frame), 0, 0x4000, 64, 6, 0, bytes(4), bytes(4))
    return readdress(ip + tcp + frame, SENDER, FAR)


def _frame(api_key: int, version: int, client: bytes, body: bytes) -> bytes:
    header = struct.pack(">hhih", api_key, version, 7, len(client)) + client
    return struct.pack(">i", len(header) + len(body)) + header + body


def _produce_v7(client: bytes, topic: bytes) -> bytes:
    """Produce v7: null transactional_id, acks -1, timeout, one topic, one partition, records."""
    records = bytes(61)
    body = struct.pack(">hhii", -1, -1, 1000, 1) + struct.pack(">h", len(topic)) + topic
    body += struct.pack(">iii", 1, 0, len(records)) + records
    return _frame(0, 7, client, body)


def test_the_kernel_matches_hostile_client_ids_and_topics_sent_as_hex(tmp_path):
    with namespace_pair("ksx", SENDER, RECEIVER, far=FAR) as (sender, receiver):
        try:
            before = _saved(receiver)
            spec = {"rules": [
                {"name": "client", "match": f"client_id == {quote(HOSTILE)}", "action": "drop",
                 "target": {"direction": "forward"}, "duration": "2m"},
                {"name": "topic", "match": f"api == Produce and api_version < 13 and topic == {quote(HOSTILE)}",
                 "action": "drop", "target": {"direction": "forward"}, "duration": "2m"}]}
            text = yaml.safe_dump(spec, allow_unicode=True)
            (tmp_path / "hex.yaml").write_text(text)
            applied = kshock("apply", str(tmp_path / "hex.yaml"), "--netns", receiver, "--set-name", "hexm")
            assert applied.returncode == 0, applied.stderr
            hostile = HOSTILE.encode()
            packets = [
                _segment(41001, _frame(18, 0, hostile, bytes(16))),       # the hostile client id
                _segment(41002, _frame(18, 0, b"q", bytes(16))),          # a prefix of it
                _segment(41003, _frame(18, 0, hostile[:-1] + b"$", bytes(16))),  # all but its last byte
                _segment(41004, _produce_v7(b"other", hostile)),          # the hostile topic
                _segment(41005, _produce_v7(b"other", hostile[:-1])),     # a different topic
            ]
            send_raw(sender, packets, FAR)
            # the emulator (held to the kernel by the compile tests) says which rule each one hits
            from kshock.rules.compile import compile_rules

            ruleset = compile_rules(parse_rule_file(text, "hex.yaml"), "hexm", expires_at=None)
            emulator = Emulator(ruleset)
            verdicts = [emulator.verdict("FORWARD", packet) for packet in packets]
            assert verdicts == ["DROP", None, None, "DROP", None]
            expected = {key: hits for key, hits in emulator.hits.items() if not key[0].startswith("jump:")}
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and _nonzero(iptables_counts(receiver)) != expected:
                time.sleep(0.1)
            counts = _nonzero(iptables_counts(receiver))
            assert counts == expected
            # by the kernel's own counters: one drop per hostile packet, one identity mark
            hits: dict[str, int] = {}
            for (chain, index), packets in counts.items():
                rule = next(c for c in ruleset.chains if c.name == chain).rules[index]
                what = f"{rule.comment.split('/')[-1].split(':')[0]} -j {rule.target}"
                hits[what] = hits.get(what, 0) + packets
            assert hits == {"identity -j CONNMARK": 1, "client -j DROP": 1, "topic -j DROP": 1}
        finally:
            kshock("revert", "--all", "--netns", receiver)
        assert _saved(receiver) == before


def _nonzero(counts: dict) -> dict:
    return {key: value for key, value in counts.items() if value}
