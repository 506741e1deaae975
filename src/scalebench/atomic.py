"""One home for atomic writes: a file or folder appears whole under its final name, or not at all.

The temporary name starts with a dot, so Parquet and CSV readers (pyarrow, Spark, Dask, Ray)
skip a part that is still being written, and a crashed writer leaves nothing a reader takes
for data.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

TMP_MARK = ".tmp-"


def temporary_name(final: str | Path) -> Path:
    """A hidden, unique sibling of `final`: `.NAME.tmp-PID-RANDOM`."""
    final = Path(final)
    return final.with_name(f".{final.name}{TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}")


@contextlib.contextmanager
def atomic_path(final: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `final`; the caller writes a file there (or makes and fills
    a folder); on success it is renamed to `final` in one step, on failure removed."""
    final = Path(final)
    tmp = temporary_name(final)
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> Path:
    """`path` holding `text`, written atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)
