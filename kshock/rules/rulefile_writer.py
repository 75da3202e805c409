"""PURE: rules -> rule-file text that rulefile.parse_rule_file reads back into the same rules.

    text = render_rule_file(specs)                 # what the shell's `save` writes
    assert parse_rule_file(text) == specs          # (but for each spec's `source`)

Numbers are written in plain decimal with every digit the reader keeps (at most 9 after the
point), not with %g's six significant digits; text values are JSON strings (a YAML subset).
"""

from __future__ import annotations

import json

from kshock.rules.spec import Action, RuleSpec


def render_rule_file(specs: list[RuleSpec]) -> str:
    """A rule file holding `specs`, in order."""
    lines = ["# written by kshock shell", "rules:"]
    for spec in specs:
        lines.append(f"  - name: {spec.name}")
        lines.append(f"    match: {json.dumps(str(spec.condition)) if spec.condition is not None else 'any'}")
        lines.append(f"    action: {action_text(spec.action)}")
        target = spec.target
        parts = [f"ports: [{', '.join(map(str, target.ports))}]", f"direction: {target.direction}"]
        if target.host:
            parts.append(f"host: {json.dumps(target.host)}")
        if target.interface:
            parts.append(f"interface: {json.dumps(target.interface)}")
        lines.append("    target: {" + ", ".join(parts) + "}")
        lines.append(f"    duration: {_decimal(spec.duration_s)}s")
        for extra in rule_extras(spec):
            key, _, value = extra.partition(" ")
            lines.append(f"    {key}: {value or 'true'}")
    return "\n".join(lines) + "\n"


def rule_extras(spec: RuleSpec) -> list[str]:
    """trigger, latch and approximate as the words the shell's `when` and rule files take."""
    extras = []
    trigger = spec.trigger
    if trigger.mode == "nth":
        extras.append(f"trigger every {trigger.every}")
    elif trigger.mode == "probability":
        extras.append(f"trigger probability {_exact(trigger.probability)}")
    elif trigger.mode == "once-per-connection":
        extras.append("trigger once-per-connection")
    if spec.latch:
        extras.append("latch")
    if spec.approximate:
        extras.append("approximate")
    return extras


def action_text(action: Action) -> str:
    """An action as a rule file writes it (str(action) rounds to six digits)."""
    if action.kind in ("loss", "duplicate", "corrupt", "reorder"):
        return f"{action.kind} {_decimal(action.percent)}%"
    if action.kind == "rate":  # in the largest unit that keeps it whole (the reader takes 12 digits)
        for unit, size in (("gbit", 10**9), ("mbit", 10**6), ("kbit", 10**3)):
            if action.rate_bit_s % size == 0:
                return f"rate {action.rate_bit_s // size}{unit}"
        return f"rate {action.rate_bit_s}bit"
    if action.kind == "delay":
        jitter = f" jitter {_decimal(action.jitter_ms)}ms" if action.jitter_ms is not None else ""
        return f"delay {_decimal(action.delay_ms)}ms{jitter}"
    return action.kind


def _decimal(value: float) -> str:
    """Plain decimal with at most 9 digits after the point (what the reader takes): 90, 1.5."""
    text = f"{value:.9f}".rstrip("0").rstrip(".")
    return text or "0"


def _exact(value: float) -> str:
    """The shortest plain decimal that reads back as this float: 0.3, 0.000001 (never 1e-06)."""
    for places in range(1, 40):
        text = f"{value:.{places}f}"
        if float(text) == value:
            return text.rstrip("0").rstrip(".") if "." in text else text
    return repr(value)


__all__ = ["action_text", "render_rule_file", "rule_extras"]
