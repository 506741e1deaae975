"""The Spark engine: its stage families composed over the shared reader (read.py) and the
cluster lifecycle (cluster.py)."""

from __future__ import annotations

from scalebench.engines.spark.dbbench import GROUPBY_QUESTIONS, JOIN_QUESTIONS, SparkDbBenchmark
from scalebench.engines.spark.joins import SKEW_GROUPBY, SKEW_JOIN, SparkJoins
from scalebench.engines.spark.ml import SparkML
from scalebench.engines.spark.tables import SparkTables


class SparkEngine(SparkTables, SparkDbBenchmark, SparkJoins, SparkML):
    """PySpark (classic API) on a local[workers*threads] driver, or a cluster at spec.address."""

    VARIANTS = {"h2o_groupby": GROUPBY_QUESTIONS, "h2o_join": JOIN_QUESTIONS,
                "skew_groupby": SKEW_GROUPBY, "skew_join": SKEW_JOIN}


ENGINE = SparkEngine
