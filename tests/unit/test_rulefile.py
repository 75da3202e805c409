"""Rule files: every error message in full (file:line: key: what is wrong — what to do, and a
caret for condition and YAML syntax errors), what a valid file turns into, and the shipped examples."""

from __future__ import annotations

from pathlib import Path

import pytest

from kshock.conditions import parse_condition
from kshock.errors import ExitStatus, UserError
from kshock.rules.rulefile import RuleFileError, parse_rule_file
from kshock.rules.spec import Action, RuleSpec, Target, Trigger

RULES_DIR = Path(__file__).resolve().parents[2] / "rules"

ERRORS = [
    ('yaml-indent',
     'rules:\n  - name: a\n   match: any\n',
     "f.yaml:3:4: YAML syntax: expected <block end>, but found '<block mapping start>' (while parsing a block collection at line 2) — fix the YAML syntax (indent with spaces; quote text that holds ': ' or '#')\n     match: any\n     ^"),
    ('yaml-unclosed',
     'rules: [\n',
     "f.yaml:1:9: YAML syntax: expected the node content, but found '<stream end>' (while parsing a flow node) — fix the YAML syntax (indent with spaces; quote text that holds ': ' or '#')\n  rules: [\n          ^"),
    ('yaml-tab',
     'rules:\n\t- name: a\n',
     "f.yaml:2:1: YAML syntax: found character '\\t' that cannot start any token (while scanning for the next token) — fix the YAML syntax (indent with spaces; quote text that holds ': ' or '#')\n  \t- name: a\n  ^"),
    ('empty',
     '',
     'f.yaml:1: rules: the file holds no rules — start it with `rules:` and a list of rules (see rules/*.yaml)'),
    ('only-comment',
     '# nothing here\n',
     'f.yaml:1: rules: the file holds no rules — start it with `rules:` and a list of rules (see rules/*.yaml)'),
    ('top-list',
     '- name: a\n',
     'f.yaml:1: rules: expected the file as a mapping (key: value), found a list — a rule file is a mapping with one key, `rules:`, holding a list of rules'),
    ('top-unknown',
     'rule:\n  - name: a\n',
     'f.yaml:1: rule: unknown key in the file — did you mean rules? (the file takes rules)'),
    ('top-unknown-far',
     'hello: 1\n',
     'f.yaml:1: hello: unknown key in the file — remove it (the file takes rules)'),
    ('top-duplicate',
     'rules:\n  - name: r1\n    match: any\n    action: drop\nrules: []\n',
     'f.yaml:5: rules: given twice (first at line 1) — keep one of them'),
    ('rules-missing',
     '{}\n',
     'f.yaml:1: rules: missing — start the file with `rules:` and a list of rules'),
    ('rules-empty',
     'rules: []\n',
     'f.yaml:1: rules: expected a list of rules, found an empty list — write each rule as a `- name: ...` item under `rules:`'),
    ('rules-null',
     'rules:\n',
     'f.yaml:1: rules: expected a list of rules, found nothing — write each rule as a `- name: ...` item under `rules:`'),
    ('rules-mapping',
     'rules:\n  name: a\n',
     'f.yaml:2: rules: expected a list of rules, found a mapping — write each rule as a `- name: ...` item under `rules:`'),
    ('rule-scalar',
     'rules:\n  - drop\n',
     "f.yaml:2: rules: expected a rule as a mapping (key: value), found 'drop' — write a rule as `- name: ...` with match, action and target"),
    ('key-not-text',
     'rules:\n  - 1: x\n',
     'f.yaml:2: rules: 1 is not a key — keys are words: name, match, action, target, duration, trigger, latch, approximate'),
    ('unknown-key',
     'rules:\n  - name: r1\n    match: any\n    action: drop\n    tagret: {port: 9092}\n',
     'f.yaml:5: tagret: unknown key in a rule — did you mean target? (a rule takes name, match, action, target, duration, trigger, latch, approximate)'),
    ('unknown-key-far',
     'rules:\n  - name: r1\n    match: any\n    action: drop\n    colour: red\n',
     'f.yaml:5: colour: unknown key in a rule — remove it (a rule takes name, match, action, target, duration, trigger, latch, approximate)'),
    ('duplicate-key',
     'rules:\n  - name: r1\n    match: any\n    action: drop\n    action: reset\n',
     'f.yaml:5: action: given twice (first at line 4) — keep one of them'),
    ('missing-name',
     'rules:\n  - match: any\n    action: drop\n',
     'f.yaml:2: name: missing — give the rule a name, e.g. name: block-shop-produce'),
    ('missing-match',
     'rules:\n  - name: a\n    action: drop\n',
     'f.yaml:2: match: missing — say which frames: e.g. match: api == Produce, or match: any for all traffic of the target'),
    ('missing-action',
     'rules:\n  - name: a\n    match: any\n',
     'f.yaml:2: action: missing — say what to do: drop | reset | stall | loss 30% | rate 1mbit | delay 200ms [jitter 20ms] | duplicate 5% | corrupt 1% | reorder 10%'),
    ('name-list',
     'rules:\n  - name: [a]\n    match: any\n    action: drop\n',
     'f.yaml:2: name: expected text, found a list — e.g. name: block-shop-produce'),
    ('name-null',
     'rules:\n  - name:\n    match: any\n    action: drop\n',
     'f.yaml:2: name: expected text, found nothing — e.g. name: block-shop-produce'),
    ('name-bad',
     'rules:\n  - name: block shop\n    match: any\n    action: drop\n',
     "f.yaml:2: name: 'block shop' is not a usable rule name — use letters, digits, '-', '_' and '.', starting with a letter or digit, at most 64 characters"),
    ('name-duplicate',
     'rules:\n  - name: r1\n    match: any\n    action: drop\n  - name: r1\n    match: any\n    action: reset\n',
     "f.yaml:5: name: 'r1' is already the name of the rule at line 2 — give every rule its own name"),
    ('match-number',
     'rules:\n  - name: a\n    match: 3\n    action: drop\n',
     "f.yaml:3:12: match: expected a field, found '3' — fields: api, api_version, kind, correlation_id, client_id, size, topic, partition, acks, transactional_id, records, error_code, key, value, header, src.host, src.port, dst.host, dst.port, host, port\n      match: 3\n             ^"),
    ('match-plain',
     'rules:\n  - name: a\n    match: api == Produce and clientid == "shop"\n    action: drop\n',
     'f.yaml:3:31: match: unknown field \'clientid\' — did you mean client_id?\n      match: api == Produce and clientid == "shop"\n                                ^^^^^^^^'),
    ('match-single-quoted',
     "rules:\n  - name: a\n    match: 'api == Produc'\n    action: drop\n",
     "f.yaml:3:20: match: unknown API 'Produc' — did you mean Produce?\n      match: 'api == Produc'\n                     ^^^^^^"),
    ('match-double-quoted-escapes',
     'rules:\n  - name: a\n    match: "client_id == \\"x\\" and toppic == \\"y\\""\n    action: drop\n',
     'f.yaml:3:36: match: unknown field \'toppic\' — did you mean topic?\n      match: "client_id == \\"x\\" and toppic == \\"y\\""\n                                     ^^^^^^'),
    ('match-end',
     'rules:\n  - name: a\n    match: api == Produce and\n    action: drop\n',
     'f.yaml:3:30: match: expected a field, found the end — fields: api, api_version, kind, correlation_id, client_id, size, topic, partition, acks, transactional_id, records, error_code, key, value, header, src.host, src.port, dst.host, dst.port, host, port\n      match: api == Produce and\n                               ^'),
    ('match-literal',
     'rules:\n  - name: a\n    match: |\n      api == Produce\n        and topic in {"a" "b"}\n    action: drop\n',
     'f.yaml:5:27: match: expected \',\' or \'}\', found "b" — separate values with commas and close the set with }\n          and topic in {"a" "b"}\n                            ^^^'),
    ('match-folded',
     'rules:\n  - name: a\n    match: >\n      api == Produce\n      and toppic == "x"\n    action: drop\n',
     'f.yaml:5:11: match: unknown field \'toppic\' — did you mean topic?\n        and toppic == "x"\n            ^^^^^^'),
    ('match-unalignable',
     'rules:\n  - name: a\n    match: "\\x41pi == 3 and toppic == 1"\n    action: drop\n',
     "f.yaml:3:12: match: unknown field 'Api' — did you mean api?\n  Api == 3 and toppic == 1\n  ^^^"),
    ('match-empty',
     "rules:\n  - name: a\n    match: ''\n    action: drop\n",
     'f.yaml:3:12: match: empty condition — e.g. api == Produce and client_id == "shop"\n      match: \'\'\n             ^'),
    ('action-arg',
     'rules:\n  - name: r1\n    match: any\n    action: drop now\n',
     "f.yaml:4: action: drop takes no argument, found 'now' — write action: drop"),
    ('action-percent-missing',
     'rules:\n  - name: r1\n    match: any\n    action: loss\n',
     'f.yaml:4: action: loss needs a percentage — e.g. action: loss 10%'),
    ('action-percent-sign',
     'rules:\n  - name: r1\n    match: any\n    action: loss 30\n',
     "f.yaml:4: action: '30' is not a percentage — write it with a % sign, e.g. loss 10%"),
    ('action-percent-range',
     'rules:\n  - name: r1\n    match: any\n    action: corrupt 150%\n',
     'f.yaml:4: action: 150% is out of range — use more than 0% and at most 100%'),
    ('action-percent-zero',
     'rules:\n  - name: r1\n    match: any\n    action: duplicate 0%\n',
     'f.yaml:4: action: 0% is out of range — use more than 0% and at most 100%'),
    ('action-rate-bad',
     'rules:\n  - name: r1\n    match: any\n    action: rate fast\n',
     "f.yaml:4: action: 'rate fast' is not a rate — e.g. rate 1mbit, rate 500kbit (units: bit, kbit, mbit, gbit)"),
    ('action-rate-bps',
     'rules:\n  - name: r1\n    match: any\n    action: rate 1mbps\n',
     "f.yaml:4: action: 'rate 1mbps' is not a rate (kshock takes bits: write 8mbit for 1 MB/s) — e.g. rate 1mbit, rate 500kbit (units: bit, kbit, mbit, gbit)"),
    ('action-rate-slow',
     'rules:\n  - name: r1\n    match: any\n    action: rate 4bit\n',
     'f.yaml:4: action: 4bit is too slow to shape — use at least 8bit'),
    ('action-delay-bad',
     'rules:\n  - name: r1\n    match: any\n    action: delay 200ms 20ms\n',
     "f.yaml:4: action: 'delay 200ms 20ms' is not a delay — e.g. delay 200ms or delay 200ms jitter 20ms"),
    ('action-delay-unit',
     'rules:\n  - name: r1\n    match: any\n    action: delay 200\n',
     "f.yaml:4: action: delay '200' is not a time — write a number and a unit: 200ms, 1.5s, 500us"),
    ('action-delay-zero',
     'rules:\n  - name: r1\n    match: any\n    action: delay 0ms\n',
     'f.yaml:4: action: the delay must be longer than 0ms — e.g. delay 200ms'),
    ('action-jitter-large',
     'rules:\n  - name: r1\n    match: any\n    action: delay 10ms jitter 20ms\n',
     'f.yaml:4: action: jitter 20ms is larger than the delay 10ms — keep the jitter at most as large as the delay'),
    ('action-jitter-unit',
     'rules:\n  - name: r1\n    match: any\n    action: delay 10ms jitter lots\n',
     "f.yaml:4: action: jitter 'lots' is not a time — write a number and a unit: 200ms, 1.5s, 500us"),
    ('action-unknown-close',
     'rules:\n  - name: r1\n    match: any\n    action: dorp\n',
     "f.yaml:4: action: unknown action 'dorp' — did you mean drop? actions: drop | reset | stall | loss 30% | rate 1mbit | delay 200ms [jitter 20ms] | duplicate 5% | corrupt 1% | reorder 10%"),
    ('action-unknown',
     'rules:\n  - name: r1\n    match: any\n    action: explode\n',
     "f.yaml:4: action: unknown action 'explode' — actions: drop | reset | stall | loss 30% | rate 1mbit | delay 200ms [jitter 20ms] | duplicate 5% | corrupt 1% | reorder 10%"),
    ('action-empty',
     "rules:\n  - name: r1\n    match: any\n    action: ''\n",
     "f.yaml:4: action: unknown action '' — actions: drop | reset | stall | loss 30% | rate 1mbit | delay 200ms [jitter 20ms] | duplicate 5% | corrupt 1% | reorder 10%"),
    ('action-mapping',
     'rules:\n  - name: r1\n    match: any\n    action: {loss: 3}\n',
     'f.yaml:4: action: expected text, found a mapping — one of: drop | reset | stall | loss 30% | rate 1mbit | delay 200ms [jitter 20ms] | duplicate 5% | corrupt 1% | reorder 10%'),
    ('target-scalar',
     'rules:\n  - name: r1\n    match: any\n    action: drop\n    target: 9092\n',
     'f.yaml:5: target: expected target as a mapping (key: value), found 9092 — e.g. target: {port: 9092, direction: ingress}'),
    ('target-unknown',
     'rules:\n  - name: r1\n    match: any\n    action: drop\n    target: {prot: 9092}\n',
     'f.yaml:5: target.prot: unknown key in target — did you mean port? (target takes port, ports, host, interface, direction)'),
    ('target-port-and-ports',
     'rules:\n  - name: r1\n    match: any\n    action: drop\n    target: {port: 9092, ports: [9093]}\n',
     'f.yaml:5: target.ports: given together with target.port — use one: port: 9092 or ports: [9092, 9093]'),
    ('target-port-text',
     'rules:\n  - name: r1\n    match: any\n    action: drop\n    target: {port: kafka}\n',
     "f.yaml:5: target.port: 'kafka' is not a TCP port — use a number from 1 to 65535"),
    ('target-port-range',
     'rules:\n  - name: r1\n    match: any\n    action: drop\n    target: {port: 70000}\n',
     'f.yaml:5: target.port: 70000 is not a TCP port — use a number from 1 to 65535'),
    ('target-port-bool',
     'rules:\n  - name: r1\n    match: any\n    action: drop\n    target: {port: yes}\n',
     'f.yaml:5: target.port: yes is not a TCP port — use a number from 1 to 65535'),
    ('target-ports-empty',
     'rules:\n  - name: r1\n    match: any\n    action: drop\n    target: {ports: []}\n',
     'f.yaml:5: target.ports: the list is empty — e.g. ports: [9092, 9093]'),
    ('target-ports-twice',
     'rules:\n  - name: r1\n    match: any\n    action: drop\n    target: {ports: [9092, 9092]}\n',
     'f.yaml:5: target.ports: a port is listed twice — list each port once'),
    ('target-ports-item',
     'rules:\n  - name: r1\n    match: any\n    action: drop\n    target:\n      ports:\n        - 9092\n        - 0\n',
     'f.yaml:8: target.ports: 0 is not a TCP port — use a number from 1 to 65535'),
    ('target-host-bad',
     'rules:\n  - name: r1\n    match: any\n    action: drop\n    target: {host: broker.local}\n',
     "f.yaml:5: target.host: 'broker.local' is not an IP address or network — e.g. host: 198.18.0.1 or host: 198.18.0.0/24 (names are not resolved)"),
    ('target-host-v6',
     "rules:\n  - name: r1\n    match: any\n    action: drop\n    target: {host: '::1'}\n",
     "f.yaml:5: target.host: ::1 is an IPv6 address — kshock's kernel rules are IPv4 only (iptables); use the broker's IPv4 address"),
    ('target-interface-bad',
     'rules:\n  - name: r1\n    match: any\n    action: drop\n    target: {interface: a very long interface name}\n',
     "f.yaml:5: target.interface: 'a very long interface name' is not an interface name — at most 15 characters without spaces or '/', e.g. eth0 or veth+"),
    ('target-direction-close',
     'rules:\n  - name: r1\n    match: any\n    action: drop\n    target: {direction: ingres}\n',
     "f.yaml:5: target.direction: unknown direction 'ingres' — did you mean ingress? ingress (requests arrive here, a broker), egress (they leave here, a client), forward (they pass through) or both"),
    ('target-direction-unknown',
     'rules:\n  - name: r1\n    match: any\n    action: drop\n    target: {direction: sideways}\n',
     "f.yaml:5: target.direction: unknown direction 'sideways' — ingress (requests arrive here, a broker), egress (they leave here, a client), forward (they pass through) or both"),
    ('duration-number',
     'rules:\n  - name: r1\n    match: any\n    action: drop\n    duration: 300\n',
     'f.yaml:5: duration: 300 has no unit — write 300s, or use m and h: 90s, 5m, 1h'),
    ('duration-bad',
     'rules:\n  - name: r1\n    match: any\n    action: drop\n    duration: five minutes\n',
     "f.yaml:5: duration: 'five minutes' is not a duration — e.g. 90s, 5m, 1h or 1h30m"),
    ('duration-long',
     'rules:\n  - name: r1\n    match: any\n    action: drop\n    duration: 2d\n',
     'f.yaml:5: duration: 2d is out of range — use at least 1s and at most 24h (faults always end on their own)'),
    ('duration-short',
     'rules:\n  - name: r1\n    match: any\n    action: drop\n    duration: 500ms\n',
     'f.yaml:5: duration: 500ms is out of range — use at least 1s and at most 24h (faults always end on their own)'),
    ('trigger-two',
     'rules:\n  - name: r1\n    match: any\n    action: drop\n    trigger: {every: 5, probability: 0.5}\n',
     'f.yaml:5: trigger: give one of probability, every or once-per-connection — a trigger is one of: always, once-per-connection, every 5, or probability 30% (or 0.3)'),
    ('trigger-unknown-key',
     'rules:\n  - name: r1\n    match: any\n    action: drop\n    trigger: {evry: 5}\n',
     'f.yaml:5: trigger.evry: unknown key in trigger — did you mean every? (trigger takes probability, every, once-per-connection)'),
    ('trigger-opc-false',
     'rules:\n  - name: r1\n    match: any\n    action: drop\n    trigger: {once-per-connection: false}\n',
     'f.yaml:5: trigger.once-per-connection: false is not a trigger — leave the trigger out to act on every matching packet'),
    ('trigger-every-bad',
     'rules:\n  - name: r1\n    match: any\n    action: drop\n    trigger: every 1\n',
     'f.yaml:5: trigger: every 1 is not a packet count — use a whole number from 2 to 1000000: every 5 acts on every 5th matching packet'),
    ('trigger-every-text',
     'rules:\n  - name: r1\n    match: any\n    action: drop\n    trigger: {every: often}\n',
     'f.yaml:5: trigger: every often is not a packet count — use a whole number from 2 to 1000000: every 5 acts on every 5th matching packet'),
    ('trigger-every-list',
     'rules:\n  - name: r1\n    match: any\n    action: drop\n    trigger: {every: [5]}\n',
     'f.yaml:5: trigger.every: expected a number, found a list — always, once-per-connection, every 5, or probability 30% (or 0.3)'),
    ('trigger-probability-bad',
     'rules:\n  - name: r1\n    match: any\n    action: drop\n    trigger: probability 2\n',
     "f.yaml:5: trigger: '2' is not a probability — write 0.3 or 30%"),
    ('trigger-probability-zero',
     'rules:\n  - name: r1\n    match: any\n    action: drop\n    trigger: probability 0\n',
     'f.yaml:5: trigger: probability 0 never acts — use more than 0 and at most 1 (or 0% to 100%)'),
    ('trigger-probability-percent',
     'rules:\n  - name: r1\n    match: any\n    action: drop\n    trigger: probability 130%\n',
     'f.yaml:5: trigger: 130% is out of range — use more than 0% and at most 100%'),
    ('trigger-unknown',
     'rules:\n  - name: r1\n    match: any\n    action: drop\n    trigger: sometimes\n',
     "f.yaml:5: trigger: 'sometimes' is not a trigger — one of: always, once-per-connection, every 5, or probability 30% (or 0.3)"),
    ('latch-text',
     'rules:\n  - name: r1\n    match: any\n    action: drop\n    latch: maybe\n',
     "f.yaml:5: latch: 'maybe' is not true or false — write true or false"),
    ('latch-opc',
     'rules:\n  - name: r1\n    match: any\n    action: drop\n    latch: true\n    trigger: once-per-connection\n',
     'f.yaml:5: latch: cannot go with trigger: once-per-connection — a latch acts on the whole rest of a connection; once-per-connection on one packet of it — choose one'),
    ('approximate-number',
     'rules:\n  - name: r1\n    match: any\n    action: drop\n    approximate: 1\n',
     'f.yaml:5: approximate: 1 is not true or false — write true or false'),
]


@pytest.mark.parametrize("name, text, message", ERRORS, ids=[case[0] for case in ERRORS])
def test_error_message_in_full(name, text, message):
    with pytest.raises(RuleFileError) as caught:
        parse_rule_file(text, "f.yaml")
    assert str(caught.value) == message


def test_errors_are_user_errors_with_the_usage_status_and_a_line():
    with pytest.raises(UserError) as caught:
        parse_rule_file("rules:\n  - name: a\n    match: any\n    action: drop\n    target: {port: 0}\n", "x.yaml")
    error = caught.value
    assert error.status == ExitStatus.USAGE
    assert (error.filename, error.line, error.key, error.column) == ("x.yaml", 5, "target.port", None)


def test_condition_error_keeps_the_file_column():
    text = "rules:\n  - name: a\n    match: api == Produce and clientid == 1\n    action: drop\n"
    with pytest.raises(RuleFileError) as caught:
        parse_rule_file(text, "x.yaml")
    assert (caught.value.line, caught.value.column) == (3, 31)
    assert text.splitlines()[2][30:38] == "clientid"


FULL = """\
rules:
  - name: every-field
    match: api == Produce and client_id == "shop"
    action: delay 200ms jitter 20ms
    target:
      ports: [9092, 9093]
      host: 198.18.0.0/24
      interface: veth+
      direction: egress
    duration: 1h30m
    trigger: {probability: 30%}
    latch: yes
    approximate: true
  - name: defaults
    match: any
    action: stall
  - name: nth
    match: kind == response
    action: loss 2.5%
    target: {port: 19092}
    trigger: every 5
  - name: rate
    match: api == Fetch
    action: rate 1.5mbit
    trigger: once-per-connection
    target: {host: 198.18.0.1, direction: forward}
"""


def test_a_full_file():
    specs = parse_rule_file(FULL, "rules/full.yaml")
    assert specs == [
        RuleSpec("every-field", parse_condition('api == Produce and client_id == "shop"'),
                 Action("delay", delay_ms=200.0, jitter_ms=20.0),
                 Target((9092, 9093), "198.18.0.0/24", "veth+", "egress"), 5400.0,
                 Trigger("probability", probability=0.3), latch=True, approximate=True, source="rules/full.yaml:2"),
        RuleSpec("defaults", None, Action("stall"), Target(), 300.0, Trigger(), source="rules/full.yaml:14"),
        RuleSpec("nth", parse_condition("kind == response"), Action("loss", percent=2.5), Target((19092,)), 300.0,
                 Trigger("nth", every=5), source="rules/full.yaml:17"),
        RuleSpec("rate", parse_condition("api == Fetch"), Action("rate", rate_bit_s=1_500_000),
                 Target(host="198.18.0.1", direction="forward"), 300.0, Trigger("once-per-connection"),
                 source="rules/full.yaml:22"),
    ]


@pytest.mark.parametrize("text, action", [
    ("drop", Action("drop")), ("reset", Action("reset")), ("stall", Action("stall")),
    ("loss 30%", Action("loss", percent=30.0)), ("duplicate 5%", Action("duplicate", percent=5.0)),
    ("corrupt 1%", Action("corrupt", percent=1.0)), ("reorder 10%", Action("reorder", percent=10.0)),
    ("rate 1mbit", Action("rate", rate_bit_s=1_000_000)), ("rate 500kbit", Action("rate", rate_bit_s=500_000)),
    ("rate 2gbit", Action("rate", rate_bit_s=2_000_000_000)), ("delay 1.5s", Action("delay", delay_ms=1500.0)),
    ("delay 500us", Action("delay", delay_ms=0.5)), ("DROP", Action("drop")),
])
def test_actions(text, action):
    (spec,) = parse_rule_file(f"rules:\n  - name: a\n    match: any\n    action: {text}\n")
    assert spec.action == action
    assert parse_rule_file(f"rules:\n  - name: a\n    match: any\n    action: {spec.action}\n")[0].action == action


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("5m", 300), ("1h", 3600), ("1h30m", 5400), ("1m 30s", 90),
                                           ("24h", 86400), ("1s", 1), ("1.5m", 90)])
def test_durations(text, seconds):
    (spec,) = parse_rule_file(f"rules:\n  - name: a\n    match: any\n    action: drop\n    duration: {text}\n")
    assert spec.duration_s == seconds


@pytest.mark.parametrize("text, trigger", [
    ("always", Trigger()), ("once-per-connection", Trigger("once-per-connection")),
    ("{once-per-connection: true}", Trigger("once-per-connection")),
    ("every 2", Trigger("nth", every=2)), ("{every: 10}", Trigger("nth", every=10)),
    ("probability 0.25", Trigger("probability", probability=0.25)), ("probability 1", Trigger("probability", probability=1.0)),
    ("{probability: .5}", Trigger("probability", probability=0.5)), ("probability 5%", Trigger("probability", probability=0.05)),
])
def test_triggers(text, trigger):
    (spec,) = parse_rule_file(f"rules:\n  - name: a\n    match: any\n    action: drop\n    trigger: {text}\n")
    assert spec.trigger == trigger


def test_yaml_comments_and_quoting_styles_give_the_same_condition():
    plain = parse_rule_file('rules:\n  - name: a\n    match: topic == "orders"  # the topic\n    action: drop\n')
    quoted = parse_rule_file("rules:\n  - name: a\n    match: 'topic == \"orders\"'\n    action: drop\n")
    block = parse_rule_file('rules:\n  - name: a\n    match: |\n      topic ==\n        "orders"\n    action: drop\n')
    assert plain[0].condition == quoted[0].condition == block[0].condition == parse_condition('topic == "orders"')


@pytest.mark.parametrize("path", sorted(RULES_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_examples_load(path):
    specs = parse_rule_file(path.read_text(), str(path))
    assert specs and all(spec.source.startswith(str(path)) for spec in specs)


def test_the_five_examples_exist():
    assert {p.name for p in RULES_DIR.glob("*.yaml")} >= {
        "block-producer.yaml", "reset-group-member.yaml", "stall-fetch-topic.yaml", "syn-only-handshake.yaml",
        "drop-client.yaml"}
