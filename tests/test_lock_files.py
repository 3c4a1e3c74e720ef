"""The lock files under requirements/ pin every dependency pyproject.toml asks for."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", re.MULTILINE)


def _pins(lock: str) -> dict[str, str]:
    text = (ROOT / "requirements" / lock).read_text()
    return {canonicalize_name(name): version for name, version in PIN.findall(text)}


def _wanted(lock: str) -> list[Requirement]:
    requirements = list(PYPROJECT["project"]["dependencies"])
    if lock == "test.txt":
        requirements += PYPROJECT["project"]["optional-dependencies"]["test"]
    return [Requirement(line) for line in requirements]


@pytest.mark.parametrize("lock", ["app.txt", "test.txt"])
def test_every_requirement_in_pyproject_is_pinned_in_the_lock(lock):
    pins = _pins(lock)
    missing = []
    for requirement in _wanted(lock):
        version = pins.get(canonicalize_name(requirement.name))
        if version is None or not requirement.specifier.contains(version, prereleases=True):
            missing.append(f"{requirement} (lock: {version})")
    assert not missing, (
        f"requirements/{lock} does not satisfy pyproject.toml: {missing}; "
        "regenerate the lock files (README, 'Pinned dependencies')"
    )


@pytest.mark.parametrize("lock", ["app.txt", "test.txt"])
def test_every_pin_has_a_hash(lock):
    text = (ROOT / "requirements" / lock).read_text()
    blocks = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2])
    unhashed = [block.split()[0] for block in blocks if block.strip() and "--hash=" not in block]
    assert not unhashed
