"""EDGE: where a fault goes — the host, a named network namespace, or the namespace of a PID.

A fault's state names its namespace by what outlives a name or a pid: the namespace's inode
(st_dev, st_ino of its nsfs file). A `--pid` process may exit, and a named namespace may be
deleted and made again under the same name, while the namespace the rules went into lives on
(a container runtime's bind mount, another process in it); `locate` finds it again by its inode.
kshock keeps no bind mount of its own: a namespace nothing holds is freed by the kernel with
every rule in it, so "nothing holds it" means the fault is really gone, and nothing kshock does
keeps a dead container's namespace (and its links) alive.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from kshock.host import netns
from kshock.errors import UserError


@dataclass(frozen=True, slots=True)
class Scope:
    """A network namespace: `name` for /run/netns/NAME, `pid` for /proc/PID/ns/net, neither for
    the host. `inode` is the namespace's identity when the fault went in; `via` a path that
    reaches it now when its name or pid no longer does (set by `locate`, never stored)."""

    name: str | None = None
    pid: int | None = None
    inode: tuple[int, int] | None = None
    via: str | None = None

    def __post_init__(self) -> None:
        if self.name is not None:
            netns.check_name(self.name)
        if self.pid is not None and (isinstance(self.pid, bool) or not isinstance(self.pid, int) or self.pid <= 0):
            raise UserError(f"{self.pid!r} is not a process id", "give the PID of a running process")

    @property
    def key(self) -> str:
        """A stable file-name-safe key for state files: with the namespace's inode when known, so
        a reused pid or a name given to a new namespace never mixes two namespaces' faults."""
        suffix = f"-{self.inode[1]}" if self.inode else ""
        if self.name:
            return f"netns-{self.name}{suffix}"
        if self.pid:
            return f"pid-{self.pid}{suffix}"
        return "host"

    def describe(self) -> str:
        if self.name:
            where = f"namespace {self.name}"
            return where + (f" (the namespace that had this name, still held by {self.via})" if self.via else "")
        if self.pid:
            return f"the namespace of pid {self.pid}" + (f" (the process is gone; the namespace is held by {self.via})"
                                                          if self.via else "")
        return "the host"

    def argv(self, argv: list[str]) -> list[str]:
        """Run `argv` inside this namespace."""
        if self.via:
            return ["nsenter", f"--net={self.via}", "--", *argv]
        if self.name:
            return netns.exec_argv(self.name, argv)
        if self.pid:
            return ["nsenter", f"--net=/proc/{self.pid}/ns/net", "--", *argv]
        return argv

    def netns_path(self) -> str | None:
        if self.via:
            return self.via
        if self.name:
            return str(netns.NETNS_DIR / self.name)
        if self.pid:
            return f"/proc/{self.pid}/ns/net"
        return None

    def current_inode(self) -> tuple[int, int] | None:
        """The inode of the namespace this scope's name, pid or path leads to now."""
        return netns.inode(self.netns_path() or "/proc/self/ns/net")

    def pinned(self) -> Scope:
        """This scope with the inode of the namespace it leads to now (what a record keeps)."""
        return self if self.inode is not None else dataclasses.replace(self, inode=self.current_inode())

    def is_host(self) -> bool:
        """Is the namespace this scope leads to the host's (init's, or kshock's own)? When that
        cannot be told, yes: the SSH guard errs on the side of guarding."""
        if self.name is None and self.pid is None and self.via is None:
            return True
        here = self.current_inode()
        return here is None or here in netns.host_inodes()


def same_namespace(a: Scope, b: Scope) -> bool:
    """Do two scopes name one namespace? By inode when both know it, else by name and pid."""
    if a.inode is not None and b.inode is not None:
        return a.inode == b.inode
    return (a.name, a.pid) == (b.name, b.pid)


def locate(scope: Scope) -> Scope | None:
    """Where a recorded namespace is now: the scope itself while its name or pid still leads to
    it, the scope reached through another holder (`via`) once they do not, or None when nothing
    holds it any more — then the kernel has freed it, and its rules went with it."""
    if scope.name is None and scope.pid is None:
        return scope  # the host's namespace lives as long as the machine
    now = netns.inode(scope.netns_path())
    if scope.inode is None:  # a record from before inodes were kept: its name or pid is all there is
        return scope if now is not None else None
    if now == scope.inode:
        return dataclasses.replace(scope, via=None) if scope.via else scope
    found = netns.holder(scope.inode)
    return dataclasses.replace(scope, via=found) if found else None


def resolve_scope(name: str | None, pid: int | None) -> Scope:
    """The scope --netns NAME / --pid PID (or neither: the host) names, with its inode."""
    if name is not None and pid is not None:
        raise UserError("give --netns or --pid, not both", "a fault applies to one network namespace")
    if name is not None:
        netns.check_name(name)
        if not netns.exists(name):
            known = ", ".join(netns.names()) or "none"
            raise UserError(f"there is no network namespace {name!r}", f"choose one of: {known}")
        return Scope(name=name).pinned()
    if pid is not None:
        if pid <= 0 or not os.path.exists(f"/proc/{pid}/ns/net"):
            raise UserError(f"there is no process {pid}", "give the PID of a running process (e.g. a container's)")
        return Scope(pid=pid).pinned()
    return Scope().pinned()
