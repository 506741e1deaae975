"""pandas: the single-node baseline. Whole-frame when the data fits the memory
budget; otherwise streamed in chunks, as the seeds' chunking notes describe
(partial aggregates combined, top-k per chunk, range-bucketed external sort).

This module is the base of every stage family: the trivial in-process lifecycle (pandas has no
cluster) and the input reading and chunking that decide whole frame or chunks.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from scalebench.datasets.schemas import schema_for
from scalebench.engines.base import Engine, StageInput

PANDAS_DTYPES = {"int64": "int64", "int32": "int32", "double": "float64", "string": "str", "bool": "bool"}
# in-memory bytes per row, with headroom for the copies a query makes; other datasets: from their schema
WORKING_BYTES_PER_ROW = {"points": 4 * 40, "users": 4 * 64}
FIELD_BYTES = {"string": 16, "int32": 4, "bool": 1}  # Arrow-backed str: short ids plus offsets; the rest 8
HEADROOM = 4
MIN_CHUNK_ROWS = 50_000


def csv_dtypes(dataset: str) -> tuple[dict[str, str], list[str]]:
    """Column dtypes and date columns from the dataset's schema: no inference pass over the CSV."""
    arrow = schema_for(dataset).arrow
    dates = [f.name for f in arrow if pa.types.is_timestamp(f.type) or pa.types.is_date32(f.type)]
    return {f.name: PANDAS_DTYPES[str(f.type)] for f in arrow if f.name not in dates}, dates


def working_bytes_per_row(dataset: str, columns: list[str] | None = None) -> int:
    """In-memory bytes per row of the columns read, with HEADROOM for a query's copies."""
    if dataset in WORKING_BYTES_PER_ROW:
        return WORKING_BYTES_PER_ROW[dataset]
    fields = [f for f in schema_for(dataset).arrow if columns is None or f.name in columns]
    return HEADROOM * max(8, sum(FIELD_BYTES.get(str(f.type), 8) for f in fields))


class PandasReader(Engine):
    """In-process lifecycle and chunked reading, shared by every stage family."""

    name = "pandas"

    def start(self) -> None:
        self._own_spill = None

    def stop(self) -> None:
        if getattr(self, "_own_spill", None):
            shutil.rmtree(self._own_spill, ignore_errors=True)
            self._own_spill = None

    def version(self) -> str:
        return pd.__version__

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "idiom": "pandas (whole frame, or chunks beyond the budget)",
                "address": "in-process", "processes": 1, "threads": 1}

    # -- reading --------------------------------------------------------------
    def _chunk_rows(self, inp: StageInput, columns: list[str] | None = None) -> int | None:
        """None when the whole frame fits the budget; else rows per chunk."""
        per_row = working_bytes_per_row(inp.dataset, columns)
        if inp.rows * per_row <= self.spec.memory_budget_bytes:
            return None
        return max(MIN_CHUNK_ROWS, self.spec.memory_budget_bytes // (per_row * 4))

    def _chunks(self, inp: StageInput, columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
        chunk_rows = self._chunk_rows(inp, columns)
        self.last_notes["mode"] = "whole" if chunk_rows is None else "chunked"
        self.last_notes["chunks"] = 0
        for df in self._read(inp, columns, chunk_rows):
            self.last_notes["chunks"] += 1
            yield df

    def _read(self, inp: StageInput, columns: list[str] | None, chunk_rows: int | None) -> Iterator[pd.DataFrame]:
        loaded = self.loaded(inp)
        if loaded is not None:  # --io memory: the frame load() read, in the same chunks as from storage
            frame = loaded if columns is None else loaded[columns]
            step = chunk_rows or max(1, len(frame))
            for start in range(0, max(1, len(frame)), step):
                yield frame.iloc[start:start + step]
            return
        if inp.format == "csv":
            dtypes, dates = csv_dtypes(inp.dataset)
            dates = [c for c in dates if columns is None or c in columns]
            kw = dict(dtype=dtypes, parse_dates=dates, usecols=columns)
            if chunk_rows is None:
                yield pd.read_csv(inp.path, engine="pyarrow", **kw)
            else:
                yield from pd.read_csv(inp.path, chunksize=chunk_rows, **kw)
        elif chunk_rows is None:
            yield pd.read_parquet(inp.path, columns=columns)
        else:
            for f in inp.files:
                for batch in pq.ParquetFile(f).iter_batches(batch_size=chunk_rows, columns=columns):
                    yield batch.to_pandas()

    def _load_table(self, inp: StageInput) -> pd.DataFrame:
        """--io memory: the whole table as a pandas frame, as db-benchmark's pandas script holds it."""
        return next(self._read(inp, None, None))

    def _whole(self, inp: StageInput, columns: list[str]) -> pd.DataFrame:
        return next(self._read(inp, columns, None))

    def _spill_dir(self) -> Path:
        if self.spec.spill_dir is not None:
            return Path(tempfile.mkdtemp(prefix="pandas-", dir=self.spec.spill_dir))
        if self._own_spill is None:
            self._own_spill = Path(tempfile.mkdtemp(prefix="scalebench-pandas-"))
        return Path(tempfile.mkdtemp(dir=self._own_spill))

    # -- chunk by chunk: partial aggregates (groupby stage, skew groupby) -------------
    def _grouped_sums(self, inp: StageInput, key: str | Callable[[pd.DataFrame], pd.Series], columns: list[str],
                      sums: list[str], counts: list[str]) -> pd.DataFrame:
        """Partial count and sums per chunk, added up: the same code for one chunk or many."""
        partials = []
        for df in self._chunks(inp, columns):
            k = key(df) if callable(key) else df[key]
            g = df.groupby(k)
            part = pd.DataFrame({"count": g.size()})
            for c in sums:
                part[f"sum_{c}"] = g[c].sum()
            for c in counts:
                part[f"n_{c}"] = g[c].count()
            partials.append(part)
        total = pd.concat(partials).groupby(level=0).sum()
        total.index.name = None
        return total

    # -- out of core: hash partitions on disk (db-benchmark groupby, joins) ------------
    def _partitions(self, nbytes: int) -> int:
        """Hash partitions for `nbytes` of working set: each about half the budget (skew headroom)."""
        return max(2, 2 * math.ceil(nbytes / self.spec.memory_budget_bytes))

    def _scatter(self, inp: StageInput, columns: list[str], keys: list[str], parts: int, spill: Path,
                 tag: str) -> None:
        """Write a table, chunk by chunk, into `parts` folders by hash of `keys`: every key's rows
        land in one folder, so a groupby or join can run folder by folder."""
        for i, df in enumerate(self._read(inp, columns, self._chunk_rows(inp, columns))):
            part = pd.util.hash_pandas_object(df[keys], index=False).to_numpy() % np.uint64(parts)
            for p, piece in df.groupby(part, sort=False):
                folder = spill / f"{tag}{int(p):05d}"
                folder.mkdir(exist_ok=True)
                piece.to_parquet(folder / f"c{i:05d}.parquet", index=False)
            self.last_notes["chunks"] = self.last_notes.get("chunks", 0) + 1
