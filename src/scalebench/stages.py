"""The catalogue of stages: what each query computes and how its answer is checked.

Every engine implements every query below with exactly these semantics; the
reference answer comes from the DuckDB engine, computed once per dataset outside
any timed region, and every engine's answer must equal it (order-normalised, float
tolerance). Queries that write Parquet are checked through a summary of what they
wrote, read back with pyarrow, so the check never trusts the engine's own reader.

Input data (see scalebench.datasets):
  points: id int64, x float64, y float64 (six decimals, uniform on [0, 1)),
          category string in {A, B, C, D}; no nulls.
  users:  id int64, name string, age int (18..80), salary float64 (two decimals,
          ~1 % null), signup_date timestamp (CSV 'YYYY-MM-DD HH:MM:SS', ~0.5 % null),
          is_active bool (CSV 'true'/'false'). About 0.5 % of rows are exact
          duplicates of the row before them (same id).

Queries (method name = f"{stage}_{query}"):
  etl_users        read users, normalise column names (strip, lower case, spaces to
                   '_'), parse signup_date to a date, cast id int64 / age int32 /
                   salary float64 / is_active bool, drop rows with any null, drop
                   duplicate ids (keep one), write Parquet to `out` hive-partitioned
                   by is_active (folders is_active=true / is_active=false, any case).
  etl_points       read points, write them to `out` as a folder of Parquet files
                   (id int64, x, y float64, category string).
  groupby_points   per category: count, sum_x, mean_x, sum_y, mean_y.
  groupby_age      per age: count (all rows), mean_salary (over non-null salaries).
  groupby_id_bucket  per bucket = id // 100: count (all rows), sum_salary
                   (non-null salaries). High cardinality: rows/100 groups.
  sort_top_earners the paper's Query_1: drop duplicate ids, drop null salary, order by
                   salary desc, id asc; first 10 rows as id, name, salary.
  sort_active_extremes the paper's Query_2: drop duplicate ids, keep is_active; the
                   five youngest (age asc, id asc) and five oldest (age desc, id asc)
                   as end ('youngest' / 'oldest'), id, name, age.
  sort_global      drop null salary, sort all rows by (salary, id) ascending, write
                   Parquet to `out`: every part file sorted and the part files' key
                   ranges not overlapping (a true global sort, not per-partition).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

ID_BUCKET_WIDTH = 100
TOP_EARNERS = 10
EXTREMES = 5


@dataclass(frozen=True)
class Query:
    stage: str
    name: str
    dataset: str
    writes: bool
    """True when the query writes Parquet to a folder instead of returning a frame."""
    keys: tuple[str, ...]
    """Columns that identify a row of the answer, for order-normalised comparison."""

    @property
    def method(self) -> str:
        return f"{self.stage}_{self.name}"

    @property
    def id(self) -> str:
        return f"{self.stage}-{self.name}"


QUERIES: tuple[Query, ...] = (
    Query("etl", "users", "users", True, ("is_active",)),
    Query("etl", "points", "points", True, ("category",)),
    Query("groupby", "points", "points", False, ("category",)),
    Query("groupby", "age", "users", False, ("age",)),
    Query("groupby", "id_bucket", "users", False, ("bucket",)),
    Query("sort", "top_earners", "users", False, ("id",)),
    Query("sort", "active_extremes", "users", False, ("end", "id")),
    Query("sort", "global", "users", True, ("name",)),
)
STAGES: tuple[str, ...] = tuple(dict.fromkeys(q.stage for q in QUERIES))


def queries(stages: list[str] | None = None) -> list[Query]:
    """The queries of the given stages (all when None), in catalogue order."""
    if stages is None:
        return list(QUERIES)
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        raise ValueError(f"unknown stage(s) {', '.join(unknown)}; choose from {', '.join(STAGES)}")
    return [q for q in QUERIES if q.stage in stages]


# -- answers of queries that write -------------------------------------------------


def _read_written(out: Path) -> pa.Table:
    files = sorted(p for p in Path(out).rglob("*.parquet") if p.is_file())
    if not files:
        raise AssertionError(f"{out}: the engine wrote no Parquet file")
    return pads.dataset([str(f) for f in files], format="parquet", partitioning="hive",
                        partition_base_dir=str(out)).to_table()


def summarise_etl_users(out: Path) -> pd.DataFrame:
    tbl = _read_written(out)
    df = pd.DataFrame({
        "is_active": pc.utf8_lower(pc.cast(tbl["is_active"], pa.string())).to_numpy(zero_copy_only=False),
        "id": tbl["id"].to_numpy(), "age": tbl["age"].to_numpy(),
        "salary": tbl["salary"].to_numpy(),
        "signup_day": pc.cast(pc.cast(tbl["signup_date"], pa.date32()), pa.int32()).to_numpy(),
        "null_cells": sum(pc.cast(pc.is_null(tbl[c]), pa.int64()).to_numpy() for c in tbl.column_names),
    })
    return df.groupby("is_active", as_index=False).agg(
        rows=("id", "size"), distinct_ids=("id", "nunique"), sum_age=("age", "sum"),
        sum_salary=("salary", "sum"), first_day=("signup_day", "min"),
        last_day=("signup_day", "max"), null_cells=("null_cells", "sum"))


def summarise_etl_points(out: Path) -> pd.DataFrame:
    tbl = _read_written(out)
    df = tbl.select(["id", "x", "y", "category"]).to_pandas()
    return df.groupby("category", as_index=False).agg(
        rows=("id", "size"), sum_id=("id", "sum"), sum_x=("x", "sum"), sum_y=("y", "sum"))


def summarise_sort_global(out: Path) -> pd.DataFrame:
    """Rows and sums, plus whether the part files form one global order."""
    files = sorted(p for p in Path(out).rglob("*.parquet") if p.is_file())
    ranges = []
    rows = 0
    sums = {"salary": 0.0, "id": 0, "age": 0}
    for f in files:
        t = pq.read_table(f, columns=["salary", "id", "age"])
        if t.num_rows == 0:
            continue
        rows += t.num_rows
        sal, ids = t["salary"].to_numpy(), t["id"].to_numpy()
        keys = np.rec.fromarrays([sal, ids])
        if (np.diff(sal) < 0).any() or ((np.diff(sal) == 0) & (np.diff(ids) < 0)).any():
            return _global_summary(rows, sums, f"{f.name} is not sorted by (salary, id)")
        ranges.append((keys[0].tolist(), keys[-1].tolist(), f.name))
        sums["salary"] += float(np.sum(sal))
        sums["id"] += int(np.sum(ids))
        sums["age"] += int(pc.sum(t["age"]).as_py())
    ranges.sort()
    for (_, hi_a, name_a), (lo_b, _, name_b) in zip(ranges, ranges[1:], strict=False):
        if lo_b < hi_a:
            return _global_summary(rows, sums, f"{name_a} and {name_b} overlap")
    return _global_summary(rows, sums, "sorted")


def _global_summary(rows: int, sums: dict, order: str) -> pd.DataFrame:
    return pd.DataFrame([{"name": "all", "rows": rows, "sum_salary": sums["salary"],
                          "sum_id": sums["id"], "sum_age": sums["age"], "order": order}])


SUMMARISERS: dict[str, Callable[[Path], pd.DataFrame]] = {
    "etl_users": summarise_etl_users,
    "etl_points": summarise_etl_points,
    "sort_global": summarise_sort_global,
}


def answer_of(query: Query, result: pd.DataFrame | None, out: Path | None) -> pd.DataFrame:
    """The comparable answer of one run: the returned frame, or a summary of what it wrote."""
    if query.writes:
        assert out is not None
        return SUMMARISERS[query.method](out)
    if not isinstance(result, pd.DataFrame):
        raise AssertionError(f"{query.method} returned {type(result).__name__}, not a DataFrame")
    return result


# -- comparison --------------------------------------------------------------------


class WrongAnswer(AssertionError):
    """An engine's answer differs from the reference."""


def _normalise(df: pd.DataFrame, keys: tuple[str, ...]) -> pd.DataFrame:
    df = df.copy()
    for col in df.columns:
        s = df[col]
        if pd.api.types.is_bool_dtype(s) or s.dtype == object or isinstance(s.dtype, pd.StringDtype) \
                or isinstance(s.dtype, pd.CategoricalDtype):
            df[col] = s.astype(str).str.lower() if col in ("is_active",) else s.astype(str)
        elif pd.api.types.is_float_dtype(s):
            df[col] = s.astype("float64")
        elif pd.api.types.is_integer_dtype(s):
            df[col] = s.astype("int64")
    return df.sort_values(list(keys), kind="stable").reset_index(drop=True)


def compare(query: Query, got: pd.DataFrame, expected: pd.DataFrame, rtol: float = 1e-9) -> None:
    """Raise WrongAnswer naming the first difference; return None when equal."""
    want_cols = list(expected.columns)
    missing = [c for c in want_cols if c not in got.columns]
    if missing:
        raise WrongAnswer(f"{query.method}: answer lacks column(s) {missing}; has {list(got.columns)}")
    g = _normalise(got[want_cols], query.keys)
    e = _normalise(expected, query.keys)
    if len(g) != len(e):
        raise WrongAnswer(f"{query.method}: {len(g)} rows, reference has {len(e)}")
    for col in want_cols:
        a, b = g[col], e[col]
        if pd.api.types.is_float_dtype(b):
            av, bv = a.to_numpy(dtype="float64", na_value=np.nan), b.to_numpy(dtype="float64", na_value=np.nan)
            # sums of salaries over empty groups may be 0 or null depending on the engine
            if col.startswith("sum_"):
                av, bv = np.nan_to_num(av), np.nan_to_num(bv)
            bad = ~np.isclose(av, bv, rtol=rtol, atol=1e-9 * max(1.0, float(np.nanmax(np.abs(bv), initial=0))),
                              equal_nan=True)
        else:
            bad = (a.astype(str) != b.astype(str)).to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise WrongAnswer(f"{query.method}: column {col!r} row {i} ({dict(e.iloc[i][list(query.keys)])}): "
                              f"got {a.iloc[i]!r}, reference {b.iloc[i]!r} ({int(bad.sum())} cells differ)")
