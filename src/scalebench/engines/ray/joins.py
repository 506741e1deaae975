"""Ray engine, joins on users and the skew queries in Ray Data.

Joins are ``Dataset.join`` (a hash-shuffle join). Ray Data has no broadcast join, so join_dim
ships the small dimension to every map task (fn_kwargs) and joins each block with pyarrow. Ray
Data has no skew remedy of its own: the skew queries run plain or salted, and 'native' is
NotApplicable.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import ray
import ray.data
from ray.data.aggregate import Count, Max, Sum

from scalebench.engines.base import StageInput
from scalebench.engines.ray.read import RayReader, summary
from scalebench.stages import SALT_BUCKETS

# -- batch functions (run inside Ray tasks; module-level so they pickle by reference) ----


def _broadcast_join(tbl: pa.Table, dim: pa.Table, key: str) -> pa.Table:
    """Map-side inner join of one block with the whole (small) dimension table."""
    return tbl.join(dim, key, join_type="inner", use_threads=False)


def _salt_copies(tbl: pa.Table) -> pa.Table:
    """The dimension side of a salted join: every row once per salt 0..SALT_BUCKETS-1."""
    return pa.concat_tables([tbl.append_column("salt", pa.array(np.full(tbl.num_rows, s, np.int64)))
                             for s in range(SALT_BUCKETS)])


def _with_salt(tbl: pa.Table) -> pa.Table:
    """`salt` = id % SALT_BUCKETS (ids are positive: id - id // n * n), spreading a hot key over
    SALT_BUCKETS groups."""
    n = pa.scalar(SALT_BUCKETS, pa.int64())
    ids = pc.cast(tbl["id"], pa.int64())
    return tbl.append_column("salt", pc.subtract(ids, pc.multiply(pc.divide(ids, n), n)))


def _bucket_sums(batch: pd.DataFrame) -> pd.DataFrame:
    """Count and sum of v per key over the bucket files named in `batch`."""
    g = pd.concat([pd.read_parquet(p, columns=["key", "v"]) for p in batch["path"]]).groupby("key", sort=False)["v"]
    return pd.DataFrame({"n": g.size(), "s": g.sum()}).reset_index()


# -- skew_groupby remedies: each gives n (count) and s (sum of v) per key -----------------


def _groupby_plain(engine: RayReader, inp: StageInput) -> ray.data.Dataset:
    """groupby(key)."""
    parts = engine._partitions(inp)
    ds = engine._read(inp, ["id", "key", "v"])
    engine._note("ray-data: groupby(key).aggregate", parts, remedy="plain")
    return ds.groupby("key", num_partitions=parts).aggregate(Count(alias_name="n"), Sum("v", alias_name="s"))


def _groupby_salted(engine: RayReader, inp: StageInput) -> ray.data.Dataset:
    """groupby(key, salt), then groupby(key) over the partials."""
    parts = engine._partitions(inp)
    ds = engine._read(inp, ["id", "key", "v"])
    engine._note("ray-data: map_batches(salt), groupby(key, salt).aggregate, groupby(key).aggregate",
                 parts, remedy="salted", salt_buckets=SALT_BUCKETS)
    partial = (ds.map_batches(_with_salt, batch_format="pyarrow", batch_size=None)
               .groupby(["key", "salt"], num_partitions=parts)
               .aggregate(Count(alias_name="n"), Sum("v", alias_name="s")))
    return partial.groupby("key", num_partitions=parts).aggregate(Sum("n", alias_name="n"), Sum("s", alias_name="s"))


def _groupby_by_key(engine: RayReader, inp: StageInput) -> ray.data.Dataset:
    """One task per bucket file (every row of a key in one file), aggregated in place."""
    buckets = inp.require_partitioned("key", "ray")
    engine._require_started()
    engine._note("ray-data: from_items(bucket files).map_batches(read + groupby per bucket)", None,
                 remedy="by_key", buckets=len(buckets))
    return (ray.data.from_items([{"path": str(f)} for f in buckets], override_num_blocks=len(buckets))
            .map_batches(_bucket_sums, batch_size=1, batch_format="pandas"))


SKEW_GROUPBY: dict[str, Callable[[RayReader, StageInput], ray.data.Dataset] | str] = {
    "plain": _groupby_plain, "salted": _groupby_salted, "by_key": _groupby_by_key,
    "native": "no 'native' groupby remedy (plain, salted or by_key)"}


# -- skew_join remedies: each gives the joined rows (v, w) --------------------------------


def _join_plain(engine: RayReader, inp: StageInput) -> ray.data.Dataset:
    """A hash-shuffle Dataset.join on key (never broadcast)."""
    parts = engine._partitions(inp)
    keys = engine._read(inp, ["id", "key", "v"])
    dim = engine._read(inp.extra["keys_dim"], ["key", "w"])
    engine._note("ray-data: join(inner, hash shuffle on key)", parts, remedy="plain")
    return keys.select_columns(["key", "v"]).join(dim, join_type="inner", num_partitions=parts, on=("key",))


def _join_salted(engine: RayReader, inp: StageInput) -> ray.data.Dataset:
    """The join on (key, salt) with the dimension copied once per salt."""
    parts = engine._partitions(inp)
    keys = engine._read(inp, ["id", "key", "v"])
    dim = engine._read(inp.extra["keys_dim"], ["key", "w"])
    engine._note("ray-data: map_batches(salt) / map_batches(dimension x salts), join(inner, hash "
                 "shuffle on key, salt)", parts, remedy="salted", salt_buckets=SALT_BUCKETS)
    salted = (keys.map_batches(_with_salt, batch_format="pyarrow", batch_size=None)
              .select_columns(["key", "salt", "v"]))
    copies = dim.map_batches(_salt_copies, batch_format="pyarrow", batch_size=None)
    return salted.join(copies, join_type="inner", num_partitions=parts, on=("key", "salt"))


SKEW_JOIN: dict[str, Callable[[RayReader, StageInput], ray.data.Dataset] | str] = {
    "plain": _join_plain, "salted": _join_salted,
    "native": (f"no 'native' skew remedy: Ray Data {ray.__version__}'s Dataset.join is a plain "
               "hash-shuffle join (no broadcast join, no adaptive split of hot partitions like Spark's "
               "AQE); salting is the user's remedy")}


class RayJoins(RayReader):
    """join_dim, join_large and the skew queries (groupby and join, by remedy)."""

    def join_dim(self, inp: StageInput) -> pd.DataFrame:
        """Ray Data has no broadcast join; its idiom is a map-side join: the 30-row dimension
        is read once (in Ray Data), put in the object store with the map function (fn_kwargs)
        and joined to every block with pyarrow, so the users table is never shuffled."""
        dim_ds = self._read(inp.extra["names_dim"], ["name", "region", "weight"])
        dim = pa.concat_tables(ray.get(dim_ds.to_arrow_refs()))
        self._note("ray-data: map_batches(pyarrow join with the dimension in fn_kwargs: broadcast), "
                   "groupby().aggregate", dim_rows=dim.num_rows)
        joined = self._read(inp, ["name", "salary"]).map_batches(
            _broadcast_join, fn_kwargs={"dim": dim, "key": "name"}, batch_format="pyarrow", batch_size=None)
        res = joined.groupby("region", num_partitions=1).aggregate(
            Count(alias_name="count"), Sum("salary", ignore_nulls=True, alias_name="sum_salary"),
            Sum("weight", alias_name="sum_weight")).to_pandas()
        return res[["region", "count", "sum_salary", "sum_weight"]]

    def join_large(self, inp: StageInput) -> pd.DataFrame:
        parts = self._partitions(inp)
        self._note("ray-data: join(inner, hash shuffle on id), groupby().aggregate", parts)
        accounts = self._read(inp.extra["accounts"], ["id", "balance"])
        users = self._read(inp, ["id", "is_active", "salary"])
        joined = users.join(accounts, join_type="inner", num_partitions=parts, on=("id",))
        res = joined.groupby("is_active", num_partitions=1).aggregate(
            Count(alias_name="count"), Sum("balance", alias_name="sum_balance"),
            Sum("salary", ignore_nulls=True, alias_name="sum_salary")).to_pandas()
        return res[["is_active", "count", "sum_balance", "sum_salary"]]

    def skew_groupby(self, inp: StageInput, remedy: str) -> pd.DataFrame:
        """Count and sum of v per key by the remedy's idiom (SKEW_GROUPBY), summed in Ray Data."""
        grouped = self.variant("skew_groupby", remedy)(self, inp)
        return summary(grouped, Count(alias_name="groups"), Sum("n", alias_name="rows"),
                       Sum("s", alias_name="sum_v"), Max("n", alias_name="max_count"))

    def skew_join(self, inp: StageInput, remedy: str) -> pd.DataFrame:
        """keys joined with keys_dim by the remedy's idiom (SKEW_JOIN), summed in Ray Data."""
        joined = self.variant("skew_join", remedy)(self, inp)
        return summary(joined, Count(alias_name="rows"), Sum("v", alias_name="sum_v"),
                       Sum("w", alias_name="sum_w"))
