"""`python -m kshock.demo` — the demo without the rest of the CLI (the same as `kshock demo`)."""

from __future__ import annotations

import argparse
import sys

from kshock.demo import add_arguments, run_demo
from kshock.errors import ExitStatus, UserError


def main(argv: list[str] | None = None) -> int:
    parser = add_arguments(argparse.ArgumentParser(
        prog="python -m kshock.demo", description="The kshock meetup demo: a lab, real Kafka clients, six acts."))
    args = parser.parse_args(argv)
    try:
        return run_demo(args)
    except UserError as error:
        print(f"kshock: {error}", file=sys.stderr)
        return error.status
    except KeyboardInterrupt:
        return ExitStatus.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
