"""The report's analysis: frames computed from loaded runs (ratios, scaling, budget, db-benchmark
totals, skew, partitioning), before any formatting."""

from __future__ import annotations

import pandas as pd

from scalebench.report.load import COMPLETED

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


def stage_cells(df: pd.DataFrame) -> pd.DataFrame:
    """The matrix's cells (benchmarks/test_stages.py); ML, generator and overhead have sections of their own."""
    return df[df["family"] == "stage"]
