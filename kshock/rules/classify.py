"""PURE: what one alternative of a condition asks of the kernel, sorted by where each test goes.

An alternative is a list of literal tests (normal_form.py). Each field's row in the FIELDS table
says how the kernel can find it (`Field.kernel`, a Place); this module dispatches on that place
and collects the tests into `Needs`: value ranges for header and body integers, the client ids
and transactional ids to compare, the topics, addresses and ports, and which directions
(requests, responses) the alternative can match. A test the kernel cannot carry out raises
`Unsupported`, which approximate mode turns into a dropped test and a warning.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kshock.conditions import FIELDS, Compare, Condition, Exists, In
from kshock.conditions.fields import Place
from kshock.rules.normal_form import Lit
from kshock.rules.ranges import Ranges, complement, domain, intersect, normalize, op_ranges, signed

KINDS = {"request", "response"}


class Unsupported(Exception):
    """One test of an alternative cannot compile; approximate mode drops it."""

    def __init__(self, node: Condition | None, reason: str, hint: str = "", widening: str = "") -> None:
        super().__init__(reason)
        self.node = node
        self.reason = reason
        self.hint = hint
        self.widening = widening


@dataclass(slots=True)
class Needs:
    """The tests of one alternative, sorted by field."""

    kinds: set = field(default_factory=lambda: set(KINDS))
    kind_given: bool = False
    ranges: dict = field(default_factory=dict)  # header field -> Ranges (unsigned)
    body_ints: dict = field(default_factory=dict)  # body field (acks) -> Ranges (unsigned)
    nodes: dict = field(default_factory=dict)  # field -> first node, for messages
    client_eq: list = field(default_factory=list)  # (value, node)
    client_not: list = field(default_factory=list)  # not client_id == v
    client_ne: list = field(default_factory=list)  # client_id != v
    txn_eq: list = field(default_factory=list)
    txn_exists: bool | None = None
    topics: list = field(default_factory=list)  # (value, node)
    src: str | None = None
    dst: str | None = None
    sport: int | None = None
    dport: int | None = None
    empty: bool = False  # contradictory: never matches

    def uses(self, name: str) -> bool:
        """Whether the alternative tests request-body field `name` (a FIELDS row of a body place)."""
        place = FIELDS[name].kernel.place
        if place is Place.FIRST_TOPIC:
            return bool(self.topics)
        if place is Place.BODY_STRING:
            return bool(self.txn_eq or self.txn_exists is not None)
        return name in self.body_ints

    @property
    def body(self) -> bool:
        """Whether any test reads the request body."""
        return bool(self.topics or self.body_ints or self.txn_eq or self.txn_exists is not None)

    @property
    def client(self) -> bool:
        return bool(self.client_eq or self.client_not or self.client_ne)


BODY_PLACES = (Place.BODY_INT, Place.BODY_STRING, Place.FIRST_TOPIC)


def body_fields() -> list[str]:
    """The fields the kernel finds in a request body, in FIELDS order."""
    return [row.name for row in FIELDS.values() if row.kernel.place in BODY_PLACES]


# tested apart: size is also the frame-start guard, api and api_version share one u32 word
_HEADER_SPECIAL = ("size", "api", "api_version")


def header_word_fields() -> list[str]:
    """The other header integers, one u32 test each, in FIELDS order (correlation_id today):
    a new HEADER_INT row compiles with no other change."""
    return [row.name for row in FIELDS.values() if row.kernel.place is Place.HEADER_INT
            and row.name not in _HEADER_SPECIAL]


def request_only_fields() -> list[str]:
    """The fields a response does not carry, in FIELDS order."""
    return [row.name for row in FIELDS.values() if row.kernel.request_only]


def classify(lits: list[Lit]) -> Needs:
    needs = Needs()
    for lit in lits:
        _classify_one(lit, needs)
    return needs


def first_node(lits: list[Lit], name: str, skip_client: bool = False):
    """The first test of field `name` in an alternative, for messages."""
    if skip_client and name == "client_id":
        return None
    for lit in lits:
        if lit.node.field == name:
            return lit.node
    return None


def _node_values(node) -> tuple:
    return node.values if isinstance(node, In) else (node.value,)


def _classify_one(lit: Lit, needs: Needs) -> None:
    node, neg = lit.node, lit.negated
    name = node.field
    kernel = FIELDS[name].kernel
    place = kernel.place
    if place is Place.HIDDEN:
        raise Unsupported(node, f"`{name}` is not visible to the kernel: {kernel.why_not}",
                          widening=f"`{lit.text()}` dropped: frames are matched whatever their {name}")
    if isinstance(node, Compare) and node.op in ("contains", "matches"):
        what = "a regular expression" if node.op == "matches" else "a substring"
        raise Unsupported(node, f"{what} test on {name} cannot compile: the kernel compares whole fields at "
                                "known offsets", hint=f"compare the whole value: {name} == \"...\"",
                          widening=f"`{lit.text()}` dropped: every {name} matches")
    match place:
        case Place.DIRECTION:
            _direction(node, neg, needs)
        case Place.HEADER_INT | Place.BODY_INT:
            _integer(lit, kernel.bits, place is Place.BODY_INT, needs)
        case Place.CLIENT_ID:
            _client_id(lit, needs)
        case Place.BODY_STRING:
            _body_string(lit, needs)
        case Place.FIRST_TOPIC:
            _first_topic(lit, needs)
        case Place.ADDRESS | Place.PORT if not kernel.either_end:
            _address(lit, kernel.end, place is Place.ADDRESS, needs)
        case _:
            raise Unsupported(node, f"`{lit.text()}` cannot compile", widening=f"`{lit.text()}` dropped")


def _direction(node, neg: bool, needs: Needs) -> None:
    if isinstance(node, Exists):
        wanted = set(KINDS)
    else:
        wanted = set(_node_values(node)) if not (isinstance(node, Compare) and node.op == "!=") else \
            KINDS - {node.value}
    if neg:
        wanted = KINDS - wanted
    needs.kinds &= wanted
    needs.kind_given = True


def _integer(lit: Lit, bits: int, in_body: bool, needs: Needs) -> None:
    node, neg, name = lit.node, lit.negated, lit.node.field
    if isinstance(node, Exists):
        ranges = domain(bits)
    elif isinstance(node, In):
        ranges = normalize(r for v in node.values for r in signed(v, v, bits))
    else:
        ranges = op_ranges(node.op, node.value, bits)
    if neg:
        if in_body and isinstance(node, Exists):
            raise Unsupported(node, f"`not {name}` (requests without {name}) cannot compile",
                              widening=f"`{lit.text()}` dropped")
        ranges = complement(ranges, bits)
    held: dict[str, Ranges] = needs.body_ints if in_body else needs.ranges
    held[name] = intersect(held.get(name, domain(bits)), ranges)
    needs.nodes.setdefault(name, node)
    if not held[name]:
        needs.empty = True


def _client_id(lit: Lit, needs: Needs) -> None:
    node, neg = lit.node, lit.negated
    if isinstance(node, Compare) and node.op == "==":
        (needs.client_not if neg else needs.client_eq).append((node.value, node))
        return
    if isinstance(node, Compare) and node.op == "!=" and not neg:
        needs.client_ne.append((node.value, node))
        return
    raise Unsupported(node, f"`{lit.text()}` cannot compile: the compiler tests client_id with == and != "
                            "against a value", hint="write client_id == \"...\" or client_id != \"...\"",
                      widening=f"`{lit.text()}` dropped: every client id matches")


# Placement knows where these sit (layout.transactional_id, the body's topic entry); a new row
# with the same place must teach placement.py its offset first, never borrow these.
_PLACED = {Place.BODY_STRING: "transactional_id", Place.FIRST_TOPIC: "topic"}


def _placed(lit: Lit, place: Place) -> None:
    node = lit.node
    if node.field != _PLACED[place]:
        raise Unsupported(node, f"`{lit.text()}` cannot compile: the compiler places only "
                                f"{_PLACED[place]} as a {place.name.lower().replace('_', ' ')}",
                          widening=f"`{lit.text()}` dropped")


def _body_string(lit: Lit, needs: Needs) -> None:
    _placed(lit, Place.BODY_STRING)
    node, neg, name = lit.node, lit.negated, lit.node.field
    if isinstance(node, Exists):
        needs.txn_exists = not neg if needs.txn_exists in (None, not neg) else None
        if needs.txn_exists is None:
            needs.empty = True
        needs.nodes.setdefault(name, node)
        return
    if isinstance(node, Compare) and node.op == "==" and not neg:
        needs.txn_eq.append((node.value, node))
        needs.nodes.setdefault(name, node)
        return
    raise Unsupported(node, f"`{lit.text()}` cannot compile: {name} compiles with == (one value) "
                            "or as a bare test of presence", hint=f"write {name} == \"...\"",
                      widening=f"`{lit.text()}` dropped: every transactional id matches")


def _first_topic(lit: Lit, needs: Needs) -> None:
    _placed(lit, Place.FIRST_TOPIC)
    node, neg = lit.node, lit.negated
    if isinstance(node, Compare) and node.op == "==" and not neg:
        needs.topics.append((node.value, node))
        return
    raise Unsupported(node, f"`{lit.text()}` cannot compile: the kernel sees the first topic of a request, "
                            "so it can test that a topic is there, not that one is absent",
                      hint="write topic == \"...\" (or topic in {...})",
                      widening=f"`{lit.text()}` dropped: frames match whatever topics they name")


def _address(lit: Lit, end: str, is_host: bool, needs: Needs) -> None:
    node, neg, name = lit.node, lit.negated, lit.node.field
    if neg or not isinstance(node, Compare) or node.op != "==":
        raise Unsupported(node, f"`{lit.text()}` cannot compile: addresses and ports compile to iptables "
                                "-s/-d/--sport/--dport, which kshock uses with == only",
                          hint="narrow the rule's target instead (target: host, port)",
                          widening=f"`{lit.text()}` dropped: packets match whatever their {name}")
    value = node.value
    if is_host:
        if value.version != 4:
            raise Unsupported(node, f"`{lit.text()}`: kshock compiles IPv4 rules only",
                              widening=f"`{lit.text()}` dropped")
        text = str(value) if value.prefixlen != 32 else str(value.network_address)
        slot = end  # "src" | "dst"
    else:
        text, slot = int(value), "sport" if end == "src" else "dport"
    current = getattr(needs, slot)
    if current is not None and current != text:
        needs.empty = True
    setattr(needs, slot, text)


__all__ = ["Needs", "Unsupported", "body_fields", "classify", "first_node", "header_word_fields", "request_only_fields"]
