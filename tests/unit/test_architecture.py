"""The house's shape, checked: pure packages do no I/O, and imports point inward only.

Both rules are written per package, so a new module (or a `.pyx`) in a package is covered the
day it is added. The pure packages may import only an allowlist of libraries: a new I/O module
(socket, subprocess, os, pathlib, time, ...) fails here without anyone extending a ban list.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import kshock

PACKAGE = Path(kshock.__file__).parent

# Pure: packets in, Kafka events out; what the user means; what the kernel will do.
PURE = ["wire", "conditions", "rules", "lab/plan.py", "lab/scenarios.py"]
PURE_LIBRARIES = {
    "__future__", "abc", "base64", "binascii", "bisect", "builtins", "collections", "dataclasses", "datetime",
    "decimal", "difflib", "enum", "fractions", "functools", "heapq", "ipaddress", "itertools", "json", "math", "operator",
    "re", "string", "struct", "textwrap", "types", "typing", "zlib",
    "cramjam", "yaml", "kafka.protocol", "kafka.version",
    # Cython's declarations of C's and CPython's own functions: only headers without I/O
    "libc.string", "libc.math", "libc.stdint", "libc.limits",
    "cpython.bytes", "cpython.float", "cpython.long", "cpython.unicode", "cpython.tuple", "cpython.list",
    "cpython.dict", "cpython.object", "cpython.ref",
}
# Reaching I/O without an import: a builtin that opens or imports, or C code declared in place
_IO_TEXT = re.compile(r"\b(?:open|__import__|input)\s*\(|\bbuiltins\.(?!round\b)\w+|from\s+builtins\s+c?import"
                      r"|\bcdef\s+extern\b|\bimportlib\b")

# Which kshock packages each package may import (its own always). cli, the entry point, may import all.
ALLOWED = {
    "errors": set(),
    "wire": {"errors"},
    "conditions": {"wire", "errors"},
    "rules": {"conditions", "wire", "errors"},
    "engine": {"rules", "conditions", "wire", "host", "errors"},
    "host": {"errors"},
    "capture": {"host", "wire", "errors"},
    "apply": {"host", "rules", "conditions", "wire", "engine", "errors"},
    "replay": {"capture", "host", "apply", "rules", "conditions", "wire", "engine", "errors"},
    "lab": {"host", "rules", "conditions", "wire", "errors", "__init__"},
    "workloads": {"rules", "conditions", "wire", "errors"},
    "shell": {"apply", "capture", "engine", "host", "lab", "replay", "rules", "conditions", "wire", "errors"},
    "demo": {"apply", "capture", "engine", "host", "lab", "replay", "rules", "conditions", "wire", "workloads",
             "errors"},
}
ENTRY_POINTS = {"cli", "__main__", "__init__"}

_PYX_IMPORT = re.compile(r"^\s*(?:from\s+([\w.]+)\s+c?import\s+([\w, ]+)|c?import\s+([\w.]+))", re.MULTILINE)


def _sources(entry: str) -> list[Path]:
    path = PACKAGE / entry
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix in (".py", ".pyx", ".pxd"))
    return [path] if path.exists() else []


def _imports(path: Path) -> set[str]:
    """Every module a source imports: `from kshock import x` counts as kshock.x."""
    text = path.read_text()
    found = set()
    if path.suffix != ".py":
        for from_, names, plain in _PYX_IMPORT.findall(text):
            if plain:
                found.add(plain)
            else:
                found.add(from_)
                if from_ == "kshock":
                    found |= {f"kshock.{name.strip()}" for name in names.split(",")}
        return found
    for node in ast.walk(ast.parse(text, str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            if node.module == "kshock":
                found |= {f"kshock.{alias.name}" for alias in node.names}
    return found


def _package_of(path: Path) -> str:
    first = path.relative_to(PACKAGE).parts[0]
    return first.removesuffix(".py")


def test_only_entry_points_sit_at_the_top():
    top = {p.stem for p in PACKAGE.glob("*.py")}
    assert top <= ENTRY_POINTS | {"errors"}, f"move {sorted(top - ENTRY_POINTS - {'errors'})} into a package"


def test_pure_modules_import_only_pure_libraries():
    offenders = {}
    for path in (p for entry in PURE for p in _sources(entry)):
        bad = {name for name in _imports(path) if not name.startswith("kshock")
               and not any(name == ok or name.startswith(ok + ".") for ok in PURE_LIBRARIES)}
        if bad:
            offenders[str(path.relative_to(PACKAGE))] = sorted(bad)
    assert offenders == {}


def test_pure_modules_do_not_open_files_or_import_dynamically():
    for path in (p for entry in PURE for p in _sources(entry)):
        text = path.read_text()
        code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())  # not the comments
        assert not _IO_TEXT.search(code), f"{path}: {_IO_TEXT.search(code).group()}"
        if path.suffix == ".py":
            calls = {node.func.id for node in ast.walk(ast.parse(text))
                     if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
            assert not calls & {"open", "__import__", "input"}, path


def test_imports_point_inward():
    offenders = {}
    for path in _sources("."):
        package = _package_of(path)
        if package in ENTRY_POINTS:
            continue
        assert package in ALLOWED, f"{package}/ is a new package: say in ALLOWED which packages it may import"
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] != "kshock" or len(parts) == 1 or parts[1] == package:
                continue
            target = "__init__" if parts[1] == "__version__" else parts[1]
            if target not in ALLOWED[package]:
                offenders.setdefault(str(path.relative_to(PACKAGE)), []).append(name)
    assert offenders == {}


def test_only_apply_and_replays_own_namespaces_load_unaudited_rules():
    """The auditor checks every rule set kshock loads on the host; the one way around it
    (netfilter.restore_unaudited) is for netfilter itself and replay's throwaway namespaces."""
    callers = {str(p.relative_to(PACKAGE)) for p in _sources(".") if "restore_unaudited" in p.read_text()}
    assert callers == {"apply/netfilter.py", "replay/kernel.py"}


@pytest.mark.parametrize("entry", PURE)
def test_every_pure_entry_exists(entry):
    assert _sources(entry), f"kshock/{entry} is named pure here but does not exist"


def test_no_source_file_is_over_800_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in _sources(".") if (n := len(p.read_text().splitlines())) > 800}
    assert long == {}


@pytest.mark.parametrize("text", [
    'cdef extern from "sys/socket.h":\n    int socket(int, int, int)\n',
    "from builtins import open as _o\n",
    "x = builtins.open\n",
    "f = open ('x')\n",
    "m = importlib.import_module('socket')\n",
])
def test_the_text_check_sees_io_without_an_import(text):
    assert _IO_TEXT.search(text)


def test_the_text_check_lets_the_lane_round_like_python():
    assert not _IO_TEXT.search("cdef object _round = builtins.round\n")


def test_the_checker_sees_imports_of_each_kind(tmp_path):
    pyx = tmp_path / "lane.pyx"
    pyx.write_text("from libc.string cimport memcmp\nimport socket\nfrom kshock import host\ncimport cython\n")
    assert _imports(pyx) == {"libc.string", "socket", "kshock", "kshock.host", "cython"}
    py = tmp_path / "m.py"
    py.write_text("import os.path\nfrom kshock import netns\ndef f():\n    from subprocess import run\n")
    assert _imports(py) == {"os.path", "kshock", "kshock.netns", "subprocess"}
