"""`kshock replay --kernel`: the emulation agrees with the kernel's own counters on every lab
capture, for every example rule file; the throwaway namespaces are always removed."""

from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path

import pytest

from conftest import lab_skip_reason
from kshock.replay import kernel as replay_kernel
from kshock.replay.coverage import load_rule_file, replay

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = sorted((ROOT / "captures").glob("lab-*.pcap"))
RULE_FILES = sorted((ROOT / "rules").glob("*.yaml"))


def _compiler():
    spec = importlib.util.spec_from_file_location("replay_captures", ROOT / "tests" / "captures" / "test_replay.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.compiler()


@pytest.fixture(scope="module")
def compile_rules():
    reason = lab_skip_reason()
    if reason:
        pytest.skip(reason)
    return _compiler()


def _ours() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.startswith(f"{replay_kernel.PREFIX}-{os.getpid()}-")}


@pytest.mark.parametrize("rule_file", RULE_FILES, ids=lambda p: p.name)
@pytest.mark.parametrize("capture", CAPTURES, ids=lambda p: p.stem)
def test_emulation_equals_kernel(compile_rules, rule_file, capture):
    specs = load_rule_file(rule_file)
    report = replay(capture, specs, compile=compile_rules)
    replay_kernel.check(report, str(capture))
    assert report.kernel["agrees"], report.kernel["summary"]
    for rule in report.rules:
        assert rule.kernel_agrees, rule
    assert _ours() == set()


def test_all_three_hosts(compile_rules):
    """The same rule from the broker's, a client's and a router's point of view."""
    from dataclasses import replace

    capture = ROOT / "captures" / "lab-mixed.pcap"
    (spec,) = load_rule_file(ROOT / "rules" / "block-producer.yaml")
    for direction in ("ingress", "egress", "forward"):
        moved = replace(spec, target=replace(spec.target, direction=direction))
        ruleset = _with_builtin(compile_rules([moved], "dirs"), direction)
        report = replay(capture, [moved], ruleset=ruleset)
        replay_kernel.check(report, str(capture))
        assert report.kernel["agrees"], (direction, report.kernel["summary"])
        assert report.rules[0].kernel_packets > 0
    assert _ours() == set()


def _with_builtin(ruleset, direction):
    """The stand-in compiler only jumps from INPUT; the real one follows the direction."""
    from dataclasses import replace

    builtin = {"ingress": "INPUT", "egress": "OUTPUT", "forward": "FORWARD"}[direction]
    if any(j.builtin == builtin for j in ruleset.jumps):
        return ruleset
    return replace(ruleset, jumps=tuple(replace(j, builtin=builtin) for j in ruleset.jumps))


def test_namespaces_are_removed_on_error(compile_rules, monkeypatch):
    capture = ROOT / "captures" / "lab-admin.pcap"
    specs = load_rule_file(ROOT / "rules" / "syn-only-handshake.yaml")
    report = replay(capture, specs, compile=compile_rules)

    def broken(namespace, ruleset):
        assert len(_ours()) == 2  # the namespaces exist while the run is on
        raise KeyboardInterrupt

    monkeypatch.setattr(replay_kernel, "kernel_counters", broken)
    with pytest.raises(KeyboardInterrupt):
        replay_kernel.check(report, str(capture))
    assert _ours() == set()
