"""Dask stage family ETL / groupby / sort on users and points. Shuffles that a query needs are
named in its docstring, because they dominate its cost."""

from __future__ import annotations

from pathlib import Path

import dask
import pandas as pd
import pyarrow as pa

from scalebench.engines.base import StageInput
from scalebench.engines.dask.cluster import on_cluster
from scalebench.engines.dask.read import POINTS_COLUMNS, USERS_COLUMNS, DaskReader, planner_barrier, string_schema
from scalebench.stages import EXTREMES, ID_BUCKET_WIDTH, TOP_EARNERS


class DaskTables(DaskReader):
    """ETL, groupby and sort queries, each finished by compute() or to_parquet()."""

    # -- etl ---------------------------------------------------------------------
    @on_cluster
    def etl_users(self, inp: StageInput, out: Path) -> None:
        """dropna, drop_duplicates(subset=id) (a hash shuffle on id), to_parquet(partition_on)."""
        df = self._users(inp)[list(USERS_COLUMNS)]
        self._note(df, "drop_duplicates: hash shuffle on id")
        df = df.dropna()
        df = df.drop_duplicates(subset=["id"])
        df = df.astype({"id": "int64", "age": "int32", "salary": "float64", "is_active": "bool"})
        # a true date: Parquet date32 rather than a midnight timestamp
        df["signup_date"] = df["signup_date"].astype(pd.ArrowDtype(pa.date32()))
        df.to_parquet(str(out), partition_on=["is_active"], write_index=False, schema=string_schema(df))

    @on_cluster
    def etl_points(self, inp: StageInput, out: Path) -> None:
        """Read and write back, one Parquet file per partition (no shuffle)."""
        df = self._points(inp)[list(POINTS_COLUMNS)]
        self._note(df, None)
        df.to_parquet(str(out), write_index=False, schema=string_schema(df))

    # -- groupby -----------------------------------------------------------------
    @on_cluster
    def groupby_points(self, inp: StageInput) -> pd.DataFrame:
        """Tree reduction (4 groups, split_out=1)."""
        df = self._points(inp)
        self._note(df, None)
        res = df.groupby("category").agg(
            count=("x", "size"), sum_x=("x", "sum"), mean_x=("x", "mean"),
            sum_y=("y", "sum"), mean_y=("y", "mean"))
        return res.compute().reset_index()

    @on_cluster
    def groupby_age(self, inp: StageInput) -> pd.DataFrame:
        """Tree reduction (63 groups); mean skips null salaries as the semantics ask."""
        df = self._users(inp)
        self._note(df, None)
        res = df.groupby("age").agg(count=("id", "size"), mean_salary=("salary", "mean"))
        return res.compute().reset_index()

    @on_cluster
    def groupby_id_bucket(self, inp: StageInput) -> pd.DataFrame:
        """rows/100 groups: split_out=True makes Dask shuffle the partial aggregates."""
        df = self._users(inp)[["id", "salary"]]
        self._note(df, "groupby split_out=True: hash shuffle of partial aggregates on bucket")
        df = df.assign(bucket=df["id"] // ID_BUCKET_WIDTH)
        res = df.groupby("bucket").agg(count=("id", "size"), sum_salary=("salary", "sum"),
                                       split_out=True)
        return res.compute().reset_index()

    # -- sort --------------------------------------------------------------------
    @on_cluster
    def sort_top_earners(self, inp: StageInput) -> pd.DataFrame:
        """drop_duplicates (shuffle on id), then sort_values(...).head(): Dask turns it into a
        top-k tree reduction (per-partition sort+head, then combine), not a full sort."""
        df = self._users(inp)[["id", "name", "salary"]]
        self._note(df, "drop_duplicates: hash shuffle on id")
        df = df.drop_duplicates(subset=["id"]).dropna(subset=["salary"])
        top = df.sort_values(["salary", "id"], ascending=[False, True]).head(TOP_EARNERS, compute=False)
        res = top.compute()
        return res[["id", "name", "salary"]].reset_index(drop=True)

    @on_cluster
    def sort_active_extremes(self, inp: StageInput) -> pd.DataFrame:
        """drop_duplicates (shuffle on id), filter, two top-k reductions computed together so the
        shuffle runs once."""
        df = self._users(inp)[["id", "name", "age", "is_active"]]
        self._note(df, "drop_duplicates: hash shuffle on id (shared by both top-k)")
        df = df.drop_duplicates(subset=["id"])
        df = df[df["is_active"]][["id", "name", "age"]]
        young = df.sort_values(["age", "id"], ascending=[True, True]).head(EXTREMES, compute=False)
        old = df.sort_values(["age", "id"], ascending=[False, True]).head(EXTREMES, compute=False)
        young_pd, old_pd = dask.compute(young, old)
        parts = [young_pd.assign(end="youngest"), old_pd.assign(end="oldest")]
        return pd.concat(parts, ignore_index=True)[["end", "id", "name", "age"]]

    @on_cluster
    def sort_global(self, inp: StageInput, out: Path) -> None:
        """sort_values([salary, id]): quantiles of salary pick the partition boundaries and a
        shuffle moves rows, so equal salaries land in one partition; each partition is then
        sorted by (salary, id). Part files therefore never overlap.

        The map_partitions no-op is a projection barrier that works around a Dask bug: to pick
        boundaries, sort_values reads only `salary`, and the optimizer fuses such narrow reads
        into fewer partitions (FusedIO / FusedParquetIO); with one fused partition the data look
        "presorted" and Dask sorts each real partition on its own, so part files overlap
        (dask 2026.8 on the 2-part Parquet users sets of 20k and 1M rows). Behind the barrier
        both passes see the same partitions; the price is that the boundary pass reads every
        column."""
        df = self._users(inp)[list(USERS_COLUMNS)]
        self._note(df, "sort_values: range shuffle on salary quantiles")
        df = df.dropna(subset=["salary"])
        df = planner_barrier(df)
        df = df.sort_values(["salary", "id"], ignore_index=True)
        df.to_parquet(str(out), write_index=False, schema=string_schema(df))
