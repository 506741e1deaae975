"""Speedup, efficiency and COST across worker counts for `scalebench advise` (report.advise): COST is
the fewest workers with which a framework beats the best single-threaded engine (McSherry et al.,
"Scalability! But at what COST?", HotOS 2015)."""

from __future__ import annotations

import pandas as pd

from scalebench.report.advise_words import FRAMEWORKS, geomean, name, rows_text


def single_threaded(done: pd.DataFrame) -> dict[tuple[str, int], tuple[str, float]]:
    """(query, rows) -> the best single-threaded engine and its time: pandas (one thread at any worker
    count) or DuckDB on one worker, as COST compares against."""
    out: dict[tuple[str, int], tuple[str, float]] = {}
    singles = done[(done["engine"] == "pandas") | ((done["engine"] == "duckdb") & (done["workers"] == 1))]
    for r in singles.itertuples():
        label = "pandas" if r.engine == "pandas" else "DuckDB on 1 thread"
        if (r.query, r.rows) not in out or r.median_s < out[(r.query, r.rows)][1]:
            out[(r.query, r.rows)] = (label, r.median_s)
    return out


def scaling_of(done: pd.DataFrame, engine: str, rows: int) -> dict | None:
    """One engine at one size across worker counts (geometric means over its queries): speedup and
    efficiency against 1 worker, and COST, the fewest workers that beat the best single-threaded engine."""
    g = done[(done["engine"] == engine) & (done["rows"] == rows)]
    t = g.pivot_table(index="query", columns="workers", values="median_s", aggfunc="median")
    if t.shape[1] < 2:
        return None
    ns = sorted(int(n) for n in t.columns)
    speed = {}
    if 1 in ns:
        for n in ns[1:]:
            pair = t[[1, n]].dropna()
            if len(pair):
                s = geomean(list(pair[1] / pair[n]))
                speed[n] = (s, s / n)
    single = single_threaded(done)
    best = {q: single[(q, rows)] for q in t.index if (q, rows) in single}
    cost, against = None, {b[0] for b in best.values()}
    for n in ns:
        r = [t.at[q, n] / best[q][1] for q in best if pd.notna(t.at[q, n])]
        if r and geomean(r) < 1:
            cost = n
            break
    return {"workers": ns, "speedup": speed, "cost": cost, "single": best, "against": against}


def cost_text(sc: dict) -> str:
    if not sc["single"]:
        return "COST: no single-threaded run (pandas, or DuckDB on 1 worker) to compare with"
    against = " or ".join(sorted(sc["against"]))
    if sc["cost"] is None:
        return f"COST: not within {max(sc['workers'])} workers (against {against})"
    return f"COST {sc['cost']} worker{'s' if sc['cost'] > 1 else ''} (the fewest that beat {against})"


def workers_line(done: pd.DataFrame) -> str | None:
    """Per framework, at the largest size it ran on several worker counts."""
    parts = []
    for fw in [e for e in FRAMEWORKS if e in set(done["engine"])]:
        mine = done[done["engine"] == fw]
        several = mine.groupby("rows")["workers"].nunique()
        sizes = sorted(several[several > 1].index, reverse=True)
        if not sizes:
            continue
        sc = scaling_of(done, fw, int(sizes[0]))
        speed = ", ".join(f"{s:.2f}x on {n} (efficiency {e:.2f})" for n, (s, e) in sc["speedup"].items())
        speed = f"speedup {speed}" if speed else "no 1-worker run to scale from"
        parts.append(f"{name(fw)} at {rows_text(sizes[0])} rows: {speed}; {cost_text(sc)}")
    return "Workers: " + "; ".join(parts) + "." if parts else None
