"""PURE: does a decoded frame match a condition? One `match` statement over the tree.

Semantics, for every field (single- or multi-valued alike; see fields.py):
- a field the frame does not have makes every test on it false, `!=` included
  (`acks != 0` does not match a Fetch request; write `not acks == 0` for that);
- `==`, `<`, `<=`, `>`, `>=`, `contains`, `matches` and `in` match when ANY value passes;
- `!=` matches when the field has values and NONE of them equals the operand
  (`topic != "orders"`: the frame names topics and "orders" is not one of them);
- an IP operand is a network (a bare address is a /32 or /128): `==` means "inside it";
- `contains` is a substring test, `matches` a regex search (Python `re`), on text for text
  fields and on raw bytes for key/value/header values;
- a bare field (`transactional_id`) matches when the frame has a value for it.

Record fields (key, value, header) decode the records of Produce requests and Fetch responses,
decompressed, only when a test reaches them (`and` and `or` short-circuit left to right).
Frames that failed to decode still match on their header fields.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from kshock.conditions.fields import FIELDS, FrameView
from kshock.conditions.parse import And, Compare, Condition, Exists, In, Not, Or
from kshock.wire.model import KafkaFrame


def matches(condition: Condition, frame: KafkaFrame, schemas: Any = None) -> bool:
    """Whether `frame` satisfies `condition`.

    `schemas` is the wire decoder's SchemaTable, needed only for body and record fields
    (acks, transactional_id, key, value, header); pass the decoder's own to share it. When
    none is given and one is needed, a new one is built for this call — keep a Matcher to
    build it once for many frames.
    """
    return _evaluate(condition, FrameView(frame, _lazy(schemas)))


class Matcher:
    """`matches` for many frames, with one SchemaTable built on first need and kept.
    `cut` counts the frames whose records were over a decompression bound (so the condition
    saw none of them); `cut_reason` says the first one's."""

    __slots__ = ("condition", "_schemas", "cut", "cut_reason")

    def __init__(self, condition: Condition, schemas: Any = None) -> None:
        self.condition = condition
        self._schemas = _lazy(schemas)
        self.cut = 0
        self.cut_reason: str | None = None

    def __call__(self, frame: KafkaFrame) -> bool:
        view = FrameView(frame, self._schemas)
        result = _evaluate(self.condition, view)
        if view.cut is not None:
            self.cut += 1
            self.cut_reason = self.cut_reason or view.cut
        return result


def needs_records(condition: Condition) -> bool:
    """Whether evaluating the condition may decode records (key, value, header)."""
    match condition:
        case Compare(field=name) | In(field=name) | Exists(field=name):
            return FIELDS[name].needs_records
        case And(left, right) | Or(left, right):
            return needs_records(left) or needs_records(right)
        case Not(operand):
            return needs_records(operand)
    raise TypeError(f"not a condition: {condition!r}")


def _lazy(schemas: Any) -> Callable[[], Any]:
    """() -> the given SchemaTable, or one built on the first call and kept."""
    kept = [schemas]

    def table() -> Any:
        if kept[0] is None:
            from kshock.wire.schema import SchemaTable

            kept[0] = SchemaTable()
        return kept[0]

    return table


def _evaluate(condition: Condition, view: FrameView) -> bool:
    match condition:
        case And(left, right):
            return _evaluate(left, view) and _evaluate(right, view)
        case Or(left, right):
            return _evaluate(left, view) or _evaluate(right, view)
        case Not(operand):
            return not _evaluate(operand, view)
        case Exists(field=name, arg=arg):
            return bool(FIELDS[name].read(view, arg))
        case In(field=name, values=wanted, arg=arg):
            values = FIELDS[name].read(view, arg)
            return any(_equal(v, w) for v in values for w in wanted)
        case Compare(field=name, op=op, value=wanted, arg=arg):
            values = FIELDS[name].read(view, arg)
            if op == "!=":
                return bool(values) and not any(_equal(v, wanted) for v in values)
            test = _TESTS[op]
            return any(test(v, wanted) for v in values)
    raise TypeError(f"not a condition: {condition!r}")


def _equal(value: Any, wanted: Any) -> bool:
    if hasattr(wanted, "prefixlen"):  # an IP network: membership (other IP version: False)
        return value.version == wanted.version and value in wanted
    return value == wanted


_TESTS: dict[str, Callable[[Any, Any], bool]] = {
    "==": _equal,
    "<": lambda v, w: v < w,
    "<=": lambda v, w: v <= w,
    ">": lambda v, w: v > w,
    ">=": lambda v, w: v >= w,
    "contains": lambda v, w: w in v,
    "matches": lambda v, w: re.search(w, v) is not None,
}
