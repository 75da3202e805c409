"""The interactive application, driven by keystrokes through prompt_toolkit's pipe input."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
from prompt_toolkit.data_structures import Size
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from prompt_toolkit.output.vt100 import Vt100_Output

from kshock.shell.app import ShellApp, history_path, inline_error
from kshock.shell.commands import Shell
from kshock.shell.session import Session
from kshock.shell.sources import PcapSource

MIXED = Path(__file__).resolve().parents[2] / "captures" / "lab-mixed.pcap"


@pytest.fixture(scope="module")
def source() -> PcapSource:
    session = Session((9092,))
    loaded = PcapSource(str(MIXED), session)
    loaded.run_to_end()
    return loaded


def drive(source: PcapSource, steps, *, history: Path | None = None, output=None):
    """Run the app; `steps` is a list of (keys to send, check to run afterwards or None)."""
    source.session.rules.clear()
    source.session.set_filter(None, None)

    async def main():
        with create_pipe_input() as pipe:
            app = ShellApp(Shell(source.session), source, history, input=pipe, output=output or DummyOutput())
            task = asyncio.ensure_future(app.run_async())
            await asyncio.sleep(0.2)
            for keys, check in steps:
                pipe.send_text(keys)
                await asyncio.sleep(0.15)
                if check is not None:
                    check(app)
            status = await asyncio.wait_for(task, 10)
            return app, status

    return asyncio.run(main())


def test_commands_run_and_print_into_the_output_pane(source):
    app, status = drive(source, [("stats\r", None), ("\x04", None)])
    assert status == 0
    text = "\n".join(app.output_log)
    assert "kshock> stats\n1598 frames in 9.3 s: 799 requests" in text


def test_pick_leaves_the_condition_on_the_prompt_ready_to_edit(source):
    seen = {}
    app, _ = drive(source, [
        ("pick 5\r", lambda app: seen.setdefault("prefill", app.input.text)),
        ("drop for 1m\r", None),
        ("rules\r", None),
        ("\x04", None),
    ])
    assert seen["prefill"] == 'when api == ApiVersions and client_id == "pay-admin" do '
    assert 'r1         pending                drop           api == ApiVersions and client_id == "pay-admin"' \
        in "\n".join(app.output_log)


def test_tab_completes_and_ctrl_c_cancels_the_line(source):
    seen = {}
    drive(source, [
        ("when api == Pro\t", lambda app: seen.setdefault("api", app.input.text)),
        (" and client_id == \"kp-o\t", lambda app: seen.setdefault("client", app.input.text)),
        ("\x03", lambda app: seen.setdefault("cancelled", app.input.text)),
        ("\x04", None),
    ])
    assert seen == {"api": "when api == Produce", "client": 'when api == Produce and client_id == "kp-orders"',
                    "cancelled": ""}


def test_an_error_prints_one_message_and_the_prompt_stays(source):
    seen = {}
    app, status = drive(source, [
        ("show api == Prodcue\r", lambda app: seen.setdefault("after_error", (app.input.text, app.app.is_running))),
        ("filter api == Metadata\r", None),
        ("\x04", None),
    ])
    assert seen["after_error"] == ("", True)
    assert "kshock: column 8: unknown API 'Prodcue' — did you mean Produce?\n  api == Prodcue\n         ^^^^^^^" \
        in "\n".join(app.output_log)
    assert "filter: api == Metadata" in app.output_log


def test_inline_errors_for_conditions_being_typed():
    assert inline_error("show api == Prodcue") == "column 8: unknown API 'Prodcue' — did you mean Produce?"
    assert inline_error("when api == Produce do drop") is None
    assert inline_error('when api == Produce and topic == "orders" do ') is None  # as pick leaves it
    assert inline_error("when api === Produce do drop").startswith("column 7: unexpected character '='")
    assert inline_error("filter off") is None
    assert inline_error("show 12") is None
    assert inline_error("stats") is None


def test_inline_errors_agree_with_what_the_line_does():
    """`show N` takes a frame number of at most 18 digits; past that the line is a condition,
    and the toolbar shows the error executing it would show."""
    shell = Shell(Session((9092,)))
    for line in ("show 12", "show " + "1" * 18, "show " + "1" * 19, "show ٣"):
        result = shell.execute(line)
        shown = inline_error(line)
        assert (shown is None) == (result.ok or not result.text.startswith("column")), line
        if shown is not None:
            assert result.text.startswith(shown), line


def test_history_is_kept_across_sessions(source, tmp_path):
    path = tmp_path / "history"
    drive(source, [("stats\r", None), ("\x04", None)], history=path)
    assert "+stats" in path.read_text()
    seen = {}
    drive(source, [("\x1b[A", lambda app: seen.setdefault("up", app.input.text)), ("\x03\x04", None)], history=path)
    assert seen["up"] == "stats"


def test_history_location(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert history_path() == tmp_path / "kshock" / "history"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert history_path() == tmp_path / ".kshock_history"
    assert history_path("/x/h") == Path("/x/h")


def test_the_screen_shows_frames_prompt_and_toolbar(source):
    screen = io.StringIO()
    output = Vt100_Output(screen, lambda: Size(rows=40, columns=140), term="xterm")
    drive(source, [("filter api == Metadata\r", None), ("\x04", None)], output=output)
    drawn = screen.getvalue()
    assert "Metadata v12" in drawn  # decoded frames in the frames pane
    assert "lab-mixed.pcap" in drawn and "1,598 frames" in drawn and "kernel drops 0" in drawn  # toolbar
    assert "filter: api == Metadata" in drawn
    assert "kshock>" in drawn
