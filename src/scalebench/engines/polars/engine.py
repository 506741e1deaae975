"""The polars engine: its stage families composed over the shared reader (read.py)."""

from __future__ import annotations

from typing import Any

from scalebench.engines.base import NotApplicable, StageInput
from scalebench.engines.polars.dbbench import GROUPBY_QUESTIONS, JOIN_QUESTIONS, PolarsDbBenchmark
from scalebench.engines.polars.joins import SKEW_GROUPBY, SKEW_JOIN, PolarsJoins
from scalebench.engines.polars.tables import PolarsTables
from scalebench.engines.polars.tpch import TPCH_QUESTIONS, PolarsTpch


class PolarsEngine(PolarsTables, PolarsDbBenchmark, PolarsJoins, PolarsTpch):
    VARIANTS = {"h2o_groupby": GROUPBY_QUESTIONS, "h2o_join": JOIN_QUESTIONS, "skew_groupby": SKEW_GROUPBY,
                "skew_join": SKEW_JOIN, "tpch": TPCH_QUESTIONS}

    def logreg(self, inp: StageInput) -> Any:
        """polars is a query engine: it has no model fitting, and a fitted multinomial logistic
        regression (an iterative optimiser over the points) has no clean polars idiom."""
        raise NotApplicable("polars has no logistic regression: it fits no models, and an iterative multinomial "
                            "fit has no clean polars idiom (it would be numpy or scikit-learn on collected data)")


ENGINE = PolarsEngine
