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
