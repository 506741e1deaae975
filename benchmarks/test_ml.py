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
from scalebench.measure.rounds import PausableClock, benchmark_checked, clear, median_of
from scalebench.runner import stage_input

ML_ENGINES = ("pandas", "dask", "ray", "spark")


def _measure(benchmark, settings, fn, check, name: str, **options) -> dict:
    """The one way every ML benchmark is run and recorded: scalebench.measure.rounds.benchmark_checked
    (cold run, timed rounds, each result checked outside the timer, tree memory, driver heap)."""
    _, info = benchmark_checked(benchmark, fn, check, settings.ml_rounds, measure=settings.measure,
                                heap_name=name, **options)
    return info


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
    reference = logreg_references(data)  # before the sampler: the reference is not the engine's
    fits: list[ml.Fit] = []

    def check(fit: ml.Fit) -> str:
        worst = ml.check_logreg(fit, reference, engine_name)
        fits.append(fit)
        return f"coefficients within {ml.LOGREG_COEF_TOL:g} of the reference fit (worst {worst:.1e})"

    info = _measure(benchmark, settings, lambda: engine.logreg(inp), check, f"{engine_name}-logreg-{fmt}",
                    engines=[engine])
    benchmark.extra_info.update({**engine.describe(), "stage": "logreg", "query": "points", "format": fmt,
                                 "rows": data.rows, "bytes": data.bytes, **fits[0].info(),
                                 "throughput_rows_per_s": data.rows / info["median_s"],
                                 "notes": engine.notes()})


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
    model = tmp_path / "model"
    distributed = mode == "distributed"
    if distributed and engine_name not in serial_tunes:  # the answer to compare with, untimed
        serial_tunes[engine_name] = engine.tune(inp, tmp_path / "serial", settings.tune_rows, False, settings.seed)
        engine.last_notes = {}
    results: list[ml.TuneResult] = []

    def check(result: ml.TuneResult) -> str:
        assert result.fits == 24 and math.isfinite(result.test_mse), result
        ml.load_model(model)  # saved, and loads back
        results.append(result)
        if not distributed:
            return "24 fits, finite test MSE, the saved model loads back"
        serial = serial_tunes[engine_name]  # distributing the 24 fits must not change the answer
        assert result.best_params == serial.best_params and result.cv_mse == serial.cv_mse, (result, serial)
        return "24 fits, finite test MSE, the saved model loads back; best parameters and CV MSE equal to serial"

    info = _measure(benchmark, settings,
                    lambda: engine.tune(inp, model, settings.tune_rows, distributed, settings.seed), check,
                    f"{engine_name}-tune-{mode}", engines=[engine], prepare=lambda: clear(model))
    if not distributed:
        serial_tunes[engine_name] = results[0]
    benchmark.extra_info.update({**engine.describe(), "stage": "tune", "query": mode, "rows": data.rows,
                                 **results[0].info(), "same_as_serial": True if distributed else None,
                                 "fits_per_s": results[0].fits / info["median_s"],
                                 "notes": engine.notes()})


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


PREDICT_CHECK = "one row per input row, prediction sum equal to the saved model's in the driver (rtol 1e-9)"


def check_predictions(out, inp, model_dir, csv_out=None, expected: tuple[int, float] | None = None) -> dict:
    """Exactly one row per input row, predictions equal to the model's; the CSV copy equal too.
    `expected` is expected_predictions(inp, model_dir) when already known."""
    written = pd.read_parquet(out)
    want_rows, want_sum = expected or expected_predictions(inp, model_dir)
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
    csv_out = tmp_path / "csv" if output == "parquet+csv" else None
    benchmark.group = f"predict to {output} {new.rows:,} rows"
    expected = expected_predictions(inp, trained_model)  # once, before the sampler: the driver's, not the engine's
    found: dict = {}

    def check(_) -> str:
        found.update(check_predictions(out, inp, trained_model, csv_out, expected))
        return PREDICT_CHECK + ("; the CSV copy equal" if csv_out else "")

    info = _measure(benchmark, settings, lambda: engine.predict(inp, trained_model, out, csv_out), check,
                    f"{engine_name}-predict-{output}", engines=[engine], prepare=lambda: clear(out, csv_out))
    benchmark.extra_info.update({**engine.describe(), "stage": "predict", "output": output, "rows": new.rows,
                                 **found, "rows_per_s": new.rows / info["median_s"], "notes": engine.notes()})


def test_pipeline(benchmark, pipeline, settings, clusters, datasets, tmp_path):
    """The paper's integration: ETL in one framework writing Parquet, tune and predict in another.

    Both clusters start before any timing and stay up side by side, so a round is the ETL and
    the ML and nothing else. Only when the two cannot fit in memory together does each half run
    on its own cluster, the switch between them paused out of the timing and recorded apart."""
    etl_name, ml_name = pipeline
    for name in pipeline:
        if name not in settings.engines:
            pytest.skip(f"{name} not in --engines")
    users = stage_input(datasets.get("users", "parquet"))
    new = stage_input(datasets.get("users", "parquet", seed_offset=1))
    benchmark.group = f"pipeline {users.rows:,} rows"
    workers = settings.workers[-1]
    keys = [(etl_name, workers), (ml_name, workers)]
    root = tmp_path / "run"
    halves: dict[str, list[float]] = {"etl_s": [], "ml_s": [], "cluster_switch_s": []}
    side_by_side = clusters.fits(keys)
    up: dict = {}
    if side_by_side:
        up["etl"], up["ml"] = clusters.get_many(keys)  # started here, untimed, and kept up
        clock = time.perf_counter
        options = {"engines": list({id(e): e for e in up.values()}.values()), "prepare": lambda: clear(root)}
    else:
        clock = PausableClock()

        def prepare() -> None:
            clear(root)
            up["etl"] = clusters.get(etl_name, workers)

        options = {"prepare": prepare,
                   "pids": lambda: [pid for e in clusters.running.values() for pid in e.pids()]}

    def switch() -> None:
        """Only when the clusters cannot run side by side: paused out of the round's time."""
        started = time.perf_counter()
        with clock.paused():
            up["ml"] = clusters.get(ml_name, workers)
        halves["cluster_switch_s"].append(time.perf_counter() - started)

    def pipeline_run() -> ml.TuneResult:
        t0 = clock()
        up["etl"].etl_users(users, root / "clean")
        t1 = clock()
        if not side_by_side:
            switch()
        t2 = clock()
        result = up["ml"].tune(ml_input(root / "clean", users.rows), root / "model", settings.tune_rows, True,
                               settings.seed)
        up["ml"].predict(new, root / "model", root / "predictions")
        t3 = clock()
        halves["etl_s"].append(t1 - t0)
        halves["ml_s"].append(t3 - t2)
        return result

    results: list[ml.TuneResult] = []
    found: dict = {}

    def check(result: ml.TuneResult) -> str:
        assert result.fits == 24 and math.isfinite(result.test_mse), result
        found.update(check_predictions(root / "predictions", new, root / "model"))
        results.append(result)
        return "tuned on the ETL output: 24 fits, finite test MSE; " + PREDICT_CHECK

    starts = clusters.starts
    info = _measure(benchmark, settings, pipeline_run, check, f"pipeline-{etl_name}-{ml_name}", clock=clock,
                    **options)
    if side_by_side:  # a timed region must never hold a cluster start
        assert clusters.starts == starts, f"{clusters.starts - starts} cluster(s) started during the rounds"
    # each half's median over the timed rounds (the cold run's when only the cold run ran)
    timed = slice(1, 1 + info["rounds"]) if info["rounds"] else slice(0, 1)
    benchmark.extra_info.update({
        "stage": "pipeline", "query": f"{etl_name}->{ml_name}", "rows": users.rows, "workers": workers,
        "memory_budget_bytes": settings.spec.memory_budget_bytes, "side_by_side": side_by_side,
        "etl_engine": up["etl"].describe(), "ml_engine": up["ml"].describe(),
        **{name: median_of(values[timed]) for name, values in halves.items()},
        "cold_cluster_switch_s": halves["cluster_switch_s"][0] if halves["cluster_switch_s"] else None,
        **results[0].info(), **found})


def ml_input(folder, rows: int):
    """A StageInput for an ETL output folder (hive-partitioned by is_active)."""
    from scalebench.engines.base import StageInput

    files = tuple(sorted(p for p in folder.rglob("*.parquet")))
    if not files:
        raise NotApplicable(f"{folder}: the ETL wrote no Parquet")
    return StageInput("users", "parquet", folder, files, rows, sum(f.stat().st_size for f in files),
                      ("id", "name", "age", "salary", "signup_date", "is_active"), {"hive": True})
