"""dask engine: the cluster lifecycle in cluster.py, input reading in read.py and one module per
stage family beside it (tables, dbbench, joins, ml), composed in engine.py."""

from scalebench.engines.dask.engine import ENGINE, DaskEngine

__all__ = ["ENGINE", "DaskEngine"]
