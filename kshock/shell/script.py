"""EDGE: `kshock shell --script FILE` — the shell's commands without a terminal (demos, tests, CI).

    status = run_script(shell, source, read_script("demo.txt"), sys.stdout)

Each command is echoed like a transcript (`kshock> stats`) with what it printed; `--script -`
reads the commands from stdin.
"""

from __future__ import annotations

import time
from typing import TextIO

from kshock.errors import ExitStatus
from kshock.shell.commands import Shell


def read_script(path: str) -> list[str]:
    """The lines of a script file, or of stdin for "-" (size-bounded, as every input)."""
    from kshock.host.files import read_stdin_text, read_text

    return (read_stdin_text("script") if path == "-" else read_text(path, "script")).splitlines()


def run_script(shell: Shell, source, lines: list[str], out: TextIO) -> int:
    """Run commands one after the other, echoing each like a transcript. A capture file is read
    to its end first (deterministic numbers); a live capture runs alongside (use wait N).
    Exit status 1 when a command failed; applied rules are reverted at the end unless the
    script said `quit keep`."""
    failures = 0
    keep = False
    source.run_to_end()
    try:
        for line in lines:
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            out.write(f"kshock> {text}\n")
            result = shell.execute(text)
            if result.text:
                out.write((result.text if result.ok else f"kshock: {result.text}") + "\n")
            out.flush()
            failures += not result.ok
            if result.wait_s:
                time.sleep(result.wait_s)
            if result.quit:
                keep = result.keep_faults
                break
    finally:
        try:
            if not keep:
                names = shell.revert_all()
                if names:
                    out.write("reverted: " + ", ".join(names) + "\n")
            else:
                names = [r.spec.name for r in shell.session.active_rules()]
                if names:
                    out.write("left active: " + ", ".join(names) + " (kshock revert NAME removes them)\n")
        finally:
            source.stop()
    return ExitStatus.FAILED if failures else ExitStatus.OK


__all__ = ["read_script", "run_script"]
