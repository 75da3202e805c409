"""Wire strings never reach the terminal raw: escape sequences, CR/LF, bells, bidi overrides and
line separators in a client id or topic are shown escaped (terminal_safe) in every human-readable
output: the decode table and the shell's show, show N, stats and pick."""

from __future__ import annotations

import io

import pytest
from kafka.protocol.producer import ProduceRequest

from wire_helpers import conversation, record_batch, request_frame

from kshock.replay import listing as decoding
from kshock.conditions import parse_condition
from kshock.capture.writer import write_pcap
from kshock.shell.commands import Shell, ShellTarget
from kshock.shell.session import Session
from kshock.wire.text import terminal_safe, terminal_safe_lines

EVIL_CLIENT = "evil\x1b[2J\x1b[31mRED\r\nkshock: fake line\x07"
EVIL_TOPIC = "t\u202eopic\u2028x\x85\x9b\x7f"
BAD = ("\x1b", "\r", "\x07", "\u202e", "\u2028", "\x85", "\x9b", "\x7f")


def _packets():
    T = ProduceRequest.TopicProduceData
    msg = ProduceRequest[3](transactional_id=None, acks=1, timeout_ms=1000, topic_data=[
        T(name=EVIL_TOPIC, partition_data=[T.PartitionProduceData(index=0, records=record_batch(1))])])
    return conversation([(request_frame(msg, client_id=EVIL_CLIENT), b"")])


def _clean(text: str) -> None:
    for ch in BAD:
        assert ch not in text, repr(ch)
    assert "\nkshock: fake line" not in text


def test_terminal_safe_escapes_like_repr():
    assert terminal_safe("plain é 日本 text") == "plain é 日本 text"
    assert terminal_safe(EVIL_CLIENT) == "evil\\x1b[2J\\x1b[31mRED\\x0d\\x0akshock: fake line\\x07"
    assert terminal_safe(EVIL_TOPIC) == "t\\u202eopic\\u2028x\\x85\\x9b\\x7f"
    assert terminal_safe("\u2066a\u2069\u2029\U000e0001") == "\\u2066a\\u2069\\u2029\\U000e0001"
    assert terminal_safe_lines("a\x1b\nb\rc") == "a\\x1b\nb\\x0dc"


def test_decode_table_escapes_wire_strings(tmp_path):
    path = tmp_path / "evil.pcap"
    write_pcap(str(path), 1, [(ts, raw) for ts, _link, raw in _packets()])
    run = decoding.open_run(str(path), [9092])
    out = io.StringIO()
    decoding.write_table(run, out)
    text = out.getvalue()
    _clean(text)
    assert "evil\\x1b[2J" in text
    assert len(text.splitlines()) == 2  # the header and the one frame: no injected line


@pytest.fixture
def shell() -> Shell:
    session = Session((9092,))
    session.feed_packets(_packets())
    session.finish()
    return Shell(session, ShellTarget(live=False), clock=lambda: 1_900_000_000.0)


@pytest.mark.parametrize("command", ["show", "show 1", "stats", "pick 1"])
def test_shell_commands_escape_wire_strings(shell, command):
    result = shell.execute(command)
    assert result.ok, result.text
    _clean(result.text)
    assert "evil" in result.text


def test_pick_condition_parses_back_to_the_wire_value(shell):
    condition = shell.execute("pick 1").text.splitlines()[0].split(": ", 1)[1]
    text = str(parse_condition(condition))
    _clean(text)
    assert frame_matches(shell, condition)


def frame_matches(shell: Shell, condition: str) -> bool:
    keep = shell.session.matcher(parse_condition(condition))
    return keep(shell.session.frame(1))
