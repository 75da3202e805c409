"""EDGE: network namespaces — create, remove, list, and find the processes inside them."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

from kshock.errors import UserError

NETNS_DIR = Path("/run/netns")


def require_root(what: str) -> None:
    """Namespaces, veth and firewall rules need CAP_NET_ADMIN; say so before touching anything."""
    if os.geteuid() != 0:
        raise UserError(f"{what} needs root (CAP_NET_ADMIN)", "run it with sudo, or as root")


def require_tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise UserError(f"`{name}` is not installed", f"install it: apt-get install {package}")
    return path


def names() -> list[str]:
    from pyroute2 import netns

    return sorted(netns.listnetns())


def exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def create(name: str) -> None:
    from pyroute2 import netns

    netns.create(name)


def remove(name: str) -> None:
    """Remove a namespace; missing is fine (idempotent)."""
    from pyroute2 import netns

    if exists(name):
        netns.remove(name)


def pids(name: str) -> list[int]:
    """PIDs of the processes whose network namespace is `name` (what `ip netns pids` does)."""
    try:
        target = os.stat(NETNS_DIR / name)
    except FileNotFoundError:
        return []
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            st = os.stat(entry / "ns" / "net")
        except OSError:  # the process exited, or is a kernel thread we cannot read
            continue
        if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino):
            found.append(int(entry.name))
    return sorted(found)


def kill_all(name: str, grace_s: float = 3.0) -> int:
    """Stop every process in the namespace: SIGTERM, then SIGKILL after `grace_s`."""
    victims = pids(name)
    for pid in victims:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while pids(name) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in pids(name):
        _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + grace_s
    while pids(name) and time.monotonic() < deadline:
        time.sleep(0.05)
    return len(victims)


def exec_argv(name: str, argv: list[str]) -> list[str]:
    """The argv that runs `argv` inside the namespace (ip netns exec also sets /etc/netns, /sys)."""
    return ["ip", "netns", "exec", name, *argv]


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
