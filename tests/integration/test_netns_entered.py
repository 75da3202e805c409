"""host.netns.entered: the one way kshock enters a network namespace (live capture, the broker
probes, kernel replay's raw sockets). Sockets made inside stay there; the thread comes back, on
errors too; other threads never move; a namespace that is not there is one line and is never
made on the way."""

from __future__ import annotations

import os
import socket
import subprocess
import threading

import pytest

from conftest import scratch_namespace
from kshock.capture.live import LiveCapture
from kshock.errors import UserError
from kshock.host import netns
from kshock.host.probe import connect


def _here() -> int:
    return os.stat("/proc/thread-self/ns/net").st_ino


@pytest.fixture
def namespace():
    with scratch_namespace(f"kse-{os.getpid()}") as name:
        yield name


def test_a_socket_made_inside_stays_and_the_thread_comes_back(namespace):
    home = _here()
    target = os.stat(f"/run/netns/{namespace}").st_ino
    seen_by_other = []
    go = threading.Event()
    other = threading.Thread(target=lambda: (go.wait(10), seen_by_other.append(_here())))
    other.start()  # a thread already running when this one enters
    with netns.entered(namespace):
        assert _here() == target
        go.set()
        other.join()
        listener = socket.socket()
    assert _here() == home and seen_by_other == [home]
    with listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(OSError):  # not on the host's loopback ...
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        with pytest.raises(OSError):  # ... nor on the namespace's, whose lo is down
            connect("127.0.0.1", port, 1.0, netns=namespace).close()
        subprocess.run(["ip", "-n", namespace, "link", "set", "lo", "up"], check=True)
        connect("127.0.0.1", port, 1.0, netns=namespace).close()  # the probe's socket is in there too
    assert _here() == home


def test_the_thread_comes_back_on_an_error(namespace):
    home = _here()
    with pytest.raises(KeyError):
        with netns.entered(namespace):
            raise KeyError
    assert _here() == home


def test_none_stays_where_it_is():
    home = _here()
    with netns.entered(None):
        assert _here() == home


@pytest.mark.parametrize("enter", [
    lambda name: netns.entered(name).__enter__(),
    lambda name: connect("127.0.0.1", 9, 1.0, netns=name),
    lambda name: LiveCapture({9092}, netns=name).open(),
], ids=["entered", "probe", "live-capture"])
def test_a_missing_namespace_is_one_line_and_never_made(enter):
    if os.geteuid() != 0:
        pytest.skip("live capture checks for root first")
    name = f"kse-{os.getpid()}-gone"
    home = _here()
    with pytest.raises(UserError) as raised:
        enter(name)
    assert str(raised.value) == f"there is no network namespace '{name}' — list them with `ip netns list`"
    assert not os.path.exists(f"/run/netns/{name}") and _here() == home


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_no_descriptor_is_left_open_on_any_path(namespace):
    before = _open_fds()
    for _ in range(3):
        with netns.entered(namespace):
            pass
        with pytest.raises(RuntimeError), netns.entered(namespace):
            raise RuntimeError("inside")
        with pytest.raises(UserError), netns.entered(f"{namespace}-absent"):
            pass
    assert _open_fds() == before
