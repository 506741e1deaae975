"""Dataset schemas: how one chunk of rows is drawn and written as CSV and Parquet.

A chunk depends only on (seed, part, chunk, first row, row count), never on which
process makes it, so the bytes on disk are the same whatever the parallelism.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

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


def _rng(seed: int, part: int, chunk: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, part, chunk]))


_PAIRS = np.array([[48 + i // 10, 48 + i % 10] for i in range(100)], np.uint8).view(np.uint16).ravel()


def ascii_digits(values: np.ndarray, width: int) -> np.ndarray:
    """Non-negative integers < 10**width as zero-padded ASCII, shape (n, width).

    Vectorised two digits at a time: about 10x faster than Arrow's CSV writer for
    numbers, which is what lets two processes write 8M+ rows/s of CSV.
    """
    k = np.asarray(values, np.uint64)
    out = np.empty((len(k), (width + 1) // 2), np.uint16)
    for j in range(out.shape[1] - 1, -1, -1):
        q = k // 100
        np.take(_PAIRS, (k - q * 100).astype(np.intp), out=out[:, j])
        k = q
    b = out.view(np.uint8)
    return b[:, b.shape[1] - width:]


def _id_field_width(first: int, n: int) -> list[tuple[int, int, int]]:
    """Split [first, first+n) into runs whose ids have the same number of digits."""
    runs, lo, end = [], first, first + n
    while lo < end:
        width = len(str(lo))
        hi = min(end, 10**width)
        runs.append((lo - first, hi - first, width))
        lo = hi
    return runs


# --- points -----------------------------------------------------------------------


def points_chunk(seed: int, part: int, chunk: int, first: int, n: int) -> dict[str, np.ndarray]:
    rng = _rng(seed, part, chunk)
    scale = 10**DECIMALS_XY
    xi = (rng.random(n) * scale).astype(np.uint32)  # floor: x in [0, 1)
    yi = (rng.random(n) * scale).astype(np.uint32)
    x, y = xi / scale, yi / scale
    # inverse-CDF draw from the softmax; A's weight is exp(0) = 1
    cum = np.ones(n)
    bounds = []
    for c in CATEGORIES[1:]:
        b0, bx, by = TRUE_COEFFICIENTS[c]
        w = bx * x
        w += by * y
        w += b0
        np.exp(w, out=w)
        bounds.append(cum.copy())
        cum += w
    u = rng.random(n)
    u *= cum
    cat = np.zeros(n, np.uint8)
    for b in bounds:
        cat += u >= b
    return {"id": np.arange(first, first + n, dtype=np.int64), "xi": xi, "yi": yi, "x": x, "y": y,
            "category": cat}


def points_csv(c: dict[str, np.ndarray]) -> bytes:
    """Fixed-width per id length: 'id,0.dddddd,0.dddddd,C\\n'."""
    pieces = []
    for lo, hi, w in _id_field_width(int(c["id"][0]), len(c["id"])):
        m = np.empty((hi - lo, w + 21), np.uint8)
        m[:, :w] = ascii_digits(c["id"][lo:hi], w)
        m[:, w] = ord(",")
        for col, at in (("xi", w + 1), ("yi", w + 10)):
            m[:, at] = ord("0")
            m[:, at + 1] = ord(".")
            m[:, at + 2:at + 8] = ascii_digits(c[col][lo:hi], DECIMALS_XY)
            m[:, at + 8] = ord(",")
        m[:, w + 19] = np.frombuffer("".join(CATEGORIES).encode(), np.uint8)[c["category"][lo:hi]]
        m[:, w + 20] = ord("\n")
        pieces.append(m.tobytes())
    return b"".join(pieces)


_CATEGORY_STRINGS = pa.array(CATEGORIES, pa.string())
POINTS_SCHEMA = pa.schema([("id", pa.int64()), ("x", pa.float64()), ("y", pa.float64()),
                           ("category", pa.string())])


def points_table(c: dict[str, np.ndarray]) -> pa.Table:
    return pa.Table.from_arrays(
        [pa.array(c["id"]), pa.array(c["x"]), pa.array(c["y"]), _CATEGORY_STRINGS.take(pa.array(c["category"]))],
        schema=POINTS_SCHEMA)


# --- users ------------------------------------------------------------------------

USERS_SCHEMA = pa.schema([("id", pa.int64()), ("name", pa.string()), ("age", pa.int32()),
                          ("salary", pa.float64()), ("signup_date", pa.timestamp("us")),
                          ("is_active", pa.bool_())])
_NAME_STRINGS = pa.array(NAMES, pa.string())


def users_chunk(seed: int, part: int, chunk: int, first: int, n: int) -> dict[str, np.ndarray]:
    rng = _rng(seed, part, chunk)
    age = rng.integers(AGE_MIN, AGE_MAX + 1, n).astype(np.int32)
    salary = SALARY_BASE + SALARY_PER_YEAR * (age - AGE_MIN) + rng.normal(0.0, SALARY_SD, n)
    salary = np.round(salary * 100) / 100
    signup = SIGNUP_ANCHOR - rng.integers(0, SIGNUP_SPAN_S, n).astype("timedelta64[s]")
    cols = {
        "id": np.arange(first, first + n, dtype=np.int64),
        "name": rng.integers(0, len(NAMES), n).astype(np.int32),
        "age": age,
        "salary": salary,
        "salary_null": rng.random(n) < P_NULL_SALARY,
        "signup_date": signup.astype("datetime64[us]"),
        "signup_null": rng.random(n) < P_NULL_SIGNUP,
        "is_active": rng.random(n) < P_ACTIVE,
    }
    dup = rng.random(n) < P_DUPLICATE
    dup[0] = False  # the first row of a chunk has no row before it in this chunk
    if dup.any():  # a duplicate copies the last non-duplicate row before it, id included
        source = np.maximum.accumulate(np.where(dup, 0, np.arange(n)))
        cols = {k: v[source] for k, v in cols.items()}
    return cols


def users_table(c: dict[str, np.ndarray]) -> pa.Table:
    return pa.Table.from_arrays(
        [pa.array(c["id"]), _NAME_STRINGS.take(pa.array(c["name"])), pa.array(c["age"]),
         pa.array(c["salary"], mask=c["salary_null"]), pa.array(c["signup_date"], mask=c["signup_null"]),
         pa.array(c["is_active"])],
        schema=USERS_SCHEMA)


_USERS_CSV_SCHEMA = pa.schema([("id", pa.int64()), ("name", pa.string()), ("age", pa.int32()),
                               ("salary", pa.float64()), ("signup_date", pa.timestamp("s")),
                               ("is_active", pa.bool_())])


def users_csv(c: dict[str, np.ndarray]) -> bytes:
    """Arrow's CSV writer: salary as shortest round-trip decimal, nulls as empty fields."""
    t = users_table(c).cast(_USERS_CSV_SCHEMA)
    sink = pa.BufferOutputStream()
    pacsv.write_csv(t, sink, pacsv.WriteOptions(include_header=False, quoting_style="none"))
    return sink.getvalue().to_pybytes()


# --- the registry -----------------------------------------------------------------


@dataclass(frozen=True)
class Schema:
    name: str
    columns: tuple[str, ...]
    arrow: pa.Schema
    make_chunk: Callable[[int, int, int, int, int], dict[str, np.ndarray]]
    to_csv: Callable[[dict[str, np.ndarray]], bytes]
    to_table: Callable[[dict[str, np.ndarray]], pa.Table]
    dictionary_columns: tuple[str, ...]
    """Columns worth dictionary encoding in Parquet; the rest are plain (much faster)."""

    @property
    def csv_header(self) -> bytes:
        return (",".join(self.columns) + "\n").encode()


SCHEMAS: dict[str, Schema] = {
    "points": Schema("points", ("id", "x", "y", "category"), POINTS_SCHEMA, points_chunk, points_csv,
                     points_table, ("category",)),
    "users": Schema("users", ("id", "name", "age", "salary", "signup_date", "is_active"), USERS_SCHEMA,
                    users_chunk, users_csv, users_table, ("name",)),
}
