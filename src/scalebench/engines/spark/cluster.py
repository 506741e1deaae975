"""Spark's cluster lifecycle: a local[N] driver JVM on loopback, or a client of an existing cluster.

Why the lifecycle is more than ``getOrCreate()`` / ``stop()``: PySpark launches one
driver JVM through py4j and keeps it (and the gateway) cached on ``SparkContext``
after ``spark.stop()``. A later session would reuse that JVM and silently ignore a new
``spark.driver.memory``, and the JVM would outlive the benchmark. So ``stop()`` also
shuts the gateway, ends the JVM (and anything it forked) and clears PySpark's caches,
which makes start/stop/start in one Python process behave like a fresh start.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlparse

import psutil
import pyspark
from pyspark.sql import SparkSession

from scalebench.engines.base import ClusterSpec, ClusterUnreachable, Engine, EngineUnavailable
from scalebench.engines.spark.patches import reset_pyspark_globals
from scalebench.java import java_version
from scalebench.measure.procs import LOOPBACK_IP, children_naming, is_loopback_host, terminate_all

MiB = 1024**2
MIN_HEAP_MIB = 512
"""Below this the local driver JVM cannot even plan a query."""
SESSION_STOP_TIMEOUT_S = 30
"""stop(): how long SparkSession.stop() may wait for running tasks before the JVM is ended."""
MIN_OVERHEAD_MIB = 384
"""Spark's own minimum for a JVM's memory beyond its heap (spark.executor.memoryOverhead)."""
LOCAL_TASK_ATTEMPTS = 2
"""Attempts per task in local mode: one retry for a lost worker, not four for a bad input."""

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


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # a missing parent package
        return False


@contextlib.contextmanager
def quiet_pyspark() -> Iterator[None]:
    """Silence PySpark's warnings about pandas>=3 (checked answers decide whether it works).

    PySpark 4.3 warns that pandas 3 is not fully supported, and its Arrow conversion
    passes the `copy=` keyword that pandas 3 deprecates; neither is ours to fix.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*PySpark does not yet fully support pandas")
        warnings.filterwarnings("ignore", message=r"The copy keyword is deprecated", module=r"pyspark\.")
        # A failing query is re-raised by clear_errors (read.py); this warning only repeats it.
        warnings.filterwarnings("ignore", message=r"toPandas attempted Arrow optimization")
        yield


def _stop_session(spark: SparkSession) -> None:
    with quiet_pyspark(), contextlib.suppress(Exception):
        spark.stop()


class SparkCluster(Engine):
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
        return is_loopback_host(urlparse(self.master.split(",")[0]).hostname)

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
            conf["spark.driver.bindAddress"] = LOOPBACK_IP
            conf["spark.driver.host"] = LOOPBACK_IP
            if spec.dashboards:
                # The UI binds to SPARK_LOCAL_IP (set before the JVM starts); this names it too.
                conf["spark.ui.host"] = LOOPBACK_IP
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
        self._java_version = java_version()
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
                os.environ["SPARK_LOCAL_IP"] = LOOPBACK_IP
            # SparkContext takes its Python workers' interpreter from PYSPARK_PYTHON (default
            # "python3" on PATH, which may not be this venv and then cannot import scalebench);
            # the spark.pyspark.python setting does not reach it when Python starts the JVM.
            os.environ["PYSPARK_PYTHON"] = sys.executable
            with quiet_pyspark():
                self.spark = builder.getOrCreate()
        except BaseException as exc:  # also Ctrl-C: a half-started JVM must not survive
            self._adopt_jvm()
            # interrupted while PySpark waits for the JVM's port, the JVM is not on SparkContext yet:
            # find it by our scratch dir on its command line
            strays = children_naming(str(scratch))
            self.stop()
            terminate_all(strays)
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
            with quiet_pyspark():
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
            terminate_all([jvm, *leftovers])
            if ours:
                with contextlib.suppress(Exception):
                    gateway.proc.wait(timeout=5)  # reap, so no zombie is left behind
                reset_pyspark_globals()
        elif spark is not None and not self._is_remote_connect():
            reset_pyspark_globals()
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

    @property
    def _session(self) -> SparkSession:
        """The running session; a clear error when start() was not called."""
        if self.spark is None:
            raise RuntimeError("spark engine is not started; call start() first")
        return self.spark
