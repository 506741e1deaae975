"""The report's sections for what is not a stage cell: the ML benchmarks, the generator and the
memory sampler's overhead. Each reads the fields its benchmark saves in extra_info."""

from __future__ import annotations

import pandas as pd

from scalebench.report.advise_words import name
from scalebench.report.load import COMPLETED
from scalebench.report.section import ENGINES, Section, colour, count, frame, number, seconds, size


def of(df: pd.DataFrame, family: str) -> pd.DataFrame:
    """The completed benchmarks of one family (the others gave no time to show)."""
    return df[(df["family"] == family) & (df["outcome"] == COMPLETED)]


def _ml_detail(stage: str, info: dict) -> str:
    """The one figure that says the ML answer is right, per benchmark kind."""
    if stage == "logreg":
        return f"{info.get('check', '')}; accuracy {number(info.get('logreg_accuracy'))}"
    if stage == "tune":
        same = "; same as serial" if info.get("same_as_serial") else ""
        mse, ratio = number(info.get("tune_test_mse"), "{:,.0f}"), number(info.get("mse_vs_paper"), "{:.2f}")
        return (f"{info.get('tune_fits')} fits, best {info.get('tune_best_params')}, test MSE "
                f"{mse} ({ratio}x the paper's){same}")
    if stage == "predict":
        return f"{count(info.get('prediction_rows'))} predictions, {number(info.get('rows_per_s'), '{:,.0f}')} rows/s"
    if stage == "pipeline":
        return (f"ETL {seconds(info.get('etl_s'))}, ML {seconds(info.get('ml_s'))}, cluster switch "
                f"{seconds(info.get('cluster_switch_s'))}; {count(info.get('prediction_rows'))} predictions")
    return ""


def _section(title: str, intro: str, columns: list[str], rows: list[list[str]], figure: str) -> list[Section]:
    """A section with one table and its plot; none when there are no rows."""
    return [Section(title, frame(columns, rows), intro, figure=figure)] if rows else []


def _info(r) -> dict:
    return r.info if isinstance(r.info, dict) else {}


def ml_row(r) -> list[str]:
    return [r.run, r.stage, str(r.query).removeprefix(f"{r.stage}-"), r.engine if pd.notna(r.engine) else "-",
            r.format if pd.notna(r.format) else "-", count(r.rows), number(r.workers, "{:.0f}"), seconds(r.median_s),
            seconds(r.cold_s), size(r.peak_tree_bytes), _ml_detail(r.stage, _info(r))]


def generator_row(r) -> list[str]:
    info = _info(r)
    mb_s = info.get("mb_per_s") or (info["bytes"] / 1e6 / r.median_s if info.get("bytes") else None)
    return [r.run, count(r.rows), r.query, seconds(r.median_s), number(info.get("rows_per_s"), "{:,.0f}"),
            number(mb_s, "{:.1f}"), size(info.get("bytes")), size(r.peak_tree_bytes),
            number(info.get("speedup_vs_study_method"), "{:.2f}x")]


def overhead_row(r) -> list[str]:
    info = _info(r)
    return [r.run, r.engine, count(r.rows), seconds(info.get("median_without_sampler_s")),
            seconds(info.get("median_with_sampler_s")), number(info.get("sampler_overhead_ratio"), "{:.3f}"),
            number(info.get("spread_without_sampler"), "{:.0%}"), number(info.get("sampler_cpu_share"), "{:.2%}")]


def sections(df: pd.DataFrame) -> list[Section]:
    ml, gen, ov = of(df, "ml"), of(df, "generate"), of(df, "overhead")
    return _section(
        "Machine learning",
        "logreg: one logistic-regression objective per engine, checked against a reference fit; tune: the paper's "
        "24-fit grid search, serial and through the framework; predict: batch scoring to Parquet (and CSV); "
        "pipeline: ETL in one framework, tune and predict in another.",
        ["run", "stage", "variant", "engine", "format", "rows", "workers", "median", "cold", "peak tree", "check"],
        [ml_row(r) for r in ml.sort_values(["run", "stage", "query", "engine"], na_position="first").itertuples()],
        "ml",
    ) + _section(
        "Data generator",
        "Writing the points table: the Ray-vs-Dask study's method (NumPy chunks, pandas `to_csv`, one process) "
        "against scalebench's generator (worker processes, chunk by chunk). Peak memory is the whole process tree's.",
        ["run", "rows", "method", "median", "rows/s", "MB/s", "bytes", "peak tree", "speedup vs the study's"],
        [generator_row(r) for r in gen.sort_values(["run", "rows", "query"]).itertuples()],
        "generate",
    ) + _section(
        "Cost of measuring memory",
        "The same stage with and without the whole-tree sampler, interleaved; the ratio is with / without "
        "(goal < 1.03). When the runs without the sampler spread wider than the cost, the ratio cannot resolve it: "
        "the sampler thread's own CPU time per second of stage is the figure noise does not blur.",
        ["run", "engine", "rows", "without", "with", "ratio", "spread without", "sampler CPU share"],
        [overhead_row(r) for r in ov.sort_values(["run", "engine"]).itertuples()],
        "overhead",
    )


def _field(frame: pd.DataFrame, key: str) -> pd.Series:
    """One extra_info field of every row, as numbers."""
    return pd.to_numeric(frame["info"].map(lambda i: i.get(key)), errors="coerce")


def _bar(plt, svg, table: pd.DataFrame, title: str, ylabel: str, xlabel: str | None = None, logy: bool = False,
         rot: int = 0, goal: float | None = None, width: float = 7, legend: str | None = None) -> str:
    fig, ax = plt.subplots(figsize=(min(width, 10), 4))
    colours = [colour(c) for c in table.columns] if set(table.columns) & set(ENGINES) else None
    table.rename(columns=lambda c: name(c) if c in ENGINES else c).plot.bar(ax=ax, logy=logy, rot=rot, color=colours)
    if goal is not None:
        ax.axhline(goal, color="k", linestyle="--", linewidth=0.8, label=f"goal ({goal})")
    ax.set_xlabel(xlabel or "")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, title=legend, title_fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))  # off the bars
    return svg(fig)


Described = dict[str, tuple[str, str, str]]
"""Figure name -> (SVG, title, caption in words)."""


def plots(df: pd.DataFrame, plt, svg, where) -> Described:
    """The plot of each family present: ML times per engine, generator rows/s, sampler overhead. `where(frame)`
    says in words at what size and workers, on what machine, the frame's benchmarks ran."""
    figs: Described = {}
    ml, gen, ov = of(df, "ml"), of(df, "generate"), of(df, "overhead")
    if not ml.empty:
        piv = ml.assign(label=ml["engine"].fillna(ml["query"].astype(str))).pivot_table(
            index="query", columns="label", values="median_s", aggfunc="median")
        title = "Machine learning: median time per benchmark and engine"
        figs["ml"] = (_bar(plt, svg, piv, title, "median time, s (log)", "benchmark", logy=True, rot=30,
                           width=max(6, 0.9 * len(piv)), legend="engine"), title,
                      f"Median time of each machine-learning benchmark (logistic regression, the 24-fit grid search "
                      f"serial and through the framework, batch prediction, the ETL-then-ML pipeline) per engine, "
                      f"{where(ml)}. Time axis logarithmic; the tune bars compare each framework with its own "
                      f"serial run.")
    if not gen.empty:
        piv = gen.assign(rate=_field(gen, "rows_per_s")).pivot_table(index="rows", columns="query", values="rate",
                                                                     aggfunc="median")
        piv.index = [f"{int(r):,} rows" for r in piv.index]
        title = "Data generator: rows written per second"
        figs["generate"] = (_bar(plt, svg, piv / 1e6, title, "million rows written per second", legend="method"), title,
                            f"Rows written per second when generating the points table: the Ray-vs-Dask study's "
                            f"method (NumPy chunks, pandas to_csv, one process) against scalebench's generator "
                            f"(worker processes) writing CSV and Parquet, {where(gen)}. Higher is faster.")
    if not ov.empty:
        table = pd.DataFrame({"time with / without sampler": _field(ov, "sampler_overhead_ratio").values,
                              "sampler CPU share + 1": 1 + _field(ov, "sampler_cpu_share").values},
                             index=[name(e) for e in ov["engine"].values])
        title = "Cost of measuring memory: with the sampler / without"
        figs["overhead"] = (_bar(plt, svg, table, title, "ratio", "engine", goal=1.03), title,
                            f"The same stage timed with and without the whole-tree memory sampler, per engine, "
                            f"{where(ov)}: time with over time without, and 1 + the sampler thread's share of the "
                            f"CPU. Dashed: the goal, 1.03 (3 % overhead).")
    return figs
