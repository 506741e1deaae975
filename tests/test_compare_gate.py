"""`scalebench compare` as a regression gate: noise is no change, a real change is, and cells
that cannot be compared say so. Pure Python on synthetic pytest-benchmark JSON: no clusters."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import numpy as np
import pytest
from test_report import _bench

from scalebench.cli import main
from scalebench.report.compare import FASTER, NOT_COMPARABLE, SAME, SLOWER, compare_runs, decide, mann_whitney_p
from scalebench.report.load import load_run

ROUNDS = 10
MEDIAN_S = 0.4
PAIRS = 200


def _rounds(rng: np.random.Generator, sigma: float, factor: float = 1.0, n: int = ROUNDS) -> list[float]:
    """Round times with lognormal noise: sigma 0.3 is a noisy shared machine, 0.1 a quiet one."""
    return [float(t) for t in rng.lognormal(np.log(MEDIAN_S * factor), sigma, n)]


def _cell(i: int, data: list[float], runner: bool = False, io: str | None = None) -> dict:
    """Benchmark `i` as saved: round times in stats['data'] (--benchmark-save-data) or, with
    `runner`, only in extra_info['round_times_s'] as scalebench's runner saves them."""
    bench = _bench("pandas", f"groupby-q{i}", 2, float(np.median(data)), data)
    if runner:
        bench["extra_info"]["round_times_s"] = bench["stats"].pop("data")
    if io is not None:
        bench["extra_info"]["io"] = io
    return bench


def _save(path, benches: list[dict]):
    path.write_text(json.dumps({"machine_info": {}, "commit_info": {}, "benchmarks": benches,
                                "datetime": "2026-11-23T00:00:00", "version": "5.2.3"}))
    return path


def _verdicts(base_path, head_path, threshold: float = 0.1) -> list[str]:
    base, head = load_run(base_path, with_rounds=True), load_run(head_path, with_rounds=True)
    changes, only_base, only_head = compare_runs(base, head, threshold)
    assert not only_base and not only_head
    return [c.verdict for c in changes]


@pytest.mark.parametrize("sigma", [0.1, 0.3])
def test_a_a_on_resampled_rounds_detects_no_change(tmp_path, sigma):
    """A/A: each cell's second run is its first run's rounds resampled; 200 cells, one seed each."""
    rng = np.random.default_rng(17)
    base = [_rounds(rng, sigma) for _ in range(PAIRS)]
    head = [list(rng.choice(b, ROUNDS)) for b in base]
    verdicts = _verdicts(_save(tmp_path / "a.json", [_cell(i, b) for i, b in enumerate(base)]),
                         _save(tmp_path / "b.json", [_cell(i, h, runner=True) for i, h in enumerate(head)]))
    assert len(verdicts) == PAIRS
    false_positives = sum(v != SAME for v in verdicts)
    assert false_positives / PAIRS < 0.05, verdicts


def test_a_a_on_fresh_rounds_rarely_fails_the_gate():
    """A/A with independent draws from the same noise: the gate's false alarm ('slower') rate
    stays below 5 % even where the noise (sigma 0.3) is three times the threshold."""
    rng = np.random.default_rng(5)
    verdicts = [decide(_rounds(rng, 0.3), _rounds(rng, 0.3), 0.1, 0.05, seed)[0] for seed in range(PAIRS)]
    assert sum(v == SLOWER for v in verdicts) / PAIRS < 0.05
    assert sum(v != SAME for v in verdicts) / PAIRS < 0.1


def test_a_run_compared_with_itself_passes(tmp_path, capsys):
    rng = np.random.default_rng(1)
    path = _save(tmp_path / "run.json", [_cell(i, _rounds(rng, 0.3), runner=i % 2 == 0) for i in range(6)])
    assert main(["compare", str(path), str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    cells = [line for line in out if line.startswith("benchmarks/")]
    assert len(cells) == 6 and all(" x1.00 [" in line and line.endswith("]  p=1  no change detectable")
                                   for line in cells), cells
    assert out[-1].startswith("0 slower, 0 faster, 6 no change detectable, 0 not comparable among 6"), out


@pytest.mark.parametrize("factor, verdict, code", [(1.3, SLOWER, 1), (1 / 1.3, FASTER, 0)])
def test_a_30_percent_change_is_detected(tmp_path, capsys, factor, verdict, code):
    """10 rounds with 10 % round-to-round noise (sigma 0.1) in both runs, the head's drawn afresh."""
    rng = np.random.default_rng(23)
    base = [_rounds(rng, 0.1) for _ in range(3)]
    head = [_rounds(rng, 0.1, factor), _rounds(rng, 0.1), _rounds(rng, 0.1)]
    a = _save(tmp_path / "base.json", [_cell(i, b) for i, b in enumerate(base)])
    b = _save(tmp_path / "head.json", [_cell(i, h, runner=True) for i, h in enumerate(head)])
    assert main(["compare", str(a), str(b), "--threshold", "10%"]) == code
    out = capsys.readouterr().out.splitlines()
    line = next(line for line in out if "groupby-q0" in line)
    low, high = (float(x) for x in line.split("[")[2].split("]")[0].split(", "))
    assert line.endswith(f"  {verdict}") and (low > 1 if verdict == SLOWER else high < 1), line
    assert sum(line.endswith("no change detectable") for line in out) == 2, out
    assert out[-1].startswith(f"{int(verdict == SLOWER)} slower, {int(verdict == FASTER)} faster"), out


def test_a_30_percent_slowdown_is_found_almost_always_at_10_rounds():
    """Power: over 200 pairs with sigma 0.1, at least 95 % of 1.3x slowdowns are 'slower'."""
    rng = np.random.default_rng(29)
    found = [decide(_rounds(rng, 0.1), _rounds(rng, 0.1, 1.3), 0.1, 0.05, seed)[0] for seed in range(PAIRS)]
    assert sum(v == SLOWER for v in found) / PAIRS >= 0.95


def test_a_slowdown_smaller_than_the_threshold_is_not_slower():
    """Certain but small (5 % on a quiet machine) is below a 10 % threshold; a 2 % threshold flags it."""
    rng = np.random.default_rng(31)
    base, head = _rounds(rng, 0.01, 1.0, 20), _rounds(rng, 0.01, 1.05, 20)
    verdict, ratio, low, _, p = decide(base, head, 0.1)
    assert verdict == SAME and low > 1 and p < 0.05 and 1.03 < ratio < 1.07
    assert decide(base, head, 0.02)[0] == SLOWER


def test_too_few_rounds_decide_nothing_and_say_so(tmp_path, capsys):
    rng = np.random.default_rng(2)
    four = _rounds(rng, 0.05, 1.0, 4)
    a = _save(tmp_path / "base.json", [_cell(0, four)])
    b = _save(tmp_path / "head.json", [_cell(0, [2 * t for t in four])])  # twice as slow, but 4 rounds
    assert main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "x2.00  no change detectable (too few rounds: 4, need 5)" in out, out
    assert "1 cell(s) could not be decided for want of round times" in out and "--rounds=10" in out


def test_without_round_times_no_change_is_detectable_unless_the_outcome_changed(tmp_path, capsys):
    rng = np.random.default_rng(3)
    base, head = _cell(0, _rounds(rng, 0.1)), _cell(0, _rounds(rng, 0.1, 2.0))
    for bench in (base, head):
        del bench["stats"]["data"]  # saved without --benchmark-save-data, by an older runner
    a, b = _save(tmp_path / "base.json", [base]), _save(tmp_path / "head.json", [head])
    assert main(["compare", str(a), str(b)]) == 0
    assert "no change detectable (no round times saved)" in capsys.readouterr().out
    stopped = copy.deepcopy(json.loads(b.read_text()))
    info = stopped["benchmarks"].pop()["extra_info"]
    stopped["scalebench_unfinished"] = [{**info, "fullname": head["fullname"], "outcome": "out of memory",
                                         "detail": "killed"}]
    b.write_text(json.dumps(stopped))
    assert main(["compare", str(a), str(b)]) == 1
    assert "head out of memory  slower (completed -> out of memory)" in capsys.readouterr().out


def test_cells_measured_in_different_io_modes_are_not_comparable(tmp_path, capsys):
    rng = np.random.default_rng(4)
    base = [_cell(0, _rounds(rng, 0.1)), _cell(1, _rounds(rng, 0.1), io="storage")]
    head = [_cell(0, _rounds(rng, 0.1, 3.0), io="memory"), _cell(1, _rounds(rng, 0.1), io="storage")]
    a, b = _save(tmp_path / "base.json", base), _save(tmp_path / "head.json", head)
    assert _verdicts(a, b) == [NOT_COMPARABLE, SAME]  # io absent is storage; 3x slower, yet not a regression
    assert main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out.splitlines()
    cells = [line for line in out if line.startswith("benchmarks/")]
    assert cells[0].endswith("  not comparable: io storage vs memory") and "groupby-q0" in cells[0], out
    assert out[-1].startswith("0 slower, 0 faster, 1 no change detectable, 1 not comparable"), out


def test_mann_whitney_p_matches_scipy_and_scipy_is_not_imported():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(6)
    for _ in range(20):
        a, b = np.round(rng.lognormal(0, 0.3, 10), 1), np.round(rng.lognormal(0.2, 0.3, 12), 1)  # with ties
        want = stats.mannwhitneyu(a, b, alternative="two-sided", method="asymptotic").pvalue
        assert mann_whitney_p(a, b) == pytest.approx(want, rel=1e-9)
    code = "import sys, scalebench.report.compare, scalebench.cli; print('scipy' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stdout.strip() == "False", r.stderr


@pytest.mark.parametrize("option, value, message", [("--alpha", "0", "--alpha: '0' must be above 0"),
                                                     ("--alpha", "often", "--alpha: 'often' is not a number"),
                                                     ("--threshold", "-5%", "--threshold: '-5%' must not be")])
def test_bad_options_are_named(tmp_path, capsys, option, value, message):
    path = _save(tmp_path / "run.json", [_cell(0, [0.1] * ROUNDS)])
    with pytest.raises(SystemExit) as exit_:
        main(["compare", str(path), str(path), f"{option}={value}"])
    assert exit_.value.code == 2 and message in capsys.readouterr().err
