"""Chunked, parallel, deterministic generation of one format folder's files and manifest.

The rows are cut into parts (plan_parts), each drawn chunk by chunk and written by a worker
process (the pool: workers.py); CSV pieces are then appended in order to data.csv and its
halves, Parquet parts are kept as they are. store.py decides where the folder goes and
makes it appear whole.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from scalebench.datasets.schemas import Schema, schema_for
from scalebench.datasets.workers import default_workers, run_in_order

GENERATOR_VERSION = 2
CHUNK_ROWS = 250_000  # rows drawn and formatted at once: bounds memory per process
PART_ROWS_MAX = 4_000_000  # ~80-120 MB Parquet parts at large sizes


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
        sink = HashingWriter(raw)
        with pq.ParquetWriter(sink, schema.arrow, compression="snappy",
                              use_dictionary=list(schema.dictionary_columns)) as writer:
            for c, first, n in part.chunks():
                writer.write_table(schema.to_table(schema.make_chunk(seed, part.index, c, first, n, family)),
                                   row_group_size=CHUNK_ROWS)
    return {"path": str(path), "bytes": path.stat().st_size, "sha256": sink.sha.hexdigest(), "rows": part.rows}


class HashingWriter(io.RawIOBase):
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


# -- a format folder -------------------------------------------------------------------


def generate_folder(schema: Schema, family: int, fmt: str, seed: int, workers: int | None, folder: Path,
                    progress: Any) -> dict[str, Any]:
    """Write every file of `schema`'s table in `fmt` into `folder`; return its manifest."""
    started = time.perf_counter()
    rows = schema.table_rows(family)
    parts = plan_parts(rows)
    workers = min(workers or default_workers(), len(parts))
    assembler = _CsvAssembler(folder, schema.csv_header, len(parts)) if fmt == "csv" else None
    results: dict[str, dict[str, Any]] = {}
    try:
        calls = [(schema.name, fmt, seed, part, str(folder), family) for part in parts]
        for part, piece in zip(parts, run_in_order(_write_part, calls, workers), strict=True):
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


# -- sizing ----------------------------------------------------------------------------


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
