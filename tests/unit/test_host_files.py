"""Files a user names: only regular files are read, text only up to its bound, and every refusal
is one line (issue 10: `decode` of a symlink to /dev/zero grew to 8.4 GB, a rule file pointing at
it to 2.5-4.3 GB). The CLI runs in a child process with a memory ceiling; its peak RSS is measured."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import pytest

from cli_run import run_kshock
from kshock.host import files as inputs
from kshock.errors import UserError

ROOT = Path(__file__).resolve().parents[2]
CAPTURE = ROOT / "captures" / "lab-admin.pcap"
RULES = ROOT / "rules" / "drop-client.yaml"
MEMORY_BOUND_MB = 400

CAPTURE_HINT = "give a pcap or pcapng saved as an ordinary file (save a pipe's output to a file first)"
RULES_HINT = "give a rule file saved as an ordinary file"
KINDS = {"zero": "a character device", "urandom": "a character device", "fifo": "a FIFO (named pipe)",
         "dir": "a directory"}


@pytest.fixture
def specials(tmp_path: Path) -> Path:
    """zero.x -> /dev/zero, urandom.x -> /dev/urandom, a FIFO nobody writes to, a directory."""
    for suffix in ("pcap", "yaml"):
        (tmp_path / f"zero.{suffix}").symlink_to("/dev/zero")
        (tmp_path / f"urandom.{suffix}").symlink_to("/dev/urandom")
        os.mkfifo(tmp_path / f"fifo.{suffix}")
        (tmp_path / f"dir.{suffix}").mkdir()
    return tmp_path


def _refusal(name: str, kind: str, hint: str) -> str:
    return f"kshock: {name} is {kind}, not a regular file (kshock reads only regular files) — {hint}\n"


def _assert_refused(outcome, expected: str) -> None:
    assert outcome.returncode == 2, outcome
    assert outcome.stderr == expected
    assert "Traceback" not in outcome.stderr and outcome.stdout == ""
    assert outcome.maxrss_mb < MEMORY_BOUND_MB, outcome.maxrss_mb
    assert outcome.seconds < 10, outcome.seconds


@pytest.mark.parametrize("special", sorted(KINDS))
def test_decode_reads_only_regular_files(specials, special):
    name = f"{special}.pcap"
    _assert_refused(run_kshock("decode", name, cwd=specials), _refusal(name, KINDS[special], CAPTURE_HINT))


@pytest.mark.parametrize("special", sorted(KINDS))
def test_compile_explain_and_replay_read_only_regular_rule_files(specials, special):
    name = f"{special}.yaml"
    expected = _refusal(name, KINDS[special], RULES_HINT)
    _assert_refused(run_kshock("compile", name, cwd=specials), expected)
    _assert_refused(run_kshock("explain", name, cwd=specials), expected)
    _assert_refused(run_kshock("replay", str(CAPTURE), "--rules", name, cwd=specials), expected)


@pytest.mark.parametrize("special", ["zero", "fifo"])
def test_replay_and_topic_ids_read_only_regular_captures(specials, special):
    name = f"{special}.pcap"
    expected = _refusal(name, KINDS[special], CAPTURE_HINT)
    _assert_refused(run_kshock("replay", name, "--rules", str(RULES), cwd=specials), expected)
    _assert_refused(run_kshock("compile", str(RULES), "--topic-ids", name, cwd=specials), expected)


def test_shell_reads_only_regular_scripts_and_captures(specials):
    _assert_refused(run_kshock("shell", "--pcap", str(CAPTURE), "--script", "zero.yaml", cwd=specials),
                    _refusal("zero.yaml", KINDS["zero"], "give a script saved as an ordinary file"))
    _assert_refused(run_kshock("shell", "--pcap", "fifo.pcap", "--script", "-", cwd=specials),
                    _refusal("fifo.pcap", KINDS["fifo"], CAPTURE_HINT))


def test_a_missing_file_is_one_line(tmp_path):
    _assert_refused(run_kshock("compile", "nowhere.yaml", cwd=tmp_path),
                    "kshock: cannot read nowhere.yaml: No such file or directory — check the path and its "
                    "permissions\n")


# -- the text bound -------------------------------------------------------------------------

def test_text_over_the_bound_is_refused_and_the_variable_lifts_it(tmp_path, monkeypatch):
    path = tmp_path / "big.yaml"
    path.write_bytes(b"#" * ((1 << 20) + 1))
    monkeypatch.delenv(inputs.TEXT_LIMIT_ENV, raising=False)
    with pytest.raises(UserError) as caught:
        inputs.read_text(path, "rule file")
    assert str(caught.value) == (f"{path} is larger than 1 MiB, kshock's bound for a rule file — set "
                                 "KSHOCK_MAX_TEXT_MIB (MiB, at most 1024) to read a larger one")
    monkeypatch.setenv(inputs.TEXT_LIMIT_ENV, "2")
    assert len(inputs.read_text(path, "rule file")) == (1 << 20) + 1


@pytest.mark.parametrize("value", ["abc", "0", "1025", "99999999999", "1.5", "²"])
def test_a_bad_text_bound_is_one_line(tmp_path, monkeypatch, value):
    monkeypatch.setenv(inputs.TEXT_LIMIT_ENV, value)
    with pytest.raises(UserError) as caught:
        inputs.read_text(tmp_path / "x.yaml", "rule file")
    assert str(caught.value) == (f"KSHOCK_MAX_TEXT_MIB={value!r} is not a size in MiB — set it to a whole number "
                                 "from 1 to 1024, or unset it (default 1)")


def test_standard_input_is_read_up_to_the_bound(monkeypatch):
    monkeypatch.delenv(inputs.TEXT_LIMIT_ENV, raising=False)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"\0" * (3 << 20))))
    with pytest.raises(UserError) as caught:
        inputs.read_stdin_text("script")
    assert str(caught.value) == ("standard input holds more than 1 MiB, kshock's bound for a script — set "
                                 "KSHOCK_MAX_TEXT_MIB (MiB, at most 1024) to read more")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"stats\nquit\n")))
    assert inputs.read_stdin_text("script") == "stats\nquit\n"


def test_script_from_a_endless_stdin_is_bounded(tmp_path):
    outcome = run_kshock("shell", "--pcap", str(CAPTURE), "--script", "-", cwd=tmp_path, stdin=b"\0" * (2 << 20))
    _assert_refused(outcome, "kshock: standard input holds more than 1 MiB, kshock's bound for a script — set "
                             "KSHOCK_MAX_TEXT_MIB (MiB, at most 1024) to read more\n")


@pytest.mark.parametrize("data,expected", [
    (b"rules:\n  - name: a \xff\n", "x.yaml:2:13: the rule file is not UTF-8 text (byte 0xff)"),
    ("rules:\n# é ".encode() + b"\xff", "x.yaml:2:5: the rule file is not UTF-8 text (byte 0xff)"),
    ("rules:\n# café\n".encode("latin-1"), "x.yaml:2:6: the rule file is not UTF-8 text (byte 0xe9)"),
    ("rules:\n".encode("utf-16"), "x.yaml:1:1: the rule file is UTF-16 text (it starts with a UTF-16 byte-order mark)"),
    ("rules:\n".encode("utf-16-be").join([b"\xfe\xff", b""]),
     "x.yaml:1:1: the rule file is UTF-16 text (it starts with a UTF-16 byte-order mark)"),
])
def test_text_that_is_not_utf8_is_one_line(tmp_path, data, expected):
    path = tmp_path / "x.yaml"
    path.write_bytes(data)
    with pytest.raises(UserError) as caught:
        inputs.read_text(path, "rule file")
    assert str(caught.value) == f"{tmp_path}/{expected} — save it as UTF-8"


def test_a_utf8_byte_order_mark_is_dropped(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_bytes(b"\xef\xbb\xbfrules: []\n")
    assert inputs.read_text(path, "rule file") == "rules: []\n"


def test_the_shell_history_is_checked_before_prompt_toolkit_reads_it(specials, monkeypatch):
    monkeypatch.delenv(inputs.TEXT_LIMIT_ENV, raising=False)
    inputs.check_text_file(specials / "absent", "shell history")  # created later: fine
    with pytest.raises(UserError) as caught:
        inputs.check_text_file(specials / "zero.yaml", "shell history")
    assert str(caught.value) == _refusal(f"{specials}/zero.yaml", KINDS["zero"],
                                         "give a shell history saved as an ordinary file")[len("kshock: "):-1]
    big = specials / "history"
    big.write_bytes(b"x" * ((1 << 20) + 1))
    with pytest.raises(UserError) as caught:
        inputs.check_text_file(big, "shell history")
    assert str(caught.value) == (f"{big} is larger than 1 MiB, kshock's bound for a shell history — trim or remove "
                                 "it, or set KSHOCK_MAX_TEXT_MIB (MiB, at most 1024)")


# Where a user names a file: these modules read one only through kshock.host.files (no bare open()
# for reading, no Path.read_text/read_bytes), so no new reader forgets the bounds.
EDGE_READERS = ["cli.py", "capture", "replay", "apply/handlers.py",
                "shell"]


def _reads(path: Path) -> list[str]:
    import ast

    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call):
            continue
        if isinstance(node.func, ast.Attribute) and node.func.attr in ("read_text", "read_bytes"):
            found.append(f"{path.name}:{node.lineno} .{node.func.attr}()")
        if isinstance(node.func, ast.Name) and node.func.id == "open":
            mode = node.args[1] if len(node.args) > 1 else next((k.value for k in node.keywords if k.arg == "mode"),
                                                                 None)
            if not (isinstance(mode, ast.Constant) and set(str(mode.value)) & set("wax")):
                found.append(f"{path.name}:{node.lineno} open() for reading")
    return found


def test_edge_modules_read_user_files_only_through_inputs():
    import kshock

    package = Path(kshock.__file__).parent
    files = [p for entry in EDGE_READERS for p in ((package / entry).rglob("*.py") if (package / entry).is_dir()
                                                     else [package / entry])]
    assert len(files) > 6
    assert [read for path in files for read in _reads(path)] == []
