"""The generator's speed and memory, beside the Ray-vs-Dask study's method, in one run.

    pytest --benchmark-only benchmarks/test_generate.py --gen-rows 10M,100M

The study's method: NumPy chunks turned into a DataFrame and appended with
pandas `to_csv`, one process. Ours: fixed-width vectorised formatting and Arrow's
Parquet writer in worker processes, chunk by chunk, memory flat.
"""

from __future__ import annotations

import shutil
import statistics
import time

import numpy as np
import pandas as pd
import pytest

from scalebench.datasets import ensure
from scalebench.datasets.schemas import CATEGORIES
from scalebench.measure.memory import TreeSampler

pytestmark = pytest.mark.generate
STUDY_CHUNK = 1_000_000
STUDY_MAX_ROWS = 20_000_000
GEN_ROUNDS = 3
"""Every method's rounds: the median of three, since the first write of a session can meet a cold
page cache."""


def study_method(path, rows: int, seed: int = 42) -> None:
    """As the study describes it: a chunk of NumPy draws per step, written with pandas."""
    rng = np.random.default_rng(seed)
    for first in range(0, rows, STUDY_CHUNK):
        n = min(STUDY_CHUNK, rows - first)
        df = pd.DataFrame({"id": np.arange(first, first + n), "x": rng.random(n), "y": rng.random(n),
                           "category": rng.choice(list(CATEGORIES), n)})
        df.to_csv(path, mode="a" if first else "w", header=first == 0, index=False)


@pytest.fixture(scope="module")
def rates():
    return {}


def _count_rows(path) -> int:
    """Data rows of a CSV with a header, counted in 16 MiB blocks (untimed check)."""
    lines = 0
    with open(path, "rb") as f:
        while block := f.read(1 << 24):
            lines += block.count(b"\n")
    return lines - 1


def _measure(benchmark, fn, check, clean, rows: int, rates: dict, key: str) -> float:
    """GEN_ROUNDS timed rounds for every method, the same way: the output removed before each
    round (pedantic's setup) and checked after it (teardown), both outside the timer and the
    memory sampler. With --benchmark-disable, one checked run."""
    made: dict = {}
    took: list[float] = []
    mem = TreeSampler(interval=0.05)

    def before() -> None:
        clean()
        mem.start()

    def timed() -> None:
        started = time.perf_counter()
        made["result"] = fn()
        took.append(time.perf_counter() - started)

    def after() -> None:
        mem.stop()
        check(made.pop("result"))

    try:
        benchmark.pedantic(timed, setup=before, teardown=after, rounds=GEN_ROUNDS, iterations=1, warmup_rounds=0)
    finally:
        mem.stop()
    if "result" in made:  # disabled: pedantic ran once and skips teardown
        check(made.pop("result"))
    # pytest-benchmark's own figure when it measured; ours when it is disabled (--benchmark-disable)
    seconds = benchmark.stats.stats.median if benchmark.stats else statistics.median(took)
    rates[key] = rows / seconds
    benchmark.extra_info.update({"rows": rows, "rows_per_s": rates[key], "rounds": len(took), **mem.summary()})
    return seconds


@pytest.mark.parametrize("method", ["study-pandas-to_csv", "scalebench-csv", "scalebench-parquet"])
def test_generate_points(benchmark, method, gen_rows, tmp_path, rates):
    benchmark.group = f"generate points {gen_rows:,} rows"
    if method == "study-pandas-to_csv":
        if gen_rows > STUDY_MAX_ROWS:
            pytest.skip(f"the study's method needs minutes at {gen_rows:,} rows; compare at 10M")
        path = tmp_path / "large_data.csv"

        def check_study(_) -> None:
            assert _count_rows(path) == gen_rows, (path, gen_rows)

        _measure(benchmark, lambda: study_method(path, gen_rows), check_study,
                 lambda: path.unlink(missing_ok=True), gen_rows, rates, method)
        benchmark.extra_info.update({"bytes": path.stat().st_size, "check": f"{gen_rows:,} data rows written"})
        return
    fmt = method.split("-")[1]
    made = {}

    def generate():
        return ensure("points", gen_rows, fmt, data_dir=tmp_path / "d", workers=2)

    def check_ours(data) -> None:
        files = data.files()
        assert data.rows == gen_rows and files and all(f.exists() for f in files), (data.rows, gen_rows, files)
        made["data"] = data

    seconds = _measure(benchmark, generate, check_ours, lambda: shutil.rmtree(tmp_path / "d", ignore_errors=True),
                       gen_rows, rates, method)
    data = made["data"]
    study = rates.get("study-pandas-to_csv")
    benchmark.extra_info.update({
        "format": fmt, "bytes": data.bytes, "mb_per_s": data.bytes / 1e6 / seconds, "processes": 2,
        "check": f"{gen_rows:,} rows in the manifest, files present",
        "speedup_vs_study_method": rates[method] / study if study else None,
    })
