"""EDGE: build and tear down the lab's namespaces, bridge and veth pairs (pyroute2, netlink)."""

from __future__ import annotations

import subprocess

from kshock.host import netns
from kshock.errors import OperationFailed
from kshock.lab.plan import BRIDGE, LabPlan, namespace_prefix

# Segmentation offloads make the kernel hand 64 KB "packets" to tcpdump and iptables; a real
# network carries MTU-sized segments, and the fault rules must be tested against those.
OFFLOADS = ("tso", "gso", "gro")


def build(plan: LabPlan) -> None:
    from pyroute2 import NetNS

    netns.create(plan.broker.netns)
    with NetNS(plan.broker.netns) as ns:
        _up(ns, "lo")
        ns.link("add", ifname=BRIDGE, kind="bridge")
        bridge = _index(ns, BRIDGE)
        ns.addr("add", index=bridge, address=plan.broker.ip, prefixlen=plan.prefixlen)
        ns.link("set", index=bridge, state="up")
    _disable_offloads(plan.broker.netns, BRIDGE)

    for client in plan.clients:
        netns.create(client.netns)
        with NetNS(client.netns) as ns:
            _up(ns, "lo")
            # Create the pair with its peer born in the broker namespace: nothing ever exists
            # in the host's namespace, so a crash cannot leave a stray veth there.
            ns.link("add", ifname=client.ifname, kind="veth",
                    peer={"ifname": client.peer_ifname, "net_ns_fd": plan.broker.netns})
            index = _index(ns, client.ifname)
            ns.addr("add", index=index, address=client.ip, prefixlen=plan.prefixlen)
            ns.link("set", index=index, state="up")
        with NetNS(plan.broker.netns) as ns:
            ns.link("set", index=_index(ns, client.peer_ifname), master=_index(ns, BRIDGE), state="up")
        _disable_offloads(client.netns, client.ifname)
        _disable_offloads(plan.broker.netns, client.peer_ifname)


def lab_namespaces(lab_name: str) -> list[str]:
    """Every namespace that belongs to the lab, found by name even when the state file is gone."""
    prefix = namespace_prefix(lab_name)
    return [name for name in netns.names() if name.startswith(prefix)]


def destroy(lab_name: str) -> list[str]:
    """Stop every process in the lab's namespaces and delete them; returns what was removed."""
    removed = []
    # Clients first: deleting the broker namespace would also delete their veth peers, but the
    # processes in them must be stopped either way.
    for name in sorted(lab_namespaces(lab_name), key=lambda n: n.endswith("-broker")):
        netns.kill_all(name)
        netns.remove(name)
        removed.append(name)
    return removed


def _disable_offloads(namespace: str, ifname: str) -> None:
    argv = netns.exec_argv(namespace, ["ethtool", "-K", ifname])
    for feature in OFFLOADS:
        argv += [feature, "off"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    # ethtool exits non-zero when a feature is fixed on this device; a fixed feature is fine.
    if result.returncode not in (0, 1) and "Cannot change" not in result.stderr:
        raise OperationFailed(f"ethtool could not set offloads on {ifname} in {namespace}: {result.stderr.strip()}")


def _up(ns, ifname: str) -> None:
    ns.link("set", index=_index(ns, ifname), state="up")


def _index(ns, ifname: str) -> int:
    found = ns.link_lookup(ifname=ifname)
    if not found:
        raise OperationFailed(f"interface {ifname} did not appear")
    return found[0]
