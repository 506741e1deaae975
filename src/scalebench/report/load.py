"""Saved pytest-benchmark JSON -> one tidy row per benchmark."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

COLUMNS = ["run", "family", "name", "group", "engine", "stage", "query", "format", "rows", "workers", "median_s",
           "iqr_s", "min_s", "max_s", "rounds", "cold_s", "throughput_rows_per_s", "peak_tree_bytes",
           "added_tree_bytes", "spilled_bytes", "budget_bytes", "cpu_s", "cpu_utilisation", "cores", "gib_s",
           "cost_usd", "outcome", "detail", "info"]
COMPLETED = "completed"
"""The outcome of a timed benchmark; the others ('out of memory', 'timed out') have no timing."""


ML_STAGES = ("logreg", "tune", "predict", "pipeline")
FAMILIES = ("stage", "ml", "generate", "overhead")
"""What a saved benchmark measured: a stage cell (benchmarks/test_stages.py), an ML benchmark,
the generator, or the memory sampler's overhead. Each gets its own table in the report."""


def family(info: dict, group: str | None) -> str:
    if "sampler_overhead_ratio" in info:
        return "overhead"
    if (group or "").startswith("generate ") or "speedup_vs_study_method" in info:
        return "generate"
    return "ml" if info.get("stage") in ML_STAGES else "stage"


def _query(info: dict, bench: dict) -> str:
    """stage-query for a stage cell; for the others what the benchmark varies (mode, output, method)."""
    what = info.get("query") or info.get("output") or (bench.get("params") or {}).get("method")
    if info.get("stage") and what:
        return f"{info['stage']}-{what}"
    return what or bench.get("name")


def input_label(fmt: str | None, io: str | None) -> str | None:
    """The format a report groups cells by, with the input mode when it is not the default: cells
    read from storage and cells loaded into the engine first (--io memory) are never one row."""
    return f"{fmt} in memory" if fmt and io == "memory" else fmt


class ReportError(ValueError):
    """A file that is not a pytest-benchmark JSON run; the message names it."""


def round_times(bench: dict) -> list[float] | None:
    """Every timed round of one saved benchmark, for a statistical comparison: scalebench's own
    extra_info['round_times_s'], else pytest-benchmark's stats['data'] (saved only with
    --benchmark-save-data), else None (only the summary statistics were saved)."""
    info, stats = bench.get("extra_info") or {}, bench.get("stats") or {}
    for times in (info.get("round_times_s"), stats.get("data")):
        if isinstance(times, list) and times:
            try:
                return [float(t) for t in times]
            except (TypeError, ValueError):
                continue
    return None


def load_run(path: Path | str, *, with_rounds: bool = False) -> pd.DataFrame:
    """One row per benchmark, in COLUMNS. `with_rounds` adds a 'round_times_s' column (a list, or
    None; see round_times) for compare; the report leaves it out, as its tables show every column."""
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
            "run": path.stem, "family": family(info, b.get("group")), "name": b.get("fullname") or b.get("name"),
            "group": b.get("group"), "engine": info.get("engine"), "stage": info.get("stage"),
            "query": _query(info, b),
            "format": input_label(info.get("format"), info.get("io")), "rows": info.get("rows"),
            "workers": info.get("workers"),
            "median_s": stats.get("median"), "iqr_s": stats.get("iqr"), "min_s": stats.get("min"),
            "max_s": stats.get("max"), "rounds": stats.get("rounds"), "cold_s": info.get("cold_s"),
            "throughput_rows_per_s": info.get("throughput_rows_per_s"), "peak_tree_bytes": peak,
            "added_tree_bytes": info.get("peak_tree_added_bytes"), "spilled_bytes": info.get("spilled_bytes"),
            "budget_bytes": info.get("memory_budget_bytes"), "cpu_s": info.get("tree_cpu_s"),
            "cpu_utilisation": info.get("cpu_utilisation"), "cores": info.get("cores"), "gib_s": info.get("gib_s"),
            "cost_usd": info.get("cost_per_query_usd"), "outcome": COMPLETED, "detail": None, "info": info,
            "round_times_s": round_times(b),
        })
    for c in doc.get("scalebench_unfinished") or []:  # stage cells that gave no timing (see fixtures/plugin.py)
        rows.append({
            "run": path.stem, "family": "stage", "name": c.get("fullname"), "info": c,
            "engine": c.get("engine"), "stage": c.get("stage"), "query": f"{c.get('stage')}-{c.get('query')}",
            "format": input_label(c.get("format"), c.get("io")), "rows": c.get("rows"), "workers": c.get("workers"),
            "budget_bytes": c.get("memory_budget_bytes"), "outcome": c.get("outcome"), "detail": c.get("detail"),
        })
    frame = pd.DataFrame(rows, columns=[*COLUMNS, "round_times_s"] if with_rounds else COLUMNS)
    for column in ("rows", "workers"):  # whole numbers, missing where a family has none (tune: no format)
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("Int64")
    frame.attrs["provenance"] = {path.stem: (doc.get("machine_info") or {}).get("scalebench")}
    frame.attrs["partial"] = {path.stem: doc["scalebench_partial"]} if doc.get("scalebench_partial") else {}
    return frame


def provenance_of(run: pd.DataFrame) -> dict | None:
    """What one loaded run recorded it was measured on (scalebench.provenance.record), or None."""
    return next(iter(run.attrs["provenance"].values()))


def load_runs(paths: list[Path | str]) -> pd.DataFrame:
    if not paths:
        raise ReportError("give at least one saved run (pytest --benchmark-json=RUN.json)")
    frames = [load_run(p) for p in paths]
    out = pd.concat(frames, ignore_index=True)
    out.attrs["provenance"] = {k: v for f in frames for k, v in f.attrs["provenance"].items()}
    out.attrs["partial"] = {k: v for f in frames for k, v in f.attrs["partial"].items()}
    return out
