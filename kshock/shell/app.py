"""EDGE: the interactive `kshock shell` — the prompt_toolkit application.

    frames pane     decoded frames scroll here (the live filter applies)
    ───────────
    output pane     what commands print
    kshock> _       the prompt: history, Tab completion, highlighting
    toolbar         capture rate, kernel drops, filter, applied rules with their countdown

A capture thread (sources.py) feeds the Session; the prompt never waits for it. The commands
are commands.py's, as in `--script` (script.py).
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from pathlib import Path

from prompt_toolkit.completion import Completer
from prompt_toolkit.lexers import Lexer

from kshock.errors import ExitStatus, UserError
from kshock.shell.commands import REGISTRY, Result, Shell, frame_header, frame_line, is_frame_number
from kshock.shell.completion import Vocabulary, complete, split_do


def history_path(explicit: str | None = None) -> Path:
    """~/.kshock_history, or $XDG_STATE_HOME/kshock/history when XDG_STATE_HOME is set."""
    if explicit:
        return Path(explicit)
    state = os.environ.get("XDG_STATE_HOME")
    if state:
        return Path(state) / "kshock" / "history"
    return Path.home() / ".kshock_history"


def vocabulary(shell: Shell) -> Vocabulary:
    from kshock.conditions import api_names

    session = shell.session
    with session.lock:
        clients, topics = tuple(session.client_ids()), tuple(session.topics())
    return Vocabulary(tuple(REGISTRY), clients, topics, tuple(r.spec.name for r in session.rules), tuple(api_names()))


def inline_error(text: str) -> str | None:
    """The condition error of a line being typed (for the toolbar), or None."""
    from kshock.conditions import ConditionError, parse_condition

    name, _, rest = text.lstrip().partition(" ")
    name = name.lower()
    if name == "when":
        at = split_do(rest)
        rest = rest[:at] if at is not None else rest
    elif name not in ("show", "filter") or rest.strip() in ("", "off") or is_frame_number(rest.strip()):
        return None
    if not rest.strip():
        return None
    try:
        parse_condition(rest.strip())
    except ConditionError as error:
        return error.message + (f" — {error.hint}" if error.hint else "")
    return None


# -- the interactive application -------------------------------------------------------------

class ShellApp:
    def __init__(self, shell: Shell, source, history: Path | None, *, input=None, output=None) -> None:
        from prompt_toolkit.application import Application
        from prompt_toolkit.history import FileHistory, InMemoryHistory
        from prompt_toolkit.key_binding import KeyBindings
        from prompt_toolkit.layout import ConditionalContainer, Float, FloatContainer, HSplit, Layout, Window
        from prompt_toolkit.layout.controls import FormattedTextControl
        from prompt_toolkit.layout.dimension import Dimension
        from prompt_toolkit.layout.menus import CompletionsMenu
        from prompt_toolkit.filters import Condition
        from prompt_toolkit.styles import Style
        from prompt_toolkit.widgets import TextArea

        self.shell = shell
        self.source = source
        self.confirming = False
        self.keep_faults = False
        self.rate = 0.0
        self._last_count = (time.monotonic(), 0)
        self._lines: dict[int, str] = {}
        self.output_log: list[str] = []  # everything the output pane showed (for tests)
        if history is not None:
            history.parent.mkdir(parents=True, exist_ok=True)
            hist = FileHistory(str(history))
        else:
            hist = InMemoryHistory()
        self.frames_window = Window(FormattedTextControl(self._frames_text), wrap_lines=False)
        self.output = TextArea(read_only=True, focusable=False, scrollbar=True, wrap_lines=False,
                               height=Dimension(min=3, preferred=14, max=30))
        self.input = TextArea(height=1, prompt=self._prompt, multiline=False, history=hist,
                              completer=_Completer(self), complete_while_typing=False,
                              accept_handler=self._accept, lexer=_Lexer(), style="class:input")
        error_line = ConditionalContainer(Window(FormattedTextControl(self._error_text), height=1),
                                          filter=Condition(lambda: self._inline_error() is not None))
        toolbar = Window(FormattedTextControl(self._toolbar), height=1, style="class:toolbar")
        rule = Window(height=1, char="─", style="class:line")
        body = HSplit([self.frames_window, rule, self.output, self.input, error_line, toolbar])
        root = FloatContainer(body, floats=[Float(xcursor=True, ycursor=True, content=CompletionsMenu(max_height=12))])
        keys = KeyBindings()

        @keys.add("c-c")
        def _cancel(event) -> None:
            if self.confirming:  # Ctrl-C at the question: the default, revert and leave
                self._leave(revert=True)
                return
            event.current_buffer.reset()

        @keys.add("c-d")
        def _eof(event) -> None:
            if event.current_buffer.text:
                event.current_buffer.delete()
            else:
                self._request_quit(keep=False)

        style = Style.from_dict({
            "toolbar": "reverse", "toolbar.drops": "bg:ansired fg:ansiwhite bold", "line": "fg:ansibrightblack",
            "error": "fg:ansired", "inline-error": "fg:ansired italic", "command": "bold",
            "field": "fg:ansicyan", "string": "fg:ansigreen", "keyword": "fg:ansimagenta", "number": "fg:ansiyellow",
            "header": "bold underline",
        })
        self.app = Application(layout=Layout(root, focused_element=self.input), key_bindings=keys, style=style,
                               full_screen=True, refresh_interval=0.25, input=input, output=output)

    # -- running -----------------------------------------------------------------------------

    def run(self) -> int:
        return asyncio.run(self.run_async())

    async def run_async(self) -> int:
        self.source.start()
        self._echo(f"capturing {self.shell.session.source}; type help, Tab completes, Ctrl-D leaves")
        ticker = asyncio.ensure_future(self._tick())
        try:
            await self.app.run_async()
        finally:
            ticker.cancel()
            if not self.keep_faults:
                self.shell.revert_all()
            self.source.stop()
        return ExitStatus.OK

    async def _tick(self) -> None:
        """Once a second: the frame rate, and rules whose time is up."""
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            before, count = self._last_count
            current = self.shell.session.frame_count
            self.rate = (current - count) / max(1e-6, now - before)
            self._last_count = (now, current)
            try:
                for rule in self.shell.expire():
                    self._echo(f"rule {rule.spec.name} expired and was removed")
            except UserError as error:
                self._echo(str(error), error=True)

    # -- the prompt --------------------------------------------------------------------------

    def _prompt(self):
        if self.confirming:
            active = len(self.shell.session.active_rules())
            return [("bold", f"{active} rules are still applied. Revert them before leaving? [Y/n] ")]
        return [("bold", "kshock> ")]

    def _accept(self, buffer) -> bool:
        from prompt_toolkit.document import Document

        text = buffer.text
        if self.confirming:
            answer = text.strip().lower()
            if answer in ("", "y", "yes"):
                self._leave(revert=True)
            elif answer in ("n", "no"):
                self._leave(revert=False)
            else:
                self._echo("answer y (revert, the default) or n (leave them applied)", error=True)
            return False
        if not text.strip():
            return False
        self._echo(f"kshock> {text}")
        result = self.execute(text)
        if result.quit:
            self._request_quit(result.keep_faults)
            return False
        if result.prefill:  # on the prompt, ready to edit, once the buffer has been reset
            prefill = Document(result.prefill, len(result.prefill))
            asyncio.get_running_loop().call_soon(lambda: setattr(buffer, "document", prefill))
        return False

    def execute(self, text: str) -> Result:
        result = self.shell.execute(text)
        if result.wait_s:
            result = Result("wait is for scripts; the capture runs by itself here")
        if result.text:
            self._echo(result.text, error=not result.ok)
        return result

    def _request_quit(self, keep: bool) -> None:
        if keep or not self.shell.session.active_rules():
            self._leave(revert=not keep)
            return
        self.confirming = True

    def _leave(self, revert: bool) -> None:
        self.confirming = False
        self.keep_faults = not revert
        if revert:
            names = self.shell.revert_all()
            if names:
                self._echo("reverted: " + ", ".join(names))
        self.app.exit(result=ExitStatus.OK)

    # -- what is drawn -----------------------------------------------------------------------

    def _echo(self, text: str, error: bool = False) -> None:
        from prompt_toolkit.document import Document

        old = self.output.text
        lines = (old + "\n" if old else "") + ("kshock: " + text if error else text)
        kept = lines.split("\n")[-2000:]
        joined = "\n".join(kept)
        self.output.buffer.set_document(Document(joined, len(joined)), bypass_readonly=True)
        self.output_log.append(("kshock: " + text) if error else text)

    def _frames_text(self):
        session = self.shell.session
        info = self.frames_window.render_info
        rows = max(2, info.window_height if info is not None else 20)
        with session.lock:
            numbers = list(session.live)[-(rows - 1):]
            frames = [(n, session.frame(n)) for n in numbers]
        lines = []
        for number, frame in frames:
            if frame is None:
                continue
            line = self._lines.get(number)
            if line is None:
                line = self._lines[number] = frame_line(number, frame)
        if len(self._lines) > 4 * rows + 1000:
            keep = set(numbers)
            self._lines = {n: v for n, v in self._lines.items() if n in keep}
        for number, frame in frames:
            if frame is not None:
                lines.append(self._lines.get(number) or frame_line(number, frame))
        out = [("class:header", frame_header() + "\n")]
        out += [("", "\n".join(lines))]
        return out

    def _toolbar(self):
        session = self.shell.session
        parts = [("class:toolbar", f" {session.source} | {self.rate:,.0f} frames/s | {session.frame_count:,} frames ")]
        drops = session.kernel_drops
        parts.append(("class:toolbar.drops" if drops else "class:toolbar", f"| kernel drops {drops:,} "))
        if session.filter_text:
            parts.append(("class:toolbar", f"| filter: {session.filter_text} "))
        active = session.active_rules()
        if active:
            now = self.shell.clock()
            faults = ", ".join(f"{r.spec.name} {_countdown(r.expires_at - now)}" for r in active)
            parts.append(("class:toolbar", f"| applied: {faults} "))
        if session.source_problem:
            parts.append(("class:toolbar.drops", f"| {session.source_problem} "))
        elif session.source_done:
            parts.append(("class:toolbar", "| end of file "))
        return parts

    def _inline_error(self) -> str | None:
        if self.confirming:
            return None
        return inline_error(self.input.text)

    def _error_text(self):
        return [("class:inline-error", "  " + (self._inline_error() or ""))]


def _countdown(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


class _Completer(Completer):
    """prompt_toolkit's side of completion.complete (and file names for save/load)."""

    def __init__(self, owner: ShellApp) -> None:
        from prompt_toolkit.completion import PathCompleter

        self.owner = owner
        self.paths = PathCompleter(expanduser=True)

    def get_completions(self, document, complete_event):
        from prompt_toolkit.completion import Completion
        from prompt_toolkit.document import Document

        text = document.text_before_cursor
        head = text.lstrip().split(" ", 1)
        if len(head) == 2 and head[0].lower() in ("save", "load"):
            yield from self.paths.get_completions(Document(head[1], len(head[1])), complete_event)
            return
        for suggestion in complete(text, vocabulary(self.owner.shell)):
            yield Completion(suggestion.text, suggestion.start, display_meta=suggestion.meta)


_WORDS = re.compile(r'"(?:[^"\\]|\\.)*"?|[A-Za-z_][\w.]*|-?[0-9]+(?:\.[0-9]+)?%?|\S')


class _Lexer(Lexer):
    """Colours for the line being typed: the command, fields, strings, keywords."""

    def lex_document(self, document):
        from kshock.conditions import FIELDS

        keywords = {"and", "or", "not", "in", "contains", "matches", "do", "for", "as", "off"}

        def line(number: int):
            text = document.lines[number]
            out = []
            at = 0
            first = True
            for match in _WORDS.finditer(text):
                if match.start() > at:
                    out.append(("", text[at:match.start()]))
                word = match.group()
                if first:
                    style = "class:command"
                    first = False
                elif word.startswith('"'):
                    style = "class:string"
                elif word.lower() in keywords:
                    style = "class:keyword"
                elif word in FIELDS:
                    style = "class:field"
                elif word[0].isdigit() or word[0] == "-":
                    style = "class:number"
                else:
                    style = ""
                out.append((style, word))
                at = match.end()
            out.append(("", text[at:]))
            return out

        return line


__all__ = ["ShellApp", "history_path", "inline_error", "vocabulary"]
