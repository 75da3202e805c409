"""Conditions have a size and a depth bound, and numbers and strings their wire widths: each a
one-line error with a caret, never a RecursionError, a ValueError or a rule that can never match
(issue 10: 3,000 nested `not`, 1,000 `or`s, a 1,000-value set, 5,000-digit numbers,
`src.port == 70000`, a 32,768-byte client id)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kshock.conditions import FIELDS, ConditionError, Matcher, parse_condition
from kshock.conditions.parse import MAX_CONDITION_CHARS, MAX_NESTING, MAX_TESTS
from kshock.errors import UserError
from kshock.rules.compile import compile_rules
from kshock.rules.spec import Action, RuleSpec
from kshock.wire.schema import SchemaTable
from wire_helpers import conversation, frames, request_frame, run, sample_message

P = parse_condition


def _error(text: str) -> str:
    with pytest.raises(ConditionError) as caught:
        P(text)
    assert isinstance(caught.value, UserError)
    return str(caught.value)


def test_3000_nested_nots_are_one_error_at_the_33rd():
    text = "not " * 3000 + "api == Produce"
    # the 33rd `not` starts at offset 128; the line is shown as a window from 30 characters before
    assert _error(text) == (
        "column 129: more than 32 levels of not and parentheses — simplify the condition (not not x is x)\n"
        f"  …{text[98:218]}…\n"
        f"  {' ' * 31}^^^")


def test_3000_nested_parentheses_are_one_error():
    message, _, _ = _error("(" * 3000 + "api == Produce" + ")" * 3000).split("\n")
    assert message == ("column 33: more than 32 levels of not and parentheses — simplify the condition "
                       "(not not x is x)")


def test_32_levels_parse_and_33_do_not():
    assert P("not " * 32 + "api == 0") is not None
    assert P("(" * 31 + "not api == 0" + ")" * 31) is not None
    assert "more than 32 levels" in _error("(" * 32 + "not api == 0" + ")" * 32)


def test_a_1000_value_set_and_1000_ors_are_one_error():
    too_many = ("more than 128 tests in one condition (each value of an in {...} set counts as one) — shorten it, "
                "or split it into several rules")
    values = ", ".join(f'"c{i}"' for i in range(1000))
    text = f"client_id in {{{values}}}"
    at = text.index('"c128"')  # the 129th value (the field's test counts the first)
    assert _error(text) == f"column {at + 1}: {too_many}\n  …{text[at - 30:at + 90]}…\n  {' ' * 31}^^^^^^"
    text = " or ".join(f'client_id == "c{i}"' for i in range(1000))
    at = text.index('client_id == "c128"')
    assert _error(text) == f"column {at + 1}: {too_many}\n  …{text[at - 30:at + 90]}…\n  {' ' * 31}^^^^^^^^^"
    assert P(" or ".join(f"api == {i % 90}" for i in range(MAX_TESTS))) is not None


def test_a_condition_over_the_length_bound_is_refused_before_it_is_read():
    text = 'client_id == "' + "x" * MAX_CONDITION_CHARS + '"'
    message = _error(text).split("\n")[0]
    assert message == (f"column {MAX_CONDITION_CHARS + 1}: the condition is {len(text)} characters long, more than "
                       f"{MAX_CONDITION_CHARS} — shorten it, or split it into several rules")


def test_a_5000_digit_number_is_one_error():
    assert _error("api_version == " + "9" * 5000).split("\n")[0] == (
        "column 16: a 5000-digit number is out of range for api_version — api_version is an int16: -32768 to 32767")
    assert _error("api == " + "9" * 5000).split("\n")[0] == (
        "column 8: unknown API key 9999999999999999999999999999999999999999… (5000 characters) — API keys go from "
        "0 to 92")
    assert _error("port == 010") == """\
column 9: 010 has a leading zero — write the number without it (or in hex: 0x10)
  port == 010
          ^^^"""


def test_src_port_70000_is_refused_with_the_width():
    assert _error("src.port == 70000") == """\
column 13: 70000 is out of range for src.port — src.port is a TCP port: 0 to 65535
  src.port == 70000
              ^^^^^"""


INT_FIELDS = [row for row in FIELDS.values() if row.type == "int"]


def test_every_int_field_has_its_wire_width():
    assert all(row.domain for row in INT_FIELDS), [row.name for row in INT_FIELDS if not row.domain]


@pytest.mark.parametrize("row", INT_FIELDS, ids=lambda row: row.name)
@pytest.mark.parametrize("op", ["==", "<", ">=", "in"])
def test_every_int_field_refuses_numbers_outside_its_width(row, op):
    low, high = row.domain
    width = {(-32768, 32767): "an int16", (-(2**31), 2**31 - 1): "an int32", (0, 65535): "a TCP port"}[row.domain]
    for value in (low - 1, high + 1):
        text = f"{row.name} {op} {{{value}}}" if op == "in" else f"{row.name} {op} {value}"
        first = _error(text).split("\n")[0]
        column = len(row.name) + len(op) + 3 + (1 if op == "in" else 0)
        assert first == (f"column {column}: {value} is out of range for {row.name} — {row.name} is {width}: "
                         f"{low} to {high}")
        assert P(text.replace(str(value), str(low if value < low else high))) is not None


@pytest.mark.parametrize("name", ["client_id", "topic", "transactional_id"])
def test_int16_length_strings_refuse_32768_bytes(name):
    assert P(f'{name} == "{"a" * 32767}"') is not None
    message, line, carets = _error(f'{name} == "{"é" * 16384}"').split("\n")  # 32,768 bytes of UTF-8
    assert message == (f"column {len(name) + 5}: {name} is at most 32767 bytes on the wire (an int16 length), and "
                       f"this one is 32768 — no Kafka frame carries a longer {name}")
    assert len(line) < 130 and len(carets) < 130
    assert "at most 32767 bytes" in _error(f'{name} contains "{"a" * 70000}"')


# -- never anything but a ConditionError ------------------------------------------------------

LEAVES = ['api == Produce', 'client_id == "c"', 'topic in {"a", "b"}', "src.port == 1", "size > 10",
          'value contains "v"', "acks == all", "not kind == response", "partition in {1, 2}"]


@st.composite
def hostile(draw) -> str:
    """Deep and large condition text: nesting, long chains and sets, long numbers and strings."""
    leaf = draw(st.sampled_from(LEAVES))
    kind = draw(st.sampled_from(["not", "parens", "mixed", "or", "and", "set", "number", "string", "garbage"]))
    n = draw(st.integers(0, 5000))
    if kind == "not":
        return "not " * n + leaf
    if kind == "parens":
        return "(" * n + leaf + ")" * draw(st.integers(0, n))
    if kind == "mixed":
        return "".join(draw(st.sampled_from(["not ", "(", "! "])) for _ in range(n % 200)) + leaf
    if kind in ("or", "and"):
        return f" {kind} ".join([leaf] * (n % 400 + 1))
    if kind == "set":
        return "partition in {" + ", ".join(str(i) for i in range(n % 400)) + "}"
    if kind == "number":
        field = draw(st.sampled_from([row.name for row in INT_FIELDS] + ["api"]))
        return f"{field} {draw(st.sampled_from(['==', '<', 'in']))} " + draw(st.sampled_from(["", "-", "0x"])) + \
            "9" * (n + 1)
    if kind == "string":
        return f'{draw(st.sampled_from(["client_id", "topic", "key"]))} == "' + "x" * (n * 20) + '"'
    return draw(st.text(alphabet='()!{}"\\, =<>notandor0x9', max_size=3000))


def _frame():
    return frames(run(conversation([(request_frame(sample_message(__import__(
        "kafka.protocol.producer", fromlist=["ProduceRequest"]).ProduceRequest, 9)), b"")])))[0]


FRAME = _frame()
SCHEMAS = SchemaTable()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile())
def test_hostile_conditions_raise_only_condition_errors(text):
    try:
        condition = P(text)
    except ConditionError as error:
        assert 0 <= error.span[0] <= len(text)
        assert str(error).count("\n") == 2 and all(len(line) < 400 for line in str(error).split("\n"))
        return
    assert P(str(condition)) == condition
    Matcher(condition, SCHEMAS)(FRAME)
    try:
        compile_rules([RuleSpec("h", condition, Action("drop"))], "h", expires_at="2037-12-31T00:00:00")
    except UserError:
        pass


def test_the_deepest_tree_the_bounds_allow_is_walked_by_every_interpreter():
    # MAX_TESTS tests in one chain inside MAX_NESTING nots: the deepest tree parse returns
    chain = " or ".join(f'client_id == "c{i}"' for i in range(MAX_TESTS - 1))
    condition = P("not " * (MAX_NESTING - 1) + f"(api == 0 or {chain})")
    assert P(str(condition)) == condition
    Matcher(condition, SCHEMAS)(FRAME)
    with pytest.raises(UserError):
        compile_rules([RuleSpec("deep", condition, Action("drop"))], "deep", expires_at="2037-12-31T00:00:00")
