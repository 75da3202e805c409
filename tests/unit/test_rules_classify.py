"""classify: an alternative's tests sorted by the FIELDS kernel column, or refused with a reason."""

from __future__ import annotations

import pytest

from kshock.conditions import parse_condition
from kshock.rules.classify import Unsupported, body_fields, classify, request_only_fields
from kshock.rules.normal_form import dnf


def needs(text: str):
    (term,) = dnf(parse_condition(text))
    return classify(term)


def test_header_and_body_integers_become_ranges():
    found = needs("api == Produce and api_version >= 9 and acks == all")
    assert found.ranges == {"api": ((0, 0),), "api_version": ((9, 0x7FFF),)}
    assert found.body_ints == {"acks": ((0xFFFF, 0xFFFF),)} and found.body and found.uses("acks")
    assert needs("size > 5 and size < 3").empty


def test_strings_addresses_and_directions():
    found = needs('client_id == "a" and topic == "t" and dst.port == 9092 and kind == request')
    assert [v for v, _ in found.client_eq] == ["a"] and [v for v, _ in found.topics] == ["t"]
    assert found.dport == 9092 and found.kinds == {"request"} and found.kind_given
    assert needs("transactional_id").txn_exists is True


@pytest.mark.parametrize("text, reason", [
    ('key == "x"', "`key` is not visible to the kernel: record keys sit inside record batches"),
    ('client_id contains "x"', "a substring test on client_id cannot compile"),
    ('not topic == "t"', "it can test that a topic is there, not that one is absent"),
    ("host != 10.0.0.1", "`host != 10.0.0.1` cannot compile"),
    ("not acks", "`not acks` (requests without acks) cannot compile"),
])
def test_what_the_kernel_cannot_do_is_refused_with_a_reason(text, reason):
    with pytest.raises(Unsupported) as caught:
        needs(text)
    assert reason in caught.value.reason


def test_the_field_lists_come_from_the_table():
    assert body_fields() == ["topic", "acks", "transactional_id"]
    assert request_only_fields() == ["api", "api_version", "client_id", "topic", "acks", "transactional_id"]


@pytest.mark.parametrize("like, text", [("transactional_id", 'group_id == "g"'), ("topic", 'group_id == "g"')])
def test_a_new_row_with_a_placed_kind_is_refused_not_put_at_anothers_offset(monkeypatch, like, text):
    """Placement knows one body string (the transactional id) and one topic entry: a new row of
    the same place must not compile to their offsets before placement.py learns its own."""
    import dataclasses

    from kshock.conditions.fields import FIELDS

    monkeypatch.setitem(FIELDS, "group_id", dataclasses.replace(FIELDS[like], name="group_id"))
    with pytest.raises(Unsupported) as caught:
        needs(text)
    assert f"places only {like}" in caught.value.reason
