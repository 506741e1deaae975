"""The pandas engine: its stage families composed over the shared reader (read.py)."""

from __future__ import annotations

import pandas as pd

from scalebench.datasets.tables_tpch import table_of
from scalebench.engines.base import StageInput
from scalebench.engines.pandas import tpch as tpch_queries
from scalebench.engines.pandas.dbbench import GROUPBY_QUESTIONS, JOIN_QUESTIONS, PandasDbBenchmark
from scalebench.engines.pandas.joins import SKEW_GROUPBY, SKEW_JOIN, PandasJoins
from scalebench.engines.pandas.ml import PandasML
from scalebench.engines.pandas.tables import PandasTables


class PandasEngine(PandasTables, PandasDbBenchmark, PandasJoins, PandasML):
    VARIANTS = {"h2o_groupby": GROUPBY_QUESTIONS, "h2o_join": JOIN_QUESTIONS,
                "skew_groupby": SKEW_GROUPBY, "skew_join": SKEW_JOIN, "tpch": tpch_queries.TPCH_QUESTIONS}

    def tpch(self, inp: StageInput, question: str) -> pd.DataFrame:
        """TPC-H question qN on whole frames (engines.pandas.tpch)."""
        return tpch_queries.answer(self, inp, question)

    def _load_table(self, inp: StageInput) -> pd.DataFrame:
        """--io memory: a TPC-H table is read with its dates as datetime64 (tpch.read_table)."""
        return tpch_queries.read_table(inp) if table_of(inp.dataset) else super()._load_table(inp)


ENGINE = PandasEngine
