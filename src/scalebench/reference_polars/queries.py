"""The queries on points, users, their joins and the skewed keys, in polars (semantics:
scalebench.stages). Written from the catalogue's wording, not from any engine's code, so that a
mistake in the DuckDB reference and one here are unlikely to agree.

Every answer is a lazy plan collected with the streaming engine, and every write is a streaming
sink, so an input larger than memory streams instead of being loaded whole.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import polars as pl

from scalebench.reference_polars.read import scan
from scalebench.stages import EXTREMES, ID_BUCKET_WIDTH, TOP_EARNERS

if TYPE_CHECKING:
    from scalebench.engines.base import StageInput

STREAMING = "streaming"


def collect(lf: pl.LazyFrame) -> pd.DataFrame:
    """The answer on the driver, as pandas (the form every engine's answer is compared in)."""
    return lf.collect(engine=STREAMING).to_pandas()


def count() -> pl.Expr:
    """Rows of a group as int64 (polars counts in its index type)."""
    return pl.len().cast(pl.Int64).alias("count")


def plain(op: str, remedy: str) -> None:
    """The reference answers a remedy's plain form only: a remedy changes how, never what."""
    if remedy != "plain":
        raise ValueError(f"reference_polars: {op} answers the plain form only, not {remedy!r} "
                         f"(use Query.reference_form())")


def _distinct_ids(inp: StageInput) -> pl.LazyFrame:
    """One row per id: a duplicate repeats its row, so which copy stays does not matter."""
    return scan(inp).unique(subset=["id"], keep="any")


# -- etl: writes Parquet --------------------------------------------------------------------


def etl_users(inp: StageInput, out: Path) -> None:
    """Typed, complete rows, one per id, hive-partitioned by is_active (is_active=true/false
    folders; the column lives in the folder names, not in the files)."""
    typed = scan(inp).select(
        pl.col("id").cast(pl.Int64), pl.col("name").cast(pl.String), pl.col("age").cast(pl.Int32),
        pl.col("salary").cast(pl.Float64), pl.col("signup_date").cast(pl.Date), pl.col("is_active").cast(pl.Boolean))
    clean = typed.drop_nulls().unique(subset=["id"], keep="any")
    out.mkdir(parents=True, exist_ok=True)
    clean.sink_parquet(pl.PartitionBy(out, key="is_active", include_key=False), mkdir=True, engine=STREAMING)


def etl_points(inp: StageInput, out: Path) -> None:
    """The points as they are, one Parquet file in the folder `out`."""
    out.mkdir(parents=True, exist_ok=True)
    scan(inp).select("id", "x", "y", "category").sink_parquet(out / "part-00000.parquet", engine=STREAMING)


def sort_global(inp: StageInput, out: Path) -> None:
    """Rows with a salary, ordered by (salary, id), written as one file: trivially a global order."""
    out.mkdir(parents=True, exist_ok=True)
    ordered = scan(inp).filter(pl.col("salary").is_not_null()).sort(["salary", "id"], maintain_order=True)
    ordered.sink_parquet(out / "sorted.parquet", maintain_order=True, engine=STREAMING)


# -- groupby -------------------------------------------------------------------------------


def groupby_points(inp: StageInput) -> pd.DataFrame:
    x, y = pl.col("x"), pl.col("y")
    return collect(scan(inp).group_by("category").agg(
        count(), x.sum().alias("sum_x"), x.mean().alias("mean_x"), y.sum().alias("sum_y"), y.mean().alias("mean_y")))


def groupby_age(inp: StageInput) -> pd.DataFrame:
    """count over all rows; mean over the non-null salaries (polars' mean skips nulls)."""
    return collect(scan(inp).group_by("age").agg(count(), pl.col("salary").mean().alias("mean_salary")))


def groupby_id_bucket(inp: StageInput) -> pd.DataFrame:
    """ids are non-negative, so floor division is the bucket."""
    bucket = (pl.col("id") // ID_BUCKET_WIDTH).alias("bucket")
    return collect(scan(inp).group_by(bucket).agg(count(), pl.col("salary").sum().alias("sum_salary")))


# -- sort ----------------------------------------------------------------------------------


def sort_top_earners(inp: StageInput) -> pd.DataFrame:
    top = (_distinct_ids(inp).filter(pl.col("salary").is_not_null())
           .sort(["salary", "id"], descending=[True, False]).head(TOP_EARNERS))
    return collect(top.select("id", "name", "salary"))


def sort_active_extremes(inp: StageInput) -> pd.DataFrame:
    active = _distinct_ids(inp).filter(pl.col("is_active")).select("id", "name", "age")
    youngest = active.sort(["age", "id"]).head(EXTREMES).select(pl.lit("youngest").alias("end"), pl.all())
    oldest = (active.sort(["age", "id"], descending=[True, False]).head(EXTREMES)
              .select(pl.lit("oldest").alias("end"), pl.all()))
    return collect(pl.concat([youngest, oldest]))


# -- joins on users ------------------------------------------------------------------------


def join_dim(inp: StageInput) -> pd.DataFrame:
    users = scan(inp).select("name", "salary")
    dim = scan(inp.extra["names_dim"]).select("name", "region", "weight")
    return collect(users.join(dim, on="name", how="inner").group_by("region").agg(
        count(), pl.col("salary").sum().alias("sum_salary"), pl.col("weight").sum().alias("sum_weight")))


def join_large(inp: StageInput) -> pd.DataFrame:
    users = scan(inp).select("id", "salary", "is_active")
    accounts = scan(inp.extra["accounts"]).select("id", "balance")
    return collect(users.join(accounts, on="id", how="inner").group_by("is_active").agg(
        count(), pl.col("balance").sum().alias("sum_balance"), pl.col("salary").sum().alias("sum_salary")))


# -- skew (plain forms; the partition stage's layouts answer the same) ---------------------------


def skew_groupby(inp: StageInput, remedy: str) -> pd.DataFrame:
    """Per key count and sum of v, then summarised over the keys."""
    plain("skew_groupby", remedy)
    per_key = scan(inp).group_by("key").agg(pl.len().cast(pl.Int64).alias("n"), pl.col("v").sum().alias("s"))
    return collect(per_key.select(pl.len().cast(pl.Int64).alias("groups"), pl.col("n").sum().alias("rows"),
                                  pl.col("s").sum().alias("sum_v"), pl.col("n").max().alias("max_count")))


def skew_join(inp: StageInput, remedy: str) -> pd.DataFrame:
    plain("skew_join", remedy)
    keys = scan(inp).select("key", "v")
    dim = scan(inp.extra["keys_dim"]).select("key", "w")
    return collect(keys.join(dim, on="key", how="inner").select(
        pl.len().cast(pl.Int64).alias("rows"), pl.col("v").sum().alias("sum_v"), pl.col("w").sum().alias("sum_w")))
