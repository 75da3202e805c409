"""The wire core is pure: no I/O modules, no scapy, no clocks (AST check)."""

from __future__ import annotations

import ast
from pathlib import Path

import kshock.wire

BANNED = {"socket", "subprocess", "os", "time", "datetime", "scapy", "select", "threading",
          "asyncio", "io", "pathlib", "shutil", "random", "kshock.capture.reader", "kshock.cli"}


def test_wire_imports_no_edges():
    for path in Path(kshock.wire.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                assert name.split(".")[0] not in BANNED and name not in BANNED, (path.name, name)
