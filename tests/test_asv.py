"""asv: the suite is well formed, a quick run writes results, and publish builds the site."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def asv(tmp_path_factory, data_dir):
    if shutil.which("asv", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("asv is not installed (pip install -e '.[all]')")
    tmp = tmp_path_factory.mktemp("asv")
    conf = json.loads((REPO / "asv.conf.json").read_text())
    conf.update(repo=str(REPO), benchmark_dir=str(REPO / "benchmarks" / "asv"), env_dir=str(tmp / "env"),
                results_dir=str(tmp / "results"), html_dir=str(tmp / "html"))
    (tmp / "asv.conf.json").write_text(json.dumps(conf))
    exe = str(Path(sys.executable).parent / "asv")
    env = {"SCALEBENCH_ASV_ROWS": "20000", "SCALEBENCH_DATA_DIR": str(data_dir), "HOME": str(tmp),
           "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}

    def run(*args: str) -> subprocess.CompletedProcess:
        r = subprocess.run([exe, *args, "--config", str(tmp / "asv.conf.json")], capture_output=True, text=True,
                           cwd=tmp, env=env, timeout=900)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        return r

    run("machine", "--yes", "--machine", "ci")
    return run, tmp


def test_asv_check(asv):
    run, _ = asv
    assert "No problems found" in run("check", "-E", f"existing:{sys.executable}").stdout


def test_quick_asv_run_writes_results_and_publishes(asv):
    run, tmp = asv
    sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=REPO).stdout.strip()
    if not sha:
        pytest.skip("not a git checkout")
    run("run", "--quick", "-E", f"existing:{sys.executable}", "--bench", "duckdb", "--set-commit-hash", sha)
    files = [p for p in (tmp / "results" / "ci").glob("*.json") if p.name != "machine.json"]
    assert files, "asv wrote no result file"
    result = json.loads(files[0].read_text())
    timed = result["results"]["stages.TimeStages.time_query"][0]
    values = [v for v in timed if v is not None and v == v]  # duckdb cells ran; other engines were not selected
    assert values and all(v > 0 for v in values)
    run("publish")
    assert (tmp / "html" / "index.html").exists()
