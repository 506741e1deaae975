"""pandas engine: chunked input reading in read.py and one module per stage family beside it."""

from scalebench.engines.pandas.read import ENGINE

__all__ = ["ENGINE"]
