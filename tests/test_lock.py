"""The lock: it pins every requirement of every extra, every install command goes through it, and
the environment these tests run in is the locked one (so CI measures what the lock says)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

from scalebench.provenance import LOCK_NAME, canonical_name, lock_pins, lock_record

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / LOCK_NAME


def _requirements() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        reqs += [Requirement(r) for r in extra if not r.startswith("scalebench")]
    return reqs


def test_lock_pins_every_requirement_within_its_bounds():
    pins = lock_pins(LOCK)
    for req in _requirements():
        name = canonical_name(req.name)
        assert name in pins, f"{LOCK_NAME} does not pin {req.name}: regenerate it (README, 'The lock')"
        assert req.specifier.contains(pins[name], prereleases=True), \
            f"{LOCK_NAME} pins {name}=={pins[name]}, outside pyproject's {req}: regenerate it"


def test_every_install_command_goes_through_the_lock():
    readme = (REPO / "README.md").read_text()
    commands = [line for line in readme.splitlines() if "pip install" in line and "-e " in line]
    assert commands and all(f"-c {LOCK_NAME}" in c for c in commands), commands
    assert f"-c {LOCK_NAME}" in (REPO / ".ci" / "run").read_text()
    # CI's newcomer check installs exactly what the README's main command installs
    main_install = next(c for c in commands if "--benchmark-only" in c).split("pip install ")[1].split(" &&")[0]
    assert f'pip" install -q {main_install}' in (REPO / ".ci" / "newcomer").read_text(), main_install
    assert f"-c {{toxinidir}}/{LOCK_NAME}" in (REPO / "tox.ini").read_text()
    asv = json.loads((REPO / "asv.conf.json").read_text())
    assert all(f"-c {{build_dir}}/{LOCK_NAME}" in c for c in asv["install_command"]), asv["install_command"]


def test_this_environment_is_the_locked_one():
    off = lock_record()["off_lock"]
    assert off == {}, f"installed off the lock (pip install -c {LOCK_NAME} ...): {off}"
