"""Ray engine, input reading: CSV and Parquet into Ray Data datasets with the documented types,
and what every stage family shares (shuffle partitions, notes, one-row answers)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import ray
import ray.data

from scalebench.datasets.schemas import schema_for
from scalebench.engines.base import StageInput
from scalebench.engines.ray.cluster import ROWS_PER_SHUFFLE_PARTITION, RayCluster
from scalebench.inputs import normalise_name


def _schema(dataset: str) -> pa.Schema:
    """Column types of a dataset, the generator's (scalebench.datasets.schemas)."""
    found = schema_for(dataset)
    if found is None:
        raise ValueError(f"ray: unknown dataset {dataset!r}")
    return found.arrow


def summary(ds: ray.data.Dataset, *aggs: Any) -> pd.DataFrame:
    """One-row answer: Dataset.aggregate over the (grouped or joined) result, in Ray Data."""
    row = ds.aggregate(*aggs) or {}
    return pd.DataFrame([{a.name: row.get(a.name) for a in aggs}])


class RayReader(RayCluster):
    """Reading inputs and sizing shuffles, for every stage family."""

    def _require_started(self) -> None:
        """Fail clearly before a query runs on a cluster that is not started or is dead."""
        if not self._started:
            raise RuntimeError("RayEngine: call start() before running a query")
        if self._owns_cluster and not self.alive():
            # submitting work to a dead raylet makes Ray end this whole process: fail clearly instead
            raise RuntimeError(f"ray: the local cluster at {self._address} is dead (its raylet or GCS "
                               f"process is gone); it must be restarted")

    def _read(self, inp: StageInput, columns: list[str] | None = None) -> ray.data.Dataset:
        """Dataset of `inp` with the documented types; CSV with an explicit schema, no inference."""
        self._require_started()
        # sort() uses as many range partitions as the input has blocks, and falls back to
        # this (default 200: 200 tiny files for 1M rows) when that is unknown; size it like
        # our other shuffles. Datasets copy the current DataContext, so it binds this query.
        ray.data.DataContext.get_current().default_hash_shuffle_parallelism = self._partitions(inp)
        loaded = self.loaded(inp)
        if loaded is not None:  # --io memory: the materialized dataset load() made
            return loaded if columns is None else loaded.select_columns(columns)
        schema = _schema(inp.dataset)
        if inp.format == "parquet":
            ds = ray.data.read_parquet(str(inp.path), file_extensions=["parquet"])
            return ds if columns is None else ds.select_columns(columns)
        if inp.format != "csv":
            raise ValueError(f"{inp.path}: unknown format {inp.format!r} (csv or parquet)")
        with open(inp.path, encoding="utf-8") as f:
            header = f.readline().rstrip("\r\n").split(",")
        by_norm = {normalise_name(h): h for h in header}
        missing = [c for c in schema.names if c not in by_norm]
        if missing:
            raise ValueError(f"{inp.path}: missing column(s) {missing}; header has {header}")
        types = {by_norm[c]: schema.field(c).type for c in schema.names}
        include = [by_norm[c] for c in (columns or schema.names)]
        convert = pacsv.ConvertOptions(column_types=types, include_columns=include,
                                       strings_can_be_null=False)
        return ray.data.read_csv(str(inp.path), convert_options=convert, file_extensions=None)

    def _load_table(self, inp: StageInput) -> ray.data.MaterializedDataset:
        """--io memory: every column read and materialized in the object store (Dataset.materialize)."""
        return self._read(inp).materialize()

    def _partitions(self, inp: StageInput, minimum: int | None = None) -> int:
        """Shuffle partitions: about ROWS_PER_SHUFFLE_PARTITION rows each, at least one per core."""
        lo = self.spec.cores if minimum is None else minimum
        return max(lo, math.ceil(max(inp.rows, 1) / ROWS_PER_SHUFFLE_PARTITION))

    def _note(self, idiom: str, partitions: int | None = None, **more: Any) -> None:
        """What the query did: the idiom, its shuffle partitions and the shuffle method."""
        self.last_notes["idiom"] = idiom
        if partitions is not None:
            self.last_notes["partitions"] = partitions
            self.last_notes["shuffle"] = str(ray.data.DataContext.get_current().shuffle_strategy.value)
        self.last_notes.update(more)
