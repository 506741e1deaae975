"""The report's TPC-H section: per engine and scale factor, each question's median time, the total
and the geometric mean (TPC-H's own summary is a geometric mean), with the questions an engine did
not finish or could not run marked, so a total over fewer questions is never read as comparable."""

from __future__ import annotations

import pandas as pd

from scalebench.report.advise_words import geomean
from scalebench.report.load import COMPLETED
from scalebench.report.section import Section, engine_order, frame, natural, seconds
from scalebench.tpch import QUESTIONS

NOT_RUN = "not run"


def scale_factor(info) -> float | None:
    return info.get("scale_factor") if isinstance(info, dict) else None


def tpch_cells(everything: pd.DataFrame) -> pd.DataFrame:
    """The tpch stage's cells (completed or not) with their scale factor and question."""
    cells = everything[everything["stage"] == "tpch"].copy()
    if cells.empty:
        return cells
    cells["sf"] = cells["info"].map(scale_factor)
    cells["question"] = cells["query"].astype(str).str.removeprefix("tpch-")
    return cells


def _geomean(times: list[float]) -> float:
    return geomean(times) if times else float("nan")


def sections(everything: pd.DataFrame) -> list[Section]:
    cells = tpch_cells(everything)
    if cells.empty:
        return []
    out = []
    for (run, fmt, sf, workers), block in cells.groupby(["run", "format", "sf", "workers"], dropna=False, sort=True):
        engines = sorted(block["engine"].dropna().unique(), key=engine_order)
        questions = sorted(set(QUESTIONS) | set(block["question"]), key=natural)
        body, done = [], {e: [] for e in engines}
        for q in questions:
            row = [q]
            for e in engines:
                hit = block[(block["engine"] == e) & (block["question"] == q)]
                if hit.empty:
                    row.append(NOT_RUN)
                elif hit["outcome"].iloc[0] != COMPLETED:
                    row.append(f"**{hit['outcome'].iloc[0]}**")
                else:
                    done[e].append(float(hit["median_s"].iloc[0]))
                    row.append(seconds(done[e][-1]))
            body.append(row)
        body.append(["total"] + [f"{seconds(sum(done[e]))} ({len(done[e])} q)" for e in engines])
        body.append(["geometric mean"] + [seconds(_geomean(done[e])) for e in engines])
        label = f"SF{sf:g}" if pd.notna(sf) else "unknown SF"
        out.append(Section(f"TPC-H, {label}, {fmt}, {workers} workers ({run})",
                           frame(["question", *engines], body),
                           "Median time of each of TPC-H's 22 queries (validation parameters); every answer checked "
                           "(at SF1 against the official answer set, else against the DuckDB reference). "
                           f"{NOT_RUN}: the engine has no form of the query or it was not selected; in bold: did not "
                           "finish. The total and geometric mean cover the questions counted in brackets.",
                           level=3))
    return [Section("TPC-H", frame([], []), "TPC-H's 22 queries per engine and scale factor."), *out]
