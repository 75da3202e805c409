"""chains: kshock's chain names, the built-in hooks, and per-API dispatch of long chains."""

from __future__ import annotations

from kshock.rules.chains import (
    CHAIN_MAX,
    class_chain,
    dispatch,
    group_chains,
    hooks,
    host_match,
    short_name,
    tc_hook,
    trigger_chain,
)
from kshock.rules.kernel import KernelRule, U32Test


def test_names_fit_iptables_and_long_set_names_are_cut_and_hashed():
    name = short_name("a-rule-set-name-far-too-long")
    assert len(name) == 16 and name.startswith("a-rule-set-")
    assert short_name("orders") == "orders"
    assert group_chains(name, 0) == (f"KSHOCK-{name}", f"KSHOCK-{name}-r")
    assert group_chains(name, 99) == (f"KSHOCK-{name}-g99", f"KSHOCK-{name}-g99r")
    assert all(len(c) <= CHAIN_MAX for c in group_chains(name, 99) + (trigger_chain(name, 9), class_chain(name, 9)))


def test_hooks_follow_the_target_direction():
    assert hooks("ingress", "request") == ("INPUT",) and hooks("ingress", "response") == ("OUTPUT",)
    assert hooks("egress", "request") == ("OUTPUT",) and hooks("forward", "response") == ("FORWARD",)
    assert hooks("both", "request") == ("INPUT", "OUTPUT")
    assert tc_hook("forward") == "FORWARD" and tc_hook("ingress") == "OUTPUT"
    assert host_match("10.0.0.1") == "10.0.0.1" and host_match("10.0.0.1/24") == "10.0.0.0/24"


def _pinned(key: int, target: str = "DROP") -> KernelRule:
    return KernelRule(target, u32=((U32Test(4, ((key, key),), shift=16, field="api_key"),),))


def test_a_short_chain_is_left_alone_and_a_long_one_gets_a_chain_per_api():
    rules = [_pinned(0) for _ in range(3)]
    assert dispatch("KSHOCK-t", rules, None, "t") == (rules, [])
    rules = [_pinned(k % 2) for k in range(17)]
    out, subs = dispatch("KSHOCK-t", rules, None, "t")
    assert [c.name for c in subs] == ["KSHOCK-t-a0", "KSHOCK-t-a1"]
    assert [r.target for r in out] == ["KSHOCK-t-a0", "KSHOCK-t-a1"]
    assert [len(c.rules) for c in subs] == [9, 8]
