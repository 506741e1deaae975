"""Chunk generators of the study's own tables: points (the Ray-vs-Dask study's table) and
users (the Spark-ETL + Ray-ML paper's table). Their definitions are in schemas.py."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from scalebench.datasets.chunks import ascii_digits, chunk_rng
from scalebench.datasets.schemas import (
    _USERS_CSV_SCHEMA,
    AGE_MAX,
    AGE_MIN,
    CATEGORIES,
    DECIMALS_XY,
    NAMES,
    P_ACTIVE,
    P_DUPLICATE,
    P_NULL_SALARY,
    P_NULL_SIGNUP,
    POINTS_SCHEMA,
    SALARY_BASE,
    SALARY_PER_YEAR,
    SALARY_SD,
    SIGNUP_ANCHOR,
    SIGNUP_SPAN_S,
    TRUE_COEFFICIENTS,
    USERS_SCHEMA,
)


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


def points_chunk(seed: int, part: int, chunk: int, first: int, n: int, family: int = 0) -> dict[str, np.ndarray]:
    rng = chunk_rng(seed, part, chunk)
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


def points_table(c: dict[str, np.ndarray]) -> pa.Table:
    return pa.Table.from_arrays(
        [pa.array(c["id"]), pa.array(c["x"]), pa.array(c["y"]), _CATEGORY_STRINGS.take(pa.array(c["category"]))],
        schema=POINTS_SCHEMA)


# --- users ------------------------------------------------------------------------

NAME_STRINGS = pa.array(NAMES, pa.string())
"""The names as Arrow strings, taken by index (users.name, names_dim.name)."""


def users_chunk(seed: int, part: int, chunk: int, first: int, n: int, family: int = 0) -> dict[str, np.ndarray]:
    rng = chunk_rng(seed, part, chunk)
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
        [pa.array(c["id"]), NAME_STRINGS.take(pa.array(c["name"])), pa.array(c["age"]),
         pa.array(c["salary"], mask=c["salary_null"]), pa.array(c["signup_date"], mask=c["signup_null"]),
         pa.array(c["is_active"])],
        schema=USERS_SCHEMA)


def users_csv(c: dict[str, np.ndarray]) -> bytes:
    """Arrow's CSV writer: salary as shortest round-trip decimal, nulls as empty fields."""
    t = users_table(c).cast(_USERS_CSV_SCHEMA)
    sink = pa.BufferOutputStream()
    pacsv.write_csv(t, sink, pacsv.WriteOptions(include_header=False, quoting_style="none"))
    return sink.getvalue().to_pybytes()
