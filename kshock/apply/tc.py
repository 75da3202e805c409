"""EDGE: traffic-control faults (rate; delay, duplicate, corrupt, reorder where netem exists) with pyroute2.

Layout on the target interface (egress): kshock's own root `htb`, handle 4b53: ("KS") and
`default 0`, so unclassified traffic is not shaped at all (htb sends it straight through), and
one htb class per tc rule (4b53:<minor>) holding a tbf (rate) or netem qdisc. Packets reach a
class through kshock's mangle-table rules, `-j CLASSIFY --set-class 4b53:<minor>`: CLASSIFY
writes skb->priority and htb takes a priority that names one of its classes as the class
directly — no tc filter, so this works on kernels without cls_fw (and without the prio qdisc).

The dead-man switch holds for tc faults too: the CLASSIFY rules carry `-m time --datestop`, so
when a fault expires the kernel stops classifying and the class, if still there, no longer
touches any packet even with no kshock process running; the next kshock command removes it.

The handle 4b53: is how kshock knows a root htb is its own: several kshock faults share it
(one class each); the last one out deletes it, and the kernel puts its default qdisc back. A
root qdisc kshock did not create (any handle but 0:, the kernel's default) is never replaced.
"""

from __future__ import annotations

import errno
import subprocess
from dataclasses import dataclass

from kshock.apply.scope import Scope
from kshock.errors import OperationFailed, UserError
from kshock.rules.compile import TC_ROOT_MAJOR
from kshock.rules.kernel import TrafficControl

ROOT_HANDLE = TC_ROOT_MAJOR << 16  # 4b53:
TC_ROOT = 0xFFFFFFFF  # a root qdisc's parent
NETEM_MISSING = ("this kernel has no netem queueing discipline (sch_netem), so delay, duplicate, corrupt and reorder "
                 "faults cannot run here")
NETEM_HINT = "load it with `modprobe sch_netem` (Debian: linux-modules-extra / the full kernel image), or use drop, reset, stall, loss or rate"


@dataclass(frozen=True, slots=True)
class QdiscPlan:
    """One tc rule's shaping: htb class `classid` on `interface` and the qdisc inside it (pure data)."""

    interface: str
    classid: int  # 4b53:<minor>
    kind: str  # "tbf" | "netem"
    options: tuple[tuple[str, object], ...]  # pyroute2 keyword arguments for the child qdisc

    @property
    def minor(self) -> int:
        return self.classid & 0xFFFF

    @property
    def describe(self) -> str:
        return f"{self.kind} in class {_handle(self.classid)} on {self.interface}"


def plan_rate(interface: str, classid: int, rate_bit_s: int) -> QdiscPlan:
    # burst: at least one MTU and 10 ms worth of bytes, as tc-tbf(8) advises.
    burst = max(1600, rate_bit_s // 8 // 100)
    return QdiscPlan(interface, _classid(classid), "tbf",
                     (("rate", f"{rate_bit_s}bit"), ("burst", burst), ("latency", "200ms")))


def plan_netem(interface: str, classid: int, *, delay_ms: float | None = None, jitter_ms: float | None = None,
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
    return QdiscPlan(interface, _classid(classid), "netem", tuple(options))


def plan_from(control: TrafficControl, interface: str) -> QdiscPlan:
    """The compiler's TrafficControl as a qdisc plan on `interface`."""
    if control.kind == "rate":
        return plan_rate(interface, control.classid, control.rate_bit_s or 0)
    if control.kind == "delay":
        return plan_netem(interface, control.classid, delay_ms=control.delay_ms, jitter_ms=control.jitter_ms)
    if control.kind == "reorder":
        # netem reorders against a delay: the packets not picked go out 10 ms late (tc-netem(8)).
        return plan_netem(interface, control.classid, delay_ms=control.delay_ms or 10, reorder=control.percent)
    return plan_netem(interface, control.classid, **{control.kind: control.percent})


def resolve_interface(scope: Scope, host: str | None) -> str:
    """The interface a tc fault without --interface shapes: the route to `host`, or the one
    non-loopback interface of the scope."""
    if host:
        route = subprocess.run(scope.argv(["ip", "-o", "route", "get", host.split("/")[0]]), capture_output=True,
                               text=True, timeout=10)
        words = route.stdout.split()
        if route.returncode == 0 and "dev" in words:
            return words[words.index("dev") + 1]
    links = subprocess.run(scope.argv(["ip", "-o", "link", "show", "up"]), capture_output=True, text=True, timeout=10)
    names = [line.split(":")[1].strip().split("@")[0] for line in links.stdout.splitlines() if line.count(":") >= 2]
    names = [name for name in names if name != "lo"]
    if len(names) == 1:
        return names[0]
    raise UserError(f"a traffic-control fault shapes one interface, and {scope.describe()} has "
                    f"{len(names) or 'no'} candidate{'s' if len(names) != 1 else ''}"
                    + (f" ({', '.join(names)})" if names else ""),
                    "name it with --interface (or `interface:` in the rule's target)")


def install(scope: Scope, plans: list[QdiscPlan]) -> list[dict]:
    """Add kshock's root htb where it is not there yet, then one class and its qdisc per plan.
    All or nothing: on any failure what was added is removed again. Returns the state entries
    `remove` needs (one per class; whoever removes the last class removes the root too)."""
    from pyroute2.netlink.exceptions import NetlinkError

    added: list[dict] = []
    with _handle_for(scope) as ip:
        try:
            for plan in plans:
                index = _index(ip, plan.interface, scope)
                root = _root(ip, index)
                if not _ours(root):
                    if root is not None and root["handle"] != 0:
                        raise UserError(
                            f"{plan.interface} in {scope.describe()} already has a {root.get_attr('TCA_KIND')} root "
                            f"qdisc ({_handle(root['handle'])})",
                            "kshock does not replace a qdisc it did not create; remove it first or pick another interface")
                    ip.tc("add", "htb", index=index, handle=ROOT_HANDLE, default=0)
                if any(c["handle"] == plan.classid for c in ip.get_classes(index=index)):
                    raise UserError(f"htb class {_handle(plan.classid)} is already in use on {plan.interface} in "
                                    f"{scope.describe()}", "a fault of the same name is active: revert it first")
                # The class's own rate is no limit in practice; the qdisc inside it shapes.
                ip.tc("add-class", "htb", index=index, handle=plan.classid, parent=ROOT_HANDLE, rate="10gbit")
                added.append({"interface": plan.interface, "what": "class", "classid": plan.classid,
                              "kind": plan.kind})
                ip.tc("add", plan.kind, index=index, handle=plan.minor << 16, parent=plan.classid, **dict(plan.options))
        except NetlinkError as error:
            _undo(ip, added, plans)
            if plans and error.code == errno.ENOENT and any(p.kind == "netem" for p in plans):
                raise OperationFailed(NETEM_MISSING, NETEM_HINT) from None
            raise OperationFailed(f"tc refused the fault ({', '.join(p.describe for p in plans)}): {error}"
                                  ", so nothing was applied") from None
        except BaseException:
            _undo(ip, added, plans)
            raise
    return added


def remove(scope: Scope, entries: list[dict]) -> list[str]:
    """Delete the classes in `entries` (their qdiscs go with them) and kshock's root htb on
    each interface that has no class left. Idempotent."""
    removed: list[str] = []
    with _handle_for(scope) as ip:
        for interface in dict.fromkeys(entry["interface"] for entry in entries):
            found = ip.link_lookup(ifname=interface)
            if not found:
                continue
            classids = [e["classid"] for e in entries if e["interface"] == interface and e.get("what") == "class"]
            removed += _remove_classes(ip, found[0], interface, classids)
    return removed


def remove_leftovers(scope: Scope) -> list[str]:
    """Every kshock root htb in the scope (crashed runs): the classes go with it."""
    from pyroute2.netlink.exceptions import NetlinkError

    removed = []
    with _handle_for(scope) as ip:
        for link in ip.get_links():
            root = _root(ip, link["index"])
            if _ours(root):
                try:
                    ip.tc("del", index=link["index"], handle=ROOT_HANDLE, parent=TC_ROOT)
                    removed.append(f"htb {_handle(ROOT_HANDLE)} on {link.get_attr('IFLA_IFNAME')}")
                except NetlinkError:
                    pass
    return removed


def _remove_classes(ip, index: int, interface: str, classids: list[int]) -> list[str]:
    from pyroute2.netlink.exceptions import NetlinkError

    removed = []
    if not _ours(_root(ip, index)):
        return removed
    for classid in classids:
        try:
            ip.tc("del", index=index, parent=classid)  # the qdisc inside the class
        except NetlinkError:
            pass
        try:
            ip.tc("del-class", index=index, handle=classid, parent=ROOT_HANDLE)
            removed.append(f"htb class {_handle(classid)} on {interface}")
        except NetlinkError:
            pass  # already gone
    if not [c for c in ip.get_classes(index=index) if c["parent"] == ROOT_HANDLE or c["handle"] >> 16 == TC_ROOT_MAJOR]:
        try:
            ip.tc("del", index=index, handle=ROOT_HANDLE, parent=TC_ROOT)
            removed.append(f"htb {_handle(ROOT_HANDLE)} root on {interface}")
        except NetlinkError:
            pass
    return removed


def _undo(ip, added: list[dict], plans: list[QdiscPlan]) -> None:
    for interface in dict.fromkeys(plan.interface for plan in plans):
        found = ip.link_lookup(ifname=interface)
        if found:
            _remove_classes(ip, found[0], interface,
                            [e["classid"] for e in added if e["interface"] == interface])


def _root(ip, index: int):
    roots = [q for q in ip.get_qdiscs(index=index) if q["parent"] == TC_ROOT]
    return roots[0] if roots else None


def _ours(root) -> bool:
    return root is not None and root.get_attr("TCA_KIND") == "htb" and root["handle"] == ROOT_HANDLE


def _handle_for(scope: Scope):
    from pyroute2 import IPRoute, NetNS

    path = scope.netns_path()
    return NetNS(path) if path else IPRoute()


def _handle(value: int) -> str:
    return f"{value >> 16:x}:{value & 0xFFFF:x}" if value & 0xFFFF else f"{value >> 16:x}:"


def _classid(value: int) -> int:
    """Accept a full class id (4b53:<minor>) or a bare minor (tests, hand-made plans)."""
    return value if value >> 16 else ROOT_HANDLE | value


def _index(ip, interface: str, scope: Scope) -> int:
    found = ip.link_lookup(ifname=interface)
    if not found:
        raise UserError(f"there is no interface {interface!r} in {scope.describe()}",
                        "name one with --interface (see `ip link`)")
    return found[0]


def render(plan: QdiscPlan) -> list[str]:
    """The `tc` commands equivalent to installing `plan` (for --dry-run)."""
    options = " ".join(f"{key.removeprefix('prob_')} {_tc_value(key, value)}" for key, value in plan.options)
    return [f"tc qdisc add dev {plan.interface} root handle {_handle(ROOT_HANDLE)} htb default 0   "
            "# unless kshock's root is there already",
            f"tc class add dev {plan.interface} parent {_handle(ROOT_HANDLE)} classid {_handle(plan.classid)} htb "
            "rate 10gbit",
            f"tc qdisc add dev {plan.interface} parent {_handle(plan.classid)} handle {plan.minor:x}: {plan.kind} "
            f"{options}"]


def stats(scope: Scope, entries: list[dict]) -> list[dict]:
    """The kernel's counters of each fault class's qdisc: packets and bytes sent, drops, overlimits."""
    out = []
    with _handle_for(scope) as ip:
        for entry in entries:
            found = ip.link_lookup(ifname=entry["interface"])
            if not found:
                continue
            for qdisc in ip.get_qdiscs(index=found[0]):
                if qdisc["parent"] == entry["classid"]:
                    basic = qdisc.get_attr("TCA_STATS") or {}
                    out.append({"interface": entry["interface"], "class": _handle(entry["classid"]),
                                "qdisc": qdisc.get_attr("TCA_KIND"), "packets": basic.get("packets", 0),
                                "bytes": basic.get("bytes", 0), "drops": basic.get("drops", 0),
                                "overlimits": basic.get("overlimits", 0)})
    return out


def _tc_value(key: str, value: object) -> str:
    if key in ("delay", "jitter"):
        return f"{int(value) / 1000:g}ms"  # pyroute2 takes microseconds
    if key.startswith("prob_") or key in ("loss", "duplicate"):
        return f"{value:g}%"
    return str(value)
