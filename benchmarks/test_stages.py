"""The matrix: engine x stage query x input format x workers, every answer checked.

    pytest --benchmark-only                              # default size (small)
    pytest --benchmark-only --scale=paper -k "spark and etl"
    pytest --benchmark-only --engines=dask,ray --stages=groupby --workers=1,2
"""

from __future__ import annotations

import pytest

from scalebench.runner import QueryRun, benchmark_query, out_of_memory, query_data
from scalebench.sizes import format_bytes


def test_stage(benchmark, cell, settings, clusters, datasets, references, out_root):
    engine = clusters.get(cell.engine, cell.workers)  # started outside the timed region
    # generated or cached, untimed; a join's other tables come along in the input
    data, inp = query_data(cell.query, lambda name: datasets.get(name, cell.format), settings.zipf)
    benchmark.group = f"{cell.query.id} {cell.format} {data.rows:,} rows"
    run = QueryRun(engine, cell.query, inp, out_root)
    try:
        benchmark_query(benchmark, run, data, references, settings.rounds, settings.measure)
    except Exception as exc:
        oom = out_of_memory(exc)
        if oom is None:
            raise
        # a clear outcome for this cell; the session goes on with the others
        pytest.xfail(f"out of memory: {cell.engine} {cell.query.id} on {data.rows:,} rows with a "
                     f"{format_bytes(settings.spec.memory_budget_bytes)} budget: {oom}")
    finally:
        run.cleanup()
