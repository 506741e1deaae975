"""polars TPC-H: the 22 queries in polars' lazy API are the second reference's
(scalebench.reference_polars.tpch.QUERIES, pure functions of eight LazyFrames and the scale factor),
run here on the engine's own frames: lazy scans, or with --io memory the loaded DataFrames made lazy.
At SF1 the answers are checked against the kit's official answer set, elsewhere against DuckDB's."""

from __future__ import annotations

import pandas as pd

from scalebench import tpch as catalogue
from scalebench.engines.base import StageInput
from scalebench.engines.polars.read import PolarsReader
from scalebench.reference_polars.tpch import QUERIES


class PolarsTpch(PolarsReader):
    def tpch(self, inp: StageInput, question: str) -> pd.DataFrame:
        """The question's plan over the eight tables' frames, collected by the streaming engine; the
        plan sorts and cuts to the query's ORDER BY and LIMIT (tpch.ANSWERS)."""
        frames = {table: self._frame(t) for table, t in catalogue.tables(inp).items()}
        self.last_notes["answer"] = "collected (collect(engine='streaming'))"
        return self._collect(QUERIES[question](frames, catalogue.scale_factor(inp)), inp)


TPCH_QUESTIONS = dict.fromkeys(catalogue.QUESTIONS, PolarsTpch.tpch)
