"""How `scalebench advise` names things: engines, stage families, sizes, failures (report.advise)."""

from __future__ import annotations

import math
from collections import Counter

import pandas as pd

from scalebench.report.load import COMPLETED
from scalebench.sizes import format_bytes, format_rows

BASELINES = ("pandas", "duckdb", "polars")
"""The single-machine engines a framework must overtake to pay off."""
ALWAYS_COMPARED = ("pandas", "duckdb")
"""Baselines a table keeps a column for even when not measured (it then says so); polars only when measured."""
FRAMEWORKS = ("dask", "ray", "spark")
NAMES = {"pandas": "pandas", "duckdb": "DuckDB", "dask": "Dask", "ray": "Ray", "spark": "Spark", "polars": "polars"}
FAMILIES = {"etl": "ETL (read, clean, write)", "groupby": "Group-by aggregations", "sort": "Sorts and top-k",
            "h2o_groupby": "db-benchmark group-by questions", "h2o_join": "db-benchmark join questions",
            "join": "Joins", "skew": "Skewed keys (group-by and join)", "partition": "Group-by on partitioned data",
            "tpch": "TPC-H queries"}
KEYS = ["stage", "query", "format", "workers", "rows", "engine"]


def baselines_in(engines) -> list[str]:
    """The baselines a table compares with: pandas and DuckDB, and polars when it was measured."""
    return [b for b in BASELINES if b in ALWAYS_COMPARED or b in set(engines)]


def name(engine: str) -> str:
    return NAMES.get(engine, engine)


def rows_text(n: float) -> str:
    """A measured size as the ladder names it (1M, 30M, 20k), or 12,345,678 when it is not round."""
    s = format_rows(int(n))
    return f"{int(n):,}" if s.isdigit() and int(n) >= 1000 else s


def about_rows(x: float) -> str:
    """An interpolated size to two significant figures (6.1M): it is an estimate, not a rung."""
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if x >= div:
            v = x / div
            return (f"{v:.0f}" if v >= 9.95 else f"{v:.1f}".removesuffix(".0")) + suffix
    return f"{x:.0f}"


def failed(outcome: str) -> str:
    """'out of memory' -> 'ran out of memory', to follow an engine's name."""
    return {"out of memory": "ran out of memory", "timed out": "timed out",
            "not tried": "was not tried (it failed at a smaller size)"}.get(outcome, outcome)


def budget_text(budget: float | None) -> str:
    return f" (budget {format_bytes(budget)})" if budget and not pd.isna(budget) else ""


def geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def most_common(outcomes: list[str]) -> str:
    return Counter(outcomes).most_common(1)[0][0]


def completed_cell(cell) -> bool:
    return cell is not None and cell.outcome == COMPLETED and pd.notna(cell.median_s) and cell.median_s > 0
