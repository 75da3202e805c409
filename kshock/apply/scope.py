"""EDGE: where a fault goes — the host, a named network namespace, or the namespace of a PID."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from kshock import netns
from kshock.errors import UserError


@dataclass(frozen=True, slots=True)
class Scope:
    """A network namespace: `name` for /run/netns/NAME, `pid` for /proc/PID/ns/net, neither for the host."""

    name: str | None = None
    pid: int | None = None

    @property
    def key(self) -> str:
        """A stable file-name-safe key for state files."""
        if self.name:
            return f"netns-{self.name}"
        if self.pid:
            return f"pid-{self.pid}"
        return "host"

    def describe(self) -> str:
        if self.name:
            return f"namespace {self.name}"
        if self.pid:
            return f"the namespace of pid {self.pid}"
        return "the host"

    def argv(self, argv: list[str]) -> list[str]:
        """Run `argv` inside this namespace."""
        if self.name:
            return netns.exec_argv(self.name, argv)
        if self.pid:
            return ["nsenter", f"--net=/proc/{self.pid}/ns/net", "--", *argv]
        return argv

    def netns_path(self) -> str | None:
        if self.name:
            return str(netns.NETNS_DIR / self.name)
        if self.pid:
            return f"/proc/{self.pid}/ns/net"
        return None


def resolve_scope(name: str | None, pid: int | None) -> Scope:
    if name and pid:
        raise UserError("give --netns or --pid, not both", "a fault applies to one network namespace")
    if name:
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name) or not netns.exists(name):
            known = ", ".join(netns.names()) or "none"
            raise UserError(f"there is no network namespace {name!r}", f"choose one of: {known}")
        return Scope(name=name)
    if pid is not None:
        if pid <= 0 or not os.path.exists(f"/proc/{pid}/ns/net"):
            raise UserError(f"there is no process {pid}", "give the PID of a running process (e.g. a container's)")
        return Scope(pid=pid)
    return Scope()
