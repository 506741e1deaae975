"""The one workaround of the Dask engine that reaches into private internals, kept apart so it is
easy to re-check against each new Python."""

from __future__ import annotations

import contextlib


def stop_resource_tracker(ours: set[int]) -> None:
    """Spawning the workers started multiprocessing's resource tracker as our child; it
    ignores SIGTERM, so ask it to exit the way multiprocessing itself does (it restarts
    on demand).

    Private: multiprocessing.resource_tracker has no public way to stop its tracker (module
    functions ensure_running, register, unregister, getfd only), so this calls
    `_resource_tracker._stop()`, as multiprocessing's own shutdown does; needed with CPython
    3.11.7 (dask and distributed 2026.8.0). Only a tracker whose pid is in `ours` (processes
    this engine started) is stopped."""
    from multiprocessing import resource_tracker

    tracker = resource_tracker._resource_tracker
    if getattr(tracker, "_pid", None) in ours:
        with contextlib.suppress(Exception):
            tracker._stop()
