"""`python -m kshock.shell ARGS` is `python -m kshock shell ARGS`: one entry point, kshock.cli.main."""

import runpy
import sys

sys.argv[1:1] = ["shell"]
runpy.run_module("kshock", run_name="__main__", alter_sys=True)
