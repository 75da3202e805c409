"""EDGE: catch a C library's stderr in a file while Python keeps its own stderr.

librdkafka's default logger writes each line to the process's file descriptor 2 from whichever
thread logs it, at the moment it logs, so once the client handle is destroyed the file holds every
line it ever wrote. (confluent-kafka's `logger=` instead forces `log.queue=true`: lines then wait
in a queue that only poll() serves, and those logged during close() — LeaveGroup, the last
OffsetCommit — are lost.)
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path


class StderrCapture:
    def __init__(self, keep: Path | None = None) -> None:
        self._keep = keep
        self._fd: int | None = None
        self._saved: int | None = None
        self._stderr = None

    def __enter__(self) -> StderrCapture:
        sys.stderr.flush()
        if self._keep is not None:
            self._keep.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self._keep, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        else:
            self._fd, name = tempfile.mkstemp(prefix="kshock-rdkafka-", suffix=".log")
            os.unlink(name)
        self._saved = os.dup(2)
        os.dup2(self._fd, 2)
        # Python's own messages (tracebacks, warnings) still go where stderr went before.
        self._stderr = sys.stderr
        sys.stderr = open(os.dup(self._saved), "w", buffering=1, closefd=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()

    def restore(self) -> None:
        if self._saved is None:
            return
        sys.stderr.flush()
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._saved = None
        sys.stderr.close()
        sys.stderr = self._stderr

    def lines(self) -> list[str]:
        """Everything written so far (safe while writers are still running: reads by offset)."""
        if self._fd is None:
            return []
        chunks, offset = [], 0
        while chunk := os.pread(self._fd, 1 << 20, offset):
            chunks.append(chunk)
            offset += len(chunk)
        text = b"".join(chunks).decode("utf-8", "replace")
        complete = text.rsplit("\n", 1)[0] if "\n" in text else ""
        return complete.splitlines()
