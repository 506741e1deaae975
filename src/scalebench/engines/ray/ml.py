"""Ray engine, machine learning.

logreg keeps its prepared blocks in the object store and runs one Ray task per block ref for
every L-BFGS evaluation (scalebench.ml.fit_distributed on the driver); sample_users is Ray
Data's seeded random_sample + limit; grid_map uses joblib's Ray backend (a pool of Ray actors);
predict is a pandas map_batches that writes its batches.
"""

from __future__ import annotations

import logging
import math
import uuid
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import ray

from scalebench import ml as sbml
from scalebench.atomic import atomic_path
from scalebench.engines.base import StageInput
from scalebench.engines.ray import patches
from scalebench.engines.ray.read import RayReader

# -- functions that run inside Ray tasks (module-level so they pickle by reference) -------


def _logreg_block(tbl: pa.Table) -> pa.Table:
    """logreg's per-block preparation, done once: float64 x, y and ml.category_codes as int8."""
    codes = sbml.category_codes(tbl["category"].to_numpy(zero_copy_only=False)).astype(np.int8)
    return pa.table({"x": pc.cast(tbl["x"], pa.float64()).combine_chunks(),
                     "y": pc.cast(tbl["y"], pa.float64()).combine_chunks(),
                     "code": pa.array(codes, pa.int8())})


@ray.remote
def _block_partial(tbl: pa.Table, w: np.ndarray) -> sbml.Partial:
    """One block's ml.Partial; `tbl` is a block in the object store (zero-copy numpy views)."""
    return sbml.partial_loss_grad(tbl["x"].to_numpy(), tbl["y"].to_numpy(), tbl["code"].to_numpy(), w)


@ray.remote
def _call(fn: Any, task: Any) -> Any:
    """grid_map's fallback: one Ray task per call."""
    return fn(task)


def _active_from_folder(tbl: pa.Table) -> pa.Table:
    """Hive partition values arrive as strings ('true' from Spark, 'True' from pyarrow): to bool."""
    col_ = tbl["is_active"]
    if pa.types.is_boolean(col_.type):
        return tbl
    text = pc.utf8_lower(pc.cast(col_, pa.string()))
    bad = pc.invert(pc.fill_null(pc.is_in(text, pa.array(["true", "false"])), False))
    if pc.any(bad).as_py():
        raise ValueError(f"is_active folder values {pc.unique(pc.filter(col_, bad)).to_pylist()} "
                         "are not true/false")
    return tbl.set_column(tbl.column_names.index("is_active"), "is_active", pc.equal(text, "true"))


def _predict_write(df: pd.DataFrame, model: Any, scaler: Any, out: str, csv_out: str | None) -> pd.DataFrame:
    """predict's batch: ml.predict_frame, written as one Parquet file (and one CSV file when
    asked), each under a hidden temporary name until it is whole; returns the row count."""
    pred = sbml.predict_frame(df, model, scaler)
    stem = f"part-{uuid.uuid4().hex}"
    with atomic_path(Path(out) / f"{stem}.parquet") as tmp:
        pq.write_table(pa.Table.from_pandas(pred, preserve_index=False), tmp)
    if csv_out is not None:
        with atomic_path(Path(csv_out) / f"{stem}.csv") as tmp:
            pred.to_csv(tmp, index=False)
    return pd.DataFrame({"rows": [len(pred)]})


class RayML(RayReader):
    """logreg, sample_users, grid_map and predict."""

    LOGREG_BLOCK_ROWS: ClassVar[int] = 1_000_000
    """Most rows per logreg block (ml.partial_loss_grad holds ~120 bytes of temporaries a row)."""

    def logreg(self, inp: StageInput) -> sbml.Fit:
        """ml.fit_distributed with every evaluation one wave of Ray tasks over stored blocks.

        x, y and the category codes (ml.category_codes, once per block) are read and prepared
        once into Arrow blocks that stay in the object store (to_arrow_refs, no copy); each
        L-BFGS evaluation submits one task per block ref with the current weights and sums the
        returned ml.Partials on the driver. The blocks are split to at most ceil(rows / cores)
        rows (a single CSV file is read as one block) and LOGREG_BLOCK_ROWS.
        """
        per_block = max(1, min(self.LOGREG_BLOCK_ROWS, math.ceil(max(inp.rows, 1) / self.spec.cores)))
        ds = (self._read(inp, ["x", "y", "category"])
              .map_batches(_logreg_block, batch_format="pyarrow", batch_size=None)
              .repartition(target_num_rows_per_block=per_block))
        # one execution; the refs keep the blocks in the object store until logreg returns
        # (not materialize() first: to_arrow_refs() then checks ray.available_resources() while
        # the resource view still counts the just-finished tasks and warns of "no available CPUs")
        refs = ds.to_arrow_refs()
        self.last_notes["solver"] = ("scipy L-BFGS on the driver; per evaluation one Ray task per "
                                     "block ref (to_arrow_refs), ml.Partials summed on the driver")
        self.last_notes["blocks"] = len(refs)
        evaluations = 0

        def partials(w: np.ndarray) -> sbml.Partial:
            nonlocal evaluations
            evaluations += 1
            parts = ray.get([_block_partial.remote(ref, w) for ref in refs])
            total = parts[0]
            for part in parts[1:]:
                total = total + part
            return total

        fit = sbml.fit_distributed(partials)  # the blocks leave the object store with `ds` and `refs`
        self.last_notes["evaluations"] = evaluations
        return fit

    def sample_users(self, inp: StageInput, rows: int, seed: int) -> pd.DataFrame:
        """random_sample(rows*1.1/n, seed) then limit(rows), in file order (deterministic for a
        seed and a cluster shape: Ray seeds each read task's generator with (seed, task index)).
        A hive folder is read with partition discovery; its is_active strings become bools."""
        cols = [*sbml.TUNE_FEATURES, sbml.TUNE_TARGET]
        fraction = min(1.0, rows * 1.1 / max(1, inp.rows))
        ds = self._read(inp, cols)
        if inp.extra.get("hive"):
            ds = ds.map_batches(_active_from_folder, batch_format="pyarrow", batch_size=None)
        ds = ds.random_sample(fraction, seed=seed).limit(rows)
        ds.context.execution_options.preserve_order = True  # limit keeps the first rows, not the fastest
        self.last_notes["fraction"] = fraction
        # through Arrow rather than ds.to_pandas(), which gives pyarrow-backed dtypes here
        return pa.concat_tables(ray.get(ds.to_arrow_refs())).select(cols).to_pandas()

    def grid_map(self, fn: Any, tasks: list) -> list:
        """joblib with Ray's backend: a pool of one Ray actor per cluster CPU, in task order.

        joblib runs a one-job Parallel in the calling process, so on a one-CPU cluster the calls
        go out as Ray tasks instead. Ray's joblib backend patches joblib's PicklingPool to derive
        from Ray's Pool for good; the patch is undone afterwards (patches.joblib_pool_restored),
        so that a later multiprocessing joblib call in this process does not start a Ray cluster
        of its own.
        """
        self._require_started()
        cpus = int(ray.cluster_resources().get("CPU", self.spec.cores))
        if cpus < 2:
            self.last_notes["grid_map"] = "ray tasks (one CPU: joblib would run the calls in the driver)"
            fn_ref = ray.put(fn)
            return ray.get([_call.remote(fn_ref, t) for t in tasks])
        from joblib import Parallel, delayed, parallel_backend
        from ray.util.joblib import register_ray

        with patches.joblib_pool_restored():
            register_ray()
            # joblib hands Pool a multiprocessing context, which Ray's Pool ignores with a warning
            pool_log = logging.getLogger("ray.util.multiprocessing.pool")
            level = pool_log.level
            pool_log.setLevel(logging.ERROR)
            try:
                with parallel_backend("ray", n_jobs=cpus):
                    # max_nbytes=None: no memmapping of big arrays into a local temp folder, which
                    # actors on another node of a connected cluster could not open
                    results = Parallel(max_nbytes=None)(delayed(fn)(t) for t in tasks)
            finally:
                pool_log.setLevel(level)
        self.last_notes["grid_map"] = f"joblib ray backend, {cpus} actors"
        return list(results)

    def predict(self, inp: StageInput, model_dir: Path, out: Path, csv_out: Path | None = None) -> None:
        """Model and scaler loaded on the driver and shipped once with the map function (Ray
        Data puts fn_kwargs in the object store); one batch per block, each written as a file."""
        model, scaler = sbml.load_model(model_dir)
        out.mkdir(parents=True, exist_ok=True)
        if csv_out is not None:
            csv_out.mkdir(parents=True, exist_ok=True)
        ds = self._read(inp, ["id", "name", *sbml.TUNE_FEATURES])
        kwargs = {"model": model, "scaler": scaler, "out": str(out), "csv_out": csv_out and str(csv_out)}
        counts = ds.map_batches(_predict_write, fn_kwargs=kwargs,
                                batch_format="pandas", batch_size=None).to_pandas()
        self.last_notes["batches"] = len(counts)
        self.last_notes["rows"] = int(counts["rows"].sum())
