"""Faults: a worker killed in the middle of a stage, a dead cluster, a hanging query.

Each framework either finishes the stage through its own retry (the answer then equals the
DuckDB reference) or fails it with a message saying a worker died; the session goes on, the
cluster pool replaces a dead cluster, pytest-timeout stops a hanging query, and nothing a
test started outlives it. Outcomes are printed (run with -s to see them).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest

from scalebench.datasets import ensure
from scalebench.engines import ClusterSpec, EngineUnavailable, engine_class
from scalebench.measure.procs import become_subreaper, descendants, describe
from scalebench.runner import QueryRun, References, stage_input
from scalebench.stages import QUERIES

REPO = Path(__file__).resolve().parents[1]
FAULT_ROWS = 2_000_000
"""Big enough that sort_global runs for seconds on 2 cores (Dask ~3 s, Ray ~7 s)."""
WORKER_DIED = re.compile(r"died|crash|exited unexpectedly|KilledWorker|WorkerCrashed|worker.*(lost|killed)"
                         r"|Broken pipe|Connection reset", re.IGNORECASE)
"""Spark says "Python worker exited unexpectedly (crashed)" or, when it was writing to the worker
as it died, only "java.io.IOException: Broken pipe"."""
SORT_GLOBAL = next(q for q in QUERIES if q.op == "sort_global")
SPEC = ClusterSpec(workers=2, memory_budget_bytes=3 * 2**30)


def _start_or_skip(engine):
    try:
        engine.start()
    except EngineUnavailable as exc:
        pytest.skip(str(exc))
    return engine


def _left_behind(before: set[int]) -> list[str]:
    return [describe(p) for p in descendants() if p.pid not in before]


class Killer(threading.Thread):
    """Waits for a worker process that is running a task, kills it (SIGKILL), records it."""

    def __init__(self, find, done: threading.Event):
        super().__init__(daemon=True)
        self.find, self.done = find, done
        self.killed: str | None = None
        self.during_query = False

    def run(self) -> None:
        while not self.done.is_set():
            proc = self.find()
            if proc is not None:
                try:
                    text = describe(proc)
                    proc.kill()
                except psutil.Error:
                    continue
                self.killed, self.during_query = text, not self.done.is_set()
                return
            time.sleep(0.05)


def _busy_dask_worker(engine):
    """The process of a Dask worker that is processing a task right now."""
    try:
        busy = [addr for addr, keys in engine._client.processing().items() if keys]
    except Exception:
        return None
    for nanny in list(engine._cluster.workers.values()):
        if nanny.worker_address in busy and nanny.process is not None and nanny.process.process is not None:
            return psutil.Process(nanny.process.process.pid)
    return None


RAY_SERVICE = ("ray::IDLE", "ray::DashboardAgent", "ray::RuntimeEnvAgent", "ray::JobSupervisor")


def _busy_ray_worker(engine):
    """A Ray worker process executing a task: Ray renames it `ray::<task>` while it runs."""
    for p in descendants():
        try:
            name = p.name()
            title = " ".join(p.cmdline())
        except psutil.Error:
            continue
        label = title if title.startswith("ray::") else name
        if label.startswith("ray::") and not label.startswith(RAY_SERVICE):
            return p
    return None


@pytest.mark.parametrize("name, find", [("dask", _busy_dask_worker), ("ray", _busy_ray_worker)])
def test_a_worker_killed_mid_stage(name, find, data_dir, tmp_path):
    """Kill one worker process during sort_global: the stage completes with the reference answer
    through the framework's retry, or fails saying a worker died; the cluster is healthy after."""
    data = ensure("users", FAULT_ROWS, "parquet", data_dir=data_dir)
    before = {p.pid for p in descendants()}
    engine = _start_or_skip(engine_class(name)(SPEC))
    refs = References(tmp_path / "ref")
    run = QueryRun(engine, SORT_GLOBAL, stage_input(data), tmp_path)
    done = threading.Event()
    killer = Killer(lambda: find(engine), done)
    try:
        run.prepare()
        killer.start()
        try:
            run()
            done.set()
            refs.check(run, data)
            outcome = "completed through retry; answer equals the DuckDB reference"
        except Exception as exc:
            done.set()
            message = f"{type(exc).__name__}: {exc}"
            assert WORKER_DIED.search(message), f"{name}: unclear failure after a worker was killed: {message}"
            outcome = f"failed with a clear message: {message.splitlines()[0][:200]}"
        killer.join(5)
        assert killer.killed is not None and killer.during_query, f"{name}: no busy worker was seen to kill"
        print(f"\nFAULT {name}: killed worker [{killer.killed[:90]}] during sort_global on "
              f"{FAULT_ROWS:,} rows -> {outcome}; cluster alive afterwards: {engine.alive()}")
        assert engine.alive(), f"{name}: the cluster did not recover from losing one worker"
    finally:
        done.set()
        engine.stop()
        refs.close()
    assert _left_behind(before) == []


def test_spark_python_worker_killed_mid_query(data_dir, tmp_path):
    """Spark local mode runs every task inside the driver JVM: there is no executor process to
    kill short of the whole cluster (tested below). The separate processes it has are the
    Python workers of pandas UDFs (mapInPandas, as predict uses): kill one mid-query."""
    from scalebench.engines.spark.engine import SparkEngine

    data = ensure("users", FAULT_ROWS, "parquet", data_dir=data_dir)
    before = {p.pid for p in descendants()}
    engine = _start_or_skip(SparkEngine(SPEC))

    def python_worker():
        for p in descendants():
            try:
                cmd = " ".join(p.cmdline())
                parent = " ".join(p.parent().cmdline()) if p.parent() else ""
            except psutil.Error:
                continue
            if "pyspark.daemon" in cmd and "pyspark.daemon" in parent:  # forked by the daemon
                return p
        return None

    done = threading.Event()
    killer = Killer(python_worker, done)
    try:
        def slow(batches):
            for batch in batches:
                time.sleep(0.02)
                yield batch

        frame = engine.spark.read.parquet(str(data.path)).select("id").repartition(16)
        killer.start()
        try:
            count = frame.mapInPandas(slow, "id long").count()
            done.set()
            assert count == data.rows
            outcome = "completed through task retry; count equals the row count"
        except Exception as exc:
            done.set()
            message = f"{type(exc).__name__}: {exc}"
            assert WORKER_DIED.search(message), f"spark: unclear failure after a worker was killed: {message[:2000]}"
            said = re.search(r"[\w.]*Exception: [^.:]*(exited unexpectedly|crash|Broken pipe)[^.]*", message)
            outcome = f"failed with a clear message: {(said.group(0) if said else message)[:200]}"
        killer.join(5)
        assert killer.killed is not None and killer.during_query, "spark: no Python worker was seen to kill"
        print(f"\nFAULT spark: killed Python worker [{killer.killed[:90]}] during mapInPandas on "
              f"{FAULT_ROWS:,} rows -> {outcome}; cluster alive afterwards: {engine.alive()}")
        assert engine.alive()
    finally:
        done.set()
        engine.stop()
    assert _left_behind(before) == []


SESSION_CONFTEST = 'pytest_plugins = ["fixtures.plugin"]\n'

FAULT_SESSION = textwrap.dedent('''
    import os, signal, time
    import psutil, pytest
    from scalebench.measure.procs import descendants
    from scalebench.runner import QueryRun, stage_input
    from scalebench.stages import QUERIES

    GROUPBY = next(q for q in QUERIES if q.op == "groupby_points")


    def kill_cluster(name, engine):
        """Kill the cluster's main process: Ray's raylet, Spark's driver JVM. A local Dask
        cluster's scheduler lives in this process, so it is closed (and its workers killed)."""
        if name == "dask":
            workers = [p for p in descendants() if p.pid in engine._started_pids]
            engine._cluster.sync(engine._cluster.scheduler.close)
            for p in workers:
                p.kill()
            return
        target = {"ray": "raylet", "spark": "java"}[name]
        procs = [p for p in descendants() if p.name() == target]
        assert procs, f"no {target} process among {[p.name() for p in descendants()]}"
        for p in procs:
            p.kill()
        psutil.wait_procs(procs, timeout=10)


    def run_and_check(engine, datasets, references, tmp_path):
        data = datasets.get("points", "parquet")
        run = QueryRun(engine, GROUPBY, stage_input(data), tmp_path)
        run.prepare()
        run()
        references.check(run, data)

    {tests}
''')

FAULT_TESTS = textwrap.dedent('''
    @pytest.mark.timeout(240)
    def test_{e}_1_cluster_killed(clusters, datasets, references, tmp_path):
        engine = clusters.get("{e}", 2)
        run_and_check(engine, datasets, references, tmp_path)
        assert engine.alive()
        kill_cluster("{e}", engine)
        assert not engine.alive(), "alive() missed a dead cluster"
        print("FAULT-QUERY {e} " + "start")
        run_and_check(engine, datasets, references, tmp_path)  # the query on a dead cluster fails


    @pytest.mark.timeout(240)
    def test_{e}_2_next_benchmark(clusters, datasets, references, tmp_path):
        engine = clusters.get("{e}", 2)
        assert engine.alive()
        run_and_check(engine, datasets, references, tmp_path)
        print("REPLACED {e}", clusters.replaced)
''')


def _pytest_session(tmp_path: Path, source: str, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run a pytest session on `source` in a subprocess, with the scalebench plugin and a
    private data dir; our subreaper status keeps anything it orphans among our descendants."""
    (tmp_path / "conftest.py").write_text(SESSION_CONFTEST)
    (tmp_path / "test_session.py").write_text(source)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "COLUMNS": "400"}  # whole failure messages in the short summary
    # a basetemp of its own: the inner session must not rotate away the outer session's tmp dirs
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                           "-s", "-rA", str(tmp_path / "test_session.py"), "--rootdir", str(tmp_path),
                           f"--basetemp={tmp_path / 'basetemp'}",
                           "--scale=tiny", f"--data-dir={tmp_path / 'data'}", "--benchmark-disable", *args],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=tmp_path)


def test_a_dead_cluster_fails_one_benchmark_and_is_replaced(tmp_path):
    """In one session per framework: the cluster's main process is killed, that benchmark fails
    with the framework's error, and the next benchmark gets a new, working cluster."""
    assert become_subreaper(), "needs Linux prctl(PR_SET_CHILD_SUBREAPER)"
    engines = [e for e in ("dask", "ray", "spark") if _installed(e)]
    source = FAULT_SESSION.replace("{tests}", "".join(FAULT_TESTS.format(e=e) for e in engines))
    before = {p.pid for p in descendants()}
    r = _pytest_session(tmp_path, source)
    out = r.stdout + r.stderr
    for e in engines:
        assert re.search(rf"PASSED \S*test_{e}_2_next_benchmark", out), out[-6000:]
        assert re.search(rf"FAILED \S*test_{e}_1_cluster_killed", out), out[-6000:]
        failure = re.search(rf"FAILED \S*test_{e}_1_cluster_killed\S* - (.*)", out)
        print(f"\nDEAD CLUSTER {e}: query failed with: {failure.group(1)[:200] if failure else '?'}")
        assert re.search(rf"REPLACED {e} \[.*'{e} w2: cluster dead or broken, replaced'\]", out), out[-6000:]
    assert "from pytest-timeout" not in out, out[-6000:]
    assert _left_behind(before) == [], out[-3000:]


def _installed(name: str) -> bool:
    try:
        engine_class(name)
    except EngineUnavailable:
        return False
    return True


HANG_SESSION = textwrap.dedent('''
    import time
    import pytest

    HANG_S = 600


    def hang(name, engine):
        """Block inside the framework's own wait, the way a stuck query would."""
        if name == "dask":
            engine._client.submit(time.sleep, HANG_S, pure=False).result()
        elif name == "ray":  # Ray Data, as every stage query: its executor polls, so SIGALRM gets in
            import ray.data

            def sleepy(batch):
                time.sleep(HANG_S)
                return batch

            ray.data.range(4).map_batches(sleepy).count()
        else:
            def sleepy(batches):
                for batch in batches:
                    time.sleep(HANG_S)
                    yield batch
            engine.spark.range(4).mapInPandas(sleepy, "id long").count()

    {tests}
''')

HANG_TESTS = textwrap.dedent('''
    def test_{e}_1_start(clusters, request):
        clusters.get("{e}", 1)
        assert request.config.getini("timeout_method") == "signal"


    @pytest.mark.timeout(6)
    def test_{e}_2_hangs(clusters):
        hang("{e}", clusters.get("{e}", 1))
''')


def test_a_hanging_query_times_out_and_leaves_nothing(tmp_path):
    """pytest-timeout (method signal, from pyproject.toml) interrupts a query blocked in each
    framework's wait; the test fails with a timeout message and teardown stops every cluster."""
    assert become_subreaper(), "needs Linux prctl(PR_SET_CHILD_SUBREAPER)"
    engines = [e for e in ("dask", "ray", "spark") if _installed(e)]
    source = HANG_SESSION.replace("{tests}", "".join(HANG_TESTS.format(e=e) for e in engines))
    before = {p.pid for p in descendants()}
    r = _pytest_session(tmp_path, source, "-c", str(REPO / "pyproject.toml"))
    out = r.stdout + r.stderr
    for e in engines:
        assert re.search(rf"PASSED \S*test_{e}_1_start", out), out[-6000:]
        assert re.search(rf"FAILED \S*test_{e}_2_hangs\S* - Failed: Timeout \(>6\.0s\) from pytest-timeout", out), \
            out[-6000:]
    assert _left_behind(before) == [], out[-3000:]


UNFINISHED_PLUGIN = textwrap.dedent('''
    """Makes two of the stage cells fail on the Dask cluster the way big data would."""
    import time
    from scalebench import runner

    _run = runner.QueryRun.__call__


    def _out_of_memory():
        raise MemoryError("a worker could not allocate")


    def _call(self):
        if self.engine.name != "dask":  # the DuckDB reference
            return _run(self)
        client = self.engine._client
        print("CELL", self.query.id, client.scheduler.address, flush=True)
        if self.query.id == "groupby-points":
            client.submit(_out_of_memory, pure=False).result()
        if self.query.id == "groupby-age":  # a task still running on the cluster at the timeout
            client.submit(time.sleep, 600, pure=False).result()
        return _run(self)


    runner.QueryRun.__call__ = _call
''')


def test_out_of_memory_and_timed_out_cells_are_recorded_outcomes(tmp_path):
    """A stage cell that runs out of memory or past pytest-timeout is an xfail naming what
    happened, is listed in the saved JSON for the report, and the session goes on: after the
    timeout the next cell runs on a new cluster, and nothing is left behind."""
    assert become_subreaper(), "needs Linux prctl(PR_SET_CHILD_SUBREAPER)"
    if not _installed("dask"):
        pytest.skip("dask is not installed")
    (tmp_path / "hangplugin.py").write_text(UNFINISHED_PLUGIN)
    saved = tmp_path / "run.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(REPO), env.get("PYTHONPATH", "")])
    env["COLUMNS"] = "400"
    before = {p.pid for p in descendants()}
    r = subprocess.run([sys.executable, "-m", "pytest", str(REPO / "benchmarks" / "test_stages.py"), "-p", "hangplugin",
                        "-q", "-s", "-rxXs", "-p", "no:cacheprovider", "-p", "no:xdist", "--benchmark-only",
                        "--engines=dask", "--stages=groupby", "--formats=parquet", "--workers=1", "--rounds=1",
                        "--no-memray", "--scale=tiny", "--timeout=30", f"--data-dir={tmp_path / 'data'}",
                        f"--basetemp={tmp_path / 'basetemp'}", f"--benchmark-json={saved}"],
                       capture_output=True, text=True, cwd=REPO, timeout=600, env=env)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-6000:]
    assert re.search(r"XFAIL \S*dask-groupby-points\S* - out of memory: dask groupby-points on [\d,]+ rows "
                     r"with a .* budget: MemoryError: a worker could not allocate", out), out[-6000:]
    assert re.search(r"XFAIL \S*dask-groupby-age\S* - timed out: dask groupby-age on [\d,]+ rows with a .* "
                     r"budget: no answer after \d+ s in the query \(pytest-timeout 30 s for the whole test\)", out), \
        out[-6000:]
    assert "1 passed, 2 xfailed" in out, out[-3000:]
    address = dict(re.findall(r"CELL (\S+) (tcp:\S+)", out))
    assert address["groupby-id_bucket"] != address["groupby-age"], address  # a new cluster after the timeout
    doc = json.loads(saved.read_text())
    assert [b["extra_info"]["query"] for b in doc["benchmarks"]] == ["id_bucket"]
    unfinished = {(c["query"], c["outcome"]) for c in doc["scalebench_unfinished"]}
    assert unfinished == {("points", "out of memory"), ("age", "timed out")}, doc["scalebench_unfinished"]
    assert _left_behind(before) == [], out[-3000:]


def test_a_dask_task_waiting_for_its_paused_worker_is_out_of_memory():
    """At 512 MiB a worker (the 1 GiB ladder), tasks waited 60 s for the one worker holding their P2P
    shard (NoValidWorkerError), or for any running worker (NoWorkerError), while the workers were
    paused at their memory limit: the cell is out of memory, not a failure. Other errors pass through."""
    from distributed.scheduler import NoValidWorkerError, NoWorkerError

    from scalebench.engines.dask.cluster import _translate
    from scalebench.runner import out_of_memory

    pinned = NoValidWorkerError(task=("p2pshuffle-x", 0), host_restrictions=set(),
                                worker_restrictions={"tcp://127.0.0.1:1"}, resource_restrictions={}, timeout=60.0)
    none_running = NoWorkerError(task=("read_parquet-x", 0), timeout=60.0)
    for exc in (pinned, none_running):
        clear = _translate(None, "sort_top", None, exc)
        assert out_of_memory(clear) and "paused at their memory limit" in str(clear), clear
    assert _translate(None, "sort_top", None, RuntimeError("something else")) is None
