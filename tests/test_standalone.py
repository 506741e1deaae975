"""The suite against clusters it did not start, exactly as a user runs it.

For Dask, Ray and Spark: start a standalone cluster with the framework's own tools
(fixtures/standalone.py: separate processes, own process groups, 127.0.0.1 only), run the
tiny matrix of that engine against it in a pytest subprocess through --dask-scheduler /
--ray-address / --spark-master with the data directory given as a file:// URL, and check
that every benchmark passed, that the session printed the address it used, that the work
really ran on that cluster, that no socket was opened off loopback, and that the session
left the cluster running (connect mode stops nothing it did not start). Then stop the
cluster and prove that none of its processes is left.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from conftest import ray_probe
from fixtures.listeners import run_sampled
from fixtures.standalone import Standalone, start
from scalebench.datasets.store import DatasetError, local_dir
from scalebench.measure.procs import descendants, exposed
from scalebench.stages import queries

REPO = Path(__file__).resolve().parents[1]
STAGES = ("etl", "groupby", "sort")
"""The core matrix; the db-benchmark, join and skew stages run against local clusters."""
FORMATS = ("csv", "parquet")
SESSION_TIMEOUT_S = 900


def _needs(framework: str) -> None:
    module = {"dask": "distributed", "ray": "ray", "spark": "pyspark"}[framework]
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed")
    if framework == "spark" and shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("spark needs Java 17+")


def _counts(output: str) -> dict[str, int]:
    """The outcome counts of pytest's final summary line ('16 passed, 2 skipped in 9.1s')."""
    lines = [ln for ln in output.splitlines() if re.search(r"\b(passed|failed|error|errors|no tests ran)\b", ln)]
    if not lines:
        return {}
    return {word.rstrip("s") if word.startswith("error") else word: int(n)
            for n, word in re.findall(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed|deselected)",
                                      lines[-1])}


def _used_the_cluster(c: Standalone) -> str:
    """Evidence, from the cluster's own files, that a client ran work on it ('' if none)."""
    if c.framework == "dask":
        log = c.log("scheduler").read_text(errors="replace")
        return "scheduler logged a client" if "Receive client connection" in log else ""
    if c.framework == "ray":
        drivers = list((c.root / "ray" / "session_latest" / "logs").glob("python-core-driver-*"))
        return f"{len(drivers)} driver log(s) in the head's session" if drivers else ""
    apps = list((c.root / "work").glob("worker*/app-*"))
    return f"{len(apps)} application folder(s) on the workers" if apps else ""


@pytest.fixture(scope="module")
def data_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The three sessions share one dataset cache, named by a file:// URL."""
    return tmp_path_factory.mktemp("standalone-data").as_uri()


@pytest.mark.parametrize("framework", [pytest.param(f, marks=getattr(pytest.mark, f))
                                       for f in ("dask", "ray", "spark")])
def test_tiny_matrix_runs_against_a_standalone_cluster(framework, data_url):
    _needs(framework)
    t0 = time.monotonic()
    cluster = start(framework, workers=2)
    t1 = time.monotonic()
    cluster_pids = set(cluster.pids())
    try:
        assert cluster.address.startswith({"dask": "tcp://127.0.0.1:", "ray": "127.0.0.1:",
                                           "spark": "spark://127.0.0.1:"}[framework]), cluster.address
        env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS" and not k.startswith("PYTEST_XDIST_")}
        env.update(cluster.client_env)
        cmd = [sys.executable, "-m", "pytest", "benchmarks/test_stages.py", "--benchmark-disable", "--scale=tiny",
               f"--engines={framework}", *cluster.pytest_args, f"--data-dir={data_url}",
               f"--stages={','.join(STAGES)}", f"--formats={','.join(FORMATS)}", "--workers=2",
               "--memory-budget=2GiB", "--no-memray", "-p", "no:cacheprovider", "-rfEs",
               "-W", "ignore::DeprecationWarning"]
        # every socket of the session and of the cluster (engine.pids() territory), sampled throughout
        returncode, output, sampler = run_sampled(
            cmd, lambda proc: descendants(proc.pid) + [psutil.Process(proc.pid)] + cluster.processes(),
            cwd=REPO, env=env, timeout=SESSION_TIMEOUT_S)
        t2 = time.monotonic()
        tail = output[-4000:]
        expected = len(queries(list(STAGES))) * len(FORMATS)
        counts = _counts(output)
        assert returncode == 0, f"exit code {returncode}, expected 0:\n{tail}"
        assert counts.get("passed") == expected and set(counts) == {"passed"}, \
            f"expected {expected} passed and nothing else, got {counts}:\n{tail}"
        line = f"scalebench: {framework} at {cluster.address} (connected, not started)"
        assert line in output, f"the session did not say which cluster it used ({line!r}):\n{tail}"
        evidence = _used_the_cluster(cluster)
        assert evidence, f"no trace of the session's work on the {framework} cluster"
        assert sampler.samples > 0 and sampler.listeners, "the sampler saw no listening socket at all"
        assert exposed(sampler.listeners) == [], f"listening off loopback: {exposed(sampler.listeners)}"
        # connect mode stops nothing it did not start
        assert cluster.alive(), f"the {framework} cluster died with the session:\n{tail}"
        gone = [pid for pid in cluster_pids if not psutil.pid_exists(pid)]
        assert gone == [], f"the session killed cluster processes {gone}"
        print(f"{framework}: {cluster.address}, {counts}, {evidence}, "
              f"{len(sampler.listeners)} listeners seen in {sampler.samples} samples, 0 off loopback; "
              f"start {t1 - t0:.1f} s, session {t2 - t1:.1f} s")
    finally:
        procs = cluster.processes()
        cluster.stop()
    left = [p.pid for p in procs if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert left == [] and cluster.processes() == [], f"{framework} processes left after stop(): {left}"
    assert not cluster.root.exists(), f"{cluster.root} left behind"


@pytest.mark.ray
def test_standalone_ray_refuses_a_client_without_its_token(tmp_path):
    """Token auth is on in the standalone Ray cluster too: its token gets in, no token or a wrong one does not."""
    _needs("ray")
    cluster = start("ray", workers=1)
    try:
        token_file = Path(cluster.client_env["RAY_AUTH_TOKEN_PATH"])
        assert token_file.stat().st_mode & 0o777 == 0o600
        assert token_file.parent == cluster.root
        results = {label: ray_probe(cluster.address, extra, tmp_path) for label, extra in {
            "token": cluster.client_env,
            "none": {},
            "wrong": {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "0" * 64},
        }.items()}
    finally:
        cluster.stop()
    assert results["token"].startswith("ACCEPTED"), results
    assert results["none"].startswith("REFUSED") and "InvalidAuthToken" in results["none"], results
    assert results["wrong"].startswith("REFUSED") and "InvalidAuthToken" in results["wrong"], results


def test_data_dir_accepts_paths_and_file_urls_and_names_other_schemes(tmp_path):
    assert local_dir(tmp_path.as_uri()) == tmp_path
    assert local_dir(f"file://localhost{tmp_path}") == tmp_path
    assert local_dir(str(tmp_path)) == tmp_path
    for url in ("s3://bucket/data", "hdfs://namenode:8020/data", "file://otherhost/data"):
        with pytest.raises(DatasetError, match="--data-dir"):
            local_dir(url)
    # through pytest: one usage error naming the option and the scheme, exit code 4
    r = subprocess.run([sys.executable, "-m", "pytest", "benchmarks/test_stages.py", "--collect-only", "-q",
                        "-p", "no:cacheprovider", "--data-dir=s3://bucket/scalebench"],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 4, r.stdout + r.stderr
    assert "--data-dir: s3://bucket/scalebench: this version reads only local folders and file:// URLs" in r.stderr


@pytest.mark.dask
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_the_command_line_starts_a_cluster_and_ctrl_c_stops_it(how):
    """`python -m fixtures.standalone dask` prints an address a client can use, and stops everything on a signal."""
    _needs("dask")
    proc = subprocess.Popen([sys.executable, "-m", "fixtures.standalone", "dask", "--workers", "1"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        first = proc.stdout.readline()  # blocks until the cluster is up (or the command failed)
        m = re.match(r"dask standalone cluster at (tcp://127\.0\.0\.1:\d+) \(pids ([\d ]+);", first)
        assert m, first + proc.stdout.read() if proc.poll() is not None else first
        pids = [int(x) for x in m.group(2).split()]
        assert pids and all(psutil.pid_exists(pid) for pid in pids)
        ready = [proc.stdout.readline() for _ in range(3)]
        assert f"--dask-scheduler={m.group(1)}" in ready[1] and "Ctrl-C stops it." in ready[2], ready
        proc.send_signal(how)
        rest, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, rest
    assert "dask standalone cluster stopped" in rest
    left = [pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
    assert left == [], f"processes left after the signal: {left}"
