"""The Dask engine's cluster lifecycle: a loopback-only LocalCluster of worker processes, or a
connection to an existing scheduler; its checks (idle memory, live workers, loopback), the
processes it owns, and the wrapper every query runs in."""

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

import dask
import distributed
import psutil

from scalebench import ml as sbml
from scalebench.engines.base import ClusterSpec, ClusterUnreachable, Engine, EngineUnavailable, StageInput
from scalebench.engines.dask.patches import stop_resource_tracker
from scalebench.engines.errors import query_errors
from scalebench.measure.procs import (
    LOOPBACK_IP,
    descendants,
    is_loopback,
    listeners,
    machine_identity,
    pid_and_machine,
    terminate_all,
)

CSV_BLOCKSIZE_MAX = 64 * 2**20
"""Most bytes of CSV per partition (~1.4M users rows): small next to a worker's memory budget."""
CSV_BLOCKSIZE_MIN = 8 * 2**20
"""Fewest bytes per partition, so tiny files do not turn into many tiny tasks."""
NO_WORKERS_TIMEOUT = "60s"
"""Tasks fail instead of waiting forever when a local cluster has lost every worker."""
CONNECT_TIMEOUT = "10s"
"""start(): how long a given --dask-scheduler may take to answer (Dask's default is 30 s)."""
ALIVE_TIMEOUT_S = 10
"""alive(): how long the scheduler may take to answer, or to regain a worker."""
IDLE_MEMORY_SHARE = 0.5
"""start() refuses a budget where an idle worker already uses more than this share."""


P = ParamSpec("P")
R = TypeVar("R")


def _translate(engine: Any, method: str, inp: Any, exc: BaseException) -> BaseException | None:
    """Bad input (ValueError, TypeError) names the file Dask was reading; a ModelError names the
    model file already. A task that found no worker to run on for NO_WORKERS_TIMEOUT (NoWorkerError),
    or not the one worker holding its P2P shuffle shard (NoValidWorkerError), is the memory limit at
    work on a local cluster: the workers were paused at their pause threshold or killed past it (the
    1 GiB ladder, 2 x 512 MiB workers, from 1M rows). The cell is out of memory, not a failure."""
    if isinstance(exc, sbml.ModelError):
        return None
    if isinstance(exc, distributed.scheduler.NoWorkerError | distributed.scheduler.NoValidWorkerError):
        return MemoryError(f"dask: a task waited {NO_WORKERS_TIMEOUT} for a worker to run on: the workers were "
                           f"paused at their memory limit or killed past it ({type(exc).__name__})")
    if isinstance(exc, ValueError | TypeError) and isinstance(inp, StageInput) and str(inp.path) not in str(exc):
        return ValueError(f"{inp.path}: {exc}")
    return None


def on_cluster(method: Callable[Concatenate[DaskCluster, P], R]) -> Callable[Concatenate[DaskCluster, P], R]:
    """Run a query with this engine's client as the current one, so that two engines in one
    process never compute on each other's cluster (the client is not made the global default),
    and name the input file in errors caused by bad input (engines.errors.query_errors)."""
    translated = query_errors(_translate)(method)

    @functools.wraps(method)
    def run(self: DaskCluster, *args: P.args, **kwargs: P.kwargs) -> R:
        if self._client is None:
            raise RuntimeError("DaskEngine.start() was not called")
        self._check_workers()
        with self._client.as_current():
            return translated(self, *args, **kwargs)

    return run


class DaskCluster(Engine):
    """dask.dataframe on a LocalCluster (worker processes) or on an existing scheduler."""

    name = "dask"

    def __init__(self, spec: ClusterSpec) -> None:
        super().__init__(spec)
        self._cluster: distributed.LocalCluster | None = None
        self._client: distributed.Client | None = None
        self._private_dir: Path | None = None
        self._started_pids: set[int] = set()

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
        before = {p.pid for p in descendants()}
        try:
            with dask.config.set({"distributed.scheduler.no-workers-timeout": NO_WORKERS_TIMEOUT}):
                self._cluster = distributed.LocalCluster(
                    n_workers=self.spec.workers,
                    threads_per_worker=self.spec.threads_per_worker,
                    processes=True,
                    host=LOOPBACK_IP,
                    memory_limit=self.spec.memory_per_worker_bytes,
                    local_directory=str(spill),  # workers' spill and P2P shuffle files
                    # None turns the Bokeh dashboard off; the scheduler still serves
                    # /health on an HTTP port, which we keep on a random loopback port
                    # instead of its default 8787 so parallel clusters do not collide.
                    dashboard_address=f"{LOOPBACK_IP}:0" if self.spec.dashboards else None,
                    scheduler_kwargs={"local_directory": str(spill),
                                      **({} if self.spec.dashboards else {"dashboard_address": f"{LOOPBACK_IP}:0"})},
                    worker_dashboard_address=None,
                )
            self._client = distributed.Client(self._cluster, set_as_default=False)
            self._client.wait_for_workers(self.spec.workers)
        except Exception as exc:
            self._started_pids = {p.pid for p in descendants()} - before
            self.stop()
            raise EngineUnavailable(f"dask LocalCluster did not start: {exc}") from exc
        self._started_pids = {p.pid for p in descendants()} - before
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
        bad = [f"pid {x.pid} listens on {x.ip}:{x.port}" for x in listeners(procs) if not is_loopback(x.ip)]
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
        stop_resource_tracker(self._started_pids)
        terminate_all([p for p in map(_proc, self._started_pids) if p is not None])
        self._started_pids = set()
        if self._private_dir is not None:
            shutil.rmtree(self._private_dir, ignore_errors=True)
            self._private_dir = None

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
        """Scheduler, nannies and workers of a connected cluster that run on this machine (its
        loopback, or test hosts that are network namespaces of it), for the memory sampler;
        processes on other machines cannot be sampled from here. A local cluster's processes
        are our children already."""
        if self._client is None or self._cluster is not None:
            return []
        here = machine_identity()
        found = []
        with contextlib.suppress(Exception):
            found.append(self._client.run_on_scheduler(pid_and_machine))
        with contextlib.suppress(Exception):
            found += self._client.run(pid_and_machine).values()
        with contextlib.suppress(Exception):  # workers started without a nanny
            found += self._client.run(pid_and_machine, nanny=True).values()
        pids = {pid for pid, machine in found if tuple(machine) == here}
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

    def _threads(self) -> int:
        """Threads of the cluster (the spec's cores while it reports none)."""
        assert self._client is not None
        return sum(self._client.nthreads().values()) or self.spec.cores


def _worker_pids(cluster: distributed.LocalCluster) -> set[int]:
    """Current worker processes of a local cluster, read from its nannies (Nanny.pid: None while
    a worker process is not alive)."""
    pids: set[int] = set()
    for nanny in list(cluster.workers.values()):
        with contextlib.suppress(Exception):
            pid = nanny.pid
            if pid:
                pids.add(pid)
    return pids


def _proc(pid: int) -> psutil.Process | None:
    try:
        proc = psutil.Process(pid)
        return proc if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE else None
    except psutil.Error:
        return None
