"""Spark's machine learning: MLlib's logistic regression, sampling for the model pipeline,
model fits spread as Spark tasks, and batch prediction in mapInPandas."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from py4j.protocol import Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import BooleanType, DoubleType, LongType, StringType, StructField, StructType

from scalebench import ml as sbml
from scalebench.engines.base import NotApplicable, StageInput
from scalebench.engines.errors import one_line
from scalebench.engines.spark.cluster import quiet_pyspark
from scalebench.engines.spark.read import JVM_NOISE, SparkQueryError, SparkReader, clear_errors


class SparkML(SparkReader):
    """logreg, sample_users, grid_map and predict on the session's DataFrames."""

    def _read_ml(self, inp: StageInput) -> DataFrame:
        """_read, except that a hive-partitioned folder (an etl_users output) is read as a folder
        with partition discovery, so is_active comes from the is_active=... folder names."""
        if not inp.extra.get("hive"):
            return self._read(inp)
        df = self._session.read.parquet(str(inp.path))
        # Inferred as boolean from true/false folders; other writers may spell it True/False
        # (inferred as string): the cast accepts both.
        return df.withColumn("is_active", F.col("is_active").cast(BooleanType()))

    @clear_errors
    def logreg(self, inp: StageInput) -> sbml.Fit:
        """MLlib's multinomial LogisticRegression with ml's objective.

        MLlib minimises (1/n) sum_i logloss_i + regParam * ((1 - elasticNet)/2 * ||W||^2 +
        elasticNet * |W|_1) over the slopes only (intercepts unpenalised). With
        elasticNetParam=0 that is ml.objective exactly when regParam = ml.L2. standardization=
        False keeps the penalty on the original-scale coefficients (MLlib still scales internally
        for conditioning, and divides the penalty by the feature variances to compensate).
        """
        from pyspark.ml.classification import LogisticRegression
        from pyspark.ml.feature import StringIndexer, VectorAssembler

        points = self._read_ml(inp).select("x", "y", "category")
        indexer = StringIndexer(inputCol="category", outputCol="label", stringOrderType="alphabetAsc",
                                handleInvalid="error").fit(points)
        labels = list(indexer.labels)
        unknown = sorted(set(labels) - set(sbml.CATEGORIES))
        if unknown:
            raise ValueError(f"spark logreg on {inp.path}: column 'category' has values outside "
                             f"{', '.join(sbml.CATEGORIES)}: {', '.join(unknown[:5])}")
        assembled = VectorAssembler(inputCols=list(sbml.FEATURES), outputCol="features").transform(
            indexer.transform(points)).select("features", "label")
        # Persisted so the source is read and parsed once: MLlib's fit passes over it (feature
        # statistics, then building the blocks it caches for L-BFGS) and the accuracy pass reads it again.
        assembled = assembled.persist()
        try:
            model = LogisticRegression(
                family="multinomial", regParam=sbml.L2, elasticNetParam=0.0, standardization=False,
                fitIntercept=True, tol=sbml.TOL, maxIter=sbml.MAX_ITER, featuresCol="features",
                labelCol="label").fit(assembled)
            scored = model.transform(assembled).agg(
                F.count(F.lit(1)).alias("rows"),
                F.sum((F.col("prediction") == F.col("label")).cast(LongType())).alias("correct")).first()
        finally:
            assembled.unpersist()
        rows, correct = int(scored["rows"]), int(scored["correct"] or 0)
        slopes = model.coefficientMatrix.toArray()  # (classes, features), rows in label order
        intercepts = model.interceptVector.toArray()
        coef = np.zeros((len(sbml.COEF_ROWS), len(sbml.CATEGORIES)))
        for index, label in enumerate(labels):
            column = sbml.CATEGORIES.index(label)
            coef[0, column] = intercepts[index]
            coef[1:, column] = slopes[index]
        summary = model.summary
        history = summary.objectiveHistory
        self.last_notes = {"solver": "MLlib LogisticRegression (multinomial, L-BFGS), regParam = ml.L2, "
                                     "standardization off"}
        return sbml.Fit(coef, int(summary.totalIterations), float(history[-1]) if history else float("nan"),
                        correct / rows if rows else float("nan"), rows)

    @clear_errors
    def sample_users(self, inp: StageInput, rows: int, seed: int) -> pd.DataFrame:
        """Bernoulli sample of ~rows*1.1 rows in Spark, then `rows` of them in a seeded random
        order (TakeOrderedAndProject): only the sample reaches the driver, and for a fixed seed
        and cluster layout the same rows come back in the same order (a bare limit() keeps
        whichever partitions finish first)."""
        cols = [*sbml.TUNE_FEATURES, sbml.TUNE_TARGET]
        fraction = min(1.0, rows * 1.1 / max(1, inp.rows))
        df = (self._read_ml(inp).select(*cols).sample(withReplacement=False, fraction=fraction, seed=seed)
              .withColumn("_order", F.rand(seed)).orderBy("_order").limit(rows).select(*cols))
        sample = self._collect(df)
        # A fresh record: tune() adds its mode and grid_map's idiom after this.
        self.last_notes = {"sample": f"DataFrame.sample(fraction={fraction:.6g}, seed={seed}) + seeded order "
                                     f"+ limit: {len(sample)} rows"}
        return sample

    def grid_map(self, fn: Callable[[Any], Any], tasks: list) -> list:
        """One Spark task per call (Python workers), results collected in task order."""
        if self._is_remote_connect():
            raise NotApplicable("spark grid_map needs the SparkContext, which Spark Connect does not expose")
        if not tasks:
            return []
        try:
            results = self._session.sparkContext.parallelize(tasks, len(tasks)).map(fn).collect()
        except (Py4JJavaError, PySparkException) as exc:
            raise SparkQueryError(f"spark grid_map: {one_line(exc, JVM_NOISE)}") from exc
        self.last_notes["grid_map"] = f"sc.parallelize({len(tasks)} tasks, {len(tasks)} slices).map(fn).collect()"
        return results

    @clear_errors
    def predict(self, inp: StageInput, model_dir: Path, out: Path, csv_out: Path | None = None) -> None:
        """mapInPandas over the users, the model and scaler broadcast once to the executors."""
        model, scaler = sbml.load_model(model_dir)  # on the driver: a bad file fails here, by name
        session = self._session
        if self._is_remote_connect():
            payload: Any = (model, scaler)  # shipped inside the function's closure
            batches = None
        else:
            payload = session.sparkContext.broadcast((model, scaler))
            batches = session.sparkContext.accumulator(0)
        connect = self._is_remote_connect()

        def predict_batches(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
            loaded_model, loaded_scaler = payload if connect else payload.value
            for frame in frames:
                if batches is not None:
                    batches.add(1)
                yield sbml.predict_frame(frame, loaded_model, loaded_scaler)

        schema = StructType([StructField("id", LongType()), StructField("name", StringType()),
                             StructField("prediction", DoubleType())])
        users = self._read_ml(inp).select("id", "name", *sbml.TUNE_FEATURES)
        try:
            with quiet_pyspark():
                self._write(users.mapInPandas(predict_batches, schema), out)
                if csv_out is not None:  # from the Parquet just written: the model runs once
                    session.read.parquet(str(out)).write.mode("overwrite").option("header", True).csv(str(csv_out))
        finally:
            if not connect:
                payload.destroy()
        self.last_notes = {"batches": batches.value if batches is not None else None,
                           "predict": "mapInPandas (Arrow batches of spark.sql.execution.arrow.maxRecordsPerBatch "
                                      "rows), model and scaler broadcast"}
