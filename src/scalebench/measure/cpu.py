"""CPU seconds of the whole process tree over a window (driver, workers, raylets, JVMs).

Wall time hides what a cluster burns: two workers busy for 10 s cost 20 core-seconds
("Scalability! But at what COST?", McSherry et al., HotOS 2015). The memory sampler already
walks every process of the cluster; this meter reads their user + system CPU time at the
window's start, while it runs (at the sampler's process-list refreshes) and at its end.

A process is known by (pid, start time), so a reused pid is a new process. One that existed at
the window's start counts what it used after it; one that started inside the window counts all
it used. A process that exits between two readings loses what it used since the last one (at
most the refresh interval); children's times reaped by a parent (children_user) are not added,
since the children themselves were read while alive.
"""

from __future__ import annotations

import psutil

Key = tuple[int, float]


class CpuMeter:
    """User + system CPU seconds of a set of processes, per window."""

    def __init__(self) -> None:
        self._last: dict[Key, float] = {}
        self._base: dict[Key, float] = {}

    def read(self, procs: list[psutil.Process]) -> set[Key]:
        """Remember each process's CPU time so far; the processes read (those still alive)."""
        seen = set()
        for p in procs:
            try:
                t = p.cpu_times()
                key = (p.pid, p.create_time())
            except psutil.Error:
                continue
            self._last[key] = t.user + t.system
            seen.add(key)
        return seen

    def begin(self, procs: list[psutil.Process]) -> None:
        """Start a window: what each process has used so far is not the window's."""
        self.read(procs)
        self._base = dict(self._last)

    def end(self, procs: list[psutil.Process]) -> float:
        """End the window: CPU seconds the processes used since begin()."""
        alive = self.read(procs)
        used = sum(cpu - self._base.get(key, 0.0) for key, cpu in self._last.items())
        # processes gone (or out of the tree) by now add nothing to later windows
        self._last = {key: self._last[key] for key in alive}
        return max(0.0, used)


def burn_cpu(seconds: float) -> float:
    """Spin one thread for `seconds` of its own CPU time (not wall time, so a busy machine does not
    shorten the burn): a known amount of work for the tests of the meter. Returns the CPU used."""
    import time

    start = time.thread_time()
    while time.thread_time() - start < seconds:
        sum(range(10_000))
    return time.thread_time() - start
