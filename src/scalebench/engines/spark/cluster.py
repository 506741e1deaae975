"""Spark engine: PySpark DataFrame API on a local[N] driver JVM, or on an existing cluster.

Why the lifecycle is more than ``getOrCreate()`` / ``stop()``: PySpark launches one
driver JVM through py4j and keeps it (and the gateway) cached on ``SparkContext``
after ``spark.stop()``. A later session would reuse that JVM and silently ignore a new
``spark.driver.memory``, and the JVM would outlive the benchmark. So ``stop()`` also
shuts the gateway, ends the JVM (and anything it forked) and clears PySpark's caches,
which makes start/stop/start in one Python process behave like a fresh start.

Every query is written in the Spark DataFrame API; only the small final answer crosses
to pandas, through Arrow (``toPandas()``), and writes go straight to Parquet.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import importlib.util
import ipaddress
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import psutil
import pyspark
from py4j.protocol import Py4JError, Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema
from pyspark.sql.types import (
    BooleanType,
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampNTZType,
)

from scalebench import ml
from scalebench.datasets.schemas import schema_for
from scalebench.engines.base import (
    ClusterSpec,
    ClusterUnreachable,
    Engine,
    EngineUnavailable,
    NotApplicable,
    StageInput,
)
from scalebench.measure.procs import terminate_all
from scalebench.stages import (
    EXTREMES,
    H2O_GROUPBY_QUESTIONS,
    H2O_JOIN_QUESTIONS,
    ID_BUCKET_WIDTH,
    SALT_BUCKETS,
    TOP_EARNERS,
)

MiB = 1024**2
MIN_JAVA = 17
"""Spark 4 runs on Java 17 or newer."""
MIN_HEAP_MIB = 512
"""Below this the local driver JVM cannot even plan a query."""
SESSION_STOP_TIMEOUT_S = 30
"""stop(): how long SparkSession.stop() may wait for running tasks before the JVM is ended."""
MIN_OVERHEAD_MIB = 384
"""Spark's own minimum for a JVM's memory beyond its heap (spark.executor.memoryOverhead)."""
CSV_TIMESTAMP_FORMAT = "yyyy-MM-dd HH:mm:ss"
SKEW_JOIN_SETTINGS: dict[str, str] = {
    "spark.sql.adaptive.skewJoin.skewedPartitionFactor": "2.0",
    "spark.sql.adaptive.skewJoin.skewedPartitionThresholdInBytes": "1MB",
    "spark.sql.adaptive.advisoryPartitionSizeInBytes": "1MB",
}
"""AQE's skew join as skew_join(remedy='native') runs it. Spark's defaults (factor 5, 256 MB,
64 MB pieces) are sized for 200 shuffle partitions of big data: with our few partitions the
hot key's partition is only ~3x the median, and nothing below 256 MB is ever split, so at
benchmark sizes they would never act. Here a partition is skewed at 2x the median and 1 MB,
and is split into pieces of max(advisory, mean non-skewed partition) (Spark's own rule), i.e.
about the size of an ordinary partition."""
LOOPBACK = "127.0.0.1"

# The CSV schemas are explicit so reading never pays for an inference pass.
# signup_date is a timestamp without time zone: the data has no zone, and NTZ keeps
# the session time zone out of the to_date() conversion.
POINTS_SCHEMA = StructType([
    StructField("id", LongType(), nullable=False),
    StructField("x", DoubleType(), nullable=False),
    StructField("y", DoubleType(), nullable=False),
    StructField("category", StringType(), nullable=False),
])
USERS_SCHEMA = StructType([
    StructField("id", LongType(), nullable=False),
    StructField("name", StringType(), nullable=True),
    StructField("age", IntegerType(), nullable=True),
    StructField("salary", DoubleType(), nullable=True),
    StructField("signup_date", TimestampNTZType(), nullable=True),
    StructField("is_active", BooleanType(), nullable=True),
])
SCHEMAS: dict[str, StructType] = {"points": POINTS_SCHEMA, "users": USERS_SCHEMA}


def _csv_schema(dataset: str) -> StructType:
    """The explicit CSV schema of a dataset: the hand-written one, else PySpark's own mapping
    of the generator's Arrow schema (int64 -> bigint, string -> string, timestamp -> NTZ)."""
    if dataset in SCHEMAS:
        return SCHEMAS[dataset]
    schema = schema_for(dataset)
    if schema is None:
        raise ValueError(f"spark: no schema for dataset {dataset!r}")
    return from_arrow_schema(schema.arrow)


# Log4j2 configuration for the driver JVM: warnings and errors only, so a benchmark's
# output stays readable. Silenced as noise on every start: the Hadoop native-library
# notice, and SparkConf's note that spark.local.dir yields to a cluster manager's dirs.
LOG4J2_PROPERTIES = """\
rootLogger.level = warn
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n%ex
logger.hadoop_native.name = org.apache.hadoop.util.NativeCodeLoader
logger.hadoop_native.level = error
logger.sparkconf.name = org.apache.spark.SparkConf
logger.sparkconf.level = error
logger.jetty.name = org.sparkproject.jetty
logger.jetty.level = warn
logger.parquet.name = org.apache.parquet.CorruptStatistics
logger.parquet.level = error
"""


def _heap_mib(budget_bytes: int) -> int:
    """The JVM heap that keeps a JVM's whole footprint within `budget_bytes`.

    A JVM's resident memory is its heap plus off-heap (metaspace, threads, Netty and
    Arrow buffers). Following Spark's memoryOverhead rule, max(384 MiB, 10 %) of the
    budget is left for that, so the measured process tree stays near the budget.
    """
    budget = budget_bytes // MiB
    return max(MIN_HEAP_MIB, budget - max(MIN_OVERHEAD_MIB, budget // 10))


class SparkQueryError(RuntimeError):
    """A query failed inside Spark; the message keeps the cause chain, not the JVM stack."""


_NOISE = re.compile(r"^(at |\.\.\. \d+ more|JVM stacktrace|An error occurred while calling"
                    r"|org\.apache\.spark\.SparkException: Exception thrown in awaitResult)")


def _concise(exc: BaseException) -> str:
    """Spark's error as a few lines: error classes, file names and root cause, no stack frames."""
    lines: list[str] = []
    for line in str(exc).splitlines():
        text = line.strip().removeprefix(": ")
        if text and not _NOISE.match(text) and text not in lines:
            lines.append(text)
    return " | ".join(lines[:8]) or type(exc).__name__


_Q = TypeVar("_Q", bound=Callable[..., Any])


def _clear_errors(method: _Q) -> _Q:
    """Turn a failed query's Py4J error (pages of JVM stack) into one message naming the input."""

    @functools.wraps(method)
    def run(self: SparkEngine, inp: StageInput, *args: Any, **kwargs: Any) -> Any:
        if inp.format == "csv" and inp.path.is_file() and inp.path.stat().st_size == 0:
            raise SparkQueryError(f"spark {method.__name__}: {inp.path} is empty (no header, no rows)")
        try:
            return method(self, inp, *args, **kwargs)
        except (Py4JJavaError, PySparkException) as exc:
            raise SparkQueryError(f"spark {method.__name__} on {inp.path}: {_concise(exc)}") from exc
        except (Py4JError, ConnectionError) as exc:  # py4j lost its JVM: say so, not "connection refused"
            if self.alive():
                raise
            raise SparkQueryError(f"spark {method.__name__} on {inp.path}: the driver JVM is gone "
                                  f"(killed or crashed): {type(exc).__name__}: {exc}") from exc

    return run  # type: ignore[return-value]


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # a missing parent package
        return False


def _normalise_name(name: str) -> str:
    """Column-name normalisation of etl_users: strip, lower case, spaces to '_'."""
    return name.strip().lower().replace(" ", "_")


def _is_loopback_host(host: str | None) -> bool:
    if host is None or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@contextlib.contextmanager
def _quiet_pyspark() -> Iterator[None]:
    """Silence PySpark's warnings about pandas>=3 (checked answers decide whether it works).

    PySpark 4.3 warns that pandas 3 is not fully supported, and its Arrow conversion
    passes the `copy=` keyword that pandas 3 deprecates; neither is ours to fix.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*PySpark does not yet fully support pandas")
        warnings.filterwarnings("ignore", message=r"The copy keyword is deprecated", module=r"pyspark\.")
        # A failing query is re-raised by _clear_errors; this warning only repeats it.
        warnings.filterwarnings("ignore", message=r"toPandas attempted Arrow optimization")
        yield


_java_checked: dict[str, str] = {}


def _check_java() -> str:
    """The Java version string; EngineUnavailable when no usable Java 17+ is found.

    Checked before launching the JVM because PySpark's own failure is a bare
    "Java gateway process exited before sending its port number".
    """
    home = os.environ.get("JAVA_HOME")
    if home:
        java = Path(home) / "bin" / "java"
        if not os.access(java, os.X_OK):
            raise EngineUnavailable(f"spark: JAVA_HOME={home} but {java} is not an executable; "
                                    f"point JAVA_HOME at a JDK {MIN_JAVA}+ or unset it")
        binary = str(java)
    else:
        found = shutil.which("java")
        if found is None:
            raise EngineUnavailable(f"spark: Java {MIN_JAVA}+ not found (no `java` on PATH, JAVA_HOME not set); "
                                    f"install one (e.g. openjdk-{MIN_JAVA}-jre-headless) or set JAVA_HOME to it")
        binary = found
    if binary in _java_checked:
        return _java_checked[binary]
    try:
        proc = subprocess.run([binary, "-version"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EngineUnavailable(f"spark: cannot run {binary} -version: {exc}") from exc
    match = re.search(r'version "(\d+)(?:\.(\d+))?[^"]*"', proc.stderr + proc.stdout)
    if proc.returncode != 0 or match is None:
        raise EngineUnavailable(f"spark: {binary} -version failed: {(proc.stderr or proc.stdout).strip()[:300]}")
    major = int(match.group(1))
    if major == 1:  # "1.8.0_392" style
        major = int(match.group(2) or 0)
    if major < MIN_JAVA:
        raise EngineUnavailable(f"spark {pyspark.__version__} needs Java {MIN_JAVA}+, but {binary} is "
                                f"Java {major}; set JAVA_HOME to a newer JDK")
    version = match.group(0).split('"')[1]
    _java_checked[binary] = version
    return version


def _reset_pyspark_globals() -> None:
    """Forget PySpark's cached gateway and sessions so the next start launches a fresh JVM."""
    from pyspark.core.context import SparkContext
    from pyspark.sql.context import SQLContext

    with SparkContext._lock:
        SparkContext._gateway = None
        SparkContext._jvm = None
        SparkContext._active_spark_context = None
    SparkSession._instantiatedSession = None
    SparkSession._activeSession = None
    SQLContext._instantiatedContext = None


def _children_naming(text: str) -> list[psutil.Process]:
    """Our descendants whose command line contains `text`."""
    found = []
    for proc in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if any(text in arg for arg in proc.cmdline()):
                found.append(proc)
    return found


def _stop_session(spark: SparkSession) -> None:
    with _quiet_pyspark(), contextlib.suppress(Exception):
        spark.stop()


def _end_processes(procs: list[psutil.Process], grace: float = 5.0) -> None:
    """Terminate, wait, then kill whatever is still alive among `procs`."""
    terminate_all([p for p in procs if p.is_running()], timeout=grace)


LOCAL_TASK_ATTEMPTS = 2
"""Attempts per task in local mode: one retry for a lost worker, not four for a bad input."""


class SparkEngine(Engine):
    """PySpark (classic API) on a local[workers*threads] driver, or a cluster at spec.address."""

    name: ClassVar[str] = "spark"

    def __init__(self, spec: ClusterSpec) -> None:
        super().__init__(spec)
        self.spark: SparkSession | None = None
        self._scratch: Path | None = None
        self._local_dir: Path | None = None
        self._spill_before: set[str] = set()
        self._jvm: psutil.Process | None = None
        self._java_version: str | None = None
        self._conf: dict[str, str] = {}

    # -- lifecycle -----------------------------------------------------------
    @property
    def master(self) -> str:
        """local[N, 2]: plain local[N] never retries a task, so one lost Python worker would fail
        the query; on a cluster, spark.task.maxFailures (default 4) applies."""
        return self.spec.address or f"local[{self.spec.cores},{LOCAL_TASK_ATTEMPTS}]"

    @property
    def shuffle_partitions(self) -> int:
        """Few partitions for small local data; AQE coalesces further when they are tiny."""
        return max(self.spec.cores * 2, 8)

    def _is_remote_connect(self) -> bool:
        return self.master.startswith("sc://")

    def _binds_loopback(self) -> bool:
        """Local mode, or a cluster on this machine: the driver then listens on loopback only.

        A driver talking to executors on other hosts must be reachable from them, so
        for a remote master Spark's own choice of address is kept.
        """
        if self.spec.address is None or self.master.startswith("local"):
            return True
        return _is_loopback_host(urlparse(self.master.split(",")[0]).hostname)

    def _build_conf(self, scratch: Path, local_dir: Path) -> dict[str, str]:
        spec = self.spec
        log4j = scratch / "log4j2.properties"
        log4j.write_text(LOG4J2_PROPERTIES)
        java_opts = [f"-Dlog4j2.configurationFile={log4j.as_uri()}", "-Djava.net.preferIPv4Stack=true"]
        conf: dict[str, str] = {
            "spark.master": self.master,
            "spark.app.name": "scalebench",
            "spark.api.mode": "classic",
            "spark.local.dir": str(local_dir),
            "spark.sql.warehouse.dir": str(scratch / "warehouse"),
            "spark.driver.extraJavaOptions": " ".join(java_opts),
            "spark.ui.enabled": "true" if spec.dashboards else "false",
            "spark.ui.showConsoleProgress": "false",
            "spark.sql.execution.arrow.pyspark.enabled": "true",
            # Fail loudly instead of silently converting row by row without Arrow.
            "spark.sql.execution.arrow.pyspark.fallback.enabled": "false",
            "spark.sql.shuffle.partitions": str(self.shuffle_partitions),
            "spark.sql.adaptive.enabled": "true",
            "spark.sql.adaptive.coalescePartitions.enabled": "true",
            "spark.sql.session.timeZone": "UTC",
            "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
            "spark.pyspark.python": sys.executable,
            "spark.pyspark.driver.python": sys.executable,
        }
        if self._binds_loopback():
            conf["spark.driver.bindAddress"] = LOOPBACK
            conf["spark.driver.host"] = LOOPBACK
            if spec.dashboards:
                # The UI binds to SPARK_LOCAL_IP (set before the JVM starts); this names it too.
                conf["spark.ui.host"] = LOOPBACK
        if spec.address is None:
            # local mode: the driver JVM is the whole cluster, so it gets the whole budget.
            conf["spark.driver.memory"] = f"{_heap_mib(spec.memory_budget_bytes)}m"
        else:
            conf["spark.executor.memory"] = f"{_heap_mib(spec.memory_per_worker_bytes)}m"
            conf["spark.executor.cores"] = str(spec.threads_per_worker)
            conf["spark.cores.max"] = str(spec.cores)
            conf["spark.executor.instances"] = str(spec.workers)
        return conf

    def start(self) -> None:
        """Launch the driver JVM (local[N], or a client of spec.address) listening on loopback."""
        if self.spark is not None:
            return
        from pyspark.core.context import SparkContext

        if self.spec.address and self.master.split("://")[0] in ("spark", "sc") and "," not in self.master:
            # else the driver retries an absent master for a minute before giving up
            ClusterUnreachable.probe("--spark-master", self.master,
                                     default_port=15002 if self._is_remote_connect() else 7077)
        if self._is_remote_connect():
            self._start_connect()
            return
        self._java_version = _check_java()
        if SparkContext._active_spark_context is not None or SparkContext._gateway is not None:
            raise RuntimeError("spark: this Python process already has a SparkContext or driver JVM "
                               "that this engine did not start; stop it before starting the engine "
                               "(its settings, e.g. driver memory, would silently apply instead)")
        scratch = Path(tempfile.mkdtemp(prefix="scalebench-spark-"))
        if self.spec.spill_dir is None:
            local_dir = scratch / "local"
        else:
            local_dir = Path(self.spec.spill_dir)
        local_dir.mkdir(parents=True, exist_ok=True)
        self._scratch, self._local_dir = scratch, local_dir
        self._spill_before = {p.name for p in local_dir.iterdir()}
        self._conf = self._build_conf(scratch, local_dir)

        builder = SparkSession.Builder()
        for key, value in self._conf.items():
            builder = builder.config(key, value)
        saved_env = {key: os.environ.get(key) for key in ("SPARK_LOCAL_IP", "PYSPARK_PYTHON")}
        try:
            if self._binds_loopback():
                # Read by the JVM at launch: every socket it opens binds this address.
                os.environ["SPARK_LOCAL_IP"] = LOOPBACK
            # SparkContext takes its Python workers' interpreter from PYSPARK_PYTHON (default
            # "python3" on PATH, which may not be this venv and then cannot import scalebench);
            # the spark.pyspark.python setting does not reach it when Python starts the JVM.
            os.environ["PYSPARK_PYTHON"] = sys.executable
            with _quiet_pyspark():
                self.spark = builder.getOrCreate()
        except BaseException as exc:  # also Ctrl-C: a half-started JVM must not survive
            self._adopt_jvm()
            # interrupted while PySpark waits for the JVM's port, the JVM is not on SparkContext yet:
            # find it by our scratch dir on its command line
            strays = _children_naming(str(scratch))
            self.stop()
            _end_processes(strays)
            if type(exc).__name__ == "PySparkRuntimeError" and "JAVA_GATEWAY_EXITED" in str(exc):
                raise EngineUnavailable(f"spark: the driver JVM exited during start-up ({exc}); "
                                        "its stderr above says why") from exc
            raise
        finally:
            for key, value in saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        self._adopt_jvm()
        # A script that never calls stop() still gets its JVM ended and scratch removed.
        atexit.register(self.stop)
        self.spark.sparkContext.setLogLevel("WARN")

    def _start_connect(self) -> None:
        """Spark Connect (sc://host:port): a pure client, nothing is launched here."""
        missing = [m for m in ("grpc", "grpc_status", "google.rpc", "zstandard") if not _importable(m)]
        if missing:
            raise EngineUnavailable(f"spark: {self.master} needs the Spark Connect client, missing "
                                    f"{', '.join(missing)} (pip install 'pyspark[connect]')")
        try:
            with _quiet_pyspark():
                self.spark = SparkSession.builder.remote(self.master).config(
                    "spark.sql.execution.arrow.pyspark.enabled", "true").getOrCreate()
        except (ImportError, SystemExit) as exc:  # pyspark's connect check may sys.exit()
            raise EngineUnavailable(f"spark: the Spark Connect client cannot load: {exc}") from exc

    def _adopt_jvm(self) -> None:
        """Remember the driver JVM PySpark launched, so stop() can make sure it is gone."""
        from pyspark.core.context import SparkContext

        proc = getattr(SparkContext._gateway, "proc", None) if SparkContext._gateway else None
        if proc is not None:
            with contextlib.suppress(psutil.Error):
                self._jvm = psutil.Process(proc.pid)

    def stop(self) -> None:
        """Stop the session, end the driver JVM and its children, reset PySpark, drop scratch."""
        from pyspark.core.context import SparkContext

        atexit.unregister(self.stop)
        spark, self.spark = self.spark, None
        if spark is not None:
            # SparkContext.stop() waits for running tasks: after a query was interrupted (Ctrl-C,
            # pytest-timeout) a hung task would hold it for as long as it hangs. Give the graceful
            # stop a bounded time, then end the JVM below, which also ends the waiting call.
            stopper = threading.Thread(target=_stop_session, args=(spark,), name="spark-stop", daemon=True)
            stopper.start()
            stopper.join(SESSION_STOP_TIMEOUT_S if self._jvm is not None else None)
        jvm, self._jvm = self._jvm, None
        if jvm is not None:
            gateway = SparkContext._gateway
            ours = gateway is not None and getattr(getattr(gateway, "proc", None), "pid", None) == jvm.pid
            leftovers: list[psutil.Process] = []
            with contextlib.suppress(psutil.Error):
                leftovers = jvm.children(recursive=True)
            if ours:
                with contextlib.suppress(Exception):
                    gateway.shutdown()
                popen = gateway.proc
                # The JVM's PythonGatewayServer exits when its stdin closes: the clean way out.
                with contextlib.suppress(Exception):
                    popen.stdin.close()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    popen.wait(timeout=15)
            _end_processes([jvm, *leftovers])
            if ours:
                with contextlib.suppress(Exception):
                    gateway.proc.wait(timeout=5)  # reap, so no zombie is left behind
                _reset_pyspark_globals()
        elif spark is not None and not self._is_remote_connect():
            _reset_pyspark_globals()
        self._clean_dirs()

    def alive(self) -> bool:
        """The session's SparkContext is not stopped and, in local mode, the driver JVM runs."""
        if self.spark is None:
            return False
        if self._jvm is not None:
            with contextlib.suppress(psutil.Error):
                if not self._jvm.is_running() or self._jvm.status() == psutil.STATUS_ZOMBIE:
                    return False
        if self._is_remote_connect():
            return True
        try:
            return not self.spark.sparkContext._jsc.sc().isStopped()
        except Exception:  # the JVM or its gateway is gone
            return False

    def _clean_dirs(self) -> None:
        """Remove our scratch folder and what Spark left in a caller's spill_dir."""
        local_dir, self._local_dir = self._local_dir, None
        if local_dir is not None and self.spec.spill_dir is not None and local_dir.exists():
            for entry in local_dir.iterdir():
                if entry.name not in self._spill_before and entry.name.startswith(("blockmgr-", "spark-")):
                    shutil.rmtree(entry, ignore_errors=True)
        scratch, self._scratch = self._scratch, None
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)

    def version(self) -> str:
        return pyspark.__version__

    def spilled_bytes(self) -> int | None:
        """Disk bytes spilled by every stage so far, from the driver's status store (which
        exists with the UI off); None over Spark Connect, which has no such view."""
        try:
            sc = self._session.sparkContext
            gateway = sc._gateway
            stages = sc._jsc.sc().statusStore().stageList(None, False, False,
                                                           gateway.new_array(gateway.jvm.double, 0), None)
        except Exception:
            return None
        total, it = 0, stages.iterator()
        while it.hasNext():
            total += int(it.next().diskBytesSpilled())
        return total

    def pids(self) -> list[int]:
        """This application's executors on a cluster on this machine (their memory counts too).

        Local mode runs everything in the driver JVM, a child of this process: nothing here.
        """
        if self.spark is None or self.spec.address is None or self._is_remote_connect():
            return []
        app_id = self.spark.sparkContext.applicationId
        found = []
        for proc in psutil.process_iter(["pid", "cmdline"]):
            cmd = proc.info["cmdline"] or []
            if app_id in cmd and any(a.endswith("CoarseGrainedExecutorBackend") for a in cmd):
                found.append(proc.info["pid"])
        return found

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update({
            "idiom": "spark-dataframe",
            "address": self.master,
            "java": self._java_version,
            "shuffle_partitions": self.shuffle_partitions,
            "adaptive_query_execution": True,
            "driver_memory": self._conf.get("spark.driver.memory"),
            "executor_memory": self._conf.get("spark.executor.memory"),
            "heap_rule": "JVM heap = budget - max(384 MiB, 10 %) left for off-heap memory",
            "local_dir": self._conf.get("spark.local.dir"),
            "to_pandas": "arrow",
        })
        return info

    # -- helpers -------------------------------------------------------------
    @property
    def _session(self) -> SparkSession:
        if self.spark is None:
            raise RuntimeError("spark engine is not started; call start() first")
        return self.spark

    def _read(self, inp: StageInput) -> DataFrame:
        """One dataset as a DataFrame: CSV with the explicit schema, or the Parquet folder."""
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

    @staticmethod
    def _collect(df: DataFrame) -> pd.DataFrame:
        """The small answer as pandas, through Arrow."""
        with _quiet_pyspark():
            return df.toPandas()

    @staticmethod
    def _write(df: DataFrame, out: Path, partition_by: str | None = None) -> None:
        writer = df.write.mode("overwrite")
        if partition_by is not None:
            writer = writer.partitionBy(partition_by)
        writer.parquet(str(out))

    # -- stage queries -------------------------------------------------------
    @_clear_errors
    def etl_users(self, inp: StageInput, out: Path) -> None:
        df = self._read(inp)
        df = df.toDF(*[_normalise_name(c) for c in df.columns])
        df = df.select(
            F.col("id").cast(LongType()).alias("id"),
            F.col("name").cast(StringType()).alias("name"),
            F.col("age").cast(IntegerType()).alias("age"),
            F.col("salary").cast(DoubleType()).alias("salary"),
            F.to_date("signup_date").alias("signup_date"),
            F.col("is_active").cast(BooleanType()).alias("is_active"),
        )
        self._write(df.dropna(how="any").dropDuplicates(["id"]), out, partition_by="is_active")

    @_clear_errors
    def etl_points(self, inp: StageInput, out: Path) -> None:
        df = self._read(inp).select(
            F.col("id").cast(LongType()), F.col("x").cast(DoubleType()),
            F.col("y").cast(DoubleType()), F.col("category").cast(StringType()))
        self._write(df, out)

    @_clear_errors
    def groupby_points(self, inp: StageInput) -> pd.DataFrame:
        df = self._read(inp).groupBy("category").agg(
            F.count(F.lit(1)).alias("count"),
            F.sum("x").alias("sum_x"), F.avg("x").alias("mean_x"),
            F.sum("y").alias("sum_y"), F.avg("y").alias("mean_y"),
        )
        return self._collect(df)

    @_clear_errors
    def groupby_age(self, inp: StageInput) -> pd.DataFrame:
        df = self._read(inp).groupBy("age").agg(
            F.count(F.lit(1)).alias("count"), F.avg("salary").alias("mean_salary"))
        return self._collect(df)

    @_clear_errors
    def groupby_id_bucket(self, inp: StageInput) -> pd.DataFrame:
        # `div` is SQL's integral division: an exact bigint, no round trip through double.
        bucket = F.call_function("div", F.col("id"), F.lit(ID_BUCKET_WIDTH)).alias("bucket")
        df = self._read(inp).groupBy(bucket).agg(
            F.count(F.lit(1)).alias("count"), F.sum("salary").alias("sum_salary"))
        return self._collect(df)

    @_clear_errors
    def sort_top_earners(self, inp: StageInput) -> pd.DataFrame:
        # Selecting the answer's columns before the sort lets the optimizer drop the
        # other columns from the de-duplicating aggregate and from the scan.
        df = (self._read(inp).dropDuplicates(["id"]).filter(F.col("salary").isNotNull())
              .select("id", "name", "salary")
              .orderBy(F.col("salary").desc(), F.col("id").asc()).limit(TOP_EARNERS))
        return self._collect(df)

    @_clear_errors
    def sort_active_extremes(self, inp: StageInput) -> pd.DataFrame:
        # Both ends come from one plan; Spark reuses the de-duplicating shuffle for both.
        active = (self._read(inp).dropDuplicates(["id"]).filter(F.col("is_active"))
                  .select("id", "name", "age"))
        youngest = (active.orderBy(F.col("age").asc(), F.col("id").asc()).limit(EXTREMES)
                    .select(F.lit("youngest").alias("end"), "id", "name", "age"))
        oldest = (active.orderBy(F.col("age").desc(), F.col("id").asc()).limit(EXTREMES)
                  .select(F.lit("oldest").alias("end"), "id", "name", "age"))
        return self._collect(youngest.unionByName(oldest))

    @_clear_errors
    def sort_global(self, inp: StageInput, out: Path) -> None:
        # orderBy before a write range-partitions on (salary, id): every task writes one
        # sorted file and the files' key ranges do not overlap.
        df = self._read(inp).filter(F.col("salary").isNotNull()).orderBy("salary", "id")
        self._write(df, out)

    # -- db-benchmark, joins on users, skew --------------------------------------
    @contextlib.contextmanager
    def _settings(self, settings: dict[str, str]) -> Iterator[None]:
        """Session settings for one query, restored afterwards: one session serves every query."""
        conf = self._session.conf
        saved = {key: conf.get(key, None) for key in settings}

        def restore() -> None:
            for key, value in saved.items():
                if value is None:
                    conf.unset(key)
                else:
                    conf.set(key, value)

        try:
            for key, value in settings.items():
                conf.set(key, value)
            yield
        except BaseException:
            with contextlib.suppress(Exception):  # a dead JVM must not hide the query's own error
                restore()
            raise
        restore()

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
        self.last_notes = {**notes, "shuffle_partitions": self.shuffle_partitions, **self._plan_facts(df)}
        return result

    def _h2o_groupby(self, question: str, grouped: DataFrame) -> pd.DataFrame:
        """db-benchmark's check, computed in Spark over the grouped result: its row count and
        each answer column's sum (q9 skips undefined r2: Spark's corr is null or NaN there)."""
        measures = []
        for name in H2O_GROUPBY_QUESTIONS[question]:
            col = F.col(name)
            if name == "r2":
                col = F.when(~F.isnan(col), col)
            measures.append(F.sum(col).alias(name))
        summary = grouped.agg(F.count(F.lit(1)).alias("rows"), *measures)
        return self._answer(summary, {"idiom": "groupBy().agg(); the check's count and sums in Spark"})

    @_clear_errors
    def h2o_groupby_q1(self, inp: StageInput) -> pd.DataFrame:
        x = self._read(inp)
        return self._h2o_groupby("q1", x.groupBy("id1").agg(F.sum("v1").alias("v1")))

    @_clear_errors
    def h2o_groupby_q2(self, inp: StageInput) -> pd.DataFrame:
        x = self._read(inp)
        return self._h2o_groupby("q2", x.groupBy("id1", "id2").agg(F.sum("v1").alias("v1")))

    @_clear_errors
    def h2o_groupby_q3(self, inp: StageInput) -> pd.DataFrame:
        x = self._read(inp)
        return self._h2o_groupby("q3", x.groupBy("id3").agg(F.sum("v1").alias("v1"), F.avg("v3").alias("v3")))

    @_clear_errors
    def h2o_groupby_q4(self, inp: StageInput) -> pd.DataFrame:
        x = self._read(inp)
        return self._h2o_groupby("q4", x.groupBy("id4").agg(*[F.avg(v).alias(v) for v in ("v1", "v2", "v3")]))

    @_clear_errors
    def h2o_groupby_q5(self, inp: StageInput) -> pd.DataFrame:
        x = self._read(inp)
        return self._h2o_groupby("q5", x.groupBy("id6").agg(*[F.sum(v).alias(v) for v in ("v1", "v2", "v3")]))

    @_clear_errors
    def h2o_groupby_q6(self, inp: StageInput) -> pd.DataFrame:
        # median is Spark's exact percentile(v3, 0.5) (interpolated, like DuckDB's), not the
        # approximate percentile_approx; stddev_samp divides by n - 1.
        x = self._read(inp)
        return self._h2o_groupby("q6", x.groupBy("id4", "id5").agg(
            F.median("v3").alias("median_v3"), F.stddev_samp("v3").alias("sd_v3")))

    @_clear_errors
    def h2o_groupby_q7(self, inp: StageInput) -> pd.DataFrame:
        x = self._read(inp)
        return self._h2o_groupby("q7", x.groupBy("id3").agg((F.max("v1") - F.min("v2")).alias("range_v1_v2")))

    @_clear_errors
    def h2o_groupby_q8(self, inp: StageInput) -> pd.DataFrame:
        # row_number over a window, filtered to <= 2: Spark plans a per-partition WindowGroupLimit
        # before the shuffle, so only two rows per id6 and task cross it.
        x = self._read(inp)
        by_v3 = Window.partitionBy("id6").orderBy(F.col("v3").desc())
        top = (x.filter(F.col("v3").isNotNull()).select("id6", "v3", F.row_number().over(by_v3).alias("rank"))
               .filter(F.col("rank") <= 2).select("id6", F.col("v3").alias("largest2_v3")))
        return self._h2o_groupby("q8", top)

    @_clear_errors
    def h2o_groupby_q9(self, inp: StageInput) -> pd.DataFrame:
        x = self._read(inp)
        return self._h2o_groupby("q9", x.groupBy("id2", "id4").agg(F.pow(F.corr("v1", "v2"), 2).alias("r2")))

    @_clear_errors
    def h2o_groupby_q10(self, inp: StageInput) -> pd.DataFrame:
        x = self._read(inp)
        return self._h2o_groupby("q10", x.groupBy("id1", "id2", "id3", "id4", "id5", "id6").agg(
            F.sum("v3").alias("v3"), F.count(F.lit(1)).alias("count")))

    def _h2o_join(self, inp: StageInput, question: str) -> pd.DataFrame:
        """x.join(right, key, how) as written: Spark picks broadcast or sort-merge by size (and AQE
        may switch at run time); the plan's choice goes into last_notes."""
        table, key, how = H2O_JOIN_QUESTIONS[question]
        joined = self._read(inp).join(self._read(inp.extra[table]), on=key, how=how)
        df = joined.agg(F.count(F.lit(1)).alias("rows"), F.sum("v1").alias("sum_v1"), F.sum("v2").alias("sum_v2"))
        return self._answer(df, {"idiom": f"x.join({table}, {key!r}, {how!r}); Spark chooses the join"})

    @_clear_errors
    def h2o_join_q1(self, inp: StageInput) -> pd.DataFrame:
        return self._h2o_join(inp, "q1")

    @_clear_errors
    def h2o_join_q2(self, inp: StageInput) -> pd.DataFrame:
        return self._h2o_join(inp, "q2")

    @_clear_errors
    def h2o_join_q3(self, inp: StageInput) -> pd.DataFrame:
        return self._h2o_join(inp, "q3")

    @_clear_errors
    def h2o_join_q4(self, inp: StageInput) -> pd.DataFrame:
        return self._h2o_join(inp, "q4")

    @_clear_errors
    def h2o_join_q5(self, inp: StageInput) -> pd.DataFrame:
        return self._h2o_join(inp, "q5")

    @_clear_errors
    def join_dim(self, inp: StageInput) -> pd.DataFrame:
        """The 30-row dimension joined with the broadcast() hint: no shuffle of the users."""
        users, dim = self._read(inp), self._read(inp.extra["names_dim"])
        df = users.join(F.broadcast(dim), "name").groupBy("region").agg(
            F.count(F.lit(1)).alias("count"), F.sum("salary").alias("sum_salary"), F.sum("weight").alias("sum_weight"))
        return self._answer(df, {"idiom": "users.join(F.broadcast(names_dim), 'name')"})

    @_clear_errors
    def join_large(self, inp: StageInput) -> pd.DataFrame:
        """Two tables of one row per id, joined with the 'merge' hint: the shuffle (sort-merge) join
        this query measures. Unhinted, Spark (and AQE at run time) broadcasts accounts while it is
        under 10 MB, which at 1M rows it still is."""
        users, accounts = self._read(inp), self._read(inp.extra["accounts"])
        df = users.join(accounts.hint("merge"), "id").groupBy("is_active").agg(
            F.count(F.lit(1)).alias("count"), F.sum("balance").alias("sum_balance"),
            F.sum("salary").alias("sum_salary"))
        return self._answer(df, {"idiom": "users.join(accounts.hint('merge'), 'id'): a sort-merge shuffle join"})

    @_clear_errors
    def skew_groupby(self, inp: StageInput, remedy: str = "plain") -> pd.DataFrame:
        """Per key count and sum. Spark aggregates map-side before every shuffle (one row per key
        and task), so a hot key costs little; salting adds a (key, salt) pre-aggregate and a
        second shuffle. There is no other native remedy for a groupBy (AQE's is for joins).
        by_key: a scan partition never splits a file (maxPartitionBytes above the largest bucket
        file), so each task holds whole keys and aggregates them itself in mapInPandas: no
        Exchange of rows or partial aggregates, only the one-row summary at the end."""
        if remedy == "by_key":
            buckets = inp.require_partitioned("key", "spark")
            whole_files = str(max(f.stat().st_size for f in buckets) + 1)
            with self._settings({"spark.sql.files.maxPartitionBytes": whole_files}):
                grouped = (self._read(inp).select("key", "v")
                           .mapInPandas(_sums_by_key, "key long, n long, s double"))
                summary = grouped.agg(F.count(F.lit(1)).alias("groups"), F.sum("n").alias("rows"),
                                      F.sum("s").alias("sum_v"), F.max("n").alias("max_count"))
                return self._answer(summary, {"remedy": remedy, "buckets": len(buckets),
                                              "idiom": "whole bucket files per task, mapInPandas(groupby)"})
        keys = self._read(inp)
        measures = (F.count(F.lit(1)).alias("n"), F.sum("v").alias("s"))
        if remedy == "plain":
            grouped = keys.groupBy("key").agg(*measures)
        elif remedy == "salted":
            partial = keys.withColumn("salt", F.col("id") % SALT_BUCKETS).groupBy("key", "salt").agg(*measures)
            grouped = partial.groupBy("key").agg(F.sum("n").alias("n"), F.sum("s").alias("s"))
        elif remedy == "native":
            raise NotApplicable("spark: a groupBy's own skew remedy is the map-side partial aggregate it always "
                                "does (the plain query); AQE's skew handling splits joins only")
        else:
            raise ValueError(f"spark skew_groupby: unknown remedy {remedy!r}")
        summary = grouped.agg(F.count(F.lit(1)).alias("groups"), F.sum("n").alias("rows"),
                              F.sum("s").alias("sum_v"), F.max("n").alias("max_count"))
        notes: dict[str, Any] = {"remedy": remedy, "idiom": "groupBy('key').agg() (partial aggregate map-side)"}
        if remedy == "salted":
            notes["idiom"] = f"groupBy('key', id % {SALT_BUCKETS}).agg() then groupBy('key').agg()"
            notes["salt_buckets"] = SALT_BUCKETS
        return self._answer(summary, notes)

    @_clear_errors
    def skew_join(self, inp: StageInput, remedy: str = "plain") -> pd.DataFrame:
        """keys.join(keys_dim, 'key') as a sort-merge join (broadcast off for this query, so the hot
        key's rows meet in one task). salted: join on (key, id % SALT_BUCKETS) against the dimension
        exploded once per salt. native: AQE's skew join, which splits an oversized shuffle partition
        into pieces each joined with a copy of the other side's matching partition."""
        keys, dim = self._read(inp), self._read(inp.extra["keys_dim"])
        settings = {"spark.sql.autoBroadcastJoinThreshold": "-1",
                    "spark.sql.adaptive.autoBroadcastJoinThreshold": "-1",
                    "spark.sql.adaptive.skewJoin.enabled": "true" if remedy == "native" else "false"}
        notes: dict[str, Any] = {"remedy": remedy, "broadcast": "off (autoBroadcastJoinThreshold=-1)"}
        if remedy == "plain":
            joined = keys.join(dim, "key")
            notes["idiom"] = "keys.join(keys_dim, 'key'), AQE skew join off"
        elif remedy == "salted":
            salts = F.explode(F.sequence(F.lit(0), F.lit(SALT_BUCKETS - 1)))
            joined = (keys.withColumn("salt", F.col("id") % SALT_BUCKETS)
                      .join(dim.withColumn("salt", salts), ["key", "salt"]))
            notes["idiom"] = "keys(+salt = id % B).join(keys_dim exploded over salts 0..B-1, ['key', 'salt'])"
            notes["salt_buckets"] = SALT_BUCKETS
        elif remedy == "native":
            settings.update(SKEW_JOIN_SETTINGS)
            joined = keys.join(dim, "key")
            notes["idiom"] = "keys.join(keys_dim, 'key') with AQE skew join on"
            notes["aqe_skew"] = {k.removeprefix("spark.sql.adaptive."): v for k, v in SKEW_JOIN_SETTINGS.items()}
        else:
            raise ValueError(f"spark skew_join: unknown remedy {remedy!r}")
        df = joined.agg(F.count(F.lit(1)).alias("rows"), F.sum("v").alias("sum_v"), F.sum("w").alias("sum_w"))
        with self._settings(settings):
            return self._answer(df, notes)

    # -- machine learning ------------------------------------------------------
    def _read_ml(self, inp: StageInput) -> DataFrame:
        """_read, except that a hive-partitioned folder (an etl_users output) is read as a folder
        with partition discovery, so is_active comes from the is_active=... folder names."""
        if not inp.extra.get("hive"):
            return self._read(inp)
        df = self._session.read.parquet(str(inp.path))
        # Inferred as boolean from true/false folders; other writers may spell it True/False
        # (inferred as string): the cast accepts both.
        return df.withColumn("is_active", F.col("is_active").cast(BooleanType()))

    @_clear_errors
    def logreg(self, inp: StageInput) -> ml.Fit:
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
        unknown = sorted(set(labels) - set(ml.CATEGORIES))
        if unknown:
            raise ValueError(f"spark logreg on {inp.path}: column 'category' has values outside "
                             f"{', '.join(ml.CATEGORIES)}: {', '.join(unknown[:5])}")
        assembled = VectorAssembler(inputCols=list(ml.FEATURES), outputCol="features").transform(
            indexer.transform(points)).select("features", "label")
        # Persisted so the source is read and parsed once: MLlib's fit passes over it (feature
        # statistics, then building the blocks it caches for L-BFGS) and the accuracy pass reads it again.
        assembled = assembled.persist()
        try:
            model = LogisticRegression(
                family="multinomial", regParam=ml.L2, elasticNetParam=0.0, standardization=False,
                fitIntercept=True, tol=ml.TOL, maxIter=ml.MAX_ITER, featuresCol="features",
                labelCol="label").fit(assembled)
            scored = model.transform(assembled).agg(
                F.count(F.lit(1)).alias("rows"),
                F.sum((F.col("prediction") == F.col("label")).cast(LongType())).alias("correct")).first()
        finally:
            assembled.unpersist()
        rows, correct = int(scored["rows"]), int(scored["correct"] or 0)
        slopes = model.coefficientMatrix.toArray()  # (classes, features), rows in label order
        intercepts = model.interceptVector.toArray()
        coef = np.zeros((len(ml.COEF_ROWS), len(ml.CATEGORIES)))
        for index, label in enumerate(labels):
            column = ml.CATEGORIES.index(label)
            coef[0, column] = intercepts[index]
            coef[1:, column] = slopes[index]
        summary = model.summary
        history = summary.objectiveHistory
        self.last_notes = {"solver": "MLlib LogisticRegression (multinomial, L-BFGS), regParam = ml.L2, "
                                     "standardization off"}
        return ml.Fit(coef, int(summary.totalIterations), float(history[-1]) if history else float("nan"),
                      correct / rows if rows else float("nan"), rows)

    @_clear_errors
    def sample_users(self, inp: StageInput, rows: int, seed: int) -> pd.DataFrame:
        """Bernoulli sample of ~rows*1.1 rows in Spark, then `rows` of them in a seeded random
        order (TakeOrderedAndProject): only the sample reaches the driver, and for a fixed seed
        and cluster layout the same rows come back in the same order (a bare limit() keeps
        whichever partitions finish first)."""
        cols = [*ml.TUNE_FEATURES, ml.TUNE_TARGET]
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
            raise SparkQueryError(f"spark grid_map: {_concise(exc)}") from exc
        self.last_notes["grid_map"] = f"sc.parallelize({len(tasks)} tasks, {len(tasks)} slices).map(fn).collect()"
        return results

    @_clear_errors
    def predict(self, inp: StageInput, model_dir: Path, out: Path, csv_out: Path | None = None) -> None:
        """mapInPandas over the users, the model and scaler broadcast once to the executors."""
        model, scaler = ml.load_model(model_dir)  # on the driver: a bad file fails here, by name
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
                yield ml.predict_frame(frame, loaded_model, loaded_scaler)

        schema = StructType([StructField("id", LongType()), StructField("name", StringType()),
                             StructField("prediction", DoubleType())])
        users = self._read_ml(inp).select("id", "name", *ml.TUNE_FEATURES)
        try:
            with _quiet_pyspark():
                self._write(users.mapInPandas(predict_batches, schema), out)
                if csv_out is not None:  # from the Parquet just written: the model runs once
                    session.read.parquet(str(out)).write.mode("overwrite").option("header", True).csv(str(csv_out))
        finally:
            if not connect:
                payload.destroy()
        self.last_notes = {"batches": batches.value if batches is not None else None,
                           "predict": "mapInPandas (Arrow batches of spark.sql.execution.arrow.maxRecordsPerBatch "
                                      "rows), model and scaler broadcast"}


ENGINE = SparkEngine


def _sums_by_key(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """mapInPandas: count and sum of v per key over all of a task's Arrow batches."""
    partials = [b.groupby("key", sort=False)["v"].agg(["size", "sum"]) for b in batches]
    if partials:
        t = pd.concat(partials).groupby(level=0, sort=False).sum()
        yield pd.DataFrame({"key": t.index.to_numpy(), "n": t["size"].to_numpy(), "s": t["sum"].to_numpy()})
