"""The side-by-side report: report.md and report.html, both in the same reading order (the verdict, then
the plots, each captioned in words, then the detail tables from report.sections, the raw table last),
and one SVG per plot."""

from __future__ import annotations

import html
import io
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from scalebench.atomic import write_text
from scalebench.report import advise_plots, families
from scalebench.report.advise_words import FAMILIES, geomean, name
from scalebench.report.load import COMPLETED
from scalebench.report.section import colour, engine_order, marker, natural
from scalebench.report.sections import (
    all_results,
    block_title,
    engines_words,
    inputs_words,
    machine_words,
    plural,
    rows_words,
    sections,
    summary,
    times_figure,
    workers_words,
)
from scalebench.report.tables import completed, partition_table, scaling, skew_table, stage_cells

PAGE_PX = 1300
"""The page's content width (CSS max-width): at a laptop's 1366 px nothing is wider."""
MAX_FIGURE_IN = 11.0
"""The widest plot, in inches (1056 px at 96 px per inch): every plot fits the page at its own size."""


@dataclass
class Figure:
    svg: str
    title: str
    """Short, in words: the Markdown image's text and the tables' link to it."""
    caption: str
    """What is compared, at what size and input, with how many workers, on what machine."""
    wide: bool = False
    """Spans the page rather than half of it."""


def _where(df: pd.DataFrame, frame: pd.DataFrame) -> str:
    """'at 1,000,000 rows, Parquet input, 2 workers, on a 2-core, 23.5 GiB machine' for these benchmarks."""
    parts = [rows_words(frame["rows"]), inputs_words(frame["format"]), workers_words(frame["workers"])]
    said = ", ".join(p for p in parts if p and p != "no stated size")
    return f"{'at ' + said + ', ' if said else ''}on {machine_words(df, frame['run'].unique())}"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.fonttype"] = "none"
    return plt


def _times_plot(plt, block: pd.DataFrame, title: str):
    """A dot plot of one block: a row per query, a dot per engine on a log time axis, an x at the right
    edge where the engine did not finish; in two panels side by side when there are many queries."""
    from matplotlib.lines import Line2D
    from matplotlib.transforms import blended_transform_factory

    queries = sorted(block["query"].dropna().unique(), key=natural)
    engines = sorted(block["engine"].dropna().unique(), key=engine_order)
    panels = 1 if len(queries) <= 20 else 2
    per = math.ceil(len(queries) / panels)
    fig, axes = plt.subplots(1, panels, figsize=(7 if panels == 1 else MAX_FIGURE_IN, 1.3 + 0.24 * max(per, 4)),
                             sharex=True, squeeze=False)
    failed = False
    for i, ax in enumerate(axes[0]):
        chunk = queries[i * per:(i + 1) * per]
        at = {q: len(chunk) - 1 - k for k, q in enumerate(chunk)}
        edge = blended_transform_factory(ax.transAxes, ax.transData)
        for k, e in enumerate(engines):
            mine = block[(block["engine"] == e) & block["query"].isin(chunk)]
            shift = 0.5 * (k - (len(engines) - 1) / 2) / max(len(engines), 1)
            done = mine[(mine["outcome"] == COMPLETED) & mine["median_s"].notna()]
            ax.plot(done["median_s"], [at[q] + shift for q in done["query"]], marker(e), color=colour(e),
                    markersize=5, linestyle="none")
            for q in mine.loc[mine["outcome"] != COMPLETED, "query"]:
                ax.plot([0.985], [at[q] + shift], "x", color=colour(e), markersize=6, transform=edge)
                failed = True
        ax.set_yticks(range(len(chunk)), list(reversed(chunk)), fontsize=8)
        ax.set_ylim(-0.7, len(chunk) - 0.3)
        ax.set_xscale("log")
        ax.grid(axis="x", which="major", linewidth=0.4, alpha=0.6)
        ax.grid(axis="y", linewidth=0.3, alpha=0.3)
        ax.set_xlabel("median time, s (log scale; left is faster)", fontsize=8)
    times = block.loc[block["outcome"] == COMPLETED, "median_s"].dropna()
    if not times.empty:  # room on the right for the x of a cell that did not finish
        axes[0][0].set_xlim(times.min() / 1.6, times.max() * (4 if failed else 1.6))
    handles = [Line2D([], [], marker=marker(e), color=colour(e), linestyle="none", label=name(e)) for e in engines]
    if failed:
        handles.append(Line2D([], [], marker="x", color="k", linestyle="none", label="did not finish"))
    fig.suptitle(title, fontsize=10)
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.955), ncol=len(handles), fontsize=8,
               frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.93 if per > 8 else 0.86))
    return fig


def _time_blocks(df: pd.DataFrame) -> dict[str, Figure]:
    """One dot plot of times per query for each run block (input, rows, workers)."""
    plt, figs = _pyplot(), {}
    for (run, fmt, rows, workers), block in stage_cells(df).groupby(["run", "format", "rows", "workers"],
                                                                    dropna=False):
        words = block_title(df, run, fmt, rows, workers)
        title = f"Median time per query: {words}"
        queries = plural(block["query"].nunique(), "query", "queries")
        svg = _svg(_times_plot(plt, block, title), layout=False)
        figs[times_figure(run, fmt, rows, workers)] = Figure(svg, title, (
            f"Median time of each of {queries} per engine ({engines_words(block['engine'])}), {_where(df, block)}. "
            "Time axis logarithmic; further left is faster. An x at the right edge: that engine ran out of memory "
            "or time on that query."), wide=True)
    return figs


def _others(df: pd.DataFrame) -> dict[str, Figure]:
    """Worker scaling, the skew penalty and what partitioning saves, each where the runs measured it."""
    plt, figs = _pyplot(), {}
    done = completed(stage_cells(df))
    sc = scaling(done)
    if not sc.empty and sc["workers"].nunique() > 1:
        fig, ax = plt.subplots(figsize=(6.4, 4))
        shown = []
        for engine, g in sorted(sc.groupby("engine"), key=lambda kv: engine_order(kv[0])):
            top = g[g["rows"] == g.loc[g["workers"] > 1, "rows"].max()]
            line = top.groupby("workers")["speedup"].agg(lambda v: geomean(list(v)))
            ax.plot(line.index, line.values, marker=marker(engine), color=colour(engine), label=name(engine))
            shown.append(top)
        most = int(sc["workers"].max())
        ax.plot([1, most], [1, most], "k--", linewidth=0.8, label="ideal (n workers, n times faster)")
        ax.set_xlabel("workers")
        ax.set_ylabel("speedup T(1) / T(n)")
        ax.set_xticks(sorted(sc["workers"].unique()))
        ax.set_title("Worker scaling: speedup against workers", fontsize=10)
        ax.legend(fontsize=7)
        shown = pd.concat(shown)
        figs["scaling"] = Figure(_svg(fig), "Worker scaling: speedup against workers", (
            f"Speedup T(1)/T(n) per engine from 1 to {most} workers, the geometric mean over "
            f"{plural(shown['query'].nunique(), 'query', 'queries')} at each engine's largest "
            f"size measured on several worker counts, {_where(df, shown)}. Dashed: ideal scaling."))
    skew = skew_table(done)
    if not skew.empty and skew["penalty"].notna().any():
        fig, ax = plt.subplots(figsize=(7, 4))
        piv = skew.assign(label=skew["op"] + ", " + skew["remedy"]).pivot_table(
            index="engine", columns="label", values="penalty", aggfunc="median")
        piv = piv.loc[sorted(piv.index, key=engine_order)].rename(index=name)
        piv.plot.bar(ax=ax, rot=0)
        ax.axhline(1, color="k", linestyle="--", linewidth=0.8)
        ax.set_xlabel("")
        ax.set_ylabel("time on skewed keys / on uniform keys")
        ax.set_title("Skewed keys: the time penalty per remedy", fontsize=10)
        ax.legend(fontsize=7, title="operation, remedy", title_fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
        figs["skew"] = Figure(_svg(fig), "Skewed keys: the time penalty per remedy", (
            "Time on Zipf-skewed keys over time on uniform keys, per engine, for the group-by and the join, plain "
            "and with each remedy (salted keys; native: the framework's own skew handling), "
            f"{_where(df, done[done['stage'] == 'skew'])}. Dashed: no penalty; above it skew costs time."))
    part = partition_table(done)
    if not part.empty and part["saved"].notna().any():
        fig, ax = plt.subplots(figsize=(7, 4))
        piv = part.pivot_table(index="engine", columns="rows", values="saved", aggfunc="median")
        piv = piv.loc[sorted(piv.index, key=engine_order)].rename(index=name, columns=lambda r: f"{int(r):,} rows")
        piv.plot.bar(ax=ax, rot=0)
        ax.axhline(1, color="k", linestyle="--", linewidth=0.8)
        ax.set_xlabel("")
        ax.set_ylabel("unpartitioned time / partitioned by key")
        ax.set_title("Partitioning by the key: what it saves", fontsize=10)
        ax.legend(fontsize=7)
        figs["partition"] = Figure(_svg(fig), "Partitioning by the key: what it saves", (
            "Group-by time on the table as generated over the same rows partitioned by the key (each key in one "
            f"file), per engine, {_where(df, done[done['stage'] == 'partition'])}. Above 1 (dashed) the layout "
            "saves time; below it, the partitioned files cost more than they save."))
    return figs


def figures(df: pd.DataFrame) -> tuple[dict[str, Figure], dict[str, Figure]]:
    """(against size: the verdict's plots, per stage family; detail: every other plot), name -> Figure."""
    advice = advise_plots.for_report(df)
    lead = {}
    if advice:
        svgs, caps = advise_plots.plots(advice), advise_plots.captions(advice, machine_words(df))
        short = {"time": "time against size", "memory": "peak memory against size"}
        for v in advice.verdicts:
            for f in advise_plots.drawn(advice, v):
                lead[f] = Figure(svgs[f], f"{FAMILIES.get(v.stage, v.stage)}, {advise_plots.input_phrase(v.format)}: "
                                          f"{short[f.split('-')[1]]}", caps[f])
    described = families.plots(df, _pyplot(), _svg, lambda frame: _where(df, frame))
    rest = {n: Figure(svg, title, caption) for n, (svg, title, caption) in described.items()}
    return lead, {**_time_blocks(df), **_others(df), **rest}


def plots(df: pd.DataFrame) -> dict[str, str]:
    """name -> SVG text (text kept as text, so the series names can be read back)."""
    lead, rest = figures(df)
    return {n: f.svg for n, f in {**lead, **rest}.items()}


def _svg(fig, layout: bool = True) -> str:
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    if layout:  # the plots that lay themselves out say so
        fig.tight_layout()
    fig.savefig(buf, format="svg")
    plt.close(fig)
    return buf.getvalue()


def markdown(df: pd.DataFrame, figs: tuple[dict[str, Figure], dict[str, Figure]] | None = None) -> str:
    """The same order as the HTML page; each plot an image link (its SVG beside report.md) and its caption."""
    lead, rest = figs if figs is not None else figures(df)
    parts = ["# scalebench report", "", summary(df), ""]
    advice = advise_plots.for_report(df)
    if advice:
        parts += [f"## {advise_plots.TITLE}", ""]
        for s in advise_plots.sections(advice, 3):
            parts += s.markdown()
        parts += [advise_plots.METHOD, "", *([advise_plots.setup_note(advice), ""] if advice.left_out else [])]
    parts += ["## Plots", ""]
    for heading, group in (("Against size, per stage family", lead), ("Per query and per benchmark", rest)):
        if group:
            parts += [f"### {heading}", ""]
            parts += [line for n, f in group.items() for line in (f"![{f.title}]({n}.svg)", "", f"*{f.caption}*", "")]
    for section in [*sections(df), all_results(df)]:
        parts += section.markdown()
    return "\n".join(parts)


_SORT_SCRIPT = """
document.querySelectorAll('table.sortable th').forEach(function (th) {
  th.style.cursor = 'pointer';
  th.title = 'sort';
  th.addEventListener('click', function () {
    var table = th.closest('table'), body = table.tBodies[0], i = th.cellIndex;
    var rows = Array.from(body.rows), down = th.dataset.dir !== 'asc';
    th.dataset.dir = down ? 'asc' : 'desc';
    var key = function (r) {
      var t = r.cells[i].textContent.trim(), n = parseFloat(t.replace(/[$,]/g, ''));
      if (!isNaN(n)) { if (/ ms/.test(t)) n /= 1000; if (/ GiB/.test(t)) n *= 1024; if (/ KiB/.test(t)) n /= 1024; }
      return isNaN(n) ? t : n;
    };
    rows.sort(function (a, b) {
      var x = key(a), y = key(b);
      var c = (typeof x === typeof y) ? (x < y ? -1 : x > y ? 1 : 0) : (typeof x === 'number' ? -1 : 1);
      return down ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
"""
_STYLE = (f"body{{font-family:sans-serif;max-width:{PAGE_PX}px;margin:auto;padding:0 1em;line-height:1.35}}"
          "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px;"
          "vertical-align:top}th{background:#f4f4f4}.scroll{overflow-x:auto;max-width:100%}"
          ".lede{background:#f6f6f6;border-left:4px solid #888;padding:.5em .8em}nav a{margin-right:1.2em}"
          ".figures{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:1.5em 2em;"
          "align-items:start}figure{margin:0;min-width:0}figure.wide{grid-column:1/-1}"
          "figure svg{display:block;max-width:100%;height:auto}figcaption{font-size:13px;color:#333}"
          ".see{font-size:13px}")


def _figure(name_: str, f: Figure) -> str:
    return (f"<figure id='fig-{html.escape(name_)}'{' class=wide' if f.wide else ''}>{f.svg[f.svg.index('<svg'):]}"
            f"<figcaption>{html.escape(f.caption)}</figcaption></figure>")


def html_page(df: pd.DataFrame, figs: tuple[dict[str, Figure], dict[str, Figure]] | None = None) -> str:
    """The verdict, the plots (captioned in words), then every table (sortable: click a heading), the raw
    table last; a table with a plot links up to it."""
    lead, rest = figs if figs is not None else figures(df)
    advice = advise_plots.for_report(df)
    nav = [("verdict", "The verdict")] if advice else []
    nav += [("plots", "Plots"), ("tables", "Tables"), ("all-results", "All results")]
    parts = [f"<h1>scalebench report</h1><p class='lede'>{html.escape(summary(df))}</p>",
             "<nav>" + "".join(f"<a href='#{a}'>{t}</a>" for a, t in nav) + "</nav>"]
    if advice:
        parts.append(f"<h2 id='verdict'>{html.escape(advise_plots.TITLE)}</h2>")
        for v, s in zip(advice.verdicts, advise_plots.sections(advice, 3), strict=True):
            links = ", ".join(f"<a href='#fig-{f}'>{html.escape(lead[f].title.split(': ')[-1])}</a>"
                              for f in advise_plots.drawn(advice, v) if f in lead)
            parts.append(s.html() + (f"<p class='see'>Plotted below: {links}.</p>" if links else ""))
        note = f"{advise_plots.METHOD} {advise_plots.setup_note(advice)}".strip()
        parts.append(f"<p class='see'>{html.escape(note)}</p>")
    parts.append("<h2 id='plots'>Plots</h2>")
    for heading, group in (("Against size, per stage family", lead), ("Per query and per benchmark", rest)):
        if group:
            parts.append(f"<h3>{heading}</h3><div class='figures'>"
                         + "".join(_figure(n, f) for n, f in group.items()) + "</div>")
    parts.append("<div id='tables'></div>")
    for section in sections(df):
        f = rest.get(section.figure or "")
        see = (f"<p class='see'>Plotted above: <a href='#fig-{section.figure}'>{html.escape(f.title)}</a>.</p>"
               if f else "")
        parts.append(section.html() + see)
    parts.append(f"<div id='all-results'>{all_results(df).html()}</div>")
    return (f"<!doctype html><html><head><meta charset='utf-8'><meta name='viewport' "
            f"content='width=device-width'><title>scalebench report</title><style>{_STYLE}</style></head><body>"
            + "\n".join(parts) + f"<script>{_SORT_SCRIPT}</script></body></html>")


def write_report(df: pd.DataFrame, out_dir: Path | str) -> dict[str, Path]:
    """Write report.md, report.html (plots inline) and one SVG per plot; return the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figs = figures(df)
    written = {"markdown": write_text(out / "report.md", markdown(df, figs))}
    for name_, f in {**figs[0], **figs[1]}.items():
        written[name_] = write_text(out / f"{name_}.svg", f.svg)
    written["html"] = write_text(out / "report.html", html_page(df, figs))
    return written
