"""pandas stage families ETL, groupby and sort: whole frame, or chunk by chunk beyond the budget
(partial aggregates added up, top k per chunk, range-bucketed external sort)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from scalebench.datasets.schemas import USERS_SCHEMA
from scalebench.engines.base import StageInput
from scalebench.engines.pandas.read import PANDAS_DTYPES, PandasReader
from scalebench.inputs import normalise_name
from scalebench.stages import EXTREMES, ID_BUCKET_WIDTH, TOP_EARNERS

SORT_BUCKETS_PER_CHUNK = 1  # an external sort makes about as many buckets as input chunks
# etl_users' casts: the users schema's numbers and flag (name stays text; signup_date becomes a date)
ETL_USERS_DTYPES = {f.name: PANDAS_DTYPES[str(f.type)] for f in USERS_SCHEMA
                    if pa.types.is_integer(f.type) or pa.types.is_floating(f.type) or pa.types.is_boolean(f.type)}


class PandasTables(PandasReader):
    # -- etl ------------------------------------------------------------------
    def etl_users(self, inp: StageInput, out: Path) -> None:
        seen = pd.Index([], dtype="int64")
        for i, df in enumerate(self._chunks(inp)):
            df.columns = [normalise_name(c) for c in df.columns]
            df = df.astype(ETL_USERS_DTYPES)
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
    def _top(self, inp: StageInput, columns: list[str], keep: Callable[[pd.DataFrame], pd.DataFrame],
             order: list[str], ascending: list[bool], k: int) -> pd.DataFrame:
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
        active = lambda df: df[df["is_active"]]
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
