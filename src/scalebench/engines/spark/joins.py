"""Spark's joins on users (join_dim, join_large) and the skew queries, one function per remedy."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from scalebench.engines.base import StageInput
from scalebench.engines.spark.read import SparkReader, clear_errors
from scalebench.stages import SALT_BUCKETS

SKEW_JOIN_SETTINGS: dict[str, str] = {
    "spark.sql.adaptive.skewJoin.skewedPartitionFactor": "2.0",
    "spark.sql.adaptive.skewJoin.skewedPartitionThresholdInBytes": "1MB",
    "spark.sql.adaptive.advisoryPartitionSizeInBytes": "1MB",
}
"""AQE's skew join as skew_join(remedy='native') runs it. Spark's defaults (factor 5, 256 MB,
64 MB pieces) are sized for 200 shuffle partitions of big data: with our few partitions the
hot key's partition is only ~3x the median, and nothing below 256 MB is ever split, so at
benchmark sizes they would never act. Here a partition is skewed at 2x the median and 1 MB,
and is split into pieces of max(advisory, mean non-skewed partition) (Spark's own rule), i.e.
about the size of an ordinary partition."""
BROADCAST_OFF: dict[str, str] = {"spark.sql.autoBroadcastJoinThreshold": "-1",
                                 "spark.sql.adaptive.autoBroadcastJoinThreshold": "-1"}
"""skew_join: broadcast off, so the hot key's rows meet in one task of a sort-merge join."""


class SparkJoins(SparkReader):
    """Joins on users and the skewed-key queries."""

    @contextlib.contextmanager
    def _settings(self, settings: dict[str, str]) -> Iterator[None]:
        """Session settings for one query, restored afterwards: one session serves every query."""
        conf = self._session.conf
        saved = {key: conf.get(key, None) for key in settings}

        def restore() -> None:
            for key, value in saved.items():
                if value is None:
                    conf.unset(key)
                else:
                    conf.set(key, value)

        try:
            for key, value in settings.items():
                conf.set(key, value)
            yield
        except BaseException:
            with contextlib.suppress(Exception):  # a dead JVM must not hide the query's own error
                restore()
            raise
        restore()

    @clear_errors
    def join_dim(self, inp: StageInput) -> pd.DataFrame:
        """The 30-row dimension joined with the broadcast() hint: no shuffle of the users."""
        users, dim = self._read(inp), self._read(inp.extra["names_dim"])
        df = users.join(F.broadcast(dim), "name").groupBy("region").agg(
            F.count(F.lit(1)).alias("count"), F.sum("salary").alias("sum_salary"), F.sum("weight").alias("sum_weight"))
        return self._answer(df, {"idiom": "users.join(F.broadcast(names_dim), 'name')"})

    @clear_errors
    def join_large(self, inp: StageInput) -> pd.DataFrame:
        """Two tables of one row per id, joined with the 'merge' hint: the shuffle (sort-merge) join
        this query measures. Unhinted, Spark (and AQE at run time) broadcasts accounts while it is
        under 10 MB, which at 1M rows it still is."""
        users, accounts = self._read(inp), self._read(inp.extra["accounts"])
        df = users.join(accounts.hint("merge"), "id").groupBy("is_active").agg(
            F.count(F.lit(1)).alias("count"), F.sum("balance").alias("sum_balance"),
            F.sum("salary").alias("sum_salary"))
        return self._answer(df, {"idiom": "users.join(accounts.hint('merge'), 'id'): a sort-merge shuffle join"})

    @clear_errors
    def skew_groupby(self, inp: StageInput, remedy: str) -> pd.DataFrame:
        """Per key count and sum, summarised as groups, rows, sum_v and max_count. Spark aggregates
        map-side before every shuffle (one row per key and task), so a hot key costs little;
        salting adds a (key, salt) pre-aggregate and a second shuffle. There is no other native
        remedy for a groupBy (AQE's is for joins)."""
        return self.variant("skew_groupby", remedy)(self, inp)

    @clear_errors
    def skew_join(self, inp: StageInput, remedy: str) -> pd.DataFrame:
        """keys.join(keys_dim, 'key') as a sort-merge join (broadcast off for this query, so the hot
        key's rows meet in one task), answered as rows, sum_v and sum_w; the remedy decides the join
        and whether AQE's skew join is on."""
        keys, dim = self._read(inp), self._read(inp.extra["keys_dim"])
        joined, idiom, aqe_skew = self.variant("skew_join", remedy)(keys, dim)
        settings = {**BROADCAST_OFF, "spark.sql.adaptive.skewJoin.enabled": "true" if aqe_skew else "false",
                    **aqe_skew}
        notes: dict[str, Any] = {"remedy": remedy, "broadcast": "off (autoBroadcastJoinThreshold=-1)", **idiom}
        df = joined.agg(F.count(F.lit(1)).alias("rows"), F.sum("v").alias("sum_v"), F.sum("w").alias("sum_w"))
        with self._settings(settings):
            return self._answer(df, notes)


# -- skew_groupby remedies: (engine, input) -> the answer ------------------------------------
def _per_key() -> tuple[Any, Any]:
    return F.count(F.lit(1)).alias("n"), F.sum("v").alias("s")


def _summary(grouped: DataFrame) -> DataFrame:
    """The answer of every remedy: groups, rows, sum_v and the largest group's count."""
    return grouped.agg(F.count(F.lit(1)).alias("groups"), F.sum("n").alias("rows"),
                       F.sum("s").alias("sum_v"), F.max("n").alias("max_count"))


def _groupby_plain(engine: SparkJoins, inp: StageInput) -> pd.DataFrame:
    """groupBy('key'): Spark's partial aggregate map-side is its own skew remedy."""
    grouped = engine._read(inp).groupBy("key").agg(*_per_key())
    return engine._answer(_summary(grouped), {"remedy": "plain",
                                              "idiom": "groupBy('key').agg() (partial aggregate map-side)"})


def _groupby_salted(engine: SparkJoins, inp: StageInput) -> pd.DataFrame:
    """A (key, id % SALT_BUCKETS) pre-aggregate, then per key: a hot key spreads over salts."""
    keys = engine._read(inp)
    partial = keys.withColumn("salt", F.col("id") % SALT_BUCKETS).groupBy("key", "salt").agg(*_per_key())
    grouped = partial.groupBy("key").agg(F.sum("n").alias("n"), F.sum("s").alias("s"))
    return engine._answer(_summary(grouped), {
        "remedy": "salted", "idiom": f"groupBy('key', id % {SALT_BUCKETS}).agg() then groupBy('key').agg()",
        "salt_buckets": SALT_BUCKETS})


def _groupby_by_key(engine: SparkJoins, inp: StageInput) -> pd.DataFrame:
    """A scan partition never splits a file (maxPartitionBytes above the largest bucket file), so
    each task holds whole keys and aggregates them itself in mapInPandas: no Exchange of rows or
    partial aggregates, only the one-row summary at the end."""
    buckets = inp.require_partitioned("key", "spark")
    whole_files = str(max(f.stat().st_size for f in buckets) + 1)
    with engine._settings({"spark.sql.files.maxPartitionBytes": whole_files}):
        grouped = engine._read(inp).select("key", "v").mapInPandas(_sums_by_key, "key long, n long, s double")
        return engine._answer(_summary(grouped), {"remedy": "by_key", "buckets": len(buckets),
                                                  "idiom": "whole bucket files per task, mapInPandas(groupby)"})


def _sums_by_key(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """mapInPandas: count and sum of v per key over all of a task's Arrow batches."""
    partials = [b.groupby("key", sort=False)["v"].agg(["size", "sum"]) for b in batches]
    if partials:
        t = pd.concat(partials).groupby(level=0, sort=False).sum()
        yield pd.DataFrame({"key": t.index.to_numpy(), "n": t["size"].to_numpy(), "s": t["sum"].to_numpy()})


SKEW_GROUPBY: dict[str, Callable[[SparkJoins, StageInput], pd.DataFrame] | str] = {
    "plain": _groupby_plain, "salted": _groupby_salted, "by_key": _groupby_by_key,
    "native": "a groupBy's own skew remedy is the map-side partial aggregate it always does (the plain "
              "query); AQE's skew handling splits joins only"}


# -- skew_join remedies: (keys, keys_dim) -> (the join, its idiom notes, AQE skew settings) -----
JoinRemedy = Callable[[DataFrame, DataFrame], tuple[DataFrame, dict[str, Any], dict[str, str]]]


def _join_plain(keys: DataFrame, dim: DataFrame) -> tuple[DataFrame, dict[str, Any], dict[str, str]]:
    """The join as written, AQE's skew join off: the hot key's rows meet in one task."""
    return keys.join(dim, "key"), {"idiom": "keys.join(keys_dim, 'key'), AQE skew join off"}, {}


def _join_salted(keys: DataFrame, dim: DataFrame) -> tuple[DataFrame, dict[str, Any], dict[str, str]]:
    """Join on (key, id % SALT_BUCKETS) against the dimension exploded once per salt."""
    salts = F.explode(F.sequence(F.lit(0), F.lit(SALT_BUCKETS - 1)))
    joined = keys.withColumn("salt", F.col("id") % SALT_BUCKETS).join(dim.withColumn("salt", salts), ["key", "salt"])
    return joined, {"idiom": "keys(+salt = id % B).join(keys_dim exploded over salts 0..B-1, ['key', 'salt'])",
                    "salt_buckets": SALT_BUCKETS}, {}


def _join_native(keys: DataFrame, dim: DataFrame) -> tuple[DataFrame, dict[str, Any], dict[str, str]]:
    """AQE's skew join, which splits an oversized shuffle partition into pieces each joined with
    a copy of the other side's matching partition (SKEW_JOIN_SETTINGS)."""
    notes = {"idiom": "keys.join(keys_dim, 'key') with AQE skew join on",
             "aqe_skew": {k.removeprefix("spark.sql.adaptive."): v for k, v in SKEW_JOIN_SETTINGS.items()}}
    return keys.join(dim, "key"), notes, SKEW_JOIN_SETTINGS


SKEW_JOIN: dict[str, JoinRemedy | str] = {"plain": _join_plain, "salted": _join_salted, "native": _join_native}
