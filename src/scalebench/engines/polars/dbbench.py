"""polars db-benchmark: the groupby and join questions as db-benchmark's polars solution writes them
(lazy group_by().agg(), join()), on the streaming engine. A small answer is collected; a large one
(answers.held: about one row per input row) is materialised inside the timer and held: a polars
DataFrame in this process, or beyond the memory budget a Parquet file the streaming engine sinks."""

from __future__ import annotations

import shutil
from collections.abc import Callable

import pandas as pd
import polars as pl

from scalebench.answers import Held, held
from scalebench.engines.base import StageInput
from scalebench.engines.polars.read import ANSWER_BYTES_PER_ROW, STREAMING, PolarsReader
from scalebench.stages import H2O_GROUPBY_KEYS, H2O_JOIN_ANSWER, H2O_JOIN_QUESTIONS, H2O_JOIN_X, h2o_groupby_answer

v1, v2, v3 = pl.col("v1"), pl.col("v2"), pl.col("v3")


def _by(question: str, *aggs: pl.Expr) -> Callable[[pl.LazyFrame], pl.LazyFrame]:
    return lambda x: x.group_by(*H2O_GROUPBY_KEYS[question]).agg(*aggs)


def _largest2(x: pl.LazyFrame) -> pl.LazyFrame:
    """The two largest non-null v3 of each id6 (top_k per group, one row each after explode)."""
    return x.drop_nulls("v3").group_by("id6").agg(v3.top_k(2).alias("largest2_v3")).explode("largest2_v3")


GROUPBY_QUESTIONS: dict[str, Callable[[pl.LazyFrame], pl.LazyFrame]] = {
    "q1": _by("q1", v1.sum()),                                           # sum v1 by id1
    "q2": _by("q2", v1.sum()),                                           # sum v1 by id1:id2
    "q3": _by("q3", v1.sum(), v3.mean()),                                # sum v1 mean v3 by id3
    "q4": _by("q4", v1.mean(), v2.mean(), v3.mean()),                    # mean v1:v3 by id4
    "q5": _by("q5", v1.sum(), v2.sum(), v3.sum()),                       # sum v1:v3 by id6
    "q6": _by("q6", v3.median().alias("median_v3"), v3.std().alias("sd_v3")),  # median v3 sd v3 by id4 id5
    "q7": _by("q7", (v1.max() - v2.min()).alias("range_v1_v2")),         # max v1 - min v2 by id3
    "q8": _largest2,                                                     # largest two v3 by id6
    "q9": _by("q9", (pl.corr(v1, v2) ** 2).alias("r2")),                 # regression v1 v2 by id2 id4
    "q10": _by("q10", v3.sum(), pl.len().cast(pl.Int64).alias("count")),  # sum v3 count by id1:id6
}


class PolarsDbBenchmark(PolarsReader):
    def _answer(self, op: str, question: str, lf: pl.LazyFrame, inp: StageInput) -> pd.DataFrame | Held:
        """Small answers collected; large ones (answers.held) materialised and counted, then held."""
        if not held(op, question):
            self.last_notes["answer"] = "collected (collect(engine='streaming'))"
            return self._collect(lf, inp)
        if inp.rows * ANSWER_BYTES_PER_ROW <= self.spec.memory_budget_bytes // 2:
            self._streaming(inp)
            frame = lf.collect(engine=STREAMING)
            self.last_notes["answer"] = "collected into a polars DataFrame and counted; converted after the timer"
            return Held(rows=frame.height, fetch=frame.to_pandas, where="a polars DataFrame in this process")
        return self._sunk_answer(lf, inp)

    def _sunk_answer(self, lf: pl.LazyFrame, inp: StageInput) -> Held:
        """An answer that would not fit half the budget: sunk to Parquet in a private folder by the
        streaming engine and counted from the file's metadata; read back after the timer."""
        folder = self._spill_dir()
        path = folder / "answer.parquet"
        try:
            self._sink(lf, path, inp)
            rows = pl.scan_parquet(path).select(pl.len()).collect().item()
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        self.last_notes["answer"] = "sunk to Parquet in a spill folder and counted; read back after the timer"
        return Held(rows=rows, fetch=lambda: pl.read_parquet(path).to_pandas(),
                    release=lambda: shutil.rmtree(folder, ignore_errors=True), where="a Parquet file in a spill folder")

    def h2o_groupby(self, inp: StageInput, question: str) -> pd.DataFrame | Held:
        """The question's lazy group-by (GROUPBY_QUESTIONS): group keys, then the answer columns."""
        grouped = self.variant("h2o_groupby", question)(self._frame(inp))
        return self._answer("h2o_groupby", question, grouped.select(list(h2o_groupby_answer(question))), inp)

    def h2o_join(self, inp: StageInput, question: str) -> pd.DataFrame | Held:
        """x joined with the question's right table (its key and v2) on its key, how
        (stages.H2O_JOIN_QUESTIONS): every x column, then v2 (null where the left join q3 finds none)."""
        table, key, how = H2O_JOIN_QUESTIONS[question]
        x = self._frame(inp).select(list(H2O_JOIN_X))
        right = self._frame(inp.extra[table]).select(key, "v2")
        return self._answer("h2o_join", question, x.join(right, on=key, how=how).select(list(H2O_JOIN_ANSWER)), inp)


JOIN_QUESTIONS = dict.fromkeys(H2O_JOIN_QUESTIONS, PolarsDbBenchmark.h2o_join)
