"""Pure packages know nothing about sockets, processes, files, clocks or the edge libraries."""

from __future__ import annotations

import ast
from pathlib import Path

import kshock

PACKAGE = Path(kshock.__file__).parent
PURE = ["wire", "conditions", "rules", "lab/plan.py", "lab/scenarios.py"]
BANNED = {"socket", "subprocess", "scapy", "pyroute2", "prompt_toolkit", "iptc", "asyncio", "select",
          "threading", "multiprocessing", "shutil", "time",
          "kshock.lab.network", "kshock.lab.broker", "kshock.lab.state", "kshock.lab.commands",
          "kshock.lab.traffic", "kshock.lab.record", "kshock.host.netns", "kshock.capture.reader", "kshock.host.files", "kshock.apply",
          "kshock.shell", "kshock.cli", "kshock.replay.coverage"}


def _pure_files() -> list[Path]:
    files = []
    for entry in PURE:
        path = PACKAGE / entry
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path] if path.exists() else []
    return files


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_pure_modules_import_no_io():
    offenders = {}
    for path in _pure_files():
        bad = {name for name in _imports(path) if any(name == b or name.startswith(b + ".") for b in BANNED)}
        if bad:
            offenders[str(path.relative_to(PACKAGE))] = sorted(bad)
    assert offenders == {}
    assert _pure_files(), "no pure module found"


def test_pure_modules_do_not_open_files():
    for path in _pure_files():
        calls = {node.func.id for node in ast.walk(ast.parse(path.read_text()))
                 if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
        assert "open" not in calls, path
