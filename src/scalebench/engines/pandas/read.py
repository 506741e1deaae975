"""pandas: the single-node baseline. Whole-frame when the data fits the memory
budget; otherwise streamed in chunks, as the seeds' chunking notes describe
(partial aggregates combined, top-k per chunk, range-bucketed external sort)."""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from scalebench import ml
from scalebench.datasets.schemas import schema_for
from scalebench.engines.base import Engine, NotApplicable, StageInput
from scalebench.stages import EXTREMES, H2O_GROUPBY_QUESTIONS, H2O_JOIN_QUESTIONS, ID_BUCKET_WIDTH, TOP_EARNERS

PANDAS_DTYPES = {"int64": "int64", "int32": "int32", "double": "float64", "string": "str", "bool": "bool"}
# in-memory bytes per row, with headroom for the copies a query makes; other datasets: from their schema
WORKING_BYTES_PER_ROW = {"points": 4 * 40, "users": 4 * 64}
FIELD_BYTES = {"string": 16, "int32": 4, "bool": 1}  # Arrow-backed str: short ids plus offsets; the rest 8
HEADROOM = 4
SORT_BUCKETS_PER_CHUNK = 1  # an external sort makes about as many buckets as input chunks
MIN_CHUNK_ROWS = 50_000

# db-benchmark groupby questions as named aggregations: (group keys, {answer column: (column, function)})
H2O_ALL_IDS = ["id1", "id2", "id3", "id4", "id5", "id6"]
H2O_AGGS: dict[str, tuple[list[str], dict[str, tuple[str, str]]]] = {
    "q1": (["id1"], {"v1": ("v1", "sum")}),
    "q2": (["id1", "id2"], {"v1": ("v1", "sum")}),
    "q3": (["id3"], {"v1": ("v1", "sum"), "v3": ("v3", "mean")}),
    "q4": (["id4"], {"v1": ("v1", "mean"), "v2": ("v2", "mean"), "v3": ("v3", "mean")}),
    "q5": (["id6"], {"v1": ("v1", "sum"), "v2": ("v2", "sum"), "v3": ("v3", "sum")}),
    "q6": (["id4", "id5"], {"median_v3": ("v3", "median"), "sd_v3": ("v3", "std")}),
    "q7": (["id3"], {"max_v1": ("v1", "max"), "min_v2": ("v2", "min")}),
    "q8": (["id6"], {}),   # top two v3 per id6: sort, then head(2) per group
    "q9": (["id2", "id4"], {}),  # r2 from exact integer moments (n, sums, sums of products)
    "q10": (H2O_ALL_IDS, {"v3": ("v3", "sum"), "count": ("v3", "size")}),
}
H2O_COLUMNS = {"q8": ["id6", "v3"], "q9": ["id2", "id4", "v1", "v2"]}
# beyond the budget: these stream as partial aggregates folded chunk by chunk; q6 (exact median)
# and q10 (about one group per row, so partials never shrink) hash-partition to disk instead
H2O_STREAMED = ("q1", "q2", "q3", "q4", "q5", "q7", "q8", "q9")
COMBINE = {"sum": "sum", "count": "sum", "size": "sum", "max": "max", "min": "min"}


def csv_dtypes(dataset: str) -> tuple[dict[str, str], list[str]]:
    """Column dtypes and date columns from the dataset's schema: no inference pass over the CSV."""
    arrow = schema_for(dataset).arrow
    dates = [f.name for f in arrow if pa.types.is_timestamp(f.type)]
    return {f.name: PANDAS_DTYPES[str(f.type)] for f in arrow if f.name not in dates}, dates


def working_bytes_per_row(dataset: str, columns: list[str] | None = None) -> int:
    """In-memory bytes per row of the columns read, with HEADROOM for a query's copies."""
    if dataset in WORKING_BYTES_PER_ROW:
        return WORKING_BYTES_PER_ROW[dataset]
    fields = [f for f in schema_for(dataset).arrow if columns is None or f.name in columns]
    return HEADROOM * max(8, sum(FIELD_BYTES.get(str(f.type), 8) for f in fields))


def _top2(df: pd.DataFrame) -> pd.DataFrame:
    """The two largest v3 per id6 (db-benchmark's pandas answer: sort, then head per group)."""
    return df.dropna(subset=["v3"]).sort_values("v3", ascending=False).groupby("id6", sort=False).head(2)


def _moments(df: pd.DataFrame) -> pd.DataFrame:
    """Per (id2, id4): row count and the integer sums that give corr(v1, v2); additive over chunks."""
    x, y = df["v1"], df["v2"]
    return (df[["id2", "id4"]].assign(n=1, x=x, y=y, xx=x * x, yy=y * y, xy=x * y)
            .groupby(["id2", "id4"], sort=False, observed=True).sum())


def _r2(m: pd.DataFrame) -> pd.DataFrame:
    """corr(v1, v2)**2 from the moments: n*Sxy - Sx*Sy and the variances are exact in int64
    (v1, v2 are integers); NaN where a variance is zero or the group has one row."""
    cov = (m["n"] * m["xy"] - m["x"] * m["y"]).astype("float64")
    var = ((m["n"] * m["xx"] - m["x"] ** 2).astype("float64")
           * (m["n"] * m["yy"] - m["y"] ** 2).astype("float64"))
    return pd.DataFrame({"r2": cov * cov / var.where(var > 0)}, index=m.index)


def _finish(question: str, grouped: pd.DataFrame) -> pd.DataFrame:
    """Answer columns computed from aggregated ones."""
    if question == "q7":
        grouped["range_v1_v2"] = grouped["max_v1"] - grouped["min_v2"]
    return grouped


def _h2o_grouped(question: str, df: pd.DataFrame) -> pd.DataFrame:
    """One groupby question on a whole frame (or a whole hash partition), as a pandas user writes it."""
    if question == "q8":
        return _top2(df).rename(columns={"v3": "largest2_v3"})
    if question == "q9":  # groupby().apply(corr) is a Python loop over 10,000 groups; the moments are not
        return _r2(_moments(df))
    keys, aggs = H2O_AGGS[question]
    return _finish(question, df.groupby(keys, sort=False, observed=True).agg(**aggs))


def _h2o_summary(question: str, grouped: pd.DataFrame) -> pd.DataFrame:
    """db-benchmark's check over the grouped result: its row count and each answer column's sum
    (Series.sum skips NaN: q9's undefined r2, q6's sd of one-row groups)."""
    return pd.DataFrame({"rows": [len(grouped)], **{c: [grouped[c].sum()] for c in H2O_GROUPBY_QUESTIONS[question]}})


def _add_rows(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """One row: the column sums of one-row summaries, each column keeping its dtype."""
    total = pd.concat(frames, ignore_index=True)
    return pd.DataFrame({c: [total[c].sum()] for c in total.columns})


def _add_up(pieces: list[pd.DataFrame]) -> pd.DataFrame:
    """Additive partials (counts and sums, indexed by group or by 0) added up per group."""
    total = pd.concat(pieces).groupby(level=0, sort=False).sum()
    return total.reset_index(drop=total.index.name is None)


def _join_totals(*columns: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """A join's ungrouped answer: rows and the sum of each column (NaN skipped)."""
    def agg(m: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"rows": [len(m)], **{f"sum_{c}": [m[c].sum()] for c in columns}})
    return agg


class PandasEngine(Engine):
    name = "pandas"

    def start(self) -> None:
        self._own_spill = None

    def stop(self) -> None:
        if getattr(self, "_own_spill", None):
            shutil.rmtree(self._own_spill, ignore_errors=True)
            self._own_spill = None

    def version(self) -> str:
        return pd.__version__

    def describe(self) -> dict:
        return {**super().describe(), "idiom": "pandas (whole frame, or chunks beyond the budget)",
                "address": "in-process", "processes": 1, "threads": 1}

    # -- reading --------------------------------------------------------------
    def _chunk_rows(self, inp: StageInput, columns: list[str] | None = None) -> int | None:
        """None when the whole frame fits the budget; else rows per chunk."""
        per_row = working_bytes_per_row(inp.dataset, columns)
        if inp.rows * per_row <= self.spec.memory_budget_bytes:
            return None
        return max(MIN_CHUNK_ROWS, self.spec.memory_budget_bytes // (per_row * 4))

    def _chunks(self, inp: StageInput, columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
        chunk_rows = self._chunk_rows(inp, columns)
        self.last_notes["mode"] = "whole" if chunk_rows is None else "chunked"
        self.last_notes["chunks"] = 0
        for df in self._read(inp, columns, chunk_rows):
            self.last_notes["chunks"] += 1
            yield df

    def _read(self, inp: StageInput, columns: list[str] | None, chunk_rows: int | None) -> Iterator[pd.DataFrame]:
        if inp.format == "csv":
            dtypes, dates = csv_dtypes(inp.dataset)
            dates = [c for c in dates if columns is None or c in columns]
            kw = dict(dtype=dtypes, parse_dates=dates, usecols=columns)
            if chunk_rows is None:
                yield pd.read_csv(inp.path, engine="pyarrow", **kw)
            else:
                yield from pd.read_csv(inp.path, chunksize=chunk_rows, **kw)
        elif chunk_rows is None:
            yield pd.read_parquet(inp.path, columns=columns)
        else:
            for f in inp.files:
                for batch in pq.ParquetFile(f).iter_batches(batch_size=chunk_rows, columns=columns):
                    yield batch.to_pandas()

    def _spill_dir(self) -> Path:
        if self.spec.spill_dir is not None:
            return Path(tempfile.mkdtemp(prefix="pandas-", dir=self.spec.spill_dir))
        if self._own_spill is None:
            self._own_spill = Path(tempfile.mkdtemp(prefix="scalebench-pandas-"))
        return Path(tempfile.mkdtemp(dir=self._own_spill))

    # -- etl ------------------------------------------------------------------
    def etl_users(self, inp: StageInput, out: Path) -> None:
        seen = pd.Index([], dtype="int64")
        for i, df in enumerate(self._chunks(inp)):
            df.columns = [c.strip().lower().replace(" ", "_") for c in df.columns]
            df = df.astype({"id": "int64", "age": "int32", "salary": "float64", "is_active": "bool"})
            df["signup_date"] = pd.to_datetime(df["signup_date"]).astype(pd.ArrowDtype(pa.date32()))
            df = df.dropna()
            df = df[~df["id"].duplicated() & ~df["id"].isin(seen)]
            seen = seen.append(pd.Index(df["id"]))
            df.to_parquet(out, partition_cols=["is_active"], index=False,
                          basename_template=f"part-{i:05d}-{{i}}.parquet")

    def etl_points(self, inp: StageInput, out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        for i, df in enumerate(self._chunks(inp)):
            df.to_parquet(out / f"part-{i:05d}.parquet", index=False)

    # -- groupby --------------------------------------------------------------
    def _grouped_sums(self, inp: StageInput, key: pd.Series | str, columns: list[str],
                      sums: list[str], counts: list[str]) -> pd.DataFrame:
        """Partial count and sums per chunk, added up: the same code for one chunk or many."""
        partials = []
        for df in self._chunks(inp, columns):
            k = key(df) if callable(key) else df[key]
            g = df.groupby(k)
            part = pd.DataFrame({"count": g.size()})
            for c in sums:
                part[f"sum_{c}"] = g[c].sum()
            for c in counts:
                part[f"n_{c}"] = g[c].count()
            partials.append(part)
        total = pd.concat(partials).groupby(level=0).sum()
        total.index.name = None
        return total

    def groupby_points(self, inp: StageInput) -> pd.DataFrame:
        t = self._grouped_sums(inp, "category", ["category", "x", "y"], ["x", "y"], [])
        return pd.DataFrame({"category": t.index, "count": t["count"].to_numpy(),
                             "sum_x": t["sum_x"].to_numpy(), "mean_x": (t["sum_x"] / t["count"]).to_numpy(),
                             "sum_y": t["sum_y"].to_numpy(), "mean_y": (t["sum_y"] / t["count"]).to_numpy()})

    def groupby_age(self, inp: StageInput) -> pd.DataFrame:
        t = self._grouped_sums(inp, "age", ["age", "salary"], ["salary"], ["salary"])
        return pd.DataFrame({"age": t.index, "count": t["count"].to_numpy(),
                             "mean_salary": (t["sum_salary"] / t["n_salary"]).to_numpy()})

    def groupby_id_bucket(self, inp: StageInput) -> pd.DataFrame:
        t = self._grouped_sums(inp, lambda df: (df["id"] // ID_BUCKET_WIDTH).rename("bucket"),
                               ["id", "salary"], ["salary"], [])
        return pd.DataFrame({"bucket": t.index, "count": t["count"].to_numpy(),
                             "sum_salary": t["sum_salary"].to_numpy()})

    # -- sort -----------------------------------------------------------------
    def _top(self, inp: StageInput, columns: list[str], keep, order: list[str], ascending: list[bool],
             k: int) -> pd.DataFrame:
        """Top k of each chunk, then of their union. Duplicate ids are exact copies of a
        row, so dropping them among candidates equals dropping them first."""
        best = []
        for df in self._chunks(inp, columns):
            df = keep(df).drop_duplicates("id")
            best.append(df.sort_values(order, ascending=ascending).head(k))
        merged = pd.concat(best).drop_duplicates("id")
        return merged.sort_values(order, ascending=ascending).head(k).reset_index(drop=True)

    def sort_top_earners(self, inp: StageInput) -> pd.DataFrame:
        return self._top(inp, ["id", "name", "salary"], lambda df: df.dropna(subset=["salary"]),
                         ["salary", "id"], [False, True], TOP_EARNERS)

    def sort_active_extremes(self, inp: StageInput) -> pd.DataFrame:
        cols = ["id", "name", "age", "is_active"]
        active = lambda df: df[df["is_active"]]  # noqa: E731
        young = self._top(inp, cols, active, ["age", "id"], [True, True], EXTREMES)
        old = self._top(inp, cols, active, ["age", "id"], [False, True], EXTREMES)
        both = pd.concat([young.assign(end="youngest"), old.assign(end="oldest")], ignore_index=True)
        return both[["end", "id", "name", "age"]]

    def sort_global(self, inp: StageInput, out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        if self._chunk_rows(inp) is None:
            df = next(self._chunks(inp)).dropna(subset=["salary"])
            df.sort_values(["salary", "id"]).to_parquet(out / "part-00000.parquet", index=False)
            return
        self._external_sort(inp, out)

    def _external_sort(self, inp: StageInput, out: Path) -> None:
        """Range-bucketed sort: sample bounds, scatter rows to bucket files, sort each bucket.
        Equal salaries land in one bucket, so the part files never overlap on (salary, id)."""
        sample = np.concatenate([df["salary"].dropna().to_numpy()[::97] for df in self._chunks(inp, ["salary"])])
        n_buckets = max(2, self.last_notes["chunks"] * SORT_BUCKETS_PER_CHUNK)
        bounds = np.unique(np.quantile(sample, np.linspace(0, 1, n_buckets + 1)[1:-1])) if len(sample) else []
        spill = self._spill_dir()
        try:
            for i, df in enumerate(self._chunks(inp)):
                df = df.dropna(subset=["salary"])
                bucket = np.searchsorted(bounds, df["salary"].to_numpy(), side="right")
                for b, part in df.groupby(bucket):
                    (spill / f"b{b:05d}").mkdir(exist_ok=True)
                    part.to_parquet(spill / f"b{b:05d}" / f"c{i:05d}.parquet", index=False)
            for b_dir in sorted(spill.iterdir()):
                part = pd.read_parquet(b_dir).sort_values(["salary", "id"])
                part.to_parquet(out / f"part-{b_dir.name[1:]}.parquet", index=False)
        finally:
            shutil.rmtree(spill, ignore_errors=True)

    # -- out of core: hash partitions on disk ------------------------------------------
    def _whole(self, inp: StageInput, columns: list[str]) -> pd.DataFrame:
        return next(self._read(inp, columns, None))

    def _partitions(self, nbytes: int) -> int:
        """Hash partitions for `nbytes` of working set: each about half the budget (skew headroom)."""
        return max(2, 2 * math.ceil(nbytes / self.spec.memory_budget_bytes))

    def _scatter(self, inp: StageInput, columns: list[str], keys: list[str], parts: int, spill: Path,
                 tag: str) -> None:
        """Write a table, chunk by chunk, into `parts` folders by hash of `keys`: every key's rows
        land in one folder, so a groupby or join can run folder by folder."""
        for i, df in enumerate(self._read(inp, columns, self._chunk_rows(inp, columns))):
            part = pd.util.hash_pandas_object(df[keys], index=False).to_numpy() % np.uint64(parts)
            for p, piece in df.groupby(part, sort=False):
                folder = spill / f"{tag}{int(p):05d}"
                folder.mkdir(exist_ok=True)
                piece.to_parquet(folder / f"c{i:05d}.parquet", index=False)
            self.last_notes["chunks"] = self.last_notes.get("chunks", 0) + 1

    # -- db-benchmark groupby ------------------------------------------------------------
    def _h2o_groupby(self, inp: StageInput, question: str) -> pd.DataFrame:
        """Whole frame when it fits the budget. Beyond it, questions whose aggregates decompose
        stream (partials folded chunk by chunk); q6's exact median and q10's one group per row
        or so hash-partition the rows on the group keys to disk and answer partition by partition."""
        keys, aggs = H2O_AGGS[question]
        columns = H2O_COLUMNS.get(question) or list(dict.fromkeys(keys + [c for c, _ in aggs.values()]))
        if self._chunk_rows(inp, columns) is None:
            return _h2o_summary(question, _h2o_grouped(question, next(self._chunks(inp, columns))))
        if question in H2O_STREAMED:
            return _h2o_summary(question, self._h2o_streamed(inp, question, columns))
        return self._h2o_partitioned(inp, question, columns)

    def _h2o_streamed(self, inp: StageInput, question: str, columns: list[str]) -> pd.DataFrame:
        """Each chunk's partial aggregates (sums, counts, min, max; the two largest v3 per id6;
        the r2 moments) folded into a running total, then finished."""
        keys, aggs = H2O_AGGS[question]
        partial: dict[str, tuple[str, str]] = {}
        for out, (col, fn) in aggs.items():
            partial.update({f"{out}_sum": (col, "sum"), f"{out}_n": (col, "count")} if fn == "mean"
                           else {out: (col, fn)})
        combine = {name: COMBINE[fn] for name, (_, fn) in partial.items()}
        levels = list(range(len(keys)))
        acc: pd.DataFrame | None = None
        for df in self._chunks(inp, columns):
            if question == "q8":
                acc = _top2(df if acc is None else pd.concat([acc, df], ignore_index=True))
                continue
            part = _moments(df) if question == "q9" else df.groupby(keys, sort=False, observed=True).agg(**partial)
            if acc is not None:
                part = pd.concat([acc, part]).groupby(level=levels, sort=False)
                part = part.sum() if question == "q9" else part.agg(combine)
            acc = part
        self.last_notes["idiom"] = "partial aggregates per chunk, folded"
        if question == "q8":
            return acc.rename(columns={"v3": "largest2_v3"})
        if question == "q9":
            return _r2(acc)
        for out, (_, fn) in aggs.items():
            if fn == "mean":
                acc[out] = acc[f"{out}_sum"] / acc[f"{out}_n"]
        return _finish(question, acc)

    def _h2o_partitioned(self, inp: StageInput, question: str, columns: list[str]) -> pd.DataFrame:
        """Rows hash-partitioned on the group keys to disk; every group lies in one partition, so
        each partition is answered whole and the one-row summaries add up."""
        keys, _ = H2O_AGGS[question]
        parts = self._partitions(inp.rows * working_bytes_per_row(inp.dataset, columns))
        self.last_notes.update(mode="partitioned", partitions=parts, chunks=0)
        spill = self._spill_dir()
        try:
            self._scatter(inp, columns, keys, parts, spill, "p")
            summaries = [_h2o_summary(question, _h2o_grouped(question, pd.read_parquet(folder)))
                         for folder in sorted(spill.iterdir())]
        finally:
            shutil.rmtree(spill, ignore_errors=True)
        return _add_rows(summaries)

    def h2o_groupby_q1(self, inp: StageInput) -> pd.DataFrame:
        return self._h2o_groupby(inp, "q1")

    def h2o_groupby_q2(self, inp: StageInput) -> pd.DataFrame:
        return self._h2o_groupby(inp, "q2")

    def h2o_groupby_q3(self, inp: StageInput) -> pd.DataFrame:
        return self._h2o_groupby(inp, "q3")

    def h2o_groupby_q4(self, inp: StageInput) -> pd.DataFrame:
        return self._h2o_groupby(inp, "q4")

    def h2o_groupby_q5(self, inp: StageInput) -> pd.DataFrame:
        return self._h2o_groupby(inp, "q5")

    def h2o_groupby_q6(self, inp: StageInput) -> pd.DataFrame:
        return self._h2o_groupby(inp, "q6")

    def h2o_groupby_q7(self, inp: StageInput) -> pd.DataFrame:
        return self._h2o_groupby(inp, "q7")

    def h2o_groupby_q8(self, inp: StageInput) -> pd.DataFrame:
        return self._h2o_groupby(inp, "q8")

    def h2o_groupby_q9(self, inp: StageInput) -> pd.DataFrame:
        return self._h2o_groupby(inp, "q9")

    def h2o_groupby_q10(self, inp: StageInput) -> pd.DataFrame:
        return self._h2o_groupby(inp, "q10")

    # -- joins ----------------------------------------------------------------------------
    def _join_agg(self, left: StageInput, right: StageInput, on: str, how: str, left_cols: list[str],
                  right_cols: list[str], agg: Callable[[pd.DataFrame], pd.DataFrame]) -> pd.DataFrame:
        """left.merge(right) reduced by `agg` to additive partials (counts, sums; per group or one
        row), added up. pandas has one join, an in-memory hash join, and no broadcast/shuffle
        choice. Whole when both sides fit the budget; beyond it the left side streams in chunks
        against the whole right side when that fits half the budget; else a grace hash join:
        both sides hash-partitioned on the key to disk and joined partition by partition."""
        budget = self.spec.memory_budget_bytes
        left_per_row = working_bytes_per_row(left.dataset, left_cols)
        left_bytes = left.rows * left_per_row
        right_bytes = right.rows * working_bytes_per_row(right.dataset, right_cols)
        self.last_notes["join"] = f"merge(how={how!r}, on={on!r})"
        if left_bytes + right_bytes <= budget:
            self.last_notes["mode"] = "whole"
            return _add_up([agg(self._whole(left, left_cols).merge(self._whole(right, right_cols), on=on, how=how))])
        if right_bytes <= budget // 2:
            other = self._whole(right, right_cols)
            chunk_rows = max(MIN_CHUNK_ROWS, (budget - right_bytes) // (left_per_row * 4))
            pieces = [agg(df.merge(other, on=on, how=how)) for df in self._read(left, left_cols, chunk_rows)]
            self.last_notes.update(mode="chunked against the whole right side", chunks=len(pieces))
            return _add_up(pieces)
        parts = self._partitions(left_bytes + right_bytes)
        self.last_notes.update(mode="grace hash join", partitions=parts, chunks=0)
        empty = {tag: schema_for(t.dataset).arrow.empty_table().select(cols).to_pandas()
                 for tag, t, cols in (("l", left, left_cols), ("r", right, right_cols))}
        spill = self._spill_dir()
        try:
            self._scatter(left, left_cols, [on], parts, spill, "l")
            self._scatter(right, right_cols, [on], parts, spill, "r")
            pieces = []
            for p in range(parts):
                sides = [pd.read_parquet(spill / f"{tag}{p:05d}") if (spill / f"{tag}{p:05d}").exists()
                         else empty[tag] for tag in ("l", "r")]
                pieces.append(agg(sides[0].merge(sides[1], on=on, how=how)))
        finally:
            shutil.rmtree(spill, ignore_errors=True)
        return _add_up(pieces)

    def _h2o_join(self, inp: StageInput, question: str) -> pd.DataFrame:
        table, key, how = H2O_JOIN_QUESTIONS[question]
        return self._join_agg(inp, inp.extra[table], key, how, [key, "v1"], [key, "v2"], _join_totals("v1", "v2"))

    def h2o_join_q1(self, inp: StageInput) -> pd.DataFrame:
        return self._h2o_join(inp, "q1")

    def h2o_join_q2(self, inp: StageInput) -> pd.DataFrame:
        return self._h2o_join(inp, "q2")

    def h2o_join_q3(self, inp: StageInput) -> pd.DataFrame:
        return self._h2o_join(inp, "q3")

    def h2o_join_q4(self, inp: StageInput) -> pd.DataFrame:
        return self._h2o_join(inp, "q4")

    def h2o_join_q5(self, inp: StageInput) -> pd.DataFrame:
        return self._h2o_join(inp, "q5")

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
    def _no_skew_remedy(self, op: str, remedy: str) -> None:
        """Salting and a framework's own skew remedy balance a hot key over workers or tasks;
        pandas runs one process and one hash table, with nothing to balance."""
        self.last_notes["remedy"] = remedy
        if remedy != "plain":
            raise NotApplicable(f"pandas: one process and one hash table, no workers to spread a hot key over: "
                                f"no {remedy} skew remedy for {op}")

    def skew_groupby(self, inp: StageInput, remedy: str = "plain") -> pd.DataFrame:
        """by_key: one bucket file at a time, each key's total final where it is (nothing to
        combine across chunks), so memory is one bucket's rows and groups, not the table's."""
        if remedy == "by_key":
            buckets = inp.require_partitioned("key", "pandas")
            t = pd.concat([_sums_by_key(pd.read_parquet(f, columns=["key", "v"])) for f in buckets])
            self.last_notes = {"remedy": remedy, "mode": "bucket by bucket", "buckets": len(buckets)}
        else:
            self._no_skew_remedy("groupby", remedy)
            t = self._grouped_sums(inp, "key", ["key", "v"], ["v"], [])
        return pd.DataFrame({"groups": [len(t)], "rows": [t["count"].sum()], "sum_v": [t["sum_v"].sum()],
                             "max_count": [t["count"].max()]})

    def skew_join(self, inp: StageInput, remedy: str = "plain") -> pd.DataFrame:
        self._no_skew_remedy("join", remedy)
        return self._join_agg(inp, inp.extra["keys_dim"], "key", "inner", ["key", "v"], ["key", "w"],
                              _join_totals("v", "w"))

    # -- machine learning -----------------------------------------------------
    def logreg(self, inp: StageInput) -> ml.Fit:
        """scikit-learn on the whole frame; beyond the budget, the same objective by L-BFGS
        over partial sums that re-read the chunks each iteration (out of core, exact)."""
        cols = ["x", "y", "category"]
        if self._chunk_rows(inp) is None:
            from sklearn.linear_model import LogisticRegression

            df = next(self._chunks(inp, cols))
            model = LogisticRegression(C=ml.sklearn_C(len(df)), tol=ml.TOL, max_iter=ml.MAX_ITER)
            model.fit(df[["x", "y"]].to_numpy(), df["category"].to_numpy())
            accuracy = float(model.score(df[["x", "y"]].to_numpy(), df["category"].to_numpy()))
            self.last_notes["solver"] = "scikit-learn lbfgs"
            return ml.fit_from_sklearn(model, len(df), accuracy)
        self.last_notes["solver"] = "scipy L-BFGS over chunk partial sums"

        def partials(w: np.ndarray) -> ml.Partial:
            total = None
            for df in self._chunks(inp, cols):
                part = ml.partial_for_frame(df, w)
                total = part if total is None else total + part
            return total

        return ml.fit_distributed(partials)

    def sample_users(self, inp: StageInput, rows: int, seed: int) -> pd.DataFrame:
        fraction = min(1.0, rows * 1.1 / max(1, inp.rows))
        cols = list(ml.TUNE_FEATURES) + [ml.TUNE_TARGET]
        parts = [df.sample(frac=fraction, random_state=seed + i)
                 for i, df in enumerate(self._chunks(inp, None if inp.extra.get("hive") else cols))]
        sample = pd.concat(parts, ignore_index=True)[cols].head(rows)
        if inp.extra.get("hive") and not pd.api.types.is_bool_dtype(sample["is_active"]):
            sample = ml.active_from_folder(sample)  # the folder names come back as a category of text
        return sample

    def grid_map(self, fn, tasks: list) -> list:
        """joblib's process pool, one process per core: pandas has no cluster of its own."""
        from joblib import Parallel, delayed

        return Parallel(n_jobs=self.spec.cores)(delayed(fn)(t) for t in tasks)

    def predict(self, inp: StageInput, model_dir: Path, out: Path, csv_out: Path | None = None) -> None:
        model, scaler = ml.load_model(model_dir)
        out.mkdir(parents=True, exist_ok=True)
        if csv_out is not None:
            csv_out.mkdir(parents=True, exist_ok=True)
        batches = 0
        for i, df in enumerate(self._chunks(inp)):
            pred = ml.predict_frame(df, model, scaler)
            pred.to_parquet(out / f"part-{i:05d}.parquet", index=False)
            if csv_out is not None:
                pred.to_csv(csv_out / f"part-{i:05d}.csv", index=False)
            batches += 1
        self.last_notes["batches"] = batches


ENGINE = PandasEngine


def _sums_by_key(df: pd.DataFrame) -> pd.DataFrame:
    g = df.groupby("key")["v"]
    return pd.DataFrame({"count": g.size(), "sum_v": g.sum()})
