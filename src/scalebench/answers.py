"""What an engine hands back from a timed query, and the form in which it is checked.

db-benchmark materialises every answer inside its timer (Spark persist() + count(), Dask
compute(), pandas in memory) and checks it afterwards; so do we. A small answer is collected to
the driver as a pandas DataFrame. A large one (ANSWERS_HELD: about one row per input row) stays
where the engine made it (persisted in the cluster, a DuckDB table, files on disk) and the engine
returns a Held: its row count, counted inside the timer, and how to fetch and release it, called
outside the timer by the check.

The check compares the whole sorted answer with the reference's (stages.compare). Beyond
WHOLE_ROWS_LIMIT rows it compares a keyed summary instead: row count, the order-free hash total
of the key columns (exact) and, per value column, its sum and its sum weighted by a hash of the
row's keys, so that a value under the wrong key, a key dropped or swapped, or a row lost shows.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

WHOLE_ROWS_LIMIT = 2_000_000
"""Answers up to this many rows are compared whole; longer ones by their keyed summary."""

ANSWERS_HELD: frozenset[tuple[str, str]] = frozenset(
    {("h2o_groupby", "q10")} | {("h2o_join", q) for q in ("q1", "q2", "q3", "q4", "q5")})
"""(op, question) whose answer has about one row per input row: persisted and counted in the
engine, never collected inside the timer. Every other answer is small and collected."""

HASH_WEIGHT_MODULUS = 65521
"""Key hashes are reduced to weights in (0, 1] for the weighted sums (a prime, so weights spread)."""


def held(op: str, question: str | None) -> bool:
    """True when the engine keeps this answer (persisted and counted) rather than collecting it."""
    return (op, question or "") in ANSWERS_HELD


class Held:
    """A large answer the engine materialised and counted inside the timer and still holds.

    `fetch` brings it to the driver as a pandas DataFrame and `release` frees it (unpersist, drop
    the table, remove the files); the check calls both outside the timer, release even when the
    fetch fails. Release happens once, whoever calls it, and drops the engine's callbacks (and so
    whatever frame they hold); a fetch after it is an error, never a silent recompute."""

    def __init__(self, rows: int, fetch: Callable[[], pd.DataFrame],
                 release: Callable[[], None] | None = None, where: str = "") -> None:
        self.rows = rows
        self.where = where
        """Where the engine holds it, for the notes: 'persisted in the cluster', 'DuckDB table', ..."""
        self._fetch: Callable[[], pd.DataFrame] | None = fetch
        self._release = release

    @property
    def released(self) -> bool:
        return self._fetch is None

    def fetch(self) -> pd.DataFrame:
        if self._fetch is None:
            raise RuntimeError(f"the held answer ({self.where or 'engine'}) was already released")
        return self._fetch()

    def release(self) -> None:
        if self._fetch is None:
            return
        free, self._fetch, self._release = self._release, None, None
        if free is not None:
            free()

    def take(self) -> pd.DataFrame:
        """Fetch, then release; the fetched frame must have the counted rows."""
        try:
            frame = self.fetch()
        finally:
            self.release()
        if len(frame) != self.rows:
            raise AssertionError(f"the held answer counted {self.rows} rows but fetched {len(frame)}")
        return frame


def release(result: object) -> None:
    """Free a Held result that will not be checked (a failed round, the end of a test)."""
    if isinstance(result, Held):
        result.release()


def keyed_summary(frame: pd.DataFrame, keys: tuple[str, ...]) -> pd.DataFrame:
    """One row: `rows`, `key_hash` (the wrapped uint64 total of each row's key hash, as text, exact)
    and, per other column, `sum_<c>` and `wsum_<c>` (the sum weighted by the row's key hash).
    `frame` is normalised first (stages.normalise) so that every engine's dtypes hash alike."""
    hashes = pd.util.hash_pandas_object(frame[list(keys)], index=False).to_numpy(dtype=np.uint64)
    weights = (hashes % np.uint64(HASH_WEIGHT_MODULUS) + np.uint64(1)).astype("float64") / HASH_WEIGHT_MODULUS
    row: dict[str, object] = {"rows": len(frame), "key_hash": str(int(hashes.sum(dtype=np.uint64)))}
    for col in frame.columns:
        if col in keys:
            continue
        values = frame[col].to_numpy(dtype="float64", na_value=np.nan)
        row[f"sum_{col}"] = float(np.nansum(values))
        row[f"wsum_{col}"] = float(np.nansum(values * weights))
    return pd.DataFrame([row])
