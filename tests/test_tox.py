"""`tox -e pandas`: an environment with only the core installed runs its engine's benchmarks."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_tox_pandas_environment(tmp_path, data_dir):
    tox = shutil.which("tox", path=str(Path(sys.executable).parent))
    if tox is None:
        pytest.skip("tox is not installed (pip install -e '.[test]')")
    env = {**os.environ, "SCALEBENCH_DATA_DIR": str(data_dir)}
    r = subprocess.run([tox, "-e", "pandas", "--workdir", str(tmp_path / "tox"), "--", "--scale=tiny", "--rounds=1",
                        "-p", "no:cacheprovider"], capture_output=True, text=True, cwd=REPO, env=env, timeout=1500)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    # every pandas benchmark of the default stages passed; none failed or was left out
    passed = re.search(r"(\d+) passed", r.stdout)
    ok = passed and int(passed.group(1)) >= 16 and "failed" not in r.stdout and "pandas: OK" in r.stdout
    assert ok, r.stdout[-4000:]
