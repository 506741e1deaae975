"""Ray engine: a local Ray cluster (or an existing one) and every stage in Ray Data.

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
  this driver) and the environment variable (for every process Ray spawns).
* Ray 2.60 turns token authentication on by default for a new local cluster and
  writes the token to ``~/.ray/auth_token``. We set ``RAY_AUTH_MODE=token``
  explicitly with a fresh per-cluster token in a 0600 file inside the cluster's
  private temp dir (``RAY_AUTH_TOKEN_PATH``), so nothing is written to the home
  directory and a client without that token is refused.
* Usage statistics are switched off (``RAY_USAGE_STATS_ENABLED=0``).

Cluster shape: Ray schedules tasks on CPU slots, not on "workers with threads";
``num_cpus = workers * threads_per_worker`` gives as many concurrent task
processes as the spec has cores.

Queries use Ray Data. Ray Data has no drop-duplicates and no top-k primitive, so
duplicate ids are dropped by a hash repartition on ``id`` followed by a
per-partition ``map_batches`` (the same contract ``GroupedData.map_groups``
relies on: a key never spans two output blocks), and top-k answers are a
per-block ``map_batches`` top-k followed by a small combine on the driver.

db-benchmark, joins and skew: groupbys are ``groupby().aggregate`` (a hash shuffle) and
db-benchmark's check (row count, column sums) is a ``Dataset.aggregate`` over the grouped
result. Ray Data has no top-k per group (q8: per-block top-2, hash repartition on id6,
top-2 again) and no correlation aggregate (q9: grouped sums, then r2). Joins are
``Dataset.join`` (a hash-shuffle join; it needs ``polars``, which ray[data] does not pull in);
Ray Data has no broadcast join, so join_dim ships the small dimension to every map task
(fn_kwargs) and joins each block with pyarrow. Ray Data has no skew remedy of its own: the
skew queries run plain or salted, and 'native' is NotApplicable.

Machine learning: logreg keeps its prepared blocks in the object store and runs one
Ray task per block ref for every L-BFGS evaluation (scalebench.ml.fit_distributed on the
driver); sample_users is Ray Data's seeded random_sample + limit; grid_map uses joblib's
Ray backend (a pool of Ray actors); predict is a pandas map_batches that writes its batches.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import os
import secrets
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import psutil
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import ray
import ray._private.ray_constants as ray_constants
import ray.data
from ray._private import auto_init_hook
from ray.data.aggregate import Count, Max, Mean, Min, Quantile, Std, Sum
from ray.data.expressions import col

from scalebench import ml
from scalebench.datasets.schemas import schema_for
from scalebench.engines.base import (
    ClusterSpec,
    ClusterUnreachable,
    Engine,
    EngineUnavailable,
    NotApplicable,
    StageInput,
    ctrl_c_deferred,
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

log = logging.getLogger(__name__)

MiB = 1024**2
OBJECT_STORE_FRACTION = 0.4
"""Share of the memory budget given to the object store; the rest is left to worker heaps."""
ROWS_PER_SHUFFLE_PARTITION = 1_000_000
"""Target rows per hash/sort partition: bounded memory per reduce task at any size."""
_MARKER_ENV = "SCALEBENCH_RAY_SESSION"
"""Inherited by every process of a cluster we start, so stop() can find stragglers."""

SCHEMAS: dict[str, pa.Schema] = {
    "points": pa.schema([("id", pa.int64()), ("x", pa.float64()), ("y", pa.float64()),
                         ("category", pa.string())]),
    "users": pa.schema([("id", pa.int64()), ("name", pa.string()), ("age", pa.int32()),
                        ("salary", pa.float64()), ("signup_date", pa.timestamp("us")),
                        ("is_active", pa.bool_())]),
}
_USERS_OUT_TYPES: dict[str, pa.DataType] = {
    "id": pa.int64(), "name": pa.string(), "age": pa.int32(), "salary": pa.float64(),
    "signup_date": pa.date32(), "is_active": pa.bool_(),
}


def _schema(dataset: str) -> pa.Schema:
    """Column types of a dataset: ours above, else the generator's (db-benchmark, joins, skew)."""
    if dataset in SCHEMAS:
        return SCHEMAS[dataset]
    found = schema_for(dataset)
    if found is None:
        raise ValueError(f"ray: unknown dataset {dataset!r}")
    return found.arrow


def normalise_name(name: str) -> str:
    """Column-name rule of etl_users: strip, lower case, spaces to underscores."""
    return name.strip().lower().replace(" ", "_")


# -- batch functions (run inside Ray tasks; module-level so they pickle by reference) ----


def _clean_users(tbl: pa.Table) -> pa.Table:
    """etl_users per batch: normalised names, target types, signup_date as a date, no nulls."""
    tbl = tbl.rename_columns([normalise_name(c) for c in tbl.column_names])
    cols = []
    for name, typ in _USERS_OUT_TYPES.items():
        column = tbl[name]
        if name == "signup_date" and pa.types.is_timestamp(column.type):
            column = pc.cast(column, pa.date32())
        cols.append(pc.cast(column, typ))
    return pa.Table.from_arrays(cols, names=list(_USERS_OUT_TYPES)).drop_null()


def _first_per_id(tbl: pa.Table) -> pa.Table:
    """Keep the first row of every id in this block (ids never span blocks here)."""
    if tbl.num_rows == 0:
        return tbl
    _, first = np.unique(tbl["id"].to_numpy(), return_index=True)
    return tbl.take(pa.array(np.sort(first)))


def _top_distinct(tbl: pa.Table, k: int, sort_keys: list[tuple[str, str]]) -> pa.Table:
    """The first k rows with distinct ids in `sort_keys` order.

    select_k on a growing prefix instead of a full sort: the prefix of the total
    order that holds k distinct ids is all a later combine can need.
    """
    n = tbl.num_rows
    want = min(n, 2 * k)
    while True:
        idx = pc.select_k_unstable(tbl, k=want, sort_keys=sort_keys) if want else pa.array([], pa.uint64())
        top = tbl.take(idx)
        top = _first_per_id(top).sort_by(sort_keys)
        if top.num_rows >= k or want >= n:
            return top.slice(0, k)
        want = min(n, want * 4)


_EARNER_KEYS = [("salary", "descending"), ("id", "ascending")]
_YOUNG_KEYS = [("age", "ascending"), ("id", "ascending")]
_OLD_KEYS = [("age", "descending"), ("id", "ascending")]


def _top_earners_block(tbl: pa.Table) -> pa.Table:
    tbl = tbl.filter(pc.is_valid(tbl["salary"]))
    return _top_distinct(tbl, TOP_EARNERS, _EARNER_KEYS)


def _extremes_block(tbl: pa.Table) -> pa.Table:
    tbl = tbl.filter(pc.fill_null(tbl["is_active"], False)).drop_columns(["is_active"])
    young = _top_distinct(tbl, EXTREMES, _YOUNG_KEYS)
    old = _top_distinct(tbl, EXTREMES, _OLD_KEYS)
    return pa.concat_tables([
        young.append_column("end", pa.array(["youngest"] * young.num_rows, pa.string())),
        old.append_column("end", pa.array(["oldest"] * old.num_rows, pa.string())),
    ])


def _write_block(tbl: pa.Table, out: str) -> pa.Table:
    """sort_global's writer: one Parquet file per sorted block (see RayEngine.sort_global)."""
    if tbl.num_rows:
        name = f"part-{uuid.uuid4().hex}.parquet"
        pq.write_table(tbl, f"{out}/.{name}.tmp")
        os.replace(f"{out}/.{name}.tmp", f"{out}/{name}")
    return pa.table({"rows": pa.array([tbl.num_rows], pa.int64())})


def _logreg_block(tbl: pa.Table) -> pa.Table:
    """logreg's per-block preparation, done once: float64 x, y and ml.category_codes as int8."""
    codes = ml.category_codes(tbl["category"].to_numpy(zero_copy_only=False)).astype(np.int8)
    return pa.table({"x": pc.cast(tbl["x"], pa.float64()).combine_chunks(),
                     "y": pc.cast(tbl["y"], pa.float64()).combine_chunks(),
                     "code": pa.array(codes, pa.int8())})


@ray.remote
def _block_partial(tbl: pa.Table, w: np.ndarray) -> ml.Partial:
    """One block's ml.Partial; `tbl` is a block in the object store (zero-copy numpy views)."""
    return ml.partial_loss_grad(tbl["x"].to_numpy(), tbl["y"].to_numpy(), tbl["code"].to_numpy(), w)


@ray.remote
def _call(fn: Any, task: Any) -> Any:
    """grid_map's fallback: one Ray task per call."""
    return fn(task)


def _active_from_folder(tbl: pa.Table) -> pa.Table:
    """Hive partition values arrive as strings ('true' from Spark, 'True' from pyarrow): to bool."""
    col_ = tbl["is_active"]
    if pa.types.is_boolean(col_.type):
        return tbl
    text = pc.utf8_lower(pc.cast(col_, pa.string()))
    bad = pc.invert(pc.fill_null(pc.is_in(text, pa.array(["true", "false"])), False))
    if pc.any(bad).as_py():
        raise ValueError(f"is_active folder values {pc.unique(pc.filter(col_, bad)).to_pylist()} "
                         "are not true/false")
    return tbl.set_column(tbl.column_names.index("is_active"), "is_active", pc.equal(text, "true"))


def _predict_write(df: pd.DataFrame, model: Any, scaler: Any, out: str, csv_out: str | None) -> pd.DataFrame:
    """predict's batch: ml.predict_frame, written as one Parquet file (and one CSV file when
    asked); returns the row count."""
    pred = ml.predict_frame(df, model, scaler)
    stem = f"part-{uuid.uuid4().hex}"
    pq.write_table(pa.Table.from_pandas(pred, preserve_index=False), f"{out}/.{stem}.tmp")
    os.replace(f"{out}/.{stem}.tmp", f"{out}/{stem}.parquet")
    if csv_out is not None:
        pred.to_csv(f"{csv_out}/.{stem}.tmp", index=False)
        os.replace(f"{csv_out}/.{stem}.tmp", f"{csv_out}/{stem}.csv")
    return pd.DataFrame({"rows": [len(pred)]})


def _combine_top(cands: pd.DataFrame, k: int, by: list[str], ascending: list[bool]) -> pd.DataFrame:
    """Driver-side combine of per-block candidates (at most blocks x k rows)."""
    cands = cands.sort_values(by, ascending=ascending, kind="stable")
    return cands.drop_duplicates("id", keep="first").head(k).reset_index(drop=True)


def _largest2_v3(tbl: pa.Table) -> pa.Table:
    """h2o q8 on one block: the two largest non-null v3 of every id6 in it, vectorised.

    Run per input block first (pre-aggregation: at most two rows per id6 and block go into
    the shuffle) and again per block after the hash repartition on id6, where each id6 is
    whole in one block, which makes the result exact.
    """
    tbl = tbl.select(["id6", "v3"])
    tbl = tbl.filter(pc.is_valid(tbl["v3"]))
    if tbl.num_rows == 0:
        return tbl
    tbl = tbl.sort_by([("id6", "ascending"), ("v3", "descending")])
    ids = tbl["id6"].to_numpy()
    n = len(ids)
    starts = np.flatnonzero(np.concatenate([[True], ids[1:] != ids[:-1]]))
    rank = np.arange(n) - np.repeat(starts, np.diff(np.append(starts, n)))
    return tbl.filter(pa.array(rank < 2))


def _r2_of_sums(tbl: pa.Table) -> pa.Table:
    """h2o q9 per group: corr(v1, v2)**2 from the grouped sums (n, sx, sy, sxx, syy, sxy);
    null where it is undefined (a constant v1 or v2 in the group, or a single row)."""
    n, sx, sy, sxx, syy, sxy = (tbl[c].to_numpy().astype(np.float64) for c in ("n", "sx", "sy", "sxx", "syy", "sxy"))
    cov, vx, vy = n * sxy - sx * sy, n * sxx - sx * sx, n * syy - sy * sy
    valid = (vx > 0) & (vy > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(valid, cov * cov / (vx * vy), np.nan)
    return pa.table({"r2": pa.array(r2, pa.float64(), mask=~valid)})


def _nan_as_null(tbl: pa.Table, column: str) -> pa.Table:
    """Ray's Std gives NaN for a one-row group where SQL's stddev_samp gives null: make it null,
    so that Sum(ignore_nulls=True) skips it as the reference's sum does."""
    values = tbl[column]
    return tbl.set_column(tbl.column_names.index(column), column,
                          pc.if_else(pc.is_nan(values), pa.scalar(None, values.type), values))


def _broadcast_join(tbl: pa.Table, dim: pa.Table, key: str) -> pa.Table:
    """Map-side inner join of one block with the whole (small) dimension table."""
    return tbl.join(dim, key, join_type="inner", use_threads=False)


def _salt_copies(tbl: pa.Table) -> pa.Table:
    """The dimension side of a salted join: every row once per salt 0..SALT_BUCKETS-1."""
    return pa.concat_tables([tbl.append_column("salt", pa.array(np.full(tbl.num_rows, s, np.int64)))
                             for s in range(SALT_BUCKETS)])


def _with_salt(tbl: pa.Table) -> pa.Table:
    """`salt` = id % SALT_BUCKETS (ids are positive: id - id // n * n), spreading a hot key over
    SALT_BUCKETS groups."""
    n = pa.scalar(SALT_BUCKETS, pa.int64())
    ids = pc.cast(tbl["id"], pa.int64())
    return tbl.append_column("salt", pc.subtract(ids, pc.multiply(pc.divide(ids, n), n)))


def _with_products(tbl: pa.Table) -> pa.Table:
    """h2o q9's v1*v1, v2*v2 and v1*v2, for exact integer sums per group."""
    v1, v2 = tbl["v1"], tbl["v2"]
    return (tbl.append_column("v1v1", pc.multiply(v1, v1)).append_column("v2v2", pc.multiply(v2, v2))
            .append_column("v1v2", pc.multiply(v1, v2)))


def _with_id_bucket(tbl: pa.Table) -> pa.Table:
    """`bucket` = id // ID_BUCKET_WIDTH (ids are positive: truncation is the floor)."""
    return tbl.append_column("bucket", pc.divide(tbl["id"], pa.scalar(ID_BUCKET_WIDTH, pa.int64())))


def _bucket_sums(batch: pd.DataFrame) -> pd.DataFrame:
    """Count and sum of v per key over the bucket files named in `batch`."""
    g = pd.concat([pd.read_parquet(p, columns=["key", "v"]) for p in batch["path"]]).groupby("key", sort=False)["v"]
    return pd.DataFrame({"n": g.size(), "s": g.sum()}).reset_index()


def _summary(ds: ray.data.Dataset, *aggs: Any) -> pd.DataFrame:
    """One-row answer: Dataset.aggregate over the (grouped or joined) result, in Ray Data."""
    row = ds.aggregate(*aggs) or {}
    return pd.DataFrame([{a.name: row.get(a.name) for a in aggs}])


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


# -- the engine -----------------------------------------------------------------------


class RayEngine(Engine):
    """Ray 2.x: local single-node cluster on loopback with token auth, queries in Ray Data."""

    name: ClassVar[str] = "ray"

    IDIOMS: ClassVar[dict[str, str]] = {
        "etl_users": "ray-data: read, map_batches(clean), repartition(keys=id)+map_batches(dedupe), "
                     "write_parquet(partition_cols)",
        "etl_points": "ray-data: read, write_parquet",
        "groupby_points": "ray-data: groupby().aggregate",
        "groupby_age": "ray-data: groupby().aggregate",
        "groupby_id_bucket": "ray-data: map_batches(bucket), groupby().aggregate",
        "sort_top_earners": "ray-data: map_batches(per-block dedupe+top-k) + driver combine",
        "sort_active_extremes": "ray-data: map_batches(per-block dedupe+top-k) + driver combine",
        "sort_global": "ray-data: filter(expr), sort, map_batches(pyarrow write per sorted block)",
        "logreg": "ray-data read + map_batches(category codes) + to_arrow_refs(); Ray tasks over "
                  "the block refs per L-BFGS evaluation, partials summed on the driver",
        "sample_users": "ray-data: random_sample(fraction, seed) + limit (preserve_order)",
        "grid_map": "joblib ray backend (ray.util.joblib, pool of Ray actors); Ray tasks on one core",
        "predict": "ray-data: map_batches(pandas, model in fn_kwargs) writing one Parquet file per batch",
        **{f"h2o_groupby_q{i}": "ray-data: groupby().aggregate (hash shuffle), Dataset.aggregate for the sums"
           for i in (1, 2, 3, 4, 5, 7, 10)},
        "h2o_groupby_q6": "ray-data: groupby().aggregate(Quantile(0.5), Std(ddof=1)), Dataset.aggregate",
        "h2o_groupby_q8": "ray-data: map_batches(top-2 per block), repartition(keys=id6), map_batches(top-2)",
        "h2o_groupby_q9": "ray-data: map_batches(products), groupby().aggregate(sums), map_batches(r2)",
        **{f"h2o_join_q{i}": "ray-data: Dataset.join (hash shuffle of both sides), Dataset.aggregate"
           for i in range(1, 6)},
        "join_dim": "ray-data: map_batches(pyarrow join, dimension in fn_kwargs: broadcast), groupby().aggregate",
        "join_large": "ray-data: Dataset.join(inner, hash shuffle on id), groupby().aggregate",
        "skew_groupby": "ray-data: groupby(key).aggregate; salted: groupby(key, salt) then groupby(key)",
        "skew_join": "ray-data: Dataset.join on key (hash shuffle); salted: on (key, salt) with the dimension "
                     "copied per salt; native: not applicable (Ray Data has no skew remedy)",
    }

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

    LOGREG_BLOCK_ROWS: ClassVar[int] = 1_000_000
    """Most rows per logreg block (ml.partial_loss_grad holds ~120 bytes of temporaries a row)."""

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

    # -- lifecycle -------------------------------------------------------------------
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
            self._saved_cluster_flag = ray_constants.ENABLE_RAY_CLUSTER
        ray_constants.ENABLE_RAY_CLUSTER = False

    def _connect(self, address: str) -> None:
        if address not in ("auto", "local"):  # else ray.init retries an absent GCS for minutes
            ClusterUnreachable.probe("--ray-address", address,
                                     default_port=10001 if address.startswith("ray://") else 6379)
        host = address.split("://")[-1].rsplit(":", 1)[0].strip("[]")
        if host in ("127.0.0.1", "localhost", "::1"):
            self._loopback_only()  # otherwise Ray rewrites 127.0.0.1 to the routable address
        self._set_env("RAY_USAGE_STATS_ENABLED", "0")
        try:
            ctx = ray.init(address=address, log_to_driver=False, configure_logging=True,
                           logging_level=logging.WARNING)
        except ConnectionError as exc:  # something listens there, but not a Ray GCS
            raise ClusterUnreachable(f"--ray-address {address}: {exc}") from exc
        self._address = address
        self._dashboard_url = getattr(ctx, "dashboard_url", None) or None

    def _start_local(self) -> None:
        from ray._raylet import AuthenticationTokenLoader, Config

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
        token_path = self._tmp / "auth_token"
        fd = os.open(token_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))

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
        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()

        object_store = max(ray_constants.OBJECT_STORE_MINIMUM_MEMORY_BYTES,
                           int(spec.memory_budget_bytes * OBJECT_STORE_FRACTION))
        heap = max(spec.memory_budget_bytes - object_store, 256 * MiB)
        with ctrl_c_deferred():
            ctx = ray.init(
                address="local",  # never attach to RAY_ADDRESS or a cluster found on disk
                num_cpus=spec.cores,
                num_gpus=0,
                object_store_memory=object_store,
                include_dashboard=spec.dashboards,
                dashboard_host="127.0.0.1",
                log_to_driver=False,
                configure_logging=True,
                logging_level=logging.WARNING,
                _node_ip_address="127.0.0.1",
                _temp_dir=str(self._tmp),
                _memory=heap,
                object_spilling_directory=str(spill),
                _system_config=self._system_config(),
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
        auto_init_hook.enable_auto_connect = False
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
                for p in psutil.Process().children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        if p.status() != psutil.STATUS_ZOMBIE:
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
            ray_constants.ENABLE_RAY_CLUSTER = self._saved_cluster_flag
            self._saved_cluster_flag = None
        if self._tmp is not None:
            # let RayConfig and the token cache forget our per-cluster token mode
            from ray._raylet import AuthenticationTokenLoader, Config

            with contextlib.suppress(Exception):
                Config.initialize("")
                AuthenticationTokenLoader.instance().reset_cache()

    def _our_processes(self) -> list[psutil.Process]:
        """Descendants of this process plus any process carrying our session marker."""
        me = os.getpid()
        found: dict[int, psutil.Process] = {}
        with contextlib.suppress(psutil.Error):
            for p in psutil.Process(me).children(recursive=True):
                if _is_ray_process(p):
                    found[p.pid] = p
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
        are all our descendants, so nothing; a connected cluster on this machine: its GCS,
        raylet and their children, found by the GCS address on their command lines."""
        if self._owns_cluster or not self._address or not self._started:
            return []
        now = time.monotonic()
        if now - self._pids_at < 2.0:
            return self._pids_cache
        host, _, port = self._address.rpartition(":")
        if host not in ("127.0.0.1", "localhost", "::1", "[::1]"):
            return []
        roots: list[psutil.Process] = []
        for p in psutil.process_iter(["cmdline"]):
            cmd = " ".join(p.info["cmdline"] or ())
            if f"--gcs-address={self._address}" in cmd or f"--gcs_server_port={port}" in cmd:
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
            "object_store_memory_bytes": max(ray_constants.OBJECT_STORE_MINIMUM_MEMORY_BYTES,
                                             int(self.spec.memory_budget_bytes * OBJECT_STORE_FRACTION)),
            "listen": "127.0.0.1 only (ENABLE_RAY_CLUSTER=false)" if not self.spec.address else "n/a (connect)",
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

    # -- reading ---------------------------------------------------------------------
    def _read(self, inp: StageInput, columns: list[str] | None = None) -> ray.data.Dataset:
        """Dataset of `inp` with the documented types; CSV with an explicit schema, no inference."""
        self._require_started()
        # sort() uses as many range partitions as the input has blocks, and falls back to
        # this (default 200: 200 tiny files for 1M rows) when that is unknown; size it like
        # our other shuffles. Datasets copy the current DataContext, so it binds this query.
        ray.data.DataContext.get_current().default_hash_shuffle_parallelism = self._partitions(inp)
        schema = _schema(inp.dataset)
        if inp.format == "parquet":
            ds = ray.data.read_parquet(str(inp.path), file_extensions=["parquet"])
            return ds if columns is None else ds.select_columns(columns)
        if inp.format != "csv":
            raise ValueError(f"{inp.path}: unknown format {inp.format!r} (csv or parquet)")
        with open(inp.path, encoding="utf-8") as f:
            header = f.readline().rstrip("\r\n").split(",")
        by_norm = {normalise_name(h): h for h in header}
        missing = [c for c in schema.names if c not in by_norm]
        if missing:
            raise ValueError(f"{inp.path}: missing column(s) {missing}; header has {header}")
        types = {by_norm[c]: schema.field(c).type for c in schema.names}
        include = [by_norm[c] for c in (columns or schema.names)]
        convert = pacsv.ConvertOptions(column_types=types, include_columns=include,
                                       strings_can_be_null=False)
        return ray.data.read_csv(str(inp.path), convert_options=convert, file_extensions=None)

    def _require_started(self) -> None:
        if not self._started:
            raise RuntimeError("RayEngine: call start() before running a query")
        if self._owns_cluster and not self.alive():
            # submitting work to a dead raylet makes Ray end this whole process: fail clearly instead
            raise RuntimeError(f"ray: the local cluster at {self._address} is dead (its raylet or GCS "
                               f"process is gone); it must be restarted")

    def _partitions(self, inp: StageInput, minimum: int | None = None) -> int:
        """Shuffle partitions: about ROWS_PER_SHUFFLE_PARTITION rows each, at least one per core."""
        lo = self.spec.cores if minimum is None else minimum
        return max(lo, math.ceil(max(inp.rows, 1) / ROWS_PER_SHUFFLE_PARTITION))

    def _dedupe_ids(self, ds: ray.data.Dataset, inp: StageInput) -> ray.data.Dataset:
        """Drop duplicate ids: hash repartition on id, then keep the first row per id in each block."""
        self.last_notes["partitions"] = self._partitions(inp)
        return (ds.repartition(self._partitions(inp), keys=["id"])
                .map_batches(_first_per_id, batch_format="pyarrow", batch_size=None))

    # -- stage queries ---------------------------------------------------------------
    def etl_users(self, inp: StageInput, out: Path) -> None:
        ds = self._read(inp).map_batches(_clean_users, batch_format="pyarrow", batch_size=None)
        ds = self._dedupe_ids(ds, inp)
        ds.write_parquet(str(out), partition_cols=["is_active"])

    def etl_points(self, inp: StageInput, out: Path) -> None:
        self._read(inp).write_parquet(str(out))

    def groupby_points(self, inp: StageInput) -> pd.DataFrame:
        ds = self._read(inp, ["x", "y", "category"])
        res = ds.groupby("category", num_partitions=1).aggregate(
            Count(alias_name="count"),
            Sum("x", alias_name="sum_x"), Mean("x", alias_name="mean_x"),
            Sum("y", alias_name="sum_y"), Mean("y", alias_name="mean_y"),
        ).to_pandas()
        return res[["category", "count", "sum_x", "mean_x", "sum_y", "mean_y"]]

    def groupby_age(self, inp: StageInput) -> pd.DataFrame:
        ds = self._read(inp, ["age", "salary"])
        res = ds.groupby("age", num_partitions=1).aggregate(
            Count(alias_name="count"),
            Mean("salary", ignore_nulls=True, alias_name="mean_salary"),
        ).to_pandas()
        return res[["age", "count", "mean_salary"]]

    def groupby_id_bucket(self, inp: StageInput) -> pd.DataFrame:
        self.last_notes["partitions"] = self._partitions(inp)
        # not with_column(): fused into a CSV read (one task per file) it returns the whole file as
        # one block (49.6M rows: 1.2 GB), and the shuffle's map task then asks for 2x that as its
        # `memory` resource; above the node's memory the task is infeasible and the query waits
        # forever. map_batches keeps blocks under target_max_block_size.
        ds = self._read(inp, ["id", "salary"]).map_batches(_with_id_bucket, batch_format="pyarrow",
                                                            batch_size=None)
        res = ds.groupby("bucket", num_partitions=self._partitions(inp)).aggregate(
            Count(alias_name="count"),
            Sum("salary", ignore_nulls=True, alias_name="sum_salary"),
        ).to_pandas()
        return res[["bucket", "count", "sum_salary"]]

    def sort_top_earners(self, inp: StageInput) -> pd.DataFrame:
        ds = self._read(inp, ["id", "name", "salary"])
        cands = ds.map_batches(_top_earners_block, batch_format="pyarrow", batch_size=None).to_pandas()
        top = _combine_top(cands, TOP_EARNERS, ["salary", "id"], [False, True])
        return top[["id", "name", "salary"]]

    def sort_active_extremes(self, inp: StageInput) -> pd.DataFrame:
        ds = self._read(inp, ["id", "name", "age", "is_active"])
        cands = ds.map_batches(_extremes_block, batch_format="pyarrow", batch_size=None).to_pandas()
        young = _combine_top(cands[cands["end"] == "youngest"], EXTREMES, ["age", "id"], [True, True])
        old = _combine_top(cands[cands["end"] == "oldest"], EXTREMES, ["age", "id"], [False, True])
        return pd.concat([young, old], ignore_index=True)[["end", "id", "name", "age"]]

    def sort_global(self, inp: StageInput, out: Path) -> None:
        """ds.sort(), then each sorted block written as its own file.

        Not write_parquet(): with Ray 2.60 ``ds.sort(...).write_parquet()`` wrote files that
        are not sorted once a range partition outgrows target_max_block_size (10M users:
        parquet with 2 partitions, or CSV, whose single file gives a single partition),
        although iterating the same sorted dataset yields the right order. Every block of
        a sorted dataset is a contiguous slice of the order, so one file per block is a
        true global sort whatever order the files are written in.
        """
        ds = self._read(inp).filter(expr=col("salary").is_not_null()).sort(["salary", "id"])
        out.mkdir(parents=True, exist_ok=True)
        written = ds.map_batches(_write_block, fn_kwargs={"out": str(out)}, batch_format="pyarrow",
                                 batch_size=None).sum("rows")
        self.last_notes["files"] = len(list(out.glob("*.parquet")))
        self.last_notes["rows"] = written

    # -- machine learning ------------------------------------------------------------
    def logreg(self, inp: StageInput) -> ml.Fit:
        """ml.fit_distributed with every evaluation one wave of Ray tasks over stored blocks.

        x, y and the category codes (ml.category_codes, once per block) are read and prepared
        once into Arrow blocks that stay in the object store (to_arrow_refs, no copy); each
        L-BFGS evaluation submits one task per block ref with the current weights and sums the
        returned ml.Partials on the driver. The blocks are split to at most ceil(rows / cores)
        rows (a single CSV file is read as one block) and LOGREG_BLOCK_ROWS.
        """
        per_block = max(1, min(self.LOGREG_BLOCK_ROWS, math.ceil(max(inp.rows, 1) / self.spec.cores)))
        ds = (self._read(inp, ["x", "y", "category"])
              .map_batches(_logreg_block, batch_format="pyarrow", batch_size=None)
              .repartition(target_num_rows_per_block=per_block))
        # one execution; the refs keep the blocks in the object store until logreg returns
        # (not materialize() first: to_arrow_refs() then checks ray.available_resources() while
        # the resource view still counts the just-finished tasks and warns of "no available CPUs")
        refs = ds.to_arrow_refs()
        self.last_notes["solver"] = ("scipy L-BFGS on the driver; per evaluation one Ray task per "
                                     "block ref (to_arrow_refs), ml.Partials summed on the driver")
        self.last_notes["blocks"] = len(refs)
        evaluations = 0

        def partials(w: np.ndarray) -> ml.Partial:
            nonlocal evaluations
            evaluations += 1
            parts = ray.get([_block_partial.remote(ref, w) for ref in refs])
            total = parts[0]
            for part in parts[1:]:
                total = total + part
            return total

        fit = ml.fit_distributed(partials)  # the blocks leave the object store with `ds` and `refs`
        self.last_notes["evaluations"] = evaluations
        return fit

    def sample_users(self, inp: StageInput, rows: int, seed: int) -> pd.DataFrame:
        """random_sample(rows*1.1/n, seed) then limit(rows), in file order (deterministic for a
        seed and a cluster shape: Ray seeds each read task's generator with (seed, task index)).
        A hive folder is read with partition discovery; its is_active strings become bools."""
        cols = [*ml.TUNE_FEATURES, ml.TUNE_TARGET]
        fraction = min(1.0, rows * 1.1 / max(1, inp.rows))
        ds = self._read(inp, cols)
        if inp.extra.get("hive"):
            ds = ds.map_batches(_active_from_folder, batch_format="pyarrow", batch_size=None)
        ds = ds.random_sample(fraction, seed=seed).limit(rows)
        ds.context.execution_options.preserve_order = True  # limit keeps the first rows, not the fastest
        self.last_notes["fraction"] = fraction
        # through Arrow rather than ds.to_pandas(), which gives pyarrow-backed dtypes here
        return pa.concat_tables(ray.get(ds.to_arrow_refs())).select(cols).to_pandas()

    def grid_map(self, fn: Any, tasks: list) -> list:
        """joblib with Ray's backend: a pool of one Ray actor per cluster CPU, in task order.

        joblib runs a one-job Parallel in the calling process, so on a one-CPU cluster the calls
        go out as Ray tasks instead. register_ray() patches joblib's PicklingPool to derive from
        Ray's Pool for good; the patch is undone afterwards, so that a later multiprocessing
        joblib call in this process does not start a Ray cluster of its own.
        """
        self._require_started()
        cpus = int(ray.cluster_resources().get("CPU", self.spec.cores))
        if cpus < 2:
            self.last_notes["grid_map"] = "ray tasks (one CPU: joblib would run the calls in the driver)"
            fn_ref = ray.put(fn)
            return ray.get([_call.remote(fn_ref, t) for t in tasks])
        from joblib import Parallel, delayed, parallel_backend
        from joblib.pool import PicklingPool
        from ray.util.joblib import register_ray

        bases = PicklingPool.__bases__
        register_ray()
        # joblib hands Pool a multiprocessing context, which Ray's Pool ignores with a warning
        pool_log = logging.getLogger("ray.util.multiprocessing.pool")
        level = pool_log.level
        pool_log.setLevel(logging.ERROR)
        try:
            with parallel_backend("ray", n_jobs=cpus):
                # max_nbytes=None: no memmapping of big arrays into a local temp folder, which
                # actors on another node of a connected cluster could not open
                results = Parallel(max_nbytes=None)(delayed(fn)(t) for t in tasks)
        finally:
            PicklingPool.__bases__ = bases
            pool_log.setLevel(level)
        self.last_notes["grid_map"] = f"joblib ray backend, {cpus} actors"
        return list(results)

    def predict(self, inp: StageInput, model_dir: Path, out: Path, csv_out: Path | None = None) -> None:
        """Model and scaler loaded on the driver and shipped once with the map function (Ray
        Data puts fn_kwargs in the object store); one batch per block, each written as a file."""
        model, scaler = ml.load_model(model_dir)
        out.mkdir(parents=True, exist_ok=True)
        if csv_out is not None:
            csv_out.mkdir(parents=True, exist_ok=True)
        ds = self._read(inp, ["id", "name", *ml.TUNE_FEATURES])
        kwargs = {"model": model, "scaler": scaler, "out": str(out), "csv_out": csv_out and str(csv_out)}
        counts = ds.map_batches(_predict_write, fn_kwargs=kwargs,
                                batch_format="pandas", batch_size=None).to_pandas()
        self.last_notes["batches"] = len(counts)
        self.last_notes["rows"] = int(counts["rows"].sum())


    # -- db-benchmark ------------------------------------------------------------------
    def _note(self, idiom: str, partitions: int | None = None, **more: Any) -> None:
        """What the query did: the idiom, its shuffle partitions and the shuffle method."""
        self.last_notes["idiom"] = idiom
        if partitions is not None:
            self.last_notes["partitions"] = partitions
            self.last_notes["shuffle"] = str(ray.data.DataContext.get_current().shuffle_strategy.value)
        self.last_notes.update(more)

    def _h2o_grouped(self, inp: StageInput, keys: list[str], values: list[str], *aggs: Any) -> ray.data.Dataset:
        """groupby(keys).aggregate(aggs) over the needed columns, ROWS_PER_SHUFFLE_PARTITION rows a partition."""
        parts = self._partitions(inp)
        self._note("ray-data: groupby().aggregate (hash shuffle)", parts)
        return self._read(inp, [*keys, *values]).groupby(keys, num_partitions=parts).aggregate(*aggs)

    @staticmethod
    def _h2o_answer(grouped: ray.data.Dataset, question: str) -> pd.DataFrame:
        """db-benchmark's check, computed in Ray Data: the result's row count and column sums."""
        return _summary(grouped, Count(alias_name="rows"),
                        *(Sum(c, ignore_nulls=True, alias_name=c) for c in H2O_GROUPBY_QUESTIONS[question]))

    def h2o_groupby_q1(self, inp: StageInput) -> pd.DataFrame:
        return self._h2o_answer(self._h2o_grouped(inp, ["id1"], ["v1"], Sum("v1", alias_name="v1")), "q1")

    def h2o_groupby_q2(self, inp: StageInput) -> pd.DataFrame:
        grouped = self._h2o_grouped(inp, ["id1", "id2"], ["v1"], Sum("v1", alias_name="v1"))
        return self._h2o_answer(grouped, "q2")

    def h2o_groupby_q3(self, inp: StageInput) -> pd.DataFrame:
        grouped = self._h2o_grouped(inp, ["id3"], ["v1", "v3"], Sum("v1", alias_name="v1"),
                                    Mean("v3", alias_name="v3"))
        return self._h2o_answer(grouped, "q3")

    def h2o_groupby_q4(self, inp: StageInput) -> pd.DataFrame:
        grouped = self._h2o_grouped(inp, ["id4"], ["v1", "v2", "v3"],
                                    *(Mean(v, alias_name=v) for v in ("v1", "v2", "v3")))
        return self._h2o_answer(grouped, "q4")

    def h2o_groupby_q5(self, inp: StageInput) -> pd.DataFrame:
        grouped = self._h2o_grouped(inp, ["id6"], ["v1", "v2", "v3"],
                                    *(Sum(v, alias_name=v) for v in ("v1", "v2", "v3")))
        return self._h2o_answer(grouped, "q5")

    def h2o_groupby_q6(self, inp: StageInput) -> pd.DataFrame:
        """Quantile(q=0.5) is exact (pyarrow's linear-interpolated quantile over the group's
        values); Std(ddof=1) the sample sd, undefined (null) for a one-row group."""
        grouped = self._h2o_grouped(inp, ["id4", "id5"], ["v3"], Quantile("v3", q=0.5, alias_name="median_v3"),
                                    Std("v3", ddof=1, alias_name="sd_v3"))
        grouped = grouped.map_batches(_nan_as_null, fn_kwargs={"column": "sd_v3"}, batch_format="pyarrow",
                                      batch_size=None)
        return self._h2o_answer(grouped, "q6")

    def h2o_groupby_q7(self, inp: StageInput) -> pd.DataFrame:
        grouped = self._h2o_grouped(inp, ["id3"], ["v1", "v2"], Max("v1", alias_name="max_v1"),
                                    Min("v2", alias_name="min_v2"))
        return self._h2o_answer(grouped.with_column("range_v1_v2", col("max_v1") - col("min_v2")), "q7")

    def h2o_groupby_q8(self, inp: StageInput) -> pd.DataFrame:
        """Ray Data has no top-k per group: a vectorised top-2 per block (pre-aggregation), a hash
        repartition on id6 (one id6 never spans two blocks, as for map_groups), top-2 again."""
        parts = self._partitions(inp)
        self._note("ray-data: map_batches(top-2 per id6 and block), repartition(keys=id6), "
                   "map_batches(top-2)", parts)
        top = (self._read(inp, ["id6", "v3"])
               .map_batches(_largest2_v3, batch_format="pyarrow", batch_size=None)
               .repartition(parts, keys=["id6"])
               .map_batches(_largest2_v3, batch_format="pyarrow", batch_size=None)
               .rename_columns({"v3": "largest2_v3"}))
        return self._h2o_answer(top, "q8")

    def h2o_groupby_q9(self, inp: StageInput) -> pd.DataFrame:
        """No correlation aggregate in Ray Data: the group sums of v1, v2, their squares and
        product (exact integer sums), then r2 per group; undefined r2 become null and Sum skips them."""
        parts = self._partitions(inp)
        self._note("ray-data: map_batches(products), groupby().aggregate(Count, Sum x5), map_batches(r2)", parts)
        ds = (self._read(inp, ["id2", "id4", "v1", "v2"])
              .filter(expr=col("v1").is_not_null() & col("v2").is_not_null())
              .map_batches(_with_products, batch_format="pyarrow", batch_size=None))
        sums = ds.groupby(["id2", "id4"], num_partitions=parts).aggregate(
            Count(alias_name="n"), Sum("v1", alias_name="sx"), Sum("v2", alias_name="sy"),
            Sum("v1v1", alias_name="sxx"), Sum("v2v2", alias_name="syy"), Sum("v1v2", alias_name="sxy"))
        return self._h2o_answer(sums.map_batches(_r2_of_sums, batch_format="pyarrow", batch_size=None), "q9")

    def h2o_groupby_q10(self, inp: StageInput) -> pd.DataFrame:
        keys = ["id1", "id2", "id3", "id4", "id5", "id6"]
        grouped = self._h2o_grouped(inp, keys, ["v3"], Sum("v3", alias_name="v3"), Count(alias_name="count"))
        return self._h2o_answer(grouped, "q10")

    def _h2o_join(self, inp: StageInput, question: str) -> pd.DataFrame:
        """Dataset.join (a hash-shuffle join of both sides on the key), then the sums in Ray Data."""
        table, key, how = H2O_JOIN_QUESTIONS[question]
        parts = self._partitions(inp)
        right = self._read(inp.extra[table], [key, "v2"])
        x = self._read(inp, [key, "v1"])
        join_type = {"inner": "inner", "left": "left_outer"}[how]
        self._note(f"ray-data: join({join_type}, hash shuffle on {key})", parts, right_rows=inp.extra[table].rows)
        joined = x.join(right, join_type=join_type, num_partitions=parts, on=(key,))
        return _summary(joined, Count(alias_name="rows"), Sum("v1", ignore_nulls=True, alias_name="sum_v1"),
                        Sum("v2", ignore_nulls=True, alias_name="sum_v2"))

    def h2o_join_q1(self, inp: StageInput) -> pd.DataFrame:
        return self._h2o_join(inp, "q1")

    def h2o_join_q2(self, inp: StageInput) -> pd.DataFrame:
        return self._h2o_join(inp, "q2")

    def h2o_join_q3(self, inp: StageInput) -> pd.DataFrame:
        return self._h2o_join(inp, "q3")

    def h2o_join_q4(self, inp: StageInput) -> pd.DataFrame:
        return self._h2o_join(inp, "q4")

    def h2o_join_q5(self, inp: StageInput) -> pd.DataFrame:
        return self._h2o_join(inp, "q5")

    # -- joins on users --------------------------------------------------------------
    def join_dim(self, inp: StageInput) -> pd.DataFrame:
        """Ray Data has no broadcast join; its idiom is a map-side join: the 30-row dimension
        is read once (in Ray Data), put in the object store with the map function (fn_kwargs)
        and joined to every block with pyarrow, so the users table is never shuffled."""
        dim_ds = self._read(inp.extra["names_dim"], ["name", "region", "weight"])
        dim = pa.concat_tables(ray.get(dim_ds.to_arrow_refs()))
        self._note("ray-data: map_batches(pyarrow join with the dimension in fn_kwargs: broadcast), "
                   "groupby().aggregate", dim_rows=dim.num_rows)
        joined = self._read(inp, ["name", "salary"]).map_batches(
            _broadcast_join, fn_kwargs={"dim": dim, "key": "name"}, batch_format="pyarrow", batch_size=None)
        res = joined.groupby("region", num_partitions=1).aggregate(
            Count(alias_name="count"), Sum("salary", ignore_nulls=True, alias_name="sum_salary"),
            Sum("weight", alias_name="sum_weight")).to_pandas()
        return res[["region", "count", "sum_salary", "sum_weight"]]

    def join_large(self, inp: StageInput) -> pd.DataFrame:
        parts = self._partitions(inp)
        self._note("ray-data: join(inner, hash shuffle on id), groupby().aggregate", parts)
        accounts = self._read(inp.extra["accounts"], ["id", "balance"])
        users = self._read(inp, ["id", "is_active", "salary"])
        joined = users.join(accounts, join_type="inner", num_partitions=parts, on=("id",))
        res = joined.groupby("is_active", num_partitions=1).aggregate(
            Count(alias_name="count"), Sum("balance", alias_name="sum_balance"),
            Sum("salary", ignore_nulls=True, alias_name="sum_salary")).to_pandas()
        return res[["is_active", "count", "sum_balance", "sum_salary"]]

    # -- skew -------------------------------------------------------------------------
    def skew_groupby(self, inp: StageInput, remedy: str = "plain") -> pd.DataFrame:
        """plain: groupby(key); salted: groupby(key, salt) then groupby(key) over the partials;
        by_key: one task per bucket file (every row of a key in one file), aggregated in place."""
        if remedy == "by_key":
            buckets = inp.require_partitioned("key", "ray")
            self._require_started()
            self._note("ray-data: from_items(bucket files).map_batches(read + groupby per bucket)", None,
                       remedy=remedy, buckets=len(buckets))
            grouped = (ray.data.from_items([{"path": str(f)} for f in buckets], override_num_blocks=len(buckets))
                       .map_batches(_bucket_sums, batch_size=1, batch_format="pandas"))
            return _summary(grouped, Count(alias_name="groups"), Sum("n", alias_name="rows"),
                            Sum("s", alias_name="sum_v"), Max("n", alias_name="max_count"))
        if remedy not in ("plain", "salted"):
            raise NotApplicable(f"ray: no {remedy!r} groupby remedy (plain, salted or by_key)")
        parts = self._partitions(inp)
        ds = self._read(inp, ["id", "key", "v"])
        if remedy == "plain":
            self._note("ray-data: groupby(key).aggregate", parts, remedy=remedy)
            grouped = ds.groupby("key", num_partitions=parts).aggregate(Count(alias_name="n"),
                                                                        Sum("v", alias_name="s"))
        else:
            self._note("ray-data: map_batches(salt), groupby(key, salt).aggregate, groupby(key).aggregate",
                       parts, remedy=remedy, salt_buckets=SALT_BUCKETS)
            partial = (ds.map_batches(_with_salt, batch_format="pyarrow", batch_size=None)
                       .groupby(["key", "salt"], num_partitions=parts)
                       .aggregate(Count(alias_name="n"), Sum("v", alias_name="s")))
            grouped = partial.groupby("key", num_partitions=parts).aggregate(Sum("n", alias_name="n"),
                                                                             Sum("s", alias_name="s"))
        return _summary(grouped, Count(alias_name="groups"), Sum("n", alias_name="rows"),
                        Sum("s", alias_name="sum_v"), Max("n", alias_name="max_count"))

    def skew_join(self, inp: StageInput, remedy: str = "plain") -> pd.DataFrame:
        """A hash-shuffle Dataset.join (never broadcast); salted: join on (key, salt) with the
        dimension copied once per salt. Ray Data has no skew remedy of its own."""
        if remedy not in ("plain", "salted"):
            raise NotApplicable(f"ray: no {remedy!r} skew remedy: Ray Data {ray.__version__}'s "
                                "Dataset.join is a plain hash-shuffle join (no broadcast join, no adaptive "
                                "split of hot partitions like Spark's AQE); salting is the user's remedy")
        parts = self._partitions(inp)
        keys = self._read(inp, ["id", "key", "v"])
        dim = self._read(inp.extra["keys_dim"], ["key", "w"])
        if remedy == "plain":
            self._note("ray-data: join(inner, hash shuffle on key)", parts, remedy=remedy)
            joined = keys.select_columns(["key", "v"]).join(dim, join_type="inner", num_partitions=parts,
                                                            on=("key",))
        else:
            self._note("ray-data: map_batches(salt) / map_batches(dimension x salts), join(inner, hash "
                       "shuffle on key, salt)", parts, remedy=remedy, salt_buckets=SALT_BUCKETS)
            salted = (keys.map_batches(_with_salt, batch_format="pyarrow", batch_size=None)
                      .select_columns(["key", "salt", "v"]))
            copies = dim.map_batches(_salt_copies, batch_format="pyarrow", batch_size=None)
            joined = salted.join(copies, join_type="inner", num_partitions=parts, on=("key", "salt"))
        return _summary(joined, Count(alias_name="rows"), Sum("v", alias_name="sum_v"),
                        Sum("w", alias_name="sum_w"))


def _is_ray_process(p: psutil.Process) -> bool:
    """Whether a descendant belongs to Ray (not, say, a memory sampler the caller started)."""
    with contextlib.suppress(psutil.Error):
        name = p.name()
        if name in ("gcs_server", "raylet") or name.startswith("ray::"):
            return True
        return any("site-packages/ray/" in part for part in p.cmdline()[:3])
    return False


ENGINE = RayEngine
