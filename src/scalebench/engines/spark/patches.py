"""Workarounds that write PySpark's private internals, each with why it is needed.

Checked against PySpark 4.3.0 (the installed version): no public API does these jobs.
"""

from __future__ import annotations


def reset_pyspark_globals() -> None:
    """Forget PySpark's cached gateway and sessions so the next start launches a fresh JVM.

    Works around: PySpark keeps the py4j gateway and the driver JVM on class attributes
    (``SparkContext._gateway``, ``_jvm``, ``_active_spark_context``) after ``spark.stop()``, so a
    later session would reuse that JVM and silently ignore a new ``spark.driver.memory``.
    ``SparkContext.stop()`` clears only ``_active_spark_context`` and ``SparkSession.stop()`` the
    session attributes, and the latter only when the JVM still answers (after a killed JVM it
    fails half-way). Needed for PySpark 4.3.0; stop() ends the JVM itself before calling this.
    """
    from pyspark.core.context import SparkContext
    from pyspark.sql import SparkSession
    from pyspark.sql.context import SQLContext

    with SparkContext._lock:
        SparkContext._gateway = None
        SparkContext._jvm = None
        SparkContext._active_spark_context = None
    SparkSession._instantiatedSession = None
    SparkSession._activeSession = None
    SQLContext._instantiatedContext = None
