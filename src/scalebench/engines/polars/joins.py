"""polars joins (join_dim, join_large) and the skew queries. polars has one join, a hash join that
its streaming engine partitions over its threads (no broadcast or shuffle choice to make). Salting
spreads a hot key over those partitions; the by-key layout aggregates each bucket file where it lies;
polars has no skew remedy of its own."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import polars as pl

from scalebench.engines.base import StageInput
from scalebench.engines.polars.read import PolarsReader, scan_parquet
from scalebench.engines.polars.tables import count
from scalebench.stages import SALT_BUCKETS

n, s, v, w = pl.col("n"), pl.col("s"), pl.col("v"), pl.col("w")


def _per_key(lf: pl.LazyFrame, *keys: str) -> pl.LazyFrame:
    return lf.group_by(*keys).agg(pl.len().cast(pl.Int64).alias("n"), v.sum().alias("s"))


def _salt() -> pl.Expr:
    return (pl.col("id") % SALT_BUCKETS).alias("salt")


# -- skew remedies: each gives the per-key rows (key, n, s) or the joined rows (v, w) -----------------
def _groupby_plain(engine: PolarsJoins, inp: StageInput) -> pl.LazyFrame:
    return _per_key(engine._frame(inp).select("key", "v"), "key")


def _groupby_salted(engine: PolarsJoins, inp: StageInput) -> pl.LazyFrame:
    """Per (key, salt) first, so a hot key's rows spread over SALT_BUCKETS groups, then per key."""
    partial = _per_key(engine._frame(inp).select("key", "v", _salt()), "key", "salt")
    return partial.group_by("key").agg(n.sum(), s.sum())


def _groupby_by_key(engine: PolarsJoins, inp: StageInput) -> pl.LazyFrame:
    """Each bucket file aggregated on its own, the results concatenated: every key's rows lie in one
    bucket, so each key's total is final where it is and nothing is combined across buckets."""
    buckets = inp.require_partitioned("key", "polars")
    engine.last_notes.update(mode="bucket by bucket", buckets=len(buckets))
    return pl.concat([_per_key(scan_parquet([f], inp.dataset).select("key", "v"), "key") for f in buckets])


def _join_plain(engine: PolarsJoins, inp: StageInput) -> pl.LazyFrame:
    keys = engine._frame(inp).select("key", "v")
    return keys.join(engine._frame(inp.extra["keys_dim"]).select("key", "w"), on="key", how="inner")


def _join_salted(engine: PolarsJoins, inp: StageInput) -> pl.LazyFrame:
    """Each dimension row copied once per salt (a cross join with the salts), joined on (key, salt)."""
    keys = engine._frame(inp).select("key", "v", _salt())
    salts = pl.LazyFrame({"salt": pl.int_range(SALT_BUCKETS, dtype=pl.Int64, eager=True)})
    dim = engine._frame(inp.extra["keys_dim"]).select("key", "w").join(salts, how="cross")
    return keys.join(dim, on=["key", "salt"], how="inner")


def _no_remedy(op: str) -> str:
    return (f"runs one hash join or hash group-by in one process, its streaming engine partitioning it over "
            f"its threads: no native skew remedy for {op}")


# a str is the reason polars has no form of the remedy; Engine.variant prefixes "polars: "
SKEW_GROUPBY: dict[str, Callable[..., pl.LazyFrame] | str] = {
    "plain": _groupby_plain, "salted": _groupby_salted, "by_key": _groupby_by_key,
    "native": _no_remedy("groupby (native)")}
SKEW_JOIN: dict[str, Callable[..., pl.LazyFrame] | str] = {
    "plain": _join_plain, "salted": _join_salted, "native": _no_remedy("join (native)")}


class PolarsJoins(PolarsReader):
    def join_dim(self, inp: StageInput) -> pd.DataFrame:
        """No broadcast hint in polars: the 30-row dimension is the hash join's build side."""
        self.last_notes["idiom"] = "join() with the dimension, then group_by"
        users = self._frame(inp).select("name", "salary")
        dim = self._frame(inp.extra["names_dim"]).select("name", "region", "weight")
        return self._collect(users.join(dim, on="name", how="inner").group_by("region").agg(
            count(), pl.col("salary").sum().alias("sum_salary"), pl.col("weight").sum().alias("sum_weight")), inp)

    def join_large(self, inp: StageInput) -> pd.DataFrame:
        users = self._frame(inp).select("id", "salary", "is_active")
        accounts = self._frame(inp.extra["accounts"]).select("id", "balance")
        return self._collect(users.join(accounts, on="id", how="inner").group_by("is_active").agg(
            count(), pl.col("balance").sum().alias("sum_balance"), pl.col("salary").sum().alias("sum_salary")), inp)

    def skew_groupby(self, inp: StageInput, remedy: str) -> pd.DataFrame:
        """Per key count and sum of v (the remedy's way), then summarised over the keys."""
        per_key = self.variant("skew_groupby", remedy)(self, inp)
        self.last_notes["remedy"] = remedy
        return self._collect(per_key.select(
            pl.len().cast(pl.Int64).alias("groups"), n.sum().alias("rows"), s.sum().alias("sum_v"),
            n.max().alias("max_count")), inp)

    def skew_join(self, inp: StageInput, remedy: str) -> pd.DataFrame:
        joined = self.variant("skew_join", remedy)(self, inp)
        self.last_notes["remedy"] = remedy
        return self._collect(joined.select(
            pl.len().cast(pl.Int64).alias("rows"), v.sum().alias("sum_v"), w.sum().alias("sum_w")), inp)
