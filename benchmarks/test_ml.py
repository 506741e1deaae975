"""Machine learning: logistic regression on every engine, the paper's tuned model (serial and
distributed), batch prediction, and the paper's Spark-ETL -> Ray-ML pipeline end to end.

    pytest --benchmark-only benchmarks/test_ml.py -k logreg --workers=1,2
    pytest --benchmark-only benchmarks/test_ml.py --pipeline=spark:ray,dask:dask
"""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from scalebench import ml
from scalebench.engines import ClusterSpec, engine_class
from scalebench.engines.base import NotApplicable
from scalebench.runner import stage_input

ML_ENGINES = ("pandas", "dask", "ray", "spark")


def _pedantic(benchmark, fn, rounds: int):
    """Cold run (returned and recorded), then timed rounds; returns (cold result, cold seconds).
    With --benchmark-disable (the tests) the cold run is the only run."""
    started = time.perf_counter()
    if getattr(benchmark, "disabled", False):
        result = benchmark.pedantic(fn, rounds=1, iterations=1)
        return result, time.perf_counter() - started
    result = fn()
    cold = time.perf_counter() - started
    benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=0)
    benchmark.extra_info["cold_s"] = cold
    return result, cold


def _engine(clusters, name: str, workers: int, settings):
    if name not in settings.engines:
        pytest.skip(f"{name} not in --engines")
    engine = clusters.get(name, workers)
    engine.last_notes = {}  # this benchmark's notes only
    return engine


@pytest.fixture(scope="session")
def logreg_references():
    cache: dict[str, ml.Fit] = {}

    def get(data) -> ml.Fit:
        key = str(data.folder.parent)  # csv and parquet hold the same rows
        if key not in cache:
            cache[key] = ml.reference_logreg([str(f) for f in data.files()], data.format)
        return cache[key]

    return get


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("engine_name", ML_ENGINES)
def test_logreg(benchmark, engine_name, fmt, workers, settings, clusters, datasets, logreg_references):
    if fmt not in settings.formats:
        pytest.skip(f"{fmt} not in --formats")
    engine = _engine(clusters, engine_name, workers, settings)
    data = datasets.get("points", fmt)
    inp = stage_input(data)
    benchmark.group = f"logreg {fmt} {data.rows:,} rows"
    fit, _ = _pedantic(benchmark, lambda: engine.logreg(inp), settings.ml_rounds)
    reference = logreg_references(data)
    worst = ml.check_logreg(fit, reference, engine_name)
    benchmark.extra_info.update({**engine.describe(), "stage": "logreg", "query": "points", "format": fmt,
                                 "rows": data.rows, "bytes": data.bytes, **fit.info(),
                                 "check": f"coefficients within {ml.LOGREG_COEF_TOL:g} of the reference fit "
                                          f"(worst {worst:.1e})", "notes": dict(engine.last_notes)})


@pytest.fixture(scope="session")
def serial_tunes() -> dict:
    return {}


@pytest.mark.parametrize("mode", ["serial", "distributed"])
@pytest.mark.parametrize("engine_name", ML_ENGINES)
def test_tune(benchmark, engine_name, mode, settings, clusters, datasets, tmp_path, serial_tunes):
    engine = _engine(clusters, engine_name, settings.workers[-1], settings)
    data = datasets.get("users", "parquet")
    inp = stage_input(data)
    benchmark.group = f"tune {settings.tune_rows:,}-row sample"
    result, _ = _pedantic(benchmark, lambda: engine.tune(inp, tmp_path / "model", settings.tune_rows,
                                                         mode == "distributed", settings.seed), settings.ml_rounds)
    assert result.fits == 24 and math.isfinite(result.test_mse)
    ml.load_model(tmp_path / "model")  # saved, and loads back
    if mode == "serial":
        serial_tunes[engine_name] = result
    else:  # distributing the 24 fits must not change the answer
        serial = serial_tunes.get(engine_name) or engine.tune(inp, tmp_path / "serial", settings.tune_rows, False,
                                                              settings.seed)
        assert result.best_params == serial.best_params and result.cv_mse == serial.cv_mse, (result, serial)
        benchmark.extra_info["same_as_serial"] = True
    benchmark.extra_info.update({**engine.describe(), "stage": "tune", "query": mode, "rows": data.rows,
                                 **result.info(), "notes": dict(engine.last_notes)})


@pytest.fixture(scope="session")
def trained_model(settings, datasets, tmp_path_factory):
    """A model and scaler tuned once (pandas, serial, untimed) for the predict benchmarks."""
    folder = tmp_path_factory.mktemp("model")
    engine = engine_class("pandas")(ClusterSpec(workers=1))
    engine.start()
    try:
        engine.tune(stage_input(datasets.get("users", "parquet")), folder, settings.tune_rows, False, settings.seed)
    finally:
        engine.stop()
    return folder


def expected_predictions(inp, model_dir) -> tuple[int, float]:
    """Row count and prediction sum, computed batch by batch in the driver (never all at once)."""
    model, scaler = ml.load_model(model_dir)
    rows, total = 0, 0.0
    for f in inp.files:
        for batch in pq.ParquetFile(f).iter_batches(batch_size=200_000):
            p = ml.predict_frame(batch.to_pandas(), model, scaler)
            rows += len(p)
            total += float(np.nansum(p["prediction"]))
    return rows, total


def check_predictions(out, inp, model_dir, csv_out=None) -> dict:
    """Exactly one row per input row, predictions equal to the model's; the CSV copy equal too."""
    written = pd.read_parquet(out)
    want_rows, want_sum = expected_predictions(inp, model_dir)
    assert list(written.columns)[:3] == ["id", "name", "prediction"], list(written.columns)
    assert len(written) == want_rows == inp.rows, (len(written), want_rows, inp.rows)
    assert np.isclose(np.nansum(written["prediction"]), want_sum, rtol=1e-9)
    if csv_out is not None:
        files = sorted(csv_out.glob("*.csv"))
        assert files, f"{csv_out}: no CSV written"
        csv = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
        assert list(csv.columns) == ["id", "name", "prediction"], list(csv.columns)
        assert len(csv) == inp.rows and csv["id"].sort_values().tolist() == written["id"].sort_values().tolist()
        assert np.isclose(np.nansum(csv["prediction"]), want_sum, rtol=1e-9)
    return {"prediction_rows": len(written), "prediction_sum": want_sum}


@pytest.mark.parametrize("output", ["parquet", "parquet+csv"])
@pytest.mark.parametrize("engine_name", ML_ENGINES)
def test_predict(benchmark, engine_name, output, settings, clusters, datasets, trained_model, tmp_path):
    if output.endswith("csv") and "csv" not in settings.formats:
        pytest.skip("CSV output runs when --formats includes csv")
    engine = _engine(clusters, engine_name, settings.workers[-1], settings)
    new = datasets.get("users", "parquet", seed_offset=1)  # new users the model has not seen
    inp = stage_input(new)
    out = tmp_path / "predictions"
    csv_root = tmp_path / "csv" if output == "parquet+csv" else None
    benchmark.group = f"predict to {output} {new.rows:,} rows"
    runs = iter(range(10**6))

    def predict():
        run = str(next(runs))
        engine.predict(inp, trained_model, out / run, csv_root and csv_root / run)

    _, cold = _pedantic(benchmark, predict, settings.ml_rounds)
    info = check_predictions(out / "0", inp, trained_model, csv_root and csv_root / "0")
    median = benchmark.stats.stats.median if benchmark.stats else cold
    benchmark.extra_info.update({**engine.describe(), "stage": "predict", "output": output, "rows": new.rows, **info,
                                 "rows_per_s": new.rows / median, "notes": dict(engine.last_notes)})


def test_pipeline(benchmark, pipeline, settings, clusters, datasets, tmp_path):
    """The paper's integration: ETL in one framework writing Parquet, tune and predict in another."""
    etl_name, ml_name = pipeline
    for name in pipeline:
        if name not in settings.engines:
            pytest.skip(f"{name} not in --engines")
    users = stage_input(datasets.get("users", "parquet"))
    new = stage_input(datasets.get("users", "parquet", seed_offset=1))
    benchmark.group = f"pipeline {users.rows:,} rows"
    runs = iter(range(10**6))
    timings: dict[str, float] = {}

    def pipeline_run():
        root = tmp_path / str(next(runs))
        t0 = time.perf_counter()
        etl = clusters.get(etl_name, settings.workers[-1])
        t1 = time.perf_counter()
        etl.etl_users(users, root / "clean")
        t2 = time.perf_counter()
        trainer = clusters.get(ml_name, settings.workers[-1])  # may stop the ETL cluster and start another
        t3 = time.perf_counter()
        clean = ml_input(root / "clean", users.rows)
        result = trainer.tune(clean, root / "model", settings.tune_rows, True, settings.seed)
        trainer.predict(new, root / "model", root / "predictions")
        t4 = time.perf_counter()
        timings.update(etl_s=t2 - t1, ml_s=t4 - t3, cluster_switch_s=(t1 - t0) + (t3 - t2))
        return root, result

    (root, result), _ = _pedantic(benchmark, pipeline_run, 1)
    info = check_predictions(root / "predictions", new, root / "model")
    benchmark.extra_info.update({"stage": "pipeline", "query": f"{etl_name}->{ml_name}", "rows": users.rows,
                                 **timings, **result.info(), **info})


def ml_input(folder, rows: int):
    """A StageInput for an ETL output folder (hive-partitioned by is_active)."""
    from scalebench.engines.base import StageInput

    files = tuple(sorted(p for p in folder.rglob("*.parquet")))
    if not files:
        raise NotApplicable(f"{folder}: the ETL wrote no Parquet")
    return StageInput("users", "parquet", folder, files, rows, sum(f.stat().st_size for f in files),
                      ("id", "name", "age", "salary", "signup_date", "is_active"), {"hive": True})
