"""Spark input reading, the small answer's way back, and the one-line errors of every query.

Every query is written in the Spark DataFrame API; only the small final answer crosses
to pandas, through Arrow (``toPandas()``), and writes go straight to Parquet.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import pyarrow as pa
from py4j.protocol import Py4JError, Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.sql import DataFrame
from pyspark.sql.types import (
    BooleanType,
    DataType,
    DateType,
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampNTZType,
)

from scalebench.datasets.schemas import schema_for
from scalebench.engines.base import StageInput, later
from scalebench.engines.errors import one_line, query_errors
from scalebench.engines.spark.cluster import SparkCluster, quiet_pyspark

CSV_TIMESTAMP_FORMAT = "yyyy-MM-dd HH:mm:ss"

# The CSV schemas are explicit so reading never pays for an inference pass. They are the
# generator's Arrow schemas in Spark's types. A timestamp without a zone (users' signup_date)
# is a timestamp without time zone: the data has no zone, and NTZ keeps the session time zone
# out of the to_date() conversion. Every field is nullable: Spark reads files as nullable
# whatever the schema says.
_SPARK_TYPES: tuple[tuple[Callable[[pa.DataType], bool], DataType], ...] = (
    (pa.types.is_int64, LongType()),
    (pa.types.is_int32, IntegerType()),
    (pa.types.is_float64, DoubleType()),
    (pa.types.is_string, StringType()),
    (pa.types.is_boolean, BooleanType()),
    (lambda t: pa.types.is_timestamp(t) and t.tz is None, TimestampNTZType()),
    (pa.types.is_date32, DateType()),  # TPC-H's dates, YYYY-MM-DD in CSV (Spark's default dateFormat)
)


def spark_type(arrow: pa.DataType) -> DataType:
    """The Spark type of an Arrow type of the generator's schemas."""
    for matches, spark in _SPARK_TYPES:
        if matches(arrow):
            return spark
    raise ValueError(f"spark: no Spark type for Arrow type {arrow}")


@functools.cache
def _csv_schema(dataset: str) -> StructType:
    """The explicit CSV schema of a dataset: the generator's Arrow schema in Spark's types."""
    schema = schema_for(dataset)
    if schema is None:
        raise ValueError(f"spark: no schema for dataset {dataset!r}")
    return StructType([StructField(f.name, spark_type(f.type), nullable=True) for f in schema.arrow])


class SparkQueryError(RuntimeError):
    """A query failed inside Spark; the message keeps the cause chain, not the JVM stack."""


JVM_NOISE = re.compile(r"^(at |\.\.\. \d+ more|JVM stacktrace|An error occurred while calling"
                       r"|org\.apache\.spark\.SparkException: Exception thrown in awaitResult)")
"""Lines of a Py4J/Spark error that are stack, not cause (dropped from the one-line message)."""


def _translate(engine: SparkCluster, name: str, inp: StageInput, exc: BaseException) -> BaseException | None:
    """Spark's error class, file names and root cause in one line; None re-raises `exc`."""
    if isinstance(exc, (Py4JJavaError, PySparkException)):
        return SparkQueryError(f"spark {name} on {inp.path}: {one_line(exc, JVM_NOISE)}")
    if isinstance(exc, (Py4JError, ConnectionError)):  # py4j lost its JVM: say so, not "connection refused"
        if engine.alive():
            return None
        return SparkQueryError(f"spark {name} on {inp.path}: the driver JVM is gone "
                               f"(killed or crashed): {type(exc).__name__}: {exc}")
    return None


_Q = TypeVar("_Q", bound=Callable[..., Any])


def clear_errors(method: _Q) -> _Q:
    """Turn a failed query's Py4J error (pages of JVM stack) into one message naming the input."""
    translated = query_errors(_translate)(method)

    @functools.wraps(method)
    def run(self: SparkCluster, inp: StageInput, *args: Any, **kwargs: Any) -> Any:
        if inp.format == "csv" and inp.path.is_file() and inp.path.stat().st_size == 0:
            raise SparkQueryError(f"spark {method.__name__}: {inp.path} is empty (no header, no rows)")
        return translated(self, inp, *args, **kwargs)

    return run  # type: ignore[return-value]


class SparkReader(SparkCluster):
    """Reading inputs into DataFrames and bringing answers back, shared by every stage family."""

    def _read(self, inp: StageInput) -> DataFrame:
        """One dataset as a DataFrame: CSV with the explicit schema, or the Parquet folder (--io
        memory: the cached DataFrame load() made)."""
        loaded = self.loaded(inp)
        if loaded is not None:
            return loaded
        reader = self._session.read
        if inp.format == "csv":
            # enforceSchema=False: a header that does not match the schema is an error
            # naming the file, not a silent positional mismatch. FAILFAST: a broken row
            # fails the query instead of turning into nulls.
            return (reader.option("timestampNTZFormat", CSV_TIMESTAMP_FORMAT)
                    .csv(str(inp.path), schema=_csv_schema(inp.dataset), header=True,
                         enforceSchema=False, mode="FAILFAST"))
        if inp.format == "parquet":
            # The listed part files, not the folder: the folder also holds a manifest.
            files = [str(f) for f in inp.files] or [str(inp.path)]
            return reader.parquet(*files)
        raise ValueError(f"spark: unknown input format {inp.format!r} for {inp.path}")

    def _load_table(self, inp: StageInput) -> DataFrame:
        """--io memory: cache() and count(), as db-benchmark's Spark script loads its table; the
        queries then plan over the in-memory relation (InMemoryTableScan)."""
        df = self._read(inp).cache()
        df.count()
        return df

    def _unload_table(self, held: DataFrame) -> None:
        held.unpersist(blocking=True)

    @staticmethod
    def _collect(df: DataFrame) -> pd.DataFrame:
        """The small answer as pandas, through Arrow."""
        with quiet_pyspark():
            return df.toPandas()

    @staticmethod
    def _write(df: DataFrame, out: Path, partition_by: str | None = None) -> None:
        writer = df.write.mode("overwrite")
        if partition_by is not None:
            writer = writer.partitionBy(partition_by)
        writer.parquet(str(out))

    @staticmethod
    def _plan_facts(df: DataFrame) -> dict[str, Any]:
        """What the plan that just ran did: its joins and AQE's shuffle reads (the final adaptive
        plan, so a join AQE turned into a broadcast or split for skew shows as such)."""
        try:
            plan = str(df._jdf.queryExecution().executedPlan().toString())
        except Exception:  # Spark Connect has no _jdf; the facts are a nicety
            return {}
        final = plan.split("== Initial Plan ==")[0]
        joins = re.findall(r"\b((?:BroadcastHashJoin|SortMergeJoin|ShuffledHashJoin|BroadcastNestedLoopJoin"
                           r"|CartesianProduct)(?:\(skew=true\))?)(?!\w)", final)
        reads = re.findall(r"AQEShuffleRead (\w+(?: and \w+)*)", final)
        facts: dict[str, Any] = {}
        if joins:
            facts["joins"] = ", ".join(joins)
        if reads:
            facts["aqe_shuffle_reads"] = ", ".join(reads)
        facts["hash_exchanges"] = len(re.findall(r"Exchange hashpartitioning", final))
        return facts

    def _answer(self, df: DataFrame, notes: dict[str, Any]) -> pd.DataFrame:
        """Collect the small answer, then note what the executed plan did."""
        result = self._collect(df)
        self.last_notes = {**notes, "shuffle_partitions": self.shuffle_partitions, "plan": later(self._plan_facts, df)}
        return result
