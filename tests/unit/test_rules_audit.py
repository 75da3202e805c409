"""rules.audit and the renderers: no user string reaches iptables-restore or nft text except as
validated tokens (issue 10, section 1).

Property tests feed arbitrary text (control characters, quotes, line breaks, NUL, Unicode,
pieces of restore and nft syntax) as client ids, topics, transactional ids, header names and
values and rule names, through conditions, rule files and the compiler: every outcome is either
the project's own error or text that passes the auditor, has exactly the lines the rule set
predicts, and carries the user's bytes only as hex that decodes back to them. Hand-made hostile
texts show what the auditor refuses.
"""

from __future__ import annotations

import json
import re
import struct

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kshock.cli import main
from kshock.conditions import parse_condition
from kshock.conditions.parse import quote
from kshock.errors import UserError
from kshock.rules.audit import UnsafeRuleText, audit_nft, audit_restore, check_token
from kshock.rules.compile import CompileError, compile_rules
from kshock.rules.emulate import Emulator
from kshock.rules.kernel import Chain, Jump, KernelRule, RuleSet, StringWindow
from kshock.rules.render import hex_string, render_commands, render_restore, render_restore_many, render_revert
from kshock.rules.render_nft import render_nft
from kshock.rules.rulefile import parse_rule_file
from kshock.rules.spec import Action, RuleSpec, Target

STOP = "2030-01-01T00:00:00"
D = f"-m time --datestop {STOP}"
INJECTION = "x\nCOMMIT\n*nat\n-A OUTPUT -j ACCEPT\nCOMMIT\n*filter\n-I INPUT 1 -s 10.88.0.66 -j ACCEPT\n#"
# Pieces of restore and nft syntax, and the characters that end or split a line or a word.
FRAGMENTS = ["\n", "\r", "\x00", '"', "'", "\\", " ", "\t", "#", "*nat", "COMMIT", "-j ACCEPT", "-I INPUT 1",
             "} table ip x {", "; flush ruleset", "|41|", "\x0b", "\x85", "\u2028", "é", "ü\u0301", "🦀", "$(id)"]
TEXT = st.one_of(st.text(max_size=60),
                 st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=4)), max_size=12).map("".join),
                 st.just(INJECTION))
NAMES = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,20}", fullmatch=True)
SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- what a rule set predicts ----------------------------------------------------------------

def _restore_lines(ruleset: RuleSet) -> list[str]:
    """The line heads render_restore must write for `ruleset`, one per line, nothing else."""
    heads = [f"*{ruleset.table}"] + [f":{name} - [0:0]" for name in ruleset.chain_names]
    heads += [f"-A {chain.name} " for chain in ruleset.chains for _ in chain.rules]
    heads += [f"-A {jump.builtin} " for jump in ruleset.jumps]
    return heads + ["COMMIT"]


def _nft_line_count(ruleset: RuleSet) -> int:
    hooks = {jump.builtin for jump in ruleset.jumps}
    blocks = len(hooks) + len(ruleset.chains)
    return (2 + 3 + sum(3 for _ in hooks) + len(ruleset.jumps) + sum(2 + len(c.rules) for c in ruleset.chains)
            + blocks - 1 + 1)


def _check_texts(ruleset: RuleSet) -> str:
    """Every text of the rule set passes the auditor and has exactly the predicted lines."""
    text = render_restore(ruleset)
    audit_restore(text)
    lines = text.split("\n")
    assert lines[-1] == ""
    heads = _restore_lines(ruleset)
    assert len(lines) - 1 == len(heads), text
    for line, head in zip(lines, heads):
        assert line == head if not head.endswith(" ") else line.startswith(head), (line, head)
        assert D in line or not line.startswith("-A")
    revert = render_revert(ruleset)
    audit_restore(revert)
    assert len(revert.split("\n")) - 1 == 2 + len(ruleset.jumps) + 2 * len(ruleset.chains)
    commands = render_commands(ruleset).split("\n")[:-1]
    assert len(commands) == len(ruleset.chains) + sum(len(c.rules) for c in ruleset.chains) + len(ruleset.jumps)
    assert all(line.startswith(f"iptables -t {ruleset.table} -") for line in commands)
    try:
        nft = render_nft(ruleset)
    except CompileError:  # hops and string windows have no nft form: said, never dropped
        pass
    else:
        audit_nft(nft)
        assert len(nft.split("\n")) - 1 == _nft_line_count(ruleset), nft
    return text


def _compiled(specs: list[RuleSpec], name: str = "inj") -> RuleSet | None:
    """The rule set, or None when the project refused the input with its own error."""
    try:
        return compile_rules(specs, name, expires_at=STOP)
    except UserError as error:
        assert not isinstance(error, UnsafeRuleText), error  # a user's value is never unsafe: it is hex
        return None


def _client_bytes(line: str) -> bytes:
    """The bytes an identity rule's exact u32 words test from frame offset 12 (the client id's
    int16 length, then its bytes): `32>>26&0x3C@N[&0xMASK]=0xVALUE`, N = 20 + frame offset."""
    buf = {}
    for off, mask, value in re.findall(r"32>>26&0x3C@(\d+)(?:&0x([0-9A-F]+))?=0x([0-9A-F]+)(?= &&|\")", line):
        word, keep = int(value, 16).to_bytes(4, "big"), int(mask or "FFFFFFFF", 16).to_bytes(4, "big")
        for k in range(4):
            if keep[k]:
                assert buf.setdefault(int(off) - 32 + k, word[k]) == word[k]
    assert sorted(buf) == list(range(len(buf)))
    return bytes(buf[k] for k in range(len(buf)))


# -- properties ------------------------------------------------------------------------------

@SETTINGS
@given(value=TEXT, equal=st.booleans())
def test_any_client_id_compiles_to_audited_text_and_hex_that_decodes_back(value, equal):
    spec = RuleSpec("r1", parse_condition(f"api == Produce and client_id {'==' if equal else '!='} {quote(value)}"),
                    Action("drop"))
    ruleset = _compiled([spec])
    if ruleset is None:
        return
    text = _check_texts(ruleset)
    identity = [line for line in text.splitlines() if "--comment kshock:inj/identity:0x" in line]
    assert identity and all("-j CONNMARK --set-xmark" in line for line in identity)
    if equal:
        data = value.encode()
        assert _client_bytes(identity[0]) == len(data).to_bytes(2, "big") + data


@SETTINGS
@given(value=TEXT)
def test_any_topic_compiles_to_audited_text_and_hex_that_decodes_back(value):
    spec = RuleSpec("r1", parse_condition(f"api == Produce and api_version < 13 and topic == {quote(value)}"),
                    Action("drop"))
    ruleset = _compiled([spec])
    if ruleset is None:
        return
    text = _check_texts(ruleset)
    data = value.encode()
    tests = [(id(r), t) for c in ruleset.chains for r in c.rules for g in r.u32 for t in g if t.field == "topic"]
    assert tests
    by_path: dict = {}  # per rule (one Produce layout) and path to the name
    for rule, test in tests:
        assert test.expression() in text  # the words below are the ones the kernel gets
        buf = by_path.setdefault((rule, test.hops), {})
        word, keep = test.ranges[0][0].to_bytes(4, "big"), test.mask.to_bytes(4, "big")
        for k in range(4):
            if keep[k]:
                buf[test.offset + k] = word[k]
    for buf in by_path.values():
        got = bytes(buf[k] for k in sorted(buf))
        # an int16 length (Produce v3-8) or a compact length, len + 1 (v9-12), then the name
        assert got in (len(data).to_bytes(2, "big") + data, bytes([len(data) + 1]) + data), (got, data)


@SETTINGS
@given(value=TEXT, approximate=st.booleans(), name=TEXT)
def test_any_transactional_id_or_header_gives_audited_text_or_a_clean_error(value, approximate, name):
    for condition in (f"api == Produce and transactional_id == {quote(value)}",
                      f"api == Produce and header[{quote(name)}] == {quote(value)}"):
        try:
            parsed = parse_condition(condition)
        except UserError:
            continue
        ruleset = _compiled([RuleSpec("r1", parsed, Action("drop"), approximate=approximate)])
        if ruleset is not None:
            _check_texts(ruleset)


@SETTINGS
@given(client=TEXT, topic=TEXT, name=st.one_of(TEXT, NAMES))
def test_rule_files_with_any_strings_give_audited_text_or_a_clean_error(client, topic, name):
    rules = {"rules": [{"name": name, "match": f"client_id == {quote(client)}", "action": "drop",
                        "duration": "5m"},
                       {"name": "t2", "match": f"api == Produce and api_version < 13 and topic == {quote(topic)}",
                        "action": "reset", "duration": "5m"}]}
    try:
        specs = parse_rule_file(yaml.safe_dump(rules, allow_unicode=True), "hostile.yaml")
    except UserError:
        return
    ruleset = _compiled(specs)
    if ruleset is not None:
        _check_texts(ruleset)


@SETTINGS
@given(name=st.one_of(TEXT, NAMES), set_name=st.one_of(NAMES, TEXT))
def test_rule_and_set_names_are_validated_before_they_reach_a_comment(name, set_name):
    spec = RuleSpec(name, parse_condition("api == Produce"), Action("drop"))
    try:
        ruleset = compile_rules([spec], set_name, expires_at=STOP)
    except CompileError:
        return
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name) and re.fullmatch(
        r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", set_name)
    _check_texts(ruleset)


def _request(client: bytes) -> bytes:
    """An IPv4/TCP segment to port 9092 holding one request from `client`, with 16 body bytes
    (u32 never reads past a packet's end: an id that ends the packet is a separate matter)."""
    header = struct.pack(">hhih", 18, 0, 7, len(client)) + client + bytes(16)
    frame = struct.pack(">i", len(header)) + header
    tcp = struct.pack("!HHIIBBHHH", 40000, 9092, 1, 0, 5 << 4, 0x18, 65535, 0, 0)
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40 + len(frame), 0, 0x4000, 64, 6, 0, bytes([10, 0, 0, 2]),
                       bytes([10, 0, 0, 1])) + tcp + frame


@SETTINGS
@given(value=TEXT, other=TEXT)
def test_any_client_id_is_still_matched_exactly(value, other):
    """User strings only change form (hex), never what matches: `==` drops exactly the id,
    `!=` every other non-null id (`client_id != ""` used to match nothing)."""
    for op in ("==", "!="):
        spec = RuleSpec("r1", parse_condition(f"client_id {op} {quote(value)}"), Action("drop"))
        ruleset = _compiled([spec])
        if ruleset is None:
            continue
        for client in (value, other):
            hit = Emulator(ruleset).verdict("INPUT", _request(client.encode())) == "DROP"
            assert hit == ((client == value) == (op == "==")), (op, value, client)


@settings(max_examples=300, deadline=None)
@given(pattern=st.binary(min_size=1, max_size=64))
def test_hex_string_is_only_hex_and_decodes_back(pattern):
    text = hex_string(pattern)
    assert re.fullmatch(r"\|[0-9a-f]+\|", text)
    assert bytes.fromhex(text[1:-1]) == pattern
    rule = KernelRule("DROP", strings=(StringWindow(pattern, 40, 400),), datestop=STOP, comment="kshock:w/r")
    ruleset = RuleSet("w", (Chain("KSHOCK-w", (rule,)),), (Jump("INPUT", KernelRule("KSHOCK-w", datestop=STOP)),))
    audit_restore(render_restore(ruleset))


# -- the injection from the issue, through the CLI --------------------------------------------

def test_the_issues_injection_compiles_to_one_table_with_no_foreign_rule(capsys):
    condition = f"api == Produce and client_id == {quote(INJECTION)}"
    assert main(["compile", "--match", condition, "--action", "drop"]) == 0
    text = capsys.readouterr().out
    audit_restore(text)
    assert text.count("COMMIT") == 1 and "*nat" not in text and "ACCEPT" not in text and "10.88" not in text
    assert "-j CONNMARK --set-xmark" in text  # the identity rule keeps its target
    assert main(["compile", "--match", condition, "--action", "drop", "--format", "nft"]) == 0
    nft = capsys.readouterr().out
    audit_nft(nft)
    assert nft.count("table ip ") == 4 and nft.count("table ip kshock_adhoc") == 4 and "ACCEPT" not in nft


@pytest.mark.parametrize("value", ['a"b', "a\x00b", "a\nb", 'x" -j ACCEPT "', "tab\there", "é ü", "\r\n#"])
@pytest.mark.parametrize("fmt", ["iptables-restore", "iptables", "nft", "json"])
def test_quotes_nul_and_line_breaks_compile_in_every_format(value, fmt, capsys):
    # each was a traceback (a quote: "cannot quote"; nft: a line break) or injected lines
    assert main(["compile", "--match", f"client_id == {quote(value)}", "--action", "drop", "--format", fmt]) == 0
    out = capsys.readouterr().out
    if fmt == "iptables-restore":
        audit_restore(out)
    elif fmt == "nft":
        audit_nft(out)
    elif fmt == "json":
        audit_restore(json.loads(out)["restore"])
    else:
        assert all(line.startswith("iptables -t filter -") for line in out.splitlines())
        assert out.isascii() and len(out.splitlines()) == 5  # -N, identity, two rules, the jump


# -- the renderers refuse what is not a token -------------------------------------------------

@pytest.mark.parametrize("rule", [
    KernelRule("DROP", comment="kshock:t/identity client_id == x"),
    KernelRule("DROP", comment="kshock:t/r\nCOMMIT"),
    KernelRule("DROP", comment='kshock:t/r" -j ACCEPT "'),
    KernelRule("DROP", comment="kshock:t/r\x00"),
    KernelRule("DROP", in_interface="eth0 -j ACCEPT"),
    KernelRule("DROP", out_interface='eth"0'),
    KernelRule("DROP", source="10.0.0.1\n*nat"),
    KernelRule("DROP", datestop="2030-01-01T00:00:00\n"),
    KernelRule("DROP", target_args=("--reject-with", "tcp-reset\nCOMMIT")),
    KernelRule("DROP\n-A INPUT -j ACCEPT"),
    KernelRule("DROP", statistic=("random", "0.5 -j ACCEPT")),
])
def test_renderers_refuse_a_value_that_is_not_a_token(rule):
    ruleset = RuleSet("t", (Chain("KSHOCK-t", (rule,)),), ())
    with pytest.raises(UnsafeRuleText) as caught:
        render_restore(ruleset)
    assert "\n" not in str(caught.value)  # one line, as the CLI prints it
    with pytest.raises(UserError):
        render_commands(ruleset)
    with pytest.raises(UserError):
        render_nft(ruleset)


def test_renderers_refuse_a_foreign_chain_or_table():
    rule = KernelRule("DROP", datestop=STOP, comment="kshock:t/r")
    for ruleset in (RuleSet("t", (Chain("INPUT", (rule,)),), ()),
                    RuleSet("t", (Chain("KSHOCK-t\n*nat", (rule,)),), ()),
                    RuleSet("t", (Chain("KSHOCK-t", (rule,)),), (), table="nat")):
        with pytest.raises(UnsafeRuleText):
            render_restore(ruleset)


def test_check_token_allowlists():
    assert check_token("0x100/0x100") == "0x100/0x100"
    assert check_token("kshock:set/rule", "--comment") == "kshock:set/rule"
    assert check_token("kshock:set/identity:0x100", "--comment")
    for bad, option in [("a b", ""), ('"', ""), ("#x", ""), ("*nat", ""), ("", ""), ("x\n", ""),
                        ("kshock:set/rule x", "--comment"), ("kshock:é", "--comment"), ("abc", "--hex-string"),
                        ("|4|", "--hex-string"), ('0>>24=0x45" -j ACCEPT', "--u32"), ("0>>24=0x45\n", "--u32")]:
        with pytest.raises(UnsafeRuleText):
            check_token(bad, option)


# -- the auditor: restore texts ---------------------------------------------------------------

GOOD = "\n".join([
    "*filter",
    ":KSHOCK-t - [0:0]",
    ":KSHOCK-t-0t - [0:0]",
    f'-A KSHOCK-t -p tcp -m u32 --u32 "0>>24=0x45 && 32>>26&0x3C@24>>16=0x0" {D} -m comment --comment kshock:t/r1 '
    "-j KSHOCK-t-0t",
    f"-A KSHOCK-t-0t -p tcp -m connmark --mark 0x100/0x100 {D} -m comment --comment kshock:t/r1 -j RETURN",
    f"-A KSHOCK-t-0t -p tcp {D} -m comment --comment kshock:t/identity:0x100 -j CONNMARK --set-xmark 0x100/0x100",
    f"-A KSHOCK-t-0t -p tcp {D} -m comment --comment kshock:t/r1 -j REJECT --reject-with tcp-reset",
    f'-A KSHOCK-t -p tcp -m string --algo kmp --from 40 --to 400 --hex-string "|6f72|" {D} -j DROP',
    f"-A INPUT -p tcp -m tcp --dport 9092 {D} -m comment --comment kshock:t -j KSHOCK-t",
    "COMMIT", ""])
REVERT = "\n".join([
    "*filter",
    # as iptables-save prints a jump kshock added
    '-D INPUT -p tcp -m tcp --dport 9092 -m u32 --u32 "0x0>>0x16&0x3c@0xc>>0x1a&0x3c@0x0=0x0:0xffffffff" '
    f'{D} -m comment --comment "kshock:t" -j KSHOCK-t',
    "-F KSHOCK-t", "-F KSHOCK-t-0t", "-X KSHOCK-t", "-X KSHOCK-t-0t", "COMMIT", ""])


TC_GOOD = "\n".join([
    "*mangle", ":KSHOCK-t - [0:0]", ":KSHOCK-t-0c - [0:0]",
    f"-A KSHOCK-t -p tcp {D} -m comment --comment kshock:t/r -j KSHOCK-t-0c",
    f"-A KSHOCK-t-0c -p tcp {D} -m comment --comment kshock:t/r -j CLASSIFY --set-class 4b53:c300",
    f"-A KSHOCK-t-0c -p tcp {D} -m comment --comment kshock:t/r -j ACCEPT",
    f"-A OUTPUT -p tcp -m tcp --dport 9092 {D} -m comment --comment kshock:t -j KSHOCK-t",
    "COMMIT", ""])


def test_auditor_passes_kshocks_own_texts():
    audit_restore(GOOD)
    audit_restore(REVERT)
    audit_restore(REVERT, revert=True)
    audit_restore(TC_GOOD)
    spec = RuleSpec("r1", parse_condition('client_id == "a"'), Action("loss", percent=30))
    one, two = (compile_rules([spec], name, expires_at=STOP) for name in ("one", "two"))
    audit_restore(render_restore_many([one, two]))


def _jump(chain: str = "KSHOCK-t") -> str:
    return f"-A INPUT -p tcp {D} -m comment --comment kshock:t -j {chain}"


HOSTILE = {
    "a second table": GOOD + "*nat\n-A OUTPUT -j ACCEPT\nCOMMIT\n",
    "the issue's injection": GOOD.replace("kshock:t/r1 -j RETURN", f'"kshock:t/r1{INJECTION}" -j RETURN'),
    "nat table": GOOD.replace("*filter", "*nat"),
    "raw table": GOOD.replace("*filter", "*raw"),
    "a table twice": GOOD + GOOD,
    "-I into INPUT": GOOD.replace("COMMIT", f"-I INPUT 1 -s 10.88.0.66 {D} -j ACCEPT\nCOMMIT"),
    "-A INPUT -j ACCEPT": GOOD.replace("COMMIT", f"-A INPUT -s 10.88.0.66 {D} -j ACCEPT\nCOMMIT"),
    "-A INPUT -j DROP": GOOD.replace("COMMIT", f"-A INPUT -p tcp {D} -j DROP\nCOMMIT"),
    "a jump into an undeclared chain": GOOD.replace("COMMIT", _jump("KSHOCK-other") + "\nCOMMIT"),
    "a jump from PREROUTING": GOOD.replace("-A INPUT", "-A PREROUTING"),
    "a rule without datestop": GOOD.replace(f"{D} -j DROP", "-j DROP"),
    "a jump without datestop": GOOD.replace(f"{D} -m comment --comment kshock:t -j", "-j"),
    "a chain not KSHOCK-*": GOOD.replace("KSHOCK-t-0t", "EVIL"),
    "a built-in chain declared": GOOD.replace(":KSHOCK-t - [0:0]", ":INPUT DROP [0:0]"),
    "a policy": GOOD.replace("COMMIT", "-P INPUT DROP\nCOMMIT"),
    "-F INPUT": GOOD.replace("COMMIT", "-F INPUT\nCOMMIT"),
    "-X INPUT": GOOD.replace("COMMIT", "-X INPUT\nCOMMIT"),
    "-Z": GOOD.replace("COMMIT", "-Z KSHOCK-t\nCOMMIT"),
    "-N": GOOD.replace("COMMIT", "-N KSHOCK-x\nCOMMIT"),
    "-R": GOOD.replace("COMMIT", f"-R INPUT 1 -p tcp {D} -j ACCEPT\nCOMMIT"),
    "-A into another fault's chain": GOOD.replace("COMMIT", f"-A KSHOCK-other -p tcp {D} -j DROP\nCOMMIT"),
    "ACCEPT in a filter chain": GOOD.replace("-j REJECT --reject-with tcp-reset", "-j ACCEPT"),
    "a foreign target": GOOD.replace("-j REJECT --reject-with tcp-reset", "-j DNAT --to-destination 10.0.0.1"),
    "LOG": GOOD.replace("-j REJECT --reject-with tcp-reset", "-j LOG"),
    "a goto": GOOD.replace("-j KSHOCK-t-0t", "-g KSHOCK-t-0t"),
    "two targets": GOOD.replace("-j DROP", "-j DROP -j ACCEPT"),
    "target options smuggled": GOOD.replace("--set-xmark 0x100/0x100", "--set-xmark 0x100/0x100 --and-mark 0"),
    "a foreign match": GOOD.replace("-m connmark --mark 0x100/0x100", "-m owner --uid-owner 0"),
    "a negation": GOOD.replace("-p tcp -m connmark", "! -p tcp -m connmark"),
    "a value comment": GOOD.replace("kshock:t/r1 -j RETURN", '"kshock:t/identity client_id == x" -j RETURN'),
    "a comment with a quote inside": GOOD.replace("kshock:t/r1 -j RETURN", '"kshock:t/r1\\" -j ACCEPT" -j RETURN'),
    "a text hex string": GOOD.replace('"|6f72|"', "orders"),
    "a stray quote": GOOD.replace('--u32 "0>>24', '--u32 ""0>>24'),
    "an unbalanced quote": GOOD.replace('0x0" ', "0x0 "),
    "two spaces": GOOD.replace("-p tcp -m connmark", "-p tcp  -m connmark"),
    "a NUL": GOOD.replace("kshock:t/r1 -j RETURN", "kshock:t/r1\x00 -j RETURN"),
    "a carriage return": GOOD.replace("-j RETURN", "-j RETURN\r"),
    "a tab": GOOD.replace("-p tcp -m connmark", "-p tcp\t-m connmark"),
    "Unicode": GOOD.replace("kshock:t/r1 -j RETURN", "kshock:t/é -j RETURN"),
    "a Unicode line separator": GOOD.replace("kshock:t/r1 -j RETURN", "kshock:t/r1\u2028-A -j RETURN"),
    "a comment line": GOOD.replace("COMMIT", "# hello\nCOMMIT"),
    "a blank line": GOOD.replace("COMMIT", "\nCOMMIT"),
    "no COMMIT": GOOD.replace("COMMIT\n", ""),
    "two COMMITs": GOOD + "COMMIT\n",
    "a line after COMMIT": GOOD + f"-A INPUT -p tcp {D} -j ACCEPT\n",
    "no final line break": GOOD[:-1],
    "a declaration after the rules": GOOD.replace("COMMIT", ":KSHOCK-late - [0:0]\nCOMMIT"),
    "a declaration with a policy": GOOD.replace(":KSHOCK-t-0t - [0:0]", ":KSHOCK-t-0t ACCEPT [0:0]"),
    "empty": "",
    "-D of a foreign rule": REVERT.replace("COMMIT", "-D INPUT -s 10.0.0.1/32 -j ACCEPT\nCOMMIT"),
    "-D of a jump it does not remove": REVERT.replace("-X KSHOCK-t\n", ""),
    "-D from a KSHOCK chain": REVERT.replace("-D INPUT", "-D KSHOCK-x"),
    "-F of a built-in chain": REVERT.replace("-F KSHOCK-t\n", "-F INPUT\n"),
    "-X of two chains": REVERT.replace("-X KSHOCK-t\n", "-X KSHOCK-t INPUT\n"),
    "-F of everything": REVERT.replace("-F KSHOCK-t\n", "-F\n"),
    # review: only the options kshock writes, each with its own value pattern
    "--modprobe": GOOD.replace("-p tcp -m connmark", "--modprobe=/tmp/x -p tcp -m connmark"),
    "--modprobe as two words": GOOD.replace("-p tcp -m connmark", "--modprobe /tmp/x -p tcp -m connmark"),
    "--modprobe on a -D line": REVERT.replace("-D INPUT -p tcp", "-D INPUT --modprobe=/tmp/x -p tcp"),
    "--match long form": GOOD.replace("-m connmark --mark", "--match connmark --mark"),
    "an unknown option": GOOD.replace("-p tcp -m connmark", "-p tcp --fragment -m connmark"),
    "an option after the wrong match": GOOD.replace("-m connmark --mark 0x100/0x100",
                                                    "-m connmark --mark 0x100/0x100 --dport 22"),
    "a value that starts with a dash": GOOD.replace("-m tcp --dport 9092", "-m tcp --dport -9092"),
    "an option as a value": GOOD.replace("-m tcp --dport 9092", "-m tcp --dport --sport"),
    "counters": GOOD.replace("-A INPUT -p tcp", "-A INPUT -c 0 0 -p tcp"),
    "counters on a -D line": REVERT.replace("-D INPUT -p tcp", "-D INPUT -c 0 0 -p tcp"),
    "-m time with more": GOOD.replace(f"{D} -j DROP", f"{D} --timestart 00:00 -j DROP"),
    "-m time --kerneltz": GOOD.replace(f"{D} -j DROP", f"{D} --kerneltz -j DROP"),
    "-m time twice": GOOD.replace(f"{D} -j DROP", f"{D} -m time --weekdays Mon -j DROP"),
    "-m time without datestop": GOOD.replace(f"{D} -j DROP", f"{D} -m time -j DROP"),
    "a -D line with target options": REVERT.replace("-j KSHOCK-t\n", "-j KSHOCK-t --foo\n"),
    "MARK": GOOD.replace("-j CONNMARK --set-xmark", "-j MARK --set-xmark"),
    "CONNMARK outside kshock's bits": GOOD.replace("--set-xmark 0x100/0x100", "--set-xmark 0x1/0x1"),
    "CONNMARK wider than kshock's bits": GOOD.replace("--set-xmark 0x100/0x100", "--set-xmark 0x100/0xffffffff"),
    "CONNMARK clearing bits": GOOD.replace("--set-xmark 0x100/0x100", "--set-xmark 0x0/0x100"),
    "CONNMARK --set-mark": GOOD.replace("--set-xmark 0x100/0x100", "--set-mark 0x100/0x100"),
    "a connmark test outside kshock's bits": GOOD.replace("--mark 0x100/0x100", "--mark 0x1/0x1"),
    "ACCEPT in mangle outside a tc chain": GOOD.replace("*filter", "*mangle").replace(
        "-j REJECT --reject-with tcp-reset", "-j ACCEPT"),
    "ACCEPT in mangle before CLASSIFY": TC_GOOD.replace("-j CLASSIFY --set-class 4b53:c300", "-j ACCEPT"),
    "a tc chain with a third rule": TC_GOOD.replace("COMMIT", f"-A KSHOCK-t-0c -p tcp {D} -j DROP\nCOMMIT"),
}


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_auditor_refuses_hostile_restore_text(text):
    with pytest.raises(UnsafeRuleText) as caught:
        audit_restore(text)
    assert "\n" not in str(caught.value) and str(caught.value).startswith("refusing rule text: ")


REVERT_HOSTILE = {
    "an -A in revert text": REVERT.replace("COMMIT", f"-A KSHOCK-t -p tcp {D} -j DROP\nCOMMIT"),
    "a jump added in revert text": REVERT.replace("COMMIT", _jump().replace("-A INPUT", "-A INPUT") + "\nCOMMIT"),
    "a declaration in revert text": REVERT.replace("*filter\n", "*filter\n:KSHOCK-t - [0:0]\n"),
    "kshock's own load text as a revert": GOOD,
}


@pytest.mark.parametrize("text", REVERT_HOSTILE.values(), ids=REVERT_HOSTILE.keys())
def test_revert_text_holds_only_deletions(text):
    with pytest.raises(UnsafeRuleText):
        audit_restore(text, revert=True)


def test_auditor_can_leave_out_the_expiry_for_display_only():
    text = GOOD.replace(f" {D}", "")
    with pytest.raises(UnsafeRuleText):
        audit_restore(text)
    audit_restore(text, require_expiry=False)


# -- the auditor: nft texts -------------------------------------------------------------------

def _nft_good() -> str:
    spec = RuleSpec("r1", parse_condition('api == Produce and client_id == "a"'), Action("drop"))
    return render_nft(compile_rules([spec], "t", expires_at=STOP, mark_base=0))


def _nft_hostile() -> dict[str, str]:
    good = _nft_good()
    rule = next(line for line in good.splitlines() if "counter drop" in line)
    jump = next(line for line in good.splitlines() if "counter jump" in line)
    return {
        "a second table": good + "table ip filter {\n\tchain input {\n\t}\n}\n",
        "flush ruleset": good.replace("table ip kshock_t\n", "flush ruleset\ntable ip kshock_t\n", 1),
        "a foreign table deleted": good.replace("delete table ip kshock_t", "delete table ip filter"),
        "a table name that is not the set's": good.replace("kshock_t", "kshock_u"),
        "a header naming another table": good.replace("`nft delete table ip kshock_t`", "`nft delete table ip x`"),
        "a policy drop": good.replace("policy accept;", "policy drop;"),
        "a hook it does not own": good.replace("hook input", "hook prerouting"),
        "a rule without meta time": good.replace(rule, re.sub(r"meta time < \d+ ", "", rule)),
        "a statement separator": good.replace(rule, rule + "; flush ruleset"),
        "a second statement": good.replace(rule, rule.replace("counter drop", "counter accept drop")),
        "a jump out of the table": good.replace(jump, jump.replace("jump KSHOCK-t", "jump input")),
        "a jump to a missing chain": good.replace(jump, jump.replace("jump KSHOCK-t", "jump KSHOCK-x")),
        "a goto": good.replace(jump, jump.replace("jump KSHOCK-t", "goto KSHOCK-t")),
        "a base chain that drops": good.replace(jump, jump.replace("jump KSHOCK-t", "drop")),
        "a value comment": good.replace('comment "kshock:t/r1"', 'comment "kshock:t/identity client_id == x"'),
        "a quote in a comment": good.replace('comment "kshock:t/r1"', 'comment "kshock:t/r1\\" drop"'),
        "a chain not KSHOCK-*": good.replace("chain KSHOCK-t {", "chain evil {"),
        "a brace": good.replace(rule, rule.replace("counter drop", "} } table ip x { counter drop")),
        "a set of words": good.replace(rule, rule.replace("== 0x0 ", "== { evil } ", 1)),
        "a NUL": good.replace(rule, rule + "\x00"),
        "Unicode": good.replace('"kshock:t/r1"', '"kshock:t/é"'),
        "a comment line": good.replace("\t}\n}", "\t}\n# x\n}"),
        "an unclosed chain": good.replace("\t}\n}\n", "}\n"),
        "a define": "define x = 1\n" + good,
        "a rule outside its chain": good.replace(rule, rule.strip()),
        "text after the table": good + "add rule ip filter input drop\n",
        "no counter": good.replace(rule, rule.replace(" counter", "")),
        # review: only what render_nft writes
        "dup": good.replace(rule, rule.replace("counter drop", "counter dup to 10.0.0.9")),
        "dup among the matches": good.replace(rule, rule.replace(" counter drop", " dup to 10.0.0.9 counter drop")),
        "notrack": good.replace(rule, rule.replace("counter drop", "counter notrack")),
        "notrack among the matches": good.replace(rule, rule.replace(" counter drop", " notrack counter drop")),
        "log": good.replace(rule, rule.replace("counter drop", "counter log")),
        "log among the matches": good.replace(rule, rule.replace(" counter drop", " log counter drop")),
        "ct mark set among the matches": good.replace(rule, rule.replace(" counter drop",
                                                                         " ct mark set 0x1 counter drop")),
        "meta mark set": good.replace(rule, rule.replace("counter drop", "counter meta mark set 0x1")),
        "ct mark set outside kshock's bits": good.replace(rule, rule.replace("counter drop",
                                                                             "counter ct mark set ct mark or 0x1")),
        "ct mark set whole": good.replace(rule, rule.replace("counter drop", "counter ct mark set 0x100")),
        "a goto among the matches": good.replace(rule, rule.replace(" counter drop", " goto KSHOCK-t counter drop")),
        "a bare accept": good.replace(rule, rule.replace("counter drop", "counter accept")),
        "queue": good.replace(rule, rule.replace("counter drop", "counter queue num 1")),
        "an unknown match": good.replace(rule, rule.replace(" counter drop", " meta skuid 0 counter drop")),
    }


def test_auditor_passes_render_nft_texts():
    audit_nft(_nft_good())
    assert "counter drop" in _nft_good()  # (what the hostile variants above start from)
    spec = RuleSpec("slow", None, Action("rate", rate_bit_s=1_000_000),
                    target=Target(direction="egress"))
    audit_nft(render_nft(compile_rules([spec], "tc", expires_at=STOP)))


@pytest.mark.parametrize("name", list(_nft_hostile()))
def test_auditor_refuses_hostile_nft_text(name):
    with pytest.raises(UnsafeRuleText) as caught:
        audit_nft(_nft_hostile()[name])
    assert "\n" not in str(caught.value)
