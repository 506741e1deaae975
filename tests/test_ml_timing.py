"""The pipeline benchmark times the work and nothing else: no cluster starts inside a timed
round, and every round's result is checked outside it.

Runs benchmarks/test_ml.py::test_pipeline itself, with a stand-in for pytest-benchmark that
notes what happens while the target runs, and a cluster pool whose "clusters" are in-process
pandas engines under two names (so two distinct clusters, started in milliseconds).
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

import fixtures.clusters
from fixtures.clusters import ClusterPool
from scalebench.datasets import ensure
from scalebench.engines import ClusterSpec, engine_class
from scalebench.measure.rounds import benchmark_checked
from scalebench.runner import Measure

ROOT = Path(__file__).resolve().parents[1]


def _bench_module():
    spec = importlib.util.spec_from_file_location("scalebench_bench_ml", ROOT / "benchmarks" / "test_ml.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Recorder:
    """pytest-benchmark's pedantic, timing nothing: it notes the cluster starts that happen while
    the target runs (and whether the round's clock was paused then) and the checks that run."""

    disabled = False

    def __init__(self, pool: ClusterPool):
        self.pool = pool
        self.extra_info: dict = {}
        self.stats = None
        self.group = None
        self.timing = False
        self.starts_while_timed: list[bool] = []
        """One entry per start inside a timed target: whether the round's clock was paused."""
        self.teardowns = 0
        self._timer = time.perf_counter

    def pedantic(self, target, setup=None, teardown=None, rounds=1, iterations=1, warmup_rounds=0):
        for _ in range(rounds):
            if setup:
                setup()
            self.timing = True
            try:
                target()
            finally:
                self.timing = False
            if teardown:
                teardown()
                self.teardowns += 1


class Pool(ClusterPool):
    def __init__(self, recorder_box: dict):
        super().__init__(ClusterSpec(workers=1), {})
        self.box = recorder_box

    def _start(self, key):
        bench = self.box.get("bench")
        if bench is not None and bench.timing:
            bench.starts_while_timed.append(bool(getattr(bench._timer, "pausing", False)))
        return super()._start(key)


class Datasets:
    def __init__(self, data_dir: Path):
        self.data_dir = data_dir

    def get(self, name: str, fmt: str, seed_offset: int = 0):
        return ensure(name, 2_000, fmt, data_dir=self.data_dir, seed=42 + seed_offset)


@pytest.fixture
def setup(monkeypatch, data_dir):
    # every engine name gives an in-process pandas engine: two names, two distinct "clusters"
    monkeypatch.setattr(fixtures.clusters, "engine_class", lambda name: engine_class("pandas"))
    box: dict = {}
    pool = Pool(box)
    bench = Recorder(pool)
    box["bench"] = bench
    settings = SimpleNamespace(engines=["dask", "ray"], workers=[1], tune_rows=300, seed=42, ml_rounds=2,
                               spec=ClusterSpec(workers=1),
                               measure=Measure(sample_interval=0.05, memray=False))
    yield _bench_module(), bench, pool, settings, Datasets(data_dir)
    pool.close()


def test_pipeline_starts_no_cluster_while_timed(setup, tmp_path):
    bench_ml, bench, pool, settings, datasets = setup
    bench_ml.test_pipeline(bench, ("dask", "ray"), settings, pool, datasets, tmp_path)
    assert pool.starts == 2  # both clusters, once, before the timing
    assert bench.starts_while_timed == []
    assert bench.teardowns == settings.ml_rounds  # every timed round checked after it ran
    info = bench.extra_info
    assert info["side_by_side"] is True and info["checked_runs"] == 1 + settings.ml_rounds
    assert info["etl_s"] > 0 and info["ml_s"] > 0 and info["cluster_switch_s"] is None
    assert info["peak_tree_rss_bytes"] > 0 and "24 fits" in info["check"]


def test_pipeline_switch_is_paused_when_clusters_cannot_coexist(setup, tmp_path, monkeypatch):
    bench_ml, bench, pool, settings, datasets = setup
    monkeypatch.setattr(pool, "fits", lambda keys: False)
    bench_ml.test_pipeline(bench, ("dask", "ray"), settings, pool, datasets, tmp_path)
    # one cluster at a time: the switch to the ML cluster happens in each round, clock paused
    assert bench.starts_while_timed and all(bench.starts_while_timed), bench.starts_while_timed
    assert bench.extra_info["side_by_side"] is False and bench.extra_info["cluster_switch_s"] > 0


def test_recorder_sees_a_start_inside_the_timing(setup):
    """The detector above can fail: a cluster start inside the target is seen."""
    _, bench, pool, _, _ = setup
    bench.pedantic(lambda: pool.get("spark", 1))
    assert bench.starts_while_timed == [False]


def test_every_round_is_checked_outside_the_timer(setup):
    _, bench, _, settings, _ = setup
    calls = iter(range(100))
    seen: list[tuple[int, bool]] = []

    def check(result: int) -> str:
        seen.append((result, bench.timing))
        if result == 2:
            raise AssertionError("round 2 gave a wrong answer")
        return "ok"

    with pytest.raises(AssertionError, match="round 2"):
        benchmark_checked(bench, lambda: next(calls), check, 3, measure=settings.measure)
    assert seen == [(0, False), (1, False), (2, False)]  # cold run, round 1, round 2: each checked, untimed
