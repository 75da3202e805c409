"""The SSH guard (rules/guard.py): SSH_CONNECTION read strictly; unknown means "port 22 from anywhere"."""

from __future__ import annotations

import pytest

from kshock.rules.compile import compile_rules
from kshock.rules.guard import cuts_ssh, ssh_session, warning
from kshock.rules.spec import Action, RuleSpec, Target

MALFORMED = ["1.2.3.4 abc 5.6.7.8 22", "1.2.3.4 99999 5.6.7.8 22", "1.2.3.4 -1 5.6.7.8 22", "1.2.3.4 0 5.6.7.8 22",
             "1.2.3.4 5000 5.6.7.8", "1.2.3.4 5000 5.6.7.8 22 extra", "::1 5000 ::1 22",
             "fe80::1 5000 2001:db8::1 22", "1.2.3.4 5000 5.6.7.8 \u0662\u0662", "256.1.1.1 5000 5.6.7.8 22",
             "1.2.3 5000 5.6.7.8 22", "1.2.3.4 " + "9" * 5000 + " 5.6.7.8 22", "\x00 \n \t x"]


def drop(ports, host=None):
    spec = RuleSpec("g", None, Action("drop"), Target(ports=ports, host=host))
    return compile_rules([spec], "g", expires_at=None)


@pytest.mark.parametrize("value", MALFORMED)
def test_a_malformed_session_is_unknown_with_one_line_saying_so(value):
    session = ssh_session(value)
    assert session.client is None and session.server_port == 22 and session.problem
    text = warning(value)
    assert text and "\n" not in text and "port 22 from any address" in text
    # guarded as port 22 from anywhere, to any address of this host: never a traceback
    assert cuts_ssh(drop((22,)), value)
    assert cuts_ssh(drop((22,), host="192.0.2.7"), value)
    assert not cuts_ssh(drop((9092,)), value)


@pytest.mark.parametrize("value", [None, "", "   "])
def test_unset_is_unknown_without_a_warning(value):
    assert ssh_session(value).problem is None and warning(value) is None
    assert cuts_ssh(drop((22,), host="192.0.2.7"), value)


def test_a_known_session_is_asked_exactly():
    known = "203.0.113.9 51022 198.51.100.1 2222"
    assert ssh_session(known).server_port == 2222 and warning(known) is None
    assert cuts_ssh(drop((2222,)), known) and not cuts_ssh(drop((22,)), known)
    assert not cuts_ssh(drop((2222,), host="192.0.2.7"), known)  # another address than the session's


SESSION = "10.1.1.1 50000 10.1.1.2 22"


def _compiled(port, action, match=None, trigger=None, latch=False, direction="ingress"):
    from kshock.conditions.parse import parse_condition
    from kshock.rules.spec import Trigger

    spec = RuleSpec("g", parse_condition(match) if match else None, action,
                    Target(ports=(port,), direction=direction), trigger=trigger or Trigger(), latch=latch)
    return compile_rules([spec], "g", expires_at="2030-01-01T00:00:00")


@pytest.mark.parametrize("match", ["kind == response and size < 1000", "kind == request and size > 100",
                                   "kind == response", "api == Produce", 'client_id == "x"'])
@pytest.mark.parametrize("kind", ["drop", "reset", "stall"])
def test_payload_tests_are_taken_as_satisfiable(match, kind):
    """An encrypted SSH segment can hold any bytes: a rule that reads the payload may match it.
    (Found by review: `size < 1000` on responses passed, and the session lost every segment.)"""
    assert cuts_ssh(_compiled(22, Action(kind), match), SESSION)
    assert cuts_ssh(_compiled(22, Action(kind), match), None)
    assert not cuts_ssh(_compiled(9092, Action(kind), match), SESSION)
    assert not cuts_ssh(_compiled(9092, Action(kind), match), None)


@pytest.mark.parametrize("trigger", [("probability", 0.01, None), ("nth", None, 1000), ("once-per-connection", None, None)])
def test_triggers_and_latches_count_as_cutting(trigger):
    from kshock.rules.spec import Trigger

    mode, probability, every = trigger
    for latch in (False, True) if mode != "once-per-connection" else (False,):
        ruleset = _compiled(22, Action("drop"), "kind == response", Trigger(mode, probability, every), latch)
        assert cuts_ssh(ruleset, SESSION)
        assert not cuts_ssh(_compiled(9092, Action("drop"), "kind == response", Trigger(mode, probability, every),
                                      latch), SESSION)
    assert cuts_ssh(_compiled(22, Action("loss", percent=1)), SESSION)


@pytest.mark.parametrize("action", [Action("rate", rate_bit_s=1_000_000), Action("delay", delay_ms=100.0),
                                    Action("loss", percent=5.0)])
def test_traffic_control_on_the_session_cuts(action):
    """CLASSIFY into a shaping class throttles the session as surely as a drop cuts it."""
    assert cuts_ssh(_compiled(22, action, "kind == response"), SESSION)
    assert cuts_ssh(_compiled(22, action, "kind == response"), None)
    assert not cuts_ssh(_compiled(9092, action, "kind == response"), SESSION)
    assert not cuts_ssh(_compiled(9092, action, "kind == response"), None)


def test_egress_on_port_22_leaves_an_incoming_session_alone():
    # this host is the session's server: its packets leave from port 22, not to it
    assert not cuts_ssh(_compiled(22, Action("drop"), direction="egress"), SESSION)
