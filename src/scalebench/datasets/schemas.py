"""Dataset schemas: each table's columns, Arrow types and distribution constants, and the
registry that maps a dataset name to how one chunk of it is drawn and written as CSV and
Parquet (the generators are in tables_users.py, tables_h2o.py and tables_joins.py).

A chunk depends only on (seed, part, chunk, first row, row count), never on which
process makes it, so the bytes on disk are the same whatever the parallelism.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

# --- points: the Ray-vs-Dask study's table ----------------------------------------
CATEGORIES = ("A", "B", "C", "D")
# True multinomial logistic model of category given (x, y), class A the baseline:
#   P(category = k | x, y) = exp(b0_k + b1_k*x + b2_k*y) / sum_j exp(b0_j + b1_j*x + b2_j*y)
# A fitted multinomial logistic regression (with A as reference) recovers these.
TRUE_COEFFICIENTS: dict[str, tuple[float, float, float]] = {
    #     intercept, x,    y
    "A": (0.0, 0.0, 0.0),
    "B": (0.2, 1.5, -1.0),
    "C": (-0.8, 0.5, 2.0),
    "D": (-1.0, 2.5, 1.0),
}
DECIMALS_XY = 6  # x, y are multiples of 1e-6: identical values in CSV and Parquet
POINTS_SCHEMA = pa.schema([("id", pa.int64()), ("x", pa.float64()), ("y", pa.float64()),
                           ("category", pa.string())])

# --- users: the Spark-ETL + Ray-ML paper's table ----------------------------------
NAMES = ("Alice", "Bob", "Carol", "David", "Eve", "Frank", "Grace", "Heidi", "Ivan", "Judy",
         "Mallory", "Niaj", "Olivia", "Peggy", "Rupert", "Sybil", "Trent", "Victor", "Walter",
         "Yara", "Zoe", "Liam", "Noah", "Emma", "Ava", "Mia", "Lucas", "Amelia", "Mateo", "Ella")
AGE_MIN, AGE_MAX = 18, 80
SALARY_BASE, SALARY_PER_YEAR, SALARY_SD = 50_000.0, 1_000.0, 25_000.0  # mean rises with age
SIGNUP_ANCHOR = np.datetime64("2026-01-01T00:00:00", "s")  # fixed: output is reproducible
SIGNUP_SPAN_S = int(10 * 365.25 * 86_400)  # the ten years before the anchor
P_ACTIVE = 0.7
P_NULL_SALARY = 0.01
P_NULL_SIGNUP = 0.005
P_DUPLICATE = 0.005  # a row that repeats the row before it, id included

USERS_SCHEMA = pa.schema([("id", pa.int64()), ("name", pa.string()), ("age", pa.int32()),
                          ("salary", pa.float64()), ("signup_date", pa.timestamp("us")),
                          ("is_active", pa.bool_())])
_USERS_CSV_SCHEMA = pa.schema([("id", pa.int64()), ("name", pa.string()), ("age", pa.int32()),
                               ("salary", pa.float64()), ("signup_date", pa.timestamp("s")),
                               ("is_active", pa.bool_())])

# --- db-benchmark (h2o.ai, now DuckDB Labs) tables ---------------------------------
# groupby: G1_<N>_1e2_0_0, i.e. K = 100 groups for id1/id2/id4/id5, N/K for id3/id6,
# no missing values, unsorted. Same distributions as db-benchmark's groupby-datagen.R.
H2O_K = 100
H2O_GROUPBY_SCHEMA = pa.schema([("id1", pa.string()), ("id2", pa.string()), ("id3", pa.string()),
                                ("id4", pa.int64()), ("id5", pa.int64()), ("id6", pa.int64()),
                                ("v1", pa.int64()), ("v2", pa.int64()), ("v3", pa.float64())])

# join: J1_<N>_NA_0_0. The left table x has N rows; the right tables small, medium and big
# have N/1e6, N/1e3 and N rows (at least 10 and 100 rows, so tiny sizes still join).
# How their keys are drawn: tables_h2o.py.


def h2o_join_sizes(family: int) -> tuple[int, int, int]:
    """Rows of the small, medium and big right tables for an x of `family` rows."""
    return max(10, family // 1_000_000), max(100, family // 1_000), family


def _join_schema(levels: int, value: str) -> pa.Schema:
    ints = [(f"id{j + 1}", pa.int64()) for j in range(levels)]
    strs = [(f"id{j + 4}", pa.string()) for j in range(levels)]
    return pa.schema(ints + strs + [(value, pa.float64())])


_JOIN_TABLES = {"x": 3, "small": 1, "medium": 2, "big": 3}

# --- joins on users: a broadcast-sized dimension and a large table on id -----------------
REGIONS = ("north", "south", "east", "west", "central")
NAMES_DIM_SCHEMA = pa.schema([("name", pa.string()), ("region", pa.string()), ("weight", pa.float64())])
ACCOUNTS_SCHEMA = pa.schema([("id", pa.int64()), ("balance", pa.float64())])

# --- skew: a fact table whose key is Zipf-distributed, and its dimension -------------------
KEYS_PER_ROW = 100  # K = rows / 100 keys: 100 rows per key when uniform
KEYS_SCHEMA = pa.schema([("id", pa.int64()), ("key", pa.int64()), ("v", pa.float64())])
KEYS_DIM_SCHEMA = pa.schema([("key", pa.int64()), ("w", pa.float64())])
KEYS_PREFIX = "keys_s"


def key_count(family: int) -> int:
    return max(10, family // KEYS_PER_ROW)


def keys_name(exponent: float) -> str:
    """'keys_s0' (uniform keys), 'keys_s1.2' (Zipf, exponent 1.2)."""
    return f"{KEYS_PREFIX}{exponent:g}"


# --- the registry -----------------------------------------------------------------


def _same_rows(family: int) -> int:
    return family


@dataclass(frozen=True)
class Schema:
    name: str
    columns: tuple[str, ...]
    arrow: pa.Schema
    make_chunk: Callable[..., dict[str, np.ndarray]]
    """(seed, part, chunk, first row, rows, family rows) -> columns of one chunk."""
    to_csv: Callable[[dict[str, np.ndarray]], bytes]
    to_table: Callable[[dict[str, np.ndarray]], pa.Table]
    dictionary_columns: tuple[str, ...]
    """Columns worth dictionary encoding in Parquet; the rest are plain (much faster)."""
    table_rows: Callable[[int], int] = _same_rows
    """Rows of this table when its family has `rows` rows: a join's right tables and a
    dimension are sized from the table they join (db-benchmark's N/1e6, N/1e3)."""

    @property
    def csv_header(self) -> bytes:
        return (",".join(self.columns) + "\n").encode()


# The generators read the definitions above, so they are imported only once those exist.
from scalebench.datasets.chunks import ascii_digits as ascii_digits  # noqa: E402
from scalebench.datasets.chunks import csv_of, table_of  # noqa: E402
from scalebench.datasets.tables_h2o import h2o_groupby_chunk, h2o_groupby_table, join_chunk, join_table  # noqa: E402
from scalebench.datasets.tables_joins import (  # noqa: E402
    accounts_chunk,
    keys_chunk_maker,
    keys_dim_chunk,
    names_dim_chunk,
    names_dim_table,
)
from scalebench.datasets.tables_tpch import TPCH_SCHEMAS  # noqa: E402
from scalebench.datasets.tables_tpch import table_of as tpch_table_of  # noqa: E402
from scalebench.datasets.tables_users import (  # noqa: E402
    points_chunk,
    points_csv,
    points_table,
    users_chunk,
    users_csv,
    users_table,
)


def _simple(name: str, arrow: pa.Schema, make_chunk: Callable[..., dict[str, np.ndarray]],
            dictionary: tuple[str, ...] = (), table_rows: Callable[[int], int] = _same_rows,
            to_table: Callable[[dict[str, np.ndarray]], pa.Table] | None = None) -> Schema:
    to_table = to_table or table_of(arrow)
    return Schema(name, tuple(arrow.names), arrow, make_chunk, csv_of(to_table), to_table, dictionary,
                  table_rows)


SCHEMAS: dict[str, Schema] = {
    "points": Schema("points", ("id", "x", "y", "category"), POINTS_SCHEMA, points_chunk, points_csv,
                     points_table, ("category",)),
    "users": Schema("users", ("id", "name", "age", "salary", "signup_date", "is_active"), USERS_SCHEMA,
                    users_chunk, users_csv, users_table, ("name",)),
    "h2o_groupby": _simple("h2o_groupby", H2O_GROUPBY_SCHEMA, h2o_groupby_chunk, ("id1", "id2"),
                           to_table=h2o_groupby_table),
    **{f"h2o_join_{t}": _simple(f"h2o_join_{t}", (arrow := _join_schema(levels, "v1" if t == "x" else "v2")),
                                join_chunk(t), table_rows=(_same_rows if t in ("x", "big") else
                                                           (lambda f, j=levels - 1: h2o_join_sizes(f)[j])),
                                to_table=join_table(t, arrow))
       for t, levels in _JOIN_TABLES.items()},
    "names_dim": _simple("names_dim", NAMES_DIM_SCHEMA, names_dim_chunk, table_rows=lambda family: len(NAMES),
                         to_table=names_dim_table),
    "accounts": _simple("accounts", ACCOUNTS_SCHEMA, accounts_chunk),
    "keys_dim": _simple("keys_dim", KEYS_DIM_SCHEMA, keys_dim_chunk, table_rows=key_count),
}


def _not_drawn(*args: object) -> dict[str, np.ndarray]:
    raise TypeError("TPC-H tables are made by tpchgen-cli (store.ensure_tpch), not drawn chunk by chunk")


def schema_for(name: str) -> Schema | None:
    """The schema of a dataset name, including the parametric skewed-key tables."""
    if name in SCHEMAS:
        return SCHEMAS[name]
    table = tpch_table_of(name)
    if table is not None:  # made by tpchgen-cli (store.ensure_tpch), never drawn chunk by chunk
        arrow = TPCH_SCHEMAS[table]
        return Schema(name, tuple(arrow.names), arrow, _not_drawn, _not_drawn, _not_drawn, ())
    if name.startswith(KEYS_PREFIX):
        try:
            exponent = float(name[len(KEYS_PREFIX):])
        except ValueError:
            return None
        if 0 <= exponent <= 10 and keys_name(exponent) == name:
            return _simple(name, KEYS_SCHEMA, keys_chunk_maker(exponent))
    return None
