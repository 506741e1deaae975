"""Dask machine learning (see scalebench.ml): logistic regression from per-partition sums, the
training sample, the distributed grid of model fits (joblib's dask backend) and prediction."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import dask
import dask.dataframe as dd
import distributed
import numpy as np
import pandas as pd

from scalebench import ml as sbml
from scalebench.engines.base import StageInput
from scalebench.engines.dask.cluster import on_cluster
from scalebench.engines.dask.read import DaskReader, renames, string_schema

SAMPLE_COLUMNS = (*sbml.TUNE_FEATURES, sbml.TUNE_TARGET)
PREDICTION_META = pd.DataFrame({"id": pd.Series(dtype="int64"), "name": pd.Series(dtype="str"),
                                "prediction": pd.Series(dtype="float64")})


class DaskML(DaskReader):
    """The model pipeline's framework parts, run on this engine's cluster."""

    @on_cluster
    def logreg(self, inp: StageInput) -> sbml.Fit:
        """ml's objective by L-BFGS on the driver over per-partition sums computed on the
        cluster: x, y and the category codes (ml.category_codes, once per partition) are
        computed into worker memory as NumPy blocks, and each evaluation maps
        ml.partial_loss_grad over those blocks (client.map over the block futures) and adds
        the ml.Partials up on the driver."""
        df = self._points(inp)[["x", "y", "category"]]
        self._note(df, None)
        assert self._client is not None
        client = self._client
        blocks = client.compute([dask.delayed(_logreg_block)(part) for part in df.to_delayed()])
        try:
            distributed.wait(blocks)
            for block in blocks:  # a bad category or a read error surfaces here, once
                if block.status == "error":
                    block.result()
            evaluations = {"n": 0}

            def partials(w: np.ndarray) -> sbml.Partial:
                evaluations["n"] += 1
                parts = client.gather(client.map(_block_partial, blocks, w=w, pure=False))
                return functools.reduce(lambda a, b: a + b, parts)

            fit = sbml.fit_distributed(partials)
        finally:
            client.cancel(blocks)
        self.last_notes.update({
            "solver": "scipy L-BFGS on the driver; client.map(partial_loss_grad) over computed "
                      "NumPy blocks (one per partition), Partials summed on the driver",
            "blocks": len(blocks), "distributed_passes": evaluations["n"]})
        return fit

    @on_cluster
    def sample_users(self, inp: StageInput, rows: int, seed: int) -> pd.DataFrame:
        """DataFrame.sample(frac=rows*1.1/inp.rows, random_state=seed) per partition, then
        head(rows) over all partitions: only the sample reaches the driver. A hive folder
        (inp.extra["hive"]) is read whole so is_active comes from the folder names."""
        hive = bool(inp.extra.get("hive"))
        if inp.format == "csv":
            df = self._users(inp)
        elif hive:  # partition discovery on the folder, not the file list
            df = dd.read_parquet(str(inp.path), dataset={"partitioning": "hive"})
            df = df.rename(columns=renames(inp.path, list(df.columns), SAMPLE_COLUMNS))
        else:
            df = self._read(inp, SAMPLE_COLUMNS, {})
        df = df[list(SAMPLE_COLUMNS)]
        self._note(df, None)
        if df["is_active"].dtype != bool:  # partition values come back as strings or categories
            df = df.map_partitions(sbml.active_from_folder, meta=df._meta.astype({"is_active": "bool"}))
        fraction = min(1.0, rows * 1.1 / max(1, inp.rows))
        sample = df.sample(frac=fraction, random_state=seed).head(rows, npartitions=-1)
        self.last_notes.update({"fraction": fraction, "hive": hive})
        return sample.reset_index(drop=True)

    @on_cluster
    def grid_map(self, fn: Any, tasks: list) -> list:
        """joblib.Parallel under joblib's dask backend with this engine's client (the decorator
        makes it current; it is passed explicitly too), one task per batch, results in task order.

        Each call runs under joblib's sequential backend on its worker: joblib otherwise hands
        the dask backend down to nested Parallel calls, and the backend ignores their n_jobs=1,
        so every tree of a RandomForest fit became a dask task of its own (4-5x the CPU)."""
        import joblib

        call = _SequentialJoblib(fn)
        with joblib.parallel_backend("dask", client=self._client):
            out = joblib.Parallel(batch_size=1)(joblib.delayed(call)(t) for t in tasks)
        self.last_notes["grid_map"] = (f"joblib {joblib.__version__} dask backend, {len(tasks)} tasks, "
                                       "batch_size=1, sequential joblib inside each task")
        return list(out)

    @on_cluster
    def predict(self, inp: StageInput, model_dir: Path, out: Path, csv_out: Path | None = None) -> None:
        """map_partitions(ml.predict_frame) with the model and scaler loaded on the driver and
        sent to the cluster once (a Delayed argument), then to_parquet: one batch per partition."""
        model, scaler = sbml.load_model(model_dir)
        df = self._users(inp)[["id", "name", *sbml.TUNE_FEATURES]]
        self._note(df, None)
        fitted = dask.delayed((model, scaler), pure=True, traverse=False)
        pred = df.map_partitions(_predict_partition, fitted, meta=PREDICTION_META)
        writes = [pred.to_parquet(str(out), write_index=False, schema=string_schema(pred), compute=False)]
        if csv_out is not None:  # one graph: each partition is predicted once for both files
            csv_out.mkdir(parents=True, exist_ok=True)
            writes.append(pred.to_csv(str(csv_out / "part-*.csv"), index=False, compute=False))
        dask.compute(*writes)
        self.last_notes["batches"] = pred.npartitions


def _logreg_block(part: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One partition as the arrays every L-BFGS evaluation reuses (codes computed once)."""
    return (part["x"].to_numpy(np.float64), part["y"].to_numpy(np.float64), sbml.category_codes(part["category"]))


def _block_partial(block: tuple[np.ndarray, np.ndarray, np.ndarray], w: np.ndarray) -> sbml.Partial:
    return sbml.partial_loss_grad(*block, w)


class _SequentialJoblib:
    """fn(task) with joblib's sequential backend active, so that a nested Parallel (scikit-learn's
    forest fit) runs in the task instead of inheriting the dask backend.

    Public API only (joblib.parallel_config); needed with joblib 1.6.0, whose dask backend hands
    itself down as the nested backend (DaskDistributedBackend.get_nested_backend) and has no
    option to choose another."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn

    def __call__(self, task: Any) -> Any:
        import joblib

        with joblib.parallel_config(backend="sequential"):
            return self.fn(task)


def _predict_partition(part: pd.DataFrame, fitted: tuple[Any, Any]) -> pd.DataFrame:
    model, scaler = fitted
    res = sbml.predict_frame(part, model, scaler)
    return res.astype({"id": "int64", "name": "str", "prediction": "float64"})
