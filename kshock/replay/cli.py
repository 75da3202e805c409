"""EDGE: the offline commands — `kshock decode`, `compile`, `explain`, `replay`: they read captures
and rule files, print, and change nothing. Their sub-parsers, and the handlers of the first three
(replay's is coverage.replay_command).

Light on purpose: kshock.cli registers these at every start (`kshock --help` stays fast), and
hands over the argument types (`types`, a kshock.cli.ArgumentTypes); each handler imports what
it uses when it runs.
"""

from __future__ import annotations

import argparse
import os
import sys

from kshock.apply.cli import add_rule_source
from kshock.errors import ExitStatus, UserError


def register(commands: argparse._SubParsersAction, types) -> None:
    """Add decode, compile, explain and replay to the CLI's sub-parsers."""
    decode = commands.add_parser(
        "decode",
        help="decode the Kafka frames in a pcap/pcapng capture",
        description="Decode every Kafka request and response in a capture (pcap or pcapng): TCP is "
        "reassembled, responses are paired with their requests, lost segments are reported as gaps. "
        "Prints a table and a summary, or JSON Lines (one object per frame) with --json. "
        "Exit status 1 when the capture file itself is damaged (what came before is still decoded).",
    )
    decode.add_argument("file", help="capture file (pcap or pcapng; Ethernet, VLAN, Linux cooked v1/v2, raw IP, BSD loopback)")
    decode.add_argument("--port", type=types.port, action="append", metavar="N",
                        help="TCP port Kafka listens on; repeat for several (default: 9092)")
    decode.add_argument("--json", action="store_true", help="JSON Lines on stdout, one object per frame; summary on stderr")
    decode.add_argument("--filter", metavar="EXPR",
                        help='show only frames matching a condition, e.g. \'api == Produce and client_id == "shop"\'')
    decode.add_argument("--max-flow-mib", type=types.number, default=64, metavar="MIB",
                        help="memory bound per TCP connection (default: %(default)s)")
    decode.set_defaults(handler="kshock.replay.cli:decode")

    compile_ = commands.add_parser(
        "compile", help="compile rules into kernel rules (nothing is applied)",
        description="Compile a rule file, or one --match/--action rule, into iptables rules in kshock's own "
        "chains. The iptables-restore output loads with `iptables-restore --noflush`. --format nft writes one "
        "`nft -f` script for kshock's own table (ip kshock_<name>; remove it with `nft delete table`); nft's raw "
        "payload matches read at fixed offsets, so rules that must step over a variable-length field (topic "
        "names after the client-id, as u32's `@` does) are refused there.")
    add_rule_source(compile_, types)
    compile_.add_argument("--format", default="iptables-restore",
                          choices=["iptables-restore", "iptables", "nft", "json"],
                          help="output format (default: %(default)s)")
    compile_.add_argument("--set-name", metavar="NAME", help="rule set name, used in chain names (default: the file name)")
    compile_.add_argument("--topic-ids", metavar="CAPTURE",
                          help="learn topic ids (for Fetch v13+/Produce v13 topic conditions) from a capture's Metadata")
    compile_.set_defaults(handler="kshock.replay.cli:compile_")

    explain_ = commands.add_parser(
        "explain", help="show compiled rules annotated byte by byte",
        description="Compile a rule file or a condition and annotate every u32 test: which Kafka field it reads, "
        "at which frame offset, for which API versions.")
    explain_.add_argument("source", help="a rule file, or a condition (quoted)")
    explain_.add_argument("--action", default="drop", help="action for a condition (default: %(default)s)")
    explain_.add_argument("--port", type=types.port, action="append", metavar="N", help="Kafka port(s) (default: 9092)")
    explain_.add_argument("--topic-ids", metavar="CAPTURE", help="learn topic ids from a capture's Metadata responses")
    explain_.set_defaults(handler="kshock.replay.cli:explain")

    replay_ = commands.add_parser(
        "replay", help="replay a capture against rules: what the kernel rules would hit",
        description="Decode a capture, evaluate each rule's condition on every frame (intent) and the compiled "
        "kernel rules on every packet (exact u32/string emulation, connmark and nth state). Per rule: intent "
        "frames, kernel packets, hit and missed frames, false packets, with packet numbers as in Wireshark.")
    replay_.add_argument("file", help="capture file (pcap or pcapng)")
    replay_.add_argument("--rules", required=True, metavar="RULEFILE", help="rule file (see rules/*.yaml)")
    replay_.add_argument("--port", type=types.port, action="append", metavar="N",
                         help="Kafka port; repeat for several (default: the rules' target ports)")
    replay_.add_argument("--json", action="store_true", help="JSON Lines, one object per rule; summary on stderr")
    replay_.add_argument("--kernel", action="store_true", help="also load the rules into throwaway namespaces, "
                         "replay the packets and report the kernel's own counters (root)")
    replay_.add_argument("--topic-ids", metavar="auto", choices=["auto"],
                         help="learn topic ids (Fetch v13+/Produce v13) from the capture's Metadata responses")
    replay_.set_defaults(handler="kshock.replay.coverage:replay_command")


def decode(args: argparse.Namespace) -> int:
    """`kshock decode FILE`: a table (or JSON Lines) of the capture's Kafka frames, and a summary."""
    from kshock.replay import listing as decoding

    if not 1 <= args.max_flow_mib <= 4096:
        raise UserError(f"--max-flow-mib {args.max_flow_mib} is out of range", "use 1 to 4096")
    condition = None
    if args.filter is not None:
        from kshock.conditions import parse_condition

        condition = parse_condition(args.filter)
    run = decoding.open_run(args.file, args.port or [9092], args.max_flow_mib, condition)
    # (a closed pipe, `kshock decode f.pcap | head`, is fine: kshock.cli.main says so)
    if args.json:
        decoding.write_json_lines(run, sys.stdout)
        sys.stdout.flush()
        print(decoding.summary(run).replace("\n", "; "), file=sys.stderr)
    else:
        decoding.write_table(run, sys.stdout)
        print("\n" + decoding.summary(run))
    return ExitStatus.FAILED if run.problem else ExitStatus.OK


def compile_(args: argparse.Namespace) -> int:
    """`kshock compile`: the kernel rules of a rule file (or one --match/--action rule), as text."""
    import time

    from kshock.apply.handlers import specs_from_args
    from kshock.rules.compile import compile_rules
    from kshock.rules.render import render_commands, render_json, render_restore
    from kshock.rules.render_nft import render_nft

    specs = specs_from_args(args)
    name = args.set_name or (os.path.splitext(os.path.basename(args.rulefile))[0] if args.rulefile else specs[0].name)
    expires = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + max(s.duration_s for s in specs)))
    ruleset = compile_rules(specs, name, expires_at=expires, topic_ids=_topic_ids(args))
    for warning in ruleset.warnings:
        print(f"kshock: warning: {warning}", file=sys.stderr)
    render = {"iptables-restore": render_restore, "iptables": render_commands, "json": render_json,
              "nft": render_nft}[args.format]
    print(render(ruleset), end="" if args.format != "json" else "\n")
    return ExitStatus.OK


def explain(args: argparse.Namespace) -> int:
    """`kshock explain`: the compiled rules of a rule file or a condition, annotated byte by byte."""
    import time

    from kshock.rules.compile import compile_rules
    from kshock.rules.explain import explain as annotate

    if args.source.endswith((".yaml", ".yml")) or os.path.exists(args.source):
        from kshock.replay.coverage import load_rule_file

        specs = load_rule_file(args.source)
        name = os.path.splitext(os.path.basename(args.source))[0]
    else:
        import yaml

        from kshock.rules.rulefile import parse_rule_file

        rule = {"name": "expr", "match": args.source, "action": args.action, "target": {"ports": args.port or [9092]}}
        specs = parse_rule_file(yaml.safe_dump({"rules": [rule]}, sort_keys=False), "<command line>")
        name = "expr"
    expires = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + max(s.duration_s for s in specs)))
    print(annotate(compile_rules(specs, name, expires_at=expires, topic_ids=_topic_ids(args))), end="")
    return ExitStatus.OK


def _topic_ids(args: argparse.Namespace):
    """--topic-ids FILE: topic ids learned from a capture's Metadata responses."""
    source = getattr(args, "topic_ids", None)
    if not source:
        return None
    from kshock.replay.coverage import learn_topic_ids

    return learn_topic_ids(source, getattr(args, "port", None) or [9092])


__all__ = ["compile_", "decode", "explain", "register"]
