"""Synthetic datasets: schemas, the chunked generator and the on-disk cache."""

from scalebench.datasets.schemas import SCHEMAS, TRUE_COEFFICIENTS
from scalebench.datasets.store import (
                                       FORMATS,
                                       GENERATOR_VERSION,
                                       DatasetError,
                                       StoredDataset,
                                       default_data_dir,
                                       ensure,
                                       ensure_partitioned,
                                       rows_for_memory,
                                       validate,
)

__all__ = ["FORMATS", "GENERATOR_VERSION", "SCHEMAS", "TRUE_COEFFICIENTS", "DatasetError", "StoredDataset",
           "default_data_dir", "ensure", "ensure_partitioned", "rows_for_memory", "validate"]
