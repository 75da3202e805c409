"""Errors a person can act on: what went wrong, and what to do about it."""

from __future__ import annotations

import enum


class ExitStatus(enum.IntEnum):
    OK = 0
    FAILED = 1
    USAGE = 2  # bad usage or an environment that cannot do what was asked
    INTERRUPTED = 130


class UserError(Exception):
    """A failure the user can fix; printed as one line, never as a traceback."""

    status = ExitStatus.USAGE

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} — {self.hint}" if self.hint else self.message


class OperationFailed(UserError):
    """The environment was fine but the operation did not succeed (exit 1)."""

    status = ExitStatus.FAILED
