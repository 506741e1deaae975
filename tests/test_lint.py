"""The code base stays ruff-clean (the `lint` tox environment runs the same check)."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_ruff_clean():
    if importlib.util.find_spec("ruff") is None:
        pytest.skip("ruff is not installed (pip install -e '.[test]')")
    r = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "concise", str(REPO)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_every_stage_and_engine_has_a_registered_marker():
    """--strict-markers fails collection of the whole suite on one unregistered stage marker."""
    import tomllib

    from scalebench.engines import ENGINE_NAMES
    from scalebench.stages import STAGES

    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    registered = {m.split(":")[0].strip() for m in config["markers"]}
    missing = sorted((set(STAGES) | set(ENGINE_NAMES)) - registered)
    assert missing == [], f"pyproject.toml [tool.pytest.ini_options] markers lacks {missing}"
