"""PURE: rule files — (YAML text, file name) -> [RuleSpec], or one error that says where.

    rules:
      - name: block-shop-produce
        match: api == Produce and client_id == "shop-frontend"   # or: any
        action: drop                 # drop | reset | stall | loss 30% | rate 1mbit |
                                     # delay 200ms [jitter 20ms] | duplicate 5% | corrupt 1% | reorder 10%
        target: {port: 9092, direction: ingress}   # port | ports, host, interface, direction
        duration: 5m                 # 90s, 5m, 1h, 1h30m (default 5m, at most 24h)
        trigger: every 5             # always | probability 30% | every N | once-per-connection
        latch: true                  # act on the rest of a connection once a packet matched
        approximate: false           # allow the compiler to widen what the kernel cannot express

Every error names the file, the line and the key, says what is wrong and what to do:
`rules/x.yaml:7: target.port: 70000 is not a TCP port — use 1 to 65535`. The YAML is
composed into a node tree (not loaded into plain dicts) so that every value keeps its position;
a condition's syntax error is mapped back to the line and column in the file, with a caret.

Bounds: the YAML nests at most MAX_YAML_DEPTH levels and holds at most MAX_YAML_NODES values
(PyYAML composes recursively: 50,000 `[` were a RecursionError); numbers are read as written —
a port is plain decimal digits (YAML 1.1 reads `2:33:12` as 9192 and `010` as 8), and every
number has a bounded count of digits and a range. Values echoed in messages are cut short.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from dataclasses import dataclass

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from kshock.conditions import ConditionError, parse_condition
from kshock.conditions.parse import caret_lines, shown as _shown
from kshock.errors import UserError
from kshock.rules.durations import MAX_FAULT_S, MIN_FAULT_S, parse_unit_duration
from kshock.rules.spec import DIRECTIONS, Action, RuleSpec, Target, Trigger
from kshock.rules.audit import INTERFACE, RULE_NAME

RULE_KEYS = ("name", "match", "action", "target", "duration", "trigger", "latch", "approximate")
TARGET_KEYS = ("port", "ports", "host", "interface", "direction")
TRIGGER_KEYS = ("probability", "every", "once-per-connection")
MATCH_ANY = "any"  # `match: any`: every packet of the target (a plain network fault)
DEFAULT_DURATION_S = 300.0
MAX_DURATION_S = MAX_FAULT_S
NAME = RULE_NAME  # one name pattern for rules, rule sets, chains' comments (kshock.rules.audit)

_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_NULL = "tag:yaml.org,2002:null"
_STR = "tag:yaml.org,2002:str"
_TIME_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}  # to milliseconds
_RATE_UNITS = {"bit": 1, "kbit": 10**3, "mbit": 10**6, "gbit": 10**9}  # SI, as tc reads them
_NUMBER = r"([0-9]{1,12}(?:\.[0-9]{1,9})?)"  # bounded: 400 digits were a float overflow
_PERCENT_ACTIONS = ("loss", "duplicate", "corrupt", "reorder")
MAX_RATE_BIT_S = 10**12  # 1000gbit
MAX_DELAY_MS = 3_600_000.0  # an hour
MAX_EVERY = 1_000_000
MAX_YAML_DEPTH = 16  # a rule file needs 6: the file, rules, a rule, its target, its ports, a port
MAX_YAML_NODES = 20_000  # about 1,000 rules
_PORT = re.compile(r"[1-9][0-9]{0,4}\Z")
_ACTION_FORMS = ("drop | reset | stall | loss 30% | rate 1mbit | delay 200ms [jitter 20ms] | "
                 "duplicate 5% | corrupt 1% | reorder 10%")


class RuleFileError(UserError):
    """A rule file that cannot be used: `file:line: key: what is wrong — what to do`, and for a
    condition or YAML syntax error the file's line with a caret under the offending part."""

    def __init__(self, filename: str, line: int, key: str, message: str, hint: str, *,
                 column: int | None = None, caret: str = "") -> None:
        where = f"{filename}:{line}" + (f":{column}" if column is not None else "")
        super().__init__(f"{where}: {key}: {message}" if key else f"{where}: {message}", hint)
        self.filename = filename
        self.line = line
        self.column = column
        self.key = key
        self.caret = caret

    def __str__(self) -> str:
        text = UserError.__str__(self)
        return f"{text}\n{self.caret}" if self.caret else text


class _TooLarge(yaml.MarkedYAMLError):
    """YAML nested deeper, or holding more values, than a rule file may."""


class _Loader(yaml.SafeLoader):
    """PyYAML's SafeLoader, composing at most MAX_YAML_DEPTH levels and MAX_YAML_NODES nodes."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent: Node | None, index: object) -> Node:
        self._depth += 1
        self._nodes += 1
        if self._depth > MAX_YAML_DEPTH or self._nodes > MAX_YAML_NODES:
            problem = (f"nested more than {MAX_YAML_DEPTH} levels deep" if self._depth > MAX_YAML_DEPTH
                       else f"more than {MAX_YAML_NODES} values long")
            raise _TooLarge(problem=problem, problem_mark=self.peek_event().start_mark)
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def compose(text: str) -> Node | None:
    """The YAML node tree of a rule file's text (yaml.YAMLError when it is not YAML)."""
    return yaml.compose(text, Loader=_Loader)


def parse_rule_file(text: str, filename: str = "<rules>") -> list[RuleSpec]:
    """The rules of a rule file, in file order; raises RuleFileError at the first problem."""
    return _Reader(text, filename).rules()


@dataclass(frozen=True, slots=True)
class _Key:
    """A mapping key, as written, with its node (for the line) and its value node."""

    name: str
    node: Node
    value: Node


class _Reader:
    def __init__(self, text: str, filename: str) -> None:
        self.text = text
        self.filename = filename
        self.lines = text.splitlines()

    # -- errors ------------------------------------------------------------------------------

    def error(self, node: Node | None, key: str, message: str, hint: str) -> RuleFileError:
        line = node.start_mark.line + 1 if node is not None else 1
        return RuleFileError(self.filename, line, key, message, hint)

    def caret(self, line: int, column: int, width: int) -> str:
        """The file's line (1-based) with carets under `width` characters from `column` (1-based)."""
        source = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        width = max(1, min(width, len(source) - column + 1))
        return caret_lines(source, column - 1, width)

    # -- the file ----------------------------------------------------------------------------

    def rules(self) -> list[RuleSpec]:
        try:
            root = compose(self.text)
        except _TooLarge as exc:
            line, column = exc.problem_mark.line + 1, exc.problem_mark.column + 1
            hint = ("a rule file needs six levels: see rules/*.yaml" if "nested" in exc.problem
                    else "split the rules into several files")
            raise RuleFileError(self.filename, line, "", f"the YAML is {exc.problem}", hint, column=column,
                                caret=self.caret(line, column, 1)) from None
        except yaml.MarkedYAMLError as exc:
            raise self._yaml_error(exc) from None
        except yaml.reader.ReaderError as exc:  # a control character (the text is already str)
            at = max(0, min(exc.position, len(self.text)))
            line = self.text.count("\n", 0, at) + 1
            column = at - (self.text.rfind("\n", 0, at) + 1) + 1
            raise RuleFileError(self.filename, line, "", f"character U+{exc.character:04X} is not allowed in YAML",
                                "remove it (control characters have no place in a rule file)", column=column,
                                caret=self.caret(line, column, 1)) from None
        except yaml.YAMLError as exc:
            problem = " ".join(str(exc).split())
            raise RuleFileError(self.filename, 1, "", f"not valid YAML: {problem[:200]}",
                                "fix the YAML syntax") from None
        if root is None or (isinstance(root, ScalarNode) and root.tag == _NULL):
            raise RuleFileError(self.filename, 1, "rules", "the file holds no rules",
                                "start it with `rules:` and a list of rules (see rules/*.yaml)")
        top = self.mapping(root, "", "the file", TOP_KEYS_HINT, ("rules",))
        if "rules" not in top:
            raise self.error(root, "rules", "missing", "start the file with `rules:` and a list of rules")
        entry = top["rules"]
        if not isinstance(entry.value, SequenceNode) or not entry.value.value:
            what = "an empty list" if isinstance(entry.value, SequenceNode) else _describe(entry.value)
            raise self.error(entry.value if entry.value.tag != _NULL else entry.node, "rules",
                             f"expected a list of rules, found {what}",
                             "write each rule as a `- name: ...` item under `rules:`")
        specs: list[RuleSpec] = []
        first_line: dict[str, int] = {}
        for item in entry.value.value:
            spec = self.rule(item)
            if spec.name in first_line:
                raise self.error(self._name_node(item), "name",
                                 f"{spec.name!r} is already the name of the rule at line {first_line[spec.name]}",
                                 "give every rule its own name")
            first_line[spec.name] = item.start_mark.line + 1
            specs.append(spec)
        return specs

    def _yaml_error(self, exc: yaml.MarkedYAMLError) -> RuleFileError:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or "not valid YAML"
        if exc.context:
            problem = f"{problem} ({exc.context}" + (
                f" at line {exc.context_mark.line + 1})" if exc.context_mark and exc.context_mark != mark else ")")
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        if line > len(self.lines):  # the end of the file: point at the last line's end
            line = max(1, len(self.lines))
            column = len(self.lines[-1]) + 1 if self.lines else 1
        return RuleFileError(self.filename, line, "", f"YAML syntax: {problem}",
                             "fix the YAML syntax (indent with spaces; quote text that holds ': ' or '#')",
                             column=column, caret=self.caret(line, column, 1))

    def mapping(self, node: Node, key: str, what: str, hint: str, allowed: tuple[str, ...]) -> dict[str, _Key]:
        """A mapping's entries by key; unknown and duplicate keys are errors."""
        if not isinstance(node, MappingNode):
            raise self.error(node, key or "rules", f"expected {what} as a mapping (key: value), "
                             f"found {_describe(node)}", hint)
        out: dict[str, _Key] = {}
        for key_node, value in node.value:
            name = key_node.value if isinstance(key_node, ScalarNode) else None
            full = f"{key}.{name}" if key and name is not None else name or key
            if not isinstance(name, str) or key_node.tag != _STR:
                raise self.error(key_node, key or "rules", f"{_describe(key_node)} is not a key",
                                 "keys are words: " + ", ".join(allowed))
            if name not in allowed:
                close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
                tip = f"did you mean {close[0]}?" if close else "remove it"
                raise self.error(key_node, full, f"unknown key in {what}",
                                 f"{tip} ({what} takes {', '.join(allowed)})")
            if name in out:
                raise self.error(key_node, full, f"given twice (first at line {out[name].node.start_mark.line + 1})",
                                 "keep one of them")
            out[name] = _Key(name, key_node, value)
        return out

    # -- one rule ----------------------------------------------------------------------------

    def _name_node(self, item: Node) -> Node:
        for key_node, value in item.value:
            if isinstance(key_node, ScalarNode) and key_node.value == "name":
                return value
        return item

    def rule(self, item: Node) -> RuleSpec:
        keys = self.mapping(item, "", "a rule", "write a rule as `- name: ...` with match, action and target",
                            RULE_KEYS)
        for required, hint in (("name", "give the rule a name, e.g. name: block-shop-produce"),
                               ("match", "say which frames: e.g. match: api == Produce, "
                                         "or match: any for all traffic of the target"),
                               ("action", f"say what to do: {_ACTION_FORMS}")):
            if required not in keys:
                raise self.error(item, required, "missing", hint)
        name = self.name(keys["name"])
        condition = self.condition(keys["match"])
        action = self.action(keys["action"])
        target = self.target(keys["target"]) if "target" in keys else Target()
        duration_s = self.duration(keys["duration"]) if "duration" in keys else DEFAULT_DURATION_S
        trigger = self.trigger(keys["trigger"]) if "trigger" in keys else Trigger()
        latch = self.flag(keys["latch"]) if "latch" in keys else False
        approximate = self.flag(keys["approximate"]) if "approximate" in keys else False
        if latch and trigger.mode == "once-per-connection":
            raise self.error(keys["latch"].node, "latch", "cannot go with trigger: once-per-connection",
                             "a latch acts on the whole rest of a connection; once-per-connection on "
                             "one packet of it — choose one")
        return RuleSpec(name, condition, action, target, duration_s, trigger, latch, approximate,
                        source=f"{self.filename}:{item.start_mark.line + 1}")

    def scalar_text(self, key: _Key, full: str, hint: str) -> str:
        node = key.value
        if not isinstance(node, ScalarNode) or node.tag == _NULL:
            raise self.error(node if node.tag != _NULL else key.node, full,
                             f"expected text, found {_describe(node)}", hint)
        return node.value

    def name(self, key: _Key) -> str:
        text = self.scalar_text(key, "name", "e.g. name: block-shop-produce")
        if not NAME.match(text):
            raise self.error(key.value, "name", f"{_shown(text)} is not a usable rule name",
                             "use letters, digits, '-', '_' and '.', starting with a letter or digit, "
                             "at most 64 characters")
        return text

    def condition(self, key: _Key):
        text = self.scalar_text(key, "match", 'e.g. match: api == Produce and client_id == "shop", or match: any')
        if text.strip() == MATCH_ANY:
            return None
        try:
            return parse_condition(text)
        except ConditionError as exc:
            raise self._condition_error(key.value, text, exc) from None

    def _condition_error(self, node: ScalarNode, text: str, exc: ConditionError) -> RuleFileError:
        """The condition's error at its place in the file: line and column, and a caret."""
        message = re.sub(r"^(?:line \d+, )?column \d+: ", "", exc.message)
        start, end = exc.span
        positions = _align(text, self.text, node.start_mark.index, node.end_mark.index)
        if positions is None:  # an escape we cannot follow: point at the value, caret in the text
            return RuleFileError(self.filename, node.start_mark.line + 1, "match", message, exc.hint,
                                 column=node.start_mark.column + 1, caret=exc.caret)
        anchor = positions[min(start, len(positions) - 1)] if positions else node.start_mark.index
        if start >= len(text):  # the error is at the end of the text: just after its last character
            anchor = positions[-1] + 1 if positions else node.start_mark.index
        line = self.text.count("\n", 0, anchor) + 1
        column = anchor - (self.text.rfind("\n", 0, anchor) + 1) + 1
        last = positions[min(max(end, start + 1), len(positions)) - 1] + 1 if start < len(text) else anchor + 1
        line_end = self.text.find("\n", anchor)
        width = min(last, line_end if line_end >= 0 else len(self.text)) - anchor
        return RuleFileError(self.filename, line, "match", message, exc.hint, column=column,
                             caret=self.caret(line, column, max(1, width)))

    def action(self, key: _Key) -> Action:
        node = key.value
        text = self.scalar_text(key, "action", f"one of: {_ACTION_FORMS}")
        words = text.split()
        kind = words[0].lower() if words else ""
        if kind in ("drop", "reset", "stall"):
            if len(words) > 1:
                raise self.error(node, "action", f"{kind} takes no argument, found {_shown(' '.join(words[1:]))}",
                                 f"write action: {kind}")
            return Action(kind)
        if kind in _PERCENT_ACTIONS:
            if len(words) != 2:
                raise self.error(node, "action", f"{kind} needs a percentage", f"e.g. action: {kind} 10%")
            return Action(kind, percent=self.percent(node, "action", words[1], f"{kind} 10%"))
        if kind == "rate":
            found = re.fullmatch(_NUMBER + r"([a-z]+)", words[1].lower()) if len(words) == 2 else None
            if not found or found.group(2) not in _RATE_UNITS:
                tip = " (kshock takes bits: write 8mbit for 1 MB/s)" if found and found.group(2).endswith("bps") else ""
                raise self.error(node, "action", f"{_shown(text)} is not a rate{tip}",
                                 "e.g. rate 1mbit, rate 500kbit (units: bit, kbit, mbit, gbit)")
            rate = round(float(found.group(1)) * _RATE_UNITS[found.group(2)])
            if rate < 8:
                raise self.error(node, "action", f"{words[1]} is too slow to shape", "use at least 8bit")
            if rate > MAX_RATE_BIT_S:
                raise self.error(node, "action", f"{words[1]} is faster than kshock shapes", "use at most 1000gbit")
            return Action("rate", rate_bit_s=rate)
        if kind == "delay":
            if len(words) not in (2, 4) or (len(words) == 4 and words[2].lower() != "jitter"):
                raise self.error(node, "action", f"{_shown(text)} is not a delay",
                                 "e.g. delay 200ms or delay 200ms jitter 20ms")
            delay = self.milliseconds(node, words[1], "delay")
            if delay <= 0:
                raise self.error(node, "action", "the delay must be longer than 0ms", "e.g. delay 200ms")
            jitter = self.milliseconds(node, words[3], "jitter") if len(words) == 4 else None
            if jitter is not None and jitter > delay:
                raise self.error(node, "action", f"jitter {words[3]} is larger than the delay {words[1]}",
                                 "keep the jitter at most as large as the delay")
            return Action("delay", delay_ms=delay, jitter_ms=jitter)
        close = difflib.get_close_matches(kind, ("drop", "reset", "stall", "rate", "delay", *_PERCENT_ACTIONS),
                                          n=1, cutoff=0.6)
        raise self.error(node, "action", f"unknown action {_shown(text)}",
                         (f"did you mean {close[0]}? " if close else "") + f"actions: {_ACTION_FORMS}")

    def percent(self, node: Node, key: str, word: str, example: str) -> float:
        found = re.fullmatch(_NUMBER + "%", word)
        if not found:
            raise self.error(node, key, f"{_shown(word)} is not a percentage",
                             f"write it with a % sign, e.g. {example}")
        value = float(found.group(1))
        if not 0 < value <= 100:
            raise self.error(node, key, f"{word} is out of range", "use more than 0% and at most 100%")
        return value

    def milliseconds(self, node: Node, word: str, what: str) -> float:
        found = re.fullmatch(_NUMBER + r"(us|ms|s)", word.lower())
        if not found:
            raise self.error(node, "action", f"{what} {_shown(word)} is not a time",
                             "write a number and a unit: 200ms, 1.5s, 500us")
        value = float(found.group(1)) * _TIME_UNITS[found.group(2)]
        if value > MAX_DELAY_MS:
            raise self.error(node, "action", f"{what} {word} is longer than kshock delays", "use at most 3600s")
        return value

    def target(self, key: _Key) -> Target:
        keys = self.mapping(key.value, "target", "target", "e.g. target: {port: 9092, direction: ingress}",
                            TARGET_KEYS)
        ports: tuple[int, ...] = (9092,)
        if "port" in keys and "ports" in keys:
            raise self.error(keys["ports"].node, "target.ports", "given together with target.port",
                             "use one: port: 9092 or ports: [9092, 9093]")
        if "port" in keys:
            ports = (self.port(keys["port"].value, "target.port"),)
        if "ports" in keys:
            node = keys["ports"].value
            items = node.value if isinstance(node, SequenceNode) else [node]
            if not items:
                raise self.error(node, "target.ports", "the list is empty", "e.g. ports: [9092, 9093]")
            ports = tuple(self.port(item, "target.ports") for item in items)
            if len(set(ports)) != len(ports):
                raise self.error(node, "target.ports", "a port is listed twice", "list each port once")
        host = self.host(keys["host"]) if "host" in keys else None
        interface = None
        if "interface" in keys:
            interface = self.scalar_text(keys["interface"], "target.interface", "e.g. interface: eth0")
            if not INTERFACE.match(interface):
                raise self.error(keys["interface"].value, "target.interface",
                                 f"{_shown(interface)} is not an interface name",
                                 "at most 15 characters without spaces or '/', e.g. eth0 or veth+")
        direction = "ingress"
        if "direction" in keys:
            direction = self.scalar_text(keys["direction"], "target.direction", "one of: " + ", ".join(DIRECTIONS))
            if direction not in DIRECTIONS:
                close = difflib.get_close_matches(direction, DIRECTIONS, n=1, cutoff=0.5)
                raise self.error(keys["direction"].value, "target.direction", f"unknown direction {_shown(direction)}",
                                 (f"did you mean {close[0]}? " if close else "") +
                                 "ingress (requests arrive here, a broker), egress (they leave here, a client), "
                                 "forward (they pass through) or both")
        return Target(ports, host, interface, direction)

    def port(self, node: Node, key: str) -> int:
        """A port as written: plain decimal digits (YAML 1.1 would read 2:33:12 as 9192, 010 as 8)."""
        if not isinstance(node, ScalarNode) or node.tag != _INT:
            raise self.error(node, key, f"{_describe(node)} is not a TCP port", "use a number from 1 to 65535")
        text = node.value
        if text.isascii() and text.isdigit() and (len(text) > 5 or text == "0"):
            raise self.error(node, key, f"{_digits(text)} is not a TCP port", "use a number from 1 to 65535")
        if not _PORT.match(text):
            raise self.error(node, key, f"{_describe(node)} is not a TCP port as written",
                             "write it in plain decimal digits, 1 to 65535 (YAML 1.1 reads 2:33:12 as 9192, 010 as 8)")
        value = int(text)
        if not 1 <= value <= 65535:
            raise self.error(node, key, f"{value} is not a TCP port", "use a number from 1 to 65535")
        return value

    def host(self, key: _Key) -> str:
        text = self.scalar_text(key, "target.host", "e.g. host: 198.18.0.1 or host: 198.18.0.0/24")
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise self.error(key.value, "target.host", f"{text!r} is not an IP address or network",
                             "e.g. host: 198.18.0.1 or host: 198.18.0.0/24 (names are not resolved)") from None
        if network.version != 4:
            raise self.error(key.value, "target.host", f"{text} is an IPv6 address",
                             "kshock's kernel rules are IPv4 only (iptables); use the broker's IPv4 address")
        return str(network.network_address) if network.prefixlen == 32 else str(network)

    def duration(self, key: _Key) -> float:
        node = key.value
        if isinstance(node, ScalarNode) and node.tag in (_INT, _FLOAT) and re.fullmatch(r"[0-9]{1,9}(\.[0-9]{1,9})?",
                                                                                         node.value):
            raise self.error(node, "duration", f"{node.value} has no unit",
                             f"write {node.value}s, or use m and h: 90s, 5m, 1h")
        text = self.scalar_text(key, "duration", "e.g. duration: 5m")
        try:
            seconds = parse_unit_duration(text)
        except ValueError:
            raise self.error(node, "duration", f"{_shown(text)} is not a duration",
                             "e.g. 90s, 5m, 1h or 1h30m") from None
        if not MIN_FAULT_S <= seconds <= MAX_DURATION_S:
            raise self.error(node, "duration", f"{_digits(text)} is out of range",
                             "use at least 1s and at most 24h (faults always end on their own)")
        return seconds

    def trigger(self, key: _Key) -> Trigger:
        node = key.value
        hint = "always, once-per-connection, every 5, or probability 30% (or 0.3)"
        if isinstance(node, MappingNode):
            keys = self.mapping(node, "trigger", "trigger", f"e.g. trigger: {{every: 5}}; or {hint}", TRIGGER_KEYS)
            if len(keys) != 1:
                raise self.error(node, "trigger", "give one of probability, every or once-per-connection",
                                 f"a trigger is one of: {hint}")
            (entry,) = keys.values()
            value = entry.value
            if entry.name == "once-per-connection":
                if not self.flag(entry):
                    raise self.error(value, "trigger.once-per-connection", "false is not a trigger",
                                     "leave the trigger out to act on every matching packet")
                return Trigger("once-per-connection")
            if not isinstance(value, ScalarNode):
                raise self.error(value, f"trigger.{entry.name}", f"expected a number, found {_describe(value)}", hint)
            words = [entry.name, value.value]
        else:
            text = self.scalar_text(key, "trigger", hint)
            words = text.split()
        mode = words[0].lower() if words else ""
        if mode == "always" and len(words) == 1:
            return Trigger()
        if mode == "once-per-connection" and len(words) == 1:
            return Trigger("once-per-connection")
        if mode == "every" and len(words) == 2:
            if not re.fullmatch(r"[0-9]{1,7}", words[1]) or not 2 <= int(words[1]) <= MAX_EVERY:
                what = f"every {words[1]}" if len(words[1]) <= 40 else _digits(words[1])
                raise self.error(node, "trigger", f"{what} is not a packet count",
                                 "use a whole number from 2 to 1000000: every 5 acts on every 5th matching packet")
            return Trigger("nth", every=int(words[1]))
        if mode == "probability" and len(words) == 2:
            word = words[1]
            if word.endswith("%"):
                probability = self.percent(node, "trigger", word, "probability 30%") / 100
            else:
                found = re.fullmatch(r"0?\.[0-9]+|1(?:\.0*)?|0", word)
                if not found:
                    raise self.error(node, "trigger", f"{_shown(word)} is not a probability",
                                     "write 0.3 or 30%")
                probability = float(word)
                if probability <= 0:
                    raise self.error(node, "trigger", f"probability {word} never acts",
                                     "use more than 0 and at most 1 (or 0% to 100%)")
            return Trigger("probability", probability=probability)
        raise self.error(node, "trigger", f"{_shown(' '.join(words))} is not a trigger", f"one of: {hint}")

    def flag(self, key: _Key) -> bool:
        node = key.value
        if not isinstance(node, ScalarNode) or node.tag != _BOOL:
            raise self.error(node, _flag_key(key), f"{_describe(node)} is not true or false", "write true or false")
        return node.value.lower() in ("true", "yes", "on", "y")


def _flag_key(key: _Key) -> str:
    return f"trigger.{key.name}" if key.name == "once-per-connection" else key.name


TOP_KEYS_HINT = "a rule file is a mapping with one key, `rules:`, holding a list of rules"


def _describe(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if node.tag == _NULL:
        return "nothing"
    if node.tag == _STR:
        return _shown(node.value)
    return _digits(node.value)


def _digits(text: str) -> str:
    """A number (or any plain word) for a message; 5,000 digits become "a 5000-digit number"."""
    if len(text) <= 40:
        return text
    return f"a {len(text)}-digit number" if text.isascii() and text.isdigit() else _shown(text)


def _align(value: str, source: str, start: int, end: int) -> list[int] | None:
    """Where each character of a scalar's value sits in the file text between `start` and `end`:
    a greedy walk that steps over quotes, indentation, line folds and escape backslashes.
    None when a character cannot be found (an escape such as \\x41 that changes the text)."""
    positions = []
    at = start
    for ch in value:
        if ch in " \n\t":  # a fold turns a line break into a space (and a literal keeps it)
            found = next((i for i in range(at, end) if source[i] in " \n\t"), -1)
            if found < 0:
                return None
        else:
            found = source.find(ch, at, end)
            if found < 0:
                return None
        positions.append(found)
        at = found + 1
    return positions


__all__ = ["RuleFileError", "parse_rule_file"]
