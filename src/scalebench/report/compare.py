"""Regression gate between two saved runs: which cells got slower than a threshold."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from scalebench.report.load import COMPLETED, ReportError


@dataclass(frozen=True)
class Change:
    name: str
    base_s: float
    head_s: float
    significant: bool
    """The ranges of the two runs' rounds do not overlap: more than noise."""
    base_outcome: str = COMPLETED
    head_outcome: str = COMPLETED
    """'out of memory' or 'timed out' when that run gave no time: a cell that stopped finishing
    is the worst regression, not a missing benchmark."""

    @property
    def ratio(self) -> float:
        base_done, head_done = self.base_outcome == COMPLETED, self.head_outcome == COMPLETED
        if base_done and head_done:
            return self.head_s / self.base_s
        return 1.0 if base_done == head_done else (float("inf") if base_done else 0.0)

    def shown(self, which: str) -> str:
        outcome = getattr(self, f"{which}_outcome")
        return f"{getattr(self, f'{which}_s'):9.4f} s" if outcome == COMPLETED else outcome


def parse_threshold(text: str) -> float:
    """'10%' or '0.1' -> 0.1"""
    s = str(text).strip()
    try:
        value = float(s[:-1]) / 100 if s.endswith("%") else float(s)
    except ValueError:
        raise ReportError(f"--threshold: {text!r} is not a fraction or percentage such as 10%") from None
    if value < 0:
        raise ReportError(f"--threshold: {text!r} must not be negative")
    return value


def compare_runs(base: pd.DataFrame, head: pd.DataFrame) -> tuple[list[Change], list[str], list[str]]:
    """Changes for benchmarks in both runs (as load_run gives them), plus names only in base and only in head."""
    b, h = base.set_index("name"), head.set_index("name")
    changes = []
    for name in b.index.intersection(h.index):
        rb, rh = b.loc[name], h.loc[name]
        if COMPLETED in (rb["outcome"], rh["outcome"]) and rb["outcome"] != rh["outcome"]:
            significant = True
        else:
            significant = bool(rh["min_s"] > rb["max_s"] or rh["max_s"] < rb["min_s"])
        changes.append(Change(name, float(rb["median_s"]), float(rh["median_s"]), significant,
                              rb["outcome"], rh["outcome"]))
    return changes, sorted(set(b.index) - set(h.index)), sorted(set(h.index) - set(b.index))


def regressions(changes: list[Change], threshold: float) -> list[Change]:
    return [c for c in changes if c.ratio > 1 + threshold]
