"""Where kshock keeps what must outlive one command (labs, applied faults): /run/kshock.

/run is a tmpfs, so a reboot — which also empties the kernel's rules — forgets them too.
KSHOCK_RUN_DIR moves it (tests give each run a folder of its own).
"""

from __future__ import annotations

import os
from pathlib import Path

RUN_DIR_ENV = "KSHOCK_RUN_DIR"


def run_dir() -> Path:
    return Path(os.environ.get(RUN_DIR_ENV, "/run/kshock"))
