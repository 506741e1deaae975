"""Saved pytest-benchmark JSON -> one tidy row per benchmark."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

COLUMNS = ["run", "name", "group", "engine", "stage", "query", "format", "rows", "workers", "median_s",
           "iqr_s", "min_s", "max_s", "rounds", "cold_s", "throughput_rows_per_s", "peak_tree_bytes",
           "added_tree_bytes", "spilled_bytes", "budget_bytes", "outcome", "detail"]
COMPLETED = "completed"
"""The outcome of a timed benchmark; the others ('out of memory', 'timed out') have no timing."""


class ReportError(ValueError):
    """A file that is not a pytest-benchmark JSON run; the message names it."""


def load_run(path: Path | str) -> pd.DataFrame:
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise ReportError(f"{path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise ReportError(f"{path}: not JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("benchmarks"), list):
        raise ReportError(f"{path}: not a pytest-benchmark run (no 'benchmarks' list)")
    rows = []
    for b in doc["benchmarks"]:
        info, stats = b.get("extra_info", {}), b.get("stats", {})
        peak = info.get("peak_tree_pss_bytes", info.get("peak_tree_rss_bytes"))
        rows.append({
            "run": path.stem, "name": b.get("fullname") or b.get("name"), "group": b.get("group"),
            "engine": info.get("engine"), "stage": info.get("stage"),
            "query": f"{info.get('stage')}-{info.get('query')}" if info.get("query") else b.get("name"),
            "format": info.get("format"), "rows": info.get("rows"), "workers": info.get("workers"),
            "median_s": stats.get("median"), "iqr_s": stats.get("iqr"), "min_s": stats.get("min"),
            "max_s": stats.get("max"), "rounds": stats.get("rounds"), "cold_s": info.get("cold_s"),
            "throughput_rows_per_s": info.get("throughput_rows_per_s"), "peak_tree_bytes": peak,
            "added_tree_bytes": info.get("peak_tree_added_bytes"), "spilled_bytes": info.get("spilled_bytes"),
            "budget_bytes": info.get("memory_budget_bytes"), "outcome": COMPLETED, "detail": None,
        })
    for c in doc.get("scalebench_unfinished") or []:  # stage cells that gave no timing (see fixtures/plugin.py)
        rows.append({
            "run": path.stem, "name": c.get("fullname"),
            "engine": c.get("engine"), "stage": c.get("stage"), "query": f"{c.get('stage')}-{c.get('query')}",
            "format": c.get("format"), "rows": c.get("rows"), "workers": c.get("workers"),
            "budget_bytes": c.get("memory_budget_bytes"), "outcome": c.get("outcome"), "detail": c.get("detail"),
        })
    return pd.DataFrame(rows, columns=COLUMNS)


def load_runs(paths: list[Path | str]) -> pd.DataFrame:
    if not paths:
        raise ReportError("give at least one saved run (pytest --benchmark-json=RUN.json)")
    return pd.concat([load_run(p) for p in paths], ignore_index=True)
