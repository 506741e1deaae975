"""Dask joins on users (a broadcast of a small dimension, a shuffle join of two large tables) and
the skew stage: one function per remedy in SKEW_GROUPBY / SKEW_JOIN (the partition stage's
layout 'by_key' is a groupby remedy too)."""

from __future__ import annotations

from collections.abc import Callable

import dask.dataframe as dd
import numpy as np
import pandas as pd
from dask.utils import get_default_shuffle_method

from scalebench.engines.base import StageInput, later
from scalebench.engines.dask.cluster import on_cluster
from scalebench.engines.dask.read import DaskReader, one_row, plan
from scalebench.stages import SALT_BUCKETS

Frames = tuple[dd.DataFrame, dd.DataFrame]
"""A groupby remedy's input frame (for its partition count) and its grouped result (n, s)."""


class DaskJoins(DaskReader):
    """Joins and the skew remedies, each finished by one compute of its answer row."""

    @on_cluster
    def join_dim(self, inp: StageInput) -> pd.DataFrame:
        """merge(broadcast=True): the 30-row dimension goes to every users partition, which never
        moves; then a tree reduction per region."""
        users = self._users(inp)[["name", "salary"]]
        dim = self._table(inp.extra["names_dim"])
        joined = users.merge(dim, on="name", how="inner", broadcast=True)
        res = joined.groupby("region").agg(count=("salary", "size"), sum_salary=("salary", "sum"),
                                           sum_weight=("weight", "sum"))
        out = res.compute().reset_index()
        self.last_notes = {"partitions": {"users": users.npartitions, "names_dim": dim.npartitions},
                           "plan": later(plan, joined), "idiom": "merge(broadcast=True)"}
        return out

    @on_cluster
    def join_large(self, inp: StageInput) -> pd.DataFrame:
        """A shuffle join of two tables of similar size: both sides hash-partitioned on id into
        max(partitions, threads) partitions (P2P shuffles), merged partition by partition
        (_shuffle_join), then a tree reduction per is_active."""
        users = self._users(inp)[["id", "salary", "is_active"]]
        accounts = self._table(inp.extra["accounts"])
        n = max(users.npartitions, accounts.npartitions, self._threads())
        joined = _shuffle_join(users, accounts, "id", n)
        res = joined.groupby("is_active").agg(count=("id", "size"), sum_balance=("balance", "sum"),
                                              sum_salary=("salary", "sum"))
        out = res.compute().reset_index()
        self.last_notes = {"partitions": {"users": users.npartitions, "accounts": accounts.npartitions},
                           "plan": later(plan, joined), "shuffle_method": get_default_shuffle_method()}
        return out

    # -- skew ------------------------------------------------------------------------
    @on_cluster
    def skew_groupby(self, inp: StageInput, remedy: str) -> pd.DataFrame:
        """Per key count and sum(v), by the remedy's function in SKEW_GROUPBY.
        Dask has no other groupby skew remedy (its map-side combine is what salting imitates)."""
        keys, res = self.variant("skew_groupby", remedy)(self, inp)
        answer = one_row(groups=res.shape[0], rows=res["n"].sum(), sum_v=res["s"].sum(), max_count=res["n"].max())
        self.last_notes = {"remedy": remedy, "partitions": keys.npartitions, "plan": later(plan, res),
                           "result_partitions": res.npartitions,
                           "idiom": ("from_map(one bucket file per partition).map_partitions(groupby)"
                                     if remedy == "by_key" else
                                     "groupby.agg split_out=True (partial aggregates, hash shuffle)"),
                           "shuffle_method": "none" if remedy == "by_key" else get_default_shuffle_method(),
                           **({"salt_buckets": SALT_BUCKETS} if remedy == "salted" else {})}
        return answer

    @on_cluster
    def skew_join(self, inp: StageInput, remedy: str) -> pd.DataFrame:
        """keys ⋈ keys_dim on key, in max(partitions, threads) partitions, by the remedy's
        function in SKEW_JOIN."""
        keys = self._table(inp)[["id", "key", "v"]]
        dim = self._table(inp.extra["keys_dim"])
        parts = {"keys": keys.npartitions, "keys_dim": dim.npartitions}
        joined = self.variant("skew_join", remedy)(self, keys, dim)
        answer = one_row(rows=joined.shape[0], sum_v=joined["v"].sum(), sum_w=joined["w"].sum())
        self.last_notes = {"remedy": remedy, "partitions": parts, "plan": later(plan, joined),
                           "result_partitions": joined.npartitions, "shuffle_method": get_default_shuffle_method(),
                           **({"salt_buckets": SALT_BUCKETS} if remedy == "salted" else {})}
        return answer


def _groupby_plain(engine: DaskJoins, inp: StageInput) -> Frames:
    """groupby.agg with split_out=True (rows/100 keys, as in groupby_id_bucket): each partition
    pre-aggregates before the shuffle, so the hot key moves as one row per partition."""
    keys = engine._table(inp)[["id", "key", "v"]]
    return keys, keys.groupby("key").agg(n=("v", "size"), s=("v", "sum"), split_out=True)


def _groupby_salted(engine: DaskJoins, inp: StageInput) -> Frames:
    """The same two-phase, on (key, salt) and then on key."""
    # no named aggregation in the first phase: Dask 2026.8 then fails the second groupby
    # with KeyError "['key' 'salt'] not in index" (RenameFrame looks for the shuffle keys,
    # which are index levels here, among the columns)
    keys = engine._table(inp)[["id", "key", "v"]]
    salted = keys.assign(salt=keys["id"] % SALT_BUCKETS)
    partial = salted.groupby(["key", "salt"])["v"].agg(["size", "sum"], split_out=True)
    return keys, partial.reset_index().groupby("key").agg(n=("size", "sum"), s=("sum", "sum"), split_out=True)


def _groupby_by_key(engine: DaskJoins, inp: StageInput) -> Frames:
    """The partition stage's layout: every row of a key in one bucket file, so one partition per
    file, aggregated in place (no shuffle)."""
    buckets = [str(f) for f in inp.require_partitioned("key", "dask")]
    keys = dd.from_map(_read_key_v, buckets, enforce_metadata=False)
    return keys, keys.map_partitions(_sums_by_key, meta=_sums_by_key(keys._meta))


def _join_plain(engine: DaskJoins, keys: dd.DataFrame, dim: dd.DataFrame) -> dd.DataFrame:
    """A shuffle join (_shuffle_join: both sides hash-partitioned on key by P2P shuffles, then
    merged partition by partition): the hot key lands in one partition."""
    return _shuffle_join(keys, dim, "key", max(keys.npartitions, dim.npartitions, engine._threads()))


def _join_salted(engine: DaskJoins, keys: dd.DataFrame, dim: dd.DataFrame) -> dd.DataFrame:
    """The same on (key, salt), each dimension row replicated once per salt, so the hot key
    spreads over up to SALT_BUCKETS partitions."""
    keys = keys.assign(salt=keys["id"] % SALT_BUCKETS)
    dim = dim.map_partitions(_with_salts, meta=_with_salts(dim._meta))
    return _shuffle_join(keys, dim, ["key", "salt"], max(keys.npartitions, dim.npartitions, engine._threads()))


def _join_native(engine: DaskJoins, keys: dd.DataFrame, dim: dd.DataFrame) -> dd.DataFrame:
    """Dask's own remedy for a skewed key against a small table is the broadcast join (merge
    broadcast=True): the keys partitions never move, so no partition collects the hot key. Its
    shuffle methods (p2p, the default here, and tasks) both hash-partition, so choosing between
    them does not address skew."""
    return keys.merge(dim, on="key", how="inner", broadcast=True)


SKEW_GROUPBY: dict[str, Callable[[DaskJoins, StageInput], Frames] | str] = {
    "plain": _groupby_plain, "salted": _groupby_salted, "by_key": _groupby_by_key,
    "native": "no native groupby skew remedy; every groupby.agg already combines "
              "each partition before its shuffle (what salting imitates)"}
SKEW_JOIN: dict[str, Callable[[DaskJoins, dd.DataFrame, dd.DataFrame], dd.DataFrame] | str] = {
    "plain": _join_plain, "salted": _join_salted, "native": _join_native}


def _read_key_v(path: str) -> pd.DataFrame:
    return pd.read_parquet(path, columns=["key", "v"])


def _sums_by_key(df: pd.DataFrame) -> pd.DataFrame:
    """Count and sum of v per key of one partition, the key as a column."""
    g = df.groupby("key", sort=False)["v"]
    return pd.DataFrame({"n": g.size(), "s": g.sum()}).reset_index()


def _with_salts(dim: pd.DataFrame) -> pd.DataFrame:
    """Each dimension row once per salt 0..SALT_BUCKETS-1 (the salted join's replication)."""
    return dim.merge(pd.DataFrame({"salt": np.arange(SALT_BUCKETS, dtype="int64")}), how="cross")


def _shuffle_join(left: dd.DataFrame, right: dd.DataFrame, on: str | list[str], npartitions: int) -> dd.DataFrame:
    """Inner join by hash partitioning: shuffle both sides on the key into `npartitions`, then
    merge the co-partitioned frames partition by partition. Written out because merge(broadcast=
    False) alone still joins blockwise, with no shuffle, when a side is one partition, and Dask
    fuses a narrow read of two Parquet files into one partition."""
    return left.shuffle(on=on, npartitions=npartitions).merge(
        right.shuffle(on=on, npartitions=npartitions), on=on, how="inner", broadcast=False)
