"""Rule files are read within bounds and as written: YAML depth and size, numbers of bounded
length read in plain decimal, values echoed short; every problem one `file:line[:col]: key: what
— what to do` (issue 10: 50k-deep YAML, non-UTF-8 files, 5,000-digit ports and counts, a 400-digit
rate and a 70,000-byte client id were tracebacks; `port: 2:33:12` was read as 9192)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cli_run import run_kshock
from kshock.rules.rulefile import MAX_YAML_DEPTH, MAX_YAML_NODES, RuleFileError, parse_rule_file

PORT_HINT = "use a number from 1 to 65535"
AS_WRITTEN = "write it in plain decimal digits, 1 to 65535 (YAML 1.1 reads 2:33:12 as 9192, 010 as 8)"


def _rule(**lines: str) -> str:
    fields = {"name": "r1", "match": "api == Produce", "action": "drop", **lines}
    return "rules:\n  - " + "\n    ".join(f"{key}: {value}" for key, value in fields.items()) + "\n"


def _error(text: str) -> str:
    with pytest.raises(RuleFileError) as caught:
        parse_rule_file(text, "f.yaml")
    return str(caught.value)


def test_50k_deep_yaml_is_one_error():
    text = "rules: " + "[" * 50000 + "]" * 50000 + "\n"
    column = len("rules: ") + MAX_YAML_DEPTH  # the 17th level opens one past the 16th
    assert _error(text) == (
        f"f.yaml:1:{column}: the YAML is nested more than 16 levels deep — a rule file needs six levels: see "
        f"rules/*.yaml\n  {text[:120]}…\n  {' ' * (column - 1)}^")
    assert _error("rules:\n" + "".join("  " * i + "- \n" for i in range(1, 40))).startswith("f.yaml:17:")


def test_a_yaml_of_too_many_values_is_one_error():
    message = _error("rules: [" + ",".join(["1"] * MAX_YAML_NODES) + "]\n").split("\n")[0]
    column = len("rules: [") + 2 * (MAX_YAML_NODES - 3) + 1  # the 20,001st node (the mapping, `rules`, the list)
    assert message == (f"f.yaml:1:{column}: the YAML is more than 20000 values long — split the rules into several "
                       "files")


@pytest.mark.parametrize("port,message,hint", [
    ("9" * 5000, "a 5000-digit number is not a TCP port", PORT_HINT),
    ("2:33:12", "2:33:12 is not a TCP port as written", AS_WRITTEN),
    ("010", "010 is not a TCP port as written", AS_WRITTEN),
    ("0x2384", "0x2384 is not a TCP port as written", AS_WRITTEN),
    ("9_092", "9_092 is not a TCP port as written", AS_WRITTEN),
    ("+9092", "+9092 is not a TCP port as written", AS_WRITTEN),
    ("70000", "70000 is not a TCP port", PORT_HINT),
    ("0", "0 is not a TCP port", PORT_HINT),
    ('"9092"', "'9092' is not a TCP port", PORT_HINT),
])
def test_ports_are_read_as_written_or_refused(port, message, hint):
    assert _error(_rule(target=f"{{port: {port}}}")) == f"f.yaml:5: target.port: {message} — {hint}"
    assert _error(_rule(target=f"{{ports: [9092, {port}]}}")) == f"f.yaml:5: target.ports: {message} — {hint}"


def test_a_plain_port_is_still_a_port():
    (spec,) = parse_rule_file(_rule(target="{ports: [9092, 19092, 1, 65535]}"))
    assert spec.target.ports == (9092, 19092, 1, 65535)


@pytest.mark.parametrize("trigger", ["every " + "9" * 5000, "{every: " + "9" * 5000 + "}"])
def test_a_5000_digit_count_is_one_error(trigger):
    assert _error(_rule(trigger=trigger)) == (
        "f.yaml:5: trigger: a 5000-digit number is not a packet count — use a whole number from 2 to 1000000: "
        "every 5 acts on every 5th matching packet")


@pytest.mark.parametrize("action,message", [
    ("rate " + "9" * 400 + "mbit",
     "'rate 99999999999999999999999999999999999'… (409 characters) is not a rate — e.g. rate 1mbit, rate 500kbit "
     "(units: bit, kbit, mbit, gbit)"),
    ("rate 999999999999gbit", "999999999999gbit is faster than kshock shapes — use at most 1000gbit"),
    ("delay " + "9" * 400 + "ms", f"delay '{'9' * 40}'… (402 characters) is not a time — "
     "write a number and a unit: 200ms, 1.5s, 500us"),
    ("delay 3601s", "delay 3601s is longer than kshock delays — use at most 3600s"),
    ("delay 1s jitter 99999999s", "jitter 99999999s is longer than kshock delays — use at most 3600s"),
    ("loss " + "9" * 400 + "%", f"'{'9' * 40}'… (401 characters) is not a percentage — "
     "write it with a % sign, e.g. loss 10%"),
])
def test_huge_numbers_in_actions_are_one_error(action, message):
    target = "{port: 9092, direction: egress}"
    assert _error(_rule(action=action, target=target)) == f"f.yaml:4: action: {message}"


def test_a_huge_duration_is_one_error():
    assert _error(_rule(duration="9" * 400 + "s")) == (
        f"f.yaml:5: duration: '{'9' * 40}'… (401 characters) is not a duration — "
        "e.g. 90s, 5m, 1h or 1h30m")
    # YAML 1.1 reads 1:30 as the int 90: it is text here, and not a duration
    assert _error(_rule(duration="1:30")) == "f.yaml:5: duration: '1:30' is not a duration — e.g. 90s, 5m, 1h or 1h30m"


def test_a_70000_byte_client_id_is_one_error_with_a_short_caret():
    text = _rule(match='client_id == "' + "a" * 70000 + '"')
    line = text.splitlines()[2]
    at = line.index('"')  # under 30 characters in: the window starts at the line's start
    assert _error(text) == (
        f"f.yaml:3:{at + 1}: match: client_id is at most 32767 bytes on the wire (an int16 length), and this one is "
        "70000 — no Kafka frame carries a longer client_id\n"
        f"  {line[:120]}…\n"
        f"  {' ' * at}{'^' * (120 - at)}")


def test_a_control_character_is_one_line_and_not_echoed():
    assert _error(_rule() + "# \x00\x1b[2J\n") == (
        "f.yaml:5:3: character U+0000 is not allowed in YAML — remove it (control characters have no place in a rule "
        "file)\n  # \ufffd\ufffd[2J\n    ^")


# -- through the command line: the file's bytes --------------------------------------------------

@pytest.mark.parametrize("data,expected", [
    (b"rules:\n  - name: r\xff1\n", "x.yaml:2:12: the rule file is not UTF-8 text (byte 0xff)"),
    (_rule(match='client_id == "café"').encode("latin-1"), "x.yaml:3:29: the rule file is not UTF-8 text (byte 0xe9)"),
    (_rule().encode("utf-16"), "x.yaml:1:1: the rule file is UTF-16 text (it starts with a UTF-16 byte-order mark)"),
])
def test_a_rule_file_that_is_not_utf8_is_one_line_everywhere(tmp_path, data, expected):
    (tmp_path / "x.yaml").write_bytes(data)
    for argv in (["compile", "x.yaml"], ["explain", "x.yaml"], ["apply", "x.yaml", "--dry-run"],
                 ["replay", str(Path(__file__).resolve().parents[2] / "captures" / "lab-admin.pcap"),
                  "--rules", "x.yaml"]):
        outcome = run_kshock(*argv, cwd=tmp_path)
        assert (outcome.returncode, outcome.stderr, outcome.stdout) == (2, f"kshock: {expected} — save it as UTF-8\n",
                                                                         ""), argv


def test_deep_yaml_through_the_command_line_is_bounded(tmp_path):
    (tmp_path / "deep.yaml").write_text("rules: " + "[" * 50000 + "]" * 50000 + "\n")
    outcome = run_kshock("compile", "deep.yaml", cwd=tmp_path)
    assert outcome.returncode == 2 and "Traceback" not in outcome.stderr
    assert outcome.stderr.startswith("kshock: deep.yaml:1:23: the YAML is nested more than 16 levels deep — ")
    assert outcome.stderr.count("\n") == 3 and outcome.maxrss_mb < 400 and outcome.seconds < 10


# -- never anything but a RuleFileError --------------------------------------------------------

_PIECES = ["[", "]", "{", "}", "- ", ": ", "\n", "  ", "rules", "name", "port", "ports", "target", "trigger", "every ",
           "action", "rate ", "match", "api == Produce", "9", "0", "1:2", "0x", "_", "%", "mbit", "ms", '"', "'", "&a",
           "*a", "!!int ", "!!python/object ", "\t", "\x00", "é", "\ufeff", ",", "#", "?", "|", ">"]


@st.composite
def hostile_yaml(draw) -> str:
    """Rule-file-shaped text with deep nesting, long numbers and YAML syntax in random order."""
    kind = draw(st.sampled_from(["nest", "numbers", "pieces"]))
    n = draw(st.integers(0, 3000))
    if kind == "nest":
        opener = draw(st.sampled_from(["[", "{a: ", "- "]))
        return "rules: " + opener * n + "x"
    if kind == "numbers":
        key, template = draw(st.sampled_from([("target", "{{port: {}}}"), ("trigger", "every {}"),
                                               ("action", "rate {}kbit"), ("action", "delay {}ms"),
                                               ("duration", "{}s"), ("trigger", "probability 0.{}")]))
        digits = draw(st.sampled_from(["", "-", "0", "1:"])) + "9" * (n + 1)
        return _rule(**{key: template.format(digits)})
    return "".join(draw(st.lists(st.sampled_from(_PIECES), max_size=400)))


@settings(max_examples=100, deadline=None)
@given(hostile_yaml())
def test_hostile_rule_files_raise_only_rule_file_errors(text):
    try:
        parse_rule_file(text, "f.yaml")
    except RuleFileError as error:
        first, *rest = str(error).split("\n")
        assert first.startswith("f.yaml:") and len(first) < 400 and len(rest) in (0, 2)
