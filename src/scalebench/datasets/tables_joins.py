"""Chunk generators of the join and skew tables: names_dim and accounts (joined to users),
keys_s<exponent> (a fact table with Zipf-distributed keys) and keys_dim. Their definitions
are in schemas.py."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa

from scalebench.datasets.chunks import chunk_rng, permutation
from scalebench.datasets.schemas import NAMES_DIM_SCHEMA, REGIONS, key_count
from scalebench.datasets.tables_users import NAME_STRINGS

# --- joins on users: a broadcast-sized dimension and a large table on id -----------------


def names_dim_chunk(seed: int, part: int, chunk: int, first: int, n: int, family: int = 0) -> dict[str, np.ndarray]:
    i = np.arange(first, first + n)
    return {"name": i, "region": i % len(REGIONS), "weight": (i + 1) / 10}


def names_dim_table(c: dict[str, np.ndarray]) -> pa.Table:
    return pa.Table.from_arrays([NAME_STRINGS.take(pa.array(c["name"])),
                                 pa.array(REGIONS, pa.string()).take(pa.array(c["region"])),
                                 pa.array(c["weight"])], schema=NAMES_DIM_SCHEMA)


def accounts_chunk(seed: int, part: int, chunk: int, first: int, n: int, family: int = 0) -> dict[str, np.ndarray]:
    """One account per user id 0..family-1, in shuffled order (so the join must shuffle)."""
    rng = chunk_rng(seed, part, chunk)
    return {"id": permutation(np.arange(first, first + n), max(family, 1), seed).astype(np.int64),
            "balance": np.round(rng.normal(10_000.0, 5_000.0, n), 2)}


# --- skew: a fact table whose key is Zipf-distributed, and its dimension -------------------


def _zipf_cdf(k: int, exponent: float) -> np.ndarray:
    weights = np.arange(1, k + 1, dtype=np.float64) ** -exponent
    cdf = np.cumsum(weights)
    return cdf / cdf[-1]


def keys_chunk_maker(exponent: float) -> Callable[..., dict[str, np.ndarray]]:
    """P(key = k) proportional to k**-exponent over 1..K; exponent 0 is uniform."""
    def make(seed: int, part: int, chunk: int, first: int, n: int, family: int = 0) -> dict[str, np.ndarray]:
        rng = chunk_rng(seed, part, chunk)
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
    rng = chunk_rng(seed, part, chunk)
    key = 1 + permutation(np.arange(first, first + n), key_count(max(family, 1)), seed).astype(np.int64)
    return {"key": key, "w": np.round(rng.random(n), 6)}
