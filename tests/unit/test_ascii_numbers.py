"""Numbers are plain ASCII decimal everywhere a person writes one: int()/float() and regex \\d
would also take Arabic-Indic digits ("٣"), underscores ("9_092"), "inf" and superscripts."""

from __future__ import annotations

import pytest

from kshock.cli import build_parser
from kshock.conditions import ConditionError, parse_condition
from kshock.errors import UserError
from kshock.rules.rulefile import parse_rule_file


@pytest.mark.parametrize("argv", [
    ["decode", "f.pcap", "--port", "٣"],
    ["decode", "f.pcap", "--port", "9_092"],
    ["decode", "f.pcap", "--port", "+9092"],
    ["decode", "f.pcap", "--port", " 9092"],
    ["decode", "f.pcap", "--port", "70000"],
    ["decode", "f.pcap", "--port", "0"],
    ["decode", "f.pcap", "--max-flow-mib", "٦٤"],
    ["compile", "--port", "٩٠٩٢"],
    ["explain", "x", "--port", "²"],
    ["replay", "f.pcap", "--rules", "r.yaml", "--port", "9_092"],
    ["apply", "--pid", "١٢"],
    ["revert", "--pid", "1_2"],
    ["lab", "up", "--clients", "٣"],
    ["lab", "up", "--port", "٣"],
    ["lab", "up", "--timeout", "inf"],
    ["lab", "up", "--timeout", "١"],
    ["lab", "traffic", "--duration", "nan"],
    ["lab", "record", "mixed", "o.pcap", "--duration", "٣"],
    ["apply", "--action", "drop", "--duration", "١m"],
    ["compile", "--action", "drop", "--duration", "1_0"],
    ["shell", "--port", "٣"],
    ["shell", "--buffer-mib", "6_4"],
    ["demo", "--act", "٣"],
    ["demo", "--act", "+3"],
])
def test_cli_refuses_non_ascii_decimal_numbers(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args(argv)
    assert stop.value.code == 2
    assert "argument" in capsys.readouterr().err


def test_cli_still_takes_plain_numbers():
    args = build_parser().parse_args(["decode", "f.pcap", "--port", "9092", "--port", "19092", "--max-flow-mib", "8"])
    assert args.port == [9092, 19092] and args.max_flow_mib == 8
    assert build_parser().parse_args(["lab", "up", "--timeout", "2.5"]).timeout == 2.5
    assert build_parser().parse_args(["shell", "--port", "9093"]).port == [9093]


def _rule(**fields: str) -> str:
    body = {"name": "r", "match": "api == Produce", "action": "drop", "target": "{direction: egress}", **fields}
    return "rules:\n  - " + "\n    ".join(f"{key}: {value}" for key, value in body.items()) + "\n"


@pytest.mark.parametrize("fields", [
    {"action": "rate ١mbit"},
    {"action": "delay ٢٠٠ms"},
    {"action": "loss ٣٠%"},
    {"duration": "١h"},
    {"duration": "'١٠s'"},
    {"trigger": "probability ٠.5"},
])
def test_rule_files_refuse_non_ascii_digits(fields):
    with pytest.raises(UserError):
        parse_rule_file(_rule(**fields), "<test>")


def test_rule_files_take_ascii_digits():
    (spec,) = parse_rule_file(_rule(action="rate 1mbit", duration="1h"), "<test>")
    assert spec.duration_s == 3600


@pytest.mark.parametrize("text", ["api == ٣", "partition == ٣", "records > ١٠", "src == ١.٢.٣.٤"])
def test_conditions_refuse_non_ascii_digits(text):
    with pytest.raises(ConditionError):
        parse_condition(text)


def test_shell_numbers_are_ascii():
    from kshock.shell.commands import Shell, ShellTarget
    from kshock.shell.session import Session

    shell = Shell(Session((9092,)), ShellTarget(live=False))
    for line in ("show ٣", "pick ٣", "pick ²", "wait ١", "wait inf", "wait 1_0"):
        result = shell.execute(line)
        assert not result.ok, line
    assert shell.execute("wait 0").ok


@pytest.mark.parametrize("argv", [
    ["kp-producer", "--rate", "١٠"], ["kp-producer", "--rate", "1e3"], ["kp-producer", "--rate", "inf"],
    ["kp-producer", "--partitions", "٣"], ["kp-producer", "--message-size", "1_00"],
    ["kp-producer", "--duration", "٣"],
])
def test_workloads_refuse_non_ascii_decimal_numbers(argv, capsys):
    from kshock.workloads.cli import build_parser as workload_parser

    with pytest.raises(SystemExit) as stop:
        workload_parser().parse_args([*argv, "--bootstrap", "127.0.0.1:9092", "--topic", "t"])
    assert stop.value.code == 2
    assert "error: argument" in capsys.readouterr().err
