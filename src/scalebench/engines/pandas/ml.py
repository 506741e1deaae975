"""pandas machine learning: scikit-learn on the whole frame, or the same objective over chunk
partial sums beyond the budget; grid fits through joblib (pandas has no cluster)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scalebench import ml as sbml
from scalebench.engines.base import StageInput
from scalebench.engines.pandas.read import PandasReader


class PandasML(PandasReader):
    def logreg(self, inp: StageInput) -> sbml.Fit:
        """scikit-learn on the whole frame; beyond the budget, the same objective by L-BFGS
        over partial sums that re-read the chunks each iteration (out of core, exact)."""
        cols = ["x", "y", "category"]
        if self._chunk_rows(inp) is None:
            from sklearn.linear_model import LogisticRegression

            df = next(self._chunks(inp, cols))
            model = LogisticRegression(C=sbml.sklearn_C(len(df)), tol=sbml.TOL, max_iter=sbml.MAX_ITER)
            model.fit(df[["x", "y"]].to_numpy(), df["category"].to_numpy())
            accuracy = float(model.score(df[["x", "y"]].to_numpy(), df["category"].to_numpy()))
            self.last_notes["solver"] = "scikit-learn lbfgs"
            return sbml.fit_from_sklearn(model, len(df), accuracy)
        self.last_notes["solver"] = "scipy L-BFGS over chunk partial sums"

        def partials(w: np.ndarray) -> sbml.Partial:
            total = None
            for df in self._chunks(inp, cols):
                part = sbml.partial_for_frame(df, w)
                total = part if total is None else total + part
            return total

        return sbml.fit_distributed(partials)

    def sample_users(self, inp: StageInput, rows: int, seed: int) -> pd.DataFrame:
        fraction = min(1.0, rows * 1.1 / max(1, inp.rows))
        cols = list(sbml.TUNE_FEATURES) + [sbml.TUNE_TARGET]
        parts = [df.sample(frac=fraction, random_state=seed + i)
                 for i, df in enumerate(self._chunks(inp, None if inp.extra.get("hive") else cols))]
        sample = pd.concat(parts, ignore_index=True)[cols].head(rows)
        if inp.extra.get("hive") and not pd.api.types.is_bool_dtype(sample["is_active"]):
            sample = sbml.active_from_folder(sample)  # the folder names come back as a category of text
        return sample

    def grid_map(self, fn: Callable[[Any], Any], tasks: list) -> list:
        """joblib's process pool, one process per core: pandas has no cluster of its own."""
        from joblib import Parallel, delayed

        return Parallel(n_jobs=self.spec.cores)(delayed(fn)(t) for t in tasks)

    def predict(self, inp: StageInput, model_dir: Path, out: Path, csv_out: Path | None = None) -> None:
        model, scaler = sbml.load_model(model_dir)
        out.mkdir(parents=True, exist_ok=True)
        if csv_out is not None:
            csv_out.mkdir(parents=True, exist_ok=True)
        batches = 0
        for i, df in enumerate(self._chunks(inp)):
            pred = sbml.predict_frame(df, model, scaler)
            pred.to_parquet(out / f"part-{i:05d}.parquet", index=False)
            if csv_out is not None:
                pred.to_csv(csv_out / f"part-{i:05d}.csv", index=False)
            batches += 1
        self.last_notes["batches"] = batches
