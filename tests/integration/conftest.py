"""Fixtures for tests that need root, network namespaces and the real Tansu broker.

Every lab a test makes has a unique name and is removed in teardown, even when the test fails;
the session ends by checking that no namespace of ours is left.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

REQUIRED_TOOLS = ("ip", "ethtool", "tcpdump")
_counter = itertools.count(1)


def lab_skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root for network namespaces (run the suite as root, e.g. `sudo make test`)"
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    if missing:
        return f"missing system tools {missing}: run `make setup`"
    return None


def unique_lab_name() -> str:
    # Lab names are at most 10 characters; the pid keeps parallel runs apart.
    return f"t{os.getpid() % 100000}x{next(_counter)}"


def kshock(*args: str, timeout: float = 120, env: dict | None = None, check: bool = False) -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess, as a user would."""
    result = subprocess.run([sys.executable, "-m", "kshock", *args], capture_output=True, text=True,
                            timeout=timeout, env=env)
    if check and result.returncode != 0:
        raise AssertionError(f"kshock {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


@contextlib.contextmanager
def scratch_namespace(name: str) -> Iterator[str]:
    """An empty network namespace of the test's own, removed afterwards even when the test fails
    (the test is skipped, with the reason, where namespaces cannot be made)."""
    reason = lab_skip_reason()
    if reason:
        pytest.skip(reason)
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
        assert not os.path.exists(f"/run/netns/{name}"), f"namespace {name} was left behind"


def lab_namespaces(name: str) -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(f"ksl-{name}-")]


@dataclass
class Lab:
    name: str
    clients: int

    def kshock(self, command: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return kshock("lab", command, "--name", self.name, *args, **kwargs)

    def exec(self, client: str, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return self.kshock("exec", client, "--", *argv, timeout=timeout)


@pytest.fixture(scope="session")
def lab_environment() -> None:
    reason = lab_skip_reason()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def lab(lab_environment) -> Iterator[Lab]:
    """One lab (broker + 3 clients) shared by a test module; always removed afterwards."""
    name = unique_lab_name()
    made = Lab(name, clients=3)
    try:
        made.kshock("up", "--clients", "3", check=True)
        yield made
    finally:
        kshock("lab", "down", "--name", name)
        assert lab_namespaces(name) == [], "lab down left namespaces behind"


@pytest.fixture
def fresh_lab_name(lab_environment) -> Iterator[str]:
    """A name for a test that creates its own lab; whatever the test leaves is removed."""
    name = unique_lab_name()
    try:
        yield name
    finally:
        kshock("lab", "down", "--name", name)
