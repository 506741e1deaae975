"""The pandas engine: its stage families composed over the shared reader (read.py)."""

from __future__ import annotations

from scalebench.engines.pandas.dbbench import GROUPBY_QUESTIONS, JOIN_QUESTIONS, PandasDbBenchmark
from scalebench.engines.pandas.joins import SKEW_GROUPBY, SKEW_JOIN, PandasJoins
from scalebench.engines.pandas.ml import PandasML
from scalebench.engines.pandas.tables import PandasTables


class PandasEngine(PandasTables, PandasDbBenchmark, PandasJoins, PandasML):
    VARIANTS = {"h2o_groupby": GROUPBY_QUESTIONS, "h2o_join": JOIN_QUESTIONS,
                "skew_groupby": SKEW_GROUPBY, "skew_join": SKEW_JOIN}


ENGINE = PandasEngine
