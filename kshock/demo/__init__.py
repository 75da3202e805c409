"""`kshock demo`: the meetup demo — a lab, real clients, six acts of precise Kafka faults.

    parser = argparse.ArgumentParser(); add_arguments(parser)
    sys.exit(run_demo(parser.parse_args()))

The package: `runner` plays the acts (`acts/`, one module each) on a `stage` (lab, background
clients, live tap, faults; cleaned up on any exit), narrated by `narrator` (colour and progress
on a terminal, plain text elsewhere or with NO_COLOR); `observe` holds the live tap and the
questions asked of decoded frames; `probe` is a raw-socket ApiVersions probe; `tour` has the
notebook's helpers. Nothing here runs at import time.
"""

from __future__ import annotations

import argparse

DEFAULT_LAB = "demo"


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--interactive", action="store_true",
                        help="pause before each act until Enter (never waits without a terminal)")
    parser.add_argument("--act", type=int, choices=range(1, 7), metavar="N",
                        help="run act N alone (1 watch, 2 block a producer, 3 reset a group member, "
                             "4 SYN-only stall, 5 dead-man switch, 6 replay coverage), with its own set-up")
    parser.add_argument("--lab", default=DEFAULT_LAB, metavar="NAME",
                        help=f"name of the lab the demo creates and removes (default {DEFAULT_LAB}; must not exist)")
    parser.add_argument("--json", metavar="FILE", help="also write the summary's measured facts to FILE as JSON")
    return parser


def run_demo(args: argparse.Namespace) -> int:
    """Play the demo; the exit status: 0 every act showed what it claims, 1 not, 130 interrupted.
    Raises UserError (exit 2) for an environment that cannot run it (not root, the lab exists)."""
    from kshock.demo.runner import run

    return run(args)


__all__ = ["DEFAULT_LAB", "add_arguments", "run_demo"]
