"""PURE: RuleSpecs -> a RuleSet, or a CompileError naming the part of a condition that cannot compile.

The kernel sees one packet at a time, so a condition compiles to tests on the bytes of a
segment that *starts* a Kafka frame (the frame's length prefix is the first payload byte).
A frame that starts in the middle of a segment is invisible to these rules; the connection
latch (`latch: true`) is the answer to that: once one packet of a connection matches, every
later packet of it gets the action.

How a condition becomes rules (this module drives; the steps live beside it):
- Negations are pushed down to the tests and the condition is expanded into alternatives
  (disjunctive normal form, normal_form.py); each alternative becomes one or more rules, first
  match wins. classify.py sorts an alternative's tests by the FIELDS table's kernel column (how
  the kernel can find each field), placement.py puts its tests on the wire (header, client-id
  and transactional-id families, body layouts), ranges.py holds the integer value sets, u32.py
  builds the word tests, chains.py names the chains and picks the built-in hooks.
- Direction: a condition about requests (every field but `kind == response`, `size` and
  `correlation_id` is a request field) compiles to the client -> broker direction only
  (destination port in the target's ports). `api == Produce` in `kshock decode --filter` also
  selects the paired responses; the kernel cannot, since a response carries no api key.
  `kind == response` compiles to the broker -> client direction (source port in the ports).
- Header fields at fixed offsets (size, api_key, api_version, correlation_id, client-id
  length and bytes) are `-m u32` tests; `api` and `api_version` share the word at offset 4.
  Strings are tested a word at a time; the last word overlaps the one before it so no test
  reads past the field (a field shorter than 4 bytes is masked instead).
- Body fields (topic, acks, transactional_id) are placed with kshock.wire.layout's table, one
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

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from kshock.conditions import FIELDS
from kshock.errors import UserError
from kshock.rules.audit import RULE_NAME
from kshock.rules.chains import (
    CHAIN_MAX,
    class_chain,
    dispatch,
    group_chains,
    hooks,
    host_match,
    short_name,
    tc_hook,
    trigger_chain,
)
from kshock.rules.classify import Unsupported, classify
from kshock.rules.kernel import (
    U32_MAX_MATCHES,
    Chain,
    Jump,
    KernelRule,
    Marks,
    RuleSet,
    TrafficControl,
    U32Test,
    u32_matches,
)
from kshock.rules.normal_form import MAX_ALTERNATIVES, Lit, TooManyAlternatives, dnf, expand
from kshock.rules.placement import MAX_RULES_PER_SPEC, Candidate, Placement, header_at
from kshock.rules.spec import RuleSpec, Target
from kshock.rules.u32 import MAX_FRAME, MIN_REQUEST, api_tests, client_differs, client_equal, match_groups

TC_ACTIONS = ("rate", "delay", "duplicate", "corrupt", "reorder")
CONNMARK_SPACE = 0x00FFFF00
CONNMARK_BITS = 16
TC_ROOT_MAJOR = 0x4B53  # "KS": the handle (4b53:) of kshock's root htb; its classes are 4b53:<minor>

# `in {...}` on these becomes one rule per value; `host`/`port` become their src./dst. fields.
_ONE_VALUE = tuple(row.name for row in FIELDS.values() if row.kernel.one_value_per_rule)
_EITHER_END = tuple(row.name for row in FIELDS.values() if row.kernel.either_end)


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


class _Compiler(Placement):
    """One rule set being compiled: its groups of chains, marks, tc plans and warnings."""

    def __init__(self, name: str, expires_at: str | None, topic_ids: Mapping[str, bytes], mark_base: int | None,
                 taken: Marks):
        self.name = name
        self.expires_at = expires_at
        self.topic_ids = dict(topic_ids)
        self.short = short_name(name)
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

    def error(self, problem: Unsupported) -> CompileError:
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

    def refuse(self, message: str, hint: str = "") -> CompileError:
        return CompileError(message, hint, rule=self.spec.name)

    # groups

    def group(self, target: Target) -> _Group:
        for group in self.groups:
            if group.target == target:
                return group
        group = _Group(target, *group_chains(self.short, len(self.groups)))
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

    def fits_kernel(self, spec: RuleSpec, candidates: list[Candidate], group: _Group) -> None:
        """Every kernel rule of the spec (and the identity rules its client ids need) small enough
        for the kernel to keep: see U32_MAX_MATCHES (a larger rule loads as an empty one)."""
        sizes = [len(match_groups(c.tests)) + (1 if c.payload else 0) for c in candidates]
        sizes += [u32_matches(rule) for rule in self.identity_rules(group)]
        worst = max(sizes, default=0)
        if worst > U32_MAX_MATCHES:
            raise CompileError(f"rule {spec.name!r} needs a kernel rule of {worst} u32 matches, and iptables keeps "
                               f"at most {U32_MAX_MATCHES} in one rule (over about 32 KB of match data a rule "
                               "loads empty)", "shorten the long value: a client id, topic or transactional id of "
                               "at most about 490 bytes fits", rule=spec.name)

    def candidates(self, spec: RuleSpec, group: _Group) -> list[Candidate]:
        if spec.condition is None:
            return [Candidate("request", payload=True)]
        try:
            terms = dnf(expand(spec.condition, _ONE_VALUE, _EITHER_END))
        except TooManyAlternatives:
            raise CompileError(f"rule {spec.name!r}: the condition expands into more than {MAX_ALTERNATIVES} "
                               "alternatives", "simplify it: fewer `or`s inside `and`s", rule=spec.name) from None
        out: list[Candidate] = []
        for term in terms:
            out += self.term(term, group)
        if not out:
            raise CompileError(f"rule {spec.name!r}: the condition `{spec.condition}` can never match a request",
                               "check for contradictions such as api == Produce and api == Fetch", rule=spec.name)
        return list(dict.fromkeys(out))

    def term(self, lits: list[Lit], group: _Group) -> list[Candidate]:
        while True:
            try:
                return self.term_exact(lits, group)
            except Unsupported as problem:
                if not self.spec.approximate or problem.node is None:
                    raise self.error(problem) from None
                self.warn(f"approximate: {problem.widening or 'a test dropped'} ({problem.reason})")
                lits = [lit for lit in lits if lit.node is not problem.node]

    def term_exact(self, lits: list[Lit], group: _Group) -> list[Candidate]:
        needs = classify(lits)
        if needs.empty:
            return []
        kinds = needs.kinds if needs.kind_given else {"request"}
        out = []
        for direction in ("request", "response"):
            if direction in kinds:
                out += self.direction(direction, needs, lits, group)
        return out

    # actions

    def emit(self, index: int, spec: RuleSpec, group: _Group, candidates: list[Candidate]) -> None:
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
                if "INPUT" in hooks(spec.target.direction, direction):
                    raise CompileError(
                        f"rule {spec.name!r}: {action} on {direction}s arriving at this host cannot be shaped: tc "
                        "acts on packets as they leave a device",
                        "load it where the packets leave: direction: egress on the client's host (requests), "
                        "ingress for responses leaving the broker, or forward on a router", rule=spec.name)
        final_target, final_args, final_stat = self.final(index, spec, group)

        def rule(cand: Candidate | None, target: str, args=(), stat=(), **more) -> KernelRule:
            base = {}
            if cand is not None:
                base = dict(source=cand.source, destination=cand.destination, source_port=cand.source_port,
                            destination_port=cand.destination_port, payload_required=cand.payload,
                            u32=match_groups(cand.tests), connmark=cand.connmark)
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
            sub = trigger_chain(self.short, index)
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
            chain = class_chain(self.short, index)
            kw = dict(datestop=self.expires_at, comment=f"kshock:{self.name}/{spec.name}")
            self.extra_chains.append(Chain(chain, (
                KernelRule("CLASSIFY", ("--set-class", f"{classid >> 16:x}:{classid & 0xFFFF:x}"), **kw),
                KernelRule("ACCEPT", **kw))))
            action = spec.action
            self.tc.append(TrafficControl(spec.name, classid, kind, tc_hook(spec.target.direction),
                                          spec.target.interface, action.percent, action.rate_bit_s, action.delay_ms,
                                          action.jitter_ms))
            return chain, (), ()
        raise CompileError(f"rule {spec.name!r}: unknown action {kind!r}", rule=spec.name)

    # identity rules and the rule set

    def identity_rules(self, group: _Group) -> list[KernelRule]:
        out = []
        kw = dict(datestop=self.expires_at)
        for key in group.identities:
            kind, value = key
            bit = self.identity_bits[key]
            alternatives = [client_equal(value)] if kind == "eq" else client_differs(value)
            guard = [U32Test(header_at("size"), ((MIN_REQUEST, MAX_FRAME),), field="size", note="frame-start guard")]
            guard += api_tests(None, None)
            for tests in alternatives:
                # The comment names the bit, never the client id: a user's string reaches
                # the kernel only as the u32 words above (issue 10: comments injected rules).
                out.append(KernelRule("CONNMARK", ("--set-xmark", f"0x{bit:x}/0x{bit:x}"),
                                      u32=match_groups(guard + tests),
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
                    rules, dispatched = dispatch(name, rules, self.expires_at, self.name)
                chains.append(Chain(name, tuple(rules)))
                chains += dispatched
                # When every rule of the chain reads the TCP payload, a segment without payload
                # (a bare ACK) can match none of them: test that once at the jump, so bare ACKs
                # never walk the chain (the cost an unaffected client pays for kshock's rules).
                payload_only = all(rule.u32 or rule.payload_required for rule in rules)
                for builtin in hooks(target.direction, direction):
                    for port in target.ports:
                        jump = KernelRule(
                            name,
                            destination_port=port if direction == "request" else None,
                            source_port=port if direction == "response" else None,
                            destination=host_match(target.host) if direction == "request" else None,
                            source=host_match(target.host) if direction == "response" else None,
                            in_interface=target.interface if builtin in ("INPUT", "FORWARD") else None,
                            out_interface=target.interface if builtin == "OUTPUT" else None,
                            payload_required=payload_only,
                            datestop=self.expires_at, comment=f"kshock:{self.name}")
                        jumps.append(Jump(builtin, jump))
        chains += self.extra_chains
        for chain in chains:
            if len(chain.name) > CHAIN_MAX:
                raise CompileError(f"chain name {chain.name} is longer than {CHAIN_MAX} characters",
                                   "use a shorter rule set name")
        mask = 0
        for bit in self.allotted:
            mask |= bit
        return RuleSet(self.name, tuple(chains), tuple(jumps), table="mangle" if tc else "filter",
                       expires_at=self.expires_at, warnings=tuple(self.warnings), traffic_control=tuple(self.tc),
                       connmark_mask=mask)


def _random(probability: float | None, stat: tuple) -> tuple:
    p = 1.0 if probability is None else probability
    if stat and stat[0] == "random":
        p *= float(stat[1])
    return ("random", f"{p:.6g}")


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
