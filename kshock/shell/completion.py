"""Tab completion for the shell, as a plain function: text before the cursor in, suggestions out.

    complete('when api == Pro', vocab)  ->  [Suggestion('Produce', start=-3)]

No terminal and no prompt_toolkit here (app.py adapts this to a prompt_toolkit Completer), so
every case is tested directly. Conditions are completed from the FIELDS table: a field where a
test starts, an operator after a field, a value after an operator (API names, and the client
ids and topics seen so far, quoted), a connective after a value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kshock.conditions import FIELDS
from kshock.rules.spec import ACTIONS

CONNECTIVES = ("and", "or")
ACTION_EXAMPLES = {"loss": "loss 10%", "rate": "rate 1mbit", "delay": "delay 200ms",
                   "duplicate": "duplicate 5%", "corrupt": "corrupt 1%", "reorder": "reorder 10%"}

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<open>"(?:[^"\\]|\\.)*\\?$)
  | (?P<op>==|!=|<=|>=|&&|\|\||[<>!(){}\[\],])
  | (?P<word>[^\s"=!<>(){}\[\],&|]+)
""", re.VERBOSE)
WHEN_CLAUSES = ("for", "as", "trigger", "latch", "approximate")  # what may follow when's action
TRIGGERS = ("every", "probability", "once-per-connection")


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """What can be suggested: the commands, and what the session has seen."""

    commands: tuple[str, ...]
    client_ids: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()  # rule names, for revert
    apis: tuple[str, ...] = ()  # API names (conditions.api_names())


@dataclass(frozen=True, slots=True)
class Suggestion:
    text: str
    start: int  # where the replaced text begins, relative to the cursor (0 or negative)
    meta: str = ""  # a short description for the menu


def complete(text: str, vocab: Vocabulary) -> list[Suggestion]:
    """Suggestions for the text before the cursor."""
    stripped = text.lstrip()
    if " " not in stripped:
        return _prefixed(stripped, vocab.commands, "command")
    parts = stripped.split(None, 1)
    command = parts[0].lower()
    rest = parts[1] if len(parts) > 1 else ""
    if command == "help":
        return _single_word(rest, (*vocab.commands, "fields"), "command")
    if command == "revert":
        return _single_word(rest, vocab.rules, "rule")
    if command == "filter":
        out = _single_word(rest, ("off",), "show every frame") if " " not in rest else []
        return out + complete_condition(rest, vocab)
    if command == "show":
        return complete_condition(rest, vocab)
    if command == "when":
        at = split_do(rest)
        if at is None:
            return complete_condition(rest, vocab, finish=("do",))
        return _complete_action(rest[at + 4:])
    return []


def split_do(text: str) -> int | None:
    """Where ` do ` (outside strings) starts in `when`'s argument, or None."""
    for match in _TOKEN.finditer(text):
        if match.lastgroup == "word" and match.group().lower() == "do" and match.start() > 0 \
                and text[match.start() - 1].isspace() and match.end() < len(text) and text[match.end()].isspace():
            return match.start() - 1
    return None


def complete_condition(text: str, vocab: Vocabulary, finish: tuple[str, ...] = ()) -> list[Suggestion]:
    """Suggestions inside a condition (`finish`: words that may end it, e.g. `do`)."""
    tokens = [(m.lastgroup, m.group()) for m in _TOKEN.finditer(text) if m.lastgroup != "space"]
    current = ""
    if tokens and not text[-1:].isspace() and tokens[-1][0] in ("word", "open", "string"):
        kind, current = tokens.pop()
        if kind == "string":  # a closed string right at the cursor: the value is done
            return []
    state, field_name = _state(tokens)
    if state == "field":
        return _prefixed(current, (*FIELDS, "not"), "field")
    if state == "op":
        row = FIELDS.get(field_name or "")
        ops = row.ops if row else ("==",)
        return _prefixed(current, ops, "operator")
    if state == "value":
        return _values(field_name, current, vocab)
    if state == "next":
        return _prefixed(current, (*CONNECTIVES, *finish), "")
    return []


def _state(tokens: list[tuple[str, str]]) -> tuple[str, str | None]:
    """What comes next after `tokens`: 'field', 'op', 'value', 'next' (a connective), or ''."""
    state = "field"
    field_name = None
    in_set = False
    for kind, text in tokens:
        lowered = text.lower()
        if state == "field":
            if lowered in ("not", "!", "("):
                continue
            if kind == "word":
                field_name = text.split("[", 1)[0]
                state = "op"
            else:
                return "", None
        elif state == "op":
            if text in ("[", "]") or kind == "string":  # header["NAME"]
                continue
            if text in ("==", "!=", "<", "<=", ">", ">=") or lowered in ("contains", "matches"):
                state = "value"
            elif lowered == "in":
                state = "set"
            elif lowered in ("and", "or", "&&", "||"):  # a bare field (exists)
                state = "field"
            elif text == ")":
                state = "next"
            else:
                return "", None
        elif state == "set":
            if text == "{":
                in_set = True
                state = "value"
            else:
                return "", None
        elif state == "value":
            state = "after_set_value" if in_set else "next"
        elif state == "after_set_value":
            if text == ",":
                state = "value"
            elif text == "}":
                in_set = False
                state = "next"
            else:
                return "", None
        elif state == "next":
            if lowered in ("and", "or", "&&", "||"):
                state = "field"
            elif text == ")":
                continue
            else:
                return "", None
    if state == "after_set_value":
        return "", None
    return state, field_name


def _values(field_name: str | None, current: str, vocab: Vocabulary) -> list[Suggestion]:
    row = FIELDS.get(field_name or "")
    if row is None:
        return []
    if row.type == "api":
        return _prefixed(current, vocab.apis, "API", fold=True)
    if row.type == "kind":
        return _prefixed(current, ("request", "response"), "")
    if row.name == "client_id":
        return _quoted(current, vocab.client_ids, "client id seen")
    if row.name in ("topic", "transactional_id"):
        return _quoted(current, vocab.topics if row.name == "topic" else (), "topic seen")
    if row.symbols:
        return _prefixed(current, tuple(word for word, _ in row.symbols), "")
    return []


def _complete_action(text: str) -> list[Suggestion]:
    words = text.split()
    typing = bool(text) and not text[-1].isspace()
    current = words[-1] if typing and words else ""
    done = words[:-1] if typing else words
    if not done:
        return [Suggestion(kind, -len(current), ACTION_EXAMPLES.get(kind, "action"))
                for kind in ACTIONS if kind.startswith(current.lower())]
    kind = done[0].lower()
    needs = 2 if kind in ("loss", "rate", "delay", "duplicate", "corrupt", "reorder") else 1
    if len(done) < needs:
        return []
    last = done[-1].lower()
    if last in ("for", "as"):
        return _prefixed(current, ("30s", "1m", "5m") if last == "for" else (), "duration")
    if last == "trigger":
        return _prefixed(current, TRIGGERS, "trigger")
    if last in ("every", "probability"):
        return _prefixed(current, ("5",) if last == "every" else ("30%",), "")
    used = {d.lower() for d in done}
    return _prefixed(current, tuple(w for w in WHEN_CLAUSES if w not in used), "")


def _prefixed(current: str, choices, meta: str, fold: bool = False) -> list[Suggestion]:
    want = current.casefold() if fold else current
    out = []
    for choice in choices:
        if (choice.casefold() if fold else choice).startswith(want):
            out.append(Suggestion(choice, -len(current), meta))
    return out


def _single_word(rest: str, choices, meta: str) -> list[Suggestion]:
    if " " in rest.strip() or (rest and rest[-1].isspace()):
        return []
    return _prefixed(rest, choices, meta)


def _quoted(current: str, choices, meta: str) -> list[Suggestion]:
    """Quoted string values; `current` may be an open string ('"ord') or a bare prefix."""
    prefix = current[1:] if current.startswith('"') else current
    return [Suggestion('"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"', -len(current), meta)
            for value in choices if value.startswith(prefix)]


__all__ = ["Suggestion", "Vocabulary", "complete", "complete_condition", "split_do"]
