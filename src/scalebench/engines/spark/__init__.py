"""spark engine: the cluster lifecycle in cluster.py, input reading and one module per stage family beside it."""

from scalebench.engines.spark.engine import ENGINE, SparkEngine

__all__ = ["ENGINE", "SparkEngine"]
