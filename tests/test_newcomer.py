"""A newcomer's main job never fails at collection for a missing optional package: without
pytest-timeout (which pyproject.toml configures) it still collects every test and benchmark."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_main_job_collects_without_pytest_timeout():
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    r = subprocess.run([sys.executable, "-m", "pytest", "--benchmark-only", "--collect-only", "-p", "no:timeout",
                        "-p", "no:cacheprovider", "-p", "no:xdist", "-W", "error::pytest.PytestConfigWarning"],
                       capture_output=True, text=True, cwd=REPO, timeout=300, env=env)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    assert "scalebench: pytest-timeout is not installed: --timeout has no effect" in out, out[:3000]
