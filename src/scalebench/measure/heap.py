"""The driver's peak heap through memray (it sees this process and what it forks, not
spawned workers, raylets or JVMs: that is what the tree sampler is for)."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path


def available() -> bool:
    try:
        import memray  # noqa: F401
    except ImportError:
        return False
    return True


@contextlib.contextmanager
def _capture_file(keep_dir: Path | None, name: str) -> Iterator[Path]:
    if keep_dir is not None:
        keep_dir.mkdir(parents=True, exist_ok=True)
        path = keep_dir / f"{name}.bin"
        path.unlink(missing_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="scalebench-memray-") as d:
        yield Path(d) / "capture.bin"


def peak_heap(fn: Callable[[], object], keep_dir: Path | None = None, name: str = "capture") -> dict[str, object]:
    """Run `fn` under memray's Tracker; its peak heap in bytes, and the capture file when kept."""
    import memray

    with _capture_file(keep_dir, name) as path:
        with memray.Tracker(path, native_traces=False, follow_fork=False):
            fn()
        meta = memray.FileReader(path).metadata
        info: dict[str, object] = {"peak_driver_heap_bytes": meta.peak_memory,
                                   "driver_heap_allocations": meta.total_allocations}
        if keep_dir is not None:
            info["memray_capture"] = str(path)
        return info
