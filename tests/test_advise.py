"""`scalebench advise` on synthetic runs whose answers are known: where a framework overtakes pandas
and DuckDB, where it does not, an engine that ran out of memory, a single size, worker scaling with
COST, and the command end to end."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import flat
from scalebench.cli import main
from scalebench.report.advise import advise, interpolate
from scalebench.report.advise_plots import crossings_table, markdown, scaling_table, times_table
from scalebench.report.load import load_runs

GiB = 2**30
LADDER = (1_000_000, 3_000_000, 10_000_000, 30_000_000)
CROSS = 6_000_000
"""Spark's time grows as sqrt(rows), pandas' linearly: their ratio is a power law that is 1 at CROSS,
so log-log interpolation between the rungs around it must place it there exactly."""


def spark_time(rows: int) -> float:
    return 1e-7 * math.sqrt(CROSS) * math.sqrt(rows)


TIMES = {
    "pandas": lambda r: 1e-7 * r,
    "duckdb": lambda r: 2e-8 * r,
    "spark": spark_time,
    "dask": lambda r: 0.5 + 1.2e-7 * r,
    "ray": lambda r: 0.3 + 1e-7 * r,
}

PEAK = {"pandas": 2.5, "duckdb": 0.5, "dask": 1.2, "ray": 1.5, "spark": 1.0}
"""Bytes per row of each engine's peak, relative to Spark's 100."""


def _bench(engine: str, query: str, rows: int, workers: int, median: float, *, budget: int = 4 * GiB) -> dict:
    """One completed stage cell, as benchmarks/test_stages.py saves it (see test_report._bench)."""
    stage, what = query.split("-", 1)
    data = [median * f for f in (0.98, 1.0, 1.02)]
    return {
        "group": f"{query} parquet {rows:,} rows", "name": f"test_stage[{engine}-{query}-parquet-w{workers}-{rows}]",
        "fullname": f"benchmarks/test_stages.py::test_stage[{engine}-{query}-parquet-w{workers}-{rows}]",
        "params": None, "param": None, "options": {},
        "stats": {"min": data[0], "max": data[-1], "mean": median, "stddev": 0.02 * median, "rounds": 3,
                  "median": median, "iqr": 0.04 * median, "q1": data[0], "q3": data[-1], "iqr_outliers": 0,
                  "stddev_outliers": 0, "outliers": "0;0", "ld15iqr": data[0], "hd15iqr": data[-1],
                  "ops": 1 / median, "total": sum(data), "data": data, "iterations": 1},
        "extra_info": {"engine": engine, "stage": stage, "query": what, "format": "parquet", "rows": rows,
                       "workers": workers, "memory_budget_bytes": budget, "round_times_s": data,
                       "peak_tree_pss_bytes": PEAK.get(engine, 1) * 100 * rows + 300 * 2**20,
                       "tree_cpu_s": 1.5 * median, "cpu_utilisation": 0.75, "cores": 2, "gib_s": median,
                       "cost_per_query_usd": 1.5 * median * 1e-5,
                       "price_per_core_hour": 0.031611, "price_per_gib_hour": 0.004237},
    }


def _unfinished(engine: str, query: str, rows: int, workers: int, outcome: str, *, budget: int = 4 * GiB) -> dict:
    stage, what = query.split("-", 1)
    return {"fullname": f"benchmarks/test_stages.py::test_stage[{engine}-{query}-parquet-w{workers}-{rows}]",
            "engine": engine, "stage": stage, "query": what, "format": "parquet", "rows": rows, "workers": workers,
            "memory_budget_bytes": budget, "outcome": outcome, "detail": "synthetic", "after_s": 1.0}


def _write(path: Path, benches: list[dict], unfinished: list[dict] = ()) -> Path:
    path.write_text(json.dumps({"machine_info": {}, "commit_info": {}, "datetime": "2026-12-05T00:00:00",
                                "version": "5.2.3", "benchmarks": benches, "scalebench_unfinished": list(unfinished)}))
    return path


def ladder_runs(folder: Path) -> list[Path]:
    """A 4-rung ladder, one file per rung, two groupby queries (the second twice as slow on every engine, so
    the family's geometric-mean ratios equal each query's) and one sort query on which Spark always wins.
    pandas runs out of memory at 30M; Ray times out there."""
    paths = []
    for rows in LADDER:
        benches, failed = [], []
        for query, m in (("groupby-age", 1.0), ("groupby-points", 2.0)):
            for engine, t in TIMES.items():
                if rows == LADDER[-1] and engine in ("pandas", "ray"):
                    failed.append(_unfinished(engine, query, rows, 2, "out of memory" if engine == "pandas"
                                              else "timed out"))
                else:
                    benches.append(_bench(engine, query, rows, 2, m * t(rows)))
        benches += [_bench("pandas", "sort-global", rows, 2, 1e-6 * rows), _bench("spark", "sort-global", rows, 2,
                                                                                   5e-7 * rows)]
        paths.append(_write(folder / f"rung-{rows // 10**6}M.json", benches, failed))
    return paths


@pytest.fixture
def ladder(tmp_path) -> list[Path]:
    return ladder_runs(tmp_path)


def _verdict(advice, stage: str):
    return next(v for v in advice.verdicts if v.stage == stage)


def test_a_known_crossing_is_placed_by_log_log_interpolation(ladder):
    advice = advise(load_runs(ladder))
    groupby = _verdict(advice, "groupby")
    spark = next(x for x in groupby.crossovers if x.framework == "spark" and x.baseline == "pandas")
    assert spark.kind == "between" and (spark.low, spark.high) == (3_000_000, 10_000_000)
    assert spark.rows == pytest.approx(CROSS, rel=0.01)
    line = next(line for line in groupby.lines if line.startswith("Spark "))
    assert line.startswith("Spark overtakes pandas between 3M and 10M rows (at about 6M, log-log interpolation; "
                           "time ratio to pandas 1.41 at 3M, 0.77 at 10M)"), line
    assert interpolate(1, 2.0, 100, 0.5) == pytest.approx(10)  # log-ratio halfway down at log-rows halfway


def test_no_crossing_within_range_never_extrapolates(ladder):
    advice = advise(load_runs(ladder))
    groupby = _verdict(advice, "groupby")
    spark_duckdb = next(x for x in groupby.crossovers if x.framework == "spark" and x.baseline == "duckdb")
    assert spark_duckdb.kind == "not up to" and spark_duckdb.rows is None
    line = next(line for line in groupby.lines if line.startswith("Spark "))
    assert "does not overtake DuckDB: not up to 30M rows on this machine (time ratio to DuckDB 2.24 at 30M)" in line
    # Ray never beat pandas while both finished (10M); at 30M both failed: nothing is claimed past 10M
    ray = next(line for line in groupby.lines if line.startswith("Ray "))
    assert "does not overtake pandas: not up to 10M rows on this machine" in ray, ray
    sort = _verdict(advice, "sort")
    assert ("Spark is faster than pandas already at the smallest size measured (1M rows; time ratio to pandas 0.50)"
            in sort.lines[1]), sort.lines


def test_an_engine_that_ran_out_of_memory_is_the_frontier_and_is_overtaken(ladder):
    advice = advise(load_runs(ladder))
    groupby = _verdict(advice, "groupby")
    dask = next(line for line in groupby.lines if line.startswith("Dask "))
    assert dask.startswith("Dask overtakes pandas at 30M rows: pandas ran out of memory at 30M (budget 4.0 GiB; "
                           "at 10M time ratio to pandas 1.70). It does not overtake DuckDB"), dask
    memory = next(line for line in groupby.lines if line.startswith("Memory"))
    assert memory == ("Memory (budget 4.0 GiB): pandas completed up to 10M rows and ran out of memory at 30M (2 of 2 "
                      "queries); Ray completed up to 10M rows and timed out at 30M (2 of 2 queries); DuckDB, Dask, "
                      "Spark completed every size up to 30M rows."), memory
    assert groupby.lines[0].startswith("DuckDB fastest at every size measured, 1M to 30M rows (28.3 ms at 1M")
    times = flat(times_table(advice).to_markdown(index=False))
    assert "| groupby | groupby-age | Parquet | 2 | 30M | Dask | 4.10 s | pandas ran out of memory | 6.83x |" in times


def test_a_query_an_engine_has_no_idiom_for_does_not_drop_it_from_the_fastest(tmp_path):
    """pandas and DuckDB have no native skew remedy (the cell is skipped, absent from the JSON): the
    fastest engine is found over the queries every engine ran, so DuckDB still wins."""
    rows = 1_000_000
    benches = [_bench(e, "skew-join-plain", rows, 2, t(rows)) for e, t in TIMES.items()]
    benches += [_bench(e, "skew-join-native", rows, 2, t(rows)) for e, t in TIMES.items() if e in ("dask", "spark")]
    (v,) = advise(load_runs([_write(tmp_path / "skew.json", benches)])).verdicts
    assert v.lines[0].startswith("DuckDB fastest (20.0 ms) at 1M rows"), v.lines[0]
    cost = v.lines[-1]  # priced over the query every engine ran, so no engine is "not measured"
    assert cost.startswith("Cost at 1M rows (the query every engine ran): DuckDB 0.03 CPU s") and "not measured" \
        not in cost, cost


def test_a_failure_below_a_size_completed_in_full_is_said_as_it_is(tmp_path):
    """Dask timed out on one query at 1M and completed every query at 2M: no 'completed up to 2M but
    later timed out at 1M'."""
    cells = [(q, r) for q in ("groupby-age", "groupby-points") for r in (1_000_000, 2_000_000)]
    benches = [_bench("dask", q, r, 2, 1.0) for q, r in cells if (q, r) != ("groupby-points", 1_000_000)]
    benches += [_bench("pandas", q, r, 2, 0.5) for q, r in cells]
    run = _write(tmp_path / "flaky.json", benches, [_unfinished("dask", "groupby-points", 1_000_000, 2, "timed out")])
    (v,) = advise(load_runs([run])).verdicts
    memory = next(line for line in v.lines if line.startswith("Memory"))
    assert "Dask timed out at 1M (1 of 2 queries), yet completed every query at 2M rows" in memory, memory


def test_a_single_size_still_answers(tmp_path):
    rows = 1_000_000
    run = _write(tmp_path / "one.json", [_bench(e, "groupby-age", rows, 2, t(rows)) for e, t in TIMES.items()])
    advice = advise(load_runs([run]))
    (v,) = advice.verdicts
    assert v.lines[0] == "DuckDB fastest (20.0 ms) at 1M rows, the one size measured: no crossover can be placed."
    spark = next(line for line in v.lines if line.startswith("Spark "))
    assert spark.startswith("Spark is not faster than pandas at 1M rows (time ratio to pandas 2.45)."), spark
    assert sum("one size measured" in line for line in v.lines) == 1, v.lines  # said once, in the first line
    assert all(x.rows is None for x in v.crossovers)


def test_worker_scaling_and_cost(tmp_path):
    """Spark beats the best single thread (DuckDB on 1 worker, 0.5 s) only with 4 workers; Dask never does."""
    rows, runs = 10_000_000, []
    spark, dask = {1: 2.0, 2: 1.1, 4: 0.45}, {1: 2.0, 2: 1.5, 4: 1.0}
    for w in (1, 2, 4):
        benches = [_bench("spark", "groupby-age", rows, w, spark[w]), _bench("dask", "groupby-age", rows, w, dask[w]),
                   _bench("duckdb", "groupby-age", rows, w, 0.5 / w), _bench("pandas", "groupby-age", rows, w, 1.0)]
        runs.append(_write(tmp_path / f"w{w}.json", benches))
    advice = advise(load_runs(runs))
    (v,) = advice.verdicts
    assert v.workers == 4
    assert "4 workers (the most measured of 1, 2 and 4; the tables give the others)" in markdown(advice)
    line = next(line for line in v.lines if line.startswith("Workers:"))
    assert ("Spark at 10M rows: speedup 1.82x on 2 (efficiency 0.91), 4.44x on 4 (efficiency 1.11); COST 4 workers "
            "(the fewest that beat DuckDB on 1 thread)") in line, line
    assert "Dask at 10M rows: speedup 1.33x on 2 (efficiency 0.67), 2.00x on 4 (efficiency 0.50); COST: not within 4 " \
           "workers" in line, line
    table = flat(scaling_table(advice).to_markdown(index=False))
    assert "| Spark | 2: 1.82x (0.91), 4: 4.44x (1.11) | DuckDB on 1 thread 500.0 ms | 4 workers (the fewest" in table


def test_advise_end_to_end(ladder, tmp_path, capsys):
    out = tmp_path / "advice"
    assert main(["advise", *map(str, ladder), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    md = (out / "advise.md").read_text()
    assert md.startswith("# When does a framework pay off?") and "## Group-by aggregations, Parquet input" in md
    assert "Spark overtakes pandas between 3M and 10M rows" in printed
    assert "![" in md and "(advise-time-groupby-parquet.svg)" in md and "(advise-memory-groupby-parquet.svg)" in md
    time_svg = (out / "advise-time-groupby-parquet.svg").read_text()
    memory_svg = (out / "advise-memory-groupby-parquet.svg").read_text()
    assert all(f">{e}<" in time_svg for e in ("pandas", "DuckDB", "Dask", "Ray", "Spark"))
    assert "Spark overtakes pandas" in time_svg and "groupby-" not in time_svg  # crossover marked; no internal names
    assert "memory budget (4.0 GiB)" in memory_svg and "did not finish" in memory_svg
    crossings = flat(crossings_table(advice := advise(load_runs(ladder))).to_markdown(index=False))
    assert "| groupby | groupby-points | Parquet | 2 | Spark | overtakes pandas between 3M and 10M rows" in crossings
    assert markdown(advice) in printed


def test_advise_names_a_missing_file_and_a_run_without_stages(tmp_path):
    missing = tmp_path / "nope.json"
    r = subprocess.run([sys.executable, "-m", "scalebench.cli", "advise", str(missing)], capture_output=True,
                       text=True)
    assert r.returncode == 2 and f"{missing}: no such file" in r.stderr, r.stderr
    empty = _write(tmp_path / "empty.json", [])
    r = subprocess.run([sys.executable, "-m", "scalebench.cli", "advise", str(empty)], capture_output=True, text=True)
    assert r.returncode == 2 and f"{empty}: no benchmarks: advise compares the stage cells" in r.stderr, r.stderr


def test_the_report_opens_on_the_verdict(ladder, tmp_path):
    out = tmp_path / "report"
    assert main(["report", *map(str, ladder), "-o", str(out)]) == 0
    md = (out / "report.md").read_text()
    first = md.index("## When does a framework pay off?")
    assert first < md.index("## rung-1M") and "### Group-by aggregations, Parquet input" in md
    assert (out / "advise-time-groupby-parquet.svg").exists() and (out / "advise-memory-sort-parquet.svg").exists()
    page = (out / "report.html").read_text()
    assert page.index("When does a framework pay off?") < page.index("rung-1M")
    assert "median time per engine at 1M to 30M rows" in page  # captions in words, not figure names


OOM_AT_10K = """
from scalebench import runner

_run = runner.QueryRun.__call__


def _call(self):
    if self.engine.name == "pandas" and self.query.id == "groupby-age" and self.inp.rows == 10_000:
        raise MemoryError("could not allocate the frame")
    return _run(self)


runner.QueryRun.__call__ = _call
"""


def test_advise_on_a_real_tiny_ladder(tmp_path, data_dir):
    """The main command's ladder at tiny sizes, then advise on its JSON: two rungs in one run, each
    answered, their CPU and cost measured. One pandas cell runs out of memory at 10k rows: its 20k
    rung is not tried (the ladder stops climbing there) and advise places pandas' frontier at 10k."""
    saved = tmp_path / "ladder.json"
    repo = Path(__file__).resolve().parents[1]
    (tmp_path / "oomplugin.py").write_text(OOM_AT_10K)
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("PYTEST_XDIST")}
    env["PYTHONPATH"] = __import__("os").pathsep.join([str(tmp_path), str(repo), env.get("PYTHONPATH", "")])
    r = subprocess.run([sys.executable, "-m", "pytest", str(repo / "benchmarks" / "test_stages.py"), "-q",
                        "-p", "oomplugin", "-p", "no:cacheprovider", "--scale=10k,20k", "--engines=duckdb,pandas",
                        "--stages=groupby", "--rounds=1", "--no-memray", f"--data-dir={data_dir}",
                        f"--benchmark-json={saved}"], capture_output=True, text=True, cwd=repo, timeout=600, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    doc = json.loads(saved.read_text())
    names = [b["name"] for b in doc["benchmarks"]]
    assert "test_stage[duckdb-groupby-age-parquet-10k-w2]" in names and len(names) == 2 * 2 * 3 - 2
    unfinished = {(c["rows"], c["outcome"]): c["detail"] for c in doc["scalebench_unfinished"]}
    assert set(unfinished) == {(10_000, "out of memory"), (20_000, "not tried")}, unfinished
    assert unfinished[(20_000, "not tried")] == "out of memory at 10,000 rows; larger sizes are not tried"
    out = tmp_path / "advise"
    assert main(["advise", str(saved), "-o", str(out)]) == 0
    md = flat((out / "advise.md").read_text())
    assert "10k to 20k rows" in md and "per 1,000 runs" in md
    # which engine wins at these sizes is the machine's business; that one is named is the command's
    assert re.search(r"(Fastest at each size: 10k: |(DuckDB|pandas) fastest at every size measured)", md), md[:2000]
    assert list(out.glob("advise-time-*.svg")) and list(out.glob("advise-memory-*.svg"))
    assert "pandas ran out of memory at 10k (1 of 3 queries) and completed no size in full" in md, md[:3000]
