"""The report as sections (report.section), built from the analysis frames (report.tables)."""

from __future__ import annotations

import pandas as pd

from scalebench.report import families
from scalebench.report.load import COMPLETED
from scalebench.report.section import Section, count, frame, seconds, size
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
    return f"{_t(r.median_s)} ({r.vs_fastest:.1f}x, duckdb {r.vs_duckdb:.2f}x{mem})"


def matrix(everything: pd.DataFrame) -> list[Section]:
    """One section per run block (format, rows, workers): a row per query, a column per engine."""
    out = []
    for (run, fmt, rows, workers), block in everything.groupby(["run", "format", "rows", "workers"], dropna=False):
        engines = sorted(block["engine"].dropna().unique(), key=lambda e: block[block.engine == e].median_s.sum())
        body = []
        for query, q in block.groupby("query"):
            found = {e: q[q.engine == e] for e in engines}
            body.append([query, *("" if r.empty else _matrix_cell(r.iloc[0]) for r in found.values())])
        title = f"{run}: {fmt}, {int(rows):,} rows, {workers} worker(s)" if pd.notna(rows) else str(run)
        out.append(Section(title, frame(["query", *engines], body), figure=f"times-{run}-{fmt}-{rows}-w{workers}"))
    return out


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
            body.append([run, "not recorded", "", "", "", "", ""])
            continue
        m = p.get("machine", {})
        versions = ", ".join(f"{k} {v}" for k, v in p.get("versions", {}).items() if v)
        off = f" (**off the lock**: {', '.join(p['off_lock'])})" if p.get("off_lock") else ""
        lock = (p.get("lock_sha256") or "none")[:12]
        body.append([run, f"{lock}{off}", str(p.get("python")), p.get("java") or "-", str(m.get("cores_usable")),
                     size(m.get("memory_bytes")), versions])
    return [Section("Measured on", frame(["run", "lock", "python", "java", "cores", "memory", "versions"], body))]


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


def all_results(df: pd.DataFrame) -> Section:
    """Every stage cell with its ratios, for the HTML page's sortable table."""
    table = with_ratios(stage_cells(df)).drop(columns=["info"], errors="ignore")
    shown = table.map(lambda v: "" if v is None or (pd.api.types.is_scalar(v) and pd.isna(v))
                      else f"{v:.4g}" if isinstance(v, float) else str(v))
    return Section("All results", shown)


INTRO = ("Median time per engine; in brackets the ratio to the fastest engine on the same cell, to the DuckDB "
         "single-node reference, the peak memory of the whole process tree (PSS) and what the benchmark added "
         "to it (+: peak minus the tree's memory when it began).")


def sections(df: pd.DataFrame) -> list[Section]:
    """The whole report, in reading order."""
    everything = with_ratios(stage_cells(df))  # a cell that did not finish has no time, so it changes no ratio
    done = completed(everything)
    return [*matrix(everything), *budget(everything), *cost(done), *totals(done), *skew(done), *partitioning(done),
            *worker_scaling(done), *families.sections(df), *provenance(df)]
