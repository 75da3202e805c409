"""EDGE: network namespaces — create, remove, list, enter (`entered`, the one way kshock does), and find
the processes inside them."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

from kshock.errors import UserError

NETNS_DIR = Path("/run/netns")
# What a namespace name may be, wherever a person gives one (apply, revert, shell): ASCII letters,
# digits, '_', '.' and '-', not starting with '.' (so never "." or "..") nor '-' (an option to
# `ip netns exec`), at most 64 characters. `\Z`, not `$`: a trailing newline is refused too.
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\Z")
NAME_RULE = "use 1 to 64 ASCII letters, digits, '_', '.' and '-', not starting with '.' or '-'"
HOST_NAMESPACES = ("/proc/1/ns/net", "/proc/self/ns/net")  # init's and our own: "the host" for the SSH guard
CLONE_NEWNET = 0x40000000  # linux/sched.h (os.CLONE_NEWNET from Python 3.12)


def check_name(name: object) -> str:
    """The one validator for a network namespace name a person gives; returns it, or raises
    a UserError (an empty name never silently means the host)."""
    if not isinstance(name, str) or not NAME.match(name):
        raise UserError(f"{name!r} is not a network namespace name", f"{NAME_RULE} (see `ip netns list`)")
    return name


def valid_name(name: object) -> bool:
    return isinstance(name, str) and NAME.match(name) is not None


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
    return valid_name(name) and (NETNS_DIR / name).exists()


def inode(path: str | os.PathLike) -> tuple[int, int] | None:
    """A namespace's identity: (st_dev, st_ino) of its nsfs file; None when it cannot be read."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def host_inodes() -> set[tuple[int, int]]:
    """The namespaces that count as the host's: init's and kshock's own (those it can read)."""
    return {found for found in map(inode, HOST_NAMESPACES) if found is not None}


def holder(ns: tuple[int, int]) -> str | None:
    """A path that leads to the namespace `ns` now, or None when nothing holds it open — then
    the kernel has freed it, and every rule in it went with it.

    Looked for, cheapest first: a name under /run/netns; any other nsfs bind mount this mount
    namespace sees (container runtimes keep theirs elsewhere, e.g. /run/docker/netns); a process
    or thread living in it; a process holding it open as a file descriptor. (A namespace held
    only by a socket some process moved out of it is not found: nothing names it.)"""
    candidates: list[Path] = sorted(NETNS_DIR.glob("*")) if NETNS_DIR.is_dir() else []
    candidates += _nsfs_mounts()
    for path in candidates:
        if inode(path) == ns:
            return str(path)
    for entry in _proc_entries():
        for path in [entry / "ns" / "net"] + _glob(entry / "task", "*/ns/net"):
            if inode(path) == ns:
                return str(path)
    want = f"net:[{ns[1]}]"
    for entry in _proc_entries():
        for path in _glob(entry / "fd", "*"):
            try:
                if os.readlink(path) == want and inode(path) == ns:
                    return str(path)
            except OSError:
                continue
    return None


def _proc_entries() -> list[Path]:
    return [entry for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def _glob(base: Path, pattern: str) -> list[Path]:
    try:
        return sorted(base.glob(pattern))
    except OSError:  # the process exited meanwhile, or is not ours to read
        return []


def _nsfs_mounts() -> list[Path]:
    """Mount points of nsfs files (bind-mounted namespaces) in /proc/self/mountinfo."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        before, _, after = line.partition(" - ")
        fields = before.split()
        if after.split()[:1] == ["nsfs"] and len(fields) >= 5:
            found.append(Path(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])))
    return found


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
    if not valid_name(name):
        return []
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


@contextlib.contextmanager
def entered(name: str | None) -> Iterator[None]:
    """Run the block with this thread in network namespace `name` (None: where it is already).

    Sockets made in the block stay in the namespace for their life; the thread goes back to
    its own namespace when the block ends, on errors too. Only this thread moves (setns(2) on
    the thread), so other threads are never affected. A namespace that does not exist is a
    one-line UserError — never made on the way, as pyroute2's pushns would."""
    if name is None:
        yield
        return
    check_name(name)
    try:
        target = os.open(NETNS_DIR / name, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise UserError(f"there is no network namespace {name!r}", "list them with `ip netns list`") from None
    try:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target)
            try:
                yield
            finally:
                _setns(home)
        finally:
            os.close(home)
    finally:
        os.close(target)


def _setns(fd: int) -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"setns: {os.strerror(errno)}")


def exec_argv(name: str, argv: list[str]) -> list[str]:
    """The argv that runs `argv` inside the namespace (ip netns exec also sets /etc/netns, /sys)."""
    return ["ip", "netns", "exec", name, *argv]


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
