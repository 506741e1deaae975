"""Spark's db-benchmark (h2o.ai) questions: each groupby question one DataFrame plan, and one
join that serves every join question (stages.H2O_JOIN_QUESTIONS)."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from scalebench.engines.base import StageInput
from scalebench.engines.spark.read import SparkReader, clear_errors
from scalebench.stages import H2O_GROUPBY_QUESTIONS, H2O_JOIN_QUESTIONS


def _q1(x: DataFrame) -> DataFrame:
    """sum v1 by id1."""
    return x.groupBy("id1").agg(F.sum("v1").alias("v1"))


def _q2(x: DataFrame) -> DataFrame:
    """sum v1 by id1:id2."""
    return x.groupBy("id1", "id2").agg(F.sum("v1").alias("v1"))


def _q3(x: DataFrame) -> DataFrame:
    """sum v1 mean v3 by id3."""
    return x.groupBy("id3").agg(F.sum("v1").alias("v1"), F.avg("v3").alias("v3"))


def _q4(x: DataFrame) -> DataFrame:
    """mean v1:v3 by id4."""
    return x.groupBy("id4").agg(*[F.avg(v).alias(v) for v in ("v1", "v2", "v3")])


def _q5(x: DataFrame) -> DataFrame:
    """sum v1:v3 by id6."""
    return x.groupBy("id6").agg(*[F.sum(v).alias(v) for v in ("v1", "v2", "v3")])


def _q6(x: DataFrame) -> DataFrame:
    """median v3 sd v3 by id4 id5. median is Spark's exact percentile(v3, 0.5) (interpolated,
    like DuckDB's), not the approximate percentile_approx; stddev_samp divides by n - 1."""
    return x.groupBy("id4", "id5").agg(F.median("v3").alias("median_v3"), F.stddev_samp("v3").alias("sd_v3"))


def _q7(x: DataFrame) -> DataFrame:
    """max v1 - min v2 by id3."""
    return x.groupBy("id3").agg((F.max("v1") - F.min("v2")).alias("range_v1_v2"))


def _q8(x: DataFrame) -> DataFrame:
    """largest two v3 by id6: row_number over a window, filtered to <= 2. Spark plans a
    per-partition WindowGroupLimit before the shuffle, so only two rows per id6 and task cross it."""
    by_v3 = Window.partitionBy("id6").orderBy(F.col("v3").desc())
    return (x.filter(F.col("v3").isNotNull()).select("id6", "v3", F.row_number().over(by_v3).alias("rank"))
            .filter(F.col("rank") <= 2).select("id6", F.col("v3").alias("largest2_v3")))


def _q9(x: DataFrame) -> DataFrame:
    """regression v1 v2 by id2 id4: corr(v1, v2) squared."""
    return x.groupBy("id2", "id4").agg(F.pow(F.corr("v1", "v2"), 2).alias("r2"))


def _q10(x: DataFrame) -> DataFrame:
    """sum v3 count by id1:id6."""
    return x.groupBy("id1", "id2", "id3", "id4", "id5", "id6").agg(
        F.sum("v3").alias("v3"), F.count(F.lit(1)).alias("count"))


GROUPBY_QUESTIONS: dict[str, Callable[[DataFrame], DataFrame]] = {
    "q1": _q1, "q2": _q2, "q3": _q3, "q4": _q4, "q5": _q5, "q6": _q6, "q7": _q7, "q8": _q8, "q9": _q9, "q10": _q10}
"""db-benchmark groupby question -> the grouped DataFrame of the input x."""


def _join(x: DataFrame, right: DataFrame, key: str, how: str) -> DataFrame:
    """x.join(right, key, how) as written: Spark picks broadcast or sort-merge by size (and AQE
    may switch at run time); the plan's choice goes into last_notes. Answered as its row count
    and the sums of v1 and v2."""
    joined = x.join(right, on=key, how=how)
    return joined.agg(F.count(F.lit(1)).alias("rows"), F.sum("v1").alias("sum_v1"), F.sum("v2").alias("sum_v2"))


JOIN_QUESTIONS: dict[str, Callable[[DataFrame, DataFrame, str, str], DataFrame]] = dict.fromkeys(
    H2O_JOIN_QUESTIONS, _join)
"""db-benchmark join question -> the one join, given x, the question's right table, key and how."""


class SparkDbBenchmark(SparkReader):
    """db-benchmark's groupby and join questions, answered as db-benchmark checks them."""

    @clear_errors
    def h2o_groupby(self, inp: StageInput, question: str) -> pd.DataFrame:
        """db-benchmark's check, computed in Spark over the grouped result: its row count and
        each answer column's sum (q9 skips undefined r2: Spark's corr is null or NaN there)."""
        grouped = GROUPBY_QUESTIONS[question](self._read(inp))
        measures = []
        for name in H2O_GROUPBY_QUESTIONS[question]:
            col = F.col(name)
            if name == "r2":
                col = F.when(~F.isnan(col), col)
            measures.append(F.sum(col).alias(name))
        summary = grouped.agg(F.count(F.lit(1)).alias("rows"), *measures)
        return self._answer(summary, {"idiom": "groupBy().agg(); the check's count and sums in Spark"})

    @clear_errors
    def h2o_join(self, inp: StageInput, question: str) -> pd.DataFrame:
        """The question's right table, key and how from stages.H2O_JOIN_QUESTIONS, joined as written."""
        table, key, how = H2O_JOIN_QUESTIONS[question]
        df = JOIN_QUESTIONS[question](self._read(inp), self._read(inp.extra[table]), key, how)
        return self._answer(df, {"idiom": f"x.join({table}, {key!r}, {how!r}); Spark chooses the join"})
