"""pandas engine: one package module per stage family (tables, dbbench, joins, ml) over read.py,
which holds the input reading and chunking and the trivial in-process lifecycle. pandas has no
cluster, so there is no cluster.py: read.py keeps the moved module's name and history."""

from scalebench.engines.pandas.engine import ENGINE, PandasEngine

__all__ = ["ENGINE", "PandasEngine"]
