"""The side-by-side report: report.md (Markdown tables) and report.html (sortable HTML tables with
their plots beside them), both rendered from the same sections (report.sections), and one SVG per plot."""

from __future__ import annotations

import html
import io
from pathlib import Path

import pandas as pd

from scalebench.atomic import write_text
from scalebench.report import advise_plots, families
from scalebench.report.sections import INTRO, all_results, sections
from scalebench.report.tables import completed, partition_table, scaling, skew_table, stage_cells


def markdown(df: pd.DataFrame) -> str:
    parts = ["# scalebench report", "", *advise_plots.report_markdown(df), INTRO, ""]
    for section in sections(df):
        parts += section.markdown()
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
    advice = advise_plots.for_report(whole)
    first = advise_plots.plots(advice) if advice else {}  # the verdict's plots lead the report
    return {**first, **figs, **families.plots(whole, plt, _svg)}


def _svg(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.tight_layout()
    fig.savefig(buf, format="svg")
    plt.close(fig)
    return buf.getvalue()


_SORT_SCRIPT = """
document.querySelectorAll('table.sortable th').forEach(function (th) {
  th.style.cursor = 'pointer';
  th.title = 'sort';
  th.addEventListener('click', function () {
    var table = th.closest('table'), body = table.tBodies[0], i = th.cellIndex;
    var rows = Array.from(body.rows), down = th.dataset.dir !== 'asc';
    th.dataset.dir = down ? 'asc' : 'desc';
    var key = function (r) {
      var t = r.cells[i].textContent.trim(), n = parseFloat(t.replace(/,/g, ''));
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
_STYLE = ("body{font-family:sans-serif;max-width:1400px;margin:auto;padding:0 1em}"
          "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px}"
          "th{background:#f4f4f4}.pair{display:flex;gap:1.5em;align-items:flex-start;flex-wrap:wrap}"
          ".pair>div{overflow-x:auto}figure{margin:0}figure svg{max-width:640px;height:auto}")


def html_page(df: pd.DataFrame, figs: dict[str, str]) -> str:
    """Every section as a real HTML table (click a heading to sort), its plot beside it."""
    advice = advise_plots.for_report(df)
    lead = advise_plots.html_block(advice, figs, advise_plots.machine_text(df)) if advice else ""
    used = {name for v in advice.verdicts for name in advise_plots.drawn(advice, v)} if advice else set()
    blocks = []
    for section in [*sections(df), all_results(df)]:
        svg = figs.get(section.figure) if section.figure else None
        if svg is None:
            blocks.append(section.html())
            continue
        used.add(section.figure)
        blocks.append(f"<div class='pair'><div>{section.html()}</div><figure>{svg[svg.index('<svg'):]}"
                      f"<figcaption>{html.escape(section.figure)}</figcaption></figure></div>")
    rest = "".join(f"<figure>{svg[svg.index('<svg'):]}<figcaption>{html.escape(name)}</figcaption></figure>"
                   for name, svg in figs.items() if name not in used)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>scalebench report</title>"
            f"<style>{_STYLE}</style></head><body><h1>scalebench report</h1>{lead}<p>{html.escape(INTRO)}</p>"
            + "\n".join(blocks) + (f"<h2>More plots</h2>{rest}" if rest else "")
            + f"<script>{_SORT_SCRIPT}</script></body></html>")


def write_report(df: pd.DataFrame, out_dir: Path | str) -> dict[str, Path]:
    """Write report.md, report.html (plots inline) and one SVG per plot; return the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figs = plots(df)
    written = {"markdown": write_text(out / "report.md", markdown(df))}
    for name, svg in figs.items():
        written[name] = write_text(out / f"{name}.svg", svg)
    written["html"] = write_text(out / "report.html", html_page(df, figs))
    return written
