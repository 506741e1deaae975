"""Whole-tree memory sampler: a background thread that sums the memory of this
process and every descendant (spawned workers, raylets, JVMs) plus any extra
cluster pids an engine names. memray sees only its own process; this sees all.

Both RSS and PSS (proportional set size) are recorded: PSS counts a page shared
by several processes (Ray's object store, forked copy-on-write pages) once, so
it is the figure to add up across a tree; RSS is what `top` shows.

Cost: RSS is one read of /proc/<pid>/statm (~10 us a process); PSS makes the kernel
walk every mapping (smaps_rollup, ~0.4 ms a process, 4 ms for a Ray cluster). So RSS
is read every `interval`, the process list is refreshed every `slow_interval`, and PSS
is read every `slow_interval` and whenever the RSS total reaches a new high, where a
PSS peak can hide (PSS <= RSS, and shared pages grow both). That keeps the sampler
near 1 % of one core while the RSS peak stays exact and the PSS peak is taken at
every RSS high.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import psutil

from scalebench.measure.cpu import CpuMeter

GIB = 1 << 30


def release_free_memory() -> None:
    """Collect garbage and hand the driver's free heap back to the kernel (glibc malloc_trim),
    so memory a previous benchmark freed is not counted in the next one's starting point."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


def tree_processes(extra_pids: Iterable[int] = ()) -> list[psutil.Process]:
    me = psutil.Process(os.getpid())
    procs = {me.pid: me}
    try:
        for p in me.children(recursive=True):
            procs[p.pid] = p
    except psutil.Error:
        pass
    for pid in extra_pids:
        try:
            procs.setdefault(pid, psutil.Process(pid))
        except psutil.Error:
            pass
    return list(procs.values())


@dataclass(frozen=True)
class Window:
    """One start()..stop() of the sampler (a cold run, or one timed round)."""

    wall_s: float
    cpu_s: float
    """User + system CPU seconds of the whole tree, less the sampler's own thread."""
    gib_s: float
    """Memory-time product: the tree's PSS integrated over the window, in GiB-seconds."""


@dataclass(frozen=True)
class Sample:
    t: float
    rss: int
    pss: int
    processes: int


def tree_memory(extra_pids: Iterable[int] = ()) -> tuple[int, int, int]:
    """(RSS, PSS, process count) of this process tree right now; PSS falls back to RSS."""
    return _rss_pss(tree_processes(extra_pids))


def _rss_pss(procs: list[psutil.Process]) -> tuple[int, int, int]:
    rss = pss = n = 0
    for p in procs:
        try:
            info = p.memory_full_info()
        except psutil.AccessDenied:
            try:
                info = p.memory_info()
            except psutil.Error:
                continue
        except psutil.Error:
            continue
        rss += info.rss
        pss += getattr(info, "pss", info.rss)
        n += 1
    return rss, pss, n


def _rss(procs: list[psutil.Process]) -> tuple[int, int]:
    total = n = 0
    for p in procs:
        try:
            total += p.memory_info().rss
            n += 1
        except psutil.Error:
            continue
    return total, n


class TreeSampler:
    """Samples tree memory every `interval` seconds between start() and stop()."""

    THREAD_NAME = "scalebench-memory"
    NEW_HIGH = 1.02
    """An RSS total this much above the last PSS reading's counts as a new high (read PSS now)."""
    PSS_CPU_SHARE = 0.01
    """PSS reads may use this share of one core; more often, they would slow the stage measured."""

    def __init__(self, interval: float = 0.05, extra_pids: Callable[[], Iterable[int]] | None = None,
                 slow_interval: float = 0.25):
        self.interval = interval
        self.slow_interval = max(interval, slow_interval)
        self.extra_pids = extra_pids or (lambda: ())
        self.samples: list[Sample] = []
        self.pss_reads = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = time.perf_counter()
        self._procs: list[psutil.Process] = []
        self._procs_due = self._pss_due = self._pss_allowed = 0.0
        self._pss = 0
        self._rss_at_pss = 0
        self.cpu_s = 0.0
        """CPU time the sampling thread used: its cost, free of the noise in stage timings."""
        self.cpu = CpuMeter()
        self.windows: list[Window] = []
        """Each start()..stop(): wall, tree CPU and GiB-seconds."""
        self._window: tuple[float, int, float] = (0.0, 0, 0.0)  # start time, first sample, sampler CPU

    def _sample(self, full: bool = False) -> None:
        now = time.perf_counter()
        if full or now >= self._procs_due:
            self._procs = tree_processes(self.extra_pids())
            self._procs_due = now + self.slow_interval
            if not full:  # start() and stop() read CPU themselves
                self.cpu.read(self._procs)
        rss, n = _rss(self._procs)
        wanted = now >= self._pss_due or rss > self._rss_at_pss * self.NEW_HIGH
        if full or (wanted and now >= self._pss_allowed):
            cpu = time.thread_time()
            rss, self._pss, n = _rss_pss(self._procs)
            # a PSS read walks every mapping (18 ms for an idle Ray cluster, more with a full object
            # store): space the reads so that they use at most PSS_CPU_SHARE of one core
            self._pss_allowed = now + (time.thread_time() - cpu) / self.PSS_CPU_SHARE
            self._rss_at_pss = rss
            self._pss_due = now + self.slow_interval
            self.pss_reads += 1
        # between PSS readings, add RSS growth to the last PSS reading: an upper bound, since a
        # page shared with one more process adds to RSS but not PSS; never above RSS
        pss = min(rss, self._pss + max(0, rss - self._rss_at_pss))
        self.samples.append(Sample(now - self._t0, rss, pss, n))

    def _loop(self) -> None:
        started = time.thread_time()
        while not self._stop.wait(self.interval):
            self._sample()
        self.cpu_s += time.thread_time() - started

    def start(self) -> TreeSampler:
        """Start (or resume: samples of earlier windows are kept, so peak covers them all)."""
        if not self.samples:
            self._t0 = time.perf_counter()
        self._stop.clear()
        self._sample(full=True)
        self.cpu.begin(self._procs)
        self._window = (time.perf_counter(), len(self.samples) - 1, self.cpu_s)
        self._thread = threading.Thread(target=self._loop, name=self.THREAD_NAME, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            self._sample(full=True)
            started, first, sampler_cpu = self._window
            cpu = self.cpu.end(self._procs) - (self.cpu_s - sampler_cpu)
            self.windows.append(Window(time.perf_counter() - started, max(0.0, cpu),
                                       _gib_s(self.samples[first:])))

    def __enter__(self) -> TreeSampler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def peak_rss(self) -> int:
        return max((s.rss for s in self.samples), default=0)

    @property
    def peak_pss(self) -> int:
        return max((s.pss for s in self.samples), default=0)

    def summary(self) -> dict[str, object]:
        n = len(self.samples) or 1
        return {
            "peak_tree_rss_bytes": self.peak_rss, "peak_tree_pss_bytes": self.peak_pss,
            "mean_tree_pss_bytes": sum(s.pss for s in self.samples) / n,
            "tree_memory_before_bytes": self.samples[0].pss if self.samples else None,
            # what the benchmark added on top of what the session already held (the driver's
            # imports and caches, an idle cluster): the figure to compare across engines
            "peak_tree_added_bytes": self.peak_pss - self.samples[0].pss if self.samples else None,
            "tree_memory_after_bytes": self.samples[-1].pss if self.samples else None,
            "tree_processes_max": max((s.processes for s in self.samples), default=0),
            "tree_samples": len(self.samples), "tree_interval_s": self.interval,
            "tree_pss_reads": self.pss_reads, "tree_pss_interval_s": self.slow_interval,
            "tree_sampler_cpu_s": self.cpu_s,
            "tree_memory_note": "whole process tree (driver, workers, JVM, object store); PSS counts shared pages once",
        }

    def timeline(self) -> list[tuple[float, int]]:
        return [(round(s.t, 3), s.pss) for s in self.samples]


def _gib_s(samples: list[Sample]) -> float:
    """PSS integrated over time (trapezoids between samples), in GiB-seconds."""
    return sum((b.t - a.t) * (a.pss + b.pss) / 2 for a, b in zip(samples, samples[1:], strict=False)) / GIB
