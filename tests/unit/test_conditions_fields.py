"""The FIELDS table: every row complete and consistent; help, completion and the API names."""

from __future__ import annotations

from kshock.conditions import FIELDS, api_names, describe_fields, field_names, parse_condition
from kshock.conditions.apis import API_NAMES, api_key_of, api_name
from kshock.conditions.fields import EQUALITY, ORDERED, TEXT


def test_every_row_is_complete_and_parses():
    types = {"int", "str", "bytes", "ip", "api", "kind"}
    for name, row in FIELDS.items():
        assert row.name == name and row.type in types and row.help and row.kernel_layout
        assert row.ops in (ORDERED, EQUALITY, TEXT)
        assert parse_condition(name).field == name  # a bare field: present
        assert row.needs_records == (name in ("key", "value", "header"))
    assert [n for n, r in FIELDS.items() if r.arg_type] == ["header"]


def test_the_issue_fields_are_all_there():
    wanted = {"api", "api_version", "kind", "client_id", "topic", "partition", "correlation_id", "acks",
              "transactional_id", "records", "key", "value", "header", "src.host", "src.port",
              "dst.host", "dst.port"}
    assert wanted <= set(field_names())


def test_describe_fields_has_one_line_per_field():
    text = describe_fields()
    lines = text.splitlines()
    assert len(lines) == len(FIELDS)
    assert lines[0].split()[:4] == ["api", "==", "!=", "in"]
    assert 'header["NAME"]' in text and "decodes records" in text


def test_api_names_match_the_spec_table_and_its_old_home():
    from kshock.workloads import apis as workload_apis

    assert api_names() == list(API_NAMES) and len(API_NAMES) == 93
    assert workload_apis.API_NAMES is API_NAMES and workload_apis.api_name(0) == "Produce"
    assert api_key_of("OFFSETCOMMIT") == 8 and api_key_of("nope") is None
    assert api_name(93) == "Unknown(93)"
