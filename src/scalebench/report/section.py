"""One section of the report: a heading, a paragraph and one table of display strings. Markdown
and HTML are both rendered from it by pandas (to_markdown through tabulate, to_html), so the two
never disagree."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field

import pandas as pd

from scalebench.sizes import format_bytes

_EMPHASIS = re.compile(r"\*\*(.+?)\*\*")


@dataclass
class Section:
    title: str
    table: pd.DataFrame
    intro: str = ""
    notes: list[str] = field(default_factory=list)
    level: int = 2
    figure: str | None = None
    """Name of the plot (report.render.figures) this table links up to in HTML (the plots come before the tables)."""

    def markdown(self) -> list[str]:
        lines = [f"{'#' * self.level} {self.title}", ""]
        if self.intro:
            lines += [self.intro, ""]
        if not self.table.empty:
            lines += [self.table.to_markdown(index=False, tablefmt="pipe", disable_numparse=True), ""]
        if self.notes:
            lines += [f"- {n}" for n in self.notes] + [""]
        return lines

    def html(self) -> str:
        """The heading, the paragraph and a sortable HTML table (Markdown emphasis becomes <strong>)."""
        parts = [f"<h{self.level}>{html.escape(self.title)}</h{self.level}>"]
        if self.intro:
            parts.append(f"<p>{_inline(self.intro)}</p>")
        if not self.table.empty:
            cells = self.table.map(lambda v: _inline(str(v)))
            table = cells.to_html(index=False, border=0, escape=False, classes="sortable", na_rep="")
            parts.append(f"<div class='scroll'>{table}</div>")  # a wide table scrolls in its own box
        if self.notes:
            parts.append("<ul>" + "".join(f"<li>{_inline(n)}</li>" for n in self.notes) + "</ul>")
        return "\n".join(parts)


ENGINES = ("pandas", "duckdb", "polars", "dask", "ray", "spark")
"""The order engines are listed and drawn in: the single-node engines first, as advise_plots draws them."""
_STYLE = {"pandas": ("C0", "o"), "duckdb": ("C1", "s"), "dask": ("C2", "P"), "ray": ("C3", "D"),
          "spark": ("C4", "^"), "polars": ("C5", "v")}
"""Colour (matplotlib's default cycle) and marker of each engine, fixed per engine so that plots made
before polars joined keep their colours."""


def engine_order(engine: str) -> tuple[int, str]:
    return (ENGINES.index(engine) if engine in ENGINES else len(ENGINES), str(engine))


def colour(engine: str) -> str:
    """One colour per engine in every plot of the report."""
    return _STYLE.get(engine, ("C7", "X"))[0]


def marker(engine: str) -> str:
    """One marker shape per engine too, so the plots read without colour."""
    return _STYLE.get(engine, ("C7", "X"))[1]


def _inline(text: str) -> str:
    return _EMPHASIS.sub(r"<strong>\1</strong>", html.escape(text)).replace("`", "")


def frame(columns: list[str], rows: list[list[str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=columns, dtype=object)


def _missing(v) -> bool:
    return v is None or (pd.api.types.is_scalar(v) and pd.isna(v))


def seconds(v, missing: str = "-") -> str:
    """A time as people read it: milliseconds below a second."""
    return missing if _missing(v) else (f"{v * 1000:.1f} ms" if v < 1 else f"{v:.2f} s")


def number(v, fmt: str = "{:.3g}") -> str:
    return "-" if _missing(v) else fmt.format(v)


def size(v) -> str:
    return "-" if _missing(v) else format_bytes(v)


def count(v, missing: str = "-") -> str:
    return missing if _missing(v) else f"{int(v):,}"


def natural(text) -> str:
    """A sort key that puts h2o_groupby-q2 before h2o_groupby-q10."""
    return re.sub(r"\d+", lambda m: m.group().zfill(9), str(text))
