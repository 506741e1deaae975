"""Ray engine, db-benchmark: the groupby questions and the join questions in Ray Data.

Groupbys are ``groupby().aggregate`` (a hash shuffle). Ray Data has no top-k per group (q8:
per-block top-2, hash repartition on id6, top-2 again) and no correlation aggregate (q9: grouped
sums, then r2). Joins are ``Dataset.join`` (a hash-shuffle join; it needs ``polars``, which
ray[data] does not pull in). Answers are materialised inside the timer as db-benchmark does
(scalebench.answers): small ones collected with ``to_pandas()``, large ones (q10, the joins)
``materialize()``d in the object store and counted, fetched and released after the timer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import ray.data
from ray.data.aggregate import Count, Max, Mean, Min, Quantile, Std, Sum
from ray.data.dataset import MaterializedDataset
from ray.data.expressions import col

from scalebench.answers import Held, held
from scalebench.engines.base import StageInput
from scalebench.engines.ray.read import RayReader
from scalebench.stages import H2O_JOIN_ANSWER, H2O_JOIN_QUESTIONS, H2O_JOIN_X, h2o_groupby_answer

# -- batch functions (run inside Ray tasks; module-level so they pickle by reference) ----


def _largest2_v3(tbl: pa.Table) -> pa.Table:
    """h2o q8 on one block: the two largest non-null v3 of every id6 in it, vectorised.

    Run per input block first (pre-aggregation: at most two rows per id6 and block go into
    the shuffle) and again per block after the hash repartition on id6, where each id6 is
    whole in one block, which makes the result exact.
    """
    tbl = tbl.select(["id6", "v3"])
    tbl = tbl.filter(pc.is_valid(tbl["v3"]))
    if tbl.num_rows == 0:
        return tbl
    tbl = tbl.sort_by([("id6", "ascending"), ("v3", "descending")])
    ids = tbl["id6"].to_numpy()
    n = len(ids)
    starts = np.flatnonzero(np.concatenate([[True], ids[1:] != ids[:-1]]))
    rank = np.arange(n) - np.repeat(starts, np.diff(np.append(starts, n)))
    return tbl.filter(pa.array(rank < 2))


def _r2_of_sums(tbl: pa.Table) -> pa.Table:
    """h2o q9 per group: its keys and corr(v1, v2)**2 from the grouped sums over the complete
    (v1, v2) pairs (n, sx, sy, sxx, syy, sxy); null where it is undefined (no pair, a single
    one, or a constant v1 or v2 in the group). A group with no pair has null sums: read as 0."""
    n, sx, sy, sxx, syy, sxy = (pc.fill_null(tbl[c], 0).to_numpy().astype(np.float64)
                                for c in ("n", "sx", "sy", "sxx", "syy", "sxy"))
    cov, vx, vy = n * sxy - sx * sy, n * sxx - sx * sx, n * syy - sy * sy
    valid = (vx > 0) & (vy > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(valid, cov * cov / (vx * vy), np.nan)
    return pa.table({"id2": tbl["id2"], "id4": tbl["id4"], "r2": pa.array(r2, pa.float64(), mask=~valid)})


def _with_products(tbl: pa.Table) -> pa.Table:
    """h2o q9's v1*v1, v2*v2 and v1*v2, for exact integer sums per group, over complete pairs
    only (corr's rule): v1 and v2 are made null where either is, and the sums skip nulls."""
    both = pc.and_(pc.is_valid(tbl["v1"]), pc.is_valid(tbl["v2"]))
    v1, v2 = (pc.if_else(both, tbl[c], pa.scalar(None, tbl[c].type)) for c in ("v1", "v2"))
    tbl = tbl.set_column(tbl.column_names.index("v1"), "v1", v1).set_column(tbl.column_names.index("v2"), "v2", v2)
    return (tbl.append_column("v1v1", pc.multiply(v1, v1)).append_column("v2v2", pc.multiply(v2, v2))
            .append_column("v1v2", pc.multiply(v1, v2)))


# -- the groupby questions: each builds the grouped dataset; h2o_groupby materialises it --


def _grouped(engine: RayReader, inp: StageInput, keys: list[str], values: list[str], *aggs: Any) -> ray.data.Dataset:
    """groupby(keys).aggregate(aggs) over the needed columns, ROWS_PER_SHUFFLE_PARTITION rows a partition."""
    parts = engine._partitions(inp)
    engine._note("ray-data: groupby().aggregate (hash shuffle)", parts)
    return engine._read(inp, [*keys, *values]).groupby(keys, num_partitions=parts).aggregate(*aggs)


def _q1(engine: RayReader, inp: StageInput) -> ray.data.Dataset:
    return _grouped(engine, inp, ["id1"], ["v1"], Sum("v1", alias_name="v1"))


def _q2(engine: RayReader, inp: StageInput) -> ray.data.Dataset:
    return _grouped(engine, inp, ["id1", "id2"], ["v1"], Sum("v1", alias_name="v1"))


def _q3(engine: RayReader, inp: StageInput) -> ray.data.Dataset:
    return _grouped(engine, inp, ["id3"], ["v1", "v3"], Sum("v1", alias_name="v1"), Mean("v3", alias_name="v3"))


def _q4(engine: RayReader, inp: StageInput) -> ray.data.Dataset:
    return _grouped(engine, inp, ["id4"], ["v1", "v2", "v3"], *(Mean(v, alias_name=v) for v in ("v1", "v2", "v3")))


def _q5(engine: RayReader, inp: StageInput) -> ray.data.Dataset:
    return _grouped(engine, inp, ["id6"], ["v1", "v2", "v3"], *(Sum(v, alias_name=v) for v in ("v1", "v2", "v3")))


def _q6(engine: RayReader, inp: StageInput) -> ray.data.Dataset:
    """Quantile(q=0.5) is exact (pyarrow's linear-interpolated quantile over the group's
    values); Std(ddof=1) the sample sd, NaN for a one-row group (SQL's null; both mean undefined)."""
    return _grouped(engine, inp, ["id4", "id5"], ["v3"], Quantile("v3", q=0.5, alias_name="median_v3"),
                    Std("v3", ddof=1, alias_name="sd_v3"))


def _q7(engine: RayReader, inp: StageInput) -> ray.data.Dataset:
    grouped = _grouped(engine, inp, ["id3"], ["v1", "v2"], Max("v1", alias_name="max_v1"),
                       Min("v2", alias_name="min_v2"))
    return grouped.with_column("range_v1_v2", col("max_v1") - col("min_v2"))


def _q8(engine: RayReader, inp: StageInput) -> ray.data.Dataset:
    """Ray Data has no top-k per group: a vectorised top-2 per block (pre-aggregation), a hash
    repartition on id6 (one id6 never spans two blocks, as for map_groups), top-2 again."""
    parts = engine._partitions(inp)
    engine._note("ray-data: map_batches(top-2 per id6 and block), repartition(keys=id6), "
                 "map_batches(top-2)", parts)
    return (engine._read(inp, ["id6", "v3"])
            .map_batches(_largest2_v3, batch_format="pyarrow", batch_size=None)
            .repartition(parts, keys=["id6"])
            .map_batches(_largest2_v3, batch_format="pyarrow", batch_size=None)
            .rename_columns({"v3": "largest2_v3"}))


def _q9(engine: RayReader, inp: StageInput) -> ray.data.Dataset:
    """No correlation aggregate in Ray Data: the group sums of v1, v2, their squares and
    product over complete pairs (exact integer sums), then r2 per group; every group is kept,
    with a null r2 where it is undefined."""
    parts = engine._partitions(inp)
    engine._note("ray-data: map_batches(pairs, products), groupby().aggregate(Count, Sum x5), map_batches(r2)", parts)
    ds = engine._read(inp, ["id2", "id4", "v1", "v2"]).map_batches(_with_products, batch_format="pyarrow",
                                                                   batch_size=None)
    sums = ds.groupby(["id2", "id4"], num_partitions=parts).aggregate(
        Count("v1v2", ignore_nulls=True, alias_name="n"), Sum("v1", alias_name="sx"), Sum("v2", alias_name="sy"),
        Sum("v1v1", alias_name="sxx"), Sum("v2v2", alias_name="syy"), Sum("v1v2", alias_name="sxy"))
    return sums.map_batches(_r2_of_sums, batch_format="pyarrow", batch_size=None)


def _q10(engine: RayReader, inp: StageInput) -> ray.data.Dataset:
    keys = ["id1", "id2", "id3", "id4", "id5", "id6"]
    return _grouped(engine, inp, keys, ["v3"], Sum("v3", alias_name="v3"), Count(alias_name="count"))


GROUPBY_QUESTIONS: dict[str, Callable[[RayReader, StageInput], ray.data.Dataset]] = {
    "q1": _q1, "q2": _q2, "q3": _q3, "q4": _q4, "q5": _q5, "q6": _q6, "q7": _q7, "q8": _q8, "q9": _q9,
    "q10": _q10}
"""Each groupby question's grouped dataset, by question (stages.H2O_GROUPBY_QUESTIONS)."""


# -- the join questions -------------------------------------------------------------


def _h2o_join(engine: RayReader, inp: StageInput, question: str) -> ray.data.Dataset:
    """Dataset.join (a hash-shuffle join of both sides on the key): every column of x, the right
    table's key and v2; then the answer's columns (stages.H2O_JOIN_ANSWER) in order."""
    table, key, how = H2O_JOIN_QUESTIONS[question]
    parts = engine._partitions(inp)
    right = engine._read(inp.extra[table], [key, "v2"])
    x = engine._read(inp, list(H2O_JOIN_X))
    join_type = {"inner": "inner", "left": "left_outer"}[how]
    engine._note(f"ray-data: join({join_type}, hash shuffle on {key})", parts, right_rows=inp.extra[table].rows)
    joined = x.join(right, join_type=join_type, num_partitions=parts, on=(key,))
    return joined.select_columns(list(H2O_JOIN_ANSWER))


JOIN_QUESTIONS: dict[str, Callable[[RayReader, StageInput, str], ray.data.Dataset]] = dict.fromkeys(
    H2O_JOIN_QUESTIONS, _h2o_join)
"""One implementation serves every join question: its table, key and how come from the catalogue."""


class _Materialised:
    """A materialised answer's blocks, held in the object store until release drops the reference."""

    def __init__(self, ds: MaterializedDataset) -> None:
        self.ds: MaterializedDataset | None = ds

    def fetch(self) -> pd.DataFrame:
        """The whole answer at the driver (after the timer)."""
        if self.ds is None:
            raise RuntimeError("ray: the held answer was already released")
        return self.ds.to_pandas()

    def release(self) -> None:
        """Drop the only reference to the blocks so that the object store frees them; a second call is harmless."""
        self.ds = None


class RayDbBenchmark(RayReader):
    """db-benchmark's groupby and join questions, dispatched by value."""

    def _answer(self, op: str, question: str, ds: ray.data.Dataset) -> pd.DataFrame | Held:
        """Small answers collected with to_pandas(); large ones (answers.held) materialised in the
        object store and counted (metadata of the materialised blocks), fetched after the timer."""
        if not held(op, question):
            self.last_notes["answer"] = "collected to the driver (to_pandas())"
            return ds.to_pandas()
        kept = _Materialised(ds.materialize())
        rows = kept.ds.count()
        self.last_notes["answer"] = ("materialised in the Ray object store (materialize()) and counted; "
                                     "fetched after the timer")
        return Held(rows=rows, fetch=kept.fetch, release=kept.release, where="the Ray object store")

    def h2o_groupby(self, inp: StageInput, question: str) -> pd.DataFrame | Held:
        """The question's grouped dataset (GROUPBY_QUESTIONS): its group keys, then its answer
        columns (stages.h2o_groupby_answer)."""
        grouped = GROUPBY_QUESTIONS[question](self, inp)
        return self._answer("h2o_groupby", question, grouped.select_columns(list(h2o_groupby_answer(question))))

    def h2o_join(self, inp: StageInput, question: str) -> pd.DataFrame | Held:
        """The question's right table, key and how (stages.H2O_JOIN_QUESTIONS), joined: x's
        columns then v2 (stages.H2O_JOIN_ANSWER)."""
        return self._answer("h2o_join", question, JOIN_QUESTIONS[question](self, inp, question))
