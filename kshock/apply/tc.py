"""EDGE: traffic-control faults (rate, delay, loss models...) with pyroute2.

Layout on the target interface (egress): a root `htb` with `default 0`, so unclassified
traffic is not shaped at all, and one htb class per fault (1:<minor>) holding a tbf (rate) or
netem (delay, duplicate, corrupt, reorder) qdisc. Packets reach the class through kshock's own
iptables rules in the mangle table (`-j CLASSIFY --set-class 1:<minor>`), which carry
`--datestop` like every kshock rule: when the fault expires the kernel stops classifying, so
even a forgotten qdisc no longer touches any packet. (This kernel has no cls_fw filter and no
prio qdisc; CLASSIFY needs neither.) kshock refuses to replace a root qdisc it did not create.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

from kshock.apply.scope import Scope
from kshock.errors import OperationFailed, UserError

ROOT_HANDLE = 0x10000  # 1:
NETEM_MISSING = ("this kernel has no netem queueing discipline (sch_netem), so delay, duplicate, corrupt and reorder "
                 "faults cannot run here")
NETEM_HINT = "load it with `modprobe sch_netem` (Debian: linux-modules-extra / the full kernel image), or use drop, reset, stall, loss or rate"


@dataclass(frozen=True, slots=True)
class QdiscPlan:
    """One fault's shaping: an htb class 1:<minor> and the qdisc inside it (pure data)."""

    interface: str
    minor: int  # 0x10..0xFFFE
    kind: str  # "tbf" | "netem"
    options: tuple[tuple[str, object], ...]  # pyroute2 keyword arguments for the child qdisc

    @property
    def classid(self) -> int:
        return ROOT_HANDLE | self.minor


def plan_rate(interface: str, minor: int, rate_bit_s: int) -> QdiscPlan:
    # burst: at least one MTU and 10 ms worth of bytes, as tc-tbf(8) advises.
    burst = max(1600, rate_bit_s // 8 // 100)
    return QdiscPlan(interface, minor, "tbf", (("rate", f"{rate_bit_s}bit"), ("burst", burst), ("latency", "200ms")))


def plan_netem(interface: str, minor: int, *, delay_ms: float | None = None, jitter_ms: float | None = None,
               loss: float | None = None, duplicate: float | None = None, corrupt: float | None = None,
               reorder: float | None = None) -> QdiscPlan:
    """pyroute2's netem keywords: times in microseconds, probabilities in percent."""
    options: list[tuple[str, object]] = []
    if reorder and not delay_ms:
        raise UserError("reorder needs a delay to reorder against", "add a delay, e.g. `delay 10ms` with `reorder 25%`")
    if delay_ms:
        options.append(("delay", int(delay_ms * 1000)))
    if jitter_ms:
        options.append(("jitter", int(jitter_ms * 1000)))
    for name, value in (("loss", loss), ("duplicate", duplicate), ("prob_corrupt", corrupt), ("prob_reorder", reorder)):
        if value:
            options.append((name, value))
    options.append(("limit", 10000))  # netem's default of 1000 packets throttles high delay
    return QdiscPlan(interface, minor, "netem", tuple(options))


def install(scope: Scope, plan: QdiscPlan) -> list[dict]:
    """Add the root htb (if kshock's is not there yet), the class and its qdisc. Returns the
    state entries `remove` needs."""
    from pyroute2 import NetNS, IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    added: list[dict] = []
    handle = NetNS(scope.netns_path()) if scope.netns_path() else IPRoute()
    with handle as ip:
        index = _index(ip, plan.interface, scope)
        root = [q for q in ip.get_qdiscs(index=index) if q["parent"] == 0xFFFFFFFF]
        ours = root and root[0].get_attr("TCA_KIND") == "htb" and root[0]["handle"] == ROOT_HANDLE
        if ours:
            raise UserError(f"a kshock traffic-control fault is already active on {plan.interface} in {scope.describe()}",
                            "revert it first (kshock revert NAME); one tc fault per interface at a time")
        if root and root[0].get_attr("TCA_KIND") not in ("noqueue", "pfifo_fast", "fq_codel", "mq"):
            raise UserError(f"{plan.interface} in {scope.describe()} already has a {root[0].get_attr('TCA_KIND')} root qdisc",
                            "kshock does not replace a qdisc it did not create; remove it first or pick another interface")
        try:
            ip.tc("add", "htb", index=index, handle="1:", default=0)
            added.append({"interface": plan.interface, "what": "root"})
            # The class's own rate is no limit in practice; the qdisc inside it shapes.
            ip.tc("add-class", "htb", index=index, handle=plan.classid, parent=ROOT_HANDLE, rate="4gbit")
            added.append({"interface": plan.interface, "what": "class", "classid": plan.classid})
            ip.tc("add", plan.kind, index=index, handle=plan.minor << 16, parent=plan.classid, **dict(plan.options))
        except NetlinkError as error:
            _undo(ip, index, added)
            if plan.kind == "netem" and error.code == errno.ENOENT:
                raise OperationFailed(NETEM_MISSING, NETEM_HINT) from None
            raise OperationFailed(f"tc refused the {plan.kind} fault on {plan.interface}: {error}") from None
    return added


def remove(scope: Scope, entries: list[dict]) -> list[str]:
    from pyroute2 import NetNS, IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    removed = []
    handle = NetNS(scope.netns_path()) if scope.netns_path() else IPRoute()
    with handle as ip:
        for entry in entries:
            found = ip.link_lookup(ifname=entry["interface"])
            if not found:
                continue
            try:
                if entry["what"] == "root":
                    ip.tc("del", index=found[0], handle="1:", root=True)
                    removed.append(f"htb root on {entry['interface']}")
            except NetlinkError:
                pass  # already gone
    return removed


def _undo(ip, index: int, added: list[dict]) -> None:
    from pyroute2.netlink.exceptions import NetlinkError

    if any(entry["what"] == "root" for entry in added):
        try:
            ip.tc("del", index=index, handle="1:", root=True)
        except NetlinkError:
            pass


def _index(ip, interface: str, scope: Scope) -> int:
    found = ip.link_lookup(ifname=interface)
    if not found:
        raise UserError(f"there is no interface {interface!r} in {scope.describe()}",
                        "name one with --interface (see `ip link`)")
    return found[0]
