"""PURE: the lab's layout — namespace names, interfaces and addresses — derived from name and index.

Everything lives inside the lab's own namespaces: the bridge sits in the broker namespace and each
client is one veth pair (eth0 in the client, vcN on the bridge), so the host's network is never
touched and deleting the broker namespace removes the bridge and every peer with it.
Addresses come from 198.18.0.0/15, the range RFC 2544 reserves for benchmarking network devices:
it never collides with a site's real networks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kshock.errors import UserError

NAME_PATTERN = re.compile(r"[a-z][a-z0-9]{0,9}")  # used with fullmatch: "$" would let "lab\n" through
NAMESPACE_PREFIX = "ksl-"
MAX_LABS = 256
MAX_CLIENTS = 200
BRIDGE = "br0"


@dataclass(frozen=True, slots=True)
class Host:
    name: str  # "broker", "c1", "c2", ...
    netns: str
    ifname: str  # interface inside its namespace
    ip: str
    peer_ifname: str | None = None  # the bridge-side end of a client's veth


@dataclass(frozen=True, slots=True)
class LabPlan:
    name: str
    index: int
    broker: Host
    clients: tuple[Host, ...]
    port: int
    prefixlen: int = 24

    @property
    def subnet(self) -> str:
        return f"{_octets(self.index)}.0/{self.prefixlen}"

    @property
    def bootstrap(self) -> str:
        return f"{self.broker.ip}:{self.port}"

    @property
    def namespaces(self) -> list[str]:
        return [self.broker.netns, *(client.netns for client in self.clients)]

    def host(self, name: str) -> Host:
        for host in (self.broker, *self.clients):
            if host.name == name or (name.isascii() and name.isdigit() and host.name == f"c{name}"):
                return host
        known = ", ".join(h.name for h in (self.broker, *self.clients))
        raise UserError(f"lab {self.name} has no host {name!r}", f"choose one of: {known}")


def namespace_prefix(lab_name: str) -> str:
    return f"{NAMESPACE_PREFIX}{lab_name}-"


def validate_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise UserError(
            f"invalid lab name {name!r}",
            "use 1-10 lowercase letters and digits, starting with a letter (namespace names derive from it)",
        )
    return name


def plan_lab(name: str, index: int, clients: int, port: int = 9092) -> LabPlan:
    validate_name(name)
    if not 1 <= clients <= MAX_CLIENTS:
        raise UserError(f"--clients {clients} is out of range", f"use 1 to {MAX_CLIENTS}")
    if not 0 <= index < MAX_LABS:
        raise UserError("every lab subnet is in use", "remove a lab with `kshock lab down --name NAME`")
    if not 1 <= port <= 65535:
        raise UserError(f"--port {port} is not a TCP port", "use 1 to 65535")
    prefix = namespace_prefix(name)
    base = _octets(index)
    broker = Host("broker", f"{prefix}broker", BRIDGE, f"{base}.1")
    hosts = tuple(
        Host(f"c{i}", f"{prefix}c{i}", "eth0", f"{base}.{10 + i}", peer_ifname=f"vc{i}")
        for i in range(1, clients + 1)
    )
    return LabPlan(name=name, index=index, broker=broker, clients=hosts, port=port)


def free_index(used: set[int]) -> int:
    for index in range(MAX_LABS):
        if index not in used:
            return index
    return MAX_LABS


def _octets(index: int) -> str:
    # 198.18.0.0/15 gives 512 /24s; the first 256 are plenty for labs on one machine.
    return f"198.18.{index}"
