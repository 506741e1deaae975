"""pandas joins (join_dim, join_large) and the skew queries. pandas has one join, an in-memory
hash join (merge), and runs one process: a skew remedy that spreads a hot key has nothing to spread
it over, so only the plain forms (and the by-key layout) exist."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd

from scalebench.answers import Held
from scalebench.datasets.schemas import schema_for
from scalebench.engines.base import StageInput
from scalebench.engines.pandas.read import MIN_CHUNK_ROWS, PandasReader, working_bytes_per_row


def _add_up(pieces: list[pd.DataFrame]) -> pd.DataFrame:
    """Additive partials (counts and sums, indexed by group or by 0) added up per group."""
    total = pd.concat(pieces).groupby(level=0, sort=False).sum()
    return total.reset_index(drop=total.index.name is None)


def join_totals(*columns: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """A join's ungrouped answer: rows and the sum of each column (NaN skipped)."""
    def agg(m: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"rows": [len(m)], **{f"sum_{c}": [m[c].sum()] for c in columns}})
    return agg


def _sums_by_key(df: pd.DataFrame) -> pd.DataFrame:
    g = df.groupby("key")["v"]
    return pd.DataFrame({"count": g.size(), "sum_v": g.sum()})


def _no_remedy(op: str, remedy: str) -> str:
    """Salting and a framework's own skew remedy balance a hot key over workers or tasks;
    pandas runs one process and one hash table, with nothing to balance."""
    return (f"one process and one hash table, no workers to spread a hot key over: "
            f"no {remedy} skew remedy for {op}")


class SpilledAnswer:
    """An answer too large for the budget, written piece by piece to Parquet in a private folder
    inside the timer; the check reads it back (fetch) and removes it (release) after the timer."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.rows = 0
        self.files = 0
        self.empty: pd.DataFrame | None = None

    def add(self, piece: pd.DataFrame) -> None:
        if self.empty is None:
            self.empty = piece.iloc[:0]
        if len(piece):
            piece.to_parquet(self.folder / f"part-{self.files:05d}.parquet", index=False)
            self.files += 1
            self.rows += len(piece)

    def fetch(self) -> pd.DataFrame:
        files = sorted(self.folder.glob("part-*.parquet"))
        if not files:
            return pd.DataFrame() if self.empty is None else self.empty.copy()
        return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)

    def release(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def held(self, where: str) -> Held:
        return Held(rows=self.rows, fetch=self.fetch, release=self.release, where=where)


class PandasJoins(PandasReader):
    def _join_mode(self, left: StageInput, right: StageInput, left_cols: list[str], right_cols: list[str]) -> str:
        """'whole' when both sides fit the budget; 'chunked' (the left side streams against the
        whole right side) when the right side fits half of it; else 'grace' (a grace hash join)."""
        budget = self.spec.memory_budget_bytes
        left_bytes = left.rows * working_bytes_per_row(left.dataset, left_cols)
        right_bytes = right.rows * working_bytes_per_row(right.dataset, right_cols)
        if left_bytes + right_bytes <= budget:
            return "whole"
        return "chunked" if right_bytes <= budget // 2 else "grace"

    def _merged(self, left: StageInput, right: StageInput, on: str, how: str, left_cols: list[str],
                right_cols: list[str]) -> Iterator[pd.DataFrame]:
        """left.merge(right), piece by piece. pandas has one join, an in-memory hash join, and no
        broadcast/shuffle choice. Whole (one piece) when both sides fit the budget; beyond it
        the left side streams in chunks against the whole right side when that fits half the
        budget; else a grace hash join: both sides hash-partitioned on the key to disk and
        joined partition by partition (every key's rows meet in one partition, so a left join's
        unmatched rows are found there too)."""
        budget = self.spec.memory_budget_bytes
        mode = self._join_mode(left, right, left_cols, right_cols)
        self.last_notes["join"] = f"merge(how={how!r}, on={on!r})"
        if mode == "whole":
            self.last_notes["mode"] = "whole"
            yield self._whole(left, left_cols).merge(self._whole(right, right_cols), on=on, how=how)
            return
        left_per_row = working_bytes_per_row(left.dataset, left_cols)
        right_bytes = right.rows * working_bytes_per_row(right.dataset, right_cols)
        if mode == "chunked":
            other = self._whole(right, right_cols)
            chunk_rows = max(MIN_CHUNK_ROWS, (budget - right_bytes) // (left_per_row * 4))
            self.last_notes.update(mode="chunked against the whole right side", chunks=0)
            for df in self._read(left, left_cols, chunk_rows):
                self.last_notes["chunks"] += 1
                yield df.merge(other, on=on, how=how)
            return
        parts = self._partitions(left.rows * left_per_row + right_bytes)
        self.last_notes.update(mode="grace hash join", partitions=parts, chunks=0)
        empty = {tag: schema_for(t.dataset).arrow.empty_table().select(cols).to_pandas()
                 for tag, t, cols in (("l", left, left_cols), ("r", right, right_cols))}
        spill = self._spill_dir()
        try:
            self._scatter(left, left_cols, [on], parts, spill, "l")
            self._scatter(right, right_cols, [on], parts, spill, "r")
            for p in range(parts):
                sides = [pd.read_parquet(spill / f"{tag}{p:05d}") if (spill / f"{tag}{p:05d}").exists()
                         else empty[tag] for tag in ("l", "r")]
                yield sides[0].merge(sides[1], on=on, how=how)
        finally:
            shutil.rmtree(spill, ignore_errors=True)

    def _join_agg(self, left: StageInput, right: StageInput, on: str, how: str, left_cols: list[str],
                  right_cols: list[str], agg: Callable[[pd.DataFrame], pd.DataFrame]) -> pd.DataFrame:
        """left.merge(right) (_merged) reduced by `agg` to additive partials (counts, sums; per
        group or one row), added up."""
        return _add_up([agg(m) for m in self._merged(left, right, on, how, left_cols, right_cols)])

    def _join_rows(self, left: StageInput, right: StageInput, on: str, how: str, left_cols: list[str],
                   right_cols: list[str], columns: list[str]) -> pd.DataFrame | Held:
        """The whole joined rows (`columns` of them): a DataFrame in memory when the join ran
        whole; beyond the budget, where the answer (about one row per left row) would not fit
        either, each piece is written to Parquet in a private spill folder and held."""
        pieces = self._merged(left, right, on, how, left_cols, right_cols)
        if self._join_mode(left, right, left_cols, right_cols) == "whole":
            self.last_notes["answer"] = "in memory"
            frame = next(pieces)
            pieces.close()
            return frame[columns]
        answer = SpilledAnswer(self._spill_dir())
        try:
            for piece in pieces:
                answer.add(piece[columns])
        except BaseException:
            answer.release()
            raise
        finally:
            pieces.close()
        self.last_notes["answer"] = ("written to Parquet piece by piece in a spill folder; "
                                     "read back after the timer")
        return answer.held("Parquet files in a spill folder")

    def join_dim(self, inp: StageInput) -> pd.DataFrame:
        """pandas has no broadcast: the 30-row dimension is simply held whole and merged with
        the users frame (or each chunk of it)."""
        self.last_notes["idiom"] = "merge with the whole dimension in memory (broadcast-like)"
        return self._join_agg(inp, inp.extra["names_dim"], "name", "inner", ["name", "salary"],
                              ["name", "region", "weight"],
                              lambda m: m.groupby("region", sort=False).agg(
                                  count=("name", "size"), sum_salary=("salary", "sum"), sum_weight=("weight", "sum")))

    def join_large(self, inp: StageInput) -> pd.DataFrame:
        """Large-large join on id: one in-memory hash join, or a grace hash join beyond the budget."""
        return self._join_agg(inp, inp.extra["accounts"], "id", "inner", ["id", "salary", "is_active"],
                              ["id", "balance"],
                              lambda m: m.groupby("is_active", sort=False).agg(
                                  count=("id", "size"), sum_balance=("balance", "sum"), sum_salary=("salary", "sum")))

    # -- skew ---------------------------------------------------------------------------------
    def skew_groupby(self, inp: StageInput, remedy: str) -> pd.DataFrame:
        self.last_notes["remedy"] = remedy
        t = self.variant("skew_groupby", remedy)(self, inp)
        return pd.DataFrame({"groups": [len(t)], "rows": [t["count"].sum()], "sum_v": [t["sum_v"].sum()],
                             "max_count": [t["count"].max()]})

    def skew_join(self, inp: StageInput, remedy: str) -> pd.DataFrame:
        self.last_notes["remedy"] = remedy
        return self.variant("skew_join", remedy)(self, inp)


def _groupby_plain(engine: PandasJoins, inp: StageInput) -> pd.DataFrame:
    """Count and sum of v per key, chunk by chunk (the groupby stage's partial sums)."""
    return engine._grouped_sums(inp, "key", ["key", "v"], ["v"], [])


def _groupby_by_key(engine: PandasJoins, inp: StageInput) -> pd.DataFrame:
    """One bucket file at a time, each key's total final where it is (nothing to combine across
    chunks), so memory is one bucket's rows and groups, not the table's."""
    buckets = inp.require_partitioned("key", "pandas")
    t = pd.concat([_sums_by_key(pd.read_parquet(f, columns=["key", "v"])) for f in buckets])
    engine.last_notes = {"remedy": "by_key", "mode": "bucket by bucket", "buckets": len(buckets)}
    return t


def _join_plain(engine: PandasJoins, inp: StageInput) -> pd.DataFrame:
    """keys merged with keys_dim on key: the one in-memory hash join (or grace hash join)."""
    return engine._join_agg(inp, inp.extra["keys_dim"], "key", "inner", ["key", "v"], ["key", "w"],
                            join_totals("v", "w"))


SKEW_GROUPBY: dict[str, Callable[..., pd.DataFrame] | str] = {
    "plain": _groupby_plain, "salted": _no_remedy("groupby", "salted"), "by_key": _groupby_by_key,
    "native": _no_remedy("groupby", "native")}
SKEW_JOIN: dict[str, Callable[..., pd.DataFrame] | str] = {
    "plain": _join_plain, "salted": _no_remedy("join", "salted"), "native": _no_remedy("join", "native")}
