"""EDGE: the demo's voice — coloured, with a progress bar on a terminal; plain lines elsewhere.

Colour and the redrawn progress bar need a terminal and no NO_COLOR (https://no-color.org) and
no TERM=dumb; without them every line is plain text written once, so a log or a pipe reads well.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import TextIO

_CODES = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "blue": "34", "magenta": "35",
          "cyan": "36"}
BAR_WIDTH = 24


def wants_colour(stream: TextIO, environ: dict | None = None) -> bool:
    env = os.environ if environ is None else environ
    if "NO_COLOR" in env or env.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class Narrator:
    """Writes the demo's story. `live`: a terminal that can redraw a line (progress bars)."""

    def __init__(self, out: TextIO | None = None, *, colour: bool | None = None, live: bool | None = None) -> None:
        self.out = out or sys.stdout
        self.colour = wants_colour(self.out) if colour is None else colour
        self.live = self.colour if live is None else live

    # -- text ------------------------------------------------------------------------------

    def paint(self, text: str, *styles: str) -> str:
        if not self.colour or not styles:
            return text
        return "\x1b[" + ";".join(_CODES[s] for s in styles) + "m" + text + "\x1b[0m"

    def line(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def banner(self, text: str) -> None:
        self.line(self.paint(text, "bold", "magenta"))

    def act(self, number: int, title: str, claim: str) -> None:
        self.line()
        self.line(self.paint(f"Act {number} — {title}", "bold", "cyan"))
        self.line(self.paint(f"  {claim}", "dim"))

    def say(self, text: str) -> None:
        self.line(f"  {text}")

    def applied(self, text: str) -> None:
        self.line(f"  {self.paint('applied', 'yellow', 'bold')}  {text}")

    def reverted(self, text: str) -> None:
        self.line(f"  {self.paint('reverted', 'yellow')} {text}")

    def saw(self, text: str) -> None:
        self.line(f"  {self.paint('measured', 'blue', 'bold')} {text}")

    def frame(self, text: str) -> None:
        self.line(self.paint(f"    {text}", "dim"))

    def check(self, ok: bool, text: str) -> None:
        mark = self.paint("✔", "green", "bold") if ok else self.paint("✘", "red", "bold")
        if not self.colour:
            mark = "ok  " if ok else "FAIL"
        self.line(f"  {mark} {text}")

    def warn(self, text: str) -> None:
        self.line(f"  {self.paint('!', 'yellow', 'bold')} {text}")

    # -- time passing ----------------------------------------------------------------------

    def wait(self, seconds: float, label: str, until: Callable[[], bool] | None = None,
             status: Callable[[], str] | None = None, tick_s: float = 0.1) -> float:
        """Wait `seconds` (or until `until()` is true), showing progress; returns the time waited.
        On a terminal a bar is redrawn in place; elsewhere one line says what is awaited."""
        started = time.monotonic()
        if not self.live:
            self.line(f"  … {label} (up to {seconds:g} s)" if until else f"  … {label} ({seconds:g} s)")
        while True:
            waited = time.monotonic() - started
            if waited >= seconds or (until is not None and until()):
                break
            if self.live:
                done = int(BAR_WIDTH * min(1.0, waited / seconds)) if seconds > 0 else BAR_WIDTH
                bar = "█" * done + "░" * (BAR_WIDTH - done)
                extra = f"  {status()}" if status else ""
                self.out.write(f"\r\x1b[2K  {self.paint(bar, 'cyan')} {label} {waited:4.1f}/{seconds:g} s{extra}")
                self.out.flush()
            time.sleep(min(tick_s, max(0.0, seconds - waited)))
        waited = time.monotonic() - started
        if self.live:
            self.out.write("\r\x1b[2K")
            self.out.flush()
        return waited

    def pause(self, prompt: str, stdin: TextIO | None = None) -> None:
        """Wait for Enter when a person is there; never block without a terminal."""
        source = stdin or sys.stdin
        if source is None or not getattr(source, "isatty", lambda: False)():
            self.line(self.paint(f"  ({prompt}: not a terminal, going on)", "dim"))
            return
        self.out.write(self.paint(f"  ⏎ {prompt} ", "bold"))
        self.out.flush()
        try:
            source.readline()
        except (OSError, ValueError):
            pass

    # -- tables ----------------------------------------------------------------------------

    def table(self, header: tuple[str, ...], rows: list[tuple[str, ...]], indent: int = 2) -> None:
        for text in render_table(header, rows):
            self.line(" " * indent + text)


def render_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(str(row[i])) for row in (header, *rows)) for i in range(len(header))]
    return ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip()
            for row in (header, *rows)]
