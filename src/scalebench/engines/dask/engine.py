"""Dask engine: dask.dataframe on a dask.distributed cluster.

Every query is written with dask.dataframe collections and finished with
``compute()`` or ``to_parquet()``; only the small final answers (a few rows or
one row per group) reach pandas. Shuffles that a query needs are named in the
query's docstring, because they dominate its cost.
"""

from __future__ import annotations

import pandas as pd

from scalebench.engines.base import StageInput
from scalebench.engines.dask.cluster import on_cluster
from scalebench.engines.dask.dbbench import GROUPBY_QUESTIONS, JOIN_QUESTIONS, DaskDbBenchmark
from scalebench.engines.dask.joins import SKEW_GROUPBY, SKEW_JOIN, DaskJoins
from scalebench.engines.dask.ml import DaskML
from scalebench.engines.dask.tables import DaskTables
from scalebench.engines.dask.tpch import TPCH_QUERIES, DaskTpch


class DaskEngine(DaskTables, DaskDbBenchmark, DaskJoins, DaskML, DaskTpch):
    """dask.dataframe on a LocalCluster (worker processes) or on an existing scheduler."""

    VARIANTS = {"h2o_groupby": GROUPBY_QUESTIONS, "h2o_join": JOIN_QUESTIONS,
                "skew_groupby": SKEW_GROUPBY, "skew_join": SKEW_JOIN, "tpch": TPCH_QUERIES}

    @on_cluster
    def tpch(self, inp: StageInput, question: str) -> pd.DataFrame:
        """TPC-H's question (tpch.TPCH_QUERIES), sorted and limited on the cluster, one compute."""
        return self.tpch_answer(inp, question)


ENGINE = DaskEngine
