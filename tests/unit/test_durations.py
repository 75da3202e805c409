"""rules/durations, and --duration on every command: seconds or with a unit, one parser, one error."""

from __future__ import annotations

import pytest

from kshock.cli import build_parser
from kshock.rules.durations import parse_duration, parse_seconds, parse_unit_duration
from kshock.workloads.cli import build_parser as workloads_parser


@pytest.mark.parametrize("text, seconds", [
    ("90", 90.0), ("1.5", 1.5), ("0", 0.0), ("90s", 90.0), ("5m", 300.0), ("1h", 3600.0), ("1h30m", 5400.0),
    ("1.5h", 5400.0), ("500ms", 0.5), ("1d", 86400.0), ("5M", 300.0), ("1h 30m", 5400.0), ("999999999", 999999999.0),
])
def test_durations_in_both_forms(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5.", ".5", "1e3", "inf", "nan", "-5", "+5", " 5", "5 ", "١", "1_0", "٣m",
                                  "5x", "m", "1234567890", "1." + "0" * 10, "1:30", "5m5", "s5"])
def test_what_is_not_a_duration(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_seconds_take_no_unit_and_units_need_one():
    assert parse_seconds("2.5") == 2.5
    for text in ("5s", "inf", "1e3", "٣"):
        with pytest.raises(ValueError):
            parse_seconds(text)
    with pytest.raises(ValueError):
        parse_unit_duration("90")  # a rule file's `duration: 90` has no unit: rulefile says so


def _parse(argv: list[str], parser=None):
    return (parser or build_parser()).parse_args(argv)


@pytest.mark.parametrize("argv", [
    ["apply", "--action", "drop", "--duration", "{}"],
    ["compile", "--action", "drop", "--duration", "{}"],
    ["lab", "traffic", "--duration", "{}"],
    ["lab", "record", "mixed", "out.pcap", "--duration", "{}"],
])
@pytest.mark.parametrize("text, seconds", [("90", 90.0), ("2.5", 2.5), ("90s", 90.0), ("5m", 300.0), ("1h", 3600.0)])
def test_every_duration_option_takes_seconds_and_units(argv, text, seconds):
    assert _parse([word.replace("{}", text) for word in argv]).duration == seconds


def test_the_workloads_take_both_forms_too():
    common = ["kp-producer", "--bootstrap", "b:9092", "--client-id", "c", "--topic", "t", "--report", "r.json"]
    assert _parse(common, workloads_parser()).duration == 10.0
    assert _parse([*common, "--duration", "2.5"], workloads_parser()).duration == 2.5
    assert _parse([*common, "--duration", "2m"], workloads_parser()).duration == 120.0


@pytest.mark.parametrize("argv, error", [
    (["apply", "--duration", "abc"],
     "argument --duration: 'abc' is not a duration (write seconds (90, 2.5) or with a unit (90s, 5m, 1h))"),
    (["apply", "--duration", "0.5"], "argument --duration: 0.5 is out of range (use 1s to 24h)"),
    (["compile", "--duration", "2d"], "argument --duration: 2d is out of range (use 1s to 24h)"),
    (["lab", "traffic", "--duration", "0"], "argument --duration: 0 is out of range (use more than 0 and at most 1h)"),
    (["lab", "record", "mixed", "o.pcap", "--duration", "61m"],
     "argument --duration: 61m is out of range (use more than 0 and at most 1h)"),
    (["apply", "--duration", "9" * 5000],
     f"argument --duration: '{'9' * 40}'… (5000 characters) is not a duration (write seconds (90, 2.5) or with a "
     "unit (90s, 5m, 1h))"),
])
def test_a_bad_duration_is_one_line_that_says_what_to_write(argv, error, capsys):
    with pytest.raises(SystemExit) as stop:
        _parse(argv)
    assert stop.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(f"error: {error}")


def test_the_rule_from_the_command_line_gets_the_duration():
    from kshock.apply.handlers import specs_from_args

    (spec,) = specs_from_args(_parse(["compile", "--action", "drop", "--duration", "90"]))
    assert spec.duration_s == 90.0
    (spec,) = specs_from_args(_parse(["compile", "--action", "drop"]))
    assert spec.duration_s == 300.0


@pytest.mark.parametrize("seconds", [0.00001, 1e6, 240.0, 2.5, 0.1 + 0.2, 86400.0, 1e-9])
def test_seconds_text_reads_back_as_plain_decimal(seconds):
    from kshock.rules.durations import parse_seconds, seconds_text

    text = seconds_text(seconds)
    assert "e" not in text and parse_seconds(text) == pytest.approx(seconds, abs=1e-9)
