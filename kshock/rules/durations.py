"""PURE: whole numbers, seconds and durations as a person writes them, in plain ASCII decimal.

    parse_seconds("2.5")     -> 2.5          (a number of seconds: --timeout, the shell's wait)
    parse_duration("90")     -> 90.0         (--duration: seconds, or with units)
    parse_duration("1h30m")  -> 5400.0       (units ms, s, m, h, d; a rule file's `duration:` grammar)

float() would also take "١", "1_0", " 7", "inf", "nan" and "1e3"; these take 0-9 and one dot,
at most 9 digits on either side of it. Both raise ValueError for anything else; range limits
are each caller's.
"""

from __future__ import annotations

import re

_SECONDS = re.compile(r"[0-9]{1,9}(?:\.[0-9]{1,9})?")
_DURATION_PART = re.compile(r"([0-9]{1,9}(?:\.[0-9]{1,9})?)(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
DURATION_FORMS = "seconds (90, 2.5) or with a unit (90s, 5m, 1h)"
MIN_FAULT_S = 1.0  # a fault (a rule file's duration, apply's --duration) lasts at least a second
MAX_FAULT_S = 24 * 3600.0  # and at most a day: faults always end on their own


def is_whole_number(text: str) -> bool:
    """Plain ASCII decimal digits, at most 18 of them (int() also takes "٣", "9_092", " 7", "+7")."""
    return text.isascii() and text.isdigit() and len(text) <= 18


def parse_seconds(text: str) -> float:
    """A number of seconds in plain ASCII decimal: "5", "2.5" (not "5.", ".5", "1e3")."""
    if not _SECONDS.fullmatch(text):
        raise ValueError(f"{_shown(text)} is not a number of seconds (write e.g. 5 or 2.5)")
    return float(text)


def parse_unit_duration(text: str) -> float:
    """A duration with units: "90s", "5m", "1h30m", "1.5h" (spaces and case ignored)."""
    compact = text.replace(" ", "").lower()
    parts = _DURATION_PART.findall(compact)
    if not parts or "".join(number + unit for number, unit in parts) != compact:
        raise ValueError(f"{text!r} is not a duration")
    return sum(float(number) * _DURATION_UNITS[unit] for number, unit in parts)


def parse_duration(text: str) -> float:
    """Seconds ("90", "1.5") or a duration with units ("90s", "5m", "1h"), in seconds."""
    if _SECONDS.fullmatch(text):
        return float(text)
    return parse_unit_duration(text)


def parse_duration_within(text: str, most_s: float, least_s: float | None = None) -> float:
    """parse_duration, more than 0 (or at least `least_s`) and at most `most_s` seconds; the
    ValueError is the one-line message a --duration option shows."""
    try:
        seconds = parse_duration(text)
    except ValueError:
        raise ValueError(f"{_shown(text)} is not a duration (write {DURATION_FORMS})") from None
    if seconds > most_s or (seconds < least_s if least_s is not None else seconds <= 0):
        limits = (f"use {_human(least_s)} to {_human(most_s)}" if least_s is not None
                  else f"use more than 0 and at most {_human(most_s)}")
        raise ValueError(f"{text if len(text) <= 40 else _shown(text)} is out of range ({limits})")
    return seconds


def seconds_text(seconds: float) -> str:
    """Seconds written so parse_seconds reads them back: plain decimal, never %g's 1e-05 or 1e+06
    (to 9 decimals, the most parse_seconds takes)."""
    return f"{seconds:.9f}".rstrip("0").rstrip(".")


def _human(seconds: float) -> str:
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _shown(text: str, limit: int = 40) -> str:
    """A value for a message: its repr, cut short (an argument may be megabytes long)."""
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}… ({len(text)} characters)"


__all__ = ["DURATION_FORMS", "MAX_FAULT_S", "MIN_FAULT_S", "parse_duration", "parse_duration_within", "parse_seconds",
           "parse_unit_duration", "seconds_text", "is_whole_number"]
