"""The suite against Dask, Ray and Spark clusters spread over three test hosts.

fixtures.multihost makes three hosts (network namespaces of this machine on a private /24, see
fixtures.hosts), starts each framework with its own tools, scheduler / head / master on host 0
and one worker on each of hosts 1 and 2, and runs the tiny etl, groupby and sort matrix from
host 0 through --dask-scheduler, --ray-address and --spark-master, as a user would against a
real cluster. Checked: every answer (the benchmarks check them), that the work ran on the
other hosts, that the run records its topology and samples the memory of the cluster's
processes on every host, that no process listens anywhere but its host's cluster address or
loopback, that Ray still refuses a client without its token, and that nothing is left afterwards:
processes, veths, bridge, namespaces.

Namespaces need root and iproute2; where they cannot be made, each test skips and says why.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from conftest import ray_probe
from fixtures.hosts import leftovers, namespaces, unavailable
from fixtures.listeners import run_sampled
from fixtures.multihost import multihost
from fixtures.standalone import MARKER_ENV
from scalebench.stages import queries

REPO = Path(__file__).resolve().parents[1]
STAGES = ("etl", "groupby", "sort")
SESSION_TIMEOUT_S = 600
WHY_NOT = unavailable()
needs_hosts = pytest.mark.skipif(WHY_NOT is not None, reason=f"test hosts cannot be made here: {WHY_NOT}")


def _frameworks() -> list[str]:
    found = [f for f, module in (("dask", "distributed"), ("ray", "ray"), ("spark", "pyspark"))
             if importlib.util.find_spec(module) is not None]
    if "spark" in found and shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        found.remove("spark")
    if not found:
        pytest.skip("no distributed framework is installed")
    return found


@needs_hosts
def test_tiny_matrix_runs_on_clusters_across_three_hosts(tmp_path):
    frameworks = _frameworks()
    before = set(namespaces())
    bench_json = tmp_path / "run.json"
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTEST_ADDOPTS", "SPARK_LOCAL_IP") and not k.startswith("PYTEST_XDIST_")}
    with multihost(3, None, frameworks) as made:
        prefix, hosts = made.hosts.prefix, list(made.hosts.hosts)
        cmd = made.command([sys.executable, "-m", "pytest", "benchmarks/test_stages.py", "--benchmark-only",
                            "--scale=tiny", f"--stages={','.join(STAGES)}", f"--engines={','.join(frameworks)}",
                            "--rounds=1", "--no-memray", f"--data-dir={tmp_path / 'data'}",
                            f"--benchmark-json={bench_json}", *made.pytest_args, "-p", "no:cacheprovider",
                            "-q", "-rfEs", "-W", "ignore::DeprecationWarning"])
        markers: dict[int, str] = {}  # pid -> the cluster marker it inherited (its framework first)
        returncode, output, sampler = run_sampled(
            cmd, lambda proc: made.processes(), cwd=REPO, env=made.env(env), timeout=SESSION_TIMEOUT_S,
            on_new=lambda p: markers.update({p.pid: p.environ().get(MARKER_ENV, "")}))
        tail = output[-4000:]
        bad, wildcard = made.hosts.misplaced(sampler.listeners, sampler.namespaces)
        on = {x.pid: made.hosts.host_of(sampler.namespaces.get(x.pid)) for x in sampler.listeners}
        used = {(markers.get(pid, "").split("-")[0], host.name) for pid, host in on.items() if host is not None}
        pids = [p.pid for p in made.processes()]
        ray = next((c for c in made.clusters if c.framework == "ray"), None)
        tokens = {} if ray is None else {label: ray_probe(ray.address, extra, tmp_path, made.hosts[0].exec_prefix)
                                         for label, extra in (("token", ray.client_env), ("none", {}))}

    assert returncode == 0, f"exit code {returncode}:\n{tail}"
    expected = len(queries(list(STAGES))) * len(frameworks)
    assert f"{expected} passed" in output, f"expected {expected} passed:\n{tail}"
    # the workers ran on hosts 1 and 2, not beside the driver
    for fw in frameworks:
        assert {(fw, hosts[1].name), (fw, hosts[2].name)} <= used, f"{fw} listened on no worker host: {used}"
    # nothing listens beyond its host: its cluster address, loopback, or a wildcard inside it
    assert sampler.samples > 0 and sampler.listeners, "the sampler saw no listening socket at all"
    assert bad == [], "listening beyond the host's cluster address or loopback:\n" + "\n".join(bad)
    # the run names its topology, and every cell ran against host 0 with its cluster's memory sampled
    run = json.loads(bench_json.read_text())
    assert run["machine_info"]["scalebench"]["machine"]["topology"].startswith("3 hosts"), run["machine_info"]
    for bench in run["benchmarks"]:
        info = bench["extra_info"]
        assert hosts[0].ip in str(info["address"]), (bench["name"], info["address"])
        # driver + scheduler/head/master + a worker on each other host
        assert info["tree_processes_max"] >= 4, (bench["name"], info["tree_processes_max"])
    # Ray keeps token authentication across hosts: from the edge host, its token gets in, none does not
    if tokens:
        assert tokens["token"].startswith("ACCEPTED") and tokens["none"].startswith("REFUSED"), tokens
    # nothing is left: processes, links, namespaces
    assert [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE] == []
    assert leftovers(prefix) == [], leftovers(prefix)
    assert set(namespaces()) == before
    print(f"{expected} cells on {', '.join(frameworks)} across 3 hosts; {len(sampler.listeners)} listeners, "
          f"{len(wildcard)} on a wildcard inside a host: " + ", ".join(sorted({x.command.split()[1].rsplit('/', 1)[-1]
                                                                           for x in wildcard})))


@needs_hosts
def test_the_launcher_removes_everything_on_ctrl_c():
    before = set(namespaces())
    proc = subprocess.Popen([sys.executable, "-m", "fixtures.multihost", "--hosts", "2", "--link", "1gbit",
                             "--frameworks", "dask"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    lines = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "Ctrl-C stops them" in line:
            break
    text = "".join(lines)
    assert "dask at tcp://10.213." in text and "links 1gbit" in text, text
    prefix = text.split("sb", 1)[1].split("h0", 1)[0]
    assert leftovers(f"sb{prefix}"), "no hosts while the launcher runs"
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, text + rest
    assert leftovers(f"sb{prefix}") == [] and set(namespaces()) == before, leftovers(f"sb{prefix}")


def test_a_bad_link_is_named():
    proc = subprocess.run([sys.executable, "-m", "fixtures.multihost", "--link", "fast"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--link: 'fast' is not a rate" in proc.stderr, proc.stderr


def test_a_budget_is_shared_out_as_the_suite_shares_it(monkeypatch):
    """--memory-budget of the launcher: each Dask worker and each Spark worker its share, Ray's object
    stores together the engine's fraction, split over the nodes that hold one (the head and one per
    worker host), so a cluster on hosts is sized like the suite's own local cluster."""
    from fixtures import standalone
    from fixtures.hosts import Host, Hosts
    from scalebench.engines.ray.cluster import OBJECT_STORE_FRACTION

    seen = {}

    def recorder(framework: str):
        return lambda **kw: seen.setdefault(framework, kw)

    monkeypatch.setattr(standalone, "STARTERS", {f: recorder(f) for f in standalone.FRAMEWORKS})
    three = Hosts(3, hosts=[Host(f"sbXh{i}", f"10.213.9.{i + 2}") for i in range(3)])
    for framework in standalone.FRAMEWORKS:
        standalone.start(framework, 2, three, budget=4 * 2**30)
    assert seen["dask"]["memory"] == str(2 * 2**30) and seen["spark"]["memory"] == "2048m"
    assert seen["ray"]["object_store_bytes"] == int(4 * 2**30 * OBJECT_STORE_FRACTION) // 3
    seen.clear()
    standalone.start("ray", 2, None, budget=4 * 2**30)  # one node on loopback holds the whole share
    assert seen["ray"]["object_store_bytes"] == int(4 * 2**30 * OBJECT_STORE_FRACTION)
