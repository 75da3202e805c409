"""The options of `kshock shell`, kept apart from the app so `kshock --help` stays fast."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `kshock shell` (cli.py adds them to its subcommand)."""
    from kshock.cli import ascii_int, port_number  # (ASCII decimal only: int() takes "٣" and "9_092")

    where = parser.add_argument_group("where the traffic comes from (one of)")
    where.add_argument("--lab", metavar="NAME", help="capture on the bridge of lab NAME's broker namespace; "
                       "apply puts rules into that namespace")
    where.add_argument("--netns", metavar="NAME", help="capture (and apply) in network namespace NAME")
    where.add_argument("--interface", metavar="IF", help="capture on this interface only (default: every "
                       "interface; with --lab, the lab bridge)")
    where.add_argument("--pcap", metavar="FILE", help="read a capture file instead of live traffic")
    parser.add_argument("--port", type=port_number, action="append", metavar="N",
                        help="TCP port Kafka listens on; repeat for several (default: 9092, or the lab's)")
    parser.add_argument("--script", metavar="FILE", help="run the commands in FILE (one a line; - for stdin) "
                        "without a terminal, then leave; exit status 1 when a command failed")
    parser.add_argument("--direction", default="ingress", choices=("ingress", "egress", "forward", "both"),
                        help="where rules act, seen from the namespace: ingress (requests arrive: a broker), "
                        "egress (they leave: a client), forward (default: %(default)s)")
    parser.add_argument("--buffer-mib", type=ascii_int, default=64, metavar="MIB",
                        help="kernel socket buffer for live capture (default: %(default)s)")
    parser.add_argument("--history", metavar="FILE", help="command history file (default: "
                        "$XDG_STATE_HOME/kshock/history or ~/.kshock_history)")
