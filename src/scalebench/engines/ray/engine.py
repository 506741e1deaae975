"""The Ray engine: its stage families composed over the cluster lifecycle (cluster.py) and the
reader (read.py)."""

from __future__ import annotations

from typing import ClassVar

import pandas as pd

from scalebench.engines.base import StageInput
from scalebench.engines.ray.dbbench import GROUPBY_QUESTIONS, JOIN_QUESTIONS, RayDbBenchmark
from scalebench.engines.ray.joins import SKEW_GROUPBY, SKEW_JOIN, RayJoins
from scalebench.engines.ray.ml import RayML
from scalebench.engines.ray.tables import RayTables
from scalebench.engines.ray.tpch import IDIOM as TPCH_IDIOM
from scalebench.engines.ray.tpch import TPCH_QUERIES, run

IDIOMS: dict[str, str] = {
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
    **{f"h2o_groupby_q{i}": "ray-data: groupby().aggregate (hash shuffle), to_pandas()" for i in (1, 2, 3, 4, 5, 7)},
    "h2o_groupby_q10": "ray-data: groupby().aggregate (hash shuffle), materialize() and count()",
    "h2o_groupby_q6": "ray-data: groupby().aggregate(Quantile(0.5), Std(ddof=1)), to_pandas()",
    "h2o_groupby_q8": "ray-data: map_batches(top-2 per block), repartition(keys=id6), map_batches(top-2), to_pandas()",
    "h2o_groupby_q9": "ray-data: map_batches(complete pairs, products), groupby().aggregate(sums), map_batches(r2), "
                      "to_pandas()",
    **{f"h2o_join_q{i}": "ray-data: Dataset.join (hash shuffle of both sides), materialize() and count()"
       for i in range(1, 6)},
    **{f"tpch_{q}": TPCH_IDIOM for q in TPCH_QUERIES},
    "join_dim": "ray-data: map_batches(pyarrow join, dimension in fn_kwargs: broadcast), groupby().aggregate",
    "join_large": "ray-data: Dataset.join(inner, hash shuffle on id), groupby().aggregate",
    "skew_groupby": "ray-data: groupby(key).aggregate; salted: groupby(key, salt) then groupby(key)",
    "skew_join": "ray-data: Dataset.join on key (hash shuffle); salted: on (key, salt) with the dimension "
                 "copied per salt; native: not applicable (Ray Data has no skew remedy)",
}
"""Per query, the Ray idiom it uses (describe()["idioms"]); keyed by query as the results name them."""


class RayEngine(RayTables, RayDbBenchmark, RayJoins, RayML):
    """Ray 2.x: local single-node cluster on loopback with token auth, queries in Ray Data."""

    IDIOMS: ClassVar[dict[str, str]] = IDIOMS
    VARIANTS = {"h2o_groupby": GROUPBY_QUESTIONS, "h2o_join": JOIN_QUESTIONS,
                "skew_groupby": SKEW_GROUPBY, "skew_join": SKEW_JOIN, "tpch": TPCH_QUERIES}

    def tpch(self, inp: StageInput, question: str) -> pd.DataFrame:
        """TPC-H's question in Ray Data (engines.ray.tpch), its small answer collected."""
        return run(self, inp, question)


ENGINE = RayEngine
