"""render_nft: golden nft scripts written by hand from the iptables rules they translate, and the
refusals (variable-length hops, string windows) in full.

Reading the golden text: a u32 test `32>>26&0x3C@(20+N)&M>>S=LO:HI` reads the 4 payload bytes at
N; nft loads the same 4 bytes as `@ih,N*8,32`, masks them with M cleared below S, and compares
with LO<<S .. HI<<S. So `@24>>16=0x0` (api_key == Produce) is `@ih,32,32 & 0xffff0000 == 0x0`,
`@24&0xFFFF=0x0:0x7F` (api_version 0..127) is `@ih,32,32 & 0xffff == 0x0-0x7f`, and the guard
`0>>24=0x45 && 32>>26&0x3C@20=0xA:0x6400000` is `ip hdrlength 5 @ih,0,32 == 0xa-0x6400000`.
2030-01-01T00:00:00 UTC is 1893456000 s after the epoch; --datestop includes its last second.
"""

from __future__ import annotations

import pytest

from kshock.cli import main
from kshock.conditions import parse_condition
from kshock.rules.compile import CompileError, compile_rules
from kshock.rules.kernel import Chain, Hop, Jump, KernelRule, RuleSet, StringWindow, U32Test
from kshock.rules.render_nft import nft_table, render_nft
from kshock.rules.spec import Action, RuleSpec, Trigger

STOP = "2030-01-01T00:00:00"
T = "meta time < 1893456001"
GUARD = "ip hdrlength 5 @ih,0,32 == 0xa-0x6400000"
PRODUCE = "@ih,32,32 & 0xffff0000 == 0x0 @ih,32,32 & 0xffff == 0x0-0x7f"
ANY_API = "@ih,32,32 & 0xffff0000 == 0x0-0x3ff0000 @ih,32,32 & 0xffff == 0x0-0x7f"
# "rdk-gzip" with its int16 length 8 at frame offset 12: 00 08 72 64 | 6b 2d 67 7a | (67 7a) 69 70
RDK_GZIP = "@ih,96,32 == 0x87264 @ih,128,32 == 0x6b2d677a @ih,144,32 == 0x677a6970"
NULL_CLIENT = "@ih,96,32 & 0xffff0000 == 0xffff0000"  # client_id length -1: the id is not sent
# A chain whose every rule reads the payload is entered only by segments with payload.
PAYLOAD = "@ih,0,32 == 0x0-0xffffffff "
HEAD = [
    "# kshock rule set t: load with `nft -f`, remove with `nft delete table ip kshock_t`",
    "# expires 2030-01-01T00:00:00 UTC (`meta time <` takes UTC epoch seconds)",
    "table ip kshock_t",
    "delete table ip kshock_t",
    "table ip kshock_t {",
    "\tchain input {",
    "\t\ttype filter hook input priority filter; policy accept;",
    f'\t\ttcp dport 9092 {{payload}}{T} counter jump KSHOCK-t comment "kshock:t"',
    "\t}",
    "",
]


def nft_one(text: str | None, action: Action = Action("drop"), **more) -> str:
    spec = RuleSpec("r1", parse_condition(text) if text else None, action, **more)
    return render_nft(compile_rules([spec], "t", expires_at=STOP, mark_base=0))


def script(*chains: tuple[str, list[str]], payload: bool = True) -> str:
    """The expected script; payload=False where a rule of the chain does not read the payload
    (a latch's connmark rule, a stall's FIN rule), so the jump cannot require it."""
    lines = [line.replace("{payload}", PAYLOAD if payload else "") for line in HEAD]
    for i, (name, rules) in enumerate(chains):
        if i:
            lines.append("")
        lines += [f"\tchain {name} {{", *(f"\t\t{rule}" for rule in rules), "\t}"]
    return "\n".join([*lines, "}", ""])


def test_api_produce():
    assert nft_one("api == Produce") == script(("KSHOCK-t", [
        f'meta l4proto tcp {GUARD} {PRODUCE} {T} counter drop comment "kshock:t/r1"']))


def test_api_in_set_becomes_an_anonymous_set():
    # JoinGroup = 11, SyncGroup = 14: u32 `@24>>16=0xB,0xE`.
    assert nft_one("api in {JoinGroup, SyncGroup}", Action("reset")) == script(("KSHOCK-t", [
        f"meta l4proto tcp {GUARD} @ih,32,32 & 0xffff0000 == {{ 0xb0000, 0xe0000 }} @ih,32,32 & 0xffff == 0x0-0x7f "
        f'{T} counter reject with tcp reset comment "kshock:t/r1"']))


def test_client_id_two_step_with_connmark():
    # Mark the connection when any request names the client (bit 0x100); act on its frames that
    # name it, and on the marked connection's frames that send no client_id (KIP-1313).
    assert nft_one('api == Produce and client_id == "rdk-gzip"') == script(("KSHOCK-t", [
        f"meta l4proto tcp {GUARD} {ANY_API} {RDK_GZIP} {T} counter ct mark set ct mark or 0x100 "
        f'comment "kshock:t/identity:0x100"',
        f'meta l4proto tcp {GUARD} {PRODUCE} {RDK_GZIP} {T} counter drop comment "kshock:t/r1"',
        f"meta l4proto tcp ct mark & 0x100 == 0x100 {GUARD} {PRODUCE} {NULL_CLIENT} {T} counter drop "
        f'comment "kshock:t/r1"']))


def test_latch_marks_then_acts_on_the_connection():
    assert nft_one("api == Produce", latch=True) == script(("KSHOCK-t", [
        f'meta l4proto tcp {GUARD} {PRODUCE} {T} counter ct mark set ct mark or 0x100 comment "kshock:t/r1"',
        f'meta l4proto tcp ct mark & 0x100 == 0x100 {T} counter drop comment "kshock:t/r1"']), payload=False)


def test_nth_is_numgen_in_its_own_chain():
    # --every 3 --packet 0: the 1st, 4th, 7th, ... packet (as measured in the kernel, for
    # iptables and nft alike); numgen inc mod 3 gives them 0, 1, 2, 0, 1, 2, ...
    assert nft_one("api == Fetch", trigger=Trigger("nth", every=3)) == script(
        ("KSHOCK-t", [f"meta l4proto tcp {GUARD} @ih,32,32 & 0xffff0000 == 0x10000 @ih,32,32 & 0xffff == 0x0-0x7f "
                      f'{T} counter jump KSHOCK-t-0t comment "kshock:t/r1"']),
        ("KSHOCK-t-0t", [f'meta l4proto tcp numgen inc mod 3 == 0 {T} counter drop comment "kshock:t/r1"']))


def test_probability_is_xt_statistics_own_test():
    # iptables stores lround(0.25 * 2^31) = 536870912 and keeps (random & 0x7fffffff) below it.
    assert nft_one("api == Produce", trigger=Trigger("probability", probability=0.25)) == script(("KSHOCK-t", [
        f"meta l4proto tcp {GUARD} {PRODUCE} meta random & 0x7fffffff < 536870912 {T} counter drop "
        'comment "kshock:t/r1"']))


def test_loss_rounds_like_iptables():
    # 0.3 * 2^31 = 644245094.4 -> 644245094 (what iptables-translate prints for --probability 0.3).
    assert "meta random & 0x7fffffff < 644245094 " in nft_one("api == Produce", Action("loss", percent=30))


def test_stall_without_condition():
    # Every segment with payload (the first payload word is readable) and every FIN.
    assert nft_one(None, Action("stall")) == script(("KSHOCK-t", [
        f'meta l4proto tcp @ih,0,32 == 0x0-0xffffffff {T} counter drop comment "kshock:t/r1"',
        f'tcp flags & fin == fin {T} counter drop comment "kshock:t/r1"']), payload=False)


def test_once_per_connection():
    assert nft_one("api == Metadata", trigger=Trigger("once-per-connection")) == script(
        ("KSHOCK-t", [f"meta l4proto tcp {GUARD} @ih,32,32 & 0xffff0000 == 0x30000 @ih,32,32 & 0xffff == 0x0-0x7f "
                      f'{T} counter jump KSHOCK-t-0t comment "kshock:t/r1"']),
        ("KSHOCK-t-0t", [f'meta l4proto tcp ct mark & 0x100 == 0x100 {T} counter return comment "kshock:t/r1"',
                         f'meta l4proto tcp {T} counter ct mark set ct mark or 0x100 comment "kshock:t/r1"',
                         f'meta l4proto tcp {T} counter drop comment "kshock:t/r1"']))


def _hand(rule: KernelRule, builtin: str = "INPUT", table: str = "filter") -> str:
    chain = Chain("KSHOCK-h", (rule,))
    ruleset = RuleSet("h", (chain,), (Jump(builtin, KernelRule("KSHOCK-h", destination_port=9092)),), table=table)
    return render_nft(ruleset)


def _body(text: str) -> str:
    """The one rule of KSHOCK-h."""
    lines = text.splitlines()
    return lines[lines.index("\tchain KSHOCK-h {") + 1].strip()


@pytest.mark.parametrize("test, nft", [
    (U32Test(4, ((7, 11),), mask=0xFFFF), "@ih,32,32 & 0xffff == 0x7-0xb"),
    (U32Test(0, ((0x12345678, 0x12345678),)), "@ih,0,32 == 0x12345678"),
    # >>24 = 2..0x7F: the top byte, compared shifted back into place.
    (U32Test(40, ((2, 0x7F),), shift=24), "@ih,320,32 & 0xff000000 == 0x2000000-0x7f000000"),
    # &0xFFFF>>8: the shift drops bits 0-7 of the mask; 0..0xFFFF holds every value of 8 bits.
    (U32Test(8, ((0, 0xFFFF),), mask=0xFFFF, shift=8), "@ih,64,32 & 0xff00 == 0x0-0xff00"),
    # A mask with holes stays exact: (w & 0xF0F0) >> 4 in {1, 3..5} = w & 0xF0F0 in {0x10, 0x30..0x50}.
    (U32Test(2, ((3, 5), (1, 1)), mask=0xF0F0, shift=4), "@ih,16,32 & 0xf0f0 == { 0x10, 0x30-0x50 }"),
    # Overlapping and adjacent ranges merge (an nft interval set refuses overlaps).
    (U32Test(0, ((1, 4), (3, 8), (9, 9), (20, 30)),), "@ih,0,32 == { 0x1-0x9, 0x14-0x1e }"),
])
def test_u32_translation(test, nft):
    assert _body(_hand(KernelRule("DROP", u32=((test,),)))) == f"meta l4proto tcp ip hdrlength 5 {nft} counter drop"


@pytest.mark.parametrize("rule, nft", [
    (KernelRule("ACCEPT", source="10.0.0.0/8", destination="192.0.2.7", in_interface="veth+", source_port=9092),
     'ip saddr 10.0.0.0/8 ip daddr 192.0.2.7 iifname "veth*" tcp sport 9092 counter accept'),
    (KernelRule("DROP", out_interface="eth0", tcp_flags=("SYN,RST,ACK,FIN", "SYN")),
     'oifname "eth0" tcp flags & (syn | rst | ack | fin) == syn counter drop'),
    (KernelRule("DROP", tcp_flags=("ALL", "NONE")),
     "tcp flags & (fin | syn | rst | psh | ack | urg | ecn | cwr) == 0x0 counter drop"),
    # --every N --packet P matches packets P, P+N, ... (0-based); numgen inc gives packet k k % N.
    (KernelRule("RETURN", statistic=("nth", "3", "1")), "meta l4proto tcp numgen inc mod 3 == 1 counter return"),
    (KernelRule("RETURN", statistic=("nth", "5", "4")), "meta l4proto tcp numgen inc mod 5 == 4 counter return"),
    (KernelRule("REJECT"), "meta l4proto tcp counter reject with icmp type port-unreachable"),
    # --set-xmark V/M: (old & ~M) ^ V; --set-mark V/M: (old & ~M) | V.
    (KernelRule("CONNMARK", ("--set-xmark", "0x5/0xff")),
     "meta l4proto tcp counter ct mark set ct mark and 0xffffff00 xor 0x5"),
    (KernelRule("CONNMARK", ("--set-xmark", "0x300/0x100")),
     "meta l4proto tcp counter ct mark set ct mark and 0xfffffeff xor 0x300"),
    (KernelRule("CONNMARK", ("--set-mark", "0x1/0x3")),
     "meta l4proto tcp counter ct mark set ct mark and 0xfffffffc or 0x1"),
    (KernelRule("MARK", ("--set-xmark", "0x4b530000/0xffffffff")), "meta l4proto tcp counter meta mark set 0x4b530000"),
    (KernelRule("CLASSIFY", ("--set-class", "4b53:3b00")), "meta l4proto tcp counter meta priority set 4b53:3b00"),
    (KernelRule("DROP", datestop="2026-11-24T05:10:12"), "meta l4proto tcp meta time < 1795497013 counter drop"),
    (KernelRule("DROP", connmark=(0, 0x300)), "meta l4proto tcp ct mark & 0x300 == 0x0 counter drop"),
])
def test_rule_parts(rule, nft):
    from kshock.rules.audit import UnsafeRuleText
    from kshock.rules.render_nft import _rule

    assert _rule(rule, set(), "KSHOCK-h", 0) == nft  # the translation itself
    # a whole text passes audit_nft only with what kshock writes: no MARK, no bare accept, no
    # connection mark outside kshock's bits (0x00FFFF00), set as BIT/BIT
    foreign = rule.target in ("ACCEPT", "MARK") or (rule.target == "CONNMARK" and " and 0x" in nft)
    if foreign:
        with pytest.raises(UnsafeRuleText):
            _hand(rule)
    else:
        assert _body(_hand(rule)) == nft


def test_long_comment_is_cut_to_nfts_128_bytes():
    rule = KernelRule("DROP", comment="kshock:" + "s" * 64 + "/" + "r" * 64)
    comment = _body(_hand(rule)).split("comment ", 1)[1]
    assert comment.startswith('"kshock:sss') and comment.endswith('r..."')
    assert len(comment[1:-1].encode()) <= 128


def test_mangle_table_hooks_at_mangle_priority_and_routes_output():
    text = _hand(KernelRule("DROP"), builtin="OUTPUT", table="mangle")
    assert "\tchain output {\n\t\ttype route hook output priority mangle; policy accept;\n" in text
    text = _hand(KernelRule("DROP"), builtin="FORWARD", table="mangle")
    assert "\tchain forward {\n\t\ttype filter hook forward priority mangle; policy accept;\n" in text


def test_table_and_script_frame():
    ruleset = RuleSet("h", (Chain("KSHOCK-h", (KernelRule("DROP"),)),),
                      (Jump("FORWARD", KernelRule("KSHOCK-h", destination_port=9092)),))
    assert nft_table(ruleset) == "ip kshock_h"
    assert render_nft(ruleset) == "\n".join([
        "# kshock rule set h: load with `nft -f`, remove with `nft delete table ip kshock_h`",
        "table ip kshock_h",
        "delete table ip kshock_h",
        "table ip kshock_h {",
        "\tchain forward {",
        "\t\ttype filter hook forward priority filter; policy accept;",
        "\t\ttcp dport 9092 counter jump KSHOCK-h",
        "\t}",
        "",
        "\tchain KSHOCK-h {",
        "\t\tmeta l4proto tcp counter drop",
        "\t}",
        "}", ""])


def test_hops_are_refused_naming_rule_and_field():
    with pytest.raises(CompileError) as error:
        nft_one('api == Fetch and api_version < 13 and topic == "orders"')
    assert str(error.value) == (
        "rule 'r1': nft cannot follow len(client_id) to reach `topics count` and `topic` (nft payload matches "
        "read at fixed offsets; u32's `@` reads the offset from the packet) — use --format iptables-restore")
    assert error.value.rule == "r1"


def test_hops_of_a_hand_made_rule_name_chain_and_position():
    test = U32Test(14, ((0, 0),), shift=24, hops=(Hop(12),))
    with pytest.raises(CompileError) as error:
        _hand(KernelRule("RETURN", u32=((test,),)))
    assert str(error.value) == (
        "rule 'KSHOCK-h #1': nft cannot follow the length at offset 12 to reach `offset 14` (nft payload matches "
        "read at fixed offsets; u32's `@` reads the offset from the packet) — use --format iptables-restore")


def test_string_windows_are_refused():
    window = StringWindow(b"\x00\x08rdk-gzip", 52, 142, field="client_id")
    with pytest.raises(CompileError) as error:
        _hand(KernelRule("DROP", strings=(window,), comment="kshock:h/drop-rdk"))
    assert str(error.value) == (
        "rule 'drop-rdk': nft has no string match for `client_id` (a byte pattern searched within a window) — "
        "use --format iptables-restore")


def test_cli_compile_format_nft(capsys):
    assert main(["compile", "--match", "api == Produce", "--action", "drop", "--name", "p", "--format", "nft"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# kshock rule set p: load with `nft -f`, remove with `nft delete table ip kshock_p`\n")
    assert f"{GUARD} {PRODUCE} meta time < " in out
    assert main(["compile", "--match", 'topic == "orders" and api == Fetch and api_version < 13', "--action", "drop",
                 "--format", "nft"]) == 2
    assert "nft cannot follow len(client_id)" in capsys.readouterr().err
