"""compile_rules: golden iptables-restore text written by hand from the Kafka protocol spec,
CompileError messages in full, and the rule-set shape (chains, jumps, marks, tc plans).

Reading the golden u32 text: `32>>26&0x3C` is the TCP header length; `@N` then reads at
IP header (20) + TCP header + (N - 20), so `@24` is frame offset 4 (api_key, api_version),
`@32` frame offset 12 (client_id length), `@32>>16@K` frame offset K - 20 + len(client_id).

The tests of a u32 match come IHL guard first, then exact values before ranges (the frame-start
guard's size and API ranges every Kafka frame passes), fewer hops first, otherwise in the order
the compiler wrote them (render.u32_text: a packet that is not the rule's fails sooner).
"""

from __future__ import annotations

import pytest

from kshock.conditions import parse_condition
from kshock.rules.compile import CompileError, compile_rules
from kshock.rules.explain import explain, explain_condition
from kshock.rules.render import render_restore
from kshock.rules.spec import Action, RuleSpec, Target, Trigger

STOP = "2030-01-01T00:00:00"
T = f"-m time --datestop {STOP}"
IHL = "0>>24=0x45"  # IHL 5
SIZE = "32>>26&0x3C@20=0xA:0x6400000"  # size 10 bytes .. 100 MiB
GUARD = f"{IHL} && {SIZE}"  # (where no exact test comes before the size)
# Every rule of these chains reads the payload, so the jump lets only segments with payload in:
# IHL*4, then the TCP data offset*4, then any first payload word (4 bytes must be readable).
PAYLOAD = '-m u32 --u32 "0>>22&0x3C@12>>26&0x3C@0=0x0:0xFFFFFFFF"'
JUMP = f"-A INPUT -p tcp -m tcp --dport 9092 {PAYLOAD} {T} -m comment --comment kshock:t -j KSHOCK-t"


def compile_one(text: str | None, action: Action = Action("drop"), **more) -> str:
    spec = RuleSpec("r1", parse_condition(text) if text else None, action, **more)
    return render_restore(compile_rules([spec], "t", expires_at=STOP, mark_base=0))


def test_api_produce():
    # api_key int16 at frame offset 4 == 0; api_version (offset 6) only guarded to 0..127.
    assert compile_one("api == Produce") == "\n".join([
        "*filter",
        ":KSHOCK-t - [0:0]",
        f'-A KSHOCK-t -p tcp -m u32 --u32 "{IHL} && 32>>26&0x3C@24>>16=0x0 && {SIZE} && 32>>26&0x3C@24&0xFFFF=0x0:0x7F" '
        f"{T} -m comment --comment kshock:t/r1 -j DROP",
        JUMP,
        "COMMIT", ""])


def test_api_and_version_share_one_word():
    # JoinGroup = 11, SyncGroup = 14; versions 3..5 -> (key << 16 | version) ranges.
    assert compile_one("api in {JoinGroup, SyncGroup} and api_version >= 3 and api_version <= 5") == "\n".join([
        "*filter",
        ":KSHOCK-t - [0:0]",
        f'-A KSHOCK-t -p tcp -m u32 --u32 "{GUARD} && 32>>26&0x3C@24=0xB0003:0xB0005,0xE0003:0xE0005" '
        f"{T} -m comment --comment kshock:t/r1 -j DROP",
        JUMP,
        "COMMIT", ""])


def test_client_id_is_a_two_step_program():
    # "rdk-gzip" = 72 64 6b 2d 67 7a 69 70; with its int16 length 8 at offset 12:
    # 00 08 72 64 | 6b 2d 67 7a | (67 7a) 69 70 — the last word overlaps so no read passes the id.
    client = "32>>26&0x3C@32=0x87264 && 32>>26&0x3C@36=0x6B2D677A && 32>>26&0x3C@38=0x677A6970"
    any_api = "32>>26&0x3C@24>>16=0x0:0x3FF && 32>>26&0x3C@24&0xFFFF=0x0:0x7F"
    produce = "32>>26&0x3C@24>>16=0x0"
    version = "32>>26&0x3C@24&0xFFFF=0x0:0x7F"
    assert compile_one('api == Produce and client_id == "rdk-gzip"') == "\n".join([
        "*filter",
        ":KSHOCK-t - [0:0]",
        # 1. the identifying request marks its connection (mark_base 0: bit 8)
        f'-A KSHOCK-t -p tcp -m u32 --u32 "{IHL} && {client} && {SIZE} && {any_api}" {T} '
        '-m comment --comment kshock:t/identity:0x100 -j CONNMARK --set-xmark 0x100/0x100',
        # 2. a Produce request carrying the id
        f'-A KSHOCK-t -p tcp -m u32 --u32 "{IHL} && {produce} && {client} && {SIZE} && {version}" {T} '
        "-m comment --comment kshock:t/r1 -j DROP",
        # 3. a Produce request with a null client id (length -1) on a marked connection
        f'-A KSHOCK-t -p tcp -m connmark --mark 0x100/0x100 -m u32 --u32 "{IHL} && {produce} && '
        f'32>>26&0x3C@32>>16=0xFFFF && {SIZE} && {version}" {T} -m comment --comment kshock:t/r1 -j DROP',
        JUMP,
        "COMMIT", ""])


def test_fetch_v12_topic_after_the_client_id():
    # Fetch v12 (flexible): header ends with the client id and a tagged-fields byte (0x00);
    # body: replica_id, max_wait_ms, min_bytes, max_bytes (4 each), isolation_level (1),
    # session_id, session_epoch (4 each) = 25 bytes; topics: uvarint count+1; name: uvarint
    # len+1 ("orders": 0x07) then the bytes. With client id "kp-audit" (8 bytes):
    # tagged byte at 22, topics count at 48, name at 49: 07 6f 72 64 | 65 72 73 (overlap 64 65 72 73).
    client = "32>>26&0x3C@32=0x86B70 && 32>>26&0x3C@36=0x2D617564 && 32>>26&0x3C@38=0x75646974"
    text = compile_one('api == Fetch and api_version == 12 and client_id == "kp-audit" and topic == "orders"')
    rules = [line for line in text.splitlines() if "kshock:t/r1" in line]
    assert rules[0] == (
        f'-A KSHOCK-t -p tcp -m u32 --u32 "{IHL} && 32>>26&0x3C@24=0x1000C && {client} && '
        '32>>26&0x3C@42>>24=0x0 && 32>>26&0x3C@69=0x76F7264 && 32>>26&0x3C@72=0x64657273 && '
        f'{SIZE} && 32>>26&0x3C@68>>24=0x2:0x7F" {T} -m comment --comment kshock:t/r1 -j DROP')


def test_produce_v9_topic_hops_over_client_id_and_transactional_id():
    # Produce v9-12 (flexible): after the header, transactional_id (compact nullable: 0x00 =
    # null, else len+1), acks (2), timeout_ms (4), topics count, name. Any client id: hop over
    # its int16 length at 12; any transactional id: a null family and a hop family.
    text = compile_one('api == Produce and api_version in {9, 10, 11, 12} and topic == "orders"')
    rules = [line for line in text.splitlines() if "kshock:t/r1" in line]
    head = f'-A KSHOCK-t -p tcp -m u32 --u32 "{IHL} && '
    versions = f"{SIZE} && 32>>26&0x3C@24=0x9:0xC"
    assert rules == [
        # client id present, transactional id null: tagged byte at 14+n, txn at 15+n, count at 22+n
        head + "32>>26&0x3C@32>>16@34>>24=0x0 && 32>>26&0x3C@32>>16@35>>24=0x0 && 32>>26&0x3C@32>>16@43=0x76F7264 && "
        f"32>>26&0x3C@32>>16@46=0x64657273 && {versions} && 32>>26&0x3C@32>>16=0x0:0x7FFF && "
        f'32>>26&0x3C@32>>16@42>>24=0x2:0x7F" {T} -m comment --comment kshock:t/r1 -j DROP',
        # client id present, transactional id of length len+1 = L: count at 22+n+(L-1)+1
        head + "32>>26&0x3C@32>>16@34>>24=0x0 && 32>>26&0x3C@32>>16@35>>24@42=0x76F7264 && "
        f"32>>26&0x3C@32>>16@35>>24@45=0x64657273 && {versions} && 32>>26&0x3C@32>>16=0x0:0x7FFF && "
        "32>>26&0x3C@32>>16@35>>24=0x1:0x7F && 32>>26&0x3C@32>>16@35>>24@41>>24=0x2:0x7F\" "
        f"{T} -m comment --comment kshock:t/r1 -j DROP",
        # null client id (0xFFFF): everything at fixed offsets
        head + "32>>26&0x3C@32>>16=0xFFFF && 32>>26&0x3C@34>>24=0x0 && 32>>26&0x3C@35>>24=0x0 && "
        f"32>>26&0x3C@43=0x76F7264 && 32>>26&0x3C@46=0x64657273 && {versions} && 32>>26&0x3C@42>>24=0x2:0x7F\" "
        f"{T} -m comment --comment kshock:t/r1 -j DROP",
        head + "32>>26&0x3C@32>>16=0xFFFF && 32>>26&0x3C@34>>24=0x0 && 32>>26&0x3C@35>>24@42=0x76F7264 && "
        f"32>>26&0x3C@35>>24@45=0x64657273 && {versions} && 32>>26&0x3C@35>>24=0x1:0x7F && "
        f"32>>26&0x3C@35>>24@41>>24=0x2:0x7F\" {T} -m comment --comment kshock:t/r1 -j DROP",
    ]


def test_syn_only_stall():
    assert compile_one(None, Action("stall")) == "\n".join([
        "*filter",
        ":KSHOCK-t - [0:0]",
        f'-A KSHOCK-t -p tcp -m u32 --u32 "0>>22&0x3C@12>>26&0x3C@0=0x0:0xFFFFFFFF" {T} '
        "-m comment --comment kshock:t/r1 -j DROP",
        f"-A KSHOCK-t -p tcp -m tcp --tcp-flags FIN FIN {T} -m comment --comment kshock:t/r1 -j DROP",
        JUMP.replace(f"{PAYLOAD} ", ""),  # the FIN rule reads no payload: every segment enters
        "COMMIT", ""])


def test_latch_marks_then_acts_on_the_connection():
    text = compile_one("api == Heartbeat", latch=True)
    assert text.splitlines()[2:4] == [
        f'-A KSHOCK-t -p tcp -m u32 --u32 "{IHL} && 32>>26&0x3C@24>>16=0xC && {SIZE} && 32>>26&0x3C@24&0xFFFF=0x0:0x7F" '
        f"{T} -m comment --comment kshock:t/r1 -j CONNMARK --set-xmark 0x100/0x100",
        f"-A KSHOCK-t -p tcp -m connmark --mark 0x100/0x100 {T} -m comment --comment kshock:t/r1 -j DROP",
    ]


def test_once_per_connection_and_nth_use_one_counter_chain():
    once = compile_one("api == Produce", trigger=Trigger("once-per-connection")).splitlines()
    assert once[1:3] == [":KSHOCK-t - [0:0]", ":KSHOCK-t-0t - [0:0]"]
    assert once[4:7] == [
        f"-A KSHOCK-t-0t -p tcp -m connmark --mark 0x100/0x100 {T} -m comment --comment kshock:t/r1 -j RETURN",
        f"-A KSHOCK-t-0t -p tcp {T} -m comment --comment kshock:t/r1 -j CONNMARK --set-xmark 0x100/0x100",
        f"-A KSHOCK-t-0t -p tcp {T} -m comment --comment kshock:t/r1 -j DROP",
    ]
    nth = compile_one("api == Produce", trigger=Trigger("nth", every=5)).splitlines()
    assert nth[4] == (f"-A KSHOCK-t-0t -p tcp -m statistic --mode nth --every 5 --packet 0 {T} "
                      "-m comment --comment kshock:t/r1 -j DROP")


def test_reset_on_responses_and_loss_with_probability():
    text = compile_one("kind == response and correlation_id == 7", Action("reset"))
    assert text.splitlines()[1:4] == [
        ":KSHOCK-t-r - [0:0]",
        '-A KSHOCK-t-r -p tcp -m u32 --u32 "0>>24=0x45 && 32>>26&0x3C@24=0x7 && 32>>26&0x3C@20=0x4:0x6400000" '
        f"{T} -m comment --comment kshock:t/r1 -j REJECT --reject-with tcp-reset",
        f"-A OUTPUT -p tcp -m tcp --sport 9092 {PAYLOAD} {T} -m comment --comment kshock:t -j KSHOCK-t-r",
    ]
    loss = compile_one("api == Produce", Action("loss", percent=30), trigger=Trigger("probability", probability=0.5))
    assert "-m statistic --mode random --probability 0.15 " in loss


def test_negated_client_id_is_complement_ranges():
    # client_id != "ab": 00 02 61 62 differs (any other non-null length or bytes), guarded.
    text = compile_one('client_id != "ab"')
    assert '32>>26&0x3C@32=0x0:0x26161,0x26163:0xFFFEFFFF"' in text


def test_tc_delay_classifies_packets_in_mangle_and_plans_tc():
    spec = RuleSpec("slow", parse_condition("api == Fetch"), Action("delay", delay_ms=200),
                    Target(direction="egress", interface="eth0"))
    ruleset = compile_rules([spec], "t", expires_at=STOP)
    assert ruleset.table == "mangle"
    (plan,) = ruleset.traffic_control
    assert (plan.kind, plan.delay_ms, plan.hook, plan.interface) == ("delay", 200, "OUTPUT", "eth0")
    # kshock's root htb is 4b53:; the minor is <name hash + 1><rule index>: crc32("t") % 254 + 1 = 0x3b.
    assert plan.classid == 0x4B533B00
    classify_chain = ruleset.chains[-1]
    assert classify_chain.name == "KSHOCK-t-0c"
    assert [r.target for r in classify_chain.rules] == ["CLASSIFY", "ACCEPT"]
    assert classify_chain.rules[0].target_args == ("--set-class", "4b53:3b00")
    assert all(r.datestop == STOP for r in classify_chain.rules)  # the kernel ends the shaping, too
    assert ruleset.jumps[0].builtin == "OUTPUT" and ruleset.jumps[0].rule.out_interface == "eth0"
    text = render_restore(ruleset)
    assert text.splitlines()[0] == "*mangle"
    assert (f"-A KSHOCK-t-0c -p tcp {T} -m comment --comment kshock:t/slow -j CLASSIFY --set-class 4b53:3b00"
            in text.splitlines())


def test_tc_rules_get_one_class_each():
    specs = [RuleSpec(f"r{i}", None, Action("rate", rate_bit_s=1_000_000 * (i + 1)), Target(direction="egress"))
             for i in range(3)]
    ruleset = compile_rules(specs, "shape", expires_at=STOP)
    assert [plan.classid & 0xFF for plan in ruleset.traffic_control] == [0, 1, 2]
    assert len({plan.classid >> 8 for plan in ruleset.traffic_control}) == 1
    assert all(plan.classid >> 16 == 0x4B53 and plan.interface is None for plan in ruleset.traffic_control)


def test_every_rule_has_comment_and_expiry_and_chain_names_fit():
    specs = [RuleSpec(f"rule-{i}", parse_condition(text), Action("drop"), latch=i == 1)
             for i, text in enumerate(['client_id == "a"', "api == Fetch", 'api == Produce and topic == "x" '
                                       "and api_version < 13"])]
    ruleset = compile_rules(specs, "a-very-long-rule-set-name-indeed", expires_at=STOP)
    for chain in ruleset.chains:
        assert len(chain.name) <= 28 and chain.name.startswith("KSHOCK-a-very-long")
        for rule in chain.rules:
            assert rule.datestop == STOP and rule.comment.startswith("kshock:a-very-long-rule-set-name-indeed/")
    assert all(j.rule.datestop == STOP for j in ruleset.jumps)
    assert len(set(ruleset.chain_names)) == len(ruleset.chain_names)


def test_identity_bits_are_shared_and_listed():
    specs = [RuleSpec("a", parse_condition('client_id == "x" and api == Fetch'), Action("drop")),
             RuleSpec("b", parse_condition('client_id == "x" and api == Produce'), Action("drop"), latch=True)]
    ruleset = compile_rules(specs, "t", expires_at=None, mark_base=3)
    assert ruleset.connmark_mask == 0x800 | 0x1000  # one identity ("x"), one latch (rule b)


def _client_rule(name: str, client: str, **more) -> RuleSpec:
    return RuleSpec(name, parse_condition(f'api == Produce and client_id == "{client}"'), Action("drop"), **more)


def _set_bits(ruleset) -> set[int]:
    """The connmark bits the rule set's rules really set and test (read from the rules, not the mask)."""
    bits = set()
    for chain in ruleset.chains:
        for rule in chain.rules:
            if rule.target == "CONNMARK":
                bits.add(int(rule.target_args[1].split("/")[1], 16))
            if rule.connmark:
                bits.add(rule.connmark[1])
    return bits


def test_names_that_hash_alike_get_different_bits_when_the_first_ones_are_taken():
    from kshock.rules.kernel import Marks

    bob = compile_rules([_client_rule("fh", "bob")], "fh", expires_at=None)
    alone = compile_rules([_client_rule("crosstalk-34", "alice")], "crosstalk-34", expires_at=None)
    assert bob.connmark_mask == alone.connmark_mask  # the collision of issue 10: crc32 % 16 is 4 for both
    alice = compile_rules([_client_rule("crosstalk-34", "alice")], "crosstalk-34", expires_at=None, taken=bob.marks)
    assert alice.connmark_mask and not alice.connmark_mask & bob.connmark_mask
    assert _set_bits(alice) == {alice.connmark_mask} and _set_bits(bob) == {bob.connmark_mask}
    # bits outside kshock's space held by others do not count against it; bits inside do
    wide = compile_rules([_client_rule("fh", "bob")], "fh", expires_at=None, taken=Marks(0xFF0000FF | 0x1000))
    assert wide.connmark_mask & 0x00FFFF00 == wide.connmark_mask and not wide.connmark_mask & (0xFF0000FF | 0x1000)


def test_every_bit_of_a_rule_set_avoids_the_taken_ones_and_none_is_shared_inside_it():
    from kshock.rules.kernel import Marks

    specs = [_client_rule(f"r{i}", f"c{i}") for i in range(5)] + [_client_rule("l", "z", latch=True),
                                                                  _client_rule("o", "y", trigger=Trigger("once-per-connection"))]
    taken = Marks(0x00A05500)  # 6 of the 16 held
    ruleset = compile_rules(specs, "set", expires_at=None, taken=taken)
    bits = _set_bits(ruleset)
    assert len(bits) == 9 and sum(bits) == ruleset.connmark_mask  # 7 identities, a latch, a once-bit
    assert not ruleset.connmark_mask & taken.connmark


def test_too_few_free_bits_is_a_clear_refusal():
    from kshock.rules.compile import MarksExhausted
    from kshock.rules.kernel import Marks

    specs = [_client_rule("a", "x"), _client_rule("b", "y")]
    with pytest.raises(MarksExhausted) as caught:
        compile_rules(specs, "two", expires_at=None, taken=Marks(0x00FFFF00 & ~0x100))  # one bit left
    assert str(caught.value) == ("rule set 'two' needs 2 connection-mark bit(s), and other faults and rules of the "
                                 "namespace hold 15 of the 16 (0xfffe00), leaving 1 — revert a fault that matches "
                                 "client ids, latches or triggers once per connection, or wait for one to expire")
    assert compile_rules(specs[:1], "one", expires_at=None, taken=Marks(0x00FFFF00 & ~0x100)).connmark_mask == 0x100


def test_tc_class_slots_avoid_the_taken_ones():
    from kshock.rules.kernel import Marks

    spec = RuleSpec("slow", None, Action("rate", rate_bit_s=1_000_000), Target(direction="egress"))
    first = compile_rules([spec], "slow", expires_at=None)
    (slot,) = first.marks.tc_slots
    again = compile_rules([spec], "slow", expires_at=None, taken=first.marks)
    assert again.marks.tc_slots and not again.marks.tc_slots & first.marks.tc_slots
    assert all((c.classid >> 8) & 0xFF != slot for c in again.traffic_control)


# -- errors, in full ---------------------------------------------------------------------------

def error_of(text: str, **more) -> CompileError:
    with pytest.raises(CompileError) as info:
        compile_one(text, **more)
    return info.value


def test_error_regex():
    error = error_of('api == Produce and client_id matches "rdk.*"')
    assert str(error) == ("rule 'r1': a regular expression test on client_id cannot compile: the kernel compares "
                          'whole fields at known offsets (characters 20-44) — compare the whole value: '
                          'client_id == "..."')
    assert error.span == (19, 44) and error.part == 'client_id matches "rdk.*"'


def test_error_record_content():
    error = error_of('api == Produce and value contains "x"')
    assert str(error) == ("rule 'r1': `value` is not visible to the kernel: record values sit inside record batches, "
                          "often compressed (characters 20-37) — or set approximate: true to compile a wider rule "
                          "(with a warning)")


def test_error_topic_without_api():
    assert str(error_of('topic == "x"')) == (
        "rule 'r1': `topic == \"x\"` needs the API: the kernel finds topic at a known place only in Produce, Fetch, "
        "ListOffsets, Metadata requests (characters 1-12) — add the API, e.g. `api == Produce and topic == \"x\"`")


def test_error_response_fields():
    assert str(error_of("kind == response and api == Produce")) == (
        "rule 'r1': `api == Produce` cannot compile for responses: a response carries only its size and correlation "
        "id, not the request's api, version or body (characters 22-35) — drop kind == response to act on the "
        "requests")


def test_error_topic_id_unknown():
    assert str(error_of('api == Fetch and topic == "payments"')) == (
        "rule 'r1': Fetch v13-14 names topics by id, and no id is known for topic 'payments' (characters 18-36) "
        "— learn them from a capture that has Metadata responses (--topic-ids), or restrict the versions (api_version < 13)")


def test_error_never_matches():
    assert str(error_of("api == Produce and api == Fetch")) == (
        "rule 'r1': the condition `api == Produce and api == Fetch` can never match a request — check for "
        "contradictions such as api == Produce and api == Fetch")


def test_error_tc_on_arriving_requests():
    assert str(error_of("api == Produce", action=Action("delay", delay_ms=200))) == (
        "rule 'r1': delay 200ms on requests arriving at this host cannot be shaped: tc acts on packets as they "
        "leave a device — load it where the packets leave: direction: egress on the client's host (requests), "
        "ingress for responses leaving the broker, or forward on a router")


def test_error_mixed_tables():
    specs = [RuleSpec("d", None, Action("delay", delay_ms=5), Target(direction="egress")),
             RuleSpec("x", None, Action("drop"))]
    with pytest.raises(CompileError) as info:
        compile_rules(specs, "t", expires_at=None)
    assert str(info.value) == ("rule 'd' (delay 5ms) is a traffic-control fault and rule 'x' a packet-filter one; "
                               "a rule set holds one kind — put them in separate rule files")


# -- approximate ---------------------------------------------------------------------------------

def test_approximate_widens_with_a_warning_that_says_what():
    spec = RuleSpec("r1", parse_condition('api == Produce and header["trace"] == "1"'), Action("drop"),
                    approximate=True)
    ruleset = compile_rules([spec], "t", expires_at=None)
    assert ruleset.warnings == (
        "rule 'r1': approximate: `header[\"trace\"] == \"1\"` dropped: frames are matched whatever their header "
        "(`header` is not visible to the kernel: record headers sit inside record batches, often compressed)",)
    exact = compile_rules([RuleSpec("r1", parse_condition("api == Produce"), Action("drop"))], "t", expires_at=None)
    assert ruleset.chains == exact.chains


def test_approximate_topic_without_id():
    spec = RuleSpec("r1", parse_condition('api == Fetch and topic == "p"'), Action("drop"), approximate=True)
    ruleset = compile_rules([spec], "t", expires_at=None)
    assert "rule 'r1': approximate: no topic id known for 'p': Fetch v13-14 requests match whatever topic they name" \
        in ruleset.warnings


# -- explain ---------------------------------------------------------------------------------------

def test_explain_names_fields_offsets_and_versions():
    text = explain_condition('api == Fetch and api_version == 12 and topic == "orders"')
    assert "frame bytes 4-7: api_key, api_version in 0x1000c [Fetch v12]" in text
    assert "frame byte 40 + len(client_id): topics count in 0x2-0x7f" in text
    assert "frame bytes 41-44 + len(client_id): topic in 0x76f7264 (.ord) ['orders']" in text
    assert "frame bytes 12-13: client_id in 0xffff [null (-1)]" in text
    latched = explain(compile_rules([RuleSpec("r", parse_condition('client_id == "a"'), Action("drop"),
                                              latch=True)], "t", expires_at=None))
    assert "connection mark bit" in latched and "identity: client id length 1 and 'a'" in latched
