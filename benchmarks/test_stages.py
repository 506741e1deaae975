"""The matrix: engine x stage query x input format x workers, every answer checked.

    pytest --benchmark-only                              # default size (small)
    pytest --benchmark-only --scale=paper -k "spark and etl"
    pytest --benchmark-only --engines=dask,ray --stages=groupby --workers=1,2
"""

from __future__ import annotations

import re
import time

import pytest

from fixtures.plugin import NOT_TRIED
from scalebench.runner import QueryRun, benchmark_query, out_of_memory, query_data
from scalebench.sizes import format_bytes
from scalebench.stages import resolve_dataset


def test_stage(benchmark, cell, settings, clusters, datasets, references, out_root, unfinished, request):
    if cell.io == "memory" and cell.query.storage_only:
        pytest.skip(f"{cell.query.storage_only}: --io memory has nothing to time")
    below = None
    if cell.laddered:  # a ladder stops climbing where the cell failed (fixtures/plugin.Unfinished)
        rows = datasets.rows(resolve_dataset(cell.query.dataset, settings.zipf), cell.format, cell.rung)
        below = unfinished.gave_up(cell, rows)
    if below is not None:
        detail = f"{below[1]} at {below[0]:,} rows; larger sizes are not tried"
        unfinished.record(request.node, cell, rows, settings, NOT_TRIED, detail, 0.0)
        pytest.xfail(f"{NOT_TRIED}: {detail}")
    engine = clusters.get(cell.engine, cell.workers)  # started outside the timed region
    # generated or cached, untimed; a join's other tables come along in the input
    data, inp = query_data(cell.query, lambda name: datasets.get(name, cell.format, rung=cell.rung), settings.zipf)
    benchmark.group = f"{cell.query.id} {cell.format} {data.rows:,} rows"
    run = QueryRun(engine, cell.query, inp, out_root)
    where = (f"{cell.engine} {cell.query.id} on {data.rows:,} rows with a "
             f"{format_bytes(settings.spec.memory_budget_bytes)} budget")
    started = time.monotonic()

    def not_finished(outcome: str, detail: str, took: float) -> None:
        """A clear outcome for this cell, saved for the report; the session goes on with the others."""
        benchmark.has_error = True  # rounds cut short are not a timing to save
        unfinished.record(request.node, cell, data.rows, settings, outcome, detail, took)
        pytest.xfail(f"{outcome}: {where}: {detail}")

    try:
        if cell.io == "memory":
            engine.load(inp)  # untimed: the input is in the engine before the query (its memory is counted)
        benchmark_query(benchmark, run, data, references, settings.rounds, settings.measure, cell.io)
    except Exception as exc:
        oom = out_of_memory(exc)
        if oom is None:
            raise
        not_finished("out of memory", oom, time.monotonic() - started)
    except pytest.fail.Exception as exc:
        limit = timed_out(exc)
        if limit is None:
            raise
        took = time.monotonic() - started
        # the query may still be running on the cluster: the next cell gets a new one
        clusters.discard(f"{cell.query.id} timed out")
        not_finished("timed out", f"no answer after {took:.0f} s in the query (pytest-timeout {limit} for the "
                     "whole test)", took)
    finally:
        run.cleanup()
        engine.unload()


def timed_out(exc: BaseException) -> str | None:
    """'900 s' when `exc` is pytest-timeout's failure (method signal), else None."""
    found = re.match(r"Timeout \(>([\d.]+)s\) from pytest-timeout", str(exc))
    return f"{float(found.group(1)):g} s" if found else None
