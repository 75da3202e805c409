"""EDGE: `kshock shell` — the capture sources, `--script`, and the prompt_toolkit application.

    frames pane     decoded frames scroll here (the live filter applies)
    ───────────
    output pane     what commands print
    kshock> _       the prompt: history, Tab completion, highlighting
    toolbar         capture rate, kernel drops, filter, applied rules with their countdown

A capture thread feeds the Session; the prompt never waits for it. `--script FILE` runs the
same commands without a terminal (demos, tests, CI); `--script -` reads them from stdin.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import threading
import time
from pathlib import Path
from typing import TextIO

from prompt_toolkit.completion import Completer
from prompt_toolkit.lexers import Lexer

from kshock.errors import ExitStatus, UserError
from kshock.shell.options import add_arguments  # noqa: F401  (the CLI's and tests' entry)
from kshock.shell.commands import REGISTRY, Result, Shell, ShellTarget, frame_header, frame_line
from kshock.shell.completion import Vocabulary, complete, split_do
from kshock.shell.session import Session

BATCH = 2048  # packets decoded per lock


# -- where packets come from -----------------------------------------------------------------

class PcapSource:
    """A capture file, read as fast as it decodes."""

    def __init__(self, path: str, session: Session) -> None:
        from kshock.capture.reader import CaptureReader

        self.reader = CaptureReader(path)  # a file that is not a capture fails here
        self.session = session
        session.source = os.path.basename(path)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def run_to_end(self) -> None:
        batch = []
        for packet in self.reader:
            batch.append(packet)
            if len(batch) >= BATCH:
                self.session.feed_packets(batch)
                batch = []
                if self._stop.is_set():
                    return
        self.session.feed_packets(batch)
        self.session.finish()
        self.session.source_problem = self.reader.problem
        self.session.source_done = True
        self.session.kernel_packets = self.reader.packets

    def start(self) -> None:
        if self.session.source_done:
            return
        self._thread = threading.Thread(target=self.run_to_end, name="kshock-pcap", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.reader.close()


class LiveSource:
    """An AF_PACKET socket (kshock.capture.live) emptied by one thread and decoded by another.

    The reader only moves packets from the kernel's buffer into memory, so a burst the decoder
    cannot follow waits here (up to MAX_BACKLOG packets) instead of overflowing the socket; the
    decoder catches up afterwards. Packets lost anyway are counted: the kernel's
    (PACKET_STATISTICS) and, past the backlog bound, ours — both go into `kernel_drops`."""

    MAX_BACKLOG = 2_000_000

    def __init__(self, capture, session: Session) -> None:
        import collections

        self.capture = capture
        self.session = session
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._backlog: collections.deque = collections.deque()
        self._pending = 0
        self.backlog_drops = 0
        self._threads: list[threading.Thread] = []
        self.error: BaseException | None = None
        self._switch_interval: float | None = None

    def start(self) -> None:
        if self._threads:
            return
        self.capture.open()
        # The reader gives up the GIL on every receive and, with the default 5 ms switch
        # interval, gets it back too late while the decoder is busy: bursts then overflow the
        # kernel's buffer. A 0.5 ms interval kept up with 29k requests/s (vs 25k) in
        # benchmarks/live_capture.py. Restored in stop().
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(self._switch_interval, 0.0005))
        self.session.source = self.capture.describe()
        self._threads = [threading.Thread(target=self._read, name="kshock-capture", daemon=True),
                         threading.Thread(target=self._decode, name="kshock-decode", daemon=True)]
        for thread in self._threads:
            thread.start()

    def run_to_end(self) -> None:
        self.start()

    def _read(self) -> None:
        import select

        capture = self.capture
        next_stats = 0.0
        try:  # emptying the socket comes before everything else we do (root may raise priority)
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), -10)
        except OSError:
            pass
        try:
            while not self._stop.is_set():
                batch = capture.read_ready(BATCH)
                if batch:
                    if self._pending + len(batch) > self.MAX_BACKLOG:
                        self.backlog_drops += len(batch)
                    else:
                        self._pending += len(batch)
                        self._backlog.append(batch)
                        self._ready.set()
                else:
                    select.select([capture], [], [], 0.1)
                now = time.monotonic()
                if now >= next_stats:
                    next_stats = now + 0.5
                    self._update_stats()
        except BaseException as error:  # shown in the toolbar; the prompt stays usable
            self.error = error
            self.session.source_problem = f"capture stopped: {error}"

    def _decode(self) -> None:
        backlog, session = self._backlog, self.session
        while True:
            try:
                batch = backlog.popleft()
            except IndexError:
                if self._stop.is_set():
                    return
                self._ready.wait(0.1)
                self._ready.clear()
                continue
            self._pending -= len(batch)
            session.feed_packets(batch)

    def _update_stats(self) -> None:
        stats = self.capture.stats()
        self.session.kernel_drops = stats.drops + self.backlog_drops
        self.session.kernel_packets = stats.packets

    def stop(self) -> None:
        self._stop.set()
        self._ready.set()
        for thread in self._threads:
            thread.join(timeout=30)
        if self.capture.is_open:
            self._update_stats()
        self.capture.close()
        if self._switch_interval is not None:
            sys.setswitchinterval(self._switch_interval)
            self._switch_interval = None


def open_source(args: argparse.Namespace, session: Session) -> tuple[ShellTarget, PcapSource | LiveSource]:
    """The capture source and the apply target the options ask for."""
    ports = tuple(session.ports)
    if args.pcap:
        if args.lab or args.netns or args.interface:
            raise UserError("--pcap reads a file; it does not go with --lab, --netns or --interface",
                            "give either a capture file or a place to capture live")
        return ShellTarget(live=False, ports=ports, direction=args.direction), PcapSource(args.pcap, session)
    from kshock.capture.live import LiveCapture

    interface, netns = args.interface, args.netns
    if netns is not None:  # never '' for the host, nor '.' or '..': the one namespace-name check
        from kshock.host.netns import check_name

        check_name(netns)
    if args.lab:
        if netns:
            raise UserError("give --lab or --netns, not both", "--lab NAME captures in the lab's broker namespace")
        from kshock.lab import state
        from kshock.lab.plan import validate_name

        lab = state.load(validate_name(args.lab))
        if lab is None:
            raise UserError(f"there is no lab {args.lab!r}", f"start one: kshock lab up --name {args.lab}")
        netns = lab.plan.broker.netns
        interface = interface or lab.plan.broker.ifname
        if not args.port:
            ports = (lab.plan.port,)
            session.ports = frozenset(ports)
            session.sniffer = type(session.sniffer)(ports=session.ports)
    capture = LiveCapture(ports, interface=interface, netns=netns, buffer_mib=args.buffer_mib)
    return ShellTarget(scope_name=netns, live=True, ports=ports, direction=args.direction), LiveSource(capture, session)


# -- the entry point ---------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    """`python -m kshock.shell`: the same as `kshock shell`, for before cli.py has it."""
    parser = argparse.ArgumentParser(prog="kshock shell", description=run_shell.__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return int(run_shell(args))
    except UserError as error:
        print(f"kshock: {error}", file=sys.stderr)
        return int(error.status)
    except KeyboardInterrupt:
        return ExitStatus.INTERRUPTED

def run_shell(args: argparse.Namespace) -> int:
    """`kshock shell [--lab NAME | --netns NAME] [--interface IF] [--pcap FILE] [--port N ...] [--script FILE]`:
    watch Kafka traffic, pick a frame, turn it into a fault, apply it, revert it."""
    for name, default in (("interface", None), ("netns", None), ("lab", None), ("port", None), ("pcap", None),
                          ("script", None), ("direction", "ingress"), ("buffer_mib", 64), ("history", None)):
        if not hasattr(args, name):
            setattr(args, name, default)
    ports = tuple(args.port or [9092])
    if not all(0 < p < 65536 for p in ports):
        raise UserError(f"--port {ports} is not a TCP port", "use 1 to 65535")
    session = Session(ports)
    target, source = open_source(args, session)
    shell = Shell(session, target)
    if args.script:
        lines = _script_lines(args.script)
        return run_script(shell, source, lines, sys.stdout)
    if not sys.stdin.isatty():
        raise UserError("kshock shell needs a terminal", "run it in one, or give the commands with --script FILE "
                        "(--script - reads them from stdin)")
    from kshock.host.files import check_text_file

    history = history_path(args.history)
    check_text_file(history, "shell history")  # (prompt_toolkit reads it whole: not /dev/zero)
    return ShellApp(shell, source, history).run()


def _script_lines(path: str) -> list[str]:
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
    elif name not in ("show", "filter") or rest.strip() in ("", "off") or (rest.strip().isascii() and rest.strip().isdigit()):
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
