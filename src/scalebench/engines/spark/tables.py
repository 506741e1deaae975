"""Spark's ETL, groupby and sort stages, each one DataFrame plan."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from pyspark.sql import functions as F
from pyspark.sql.types import BooleanType, DoubleType, IntegerType, LongType, StringType

from scalebench.engines.base import StageInput
from scalebench.engines.spark.read import SparkReader, clear_errors
from scalebench.inputs import normalise_name
from scalebench.stages import EXTREMES, ID_BUCKET_WIDTH, TOP_EARNERS


class SparkTables(SparkReader):
    """etl_users, etl_points, groupby_points/age/id_bucket, sort_top_earners/active_extremes/global."""

    @clear_errors
    def etl_users(self, inp: StageInput, out: Path) -> None:
        df = self._read(inp)
        df = df.toDF(*[normalise_name(c) for c in df.columns])
        df = df.select(
            F.col("id").cast(LongType()).alias("id"),
            F.col("name").cast(StringType()).alias("name"),
            F.col("age").cast(IntegerType()).alias("age"),
            F.col("salary").cast(DoubleType()).alias("salary"),
            F.to_date("signup_date").alias("signup_date"),
            F.col("is_active").cast(BooleanType()).alias("is_active"),
        )
        self._write(df.dropna(how="any").dropDuplicates(["id"]), out, partition_by="is_active")

    @clear_errors
    def etl_points(self, inp: StageInput, out: Path) -> None:
        df = self._read(inp).select(
            F.col("id").cast(LongType()), F.col("x").cast(DoubleType()),
            F.col("y").cast(DoubleType()), F.col("category").cast(StringType()))
        self._write(df, out)

    @clear_errors
    def groupby_points(self, inp: StageInput) -> pd.DataFrame:
        df = self._read(inp).groupBy("category").agg(
            F.count(F.lit(1)).alias("count"),
            F.sum("x").alias("sum_x"), F.avg("x").alias("mean_x"),
            F.sum("y").alias("sum_y"), F.avg("y").alias("mean_y"),
        )
        return self._collect(df)

    @clear_errors
    def groupby_age(self, inp: StageInput) -> pd.DataFrame:
        df = self._read(inp).groupBy("age").agg(
            F.count(F.lit(1)).alias("count"), F.avg("salary").alias("mean_salary"))
        return self._collect(df)

    @clear_errors
    def groupby_id_bucket(self, inp: StageInput) -> pd.DataFrame:
        # `div` is SQL's integral division: an exact bigint, no round trip through double.
        bucket = F.call_function("div", F.col("id"), F.lit(ID_BUCKET_WIDTH)).alias("bucket")
        df = self._read(inp).groupBy(bucket).agg(
            F.count(F.lit(1)).alias("count"), F.sum("salary").alias("sum_salary"))
        return self._collect(df)

    @clear_errors
    def sort_top_earners(self, inp: StageInput) -> pd.DataFrame:
        # Selecting the answer's columns before the sort lets the optimizer drop the
        # other columns from the de-duplicating aggregate and from the scan.
        df = (self._read(inp).dropDuplicates(["id"]).filter(F.col("salary").isNotNull())
              .select("id", "name", "salary")
              .orderBy(F.col("salary").desc(), F.col("id").asc()).limit(TOP_EARNERS))
        return self._collect(df)

    @clear_errors
    def sort_active_extremes(self, inp: StageInput) -> pd.DataFrame:
        # Both ends come from one plan; Spark reuses the de-duplicating shuffle for both.
        active = (self._read(inp).dropDuplicates(["id"]).filter(F.col("is_active"))
                  .select("id", "name", "age"))
        youngest = (active.orderBy(F.col("age").asc(), F.col("id").asc()).limit(EXTREMES)
                    .select(F.lit("youngest").alias("end"), "id", "name", "age"))
        oldest = (active.orderBy(F.col("age").desc(), F.col("id").asc()).limit(EXTREMES)
                  .select(F.lit("oldest").alias("end"), "id", "name", "age"))
        return self._collect(youngest.unionByName(oldest))

    @clear_errors
    def sort_global(self, inp: StageInput, out: Path) -> None:
        # orderBy before a write range-partitions on (salary, id): every task writes one
        # sorted file and the files' key ranges do not overlap.
        df = self._read(inp).filter(F.col("salary").isNotNull()).orderBy("salary", "id")
        self._write(df, out)
