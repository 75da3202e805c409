"""explain: every action kind explains without error (traffic-control plans included)."""

from __future__ import annotations

import pytest

from kshock.rules.compile import compile_rules
from kshock.rules.explain import explain
from kshock.rules.rulefile import parse_rule_file


@pytest.mark.parametrize("action, wanted", [
    ("rate 1mbit", "get rate 1000000bit"),
    ("delay 200ms", "get delay 200ms as"),
    ("delay 200ms jitter 20ms", "get delay 200ms jitter 20ms"),
    ("duplicate 5%", "get duplicate 5%"),
    ("corrupt 1%", "get corrupt 1%"),
    ("reorder 10%", "get reorder 10%"),
])
def test_traffic_control_rules_explain(action: str, wanted: str) -> None:
    text = f"rules:\n  - name: tc\n    match: api == Produce\n    action: {action}\n    target: {{direction: egress}}\n"
    specs = parse_rule_file(text, "<test>")
    out = explain(compile_rules(specs, "tc", expires_at=None))
    assert "tc plan for rule tc" in out and wanted in out
