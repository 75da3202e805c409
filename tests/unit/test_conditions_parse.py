"""Condition text -> tree: grammar, precedence, values, canonical text and its round trip."""

from __future__ import annotations

import ipaddress
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kshock.conditions import (
    FIELDS,
    And,
    Compare,
    ConditionError,
    Exists,
    In,
    Not,
    Or,
    fields_used,
    parse_condition,
    topics_named,
)
from kshock.conditions.fields import KINDS
from kshock.errors import UserError

P = parse_condition


def test_the_issue_example():
    cond = P('api == Produce and client_id == "shop-frontend" and topic in {"orders", "payments"}')
    assert cond == And(And(Compare("api", "==", 0), Compare("client_id", "==", "shop-frontend")),
                       In("topic", ("orders", "payments")))
    assert str(cond) == 'api == Produce and client_id == "shop-frontend" and topic in {"orders", "payments"}'


def test_precedence_not_binds_tighter_than_and_than_or():
    a, b, c = (Compare("api", "==", k) for k in (0, 1, 3))
    assert P("api == 0 or api == 1 and api == 3") == Or(a, And(b, c))
    assert P("api == 0 and api == 1 or api == 3") == Or(And(a, b), c)
    assert P("not api == 0 and api == 1") == And(Not(a), b)
    assert P("not not api == 0") == Not(Not(a))
    assert P("api == 0 or api == 1 or api == 3") == Or(Or(a, b), c)  # left-associative


def test_parentheses_and_symbol_operators():
    a, b, c = (Compare("api", "==", k) for k in (0, 1, 3))
    assert P("(api == 0 or api == 1) and api == 3") == And(Or(a, b), c)
    assert P("!(api==0||api==1)&&api==3") == And(Not(Or(a, b)), c)
    assert P("NOT api == 0 AND api == 1 Or api == 3") == Or(And(Not(a), b), c)
    assert P("((api == 0))") == a
    assert str(P("!(api==0||api==1)&&api==3")) == "not (api == Produce or api == Fetch) and api == Metadata"


def test_api_by_name_any_case_or_key():
    for text in ("api == Produce", "api == produce", "api == PRODUCE", "api == 0", 'api == "Produce"', "api == 0x0"):
        assert P(text) == Compare("api", "==", 0), text
    assert P("api in {Fetch, 3, \"apiversions\"}") == In("api", (1, 3, 18))
    assert str(P("api == 92")) == "api == DeleteShareGroupOffsets"


def test_values_of_every_type():
    assert P("kind == response") == P('kind == "Response"') == Compare("kind", "==", "response")
    assert P("api_version >= 9") == Compare("api_version", ">=", 9)
    assert P("acks == all") == P("acks == -1") == Compare("acks", "==", -1)
    assert P("partition in {0, 1,}") == In("partition", (0, 1))
    assert P("dst.host == 198.18.0.1") == Compare("dst.host", "==", ipaddress.ip_network("198.18.0.1/32"))
    assert P('src.host == "198.18.0.0/24"') == Compare("src.host", "==", ipaddress.ip_network("198.18.0.0/24"))
    assert P("host == fe80::1") == Compare("host", "==", ipaddress.ip_network("fe80::1/128"))
    assert P("src.port == 9092") == Compare("src.port", "==", 9092)
    assert P('value contains "refund"') == Compare("value", "contains", b"refund")
    assert P('key == "\\x00\\xff"') == Compare("key", "==", b"\x00\xff")
    assert P('client_id == "caf\u00e9"') == Compare("client_id", "==", "caf\u00e9")
    assert P('header["trace"] == "x"') == Compare("header", "==", b"x", arg="trace")
    assert P('header contains "sw8"') == Compare("header", "contains", "sw8")
    assert P("transactional_id") == Exists("transactional_id")
    assert P('not header["trace"]') == Not(Exists("header", arg="trace"))


def test_string_escapes():
    assert P(r'topic == "a\"b\\c\n\t\r"') == Compare("topic", "==", 'a"b\\c\n\t\r')
    # any other backslash stays, so regexes read naturally
    assert P(r'client_id matches "^pay-\d+$"') == Compare("client_id", "matches", r"^pay-\d+$")
    assert P(r'value matches "seq\":\d+"') == Compare("value", "matches", rb'seq":\d+')


def test_regexes_are_compiled_at_parse_time_on_text_or_bytes():
    assert P('value matches "(?i)REFUND"').value == b"(?i)REFUND"
    assert P('topic matches "^pay"').value == "^pay"
    with pytest.raises(ConditionError, match="invalid regular expression"):
        P('topic matches "a{2,1}"')


def test_spans_point_into_the_text():
    text = 'kind == request and (topic == "a" or not partition > 3)'
    cond = P(text)
    assert text[slice(*cond.span)] == text
    assert text[slice(*cond.left.span)] == "kind == request"
    assert text[slice(*cond.right.span)] == '(topic == "a" or not partition > 3)'
    assert text[slice(*cond.right.right.span)] == "not partition > 3"
    assert text[slice(*cond.right.right.operand.span)] == "partition > 3"


def test_fields_used():
    cond = P('api == Produce and (client_id == "a" or not api_version < 3) and header["t"] and api == 1')
    assert fields_used(cond) == ["api", "client_id", "api_version", "header"]


def test_topics_named_lists_each_compared_topic_once():
    cond = P('topic == "a" and (topic in {"b", "a"} or not topic == "c") and topic contains "zz" and client_id == "a"')
    assert topics_named(cond) == ["a", "b", "c"]  # `contains` names no whole topic
    assert topics_named(P('api == Produce')) == []


def test_canonical_text():
    cases = {
        'api==produce&&client_id=="x"': 'api == Produce and client_id == "x"',
        "kind == request or kind == response and api == 0":
            "kind == request or kind == response and api == Produce",
        "(kind == request or kind == response) and api == 0":
            "(kind == request or kind == response) and api == Produce",
        "not (api == 0 and api == 1)": "not (api == Produce and api == Fetch)",
        "src.host == 198.18.0.7/24": "src.host == 198.18.0.0/24",
        'key == "\\x41\\x00"': 'key == "A\\x00"',
        "api == 0 and (api == 1 and api == 3)": "api == Produce and (api == Fetch and api == Metadata)",
    }
    for text, canonical in cases.items():
        assert str(P(text)) == canonical
        assert P(canonical) == P(text)


# -- round trip -----------------------------------------------------------------------------

def _values(type_: str, domain: tuple[int, int] | None = None):
    low, high = domain or (-(2**63), 2**63)
    return {
        "int": st.integers(low, high),  # a field's wire width (parse refuses what lies outside)
        "api": st.integers(0, 92),
        "kind": st.sampled_from(KINDS),
        "str": st.text(max_size=12),
        "bytes": st.binary(max_size=12),
        "ip": st.one_of(
            st.tuples(st.ip_addresses(v=4), st.integers(0, 32)),
            st.tuples(st.ip_addresses(v=6), st.integers(0, 128)),
        ).map(lambda a: ipaddress.ip_network(f"{a[0]}/{a[1]}", strict=False)),
    }[type_]


@st.composite
def leaves(draw):
    row = draw(st.sampled_from(list(FIELDS.values())))
    arg = draw(st.one_of(st.none(), st.text(max_size=8))) if row.arg_type else None
    type_ = row.type_of(arg)
    op = draw(st.sampled_from(row.ops_of(arg) + ("exists",)))
    if op == "exists":
        return Exists(row.name, arg=arg)
    if op == "in":
        return In(row.name, tuple(draw(st.lists(_values(type_, row.domain), min_size=1, max_size=3))), arg=arg)
    if op == "matches":
        tail = draw(st.sampled_from(["", ".*", "$"]))
        if type_ == "bytes":
            return Compare(row.name, op, re.escape(draw(st.binary(max_size=8))) + tail.encode(), arg=arg)
        return Compare(row.name, op, re.escape(draw(st.text(max_size=8))) + tail, arg=arg)
    return Compare(row.name, op, draw(_values(type_, row.domain)), arg=arg)


conditions = st.recursive(
    leaves(),
    lambda inner: st.one_of(st.builds(And, inner, inner), st.builds(Or, inner, inner), st.builds(Not, inner)),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(conditions)
def test_parse_str_parse_round_trips(cond):
    text = str(cond)
    again = P(text)
    assert again == cond
    assert str(again) == text


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet='apikndtoc_=!<>(){}[]"\\ ,.&|-019xProducefth', max_size=30))
def test_arbitrary_text_parses_or_raises_condition_error(text):
    try:
        cond = P(text)
    except ConditionError as err:
        assert isinstance(err, UserError)
        assert 0 <= err.span[0] <= len(text) and err.column >= 1
        assert str(err).count("\n") == 2
    else:
        assert P(str(cond)) == cond
