"""scalebench: how Ray, Dask, Spark and pandas compare as data outgrows memory."""

__version__ = "0.1.0"
