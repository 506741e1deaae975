"""The report as sections (report.section), built from the analysis frames (report.tables)."""

from __future__ import annotations

import pandas as pd

from scalebench.report import families, network, tpch
from scalebench.report.advise_plots import input_phrase
from scalebench.report.advise_words import name
from scalebench.report.load import COMPLETED
from scalebench.report.section import Section, count, engine_order, frame, natural, number, seconds, size
from scalebench.report.tables import (
    budget_table,
    completed,
    h2o_totals,
    partition_table,
    remedies_side_by_side,
    scaling,
    skew_table,
    stage_cells,
    with_ratios,
)
from scalebench.sizes import format_bytes


def _t(v) -> str:
    return seconds(v, missing="")


def _c(v) -> str:
    return count(v, missing="")


def _matrix_cell(r) -> str:
    if r.outcome != COMPLETED:
        return f"**{r.outcome}**"
    mem = f", {format_bytes(r.peak_tree_bytes)}" if pd.notna(r.peak_tree_bytes) else ""
    if pd.notna(r.added_tree_bytes):
        mem += f" +{format_bytes(r.added_tree_bytes)}"
    duckdb = "" if pd.isna(r.vs_duckdb) else f", duckdb {r.vs_duckdb:.2f}x"  # no DuckDB cell to compare with
    return f"{_t(r.median_s)} ({r.vs_fastest:.1f}x{duckdb}{mem})"



def plural(n, word: str, many: str | None = None) -> str:
    """'1 query', '46 queries'."""
    return f"{int(n):,} {word if n == 1 else many or word + 's'}"


def listed(items: list[str]) -> str:
    """'', 'a', 'a and b', 'a, b and c'."""
    if not items:
        return ""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def rows_words(values) -> str:
    """'1,000,000 rows', '20,000 and 1,000,000 rows', '1,000,000 to 30,000,000 rows (4 sizes)'."""
    sizes = sorted({int(v) for v in values if pd.notna(v)})
    if not sizes:
        return "no stated size"
    if len(sizes) > 2:
        return f"{sizes[0]:,} to {sizes[-1]:,} rows ({len(sizes)} sizes)"
    return f"{listed([f'{s:,}' for s in sizes])} row{'' if sizes == [1] else 's'}"


def workers_words(values) -> str:
    counts = sorted({int(v) for v in values if pd.notna(v)})
    return f"{listed([str(c) for c in counts])} worker{'' if counts == [1] else 's'}" if counts else ""


def inputs_words(values) -> str:
    """'Parquet input', 'Parquet input and CSV input' (the input a stage read, in words)."""
    return listed([input_phrase(f) for f in sorted({f for f in values if isinstance(f, str)})])


def engines_words(values) -> str:
    found = sorted({e for e in values if isinstance(e, str)}, key=engine_order)
    return listed([name(e) for e in found]) if found else ""


def machine_words(df: pd.DataFrame, runs=None) -> str:
    """'a 2-core, 23.5 GiB machine' for the runs named (all by default), from their provenance."""
    records = df.attrs.get("provenance") or {}
    said = set()
    for run in (records if runs is None else runs):
        m = ((records.get(run) or {}).get("machine") or {})
        cores, memory = m.get("cores_usable") or m.get("cores"), m.get("memory_bytes")
        said.add(f"a {cores}-core, {format_bytes(memory)} machine" if cores and memory else "")
    said.discard("")
    if not said:
        return "a machine the run did not record"
    return said.pop() if len(said) == 1 else "the machines listed under Measured on"


def block_title(df: pd.DataFrame, run, fmt, rows, workers, with_run: bool = True) -> str:
    """'1,000,000 rows, Parquet input, 2 workers' (and the run's name when the report holds several)."""
    parts = [rows_words([rows]) if pd.notna(rows) else "", inputs_words([fmt]), workers_words([workers])]
    several = with_run and df["run"].nunique() > 1
    return ", ".join(p for p in parts if p) + (f" (run {run})" if several else "")


def summary(df: pd.DataFrame) -> str:
    """One sentence: what the report's runs measured, at what sizes, on what machine (the runs' names
    head the tables below)."""
    st = stage_cells(df)
    what = st if not st.empty else df
    stages, runs = st["stage"].dropna().nunique(), df["run"].nunique()
    measured = (f"{plural(stages, 'stage family', 'stage families')} ({plural(len(st), 'cell')})" if stages
                else "benchmarks") + (f" from {plural(runs, 'run')}" if runs > 1 else "")
    parts = [p for p in (rows_words(what["rows"]), inputs_words(what["format"]), workers_words(what["workers"]))
             if p and p != "no stated size"]
    stopped = "".join(f" Run {run} is partial: its session stopped after {p.get('benchmarks')} timed benchmarks "
                      f"(the last {p.get('after')}), so cells after it are missing."
                      for run, p in (df.attrs.get("partial") or {}).items())
    return (f"Measured: {engines_words(what['engine'])} on {measured}, at {', '.join(parts)}, "
            f"on {machine_words(df)}.{stopped}")


def matrix(everything: pd.DataFrame) -> list[Section]:
    """One section per run block (format, rows, workers): a row per query, a column per engine."""
    out = []
    for (run, fmt, rows, workers), block in everything.groupby(["run", "format", "rows", "workers"], dropna=False):
        engines = sorted(block["engine"].dropna().unique(), key=lambda e: block[block.engine == e].median_s.sum())
        body = []
        for query, q in sorted(block.groupby("query"), key=lambda kv: natural(kv[0])):
            found = {e: q[q.engine == e] for e in engines}
            body.append([query, *("" if r.empty else _matrix_cell(r.iloc[0]) for r in found.values())])
        words = block_title(everything, run, fmt, rows, workers, with_run=False)
        title = f"{run}: times per query, {words}" if everything["run"].nunique() > 1 else f"Times per query: {words}"
        out.append(Section(title, frame(["query", *engines], body), INTRO,
                           figure=times_figure(run, fmt, rows, workers)))
    return out


def times_figure(run, fmt, rows, workers) -> str:
    """The file name (without .svg) of a block's plot of times per query."""
    return f"times-{run}-{str(fmt).replace(' ', '-')}-{rows}-w{workers}"


def budget(everything: pd.DataFrame) -> list[Section]:
    table = budget_table(everything)
    if table.empty:
        return []
    body = [[r.run, r.format, _c(r.rows), str(r.workers), r.engine, size(r.budget), size(r.peak),
             "-" if pd.isna(r.peak_vs_budget) else f"{r.peak_vs_budget:.1f}x", size(r.added), size(r.spilled),
             f"{r.completed} of {r.cells}", r.unfinished or "-"] for r in table.itertuples()]
    details = everything[everything["outcome"] != COMPLETED]
    notes = [f"{r.engine} {r.query} ({r.format}, {int(r.rows):,} rows): {r.outcome}: {r.detail}"
             for r in details.itertuples()]
    return [Section(
        "Memory against the budget",
        frame(["run", "format", "rows", "workers", "engine", "budget", "peak tree", "peak / budget", "added",
               "spilled", "completed", "not completed"], body),
        "Highest peak of the whole process tree (driver, workers, JVM; PSS) over an engine's cells, against the "
        "memory budget it was configured from; above 1x the budget bounds only part of the tree. added: the most "
        "one cell added over its start; spilled: summed over the cells, where the framework reports it.", notes)]


def totals(df: pd.DataFrame) -> list[Section]:
    table = h2o_totals(df)
    if table.empty:
        return []
    body = []
    for (run, fmt, rows, workers, engine), g in table.groupby(["run", "format", "rows", "workers", "engine"],
                                                              dropna=False):
        cells = []
        for stage in ("h2o_groupby", "h2o_join"):
            r = g[g["stage"] == stage]
            cells.append("" if r.empty else f"{_t(r.total_s.iloc[0])} ({int(r.questions.iloc[0])} q)")
        body.append([run, fmt, _c(rows), str(workers), engine, *cells])
    return [Section("db-benchmark totals",
                    frame(["run", "format", "rows", "workers", "engine", "groupby total", "join total"], body),
                    "Sum of the median times of db-benchmark's questions (groupby q1-q10, join q1-q5).")]


def skew(df: pd.DataFrame) -> list[Section]:
    table = skew_table(df)
    if table.empty:
        return []
    body = [[r.run, r.format, str(r.workers), r.engine, r.op, r.remedy, _t(r.uniform), _t(r.zipf),
             f"{r.penalty:.2f}", f"{r.recovered:.2f}"] for r in table.itertuples()]
    wide = remedies_side_by_side(table)
    remedies = [c for c in ("salted", "native") if c in wide]
    side = [[r["run"], r["format"], str(r["workers"]), r["engine"], r["op"], _t(r["uniform"]), _t(r["zipf"]),
             *(f"{_t(r[c])} ({r['zipf'] / r[c]:.2f}x)" if pd.notna(r[c]) else "n/a" for c in remedies)]
            for r in wide.to_dict("records")]
    return [Section("Skew", frame(["run", "format", "workers", "engine", "op", "remedy", "uniform", "skewed",
                                   "penalty", "recovered"], body),
                    "penalty = Zipf-skewed keys / uniform keys (same rows); recovered = plain on skewed keys / "
                    "this remedy on skewed keys (above 1: the remedy helps).", figure="skew"),
            Section("Remedies side by side",
                    frame(["run", "format", "workers", "engine", "op", "uniform, plain", "skewed, plain",
                           *(f"skewed, {r}" for r in remedies)], side),
                    "Skewed-key time of each remedy, in brackets plain on skewed keys / this remedy.", level=3)]


def partitioning(df: pd.DataFrame) -> list[Section]:
    table = partition_table(df)
    if table.empty:
        return []
    body = [[r.run, r.format, _c(r.rows), str(r.workers), r.engine, _t(r.unpartitioned), _t(r.by_key),
             f"{r.saved:.2f}"] for r in table.itertuples()]
    return [Section("Partitioning",
                    frame(["run", "format", "rows", "workers", "engine", "unpartitioned", "by key", "saved"], body),
                    "groupby on the uniform keys table as generated (parts by id: the groupby must shuffle) and on "
                    "the same rows in Parquet partitioned by key (each key in one file: aggregated where it lies); "
                    "saved = unpartitioned / by key.", figure="partition")]


def worker_scaling(df: pd.DataFrame) -> list[Section]:
    sc = scaling(df)
    if sc.empty or not (sc["workers"] > 1).any():
        return []
    body = [[r.engine, r.query, r.format, _c(r.rows), str(r.workers), _t(r.median_s), f"{r.speedup:.2f}",
             f"{r.efficiency:.2f}"] for r in sc.itertuples()]
    return [Section("Worker scaling", frame(["engine", "query", "format", "rows", "workers", "median", "speedup",
                                             "efficiency"], body), figure="scaling")]


def provenance(df: pd.DataFrame) -> list[Section]:
    """Per run: the lock, the versions, Java and the machine it was measured on."""
    records = df.attrs.get("provenance") or {}
    if not records:
        return []
    body = []
    for run, p in records.items():
        if not p:
            body.append([run, "not recorded", "", "", "", "", "", ""])
            continue
        m = p.get("machine", {})
        versions = ", ".join(f"{k} {v}" for k, v in p.get("versions", {}).items() if v)
        off = f" (**off the lock**: {', '.join(p['off_lock'])})" if p.get("off_lock") else ""
        lock = (p.get("lock_sha256") or "none")[:12]
        body.append([run, f"{lock}{off}", str(p.get("python")), p.get("java") or "-", str(m.get("cores_usable")),
                     size(m.get("memory_bytes")), m.get("topology") or "one host", versions])
    return [Section("Measured on", frame(["run", "lock", "python", "java", "cores", "memory", "clusters on",
                                          "versions"], body))]


def cost(done: pd.DataFrame) -> list[Section]:
    """Per query and engine: the time beside what it used (CPU seconds of the whole tree, its share
    of the cores the cluster was given, GiB-seconds) and the price of that, per 1,000 queries."""
    cells = done.dropna(subset=["cpu_s"])
    if cells.empty:
        return []
    body = [[r.run, r.format, _c(r.rows), r.query, r.engine, _t(r.median_s), f"{r.cpu_s:.3g}",
             "-" if pd.isna(r.cpu_utilisation) else f"{r.cpu_utilisation:.0%} of {int(r.cores)}",
             f"{r.gib_s:.3g}", "-" if pd.isna(r.cost_usd) else f"${1000 * r.cost_usd:.3g}"]
            for r in cells.sort_values(["run", "format", "rows", "query", "cost_usd"]).itertuples()]
    prices = cells["info"].map(lambda i: (i.get("price_per_core_hour"), i.get("price_per_gib_hour"))).unique()
    paid = "; ".join(f"${c} per core-hour and ${g} per GiB-hour" for c, g in prices)
    return [Section(
        "What each query cost",
        frame(["run", "format", "rows", "query", "engine", "median", "CPU s", "CPU use", "GiB-s",
               "per 1,000 queries"], body),
        "Per timed round (median): the CPU seconds the whole process tree used (driver, workers, JVM, raylets), "
        "that as a share of the cores the cluster was given over the round's wall time, and memory held over "
        f"time (PSS, GiB-seconds). The price is for what was used, at {paid}.")]


ALL_RESULTS = ["engine", "stage", "query", "format", "rows", "workers", "median", "vs fastest", "vs DuckDB",
               "peak memory", "CPU s", "per 1,000 queries", "outcome"]
"""The columns a person reads; the rest (IQR, min, max, rounds, cold run, throughput...) stay in the JSON."""


def _ratio(v) -> str:
    return "-" if pd.isna(v) else f"{v:.2f}x"


def all_results(df: pd.DataFrame) -> Section:
    """Every stage cell, one row each, in the columns a person reads (ALL_RESULTS; the run first when the
    report holds several), sorted by query and time."""
    table = with_ratios(stage_cells(df))
    several = table["run"].nunique() > 1
    body = []
    table = table.assign(order=table["query"].map(natural))
    for r in table.sort_values(["stage", "order", "format", "rows", "workers", "median_s", "run"]).itertuples():
        done = r.outcome == COMPLETED
        body.append([*([r.run] if several else []), name(r.engine), r.stage, r.query, r.format, count(r.rows),
                     count(r.workers), seconds(r.median_s) if done else "-", _ratio(r.vs_fastest),
                     _ratio(r.vs_duckdb), size(r.peak_tree_bytes), number(r.cpu_s),
                     "-" if pd.isna(r.cost_usd) else f"${1000 * r.cost_usd:.3g}", r.outcome])
    return Section("All results", frame([*(["run"] if several else []), *ALL_RESULTS], body),
                   "Every stage cell, sorted by query and time (click a heading to sort). vs fastest and vs DuckDB: "
                   "time over the fastest engine's and over DuckDB's on the same cell. Spread, rounds, cold run and "
                   "throughput are in the saved JSON.")


INTRO = ("Median time per engine; in brackets the ratio to the fastest engine on the same cell, to the DuckDB "
         "single-node reference, the peak memory of the whole process tree (PSS) and what the benchmark added "
         "to it (+: peak minus the tree's memory when it began).")


def sections(df: pd.DataFrame) -> list[Section]:
    """The whole report, in reading order."""
    everything = with_ratios(stage_cells(df))  # a cell that did not finish has no time, so it changes no ratio
    done = completed(everything)
    return [*matrix(everything), *budget(everything), *cost(done), *totals(done), *tpch.sections(everything),
            *skew(done), *partitioning(done), *worker_scaling(done),
            *network.sections(done, df.attrs.get("provenance") or {}), *families.sections(df), *provenance(df)]
