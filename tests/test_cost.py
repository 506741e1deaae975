"""The CPU and cost figures mean what they say: a known CPU burn inside a Dask worker, a Ray task
and a Spark task is seen by the tree sampler (processes a driver-side timer cannot see), and the
per-query figures follow from the windows."""

from __future__ import annotations

import time

import pytest

from scalebench.engines import ClusterSpec, EngineUnavailable, engine_class
from scalebench.measure.cost import Prices, cost_figures
from scalebench.measure.cpu import burn_cpu
from scalebench.measure.memory import GIB, Sample, TreeSampler, Window, _gib_s

BURN_S = 2.0
TOLERANCE = (0.85, 1.2)
"""The burn, less what the idle cluster used over as long, must be within these multiples of it
(plus 0.3 s for the task's dispatch, serialisation and the worker's own bookkeeping)."""


def _engine(name: str):
    try:
        engine = engine_class(name)(ClusterSpec(workers=1, memory_budget_bytes=2 * GIB))
        engine.start()
    except EngineUnavailable as exc:
        pytest.skip(str(exc))
    return engine


def _burn_in_dask(engine) -> float:
    return engine._client.submit(burn_cpu, BURN_S, pure=False).result()


def _burn_in_ray(engine) -> float:
    import ray

    return ray.get(ray.remote(num_cpus=1)(burn_cpu).remote(BURN_S))


def _burn_in_spark(engine) -> float:
    return engine.spark.sparkContext.parallelize([BURN_S], 1).map(burn_cpu).collect()[0]


def _window(engine, work) -> Window:
    sampler = TreeSampler(interval=0.05, extra_pids=engine.pids)
    with sampler:
        work()
    return sampler.windows[-1]


@pytest.mark.parametrize("name, burn", [("dask", _burn_in_dask), ("ray", _burn_in_ray), ("spark", _burn_in_spark)])
def test_a_cpu_burn_inside_the_cluster_is_seen(name, burn):
    engine = _engine(name)
    try:
        burn(engine)  # warm: the first task starts workers and imports
        idle = _window(engine, lambda: time.sleep(BURN_S))
        busy = _window(engine, lambda: burn(engine))
        seen = busy.cpu_s - idle.cpu_s * busy.wall_s / idle.wall_s
        low, high = TOLERANCE
        assert low * BURN_S <= seen <= high * BURN_S + 0.3, (
            f"{name}: a {BURN_S} s burn seen as {seen:.2f} s (busy {busy.cpu_s:.2f} s over {busy.wall_s:.2f} s, "
            f"idle {idle.cpu_s:.2f} s over {idle.wall_s:.2f} s)")
    finally:
        engine.stop()


def test_a_burn_in_the_driver_is_seen_and_the_sampler_is_not():
    sampler = TreeSampler(interval=0.01)
    with sampler:
        burn_cpu(1.0)
    assert 0.9 <= sampler.windows[0].cpu_s <= 1.3
    with sampler:
        time.sleep(1.0)
    assert sampler.windows[1].cpu_s < 0.2  # 100 samples a second, their cost taken out
    assert len(sampler.windows) == 2


def test_gib_seconds_integrate_memory_over_time():
    flat = [Sample(t, 0, 2 * GIB, 1) for t in (0.0, 1.0, 2.0)]
    assert _gib_s(flat) == pytest.approx(4.0)
    ramp = [Sample(0.0, 0, 0, 1), Sample(2.0, 0, 2 * GIB, 1)]
    assert _gib_s(ramp) == pytest.approx(2.0)
    assert _gib_s(flat[:1]) == 0.0


def test_cost_figures_are_medians_over_rounds_at_the_given_prices():
    rounds = [Window(wall_s=2.0, cpu_s=3.0, gib_s=4.0), Window(2.0, 2.0, 2.0), Window(2.0, 100.0, 8.0)]
    got = cost_figures(rounds, cores=2, prices=Prices(per_core_hour=3.6, per_gib_hour=36.0))
    assert got["tree_cpu_s"] == 3.0 and got["gib_s"] == 4.0 and got["tree_cpu_s_rounds"] == [3.0, 2.0, 100.0]
    assert got["cpu_utilisation"] == pytest.approx(0.75)  # median of 3/4, 2/4, 100/4
    assert got["cost_per_query_usd"] == pytest.approx(3.0 / 1000 * 1 + 4.0 / 100)  # 3 s at $3.6/h, 4 GiB-s at $36/h
    assert cost_figures([], 2, Prices()) == {}


def test_a_negative_price_is_refused_by_name():
    with pytest.raises(ValueError, match="--price-per-gib-hour"):
        Prices(per_core_hour=0.03, per_gib_hour=-1)
