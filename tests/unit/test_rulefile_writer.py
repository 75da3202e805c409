"""rules/rulefile_writer: what it writes, rulefile reads back into the same rules."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from kshock.conditions import parse_condition
from kshock.rules.rulefile import parse_rule_file
from kshock.rules.rulefile_writer import action_text, render_rule_file, rule_extras
from kshock.rules.spec import Action, RuleSpec, Target, Trigger

ROOT = Path(__file__).resolve().parents[2]


def _spec(name: str = "r1", match: str | None = "api == Produce", action: Action = Action("drop"), **changes) -> RuleSpec:
    condition = parse_condition(match) if match is not None else None
    return dataclasses.replace(RuleSpec(name, condition, action, Target(), 300.0), **changes)


def _same(specs: list[RuleSpec]) -> None:
    text = render_rule_file(specs)
    back = parse_rule_file(text, "<written>")
    assert [dataclasses.replace(s, source="") for s in back] == [dataclasses.replace(s, source="") for s in specs]
    assert render_rule_file(back) == text


@pytest.mark.parametrize("spec", [
    _spec(),
    _spec(match=None),
    _spec(match='client_id == "shop \\"front\\"" and topic in {"orders", "pay\\\\ments"}'),
    _spec(match='topic == "grüße ☃"'),
    _spec(action=Action("loss", percent=12.345678901)),
    _spec(action=Action("duplicate", percent=0.5)),
    _spec(action=Action("rate", rate_bit_s=1_000_000_000_000)),
    _spec(action=Action("rate", rate_bit_s=999_999_999_999)),
    _spec(action=Action("delay", delay_ms=0.123456789)),
    _spec(action=Action("delay", delay_ms=200.0, jitter_ms=0.0)),
    _spec(action=Action("delay", delay_ms=200.0, jitter_ms=20.5)),
    _spec(duration_s=1.5),
    _spec(duration_s=86400.0),
    _spec(duration_s=12345.678),
    _spec(trigger=Trigger("nth", every=7)),
    _spec(trigger=Trigger("probability", probability=0.000001)),
    _spec(trigger=Trigger("probability", probability=1 / 3)),
    _spec(trigger=Trigger("probability", probability=1.0)),
    _spec(trigger=Trigger("once-per-connection"), approximate=True),
    _spec(latch=True, target=Target((9092, 9093), "198.18.0.0/24", "veth+", "egress")),
], ids=lambda spec: str(spec.action) + "/" + spec.trigger.mode)
def test_one_rule_round_trips(spec):
    _same([spec])


def test_the_shipped_rule_files_round_trip():
    for path in sorted((ROOT / "rules").glob("*.yaml")):
        _same(parse_rule_file(path.read_text(), str(path)))


def test_words_the_shell_shows():
    assert action_text(Action("loss", percent=30.0)) == "loss 30%"
    assert action_text(Action("rate", rate_bit_s=1_000_000)) == "rate 1mbit"
    assert action_text(Action("rate", rate_bit_s=1_500_000)) == "rate 1500kbit"
    assert action_text(Action("rate", rate_bit_s=123)) == "rate 123bit"
    assert action_text(Action("delay", delay_ms=200.0, jitter_ms=20.0)) == "delay 200ms jitter 20ms"
    spec = _spec(trigger=Trigger("probability", probability=0.3), latch=True, approximate=True)
    assert rule_extras(spec) == ["trigger probability 0.3", "latch", "approximate"]
    assert render_rule_file([_spec(duration_s=120.0)]).splitlines() == [
        "# written by kshock shell", "rules:", "  - name: r1", '    match: "api == Produce"', "    action: drop",
        "    target: {ports: [9092], direction: ingress}", "    duration: 120s"]
