"""`kshock demo`: the meetup demo — a lab, real clients, six acts of precise Kafka faults.

    kshock demo [--act N] [--interactive] [--json FILE]     (or: python -m kshock.demo ...)

The package: `runner` plays the acts (`acts/`, one module each) on a `stage` (lab, background
clients, live tap, faults; cleaned up on any exit), narrated by `narrator` (colour and progress
on a terminal, plain text elsewhere or with NO_COLOR); `clients` reads what the clients say they
did (their own logs and reports) — the yardstick every act's claim is checked against; `observe`
holds the live tap and the questions asked of decoded frames (what kshock saw, narrated
alongside); `probe` is a raw-socket ApiVersions probe; `tour` has the notebook's helpers.
Nothing here runs at import time.
"""

from __future__ import annotations

import argparse

DEFAULT_LAB = "demo"


def register(commands: argparse._SubParsersAction, types: object) -> None:
    """Add `kshock demo` to the CLI's sub-parsers (light: the demo is imported when it runs)."""
    demo = commands.add_parser(
        "demo", help="the meetup demo: a lab, real clients, six acts of precise Kafka faults (~1 min)",
        description="Brings up a lab with two producers and a two-member consumer group, then: (1) watch live "
        "decoded traffic, (2) block one producer's Produce requests while the other keeps producing, (3) reset "
        "a group member's connections and watch the rebalance, (4) a SYN-only stall, (5) the dead-man switch, "
        "(6) replay coverage of the acts' rules on what was captured. Every number is measured; the demo exits "
        "0 only when every act showed what it claims, and cleans up everything.")
    add_arguments(demo, types)
    demo.set_defaults(handler="kshock.demo:run_demo")


def add_arguments(parser: argparse.ArgumentParser, types) -> argparse.ArgumentParser:
    parser.add_argument("--interactive", action="store_true",
                        help="pause before each act until Enter (never waits without a terminal)")
    parser.add_argument("--act", type=types.number, choices=range(1, 7), metavar="N",
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


__all__ = ["DEFAULT_LAB", "add_arguments", "register", "run_demo"]
