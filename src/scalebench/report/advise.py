"""`scalebench advise`, the answer users come for: per stage family and query, the fastest engine at each
size, where each framework overtakes pandas, DuckDB and polars (between two measured rungs, never past the largest),
the memory frontier, speedup and COST across workers, and the cost per query. Rendering: report.advise_plots."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import pandas as pd

from scalebench.report.advise_scaling import workers_line
from scalebench.report.advise_words import (
    BASELINES,
    FAMILIES,
    FRAMEWORKS,
    KEYS,
    about_rows,
    budget_text,
    completed_cell,
    failed,
    geomean,
    most_common,
    name,
    rows_text,
)
from scalebench.report.load import COMPLETED, ReportError
from scalebench.report.network import ONE_HOST, short, topology_of
from scalebench.report.section import natural, seconds
from scalebench.sizes import format_bytes


def pool(df: pd.DataFrame) -> pd.DataFrame:
    """The stage cells of every run as one pool keyed by (stage, query, format, workers, rows, engine): a
    cell measured in several runs takes the median of its completed medians; it counts as not finished
    only when no run completed it."""
    st = df[(df["family"] == "stage") & df["rows"].notna() & df["engine"].notna()].copy()
    if st.empty:
        return pd.DataFrame(columns=[*KEYS, "median_s", "outcome"])
    st["workers"] = st["workers"].fillna(1)
    st["format"] = st["format"].fillna("-")
    for c in ("median_s", "peak_tree_bytes", "budget_bytes", "cpu_s", "cost_usd"):
        st[c] = pd.to_numeric(st[c], errors="coerce")
    done = st[st["outcome"] == COMPLETED].groupby(KEYS).agg(
        median_s=("median_s", "median"), peak_tree_bytes=("peak_tree_bytes", "max"),
        budget_bytes=("budget_bytes", "max"), cpu_s=("cpu_s", "median"), cost_usd=("cost_usd", "median"))
    fail = st[st["outcome"] != COMPLETED].groupby(KEYS).agg(outcome=("outcome", "first"),
                                                            budget_bytes=("budget_bytes", "max"))
    fail = fail[~fail.index.isin(done.index)]
    out = pd.concat([done.assign(outcome=COMPLETED), fail]).reset_index()
    out[["rows", "workers"]] = out[["rows", "workers"]].astype(int)
    return out.sort_values(KEYS, ignore_index=True)


Cells = dict[tuple[int, str, str], object]
"""(rows, query, engine) -> one pooled cell (a row of pool(), as a namedtuple), for one format and worker count."""


def cells_of(block: pd.DataFrame) -> Cells:
    return {(r.rows, r.query, r.engine): r for r in block.itertuples()}


@dataclass(frozen=True)
class Point:
    """One measured size for a framework against a baseline: the time ratio (framework / baseline), or
    which of the two did not finish."""

    rows: int
    ratio: float | None = None
    base_failed: str | None = None
    fw_failed: str | None = None

    @property
    def faster(self) -> bool:
        return self.base_failed is not None or (self.ratio is not None and self.ratio < 1)


def points(cells: Cells, fw: str, base: str) -> list[Point]:
    """Per size, over the queries both ran: the geometric mean time ratio; or, when the baseline (or the
    framework) failed on at least half of them while the other completed, that failure."""
    out = []
    for rows in sorted({k[0] for k in cells}):
        ratios, bf, ff = [], [], []
        for q in sorted({k[1] for k in cells if k[0] == rows}):
            a, b = cells.get((rows, q, fw)), cells.get((rows, q, base))
            if a is None or b is None:
                continue
            if completed_cell(a) and completed_cell(b):
                ratios.append(a.median_s / b.median_s)
            elif completed_cell(a):
                bf.append(b.outcome)
            elif completed_cell(b):
                ff.append(a.outcome)
        total = len(ratios) + len(bf) + len(ff)
        if bf and 2 * len(bf) >= total:
            out.append(Point(rows, base_failed=most_common(bf)))
        elif ff and 2 * len(ff) >= total:
            out.append(Point(rows, fw_failed=most_common(ff)))
        elif ratios:
            out.append(Point(rows, ratio=geomean(ratios)))
    return out


def interpolate(r0: float, q0: float, r1: float, q1: float) -> float:
    """Where log(ratio), linear in log(rows) between two rungs, is 0: the size at which the ratio crosses 1."""
    y0, y1 = math.log(q0), math.log(q1)
    t = y0 / (y0 - y1)
    return math.exp(math.log(r0) + t * (math.log(r1) - math.log(r0)))


@dataclass(frozen=True)
class Crossover:
    """Where `framework` overtakes `baseline`; `rows` is the placed point (None when there is none)."""

    framework: str
    baseline: str
    kind: str  # between, baseline failed, after failing, already, not up to, one size, not measured
    text: str
    rows: float | None = None
    low: int | None = None
    high: int | None = None


def _state(p: Point, base: str, budget: float | None) -> str:
    if p.base_failed:
        return f"{name(base)} {failed(p.base_failed)}{budget_text(budget)}"
    if p.fw_failed:
        return f"it {failed(p.fw_failed)}"
    return f"time ratio to {name(base)} {p.ratio:.2f}"


def crossover(pts: list[Point], fw: str, base: str, budget: float | None = None) -> Crossover:
    """The first size where the framework is faster, placed between it and the rung before."""
    B = name(base)
    if not pts:
        return Crossover(fw, base, "not measured", f"cannot be compared with {B}: no size where both ran and "
                         "at least one finished")
    if len(pts) == 1:
        p = pts[0]
        verb = "is faster than" if p.faster else "is not faster than"
        # the family's first line says once that one size cannot place a crossover
        return Crossover(fw, base, "one size", f"{verb} {B} at {rows_text(p.rows)} rows ({_state(p, base, budget)})")
    first = next((i for i, p in enumerate(pts) if p.faster), None)
    if first is None:
        last = pts[-1]
        return Crossover(fw, base, "not up to", f"does not overtake {B}: not up to {rows_text(last.rows)} rows on this "
                         f"machine ({_state(last, base, budget)} at {rows_text(last.rows)})")
    p = pts[first]
    at = rows_text(p.rows)
    if first == 0:
        out = Crossover(fw, base, "already", f"is faster than {B} already at the smallest size measured ({at} rows; "
                        f"{_state(p, base, budget)})", rows=p.rows, high=p.rows)
    else:
        prev = pts[first - 1]
        low = rows_text(prev.rows)
        if p.base_failed:
            out = Crossover(fw, base, "baseline failed", f"overtakes {B} at {at} rows: {B} {failed(p.base_failed)} at "
                            f"{at} ({f'budget {format_bytes(budget)}; ' if budget else ''}at {low} "
                            f"{_state(prev, base, budget)})", p.rows, prev.rows, p.rows)
        elif prev.ratio is not None:
            x = interpolate(prev.rows, prev.ratio, p.rows, p.ratio)
            out = Crossover(fw, base, "between", f"overtakes {B} between {low} and {at} rows (at about "
                            f"{about_rows(x)}, log-log interpolation; time ratio to {B} {prev.ratio:.2f} at {low}, "
                            f"{p.ratio:.2f} at {at})", x, prev.rows, p.rows)
        else:
            out = Crossover(fw, base, "after failing", f"overtakes {B} at {at} rows (time ratio {p.ratio:.2f}; it "
                            f"{failed(prev.fw_failed)} at {low}, so no point between the two can be placed)",
                            p.rows, prev.rows, p.rows)
    again = next((q for q in pts[first + 1:] if not q.faster), None)
    if again is not None:
        out = replace(out, text=f"{out.text}, but is not faster again at {rows_text(again.rows)} "
                      f"({_state(again, base, budget)})")
    return out


def common_queries(engine_queries: dict[str, set[str]]) -> set[str]:
    """The queries every engine ran: one an engine has no idiom for (skipped as not applicable, absent
    from the JSON: pandas, DuckDB and polars have no native skew remedy) is left out of a comparison of engines."""
    return set.intersection(*engine_queries.values()) if engine_queries else set()


def fastest(cells: Cells) -> dict[int, tuple[str, float] | None]:
    """Per size: the engine with the lowest geometric-mean time over the queries every engine measured
    there (common_queries), among the engines that completed all of them (None when none did)."""
    out = {}
    for rows in sorted({k[0] for k in cells}):
        here = {k: c for k, c in cells.items() if k[0] == rows}
        engines = {k[2] for k in here}
        common = common_queries({engine: {q for (_, q, e) in here if e == engine} for engine in engines})
        queries = {q for q in common if any(completed_cell(here[(rows, q, e)]) for e in engines)}
        times = {}
        for e in engines:
            ts = [here.get((rows, q, e)) for q in queries]
            if queries and all(completed_cell(c) for c in ts):
                times[e] = geomean([c.median_s for c in ts])
        out[rows] = min(times.items(), key=lambda kv: kv[1]) if times else None
    return out


@dataclass(frozen=True)
class Frontier:
    """How far one engine got: the largest size where it completed every query it ran, and the first
    size where one did not (with the most common outcome, and how many of how many queries)."""

    last_ok: int | None
    first_fail: int | None
    outcome: str | None = None
    failed_n: int = 0
    total_n: int = 0


def frontier(cells: Cells, engine: str) -> Frontier:
    by: dict[int, list] = {}
    for (rows, _, e), c in cells.items():
        if e == engine:
            by.setdefault(rows, []).append(c)
    ok = [r for r, cs in by.items() if all(completed_cell(c) for c in cs)]
    bad = sorted(r for r in by if r not in ok)
    if not bad:
        return Frontier(max(ok, default=None), None)
    outcomes = [c.outcome for c in by[bad[0]] if not completed_cell(c)]
    return Frontier(max(ok, default=None), bad[0], most_common(outcomes), len(outcomes), len(by[bad[0]]))


def engines_in(cells: Cells) -> list[str]:
    order = [*BASELINES, *FRAMEWORKS]
    found = {k[2] for k in cells}
    return sorted(found, key=lambda e: (order.index(e) if e in order else len(order), e))


def fastest_line(cells: Cells) -> str:
    best = fastest(cells)
    sizes = list(best)
    winners = {v[0] for v in best.values() if v}
    if len(engines_in(cells)) == 1:
        only = engines_in(cells)[0]
        return f"Only {name(only)} was measured here, at {', '.join(rows_text(r) for r in sizes)} rows."
    if len(sizes) == 1:
        v = best[sizes[0]]
        who = f"{name(v[0])} fastest ({seconds(v[1])})" if v else "No engine completed every query"
        return f"{who} at {rows_text(sizes[0])} rows, the one size measured: no crossover can be placed."
    if len(winners) == 1 and all(best.values()):
        lo, hi = rows_text(sizes[0]), rows_text(sizes[-1])
        return (f"{name(winners.pop())} fastest at every size measured, {lo} to {hi} rows ({seconds(best[sizes[0]][1])}"
                f" at {lo}, {seconds(best[sizes[-1]][1])} at {hi}).")
    parts = [f"{rows_text(r)}: {name(v[0])} ({seconds(v[1])})" if v else f"{rows_text(r)}: no engine completed every "
             "query" for r, v in best.items()]
    return "Fastest at each size: " + "; ".join(parts) + "."


def memory_line(cells: Cells, budget: float | None) -> str:
    fronts = {e: frontier(cells, e) for e in engines_in(cells)}
    parts, ok = [], {}
    for e, f in fronts.items():
        what = f"{failed(f.outcome)} at {rows_text(f.first_fail or 0)} ({f.failed_n} of {f.total_n} queries)"
        if f.first_fail is None:
            ok.setdefault(f.last_ok, []).append(name(e))
        elif f.last_ok is None:
            parts.append(f"{name(e)} {what} and completed no size in full")
        elif f.last_ok < f.first_fail:
            parts.append(f"{name(e)} completed up to {rows_text(f.last_ok)} rows and {what}")
        else:  # a failure below a size it completed in full: a flaky cell, or noise at the memory limit
            parts.append(f"{name(e)} {what}, yet completed every query at {rows_text(f.last_ok)} rows")
    parts += [f"{', '.join(es)} completed every size up to {rows_text(r)} rows" for r, es in sorted(ok.items())]
    return f"Memory{budget_text(budget)}: " + "; ".join(parts) + "."


def cost_line(block: pd.DataFrame) -> str:
    """What running the family's queries once cost at the largest size, per engine that completed them all;
    over the queries every engine ran there (common_queries)."""
    top = block[block["rows"] == block["rows"].max()]
    if "cost_usd" not in top or top["cpu_s"].isna().all():
        return "Cost per query: not measured (the run recorded no CPU time)."
    common = common_queries({e: set(g["query"]) for e, g in top.groupby("engine")})
    every = "" if len(common) == top["query"].nunique() else " every engine ran"
    top = top[top["query"].isin(common)]
    queries = len(common)
    parts = []
    for e, g in top.groupby("engine"):
        if len(g) == queries and (g["outcome"] == COMPLETED).all() and g["cpu_s"].notna().all():
            usd = g["cost_usd"].sum(min_count=len(g))
            price = f"${1000 * usd:.3g} per 1,000 runs" if pd.notna(usd) else "price not measured"
            parts.append((usd if pd.notna(usd) else math.inf, f"{name(e)} {g['cpu_s'].sum():.3g} CPU s, {price}"))
        elif (g["outcome"] != COMPLETED).any():
            parts.append((math.inf, f"{name(e)} did not finish"))
        else:
            parts.append((math.inf, f"{name(e)} not measured"))
    each = f"the query{every}" if queries == 1 else f"the {queries} queries{every}, once each"
    return (f"Cost at {rows_text(top['rows'].iloc[0])} rows ({each}): "
            + "; ".join(t for _, t in sorted(parts, key=lambda p: p[0])) + ".")


@dataclass
class Verdict:
    """One stage family on one input format: a few lines a person can act on, and what the plots need."""

    stage: str
    format: str
    workers: int
    queries: list[str]
    sizes: list[int]
    lines: list[str]
    crossovers: list[Crossover] = field(default_factory=list)
    budget: float | None = None
    worker_counts: list[int] = field(default_factory=list)


def verdict(p: pd.DataFrame, stage: str, fmt: str) -> Verdict:
    """The family's verdict at its largest worker count (the frameworks' best chance; the tables give the others)."""
    whole = p[(p["stage"] == stage) & (p["format"] == fmt)]
    workers = int(whole["workers"].max())
    block = whole[whole["workers"] == workers]
    cells = cells_of(block)
    budget = block["budget_bytes"].max()
    budget = None if pd.isna(budget) else float(budget)
    lines, found = [fastest_line(cells)], []
    engines = engines_in(cells)
    for fw in [e for e in engines if e in FRAMEWORKS]:
        xs = [crossover(points(cells, fw, b), fw, b, budget) for b in BASELINES if b in engines]
        found += xs
        said = ". It ".join(x.text for x in xs) if xs else "was not measured beside pandas, DuckDB or polars"
        lines.append(f"{name(fw)} {said}.")
    if not any(e in FRAMEWORKS for e in engines):
        lines.append("No distributed framework (Dask, Ray, Spark) was measured here: no crossover to place.")
    lines.append(memory_line(cells, budget))
    more = workers_line(whole[whole["outcome"] == COMPLETED])
    if more:
        lines.append(more)
    lines.append(cost_line(block))
    queries = sorted(block["query"].unique(), key=natural)
    return Verdict(stage, fmt, workers, queries, sorted(block["rows"].unique()), lines, found, budget,
                   sorted(whole["workers"].unique()))


@dataclass
class Advice:
    pool: pd.DataFrame
    verdicts: list[Verdict]
    left_out: list[str] = field(default_factory=list)
    """Runs left out because their clusters ran on another setup ('run (3 hosts, 1gbit)')."""


def one_setup(df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The runs of one topology (one host when there are any, else the first run's), and the others
    named: advise compares sizes on one setup, and a cell measured on one host and across hosts is
    two measurements of different things (the report's network section compares those)."""
    topology = topology_of(df, df.attrs.get("provenance") or {})
    if topology.nunique() <= 1:
        return df, []
    keep = ONE_HOST if (topology == ONE_HOST).any() else topology.iloc[0]
    left = dict(zip(df.loc[topology != keep, "run"], topology[topology != keep], strict=True))
    return df[topology == keep], [f"{run} ({short(t)})" for run, t in sorted(left.items())]


def advise(df: pd.DataFrame, source: str | None = None) -> Advice:
    """Every family's verdict; a ReportError naming `source` (else the runs) when there is no stage cell."""
    df, left_out = one_setup(df)
    p = pool(df)
    if p.empty:
        runs = source or ", ".join(sorted(set(df["run"]))) or "the run"
        what = "no benchmarks" if df.empty else "no stage benchmarks (only ML, generator or overhead ones)"
        raise ReportError(f"{runs}: {what}: advise compares the stage cells of benchmarks/test_stages.py across "
                          "sizes; run them with pytest --benchmark-only --scale ladder --benchmark-json=RUN.json")
    order = list(FAMILIES)
    keys = sorted({(s, f) for s, f in zip(p["stage"], p["format"], strict=True)},
                  key=lambda k: (order.index(k[0]) if k[0] in order else len(order), k))
    return Advice(p, [verdict(p, s, f) for s, f in keys], left_out)
