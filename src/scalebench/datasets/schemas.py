"""Dataset schemas: how one chunk of rows is drawn and written as CSV and Parquet.

A chunk depends only on (seed, part, chunk, first row, row count), never on which
process makes it, so the bytes on disk are the same whatever the parallelism.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
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


def points_chunk(seed: int, part: int, chunk: int, first: int, n: int, family: int = 0) -> dict[str, np.ndarray]:
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


def users_chunk(seed: int, part: int, chunk: int, first: int, n: int, family: int = 0) -> dict[str, np.ndarray]:
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


# --- db-benchmark (h2o.ai, now DuckDB Labs) tables ---------------------------------
# groupby: G1_<N>_1e2_0_0, i.e. K = 100 groups for id1/id2/id4/id5, N/K for id3/id6,
# no missing values, unsorted. Same distributions as db-benchmark's groupby-datagen.R.
H2O_K = 100


def _h2o_ids(values: np.ndarray, width: int) -> pa.Array:
    """'id001'-style strings: the 'id' prefix and zero-padded digits, as db-benchmark prints them."""
    digits = ascii_digits(values, width)
    m = np.empty((len(values), width + 2), np.uint8)
    m[:, 0], m[:, 1] = ord("i"), ord("d")
    m[:, 2:] = digits
    offsets = np.arange(0, (width + 2) * (len(values) + 1), width + 2, dtype=np.int32)
    return pa.StringArray.from_buffers(len(values), pa.py_buffer(offsets), pa.py_buffer(m.tobytes()))


def _plain_ids(values: np.ndarray) -> pa.Array:
    """'id123': db-benchmark's join tables print keys without padding (sprintf('id%.0f'))."""
    return pc.binary_join_element_wise("id", pc.cast(pa.array(values), pa.string()), "")


H2O_GROUPBY_SCHEMA = pa.schema([("id1", pa.string()), ("id2", pa.string()), ("id3", pa.string()),
                                ("id4", pa.int64()), ("id5", pa.int64()), ("id6", pa.int64()),
                                ("v1", pa.int64()), ("v2", pa.int64()), ("v3", pa.float64())])


def h2o_groupby_chunk(seed: int, part: int, chunk: int, first: int, n: int, family: int = 0) -> dict[str, np.ndarray]:
    rng = _rng(seed, part, chunk)
    nk = max(1, family // H2O_K)
    return {"id1": rng.integers(1, H2O_K + 1, n), "id2": rng.integers(1, H2O_K + 1, n),
            "id3": rng.integers(1, nk + 1, n), "id4": rng.integers(1, H2O_K + 1, n),
            "id5": rng.integers(1, H2O_K + 1, n), "id6": rng.integers(1, nk + 1, n),
            "v1": rng.integers(1, 6, n), "v2": rng.integers(1, 16, n),
            "v3": np.round(rng.random(n) * 100, 6)}


def h2o_groupby_table(c: dict[str, np.ndarray]) -> pa.Table:
    return pa.Table.from_arrays(
        [_h2o_ids(c["id1"], 3), _h2o_ids(c["id2"], 3), _h2o_ids(c["id3"], 10)]
        + [pa.array(c[k]) for k in ("id4", "id5", "id6", "v1", "v2", "v3")], schema=H2O_GROUPBY_SCHEMA)


# join: J1_<N>_NA_0_0. The left table x has N rows; the right tables small, medium and big
# have N/1e6, N/1e3 and N rows (at least 10 and 100 rows, so tiny sizes still join).
# As in db-benchmark's join-datagen.R, about 90 % of x's keys find a match and about 10 %
# of each right table's keys are not in x: x draws keys from 1..n, a right table holds
# each key of n//10+1 .. n+n//10 exactly once, in a seeded pseudo-random order.


def h2o_join_sizes(family: int) -> tuple[int, int, int]:
    """Rows of the small, medium and big right tables for an x of `family` rows."""
    return max(10, family // 1_000_000), max(100, family // 1_000), family


def _permutation(i: np.ndarray, n: int, seed: int) -> np.ndarray:
    """A bijection of 0..n-1 (affine, multiplier coprime to n): unique keys in shuffled order."""
    a = 2_654_435_761 + 2 * seed
    while np.gcd(a % n or 1, n) != 1:
        a += 1
    return (i.astype(np.uint64) * np.uint64(a % n or 1) + np.uint64(seed % n)) % np.uint64(n)


def _right_keys(n: int) -> tuple[int, int]:
    """The key range [lo, hi] a right table of n unique keys holds."""
    return n // 10 + 1, n + n // 10


def _x_side(rng: np.random.Generator, sizes: tuple[int, int, int], n: int) -> dict[str, np.ndarray]:
    return {f"id{j + 1}": rng.integers(1, size + 1, n) for j, size in enumerate(sizes)}


def _rhs_side(rng: np.random.Generator, sizes: tuple[int, ...], n: int) -> dict[str, np.ndarray]:
    out = {}
    for j, size in enumerate(sizes):
        lo, hi = _right_keys(size)
        out[f"id{j + 1}"] = rng.integers(lo, hi + 1, n)
    return out


def _join_chunk(table: str):
    def make(seed: int, part: int, chunk: int, first: int, n: int, family: int = 0) -> dict[str, np.ndarray]:
        rng = _rng(seed, part, chunk)
        sizes = h2o_join_sizes(max(family, 1))
        if table == "x":
            cols = _x_side(rng, sizes, n)
            cols["v1"] = np.round(rng.random(n) * 100, 1)
            return cols
        level = {"small": 0, "medium": 1, "big": 2}[table]
        cols = _rhs_side(rng, sizes[:level], n)  # keys of the smaller levels: drawn, may repeat
        lo, _ = _right_keys(sizes[level])
        cols[f"id{level + 1}"] = lo + _permutation(np.arange(first, first + n), sizes[level], seed).astype(np.int64)
        cols["v2"] = np.round(rng.random(n) * 100, 1)
        return cols
    return make


def _join_table(table: str, arrow: pa.Schema):
    def to_table(c: dict[str, np.ndarray]) -> pa.Table:
        ints = [k for k in ("id1", "id2", "id3") if k in c]
        arrays = [pa.array(c[k], pa.int64()) for k in ints]
        arrays += [_plain_ids(c[k]) for k in ints]
        arrays.append(pa.array(c["v1" if table == "x" else "v2"]))
        return pa.Table.from_arrays(arrays, schema=arrow)
    return to_table


def _join_schema(levels: int, value: str) -> pa.Schema:
    ints = [(f"id{j + 1}", pa.int64()) for j in range(levels)]
    strs = [(f"id{j + 4}", pa.string()) for j in range(levels)]
    return pa.schema(ints + strs + [(value, pa.float64())])


# --- joins on users: a broadcast-sized dimension and a large table on id -----------------
REGIONS = ("north", "south", "east", "west", "central")
NAMES_DIM_SCHEMA = pa.schema([("name", pa.string()), ("region", pa.string()), ("weight", pa.float64())])


def names_dim_chunk(seed: int, part: int, chunk: int, first: int, n: int, family: int = 0) -> dict[str, np.ndarray]:
    i = np.arange(first, first + n)
    return {"name": i, "region": i % len(REGIONS), "weight": (i + 1) / 10}


def names_dim_table(c: dict[str, np.ndarray]) -> pa.Table:
    return pa.Table.from_arrays([_NAME_STRINGS.take(pa.array(c["name"])),
                                 pa.array(REGIONS, pa.string()).take(pa.array(c["region"])),
                                 pa.array(c["weight"])], schema=NAMES_DIM_SCHEMA)


ACCOUNTS_SCHEMA = pa.schema([("id", pa.int64()), ("balance", pa.float64())])


def accounts_chunk(seed: int, part: int, chunk: int, first: int, n: int, family: int = 0) -> dict[str, np.ndarray]:
    """One account per user id 0..family-1, in shuffled order (so the join must shuffle)."""
    rng = _rng(seed, part, chunk)
    return {"id": _permutation(np.arange(first, first + n), max(family, 1), seed).astype(np.int64),
            "balance": np.round(rng.normal(10_000.0, 5_000.0, n), 2)}


# --- skew: a fact table whose key is Zipf-distributed, and its dimension -------------------
KEYS_PER_ROW = 100  # K = rows / 100 keys: 100 rows per key when uniform
KEYS_SCHEMA = pa.schema([("id", pa.int64()), ("key", pa.int64()), ("v", pa.float64())])
KEYS_DIM_SCHEMA = pa.schema([("key", pa.int64()), ("w", pa.float64())])


def key_count(family: int) -> int:
    return max(10, family // KEYS_PER_ROW)


def _zipf_cdf(k: int, exponent: float) -> np.ndarray:
    weights = np.arange(1, k + 1, dtype=np.float64) ** -exponent
    cdf = np.cumsum(weights)
    return cdf / cdf[-1]


def keys_chunk_maker(exponent: float):
    """P(key = k) proportional to k**-exponent over 1..K; exponent 0 is uniform."""
    def make(seed: int, part: int, chunk: int, first: int, n: int, family: int = 0) -> dict[str, np.ndarray]:
        rng = _rng(seed, part, chunk)
        k = key_count(max(family, 1))
        if exponent == 0:
            key = rng.integers(1, k + 1, n)
        else:
            key = np.minimum(np.searchsorted(_zipf_cdf(k, exponent), rng.random(n), side="right"), k - 1) + 1
        return {"id": np.arange(first, first + n, dtype=np.int64), "key": key.astype(np.int64),
                "v": np.round(rng.random(n), 6)}
    return make


def keys_dim_chunk(seed: int, part: int, chunk: int, first: int, n: int, family: int = 0) -> dict[str, np.ndarray]:
    """One row per key 1..K in shuffled order, so joining to it must shuffle (or broadcast)."""
    rng = _rng(seed, part, chunk)
    key = 1 + _permutation(np.arange(first, first + n), key_count(max(family, 1)), seed).astype(np.int64)
    return {"key": key, "w": np.round(rng.random(n), 6)}


def _table_of(arrow: pa.Schema):
    def to_table(c: dict[str, np.ndarray]) -> pa.Table:
        return pa.Table.from_arrays([pa.array(c[f.name], f.type) for f in arrow], schema=arrow)
    return to_table


def _csv_of(to_table: Callable[[dict[str, np.ndarray]], pa.Table]):
    def to_csv(c: dict[str, np.ndarray]) -> bytes:
        sink = pa.BufferOutputStream()
        pacsv.write_csv(to_table(c), sink, pacsv.WriteOptions(include_header=False, quoting_style="none"))
        return sink.getvalue().to_pybytes()
    return to_csv


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


def _simple(name: str, arrow: pa.Schema, make_chunk: Callable[..., dict[str, np.ndarray]],
            dictionary: tuple[str, ...] = (), table_rows: Callable[[int], int] = _same_rows,
            to_table: Callable[[dict[str, np.ndarray]], pa.Table] | None = None) -> Schema:
    to_table = to_table or _table_of(arrow)
    return Schema(name, tuple(arrow.names), arrow, make_chunk, _csv_of(to_table), to_table, dictionary,
                  table_rows)


_JOIN_TABLES = {"x": 3, "small": 1, "medium": 2, "big": 3}

SCHEMAS: dict[str, Schema] = {
    "points": Schema("points", ("id", "x", "y", "category"), POINTS_SCHEMA, points_chunk, points_csv,
                     points_table, ("category",)),
    "users": Schema("users", ("id", "name", "age", "salary", "signup_date", "is_active"), USERS_SCHEMA,
                    users_chunk, users_csv, users_table, ("name",)),
    "h2o_groupby": _simple("h2o_groupby", H2O_GROUPBY_SCHEMA, h2o_groupby_chunk, ("id1", "id2"),
                           to_table=h2o_groupby_table),
    **{f"h2o_join_{t}": _simple(f"h2o_join_{t}", (arrow := _join_schema(levels, "v1" if t == "x" else "v2")),
                                _join_chunk(t), table_rows=(_same_rows if t in ("x", "big") else
                                                            (lambda f, j=levels - 1: h2o_join_sizes(f)[j])),
                                to_table=_join_table(t, arrow))
       for t, levels in _JOIN_TABLES.items()},
    "names_dim": _simple("names_dim", NAMES_DIM_SCHEMA, names_dim_chunk, table_rows=lambda family: len(NAMES),
                         to_table=names_dim_table),
    "accounts": _simple("accounts", ACCOUNTS_SCHEMA, accounts_chunk),
    "keys_dim": _simple("keys_dim", KEYS_DIM_SCHEMA, keys_dim_chunk, table_rows=key_count),
}

KEYS_PREFIX = "keys_s"


def keys_name(exponent: float) -> str:
    """'keys_s0' (uniform keys), 'keys_s1.2' (Zipf, exponent 1.2)."""
    return f"{KEYS_PREFIX}{exponent:g}"


def schema_for(name: str) -> Schema | None:
    """The schema of a dataset name, including the parametric skewed-key tables."""
    if name in SCHEMAS:
        return SCHEMAS[name]
    if name.startswith(KEYS_PREFIX):
        try:
            exponent = float(name[len(KEYS_PREFIX):])
        except ValueError:
            return None
        if 0 <= exponent <= 10 and keys_name(exponent) == name:
            return _simple(name, KEYS_SCHEMA, keys_chunk_maker(exponent))
    return None
