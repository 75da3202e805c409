"""PURE: how long a workload may take on top of its duration, and its one failure type."""

from __future__ import annotations

SETUP_TIMEOUT_S = 10.0  # bootstrap + CreateTopics; an unreachable broker fails here
FLUSH_TIMEOUT_S = 10.0  # waiting for acknowledgements after the duration ends
CLOSE_TIMEOUT_S = 5.0  # close(): last commit, LeaveGroup, connections down
# The watchdog writes the report and exits at max(duration, SETUP_TIMEOUT_S) + GRACE_S, whatever the
# client is doing; the steps above fit inside it.
GRACE_S = 25.0


class WorkloadError(Exception):
    """The workload cannot go on; the message goes into the report's errors."""


def hard_limit_s(duration_s: float) -> float:
    return max(duration_s, SETUP_TIMEOUT_S) + GRACE_S
