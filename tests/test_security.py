"""Security: nothing the suite starts is reachable from the network, and nothing secret is written.

During a real tiny session of every engine (the local clusters the suite starts itself), every
listening socket of every process in the session's tree is sampled with psutil; none may be off
loopback, and no dashboard may listen on its default port. Ray's local cluster must run with
token authentication (and refuse a client without the token), and the benchmark JSON must not
contain the token or anything that looks like a credential.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import sys
from pathlib import Path

import psutil
import pytest

from conftest import ray_probe
from fixtures.listeners import run_sampled
from scalebench.engines import ENGINE_NAMES, ClusterSpec, EngineUnavailable, engine_class
from scalebench.measure.procs import become_subreaper, descendants, exposed
from scalebench.stages import queries

REPO = Path(__file__).resolve().parents[1]
STAGE = "groupby"
DASHBOARD_PORTS = {8787: "dask dashboard", 8265: "ray dashboard", **{p: "spark UI" for p in range(4040, 4046)},
                   8080: "spark master UI", 6066: "spark REST server"}
SECRET_KEY = re.compile(r"token|passw|secret|credential|api[_-]?key|private[_-]?key", re.I)
SECRET_VALUE = re.compile(r"^[A-Za-z0-9+/=_.-]{20,}$")
"""A key named like a secret may carry a description ('token (per-cluster, ...)'), not a blob."""
FRAMEWORK_PROCESS = {
    "dask": re.compile(r"multiprocessing\.spawn|distributed"),  # spawned workers and nannies
    "ray": re.compile(r"raylet|gcs_server|ray::|ray/_private|ray/dashboard"),
    "spark": re.compile(r"\bjava\b|spark-class|SparkSubmit"),  # the JVM (spark-class execs java)
}


def _installed(engine: str) -> bool:
    module = {"dask": "distributed", "ray": "ray", "spark": "pyspark"}.get(engine)
    if module is not None and importlib.util.find_spec(module) is None:
        return False
    return engine != "spark" or bool(shutil.which("java") or os.environ.get("JAVA_HOME"))


def _walk(obj, path=""):
    """(path, key, value) for every leaf of a JSON document."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _walk(v, f"{path}.{k}")
            if not isinstance(v, dict | list):
                yield f"{path}.{k}", str(k), v
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _walk(v, f"{path}[{i}]")


def test_a_session_of_every_engine_stays_on_loopback_and_writes_no_secret(tmp_path):
    assert become_subreaper(), "needs Linux prctl(PR_SET_CHILD_SUBREAPER)"  # orphans stay in our tree
    bench_json = tmp_path / "bench.json"
    tokens: set[str] = set()
    auth_modes: set[str] = set()

    def on_new(p: psutil.Process) -> None:
        """Read each Ray process's auth settings, and the token itself, while the cluster is up."""
        env = p.environ()
        if "RAY_AUTH_MODE" in env or "RAY_AUTH_TOKEN_PATH" in env:
            auth_modes.add(env.get("RAY_AUTH_MODE", "unset"))
            path = env.get("RAY_AUTH_TOKEN_PATH")
            if path and os.path.exists(path):
                tokens.add(Path(path).read_text().strip())

    before = {p.pid for p in descendants()}
    # a clean environment: our engines set SPARK_LOCAL_IP themselves, and pytest-benchmark turns
    # itself off (no JSON) in any process that inherited an xdist worker's PYTEST_XDIST_WORKER
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTEST_ADDOPTS", "SPARK_LOCAL_IP") and not k.startswith("PYTEST_XDIST_")}
    engines = [e for e in ENGINE_NAMES if _installed(e)]
    cmd = [sys.executable, "-m", "pytest", "benchmarks/test_stages.py", "--scale=tiny",
           f"--engines={','.join(engines)}", f"--stages={STAGE}", "--formats=parquet", "--rounds=1",
           "--no-memray", f"--data-dir={tmp_path / 'data'}",
           f"--benchmark-json={bench_json}", "-p", "no:cacheprovider", "-q", "-rfEs",
           "-W", "ignore::DeprecationWarning"]
    returncode, output, sampler = run_sampled(cmd, lambda proc: [psutil.Process(proc.pid), *descendants(proc.pid)],
                                              cwd=REPO, env=env, timeout=900, interval=0.2, on_new=on_new)
    tail = output[-4000:]
    assert returncode == 0, f"exit code {returncode}:\n{tail}"
    expected = len(queries([STAGE])) * len(engines)
    assert f"{expected} passed" in output, f"expected {expected} passed:\n{tail}"

    # 1. every listening socket of the session's process tree is on loopback
    found = sampler.listeners
    assert exposed(found) == [], f"listening off loopback: {exposed(found)}"
    for framework, pattern in [(f, p) for f, p in FRAMEWORK_PROCESS.items() if f in engines]:
        # the sampler really saw each cluster
        assert any(pattern.search(x.command) for x in found), \
            f"no {framework} listener seen in {sampler.samples} samples: {sorted({x.command for x in found})}"
    # 2. dashboards and UIs are off: nothing on their default ports
    on_default = [(x, DASHBOARD_PORTS[x.port]) for x in found if x.port in DASHBOARD_PORTS]
    assert on_default == [], f"dashboard/UI ports open: {on_default}"
    # 3. Ray ran with token authentication, each process told where its per-cluster token is
    if "ray" in engines:
        assert auth_modes == {"token"}, f"RAY_AUTH_MODE seen in Ray's processes: {auth_modes}"
        assert tokens and all(len(t) >= 32 for t in tokens), "no Ray token file was readable during the session"
    # 4. no token or credential in the results
    text = bench_json.read_text()
    for token in tokens:
        assert token not in text, "the Ray auth token is in the benchmark JSON"
    doc = json.loads(text)
    assert len(doc["benchmarks"]) == expected
    suspicious = [(path, value) for path, key, value in _walk(doc)
                  if SECRET_KEY.search(key) and isinstance(value, str) and SECRET_VALUE.match(value)]
    assert suspicious == [], f"credential-like values in the JSON: {suspicious}"
    assert not re.search(r"(password|passwd|secret|token)\s*[=:]\s*['\"]?[A-Za-z0-9+/_-]{16,}", text, re.I)
    # 5. nothing of the session is left
    left = [p.pid for p in descendants() if p.pid not in before]
    assert left == [], f"processes left after the session: {left}"
    print(f"{len(found)} listeners of {len(sampler.commands)} processes in {sampler.samples} samples, "
          f"0 off loopback; Ray auth {auth_modes}; {len(tokens)} token(s) not in the JSON")


@pytest.mark.ray
def test_ray_local_cluster_refuses_a_client_without_its_token(tmp_path):
    try:
        engine = engine_class("ray")(ClusterSpec(workers=1, memory_budget_bytes=2 * 2**30))
        engine.start()
    except EngineUnavailable as exc:
        pytest.skip(str(exc))
    try:
        assert os.environ.get("RAY_AUTH_MODE") == "token"
        token_file = Path(os.environ["RAY_AUTH_TOKEN_PATH"])
        assert token_file.stat().st_mode & 0o777 == 0o600
        assert Path.home() not in token_file.parents, f"token written under the home directory: {token_file}"
        address = engine.describe()["address"]
        with_token = ray_probe(address, {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_file)}, tmp_path)
        without = ray_probe(address, {}, tmp_path)
        wrong = ray_probe(address, {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "f" * 64}, tmp_path)
    finally:
        engine.stop()
    assert "RAY_AUTH_TOKEN_PATH" not in os.environ or os.environ["RAY_AUTH_TOKEN_PATH"] != str(token_file)
    assert not token_file.exists(), "the token file outlived the cluster"
    assert with_token == "ACCEPTED", with_token
    assert without.startswith("REFUSED") and "InvalidAuthToken" in without, without
    assert wrong.startswith("REFUSED") and "InvalidAuthToken" in wrong, wrong
