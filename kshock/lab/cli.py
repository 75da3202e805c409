"""EDGE: `kshock lab ...` on the command line — the sub-parsers; the handlers are handlers.py's.

Light on purpose: kshock.cli registers these at every start (`kshock --help` stays fast), and
hands over the argument types (`types`, a kshock.cli.ArgumentTypes).
"""

from __future__ import annotations

import argparse


MAX_TRAFFIC_S = 3600.0  # lab traffic and lab record run the workloads at most an hour


def register(commands: argparse._SubParsersAction, types) -> None:
    """Add `kshock lab` and its sub-commands to the CLI's sub-parsers."""
    from kshock.lab.scenarios import SCENARIOS

    lab = commands.add_parser(
        "lab",
        help="a disposable Kafka lab in network namespaces",
        description="A disposable Kafka lab: a Tansu broker and client hosts in their own network "
        "namespaces, joined by a private bridge. Nothing touches the host's own network.",
    )
    lab_commands = lab.add_subparsers(dest="lab_command", metavar="LAB_COMMAND", required=True)

    def lab_command(name: str, handler: str, help_text: str) -> argparse.ArgumentParser:
        sub = lab_commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--name", default="lab", help="lab name (default: %(default)s)")
        sub.set_defaults(handler=f"kshock.lab.handlers:{handler}")
        return sub

    up = lab_command("up", "up", "create the lab and start the broker; returns once it answers ApiVersions")
    up.add_argument("--clients", type=types.number, default=3, help="client namespaces (default: %(default)s)")
    up.add_argument("--port", type=types.port, default=9092, help="broker port (default: %(default)s)")
    up.add_argument(
        "--timeout", type=types.seconds, default=20.0, help="seconds to wait for the broker (default: %(default)s)"
    )

    lab_command("down", "down", "remove everything the lab made (idempotent; also after a crash)")

    status = lab_command("status", "status", "show namespaces, addresses and the broker")
    status.add_argument("--json", action="store_true", help="print the lab state as JSON")

    exec_ = lab_command("exec", "exec_", "run a command in a client namespace")
    exec_.add_argument("client", help="client name (c1, c2, ...), or 'broker'")
    exec_.add_argument("argv", nargs=argparse.REMAINDER, help="-- COMMAND [ARG ...]")

    scenario_help = "workload scenario: " + ", ".join(sorted(SCENARIOS))
    duration = types.duration(MAX_TRAFFIC_S)
    duration_text = types.duration_help("how long the workloads run, at most 1h", "the scenario's own, 4-8 s")
    traffic = lab_command("traffic", "traffic", "run real Kafka client workloads in the client namespaces")
    traffic.add_argument("--scenario", default="mixed", help=scenario_help + " (default: %(default)s)")
    traffic.add_argument("--duration", type=duration, help=duration_text)
    traffic.add_argument("--json", action="store_true", help="print the workloads' ground-truth report as JSON")

    record = lab_command("record", "record", "record a scenario's traffic with tcpdump, plus a ground-truth sidecar")
    record.add_argument("scenario", help=scenario_help)
    record.add_argument("out", help="output pcap (the sidecar is written beside it as NAME.json)")
    record.add_argument("--duration", type=duration, help=duration_text)


__all__ = ["MAX_TRAFFIC_S", "register"]
