"""`python -m kshock.demo ARGS` is `python -m kshock demo ARGS`: one entry point, kshock.cli.main."""

import runpy
import sys

sys.argv[1:1] = ["demo"]
runpy.run_module("kshock", run_name="__main__", alter_sys=True)
