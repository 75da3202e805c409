"""Command line: parse arguments, dispatch, and map errors to exit codes (only here).

Each package registers its own commands — `register(commands, types)` in its light `cli` module
(demo: its __init__), in the order `kshock --help` lists them — and names each handler as
"module:function", imported only when that command runs: `kshock --help` imports no capture,
kernel, client or terminal code. The argument types the commands share (numbers in plain ASCII
decimal, durations) are defined here and handed to register(): imports point inward only.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kshock import __version__
from kshock.errors import ExitStatus, UserError
from kshock.rules.durations import DURATION_FORMS, is_whole_number, parse_duration_within, parse_seconds

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    from kshock import demo
    from kshock.apply import cli as apply_cli
    from kshock.lab import cli as lab_cli
    from kshock.replay import cli as replay_cli
    from kshock.shell import cli as shell_cli

    parser = argparse.ArgumentParser(
        prog="kshock",
        description="Break Apache Kafka on purpose, precisely: a Kafka-aware fault injector.",
    )
    parser.add_argument("--version", action="version", version=f"kshock {__version__}")
    parser.add_argument("--traceback", action="store_true", help="show Python tracebacks on errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    # decode, compile, explain, replay | apply, revert, status | shell | demo | lab
    for package in (replay_cli, apply_cli, shell_cli, demo, lab_cli):
        package.register(commands, ARGUMENT_TYPES)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: str | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return ExitStatus.USAGE
    try:
        return int(_resolve(handler)(args))
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


def _resolve(handler: str) -> Handler:
    """A "module:function" handler, imported now that its command runs."""
    import importlib

    module, _, function = handler.partition(":")
    return getattr(importlib.import_module(module), function)


# -- argument types: what a person types, in plain ASCII decimal ----------------------------------

def ascii_int(text: str) -> int:
    """An argparse type: a number in plain ASCII decimal digits (int() would also take "٣",
    "9_092", " 7" and "+7")."""
    if not is_whole_number(text):
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
    try:
        return parse_seconds(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def duration_type(most_s: float, least_s: float | None = None) -> Callable[[str], float]:
    """An argparse type for --duration: seconds ("90", "1.5") or with a unit ("90s", "5m", "1h"),
    more than 0 (or at least `least_s`) and at most `most_s` seconds."""

    def duration(text: str) -> float:
        try:
            return parse_duration_within(text, most_s, least_s)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return duration


def duration_help(what: str, default: str) -> str:
    """The help text of a --duration: what it is, the forms it takes, its default."""
    return f"{what}: {DURATION_FORMS} (default: {default})"


@dataclass(frozen=True, slots=True)
class ArgumentTypes:
    """The argument types the commands share, handed to each package's register()."""

    number: Callable[[str], int]  # ascii_int
    port: Callable[[str], int]  # port_number
    seconds: Callable[[str], float]  # ascii_seconds
    duration: Callable[..., Callable[[str], float]]  # duration_type(most_s, least_s=None)
    duration_help: Callable[[str, str], str]


ARGUMENT_TYPES = ArgumentTypes(ascii_int, port_number, ascii_seconds, duration_type, duration_help)


def _silence_stdout() -> None:
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
