"""Derived layouts of a stored Parquet dataset: the same rows laid out hive-style by key
bucket (store.ensure_partitioned decides where the folder goes and makes it atomically)."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow.parquet as pq

from scalebench.datasets.generate import CHUNK_ROWS, HashingWriter
from scalebench.datasets.schemas import schema_for

if TYPE_CHECKING:
    from scalebench.datasets.store import StoredDataset

PARTITION_BUCKETS = 8
"""Key buckets of a partitioned layout: a few per core of a small cluster, files of a sane size."""


def partition(data: StoredDataset, column: str, buckets: int, folder: Path) -> dict[str, Any]:
    """One pass over the parts, one part in memory at a time; rows keep their order within a bucket."""
    started = time.perf_counter()
    hive = f"{column}_bucket"
    names = [f"{hive}={b:02d}/part-00000.parquet" for b in range(buckets)]
    schema = schema_for(data.dataset)
    sinks, writers, rows = [], [], [0] * buckets
    with contextlib.ExitStack() as stack:
        for name in names:
            (folder / name).parent.mkdir()
            sink = HashingWriter(stack.enter_context(open(folder / name, "wb")))
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
