"""Worker processes for the generator: a pool that is safe to start from any caller (threads
alive, a script without a main guard) and that dies with its parent or on Ctrl-C."""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
import os
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from scalebench.measure.procs import die_with_parent

T = TypeVar("T")

FORK_SAFE_THREADS = ("scalebench-memory",)  # measure.memory.TreeSampler.THREAD_NAME
"""Our own threads that never hold a lock a forked child could need (the memory sampler)."""


def _only_fork_safe_threads() -> bool:
    return all(t is threading.main_thread() or t.name in FORK_SAFE_THREADS for t in threading.enumerate())


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


@contextlib.contextmanager
def _main_module_hidden() -> Iterator[None]:
    """While workers start, hide the caller's __main__ from multiprocessing.

    forkserver and spawn children re-import the parent's main script unless told otherwise;
    a script without an `if __name__ == "__main__":` guard would then run again in every
    worker (and deadlock on our own lock). Our workers need nothing from __main__."""
    main = sys.modules.get("__main__")
    saved = {k: main.__dict__[k] for k in ("__file__", "__spec__") if main is not None and k in main.__dict__}
    try:
        for k in saved:
            if k == "__spec__":
                main.__spec__ = None
            else:
                del main.__dict__[k]
        yield
    finally:
        if main is not None:
            main.__dict__.update(saved)


def run_in_order(task: Callable[..., T], calls: list[tuple[Any, ...]], workers: int) -> Iterator[T]:
    """`task(*args)` for each args of `calls` in worker processes: results in order, as soon as
    each is ready. One worker runs in-process. `task` must be importable at module level."""
    if workers == 1:
        for args in calls:
            yield task(*args)
        return
    # fork is instant; with other Python threads alive (a cluster client, say) a fork
    # could copy a held lock, so then fork from a clean server process instead
    ctx = multiprocessing.get_context("fork" if _only_fork_safe_threads() else "forkserver")
    if ctx.get_start_method() == "forkserver":
        ctx.set_forkserver_preload([task.__module__])  # children start warm
    with _main_module_hidden(), cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx,
                                                       initializer=die_with_parent,
                                                       initargs=(os.getpid(),)) as pool:
        futures = [pool.submit(task, *args) for args in calls]
        try:
            for fut in futures:
                yield fut.result()
        except BaseException:
            # Ctrl-C or a failed part: stop the workers now. Left alone they finish their parts
            # first, and a worker whose parent died waited on its task queue forever.
            for proc in list(getattr(pool, "_processes", {}).values()):
                proc.terminate()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
