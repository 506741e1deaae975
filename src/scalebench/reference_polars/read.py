"""Lazy polars scans of a stage input, typed from the dataset's documented schema.

No type inference: every column gets its type from scalebench.datasets.schemas, so the polars
reference parses the same CSV the same way whatever the first rows look like. CSV timestamps
are read as text and parsed with the documented format (inputs.CSV_TIMESTAMP_FORMAT), strictly,
so a timestamp in another form fails loudly instead of becoming null.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl
import pyarrow as pa

from scalebench.datasets.schemas import schema_for
from scalebench.inputs import CSV_TIMESTAMP_FORMAT, normalise_name

if TYPE_CHECKING:  # a type only: the reference imports no engine code
    from scalebench.engines.base import StageInput

TIMESTAMP = pl.Datetime("us")
CAST = pl.ScanCastOptions(integer_cast="upcast", float_cast="upcast", datetime_cast="upcast")
"""Parquet files may carry narrower types than documented (int32 for int64): widened, never narrowed."""


def polars_type(t: pa.DataType) -> pl.DataType:
    """The polars type of one documented Arrow type."""
    if pa.types.is_timestamp(t):
        return TIMESTAMP
    if pa.types.is_date32(t):  # TPC-H's dates
        return pl.Date()
    for test, dtype in ((pa.types.is_int64, pl.Int64), (pa.types.is_int32, pl.Int32),
                        (pa.types.is_float64, pl.Float64), (pa.types.is_boolean, pl.Boolean),
                        (lambda x: pa.types.is_string(x) or pa.types.is_large_string(x), pl.String)):
        if test(t):
            return dtype()
    raise TypeError(f"no polars type for {t}")


def documented(dataset: str) -> dict[str, pl.DataType]:
    """Column name -> polars type, in the documented column order."""
    schema = schema_for(dataset)
    if schema is None:
        raise ValueError(f"unknown dataset {dataset!r}")
    return {f.name: polars_type(f.type) for f in schema.arrow}


def scan(inp: StageInput) -> pl.LazyFrame:
    """Every documented column of the input, typed, under its documented name."""
    if inp.format == "csv":
        return _scan_csv(inp)
    if inp.format == "parquet":
        files = [str(f) for f in inp.files]
        if not files:
            raise ValueError(f"{inp.path}: no Parquet part files")
        # a file list, hive off: a by-key layout's bucket folders add no column
        return pl.scan_parquet(files, schema=documented(inp.dataset), hive_partitioning=False,
                               extra_columns="ignore", cast_options=CAST)
    raise ValueError(f"{inp.path}: unknown format {inp.format!r} (csv or parquet)")


def _header(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return f.readline().rstrip("\r\n").split(",")


def _scan_csv(inp: StageInput) -> pl.LazyFrame:
    """Header names normalised (strip, lower case, spaces to '_') as etl_users asks and as every
    engine accepts them; types from the schema; empty fields null; 'true'/'false' booleans."""
    types = documented(inp.dataset)
    frames = []
    for path in inp.files:
        header = _header(Path(path))
        names = [normalise_name(h) for h in header]
        if sorted(names) != sorted(types):
            raise ValueError(f"{path}: header {','.join(header)!r} does not name the columns "
                             f"{','.join(types)!r}")
        raw = {h: (pl.String() if types[n] == TIMESTAMP else types[n]) for h, n in zip(header, names, strict=True)}
        lf = pl.scan_csv(path, has_header=True, schema=raw, empty_string_is_null=True, infer_schema=False)
        lf = lf.rename(dict(zip(header, names, strict=True)))
        stamps = [n for n, t in types.items() if t == TIMESTAMP]
        if stamps:
            lf = lf.with_columns(pl.col(c).str.strptime(TIMESTAMP, CSV_TIMESTAMP_FORMAT, strict=True) for c in stamps)
        frames.append(lf.select(list(types)))
    return frames[0] if len(frames) == 1 else pl.concat(frames)
