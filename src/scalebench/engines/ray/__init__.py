"""ray engine: the cluster lifecycle in cluster.py, input reading and one module per stage family beside it."""

from scalebench.engines.ray.cluster import ENGINE

__all__ = ["ENGINE"]
