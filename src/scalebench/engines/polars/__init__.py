"""polars engine: one package module per stage family (tables, dbbench, joins, tpch) over read.py,
which holds the input scans and the in-process lifecycle. polars has no cluster: its lazy plans run
in this process on polars' streaming engine."""

from scalebench.engines.polars.engine import ENGINE, PolarsEngine

__all__ = ["ENGINE", "PolarsEngine"]
