"""`matches` refuses regexes with nested quantifiers (catastrophic backtracking: Python's re
has no timeout), found by walking re's own parse of the pattern."""

from __future__ import annotations

import pytest

from kshock.conditions import ConditionError, parse_condition
from kshock.conditions.parse import nested_quantifier


@pytest.mark.parametrize("pattern", ["^(.+)+!$", "(a+)+", "(.*)*", "(a|aa)+", "(a?)*b", "x(?:y*z)+", "(a+){2,}",
                                     "(?=(a+)+)b", "((ab)*c)+", "(?>(a+)+b)", "(?P<g>(a|b)+c)?(x+)*"])
def test_nested_quantifiers_are_found(pattern):
    assert nested_quantifier(pattern)
    assert nested_quantifier(pattern.encode())


@pytest.mark.parametrize("pattern", ["^.+!$", "(a|b)+", "(?:ab)+", "x(?:a{3})+", "(?>a+)+", "(a++)+", "[a-z]+@(x|y)",
                                     "^orders-[0-9]+$", "a*b*c*", "(ab)?c"])
def test_plain_patterns_pass(pattern):
    assert nested_quantifier(pattern) is None


@pytest.mark.parametrize("field", ["value", "key", "client_id", "topic", 'header["h"]'])
def test_condition_with_a_nested_quantifier_is_a_caret_error(field):
    text = f'{field} matches "^(.+)+!$"'
    with pytest.raises(ConditionError) as caught:
        parse_condition(text)
    message = str(caught.value)
    assert "nested quantifier" in message and "backtrack" in message
    assert "^^^" in message  # the caret under the pattern


def test_a_safe_regex_still_parses():
    assert parse_condition('value matches "^.+!$"') is not None
