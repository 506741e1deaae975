"""The contract every engine module fulfils.

An engine owns one framework's cluster lifecycle and its implementation of every
stage query. Framework imports stay inside the engine module so that an
environment with only one framework installed can still import scalebench.
"""

from __future__ import annotations

import abc
import contextlib
import signal
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd

if TYPE_CHECKING:
    from scalebench.answers import Held
    from scalebench.stages import Query

GiB = 1024**3


@dataclass(frozen=True)
class ClusterSpec:
    """What a cluster may use; every engine honours every field it can."""

    workers: int = 2
    threads_per_worker: int = 1
    memory_budget_bytes: int = 4 * GiB
    """Total memory for the whole cluster (all workers together)."""
    spill_dir: Path | None = None
    """Where the framework may spill; None means a private temporary folder."""
    address: str | None = None
    """Connect to this existing cluster instead of starting a local one."""
    dashboards: bool = False
    """Dashboards and web UIs stay off unless asked for."""

    @property
    def cores(self) -> int:
        return self.workers * self.threads_per_worker

    @property
    def memory_per_worker_bytes(self) -> int:
        return self.memory_budget_bytes // self.workers


@dataclass(frozen=True)
class StageInput:
    """One on-disk copy of a dataset, in one format."""

    dataset: str
    """'points' or 'users'."""
    format: str
    """'csv' or 'parquet'."""
    path: Path
    """csv: the single CSV file. parquet: the folder holding the part files."""
    files: tuple[Path, ...]
    """Every data file, in row order (csv: (path,); parquet: part files sorted)."""
    rows: int
    bytes: int
    columns: tuple[str, ...]
    extra: dict[str, Any] = field(default_factory=dict)
    partitioned_by: str | None = None
    """Parquet laid out by this column (store.ensure_partitioned): each file holds every row of
    its keys, so `files` are the buckets."""

    def require_partitioned(self, column: str, engine: str) -> tuple[Path, ...]:
        """The bucket files, or one clear error when the input is not partitioned by `column`."""
        if self.partitioned_by != column:
            raise ValueError(f"{engine}: {self.path} is not partitioned by {column!r} "
                             f"(partitioned by {self.partitioned_by!r}); see store.ensure_partitioned")
        return self.files


class EngineUnavailable(RuntimeError):
    """The framework is not installed or cannot run here (for example no Java)."""


class ClusterUnreachable(RuntimeError):
    """A cluster address the user gave cannot be reached: an error, never a skip (unlike
    EngineUnavailable, which means the framework cannot run here at all)."""

    CONNECT_TIMEOUT_S = 5.0

    @classmethod
    def probe(cls, option: str, address: str, default_port: int | None = None,
              timeout: float = CONNECT_TIMEOUT_S) -> None:
        """Open and close one TCP connection to `address` (scheme://host:port, host:port) within
        `timeout` seconds, so a wrong address fails in seconds, naming the option, instead of
        after the framework's own retries (minutes for Ray and Spark)."""
        import socket
        from urllib.parse import urlsplit

        parts = urlsplit(address if "://" in address else f"//{address}")
        try:
            host, port = parts.hostname, parts.port or default_port
        except ValueError:
            host, port = None, None
        if not host or port is None:
            raise cls(f"{option} {address}: not an address of the form host:port")
        try:
            with socket.create_connection((host, port), timeout=timeout):
                pass
        except OSError as exc:
            reason = f"no answer within {timeout:g} s" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
            raise cls(f"{option} {address}: cannot connect to {host}:{port} ({reason}); "
                      f"is the cluster running there?") from None


@contextlib.contextmanager
def ctrl_c_deferred() -> Iterator[None]:
    """Hold a Ctrl-C that arrives inside the block and deliver it when the block is done.

    For framework start-up that cannot be interrupted safely: a KeyboardInterrupt inside
    ray.init() left a half-built core worker, and the interpreter crashed (SIGSEGV) at exit.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pressed: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: pressed.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if pressed and callable(previous):  # SIG_IGN (started in the background) stays ignored
        previous(signal.SIGINT, None)


class NotApplicable(NotImplementedError):
    """The framework has no form of this query (DuckDB trains no models); the message says why."""


class MissingQuery(LookupError):
    """An engine lacks a query of the catalogue: a bug in scalebench, never a skip."""


@dataclass(frozen=True)
class Later:
    """A note worked out after the timer, not inside it (a plan walk is not the query's work):
    put it in last_notes; Engine.notes() calls it and puts what it returns (a dict is merged) in
    its place. The check resolves notes before it fetches or releases a held answer."""

    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()


def later(fn: Callable[..., Any], *args: Any) -> Later:
    return Later(fn, args)


class Engine(abc.ABC):
    """One framework. Subclasses implement start/stop and every stage query.

    Query methods return a small pandas DataFrame (aggregations, top-k) or write
    Parquet under ``out`` and return None. They must finish the work (compute,
    collect or write) before returning: a lazy frame is not a result.
    """

    name: ClassVar[str]
    VARIANTS: ClassVar[Mapping[str, Mapping[str, Callable[..., Any] | str]]] = {}
    """For a method that serves several queries by value (Query.variant): what implements each
    value, a function or the reason the framework has no form of it. A method without a table
    here serves every value itself (for example from a table of the catalogue)."""

    def __init__(self, spec: ClusterSpec) -> None:
        self.spec = spec
        self.last_notes: dict[str, Any] = {}
        """What the last query did that a reader should know (mode, chunks, idiom)."""
        self._loaded: dict[Path, Any] = {}
        """--io memory: each loaded input's in-memory copy, by its path (see load)."""

    def notes(self) -> dict[str, Any]:
        """last_notes with every Later worked out (once: the results replace them)."""
        resolved: dict[str, Any] = {}
        for key, value in self.last_notes.items():
            if isinstance(value, Later):
                value = value.fn(*value.args)
                if isinstance(value, dict):
                    resolved.update(value)
                    continue
            resolved[key] = value
        self.last_notes = resolved
        return dict(resolved)

    # -- lifecycle -----------------------------------------------------------
    @abc.abstractmethod
    def start(self) -> None:
        """Start a local cluster on 127.0.0.1, or connect to ``spec.address``."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Idempotent; every process start() launched is gone afterwards."""

    @abc.abstractmethod
    def version(self) -> str: ...

    def describe(self) -> dict[str, Any]:
        """Facts a reader needs to interpret a number (idiom, address, layout)."""
        return {
            "engine": self.name,
            "version": self.version(),
            "workers": self.spec.workers,
            "threads_per_worker": self.spec.threads_per_worker,
            "memory_budget_bytes": self.spec.memory_budget_bytes,
        }

    def spilled_bytes(self) -> int | None:
        """Bytes the framework has spilled to disk so far (a running total), or None when it
        does not report spilling; the benchmark records the growth over a query."""
        return None

    def pids(self) -> list[int]:
        """Cluster processes that are not descendants of this process."""
        return []

    def alive(self) -> bool:
        """Cheap health check: False when the cluster is known to be dead or broken, so a
        session-wide pool replaces it instead of handing it to the next benchmark."""
        return True

    # -- --io memory: inputs loaded into the engine before the timer --------------------
    def load(self, inp: StageInput) -> None:
        """--io memory: load the input and its extra tables into the engine in the framework's idiom
        (Spark cache() + count(), Dask persist(), a materialized Ray Dataset, a pandas frame, a
        DuckDB table), outside the timer; until unload(), every read of them comes from memory."""
        for table in (inp, *inp.extra.values()):
            if table.path not in self._loaded:
                self._loaded[table.path] = self._load_table(table)

    def unload(self) -> None:
        """Free what load() holds; reads come from storage again."""
        loaded, self._loaded = self._loaded, {}
        for held in loaded.values():
            # after a timeout the pool may have stopped the cluster: what it held is gone with it
            with contextlib.suppress(Exception):
                self._unload_table(held)

    def loaded(self, inp: StageInput) -> Any | None:
        """The in-memory copy of `inp` (--io memory), or None: read it from storage."""
        return self._loaded.get(inp.path)

    def _load_table(self, inp: StageInput) -> Any:
        """One table loaded and materialised; an engine with an in-memory mode overrides it."""
        raise NotApplicable(f"{self.name} has no in-memory input mode (--io memory)")

    def _unload_table(self, held: Any) -> None:
        """Free one loaded table (unpersist, drop); by default dropping the reference is enough."""
        del held

    def __enter__(self) -> Engine:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @classmethod
    def implementation(cls, query: Query) -> Callable[..., Any]:
        """What answers `query` on this engine, followed from the catalogue by value: the method
        Query.op, or for a variant the function VARIANTS names. NotApplicable with the reason
        where the framework has no form of it; MissingQuery where the engine lacks it."""
        method = getattr(cls, query.op, None)
        if not callable(method) or getattr(method, "__isabstractmethod__", False):
            raise MissingQuery(f"{cls.name} has no {query.op} (query {query.id})")
        if query.variant is None:
            return method
        return cls.variant(query.op, query.variant)

    @classmethod
    def variant(cls, op: str, value: str) -> Callable[..., Any]:
        """The function VARIANTS names for `value` of `op`, for the method's own dispatch too:
        NotApplicable with the reason where the framework has no form of it, MissingQuery where
        the engine lacks it."""
        table = cls.VARIANTS.get(op, {})
        found = table.get(value)
        if found is None:
            raise MissingQuery(f"{cls.name}.{op} has no {value!r}; it has {', '.join(table) or 'no table of variants'}")
        if isinstance(found, str):
            raise NotApplicable(f"{cls.name}: {found}")
        return found

    def run_query(self, query: Query, inp: StageInput, out: Path | None = None) -> pd.DataFrame | Held | None:
        """Answer `query`: its method, called with the input, the output folder when it writes,
        and its variant."""
        type(self).implementation(query)  # NotApplicable / MissingQuery before any work
        method = getattr(self, query.op)
        if query.writes:
            return method(inp, out, *query.args())
        return method(inp, *query.args())

    # -- stage queries (see scalebench.stages for the exact semantics) --------
    @abc.abstractmethod
    def etl_users(self, inp: StageInput, out: Path) -> None: ...

    @abc.abstractmethod
    def etl_points(self, inp: StageInput, out: Path) -> None: ...

    @abc.abstractmethod
    def groupby_points(self, inp: StageInput) -> pd.DataFrame: ...

    @abc.abstractmethod
    def groupby_age(self, inp: StageInput) -> pd.DataFrame: ...

    @abc.abstractmethod
    def groupby_id_bucket(self, inp: StageInput) -> pd.DataFrame: ...

    @abc.abstractmethod
    def sort_top_earners(self, inp: StageInput) -> pd.DataFrame: ...

    @abc.abstractmethod
    def sort_active_extremes(self, inp: StageInput) -> pd.DataFrame: ...

    @abc.abstractmethod
    def sort_global(self, inp: StageInput, out: Path) -> None: ...

    @abc.abstractmethod
    def h2o_groupby(self, inp: StageInput, question: str) -> pd.DataFrame | Held:
        """db-benchmark groupby question q1..q10: the whole grouped answer (stages.h2o_groupby_answer),
        materialised: collected, or for answers.held() questions persisted, counted and returned Held."""

    @abc.abstractmethod
    def h2o_join(self, inp: StageInput, question: str) -> pd.DataFrame | Held:
        """db-benchmark join question q1..q5: the whole joined rows (stages.H2O_JOIN_ANSWER), held."""

    @abc.abstractmethod
    def join_dim(self, inp: StageInput) -> pd.DataFrame: ...

    @abc.abstractmethod
    def join_large(self, inp: StageInput) -> pd.DataFrame: ...

    @abc.abstractmethod
    def skew_groupby(self, inp: StageInput, remedy: str) -> pd.DataFrame:
        """remedy: 'plain', 'salted', 'native', or the layout 'by_key' (partition stage)."""

    @abc.abstractmethod
    def skew_join(self, inp: StageInput, remedy: str) -> pd.DataFrame:
        """remedy: 'plain', 'salted' or 'native'."""

    @abc.abstractmethod
    def tpch(self, inp: StageInput, question: str) -> pd.DataFrame:
        """TPC-H question q1..q22 (scalebench.tpch) over lineitem and the seven tables in inp.extra:
        the whole answer, collected, with tpch.ANSWERS' columns."""

    # -- machine learning (see scalebench.ml) --------------------------------------
    def logreg(self, inp: StageInput) -> Any:
        """Fit scalebench.ml's logistic regression on points; return an ml.Fit."""
        raise NotApplicable(f"{self.name} has no logistic regression")

    def sample_users(self, inp: StageInput, rows: int, seed: int) -> pd.DataFrame:
        """About `rows` random rows of age, is_active, salary, drawn inside the framework
        (never the whole dataset on the driver). Reads hive-partitioned folders too."""
        raise NotApplicable(f"{self.name} does not sample for training")

    def grid_map(self, fn: Any, tasks: list) -> list:
        """`[fn(t) for t in tasks]`, with the calls spread over the cluster."""
        raise NotApplicable(f"{self.name} cannot distribute model fits")

    def predict(self, inp: StageInput, model_dir: Path, out: Path, csv_out: Path | None = None) -> None:
        """Load the saved model and scaler (ml.load_model), predict salary for every row of the
        users input in batches inside the framework (ml.predict_frame per batch), and write
        id, name, prediction to Parquet under `out`, and also as CSV files with a header under
        `csv_out` when given. Record the batch count in last_notes."""
        raise NotApplicable(f"{self.name} does not predict")

    def tune(self, inp: StageInput, out: Path, sample_rows: int, distributed: bool, seed: int = 42) -> Any:
        """The paper's model pipeline (ml.tune) on a sample drawn in this framework, its 24
        fits run serially or through grid_map. Returns an ml.TuneResult."""
        from scalebench import ml

        sample = self.sample_users(inp, sample_rows, seed)
        self.last_notes["tune_mode"] = "distributed" if distributed else "serial"
        return ml.tune(sample, self.grid_map if distributed else _serial_map, out, seed)


def _serial_map(fn: Any, tasks: list) -> list:
    return [fn(t) for t in tasks]
