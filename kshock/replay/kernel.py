"""EDGE: `kshock replay --kernel` — ask the kernel itself what the compiled rules match.

For each host the rules' directions mean (the broker's for ingress, a client's for egress, a
router's for forward) kshock builds throwaway network namespaces — a client side and a broker
side joined by a veth pair, with a router namespace between them for forward rules — loads the
compiled rule set with `iptables-restore --noflush` into the namespace that plays that host,
sends the capture's IPv4/TCP packets on the Kafka port(s) through them in capture order, and
reads the kernel's per-rule counters with `iptables-save -c`. Rules go in and counters come out
through apply/netfilter.py, as for `kshock apply` (the same nf_tables/legacy choice). The
namespaces are always removed, on errors and Ctrl-C too (SIGTERM is turned into the same
clean-up); leftovers of a killed run (`ksr-<pid>-...` of a dead pid) are removed by the next run.

How packets are replayed: a raw IPv4 socket (IP_HDRINCL) in the sending namespace, not
tcpreplay. A packet toward the Kafka port leaves the client namespace, a packet from it leaves
the broker namespace, so a request enters the broker's INPUT and a response leaves through its
OUTPUT — tcpreplay injects frames at an interface and cannot make a packet traverse the OUTPUT
chain of the host under test. The packets keep the capture's own IP addresses (the namespaces
are given them, with static routes and neighbour entries), so `host` targets and `src.host`
conditions mean what they meant in the capture; only TCP checksums that are wrong (offloaded at
capture time) are recomputed, so conntrack tracks every connection. The namespaces' own stacks are
kept quiet — INPUT ends in a DROP after kshock's jumps, so TCP never answers a replayed segment
with a RST, and what REJECT makes up is dropped in the raw table's OUTPUT — because the
emulation does not model packets the kernel makes up, and the capture's own replies are
replayed anyway.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace

from kshock.apply import netfilter
from kshock.apply.netfilter import Backend
from kshock.apply.scope import Scope
from kshock.capture.reader import CaptureReader
from kshock.errors import OperationFailed, UserError
from kshock.host import netns
from kshock.rules.coverage import kafka_tcp
from kshock.rules.kernel import RuleSet
from kshock.rules.render import render_restore

PREFIX = "ksr"
SETTLE_S = 5.0
# Keep the namespaces' own stacks quiet: what REJECT makes up (resets, ICMP: packets without a
# socket) is dropped before the filter table's OUTPUT, and the replayed segments, which no local
# socket owns, never reach TCP (which would answer them with RSTs): INPUT ends in a DROP after
# kshock's jumps.
QUIET_OUTPUT = "*raw\n-A OUTPUT -m owner ! --socket-exists -j DROP\nCOMMIT\n"
QUIET_INPUT = "*filter\n-A INPUT -j DROP\nCOMMIT\n"


@dataclass(frozen=True, slots=True)
class Replayed:
    """One packet to send: its capture number, IPv4 bytes, and whether it goes toward the Kafka port."""

    number: int
    packet: bytes
    toward: bool


def check(report, capture: str) -> None:
    """Run the report's rule set in the kernel for each perspective the report emulated, and put
    the kernel's counters next to the emulation's (report.kernel, each rule's kernel_counters)."""
    _require_environment()
    packets = list(kafka_packets(capture, report.ports))
    if not packets:
        raise UserError(f"{capture} has no IPv4/TCP packets on port(s) {','.join(map(str, report.ports))}",
                        "nothing to replay into the kernel; is Kafka on another port? use --port")
    kernel: dict[tuple[str, str, int], int] = {}
    backend = netfilter.detect_backend()
    started = time.perf_counter()
    for perspective in report.perspectives:
        counters = run_in_kernel(report.ruleset, perspective, packets, backend)
        for (chain, index), count in counters.items():
            kernel[(perspective, chain, index)] = count
    seconds = time.perf_counter() - started
    emulated = {key: report.emulated_counters.get(key, 0) for key in kernel}
    differ = sorted(key for key in kernel if kernel[key] != emulated[key])
    view_of = {rule.rule: _perspective_of(rule.direction) for rule in report.rules}
    for i, rule in enumerate(report.rules):
        counters = tuple(kernel.get((view_of[rule.rule], chain, index), 0) for chain, index, _ in rule.kernel_rules)
        report.rules[i] = replace(rule, kernel_counters=counters)
    agrees = not differ
    summary = (f"kernel: {len(packets)} packets replayed through namespaces in {seconds:.1f}s with a raw socket; "
               f"{len(kernel)} kernel rule counters, " +
               ("all equal to the emulation" if agrees else
                f"{len(differ)} differ from the emulation: " +
                ", ".join(f"{chain} rule {index + 1} in the {view}'s namespace: kernel {kernel[(view, chain, index)]}, "
                          f"emulated {emulated[(view, chain, index)]}" for view, chain, index in differ[:5])))
    report.kernel = {
        "agrees": agrees,
        "packets": len(packets),
        "seconds": round(seconds, 3),
        "method": "raw socket",
        "counters": [{"perspective": v, "chain": c, "index": i, "kernel": n, "emulated": emulated[(v, c, i)]}
                     for (v, c, i), n in sorted(kernel.items())],
        "summary": summary,
    }


def _perspective_of(direction: str) -> str:
    return {"ingress": "broker", "both": "broker", "egress": "client", "forward": "router"}[direction]


def kafka_packets(capture: str, ports) -> Iterator[Replayed]:
    """The capture's IPv4/TCP packets on the Kafka ports, as the emulation walked them."""
    port_set = frozenset(ports)
    reader = CaptureReader(capture)
    try:
        for number, (_, linktype, raw) in enumerate(reader, 1):
            found = kafka_tcp(linktype, raw, port_set)
            if found is not None:
                packet, _, toward = found
                yield Replayed(number, bytes(packet), toward)
    finally:
        reader.close()


def run_in_kernel(ruleset: RuleSet, perspective: str, packets: list[Replayed],
                  backend: Backend | None = None) -> dict[tuple[str, int], int]:
    """Load `ruleset` in the namespace playing `perspective`, replay `packets`, and return the
    kernel's counters keyed like the Emulator's hits: (chain, index) for kshock's chains and
    ('jump:BUILTIN', index into ruleset.jumps) for the jumps."""
    backend = backend or netfilter.detect_backend()
    with _namespaces(perspective, packets, backend) as lab:
        _restore(backend, lab.rules_ns, render_restore(ruleset))
        for side in ("client", "broker"):
            _restore(backend, lab.namespace[side], QUIET_INPUT)  # after kshock's jumps
        expected_lines = sum(len(c.rules) for c in ruleset.chains) + len(ruleset.jumps)
        senders = {}
        try:
            for side in ("client", "broker"):
                senders[side] = _raw_socket(lab.namespace[side])
            send_client, send_broker = senders["client"].sendto, senders["broker"].sendto
            for item in packets:
                data = fix_tcp_checksum(item.packet)
                dst = socket.inet_ntoa(data[16:20])
                try:
                    (send_client if item.toward else send_broker)(data, (dst, 0))
                except PermissionError:  # dropped in the sender's OUTPUT: what egress rules do
                    pass
                except ConnectionRefusedError:  # REJECTed in the sender's OUTPUT
                    pass
        finally:
            for sock in senders.values():
                sock.close()
        return _settled_counters(lab.rules_ns, ruleset, expected_lines, backend)


@dataclass(slots=True)
class _Lab:
    namespace: dict[str, str]  # side -> namespace name (client, broker, and router for forward)
    rules_ns: str


@contextlib.contextmanager
def _namespaces(perspective: str, packets: list[Replayed], backend: Backend) -> Iterator[_Lab]:
    """Client and broker namespaces (and a router between them for forward rules), holding the
    capture's addresses; always removed."""
    _remove_leftovers()
    tag = f"{PREFIX}-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    sides = ["client", "router", "broker"] if perspective == "router" else ["client", "broker"]
    names = {side: f"{tag}-{side[0]}" for side in sides}
    client_ips, broker_ips = _addresses(packets)
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        for name in names.values():
            _run(["ip", "netns", "add", name])
            _ns(name, "ip", "link", "set", "lo", "up")
            _ns(name, "sysctl", "-q", "-w", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0")
        links = []  # (left side, right side, left device, right device)
        for n, (left, right) in enumerate(zip(sides, sides[1:])):
            left_dev, right_dev = f"ksr{n}{left[0]}", f"ksr{n}{right[0]}"
            _run(["ip", "link", "add", left_dev, "netns", names[left], "type", "veth", "peer", "name", right_dev,
                  "netns", names[right]])
            for side, dev in ((left, left_dev), (right, right_dev)):
                _ns(names[side], "sysctl", "-q", "-w", f"net.ipv4.conf.{dev}.rp_filter=0")
                _ns(names[side], "ip", "link", "set", dev, "up")
            links.append((left, right, left_dev, right_dev))
        owned = {"client": client_ips, "broker": broker_ips, "router": []}
        for side in ("client", "broker"):
            for ip in owned[side]:
                _ns(names[side], "ip", "addr", "add", f"{ip}/32", "dev", _device_of(side, links))
        if "router" in names:
            _ns(names["router"], "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        # Static routes and neighbours toward the far side's addresses: no ARP, no waiting.
        for left, right, left_dev, right_dev in links:
            right_mac, left_mac = _mac(names[right], right_dev), _mac(names[left], left_dev)
            for ip in _beyond(right, sides, owned):
                _ns(names[left], "ip", "route", "replace", f"{ip}/32", "dev", left_dev)
                _ns(names[left], "ip", "neigh", "replace", ip, "lladdr", right_mac, "dev", left_dev, "nud", "permanent")
            for ip in _beyond(left, sides, owned, backwards=True):
                _ns(names[right], "ip", "route", "replace", f"{ip}/32", "dev", right_dev)
                _ns(names[right], "ip", "neigh", "replace", ip, "lladdr", left_mac, "dev", right_dev, "nud", "permanent")
        for side in ("client", "broker"):
            _restore(backend, names[side], QUIET_OUTPUT)
        yield _Lab(names, names[perspective])
    finally:
        for name in names.values():
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _device_of(side: str, links) -> str:
    for left, right, left_dev, right_dev in links:
        if left == side:
            return left_dev
        if right == side:
            return right_dev
    raise ValueError(side)


def _beyond(side: str, sides: list[str], owned: dict, backwards: bool = False) -> list[str]:
    """Addresses owned by `side` and every side past it (away from the link's other end)."""
    order = sides[::-1] if backwards else sides
    return [ip for s in order[order.index(side):] for ip in owned[s]]


def _addresses(packets: list[Replayed]) -> tuple[list[str], list[str]]:
    clients, brokers = {}, {}
    for item in packets:
        src, dst = socket.inet_ntoa(item.packet[12:16]), socket.inet_ntoa(item.packet[16:20])
        client, broker = (src, dst) if item.toward else (dst, src)
        clients[client] = True
        brokers[broker] = True
    both = set(clients) & set(brokers)
    if both:
        raise UserError(f"{', '.join(sorted(both))} is both a client and a broker in this capture",
                        "kernel replay needs the two sides on different addresses; use the emulation alone")
    special = [ip for ip in [*clients, *brokers] if ip.startswith(("127.", "0.", "224.", "255."))]
    if special:
        raise UserError(f"the capture uses {special[0]}, which cannot be routed between namespaces",
                        "use the emulation alone for loopback captures")
    return list(clients), list(brokers)


def _mac(namespace: str, device: str) -> str:
    out = subprocess.run(netns.exec_argv(namespace, ["cat", f"/sys/class/net/{device}/address"]),
                         capture_output=True, text=True, check=True).stdout
    return out.strip()


def _raw_socket(namespace: str) -> socket.socket:
    with netns.entered(namespace):
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    return sock


def fix_tcp_checksum(packet: bytes) -> bytes:
    """The packet with a correct TCP checksum (captures taken with checksum offload carry wrong ones)."""
    ihl = (packet[0] & 0x0F) * 4
    segment = packet[ihl:]
    if len(segment) < 20:
        return packet
    pseudo = packet[12:20] + struct.pack("!BBH", 0, 6, len(segment))
    zeroed = segment[:16] + b"\0\0" + segment[18:]
    checksum = _ones_complement(pseudo + zeroed)
    if struct.unpack_from("!H", segment, 16)[0] == checksum:
        return packet
    return packet[: ihl + 16] + struct.pack("!H", checksum) + packet[ihl + 18:]


def _ones_complement(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _settled_counters(namespace: str, ruleset: RuleSet, expected_lines: int,
                      backend: Backend) -> dict[tuple[str, int], int]:
    """Counters once they stop changing (veth delivers in softirq context, a moment later)."""
    deadline = time.monotonic() + SETTLE_S
    previous = None
    while True:
        counters = kernel_counters(namespace, ruleset, backend)
        if counters == previous or time.monotonic() > deadline:
            if len(counters) < expected_lines:
                raise OperationFailed(f"iptables-save in {namespace} lists fewer kshock rules than were loaded",
                                      "the kernel rewrote the rule set; report this with the rule file")
            return counters
        previous = counters
        time.sleep(0.1)


def kernel_counters(namespace: str, ruleset: RuleSet, backend: Backend | None = None) -> dict[tuple[str, int], int]:
    """The packet counters of kshock's rules in a namespace, keyed like Emulator.hits."""
    saved = netfilter.save(backend or netfilter.detect_backend(), Scope(name=namespace), ruleset.table,
                           counters=True)
    chains = set(ruleset.chain_names)
    jump_index: dict[str, list[int]] = {}
    for index, jump in enumerate(ruleset.jumps):
        jump_index.setdefault(jump.builtin, []).append(index)
    position: dict[str, int] = {}
    counters: dict[tuple[str, int], int] = {}
    for line in saved.splitlines():
        found = re.match(r"\[(\d+):\d+\] -A (\S+) ", line)
        if not found:
            continue
        chain = found.group(2)
        n = position.get(chain, 0)
        position[chain] = n + 1
        if chain in chains:
            counters[(chain, n)] = int(found.group(1))
        elif chain in jump_index and n < len(jump_index[chain]):
            counters[(f"jump:{chain}", jump_index[chain][n])] = int(found.group(1))
    return counters


def _restore(backend: Backend, namespace: str, text: str) -> None:
    """Load `text` into one of the replay's own namespaces, as `kshock apply` loads its rules."""
    try:
        netfilter.restore_unaudited(backend, Scope(name=namespace), text)
    except OperationFailed as error:
        raise OperationFailed(f"{error.message} (in the replay namespace {namespace})",
                              error.hint or "check `kshock compile RULEFILE` output; the kernel may lack an "
                              "extension (u32, string, connmark, statistic, time)") from None


def _require_environment() -> None:
    if os.geteuid() != 0:
        raise UserError("replay --kernel needs root (network namespaces and iptables)",
                        "run it with sudo, or leave out --kernel for the emulation alone")
    for tool, package in (("ip", "iproute2"), ("iptables", "iptables"),
                          ("sysctl", "procps")):
        if shutil.which(tool) is None:
            raise UserError(f"`{tool}` is not installed", f"install it: apt-get install {package}")


def _remove_leftovers() -> None:
    """Namespaces of earlier runs whose process is gone (killed before it could clean up)."""
    try:
        names = os.listdir("/run/netns")
    except OSError:
        return
    for name in names:
        found = re.fullmatch(rf"{PREFIX}-(\d+)-\d+-[crb]", name)
        if found and not os.path.exists(f"/proc/{found.group(1)}"):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


def _run(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise OperationFailed(f"`{' '.join(argv)}` failed: {result.stderr.strip() or 'no message'}",
                              "kernel replay needs network namespaces and veth (root, CAP_NET_ADMIN)")


def _ns(namespace: str, *argv: str) -> None:
    _run(netns.exec_argv(namespace, list(argv)))


__all__ = ["check", "fix_tcp_checksum", "kafka_packets", "kernel_counters", "run_in_kernel"]
