"""Regression gate between two saved runs: which cells got slower than a threshold."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from scalebench.report.load import ReportError, load_run


@dataclass(frozen=True)
class Change:
    name: str
    base_s: float
    head_s: float
    significant: bool
    """The ranges of the two runs' rounds do not overlap: more than noise."""

    @property
    def ratio(self) -> float:
        return self.head_s / self.base_s


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


def compare_runs(base: Path | str, head: Path | str) -> tuple[list[Change], list[str], list[str]]:
    """Changes for benchmarks in both runs, plus names only in base and only in head."""
    b, h = load_run(base).set_index("name"), load_run(head).set_index("name")
    changes = []
    for name in b.index.intersection(h.index):
        rb, rh = b.loc[name], h.loc[name]
        significant = bool(rh["min_s"] > rb["max_s"] or rh["max_s"] < rb["min_s"])
        changes.append(Change(name, float(rb["median_s"]), float(rh["median_s"]), significant))
    return changes, sorted(set(b.index) - set(h.index)), sorted(set(h.index) - set(b.index))


def regressions(changes: list[Change], threshold: float) -> list[Change]:
    return [c for c in changes if c.ratio > 1 + threshold]
