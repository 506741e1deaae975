"""Ray engine, the ETL / groupby / sort stages in Ray Data.

Ray Data has no drop-duplicates and no top-k primitive, so duplicate ids are dropped by a hash
repartition on ``id`` followed by a per-partition ``map_batches`` (the same contract
``GroupedData.map_groups`` relies on: a key never spans two output blocks), and top-k answers
are a per-block ``map_batches`` top-k followed by a small combine on the driver.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import ray.data
from ray.data.aggregate import Count, Mean, Sum
from ray.data.expressions import col

from scalebench.atomic import atomic_path
from scalebench.datasets.schemas import USERS_SCHEMA
from scalebench.engines.base import StageInput
from scalebench.engines.ray.read import RayReader
from scalebench.inputs import normalise_name
from scalebench.stages import EXTREMES, ID_BUCKET_WIDTH, TOP_EARNERS

_USERS_OUT_TYPES: dict[str, pa.DataType] = {
    f.name: pa.date32() if f.name == "signup_date" else f.type for f in USERS_SCHEMA}
"""etl_users' output types: the users schema with signup_date as a date."""


# -- batch functions (run inside Ray tasks; module-level so they pickle by reference) ----


def _clean_users(tbl: pa.Table) -> pa.Table:
    """etl_users per batch: normalised names, target types, signup_date as a date, no nulls."""
    tbl = tbl.rename_columns([normalise_name(c) for c in tbl.column_names])
    cols = []
    for name, typ in _USERS_OUT_TYPES.items():
        column = tbl[name]
        if name == "signup_date" and pa.types.is_timestamp(column.type):
            column = pc.cast(column, pa.date32())
        cols.append(pc.cast(column, typ))
    return pa.Table.from_arrays(cols, names=list(_USERS_OUT_TYPES)).drop_null()


def _first_per_id(tbl: pa.Table) -> pa.Table:
    """Keep the first row of every id in this block (ids never span blocks here)."""
    if tbl.num_rows == 0:
        return tbl
    _, first = np.unique(tbl["id"].to_numpy(), return_index=True)
    return tbl.take(pa.array(np.sort(first)))


def _top_distinct(tbl: pa.Table, k: int, sort_keys: list[tuple[str, str]]) -> pa.Table:
    """The first k rows with distinct ids in `sort_keys` order.

    select_k on a growing prefix instead of a full sort: the prefix of the total
    order that holds k distinct ids is all a later combine can need.
    """
    n = tbl.num_rows
    want = min(n, 2 * k)
    while True:
        idx = pc.select_k_unstable(tbl, k=want, sort_keys=sort_keys) if want else pa.array([], pa.uint64())
        top = tbl.take(idx)
        top = _first_per_id(top).sort_by(sort_keys)
        if top.num_rows >= k or want >= n:
            return top.slice(0, k)
        want = min(n, want * 4)


_EARNER_KEYS = [("salary", "descending"), ("id", "ascending")]
_YOUNG_KEYS = [("age", "ascending"), ("id", "ascending")]
_OLD_KEYS = [("age", "descending"), ("id", "ascending")]


def _top_earners_block(tbl: pa.Table) -> pa.Table:
    tbl = tbl.filter(pc.is_valid(tbl["salary"]))
    return _top_distinct(tbl, TOP_EARNERS, _EARNER_KEYS)


def _extremes_block(tbl: pa.Table) -> pa.Table:
    tbl = tbl.filter(pc.fill_null(tbl["is_active"], False)).drop_columns(["is_active"])
    young = _top_distinct(tbl, EXTREMES, _YOUNG_KEYS)
    old = _top_distinct(tbl, EXTREMES, _OLD_KEYS)
    return pa.concat_tables([
        young.append_column("end", pa.array(["youngest"] * young.num_rows, pa.string())),
        old.append_column("end", pa.array(["oldest"] * old.num_rows, pa.string())),
    ])


def _write_block(tbl: pa.Table, out: str) -> pa.Table:
    """sort_global's writer: one Parquet file per sorted block (see RayTables.sort_global),
    under a hidden temporary name until it is whole."""
    if tbl.num_rows:
        with atomic_path(Path(out) / f"part-{uuid.uuid4().hex}.parquet") as tmp:
            pq.write_table(tbl, tmp)
    return pa.table({"rows": pa.array([tbl.num_rows], pa.int64())})


def _combine_top(cands: pd.DataFrame, k: int, by: list[str], ascending: list[bool]) -> pd.DataFrame:
    """Driver-side combine of per-block candidates (at most blocks x k rows)."""
    cands = cands.sort_values(by, ascending=ascending, kind="stable")
    return cands.drop_duplicates("id", keep="first").head(k).reset_index(drop=True)


def _with_id_bucket(tbl: pa.Table) -> pa.Table:
    """`bucket` = id // ID_BUCKET_WIDTH (ids are positive: truncation is the floor)."""
    return tbl.append_column("bucket", pc.divide(tbl["id"], pa.scalar(ID_BUCKET_WIDTH, pa.int64())))


class RayTables(RayReader):
    """etl_users, etl_points, the groupby stage and the sort stage."""

    def _dedupe_ids(self, ds: ray.data.Dataset, inp: StageInput) -> ray.data.Dataset:
        """Drop duplicate ids: hash repartition on id, then keep the first row per id in each block."""
        self.last_notes["partitions"] = self._partitions(inp)
        return (ds.repartition(self._partitions(inp), keys=["id"])
                .map_batches(_first_per_id, batch_format="pyarrow", batch_size=None))

    def etl_users(self, inp: StageInput, out: Path) -> None:
        ds = self._read(inp).map_batches(_clean_users, batch_format="pyarrow", batch_size=None)
        ds = self._dedupe_ids(ds, inp)
        ds.write_parquet(str(out), partition_cols=["is_active"])

    def etl_points(self, inp: StageInput, out: Path) -> None:
        self._read(inp).write_parquet(str(out))

    def groupby_points(self, inp: StageInput) -> pd.DataFrame:
        ds = self._read(inp, ["x", "y", "category"])
        res = ds.groupby("category", num_partitions=1).aggregate(
            Count(alias_name="count"),
            Sum("x", alias_name="sum_x"), Mean("x", alias_name="mean_x"),
            Sum("y", alias_name="sum_y"), Mean("y", alias_name="mean_y"),
        ).to_pandas()
        return res[["category", "count", "sum_x", "mean_x", "sum_y", "mean_y"]]

    def groupby_age(self, inp: StageInput) -> pd.DataFrame:
        ds = self._read(inp, ["age", "salary"])
        res = ds.groupby("age", num_partitions=1).aggregate(
            Count(alias_name="count"),
            Mean("salary", ignore_nulls=True, alias_name="mean_salary"),
        ).to_pandas()
        return res[["age", "count", "mean_salary"]]

    def groupby_id_bucket(self, inp: StageInput) -> pd.DataFrame:
        self.last_notes["partitions"] = self._partitions(inp)
        # not with_column(): fused into a CSV read (one task per file) it returns the whole file as
        # one block (49.6M rows: 1.2 GB), and the shuffle's map task then asks for 2x that as its
        # `memory` resource; above the node's memory the task is infeasible and the query waits
        # forever. map_batches keeps blocks under target_max_block_size.
        ds = self._read(inp, ["id", "salary"]).map_batches(_with_id_bucket, batch_format="pyarrow",
                                                            batch_size=None)
        res = ds.groupby("bucket", num_partitions=self._partitions(inp)).aggregate(
            Count(alias_name="count"),
            Sum("salary", ignore_nulls=True, alias_name="sum_salary"),
        ).to_pandas()
        return res[["bucket", "count", "sum_salary"]]

    def sort_top_earners(self, inp: StageInput) -> pd.DataFrame:
        ds = self._read(inp, ["id", "name", "salary"])
        cands = ds.map_batches(_top_earners_block, batch_format="pyarrow", batch_size=None).to_pandas()
        top = _combine_top(cands, TOP_EARNERS, ["salary", "id"], [False, True])
        return top[["id", "name", "salary"]]

    def sort_active_extremes(self, inp: StageInput) -> pd.DataFrame:
        ds = self._read(inp, ["id", "name", "age", "is_active"])
        cands = ds.map_batches(_extremes_block, batch_format="pyarrow", batch_size=None).to_pandas()
        young = _combine_top(cands[cands["end"] == "youngest"], EXTREMES, ["age", "id"], [True, True])
        old = _combine_top(cands[cands["end"] == "oldest"], EXTREMES, ["age", "id"], [False, True])
        return pd.concat([young, old], ignore_index=True)[["end", "id", "name", "age"]]

    def sort_global(self, inp: StageInput, out: Path) -> None:
        """ds.sort(), then each sorted block written as its own file.

        Not write_parquet(): with Ray 2.60 ``ds.sort(...).write_parquet()`` wrote files that
        are not sorted once a range partition outgrows target_max_block_size (10M users:
        parquet with 2 partitions, or CSV, whose single file gives a single partition),
        although iterating the same sorted dataset yields the right order. Every block of
        a sorted dataset is a contiguous slice of the order, so one file per block is a
        true global sort whatever order the files are written in.
        """
        ds = self._read(inp).filter(expr=col("salary").is_not_null()).sort(["salary", "id"])
        out.mkdir(parents=True, exist_ok=True)
        written = ds.map_batches(_write_block, fn_kwargs={"out": str(out)}, batch_format="pyarrow",
                                 batch_size=None).sum("rows")
        self.last_notes["files"] = len(list(out.glob("*.parquet")))
        self.last_notes["rows"] = written
