"""A second, independent reference in polars: every query of the catalogue answered with code
that shares nothing with the DuckDB engine (scalebench.engines.duckdb), so it can check the
DuckDB reference itself. It imports no engine code: only the catalogue (scalebench.stages), the
dataset schemas and the input conventions (scalebench.inputs).

    run(query, inp, out) -> pandas.DataFrame | None

answers the query's reference form (Query.reference_form: a skew remedy or a partition layout
answers as its plain form) on `inp`; a query that writes writes Parquet under `out` with the
catalogue's layout rules and returns None (check it with stages.SUMMARISERS). Plans are lazy
scans with the documented schema, collected or sunk with polars' streaming engine.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from scalebench.reference_polars import h2o, queries, tpch

if TYPE_CHECKING:
    from scalebench.engines.base import StageInput
    from scalebench.stages import Query

__all__ = ["OPS", "run", "version"]

OPS: dict[str, Callable[..., Any]] = {
    "etl_users": queries.etl_users, "etl_points": queries.etl_points,
    "groupby_points": queries.groupby_points, "groupby_age": queries.groupby_age,
    "groupby_id_bucket": queries.groupby_id_bucket,
    "sort_top_earners": queries.sort_top_earners, "sort_active_extremes": queries.sort_active_extremes,
    "sort_global": queries.sort_global,
    "h2o_groupby": h2o.h2o_groupby, "h2o_join": h2o.h2o_join,
    "join_dim": queries.join_dim, "join_large": queries.join_large,
    "skew_groupby": queries.skew_groupby, "skew_join": queries.skew_join,
    "tpch": tpch.tpch,
}
"""Query.op -> the function answering it, called like the engine method of that name."""


def run(query: Query, inp: StageInput, out: Path | None = None) -> pd.DataFrame | None:
    """The answer of `query` (its reference form) on `inp`: a pandas DataFrame, or None after
    writing Parquet under `out` for a query that writes."""
    plain = query.reference_form()
    fn = OPS.get(plain.op)
    if fn is None:
        raise LookupError(f"reference_polars has no {plain.op} (query {query.id})")
    if plain.writes:
        if out is None:
            raise ValueError(f"{query.id} writes Parquet: give an output folder")
        return fn(inp, Path(out), *plain.args())
    return fn(inp, *plain.args())


def version() -> str:
    """polars' version, for the record of which reference computed an answer."""
    import polars

    return polars.__version__
