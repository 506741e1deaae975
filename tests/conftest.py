"""Test-only fixtures: a private data directory shared by the tests of one session."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory):
    return tmp_path_factory.mktemp("data")


def flat(text: str) -> str:
    """A Markdown report with its tables' column padding collapsed, so a test can look for a row."""
    import re

    return re.sub(r" {2,}", " ", text)


RAY_PROBE = """
import sys
from ray._raylet import GcsClient
try:
    GcsClient(address=sys.argv[1]).internal_kv_get(b"scalebench-probe", None, timeout=10)
    print("ACCEPTED")
except Exception as exc:
    print("REFUSED", type(exc).__name__, str(exc).splitlines()[0][:200])
"""


def ray_probe(address: str, extra_env: dict[str, str], home: Path, prefix: list[str] = ()) -> str:
    """Talk to a Ray GCS from a fresh process (run after `prefix`: on a test host) with only
    `extra_env` for credentials: 'ACCEPTED', or 'REFUSED <error>'."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(extra_env)
    env["HOME"] = str(home)  # no ~/.ray/auth_token of the user's to fall back on
    r = subprocess.run([*prefix, sys.executable, "-c", RAY_PROBE, address], env=env, capture_output=True, text=True,
                       timeout=120)
    return (r.stdout.strip().splitlines() or [f"NO OUTPUT: {r.stderr[-500:]}"])[-1]
