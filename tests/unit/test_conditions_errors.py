"""Every ConditionError in full: what went wrong at which column, what to do, and the caret."""

from __future__ import annotations

import pytest

from kshock.conditions import ConditionError, parse_condition
from kshock.errors import ExitStatus, UserError

ERRORS = [
    ('clientid == "x"', """\
column 1: unknown field 'clientid' — did you mean client_id?
  clientid == "x"
  ^^^^^^^^"""),
    ('topicc == "x"', """\
column 1: unknown field 'topicc' — did you mean topic?
  topicc == "x"
  ^^^^^^"""),
    ('api-version == 3', """\
column 1: unknown field 'api-version' — did you mean api_version?
  api-version == 3
  ^^^^^^^^^^^"""),
    ('src == 198.18.0.1', """\
column 1: unknown field 'src' — did you mean src.host or src.port?
  src == 198.18.0.1
  ^^^"""),
    ('api == Produc', """\
column 8: unknown API 'Produc' — did you mean Produce?
  api == Produc
         ^^^^^^"""),
    ('api == "Fetchh"', """\
column 8: unknown API 'Fetchh' — did you mean Fetch?
  api == "Fetchh"
         ^^^^^^^^"""),
    ('api == 93', """\
column 8: unknown API key 93 — API keys go from 0 to 92
  api == 93
         ^^"""),
    ('kind == req', """\
column 9: unknown kind 'req' — did you mean request?
  kind == req
          ^^^"""),
    ('client_id < 3', """\
column 11: '<' does not apply to client_id (a string) — client_id takes == != in contains matches
  client_id < 3
            ^"""),
    ('port matches "9"', """\
column 6: 'matches' does not apply to port (a number) — port takes == != < <= > >= in
  port matches "9"
       ^^^^^^^"""),
    ('api == Produce and', """\
column 19: expected a field, found the end — fields: api, api_version, kind, correlation_id, client_id, size, topic, partition, acks, transactional_id, records, error_code, key, value, header, src.host, src.port, dst.host, dst.port, host, port
  api == Produce and
                    ^"""),
    ('not', """\
column 4: expected a field, found the end — fields: api, api_version, kind, correlation_id, client_id, size, topic, partition, acks, transactional_id, records, error_code, key, value, header, src.host, src.port, dst.host, dst.port, host, port
  not
     ^"""),
    ('(api == 0', """\
column 10: expected ')' to close the '(' at column 1, found the end — add the missing ')'
  (api == 0
           ^"""),
    ('api == 0)', """\
column 9: unbalanced ')' — remove it or add a '(' before it
  api == 0)
          ^"""),
    ('api == Produce client_id == "x"', """\
column 16: expected 'and', 'or' or the end, found 'client_id' — join tests with and / or
  api == Produce client_id == "x"
                 ^^^^^^^^^"""),
    ('value matches "("', """\
column 15: invalid regular expression: missing ), unterminated subpattern at position 0 — matches takes a Python regular expression
  value matches "("
                ^^^"""),
    ('client_id == "abc', """\
column 14: unterminated string — close it with "
  client_id == "abc
               ^^^^"""),
    ('api = 0', """\
column 5: unexpected character '=' — did you mean ==?
  api = 0
      ^"""),
    ('api @ 0', """\
column 5: unexpected character '@' — put text in double quotes: "..."
  api @ 0
      ^"""),
    ('client_id == shop', """\
column 14: expected a quoted string for client_id, found 'shop' — write client_id == "shop"
  client_id == shop
               ^^^^"""),
    ('topic contains 3', """\
column 16: expected a quoted string for topic, found '3' — write topic contains "3"
  topic contains 3
                 ^"""),
    ('topic in {"a" "b"}', """\
column 15: expected ',' or '}', found "b" — separate values with commas and close the set with }
  topic in {"a" "b"}
                ^^^"""),
    ('topic in "a"', """\
column 10: expected '{' after in, found "a" — write a set: topic in {"a", "b"}
  topic in "a"
           ^^^"""),
    ('partition == "3"', """\
column 14: expected a number for partition, found "3" — partition takes a number, e.g. 3
  partition == "3"
               ^^^"""),
    ('acks == most', """\
column 9: expected a number for acks, found 'most' — acks takes a number or all, e.g. -1, 0, 1, all
  acks == most
          ^^^^"""),
    ('src.host == 1.2.3', """\
column 13: expected an IP address or network for src.host, found '1.2.3' — e.g. 198.18.0.1, 198.18.0.0/24 or "::1"
  src.host == 1.2.3
              ^^^^^"""),
    ('client_id["x"] == "y"', """\
column 10: client_id takes no [name] — only header["NAME"] does
  client_id["x"] == "y"
           ^"""),
    ('header[trace] == "x"', """\
column 8: expected a quoted header name, found 'trace' — write header["NAME"]
  header[trace] == "x"
         ^^^^^"""),
    ('value == "\\xZZ"', """\
column 11: \\x needs two hex digits — write a byte as \\x00 ... \\xff
  value == "\\xZZ"
            ^^^^"""),
    ('client_id == "\\xff"', """\
column 14: the string for client_id is not UTF-8 text — \\xHH escapes make bytes; use them for key, value and header values
  client_id == "\\xff"
               ^^^^^^"""),
    ('api_version ==', """\
column 15: expected a number for api_version, found the end — api_version takes a number, e.g. 3
  api_version ==
                ^"""),
    ('api == Produce\nand clientid == "x"', """\
line 2, column 5: unknown field 'clientid' — did you mean client_id?
  and clientid == "x"
      ^^^^^^^^"""),
]


@pytest.mark.parametrize("text,message", ERRORS, ids=[t for t, _ in ERRORS])
def test_error_message_in_full(text, message):
    with pytest.raises(ConditionError) as caught:
        parse_condition(text)
    assert str(caught.value) == message


def test_empty_condition():
    with pytest.raises(ConditionError) as caught:
        parse_condition("")
    assert str(caught.value) == 'column 1: empty condition — e.g. api == Produce and client_id == "shop"\n  \n  ^'


def test_condition_error_is_a_user_error_with_its_parts():
    with pytest.raises(UserError) as caught:
        parse_condition('kind == request and clientid == "x"')
    err = caught.value
    assert isinstance(err, ConditionError) and err.status == ExitStatus.USAGE
    assert (err.column, err.line, err.span) == (21, 1, (20, 28))
    assert err.message == "column 21: unknown field 'clientid'"
    assert err.hint == "did you mean client_id?"
    assert err.caret == '  kind == request and clientid == "x"\n                      ^^^^^^^^'


def test_suggestions_ignore_case_and_list_choices_when_nothing_is_close():
    cases = {
        "api == fetchh": "did you mean Fetch?",
        "api == JoinGrop": "did you mean JoinGroup?",
        "api == ApiVersion": "did you mean ApiVersions?",
        "Client_ID == \"x\"": "did you mean client_id?",
        "kind == Responses": "did you mean response?",
        "zzz == 1": "fields: api, api_version, kind",
        "kind == zzz": "kinds: request, response",
    }
    for text, hint in cases.items():
        with pytest.raises(ConditionError) as caught:
            parse_condition(text)
        assert caught.value.hint.startswith(hint), text
