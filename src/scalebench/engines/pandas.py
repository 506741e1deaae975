"""pandas: the single-node baseline. Whole-frame when the data fits the memory
budget; otherwise streamed in chunks, as the seeds' chunking notes describe
(partial aggregates combined, top-k per chunk, range-bucketed external sort)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from scalebench import ml
from scalebench.engines.base import Engine, StageInput
from scalebench.stages import EXTREMES, ID_BUCKET_WIDTH, TOP_EARNERS

CSV_DTYPES = {
    "points": {"id": "int64", "x": "float64", "y": "float64", "category": "str"},
    "users": {"id": "int64", "name": "str", "age": "int32", "salary": "float64", "is_active": "bool"},
}
DATE_COLUMNS = {"points": [], "users": ["signup_date"]}
# in-memory bytes per row, with headroom for the copies a query makes
WORKING_BYTES_PER_ROW = {"points": 4 * 40, "users": 4 * 64}
SORT_BUCKETS_PER_CHUNK = 1  # an external sort makes about as many buckets as input chunks


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
    def _chunk_rows(self, inp: StageInput) -> int | None:
        """None when the whole frame fits the budget; else rows per chunk."""
        per_row = WORKING_BYTES_PER_ROW[inp.dataset]
        if inp.rows * per_row <= self.spec.memory_budget_bytes:
            return None
        return max(50_000, self.spec.memory_budget_bytes // (per_row * 4))

    def _chunks(self, inp: StageInput, columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
        chunk_rows = self._chunk_rows(inp)
        self.last_notes["mode"] = "whole" if chunk_rows is None else "chunked"
        self.last_notes["chunks"] = 0
        for df in self._read(inp, columns, chunk_rows):
            self.last_notes["chunks"] += 1
            yield df

    def _read(self, inp: StageInput, columns: list[str] | None, chunk_rows: int | None) -> Iterator[pd.DataFrame]:
        if inp.format == "csv":
            dates = [c for c in DATE_COLUMNS[inp.dataset] if columns is None or c in columns]
            kw = dict(dtype=CSV_DTYPES[inp.dataset], parse_dates=dates, usecols=columns)
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
        return pd.concat(parts, ignore_index=True)[cols].head(rows)

    def grid_map(self, fn, tasks: list) -> list:
        """joblib's process pool, one process per core: pandas has no cluster of its own."""
        from joblib import Parallel, delayed

        return Parallel(n_jobs=self.spec.cores)(delayed(fn)(t) for t in tasks)

    def predict(self, inp: StageInput, model_dir: Path, out: Path) -> None:
        model, scaler = ml.load_model(model_dir)
        out.mkdir(parents=True, exist_ok=True)
        batches = 0
        for i, df in enumerate(self._chunks(inp)):
            ml.predict_frame(df, model, scaler).to_parquet(out / f"part-{i:05d}.parquet", index=False)
            batches += 1
        self.last_notes["batches"] = batches


ENGINE = PandasEngine
