r"""PURE: condition text -> condition tree, and back (`str(tree)` is the canonical text).

Grammar (Wireshark display filter style; keywords in any case):

    condition  := or
    or         := and (("or" | "||") and)*
    and        := not (("and" | "&&") not)*
    not        := ("not" | "!") not | "(" condition ")" | test
    test       := field                                   field is present
                | field ("==" | "!=" | "<" | "<=" | ">" | ">=") value
                | field "in" "{" value ("," value)* [","] "}"
                | field "contains" string
                | field "matches" string                  a Python regex, checked here
    field      := NAME ["." NAME] ['[' string ']']         client_id, src.port, header["trace"]
    value      := string | number | IP[/prefix] | word    "orders", -1, 0x10, 198.18.0.1, Produce

Strings are in double quotes with the escapes \\ \" \n \r \t \xHH (a byte); any other
backslash is kept as it is, so regexes read naturally ("\d+"). Bare words are allowed for
API names (case-insensitive), kinds (request, response) and `acks == all`.

The tree is plain frozen data; spans (start, end offsets into the text) are kept for error
messages but left out of equality, so parse(str(c)) == c.

Bounds (each a one-line ConditionError, never a RecursionError): at most MAX_CONDITION_CHARS
characters, MAX_NESTING levels of `not` and parentheses, MAX_TESTS tests (each value of an
`in {...}` set counts as one); a number must fit its field's wire width (fields.py: `domain`)
and a client id, topic or transactional id its int16 length (`max_bytes`). The walkers of the
tree (str, matching, the compiler's normal form) recurse once per level, and these bounds keep
the deepest tree a few hundred levels under Python's recursion limit.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from dataclasses import dataclass, field, replace
from typing import Any, Union

from kshock.conditions.fields import FIELDS, KINDS, WIDTH_NAMES, Field, type_name
from kshock.errors import UserError
from kshock.wire.apis import API_NAMES, api_key_of, api_name

Span = tuple[int, int]
_NOWHERE: Span = (0, 0)

MAX_CONDITION_CHARS = 128 * 1024  # room for a 32767-byte client id, which the kernel then refuses
MAX_NESTING = 32  # levels of `not` and parentheses
MAX_TESTS = 128  # tests, each value of an `in {...}` set counting as one
_MAX_DIGITS = 24  # longer than any wire width (and int() refuses 4,300 digits and more)
_SHOWN = 40  # characters of a user's word quoted in a message
_CARET_WIDTH = 120  # a longer line is shown as a window around the caret


# -- the tree --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Compare:
    """`field op value`; op is one of == != < <= > >= contains matches."""

    field: str
    op: str
    value: Any  # int | str | bytes | IPv4Network | IPv6Network (api: its key, as int)
    span: Span = field(default=_NOWHERE, compare=False)
    arg: str | None = None  # header["NAME"]: NAME

    def __str__(self) -> str:
        return f"{_field_text(self.field, self.arg)} {self.op} {_value_text(self.field, self.arg, self.value)}"


@dataclass(frozen=True, slots=True)
class In:
    """`field in {v1, v2, ...}`: any value of the field equals any of the values."""

    field: str
    values: tuple
    span: Span = field(default=_NOWHERE, compare=False)
    arg: str | None = None

    def __str__(self) -> str:
        items = ", ".join(_value_text(self.field, self.arg, v) for v in self.values)
        return f"{_field_text(self.field, self.arg)} in {{{items}}}"


@dataclass(frozen=True, slots=True)
class Exists:
    """A bare field: the frame has a value for it (transactional_id, header["trace"])."""

    field: str
    span: Span = field(default=_NOWHERE, compare=False)
    arg: str | None = None

    def __str__(self) -> str:
        return _field_text(self.field, self.arg)


@dataclass(frozen=True, slots=True)
class And:
    left: Condition
    right: Condition
    span: Span = field(default=_NOWHERE, compare=False)

    def __str__(self) -> str:
        return f"{_operand(self.left, (Or,))} and {_operand(self.right, (And, Or))}"


@dataclass(frozen=True, slots=True)
class Or:
    left: Condition
    right: Condition
    span: Span = field(default=_NOWHERE, compare=False)

    def __str__(self) -> str:
        return f"{self.left} or {_operand(self.right, (Or,))}"


@dataclass(frozen=True, slots=True)
class Not:
    operand: Condition
    span: Span = field(default=_NOWHERE, compare=False)

    def __str__(self) -> str:
        return f"not {_operand(self.operand, (And, Or))}"


Condition = Union[Compare, In, Exists, And, Or, Not]


def _operand(node: Condition, wrap: tuple[type, ...]) -> str:
    return f"({node})" if isinstance(node, wrap) else str(node)


def fields_used(condition: Condition) -> list[str]:
    """The field names a condition tests, each once, in the order they first appear."""
    match condition:
        case Compare(field=name) | In(field=name) | Exists(field=name):
            return [name]
        case And(left, right) | Or(left, right):
            return list(dict.fromkeys(fields_used(left) + fields_used(right)))
        case Not(operand):
            return fields_used(operand)
    raise TypeError(f"not a condition: {condition!r}")


def topics_named(condition: Condition) -> list[str]:
    """The topic names a condition compares with (`topic == X`, `topic in {...}`), each once."""
    match condition:
        case Compare(field="topic", op="==" | "!=", value=str(value)):
            return [value]
        case In(field="topic", values=values):
            return [v for v in dict.fromkeys(values) if isinstance(v, str)]
        case Compare() | In() | Exists():
            return []
        case And(left, right) | Or(left, right):
            return list(dict.fromkeys(topics_named(left) + topics_named(right)))
        case Not(operand):
            return topics_named(operand)
    raise TypeError(f"not a condition: {condition!r}")


# -- rendering values ------------------------------------------------------------------------

def _field_text(name: str, arg: str | None) -> str:
    return name if arg is None else f"{name}[{quote(arg)}]"


def _value_text(name: str, arg: str | None, value: Any) -> str:
    type_ = FIELDS[name].type_of(arg)
    if type_ == "api":
        return api_name(value)
    if type_ == "kind":
        return value
    if type_ == "ip":
        return str(value.network_address) if value.prefixlen == value.max_prefixlen else str(value)
    if isinstance(value, (str, bytes)):
        return quote(value)
    return str(value)


_ESCAPES = {ord('"'): '\\"', ord("\\"): "\\\\", ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"}


def quote(value: str | bytes) -> str:
    """A string literal that parses back to `value` (bytes: non-printable bytes as \\xHH)."""
    out = []
    for ch in (value if isinstance(value, str) else map(chr, value)):
        code = ord(ch)
        if code in _ESCAPES:
            out.append(_ESCAPES[code])
        elif code < 0x20 or code == 0x7F or (isinstance(value, bytes) and code > 0x7E):
            out.append(f"\\x{code:02x}")
        elif not ch.isprintable():  # C1, bidi, line separators...: their UTF-8 bytes (safe on a terminal)
            try:
                raw = ch.encode("utf-8", "surrogateescape")
            except UnicodeEncodeError:
                raw = ch.encode("utf-8", "surrogatepass")
            out.append("".join(f"\\x{b:02x}" for b in raw))
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


# -- errors ----------------------------------------------------------------------------------

class ConditionError(UserError):
    """A condition that does not parse: `span` (start, end) into `text`, `column` 1-based.

    str() is the whole message: what went wrong at which column, what to do, then the text with
    carets under the offending part.
    """

    def __init__(self, message: str, hint: str, text: str, span: Span) -> None:
        start, end = span
        line_start = text.rfind("\n", 0, start) + 1
        line_end = text.find("\n", start)
        line = text[line_start : line_end if line_end >= 0 else len(text)]
        self.text = text
        self.span = span
        self.line = text.count("\n", 0, start) + 1
        self.column = start - line_start + 1
        where = f"column {self.column}" if "\n" not in text else f"line {self.line}, column {self.column}"
        width = max(1, min(end, line_start + len(line)) - start)
        self.caret = caret_lines(line, start - line_start, width)
        super().__init__(f"{where}: {message}", hint)

    def __str__(self) -> str:
        return f"{UserError.__str__(self)}\n{self.caret}"


def caret_lines(line: str, at: int, width: int) -> str:
    """`line` with `width` carets under it from index `at`; a long line (a 70 KB client id) is
    cut to a window around the carets, so that an error stays a few short lines."""
    line = line.translate(_UNPRINTABLE)  # (a terminal must not act on a user's control bytes)
    if len(line) <= _CARET_WIDTH:
        return f"  {line}\n  {' ' * at}{'^' * width}"
    low = max(0, at - _CARET_WIDTH // 4)
    high = min(len(line), low + _CARET_WIDTH)
    shown = ("…" if low else "") + line[low:high] + ("…" if high < len(line) else "")
    width = max(1, min(width, high - at))
    return f"  {shown}\n  {' ' * (at - low + (1 if low else 0))}{'^' * width}"


_UNPRINTABLE = {code: "\ufffd" for code in (*range(0x09), *range(0x0A, 0x20), 0x7F)}


def shown(text: str) -> str:
    """A user's word for a message: repr, cut after _SHOWN characters."""
    return repr(text) if len(text) <= _SHOWN else repr(text[:_SHOWN]) + f"… ({len(text)} characters)"


def _suggest(word: str, choices: list[str], what: str) -> str:
    if len(word) > _SHOWN:  # (nothing is that long; difflib would only take time)
        return f"{what}: " + ", ".join(choices)
    folded = {c.casefold(): c for c in choices}
    prefixed = [c for c in choices if c.startswith(word + ".")]
    if prefixed:
        return "did you mean " + " or ".join(prefixed) + "?"
    close = difflib.get_close_matches(word.casefold(), list(folded), n=1, cutoff=0.6)
    if close:
        return f"did you mean {folded[close[0]]}?"
    return f"{what}: " + ", ".join(choices)


# -- tokens ----------------------------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<string>"(?:[^"\\]|\\[\s\S])*")
  | (?P<open_string>"(?:[^"\\]|\\[\s\S])*\\?\Z)
  | (?P<ip>(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?:/[0-9]+)?
         | (?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f.]*(?:/[0-9]+)?)
  | (?P<number>-?(?:0[xX][0-9A-Fa-f]+|[0-9]+))(?![\w.])
  | (?P<word>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)(?![\w.:/-])
  | (?P<op>==|!=|<=|>=|&&|\|\||[<>!(){}\[\],])
  | (?P<junk>[\w.:/-]+)
""", re.VERBOSE)

_KEYWORDS = {"and": "and", "&&": "and", "or": "or", "||": "or", "not": "not", "!": "not",
             "in": "in", "contains": "contains", "matches": "matches"}
_COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # space/string/ip/number/word/op, or "end"
    text: str
    start: int

    @property
    def end(self) -> int:
        return self.start + len(self.text)

    @property
    def keyword(self) -> str | None:
        if self.kind in ("word", "op"):
            return _KEYWORDS.get(self.text.lower() if self.kind == "word" else self.text)
        return None

    def describe(self) -> str:
        if self.kind == "end":
            return "the end"
        if len(self.text) > _SHOWN:
            return shown(self.text)
        return repr(self.text) if self.kind != "string" else self.text


def _tokens(text: str) -> list[_Token]:
    out = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            ch = text[pos]
            hint = "did you mean ==?" if ch == "=" else 'put text in double quotes: "..."'
            raise ConditionError(f"unexpected character {ch!r}", hint, text, (pos, pos + 1))
        if m.lastgroup == "open_string":
            raise ConditionError("unterminated string", 'close it with "', text, (pos, len(text)))
        if m.lastgroup != "space":
            out.append(_Token(m.lastgroup, m.group(), pos))
        pos = m.end()
    out.append(_Token("end", "", len(text)))
    return out


def nested_quantifier(pattern: str | bytes) -> str | None:
    """What makes `pattern` backtrack exponentially, or None: a group repeated more than once
    (+, *, {2,}, ...) that itself contains a variable repeat (a+, .*, x?, a{1,3}) or an
    alternation ((a|aa)+). Walks the parsed pattern (re's own parser), not its text.
    Atomic groups (?>...) and possessive repeats (a++) never backtrack, so they pass."""
    from re import _constants as sre, _parser as sre_parse  # (Python 3.11+, as pyproject requires)
    repeats = (sre.MAX_REPEAT, sre.MIN_REPEAT)
    atomic_group, possessive = getattr(sre, "ATOMIC_GROUP", None), getattr(sre, "POSSESSIVE_REPEAT", None)
    atomic = (atomic_group, possessive)

    def children(op, av) -> list:
        if op in repeats or op == possessive:
            return [av[2]]
        if op == atomic_group:
            return [av]
        if op == sre.SUBPATTERN:
            return [av[3]]
        if op == sre.BRANCH:
            return list(av[1])
        if op in (sre.ASSERT, sre.ASSERT_NOT):
            return [av[1]]
        if op == sre.GROUPREF_EXISTS:
            return [branch for branch in av[1:] if branch is not None]
        return []

    def inner(items) -> str | None:
        """A variable repeat or an alternation that can backtrack, inside a repeated part."""
        for op, av in items:
            if op in atomic:
                continue
            if op in repeats and av[0] != av[1]:
                return "a repeat"
            if op == sre.BRANCH:
                return "an alternation"
            for child in children(op, av):
                found = inner(child)
                if found:
                    return found
        return None

    def outer(items) -> str | None:
        for op, av in items:
            if op in repeats and av[1] > 1:
                found = inner(av[2])
                if found:
                    return f"a group that contains {found} (a nested quantifier, as in (a+)+ or (a|aa)+)"
            for child in children(op, av):
                found = outer(child)
                if found:
                    return found
        return None

    try:
        return outer(sre_parse.parse(pattern))
    except (RecursionError, re.error):
        return "more deeply nested groups than can be checked"


def _unquote(token: _Token, text: str) -> bytes:
    """The bytes a string literal stands for (text as UTF-8, \\xHH as one byte)."""
    body = token.text[1:-1]
    out = bytearray()
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            j = body.find("\\", i)
            j = len(body) if j < 0 else j
            out += body[i:j].encode("utf-8", "surrogatepass")
            i = j
            continue
        nxt = body[i + 1]
        if nxt == "x":
            digits = body[i + 2 : i + 4]
            if len(digits) != 2 or not all(c in "0123456789abcdefABCDEF" for c in digits):
                at = token.start + 1 + i
                raise ConditionError("\\x needs two hex digits", 'write a byte as \\x00 ... \\xff',
                                     text, (at, at + 2 + len(digits)))
            out.append(int(digits, 16))
            i += 4
            continue
        out += {'"': b'"', "\\": b"\\", "n": b"\n", "r": b"\r", "t": b"\t"}.get(nxt, ("\\" + nxt).encode())
        i += 2
    return bytes(out)


# -- the parser ------------------------------------------------------------------------------

def parse_condition(text: str) -> Condition:
    """Parse condition text; raises ConditionError (a UserError) naming the column."""
    if len(text) > MAX_CONDITION_CHARS:
        raise ConditionError(f"the condition is {len(text)} characters long, more than {MAX_CONDITION_CHARS}",
                             "shorten it, or split it into several rules", text, (MAX_CONDITION_CHARS, len(text)))
    parser = _Parser(text)
    if parser.peek.kind == "end":
        raise ConditionError("empty condition", 'e.g. api == Produce and client_id == "shop"',
                             text, (0, len(text)))
    tree = parser.disjunction()
    token = parser.peek
    if token.kind != "end":
        if token.text == ")":
            raise parser.error(token, "unbalanced ')'", "remove it or add a '(' before it")
        raise parser.error(token, f"expected 'and', 'or' or the end, found {token.describe()}",
                           "join tests with and / or")
    return tree


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.at = 0
        self.depth = 0  # levels of not and parentheses around the current token
        self.tests = 0

    @property
    def peek(self) -> _Token:
        return self.tokens[self.at]

    def next(self) -> _Token:
        token = self.tokens[self.at]
        if token.kind != "end":
            self.at += 1
        return token

    def error(self, token: _Token, message: str, hint: str, end: int | None = None) -> ConditionError:
        return ConditionError(message, hint, self.text, (token.start, token.end if end is None else end))

    def disjunction(self) -> Condition:
        left = self.conjunction()
        while self.peek.keyword == "or":
            self.next()
            right = self.conjunction()
            left = Or(left, right, (left.span[0], right.span[1]))
        return left

    def conjunction(self) -> Condition:
        left = self.negation()
        while self.peek.keyword == "and":
            self.next()
            right = self.negation()
            left = And(left, right, (left.span[0], right.span[1]))
        return left

    def negation(self) -> Condition:
        token = self.peek
        if token.keyword == "not":
            self.nest(token)
            self.next()
            operand = self.negation()
            self.depth -= 1
            return Not(operand, (token.start, operand.span[1]))
        if token.text == "(" and token.kind == "op":
            self.nest(token)
            self.next()
            inner = self.disjunction()
            close = self.next()
            if close.text != ")" or close.kind != "op":
                raise self.error(close, f"expected ')' to close the '(' at column {token.start + 1}, "
                                        f"found {close.describe()}", "add the missing ')'")
            self.depth -= 1
            return _respan(inner, (token.start, close.end))
        return self.test()

    def nest(self, token: _Token) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.error(token, f"more than {MAX_NESTING} levels of not and parentheses",
                             "simplify the condition (not not x is x)")

    def count(self, token: _Token) -> None:
        self.tests += 1
        if self.tests > MAX_TESTS:
            raise self.error(token, f"more than {MAX_TESTS} tests in one condition (each value of an in {{...}} "
                                    "set counts as one)", "shorten it, or split it into several rules")

    def test(self) -> Condition:
        token = self.next()
        self.count(token)
        if token.kind == "junk":
            raise self.error(token, f"unknown field {shown(token.text)}", _suggest(token.text, list(FIELDS), "fields"))
        if token.kind != "word" or token.keyword:
            raise self.error(token, f"expected a field, found {token.describe()}",
                             _suggest(token.text, list(FIELDS), "fields"))
        row = FIELDS.get(token.text)
        if row is None:
            raise self.error(token, f"unknown field {shown(token.text)}",
                             _suggest(token.text, list(FIELDS), "fields"))
        arg, start, end = None, token.start, token.end
        if self.peek.text == "[" and self.peek.kind == "op":
            bracket = self.next()
            if row.arg_type is None:
                raise self.error(bracket, f"{row.name} takes no [name]", "only header[\"NAME\"] does")
            name = self.next()
            if name.kind != "string":
                raise self.error(name, f"expected a quoted header name, found {name.describe()}",
                                 f'write {row.name}["NAME"]')
            arg = self._text(name, row)
            close = self.next()
            if close.text != "]":
                raise self.error(close, f"expected ']', found {close.describe()}", f'write {row.name}["NAME"]')
            end = close.end
        where = _field_text(row.name, arg)
        type_ = row.type_of(arg)
        ops = row.ops_of(arg)
        op = self.peek
        name = op.keyword if op.keyword in ("in", "contains", "matches") else \
            op.text if op.kind == "op" and op.text in _COMPARISONS else None
        if name is None:
            if op.kind == "end" or op.keyword in ("and", "or") or op.text == ")":
                return Exists(row.name, (start, end), arg)
            raise self.error(op, f"expected an operator after {where}, found {op.describe()}",
                             f"{where} takes {' '.join(ops)}")
        self.next()
        if name not in ops:
            raise self.error(op, f"{name!r} does not apply to {where} ({type_name(type_)})",
                             f"{where} takes {' '.join(ops)}")
        if name == "in":
            values, close = self._set(row, arg, op)
            return In(row.name, values, (start, close), arg)
        value_token = self.peek
        if name == "matches":
            value = self._pattern(row, arg)
        elif name == "contains":
            value = self._value(row, arg, op="contains")
        else:
            value = self._value(row, arg, op=name)
        return Compare(row.name, name, value, (start, value_token.end), arg)

    def _set(self, row: Field, arg: str | None, op: _Token) -> tuple[tuple, int]:
        brace = self.next()
        if brace.text != "{":
            raise self.error(brace, f"expected '{{' after in, found {brace.describe()}",
                             'write a set: topic in {"a", "b"}')
        values = [self._value(row, arg)]
        while True:
            token = self.next()
            if token.text == "}":
                return tuple(values), token.end
            if token.text != ",":
                raise self.error(token, f"expected ',' or '}}', found {token.describe()}",
                                 "separate values with commas and close the set with }")
            if self.peek.text == "}":
                continue
            self.count(self.peek)
            values.append(self._value(row, arg))

    def _pattern(self, row: Field, arg: str | None) -> str | bytes:
        token = self.next()
        if token.kind != "string":
            raise self.error(token, f"expected a quoted regular expression, found {token.describe()}",
                             'write matches "REGEX"')
        pattern = self._text(token, row) if row.type_of(arg) == "str" else _unquote(token, self.text)
        try:
            re.compile(pattern)
        except re.error as exc:
            raise self.error(token, f"invalid regular expression: {exc.msg} at position {exc.pos}",
                             "matches takes a Python regular expression") from None
        nested = nested_quantifier(pattern)
        if nested:
            raise self.error(token, f"the regular expression repeats {nested}: on some inputs it would "
                             "backtrack for hours (Python's re has no time limit), so it is refused",
                             "flatten it (e.g. ^.+!$ for ^(.+)+!$), or make the inner part atomic, "
                             "(?>...), or possessive, a++")
        return pattern

    def _value(self, row: Field, arg: str | None, op: str = "==") -> Any:
        token = self.next()
        type_ = row.type_of(arg)
        where = _field_text(row.name, arg)
        if token.kind in ("end", "op") or token.keyword:
            raise self.error(token, f"expected {type_name(type_)} for {where}, found {token.describe()}",
                             _example(row, arg))
        if op == "contains" or type_ in ("str", "bytes"):
            if token.kind != "string":
                raise self.error(token, f"expected a quoted string for {where}, found {token.describe()}",
                                 f'write {where} {op} "{token.text[:_SHOWN]}"')
            value = _unquote(token, self.text) if type_ == "bytes" else self._text(token, row)
            size = len(value) if isinstance(value, bytes) else len(value.encode("utf-8", "surrogatepass"))
            if row.max_bytes is not None and arg is None and size > row.max_bytes:
                raise self.error(token, f"{where} is at most {row.max_bytes} bytes on the wire (an int16 length), "
                                        f"and this one is {size}", f"no Kafka frame carries a longer {where}")
            return value
        if type_ == "api":
            return self._api(token)
        if type_ == "kind":
            word = _unquote(token, self.text).decode("utf-8", "replace") if token.kind == "string" else token.text
            if word.lower() in KINDS and token.kind in ("word", "string"):
                return word.lower()
            raise self.error(token, f"unknown kind {shown(word)}", _suggest(word, list(KINDS), "kinds"))
        if type_ == "ip":
            text = _unquote(token, self.text).decode("utf-8", "replace") if token.kind == "string" else token.text
            try:
                if token.kind not in ("ip", "string"):
                    raise ValueError
                return ipaddress.ip_network(text, strict=False)
            except ValueError:
                raise self.error(token, f"expected an IP address or network for {where}, found "
                                        f"{token.describe()}", "e.g. 198.18.0.1, 198.18.0.0/24 or \"::1\"") from None
        # int
        symbols = dict(row.symbols)
        if token.kind == "word" and token.text.lower() in symbols:
            return symbols[token.text.lower()]
        if token.kind != "number":
            raise self.error(token, f"expected a number for {where}, found {token.describe()}", _example(row, arg))
        return self._number(token, where, row.domain)

    def _number(self, token: _Token, where: str, domain: tuple[int, int] | None) -> int:
        """An int token inside its field's wire width (a 5,000-digit number is refused, unread)."""
        digits = len(token.text.lstrip("-"))
        try:
            value = int(token.text, 0) if digits <= _MAX_DIGITS else None
        except ValueError:  # 010: a leading zero is neither decimal nor octal here
            raise self.error(token, f"{token.text} has a leading zero",
                             "write the number without it (or in hex: 0x10)") from None
        if domain is not None and (value is None or not domain[0] <= value <= domain[1]):
            text = token.text if value is not None else f"a {digits}-digit number"
            raise self.error(token, f"{text} is out of range for {where}",
                             f"{where} is {WIDTH_NAMES.get(domain, 'a number')}: {domain[0]} to {domain[1]}")
        if value is None:
            raise self.error(token, f"a {digits}-digit number is too long", f"{where} takes a number of "
                             f"at most {_MAX_DIGITS} digits")
        return value

    def _api(self, token: _Token) -> int:
        if token.kind == "number":
            key = self._number(token, "api", None) if len(token.text) <= 8 else len(API_NAMES)
            if 0 <= key < len(API_NAMES):
                return key
            text = str(key) if len(token.text) <= 8 else token.text if len(token.text) <= _SHOWN else \
                f"{token.text[:_SHOWN]}… ({len(token.text)} characters)"
            raise self.error(token, f"unknown API key {text}", f"API keys go from 0 to {len(API_NAMES) - 1}")
        if token.kind in ("word", "string"):
            word = _unquote(token, self.text).decode("utf-8", "replace") if token.kind == "string" else token.text
            key = api_key_of(word)
            if key is not None:
                return key
            raise self.error(token, f"unknown API {shown(word)}", _suggest(word, list(API_NAMES), "APIs"))
        raise self.error(token, f"expected an API name or key, found {token.describe()}", "e.g. api == Produce")

    def _text(self, token: _Token, row: Field) -> str:
        try:
            return _unquote(token, self.text).decode("utf-8")
        except UnicodeDecodeError:
            raise self.error(token, f"the string for {row.name} is not UTF-8 text",
                             "\\xHH escapes make bytes; use them for key, value and header values") from None


def _example(row: Field, arg: str | None) -> str:
    examples = {"int": "e.g. 3", "str": 'e.g. "orders"', "bytes": 'e.g. "refund"',
                "ip": "e.g. 198.18.0.1", "api": "e.g. Produce", "kind": "request or response"}
    type_ = row.type_of(arg)
    if row.symbols and type_ == "int":
        return f"{row.name} takes a number or {row.symbols[0][0]}, e.g. -1, 0, 1, {row.symbols[0][0]}"
    return f"{_field_text(row.name, arg)} takes {type_name(type_)}, {examples[type_]}"


def _respan(node: Condition, span: Span) -> Condition:
    """The same node, its span widened to the parentheses around it."""
    return replace(node, span=span)
