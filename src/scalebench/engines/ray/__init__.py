"""ray engine: the cluster lifecycle in cluster.py, input reading in read.py, one module per stage
family beside them (tables, dbbench, joins, ml), private-internals workarounds in patches.py, all
composed in engine.py."""

from scalebench.engines.ray.engine import ENGINE, RayEngine

__all__ = ["ENGINE", "RayEngine"]
