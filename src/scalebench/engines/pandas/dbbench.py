"""pandas db-benchmark: the groupby questions as a pandas user writes them on a whole frame; beyond
the budget, streamed as partial aggregates folded chunk by chunk or hash-partitioned to disk. The
join questions are the joins family's merge (whole, chunked, or grace hash join). Answers are
whole: a DataFrame in memory, or beyond the budget where even the answer would not fit (q10, the
joins) Parquet files in a spill folder, held and read back after the timer."""

from __future__ import annotations

import shutil
from collections.abc import Callable

import pandas as pd

from scalebench import answers
from scalebench.answers import Held
from scalebench.engines.base import StageInput
from scalebench.engines.pandas.joins import PandasJoins, SpilledAnswer
from scalebench.engines.pandas.read import working_bytes_per_row
from scalebench.stages import H2O_JOIN_ANSWER, H2O_JOIN_QUESTIONS, H2O_JOIN_X, h2o_groupby_answer

# db-benchmark groupby questions as named aggregations: (group keys, {answer column: (column, function)})
H2O_ALL_IDS = ["id1", "id2", "id3", "id4", "id5", "id6"]
H2O_AGGS: dict[str, tuple[list[str], dict[str, tuple[str, str]]]] = {
    "q1": (["id1"], {"v1": ("v1", "sum")}),
    "q2": (["id1", "id2"], {"v1": ("v1", "sum")}),
    "q3": (["id3"], {"v1": ("v1", "sum"), "v3": ("v3", "mean")}),
    "q4": (["id4"], {"v1": ("v1", "mean"), "v2": ("v2", "mean"), "v3": ("v3", "mean")}),
    "q5": (["id6"], {"v1": ("v1", "sum"), "v2": ("v2", "sum"), "v3": ("v3", "sum")}),
    "q6": (["id4", "id5"], {"median_v3": ("v3", "median"), "sd_v3": ("v3", "std")}),
    "q7": (["id3"], {"max_v1": ("v1", "max"), "min_v2": ("v2", "min")}),
    "q8": (["id6"], {}),   # top two v3 per id6: sort, then head(2) per group
    "q9": (["id2", "id4"], {}),  # r2 from exact integer moments (n, sums, sums of products)
    "q10": (H2O_ALL_IDS, {"v3": ("v3", "sum"), "count": ("v3", "size")}),
}
H2O_COLUMNS = {"q8": ["id6", "v3"], "q9": ["id2", "id4", "v1", "v2"]}
# beyond the budget: these stream as partial aggregates folded chunk by chunk; q6 (exact median)
# and q10 (about one group per row, so partials never shrink) hash-partition to disk instead
H2O_STREAMED = ("q1", "q2", "q3", "q4", "q5", "q7", "q8", "q9")
COMBINE = {"sum": "sum", "count": "sum", "size": "sum", "max": "max", "min": "min"}


def _top2(df: pd.DataFrame) -> pd.DataFrame:
    """The two largest v3 per id6 (db-benchmark's pandas answer: sort, then head per group)."""
    return df.dropna(subset=["v3"]).sort_values("v3", ascending=False).groupby("id6", sort=False).head(2)


def _moments(df: pd.DataFrame) -> pd.DataFrame:
    """Per (id2, id4): row count and the integer sums that give corr(v1, v2); additive over chunks."""
    x, y = df["v1"], df["v2"]
    return (df[["id2", "id4"]].assign(n=1, x=x, y=y, xx=x * x, yy=y * y, xy=x * y)
            .groupby(["id2", "id4"], sort=False, observed=True).sum())


def _r2(m: pd.DataFrame) -> pd.DataFrame:
    """corr(v1, v2)**2 from the moments: n*Sxy - Sx*Sy and the variances are exact in int64
    (v1, v2 are integers); NaN where a variance is zero or the group has one row."""
    cov = (m["n"] * m["xy"] - m["x"] * m["y"]).astype("float64")
    var = ((m["n"] * m["xx"] - m["x"] ** 2).astype("float64")
           * (m["n"] * m["yy"] - m["y"] ** 2).astype("float64"))
    return pd.DataFrame({"r2": cov * cov / var.where(var > 0)}, index=m.index)


def _finish(question: str, grouped: pd.DataFrame) -> pd.DataFrame:
    """Answer columns computed from aggregated ones."""
    if question == "q7":
        grouped["range_v1_v2"] = grouped["max_v1"] - grouped["min_v2"]
    return grouped


def _named(question: str, df: pd.DataFrame) -> pd.DataFrame:
    """The question's named aggregations (H2O_AGGS) in one groupby().agg, as a pandas user writes it."""
    keys, aggs = H2O_AGGS[question]
    return _finish(question, df.groupby(keys, sort=False, observed=True).agg(**aggs))


# -- the questions, each on a whole frame (or a whole hash partition) ---------------------------
def _q1(df: pd.DataFrame) -> pd.DataFrame:
    """sum v1 by id1."""
    return _named("q1", df)


def _q2(df: pd.DataFrame) -> pd.DataFrame:
    """sum v1 by id1:id2."""
    return _named("q2", df)


def _q3(df: pd.DataFrame) -> pd.DataFrame:
    """sum v1 mean v3 by id3."""
    return _named("q3", df)


def _q4(df: pd.DataFrame) -> pd.DataFrame:
    """mean v1:v3 by id4."""
    return _named("q4", df)


def _q5(df: pd.DataFrame) -> pd.DataFrame:
    """sum v1:v3 by id6."""
    return _named("q5", df)


def _q6(df: pd.DataFrame) -> pd.DataFrame:
    """median v3 sd v3 by id4 id5: an exact median does not decompose, so beyond the budget the
    rows hash-partition to disk instead of streaming."""
    return _named("q6", df)


def _q7(df: pd.DataFrame) -> pd.DataFrame:
    """max v1 - min v2 by id3: max and min aggregated (they fold over chunks), then subtracted."""
    return _named("q7", df)


def _q8(df: pd.DataFrame) -> pd.DataFrame:
    """largest two v3 by id6: sort, then head(2) per group."""
    return _top2(df).rename(columns={"v3": "largest2_v3"})


def _q9(df: pd.DataFrame) -> pd.DataFrame:
    """regression v1 v2 by id2 id4: r2 from exact integer moments (n, sums, sums of products);
    groupby().apply(corr) is a Python loop over 10,000 groups, the moments are not."""
    return _r2(_moments(df))


def _q10(df: pd.DataFrame) -> pd.DataFrame:
    """sum v3 count by id1:id6: about one group per row, so partials never shrink and beyond the
    budget the rows hash-partition to disk instead of streaming."""
    return _named("q10", df)


GROUPBY_QUESTIONS: dict[str, Callable[[pd.DataFrame], pd.DataFrame]] = {
    "q1": _q1, "q2": _q2, "q3": _q3, "q4": _q4, "q5": _q5, "q6": _q6, "q7": _q7, "q8": _q8, "q9": _q9, "q10": _q10}


def _tidy(question: str, answer: pd.DataFrame) -> pd.DataFrame:
    """The answer's columns in order (stages.h2o_groupby_answer): group keys out of the index,
    helper aggregates (q7's max and min, the streamed means' sums and counts) dropped."""
    if any(name is not None for name in answer.index.names):
        answer = answer.reset_index()
    return answer[list(h2o_groupby_answer(question))].reset_index(drop=True)


class PandasDbBenchmark(PandasJoins):
    """db-benchmark; a subclass of the joins family, whose merge answers the join questions."""

    def h2o_groupby(self, inp: StageInput, question: str) -> pd.DataFrame | Held:
        """Whole frame when it fits the budget. Beyond it, questions whose aggregates decompose
        stream (partials folded chunk by chunk); q6's exact median and q10's one group per row
        or so hash-partition the rows on the group keys to disk and answer partition by partition.
        The answer is a DataFrame in memory, except q10's beyond the budget (about one row per
        input row): written to Parquet partition by partition and held."""
        grouped = GROUPBY_QUESTIONS[question]
        keys, aggs = H2O_AGGS[question]
        columns = H2O_COLUMNS.get(question) or list(dict.fromkeys(keys + [c for c, _ in aggs.values()]))
        whole = self._chunk_rows(inp, columns) is None
        if not whole and question not in H2O_STREAMED:
            return self._h2o_partitioned(inp, question, columns)
        self.last_notes["answer"] = "in memory"
        if whole:
            return _tidy(question, grouped(next(self._chunks(inp, columns))))
        return _tidy(question, self._h2o_streamed(inp, question, columns))

    def _h2o_streamed(self, inp: StageInput, question: str, columns: list[str]) -> pd.DataFrame:
        """Each chunk's partial aggregates (sums, counts, min, max; the two largest v3 per id6;
        the r2 moments) folded into a running total, then finished."""
        keys, aggs = H2O_AGGS[question]
        partial: dict[str, tuple[str, str]] = {}
        for out, (col, fn) in aggs.items():
            partial.update({f"{out}_sum": (col, "sum"), f"{out}_n": (col, "count")} if fn == "mean"
                           else {out: (col, fn)})
        combine = {name: COMBINE[fn] for name, (_, fn) in partial.items()}
        levels = list(range(len(keys)))
        acc: pd.DataFrame | None = None
        for df in self._chunks(inp, columns):
            if question == "q8":
                acc = _top2(df if acc is None else pd.concat([acc, df], ignore_index=True))
                continue
            part = _moments(df) if question == "q9" else df.groupby(keys, sort=False, observed=True).agg(**partial)
            if acc is not None:
                part = pd.concat([acc, part]).groupby(level=levels, sort=False)
                part = part.sum() if question == "q9" else part.agg(combine)
            acc = part
        self.last_notes["idiom"] = "partial aggregates per chunk, folded"
        if question == "q8":
            return acc.rename(columns={"v3": "largest2_v3"})
        if question == "q9":
            return _r2(acc)
        for out, (_, fn) in aggs.items():
            if fn == "mean":
                acc[out] = acc[f"{out}_sum"] / acc[f"{out}_n"]
        return _finish(question, acc)

    def _h2o_partitioned(self, inp: StageInput, question: str, columns: list[str]) -> pd.DataFrame | Held:
        """Rows hash-partitioned on the group keys to disk; every group lies in one partition, so
        each partition is answered whole. q6's answers (one row per id4, id5) are concatenated in
        memory; q10's (about one row per input row) are written to Parquet, one file per
        partition, in a private spill folder and held."""
        keys, _ = H2O_AGGS[question]
        parts = self._partitions(inp.rows * working_bytes_per_row(inp.dataset, columns))
        self.last_notes.update(mode="partitioned", partitions=parts, chunks=0)
        spill = self._spill_dir()
        answer = SpilledAnswer(self._spill_dir()) if answers.held("h2o_groupby", question) else None
        pieces = []
        try:
            self._scatter(inp, columns, keys, parts, spill, "p")
            for folder in sorted(spill.iterdir()):
                piece = _tidy(question, GROUPBY_QUESTIONS[question](pd.read_parquet(folder)))
                if answer is None:
                    pieces.append(piece)
                else:
                    answer.add(piece)
        except BaseException:
            if answer is not None:
                answer.release()
            raise
        finally:
            shutil.rmtree(spill, ignore_errors=True)
        if answer is None:
            self.last_notes["answer"] = "in memory"
            return pd.concat(pieces, ignore_index=True)
        self.last_notes["answer"] = ("written to Parquet partition by partition in a spill folder; "
                                     "read back after the timer")
        return answer.held("Parquet files in a spill folder")

    def h2o_join(self, inp: StageInput, question: str) -> pd.DataFrame | Held:
        """x merged with the question's right table (its key and v2) on its key, how
        (stages.H2O_JOIN_QUESTIONS): every x column, then v2."""
        return JOIN_QUESTIONS[question](self, inp, question)


def _h2o_join(engine: PandasJoins, inp: StageInput, question: str) -> pd.DataFrame | Held:
    """Every join question: x merged with its right table on the question's key (_join_rows)."""
    table, key, how = H2O_JOIN_QUESTIONS[question]
    return engine._join_rows(inp, inp.extra[table], key, how, list(H2O_JOIN_X), [key, "v2"], list(H2O_JOIN_ANSWER))


JOIN_QUESTIONS: dict[str, Callable[..., pd.DataFrame | Held]] = dict.fromkeys(H2O_JOIN_QUESTIONS, _h2o_join)
