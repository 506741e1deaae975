"""The memory figures mean what they say: the tree sampler sees an allocation made inside a
Dask worker, a Ray worker and the Spark JVM (processes memray cannot see), and memray sees an
allocation in the driver."""

from __future__ import annotations

import time

import numpy as np
import pytest

from scalebench.engines import ClusterSpec, EngineUnavailable, engine_class
from scalebench.measure import heap
from scalebench.measure.memory import TreeSampler, tree_memory

MiB = 2**20
ALLOCATION = 400 * MiB


def _filled(nbytes: int) -> np.ndarray:
    return np.ones(nbytes // 8)  # written, so every page is resident


def _engine(name: str):
    try:
        engine = engine_class(name)(ClusterSpec(workers=1, memory_budget_bytes=3 * 2**30))
        engine.start()
    except EngineUnavailable as exc:
        pytest.skip(str(exc))
    return engine


def _settled_pss() -> int:
    """Tree PSS once it has stopped moving (worker start-up can still be allocating)."""
    last = tree_memory()[1]
    for _ in range(20):
        time.sleep(0.25)
        now = tree_memory()[1]
        if abs(now - last) < 8 * MiB:
            return now
        last = now
    return last


def _allocate_in_dask(engine):
    return engine._client.submit(_filled, ALLOCATION, pure=False)  # the result stays on the worker


def _allocate_in_ray(engine):
    import sys

    import ray
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers cannot import tests/

    @ray.remote(num_cpus=0)
    class Holder:
        def __init__(self, nbytes: int):
            self.block = _filled(nbytes)

        def size(self) -> int:
            return self.block.nbytes

    holder = Holder.remote(ALLOCATION)
    ray.get(holder.size.remote())
    return holder


def _allocate_in_spark(engine):
    jvm = engine.spark.sparkContext._jvm
    gateway = engine.spark.sparkContext._gateway
    return gateway.new_array(jvm.long, ALLOCATION // 8)  # the JVM zeroes it: every page is touched


@pytest.mark.parametrize("name, allocate", [("dask", _allocate_in_dask), ("ray", _allocate_in_ray),
                                            ("spark", _allocate_in_spark)])
def test_tree_sampler_sees_an_allocation_inside_the_cluster(name, allocate):
    engine = _engine(name)
    try:
        before = _settled_pss()
        with TreeSampler(interval=0.05) as mem:
            held = allocate(engine)
            after = _settled_pss()
        rise = after - before
        assert 0.8 * ALLOCATION < rise < 1.5 * ALLOCATION, f"{name}: rose {rise / MiB:.0f} MiB"
        assert mem.peak_pss >= before + 0.8 * ALLOCATION
        del held
    finally:
        engine.stop()


def test_memray_sees_an_allocation_in_the_driver():
    if not heap.available():
        pytest.skip("memray is not installed")
    small = heap.peak_heap(lambda: _filled(1 * MiB))["peak_driver_heap_bytes"]
    big = heap.peak_heap(lambda: _filled(100 * MiB))["peak_driver_heap_bytes"]
    assert 95 * MiB < big - small < 110 * MiB


def test_memray_capture_is_kept_on_request(tmp_path):
    if not heap.available():
        pytest.skip("memray is not installed")
    info = heap.peak_heap(lambda: _filled(10 * MiB), keep_dir=tmp_path, name="cell")
    assert (tmp_path / "cell.bin").stat().st_size > 0 and info["memray_capture"] == str(tmp_path / "cell.bin")


def test_dask_reports_what_its_workers_spill():
    """Results held past a worker's memory target go to disk, and spilled_bytes counts them."""
    engine = engine_class("dask")(ClusterSpec(workers=1, memory_budget_bytes=768 * MiB))
    engine.start()
    try:
        before = engine.spilled_bytes()
        assert before == 0
        futures = [engine._client.submit(np.full, 10_000_000, float(i), pure=False) for i in range(8)]  # 8 x 80 MB
        deadline = time.monotonic() + 120
        while not all(f.done() for f in futures) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [f.status for f in futures] == ["finished"] * 8  # all made, and still held
        assert engine.spilled_bytes() > 80 * MiB
        del futures
    finally:
        engine.stop()


def test_spark_reports_spilled_bytes_as_a_count():
    engine = engine_class("spark")(ClusterSpec(workers=1))
    engine.start()
    try:
        assert engine.spilled_bytes() == 0  # a running total from the status store, not None
    finally:
        engine.stop()
