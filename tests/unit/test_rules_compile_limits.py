"""What cannot work in the kernel is refused when compiling, with the limit in the message: numbers
outside their field's wire width (`src.port == 70000` used to compile and fail at apply), client ids
longer than Kafka's int16 length, and rules over the size iptables-nft keeps (a 550-byte client id
loaded as an EMPTY rule: see kernel.U32_MAX_MATCHES and tests/integration/test_kernel_rule_size.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kshock.cli import main
from kshock.conditions import parse_condition
from kshock.rules.compile import CompileError, compile_rules
from kshock.rules.kernel import U32_MAX_MATCHES, u32_matches
from kshock.rules.spec import Action, RuleSpec, Trigger

TOO_BIG = ("needs a kernel rule of {n} u32 matches, and iptables keeps at most 14 in one rule (over about 32 KB of "
           "match data a rule loads empty) — shorten the long value: a client id, topic or transactional id of at "
           "most about 490 bytes fits")


def _compile(condition: str, **more):
    spec = RuleSpec("r", parse_condition(condition), Action(more.pop("action", "drop")), **more)
    return compile_rules([spec], "lim", expires_at="2037-12-31T00:00:00")


def _largest(ruleset) -> int:
    return max(u32_matches(rule) for chain in ruleset.chains for rule in chain.rules)


def test_out_of_range_numbers_are_refused_at_compile(capsys):
    assert main(["compile", "--match", "src.port == 70000", "--action", "drop"]) == 2
    assert capsys.readouterr().err == """\
kshock: <command line>:3:22: match: 70000 is out of range for src.port — src.port is a TCP port: 0 to 65535
    match: src.port == 70000
                       ^^^^^
"""
    assert main(["compile", "--match", "api == Produce and acks == 40000", "--action", "drop"]) == 2
    assert "40000 is out of range for acks — acks is an int16: -32768 to 32767" in capsys.readouterr().err


def test_a_32768_byte_client_id_is_refused_with_the_real_limit(capsys):
    assert main(["compile", "--match", 'client_id == "' + "c" * 32768 + '"', "--action", "drop"]) == 2
    first = capsys.readouterr().err.split("\n")[0]
    assert first == ("kshock: <command line>:3:23: match: client_id is at most 32767 bytes on the wire (an int16 "
                     "length), and this one is 32768 — no Kafka frame carries a longer client_id")


def test_a_rule_over_the_kernel_size_is_refused_with_the_limit(capsys):
    ruleset = _compile('api == Produce and client_id == "' + "a" * 490 + '"')
    assert _largest(ruleset) == U32_MAX_MATCHES == 14
    with pytest.raises(CompileError) as caught:
        _compile('api == Produce and client_id == "' + "a" * 491 + '"')
    assert str(caught.value) == "rule 'r' " + TOO_BIG.format(n=15)
    with pytest.raises(CompileError) as caught:
        _compile('api == Produce and api_version < 9 and topic == "' + "t" * 600 + '"')
    assert str(caught.value) == "rule 'r' " + TOO_BIG.format(n=18)
    assert main(["compile", "--match", 'client_id == "' + "a" * 550 + '"', "--action", "drop"]) == 2
    assert capsys.readouterr().err == "kshock: rule 'adhoc' " + TOO_BIG.format(n=16) + "\n"


@settings(max_examples=60, deadline=None)
@given(length=st.integers(0, 700), negate=st.booleans(), topic=st.integers(0, 300),
       trigger=st.sampled_from([Trigger(), Trigger("once-per-connection"), Trigger("probability", probability=0.5)]),
       latch=st.booleans())
def test_every_kernel_rule_compiled_fits_the_kernel(length, negate, topic, trigger, latch):
    client = f'client_id {"!=" if negate else "=="} "{"x" * length}"'
    condition = f'api == Produce and api_version < 9 and {client}' + (f' and topic == "{"t" * topic}"' if topic else "")
    try:
        ruleset = _compile(condition, trigger=trigger, latch=latch and trigger.mode != "once-per-connection")
    except CompileError as error:
        # the size of a rule, or their number (client_id != "long" differs word by word: a rule each)
        assert "u32 matches, and iptables keeps at most 14 in one rule" in str(error) or \
            "kernel rules — simplify the condition" in str(error), str(error)
        return
    assert _largest(ruleset) <= U32_MAX_MATCHES
