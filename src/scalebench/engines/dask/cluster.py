"""Dask engine: dask.dataframe on a dask.distributed cluster.

Every query is written with dask.dataframe collections and finished with
``compute()`` or ``to_parquet()``; only the small final answers (a few rows or
one row per group) reach pandas. Shuffles that a query needs are named in the
query's docstring, because they dominate its cost.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar
from urllib.parse import urlparse

import dask
import dask.dataframe as dd
import distributed
import numpy as np
import pandas as pd
import psutil
import pyarrow as pa
from dask.utils import get_default_shuffle_method

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

CSV_BLOCKSIZE_MAX = 64 * 2**20
"""Most bytes of CSV per partition (~1.4M users rows): small next to a worker's memory budget."""
CSV_BLOCKSIZE_MIN = 8 * 2**20
"""Fewest bytes per partition, so tiny files do not turn into many tiny tasks."""

POINTS_DTYPES: dict[str, str] = {"id": "int64", "x": "float64", "y": "float64", "category": "str"}
USERS_DTYPES: dict[str, str] = {"id": "int64", "name": "str", "age": "int32", "salary": "float64",
                                "is_active": "bool"}
USERS_DATES = ("signup_date",)
USERS_COLUMNS = ("id", "name", "age", "salary", "signup_date", "is_active")
POINTS_COLUMNS = ("id", "x", "y", "category")
SAMPLE_COLUMNS = (*ml.TUNE_FEATURES, ml.TUNE_TARGET)
PREDICTION_META = pd.DataFrame({"id": pd.Series(dtype="int64"), "name": pd.Series(dtype="str"),
                                "prediction": pd.Series(dtype="float64")})
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
STRING_COLUMNS = ("name", "category")
NO_WORKERS_TIMEOUT = "60s"
CONNECT_TIMEOUT = "10s"
"""start(): how long a given --dask-scheduler may take to answer (Dask's default is 30 s)."""
"""Tasks fail instead of waiting forever when a local cluster has lost every worker."""
ALIVE_TIMEOUT_S = 10
"""alive(): how long the scheduler may take to answer, or to regain a worker."""
IDLE_MEMORY_SHARE = 0.5
"""start() refuses a budget where an idle worker already uses more than this share."""
LOOPBACK = {"127.0.0.1", "::1", "localhost"}


P = ParamSpec("P")
R = TypeVar("R")


def _on_cluster(method: Callable[Concatenate[DaskEngine, P], R]) -> Callable[Concatenate[DaskEngine, P], R]:
    """Run a query with this engine's client as the current one, so that two engines in one
    process never compute on each other's cluster (the client is not made the global default),
    and name the input file in errors caused by bad input."""

    @functools.wraps(method)
    def run(self: DaskEngine, *args: P.args, **kwargs: P.kwargs) -> R:
        if self._client is None:
            raise RuntimeError("DaskEngine.start() was not called")
        self._check_workers()
        with self._client.as_current():
            try:
                return method(self, *args, **kwargs)
            except ml.ModelError:  # names the model file already
                raise
            except (ValueError, TypeError) as exc:  # bad input: name the file Dask was reading
                inp = args[0] if args else None
                if isinstance(inp, StageInput) and str(inp.path) not in str(exc):
                    raise ValueError(f"{inp.path}: {exc}") from exc
                raise

    return run


def _normal(name: str) -> str:
    """The etl_users column-name rule: strip, lower case, spaces to '_'."""
    return name.strip().lower().replace(" ", "_")


def _csv_header(path: Path) -> list[str]:
    """The header names of a CSV file, read from its first line only (no inference pass)."""
    with open(path, encoding="utf-8", newline="") as fh:
        line = fh.readline().rstrip("\r\n")
    if not line:
        raise ValueError(f"{path}: empty CSV file (no header line)")
    return line.split(",")


def _renames(path: Path, raw: list[str], wanted: tuple[str, ...]) -> dict[str, str]:
    """raw column name -> normalised name; a clear error when a wanted column is missing."""
    mapping = {c: _normal(c) for c in raw}
    missing = [w for w in wanted if w not in mapping.values()]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}; has {', '.join(raw)}")
    return mapping


class DaskEngine(Engine):
    """dask.dataframe on a LocalCluster (worker processes) or on an existing scheduler."""

    name = "dask"

    def __init__(self, spec: ClusterSpec) -> None:
        super().__init__(spec)
        self._cluster: distributed.LocalCluster | None = None
        self._client: distributed.Client | None = None
        self._private_dir: Path | None = None
        self._started_pids: set[int] = set()

    # -- lifecycle ---------------------------------------------------------------
    def version(self) -> str:
        return f"dask {dask.__version__}, distributed {distributed.__version__}"

    def start(self) -> None:
        """Start a loopback-only LocalCluster of spawned worker processes, or connect."""
        if self._client is not None:
            return
        if self.spec.address:
            ClusterUnreachable.probe("--dask-scheduler", self.spec.address, default_port=8786)
            try:  # a listener that is not a Dask scheduler: fail within the timeout, naming it
                self._client = distributed.Client(self.spec.address, set_as_default=False,
                                                  timeout=CONNECT_TIMEOUT)
            except (OSError, TimeoutError) as exc:
                raise ClusterUnreachable(f"--dask-scheduler {self.spec.address}: no Dask scheduler answered "
                                         f"within {CONNECT_TIMEOUT} ({exc})") from exc
            return
        spill = self.spec.spill_dir
        if spill is None:
            self._private_dir = Path(tempfile.mkdtemp(prefix="scalebench-dask-"))
            spill = self._private_dir
        else:
            Path(spill).mkdir(parents=True, exist_ok=True)
        # the in-process scheduler logs every P2P shuffle at WARNING; it is not a problem
        logging.getLogger("distributed.shuffle._scheduler_plugin").setLevel(logging.ERROR)
        before = {p.pid for p in psutil.Process().children(recursive=True)}
        try:
            with dask.config.set({"distributed.scheduler.no-workers-timeout": NO_WORKERS_TIMEOUT}):
                self._cluster = distributed.LocalCluster(
                    n_workers=self.spec.workers,
                    threads_per_worker=self.spec.threads_per_worker,
                    processes=True,
                    host="127.0.0.1",
                    memory_limit=self.spec.memory_per_worker_bytes,
                    local_directory=str(spill),  # workers' spill and P2P shuffle files
                    # None turns the Bokeh dashboard off; the scheduler still serves
                    # /health on an HTTP port, which we keep on a random loopback port
                    # instead of its default 8787 so parallel clusters do not collide.
                    dashboard_address="127.0.0.1:0" if self.spec.dashboards else None,
                    scheduler_kwargs={"local_directory": str(spill),
                                      **({} if self.spec.dashboards else {"dashboard_address": "127.0.0.1:0"})},
                    worker_dashboard_address=None,
                )
            self._client = distributed.Client(self._cluster, set_as_default=False)
            self._client.wait_for_workers(self.spec.workers)
        except Exception as exc:
            self._started_pids = {p.pid for p in psutil.Process().children(recursive=True)} - before
            self.stop()
            raise EngineUnavailable(f"dask LocalCluster did not start: {exc}") from exc
        self._started_pids = {p.pid for p in psutil.Process().children(recursive=True)} - before
        self._check_loopback()
        self._check_idle_memory()

    def _check_idle_memory(self) -> None:
        """An idle worker holds ~220 MiB (pandas, pyarrow); under a budget that leaves no room
        for data the nanny restarts workers until tasks fail, so refuse such a budget up front."""
        assert self._cluster is not None
        idle = max((p.memory_info().rss for p in map(_proc, _worker_pids(self._cluster)) if p is not None),
                   default=0)
        limit = self.spec.memory_per_worker_bytes
        if idle > IDLE_MEMORY_SHARE * limit:
            self.stop()
            raise EngineUnavailable(
                f"dask: an idle worker already uses {idle >> 20} MiB of its {limit >> 20} MiB budget; "
                f"give each worker at least {int(idle / IDLE_MEMORY_SHARE) >> 20} MiB "
                f"(memory budget >= {int(idle / IDLE_MEMORY_SHARE * self.spec.workers) >> 20} MiB)")

    def _check_workers(self) -> None:
        """A local cluster whose workers were all killed (memory limit) and not restarted would
        make the next query wait forever; fail it with a clear message instead."""
        if self._cluster is None or self._client is None:
            return
        try:
            self._client.wait_for_workers(1, timeout=NO_WORKERS_TIMEOUT)
        except TimeoutError as exc:
            raise RuntimeError(f"dask cluster at {self._client.scheduler.address} has no live worker "
                               f"(killed at the memory limit of {self.spec.memory_per_worker_bytes} bytes?)") from exc

    def alive(self) -> bool:
        """The client is connected and the scheduler answers with at least one worker (a
        nanny restarts a killed worker within seconds, so wait briefly for one)."""
        if self._client is None or self._client.status != "running":
            return False
        if self._cluster is not None:
            scheduler = getattr(self._cluster, "scheduler", None)
            if self._cluster.status.name != "running" or (
                    scheduler is not None and scheduler.status.name != "running"):
                return False
        try:
            if self._client.nthreads(callback_timeout=ALIVE_TIMEOUT_S):
                return True
            self._client.wait_for_workers(1, timeout=ALIVE_TIMEOUT_S)
            return True
        except Exception:
            return False

    def _check_loopback(self) -> None:
        """Fail loudly if any listening socket of the cluster is off loopback."""
        procs = [psutil.Process()] + [p for p in map(_proc, self._started_pids) if p is not None]
        bad = []
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                for conn in proc.net_connections(kind="inet"):
                    if conn.status == psutil.CONN_LISTEN and conn.laddr.ip not in LOOPBACK:
                        bad.append(f"pid {proc.pid} listens on {conn.laddr.ip}:{conn.laddr.port}")
        if bad:
            self.stop()
            raise RuntimeError("dask cluster listens off loopback: " + "; ".join(bad))

    def stop(self) -> None:
        """Close client and cluster, then kill any worker or nanny process that survived."""
        client, cluster = self._client, self._cluster
        self._client = self._cluster = None
        if cluster is not None:  # workers a nanny restarted after start() are ours too
            self._started_pids.update(_worker_pids(cluster))
        if client is not None:
            with contextlib.suppress(Exception):
                client.close(timeout=10)
        if cluster is not None:
            with contextlib.suppress(Exception):
                cluster.close(timeout=20)
        self._stop_resource_tracker()
        terminate_all([p for p in map(_proc, self._started_pids) if p is not None])
        self._started_pids = set()
        if self._private_dir is not None:
            shutil.rmtree(self._private_dir, ignore_errors=True)
            self._private_dir = None

    def _stop_resource_tracker(self) -> None:
        """Spawning the workers started multiprocessing's resource tracker as our child; it
        ignores SIGTERM, so ask it to exit the way multiprocessing itself does (it restarts
        on demand)."""
        from multiprocessing import resource_tracker

        tracker = resource_tracker._resource_tracker
        if getattr(tracker, "_pid", None) in self._started_pids:
            with contextlib.suppress(Exception):
                tracker._stop()

    def spilled_bytes(self) -> int | None:
        """Sum over workers of what their SpillBuffer has written to disk (pickled size)."""
        def spilled(dask_worker: Any) -> int:
            total = getattr(dask_worker.data, "spilled_total", None)
            return int(total.disk) if total is not None else 0

        try:
            return sum(self._client.run(spilled).values())
        except Exception:
            return None

    def pids(self) -> list[int]:
        """Scheduler, nannies and workers of a connected cluster on this machine, for the
        memory sampler; a local cluster's processes are our children already."""
        if self._client is None or self._cluster is not None:
            return []
        host = urlparse(self._client.scheduler.address).hostname or ""
        if host not in LOOPBACK:
            return []
        pids = {self._client.run_on_scheduler(os.getpid)}
        pids.update(self._client.run(os.getpid).values())
        with contextlib.suppress(Exception):  # workers started without a nanny
            pids.update(self._client.run(os.getpid, nanny=True).values())
        pids.discard(os.getpid())
        return sorted(pids)

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update({
            "idiom": "dask.dataframe",
            "address": self._client.scheduler.address if self._client is not None else self.spec.address,
            # a connected cluster always reports a link, even when its dashboard is off
            "dashboard": self._client.dashboard_link if self._client is not None and self.spec.dashboards
            else None,
            "mode": "connect" if self.spec.address else "local",
            "csv_blocksize": f"{CSV_BLOCKSIZE_MIN}..{CSV_BLOCKSIZE_MAX} bytes, >= 2 partitions per thread",
            "shuffle_method": dask.config.get("dataframe.shuffle.method", None) or "default (p2p on distributed)",
        })
        if self._client is not None:
            nthreads = self._client.nthreads()
            info["cluster_workers"] = len(nthreads)
            info["cluster_threads"] = sum(nthreads.values())
        return info

    # -- reading -----------------------------------------------------------------
    def _blocksize(self, path: Path) -> int:
        """At least two partitions per thread while a file is large enough, so every worker
        has work, and never more than CSV_BLOCKSIZE_MAX per partition."""
        assert self._client is not None
        threads = sum(self._client.nthreads().values()) or self.spec.cores
        want = path.stat().st_size // (2 * threads) + 1
        return int(min(CSV_BLOCKSIZE_MAX, max(CSV_BLOCKSIZE_MIN, want)))

    def _read(self, inp: StageInput, columns: tuple[str, ...], dtypes: dict[str, str],
              dates: tuple[str, ...] = ()) -> dd.DataFrame:
        """A lazy frame with normalised column names and the documented types."""
        if inp.format == "csv":
            raw = _csv_header(inp.path)
            names = _renames(inp.path, raw, columns)
            back = {v: k for k, v in names.items()}
            df = dd.read_csv(
                str(inp.path),
                blocksize=self._blocksize(inp.path),
                dtype={back[c]: t for c, t in dtypes.items()},
                parse_dates=[back[c] for c in dates] or False,
                date_format={back[c]: DATE_FORMAT for c in dates} or None,
                true_values=["true", "True", "TRUE"],
                false_values=["false", "False", "FALSE"],
                keep_default_na=False,
                na_values=[""],
            )
        elif inp.format == "parquet":
            df = dd.read_parquet(str(inp.path))
            raw = list(df.columns)
            names = _renames(inp.path, raw, columns)
        else:
            raise ValueError(f"{inp.path}: unknown input format {inp.format!r} (csv or parquet)")
        if any(k != v for k, v in names.items()):
            df = df.rename(columns=names)
        return df

    def _note(self, df: dd.DataFrame, shuffle: str | None) -> None:
        """What a reader of the timing should know: partitions read and the shuffle, if any."""
        self.last_notes = {"partitions": df.npartitions}
        if shuffle:
            self.last_notes["shuffle"] = f"{shuffle} ({get_default_shuffle_method()})"

    def _users(self, inp: StageInput) -> dd.DataFrame:
        return self._read(inp, USERS_COLUMNS, USERS_DTYPES, USERS_DATES)

    def _points(self, inp: StageInput) -> dd.DataFrame:
        return self._read(inp, POINTS_COLUMNS, POINTS_DTYPES)

    def _table(self, inp: StageInput) -> dd.DataFrame:
        """Any catalogued dataset (db-benchmark, dimensions, keys), with the CSV dtypes taken from
        its Arrow schema so read_csv never infers a type from a sample."""
        schema = schema_for(inp.dataset)
        if schema is None:
            raise ValueError(f"{inp.path}: unknown dataset {inp.dataset!r}")
        dates = tuple(f.name for f in schema.arrow if pa.types.is_timestamp(f.type))
        dtypes = {f.name: _pandas_dtype(f.type) for f in schema.arrow if f.name not in dates}
        return self._read(inp, tuple(schema.arrow.names), dtypes, dates)

    def _threads(self) -> int:
        assert self._client is not None
        return sum(self._client.nthreads().values()) or self.spec.cores

    # -- etl ---------------------------------------------------------------------
    @_on_cluster
    def etl_users(self, inp: StageInput, out: Path) -> None:
        """dropna, drop_duplicates(subset=id) (a hash shuffle on id), to_parquet(partition_on)."""
        df = self._users(inp)[list(USERS_COLUMNS)]
        self._note(df, "drop_duplicates: hash shuffle on id")
        df = df.dropna()
        df = df.drop_duplicates(subset=["id"])
        df = df.astype({"id": "int64", "age": "int32", "salary": "float64", "is_active": "bool"})
        # a true date: Parquet date32 rather than a midnight timestamp
        df["signup_date"] = df["signup_date"].astype(pd.ArrowDtype(pa.date32()))
        df.to_parquet(str(out), partition_on=["is_active"], write_index=False, schema=_string_schema(df))

    @_on_cluster
    def etl_points(self, inp: StageInput, out: Path) -> None:
        """Read and write back, one Parquet file per partition (no shuffle)."""
        df = self._points(inp)[list(POINTS_COLUMNS)]
        self._note(df, None)
        df.to_parquet(str(out), write_index=False, schema=_string_schema(df))

    # -- groupby -----------------------------------------------------------------
    @_on_cluster
    def groupby_points(self, inp: StageInput) -> pd.DataFrame:
        """Tree reduction (4 groups, split_out=1)."""
        df = self._points(inp)
        self._note(df, None)
        res = df.groupby("category").agg(
            count=("x", "size"), sum_x=("x", "sum"), mean_x=("x", "mean"),
            sum_y=("y", "sum"), mean_y=("y", "mean"))
        return res.compute().reset_index()

    @_on_cluster
    def groupby_age(self, inp: StageInput) -> pd.DataFrame:
        """Tree reduction (63 groups); mean skips null salaries as the semantics ask."""
        df = self._users(inp)
        self._note(df, None)
        res = df.groupby("age").agg(count=("id", "size"), mean_salary=("salary", "mean"))
        return res.compute().reset_index()

    @_on_cluster
    def groupby_id_bucket(self, inp: StageInput) -> pd.DataFrame:
        """rows/100 groups: split_out=True makes Dask shuffle the partial aggregates."""
        df = self._users(inp)[["id", "salary"]]
        self._note(df, "groupby split_out=True: hash shuffle of partial aggregates on bucket")
        df = df.assign(bucket=df["id"] // ID_BUCKET_WIDTH)
        res = df.groupby("bucket").agg(count=("id", "size"), sum_salary=("salary", "sum"),
                                       split_out=True)
        return res.compute().reset_index()

    # -- sort --------------------------------------------------------------------
    @_on_cluster
    def sort_top_earners(self, inp: StageInput) -> pd.DataFrame:
        """drop_duplicates (shuffle on id), then sort_values(...).head(): Dask turns it into a
        top-k tree reduction (per-partition sort+head, then combine), not a full sort."""
        df = self._users(inp)[["id", "name", "salary"]]
        self._note(df, "drop_duplicates: hash shuffle on id")
        df = df.drop_duplicates(subset=["id"]).dropna(subset=["salary"])
        top = df.sort_values(["salary", "id"], ascending=[False, True]).head(TOP_EARNERS, compute=False)
        res = top.compute()
        return res[["id", "name", "salary"]].reset_index(drop=True)

    @_on_cluster
    def sort_active_extremes(self, inp: StageInput) -> pd.DataFrame:
        """drop_duplicates (shuffle on id), filter, two top-k reductions computed together so the
        shuffle runs once."""
        df = self._users(inp)[["id", "name", "age", "is_active"]]
        self._note(df, "drop_duplicates: hash shuffle on id (shared by both top-k)")
        df = df.drop_duplicates(subset=["id"])
        df = df[df["is_active"]][["id", "name", "age"]]
        young = df.sort_values(["age", "id"], ascending=[True, True]).head(EXTREMES, compute=False)
        old = df.sort_values(["age", "id"], ascending=[False, True]).head(EXTREMES, compute=False)
        young_pd, old_pd = dask.compute(young, old)
        parts = [young_pd.assign(end="youngest"), old_pd.assign(end="oldest")]
        return pd.concat(parts, ignore_index=True)[["end", "id", "name", "age"]]

    @_on_cluster
    def sort_global(self, inp: StageInput, out: Path) -> None:
        """sort_values([salary, id]): quantiles of salary pick the partition boundaries and a
        shuffle moves rows, so equal salaries land in one partition; each partition is then
        sorted by (salary, id). Part files therefore never overlap.

        The map_partitions no-op is a projection barrier that works around a Dask bug: to pick
        boundaries, sort_values reads only `salary`, and the optimizer fuses such narrow reads
        into fewer partitions (FusedIO / FusedParquetIO); with one fused partition the data look
        "presorted" and Dask sorts each real partition on its own, so part files overlap
        (dask 2026.8 on the 2-part Parquet users sets of 20k and 1M rows). Behind the barrier
        both passes see the same partitions; the price is that the boundary pass reads every
        column."""
        df = self._users(inp)[list(USERS_COLUMNS)]
        self._note(df, "sort_values: range shuffle on salary quantiles")
        df = df.dropna(subset=["salary"])
        df = df.map_partitions(lambda part: part, meta=df._meta)
        df = df.sort_values(["salary", "id"], ignore_index=True)
        df.to_parquet(str(out), write_index=False, schema=_string_schema(df))

    # -- machine learning (see scalebench.ml) ------------------------------------------
    @_on_cluster
    def logreg(self, inp: StageInput) -> ml.Fit:
        """ml's objective by L-BFGS on the driver over per-partition sums computed on the
        cluster: x, y and the category codes (ml.category_codes, once per partition) are
        computed into worker memory as NumPy blocks, and each evaluation maps
        ml.partial_loss_grad over those blocks (client.map over the block futures) and adds
        the ml.Partials up on the driver."""
        df = self._points(inp)[["x", "y", "category"]]
        self._note(df, None)
        assert self._client is not None
        client = self._client
        blocks = client.compute([dask.delayed(_logreg_block)(part) for part in df.to_delayed()])
        try:
            distributed.wait(blocks)
            for block in blocks:  # a bad category or a read error surfaces here, once
                if block.status == "error":
                    block.result()
            evaluations = {"n": 0}

            def partials(w: np.ndarray) -> ml.Partial:
                evaluations["n"] += 1
                parts = client.gather(client.map(_block_partial, blocks, w=w, pure=False))
                return functools.reduce(lambda a, b: a + b, parts)

            fit = ml.fit_distributed(partials)
        finally:
            client.cancel(blocks)
        self.last_notes.update({
            "solver": "scipy L-BFGS on the driver; client.map(partial_loss_grad) over computed "
                      "NumPy blocks (one per partition), Partials summed on the driver",
            "blocks": len(blocks), "distributed_passes": evaluations["n"]})
        return fit

    @_on_cluster
    def sample_users(self, inp: StageInput, rows: int, seed: int) -> pd.DataFrame:
        """DataFrame.sample(frac=rows*1.1/inp.rows, random_state=seed) per partition, then
        head(rows) over all partitions: only the sample reaches the driver. A hive folder
        (inp.extra["hive"]) is read whole so is_active comes from the folder names."""
        hive = bool(inp.extra.get("hive"))
        if inp.format == "csv":
            df = self._users(inp)
        elif hive:  # partition discovery on the folder, not the file list
            df = dd.read_parquet(str(inp.path), dataset={"partitioning": "hive"})
            df = df.rename(columns=_renames(inp.path, list(df.columns), SAMPLE_COLUMNS))
        else:
            df = self._read(inp, SAMPLE_COLUMNS, {})
        df = df[list(SAMPLE_COLUMNS)]
        self._note(df, None)
        if df["is_active"].dtype != bool:  # partition values come back as strings or categories
            df = df.map_partitions(ml.active_from_folder, meta=df._meta.astype({"is_active": "bool"}))
        fraction = min(1.0, rows * 1.1 / max(1, inp.rows))
        sample = df.sample(frac=fraction, random_state=seed).head(rows, npartitions=-1)
        self.last_notes.update({"fraction": fraction, "hive": hive})
        return sample.reset_index(drop=True)

    @_on_cluster
    def grid_map(self, fn: Any, tasks: list) -> list:
        """joblib.Parallel under joblib's dask backend with this engine's client (the decorator
        makes it current; it is passed explicitly too), one task per batch, results in task order.

        Each call runs under joblib's sequential backend on its worker: joblib otherwise hands
        the dask backend down to nested Parallel calls, and the backend ignores their n_jobs=1,
        so every tree of a RandomForest fit became a dask task of its own (4-5x the CPU)."""
        import joblib

        call = _SequentialJoblib(fn)
        with joblib.parallel_backend("dask", client=self._client):
            out = joblib.Parallel(batch_size=1)(joblib.delayed(call)(t) for t in tasks)
        self.last_notes["grid_map"] = (f"joblib {joblib.__version__} dask backend, {len(tasks)} tasks, "
                                       "batch_size=1, sequential joblib inside each task")
        return list(out)

    @_on_cluster
    def predict(self, inp: StageInput, model_dir: Path, out: Path, csv_out: Path | None = None) -> None:
        """map_partitions(ml.predict_frame) with the model and scaler loaded on the driver and
        sent to the cluster once (a Delayed argument), then to_parquet: one batch per partition."""
        model, scaler = ml.load_model(model_dir)
        df = self._users(inp)[["id", "name", *ml.TUNE_FEATURES]]
        self._note(df, None)
        fitted = dask.delayed((model, scaler), pure=True, traverse=False)
        pred = df.map_partitions(_predict_partition, fitted, meta=PREDICTION_META)
        writes = [pred.to_parquet(str(out), write_index=False, schema=_string_schema(pred), compute=False)]
        if csv_out is not None:  # one graph: each partition is predicted once for both files
            csv_out.mkdir(parents=True, exist_ok=True)
            writes.append(pred.to_csv(str(csv_out / "part-*.csv"), index=False, compute=False))
        dask.compute(*writes)
        self.last_notes["batches"] = pred.npartitions

    # -- db-benchmark groupby (see scalebench.stages) ------------------------------------
    def _h2o_groupby(self, df: dd.DataFrame, question: str, res: dd.DataFrame, idiom: str) -> pd.DataFrame:
        """db-benchmark's check computed by Dask over the grouped result: its row count and the
        sum of each measure, all in one graph so the groupby runs once (sums skip NaN, as q9 asks)."""
        self.last_notes = {"partitions": df.npartitions, "idiom": idiom, **_plan(res),
                           "result_partitions": res.npartitions, "shuffle_method": get_default_shuffle_method()}
        return _one_row(rows=res.shape[0], **{c: res[c].sum() for c in H2O_GROUPBY_QUESTIONS[question]})

    @_on_cluster
    def h2o_groupby_q1(self, inp: StageInput) -> pd.DataFrame:
        """sum v1 by id1: tree reduction (100 groups)."""
        df = self._table(inp)
        res = df.groupby("id1").agg(v1=("v1", "sum"))
        return self._h2o_groupby(df, "q1", res, "groupby.agg tree reduction")

    @_on_cluster
    def h2o_groupby_q2(self, inp: StageInput) -> pd.DataFrame:
        """sum v1 by id1:id2: tree reduction (10k groups)."""
        df = self._table(inp)
        res = df.groupby(["id1", "id2"]).agg(v1=("v1", "sum"))
        return self._h2o_groupby(df, "q2", res, "groupby.agg tree reduction")

    @_on_cluster
    def h2o_groupby_q3(self, inp: StageInput) -> pd.DataFrame:
        """sum v1 mean v3 by id3: N/100 groups, so split_out=True shuffles the partial aggregates
        (as groupby_id_bucket does) instead of combining them all in one task."""
        df = self._table(inp)
        res = df.groupby("id3").agg(v1=("v1", "sum"), v3=("v3", "mean"), split_out=True)
        return self._h2o_groupby(df, "q3", res, "groupby.agg split_out=True: hash shuffle of partial aggregates")

    @_on_cluster
    def h2o_groupby_q4(self, inp: StageInput) -> pd.DataFrame:
        """mean v1:v3 by id4: tree reduction (100 groups)."""
        df = self._table(inp)
        res = df.groupby("id4").agg(v1=("v1", "mean"), v2=("v2", "mean"), v3=("v3", "mean"))
        return self._h2o_groupby(df, "q4", res, "groupby.agg tree reduction")

    @_on_cluster
    def h2o_groupby_q5(self, inp: StageInput) -> pd.DataFrame:
        """sum v1:v3 by id6: N/100 groups, split_out=True."""
        df = self._table(inp)
        res = df.groupby("id6").agg(v1=("v1", "sum"), v2=("v2", "sum"), v3=("v3", "sum"), split_out=True)
        return self._h2o_groupby(df, "q5", res, "groupby.agg split_out=True: hash shuffle of partial aggregates")

    @_on_cluster
    def h2o_groupby_q6(self, inp: StageInput) -> pd.DataFrame:
        """median v3 sd v3 by id4 id5: a median does not decompose, so Dask shuffles the rows by
        group and takes the exact median per group (its holistic aggregation); std is ddof=1."""
        df = self._table(inp)
        res = df.groupby(["id4", "id5"]).agg(median_v3=("v3", "median"), sd_v3=("v3", "std"))
        return self._h2o_groupby(df, "q6", res, "groupby.agg with median: holistic, hash shuffle of rows")

    @_on_cluster
    def h2o_groupby_q7(self, inp: StageInput) -> pd.DataFrame:
        """max v1 - min v2 by id3: N/100 groups, split_out=True, then a column expression."""
        df = self._table(inp)
        res = df.groupby("id3").agg(v1=("v1", "max"), v2=("v2", "min"), split_out=True)
        res = res.assign(range_v1_v2=res["v1"] - res["v2"])
        return self._h2o_groupby(df, "q7", res, "groupby.agg split_out=True: hash shuffle of partial aggregates")

    @_on_cluster
    def h2o_groupby_q8(self, inp: StageInput) -> pd.DataFrame:
        """largest two v3 by id6: each partition keeps its own two largest per id6 (pre-aggregation,
        so at most two rows per group and partition move), shuffle on id6, then the two largest
        again. Vectorised pandas per partition instead of a Python call per group (groupby.apply)."""
        df = self._table(inp)
        x = df[["id6", "v3"]].dropna(subset=["v3"])
        top = x.map_partitions(_largest2, meta=x._meta).shuffle(on="id6")
        res = top.map_partitions(_largest2, meta=x._meta).rename(columns={"v3": "largest2_v3"})
        return self._h2o_groupby(df, "q8", res, "map_partitions top-2, shuffle on id6, map_partitions top-2")

    @_on_cluster
    def h2o_groupby_q9(self, inp: StageInput) -> pd.DataFrame:
        """corr(v1, v2)**2 by id2 id4 from co-moment sums in one groupby.agg tree reduction (what
        Dask's groupby.corr computes inside; corr itself fails on a one-partition frame in dask
        2026.8: "Expected iterable of tuples of (name, dtype)"). v1 and v2 are integers, so the
        sums are exact; a group with constant v1 or v2 or one row has no r2 (NaN, skipped)."""
        df = self._table(inp)
        x = df[["id2", "id4", "v1", "v2"]].astype({"v1": "float64", "v2": "float64"})
        x = x.assign(v11=x["v1"] * x["v1"], v22=x["v2"] * x["v2"], v12=x["v1"] * x["v2"])
        m = x.groupby(["id2", "id4"]).agg(n=("v1", "count"), s1=("v1", "sum"), s2=("v2", "sum"),
                                          s11=("v11", "sum"), s22=("v22", "sum"), s12=("v12", "sum"))
        cov = m["n"] * m["s12"] - m["s1"] * m["s2"]
        var = (m["n"] * m["s11"] - m["s1"] ** 2) * (m["n"] * m["s22"] - m["s2"] ** 2)
        res = (cov * cov / var).where(var > 0).to_frame("r2")
        return self._h2o_groupby(df, "q9", res, "groupby.agg of co-moment sums (tree reduction), r2 per group")

    @_on_cluster
    def h2o_groupby_q10(self, inp: StageInput) -> pd.DataFrame:
        """sum v3 count by id1:id6: about one group per row, so the partial aggregates do not
        shrink and split_out=True spreads them over every partition."""
        df = self._table(inp)
        keys = ["id1", "id2", "id3", "id4", "id5", "id6"]
        res = df.groupby(keys).agg(v3=("v3", "sum"), count=("v3", "size"), split_out=True)
        return self._h2o_groupby(df, "q10", res, "groupby.agg split_out=True: hash shuffle of partial aggregates")

    # -- db-benchmark join -----------------------------------------------------------
    def _h2o_join(self, inp: StageInput, question: str) -> pd.DataFrame:
        """x.merge(right) as a user writes it: Dask picks the strategy from the partition counts (a
        right table in one partition joins every x partition blockwise: a broadcast; else a hash
        join by P2P shuffle), recorded in the notes."""
        table, key, how = H2O_JOIN_QUESTIONS[question]
        x, right = self._table(inp), self._table(inp.extra[table])
        joined = x.merge(right, on=key, how=how)
        answer = _one_row(rows=joined.shape[0], sum_v1=joined["v1"].sum(), sum_v2=joined["v2"].sum())
        self.last_notes = {"partitions": {"x": x.npartitions, table: right.npartitions}, **_plan(joined),
                           "shuffle_method": get_default_shuffle_method()}
        return answer

    @_on_cluster
    def h2o_join_q1(self, inp: StageInput) -> pd.DataFrame:
        return self._h2o_join(inp, "q1")

    @_on_cluster
    def h2o_join_q2(self, inp: StageInput) -> pd.DataFrame:
        return self._h2o_join(inp, "q2")

    @_on_cluster
    def h2o_join_q3(self, inp: StageInput) -> pd.DataFrame:
        return self._h2o_join(inp, "q3")

    @_on_cluster
    def h2o_join_q4(self, inp: StageInput) -> pd.DataFrame:
        return self._h2o_join(inp, "q4")

    @_on_cluster
    def h2o_join_q5(self, inp: StageInput) -> pd.DataFrame:
        return self._h2o_join(inp, "q5")

    # -- joins on users --------------------------------------------------------------
    @_on_cluster
    def join_dim(self, inp: StageInput) -> pd.DataFrame:
        """merge(broadcast=True): the 30-row dimension goes to every users partition, which never
        moves; then a tree reduction per region."""
        users = self._users(inp)[["name", "salary"]]
        dim = self._table(inp.extra["names_dim"])
        joined = users.merge(dim, on="name", how="inner", broadcast=True)
        res = joined.groupby("region").agg(count=("salary", "size"), sum_salary=("salary", "sum"),
                                           sum_weight=("weight", "sum"))
        out = res.compute().reset_index()
        self.last_notes = {"partitions": {"users": users.npartitions, "names_dim": dim.npartitions},
                           **_plan(joined), "idiom": "merge(broadcast=True)"}
        return out

    @_on_cluster
    def join_large(self, inp: StageInput) -> pd.DataFrame:
        """A shuffle join of two tables of similar size: both sides hash-partitioned on id into
        max(partitions, threads) partitions (P2P shuffles), merged partition by partition
        (_shuffle_join), then a tree reduction per is_active."""
        users = self._users(inp)[["id", "salary", "is_active"]]
        accounts = self._table(inp.extra["accounts"])
        n = max(users.npartitions, accounts.npartitions, self._threads())
        joined = _shuffle_join(users, accounts, "id", n)
        res = joined.groupby("is_active").agg(count=("id", "size"), sum_balance=("balance", "sum"),
                                              sum_salary=("salary", "sum"))
        out = res.compute().reset_index()
        self.last_notes = {"partitions": {"users": users.npartitions, "accounts": accounts.npartitions},
                           **_plan(joined), "shuffle_method": get_default_shuffle_method()}
        return out

    # -- skew ------------------------------------------------------------------------
    @_on_cluster
    def skew_groupby(self, inp: StageInput, remedy: str = "plain") -> pd.DataFrame:
        """Per key count and sum(v). plain: groupby.agg with split_out=True (rows/100 keys, as in
        groupby_id_bucket): each partition pre-aggregates before the shuffle, so the hot key moves
        as one row per partition. salted: the same two-phase, on (key, salt) and then on key.
        Dask has no other groupby skew remedy (its map-side combine is what salting imitates)."""
        if remedy == "by_key":
            # every row of a key in one bucket file: one partition per file, aggregated in place
            buckets = [str(f) for f in inp.require_partitioned("key", "dask")]
            keys = dd.from_map(_read_key_v, buckets, enforce_metadata=False)
            res = keys.map_partitions(_sums_by_key, meta=_sums_by_key(keys._meta))
        elif remedy == "plain":
            keys = self._table(inp)[["id", "key", "v"]]
            res = keys.groupby("key").agg(n=("v", "size"), s=("v", "sum"), split_out=True)
        elif remedy == "salted":
            # no named aggregation in the first phase: Dask 2026.8 then fails the second groupby
            # with KeyError "['key' 'salt'] not in index" (RenameFrame looks for the shuffle keys,
            # which are index levels here, among the columns)
            keys = self._table(inp)[["id", "key", "v"]]
            salted = keys.assign(salt=keys["id"] % SALT_BUCKETS)
            partial = salted.groupby(["key", "salt"])["v"].agg(["size", "sum"], split_out=True)
            res = partial.reset_index().groupby("key").agg(n=("size", "sum"), s=("sum", "sum"), split_out=True)
        elif remedy == "native":
            raise NotApplicable("dask: no native groupby skew remedy; every groupby.agg already combines "
                                "each partition before its shuffle (what salting imitates)")
        else:
            raise ValueError(f"unknown skew remedy {remedy!r}")
        answer = _one_row(groups=res.shape[0], rows=res["n"].sum(), sum_v=res["s"].sum(), max_count=res["n"].max())
        self.last_notes = {"remedy": remedy, "partitions": keys.npartitions, **_plan(res),
                           "result_partitions": res.npartitions,
                           "idiom": ("from_map(one bucket file per partition).map_partitions(groupby)"
                                     if remedy == "by_key" else
                                     "groupby.agg split_out=True (partial aggregates, hash shuffle)"),
                           "shuffle_method": "none" if remedy == "by_key" else get_default_shuffle_method(),
                           **({"salt_buckets": SALT_BUCKETS} if remedy == "salted" else {})}
        return answer

    @_on_cluster
    def skew_join(self, inp: StageInput, remedy: str = "plain") -> pd.DataFrame:
        """keys ⋈ keys_dim on key, in max(partitions, threads) partitions.
        plain: a shuffle join (_shuffle_join: both sides hash-partitioned on key by P2P shuffles,
        then merged partition by partition): the hot key lands in one partition.
        salted: the same on (key, salt), each dimension row replicated once per salt, so the hot
        key spreads over up to SALT_BUCKETS partitions.
        native: Dask's own remedy for a skewed key against a small table is the broadcast join
        (merge broadcast=True): the keys partitions never move, so no partition collects the hot
        key. Its shuffle methods (p2p, the default here, and tasks) both hash-partition, so
        choosing between them does not address skew."""
        keys = self._table(inp)[["id", "key", "v"]]
        dim = self._table(inp.extra["keys_dim"])
        parts = {"keys": keys.npartitions, "keys_dim": dim.npartitions}
        if remedy == "native":
            joined = keys.merge(dim, on="key", how="inner", broadcast=True)
        elif remedy in ("plain", "salted"):
            on: str | list[str] = "key"
            if remedy == "salted":
                keys = keys.assign(salt=keys["id"] % SALT_BUCKETS)
                dim = dim.map_partitions(_with_salts, meta=_with_salts(dim._meta))
                on = ["key", "salt"]
            joined = _shuffle_join(keys, dim, on, max(keys.npartitions, dim.npartitions, self._threads()))
        else:
            raise ValueError(f"unknown skew remedy {remedy!r}")
        answer = _one_row(rows=joined.shape[0], sum_v=joined["v"].sum(), sum_w=joined["w"].sum())
        self.last_notes = {"remedy": remedy, "partitions": parts, **_plan(joined),
                           "result_partitions": joined.npartitions, "shuffle_method": get_default_shuffle_method(),
                           **({"salt_buckets": SALT_BUCKETS} if remedy == "salted" else {})}
        return answer


def _pandas_dtype(t: pa.DataType) -> str:
    """read_csv dtype of an Arrow type: strings as pandas' str, numbers and bools by name."""
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "str"
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t):
        return np.dtype(t.to_pandas_dtype()).name
    raise ValueError(f"no CSV dtype for Arrow type {t}")


def _one_row(**scalars: Any) -> pd.DataFrame:
    """Dask scalars computed together (one graph: what they share runs once), as one row."""
    values = dask.compute(*scalars.values())
    return pd.DataFrame([dict(zip(scalars, values, strict=True))])


def _plan(frame: dd.DataFrame) -> dict[str, Any]:
    """What Dask will run for a frame (its optimised, unfused expression): the partitions of each
    read, after Dask fused narrow Parquet reads (FusedIO), and its join and shuffle steps."""
    exprs = list(frame.optimize(fuse=False).expr.walk())
    names = {type(e).__name__ for e in exprs}
    reads = [e.npartitions for e in exprs if type(e).__name__.startswith(("Read", "FromMap"))  # read_parquet, read_csv
             or type(e).__name__.endswith("IO")]
    steps = sorted(n for n in names if any(w in n for w in ("Join", "Merge", "Shuffle", "Broadcast")))
    return {"read_partitions": reads, "steps": ", ".join(steps) or "none"}


def _largest2(part: pd.DataFrame) -> pd.DataFrame:
    """The two largest v3 of each id6 in one partition (vectorised: sort, then head per group)."""
    return part.sort_values("v3", ascending=False).groupby("id6", sort=False).head(2)


def _read_key_v(path: str) -> pd.DataFrame:
    return pd.read_parquet(path, columns=["key", "v"])


def _sums_by_key(df: pd.DataFrame) -> pd.DataFrame:
    """Count and sum of v per key of one partition, the key as a column."""
    g = df.groupby("key", sort=False)["v"]
    return pd.DataFrame({"n": g.size(), "s": g.sum()}).reset_index()


def _with_salts(dim: pd.DataFrame) -> pd.DataFrame:
    """Each dimension row once per salt 0..SALT_BUCKETS-1 (the salted join's replication)."""
    return dim.merge(pd.DataFrame({"salt": np.arange(SALT_BUCKETS, dtype="int64")}), how="cross")


def _shuffle_join(left: dd.DataFrame, right: dd.DataFrame, on: str | list[str], npartitions: int) -> dd.DataFrame:
    """Inner join by hash partitioning: shuffle both sides on the key into `npartitions`, then
    merge the co-partitioned frames partition by partition. Written out because merge(broadcast=
    False) alone still joins blockwise, with no shuffle, when a side is one partition, and Dask
    fuses a narrow read of two Parquet files into one partition."""
    return left.shuffle(on=on, npartitions=npartitions).merge(
        right.shuffle(on=on, npartitions=npartitions), on=on, how="inner", broadcast=False)



def _logreg_block(part: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One partition as the arrays every L-BFGS evaluation reuses (codes computed once)."""
    return (part["x"].to_numpy(np.float64), part["y"].to_numpy(np.float64), ml.category_codes(part["category"]))


def _block_partial(block: tuple[np.ndarray, np.ndarray, np.ndarray], w: np.ndarray) -> ml.Partial:
    return ml.partial_loss_grad(*block, w)


class _SequentialJoblib:
    """fn(task) with joblib's sequential backend active, so that a nested Parallel (scikit-learn's
    forest fit) runs in the task instead of inheriting the dask backend."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn

    def __call__(self, task: Any) -> Any:
        import joblib

        with joblib.parallel_config(backend="sequential"):
            return self.fn(task)


def _predict_partition(part: pd.DataFrame, fitted: tuple[Any, Any]) -> pd.DataFrame:
    model, scaler = fitted
    res = ml.predict_frame(part, model, scaler)
    return res.astype({"id": "int64", "name": "str", "prediction": "float64"})


def _string_schema(df: dd.DataFrame) -> dict[str, pa.DataType]:
    """Write the documented Parquet string type, not the large_string that pandas' str maps to
    (Dask rejects a schema entry for a column the frame lacks, hence the filter)."""
    return {c: pa.string() for c in STRING_COLUMNS if c in df.columns}


def _worker_pids(cluster: distributed.LocalCluster) -> set[int]:
    """Current worker processes of a local cluster, read from its nannies."""
    pids: set[int] = set()
    for nanny in list(cluster.workers.values()):
        with contextlib.suppress(Exception):
            pid = nanny.process.process.pid
            if pid:
                pids.add(pid)
    return pids


def _proc(pid: int) -> psutil.Process | None:
    try:
        proc = psutil.Process(pid)
        return proc if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE else None
    except psutil.Error:
        return None


ENGINE = DaskEngine
