"""EDGE: `kshock apply`, `kshock revert`, `kshock status` on the command line — their sub-parsers,
and the options that give one rule (shared with `kshock compile`). The handlers are handlers.py's.

Light on purpose: kshock.cli registers these at every start (`kshock --help` stays fast), and
hands over the argument types (`types`, a kshock.cli.ArgumentTypes).
"""

from __future__ import annotations

import argparse

from kshock.rules.durations import MAX_FAULT_S, MIN_FAULT_S


def register(commands: argparse._SubParsersAction, types) -> None:
    """Add apply, revert and status to the CLI's sub-parsers."""
    apply_ = commands.add_parser(
        "apply", help="apply a fault: rules in kshock's own chains, expiring by themselves",
        description="Apply a rule file or one --match/--action rule to the host, a namespace (--netns) or the "
        "namespace of a process (--pid). Returns once the fault is in place. Every rule carries "
        "`-m time --datestop`, so the kernel ends the fault at its time even if kshock is killed.")
    add_rule_source(apply_, types)
    apply_.add_argument("--netns", metavar="NAME", help="apply inside this network namespace")
    apply_.add_argument("--pid", type=types.number, help="apply inside the network namespace of this process")
    apply_.add_argument("--dry-run", action="store_true", help="print the rules that would be loaded; change nothing")
    apply_.add_argument("--hold", action="store_true", help="stay in the foreground with a countdown; revert on exit or Ctrl-C")
    apply_.add_argument("--force", action="store_true", help="apply even if the rules would cut this SSH session")
    apply_.add_argument("--set-name", metavar="NAME",
                        help="apply a rule file as ONE fault named NAME (one rule set, reverted together; rules of "
                        "different APIs get a chain each, which costs unaffected traffic less); its rules share one "
                        "duration (give --duration if they differ). Default: one fault per rule, each revertable")
    apply_.set_defaults(handler="kshock.apply.handlers:apply")

    revert_ = commands.add_parser("revert", help="remove faults (all of kshock's chains with --all)",
                                  description="Remove faults by name, or every fault with --all (which also removes "
                                  "kshock chains left behind by crashed runs). A name active in several namespaces "
                                  "needs --netns/--pid/--host (or --all-scopes). --pid also selects the faults applied "
                                  "with that pid after the process exited.")
    revert_.add_argument("names", nargs="*", metavar="NAME", help="the fault(s) to remove")
    revert_.add_argument("--all", action="store_true", help="every fault, and leftovers of crashed runs")
    revert_.add_argument("--netns", metavar="NAME", help="only in this network namespace")
    revert_.add_argument("--pid", type=types.number, help="only in the network namespace of this process")
    revert_.add_argument("--host", action="store_true", help="only in the host's own network namespace")
    revert_.add_argument("--all-scopes", action="store_true",
                         help="revert NAME in every namespace that has a fault of that name")
    revert_.set_defaults(handler="kshock.apply.handlers:revert")

    status_ = commands.add_parser("status", help="active faults: rules, time left, kernel counters",
                                  description="Show every active fault with its time left and the kernel's packet and "
                                  "byte counters per rule. Expired faults are removed first.")
    status_.add_argument("--json", action="store_true", help="JSON output")
    status_.set_defaults(handler="kshock.apply.handlers:status")


def add_rule_source(sub: argparse.ArgumentParser, types) -> None:
    """A rule file, or one rule from --match/--action and its target (handlers.specs_from_args reads them)."""
    sub.add_argument("rulefile", nargs="?", help="a rule file (rules/*.yaml); or give --match and --action")
    sub.add_argument("--match", metavar="EXPR", help='a condition, e.g. \'api == Produce and client_id == "shop"\'; '
                     "default: all traffic of the target")
    sub.add_argument("--action", metavar="ACTION",
                     help="drop | reset | stall | loss 30%% | rate 1mbit | delay 200ms [jitter 20ms] | duplicate 5%% | "
                     "corrupt 1%% | reorder 10%%")
    sub.add_argument("--name", help="the rule's name (with --match/--action; default: adhoc)")
    sub.add_argument("--port", type=types.port, action="append", metavar="N", help="Kafka port(s) (default: 9092)")
    sub.add_argument("--host", help="the broker's (or peer's) address or network")
    sub.add_argument("--interface", metavar="IF", help="network interface")
    sub.add_argument("--direction", default="ingress", choices=["ingress", "egress", "forward", "both"],
                     help="ingress: requests arrive here (a broker); egress: they leave here (a client); "
                     "forward: they pass through (default: %(default)s)")
    sub.add_argument("--duration", metavar="D", type=types.duration(MAX_FAULT_S, least_s=MIN_FAULT_S),
                     help=types.duration_help("how long the fault lasts, 1s to 24h", "5m, or the file's"))


__all__ = ["add_rule_source", "register"]
