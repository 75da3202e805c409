"""Command line: parse arguments, dispatch, and map errors to exit codes (only here)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from kshock import __version__
from kshock.errors import ExitStatus, UserError

Handler = Callable[[argparse.Namespace], int]


def _lab_up(args: argparse.Namespace) -> int:
    from kshock.lab import commands

    return commands.up(args)


def _lab_down(args: argparse.Namespace) -> int:
    from kshock.lab import commands

    return commands.down(args)


def _lab_status(args: argparse.Namespace) -> int:
    from kshock.lab import commands

    return commands.status(args)


def _lab_exec(args: argparse.Namespace) -> int:
    from kshock.lab import commands

    return commands.exec_(args)


def _lab_traffic(args: argparse.Namespace) -> int:
    from kshock.lab import commands

    return commands.traffic(args)


def _lab_record(args: argparse.Namespace) -> int:
    from kshock.lab import commands

    return commands.record(args)


def _decode(args: argparse.Namespace) -> int:
    import sys

    from kshock import decoding

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
    decode.add_argument("--port", type=int, action="append", metavar="N",
                        help="TCP port Kafka listens on; repeat for several (default: 9092)")
    decode.add_argument("--json", action="store_true", help="JSON Lines on stdout, one object per frame; summary on stderr")
    decode.add_argument("--filter", metavar="EXPR",
                        help='show only frames matching a condition, e.g. \'api == Produce and client_id == "shop"\'')
    decode.add_argument("--max-flow-mib", type=int, default=64, metavar="MIB",
                        help="memory bound per TCP connection (default: %(default)s)")
    decode.set_defaults(handler=_decode)

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

    up = lab_command("up", _lab_up, "create the lab and start the broker; returns once it answers ApiVersions")
    up.add_argument("--clients", type=int, default=3, help="client namespaces (default: %(default)s)")
    up.add_argument("--port", type=int, default=9092, help="broker port (default: %(default)s)")
    up.add_argument(
        "--timeout", type=float, default=20.0, help="seconds to wait for the broker (default: %(default)s)"
    )

    lab_command("down", _lab_down, "remove everything the lab made (idempotent; also after a crash)")

    status = lab_command("status", _lab_status, "show namespaces, addresses and the broker")
    status.add_argument("--json", action="store_true", help="print the lab state as JSON")

    exec_ = lab_command("exec", _lab_exec, "run a command in a client namespace")
    exec_.add_argument("client", help="client name (c1, c2, ...), or 'broker'")
    exec_.add_argument("argv", nargs=argparse.REMAINDER, help="-- COMMAND [ARG ...]")

    scenario_help = "workload scenario: " + ", ".join(_scenario_names())
    traffic = lab_command("traffic", _lab_traffic, "run real Kafka client workloads in the client namespaces")
    traffic.add_argument("--scenario", default="mixed", help=scenario_help + " (default: %(default)s)")
    traffic.add_argument("--duration", type=float, help="seconds (default: the scenario's own, 4-8 s)")
    traffic.add_argument("--json", action="store_true", help="print the workloads' ground-truth report as JSON")

    record = lab_command("record", _lab_record, "record a scenario's traffic with tcpdump, plus a ground-truth sidecar")
    record.add_argument("scenario", help=scenario_help)
    record.add_argument("out", help="output pcap (the sidecar is written beside it as NAME.json)")
    record.add_argument("--duration", type=float, help="seconds (default: the scenario's own, 4-8 s)")
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
    except UserError as error:
        if args.traceback:
            raise
        print(f"kshock: {error}", file=sys.stderr)
        return int(error.status)
    except KeyboardInterrupt:
        print("kshock: interrupted", file=sys.stderr)
        return ExitStatus.INTERRUPTED
