"""Checked, timed rounds for benchmarks that are not stage cells (the ML benchmarks), recording
what a stage cell records (scalebench.runner.benchmark_query): cold time, whole-tree memory, the
driver's peak heap, spilling and a check string, with every round's result checked.

The timed function holds the work and nothing else: set-up (clearing outputs) runs before each
round and the check after it, both outside pytest-benchmark's timer, and the tree sampler is
paused while they run, so neither the check's time nor its memory is counted.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from scalebench.measure import heap
from scalebench.measure.cost import cost_figures
from scalebench.measure.memory import TreeSampler, release_free_memory


class PausableClock:
    """time.perf_counter minus the time spent inside paused(): the timer of a round that must do
    untimed work half-way (switching clusters when two cannot run side by side)."""

    def __init__(self) -> None:
        self.paused_s = 0.0
        self.pausing = False

    def __call__(self) -> float:
        return time.perf_counter() - self.paused_s

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        started = time.perf_counter()
        self.pausing = True
        try:
            yield
        finally:
            self.pausing = False
            self.paused_s += time.perf_counter() - started


def _spilled(engines: Sequence[Any]) -> int | None:
    """Bytes spilled so far by all `engines` together; None unless every one of them reports it."""
    figures = [e.spilled_bytes() for e in engines]
    return None if not figures or any(f is None for f in figures) else sum(figures)


def benchmark_checked(benchmark, fn: Callable[[], Any], check: Callable[[Any], str], rounds: int, *,
                      engines: Sequence[Any] = (), prepare: Callable[[], None] | None = None,
                      pids: Callable[[], Iterable[int]] | None = None, measure: Any = None,
                      heap_name: str = "benchmark", clock: Callable[[], float] = time.perf_counter,
                      ) -> tuple[Any, dict[str, Any]]:
    """Cold run, then `rounds` rounds timed by pytest-benchmark, then one untimed run under memray;
    with pytest-benchmark disabled (--benchmark-disable, CI) only the cold run. Returns the cold
    run's result and the info it also puts into benchmark.extra_info.

    `prepare` runs before every run (untimed); `check(result)` raises when a result is wrong and
    otherwise returns the check's description: it runs after the cold run and after every timed
    round (pedantic's teardown, untimed) and after the memray run. `engines` name the clusters
    whose processes the tree sampler adds (`pids` overrides) and whose spilling is recorded.
    `measure` is a scalebench.runner.Measure (None: its defaults); `clock` times the cold run and,
    when it is not perf_counter, the rounds too.
    """
    if measure is None:
        from scalebench.runner import Measure

        measure = Measure()
    if pids is None:
        def pids() -> list[int]:
            return [pid for e in engines for pid in e.pids()]
    sampler = TreeSampler(measure.sample_interval, pids) if measure.sample_interval else None
    done: dict[str, Any] = {}
    checked = {"runs": 0, "text": ""}

    def verify(result: Any) -> None:
        checked["text"] = check(result)
        checked["runs"] += 1

    def before() -> None:  # pedantic's setup: untimed
        if prepare is not None:
            prepare()
        done.pop("result", None)
        release_free_memory()  # what the last check fetched is not this round's
        if sampler is not None:
            sampler.start()

    def timed() -> None:  # the only timed code: the work, its result kept for the check
        done["result"] = fn()

    def after() -> None:  # pedantic's teardown after every round: untimed, unsampled
        if sampler is not None:
            sampler.stop()
        if "result" not in done:
            raise AssertionError("a timed round returned no result to check")
        verify(done.pop("result"))

    # --benchmark-disable times and saves nothing: the checked cold run is the whole test (run
    # through pedantic, which then just calls it, so pytest-benchmark sees its fixture used)
    recorded = not getattr(benchmark, "disabled", False)
    spilled_before = _spilled(engines)
    if prepare is not None:
        prepare()
    release_free_memory()
    with sampler or contextlib.nullcontext():
        started = clock()
        cold = fn() if recorded else benchmark.pedantic(fn, rounds=1, iterations=1)
        cold_s = clock() - started
    verify(cold)
    if recorded:
        if clock is not time.perf_counter:
            benchmark._timer = clock  # pytest-benchmark reads it at each round (5.x)
        try:
            benchmark.pedantic(timed, setup=before, teardown=after, rounds=rounds, iterations=1, warmup_rounds=0)
        finally:
            if sampler is not None:
                sampler.stop()  # a round that raised skipped its teardown
        if checked["runs"] != rounds + 1:
            raise AssertionError(f"{checked['runs'] - 1} of {rounds} timed rounds were checked")
    spilled_after = _spilled(engines)
    stats = getattr(getattr(benchmark, "stats", None), "stats", None)
    median = getattr(stats, "median", None) or cold_s
    info: dict[str, Any] = {
        "rounds": rounds if recorded else 0, "cold_s": cold_s, "median_s": median,
        "check": checked["text"], "checked_runs": checked["runs"],
        "round_times_s": list(getattr(stats, "data", None) or []) if recorded else [],
        "spilled_bytes": None if spilled_before is None or spilled_after is None else spilled_after - spilled_before,
    }
    if sampler is not None:
        info.update(sampler.summary())
        # the cold run is window 0; each timed round one more (without rounds, the cold run)
        timed_windows = sampler.windows[1:rounds + 1] if recorded else sampler.windows[:1]
        cores = sum(e.spec.cores for e in engines) or os.cpu_count() or 1
        info.update(cost_figures(timed_windows, cores, measure.prices))
    if recorded and measure.memray and heap.available():
        if prepare is not None:
            prepare()
        info.update(heap.peak_heap(timed, measure.memray_dir, heap_name))
        verify(done.pop("result"))
        info["checked_runs"] = checked["runs"]
    benchmark.extra_info.update(info)
    return cold, info


def median_of(values: Sequence[float]) -> float | None:
    """The median, or None for no values (a figure that was not measured)."""
    return statistics.median(values) if values else None


def clear(*paths: Path | None) -> None:
    """Remove output folders an earlier run wrote (set-up, untimed)."""
    import shutil

    for path in paths:
        if path is not None:
            shutil.rmtree(path, ignore_errors=True)
