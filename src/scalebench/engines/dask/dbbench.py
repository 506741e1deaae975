"""Dask db-benchmark (see scalebench.stages): the ten groupby questions, one function each in
GROUPBY_QUESTIONS, and the five join questions served by one merge (JOIN_QUESTIONS).

Answers are materialised inside the timer as db-benchmark's dask does: a small answer is
computed to the driver (.compute()); a large one (answers.held: q10 and the joins, about one
row per input row) is persisted in the cluster, waited for and counted there, and handed back as
an answers.Held whose fetch computes it to the driver and whose release cancels its futures."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import dask.dataframe as dd
import distributed
import pandas as pd
from dask.utils import get_default_shuffle_method

from scalebench.answers import Held, held
from scalebench.engines.base import MissingQuery, StageInput, later
from scalebench.engines.dask.cluster import on_cluster
from scalebench.engines.dask.read import DaskReader, plan
from scalebench.stages import H2O_JOIN_ANSWER, H2O_JOIN_QUESTIONS, h2o_groupby_answer

TREE = "groupby.agg tree reduction"
SPLIT_OUT = "groupby.agg split_out=True: hash shuffle of partial aggregates"

Grouped = tuple[dd.DataFrame, str]
"""A question's grouped result (lazy) and the idiom note that names how Dask computes it."""


def _q1(df: dd.DataFrame) -> Grouped:
    """sum v1 by id1: tree reduction (100 groups)."""
    return df.groupby("id1").agg(v1=("v1", "sum")), TREE


def _q2(df: dd.DataFrame) -> Grouped:
    """sum v1 by id1:id2: tree reduction (10k groups)."""
    return df.groupby(["id1", "id2"]).agg(v1=("v1", "sum")), TREE


def _q3(df: dd.DataFrame) -> Grouped:
    """sum v1 mean v3 by id3: N/100 groups, so split_out=True shuffles the partial aggregates
    (as groupby_id_bucket does) instead of combining them all in one task."""
    return df.groupby("id3").agg(v1=("v1", "sum"), v3=("v3", "mean"), split_out=True), SPLIT_OUT


def _q4(df: dd.DataFrame) -> Grouped:
    """mean v1:v3 by id4: tree reduction (100 groups)."""
    return df.groupby("id4").agg(v1=("v1", "mean"), v2=("v2", "mean"), v3=("v3", "mean")), TREE


def _q5(df: dd.DataFrame) -> Grouped:
    """sum v1:v3 by id6: N/100 groups, split_out=True."""
    return df.groupby("id6").agg(v1=("v1", "sum"), v2=("v2", "sum"), v3=("v3", "sum"), split_out=True), SPLIT_OUT


def _q6(df: dd.DataFrame) -> Grouped:
    """median v3 sd v3 by id4 id5: a median does not decompose, so Dask shuffles the rows by
    group and takes the exact median per group (its holistic aggregation); std is ddof=1."""
    res = df.groupby(["id4", "id5"]).agg(median_v3=("v3", "median"), sd_v3=("v3", "std"))
    return res, "groupby.agg with median: holistic, hash shuffle of rows"


def _q7(df: dd.DataFrame) -> Grouped:
    """max v1 - min v2 by id3: N/100 groups, split_out=True, then a column expression."""
    res = df.groupby("id3").agg(v1=("v1", "max"), v2=("v2", "min"), split_out=True)
    return res.assign(range_v1_v2=res["v1"] - res["v2"]), SPLIT_OUT


def _q8(df: dd.DataFrame) -> Grouped:
    """largest two v3 by id6: each partition keeps its own two largest per id6 (pre-aggregation,
    so at most two rows per group and partition move), shuffle on id6, then the two largest
    again. Vectorised pandas per partition instead of a Python call per group (groupby.apply)."""
    x = df[["id6", "v3"]].dropna(subset=["v3"])
    top = x.map_partitions(_largest2, meta=x._meta).shuffle(on="id6")
    res = top.map_partitions(_largest2, meta=x._meta).rename(columns={"v3": "largest2_v3"})
    return res, "map_partitions top-2, shuffle on id6, map_partitions top-2"


def _q9(df: dd.DataFrame) -> Grouped:
    """corr(v1, v2)**2 by id2 id4 from co-moment sums in one groupby.agg tree reduction (what
    Dask's groupby.corr computes inside; corr itself fails on a one-partition frame in dask
    2026.8: "Expected iterable of tuples of (name, dtype)"). v1 and v2 are integers, so the
    sums are exact; a group with constant v1 or v2 or one row has no r2 (NaN, skipped)."""
    x = df[["id2", "id4", "v1", "v2"]].astype({"v1": "float64", "v2": "float64"})
    x = x.assign(v11=x["v1"] * x["v1"], v22=x["v2"] * x["v2"], v12=x["v1"] * x["v2"])
    m = x.groupby(["id2", "id4"]).agg(n=("v1", "count"), s1=("v1", "sum"), s2=("v2", "sum"),
                                      s11=("v11", "sum"), s22=("v22", "sum"), s12=("v12", "sum"))
    cov = m["n"] * m["s12"] - m["s1"] * m["s2"]
    var = (m["n"] * m["s11"] - m["s1"] ** 2) * (m["n"] * m["s22"] - m["s2"] ** 2)
    res = (cov * cov / var).where(var > 0).to_frame("r2")
    return res, "groupby.agg of co-moment sums (tree reduction), r2 per group"


def _q10(df: dd.DataFrame) -> Grouped:
    """sum v3 count by id1:id6: about one group per row, so the partial aggregates do not
    shrink and split_out=True spreads them over every partition."""
    keys = ["id1", "id2", "id3", "id4", "id5", "id6"]
    return df.groupby(keys).agg(v3=("v3", "sum"), count=("v3", "size"), split_out=True), SPLIT_OUT


def _largest2(part: pd.DataFrame) -> pd.DataFrame:
    """The two largest v3 of each id6 in one partition (vectorised: sort, then head per group)."""
    return part.sort_values("v3", ascending=False).groupby("id6", sort=False).head(2)


GROUPBY_QUESTIONS: dict[str, Callable[[dd.DataFrame], Grouped]] = {
    "q1": _q1, "q2": _q2, "q3": _q3, "q4": _q4, "q5": _q5,
    "q6": _q6, "q7": _q7, "q8": _q8, "q9": _q9, "q10": _q10}


def _question(op: str, table: Mapping[str, Callable[..., object]], question: str) -> Callable[..., object]:
    """The question's function from `table`, as Engine.implementation finds it."""
    found = table.get(question)
    if found is None:
        raise MissingQuery(f"dask.{op} has no {question!r}; it has {', '.join(table)}")
    return found


def _tidy(question: str, res: dd.DataFrame) -> dd.DataFrame:
    """The answer's columns in order (stages.h2o_groupby_answer): the group keys out of the
    index, helper aggregates (q7's max and min) dropped. Lazy: Dask computes it with the rest."""
    if any(name is not None for name in res._meta.index.names):
        res = res.reset_index()
    return res[list(h2o_groupby_answer(question))]


class DaskDbBenchmark(DaskReader):
    """db-benchmark groupby and join, each answer whole (collected, or persisted and held)."""

    @on_cluster
    def h2o_groupby(self, inp: StageInput, question: str) -> pd.DataFrame | Held:
        """The question's groupby (GROUPBY_QUESTIONS): the group keys, then the answer columns."""
        grouped = _question("h2o_groupby", GROUPBY_QUESTIONS, question)
        df = self._table(inp)
        res, idiom = grouped(df)
        answer = _tidy(question, res)
        self.last_notes = {"partitions": df.npartitions, "idiom": idiom, "plan": later(plan, answer),
                           "result_partitions": answer.npartitions, "shuffle_method": get_default_shuffle_method()}
        return self._answer("h2o_groupby", question, answer)

    @on_cluster
    def h2o_join(self, inp: StageInput, question: str) -> pd.DataFrame | Held:
        """The question's join (JOIN_QUESTIONS: one merge serves all five)."""
        return _question("h2o_join", JOIN_QUESTIONS, question)(self, inp, question)

    def _answer(self, op: str, question: str, frame: dd.DataFrame) -> pd.DataFrame | Held:
        """A small answer computed to the driver; a large one (answers.held) persisted in the
        cluster, waited for and counted from its persisted partitions: all inside the timer."""
        if not held(op, question):
            self.last_notes["answer"] = "collected to the driver (.compute())"
            return frame.compute()
        assert self._client is not None
        client = self._client
        persisted = frame.persist()
        distributed.wait(persisted)
        rows = len(persisted)
        self.last_notes["answer"] = ("persisted in the cluster (persist(), wait()) and counted from its "
                                     "partitions; gathered to the driver after the timer")
        return _held(client, persisted, rows)


def _held(client: distributed.Client, persisted: dd.DataFrame, rows: int) -> Held:
    """A persisted answer. Fetch gathers its partitions to the driver one at a time and
    concatenates them there: .compute() would first concatenate them in one task on one worker,
    which for q10 at 1e7 rows (about 1 GiB) pauses a 2 GiB worker and never finishes. Release
    cancels its futures (nothing to do once the client has closed: they went with it)."""
    def fetch() -> pd.DataFrame:
        futures = sorted(distributed.futures_of(persisted), key=lambda f: f.key[-1] if isinstance(f.key, tuple) else 0)
        parts = [client.gather(future) for future in futures]
        return pd.concat(parts, ignore_index=True) if parts else persisted._meta

    def release() -> None:
        if client.status == "running":
            client.cancel(persisted, reason="scalebench: held answer released")

    return Held(rows=rows, fetch=fetch, release=release, where="persisted in the cluster")


BROADCAST_TABLES = ("small", "medium")
"""db-benchmark's right tables a Dask user broadcasts (x's rows / 1e6 and / 1e3): each fits on
every worker. The big one (as many rows as x) is joined by hash (P2P shuffle)."""


def _join(engine: DaskDbBenchmark, inp: StageInput, question: str) -> pd.DataFrame | Held:
    """x.merge(right) as a user writes it, with broadcast=True for a small or medium right table.
    Left to choose, Dask picks from partition counts alone: read from Parquet, the projected
    medium table fuses into one partition and joins blockwise (a broadcast), but persisted in
    memory it keeps its two partitions, and against x's 12 that is a hash join by P2P shuffle,
    3.5x slower at 1e7 rows; the same strategy in both input modes keeps them comparable. The
    right table is projected to its key and v2 first, as a user asking for x's columns and v2
    writes it: db-benchmark merges the whole tables, where right's other id columns collide with
    x's and come back suffixed (id4_x, id4_y); the answer here is x's columns under their own
    names, then v2 (stages.H2O_JOIN_ANSWER). From Parquet, Dask then reads only those two
    columns of right."""
    table, key, how = H2O_JOIN_QUESTIONS[question]
    x, right = engine._table(inp), engine._table(inp.extra[table])
    broadcast = table in BROADCAST_TABLES
    joined = x.merge(right[[key, "v2"]], on=key, how=how, broadcast=broadcast)[list(H2O_JOIN_ANSWER)]
    engine.last_notes = {"partitions": {"x": x.npartitions, table: right.npartitions}, "plan": later(plan, joined),
                         "idiom": f"merge(broadcast={broadcast})", "shuffle_method": get_default_shuffle_method()}
    return engine._answer("h2o_join", question, joined)


JOIN_QUESTIONS: dict[str, Callable[[DaskDbBenchmark, StageInput, str], pd.DataFrame | Held]] = dict.fromkeys(
    H2O_JOIN_QUESTIONS, _join)
