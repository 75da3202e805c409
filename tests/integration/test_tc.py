"""tc faults: an htb class with tbf or netem inside, on a real interface in a throwaway namespace."""

from __future__ import annotations

import os
import subprocess

import pytest

from conftest import scratch_namespace
from kshock.apply.scope import Scope
from kshock.apply.tc import NETEM_MISSING, install, plan_netem, plan_rate, remove, remove_leftovers
from kshock.errors import OperationFailed, UserError


def _qdiscs(namespace: str) -> str:
    return subprocess.run(["ip", "netns", "exec", namespace, "tc", "qdisc", "show", "dev", "kst0"],
                          capture_output=True, text=True, check=True).stdout


@pytest.fixture
def namespace():
    with scratch_namespace(f"kst-{os.getpid()}-tc") as name:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "add", "kst0", "type", "veth", "peer", "name",
                        "kst1"], check=True)
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "kst0", "up"], check=True)
        yield name


def test_rate_fault_installs_htb_class_with_tbf_and_removes_it(namespace):
    scope = Scope(name=namespace)
    entries = install(scope, [plan_rate("kst0", 0x20, 1_000_000)])
    shown = _qdiscs(namespace)
    assert "qdisc htb 4b53: root" in shown and "default 0" in shown
    assert "qdisc tbf 20: parent 4b53:20 rate 1Mbit" in shown
    # A second kshock fault shares the root htb with its own class; the same class twice is refused.
    more = install(scope, [plan_rate("kst0", 0x21, 2_000_000)])
    assert "qdisc tbf 21: parent 4b53:21 rate 2Mbit" in _qdiscs(namespace)
    with pytest.raises(UserError, match="htb class 4b53:21 is already in use on kst0"):
        install(scope, [plan_rate("kst0", 0x21, 2_000_000)])
    assert remove(scope, entries) == ["htb class 4b53:20 on kst0"]
    assert "htb 4b53: root" in _qdiscs(namespace) and "tbf 20:" not in _qdiscs(namespace)
    assert remove(scope, more) == ["htb class 4b53:21 on kst0", "htb 4b53: root on kst0"]
    assert remove(scope, more) == []  # idempotent
    assert _qdiscs(namespace).startswith("qdisc noqueue 0: root")  # the kernel's default is back


def test_leftover_root_from_a_crash_is_found_by_its_handle(namespace):
    scope = Scope(name=namespace)
    install(scope, [plan_rate("kst0", 0x20, 1_000_000)])
    assert remove_leftovers(scope) == ["htb 4b53: on kst0"]
    assert "htb" not in _qdiscs(namespace)


def test_netem_is_detected_and_leaves_nothing_when_missing(namespace):
    scope = Scope(name=namespace)
    plan = plan_netem("kst0", 0x20, delay_ms=200, jitter_ms=20)
    try:
        entries = install(scope, [plan])
    except OperationFailed as error:
        # This machine's kernel has no sch_netem: a clear message, and the htb root rolled back.
        assert error.message == NETEM_MISSING
        assert "modprobe sch_netem" in error.hint
        assert "htb" not in _qdiscs(namespace)
    else:  # a kernel with netem: the fault is really there
        assert "netem" in _qdiscs(namespace) and "delay 200ms" in _qdiscs(namespace)
        remove(scope, entries)


def test_refuses_to_replace_a_root_qdisc_it_did_not_create(namespace):
    subprocess.run(["ip", "netns", "exec", namespace, "tc", "qdisc", "add", "dev", "kst0", "root", "tbf", "rate",
                    "5mbit", "burst", "10kb", "latency", "50ms"], check=True)
    with pytest.raises(UserError, match="kst0 in namespace .* already has a tbf root qdisc"):
        install(Scope(name=namespace), [plan_rate("kst0", 0x20, 1_000_000)])
    assert "tbf 8001: root" in _qdiscs(namespace) or "qdisc tbf" in _qdiscs(namespace)


def test_netem_request_kshock_builds():
    """The netlink attributes pyroute2 sends for kshock's netem plan: delay and jitter in kernel
    ticks, probabilities scaled to 2^32, and the raised packet limit."""
    from pyroute2.netlink.rtnl.tcmsg import sched_netem
    from pyroute2.netlink.rtnl.tcmsg.common import time2tick

    plan = plan_netem("eth0", 0x20, delay_ms=200, jitter_ms=20, loss=5, duplicate=1, corrupt=0.5)
    params = sched_netem.get_parameters(dict(plan.options))
    assert params["delay"] == time2tick(200_000)
    assert params["jitter"] == time2tick(20_000)
    assert params["loss"] == int(0.05 * 0xFFFFFFFF)
    assert params["duplicate"] == int(0.01 * 0xFFFFFFFF)
    assert params["limit"] == 10000
    assert ["TCA_NETEM_CORRUPT", {"prob_corrupt": int(0.005 * 0xFFFFFFFF), "corr_corrupt": 0}] in params["attrs"]


def test_reorder_without_delay_is_refused():
    with pytest.raises(UserError, match="reorder needs a delay"):
        plan_netem("eth0", 0x20, reorder=25)
