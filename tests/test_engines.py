"""Every engine: clean start and stop, loopback-only sockets, and checked answers."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import psutil
import pytest

from scalebench.datasets import ensure
from scalebench.engines import ENGINE_NAMES, ClusterSpec, EngineUnavailable, engine_class
from scalebench.engines.duckdb import DuckDBEngine
from scalebench.measure.procs import become_subreaper, descendants, describe, exposed, listeners
from scalebench.runner import QueryRun, References, benchmark_query, stage_input
from scalebench.stages import QUERIES, WrongAnswer

REPO = Path(__file__).resolve().parents[1]
TINY = 20_000


def _engine_or_skip(name: str, **spec):
    try:
        return engine_class(name)(ClusterSpec(**{"workers": 2, "memory_budget_bytes": 2 * 2**30, **spec}))
    except EngineUnavailable as exc:
        pytest.skip(str(exc))


@pytest.mark.parametrize("name", ENGINE_NAMES)
def test_engine_starts_on_loopback_and_stops_clean(name, data_dir, tmp_path):
    data = ensure("points", TINY, "parquet", data_dir=data_dir)  # before the snapshot: a generator may fork
    before = {p.pid for p in descendants()}
    engine = _engine_or_skip(name)
    try:
        engine.start()
    except EngineUnavailable as exc:
        pytest.skip(str(exc))
    try:
        result = engine.groupby_points(stage_input(data))  # workers have really worked
        assert int(result["count"].sum()) == TINY
        started = [p for p in descendants() if p.pid not in before]
        found = listeners(started + [psutil.Process()])
        assert exposed(found) == [], f"{name} listens off loopback: {exposed(found)}"
    finally:
        engine.stop()
        engine.stop()  # idempotent
    left = [describe(p) for p in descendants() if p.pid not in before]
    assert left == [], f"{name} left processes behind: {left}"


@pytest.mark.parametrize("name", ["spark", "dask", "ray"])
def test_engine_restarts_in_the_same_process(name, data_dir):
    data = ensure("points", TINY, "csv", data_dir=data_dir)
    for _ in range(2):
        engine = _engine_or_skip(name, workers=1)
        try:
            engine.start()
        except EngineUnavailable as exc:
            pytest.skip(str(exc))
        try:
            assert int(engine.groupby_points(stage_input(data))["count"].sum()) == TINY
        finally:
            engine.stop()


class WrongCountsDuckDB(DuckDBEngine):
    """Answers groupby-points with one row too many in category A."""

    def groupby_points(self, inp):
        df = super().groupby_points(inp)
        df.loc[df["category"] == "A", "count"] += 1
        return df


class UnsortedDuckDB(DuckDBEngine):
    """Writes the 'global sort' as two files whose key ranges overlap."""

    def sort_global(self, inp, out):
        out.mkdir(parents=True, exist_ok=True)
        df = pd.read_parquet(inp.path).dropna(subset=["salary"])
        df.iloc[::2].sort_values(["salary", "id"]).to_parquet(out / "a.parquet")
        df.iloc[1::2].sort_values(["salary", "id"]).to_parquet(out / "b.parquet")


@pytest.mark.filterwarnings("ignore:Benchmark fixture was not used")
@pytest.mark.parametrize("engine_cls, method, message", [
    (WrongCountsDuckDB, "groupby_points", "column 'count'"),
    (UnsortedDuckDB, "sort_global", "column 'order'"),
])
def test_a_wrong_answer_fails_its_benchmark(benchmark, engine_cls, method, message, data_dir, tmp_path):
    query = next(q for q in QUERIES if q.op == method)
    data = ensure(query.dataset, TINY, "parquet", data_dir=data_dir)
    refs = References(tmp_path / "ref")
    engine = engine_cls(ClusterSpec(workers=1))
    engine.start()
    try:
        with pytest.raises(WrongAnswer, match=message):
            benchmark_query(benchmark, QueryRun(engine, query, stage_input(data), tmp_path), data, refs, rounds=1)
    finally:
        engine.stop()
        refs.close()


SESSION = textwrap.dedent("""
    import pytest

    @pytest.mark.parametrize("name", {engines!r})
    def test_start_then_fail(clusters, name):
        clusters.get(name, 2)
        raise RuntimeError("boom after starting " + name)
""")


def test_no_process_outlives_a_failing_session(tmp_path):
    """A pytest session that starts every cluster and fails leaves nothing running."""
    assert become_subreaper(), "needs Linux prctl(PR_SET_CHILD_SUBREAPER)"
    (tmp_path / "test_session.py").write_text(SESSION.format(engines=list(ENGINE_NAMES)))
    before = {p.pid for p in descendants()}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-m", "pytest", "-p", "fixtures.plugin", "-q", "-p", "no:cacheprovider",
                        str(tmp_path / "test_session.py"), "--rootdir", str(tmp_path)],
                       capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert "boom after starting" in r.stdout, r.stdout + r.stderr
    assert r.returncode == 1
    left = [describe(p) for p in descendants() if p.pid not in before]
    assert left == [], f"processes left after the session: {left}"


def test_out_of_memory_is_recognised_in_each_frameworks_words():
    from scalebench.runner import out_of_memory

    class KilledWorker(Exception):
        pass

    assert out_of_memory(MemoryError()) == "MemoryError: "
    assert "KilledWorker" in out_of_memory(KilledWorker("task x"))
    try:
        try:
            raise RuntimeError("java.lang.OutOfMemoryError: Java heap space")
        except RuntimeError as inner:
            raise ValueError("/data/users.csv: query failed") from inner
    except ValueError as outer:
        assert "Java heap space" in out_of_memory(outer)
    assert out_of_memory(ValueError("column 'salary' missing")) is None
