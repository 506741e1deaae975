"""Pieces every table's chunk generator shares: its random stream, fast ASCII digits, a
seeded shuffle of unique keys, and the generic Arrow and CSV writers.

A chunk depends only on (seed, part, chunk, first row, row count), never on which
process makes it, so the bytes on disk are the same whatever the parallelism.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv


def chunk_rng(seed: int, part: int, chunk: int) -> np.random.Generator:
    """The random stream of one chunk: seeded by its place, not by the process that draws it."""
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


def permutation(i: np.ndarray, n: int, seed: int) -> np.ndarray:
    """A bijection of 0..n-1 (affine, multiplier coprime to n): unique keys in shuffled order."""
    a = 2_654_435_761 + 2 * seed
    while np.gcd(a % n or 1, n) != 1:
        a += 1
    return (i.astype(np.uint64) * np.uint64(a % n or 1) + np.uint64(seed % n)) % np.uint64(n)


def table_of(arrow: pa.Schema) -> Callable[[dict[str, np.ndarray]], pa.Table]:
    """A chunk's columns as an Arrow table of `arrow`, column by column, no conversion."""
    def to_table(c: dict[str, np.ndarray]) -> pa.Table:
        return pa.Table.from_arrays([pa.array(c[f.name], f.type) for f in arrow], schema=arrow)
    return to_table


def csv_of(to_table: Callable[[dict[str, np.ndarray]], pa.Table]) -> Callable[[dict[str, np.ndarray]], bytes]:
    """CSV body (no header) of a chunk through Arrow's writer: for the tables without a
    hand-made fast path."""
    def to_csv(c: dict[str, np.ndarray]) -> bytes:
        sink = pa.BufferOutputStream()
        pacsv.write_csv(to_table(c), sink, pacsv.WriteOptions(include_header=False, quoting_style="none"))
        return sink.getvalue().to_pybytes()
    return to_csv
