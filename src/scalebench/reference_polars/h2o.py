"""db-benchmark's questions in polars: the whole answer, the group keys then the answer columns
(stages.h2o_groupby_answer), and for the joins every x column plus the right table's v2."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pandas as pd
import polars as pl

from scalebench.reference_polars.queries import collect
from scalebench.reference_polars.read import scan
from scalebench.stages import H2O_GROUPBY_KEYS, H2O_JOIN_ANSWER, H2O_JOIN_QUESTIONS, H2O_JOIN_X, h2o_groupby_answer

if TYPE_CHECKING:
    from scalebench.engines.base import StageInput

v1, v2, v3 = pl.col("v1"), pl.col("v2"), pl.col("v3")


def _top2(lf: pl.LazyFrame) -> pl.LazyFrame:
    """The two largest non-null v3 of each id6 (fewer where it has fewer), one row each."""
    return (lf.filter(v3.is_not_null()).group_by("id6").agg(v3.top_k(2).alias("largest2_v3"))
            .explode("largest2_v3"))


def _r2(lf: pl.LazyFrame) -> pl.LazyFrame:
    """corr(v1, v2)**2 per (id2, id4) from exact integer moments (v1 and v2 are integers):
    n*Sxy - Sx*Sy over sqrt of the two n*Sxx - Sx**2, each exact in int64; null where either
    variance is zero (a one-row group or a constant column), where the correlation is undefined."""
    x, y = v1.cast(pl.Int64), v2.cast(pl.Int64)
    m = lf.group_by("id2", "id4").agg(
        pl.len().cast(pl.Int64).alias("n"), x.sum().alias("sx"), y.sum().alias("sy"),
        (x * x).sum().alias("sxx"), (y * y).sum().alias("syy"), (x * y).sum().alias("sxy"))
    n, sx, sy = pl.col("n"), pl.col("sx"), pl.col("sy")
    cov = (n * pl.col("sxy") - sx * sy).cast(pl.Float64)
    var_x = (n * pl.col("sxx") - sx * sx).cast(pl.Float64)
    var_y = (n * pl.col("syy") - sy * sy).cast(pl.Float64)
    r2 = pl.when((var_x > 0) & (var_y > 0)).then(cov * cov / (var_x * var_y)).otherwise(None)
    return m.with_columns(r2.alias("r2"))


def _by(keys: str, *aggs: pl.Expr) -> Callable[[pl.LazyFrame], pl.LazyFrame]:
    return lambda lf: lf.group_by(*H2O_GROUPBY_KEYS[keys]).agg(*aggs)


GROUPBY: dict[str, Callable[[pl.LazyFrame], pl.LazyFrame]] = {
    "q1": _by("q1", v1.sum()),                                           # sum v1 by id1
    "q2": _by("q2", v1.sum()),                                           # sum v1 by id1:id2
    "q3": _by("q3", v1.sum(), v3.mean()),                                # sum v1 mean v3 by id3
    "q4": _by("q4", v1.mean(), v2.mean(), v3.mean()),                    # mean v1:v3 by id4
    "q5": _by("q5", v1.sum(), v2.sum(), v3.sum()),                       # sum v1:v3 by id6
    "q6": _by("q6", v3.median().alias("median_v3"), v3.std(ddof=1).alias("sd_v3")),  # interpolated median
    "q7": _by("q7", (v1.max() - v2.min()).alias("range_v1_v2")),         # max v1 - min v2 by id3
    "q8": _top2,                                                         # largest two v3 by id6
    "q9": _r2,                                                           # regression v1 v2 by id2 id4
    "q10": _by("q10", v3.sum(), pl.len().cast(pl.Int64).alias("count")),  # sum v3 count by id1:id6
}


def h2o_groupby(inp: StageInput, question: str) -> pd.DataFrame:
    if question not in GROUPBY:
        raise ValueError(f"reference_polars: no db-benchmark groupby question {question!r}")
    return collect(GROUPBY[question](scan(inp)).select(list(h2o_groupby_answer(question))))


def h2o_join(inp: StageInput, question: str) -> pd.DataFrame:
    """x joined with the question's right table on its key (inner, or left for q3: null v2)."""
    if question not in H2O_JOIN_QUESTIONS:
        raise ValueError(f"reference_polars: no db-benchmark join question {question!r}")
    table, key, how = H2O_JOIN_QUESTIONS[question]
    x = scan(inp).select(list(H2O_JOIN_X))
    right = scan(inp.extra[table]).select(key, "v2")
    return collect(x.join(right, on=key, how=how).select(list(H2O_JOIN_ANSWER)))
