"""The size bound the compiler keeps (kernel.U32_MAX_MATCHES) is the kernel's, measured here: in a
throwaway namespace, a rule of 16 `-m u32` matches loads through iptables-restore without an error
and comes out EMPTY (the chain holds no rule), 15 load; the largest rule the compiler makes (a
490-byte client id, 14 matches, with connmark, statistic, time and comment) loads whole."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from conftest import scratch_namespace

from kshock.conditions import parse_condition
from kshock.rules.compile import compile_rules
from kshock.rules.kernel import U32_MAX_MATCHES, u32_matches
from kshock.rules.render import render_restore
from kshock.rules.spec import Action, RuleSpec, Trigger

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("iptables-restore") is None,
                                reason="needs root and iptables for a network namespace")

TEN_TESTS = " && ".join(["0>>24=0x45"] + [f"32>>26&0x3C@{20 + 4 * i}=0x{i:X}" for i in range(9)])


@pytest.fixture
def namespace():
    with scratch_namespace(f"kslim{os.getpid() % 100000}") as name:
        yield name


def _restore(namespace: str, text: str) -> None:
    subprocess.run(["ip", "netns", "exec", namespace, "iptables-restore", "--noflush"], input=text, text=True,
                   check=True)


def _rules_in(namespace: str, chain: str) -> int:
    saved = subprocess.run(["ip", "netns", "exec", namespace, "iptables-save"], capture_output=True, text=True,
                           check=True).stdout
    return sum(1 for line in saved.splitlines() if line.startswith(f"-A {chain} "))


@pytest.mark.parametrize("matches,kept", [(15, 1), (16, 0)])
def test_the_kernel_keeps_15_u32_matches_and_silently_drops_16(namespace, matches, kept):
    chain = f"KSX-{matches}"
    rule = " ".join(f'-m u32 --u32 "{TEN_TESTS}"' for _ in range(matches))
    _restore(namespace, f"*filter\n:{chain} - [0:0]\n-A {chain} -p tcp {rule} -m comment --comment kshock:x -j DROP\n"
                        "COMMIT\n")
    assert _rules_in(namespace, chain) == kept


def test_the_largest_rules_the_compiler_makes_load_whole(namespace):
    client = "a" * 490
    specs = [RuleSpec("eq", parse_condition(f'api == Produce and client_id == "{client}"'), Action("reset"),
                      trigger=Trigger("probability", probability=0.3), latch=True),
             RuleSpec("ne", parse_condition(f'api == Fetch and client_id != "{client}"'), Action("drop"))]
    ruleset = compile_rules(specs, "big", expires_at="2037-12-31T00:00:00")
    assert max(u32_matches(rule) for chain in ruleset.chains for rule in chain.rules) == U32_MAX_MATCHES
    _restore(namespace, render_restore(ruleset))
    for chain in ruleset.chains:
        assert _rules_in(namespace, chain.name) == len(chain.rules), chain.name
