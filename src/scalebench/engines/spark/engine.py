"""The Spark engine: its stage families composed over the shared reader (read.py) and the
cluster lifecycle (cluster.py)."""

from __future__ import annotations

import pandas as pd

from scalebench.engines.base import StageInput
from scalebench.engines.spark.dbbench import GROUPBY_QUESTIONS, JOIN_QUESTIONS, SparkDbBenchmark
from scalebench.engines.spark.joins import SKEW_GROUPBY, SKEW_JOIN, SparkJoins
from scalebench.engines.spark.ml import SparkML
from scalebench.engines.spark.read import clear_errors
from scalebench.engines.spark.tables import SparkTables
from scalebench.engines.spark.tpch import TPCH_QUESTIONS, tpch_answer


class SparkEngine(SparkTables, SparkDbBenchmark, SparkJoins, SparkML):
    """PySpark (classic API) on a local[workers*threads] driver, or a cluster at spec.address."""

    VARIANTS = {"h2o_groupby": GROUPBY_QUESTIONS, "h2o_join": JOIN_QUESTIONS,
                "skew_groupby": SKEW_GROUPBY, "skew_join": SKEW_JOIN, "tpch": TPCH_QUESTIONS}

    @clear_errors
    def tpch(self, inp: StageInput, question: str) -> pd.DataFrame:
        """The question's DataFrame plan (tpch.TPCH_QUESTIONS) over the eight tables, collected."""
        return self._answer(tpch_answer(self, inp, question), {"answer": "collected to the driver (toPandas())"})


ENGINE = SparkEngine
