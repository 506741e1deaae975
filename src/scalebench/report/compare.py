"""Regression gate between two saved runs: which cells changed by more than noise and the threshold.

A cell's verdict comes from the per-round times of both runs, as asv decides (asv.statistics):

- the ratio of medians head/base, with a 95 % bootstrap confidence interval (each run's rounds
  resampled with replacement, RESAMPLES times, seeded per cell: the same files give the same verdict);
- a two-sided Mann-Whitney U test on the rounds (normal approximation with tie correction and a
  continuity correction, pure numpy: no scipy needed);
- the threshold, a factor: a change smaller than it is not worth reporting however certain.

"slower" needs all three: the interval's lower bound above 1, the ratio above 1 + threshold and
p < alpha. "faster" is the mirror image: upper bound below 1, ratio below 1 / (1 + threshold) and
p < alpha. Anything else is "no change detectable", with the reason when the data could not decide
(fewer than MIN_ROUNDS rounds in a run, or no round times saved). A cell that stopped finishing
(out of memory, timed out) is "slower", the worst regression; one that finishes again is "faster".
Cells measured in different input modes (extra_info['io']) are "not comparable" and never pass.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from scalebench.report.load import COMPLETED, ReportError

SLOWER, FASTER, SAME, NOT_COMPARABLE = "slower", "faster", "no change detectable", "not comparable"
MIN_ROUNDS = 5
"""Below this many rounds in either run, neither the interval nor the U test can separate a change from noise."""
RESAMPLES = 2000
CONFIDENCE = 0.95
TOO_FEW, NO_TIMES = "too few rounds", "no round times saved"
"""The reasons a completed cell could not be decided on its times."""
DEFAULT_IO = "storage"
"""A run saved before --io existed read its input inside the timing: storage."""


@dataclass(frozen=True)
class Change:
    name: str
    base_s: float
    head_s: float
    verdict: str
    """SLOWER, FASTER, SAME or NOT_COMPARABLE."""
    reason: str | None = None
    """Why there was no decision on the times: 'too few rounds: 3', 'io storage vs memory', ..."""
    low: float | None = None
    high: float | None = None
    """The 95 % bootstrap interval of the ratio; None when there were no round times to resample."""
    p: float | None = None
    """Mann-Whitney U two-sided p-value of the rounds; None without round times."""
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

    @property
    def text(self) -> str:
        """The verdict as printed: 'slower', 'no change detectable (too few rounds: 3, need 5)', ..."""
        if self.verdict == NOT_COMPARABLE:
            return f"{NOT_COMPARABLE}: {self.reason}"
        return f"{self.verdict} ({self.reason})" if self.reason else self.verdict

    def shown(self, which: str) -> str:
        outcome = getattr(self, f"{which}_outcome")
        return f"{getattr(self, f'{which}_s'):.3g} s" if outcome == COMPLETED else outcome

    def line(self, width: int = 0) -> str:
        """name  base 0.412 s  head 0.538 s  x1.31 [1.22, 1.40]  p=0.0002  slower"""
        ratio = ""
        if self.base_outcome == COMPLETED and self.head_outcome == COMPLETED:
            ratio = f"x{self.ratio:.2f}"
            if self.low is not None and self.high is not None:
                ratio += f" [{self.low:.2f}, {self.high:.2f}]"
            if self.p is not None:
                ratio += f"  p={self.p:.2g}"
            ratio += "  "
        return f"{self.name:{width}s}  base {self.shown('base')}  head {self.shown('head')}  {ratio}{self.text}"


def parse_threshold(text: str) -> float:
    """'10%' or '0.1' -> 0.1"""
    s = str(text).strip()
    try:
        value = float(s[:-1]) / 100 if s.endswith("%") else float(s)
    except ValueError:
        raise ReportError(f"--threshold: {text!r} is not a fraction or percentage such as 10%") from None
    if not value >= 0:
        raise ReportError(f"--threshold: {text!r} must not be negative")
    return value


def parse_alpha(text: str) -> float:
    """'0.05' -> 0.05: the significance level of the Mann-Whitney U test."""
    try:
        value = float(str(text).strip())
    except ValueError:
        raise ReportError(f"--alpha: {text!r} is not a number such as 0.05") from None
    if not 0 < value <= 1:
        raise ReportError(f"--alpha: {text!r} must be above 0 and at most 1")
    return value


def mann_whitney_p(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided p-value of the Mann-Whitney U test: normal approximation, tie-corrected variance,
    continuity correction (scipy.stats.mannwhitneyu(method='asymptotic') gives the same)."""
    n1, n2 = len(a), len(b)
    both = np.concatenate([a, b])
    values, inverse, counts = np.unique(both, return_inverse=True, return_counts=True)
    first = np.cumsum(counts) - counts  # 0-based position of each distinct value in sorted order
    ranks = (first + (counts + 1) / 2)[inverse]  # ties get their average rank
    u = ranks[:n1].sum() - n1 * (n1 + 1) / 2
    n = n1 + n2
    var = n1 * n2 / 12 * ((n + 1) - (counts**3 - counts).sum() / (n * (n - 1)))
    if var <= 0:  # every round of both runs the same time
        return 1.0
    z = (abs(u - n1 * n2 / 2) - 0.5) / math.sqrt(var)
    return min(1.0, math.erfc(max(z, 0.0) / math.sqrt(2)))


def ratio_interval(base: np.ndarray, head: np.ndarray, seed: int | list[int] = 0,
                   resamples: int = RESAMPLES) -> tuple[float, float]:
    """The CONFIDENCE percentile bootstrap interval of median(head) / median(base), each run
    resampled on its own (the runs are independent samples of their rounds)."""
    rng = np.random.default_rng(seed)
    b = np.median(base[rng.integers(0, len(base), (resamples, len(base)))], axis=1)
    h = np.median(head[rng.integers(0, len(head), (resamples, len(head)))], axis=1)
    tail = (1 - CONFIDENCE) / 2
    low, high = np.quantile(h / b, [tail, 1 - tail])
    return float(low), float(high)


def decide(base: list[float], head: list[float], threshold: float, alpha: float = 0.05,
           seed: int | list[int] = 0) -> tuple[str, float, float, float, float]:
    """(verdict, ratio of medians, interval low, interval high, p) from the rounds of two runs,
    each with at least MIN_ROUNDS rounds."""
    b, h = np.asarray(base, dtype=float), np.asarray(head, dtype=float)
    ratio = float(np.median(h) / np.median(b))
    low, high = ratio_interval(b, h, seed)
    p = mann_whitney_p(b, h)
    if low > 1 and ratio > 1 + threshold and p < alpha:
        return SLOWER, ratio, low, high, p
    if high < 1 and ratio < 1 / (1 + threshold) and p < alpha:
        return FASTER, ratio, low, high, p
    return SAME, ratio, low, high, p


def _io(row: pd.Series) -> str:
    info = row["info"] if isinstance(row["info"], dict) else {}
    return info.get("io") or DEFAULT_IO


def _rounds(row: pd.Series) -> list[float] | None:
    times = row.get("round_times_s")
    return [t for t in times if math.isfinite(t) and t > 0] if isinstance(times, list) else None


def _count(row: pd.Series, times: list[float] | None) -> int:
    if times is not None:
        return len(times)
    rounds = pd.to_numeric(row["rounds"], errors="coerce")
    return 0 if pd.isna(rounds) else int(rounds)


def _change(name: str, rb: pd.Series, rh: pd.Series, threshold: float, alpha: float, seed: int) -> Change:
    ob, oh = rb["outcome"], rh["outcome"]
    times = {"base_s": float(rb["median_s"]) if ob == COMPLETED else math.nan,
             "head_s": float(rh["median_s"]) if oh == COMPLETED else math.nan,
             "base_outcome": ob, "head_outcome": oh}
    io_b, io_h = _io(rb), _io(rh)
    if io_b != io_h:
        return Change(name, verdict=NOT_COMPARABLE, reason=f"io {io_b} vs {io_h}", **times)
    if ob != oh and COMPLETED in (ob, oh):
        return Change(name, verdict=SLOWER if ob == COMPLETED else FASTER, reason=f"{ob} -> {oh}", **times)
    if ob != COMPLETED:
        why = f"{ob} in both" if ob == oh else f"{ob} -> {oh}"
        return Change(name, verdict=SAME, reason=why, **times)
    tb, th = _rounds(rb), _rounds(rh)
    fewest = min(_count(rb, tb), _count(rh, th))
    if fewest < MIN_ROUNDS:
        return Change(name, verdict=SAME, reason=f"{TOO_FEW}: {fewest}, need {MIN_ROUNDS}", **times)
    if tb is None or th is None:
        return Change(name, verdict=SAME, reason=NO_TIMES, **times)
    verdict, ratio, low, high, p = decide(tb, th, threshold, alpha, [seed, zlib.crc32(name.encode())])
    times.update(base_s=float(np.median(tb)), head_s=float(np.median(th)))
    return Change(name, verdict=verdict, low=low, high=high, p=p, **times)


def compare_runs(base: pd.DataFrame, head: pd.DataFrame, threshold: float = 0.1, alpha: float = 0.05,
                 seed: int = 0) -> tuple[list[Change], list[str], list[str]]:
    """Changes for benchmarks in both runs (as load_run(..., with_rounds=True) gives them), plus names
    only in base and only in head. Without a 'round_times_s' column no cell has round times."""
    b, h = base.set_index("name"), head.set_index("name")
    changes = [_change(name, b.loc[name], h.loc[name], threshold, alpha, seed)
               for name in b.index.intersection(h.index)]
    return changes, sorted(set(b.index) - set(h.index)), sorted(set(h.index) - set(b.index))


ORDER = {SLOWER: 0, NOT_COMPARABLE: 1, FASTER: 2, SAME: 3}


def in_order(changes: list[Change]) -> list[Change]:
    """Regressions first (largest first), then cells that could not be compared, then the rest."""
    return sorted(changes, key=lambda c: (ORDER[c.verdict], -c.ratio if not math.isnan(c.ratio) else 0.0))


def regressions(changes: list[Change]) -> list[Change]:
    return [c for c in changes if c.verdict == SLOWER]


def summary(changes: list[Change], threshold: float, alpha: float) -> str:
    """The verdict's last line(s): counts per verdict, and how to decide the cells that lacked rounds."""
    count = {v: sum(c.verdict == v for c in changes) for v in ORDER}
    undecided = sum(c.verdict == SAME and (c.reason or "").startswith((TOO_FEW, NO_TIMES)) for c in changes)
    hint = (f"{undecided} cell(s) could not be decided for want of round times: save at least {MIN_ROUNDS} rounds "
            "per cell, 10 recommended (pytest --rounds=10)\n") if undecided else ""
    return (f"{hint}{count[SLOWER]} slower, {count[FASTER]} faster, {count[SAME]} no change detectable, "
            f"{count[NOT_COMPARABLE]} not comparable among {len(changes)} compared benchmark(s) "
            f"(threshold {threshold * 100:g}%, {CONFIDENCE:.0%} interval, alpha {alpha:g})")
