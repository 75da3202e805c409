"""PURE: RuleSpecs -> a RuleSet, or a CompileError naming the part of a condition that cannot compile.

The kernel sees one packet at a time, so a condition compiles to tests on the bytes of a
segment that *starts* a Kafka frame (the frame's length prefix is the first payload byte).
A frame that starts in the middle of a segment is invisible to these rules; the connection
latch (`latch: true`) is the answer to that: once one packet of a connection matches, every
later packet of it gets the action.

How a condition becomes rules:
- Negations are pushed down to the tests and the condition is expanded into alternatives
  (disjunctive normal form); each alternative becomes one or more rules, first match wins.
- Direction: a condition about requests (every field but `kind == response`, `size` and
  `correlation_id` is a request field) compiles to the client -> broker direction only
  (destination port in the target's ports). `api == Produce` in `kshock decode --filter` also
  selects the paired responses; the kernel cannot, since a response carries no api key.
  `kind == response` compiles to the broker -> client direction (source port in the ports).
- Header fields at fixed offsets (size, api_key, api_version, correlation_id, client-id
  length and bytes) are `-m u32` tests; `api` and `api_version` share the word at offset 4.
  Strings are tested a word at a time; the last word overlaps the one before it so no test
  reads past the field (a field shorter than 4 bytes is masked instead).
- Body fields (topic, acks, transactional_id) are placed with the layouts in `layout.py`, one
  rule per layout family, each restricted to its API versions by the word at offset 4. The
  u32 cursor steps over the client id (an int16 length) and a non-null transactional id with
  `@` when their length is not known from the condition; null client ids and null
  transactional ids are their own families. `topic` tests the first topic a request names
  (a name, or the 16-byte topic id for Produce v13 / Fetch v13+).
- Every Kafka test is guarded by a frame-start check (a plausible size, api key and version),
  so that record bytes in the middle of a large frame do not pass for a header.
- client_id is a two-step program (KIP-1313 clients send it on a connection's first request
  only): an identity rule sets a conntrack mark bit when a request carrying the client id goes
  by; rules then act on frames that carry the id, or carry none (null) on a marked connection.

Conntrack mark bits: a rule set uses bits of 0x00FFFF00 (bits 8-23), one per client-id identity,
per latch and per once-per-connection trigger; `RuleSet.connmark_mask` lists them. Bits are
allotted from `mark_base` (default: derived from the rule set's name) upward, skipping the bits
in `taken` — what the other faults of the target namespace hold, which the caller reads from
the fault state and the kernel — so two faults never share a bit; when too few are free the
compiler says so (MarksExhausted). The same goes for tc class slots.

tc faults (rate, delay, ...) compile to mangle-table rules that end in
`-j CLASSIFY --set-class 4b53:<minor>`: CLASSIFY writes the htb class id into skb->priority,
which htb reads directly, so no tc filter is needed (kernels without cls_fw can shape too).
4b53: ("KS") is the handle of kshock's root htb; the minor is <name hash:8 + 1><rule index:8>.
The rules carry --datestop like all others, so when the fault expires the kernel stops
classifying and the qdisc, if still there, no longer touches any packet.
"""

from __future__ import annotations

import ipaddress
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from kshock.conditions import And, Compare, Condition, Exists, In, Not, Or
from kshock.conditions.apis import api_name
from kshock.errors import UserError
from kshock.rules import layout as L
from kshock.rules.audit import RULE_NAME
from kshock.rules.kernel import (
    U32_MAX_MATCHES,
    U32_MAX_TESTS,
    Chain,
    Hop,
    Jump,
    KernelRule,
    Marks,
    RuleSet,
    TrafficControl,
    U32Test,
    u32_matches,
)
from kshock.rules.spec import RuleSpec, Target

TC_ACTIONS = ("rate", "delay", "duplicate", "corrupt", "reorder")
CONNMARK_SPACE = 0x00FFFF00
CONNMARK_BITS = 16
TC_ROOT_MAJOR = 0x4B53  # "KS": the handle (4b53:) of kshock's root htb; its classes are 4b53:<minor>
MAX_ALTERNATIVES = 64
MAX_RULES_PER_SPEC = 256
_TESTS_PER_MATCH = U32_MAX_TESTS - 1  # one test of each -m u32 is the IHL guard
_CHAIN_MAX = 28  # iptables' chain name limit (XT_EXTENSION_MAXNAMELEN - 1)
_SHORT_MAX = 16  # room for "KSHOCK-" and the longest suffix ("-g99r")

# The frame-start guard: what a request (or response) header at payload offset 0 looks like.
MAX_FRAME = 0x06400000  # 100 MiB, the broker's socket.request.max.bytes default
MIN_REQUEST = 10  # api_key, api_version, correlation_id, client-id length
MIN_RESPONSE = 4  # correlation_id
GUARD_API = (0, 0x3FF)
GUARD_VERSION = (0, 0x7F)

_REQUEST_ONLY = ("api", "api_version", "client_id", "topic", "acks", "transactional_id")
_NOT_VISIBLE = {
    "records": "the record count sits in record batch headers deep in the body",
    "error_code": "error codes are in responses, whose bodies the kernel cannot place",
    "key": "record keys sit inside record batches, often compressed",
    "value": "record values sit inside record batches, often compressed",
    "header": "record headers sit inside record batches, often compressed",
    "partition": "partition indexes sit after each topic's variable-length entries",
}


class CompileError(UserError):
    """A condition (or action, or target) the kernel cannot carry out as asked.
    `part` is the text of the offending piece, `span` its (start, end) in the condition."""

    def __init__(self, message: str, hint: str = "", *, part: str = "", span: tuple[int, int] | None = None,
                 rule: str = "") -> None:
        super().__init__(message, hint)
        self.part = part
        self.span = span
        self.rule = rule


class MarksExhausted(CompileError):
    """The rule set needs more connection-mark bits (or tc class slots) than are free."""


class _Unsupported(Exception):
    """One test of an alternative cannot compile; approximate mode drops it."""

    def __init__(self, node: Condition | None, reason: str, hint: str = "", widening: str = "") -> None:
        super().__init__(reason)
        self.node = node
        self.reason = reason
        self.hint = hint
        self.widening = widening


# -- value ranges ----------------------------------------------------------------------------

Ranges = tuple[tuple[int, int], ...]


def _domain(bits: int) -> Ranges:
    return ((0, (1 << bits) - 1),)


def _normalize(ranges) -> Ranges:
    out: list[list[int]] = []
    for low, high in sorted(r for r in ranges if r[0] <= r[1]):
        if out and low <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], high)
        else:
            out.append([low, high])
    return tuple((low, high) for low, high in out)


def _intersect(a: Ranges, b: Ranges) -> Ranges:
    return _normalize((max(x[0], y[0]), min(x[1], y[1])) for x in a for y in b)


def _complement(a: Ranges, bits: int) -> Ranges:
    out, at = [], 0
    for low, high in _normalize(a):
        if low > at:
            out.append((at, low - 1))
        at = high + 1
    if at <= (1 << bits) - 1:
        out.append((at, (1 << bits) - 1))
    return tuple(out)


def _signed(low: int, high: int, bits: int) -> Ranges:
    """A signed interval as unsigned ranges of the same width (two's complement)."""
    top = 1 << bits
    low, high = max(low, -(top >> 1)), min(high, (top >> 1) - 1)
    if low > high:
        return ()
    if low >= 0:
        return ((low, high),)
    if high < 0:
        return ((low + top, high + top),)
    return _normalize(((0, high), (low + top, top - 1)))


def _op_ranges(op: str, value: int, bits: int) -> Ranges:
    big = 1 << bits
    interval = {"==": (value, value), "<": (-big, value - 1), "<=": (-big, value), ">": (value + 1, big),
                ">=": (value, big)}.get(op)
    if op == "!=":
        return _complement(_signed(value, value, bits), bits)
    return _signed(*interval, bits)


# -- disjunctive normal form -----------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Lit:
    node: Compare | In | Exists
    negated: bool = False

    def text(self) -> str:
        return f"not {self.node}" if self.negated else str(self.node)


_STRING_FIELDS = ("client_id", "topic", "transactional_id", "src.host", "dst.host", "src.port", "dst.port")


def _expand(node: Condition) -> Condition:
    """Rewrite tests the kernel sees as alternatives: `x in {a, b}` on a string or address
    field -> x == a or x == b; `host`/`port` (either end) -> src or dst."""
    match node:
        case And(left, right, span=span):
            return And(_expand(left), _expand(right), span)
        case Or(left, right, span=span):
            return Or(_expand(left), _expand(right), span)
        case Not(operand, span=span):
            return Not(_expand(operand), span)
        case In(field=name, values=values, span=span, arg=arg) if name in _STRING_FIELDS + ("host", "port"):
            parts = [_expand(Compare(name, "==", v, span, arg)) for v in values]
            result = parts[0]
            for part in parts[1:]:
                result = Or(result, part, span)
            return result
        case Compare(field=("host" | "port") as name, op=op, value=value, span=span) if op == "==":
            return Or(Compare(f"src.{name}", op, value, span), Compare(f"dst.{name}", op, value, span), span)
    return node


def _dnf(node: Condition, negated: bool = False) -> list[list[Lit]]:
    match node:
        case Not(operand):
            return _dnf(operand, not negated)
        case And(left, right) if not negated:
            return _product(_dnf(left), _dnf(right))
        case Or(left, right) if negated:
            return _product(_dnf(left, True), _dnf(right, True))
        case And(left, right):  # not (a and b) = not a or not b
            return _dnf(left, True) + _dnf(right, True)
        case Or(left, right):
            return _dnf(left) + _dnf(right)
    return [[Lit(node, negated)]]


def _product(a: list[list[Lit]], b: list[list[Lit]]) -> list[list[Lit]]:
    if len(a) * len(b) > MAX_ALTERNATIVES:
        raise _TooMany()
    return [x + y for x in a for y in b]


class _TooMany(Exception):
    pass


# -- byte tests ------------------------------------------------------------------------------

def _bytes_tests(data: bytes, at: int, hops: tuple[Hop, ...], field_: str, note: str = "") -> list[U32Test]:
    """Tests that the bytes at `at` equal `data`: whole words; the last word ends at the last
    byte (overlapping the previous word) so no read goes past the field — a field that ends its
    frame may end its packet, and xt_u32 never matches a read past the end; under 4 bytes, one
    masked word ending at the field's last byte (or, right at the start of a hop, beginning at
    its first)."""
    n = len(data)
    if n < 4:
        word = int.from_bytes(data, "big")
        if at >= 4 - n:
            return [U32Test(at + n - 4, ((word, word),), mask=(1 << 8 * n) - 1, hops=hops, field=field_,
                            note=note)]
        word <<= 8 * (4 - n)
        mask = (0xFFFFFFFF << (8 * (4 - n))) & 0xFFFFFFFF
        return [U32Test(at, ((word, word),), mask=mask, hops=hops, field=field_, note=note)]
    starts = list(range(0, n - 3, 4))
    if starts[-1] != n - 4:
        starts.append(n - 4)
    return [U32Test(at + s, ((w, w),), hops=hops, field=field_, note=note)
            for s in starts for w in (int.from_bytes(data[s:s + 4], "big"),)]


def _test_bits(test: U32Test) -> int:
    return 32 - test.shift


def _negate(test: U32Test, exclude: Ranges = ()) -> U32Test | None:
    """The test with complement ranges (None: the complement is empty)."""
    ranges = _complement(test.ranges + exclude, _test_bits(test))
    return replace(test, ranges=ranges, note=(test.note + " (differs)").strip()) if ranges else None


def _differs(tests: list[U32Test], exclude_first: Ranges = ()) -> list[list[U32Test]]:
    """not (t0 and t1 and ...), as disjoint alternatives: [not t0], [t0, not t1], ..."""
    out = []
    for k, test in enumerate(tests):
        negated = _negate(test, exclude_first if k == 0 else ())
        if negated is not None:
            out.append(tests[:k] + [negated])
    return out


# -- what one alternative needs --------------------------------------------------------------

@dataclass(slots=True)
class _Needs:
    """The tests of one alternative, sorted by field."""

    kinds: set = field(default_factory=lambda: {"request", "response"})
    kind_given: bool = False
    ranges: dict = field(default_factory=dict)  # field -> Ranges (unsigned)
    nodes: dict = field(default_factory=dict)  # field -> first node, for messages
    client_eq: list = field(default_factory=list)  # (value, node)
    client_not: list = field(default_factory=list)  # not client_id == v
    client_ne: list = field(default_factory=list)  # client_id != v
    txn_eq: list = field(default_factory=list)
    txn_exists: bool | None = None
    topics: list = field(default_factory=list)  # (value, node)
    acks: Ranges | None = None
    src: str | None = None
    dst: str | None = None
    sport: int | None = None
    dport: int | None = None
    empty: bool = False  # contradictory: never matches


_BITS = {"api": 16, "api_version": 16, "correlation_id": 32, "size": 32, "acks": 16}


def _classify(lits: list[Lit]) -> _Needs:
    needs = _Needs()
    for lit in lits:
        _classify_one(lit, needs)
    return needs


def _node_values(node) -> tuple:
    return node.values if isinstance(node, In) else (node.value,)


def _classify_one(lit: Lit, needs: _Needs) -> None:
    node, neg = lit.node, lit.negated
    name = node.field
    if name in _NOT_VISIBLE:
        raise _Unsupported(node, f"`{name}` is not visible to the kernel: {_NOT_VISIBLE[name]}",
                           widening=f"`{lit.text()}` dropped: frames are matched whatever their {name}")
    if isinstance(node, Compare) and node.op in ("contains", "matches"):
        what = "a regular expression" if node.op == "matches" else "a substring"
        raise _Unsupported(node, f"{what} test on {name} cannot compile: the kernel compares whole fields at "
                                 "known offsets", hint=f"compare the whole value: {name} == \"...\"",
                           widening=f"`{lit.text()}` dropped: every {name} matches")
    if name == "kind":
        if isinstance(node, Exists):
            wanted = {"request", "response"}
        else:
            wanted = set(_node_values(node)) if not (isinstance(node, Compare) and node.op == "!=") else \
                {"request", "response"} - {node.value}
        if neg:
            wanted = {"request", "response"} - wanted
        needs.kinds &= wanted
        needs.kind_given = True
        return
    if name in ("api", "api_version", "correlation_id", "size", "acks"):
        bits = _BITS[name]
        if isinstance(node, Exists):
            ranges = _domain(bits)
        elif isinstance(node, In):
            ranges = _normalize(r for v in node.values for r in _signed(v, v, bits))
        else:
            ranges = _op_ranges(node.op, node.value, bits)
        if neg:
            if name == "acks" and isinstance(node, Exists):
                raise _Unsupported(node, "`not acks` (requests without acks) cannot compile",
                                   widening=f"`{lit.text()}` dropped")
            ranges = _complement(ranges, bits)
        if name == "acks":
            needs.acks = ranges if needs.acks is None else _intersect(needs.acks, ranges)
            needs.nodes.setdefault("acks", node)
            if not needs.acks:
                needs.empty = True
            return
        previous = needs.ranges.get(name, _domain(bits))
        needs.ranges[name] = _intersect(previous, ranges)
        needs.nodes.setdefault(name, node)
        if not needs.ranges[name]:
            needs.empty = True
        return
    if name == "client_id":
        if isinstance(node, Compare) and node.op == "==":
            (needs.client_not if neg else needs.client_eq).append((node.value, node))
            return
        if isinstance(node, Compare) and node.op == "!=" and not neg:
            needs.client_ne.append((node.value, node))
            return
        raise _Unsupported(node, f"`{lit.text()}` cannot compile: the compiler tests client_id with == and != "
                                 "against a value", hint="write client_id == \"...\" or client_id != \"...\"",
                           widening=f"`{lit.text()}` dropped: every client id matches")
    if name == "transactional_id":
        if isinstance(node, Exists):
            needs.txn_exists = not neg if needs.txn_exists in (None, not neg) else None
            if needs.txn_exists is None:
                needs.empty = True
            needs.nodes.setdefault("transactional_id", node)
            return
        if isinstance(node, Compare) and node.op == "==" and not neg:
            needs.txn_eq.append((node.value, node))
            needs.nodes.setdefault("transactional_id", node)
            return
        raise _Unsupported(node, f"`{lit.text()}` cannot compile: transactional_id compiles with == (one value) "
                                 "or as a bare test of presence", hint="write transactional_id == \"...\"",
                           widening=f"`{lit.text()}` dropped: every transactional id matches")
    if name == "topic":
        if isinstance(node, Compare) and node.op == "==" and not neg:
            needs.topics.append((node.value, node))
            return
        raise _Unsupported(node, f"`{lit.text()}` cannot compile: the kernel sees the first topic of a request, "
                                 "so it can test that a topic is there, not that one is absent",
                           hint="write topic == \"...\" (or topic in {...})",
                           widening=f"`{lit.text()}` dropped: frames match whatever topics they name")
    if name in ("src.host", "dst.host", "src.port", "dst.port"):
        if neg or not isinstance(node, Compare) or node.op != "==":
            raise _Unsupported(node, f"`{lit.text()}` cannot compile: addresses and ports compile to iptables "
                                     "-s/-d/--sport/--dport, which kshock uses with == only",
                               hint="narrow the rule's target instead (target: host, port)",
                               widening=f"`{lit.text()}` dropped: packets match whatever their {name}")
        value = node.value
        if name.endswith("host"):
            if value.version != 4:
                raise _Unsupported(node, f"`{lit.text()}`: kshock compiles IPv4 rules only",
                                   widening=f"`{lit.text()}` dropped")
            text = str(value) if value.prefixlen != 32 else str(value.network_address)
            slot = "src" if name == "src.host" else "dst"
        else:
            text, slot = int(value), "sport" if name == "src.port" else "dport"
        current = getattr(needs, slot)
        if current is not None and current != text:
            needs.empty = True
        setattr(needs, slot, text)
        return
    raise _Unsupported(node, f"`{lit.text()}` cannot compile", widening=f"`{lit.text()}` dropped")


# -- candidates: one kernel rule's matches, before the action is chosen ------------------------

@dataclass(frozen=True, slots=True)
class _Candidate:
    direction: str  # request | response
    tests: tuple[U32Test, ...] = ()
    connmark: tuple[int, int] | None = None
    source: str | None = None
    destination: str | None = None
    source_port: int | None = None
    destination_port: int | None = None
    payload: bool = False  # no byte test: any segment with payload


@dataclass(frozen=True, slots=True)
class _ClientShape:
    """How the header ends for one client-id family: tests on the header, the hops that reach
    the body, where the body starts (relative to the cursor after the hops), the connmark."""

    tests: tuple[U32Test, ...]
    hops: tuple[Hop, ...]
    body: int
    connmark: tuple[int, int] | None
    label: str


def _merge_connmark(a: tuple[int, int] | None, b: tuple[int, int] | None) -> tuple[int, int] | None:
    if a is None:
        return b
    if b is None:
        return a
    if (a[0] ^ b[0]) & a[1] & b[1]:
        return (-1, -1)  # contradiction
    return a[0] | b[0], a[1] | b[1]


# -- the compiler ----------------------------------------------------------------------------

@dataclass(slots=True)
class _Group:
    """Chains for one distinct target: requests and responses, and the identity rules."""

    target: Target
    request: str
    response: str
    request_rules: list = field(default_factory=list)
    response_rules: list = field(default_factory=list)
    identities: list = field(default_factory=list)  # identity keys needed in this group


class _Compiler:
    def __init__(self, name: str, expires_at: str | None, topic_ids: Mapping[str, bytes], mark_base: int | None,
                 taken: Marks):
        self.name = name
        self.expires_at = expires_at
        self.topic_ids = dict(topic_ids)
        self.short = _short_name(name)
        self.base = (zlib.crc32(name.encode()) % CONNMARK_BITS) if mark_base is None else mark_base
        self.taken = taken
        self.allotted: list[int] = []  # the connmark bits this rule set uses, in the order given out
        self.tc_slot: int | None = None
        self.identity_bits: dict[tuple[str, str], int] = {}
        self.groups: list[_Group] = []
        self.extra_chains: list[Chain] = []
        self.warnings: list[str] = []
        self.tc: list[TrafficControl] = []
        self.spec: RuleSpec | None = None

    # marks

    def bit(self) -> int:
        """The next connmark bit no other fault of the namespace (nor this rule set) holds."""
        for step in range(CONNMARK_BITS):
            bit = 1 << (8 + (self.base + step) % CONNMARK_BITS)
            if not bit & self.taken.connmark and bit not in self.allotted:
                self.allotted.append(bit)
                return bit
        rule = self.spec.name if self.spec else ""
        held = self.taken.connmark & CONNMARK_SPACE
        if not held:
            raise MarksExhausted(f"rule set {self.name!r} needs more than {CONNMARK_BITS} connection-mark bits",
                                 "split the rules into several rule sets", rule=rule)
        raise MarksExhausted(f"rule set {self.name!r} needs {len(self.allotted) + 1} connection-mark bit(s), and "
                             f"other faults and rules of the namespace hold {bin(held).count('1')} of the {CONNMARK_BITS} "
                             f"(0x{held:x}), leaving {CONNMARK_BITS - bin(held).count('1')}",
                             "revert a fault that matches client ids, latches or triggers once per connection, "
                             "or wait for one to expire", rule=rule)

    def slot(self, spec: RuleSpec) -> int:
        """The htb class slot (1-254) of this rule set's tc classes: one no other fault holds."""
        if self.tc_slot is None:
            start = zlib.crc32(self.name.encode()) % 0xFE
            free = [slot for slot in (1 + (start + step) % 0xFE for step in range(0xFE))
                    if slot not in self.taken.tc_slots]
            if not free:
                raise MarksExhausted("other active faults hold every traffic-control class slot (254)",
                                     "revert a rate/delay/... fault first", rule=spec.name)
            self.tc_slot = free[0]
        return self.tc_slot

    def identity(self, key: tuple[str, str], group: _Group) -> int:
        if key not in self.identity_bits:
            self.identity_bits[key] = self.bit()
        if key not in group.identities:
            group.identities.append(key)
        return self.identity_bits[key]

    # errors

    def error(self, problem: _Unsupported) -> CompileError:
        spec = self.spec
        node = problem.node
        part = str(node) if node is not None else ""
        span = getattr(node, "span", None)
        where = f"{spec.source}: " if spec and spec.source else ""
        columns = f" (characters {span[0] + 1}-{span[1]})" if span and span != (0, 0) else ""
        message = f"{where}rule {spec.name!r}: {problem.reason}{columns}" if spec else problem.reason
        hint = problem.hint or ("or set approximate: true to compile a wider rule (with a warning)"
                                if not (spec and spec.approximate) else "")
        return CompileError(message, hint, part=part, span=span, rule=spec.name if spec else "")

    def warn(self, text: str) -> None:
        line = f"rule {self.spec.name!r}: {text}"
        if line not in self.warnings:
            self.warnings.append(line)

    # groups

    def group(self, target: Target) -> _Group:
        for group in self.groups:
            if group.target == target:
                return group
        k = len(self.groups)
        base = f"KSHOCK-{self.short}" + (f"-g{k}" if k else "")
        group = _Group(target, base, base + ("r" if k else "-r"))
        self.groups.append(group)
        return group

    # one spec

    def add(self, index: int, spec: RuleSpec) -> None:
        self.spec = spec
        group = self.group(spec.target)
        candidates = self.candidates(spec, group)
        if len(candidates) > MAX_RULES_PER_SPEC:
            raise CompileError(f"rule {spec.name!r} compiles to {len(candidates)} kernel rules",
                               "simplify the condition (fewer alternatives, shorter client ids)", rule=spec.name)
        self.fits_kernel(spec, candidates, group)
        self.emit(index, spec, group, candidates)

    def fits_kernel(self, spec: RuleSpec, candidates: list[_Candidate], group: _Group) -> None:
        """Every kernel rule of the spec (and the identity rules its client ids need) small enough
        for the kernel to keep: see U32_MAX_MATCHES (a larger rule loads as an empty one)."""
        sizes = [len(_groups(c.tests)) + (1 if c.payload else 0) for c in candidates]
        sizes += [u32_matches(rule) for rule in self.identity_rules(group)]
        worst = max(sizes, default=0)
        if worst > U32_MAX_MATCHES:
            raise CompileError(f"rule {spec.name!r} needs a kernel rule of {worst} u32 matches, and iptables keeps "
                               f"at most {U32_MAX_MATCHES} in one rule (over about 32 KB of match data a rule "
                               "loads empty)", "shorten the long value: a client id, topic or transactional id of "
                               "at most about 490 bytes fits", rule=spec.name)

    def candidates(self, spec: RuleSpec, group: _Group) -> list[_Candidate]:
        if spec.condition is None:
            return [_Candidate("request", payload=True)]
        try:
            terms = _dnf(_expand(spec.condition))
        except _TooMany:
            raise CompileError(f"rule {spec.name!r}: the condition expands into more than {MAX_ALTERNATIVES} "
                               "alternatives", "simplify it: fewer `or`s inside `and`s", rule=spec.name) from None
        out: list[_Candidate] = []
        for term in terms:
            out += self.term(term, group)
        if not out:
            raise CompileError(f"rule {spec.name!r}: the condition `{spec.condition}` can never match a request",
                               "check for contradictions such as api == Produce and api == Fetch", rule=spec.name)
        return list(dict.fromkeys(out))

    def term(self, lits: list[Lit], group: _Group) -> list[_Candidate]:
        while True:
            try:
                return self.term_exact(lits, group)
            except _Unsupported as problem:
                if not self.spec.approximate or problem.node is None:
                    raise self.error(problem) from None
                self.warn(f"approximate: {problem.widening or 'a test dropped'} ({problem.reason})")
                lits = [lit for lit in lits if lit.node is not problem.node]

    def term_exact(self, lits: list[Lit], group: _Group) -> list[_Candidate]:
        needs = _classify(lits)
        if needs.empty:
            return []
        kinds = needs.kinds if needs.kind_given else {"request"}
        out = []
        for direction in ("request", "response"):
            if direction in kinds:
                out += self.direction(direction, needs, lits, group)
        return out

    def direction(self, direction: str, needs: _Needs, lits: list[Lit], group: _Group) -> list[_Candidate]:
        addresses = dict(source=needs.src, destination=needs.dst, source_port=needs.sport,
                         destination_port=needs.dport)
        if direction == "response":
            for name in _REQUEST_ONLY:
                node = needs.nodes.get(name) or _first_node(lits, name, skip_client=True)
                if node is not None:
                    raise _Unsupported(node, f"`{node}` cannot compile for responses: a response carries only its "
                                             "size and correlation id, not the request's api, version or body",
                                       hint="drop kind == response to act on the requests",
                                       widening=f"`{node}` dropped: every response matches")
            tests = []
            size = needs.ranges.get("size")
            tests.append(U32Test(L.SIZE_AT, size or ((MIN_RESPONSE, MAX_FRAME),), field="size",
                                 note="" if size else "frame-start guard"))
            if "correlation_id" in needs.ranges:
                tests.append(U32Test(L.RESPONSE_CORRELATION_AT, needs.ranges["correlation_id"],
                                     field="correlation_id"))
            marks = self.client_marks(needs, group)
            if marks == "never":
                return []
            if not needs.ranges:  # kind == response (and addresses, client): every response byte
                return [_Candidate(direction, connmark=marks, payload=True, **addresses)]
            return [_Candidate(direction, tuple(tests), marks, **addresses)]
        body = bool(needs.topics or needs.acks is not None or needs.txn_eq or needs.txn_exists is not None)
        client = bool(needs.client_eq or needs.client_not or needs.client_ne)
        header = [t for t in self.header_tests(needs, body)]
        if not body and not client and not header:
            return [_Candidate(direction, payload=True, **addresses)]
        shapes = self.client_shapes(needs, group, body)
        if not body:
            return [_Candidate(direction, tuple(header + list(shape.tests)), shape.connmark, **addresses)
                    for shape in shapes]
        out = []
        for family in self.families(needs, lits):
            layout, api_test = family
            flexible = layout.flexible
            for shape in shapes:
                tests = header + [api_test] + list(shape.tests)
                at = shape.body
                if flexible:
                    tests.append(U32Test(at, ((0, 0),), shift=24, hops=shape.hops, field="tagged fields",
                                         note="request header v2: no tagged fields"))
                    at += 1
                for txn_tests, hops, after in self.txn_shapes(needs, layout, shape.hops, at):
                    body_tests = self.body_tests(needs, layout, hops, after)
                    if body_tests is None:
                        continue
                    out.append(_Candidate(direction, tuple(tests + txn_tests + body_tests), shape.connmark,
                                          **addresses))
        return out

    # header

    def header_tests(self, needs: _Needs, body: bool) -> list[U32Test]:
        tests = []
        size = needs.ranges.get("size")
        tests.append(U32Test(L.SIZE_AT, size or ((MIN_REQUEST, MAX_FRAME),), field="size",
                             note="" if size else "frame-start guard"))
        if not body:
            api, version = needs.ranges.get("api"), needs.ranges.get("api_version")
            tests += _api_tests(api, version)
        if "correlation_id" in needs.ranges:
            tests.append(U32Test(L.CORRELATION_AT, needs.ranges["correlation_id"], field="correlation_id"))
        return tests

    def families(self, needs: _Needs, lits: list[Lit]) -> list[tuple[L.BodyLayout, U32Test]]:
        used = [("topic", needs.topics), ("acks", needs.acks is not None),
                ("transactional_id", needs.txn_eq or needs.txn_exists is not None)]
        api = needs.ranges.get("api")
        keys = _keys(api) if api else None
        for name, present in used:
            if not present:
                continue
            allowed = L.BODY_FIELDS[name]
            if keys is None or any(k not in allowed for k in keys):
                node = needs.nodes.get(name) or (needs.topics[0][1] if name == "topic" else None)
                names = ", ".join(api_name(k) for k in allowed)
                raise _Unsupported(node, f"`{node}` needs the API: the kernel finds {name} at a known place only in "
                                         f"{names} requests",
                                   hint=f"add the API, e.g. `api == {api_name(allowed[0])} and {node}`",
                                   widening=f"`{node}` dropped: frames of every API match")
        version = needs.ranges.get("api_version", _domain(16))
        out = []
        for key in keys:
            for layout in L.layouts_for(key):
                versions = _intersect(version, ((layout.low, layout.high),))
                if not versions:
                    continue
                ranges = tuple(((key << 16) | low, (key << 16) | high) for low, high in versions)
                test = U32Test(L.API_AT, ranges, field="api_key, api_version",
                               note=f"{api_name(key)} {_versions_text(versions)}")
                out.append((layout, test))
        return out

    # client id

    def client_marks(self, needs: _Needs, group: _Group):
        """The connmark test for a frame that carries no client id (a response, or a KIP-1313
        request after the first): its connection's identity."""
        eq = {v for v, _ in needs.client_eq}
        if len(eq) > 1:
            return "never"
        mark = None
        for value in eq:
            bit = self.identity(("eq", value), group)
            mark = _merge_connmark(mark, (bit, bit))
        for value, _ in needs.client_ne:
            bit = self.identity(("ne", value), group)
            mark = _merge_connmark(mark, (bit, bit))
        for value, _ in needs.client_not:
            if value in eq:
                return "never"
            bit = self.identity(("eq", value), group)
            mark = _merge_connmark(mark, (0, bit))
        if mark == (-1, -1):
            return "never"
        return mark

    def client_shapes(self, needs: _Needs, group: _Group, body: bool) -> list[_ClientShape]:
        eq = {v for v, _ in needs.client_eq}
        negatives = [v for v, _ in needs.client_ne] + [v for v, _ in needs.client_not]
        client = bool(eq or negatives)
        if len(eq) > 1 or (eq and eq & set(negatives)):
            return []
        null_shape = []
        if client:
            marks = self.client_marks(needs, group)
            if marks != "never":
                null_shape = [_ClientShape((U32Test(L.CLIENT_ID_AT, ((0xFFFF, 0xFFFF),), shift=16, field="client_id",
                                                    note="null (-1): the connection's client id, by its mark"),),
                                           (), L.CLIENT_ID_AT + 2, marks, "null client id, marked connection")]
        elif body:
            null_shape = [_ClientShape((U32Test(L.CLIENT_ID_AT, ((0xFFFF, 0xFFFF),), shift=16, field="client_id",
                                                note="null (-1)"),), (), L.CLIENT_ID_AT + 2, None,
                                       "null client id")]
        if eq:
            value = next(iter(eq))
            data = value.encode()
            tests = _bytes_tests(len(data).to_bytes(2, "big") + data, L.CLIENT_ID_AT, (), "client_id",
                                 f"length {len(data)} and {value!r}")
            return [_ClientShape(tuple(tests), (), L.CLIENT_ID_AT + 2 + len(data), None, f"client id {value!r}")] + \
                null_shape
        hop = (Hop(L.CLIENT_ID_AT, field="len(client_id)"),)
        if negatives:
            alternatives = [[]]
            for value in dict.fromkeys(negatives):
                alternatives = [a + b for a in alternatives for b in _client_differs(value)]
                if len(alternatives) > MAX_RULES_PER_SPEC:
                    raise CompileError(f"rule {self.spec.name!r}: too many client ids to exclude",
                                       "exclude fewer client ids", rule=self.spec.name)
            return [_ClientShape(tuple(a), hop if body else (), L.CLIENT_ID_AT + 2 if body else 0, None,
                                 "other client id") for a in alternatives] + null_shape
        if not body:
            return [_ClientShape((), (), 0, None, "any client id")]
        guard = U32Test(L.CLIENT_ID_AT, ((0, 0x7FFF),), shift=16, field="client_id length", note="not null")
        return [_ClientShape((guard,), hop, L.CLIENT_ID_AT + 2, None, "client id of any length")] + null_shape

    # transactional id

    def txn_shapes(self, needs: _Needs, layout: L.BodyLayout, hops: tuple[Hop, ...], at: int):
        """(tests, hops, offset after the transactional id) per transactional-id family."""
        if not layout.transactional_id:
            if needs.txn_eq or needs.txn_exists:
                return []
            return [([], hops, at)]
        compact = layout.flexible
        field_ = "transactional_id"
        null_value = (0, 0) if compact else (0xFFFF, 0xFFFF)
        shift = 24 if compact else 16
        null = ([U32Test(at, (null_value,), shift=shift, hops=hops, field=field_, note="null")], hops,
                at + (1 if compact else 2))
        if needs.txn_eq:
            values = {v for v, _ in needs.txn_eq}
            if len(values) > 1 or needs.txn_exists is False:
                return []
            data = next(iter(values)).encode()
            if compact:
                if len(data) + 1 > 0x7F:
                    raise _Unsupported(needs.txn_eq[0][1], "a transactional id of 127 bytes or more has a "
                                       "multi-byte length the compiler does not place")
                prefix = bytes([len(data) + 1])
            else:
                prefix = len(data).to_bytes(2, "big")
            tests = _bytes_tests(prefix + data, at, hops, field_, f"{next(iter(values))!r}")
            return [(tests, hops, at + len(prefix) + len(data))]
        if compact:
            guard = U32Test(at, ((1, 0x7F),), shift=24, hops=hops, field=field_,
                            note="not null, length under 127 (one-byte uvarint)")
            present = ([guard], hops + (Hop(at, 24, 0xFF, "transactional_id (its length byte, len+1)"),), at)
        else:
            guard = U32Test(at, ((0, 0x7FFF),), shift=16, hops=hops, field=field_, note="not null")
            present = ([guard], hops + (Hop(at, 16, 0xFFFF, "len(transactional_id)"),), at + 2)
        if needs.txn_exists is True:
            return [present]
        if needs.txn_exists is False:
            return [null]
        return [null, present]

    # body

    def body_tests(self, needs: _Needs, layout: L.BodyLayout, hops: tuple[Hop, ...], at: int) -> list | None:
        tests = []
        if needs.acks is not None:
            offset = layout.fixed_offset("acks")
            tests.append(U32Test(at + offset, needs.acks, shift=16, hops=hops, field="acks"))
        if needs.topics:
            names = {v for v, _ in needs.topics}
            node = needs.topics[0][1]
            if len(names) > 1:
                raise _Unsupported(node, "the kernel sees the first topic of a request only, so it cannot test "
                                         f"for two topics at once ({', '.join(sorted(map(repr, names)))})",
                                   widening=f"`{node}` dropped")
            name = next(iter(names))
            count_at = at + layout.fixed_size
            if layout.flexible:
                tests.append(U32Test(count_at, ((2, 0x7F),), shift=24, hops=hops, field="topics count",
                                     note="1 to 126 topics (one-byte uvarint, stored +1)"))
                entry = count_at + 1
            else:
                tests.append(U32Test(count_at, ((1, 0x7FFFFFFF),), hops=hops, field="topics count",
                                     note="at least one topic"))
                entry = count_at + 4
            entry += layout.topic_skip
            if layout.topic == "id":
                topic_id = self.topic_ids.get(name)
                if topic_id is None:
                    if not self.spec.approximate:
                        raise self.error(_Unsupported(
                            node, f"{api_name(layout.api_key)} {layout.versions} names topics by id, and no id is "
                                  f"known for topic {name!r}",
                            hint="learn them from a capture that has Metadata responses (--topic-ids), or restrict the versions "
                                 f"(api_version < {layout.low})"))
                    self.warn(f"approximate: no topic id known for {name!r}: {api_name(layout.api_key)} "
                              f"{layout.versions} requests match whatever topic they name")
                    return tests
                if len(topic_id) != 16:
                    raise CompileError(f"the topic id for {name!r} is {len(topic_id)} bytes, not 16",
                                       "give topic ids as 16-byte UUIDs", rule=self.spec.name)
                tests += _bytes_tests(bytes(topic_id), entry, hops, "topic_id", f"{name!r}")
            else:
                data = name.encode()
                if layout.flexible:
                    if len(data) + 1 > 0x7F:
                        raise _Unsupported(node, "a topic name of 127 bytes or more has a multi-byte length the "
                                                 "compiler does not place")
                    prefix = bytes([len(data) + 1])
                else:
                    prefix = len(data).to_bytes(2, "big")
                tests += _bytes_tests(prefix + data, entry, hops, "topic", f"{name!r}")
            self.warn(f"`{node}` tests the first topic a request names; a request that names {name!r} after "
                      "another topic is not matched")
        return tests

    # actions

    def emit(self, index: int, spec: RuleSpec, group: _Group, candidates: list[_Candidate]) -> None:
        action = spec.action
        comment = f"kshock:{self.name}/{spec.name}"
        mode = spec.trigger.mode
        stall = action.kind == "stall"
        latch = spec.latch or (stall and spec.condition is not None)
        if latch and mode == "once-per-connection":
            raise CompileError(f"rule {spec.name!r}: a latch cannot go with trigger once-per-connection",
                               "a latch acts on the rest of a connection; once-per-connection on one packet",
                               rule=spec.name)
        if stall and spec.condition is None and mode != "always":
            raise CompileError(f"rule {spec.name!r}: stall without a condition stalls every connection; a "
                               f"trigger ({mode}) cannot apply", "add a condition (match) or drop the trigger",
                               rule=spec.name)
        if action.kind == "loss" and mode == "nth":
            raise CompileError(f"rule {spec.name!r}: loss cannot go with trigger every N",
                               "use action drop with trigger every N, or loss alone", rule=spec.name)
        kw = dict(datestop=self.expires_at, comment=comment)
        if action.kind in TC_ACTIONS:
            for direction in sorted({c.direction for c in candidates}):
                if "INPUT" in _hooks(spec.target.direction, direction):
                    raise CompileError(
                        f"rule {spec.name!r}: {action} on {direction}s arriving at this host cannot be shaped: tc "
                        "acts on packets as they leave a device",
                        "load it where the packets leave: direction: egress on the client's host (requests), "
                        "ingress for responses leaving the broker, or forward on a router", rule=spec.name)
        final_target, final_args, final_stat = self.final(index, spec, group)

        def rule(cand: _Candidate | None, target: str, args=(), stat=(), **more) -> KernelRule:
            base = {}
            if cand is not None:
                base = dict(source=cand.source, destination=cand.destination, source_port=cand.source_port,
                            destination_port=cand.destination_port, payload_required=cand.payload,
                            u32=_groups(cand.tests), connmark=cand.connmark)
            base.update(more)
            return KernelRule(target, tuple(args), statistic=tuple(stat), **base, **kw)

        directions = sorted({c.direction for c in candidates})
        if stall and spec.condition is None:
            group.request_rules += [rule(None, "DROP", payload_required=True),
                                    rule(None, "DROP", tcp_flags=("FIN", "FIN"))]
            return
        latch_bit = self.bit() if latch else 0
        if latch:
            hit_target, hit_args, hit_stat = "CONNMARK", ("--set-xmark", f"0x{latch_bit:x}/0x{latch_bit:x}"), ()
        else:
            hit_target, hit_args, hit_stat = final_target, final_args, final_stat
        if mode in ("nth", "once-per-connection"):
            sub = f"KSHOCK-{self.short}-{index}t"
            if mode == "nth":
                sub_rules = (rule(None, hit_target, hit_args, ("nth", str(spec.trigger.every), "0")),)
            else:
                once = self.bit()
                sub_rules = (rule(None, "RETURN", connmark=(once, once)),
                             rule(None, "CONNMARK", ("--set-xmark", f"0x{once:x}/0x{once:x}")),
                             rule(None, hit_target, hit_args, hit_stat))
            self.extra_chains.append(Chain(sub, sub_rules))
            match_target, match_args, match_stat = sub, (), ()
        else:
            match_target, match_args, match_stat = hit_target, hit_args, hit_stat
            if mode == "probability":
                match_stat = _random(spec.trigger.probability, match_stat)
        for cand in candidates:
            rules = group.request_rules if cand.direction == "request" else group.response_rules
            rules.append(rule(cand, match_target, match_args, match_stat))
        if latch:
            for direction in directions:
                rules = group.request_rules if direction == "request" else group.response_rules
                if stall:
                    rules += [rule(None, "DROP", connmark=(latch_bit, latch_bit), payload_required=True),
                              rule(None, "DROP", connmark=(latch_bit, latch_bit), tcp_flags=("FIN", "FIN"))]
                else:
                    rules.append(rule(None, final_target, final_args, final_stat, connmark=(latch_bit, latch_bit)))

    def final(self, index: int, spec: RuleSpec, group: _Group) -> tuple[str, tuple, tuple]:
        kind = spec.action.kind
        if kind == "drop" or kind == "stall":
            return "DROP", (), ()
        if kind == "reset":
            return "REJECT", ("--reject-with", "tcp-reset"), ()
        if kind == "loss":
            return "DROP", (), _random((spec.action.percent or 0) / 100, ())
        if kind in TC_ACTIONS:
            if index > 0xFF:
                raise CompileError(f"rule set {self.name!r} has more than 256 traffic-control rules",
                                   "split it into several rule sets", rule=spec.name)
            classid = (TC_ROOT_MAJOR << 16) | (self.slot(spec) << 8) | index
            chain = f"KSHOCK-{self.short}-{index}c"
            kw = dict(datestop=self.expires_at, comment=f"kshock:{self.name}/{spec.name}")
            self.extra_chains.append(Chain(chain, (
                KernelRule("CLASSIFY", ("--set-class", f"{classid >> 16:x}:{classid & 0xFFFF:x}"), **kw),
                KernelRule("ACCEPT", **kw))))
            action = spec.action
            self.tc.append(TrafficControl(spec.name, classid, kind, _tc_hook(spec), spec.target.interface,
                                          action.percent, action.rate_bit_s, action.delay_ms, action.jitter_ms))
            return chain, (), ()
        raise CompileError(f"rule {spec.name!r}: unknown action {kind!r}", rule=spec.name)

    # identity rules and the rule set

    def identity_rules(self, group: _Group) -> list[KernelRule]:
        out = []
        kw = dict(datestop=self.expires_at)
        for key in group.identities:
            kind, value = key
            bit = self.identity_bits[key]
            alternatives = [_client_equal(value)] if kind == "eq" else _client_differs(value)
            guard = [U32Test(L.SIZE_AT, ((MIN_REQUEST, MAX_FRAME),), field="size", note="frame-start guard")]
            guard += _api_tests(None, None)
            for tests in alternatives:
                # The comment names the bit, never the client id: a user's string reaches
                # the kernel only as the u32 words above (issue 10: comments injected rules).
                out.append(KernelRule("CONNMARK", ("--set-xmark", f"0x{bit:x}/0x{bit:x}"),
                                      u32=_groups(guard + tests),
                                      comment=f"kshock:{self.name}/identity:0x{bit:x}", **kw))
        return out

    def ruleset(self, specs: Sequence[RuleSpec]) -> RuleSet:
        chains: list[Chain] = []
        jumps: list[Jump] = []
        tc = any(spec.action.kind in TC_ACTIONS for spec in specs)
        for group in self.groups:
            target = group.target
            request = self.identity_rules(group) + group.request_rules
            for direction, name, rules in (("request", group.request, request),
                                           ("response", group.response, group.response_rules)):
                if not rules:
                    continue
                dispatched: list[Chain] = []
                if direction == "request":  # (a response's word at offset 4 is its correlation id)
                    rules, dispatched = _dispatch(name, rules, self.expires_at, self.name)
                chains.append(Chain(name, tuple(rules)))
                chains += dispatched
                # When every rule of the chain reads the TCP payload, a segment without payload
                # (a bare ACK) can match none of them: test that once at the jump, so bare ACKs
                # never walk the chain (the cost an unaffected client pays for kshock's rules).
                payload_only = all(rule.u32 or rule.payload_required for rule in rules)
                for builtin in _hooks(target.direction, direction):
                    for port in target.ports:
                        jump = KernelRule(
                            name,
                            destination_port=port if direction == "request" else None,
                            source_port=port if direction == "response" else None,
                            destination=_host(target.host) if direction == "request" else None,
                            source=_host(target.host) if direction == "response" else None,
                            in_interface=target.interface if builtin in ("INPUT", "FORWARD") else None,
                            out_interface=target.interface if builtin == "OUTPUT" else None,
                            payload_required=payload_only,
                            datestop=self.expires_at, comment=f"kshock:{self.name}")
                        jumps.append(Jump(builtin, jump))
        chains += self.extra_chains
        for chain in chains:
            if len(chain.name) > _CHAIN_MAX:
                raise CompileError(f"chain name {chain.name} is longer than {_CHAIN_MAX} characters",
                                   "use a shorter rule set name")
        mask = 0
        for bit in self.allotted:
            mask |= bit
        return RuleSet(self.name, tuple(chains), tuple(jumps), table="mangle" if tc else "filter",
                       expires_at=self.expires_at, warnings=tuple(self.warnings), traffic_control=tuple(self.tc),
                       connmark_mask=mask)


# -- helpers ---------------------------------------------------------------------------------

_DISPATCH_CHAIN = 16  # a chain longer than this sends each API's rules to a chain of their own
_DISPATCH_GROUP = 3  # ... when the API has at least this many (the jump costs a rule itself)


def _dispatch(chain: str, rules: list[KernelRule], datestop: str | None,
              set_name: str) -> tuple[list[KernelRule], list[Chain]]:
    """A long chain's rules that pin one API key, moved to a chain per key behind one jump.

    Every Kafka packet that enters a chain walks its rules until one acts; with 20 rules on
    several APIs most of that walk is rules of other APIs. Rules pinned to different API keys
    read the same word and can never both match a packet, so their relative order does not
    matter: between two rules that pin no key (which keep their place, in order), the rules of
    each key go, in their order, into `<chain>-a<key>`, jumped to where the first of them stood
    when the key is right. What matches, and in which order, is unchanged."""
    if len(rules) <= _DISPATCH_CHAIN:
        return rules, []
    out: list[KernelRule] = []
    subs: dict[str, list[KernelRule]] = {}
    run: dict[int, list[KernelRule]] = {}

    def close() -> None:
        for key, members in run.items():
            name = f"{chain}-a{key}"
            if len(members) < _DISPATCH_GROUP or len(name) > _CHAIN_MAX or name in subs:
                out.extend(members)
                continue
            subs[name] = members
            out.append(KernelRule(name, u32=((U32Test(L.API_AT, ((key, key),), shift=16, field="api_key",
                                                      note=f"{api_name(key)}: its rules' chain"),),),
                                  datestop=datestop, comment=f"kshock:{set_name}/api:{key}"))
        run.clear()

    for rule in rules:
        key = _pinned_api(rule)
        if key is None or rule.target == "RETURN":
            close()
            out.append(rule)
        else:
            run.setdefault(key, []).append(rule)
    close()
    return out, [Chain(name, tuple(members)) for name, members in subs.items()]


def _pinned_api(rule: KernelRule) -> int | None:
    """The one API key a rule's u32 tests require of the frame (the word at offset 4), or None."""
    for group in rule.u32:
        for test in group:
            if test.offset != L.API_AT or test.hops or not test.ranges:
                continue
            if test.shift == 16 and test.mask == 0xFFFFFFFF:
                keys = {k for low, high in test.ranges for k in (low, high)}
            elif test.shift == 0 and test.mask == 0xFFFFFFFF:
                keys = {v >> 16 for low, high in test.ranges for v in (low, high)}
            else:
                continue
            if len(keys) == 1:
                return keys.pop()
    return None

def _first_node(lits: list[Lit], name: str, skip_client: bool = False):
    if skip_client and name == "client_id":
        return None
    for lit in lits:
        if lit.node.field == name:
            return lit.node
    return None


def _keys(api: Ranges) -> list[int] | None:
    count = sum(high - low + 1 for low, high in api)
    if count > 16:
        return None
    return [k for low, high in api for k in range(low, high + 1)]


def _api_tests(api: Ranges | None, version: Ranges | None) -> list[U32Test]:
    """Tests on the word at offset 4 (api_key << 16 | api_version); one test when the product
    of keys and version ranges fits the kernel's 10 ranges, else one per half."""
    if api is not None and version is not None:
        keys = _keys(api)
        if keys is not None and len(keys) * len(version) <= 10:
            ranges = tuple(((k << 16) | low, (k << 16) | high) for k in keys for low, high in version)
            note = " or ".join(f"{api_name(k)} {_versions_text(version)}" for k in keys)
            return [U32Test(L.API_AT, ranges, field="api_key, api_version", note=note)]
    tests = []
    if api is not None:
        keys = _keys(api)
        note = ", ".join(api_name(k) for k in keys) if keys else ""
        tests.append(U32Test(L.API_AT, api, shift=16, field="api_key", note=note))
    else:
        tests.append(U32Test(L.API_AT, (GUARD_API,), shift=16, field="api_key", note="frame-start guard"))
    if version is not None:
        tests.append(U32Test(L.API_AT, version, mask=0xFFFF, field="api_version"))
    else:
        tests.append(U32Test(L.API_AT, (GUARD_VERSION,), mask=0xFFFF, field="api_version",
                             note="frame-start guard"))
    return tests


def _versions_text(ranges: Ranges) -> str:
    return ",".join(f"v{low}" if low == high else f"v{low}-{high}" for low, high in ranges)


def _client_equal(value: str) -> list[U32Test]:
    data = value.encode()
    return _bytes_tests(len(data).to_bytes(2, "big") + data, L.CLIENT_ID_AT, (), "client_id",
                        f"length {len(data)} and {value!r}")


def _client_differs(value: str) -> list[list[U32Test]]:
    """A non-null client id other than `value`, as disjoint alternatives."""
    tests = _client_equal(value)
    first = tests[0]
    # The null id (length -1): the int16 length sits in the first word read at bit `shift` (16
    # for a full word at the length; lower for a short id's masked word ending at its last byte,
    # where a fixed 0xFFFF0000 excluded every length and `client_id != ""` matched nothing).
    shift = 8 * (first.offset + 2 - L.CLIENT_ID_AT)
    null = (((0xFFFF << shift) & first.mask, ((0xFFFF << shift) | ((1 << shift) - 1)) & first.mask),)
    return _differs(tests, exclude_first=null)


def _groups(tests: tuple[U32Test, ...] | list[U32Test]) -> tuple[tuple[U32Test, ...], ...]:
    tests = tuple(tests)
    return tuple(tests[i:i + _TESTS_PER_MATCH] for i in range(0, len(tests), _TESTS_PER_MATCH))


def _random(probability: float | None, stat: tuple) -> tuple:
    p = 1.0 if probability is None else probability
    if stat and stat[0] == "random":
        p *= float(stat[1])
    return ("random", f"{p:.6g}")


def _hooks(direction: str, traffic: str) -> tuple[str, ...]:
    """The built-in chains a request (or response) passes through on this host."""
    if direction == "forward":
        return ("FORWARD",)
    if direction == "both":
        return ("INPUT", "OUTPUT")
    arriving = (direction == "ingress") == (traffic == "request")
    return ("INPUT",) if arriving else ("OUTPUT",)


def _tc_hook(spec: RuleSpec) -> str:
    return "FORWARD" if spec.target.direction == "forward" else "OUTPUT"


def _host(host: str | None) -> str | None:
    if host is None:
        return None
    network = ipaddress.ip_network(host, strict=False)
    return str(network.network_address) if network.prefixlen == network.max_prefixlen else str(network)


def _short_name(name: str) -> str:
    if len(name) <= _SHORT_MAX:
        return name
    return f"{name[:_SHORT_MAX - 5]}-{zlib.crc32(name.encode()) & 0xFFFF:04x}"


def _check(specs: Sequence[RuleSpec], name: str) -> None:
    # ASCII only: names go into chain names and rule comments, the kernel's only text from users
    if not RULE_NAME.match(name):
        raise CompileError(f"rule set name {name!r} cannot name an iptables chain",
                           "use up to 64 ASCII letters, digits, '_', '.' and '-', starting with a letter or digit")
    seen = set()
    for spec in specs:
        if not RULE_NAME.match(spec.name):
            raise CompileError(f"rule name {spec.name!r} cannot go into a rule comment",
                               "use up to 64 ASCII letters, digits, '_', '.' and '-', starting with a letter or digit",
                               rule=spec.name)
        if spec.name in seen:
            raise CompileError(f"two rules are named {spec.name!r}", "give every rule its own name", rule=spec.name)
        seen.add(spec.name)
    tc = [spec.name for spec in specs if spec.action.kind in TC_ACTIONS]
    if tc and len(tc) != len(specs):
        other = next(spec.name for spec in specs if spec.action.kind not in TC_ACTIONS)
        raise CompileError(f"rule {tc[0]!r} ({next(s.action for s in specs if s.name == tc[0])}) is a traffic-control "
                           f"fault and rule {other!r} a packet-filter one; a rule set holds one kind",
                           "put them in separate rule files", rule=tc[0])


def compile_rules(specs: Sequence[RuleSpec], name: str, *, expires_at: str | None,
                  topic_ids: Mapping[str, bytes] | None = None, mark_base: int | None = None,
                  taken: Marks | None = None) -> RuleSet:
    """Compile rules into one RuleSet named `name` (chains KSHOCK-<name>...). Pure.

    `expires_at` (UTC, "2026-11-24T05:00:00") becomes every rule's `-m time --datestop`.
    `topic_ids` maps topic names to their 16-byte ids, for Fetch v13+ and Produce v13.
    `mark_base` picks the first of the 16 connection-mark bits (0x00FFFF00) the rule set uses;
    by default it is derived from the name. `taken` holds the connmark bits and tc class slots
    of the other faults active where this one goes: none of them is used (MarksExhausted when
    too few are left). Raises CompileError for what cannot compile.
    """
    _check(specs, name)
    compiler = _Compiler(name, expires_at, topic_ids or {}, mark_base, taken or Marks())
    for index, spec in enumerate(specs):
        compiler.add(index, spec)
    compiler.spec = None
    return compiler.ruleset(specs)


__all__ = ["CONNMARK_SPACE", "CompileError", "MarksExhausted", "TC_ACTIONS", "TC_ROOT_MAJOR", "compile_rules"]
