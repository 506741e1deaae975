"""Dask input reading: CSV or Parquet into lazy dask.dataframe frames with normalised column
names and the documented types (derived from scalebench.datasets.schemas), plus what every query
family reports about its frames (partitions, plan) and its one-row answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pyarrow as pa
from dask.utils import get_default_shuffle_method

from scalebench.datasets.schemas import POINTS_SCHEMA, USERS_SCHEMA, schema_for
from scalebench.engines.base import StageInput
from scalebench.engines.dask.cluster import CSV_BLOCKSIZE_MAX, CSV_BLOCKSIZE_MIN, DaskCluster, on_cluster
from scalebench.inputs import normalise_name

DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
STRING_COLUMNS = ("name", "category")


def _pandas_dtype(t: pa.DataType) -> str:
    """read_csv dtype of an Arrow type: strings as pandas' str, numbers and bools by name."""
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "str"
    if pa.types.is_date32(t):  # TPC-H's dates: the type a Parquet read gives, so one query serves both
        return "date32[day][pyarrow]"
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t):
        return np.dtype(t.to_pandas_dtype()).name
    raise ValueError(f"no CSV dtype for Arrow type {t}")


def csv_types(schema: pa.Schema) -> tuple[tuple[str, ...], dict[str, str], tuple[str, ...]]:
    """A dataset's columns, read_csv dtypes and date columns, from its Arrow schema, so
    read_csv never infers a type from a sample."""
    dates = tuple(f.name for f in schema if pa.types.is_timestamp(f.type))
    dtypes = {f.name: _pandas_dtype(f.type) for f in schema if f.name not in dates}
    return tuple(schema.names), dtypes, dates


USERS_COLUMNS, USERS_DTYPES, USERS_DATES = csv_types(USERS_SCHEMA)
POINTS_COLUMNS, POINTS_DTYPES, _ = csv_types(POINTS_SCHEMA)


def _csv_header(path: Path) -> list[str]:
    """The header names of a CSV file, read from its first line only (no inference pass)."""
    with open(path, encoding="utf-8", newline="") as fh:
        line = fh.readline().rstrip("\r\n")
    if not line:
        raise ValueError(f"{path}: empty CSV file (no header line)")
    return line.split(",")


def renames(path: Path, raw: list[str], wanted: tuple[str, ...]) -> dict[str, str]:
    """raw column name -> normalised name; a clear error when a wanted column is missing."""
    mapping = {c: normalise_name(c) for c in raw}
    missing = [w for w in wanted if w not in mapping.values()]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}; has {', '.join(raw)}")
    return mapping


def string_schema(df: dd.DataFrame) -> dict[str, pa.DataType]:
    """Write the documented Parquet string type, not the large_string that pandas' str maps to
    (Dask rejects a schema entry for a column the frame lacks, hence the filter)."""
    return {c: pa.string() for c in STRING_COLUMNS if c in df.columns}


def one_row(**scalars: Any) -> pd.DataFrame:
    """Dask scalars computed together (one graph: what they share runs once), as one row."""
    values = dask.compute(*scalars.values())
    return pd.DataFrame([dict(zip(scalars, values, strict=True))])


def planner_barrier(frame: dd.DataFrame) -> dd.DataFrame:
    """`frame` through an identity map_partitions: Dask's optimizer sees through neither its
    projection nor any partitioning a merge claimed, so what follows is planned on the frame as
    it is. Works around Dask 2026.8 planner bugs (dask/tables.py's sort, dask/tpch.py's q20)."""
    return frame.map_partitions(_same, meta=frame._meta)


def _same(df: pd.DataFrame) -> pd.DataFrame:
    return df


def plan(frame: dd.DataFrame) -> dict[str, Any]:
    """What Dask will run for a frame (its optimised, unfused expression): the partitions of each
    read, after Dask fused narrow Parquet reads (FusedIO), and its join and shuffle steps."""
    exprs = list(frame.optimize(fuse=False).expr.walk())
    names = {type(e).__name__ for e in exprs}
    reads = [e.npartitions for e in exprs if type(e).__name__.startswith(("Read", "FromMap"))  # read_parquet, read_csv
             or type(e).__name__.endswith("IO")]
    steps = sorted(n for n in names if any(w in n for w in ("Join", "Merge", "Shuffle", "Broadcast")))
    return {"read_partitions": reads, "steps": ", ".join(steps) or "none"}


class DaskReader(DaskCluster):
    """Reads every input as a lazy frame sized to the cluster (CSV blocksize from its threads)."""

    def _blocksize(self, nbytes: int) -> int:
        """At least two partitions per thread while the input is large enough, so every worker
        has work, and never more than CSV_BLOCKSIZE_MAX per partition."""
        assert self._client is not None
        threads = sum(self._client.nthreads().values()) or self.spec.cores
        want = nbytes // (2 * threads) + 1
        return int(min(CSV_BLOCKSIZE_MAX, max(CSV_BLOCKSIZE_MIN, want)))

    def _read(self, inp: StageInput, columns: tuple[str, ...], dtypes: dict[str, str],
              dates: tuple[str, ...] = ()) -> dd.DataFrame:
        """A lazy frame with normalised column names and the documented types (--io memory: the
        persisted frame load() made)."""
        loaded = self.loaded(inp)
        if loaded is not None:
            return loaded
        if inp.format == "csv":
            raw = _csv_header(inp.path)
            names = renames(inp.path, raw, columns)
            back = {v: k for k, v in names.items()}
            df = dd.read_csv(
                str(inp.path),
                blocksize=self._blocksize(inp.path.stat().st_size),
                dtype={back[c]: t for c, t in dtypes.items()},
                parse_dates=[back[c] for c in dates] or False,
                date_format={back[c]: DATE_FORMAT for c in dates} or None,
                true_values=["true", "True", "TRUE"],
                false_values=["false", "False", "FALSE"],
                keep_default_na=False,
                na_values=[""],
            )
        elif inp.format == "parquet":
            # the same partition size as CSV: a file larger than the block splits at row groups
            # ('infer' reads the first file's footer). Left to its default (256 MiB), db-benchmark's
            # G1_1e7 read as 2 partitions and q10's P2P shuffle ran out of memory at 2 GiB a worker.
            df = dd.read_parquet(str(inp.path), split_row_groups="infer",
                                 blocksize=self._blocksize(inp.bytes))
            raw = list(df.columns)
            names = renames(inp.path, raw, columns)
        else:
            raise ValueError(f"{inp.path}: unknown input format {inp.format!r} (csv or parquet)")
        if any(k != v for k, v in names.items()):
            df = df.rename(columns=names)
        return df

    @on_cluster
    def _load_table(self, inp: StageInput) -> dd.DataFrame:
        """--io memory: the table read as the queries read it, persisted on the workers and waited
        for, as db-benchmark's Dask script does (persist())."""
        from distributed import wait

        reader = {"users": self._users, "points": self._points}.get(inp.dataset, self._table)
        df = reader(inp).persist()
        wait(df)
        return df

    def _note(self, df: dd.DataFrame, shuffle: str | None) -> None:
        """What a reader of the timing should know: partitions read and the shuffle, if any."""
        self.last_notes = {"partitions": df.npartitions}
        if shuffle:
            self.last_notes["shuffle"] = f"{shuffle} ({get_default_shuffle_method()})"

    def _users(self, inp: StageInput) -> dd.DataFrame:
        return self._read(inp, USERS_COLUMNS, USERS_DTYPES, USERS_DATES)

    def _points(self, inp: StageInput) -> dd.DataFrame:
        return self._read(inp, POINTS_COLUMNS, POINTS_DTYPES)

    def _table(self, inp: StageInput) -> dd.DataFrame:
        """Any catalogued dataset (db-benchmark, dimensions, keys), with the CSV dtypes taken from
        its Arrow schema so read_csv never infers a type from a sample."""
        schema = schema_for(inp.dataset)
        if schema is None:
            raise ValueError(f"{inp.path}: unknown dataset {inp.dataset!r}")
        return self._read(inp, *csv_types(schema.arrow))
