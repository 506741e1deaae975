"""Chunked, parallel, deterministic generation into a validated on-disk cache.

Layout: <data_dir>/<dataset>/r<rows>-s<seed>-g<generator>/<format>/ holding
_manifest.json and the data files (csv: data.csv, half1.csv, half2.csv;
parquet: part-NNNNN.parquet). A format folder is built under a temporary name
and renamed into place only when complete, under a file lock, so a crashed or
concurrent run never leaves a folder that looks valid.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import fcntl
import hashlib
import io
import json
import math
import multiprocessing
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import numpy as np
import pyarrow.parquet as pq

from scalebench.datasets.schemas import KEYS_PREFIX, SCHEMAS, Schema, schema_for
from scalebench.measure.procs import die_with_parent

GENERATOR_VERSION = 2
FORMATS = ("csv", "parquet")
CHUNK_ROWS = 250_000  # rows drawn and formatted at once: bounds memory per process
PART_ROWS_MAX = 4_000_000  # ~80-120 MB Parquet parts at large sizes
MANIFEST = "_manifest.json"  # "_" prefix: every engine skips it when reading the folder
ENV_DATA_DIR = "SCALEBENCH_DATA_DIR"


class DatasetError(ValueError):
    """Bad request or unusable folder; the message names the file or option."""


def default_data_dir() -> Path:
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        return local_dir(env) if env.lower().startswith("file://") else Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "scalebench" / "data"


def local_dir(data_dir: Path | str) -> Path:
    """A local folder from a path or a file:// URL. Other URL schemes (s3://, hdfs://) are
    refused by name: this version generates and reads datasets on a local file system only."""
    if isinstance(data_dir, Path):
        return data_dir.expanduser()
    text = str(data_dir)
    scheme, sep, _ = text.partition("://")
    if not sep:
        return Path(text).expanduser()
    if scheme.lower() != "file":
        raise DatasetError(f"--data-dir: {text}: this version reads only local folders and file:// URLs, "
                           f"not {scheme}://; mount it or copy the data to a local path")
    parsed = urlparse(text)
    if parsed.netloc not in ("", "localhost"):
        raise DatasetError(f"--data-dir: {text}: a file:// URL must name a path on this machine "
                           f"(file:///path), not host {parsed.netloc!r}")
    return Path(url2pathname(parsed.path))


def check_data_dir(data_dir: Path | str) -> Path:
    path = local_dir(data_dir)
    if path.exists() and not path.is_dir():
        raise DatasetError(f"--data-dir: {path} exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetError(f"--data-dir: cannot create {path}: {exc.strerror}") from None
    return path


# -- plan ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    index: int
    first: int
    rows: int

    def chunks(self) -> Iterator[tuple[int, int, int]]:
        """(chunk index, first row, rows) within this part."""
        n = math.ceil(self.rows / CHUNK_ROWS)
        for c in range(n):
            lo = self.first + c * self.rows // n
            hi = self.first + (c + 1) * self.rows // n
            yield c, lo, hi - lo


def plan_parts(rows: int) -> list[Part]:
    """An even number of parts (so the CSV halves fall on a part boundary), each
    at most PART_ROWS_MAX rows; depends on `rows` alone, never on the process count."""
    parts = 1 if rows < 2 else max(2, math.ceil(rows / PART_ROWS_MAX))
    parts += parts % 2 if parts > 1 else 0
    bounds = [p * rows // parts for p in range(parts + 1)]
    return [Part(p, bounds[p], bounds[p + 1] - bounds[p]) for p in range(parts)]


# -- workers -------------------------------------------------------------------------


def _sha256_file(path: Path, offset: int = 0, length: int | None = None) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(offset)
        left = length if length is not None else math.inf
        while left > 0:
            block = f.read(int(min(8 << 20, left)))
            if not block:
                break
            h.update(block)
            left -= len(block)
    return h.hexdigest()


def _write_part(schema_name: str, fmt: str, seed: int, part: Part, folder: str, family: int) -> dict[str, Any]:
    """Runs in a worker process: draw this part chunk by chunk and write it."""
    schema = schema_for(schema_name)
    if fmt == "csv":
        path = Path(folder) / f".piece-{part.index:05d}.csv"
        h = hashlib.sha256()
        with open(path, "wb") as f:
            for c, first, n in part.chunks():
                data = schema.to_csv(schema.make_chunk(seed, part.index, c, first, n, family))
                h.update(data)
                f.write(data)
        return {"path": str(path), "bytes": path.stat().st_size, "sha256": h.hexdigest(), "rows": part.rows}
    path = Path(folder) / f"part-{part.index:05d}.parquet"
    with open(path, "wb") as raw:
        sink = _HashingWriter(raw)
        with pq.ParquetWriter(sink, schema.arrow, compression="snappy",
                              use_dictionary=list(schema.dictionary_columns)) as writer:
            for c, first, n in part.chunks():
                writer.write_table(schema.to_table(schema.make_chunk(seed, part.index, c, first, n, family)),
                                   row_group_size=CHUNK_ROWS)
    return {"path": str(path), "bytes": path.stat().st_size, "sha256": sink.sha.hexdigest(), "rows": part.rows}


class _HashingWriter(io.RawIOBase):
    """Hashes bytes on their way to the file, so nothing is read back to checksum it."""

    def __init__(self, raw: Any):
        self.raw, self.sha = raw, hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self.sha.update(b)
        return self.raw.write(b)


# -- assembling ------------------------------------------------------------------------


class _CsvAssembler:
    """Appends finished pieces, in order, to data.csv and to the half they belong to.

    copy_file_range keeps the copy inside the kernel, so the parent never holds
    the data and memory stays flat whatever the size.
    """

    def __init__(self, folder: Path, header: bytes, parts: int):
        self.folder, self.header, self.parts = folder, header, parts
        self.header_sha = hashlib.sha256(header).hexdigest()
        self.files: dict[str, dict[str, Any]] = {}
        self.handles = {}
        for name in ("data.csv", "half1.csv", "half2.csv"):
            f = open(folder / name, "wb")
            f.write(header)
            f.flush()
            self.handles[name] = f
            self.files[name] = {"rows": 0, "segments": [[0, len(header), self.header_sha]]}

    def add(self, index: int, piece: dict[str, Any]) -> None:
        half = "half1.csv" if index < max(1, self.parts // 2) else "half2.csv"
        src = Path(piece["path"])
        for name in ("data.csv", half):
            out, entry = self.handles[name], self.files[name]
            offset = out.tell()
            with open(src, "rb") as f:
                _copy(f.fileno(), out.fileno(), piece["bytes"])
            out.seek(offset + piece["bytes"])
            entry["segments"].append([offset, piece["bytes"], piece["sha256"]])
            entry["rows"] += piece["rows"]
        src.unlink()

    def close(self) -> None:
        for f in self.handles.values():
            f.close()


def _copy(src_fd: int, dst_fd: int, count: int) -> None:
    left = count
    while left > 0:
        try:
            n = os.copy_file_range(src_fd, dst_fd, left)
        except OSError:  # filesystems without copy_file_range
            n = os.sendfile(dst_fd, src_fd, None, left)
        if n == 0:
            raise OSError(f"short copy: {left} bytes left")
        left -= n


# -- the cache ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredDataset:
    """A complete, validated format folder."""

    folder: Path
    manifest: dict[str, Any]

    @property
    def dataset(self) -> str:
        return self.manifest["dataset"]

    @property
    def format(self) -> str:
        return self.manifest["format"]

    @property
    def rows(self) -> int:
        return self.manifest["rows"]

    @property
    def bytes(self) -> int:
        return self.manifest["bytes"]

    def files(self, which: str = "data") -> list[Path]:
        """csv: the one file ('data', 'half1', 'half2'); parquet: every part file in order."""
        if self.format == "csv":
            return [self.folder / f"{which}.csv"]
        return [self.folder / name for name in sorted(self.manifest["files"])]

    @property
    def path(self) -> Path:
        return self.files()[0] if self.format == "csv" else self.folder


def dataset_folder(data_dir: Path, name: str, rows: int, seed: int, fmt: str) -> Path:
    return Path(data_dir) / name / f"r{rows}-s{seed}-g{GENERATOR_VERSION}" / fmt


def validate(folder: Path) -> StoredDataset:
    """Raise DatasetError naming the first problem; return the dataset when sound.

    Sizes are always checked; checksums are recomputed for any file whose
    modification time differs from the manifest's (an edit in place changes it).
    """
    folder = Path(folder)
    mpath = folder / MANIFEST
    try:
        manifest = json.loads(mpath.read_text())
    except FileNotFoundError:
        raise DatasetError(f"{folder}: no {MANIFEST}; not a complete dataset") from None
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{mpath}: unreadable manifest ({exc})") from None
    if manifest.get("generator_version") != GENERATOR_VERSION:
        raise DatasetError(f"{mpath}: made by generator version {manifest.get('generator_version')}, "
                           f"this is version {GENERATOR_VERSION}")
    listed = manifest.get("files", {})
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST}
    extra = sorted(present - set(listed))
    if extra:
        raise DatasetError(f"{folder / extra[0]}: file not in the manifest")
    for name, entry in listed.items():
        path = folder / name
        try:
            st = path.stat()
        except FileNotFoundError:
            raise DatasetError(f"{path}: missing") from None
        size = sum(seg[1] for seg in entry["segments"])
        if st.st_size != size:
            raise DatasetError(f"{path}: {st.st_size} bytes, manifest says {size} (truncated or altered)")
        if st.st_mtime_ns != entry["mtime_ns"]:
            for offset, length, digest in entry["segments"]:
                if _sha256_file(path, offset, length) != digest:
                    raise DatasetError(f"{path}: checksum differs from the manifest (altered)")
    return StoredDataset(folder, manifest)


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def ensure(name: str, rows: int, fmt: str, *, data_dir: Path | str | None = None, seed: int = 42,
           workers: int | None = None, force: bool = False, progress: Any = None) -> StoredDataset:
    """The dataset folder, generated unless a valid one is cached.

    `rows` is the size of the dataset's family: the table itself for most datasets, the
    table it joins for a join's right tables and dimensions (Schema.table_rows).
    `progress`, when given, is called with the number of rows just finished.
    """
    schema = schema_for(name)
    if schema is None:
        raise DatasetError(f"unknown dataset {name!r}; choose from {', '.join(SCHEMAS)}, "
                           f"{KEYS_PREFIX}<Zipf exponent>")
    if fmt not in FORMATS:
        raise DatasetError(f"--format: unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    if not isinstance(rows, int) or rows < 1:
        raise DatasetError(f"--rows: {rows!r} must be a whole number of rows, at least 1")
    if workers is not None and workers < 1:
        raise DatasetError(f"--workers: {workers} must be at least 1")
    data = check_data_dir(data_dir if data_dir is not None else default_data_dir())
    final = dataset_folder(data, name, rows, seed, fmt)
    return _build_once(final, lambda tmp: _generate(schema, rows, fmt, seed, workers, tmp, progress), force)


def _build_once(final: Path, build: Any, force: bool = False) -> StoredDataset:
    """The valid folder `final`, else `build(tmp folder) -> manifest` under the folder's lock,
    renamed into place only when complete; a failed build leaves nothing behind."""
    label = final.name
    with _locked(final.parent / f".{label}.lock"):
        if final.exists():
            if not force:
                with contextlib.suppress(DatasetError):
                    return validate(final)
            _discard(final)
        for stale in final.parent.glob(f".{label}.tmp-*"):  # left by a crashed run; we hold the lock
            shutil.rmtree(stale, ignore_errors=True)
        tmp = final.parent / f".{label}.tmp-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            manifest = build(tmp)
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
            os.rename(tmp, final)
        except BaseException as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(exc, OSError) and exc.errno is not None:
                raise DatasetError(f"{final}: could not write the dataset: {exc.strerror}") from exc
            raise
    return validate(final)


PARTITION_BUCKETS = 8
"""Key buckets of a partitioned layout: a few per core of a small cluster, files of a sane size."""


def ensure_partitioned(data: StoredDataset, column: str, buckets: int = PARTITION_BUCKETS, *,
                       force: bool = False) -> StoredDataset:
    """The same rows as the Parquet dataset `data`, laid out hive-style by `column % buckets`:
    `<column>_bucket=NN/part-00000.parquet`, every row of a key in one file, so a groupby or
    join on the key can run bucket by bucket without a shuffle. Made once, next to `data`."""
    if data.format != "parquet" or data.manifest.get("layout"):
        raise DatasetError(f"{data.folder}: a partitioned layout is made from a plain Parquet dataset")
    if column not in dict(data.manifest["schema"]):
        raise DatasetError(f"{data.folder}: no column {column!r} to partition by")
    if not isinstance(buckets, int) or buckets < 1:
        raise DatasetError(f"buckets: {buckets!r} must be a whole number, at least 1")
    final = data.folder.with_name(f"parquet-by-{column}{buckets}")
    return _build_once(final, lambda tmp: _partition(data, column, buckets, tmp), force)


def _partition(data: StoredDataset, column: str, buckets: int, folder: Path) -> dict[str, Any]:
    """One pass over the parts, one part in memory at a time; rows keep their order within a bucket."""
    started = time.perf_counter()
    hive = f"{column}_bucket"
    names = [f"{hive}={b:02d}/part-00000.parquet" for b in range(buckets)]
    schema = schema_for(data.dataset)
    sinks, writers, rows = [], [], [0] * buckets
    with contextlib.ExitStack() as stack:
        for name in names:
            (folder / name).parent.mkdir()
            sink = _HashingWriter(stack.enter_context(open(folder / name, "wb")))
            sinks.append(sink)
            writers.append(stack.enter_context(pq.ParquetWriter(
                sink, schema.arrow, compression="snappy", use_dictionary=list(schema.dictionary_columns))))
        for part in data.files():
            table = pq.read_table(part, schema=schema.arrow)
            bucket = table[column].to_numpy() % buckets  # keys are non-negative
            order = np.argsort(bucket, kind="stable")
            bounds = np.searchsorted(bucket[order], np.arange(buckets + 1))
            for b in range(buckets):
                piece = table.take(order[bounds[b]:bounds[b + 1]])
                if piece.num_rows:
                    writers[b].write_table(piece, row_group_size=CHUNK_ROWS)
                    rows[b] += piece.num_rows
    files = {name: {"rows": n, "segments": [[0, (folder / name).stat().st_size, sink.sha.hexdigest()]],
                    "mtime_ns": (folder / name).stat().st_mtime_ns}
             for name, n, sink in zip(names, rows, sinks, strict=True)}
    return {**data.manifest, "files": files, "bytes": sum(e["segments"][0][1] for e in files.values()),
            "parts": buckets, "layout": {"partitioned_by": column, "buckets": buckets, "hive_column": hive},
            "derived_from": data.folder.name, "elapsed_s": round(time.perf_counter() - started, 3),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def _discard(folder: Path) -> None:
    trash = folder.with_name(f".{folder.name}.trash-{uuid.uuid4().hex[:8]}")
    os.rename(folder, trash)
    shutil.rmtree(trash, ignore_errors=True)


def _generate(schema: Schema, family: int, fmt: str, seed: int, workers: int | None, folder: Path,
              progress: Any) -> dict[str, Any]:
    started = time.perf_counter()
    rows = schema.table_rows(family)
    parts = plan_parts(rows)
    workers = min(workers or default_workers(), len(parts))
    assembler = _CsvAssembler(folder, schema.csv_header, len(parts)) if fmt == "csv" else None
    results: dict[str, dict[str, Any]] = {}
    try:
        for part, piece in zip(parts, _run_parts(schema.name, fmt, seed, parts, folder, workers, family), strict=True):
            if assembler is not None:
                assembler.add(part.index, piece)
            else:
                results[Path(piece["path"]).name] = {"rows": piece["rows"],
                                                     "segments": [[0, piece["bytes"], piece["sha256"]]]}
            if progress is not None:
                progress(part.rows)
    finally:
        if assembler is not None:
            assembler.close()
    if assembler is not None:
        results = assembler.files
    for fname, entry in results.items():
        entry["mtime_ns"] = (folder / fname).stat().st_mtime_ns
    elapsed = time.perf_counter() - started
    data_bytes = sum(sum(s[1] for s in e["segments"]) for n, e in results.items() if not n.startswith("half"))
    return {
        "generator_version": GENERATOR_VERSION, "dataset": schema.name, "format": fmt, "rows": rows,
        "family_rows": family, "seed": seed, "parts": len(parts), "chunk_rows": CHUNK_ROWS,
        "schema": [[f.name, str(f.type)] for f in schema.arrow],
        "bytes": data_bytes, "files": results, "workers": workers,
        "elapsed_s": round(elapsed, 3), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


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


def _run_parts(schema: str, fmt: str, seed: int, parts: list[Part], folder: Path,
               workers: int, family: int) -> Iterator[dict[str, Any]]:
    """Results in part order, as soon as each is ready. One worker runs in-process."""
    if workers == 1:
        for part in parts:
            yield _write_part(schema, fmt, seed, part, str(folder), family)
        return
    # fork is instant; with other Python threads alive (a cluster client, say) a fork
    # could copy a held lock, so then fork from a clean server process instead
    ctx = multiprocessing.get_context("fork" if _only_fork_safe_threads() else "forkserver")
    if ctx.get_start_method() == "forkserver":
        ctx.set_forkserver_preload(["scalebench.datasets.store"])  # children start warm
    with _main_module_hidden(), cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx,
                                                       initializer=die_with_parent,
                                                       initargs=(os.getpid(),)) as pool:
        futures = [pool.submit(_write_part, schema, fmt, seed, part, str(folder), family) for part in parts]
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


def bytes_per_row(name: str, fmt: str, around_row: int = 1_000_000, sample: int = 200_000) -> float:
    """Measured on-disk bytes per row of `fmt`, from a sample drawn near `around_row`."""
    schema = schema_for(name)
    c = schema.make_chunk(0, 0, 0, max(0, around_row - sample // 2), sample, around_row * 2)
    if fmt == "csv":
        return len(schema.to_csv(c)) / sample
    with tempfile.TemporaryDirectory() as d:
        pq.write_table(schema.to_table(c), Path(d) / "s.parquet", compression="snappy",
                       use_dictionary=list(schema.dictionary_columns))
        return (Path(d) / "s.parquet").stat().st_size / sample


def rows_for_memory(name: str, fmt: str, multiple: float, budget_bytes: int) -> int:
    """Rows whose `fmt` files take `multiple` x `budget_bytes` on disk (the study's
    'exceeds RAM by 10-20 %' case at multiple 1.1-1.2)."""
    target = multiple * budget_bytes
    rows = int(target / bytes_per_row(name, fmt))
    for _ in range(2):  # bytes per row grows with the id width: refine near the answer
        rows = int(target / bytes_per_row(name, fmt, around_row=rows))
    return max(1, rows)
