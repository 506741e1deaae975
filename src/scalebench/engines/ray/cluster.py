"""Ray engine, the cluster lifecycle: a local Ray cluster (or an existing one) for Ray Data.

Why the start-up looks the way it does (measured with Ray 2.60 on Linux):

* ``ray.init(_node_ip_address="127.0.0.1")`` is silently replaced by the machine's
  routable address (``services.resolve_ip_for_localhost``), and then the GCS,
  the raylet (node manager and object manager), every core worker (including the
  driver's) listen on ``::`` (all interfaces) and the runtime-env agent on the
  routable address. Ray keeps the loopback address only when
  ``ray_constants.ENABLE_RAY_CLUSTER`` is false (env
  ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, meant for single-node Windows/macOS);
  the C++ gRPC servers then bind ``127.0.0.1`` (seen as ``::ffff:127.0.0.1``)
  and the agents ``127.0.0.1``. We set both the already-imported constant (for
  this driver, patches.set_cluster_flag) and the environment variable (for every
  process Ray spawns).
* Since Ray 2.59 token authentication is on by default for a new local cluster, with
  the token written to ``~/.ray/auth_token``. We set ``RAY_AUTH_MODE=token``
  explicitly with a fresh per-cluster token in a 0600 file inside the cluster's
  private temp dir (``RAY_AUTH_TOKEN_PATH``), so nothing is written to the home
  directory and a client without that token is refused.
* Usage statistics are switched off (``RAY_USAGE_STATS_ENABLED=0``).

Cluster shape: Ray schedules tasks on CPU slots, not on "workers with threads";
``num_cpus = workers * threads_per_worker`` gives as many concurrent task
processes as the spec has cores.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import secrets
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar

import psutil
import ray
import ray._private.ray_constants as ray_constants
import ray.data

from scalebench.engines.base import ClusterSpec, ClusterUnreachable, Engine, EngineUnavailable, ctrl_c_deferred
from scalebench.engines.ray import patches
from scalebench.measure.procs import LOOPBACK_IP, descendants, is_loopback_host, terminate_all

MiB = 1024**2
OBJECT_STORE_FRACTION = 0.4
"""Share of the memory budget given to the object store; the rest is left to worker heaps."""
ROWS_PER_SHUFFLE_PARTITION = 1_000_000
"""Target rows per hash/sort partition: bounded memory per reduce task at any size."""
_MARKER_ENV = "SCALEBENCH_RAY_SESSION"
"""Inherited by every process of a cluster we start, so stop() can find stragglers."""


def _is_ray_process(p: psutil.Process) -> bool:
    """Whether a descendant belongs to Ray (not, say, a memory sampler the caller started): its
    daemons by name, a worker running a task renames itself ``ray::<task>``, Ray's scripts live in
    its package. Only the program and its first arguments count: Ray puts
    site-packages/ray/thirdparty_files on sys.path, and a multiprocessing forkserver started after
    that carries sys.path in its arguments, yet is not Ray's to stop."""
    with contextlib.suppress(psutil.Error):
        name = p.name()
        if name in ("gcs_server", "raylet") or name.startswith("ray::"):
            return True
        return any("site-packages/ray/" in part for part in p.cmdline()[:3])
    return False


class _NoCpuWarning(logging.Filter):
    """Drops Ray Data's "cluster currently does not have any available CPUs ... will hang".

    Every execution first reads ray.available_resources(), a view the raylet refreshes
    asynchronously: right after a wave of tasks (logreg's evaluations, limit()'s cancelled
    reads) it still counts their CPUs and the warning fires although nothing holds them.
    On a cluster we start nothing can hold CPUs for long (grid_map's pool actors take 0 CPUs),
    so the warning is dropped there; a connected cluster keeps it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "does not have any available CPUs" not in record.getMessage()


_NO_CPU_WARNING = _NoCpuWarning()


def object_store_bytes(spec: ClusterSpec) -> int:
    """The object store's share of the memory budget (at least Ray's minimum)."""
    return max(ray_constants.OBJECT_STORE_MINIMUM_MEMORY_BYTES,
               int(spec.memory_budget_bytes * OBJECT_STORE_FRACTION))


class RayCluster(Engine):
    """Ray 2.x: local single-node cluster on loopback with token auth, queries in Ray Data."""

    name: ClassVar[str] = "ray"

    IDIOMS: ClassVar[dict[str, str]] = {}
    """Per query, the Ray idiom it uses (filled by the composed engine, for describe())."""

    WORKER_POOL_PER_CORE: ClassVar[int] = 2
    """Idle worker processes kept per CPU (RayConfig num_workers_soft_limit; Ray: 1 per CPU).

    Ray Data's shuffle-map tasks run with their own runtime_env, hence in a second
    pool of worker processes, and the raylet kills idle workers of one pool to make
    room for the other. 1M rows, 2 cores, warm rounds: with 1 per core, re-spawns
    came and went (etl_users 1.1 s then 4.4 s, groupby_points 0.24 s then 0.79 s);
    with 2 per core the rounds were steady (0.9-1.1 s, 0.22-0.27 s).
    """

    PARQUET_DATASOURCE_V2: ClassVar[bool] = False
    """DataContext.use_datasource_v2 (Ray's default: True).

    The V2 Parquet reader lists files through a pool of footer-reading actors that
    it creates and kills on every execution; on a local disk that costs ~0.8 s per
    query (1M-row groupby 1.2 s with V2, 0.4 s with V1 on 2 cores).
    """

    BLOCKS_PER_CORE: ClassVar[int] = 2
    """DataContext.read_op_min_num_blocks = BLOCKS_PER_CORE * cores (Ray's default: 200)."""

    SHUFFLE_INPUT_BATCH_BYTES: ClassVar[int] = 64 * MiB
    """DataContext.shuffle_input_batch_bytes (Ray's default: 1 GiB). 10M users, 2 cores:
    sort_global 10.8 -> 8.1 s, etl_users 6.7 -> 5.3 s (best of 3)."""

    def __init__(self, spec: ClusterSpec) -> None:
        super().__init__(spec)
        self._started = False
        self._owns_cluster = False
        self._tmp: Path | None = None
        self._marker: str | None = None
        self._saved_env: dict[str, str | None] = {}
        self._saved_cluster_flag: bool | None = None
        self._address: str | None = None
        self._dashboard_url: str | None = None
        self._pids_cache: list[int] = []
        self._pids_at = float("-inf")
        self.init_seconds: float | None = None
        self.shutdown_seconds: float | None = None

    def version(self) -> str:
        return ray.__version__

    def start(self) -> None:
        """Start a loopback-only local cluster with token auth, or connect to spec.address."""
        if self._started:
            return
        if ray.is_initialized():
            raise RuntimeError("ray is already initialised in this process; one cluster per process")
        t0 = time.perf_counter()
        try:
            if self.spec.address:
                self._connect(self.spec.address)
            else:
                self._start_local()
        except BaseException:
            self.stop()
            raise
        self.init_seconds = time.perf_counter() - t0
        self._configure_data()
        self._started = True

    def _set_env(self, name: str, value: str | None) -> None:
        if name not in self._saved_env:
            self._saved_env[name] = os.environ.get(name)
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value

    def _loopback_only(self) -> None:
        """Keep 127.0.0.1 as the node address (see module docstring) in this process and children."""
        self._set_env("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        if self._saved_cluster_flag is None:
            self._saved_cluster_flag = patches.cluster_flag()
        patches.set_cluster_flag(False)

    def _connect(self, address: str) -> None:
        if address not in ("auto", "local"):  # else ray.init retries an absent GCS for minutes
            ClusterUnreachable.probe("--ray-address", address,
                                     default_port=10001 if address.startswith("ray://") else 6379)
        host = address.split("://")[-1].rsplit(":", 1)[0].strip("[]")
        if is_loopback_host(host):
            self._loopback_only()  # otherwise Ray rewrites 127.0.0.1 to the routable address
        self._set_env("RAY_USAGE_STATS_ENABLED", "0")
        try:
            ctx = ray.init(address=address, log_to_driver=False, configure_logging=True,
                           logging_level=logging.WARNING)
        except ConnectionError as exc:  # something listens there, but not a Ray GCS
            raise ClusterUnreachable(f"--ray-address {address}: {exc}") from exc
        self._address = address
        self._dashboard_url = getattr(ctx, "dashboard_url", None) or None

    def _write_token(self) -> Path:
        """A fresh per-cluster token in a 0600 file of the cluster's private temp dir."""
        assert self._tmp is not None
        token_path = self._tmp / "auth_token"
        fd = os.open(token_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
        return token_path

    def _start_local(self) -> None:
        spec = self.spec
        if spec.dashboards:
            from ray._private.utils import get_dashboard_dependency_error

            missing = get_dashboard_dependency_error()
            if missing is not None:
                raise EngineUnavailable(f"ray: dashboards asked for, but the dashboard needs ray[default] "
                                        f"({missing})")
        # a short private root: Ray's unix socket paths must stay under ~107 characters
        self._tmp = Path(tempfile.mkdtemp(prefix="sbray-", dir="/tmp"))
        self._marker = str(self._tmp)
        if spec.spill_dir is not None:
            spill = Path(spec.spill_dir) / f"ray-spill-{self._tmp.name}"
        else:
            spill = self._tmp / "spill"
        spill.mkdir(parents=True, exist_ok=True)
        token_path = self._write_token()

        self._loopback_only()
        self._set_env(_MARKER_ENV, self._marker)
        self._set_env("RAY_USAGE_STATS_ENABLED", "0")
        self._set_env("RAY_AUTH_MODE", "token")
        self._set_env("RAY_AUTH_TOKEN", None)  # would take precedence over our file
        self._set_env("RAY_AUTH_TOKEN_PATH", str(token_path))
        # Should the V2 Parquet reader be switched on (PARQUET_DATASOURCE_V2): it starts
        # 32 footer-reading actors (worker processes) per execution, sized for cloud
        # object stores; one per two cores is plenty on local disk.
        self._set_env("RAY_DATA_PARQUET_FOOTER_NUM_ACTORS", str(max(1, spec.cores // 2)))
        # RayConfig and the token loader cache what they saw at import time
        patches.reset_auth_caches()

        object_store = object_store_bytes(spec)
        heap = max(spec.memory_budget_bytes - object_store, 256 * MiB)
        with ctrl_c_deferred():
            ctx = ray.init(
                address="local",  # never attach to RAY_ADDRESS or a cluster found on disk
                num_cpus=spec.cores, num_gpus=0, object_store_memory=object_store, _memory=heap,
                include_dashboard=spec.dashboards, dashboard_host=LOOPBACK_IP,
                log_to_driver=False, configure_logging=True, logging_level=logging.WARNING,
                _node_ip_address=LOOPBACK_IP, _temp_dir=str(self._tmp),
                object_spilling_directory=str(spill), _system_config=self._system_config(),
            )
        self._owns_cluster = True
        self._address = ctx.address_info.get("gcs_address")
        self._dashboard_url = getattr(ctx, "dashboard_url", None) or None

    def _system_config(self) -> dict[str, Any]:
        return {"num_workers_soft_limit": self.WORKER_POOL_PER_CORE * self.spec.cores}

    def _configure_data(self) -> None:
        """Quiet Ray Data: no progress bars, no per-execution banners, no stats dumps."""
        dctx = ray.data.DataContext.get_current()
        dctx.enable_progress_bars = False
        dctx.enable_operator_progress_bars = False
        dctx.print_on_execution_start = False
        dctx.enable_auto_log_stats = False
        dctx.verbose_stats_logs = False
        dctx.use_datasource_v2 = self.PARQUET_DATASOURCE_V2
        # Ray splits every read into >= 200 blocks (sized for big clusters): on 2 cores a
        # 1M-row read became 36 blocks and 36 map tasks, ~1 s of pure scheduling.
        # Blocks stay capped by target_max_block_size (128 MiB) at any data size.
        dctx.read_op_min_num_blocks = self.BLOCKS_PER_CORE * self.spec.cores
        # SHUFFLE_V2 map tasks coalesce input per node up to this size (default 1 GiB): on
        # one node a 10M-row shuffle became a single map task on one core.
        dctx.shuffle_input_batch_bytes = self.SHUFFLE_INPUT_BATCH_BYTES
        # Ray Data's own console handler prints an INFO line per execution and per write;
        # its file log (ray-data.log in the session dir) keeps everything
        for handler in logging.getLogger("ray.data").handlers:
            if handler.name == "console":
                handler.setLevel(logging.WARNING)
        # turning the bars off logs a WARNING about it once per process
        logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)
        if self._owns_cluster:
            logging.getLogger("ray.data.dataset").addFilter(_NO_CPU_WARNING)

    def stop(self) -> None:
        """Shut Ray down, then kill anything of ours still alive and prove none is left."""
        t0 = time.perf_counter()
        was_running = self._started or self._owns_cluster
        # A Ray Data executor collected after shutdown calls ray.init() from __del__ (auto-init):
        # at interpreter exit after Ctrl-C that start hung forever, and at any time it would start
        # a cluster nobody tracks. Collect executors while Ray is up, then switch auto-init off.
        gc.collect()
        patches.disable_auto_connect()
        with contextlib.suppress(Exception):
            if ray.is_initialized():
                ray.shutdown()
        survivors: list[int] = []
        if self._owns_cluster or self._marker is not None:
            survivors = [p.pid for p in terminate_all(self._our_processes())]
        logging.getLogger("ray.data.dataset").removeFilter(_NO_CPU_WARNING)
        self._restore_env()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            if self.spec.spill_dir is not None:
                shutil.rmtree(Path(self.spec.spill_dir) / f"ray-spill-{self._tmp.name}", ignore_errors=True)
        self._tmp = None
        self._marker = None
        self._owns_cluster = False
        self._started = False
        if was_running:
            self.shutdown_seconds = time.perf_counter() - t0
        if survivors:
            raise RuntimeError(f"ray processes survived stop() and SIGKILL: {survivors}")

    def alive(self) -> bool:
        """Ray is initialised here and its node is up. A local cluster: its GCS and raylet
        processes are running (no RPC: a driver whose GCS is gone exits by itself after 60 s,
        so the pool must notice and stop it first). A connected one: a node reports Alive."""
        if not self._started or not ray.is_initialized():
            return False
        try:
            if self._owns_cluster:
                names = set()
                for p in descendants():
                    with contextlib.suppress(psutil.Error):
                        names.add(p.name())
                return {"gcs_server", "raylet"} <= names
            return any(node.get("Alive") for node in ray.nodes())
        except Exception:
            return False

    def _restore_env(self) -> None:
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env.clear()
        if self._saved_cluster_flag is not None:
            patches.set_cluster_flag(self._saved_cluster_flag)
            self._saved_cluster_flag = None
        if self._tmp is not None:
            # let RayConfig and the token cache forget our per-cluster token mode
            with contextlib.suppress(Exception):
                patches.reset_auth_caches()

    def _our_processes(self) -> list[psutil.Process]:
        """Our descendants that are Ray's (_is_ray_process) plus any process carrying our session marker."""
        me = os.getpid()
        found = {p.pid: p for p in descendants() if _is_ray_process(p)}
        if self._marker is not None:
            for p in psutil.process_iter():
                if p.pid == me or p.pid in found:
                    continue
                with contextlib.suppress(psutil.Error):
                    if p.environ().get(_MARKER_ENV) == self._marker:
                        found[p.pid] = p
        return list(found.values())

    def pids(self) -> list[int]:
        """For the memory sampler (called every few ms, so cheap): a local cluster's processes
        are all our descendants, so nothing; a connected cluster: its GCS, raylets and their
        children that run on this machine (loopback, or test hosts that are network namespaces
        of it), found by the GCS address on their command lines."""
        if self._owns_cluster or not self._address or not self._started:
            return []
        now = time.monotonic()
        if now - self._pids_at < 2.0:
            return self._pids_cache
        host, _, port = self._address.rpartition(":")
        host = host.strip("[]")
        local = is_loopback_host(host)
        roots: list[psutil.Process] = []
        for p in psutil.process_iter(["cmdline"]):
            cmd = " ".join(p.info["cmdline"] or ())
            gcs = f"--gcs_server_port={port}" in cmd and (local or f"={host}" in cmd)  # the GCS itself
            if f"--gcs-address={self._address}" in cmd or gcs:
                roots.append(p)
        pids = {p.pid for p in roots}
        for p in roots:
            with contextlib.suppress(psutil.Error):
                pids.update(c.pid for c in p.children(recursive=True))
        pids.discard(os.getpid())
        self._pids_cache, self._pids_at = sorted(pids), now
        return self._pids_cache

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update({
            "idiom": "ray-data",
            "idioms": dict(self.IDIOMS),
            "address": self._address or self.spec.address,
            "mode": "connect" if self.spec.address else "local",
            "num_cpus": self.spec.cores,
            "object_store_memory_bytes": object_store_bytes(self.spec),
            "listen": f"{LOOPBACK_IP} only (ENABLE_RAY_CLUSTER=false)" if not self.spec.address else "n/a (connect)",
            "auth": "token (per-cluster, RAY_AUTH_TOKEN_PATH)" if not self.spec.address else
                    os.environ.get("RAY_AUTH_MODE", "cluster default"),
            "csv_reader": "ray.data.read_csv, explicit column_types: one read task per file "
                          "(a single CSV is not split; Arrow parses it with its own threads)",
            "tuning": {
                "system_config": self._system_config() if not self.spec.address else {},
                "use_datasource_v2": self.PARQUET_DATASOURCE_V2,
                "read_op_min_num_blocks": self.BLOCKS_PER_CORE * self.spec.cores,
                "shuffle_input_batch_bytes": self.SHUFFLE_INPUT_BATCH_BYTES,
                "shuffle_strategy": str(ray.data.DataContext.get_current().shuffle_strategy.value),
                "shuffle_partitions": f"max(cores, rows / {ROWS_PER_SHUFFLE_PARTITION:_}); "
                                      "sort: one range partition per input block",
            },
            "init_seconds": self.init_seconds,
            "shutdown_seconds": self.shutdown_seconds,
            "dashboard_url": self._dashboard_url,
        })
        return d
