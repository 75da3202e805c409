"""Tab completion is a plain function: text before the cursor in, suggestions out."""

from __future__ import annotations

import pytest

from kshock.conditions import FIELDS, api_names
from kshock.shell.commands import REGISTRY
from kshock.shell.completion import Suggestion, Vocabulary, complete, split_do

VOCAB = Vocabulary(commands=tuple(REGISTRY), client_ids=("kp-orders", "rdk-gzip", 'odd "id"'),
                   topics=("orders", "payments"), rules=("r1", "block"), apis=tuple(api_names()))


def texts(line: str) -> list[str]:
    return [s.text for s in complete(line, VOCAB)]


def test_command_names_complete_from_the_registry():
    assert texts("") == list(REGISTRY)
    assert texts("s") == ["show", "stats", "save"]
    assert complete("wh", VOCAB) == [Suggestion("when", -2, "command")]
    assert texts("  re") == ["revert", "replay"]
    assert texts("zzz") == []


def test_a_condition_starts_with_a_field():
    assert texts("show ") == [*FIELDS, "not"]
    assert texts("when cl") == ["client_id"]
    assert texts("when not to") == ["topic"]
    assert texts("filter ( api == Fetch or pa") == ["partition"]
    assert texts("when api == Produce and ") == [*FIELDS, "not"]


def test_operators_come_from_the_fields_table():
    assert texts("show api ") == list(FIELDS["api"].ops)
    assert texts("show client_id ") == list(FIELDS["client_id"].ops)
    assert texts("show client_id c") == ["contains"]
    assert texts("show size <") == []  # "<" is typed whole; a value follows after a space


def test_api_names_complete_case_insensitively():
    assert complete("when api == pro", VOCAB) == [Suggestion("Produce", -3, "API")]
    assert "Fetch" in texts("when api != ")
    assert texts("show api in {Produce, Fet") == ["Fetch", "FetchSnapshot"]


def test_client_ids_and_topics_seen_so_far_complete_quoted():
    assert texts("when client_id == ") == ['"kp-orders"', '"rdk-gzip"', '"odd \\"id\\""']
    assert complete('when client_id == "kp', VOCAB) == [Suggestion('"kp-orders"', -3, "client id seen")]
    assert complete("when client_id == rd", VOCAB) == [Suggestion('"rdk-gzip"', -2, "client id seen")]
    assert texts('show topic in {"orders", ') == ['"orders"', '"payments"']
    assert texts("show kind == re") == ["request", "response"]


def test_after_a_value_come_connectives_and_for_when_do():
    assert texts("show api == Produce ") == ["and", "or"]
    assert texts("when api == Produce ") == ["and", "or", "do"]
    assert texts('when topic == "orders" d') == ["do"]
    assert texts("when (api == Fetch) ") == ["and", "or", "do"]
    assert texts('when topic == "orders"') == []  # the cursor is still on the value


def test_actions_and_their_options_after_do():
    assert texts("when api == Produce do ") == ["drop", "reset", "stall", "loss", "rate", "delay", "duplicate",
                                                  "corrupt", "reorder"]
    assert complete("when api == Produce do de", VOCAB) == [Suggestion("delay", -2, "delay 200ms")]
    clauses = ["for", "as", "trigger", "latch", "approximate"]
    assert texts("when api == Produce do drop ") == clauses
    assert texts("when api == Produce do loss 30% ") == clauses
    assert texts("when api == Produce do loss ") == []  # the percentage is the user's
    assert texts("when api == Produce do drop for ") == ["30s", "1m", "5m"]
    assert texts("when api == Produce do drop for 30s ") == ["as", "trigger", "latch", "approximate"]
    assert texts("when api == Produce do drop trigger ") == ["every", "probability", "once-per-connection"]
    assert texts("when api == Produce do drop trigger every ") == ["5"]
    assert texts("when api == Produce do drop latch for 1m ") == ["as", "trigger", "approximate"]


def test_command_arguments():
    assert texts("help st") == ["stats"]
    assert texts("help f") == ["filter", "fields"]
    assert texts("revert ") == ["r1", "block"]
    assert texts("filter o") == ["off"]
    assert texts("stats ") == []
    assert texts("pick ") == []


def test_garbage_gives_nothing_rather_than_raising():
    for line in ('show "open', "show ==", "when api == == ", "show }", 'when x[ "a', "show api in Produce "):
        complete(line, VOCAB)  # no exception
    assert texts("show ==") == []


@pytest.mark.parametrize("text, at", [
    ("api == Produce do drop", 14),
    ('client_id == "do it" do drop', 20),
    ("api == Produce", None),
    ("api == Produce do", None),
])
def test_split_do_ignores_do_inside_strings(text, at):
    assert split_do(text) == at
