"""The generator's speed and memory, beside the Ray-vs-Dask study's method, in one run.

    pytest --benchmark-only benchmarks/test_generate.py --gen-rows 10M,100M

The study's method: NumPy chunks turned into a DataFrame and appended with
pandas `to_csv`, one process. Ours: fixed-width vectorised formatting and Arrow's
Parquet writer in worker processes, chunk by chunk, memory flat.
"""

from __future__ import annotations

import shutil
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
GEN_ROUNDS = 3  # the median of three: the first write of a session can meet a cold page cache


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


def _measure(benchmark, fn, rows: int, rates: dict, key: str, rounds: int = 1):
    with TreeSampler(interval=0.05) as mem:
        started = time.perf_counter()
        benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=0)
        elapsed = (time.perf_counter() - started) / rounds
    # pytest-benchmark's own figure when it measured; ours when it is disabled (--benchmark-disable)
    seconds = benchmark.stats.stats.median if benchmark.stats else elapsed
    rates[key] = rows / seconds
    benchmark.extra_info.update({"rows": rows, "rows_per_s": rates[key], **mem.summary()})
    return seconds


@pytest.mark.parametrize("method", ["study-pandas-to_csv", "scalebench-csv", "scalebench-parquet"])
def test_generate_points(benchmark, method, gen_rows, tmp_path, rates):
    benchmark.group = f"generate points {gen_rows:,} rows"
    if method == "study-pandas-to_csv":
        if gen_rows > STUDY_MAX_ROWS:
            pytest.skip(f"the study's method needs minutes at {gen_rows:,} rows; compare at 10M")
        _measure(benchmark, lambda: study_method(tmp_path / "large_data.csv", gen_rows), gen_rows, rates, method)
        benchmark.extra_info["bytes"] = (tmp_path / "large_data.csv").stat().st_size
        return
    fmt = method.split("-")[1]
    made = {}

    def generate():
        shutil.rmtree(tmp_path / "d", ignore_errors=True)
        made["data"] = ensure("points", gen_rows, fmt, data_dir=tmp_path / "d", workers=2)

    seconds = _measure(benchmark, generate, gen_rows, rates, method, rounds=GEN_ROUNDS)
    data = made["data"]
    assert data.rows == gen_rows
    study = rates.get("study-pandas-to_csv")
    benchmark.extra_info.update({
        "format": fmt, "bytes": data.bytes, "mb_per_s": data.bytes / 1e6 / seconds, "processes": 2,
        "speedup_vs_study_method": rates[method] / study if study else None,
    })
