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

Queries (the engine method is Query.op, f"{stage}_{query}" unless given; one method serves
several queries by value, Query.variant, for the db-benchmark questions, skew remedies and layouts):
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

db-benchmark (h2o.ai, now DuckDB Labs), on its own tables (see scalebench.datasets):
  h2o_groupby_q1..q10  its ten groupby questions on G1_<N>_1e2_0_0: the whole grouped result,
                   its group keys (H2O_GROUPBY_KEYS) and answer columns (H2O_GROUPBY_QUESTIONS),
                   materialised inside the timer as db-benchmark does (scalebench.answers: small
                   answers collected, q10's about one row per input row held by the engine).
  h2o_join_q1..q5  its five join questions on J1_<N>_NA_0_0 (x and its small, medium, big
                   right tables, given in StageInput.extra): the whole joined rows, x's columns
                   and the right table's v2 (H2O_JOIN_ANSWER; null v2 where the left join q3
                   finds no match), held by the engine.
  Both are checked outside the timer against the whole reference answer, or beyond
  answers.WHOLE_ROWS_LIMIT rows against its keyed summary.

Joins on users (the right tables in StageInput.extra):
  join_dim         users inner join names_dim on name (30 rows: broadcast-sized); per
                   region: count, sum_salary (non-null salaries), sum_weight.
  join_large       users inner join accounts on id (one row per id: a shuffle join); per
                   is_active: count, sum_balance, sum_salary (non-null salaries).

Skew (keys tables: id, key, v; key uniform or Zipf over 1..K; keys_dim: key, w, one row
per key), each with a `remedy` argument: 'plain' (what a user writes first), 'salted'
(SALT_BUCKETS salts, salt = id % SALT_BUCKETS) or 'native' (the framework's own remedy,
e.g. Spark's adaptive skew join; NotApplicable where there is none):
  skew_groupby     per key: count, sum(v); answer groups, rows (sum of counts), sum_v,
                   max_count (the hot key's rows), computed by the engine over the result.
  skew_join        keys inner join keys_dim on key, not broadcast; answer rows, sum_v, sum_w.

Partitioning (Parquet only; the uniform keys table):
  partition_groupby-unpartitioned  skew_groupby 'plain' on the table as generated (parts by id).
  partition_groupby-by_key         skew_groupby 'by_key' on the same rows laid out by key % 8
                   (store.ensure_partitioned: key_bucket=NN/ folders, every row of a key in one
                   file): each bucket aggregated where it lies, no shuffle of rows or partials.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from scalebench.datasets.tables_tpch import TPCH_PREFIX
from scalebench.tpch import ANSWERS as TPCH_ANSWERS
from scalebench.tpch import EXTRA_TABLES as TPCH_EXTRA
from scalebench.tpch import MAIN_TABLE as TPCH_MAIN
from scalebench.tpch import QUESTIONS as TPCH_QUESTIONS

ID_BUCKET_WIDTH = 100
TOP_EARNERS = 10
EXTREMES = 5


@dataclass(frozen=True)
class Query:
    stage: str
    name: str
    dataset: str
    """Dataset of the main input; 'keys_uniform' / 'keys_zipf' are resolved by resolve_dataset."""
    writes: bool
    """True when the query writes Parquet to a folder instead of returning a frame."""
    keys: tuple[str, ...]
    """Columns that identify a row of the answer, for order-normalised comparison."""
    op: str = ""
    """The engine method that answers the query; f"{stage}_{name}" when not given."""
    variant: str | None = None
    """The value the method is called with after the input (and output folder): the db-benchmark
    question, or the skew remedy / partition layout. Engine.implementation follows it to the code."""
    extra: tuple[tuple[str, str], ...] = ()
    """(role, dataset) of further input tables, given to the engine in StageInput.extra."""
    rtol: float = 1e-9
    layout: str | None = None
    """Column the main input is partitioned by (store.ensure_partitioned, Parquet only)."""
    formats: tuple[str, ...] = ("csv", "parquet")
    """Input formats the query runs on."""

    def __post_init__(self) -> None:
        if not self.op:
            object.__setattr__(self, "op", f"{self.stage}_{self.name}")

    def reads(self, fmt: str) -> bool:
        return fmt in self.formats

    @property
    def storage_only(self) -> str | None:
        """Why --io memory has nothing to time for this query, or None: a query that writes is its
        read and its write, and a partition layout is a layout on storage."""
        if self.writes:
            return f"{self.id} is its read and its write"
        if self.stage == "partition":
            return f"{self.id} compares layouts on storage"
        return None

    def args(self) -> tuple[str, ...]:
        """The engine method's arguments after the input (and output folder)."""
        return () if self.variant is None else (self.variant,)

    def reference_form(self) -> Query:
        """What the reference runs: a remedy or layout changes how, never what, so it answers the
        plain form."""
        return replace(self, variant="plain") if self.op in REMEDY_OPS else self

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

H2O_GROUPBY_QUESTIONS: dict[str, tuple[str, ...]] = {
    # question: answer columns besides the group keys (db-benchmark's wording in the comment)
    "q1": ("v1",),                  # sum v1 by id1
    "q2": ("v1",),                  # sum v1 by id1:id2
    "q3": ("v1", "v3"),             # sum v1 mean v3 by id3
    "q4": ("v1", "v2", "v3"),       # mean v1:v3 by id4
    "q5": ("v1", "v2", "v3"),       # sum v1:v3 by id6
    "q6": ("median_v3", "sd_v3"),   # median v3 sd v3 by id4 id5 (sd: sample, n-1; NaN or null
                                    # for one-row groups, whose sd is undefined)
    "q7": ("range_v1_v2",),         # max v1 - min v2 by id3
    "q8": ("largest2_v3",),         # largest two v3 by id6 (up to two rows per id6)
    "q9": ("r2",),                  # regression v1 v2 by id2 id4: corr(v1, v2)**2; NaN or null
                                    # where undefined (one row, or a constant v1 or v2)
    "q10": ("v3", "count"),         # sum v3 count by id1:id6
}
H2O_GROUPBY_KEYS: dict[str, tuple[str, ...]] = {
    "q1": ("id1",), "q2": ("id1", "id2"), "q3": ("id3",), "q4": ("id4",), "q5": ("id6",),
    "q6": ("id4", "id5"), "q7": ("id3",), "q8": ("id6",), "q9": ("id2", "id4"),
    "q10": ("id1", "id2", "id3", "id4", "id5", "id6"),
}
"""Each groupby question's group keys: the answer's first columns, one row per key (q8: two)."""
H2O_JOIN_X = ("id1", "id2", "id3", "id4", "id5", "id6", "v1")
H2O_JOIN_ANSWER = (*H2O_JOIN_X, "v2")
"""A join question's answer columns: every column of x, then the right table's value v2."""


def h2o_groupby_answer(question: str) -> tuple[str, ...]:
    """The answer's columns in order: the group keys, then the answer columns."""
    return H2O_GROUPBY_KEYS[question] + H2O_GROUPBY_QUESTIONS[question]


H2O_JOIN_QUESTIONS: dict[str, tuple[str, str, str]] = {
    # question: (right table, join key, how)
    "q1": ("small", "id1", "inner"),   # small inner on int
    "q2": ("medium", "id2", "inner"),  # medium inner on int
    "q3": ("medium", "id2", "left"),   # medium outer on int
    "q4": ("medium", "id5", "inner"),  # medium inner on factor
    "q5": ("big", "id3", "inner"),     # big inner on int
}
SALT_BUCKETS = 8
REMEDY_OPS = ("skew_groupby", "skew_join")
SKEW_REMEDIES = {"groupby": ("plain", "salted"), "join": ("plain", "salted", "native")}
KEY_DISTRIBUTIONS = ("uniform", "zipf")

QUERIES += tuple(Query("h2o_groupby", q, "h2o_groupby", False,
                       H2O_GROUPBY_KEYS[q] + (("largest2_v3",) if q == "q8" else ()),
                       op="h2o_groupby", variant=q, rtol=1e-6)
                 for q in H2O_GROUPBY_QUESTIONS)
QUERIES += tuple(Query("h2o_join", q, "h2o_join_x", False, H2O_JOIN_X, op="h2o_join", variant=q, rtol=1e-6,
                       extra=tuple((t, f"h2o_join_{t}") for t in ("small", "medium", "big")))
                 for q in H2O_JOIN_QUESTIONS)
QUERIES += (Query("join", "dim", "users", False, ("region",), extra=(("names_dim", "names_dim"),)),
            Query("join", "large", "users", False, ("is_active",), extra=(("accounts", "accounts"),)))
QUERIES += tuple(Query("skew", f"{op}-{dist}-{remedy}", f"keys_{dist}", False, ("rows",), op=f"skew_{op}",
                       variant=remedy, extra=(("keys_dim", "keys_dim"),) if op == "join" else ())
                 for op, remedies in SKEW_REMEDIES.items() for dist in KEY_DISTRIBUTIONS for remedy in remedies)
PARTITION_LAYOUTS = {"unpartitioned": ("plain", None), "by_key": ("by_key", "key")}
QUERIES += tuple(Query("partition", f"groupby-{name}", "keys_uniform", False, ("rows",), op="skew_groupby",
                       variant=remedy, layout=layout, formats=("parquet",))
                 for name, (remedy, layout) in PARTITION_LAYOUTS.items())
QUERIES += tuple(Query("tpch", q, f"{TPCH_PREFIX}{TPCH_MAIN}", False, TPCH_ANSWERS[q].keys, op="tpch", variant=q,
                       rtol=1e-6, extra=TPCH_EXTRA)
                 for q in TPCH_QUESTIONS)
STAGES: tuple[str, ...] = tuple(dict.fromkeys(q.stage for q in QUERIES))
DEFAULT_ZIPF = 1.2


def resolve_dataset(name: str, zipf: float = DEFAULT_ZIPF) -> str:
    """The stored dataset behind a query's dataset name (the skewed table carries its exponent)."""
    from scalebench.datasets.schemas import keys_name

    return {"keys_uniform": keys_name(0), "keys_zipf": keys_name(zipf)}.get(name, name)


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


def answer_of(query: Query, result: object, out: Path | None) -> pd.DataFrame:
    """The comparable answer of one run: the returned frame, a held answer fetched (and released),
    or a summary of what it wrote."""
    from scalebench.answers import Held

    if query.writes:
        assert out is not None
        return SUMMARISERS[query.op](out)
    if isinstance(result, Held):
        return result.take()
    if not isinstance(result, pd.DataFrame):
        raise AssertionError(f"{query.id} returned {type(result).__name__}, not a DataFrame")
    return result


# -- comparison --------------------------------------------------------------------


class WrongAnswer(AssertionError):
    """An engine's answer differs from the reference."""


def normalise(df: pd.DataFrame) -> pd.DataFrame:
    """Every engine's dtypes in one form: text as str (is_active lower case), floats float64,
    integers int64; the order is left alone."""
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
    return df


def _normalise(df: pd.DataFrame, keys: tuple[str, ...]) -> pd.DataFrame:
    return normalise(df).sort_values(list(keys), kind="stable").reset_index(drop=True)


def sorted_answer(df: pd.DataFrame, keys: tuple[str, ...]) -> pd.DataFrame:
    """An answer in the form compare() compares: normalised dtypes, sorted by its keys."""
    return _normalise(df, keys)


def compare(query: Query, got: pd.DataFrame, expected: pd.DataFrame, rtol: float | None = None,
            *, presorted: bool = False) -> None:
    """Raise WrongAnswer naming the first difference; return None when equal. `presorted`: the
    expected frame is already sorted_answer(expected, query.keys) (a reference checked every round
    is normalised and sorted once)."""
    rtol = query.rtol if rtol is None else rtol
    want_cols = list(expected.columns)
    missing = [c for c in want_cols if c not in got.columns]
    if missing:
        raise WrongAnswer(f"{query.id}: answer lacks column(s) {missing}; has {list(got.columns)}")
    g = _normalise(got[want_cols], query.keys)
    e = expected if presorted else _normalise(expected, query.keys)
    if len(g) != len(e):
        raise WrongAnswer(f"{query.id}: {len(g)} rows, reference has {len(e)}")
    for col in want_cols:
        a, b = g[col], e[col]
        numeric = all(pd.api.types.is_numeric_dtype(v) and not pd.api.types.is_bool_dtype(v) for v in (a, b))
        if pd.api.types.is_float_dtype(b) or (numeric and pd.api.types.is_float_dtype(a)):
            av, bv = a.to_numpy(dtype="float64", na_value=np.nan), b.to_numpy(dtype="float64", na_value=np.nan)
            # sums of salaries over empty groups may be 0 or null depending on the engine
            if col.startswith("sum_"):
                av, bv = np.nan_to_num(av), np.nan_to_num(bv)
            bad = ~np.isclose(av, bv, rtol=rtol, atol=1e-9 * max(1.0, float(np.nanmax(np.abs(bv), initial=0))),
                              equal_nan=True)
        elif numeric and a.dtype == b.dtype == np.dtype("int64"):  # normalise() made them int64: exact
            bad = a.to_numpy() != b.to_numpy()
        else:
            bad = (a.astype(str) != b.astype(str)).to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise WrongAnswer(f"{query.id}: column {col!r} row {i} ({dict(e.iloc[i][list(query.keys)])}): "
                              f"got {a.iloc[i]!r}, reference {b.iloc[i]!r} ({int(bad.sum())} cells differ)")
