"""The side-by-side report: Markdown tables and a self-contained HTML page with plots."""

from __future__ import annotations

import html
import io
from pathlib import Path

import pandas as pd

from scalebench.atomic import write_text
from scalebench.report import families
from scalebench.report.load import COMPLETED
from scalebench.sizes import format_bytes

REFERENCE = "duckdb"
CELL = ["run", "format", "rows", "workers", "query"]


def completed(df: pd.DataFrame) -> pd.DataFrame:
    """Only the cells that gave a time: totals, ratios and plots are over these."""
    return df[df["outcome"] == COMPLETED]


def budget_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per run block and engine: how far the memory budget reached. The highest peak of the whole
    process tree against the budget, the most a cell added, what the framework spilled, and how
    many cells completed; a budget that bounds only the workers shows here as peak/budget > 1."""
    if df["budget_bytes"].isna().all():
        return pd.DataFrame()
    keys = ["run", "format", "rows", "workers", "engine"]
    out = df.groupby(keys, dropna=False).agg(
        budget=("budget_bytes", "max"), peak=("peak_tree_bytes", "max"), added=("added_tree_bytes", "max"),
        spilled=("spilled_bytes", lambda v: v.sum(min_count=1)), cells=("outcome", "size"),
        completed=("outcome", lambda v: int((v == COMPLETED).sum())),
        unfinished=("outcome", lambda v: ", ".join(f"{n} {o}" for o, n in v[v != COMPLETED].value_counts().items())),
    ).reset_index()
    out["peak_vs_budget"] = out["peak"] / out["budget"]
    return out


def with_ratios(df: pd.DataFrame) -> pd.DataFrame:
    """Add ratio to the fastest engine and to the DuckDB reference, within each cell."""
    df = df.copy()
    g = df.groupby(CELL, dropna=False)["median_s"]
    df["vs_fastest"] = df["median_s"] / g.transform("min")
    ref = df[df["engine"] == REFERENCE].groupby(CELL, dropna=False)["median_s"].median()
    df["vs_duckdb"] = [m / ref.get(tuple(k), float("nan")) for m, k in zip(df["median_s"], df[CELL].values,
                                                                             strict=True)]
    return df


def scaling(df: pd.DataFrame) -> pd.DataFrame:
    """Speedup T(1)/T(n) and efficiency speedup/n per engine, query and worker count."""
    keys = ["run", "engine", "format", "rows", "query"]
    base = df[df["workers"] == 1].groupby(keys, dropna=False)["median_s"].median()
    out = df[df["workers"].notna()].copy()
    out["t1_s"] = [base.get(tuple(k), float("nan")) for k in out[keys].values]
    out["speedup"] = out["t1_s"] / out["median_s"]
    out["efficiency"] = out["speedup"] / out["workers"]
    return out.dropna(subset=["speedup"])[keys + ["workers", "median_s", "speedup", "efficiency"]]


def h2o_totals(df: pd.DataFrame) -> pd.DataFrame:
    """db-benchmark's headline: per engine, the summed median time of its groupby (q1..q10) and
    join (q1..q5) questions, with how many questions ran (a total over fewer is not comparable)."""
    h2o = df[df["stage"].isin(["h2o_groupby", "h2o_join"])]
    if h2o.empty:
        return pd.DataFrame()
    return (h2o.groupby(["run", "format", "rows", "workers", "engine", "stage"], dropna=False)["median_s"]
            .agg(total_s="sum", questions="count").reset_index())


def skew_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per engine, operation and remedy: uniform and Zipf-skewed medians, the skew penalty
    (skewed / uniform), and what the remedy recovered (plain skewed / remedied skewed)."""
    sk = df[df["stage"] == "skew"].copy()
    if sk.empty:
        return pd.DataFrame()
    parts = sk["query"].str.removeprefix("skew-").str.split("-", expand=True)
    sk["op"], sk["keys"], sk["remedy"] = parts[0], parts[1], parts[2]
    piv = sk.pivot_table(index=["run", "format", "workers", "engine", "op", "remedy"], columns="keys",
                         values="median_s", aggfunc="median").reset_index()
    for col in ("uniform", "zipf"):
        if col not in piv:
            piv[col] = float("nan")
    piv["penalty"] = piv["zipf"] / piv["uniform"]
    plain = piv[piv["remedy"] == "plain"].set_index(["run", "format", "workers", "engine", "op"])["zipf"]
    piv["recovered"] = [plain.get(tuple(k), float("nan")) / z for k, z in
                        zip(piv[["run", "format", "workers", "engine", "op"]].values, piv["zipf"], strict=True)]
    return piv


def partition_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per engine: the groupby on the table as generated and on the same rows partitioned by the
    key, and the ratio between them (above 1: the layout saved the shuffle's cost)."""
    pt = df[df["stage"] == "partition"]
    if pt.empty:
        return pd.DataFrame()
    piv = pt.assign(layout=pt["query"].str.removeprefix("partition-groupby-")).pivot_table(
        index=["run", "format", "rows", "workers", "engine"], columns="layout", values="median_s",
        aggfunc="median").reset_index()
    for col in ("unpartitioned", "by_key"):
        if col not in piv:
            piv[col] = float("nan")
    piv["saved"] = piv["unpartitioned"] / piv["by_key"]
    return piv


def remedies_side_by_side(skew: pd.DataFrame) -> pd.DataFrame:
    """One row per run, engine and operation: the uniform and skewed plain times, then each
    remedy's skewed time, so what each remedy buys reads across one line."""
    keys = ["run", "format", "workers", "engine", "op"]
    plain = skew[skew["remedy"] == "plain"].set_index(keys)[["uniform", "zipf"]]
    wide = skew.pivot_table(index=keys, columns="remedy", values="zipf", aggfunc="median")
    return plain.join(wide.drop(columns="plain", errors="ignore"), how="outer").reset_index()


def _fmt_s(v: float) -> str:
    return "" if pd.isna(v) else (f"{v * 1000:.1f} ms" if v < 1 else f"{v:.2f} s")


def _size(v: float) -> str:
    return "-" if pd.isna(v) else format_bytes(v)


def stage_cells(df: pd.DataFrame) -> pd.DataFrame:
    """The matrix's cells (benchmarks/test_stages.py); ML, generator and overhead have sections of their own."""
    return df[df["family"] == "stage"]


def provenance_markdown(df: pd.DataFrame) -> list[str]:
    """Per run: the lock, the versions, Java and the machine it was measured on."""
    records = df.attrs.get("provenance") or {}
    if not records:
        return []
    parts = ["## Measured on", "", "| run | lock | python | java | cores | memory | versions |",
             "|---|---|---|---|---|---|---|"]
    for run, p in records.items():
        if not p:
            parts.append(f"| {run} | not recorded | | | | | |")
            continue
        m = p.get("machine", {})
        versions = ", ".join(f"{k} {v}" for k, v in p.get("versions", {}).items() if v)
        off = f" (**off the lock**: {', '.join(p['off_lock'])})" if p.get("off_lock") else ""
        lock = (p.get("lock_sha256") or "none")[:12]
        parts.append(f"| {run} | {lock}{off} | {p.get('python')} | {p.get('java') or '-'} | "
                     f"{m.get('cores_usable')} | {_size(m.get('memory_bytes'))} | {versions} |")
    return parts + [""]


def markdown(df: pd.DataFrame) -> str:
    everything = with_ratios(stage_cells(df))  # a cell that did not finish has no time, so it changes no ratio
    whole = df
    df = completed(everything)
    parts = ["# scalebench report", "",
             "Median time per engine; in brackets the ratio to the fastest engine on the same cell, "
             "to the DuckDB single-node reference, the peak memory of the whole process tree (PSS) and "
             "what the benchmark added to it (+: peak minus the tree's memory when it began).", ""]
    for (run, fmt, rows, workers), block in everything.groupby(["run", "format", "rows", "workers"], dropna=False):
        engines = sorted(block["engine"].dropna().unique(), key=lambda e: block[block.engine == e].median_s.sum())
        parts += [f"## {run}: {fmt}, {int(rows):,} rows, {workers} worker(s)" if pd.notna(rows) else f"## {run}",
                  "", "| query | " + " | ".join(engines) + " |", "|---|" + "---|" * len(engines)]
        for query, q in block.groupby("query"):
            cells = []
            for e in engines:
                r = q[q.engine == e]
                if r.empty:
                    cells.append("")
                    continue
                r = r.iloc[0]
                if r.outcome != COMPLETED:
                    cells.append(f"**{r.outcome}**")
                    continue
                mem = f", {format_bytes(r.peak_tree_bytes)}" if pd.notna(r.peak_tree_bytes) else ""
                if pd.notna(r.added_tree_bytes):
                    mem += f" +{format_bytes(r.added_tree_bytes)}"
                cells.append(f"{_fmt_s(r.median_s)} ({r.vs_fastest:.1f}x, duckdb {r.vs_duckdb:.2f}x{mem})")
            parts.append(f"| {query} | " + " | ".join(cells) + " |")
        parts.append("")
    budget = budget_table(everything)
    if not budget.empty:
        parts += ["## Memory against the budget", "",
                  "Highest peak of the whole process tree (driver, workers, JVM; PSS) over an engine's cells, "
                  "against the memory budget it was configured from; above 1x the budget bounds only part "
                  "of the tree. added: the most one cell added over its start; spilled: summed over the cells, "
                  "where the framework reports it.", "",
                  "| run | format | rows | workers | engine | budget | peak tree | peak / budget | added | spilled "
                  "| completed | not completed |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in budget.itertuples():
            ratio = "-" if pd.isna(r.peak_vs_budget) else f"{r.peak_vs_budget:.1f}x"
            rows = "" if pd.isna(r.rows) else f"{int(r.rows):,}"
            parts.append(f"| {r.run} | {r.format} | {rows} | {r.workers} | {r.engine} | {_size(r.budget)} | "
                         f"{_size(r.peak)} | {ratio} | {_size(r.added)} | {_size(r.spilled)} | "
                         f"{r.completed} of {r.cells} | {r.unfinished or '-'} |")
        parts.append("")
        details = everything[everything["outcome"] != COMPLETED]
        for r in details.itertuples():
            parts.append(f"- {r.engine} {r.query} ({r.format}, {int(r.rows):,} rows): {r.outcome}: {r.detail}")
        if not details.empty:
            parts.append("")
    totals = h2o_totals(df)
    if not totals.empty:
        parts += ["## db-benchmark totals", "",
                  "Sum of the median times of db-benchmark's questions (groupby q1-q10, join q1-q5).", "",
                  "| run | format | rows | workers | engine | groupby total | join total |",
                  "|---|---|---|---|---|---|---|"]
        for key, g in totals.groupby(["run", "format", "rows", "workers", "engine"], dropna=False):
            cells = []
            for stage in ("h2o_groupby", "h2o_join"):
                r = g[g["stage"] == stage]
                cells.append("" if r.empty else f"{_fmt_s(r.total_s.iloc[0])} ({int(r.questions.iloc[0])} q)")
            run, fmt, rows, workers, engine = key
            parts.append(f"| {run} | {fmt} | {int(rows):,} | {workers} | {engine} | " + " | ".join(cells) + " |")
        parts.append("")
    skew = skew_table(df)
    if not skew.empty:
        parts += ["## Skew", "",
                  "penalty = Zipf-skewed keys / uniform keys (same rows); recovered = plain on skewed keys / "
                  "this remedy on skewed keys (above 1: the remedy helps).", "",
                  "| run | format | workers | engine | op | remedy | uniform | skewed | penalty | recovered |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in skew.itertuples():
            parts.append(f"| {r.run} | {r.format} | {r.workers} | {r.engine} | {r.op} | {r.remedy} | "
                         f"{_fmt_s(r.uniform)} | {_fmt_s(r.zipf)} | {r.penalty:.2f} | {r.recovered:.2f} |")
        parts.append("")
    if not skew.empty:
        wide = remedies_side_by_side(skew)
        remedies = [c for c in ("salted", "native") if c in wide]
        parts += ["### Remedies side by side", "",
                  "Skewed-key time of each remedy, in brackets plain on skewed keys / this remedy.", "",
                  "| run | format | workers | engine | op | uniform, plain | skewed, plain | "
                  + " | ".join(f"skewed, {r}" for r in remedies) + " |",
                  "|---|---|---|---|---|---|---|" + "---|" * len(remedies)]
        for r in wide.to_dict("records"):
            cells = [f"{_fmt_s(r[c])} ({r['zipf'] / r[c]:.2f}x)" if pd.notna(r[c]) else "n/a" for c in remedies]
            parts.append(f"| {r['run']} | {r['format']} | {r['workers']} | {r['engine']} | {r['op']} | "
                         f"{_fmt_s(r['uniform'])} | {_fmt_s(r['zipf'])} | " + " | ".join(cells) + " |")
        parts.append("")
    part = partition_table(df)
    if not part.empty:
        parts += ["## Partitioning", "",
                  "groupby on the uniform keys table as generated (parts by id: the groupby must shuffle) "
                  "and on the same rows in Parquet partitioned by key (each key in one file: aggregated "
                  "where it lies); saved = unpartitioned / by key.", "",
                  "| run | format | rows | workers | engine | unpartitioned | by key | saved |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in part.itertuples():
            parts.append(f"| {r.run} | {r.format} | {int(r.rows):,} | {r.workers} | {r.engine} | "
                         f"{_fmt_s(r.unpartitioned)} | {_fmt_s(r.by_key)} | {r.saved:.2f} |")
        parts.append("")
    sc = scaling(df)
    if not sc.empty and (sc["workers"] > 1).any():
        parts += ["## Worker scaling", "",
                  "| engine | query | format | rows | workers | median | speedup | efficiency |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in sc.itertuples():
            parts.append(f"| {r.engine} | {r.query} | {r.format} | {int(r.rows):,} | {r.workers} | "
                         f"{_fmt_s(r.median_s)} | {r.speedup:.2f} | {r.efficiency:.2f} |")
        parts.append("")
    parts += families.markdown(whole) + provenance_markdown(whole)
    return "\n".join(parts)


def plots(df: pd.DataFrame) -> dict[str, str]:
    """name -> SVG text (text kept as text, so the series names can be read back)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.fonttype"] = "none"
    figs: dict[str, str] = {}
    whole, df = df, completed(stage_cells(df))
    for (run, fmt, rows, workers), block in df.groupby(["run", "format", "rows", "workers"], dropna=False):
        piv = block.pivot_table(index="query", columns="engine", values="median_s", aggfunc="median")
        fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(piv)), 4))
        piv.plot.bar(ax=ax, logy=True, rot=30)
        ax.set_ylabel("median time (s, log)")
        ax.set_title(f"{run}: {fmt}, {int(rows):,} rows, {workers} worker(s)" if pd.notna(rows) else str(run))
        figs[f"times-{run}-{fmt}-{rows}-w{workers}"] = _svg(fig)
    sc = scaling(df)
    if not sc.empty and sc["workers"].nunique() > 1:
        fig, ax = plt.subplots(figsize=(7, 4))
        for (engine, query, fmt), g in sc.groupby(["engine", "query", "format"]):
            ax.plot(g["workers"], g["speedup"], marker="o", label=f"{engine} {query} {fmt}")
        top = int(sc["workers"].max())
        ax.plot([1, top], [1, top], "k--", label="ideal")
        ax.set_xlabel("workers")
        ax.set_ylabel("speedup T(1)/T(n)")
        ax.legend(fontsize=6)
        figs["scaling"] = _svg(fig)
    skew = skew_table(df)
    if not skew.empty and skew["penalty"].notna().any():
        fig, ax = plt.subplots(figsize=(7, 4))
        skew.assign(label=skew["op"] + " " + skew["remedy"]).pivot_table(
            index="engine", columns="label", values="penalty", aggfunc="median").plot.bar(ax=ax, rot=0)
        ax.axhline(1, color="k", linestyle="--", linewidth=0.8)
        ax.set_ylabel("skewed / uniform time")
        ax.set_title("skew penalty per remedy")
        figs["skew"] = _svg(fig)
    part = partition_table(df)
    if not part.empty and part["saved"].notna().any():
        fig, ax = plt.subplots(figsize=(7, 4))
        part.pivot_table(index="engine", columns="rows", values="saved", aggfunc="median").plot.bar(ax=ax, rot=0)
        ax.axhline(1, color="k", linestyle="--", linewidth=0.8)
        ax.set_ylabel("unpartitioned / partitioned by key")
        ax.set_title("what partitioning by the key saves")
        figs["partition"] = _svg(fig)
    if df["rows"].nunique() > 1:
        fig, ax = plt.subplots(figsize=(7, 4))
        for (engine, query, fmt), g in df.groupby(["engine", "query", "format"]):
            g = g.groupby("rows")["median_s"].median()
            ax.loglog(g.index, g.values, marker="o", label=f"{engine} {query} {fmt}")
        ax.set_xlabel("rows")
        ax.set_ylabel("median time (s)")
        ax.legend(fontsize=6)
        figs["size"] = _svg(fig)
    return {**figs, **families.plots(whole, plt, _svg)}


def _svg(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.tight_layout()
    fig.savefig(buf, format="svg")
    plt.close(fig)
    return buf.getvalue()


def write_report(df: pd.DataFrame, out_dir: Path | str) -> dict[str, Path]:
    """Write report.md, report.html (plots inline) and one SVG per plot; return the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md = markdown(df)
    figs = plots(df)
    written = {"markdown": write_text(out / "report.md", md)}
    for name, svg in figs.items():
        written[name] = write_text(out / f"{name}.svg", svg)
    body = "\n".join(f"<figure>{svg[svg.index('<svg'):]}<figcaption>{html.escape(name)}</figcaption></figure>"
                     for name, svg in figs.items())
    table = with_ratios(df).drop(columns=["info"]).to_html(index=False, float_format=lambda v: f"{v:.4g}")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>scalebench report</title>"
            f"<style>body{{font-family:sans-serif;max-width:1200px;margin:auto}}table{{border-collapse:collapse;"
            f"font-size:12px}}td,th{{border:1px solid #ccc;padding:2px 6px}}</style></head><body>"
            f"<h1>scalebench report</h1>{body}<h2>All results</h2>{table}"
            f"<h2>Summary</h2><pre>{html.escape(md)}</pre></body></html>")
    written["html"] = write_text(out / "report.html", page)
    return written

