"""Saved runs: `scalebench compare` gates regressions, `scalebench report` writes tables and plots,
and pytest-benchmark's own compare reads our files."""

from __future__ import annotations

import copy
import html
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import flat
from scalebench.cli import main

ENGINES = ("pandas", "duckdb")
REPO = Path(__file__).resolve().parents[1]


def _bench(engine: str, query: str, workers: int, median: float, data: list[float] | None = None) -> dict:
    """One benchmark as pytest-benchmark saves it (with --benchmark-save-data: stats['data'] holds
    every round); `data` are the round times, three around `median` unless given."""
    data = data or [median * f for f in (0.95, 1.0, 1.05)]
    s = sorted(data)
    median = (s[(len(s) - 1) // 2] + s[len(s) // 2]) / 2
    q1, q3 = s[len(s) // 4], s[(3 * len(s)) // 4]
    mean = sum(s) / len(s)
    return {
        "group": f"{query} parquet 20,000 rows", "name": f"test_stage[{engine}-{query}-parquet-w{workers}]",
        "fullname": f"benchmarks/test_stages.py::test_stage[{engine}-{query}-parquet-w{workers}]",
        "params": None, "param": None, "options": {},
        "stats": {"min": s[0], "max": s[-1], "mean": mean, "stddev": 0.05 * median, "rounds": len(s),
                  "median": median, "iqr": q3 - q1, "q1": q1, "q3": q3, "iqr_outliers": 0,
                  "stddev_outliers": 0, "outliers": "0;0", "ld15iqr": s[0], "hd15iqr": s[-1],
                  "ops": 1 / mean, "total": sum(s), "data": list(data), "iterations": 1},
        "extra_info": {"engine": engine, "stage": query.split("-", 1)[0], "query": query.split("-", 1)[1],
                       "format": "parquet", "rows": 20_000, "workers": workers,
                       "peak_tree_pss_bytes": 300 * 2**20, "throughput_rows_per_s": 20_000 / median},
    }


@pytest.fixture
def run_json(tmp_path):
    benches = [_bench(e, q, w, (0.1 if e == "duckdb" else 0.3) * (1.0 if w == 1 else 0.6))
               for e in ENGINES for q in ("groupby-age", "sort-global") for w in (1, 2)]
    doc = {"machine_info": {}, "commit_info": {}, "benchmarks": benches, "datetime": "2026-11-23T00:00:00",
           "version": "5.2.3"}
    path = tmp_path / "base.json"
    path.write_text(json.dumps(doc))
    return path, doc


def test_compare_passes_identical_runs(run_json, capsys):
    path, _ = run_json
    assert main(["compare", str(path), str(path), "--threshold", "10%"]) == 0
    out = capsys.readouterr().out
    assert "0 slower, 0 faster, 8 no change detectable" in out
    assert "(too few rounds: 3, need 5)" in out  # three rounds decide nothing, and the verdict says so


def test_compare_flags_a_2x_slowdown(run_json, tmp_path, capsys):
    path, doc = run_json
    base, slow = copy.deepcopy(doc), copy.deepcopy(doc)
    rounds = [0.3 * f for f in (0.97, 1.0, 1.02, 0.99, 1.03, 1.01, 0.98, 1.0, 1.04, 0.96)]
    base["benchmarks"][0] = _bench("pandas", "groupby-age", 1, 0.3, rounds)
    slow["benchmarks"][0] = victim = _bench("pandas", "groupby-age", 1, 0.6, [2 * x for x in rounds])
    path, head = tmp_path / "base10.json", tmp_path / "head.json"
    path.write_text(json.dumps(base))
    head.write_text(json.dumps(slow))
    assert main(["compare", str(path), str(head), "--threshold", "10%"]) == 1
    out = capsys.readouterr().out.splitlines()
    cells = [line for line in out if line.startswith("benchmarks/")]
    assert cells[0].startswith(victim["fullname"]) and "base 0.3 s  head 0.6 s  x2.00 [" in cells[0], out
    assert cells[0].endswith("  slower") and out[-1].startswith("1 slower, 0 faster, 7 no change detectable"), out


def _unfinished(doc: dict, index: int, outcome: str) -> dict:
    """`doc` with its benchmark `index` turned into a cell that gave no time, as test_stage saves it."""
    doc = copy.deepcopy(doc)
    b = doc["benchmarks"].pop(index)
    info = b["extra_info"]
    doc["scalebench_unfinished"] = [{
        "fullname": b["fullname"], "engine": info["engine"], "stage": info["stage"], "query": info["query"],
        "format": info["format"], "rows": info["rows"], "workers": info["workers"],
        "memory_budget_bytes": 2**31, "outcome": outcome, "detail": "no answer after 898 s in the query",
        "after_s": 898.0}]
    return doc


def test_compare_flags_a_cell_that_stopped_finishing(run_json, tmp_path, capsys):
    path, doc = run_json
    head = tmp_path / "head.json"
    head.write_text(json.dumps(_unfinished(doc, 0, "timed out")))
    assert main(["compare", str(path), str(head), "--threshold", "10%"]) == 1
    out = capsys.readouterr().out
    name = doc["benchmarks"][0]["fullname"]
    assert f"{name}  base 0.3 s  head timed out  slower (completed -> timed out)" in out, out
    assert "missing" not in out and "1 slower" in out
    assert main(["compare", str(head), str(path), "--threshold", "10%"]) == 0  # it finishes again: faster
    assert f"{name}  base timed out  head 0.3 s  faster (timed out -> completed)" in capsys.readouterr().out


def test_report_shows_cells_that_did_not_finish_and_the_budget_s_reach(run_json, tmp_path):
    path, doc = run_json
    saved = tmp_path / "oom.json"
    saved.write_text(json.dumps(_unfinished(doc, 0, "out of memory")))
    assert main(["report", str(saved), "-o", str(tmp_path / "rep")]) == 0
    md = flat((tmp_path / "rep" / "report.md").read_text())
    assert "| groupby-age | 100.0 ms (1.0x, duckdb 1.00x, 300.0 MiB) | **out of memory** |" in md, md
    assert "## Memory against the budget" in md
    assert "| oom | parquet | 20,000 | 1 | pandas | 2.0 GiB | 300.0 MiB | 0.1x | - | - | 1 of 2 | 1 out of memory |" \
        in md, md
    assert "- pandas groupby-age (parquet, 20,000 rows): out of memory: no answer after 898 s" in md


def test_compare_names_a_bad_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    r = subprocess.run([sys.executable, "-m", "scalebench.cli", "compare", str(bad), str(bad)], capture_output=True,
                       text=True)
    assert r.returncode == 2 and f"{bad}: not a pytest-benchmark run" in r.stderr


def test_report_writes_tables_and_plots(run_json, tmp_path):
    path, doc = run_json
    second = tmp_path / "second.json"
    second.write_text(json.dumps(doc))
    out = tmp_path / "report"
    assert main(["report", str(path), str(second), "-o", str(out)]) == 0
    md = flat((out / "report.md").read_text())
    assert "| groupby-age |" in md and "(3.0x, duckdb 3.00x" in md
    assert "| pandas | groupby-age | parquet | 20,000 | 2 |" in md  # speedup table
    times = out / "times-base-parquet-20000-w1.svg"
    svg = times.read_text()
    assert ">pandas<" in svg and ">DuckDB<" in svg  # one series per engine in the legend
    scaling = (out / "scaling.svg").read_text()
    assert ">pandas<" in scaling and ">DuckDB<" in scaling and ">ideal (n workers" in scaling  # a line per engine
    page = (out / "report.html").read_text()
    assert page.count("<svg") >= 3 and "All results" in page
    # real tables, sortable, each in a box of its own that scrolls when wide; no Markdown in <pre>
    assert "<pre>" not in page and page.count('<table class="dataframe sortable">') >= 3
    assert "<td>groupby-age</td>" in page and "table.sortable th" in page
    assert page.count("<div class='scroll'><table") == page.count("<table")
    # a table with a plot links up to it: the plots come before the tables
    link = "Plotted above: <a href='#fig-times-base-parquet-20000-w1'>Median time per query: 20,000 rows, Parquet"
    assert link in page and page.index("id='fig-times-base-parquet-20000-w1'") < page.index(link)


FIGURE = re.compile(r"<figure id='fig-(?P<name>[^']+)'[^>]*>(?P<svg><svg.*?</svg>)\s*<figcaption>(?P<caption>.*?)"
                    r"</figcaption>", re.S)
INTERNAL = re.compile(r"\b[\w.]+-[\w.]+-\d+-w\d+\b|worker\(s\)|_s\b")
"""What a caption or title in words never holds: a figure key (times-base-parquet-20000-w1), 'worker(s)',
a column name (median_s)."""


def _many_queries_run(tmp_path) -> Path:
    """30 group-by queries on pandas, DuckDB and Dask, one Dask cell out of memory, on a recorded machine."""
    benches = [_bench(e, f"groupby-q{i}", 2, t * (1 + i / 10)) for i in range(1, 31)
               for e, t in (("pandas", 0.3), ("duckdb", 0.1), ("dask", 0.5))]
    doc = {"machine_info": {"scalebench": {"machine": {"cores_usable": 8, "memory_bytes": 16 * 2**30}}},
           "commit_info": {}, "benchmarks": benches, "datetime": "2026-12-04T00:00:00", "version": "5.2.3"}
    path = tmp_path / "many.json"
    path.write_text(json.dumps(_unfinished(doc, 2, "out of memory")))
    return path


def test_the_report_reads_as_a_person_reads_it(tmp_path):
    """The verdict, then the plots, each fitting the page and captioned in words (what, at what size and
    input, how many workers, on what machine), then the tables, the raw one last, in its readable columns."""
    from scalebench.report import render

    out = tmp_path / "rep"
    assert main(["report", str(_many_queries_run(tmp_path)), "-o", str(out)]) == 0
    page, md = (out / "report.html").read_text(), flat((out / "report.md").read_text())
    figures = list(FIGURE.finditer(page))
    names = {f["name"] for f in figures}
    assert {"times-many-parquet-20000-w2", "advise-time-groupby-parquet", "advise-memory-groupby-parquet"} <= names
    assert names == {p.stem for p in out.glob("*.svg")}  # every plot written is on the page
    for f in figures:
        caption, svg = html.unescape(f["caption"]), f["svg"]
        assert f["name"] not in caption and not INTERNAL.search(caption), caption
        assert "20,000 rows" in caption or "at 20k rows" in caption, caption
        assert "2 workers" in caption and "on a 8-core, 16.0 GiB machine" in caption, caption
        texts = " ".join(re.findall(r"<text[^>]*>([^<]*)</text>", svg)) + " ".join(re.findall(r"<!-- (.*?) -->", svg))
        assert f["name"] not in texts and "worker(s)" not in texts, texts
        width_pt = float(re.search(r'<svg[^>]*?\swidth="([\d.]+)pt"', svg)[1])
        assert width_pt / 72 <= render.MAX_FIGURE_IN and width_pt / 72 * 96 <= render.PAGE_PX, (f["name"], width_pt)
    assert "figure svg{display:block;max-width:100%" in page  # and the page shrinks a plot rather than clip it
    times = next(f for f in figures if f["name"] == "times-many-parquet-20000-w2")
    assert "Median time of each of 30 queries per engine (pandas, DuckDB and Dask), at 20,000 rows, Parquet input, " \
           "2 workers, on a 8-core, 16.0 GiB machine." in html.unescape(times["caption"])
    assert ">did not finish<" in times["svg"]  # the Dask cell that ran out of memory
    # the order: the verdict, the plots, the tables, All results last; the Markdown in the same order
    marks = ["id='verdict'", "id='plots'", "<h2>Times per query: 20,000 rows, Parquet input, 2 workers</h2>",
             "<h2>Memory against the budget</h2>", "<h2>Measured on</h2>", "<h2>All results</h2>"]
    at = [page.index(m) for m in marks]
    assert at == sorted(at) and "<h2" not in page[at[-1] + 5:], at
    assert page.index("id='plots'") < page.index("<figure") and page.rindex("</figure>") < at[2]
    heads = [line for line in md.splitlines() if line.startswith("## ")]
    assert heads[:3] == ["## When does a framework pay off?", "## Plots",
                         "## Times per query: 20,000 rows, Parquet input, 2 workers"] and heads[-1] == "## All results"
    assert md.index("](advise-time-groupby-parquet.svg)") < md.index("](times-many-parquet-20000-w2.svg)") \
           < md.index("## Times per query")
    assert "*Median time of each of 30 queries per engine" in md and md.count("times-many") == 1  # the link only
    # All results: the columns a person reads, the rest left to the JSON
    columns = ("| engine | stage | query | format | rows | workers | median | vs fastest | vs DuckDB | peak memory | "
               "CPU s | per 1,000 queries | outcome |")
    assert columns in md.split("## All results")[1], md.split("## All results")[1][:600]
    head = page.split("<h2>All results</h2>")[1].split("<thead>")[1].split("</thead>")[0]
    assert head.count("<th>") == 13 and not any(c in head for c in ("iqr", "min_s", "throughput", "cold", "name"))
    assert "| DuckDB | groupby | groupby-q2 | parquet | 20,000 | 2 | 120.0 ms | 1.00x | 1.00x | 300.0 MiB | - | - | " \
           "completed |" in md
    assert md.index("| groupby-q2 |") < md.index("| groupby-q10 |")  # q2 before q10
    assert "| Dask | groupby | groupby-q1 | parquet | 20,000 | 2 | - | - | - | - | - | - | out of memory |" in md


def test_report_totals_db_benchmark_and_shows_the_skew_penalty(tmp_path):
    times = {"skew-join-uniform-plain": 1.0, "skew-join-zipf-plain": 3.0, "skew-join-uniform-salted": 1.2,
             "skew-join-zipf-salted": 1.5, "partition-groupby-unpartitioned": 2.0,
             "partition-groupby-by_key": 0.5, **{f"h2o_groupby-q{i}": 0.1 * i for i in range(1, 11)}}
    doc = {"machine_info": {}, "commit_info": {}, "datetime": "2026-11-23T00:00:00", "version": "5.2.3",
           "benchmarks": [_bench("spark", q, 2, t) for q, t in times.items()]}
    path = tmp_path / "skew.json"
    path.write_text(json.dumps(doc))
    out = tmp_path / "report"
    assert main(["report", str(path), "-o", str(out)]) == 0
    md = flat((out / "report.md").read_text())
    assert "| skew | parquet | 20,000 | 2 | spark | 5.50 s (10 q) | |" in md  # 0.1 + 0.2 + ... + 1.0
    assert "| skew | parquet | 2 | spark | join | plain | 1.00 s | 3.00 s | 3.00 | 1.00 |" in md
    assert "| skew | parquet | 2 | spark | join | salted | 1.20 s | 1.50 s | 1.25 | 2.00 |" in md
    assert "| skew | parquet | 2 | spark | join | 1.00 s | 3.00 s | 1.50 s (2.00x) |" in md  # side by side
    assert "| skew | parquet | 20,000 | 2 | spark | 2.00 s | 500.0 ms | 4.00 |" in md  # partitioning
    assert (out / "skew.svg").exists() and (out / "partition.svg").exists()


def _outside_xdist() -> dict[str, str]:
    """The inner run must not look like an xdist worker: pytest-benchmark then times nothing
    and writes no JSON (it reads PYTEST_XDIST_WORKER from the environment)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}


def test_a_real_saved_run_works_with_both_tools(tmp_path, data_dir):
    """A run saved by pytest-benchmark's own --benchmark-json: its compare and our report both read it."""
    saved = tmp_path / "real.json"
    r = subprocess.run([sys.executable, "-m", "pytest", str(REPO / "benchmarks" / "test_stages.py"), "-q",
                        "-p", "no:cacheprovider", "--scale=tiny", "--engines=duckdb,pandas", "--stages=groupby",
                        "--formats=parquet", "--rounds=2", f"--data-dir={data_dir}", f"--benchmark-json={saved}"],
                       capture_output=True, text=True, cwd=REPO, timeout=600, env=_outside_xdist())
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    cli = Path(sys.executable).with_name("pytest-benchmark")
    again = tmp_path / "again.json"
    again.write_text(saved.read_text())
    c = subprocess.run([str(cli), "compare", str(saved), str(again)], capture_output=True, text=True)
    assert c.returncode == 0, c.stderr
    assert "duckdb-groupby-age-parquet-w2" in c.stdout
    assert main(["report", str(saved), "-o", str(tmp_path / "rep")]) == 0
    md = flat((tmp_path / "rep" / "report.md").read_text())
    assert "| groupby-id_bucket |" in md
    # every cell's CPU and cost, from its timed rounds, reported beside its time
    for bench in json.loads(saved.read_text())["benchmarks"]:
        info = bench["extra_info"]
        assert len(info["tree_cpu_s_rounds"]) == len(info["round_times_s"]) == 2, bench["name"]
        # CPU time comes in 10 ms clock ticks: a round of a few milliseconds may read 0 ticks (a
        # DuckDB query on 20k rows did, on a loaded machine) or more than its wall time
        assert info["tree_cpu_s"] >= 0 and info["gib_s"] > 0 and info["cost_per_query_usd"] > 0, bench["name"]
        assert info["cpu_utilisation"] >= 0 and info["cores"] == 2, bench["name"]
    assert sum(b["extra_info"]["tree_cpu_s"] for b in json.loads(saved.read_text())["benchmarks"]) > 0
    assert "## What each query cost" in md and "of 2 |" in md


def test_the_report_keeps_storage_and_memory_cells_apart(tmp_path):
    """A cell measured with --io memory is its own row, labelled so, never averaged with storage."""
    from scalebench.report.load import load_run

    stored, loaded = _bench("dask", "groupby-age", 2, 0.3), _bench("dask", "groupby-age", 2, 0.1)
    loaded["name"] = loaded["name"].replace("parquet", "parquet-memory")
    loaded["fullname"] = loaded["fullname"].replace("parquet", "parquet-memory")
    loaded["extra_info"]["io"] = "memory"
    path = tmp_path / "modes.json"
    path.write_text(json.dumps({"machine_info": {}, "commit_info": {}, "benchmarks": [stored, loaded],
                                "datetime": "2026-12-04T00:00:00", "version": "5.2.3"}))
    frame = load_run(path).set_index("format")
    assert frame.loc["parquet", "median_s"] == pytest.approx(0.3)
    assert frame.loc["parquet in memory", "median_s"] == pytest.approx(0.1)
    assert main(["report", str(path), "-o", str(tmp_path / "out")]) == 0
    assert "parquet in memory" in (tmp_path / "out" / "report.md").read_text()


def test_the_report_tables_tpch_per_engine_with_total_and_geometric_mean(tmp_path):
    benches = []
    for engine, factor in (("duckdb", 1.0), ("spark", 4.0)):
        for q in range(1, 23):
            if engine == "spark" and q == 21:
                continue  # not run: marked, and left out of the total
            b = _bench(engine, f"tpch-q{q}", 2, factor * (0.5 if q % 2 else 2.0))
            b["extra_info"]["scale_factor"] = 1.0
            benches.append(b)
    doc = {"machine_info": {}, "commit_info": {}, "datetime": "2026-12-04T00:00:00", "version": "5.2.3",
           "benchmarks": benches}
    path = tmp_path / "tpch.json"
    path.write_text(json.dumps(doc))
    out = tmp_path / "report"
    assert main(["report", str(path), "-o", str(out)]) == 0
    md = flat((out / "report.md").read_text())
    assert "### TPC-H, SF1, parquet, 2 workers (tpch)" in md
    assert "| q2 | 2.00 s | 8.00 s |" in md and "| q21 | 500.0 ms | not run |" in md
    assert "| total | 27.50 s (22 q) | 108.00 s (21 q) |" in md  # 11 x 2.0 + 11 x 0.5; spark lacks q21's 2.0
    assert "| geometric mean | 1.00 s | " in md  # (0.5 x 2.0) ** (1/2) per pair


def test_the_report_shows_what_the_network_costs(tmp_path):
    """The same cells on one host, on 3 hosts with unlimited links and at 1 Gbit/s: slowdowns against
    one host, and the link's share of the time against the unlimited links."""
    paths = []
    for topology, factor in ((None, 1.0), ("3 hosts (network namespaces of one machine), links unlimited", 1.25),
                             ("3 hosts (network namespaces of one machine), links 1gbit", 2.5)):
        machine = {"scalebench": {"machine": {"cores_usable": 2, **({"topology": topology} if topology else {})}}}
        doc = {"machine_info": machine, "commit_info": {}, "datetime": "2026-12-05T00:00:00", "version": "5.2.3",
               "benchmarks": [_bench(e, "sort-global", 2, factor * t) for e, t in (("dask", 2.0), ("spark", 4.0))]}
        paths.append(tmp_path / f"{'one' if topology is None else topology.split()[-1]}.json")
        paths[-1].write_text(json.dumps(doc))
    out = tmp_path / "report"
    assert main(["report", *map(str, paths), "-o", str(out)]) == 0
    md = flat((out / "report.md").read_text())
    assert "Network: one host against hosts" in md
    assert ("| Dask | sort-global | parquet | 20,000 | 2 | 2.00 s | 2.50 s | 5.00 s | 1.25x | 2.50x | 50% |"
            in md), md[md.index("Network: one host"):][:1500]
    assert "| 3 hosts, unlimited | 3 hosts, 1gbit | slowdown 3 hosts, unlimited |" in md
    assert "3 hosts (network namespaces of one machine), links 1gbit" in md  # the Measured on table
    # the verdict compares sizes on one setup: the runs across hosts are left out of it, and named
    assert "Left out, as their clusters ran on another setup" in md and "1gbit (3 hosts, 1gbit)" in md
    assert "Dask fastest (2.00 s)" in md, md[:1500]
