"""Run the real CLI in a child process with a memory ceiling, and measure what it used.

The child gets RLIMIT_AS (so a regression fails the test instead of swapping the machine) and a
timeout. Its peak resident memory is the VmHWM the child reads of itself at exit: rusage's
ru_maxrss would count the test process too (a forked child starts as its copy, and Linux keeps
that high-water mark across exec)."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

MEMORY_CEILING = 1 << 30  # address space the child may map (the bound tests assert is lower)
# `python -m kshock`, reporting its own peak RSS (kB) to the file named in KSHOCK_TEST_PEAK at exit
_MAIN = """\
import atexit, os, sys

def _peak():
    with open("/proc/self/status") as status, open(os.environ["KSHOCK_TEST_PEAK"], "w") as out:
        out.write(next(line.split()[1] for line in status if line.startswith("VmHWM:")))

atexit.register(_peak)
from kshock.cli import main
sys.argv[0] = "kshock"
sys.exit(main())
"""


@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str
    maxrss_mb: float
    seconds: float


def run_kshock(*argv: str, cwd: str | None = None, env: dict | None = None, stdin: bytes = b"",
               timeout: float = 30.0) -> Outcome:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CEILING, MEMORY_CEILING))

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as inp, \
            tempfile.NamedTemporaryFile("r") as peak:
        inp.write(stdin)
        inp.seek(0)
        started = time.monotonic()
        child = subprocess.Popen([sys.executable, "-c", _MAIN, *argv], stdin=inp, stdout=out, stderr=err, cwd=cwd,
                                 env={**os.environ, **(env or {}), "KSHOCK_TEST_PEAK": peak.name}, preexec_fn=limit)
        try:
            child.wait(timeout)  # a hang (a FIFO's open) fails the test, it does not block it
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        seconds = time.monotonic() - started
        out.seek(0)
        err.seek(0)
        reported = peak.read().strip()
        return Outcome(child.returncode, out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace"),
                       int(reported) / 1024 if reported else float("inf"), seconds)
