"""polars stage families ETL, groupby and sort: one lazy plan each, collected or sunk to Parquet by
the streaming engine (its group-by, unique and sort spill beyond the memory budget)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import polars as pl

from scalebench.engines.base import StageInput
from scalebench.engines.polars.read import PolarsReader
from scalebench.stages import EXTREMES, ID_BUCKET_WIDTH, TOP_EARNERS

ETL_USERS_TYPES: dict[str, pl.DataType] = {
    "id": pl.Int64(), "name": pl.String(), "age": pl.Int32(), "salary": pl.Float64(),
    "signup_date": pl.Date(), "is_active": pl.Boolean()}
"""etl_users' casts: the users schema's types, except that the ETL keeps the day of signup_date."""


def count() -> pl.Expr:
    """Rows of a group as int64 (polars counts in its index type, u32)."""
    return pl.len().cast(pl.Int64).alias("count")


class PolarsTables(PolarsReader):
    # -- etl: writes Parquet ----------------------------------------------------------------
    def etl_users(self, inp: StageInput, out: Path) -> None:
        """Typed, complete rows, one per id, sunk hive-partitioned by is_active (is_active=true/false
        folders, the column in the folder names only)."""
        typed = self._frame(inp).select(pl.col(c).cast(t) for c, t in ETL_USERS_TYPES.items())
        clean = typed.drop_nulls().unique(subset=["id"], keep="any")
        out.mkdir(parents=True, exist_ok=True)
        self._sink(clean, pl.PartitionBy(out, key="is_active", include_key=False), inp, mkdir=True)

    def etl_points(self, inp: StageInput, out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        self._sink(self._frame(inp).select("id", "x", "y", "category"), out / "part-00000.parquet", inp)

    # -- groupby ------------------------------------------------------------------------------
    def groupby_points(self, inp: StageInput) -> pd.DataFrame:
        x, y = pl.col("x"), pl.col("y")
        return self._collect(self._frame(inp).group_by("category").agg(
            count(), x.sum().alias("sum_x"), x.mean().alias("mean_x"),
            y.sum().alias("sum_y"), y.mean().alias("mean_y")), inp)

    def groupby_age(self, inp: StageInput) -> pd.DataFrame:
        """count over all rows; mean over the non-null salaries (mean skips nulls)."""
        return self._collect(self._frame(inp).group_by("age").agg(
            count(), pl.col("salary").mean().alias("mean_salary")), inp)

    def groupby_id_bucket(self, inp: StageInput) -> pd.DataFrame:
        bucket = (pl.col("id") // ID_BUCKET_WIDTH).alias("bucket")
        return self._collect(self._frame(inp).group_by(bucket).agg(
            count(), pl.col("salary").sum().alias("sum_salary")), inp)

    # -- sort ---------------------------------------------------------------------------------
    def _distinct_ids(self, inp: StageInput) -> pl.LazyFrame:
        """One row per id: a duplicate repeats its row, so which copy stays does not matter."""
        return self._frame(inp).unique(subset=["id"], keep="any")

    def sort_top_earners(self, inp: StageInput) -> pd.DataFrame:
        """sort + head: polars plans it as a top-k, never a full sort."""
        top = (self._distinct_ids(inp).filter(pl.col("salary").is_not_null())
               .sort(["salary", "id"], descending=[True, False]).head(TOP_EARNERS))
        return self._collect(top.select("id", "name", "salary"), inp)

    def sort_active_extremes(self, inp: StageInput) -> pd.DataFrame:
        active = self._distinct_ids(inp).filter(pl.col("is_active")).select("id", "name", "age")
        youngest = active.sort(["age", "id"]).head(EXTREMES).select(pl.lit("youngest").alias("end"), pl.all())
        oldest = (active.sort(["age", "id"], descending=[True, False]).head(EXTREMES)
                  .select(pl.lit("oldest").alias("end"), pl.all()))
        return self._collect(pl.concat([youngest, oldest]), inp)

    def sort_global(self, inp: StageInput, out: Path) -> None:
        """Rows with a salary ordered by (salary, id), sunk in order as one file: a global order."""
        out.mkdir(parents=True, exist_ok=True)
        ordered = self._frame(inp).filter(pl.col("salary").is_not_null()).sort(["salary", "id"])
        self._sink(ordered, out / "sorted.parquet", inp, maintain_order=True)
