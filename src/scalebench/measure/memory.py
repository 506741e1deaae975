"""Whole-tree memory sampler: a background thread that sums the memory of this
process and every descendant (spawned workers, raylets, JVMs) plus any extra
cluster pids an engine names. memray sees only its own process; this sees all.

PSS (proportional set size) is used where the kernel reports it, so pages shared
between processes (Ray's object store, forked copy-on-write pages) count once.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable

import psutil


def _tree(extra_pids: Iterable[int]) -> list[psutil.Process]:
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


def tree_memory(extra_pids: Iterable[int] = (), metric: str = "pss") -> int:
    """Bytes of memory held by this process tree right now (PSS, or RSS if PSS is unavailable)."""
    total = 0
    for p in _tree(extra_pids):
        try:
            if metric == "pss":
                info = p.memory_full_info()
                total += getattr(info, "pss", info.rss)
            else:
                total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


class TreeSampler:
    """Samples tree memory every `interval` seconds between start() and stop().

    Use as a context manager; `peak`, `mean` and `timeline` ((seconds, bytes) pairs) after.
    """

    def __init__(self, interval: float = 0.05, extra_pids: Callable[[], Iterable[int]] | None = None,
                 metric: str = "pss"):
        self.interval, self.metric = interval, metric
        self.extra_pids = extra_pids or (lambda: ())
        self.timeline: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        self.timeline.append((time.perf_counter() - self._t0, tree_memory(self.extra_pids(), self.metric)))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def start(self) -> TreeSampler:
        self._t0 = time.perf_counter()
        self._sample()
        self._thread = threading.Thread(target=self._loop, name="scalebench-memory", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            self._sample()

    def __enter__(self) -> TreeSampler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def peak(self) -> int:
        return max((b for _, b in self.timeline), default=0)

    @property
    def mean(self) -> float:
        return sum(b for _, b in self.timeline) / len(self.timeline) if self.timeline else 0.0

    def summary(self, prefix: str = "tree") -> dict[str, float | int | str]:
        return {f"peak_{prefix}_{self.metric}_bytes": self.peak, f"mean_{prefix}_{self.metric}_bytes": self.mean,
                f"{prefix}_samples": len(self.timeline), f"{prefix}_interval_s": self.interval}
