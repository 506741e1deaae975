"""Chunk generators of the db-benchmark (h2o.ai, now DuckDB Labs) tables: groupby G1 and
join J1 (x and its right tables small, medium, big). Their definitions are in schemas.py."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from scalebench.datasets.chunks import ascii_digits, chunk_rng, permutation
from scalebench.datasets.schemas import H2O_GROUPBY_SCHEMA, H2O_K, h2o_join_sizes


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


# --- groupby: the distributions of db-benchmark's groupby-datagen.R ------------------


def h2o_groupby_chunk(seed: int, part: int, chunk: int, first: int, n: int, family: int = 0) -> dict[str, np.ndarray]:
    rng = chunk_rng(seed, part, chunk)
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


# --- join: keys as in db-benchmark's join-datagen.R ----------------------------------
# About 90 % of x's keys find a match and about 10 % of each right table's keys are not
# in x: x draws keys from 1..n, a right table holds each key of n//10+1 .. n+n//10
# exactly once, in a seeded pseudo-random order.


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


def join_chunk(table: str) -> Callable[..., dict[str, np.ndarray]]:
    """The chunk generator of join table `table` ('x', 'small', 'medium' or 'big')."""
    def make(seed: int, part: int, chunk: int, first: int, n: int, family: int = 0) -> dict[str, np.ndarray]:
        rng = chunk_rng(seed, part, chunk)
        sizes = h2o_join_sizes(max(family, 1))
        if table == "x":
            cols = _x_side(rng, sizes, n)
            cols["v1"] = np.round(rng.random(n) * 100, 1)
            return cols
        level = {"small": 0, "medium": 1, "big": 2}[table]
        cols = _rhs_side(rng, sizes[:level], n)  # keys of the smaller levels: drawn, may repeat
        lo, _ = _right_keys(sizes[level])
        cols[f"id{level + 1}"] = lo + permutation(np.arange(first, first + n), sizes[level], seed).astype(np.int64)
        cols["v2"] = np.round(rng.random(n) * 100, 1)
        return cols
    return make


def join_table(table: str, arrow: pa.Schema) -> Callable[[dict[str, np.ndarray]], pa.Table]:
    """Arrow table of a join chunk: the integer keys, the same keys as 'idN' strings, the value."""
    def to_table(c: dict[str, np.ndarray]) -> pa.Table:
        ints = [k for k in ("id1", "id2", "id3") if k in c]
        arrays = [pa.array(c[k], pa.int64()) for k in ints]
        arrays += [_plain_ids(c[k]) for k in ints]
        arrays.append(pa.array(c["v1" if table == "x" else "v2"]))
        return pa.Table.from_arrays(arrays, schema=arrow)
    return to_table
