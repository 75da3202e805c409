"""The FIELDS table: every row complete and consistent; help, completion and the API names."""

from __future__ import annotations

from kshock.conditions import FIELDS, api_names, describe_fields, field_names, parse_condition
from kshock.conditions.fields import EQUALITY, ORDERED, TEXT, Place
from kshock.wire import layout
from kshock.wire.apis import API_NAMES, api_key_of, api_name


def test_every_row_is_complete_and_parses():
    types = {"int", "str", "bytes", "ip", "api", "kind"}
    for name, row in FIELDS.items():
        assert row.name == name and row.type in types and row.help and row.kernel.text
        assert row.ops in (ORDERED, EQUALITY, TEXT)
        assert parse_condition(name).field == name  # a bare field: present
        assert row.needs_records == (name in ("key", "value", "header"))
    assert [n for n, r in FIELDS.items() if r.arg_type] == ["header"]


def test_the_kernel_column_says_enough_for_the_compiler_to_dispatch_on():
    for name, row in FIELDS.items():
        kernel = row.kernel
        if kernel.place in (Place.HEADER_INT, Place.BODY_INT):
            assert row.type in ("int", "api") and kernel.bits in (16, 32), name
        if kernel.place is Place.HEADER_INT:
            assert kernel.request_at is not None, name
        if kernel.place in (Place.BODY_INT, Place.BODY_STRING, Place.FIRST_TOPIC):
            assert kernel.apis and all(layout.layouts_for(api) for api in kernel.apis), name
        if kernel.place is Place.BODY_INT:  # its offset comes from the body layouts' fixed fields
            assert all(f.fixed_offset(name) is not None for api in kernel.apis for f in layout.layouts_for(api))
        assert bool(kernel.why_not) == (kernel.place is Place.HIDDEN), name
        assert bool(kernel.end) == (kernel.place in (Place.ADDRESS, Place.PORT)), name
    assert [n for n, r in FIELDS.items() if r.kernel.request_only] == \
        ["api", "api_version", "client_id", "topic", "acks", "transactional_id"]
    assert [n for n, r in FIELDS.items() if r.kernel.either_end] == ["host", "port"]
    assert FIELDS["correlation_id"].kernel.response_at == layout.RESPONSE_CORRELATION_AT
    assert FIELDS["size"].kernel.request_at == FIELDS["size"].kernel.response_at == layout.SIZE_AT


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
    from kshock.workloads import rdkafka_names as workload_apis

    assert api_names() == list(API_NAMES) and len(API_NAMES) == 93
    assert workload_apis.API_NAMES is API_NAMES and workload_apis.api_name(0) == "Produce"
    assert api_key_of("OFFSETCOMMIT") == 8 and api_key_of("nope") is None
    assert api_name(93) == "Unknown(93)"
