"""normal_form: a condition as alternatives of literals, with `not` pushed down to the tests."""

from __future__ import annotations

import pytest

from kshock.conditions import parse_condition
from kshock.rules.normal_form import MAX_ALTERNATIVES, TooManyAlternatives, dnf, expand

ONE_VALUE, EITHER_END = ("client_id", "topic"), ("host", "port")


def alternatives(text: str) -> list[list[str]]:
    return [[lit.text() for lit in term] for term in dnf(expand(parse_condition(text), ONE_VALUE, EITHER_END))]


def test_or_inside_and_multiplies_out_and_not_reaches_the_tests():
    assert alternatives("api == Produce and (acks == 0 or acks == 1)") == \
        [["api == Produce", "acks == 0"], ["api == Produce", "acks == 1"]]
    assert alternatives("not (api == Produce and acks == 0)") == [["not api == Produce"], ["not acks == 0"]]
    assert alternatives("not (api == Produce or acks == 0)") == [["not api == Produce", "not acks == 0"]]


def test_in_on_one_value_fields_and_either_end_fields_become_alternatives():
    assert alternatives('client_id in {"a", "b"}') == [['client_id == "a"'], ['client_id == "b"']]
    assert alternatives("port == 9092") == [["src.port == 9092"], ["dst.port == 9092"]]
    assert alternatives("api in {Produce, Fetch}") == [["api in {Produce, Fetch}"]]  # one range test


def test_too_many_alternatives_is_refused():
    text = " and ".join(f"(acks == {i} or acks == {i + 1})" for i in range(7))
    assert 2 ** 7 > MAX_ALTERNATIVES
    with pytest.raises(TooManyAlternatives):
        alternatives(text)
