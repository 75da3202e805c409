"""EDGE: `kshock shell` on the command line — its sub-parser, and the handler that starts it.

Light on purpose: kshock.cli registers this at every start (`kshock --help` stays fast), and
hands over the argument types (`types`, a kshock.cli.ArgumentTypes); the capture, the
prompt_toolkit app and the rest are imported by run_shell, when the shell runs.
"""

from __future__ import annotations

import argparse
import sys

from kshock.errors import UserError


def register(commands: argparse._SubParsersAction, types) -> None:
    """Add `kshock shell` to the CLI's sub-parsers."""
    shell = commands.add_parser(
        "shell", help="interactive: watch live Kafka traffic, turn frames into faults",
        description="A REPL on live Kafka traffic (or a capture): decoded frames scroll while the prompt "
        "stays usable; pick a frame, write `when EXPR do ACTION`, see the kernel rules, apply and revert them. "
        "`--script FILE` runs the same commands without a terminal. Type `help` inside.")
    add_arguments(shell, types)
    shell.set_defaults(handler="kshock.shell.cli:run_shell")


def add_arguments(parser: argparse.ArgumentParser, types) -> None:
    """The options of `kshock shell`."""
    where = parser.add_argument_group("where the traffic comes from (one of)")
    where.add_argument("--lab", metavar="NAME", help="capture on the bridge of lab NAME's broker namespace; "
                       "apply puts rules into that namespace")
    where.add_argument("--netns", metavar="NAME", help="capture (and apply) in network namespace NAME")
    where.add_argument("--interface", metavar="IF", help="capture on this interface only (default: every "
                       "interface; with --lab, the lab bridge)")
    where.add_argument("--pcap", metavar="FILE", help="read a capture file instead of live traffic")
    parser.add_argument("--port", type=types.port, action="append", metavar="N",
                        help="TCP port Kafka listens on; repeat for several (default: 9092, or the lab's)")
    parser.add_argument("--script", metavar="FILE", help="run the commands in FILE (one a line; - for stdin) "
                        "without a terminal, then leave; exit status 1 when a command failed")
    parser.add_argument("--direction", default="ingress", choices=("ingress", "egress", "forward", "both"),
                        help="where rules act, seen from the namespace: ingress (requests arrive: a broker), "
                        "egress (they leave: a client), forward (default: %(default)s)")
    parser.add_argument("--buffer-mib", type=types.number, default=64, metavar="MIB",
                        help="kernel socket buffer for live capture (default: %(default)s)")
    parser.add_argument("--history", metavar="FILE", help="command history file (default: "
                        "$XDG_STATE_HOME/kshock/history or ~/.kshock_history)")


def run_shell(args: argparse.Namespace) -> int:
    """`kshock shell [--lab NAME | --netns NAME] [--interface IF] [--pcap FILE] [--port N ...] [--script FILE]`:
    watch Kafka traffic, pick a frame, turn it into a fault, apply it, revert it."""
    from kshock.shell.commands import Shell
    from kshock.shell.script import read_script, run_script
    from kshock.shell.session import Session
    from kshock.shell.sources import open_source

    for name, default in (("interface", None), ("netns", None), ("lab", None), ("port", None), ("pcap", None),
                          ("script", None), ("direction", "ingress"), ("buffer_mib", 64), ("history", None)):
        if not hasattr(args, name):
            setattr(args, name, default)
    ports = tuple(args.port or [9092])
    if not all(0 < p < 65536 for p in ports):
        raise UserError(f"--port {ports} is not a TCP port", "use 1 to 65535")
    session = Session(ports)
    target, source = open_source(args, session)
    shell = Shell(session, target)
    if args.script:
        return run_script(shell, source, read_script(args.script), sys.stdout)
    if not sys.stdin.isatty():
        raise UserError("kshock shell needs a terminal", "run it in one, or give the commands with --script FILE "
                        "(--script - reads them from stdin)")
    from kshock.host.files import check_text_file
    from kshock.shell.app import ShellApp, history_path

    history = history_path(args.history)
    check_text_file(history, "shell history")  # (prompt_toolkit reads it whole: not /dev/zero)
    return ShellApp(shell, source, history).run()


__all__ = ["add_arguments", "register", "run_shell"]
