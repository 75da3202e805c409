"""Command line: parse arguments, dispatch, and map errors to exit codes (only here)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from kshock import __version__
from kshock.errors import ExitStatus, UserError

Handler = Callable[[argparse.Namespace], int]


def _lazy(module: str, function: str) -> Handler:
    """A handler that imports its module only when the command runs (`kshock --help` stays fast)."""

    def handler(args: argparse.Namespace) -> int:
        import importlib

        return getattr(importlib.import_module(module), function)(args)

    return handler


def ascii_int(text: str) -> int:
    """An argparse type: a number in plain ASCII decimal digits (int() would also take "٣",
    "9_092", " 7" and "+7")."""
    if not (text.isascii() and text.isdigit() and len(text) <= 18):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (write it in plain decimal digits 0-9)")
    return int(text)


def port_number(text: str) -> int:
    """An argparse type: a TCP port, 1 to 65535, in plain ASCII decimal digits."""
    value = ascii_int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a TCP port (use 1 to 65535)")
    return value


def ascii_seconds(text: str) -> float:
    """An argparse type: seconds in plain ASCII decimal (float() would also take "١", "1_0", "inf", "nan")."""
    whole, dot, fraction = text.partition(".")
    if not (whole.isascii() and whole.isdigit() and len(whole) <= 9
            and (not dot or (fraction.isascii() and fraction.isdigit() and len(fraction) <= 9))):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds (write e.g. 5 or 2.5)")
    return float(text)


def _decode(args: argparse.Namespace) -> int:
    import sys

    from kshock.replay import listing as decoding

    if not 1 <= args.max_flow_mib <= 4096:
        raise UserError(f"--max-flow-mib {args.max_flow_mib} is out of range", "use 1 to 4096")
    condition = None
    if args.filter is not None:
        from kshock.conditions import parse_condition

        condition = parse_condition(args.filter)
    run = decoding.open_run(args.file, args.port or [9092], args.max_flow_mib, condition)
    try:
        if args.json:
            decoding.write_json_lines(run, sys.stdout)
            sys.stdout.flush()
            print(decoding.summary(run).replace("\n", "; "), file=sys.stderr)
        else:
            decoding.write_table(run, sys.stdout)
            print("\n" + decoding.summary(run))
    except BrokenPipeError:  # `kshock decode f.pcap | head` is fine
        _silence_stdout()
        return ExitStatus.OK
    return ExitStatus.FAILED if run.problem else ExitStatus.OK


def _compile(args: argparse.Namespace) -> int:
    import time

    from kshock.rules.compile import compile_rules
    from kshock.rules.render import render_commands, render_json, render_restore
    from kshock.rules.render_nft import render_nft

    from kshock.apply.commands import specs_from_args

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


def _explain(args: argparse.Namespace) -> int:
    import time

    from kshock.rules.compile import compile_rules
    from kshock.rules.explain import explain

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
    print(explain(compile_rules(specs, name, expires_at=expires, topic_ids=_topic_ids(args))), end="")
    return ExitStatus.OK


def _topic_ids(args: argparse.Namespace):
    """--topic-ids FILE: topic ids learned from a capture's Metadata responses."""
    source = getattr(args, "topic_ids", None)
    if not source:
        return None
    from kshock.replay.coverage import learn_topic_ids

    return learn_topic_ids(source, getattr(args, "port", None) or [9092])


def _add_rule_source(sub: argparse.ArgumentParser, with_duration: bool = True) -> None:
    sub.add_argument("rulefile", nargs="?", help="a rule file (rules/*.yaml); or give --match and --action")
    sub.add_argument("--match", metavar="EXPR", help='a condition, e.g. \'api == Produce and client_id == "shop"\'; '
                     "default: all traffic of the target")
    sub.add_argument("--action", metavar="ACTION",
                     help="drop | reset | stall | loss 30%% | rate 1mbit | delay 200ms [jitter 20ms] | duplicate 5%% | "
                     "corrupt 1%% | reorder 10%%")
    sub.add_argument("--name", help="the rule's name (with --match/--action; default: adhoc)")
    sub.add_argument("--port", type=port_number, action="append", metavar="N", help="Kafka port(s) (default: 9092)")
    sub.add_argument("--host", help="the broker's (or peer's) address or network")
    sub.add_argument("--interface", metavar="IF", help="network interface")
    sub.add_argument("--direction", default="ingress", choices=["ingress", "egress", "forward", "both"],
                     help="ingress: requests arrive here (a broker); egress: they leave here (a client); "
                     "forward: they pass through (default: %(default)s)")
    if with_duration:
        sub.add_argument("--duration", metavar="D", help="how long the fault lasts: 90s, 5m, 1h (default: 5m, or the file's)")


def _silence_stdout() -> None:
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _scenario_names() -> list[str]:
    from kshock.lab.scenarios import SCENARIOS

    return sorted(SCENARIOS)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kshock",
        description="Break Apache Kafka on purpose, precisely: a Kafka-aware fault injector.",
    )
    parser.add_argument("--version", action="version", version=f"kshock {__version__}")
    parser.add_argument("--traceback", action="store_true", help="show Python tracebacks on errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    decode = commands.add_parser(
        "decode",
        help="decode the Kafka frames in a pcap/pcapng capture",
        description="Decode every Kafka request and response in a capture (pcap or pcapng): TCP is "
        "reassembled, responses are paired with their requests, lost segments are reported as gaps. "
        "Prints a table and a summary, or JSON Lines (one object per frame) with --json. "
        "Exit status 1 when the capture file itself is damaged (what came before is still decoded).",
    )
    decode.add_argument("file", help="capture file (pcap or pcapng; Ethernet, VLAN, Linux cooked v1/v2, raw IP, BSD loopback)")
    decode.add_argument("--port", type=port_number, action="append", metavar="N",
                        help="TCP port Kafka listens on; repeat for several (default: 9092)")
    decode.add_argument("--json", action="store_true", help="JSON Lines on stdout, one object per frame; summary on stderr")
    decode.add_argument("--filter", metavar="EXPR",
                        help='show only frames matching a condition, e.g. \'api == Produce and client_id == "shop"\'')
    decode.add_argument("--max-flow-mib", type=ascii_int, default=64, metavar="MIB",
                        help="memory bound per TCP connection (default: %(default)s)")
    decode.set_defaults(handler=_decode)

    compile_ = commands.add_parser(
        "compile", help="compile rules into kernel rules (nothing is applied)",
        description="Compile a rule file, or one --match/--action rule, into iptables rules in kshock's own "
        "chains. The iptables-restore output loads with `iptables-restore --noflush`. --format nft writes one "
        "`nft -f` script for kshock's own table (ip kshock_<name>; remove it with `nft delete table`); nft's raw "
        "payload matches read at fixed offsets, so rules that must step over a variable-length field (topic "
        "names after the client-id, as u32's `@` does) are refused there.")
    _add_rule_source(compile_)
    compile_.add_argument("--format", default="iptables-restore",
                          choices=["iptables-restore", "iptables", "nft", "json"],
                          help="output format (default: %(default)s)")
    compile_.add_argument("--set-name", metavar="NAME", help="rule set name, used in chain names (default: the file name)")
    compile_.add_argument("--topic-ids", metavar="CAPTURE",
                          help="learn topic ids (for Fetch v13+/Produce v13 topic conditions) from a capture's Metadata")
    compile_.set_defaults(handler=_compile)

    explain_ = commands.add_parser(
        "explain", help="show compiled rules annotated byte by byte",
        description="Compile a rule file or a condition and annotate every u32 test: which Kafka field it reads, "
        "at which frame offset, for which API versions.")
    explain_.add_argument("source", help="a rule file, or a condition (quoted)")
    explain_.add_argument("--action", default="drop", help="action for a condition (default: %(default)s)")
    explain_.add_argument("--port", type=port_number, action="append", metavar="N", help="Kafka port(s) (default: 9092)")
    explain_.add_argument("--topic-ids", metavar="CAPTURE", help="learn topic ids from a capture's Metadata responses")
    explain_.set_defaults(handler=_explain)

    replay_ = commands.add_parser(
        "replay", help="replay a capture against rules: what the kernel rules would hit",
        description="Decode a capture, evaluate each rule's condition on every frame (intent) and the compiled "
        "kernel rules on every packet (exact u32/string emulation, connmark and nth state). Per rule: intent "
        "frames, kernel packets, hit and missed frames, false packets, with packet numbers as in Wireshark.")
    replay_.add_argument("file", help="capture file (pcap or pcapng)")
    replay_.add_argument("--rules", required=True, metavar="RULEFILE", help="rule file (see rules/*.yaml)")
    replay_.add_argument("--port", type=port_number, action="append", metavar="N",
                         help="Kafka port; repeat for several (default: the rules' target ports)")
    replay_.add_argument("--json", action="store_true", help="JSON Lines, one object per rule; summary on stderr")
    replay_.add_argument("--kernel", action="store_true", help="also load the rules into throwaway namespaces, "
                         "replay the packets and report the kernel's own counters (root)")
    replay_.add_argument("--topic-ids", metavar="auto", choices=["auto"],
                         help="learn topic ids (Fetch v13+/Produce v13) from the capture's Metadata responses")
    replay_.set_defaults(handler=_lazy("kshock.replay.coverage", "replay_command"))

    apply_ = commands.add_parser(
        "apply", help="apply a fault: rules in kshock's own chains, expiring by themselves",
        description="Apply a rule file or one --match/--action rule to the host, a namespace (--netns) or the "
        "namespace of a process (--pid). Returns once the fault is in place. Every rule carries "
        "`-m time --datestop`, so the kernel ends the fault at its time even if kshock is killed.")
    _add_rule_source(apply_)
    apply_.add_argument("--netns", metavar="NAME", help="apply inside this network namespace")
    apply_.add_argument("--pid", type=ascii_int, help="apply inside the network namespace of this process")
    apply_.add_argument("--dry-run", action="store_true", help="print the rules that would be loaded; change nothing")
    apply_.add_argument("--hold", action="store_true", help="stay in the foreground with a countdown; revert on exit or Ctrl-C")
    apply_.add_argument("--force", action="store_true", help="apply even if the rules would cut this SSH session")
    apply_.add_argument("--set-name", metavar="NAME",
                        help="apply a rule file as ONE fault named NAME (one rule set, reverted together; rules of "
                        "different APIs get a chain each, which costs unaffected traffic less); its rules share one "
                        "duration (give --duration if they differ). Default: one fault per rule, each revertable")
    apply_.set_defaults(handler=_lazy("kshock.apply.commands", "apply"))

    revert_ = commands.add_parser("revert", help="remove faults (all of kshock's chains with --all)",
                                  description="Remove faults by name, or every fault with --all (which also removes "
                                  "kshock chains left behind by crashed runs). A name active in several namespaces "
                                  "needs --netns/--pid/--host (or --all-scopes). --pid also selects the faults applied "
                                  "with that pid after the process exited.")
    revert_.add_argument("names", nargs="*", metavar="NAME", help="the fault(s) to remove")
    revert_.add_argument("--all", action="store_true", help="every fault, and leftovers of crashed runs")
    revert_.add_argument("--netns", metavar="NAME", help="only in this network namespace")
    revert_.add_argument("--pid", type=ascii_int, help="only in the network namespace of this process")
    revert_.add_argument("--host", action="store_true", help="only in the host's own network namespace")
    revert_.add_argument("--all-scopes", action="store_true",
                         help="revert NAME in every namespace that has a fault of that name")
    revert_.set_defaults(handler=_lazy("kshock.apply.commands", "revert"))

    status_ = commands.add_parser("status", help="active faults: rules, time left, kernel counters",
                                  description="Show every active fault with its time left and the kernel's packet and "
                                  "byte counters per rule. Expired faults are removed first.")
    status_.add_argument("--json", action="store_true", help="JSON output")
    status_.set_defaults(handler=_lazy("kshock.apply.commands", "status"))

    shell = commands.add_parser(
        "shell", help="interactive: watch live Kafka traffic, turn frames into faults",
        description="A REPL on live Kafka traffic (or a capture): decoded frames scroll while the prompt "
        "stays usable; pick a frame, write `when EXPR do ACTION`, see the kernel rules, apply and revert them. "
        "`--script FILE` runs the same commands without a terminal. Type `help` inside.")
    from kshock.shell.options import add_arguments as add_shell_arguments

    add_shell_arguments(shell)
    shell.set_defaults(handler=_lazy("kshock.shell.app", "run_shell"))

    demo = commands.add_parser(
        "demo", help="the meetup demo: a lab, real clients, six acts of precise Kafka faults (~1 min)",
        description="Brings up a lab with two producers and a two-member consumer group, then: (1) watch live "
        "decoded traffic, (2) block one producer's Produce requests while the other keeps producing, (3) reset "
        "a group member's connections and watch the rebalance, (4) a SYN-only stall, (5) the dead-man switch, "
        "(6) replay coverage of the acts' rules on what was captured. Every number is measured; the demo exits "
        "0 only when every act showed what it claims, and cleans up everything.")
    from kshock.demo import add_arguments as add_demo_arguments

    add_demo_arguments(demo)
    demo.set_defaults(handler=_lazy("kshock.demo", "run_demo"))

    lab = commands.add_parser(
        "lab",
        help="a disposable Kafka lab in network namespaces",
        description="A disposable Kafka lab: a Tansu broker and client hosts in their own network "
        "namespaces, joined by a private bridge. Nothing touches the host's own network.",
    )
    lab_commands = lab.add_subparsers(dest="lab_command", metavar="LAB_COMMAND", required=True)

    def lab_command(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        sub = lab_commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--name", default="lab", help="lab name (default: %(default)s)")
        sub.set_defaults(handler=handler)
        return sub

    up = lab_command("up", _lazy("kshock.lab.commands", "up"), "create the lab and start the broker; returns once it answers ApiVersions")
    up.add_argument("--clients", type=ascii_int, default=3, help="client namespaces (default: %(default)s)")
    up.add_argument("--port", type=port_number, default=9092, help="broker port (default: %(default)s)")
    up.add_argument(
        "--timeout", type=ascii_seconds, default=20.0, help="seconds to wait for the broker (default: %(default)s)"
    )

    lab_command("down", _lazy("kshock.lab.commands", "down"), "remove everything the lab made (idempotent; also after a crash)")

    status = lab_command("status", _lazy("kshock.lab.commands", "status"), "show namespaces, addresses and the broker")
    status.add_argument("--json", action="store_true", help="print the lab state as JSON")

    exec_ = lab_command("exec", _lazy("kshock.lab.commands", "exec_"), "run a command in a client namespace")
    exec_.add_argument("client", help="client name (c1, c2, ...), or 'broker'")
    exec_.add_argument("argv", nargs=argparse.REMAINDER, help="-- COMMAND [ARG ...]")

    scenario_help = "workload scenario: " + ", ".join(_scenario_names())
    traffic = lab_command("traffic", _lazy("kshock.lab.commands", "traffic"), "run real Kafka client workloads in the client namespaces")
    traffic.add_argument("--scenario", default="mixed", help=scenario_help + " (default: %(default)s)")
    traffic.add_argument("--duration", type=ascii_seconds, help="seconds (default: the scenario's own, 4-8 s)")
    traffic.add_argument("--json", action="store_true", help="print the workloads' ground-truth report as JSON")

    record = lab_command("record", _lazy("kshock.lab.commands", "record"), "record a scenario's traffic with tcpdump, plus a ground-truth sidecar")
    record.add_argument("scenario", help=scenario_help)
    record.add_argument("out", help="output pcap (the sidecar is written beside it as NAME.json)")
    record.add_argument("--duration", type=ascii_seconds, help="seconds (default: the scenario's own, 4-8 s)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return ExitStatus.USAGE
    try:
        return int(handler(args))
    except BrokenPipeError:  # `kshock ... | head`: the reader has seen enough
        _silence_stdout()
        return ExitStatus.OK
    except UserError as error:
        if args.traceback:
            raise
        print(f"kshock: {error}", file=sys.stderr)
        return int(error.status)
    except KeyboardInterrupt:
        print("kshock: interrupted", file=sys.stderr)
        return ExitStatus.INTERRUPTED
    except Exception as error:  # a bug of ours: still one line, and the way to the details
        if args.traceback:
            raise
        print(f"kshock: internal error ({type(error).__name__}: {_one_line(str(error))}) — this is a bug in "
              "kshock: run the command again with --traceback and report what it prints", file=sys.stderr)
        return ExitStatus.FAILED


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
