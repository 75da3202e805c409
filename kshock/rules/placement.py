"""PURE: where one alternative's tests go on the wire — a response's header, or a request's
header, client-id and transactional-id families and the body layouts of kshock.wire.layout.

A Kafka request's body sits after two variable-length strings (the client id, and in Produce
v3+ the transactional id) and, from each API's flexible version on, a tagged-fields byte. The
kernel's u32 can step over a string with `@` (reading its length) or, when the condition names
the string, test it in place and know where the body starts; a null string is its own family.
So one alternative becomes one `Candidate` per (body layout family x client-id shape x
transactional-id shape): the product these methods build. `Placement` is the compiler's base
class: it asks the compiler for connection-mark bits (`identity`), for the rule's spec, and to
warn or refuse.
"""

from __future__ import annotations

from dataclasses import dataclass

from kshock.conditions import FIELDS
from kshock.rules.classify import Needs, Unsupported, body_fields, first_node, header_word_fields, request_only_fields
from kshock.rules.kernel import Hop, U32Test
from kshock.rules.normal_form import Lit
from kshock.rules.ranges import domain, intersect, listed, versions_text
from kshock.rules.u32 import MAX_FRAME, MIN_REQUEST, MIN_RESPONSE, api_tests, bytes_tests, client_differs
from kshock.wire.apis import api_name
from kshock.wire.layout import API_AT, CLIENT_ID_AT, CLIENT_ID_BYTES_AT, BodyLayout, layouts_for

MAX_RULES_PER_SPEC = 256


def header_at(name: str, direction: str = "request") -> int:
    """Where header field `name` sits in a request (or response): the FIELDS kernel column."""
    kernel = FIELDS[name].kernel
    return kernel.request_at if direction == "request" else kernel.response_at


@dataclass(frozen=True, slots=True)
class Candidate:
    """One kernel rule's matches, before the action is chosen."""

    direction: str  # request | response
    tests: tuple[U32Test, ...] = ()
    connmark: tuple[int, int] | None = None
    source: str | None = None
    destination: str | None = None
    source_port: int | None = None
    destination_port: int | None = None
    payload: bool = False  # no byte test: any segment with payload


@dataclass(frozen=True, slots=True)
class ClientShape:
    """How the header ends for one client-id family: tests on the header, the hops that reach
    the body, where the body starts (relative to the cursor after the hops), the connmark."""

    tests: tuple[U32Test, ...]
    hops: tuple[Hop, ...]
    body: int
    connmark: tuple[int, int] | None
    label: str


def merge_connmark(a: tuple[int, int] | None, b: tuple[int, int] | None) -> tuple[int, int] | None:
    """Both (value, mask) connmark tests at once; (-1, -1) when they contradict."""
    if a is None:
        return b
    if b is None:
        return a
    if (a[0] ^ b[0]) & a[1] & b[1]:
        return (-1, -1)  # contradiction
    return a[0] | b[0], a[1] | b[1]


class Placement:
    """The compiler's base class: the methods that turn an alternative's `Needs` into
    candidates (see the module docstring). It uses the compiler's `spec`, `topic_ids`,
    `identity(key, group)`, `warn(text)`, `error(problem)` and `refuse(message, hint)`."""

    def direction(self, direction: str, needs: Needs, lits: list[Lit], group) -> list[Candidate]:
        addresses = dict(source=needs.src, destination=needs.dst, source_port=needs.sport,
                         destination_port=needs.dport)
        if direction == "response":
            for name in request_only_fields():
                node = needs.nodes.get(name) or first_node(lits, name, skip_client=True)
                if node is not None:
                    raise Unsupported(node, f"`{node}` cannot compile for responses: a response carries only its "
                                            "size and correlation id, not the request's api, version or body",
                                      hint="drop kind == response to act on the requests",
                                      widening=f"`{node}` dropped: every response matches")
            tests = []
            size = needs.ranges.get("size")
            tests.append(U32Test(header_at("size", direction), size or ((MIN_RESPONSE, MAX_FRAME),), field="size",
                                 note="" if size else "frame-start guard"))
            for name in header_word_fields():
                if name in needs.ranges:  # (request-only ones were refused above)
                    tests.append(U32Test(header_at(name, direction), needs.ranges[name], field=name))
            marks = self.client_marks(needs, group)
            if marks == "never":
                return []
            if not needs.ranges:  # kind == response (and addresses, client): every response byte
                return [Candidate(direction, connmark=marks, payload=True, **addresses)]
            return [Candidate(direction, tuple(tests), marks, **addresses)]
        body, client = needs.body, needs.client
        header = [t for t in self.header_tests(needs, body)]
        if not body and not client and not header:
            return [Candidate(direction, payload=True, **addresses)]
        shapes = self.client_shapes(needs, group, body)
        if not body:
            return [Candidate(direction, tuple(header + list(shape.tests)), shape.connmark, **addresses)
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
                    out.append(Candidate(direction, tuple(tests + txn_tests + body_tests), shape.connmark,
                                          **addresses))
        return out

    # header

    def header_tests(self, needs: Needs, body: bool) -> list[U32Test]:
        tests = []
        size = needs.ranges.get("size")
        tests.append(U32Test(header_at("size"), size or ((MIN_REQUEST, MAX_FRAME),), field="size",
                             note="" if size else "frame-start guard"))
        if not body:
            api, version = needs.ranges.get("api"), needs.ranges.get("api_version")
            tests += api_tests(api, version)
        for name in header_word_fields():
            if name in needs.ranges:
                tests.append(U32Test(header_at(name), needs.ranges[name], field=name))
        return tests

    def families(self, needs: Needs, lits: list[Lit]) -> list[tuple[BodyLayout, U32Test]]:
        api = needs.ranges.get("api")
        keys = listed(api) if api else None
        for name in body_fields():
            if not needs.uses(name):
                continue
            allowed = FIELDS[name].kernel.apis
            if keys is None or any(k not in allowed for k in keys):
                node = needs.nodes.get(name) or (needs.topics[0][1] if name == "topic" else None)
                names = ", ".join(api_name(k) for k in allowed)
                raise Unsupported(node, f"`{node}` needs the API: the kernel finds {name} at a known place only in "
                                        f"{names} requests",
                                  hint=f"add the API, e.g. `api == {api_name(allowed[0])} and {node}`",
                                  widening=f"`{node}` dropped: frames of every API match")
        version = needs.ranges.get("api_version", domain(16))
        out = []
        for key in keys:
            for layout in layouts_for(key):
                versions = intersect(version, ((layout.low, layout.high),))
                if not versions:
                    continue
                ranges = tuple(((key << 16) | low, (key << 16) | high) for low, high in versions)
                test = U32Test(API_AT, ranges, field="api_key, api_version",
                               note=f"{api_name(key)} {versions_text(versions)}")
                out.append((layout, test))
        return out

    # client id

    def client_marks(self, needs: Needs, group):
        """The connmark test for a frame that carries no client id (a response, or a KIP-1313
        request after the first): its connection's identity."""
        eq = {v for v, _ in needs.client_eq}
        if len(eq) > 1:
            return "never"
        mark = None
        for value in eq:
            bit = self.identity(("eq", value), group)
            mark = merge_connmark(mark, (bit, bit))
        for value, _ in needs.client_ne:
            bit = self.identity(("ne", value), group)
            mark = merge_connmark(mark, (bit, bit))
        for value, _ in needs.client_not:
            if value in eq:
                return "never"
            bit = self.identity(("eq", value), group)
            mark = merge_connmark(mark, (0, bit))
        if mark == (-1, -1):
            return "never"
        return mark

    def client_shapes(self, needs: Needs, group, body: bool) -> list[ClientShape]:
        eq = {v for v, _ in needs.client_eq}
        negatives = [v for v, _ in needs.client_ne] + [v for v, _ in needs.client_not]
        client = bool(eq or negatives)
        if len(eq) > 1 or (eq and eq & set(negatives)):
            return []
        null_shape = []
        if client:
            marks = self.client_marks(needs, group)
            if marks != "never":
                null_shape = [ClientShape((U32Test(CLIENT_ID_AT, ((0xFFFF, 0xFFFF),), shift=16, field="client_id",
                                                    note="null (-1): the connection's client id, by its mark"),),
                                           (), CLIENT_ID_BYTES_AT, marks, "null client id, marked connection")]
        elif body:
            null_shape = [ClientShape((U32Test(CLIENT_ID_AT, ((0xFFFF, 0xFFFF),), shift=16, field="client_id",
                                                note="null (-1)"),), (), CLIENT_ID_BYTES_AT, None,
                                       "null client id")]
        if eq:
            value = next(iter(eq))
            data = value.encode()
            tests = bytes_tests(len(data).to_bytes(2, "big") + data, CLIENT_ID_AT, (), "client_id",
                                 f"length {len(data)} and {value!r}")
            return [ClientShape(tuple(tests), (), CLIENT_ID_BYTES_AT + len(data), None, f"client id {value!r}")] + \
                null_shape
        hop = (Hop(CLIENT_ID_AT, field="len(client_id)"),)
        if negatives:
            alternatives = [[]]
            for value in dict.fromkeys(negatives):
                alternatives = [a + b for a in alternatives for b in client_differs(value)]
                if len(alternatives) > MAX_RULES_PER_SPEC:
                    raise self.refuse(f"rule {self.spec.name!r}: too many client ids to exclude",
                                      "exclude fewer client ids")
            return [ClientShape(tuple(a), hop if body else (), CLIENT_ID_BYTES_AT if body else 0, None,
                                 "other client id") for a in alternatives] + null_shape
        if not body:
            return [ClientShape((), (), 0, None, "any client id")]
        guard = U32Test(CLIENT_ID_AT, ((0, 0x7FFF),), shift=16, field="client_id length", note="not null")
        return [ClientShape((guard,), hop, CLIENT_ID_BYTES_AT, None, "client id of any length")] + null_shape

    # transactional id

    def txn_shapes(self, needs: Needs, layout: BodyLayout, hops: tuple[Hop, ...], at: int):
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
                    raise Unsupported(needs.txn_eq[0][1], "a transactional id of 127 bytes or more has a "
                                      "multi-byte length the compiler does not place")
                prefix = bytes([len(data) + 1])
            else:
                prefix = len(data).to_bytes(2, "big")
            tests = bytes_tests(prefix + data, at, hops, field_, f"{next(iter(values))!r}")
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

    def body_tests(self, needs: Needs, layout: BodyLayout, hops: tuple[Hop, ...], at: int) -> list | None:
        tests = []
        for name, ranges in needs.body_ints.items():
            offset = layout.fixed_offset(name)
            tests.append(U32Test(at + offset, ranges, shift=32 - FIELDS[name].kernel.bits, hops=hops, field=name))
        if needs.topics:
            names = {v for v, _ in needs.topics}
            node = needs.topics[0][1]
            if len(names) > 1:
                raise Unsupported(node, "the kernel sees the first topic of a request only, so it cannot test "
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
                        raise self.error(Unsupported(
                            node, f"{api_name(layout.api_key)} {layout.versions} names topics by id, and no id is "
                                  f"known for topic {name!r}",
                            hint="learn them from a capture that has Metadata responses (--topic-ids), or restrict the versions "
                                 f"(api_version < {layout.low})"))
                    self.warn(f"approximate: no topic id known for {name!r}: {api_name(layout.api_key)} "
                              f"{layout.versions} requests match whatever topic they name")
                    return tests
                if len(topic_id) != 16:
                    raise self.refuse(f"the topic id for {name!r} is {len(topic_id)} bytes, not 16",
                                      "give topic ids as 16-byte UUIDs")
                tests += bytes_tests(bytes(topic_id), entry, hops, "topic_id", f"{name!r}")
            else:
                data = name.encode()
                if layout.flexible:
                    if len(data) + 1 > 0x7F:
                        raise Unsupported(node, "a topic name of 127 bytes or more has a multi-byte length the "
                                                "compiler does not place")
                    prefix = bytes([len(data) + 1])
                else:
                    prefix = len(data).to_bytes(2, "big")
                tests += bytes_tests(prefix + data, entry, hops, "topic", f"{name!r}")
            self.warn(f"`{node}` tests the first topic a request names; a request that names {name!r} after "
                      "another topic is not matched")
        return tests


__all__ = ["Candidate", "ClientShape", "MAX_RULES_PER_SPEC", "Placement", "header_at", "merge_connmark"]
