"""`scalebench advise` as a person reads it: the verdicts (report.advise) as Markdown and HTML, the
detail tables, and per stage family two plots: time against size on log-log axes with the crossovers
marked, and peak memory against size with the budget line. Titles and captions are in words."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from scalebench.atomic import write_text
from scalebench.report.advise import Advice, Verdict, advise, cells_of, crossover, points
from scalebench.report.advise_scaling import cost_text, scaling_of
from scalebench.report.advise_words import (
    BASELINES,
    FAMILIES,
    FRAMEWORKS,
    baselines_in,
    failed,
    geomean,
    name,
    rows_text,
)
from scalebench.report.load import COMPLETED, ReportError
from scalebench.report.section import Section, colour, engine_order, frame, marker, natural, seconds
from scalebench.sizes import format_bytes

TITLE = "When does a framework pay off?"
METHOD = ("A family's figures are the geometric mean, over its queries, of the per-query time ratios (and times). "
          "A crossover is placed between the two measured sizes where the time ratio crosses 1, by interpolating "
          "log(time ratio) linearly in log(rows); never past the largest size measured. A baseline that ran out of "
          "memory or time where the framework completed counts as overtaken there.")


def input_words(fmt: str) -> str:
    return {"parquet": "Parquet", "csv": "CSV", "parquet in memory": "Parquet loaded in memory",
            "csv in memory": "CSV loaded in memory"}.get(fmt, fmt)


def input_phrase(fmt: str) -> str:
    """'Parquet input', 'CSV input loaded in memory'."""
    words = input_words(fmt)
    return words.replace(" loaded", " input loaded") if " loaded" in words else f"{words} input"


def title(v: Verdict) -> str:
    return f"{FAMILIES.get(v.stage, v.stage)}, {input_phrase(v.format)}"


def span(v: Verdict) -> str:
    first, last = rows_text(v.sizes[0]), rows_text(v.sizes[-1])
    return f"{first} to {last} rows" if len(v.sizes) > 1 else f"{first} rows"


def intro(v: Verdict) -> str:
    many = len(v.queries) > 1
    counts = [str(n) for n in v.worker_counts]
    most = (f" (the most measured of {', '.join(counts[:-1])} and {counts[-1]}; the tables give the others)"
            if len(counts) > 1 else "")
    return (f"{len(v.queries)} quer{'ies' if many else 'y'} ({', '.join(v.queries)}) at {span(v)}, {v.workers} "
            f"worker{'s' if v.workers > 1 else ''}{most}.")


def machine_text(df: pd.DataFrame) -> str:
    """'a 2-core, 23.4 GiB machine' from the runs' provenance, or '' when none was recorded."""
    for record in (df.attrs.get("provenance") or {}).values():
        m = (record or {}).get("machine") or {}
        if m.get("cores_usable") and m.get("memory_bytes"):
            return f"a {m['cores_usable']}-core, {format_bytes(m['memory_bytes'])} machine"
    return ""


def _figures(v: Verdict) -> tuple[str, str]:
    slug = f"{v.stage}-{v.format.replace(' ', '-')}"
    return f"advise-time-{slug}", f"advise-memory-{slug}"


def _block(advice: Advice, v: Verdict) -> pd.DataFrame:
    """The cells a verdict speaks of: its family and input, at its worker count."""
    p = advice.pool
    return p[(p["stage"] == v.stage) & (p["format"] == v.format) & (p["workers"] == v.workers)]


def drawn(advice: Advice, v: Verdict) -> list[str]:
    """The figures plots() draws for a verdict: the memory plot only where peak memory was measured."""
    time, memory = _figures(v)
    block = _block(advice, v)
    return [time, memory] if "peak_tree_bytes" in block and block["peak_tree_bytes"].notna().any() else [time]


def captions(advice: Advice, machine: str = "") -> dict[str, str]:
    """Figure name -> what it compares, at what sizes, on what machine."""
    out = {}
    on = f", on {machine}" if machine else ""
    for v in advice.verdicts:
        t, m = _figures(v)
        what = (f"{FAMILIES.get(v.stage, v.stage)} on {input_phrase(v.format)}, {v.workers} "
                f"worker{'s' if v.workers > 1 else ''}{on}")
        sizes = span(v)
        over = "one query" if len(v.queries) == 1 else f"geometric mean over {len(v.queries)} queries"
        out[t] = (f"{what}: median time per engine at {sizes} ({over}), both axes logarithmic. "
                  "Dotted lines: where a distributed framework overtakes pandas or "
                  "DuckDB. x at the top: the engine ran out of memory or time at that size.")
        out[m] = (f"{what}: highest peak memory of the whole process tree per engine at {sizes}, against the "
                  "memory budget (dashed). x at the top: the engine ran out of memory or time at that size.")
    return out


def image_lines(advice: Advice, v: Verdict, caps: dict[str, str]) -> list[str]:
    """Markdown for a verdict's plots (SVGs written beside the Markdown file), each with its caption."""
    short = {"time": "time against size", "memory": "peak memory against size"}
    family = FAMILIES.get(v.stage, v.stage)
    return [line for f in drawn(advice, v) for line in
            (f"![{family}: {short[f.split('-')[1]]}]({f}.svg)", "", f"*{caps[f]}*", "")]


def sections(advice: Advice, level: int = 2) -> list[Section]:
    """One section per family: its verdict lines as bullets, its time plot as the section's figure."""
    return [Section(title(v), frame([], []), intro(v), v.lines, level, _figures(v)[0]) for v in advice.verdicts]


def crossings_table(advice: Advice) -> pd.DataFrame:
    """Per query, input and worker count: where each framework overtakes pandas, DuckDB (and polars when measured)."""
    p, body = advice.pool, []
    bases = baselines_in(p["engine"])
    groups = sorted(p.groupby(["stage", "format", "workers", "query"]), key=lambda kv: (*kv[0][:3], natural(kv[0][3])))
    for (stage, fmt, workers, query), block in groups:
        cells = cells_of(block)
        budget = block["budget_bytes"].max()
        for fw in [e for e in FRAMEWORKS if e in set(block["engine"])]:
            said = [crossover(points(cells, fw, b), fw, b, budget).text if b in set(block["engine"])
                    else "not measured" for b in bases]
            body.append([stage, query, input_words(fmt), str(workers), name(fw), *said])
    return frame(["family", "query", "input", "workers", "framework", *(f"against {name(b)}" for b in bases)], body)


def _ratio(own: pd.Series, base: pd.DataFrame, engine: str) -> str:
    """This cell's time over the baseline's on the same query, input, workers and size."""
    key = (own["stage"], own["query"], own["format"], own["workers"], own["rows"])
    if own["outcome"] != COMPLETED or key not in base.index:
        return "-"
    b = base.loc[key]
    if b["outcome"] != COMPLETED:
        return f"{name(engine)} {failed(b['outcome'])}"
    return f"{own['median_s'] / b['median_s']:.2f}x"


def times_table(advice: Advice) -> pd.DataFrame:
    """Every pooled cell: time, ratio to pandas and to DuckDB, outcome, peak memory, CPU and price."""
    p = advice.pool
    idx = ["stage", "query", "format", "workers", "rows"]
    bases = {b: p[p["engine"] == b].set_index(idx) for b in baselines_in(p["engine"])}
    body = []
    for _, r in p.sort_values([*idx, "median_s"]).iterrows():
        done = r["outcome"] == COMPLETED
        cpu, usd = r.get("cpu_s"), r.get("cost_usd")
        body.append([r["stage"], r["query"], input_words(r["format"]), str(r["workers"]), rows_text(r["rows"]),
                     name(r["engine"]), seconds(r["median_s"]) if done else "-",
                     *(_ratio(r, bases[b], b) for b in bases), r["outcome"],
                     format_bytes(r["peak_tree_bytes"]) if pd.notna(r.get("peak_tree_bytes")) else "not measured",
                     f"{cpu:.3g}" if done and pd.notna(cpu) else "not measured" if done else "-",
                     f"${1000 * usd:.3g}" if done and pd.notna(usd) else "not measured" if done else "-"])
    return frame(["family", "query", "input", "workers", "rows", "engine", "time", *(f"vs {name(b)}" for b in bases),
                  "outcome", "peak memory", "CPU s", "per 1,000 queries"], body)


def scaling_table(advice: Advice) -> pd.DataFrame:
    """Per query, size and engine measured on several worker counts: speedup T(1)/T(n), efficiency /n, COST."""
    done = advice.pool[advice.pool["outcome"] == COMPLETED]
    body = []
    for (stage, fmt, query), g in done.groupby(["stage", "format", "query"]):
        for (engine, rows), h in g.groupby(["engine", "rows"]):
            sc = scaling_of(g, engine, int(rows)) if h["workers"].nunique() > 1 else None
            if sc is None:
                continue
            speed = ", ".join(f"{n}: {s:.2f}x ({e:.2f})" for n, (s, e) in sc["speedup"].items()) or "no 1-worker run"
            best = next(iter(sc["single"].values()), None)
            body.append([stage, query, input_words(fmt), rows_text(rows), name(engine), speed,
                         f"{best[0]} {seconds(best[1])}" if best else "not measured",
                         cost_text(sc).removeprefix("COST").strip(": ") if engine not in BASELINES else "-"])
    return frame(["family", "query", "input", "rows", "engine", "speedup (efficiency) per workers",
                  "best single-threaded", "COST"], body)


def setup_note(advice: Advice) -> str:
    """Which runs the advice left out, as their clusters ran on another setup ('' when none)."""
    if not advice.left_out:
        return ""
    return (f"Left out, as their clusters ran on another setup (the report's network section compares setups): "
            f"{', '.join(advice.left_out)}.")


def markdown(advice: Advice, images: bool = False, machine: str = "") -> str:
    """The verdicts first, then the tables; `images` links each family's two SVGs (written beside it)."""
    lines = [f"# {TITLE}", "", METHOD, "", *([setup_note(advice), ""] if advice.left_out else [])]
    caps = captions(advice, machine)
    for v, s in zip(advice.verdicts, sections(advice), strict=True):
        lines += s.markdown()
        if images:
            lines += image_lines(advice, v, caps)
    for title, table, intro in (
            ("Where each framework overtakes, per query", crossings_table(advice), "Per query, input and worker "
             "count: the same placement as the verdicts', on one query (where one size was measured, the ratio "
             "at that size: no crossover can be placed)."),
            ("Times per size", times_table(advice), "Ratios are to pandas and to DuckDB on the same query, input, "
             "workers and size; CPU s and the price are per query, where the run measured them."),
            ("Worker scaling and COST", scaling_table(advice), "Speedup T(1)/T(n) and, in brackets, efficiency "
             "speedup/n; COST: the fewest workers with which the framework beats the best single-threaded engine "
             "(pandas, or DuckDB on 1 worker) at that size (McSherry et al., 2015).")):
        if not table.empty:
            lines += Section(title, table, intro).markdown()
    return "\n".join(lines)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.fonttype"] = "none"
    return plt


def _svg(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.tight_layout()
    fig.savefig(buf, format="svg")
    plt.close(fig)
    return buf.getvalue()


def _series(block: pd.DataFrame, engine: str, value: str, how) -> tuple[list, list, list]:
    """Per size: `how` over the engine's times (or peaks) when it completed every query any engine
    completed there; a size where one of its queries did not finish is a failure instead."""
    xs, ys, fails = [], [], []
    for rows, g in block.groupby("rows"):
        queries = set(g.loc[g["outcome"] == COMPLETED, "query"])
        mine = g[g["engine"] == engine]
        if (mine["outcome"] != COMPLETED).any():
            fails.append(rows)
        elif queries and queries <= set(mine["query"]) and mine[value].notna().all():
            xs.append(rows)
            ys.append(how(list(mine[value])))
    return xs, ys, fails


def _plot(plt, block: pd.DataFrame, value: str, how, title: str, ylabel: str, logy: bool):
    """One line per engine against the measured sizes (labelled as the ladder names them), an x above
    the data where it did not finish."""
    fig, ax = plt.subplots(figsize=(6.4, 4))
    colours, fails, top = {}, [], 0.0
    for e in sorted(set(block["engine"]), key=engine_order):
        xs, ys, failed_at = _series(block, e, value, how)
        ax.plot(xs, ys, marker=marker(e), color=colour(e), label=name(e))
        colours[e], top = colour(e), max([top, *ys])
        fails += [(x, colours[e]) for x in failed_at]
    for i, (x, shade) in enumerate(fails):  # engines that failed at the same size stack downwards
        k = sum(1 for y, _ in fails[:i] if y == x)
        ax.plot([x], [0.95 - 0.06 * k], marker="x", markersize=9, color=shade, transform=ax.get_xaxis_transform())
    if fails:
        ax.plot([], [], "kx", linestyle="none", label="did not finish (x)")
    ax.set_xscale("log")
    if top == 0:  # nothing finished: only the x marks
        ax.set_yticks([])
    elif logy:
        ax.set_yscale("log")
    if top > 0:
        ax.set_ylim(top=top * (4 if logy else 1.25))  # room above the data for the x marks
    sizes = sorted(set(block["rows"]))
    ax.set_xticks(sizes, [rows_text(r) for r in sizes])
    ax.xaxis.set_minor_locator(plt.NullLocator())
    ax.set_xlabel("rows (log scale)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    return fig, ax, colours


def plots(advice: Advice) -> dict[str, str]:
    """Figure name -> SVG, two per family verdict (text kept as text, as report.render does)."""
    plt = _pyplot()
    figs = {}
    for v in advice.verdicts:
        block = _block(advice, v)
        t, m = _figures(v)
        family = FAMILIES.get(v.stage, v.stage)
        fig, ax, colours = _plot(plt, block, "median_s", geomean, f"{family}: time against size",
                                 "median time, s (log" + (f"; geometric mean over {len(v.queries)} queries)"
                                                          if len(v.queries) > 1 else ")"), True)
        for i, x in enumerate(c for c in v.crossovers if c.rows and c.kind != "already"):
            ax.axvline(x.rows, linestyle=":", color=colours.get(x.framework, "k"), linewidth=1)
            ax.text(x.rows, 0.04 + 0.3 * (i % 3), f" {name(x.framework)} overtakes {name(x.baseline)}", rotation=90,
                    fontsize=7, color=colours.get(x.framework, "k"), transform=ax.get_xaxis_transform(), va="bottom",
                    bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1})
        ax.legend(fontsize=7)
        figs[t] = _svg(fig)
        if m in drawn(advice, v):
            gib = block.assign(peak_tree_bytes=block["peak_tree_bytes"] / 2**30)
            fig, ax, _ = _plot(plt, gib, "peak_tree_bytes", max, f"{family}: peak memory against size",
                               "peak memory of the process tree, GiB", False)
            if v.budget:
                ax.axhline(v.budget / 2**30, color="k", linestyle="--", linewidth=1,
                           label=f"memory budget ({format_bytes(v.budget)})")
                ax.set_ylim(top=max(ax.get_ylim()[1], 1.25 * v.budget / 2**30))
            ax.set_ylim(bottom=0)
            ax.legend(fontsize=7)
            figs[m] = _svg(fig)
    return figs


def for_report(df: pd.DataFrame) -> Advice | None:
    """The advice for `scalebench report`, or None when the runs hold no stage cell (the report goes on)."""
    try:
        return advise(df)
    except ReportError:
        return None


def write(advice: Advice, out_dir: Path | str, machine: str = "") -> dict[str, Path]:
    """advise.md (verdicts, tables, plot links) and one SVG per plot in `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figs = plots(advice)
    written = {n: write_text(out / f"{n}.svg", svg) for n, svg in figs.items()}
    written["markdown"] = write_text(out / "advise.md", markdown(advice, images=True, machine=machine))
    return written
