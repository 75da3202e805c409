"""PURE: a condition tree as alternatives of literal tests (disjunctive normal form).

The kernel evaluates a chain of rules, first match wins, and each rule is a conjunction of
tests: so `or` becomes several rules and `not` must be pushed down to single tests, where the
compiler can complement a range or a byte comparison. This module does only that rewriting;
what each literal means on the wire is classify.py's job.
"""

from __future__ import annotations

from dataclasses import dataclass

from kshock.conditions import And, Compare, Condition, Exists, In, Not, Or

MAX_ALTERNATIVES = 64


@dataclass(frozen=True, slots=True)
class Lit:
    node: Compare | In | Exists
    negated: bool = False

    def text(self) -> str:
        return f"not {self.node}" if self.negated else str(self.node)


class TooManyAlternatives(Exception):
    """The condition expands into more than MAX_ALTERNATIVES alternatives."""


def expand(node: Condition, one_value_per_rule: tuple[str, ...], either_end: tuple[str, ...]) -> Condition:
    """Rewrite tests the kernel sees as alternatives: `x in {a, b}` on a field in
    `one_value_per_rule` -> x == a or x == b; a field of `either_end` (`host`, `port`) -> its
    `src.` or `dst.` field."""
    match node:
        case And(left, right, span=span):
            return And(expand(left, one_value_per_rule, either_end), expand(right, one_value_per_rule, either_end),
                       span)
        case Or(left, right, span=span):
            return Or(expand(left, one_value_per_rule, either_end), expand(right, one_value_per_rule, either_end),
                      span)
        case Not(operand, span=span):
            return Not(expand(operand, one_value_per_rule, either_end), span)
        case In(field=name, values=values, span=span, arg=arg) if name in one_value_per_rule + either_end:
            parts = [expand(Compare(name, "==", v, span, arg), one_value_per_rule, either_end) for v in values]
            result = parts[0]
            for part in parts[1:]:
                result = Or(result, part, span)
            return result
        case Compare(field=name, op="==", value=value, span=span) if name in either_end:
            return Or(Compare(f"src.{name}", "==", value, span), Compare(f"dst.{name}", "==", value, span), span)
    return node


def dnf(node: Condition, negated: bool = False) -> list[list[Lit]]:
    """Alternatives (an `or` of `and`s of literals); TooManyAlternatives past MAX_ALTERNATIVES."""
    match node:
        case Not(operand):
            return dnf(operand, not negated)
        case And(left, right) if not negated:
            return _product(dnf(left), dnf(right))
        case Or(left, right) if negated:
            return _product(dnf(left, True), dnf(right, True))
        case And(left, right):  # not (a and b) = not a or not b
            return dnf(left, True) + dnf(right, True)
        case Or(left, right):
            return dnf(left) + dnf(right)
    return [[Lit(node, negated)]]


def _product(a: list[list[Lit]], b: list[list[Lit]]) -> list[list[Lit]]:
    if len(a) * len(b) > MAX_ALTERNATIVES:
        raise TooManyAlternatives()
    return [x + y for x in a for y in b]


__all__ = ["Lit", "MAX_ALTERNATIVES", "TooManyAlternatives", "dnf", "expand"]
