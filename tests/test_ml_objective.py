"""ML pieces: the shared objective agrees with scikit-learn, and a missing or corrupt model is
one clear error naming the file."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scalebench import ml
from scalebench.datasets import ensure
from scalebench.engines import ClusterSpec, engine_class
from scalebench.runner import stage_input


def test_objective_matches_scikit_learn(data_dir):
    sklearn = pytest.importorskip("sklearn.linear_model")
    data = ensure("points", 50_000, "parquet", data_dir=data_dir)
    df = pd.read_parquet(data.path)
    ours = ml.fit_distributed(lambda w: ml.partial_for_frame(df, w))
    model = sklearn.LogisticRegression(C=ml.sklearn_C(len(df)), tol=ml.TOL, max_iter=ml.MAX_ITER)
    theirs = ml.fit_from_sklearn(model.fit(df[["x", "y"]], df["category"]), len(df), 0.0)
    assert np.abs(ours.relative_to_a() - theirs.relative_to_a()).max() < 1e-4
    assert ml.check_logreg(theirs, ours, "sklearn") < ml.LOGREG_COEF_TOL


def test_gradient_is_right():
    rng = np.random.default_rng(0)
    x, y, codes = rng.random(200), rng.random(200), rng.integers(0, 4, 200)
    w = rng.normal(size=(3, 4))
    total = ml.partial_loss_grad(x, y, codes, w)
    _, grad = ml.objective(total, w)
    eps = 1e-6
    for i, j in [(0, 1), (1, 2), (2, 3)]:
        d = np.zeros_like(w)
        d[i, j] = eps
        up = ml.objective(ml.partial_loss_grad(x, y, codes, w + d), w + d)[0]
        down = ml.objective(ml.partial_loss_grad(x, y, codes, w - d), w - d)[0]
        assert abs((up - down) / (2 * eps) - grad[i, j]) < 1e-6


def test_bad_category_is_named():
    with pytest.raises(ValueError, match="column 'category'"):
        ml.category_codes(["A", "Z"])


def test_missing_model_is_named(tmp_path):
    with pytest.raises(ml.ModelError, match=f"{tmp_path / ml.MODEL_FILE}: missing"):
        ml.load_model(tmp_path)


@pytest.mark.parametrize("damage", [b"", b"not a pickle at all", b"\x80\x05K\x01."])
def test_corrupt_model_is_named(tmp_path, damage):
    (tmp_path / ml.MODEL_FILE).write_bytes(damage)
    (tmp_path / ml.SCALER_FILE).write_bytes(damage)
    with pytest.raises(ml.ModelError, match=ml.MODEL_FILE):
        ml.load_model(tmp_path)


def test_predict_refuses_a_missing_model_before_writing(tmp_path, data_dir):
    engine = engine_class("pandas")(ClusterSpec(workers=1))
    engine.start()
    try:
        with pytest.raises(ml.ModelError, match="missing"):
            engine.predict(stage_input(ensure("users", 1000, "parquet", data_dir=data_dir)), tmp_path / "none",
                           tmp_path / "out")
    finally:
        engine.stop()
    assert not (tmp_path / "out").exists()
