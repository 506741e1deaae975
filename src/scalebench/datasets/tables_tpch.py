"""TPC-H's eight tables at a scale factor, made by tpchgen-cli and stored in the suite's types.

tpchgen-cli (https://github.com/clflushopt/tpchgen-rs, a Rust port of dbgen installed as a wheel)
writes the same rows as the TPC-H kit's dbgen. Its Parquet carries decimals (decimal128(15, 2))
and Arrow string views; every engine here reads the suite's types instead, as polars-benchmark's
PDS-H does: money and quantities as float64, dates as date32, text as string. Each table is
rewritten batch by batch into that schema, as Parquet parts or one CSV file with a header, so
CSV and Parquet hold the same values. store.ensure_tpch decides where the folder goes and makes
it appear whole; this module only fills it.

Layout of a format folder: <table>/part-NNNNN.parquet or <table>/data.csv, each table folder with
its own _manifest.json (a StoredDataset of its own, dataset 'tpch_<table>'), and the folder's
manifest listing every file.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

TPCH_PREFIX = "tpch_"
TPCH_TABLES = ("lineitem", "orders", "customer", "part", "partsupp", "supplier", "nation", "region")
ROWS_PER_SF = {"lineitem": 6_001_215, "orders": 1_500_000, "customer": 150_000, "part": 200_000,
               "partsupp": 800_000, "supplier": 10_000, "nation": 25, "region": 5}
"""Rows at SF1 (lineitem's count varies a little with the scale factor; nation and region are fixed)."""
PART_ROWS = 1_000_000
"""Rows per Parquet part: SF1's lineitem in 6 parts, so every worker of a small cluster has work."""
BATCH_ROWS = 256_000
ROWS_PER_SF_OF_SCALE = 10_000_000
"""--scale rows that make SF1 when --tpch-sf is not given: the tiers' small (1M) is SF0.1,
medium (10M) SF1, large (100M) SF10."""
MEMORY_PER_SF = 2**30
"""About a GiB of data per SF in memory (TPC-H's SF is the raw size in GB): how --memory-multiple
sizes TPC-H."""
MIN_SF = 0.01

_I, _I32, _F, _S, _D = pa.int64(), pa.int32(), pa.float64(), pa.string(), pa.date32()
TPCH_SCHEMAS: dict[str, pa.Schema] = {
    "lineitem": pa.schema([
        ("l_orderkey", _I), ("l_partkey", _I), ("l_suppkey", _I), ("l_linenumber", _I32),
        ("l_quantity", _F), ("l_extendedprice", _F), ("l_discount", _F), ("l_tax", _F),
        ("l_returnflag", _S), ("l_linestatus", _S), ("l_shipdate", _D), ("l_commitdate", _D),
        ("l_receiptdate", _D), ("l_shipinstruct", _S), ("l_shipmode", _S), ("l_comment", _S)]),
    "orders": pa.schema([
        ("o_orderkey", _I), ("o_custkey", _I), ("o_orderstatus", _S), ("o_totalprice", _F),
        ("o_orderdate", _D), ("o_orderpriority", _S), ("o_clerk", _S), ("o_shippriority", _I32),
        ("o_comment", _S)]),
    "customer": pa.schema([
        ("c_custkey", _I), ("c_name", _S), ("c_address", _S), ("c_nationkey", _I), ("c_phone", _S),
        ("c_acctbal", _F), ("c_mktsegment", _S), ("c_comment", _S)]),
    "part": pa.schema([
        ("p_partkey", _I), ("p_name", _S), ("p_mfgr", _S), ("p_brand", _S), ("p_type", _S),
        ("p_size", _I32), ("p_container", _S), ("p_retailprice", _F), ("p_comment", _S)]),
    "partsupp": pa.schema([
        ("ps_partkey", _I), ("ps_suppkey", _I), ("ps_availqty", _I32), ("ps_supplycost", _F),
        ("ps_comment", _S)]),
    "supplier": pa.schema([
        ("s_suppkey", _I), ("s_name", _S), ("s_address", _S), ("s_nationkey", _I), ("s_phone", _S),
        ("s_acctbal", _F), ("s_comment", _S)]),
    "nation": pa.schema([("n_nationkey", _I), ("n_name", _S), ("n_regionkey", _I), ("n_comment", _S)]),
    "region": pa.schema([("r_regionkey", _I), ("r_name", _S), ("r_comment", _S)]),
}


class TpchgenMissing(RuntimeError):
    """tpchgen-cli is not installed: the message says which extra brings it."""


def table_of(dataset: str) -> str | None:
    """'tpch_lineitem' -> 'lineitem'; None for a dataset that is not a TPC-H table."""
    if dataset.startswith(TPCH_PREFIX) and dataset[len(TPCH_PREFIX):] in TPCH_SCHEMAS:
        return dataset[len(TPCH_PREFIX):]
    return None


def parse_sf(text: str | float, option: str = "--tpch-sf") -> float:
    """'1' | '0.01' | 'SF10' -> a scale factor of at least MIN_SF."""
    s = str(text).strip().lower().removeprefix("sf")
    try:
        value = float(s)
    except ValueError:
        raise ValueError(f"{option}: {text!r} is not a scale factor such as 0.01, 1 or 10") from None
    if not math.isfinite(value) or value < MIN_SF:
        raise ValueError(f"{option}: {text!r} must be a scale factor of at least {MIN_SF:g}")
    return value


def _two_digits(value: float) -> float:
    return max(MIN_SF, float(f"{value:.2g}"))


def sf_for_rows(rows: int) -> float:
    """The scale factor that goes with a --scale size when --tpch-sf is not given."""
    return _two_digits(rows / ROWS_PER_SF_OF_SCALE)


def sf_for_memory(multiple: float, budget_bytes: int) -> float:
    """The scale factor that goes with a --memory-multiple of the budget."""
    return _two_digits(multiple * budget_bytes / MEMORY_PER_SF)


def sf_label(sf: float) -> str:
    return f"SF{sf:g}"


def _tpchgen() -> str:
    found = shutil.which("tpchgen-cli") or shutil.which("tpchgen-cli", path=str(Path(sys.executable).parent))
    if found is None:
        raise TpchgenMissing("TPC-H data needs tpchgen-cli, which is not installed; "
                             "pip install 'scalebench[tpch]' (or any engine's extra) brings it")
    return found


def tpchgen_version() -> str:
    out = subprocess.run([_tpchgen(), "--version"], capture_output=True, text=True, check=True).stdout
    return out.strip()


def _parts(table: str, sf: float) -> int:
    return max(1, math.ceil(ROWS_PER_SF[table] * sf / PART_ROWS)) if table not in ("nation", "region") else 1


def _raw_files(raw: Path, table: str) -> list[Path]:
    single = raw / f"{table}.parquet"
    return [single] if single.exists() else sorted((raw / table).glob("*.parquet"),
                                                    key=lambda p: int(p.stem.rsplit(".", 1)[-1]))


def _batches(files: list[Path], schema: pa.Schema):
    """The raw batches in the suite's types. A decimal goes through its text: Arrow's cast of
    decimal128 to float64 is not correctly rounded (24710.35 became 24710.350000000002)."""
    for f in files:
        for batch in pq.ParquetFile(f).iter_batches(batch_size=BATCH_ROWS):
            columns = [pc.cast(col, pa.string()) if pa.types.is_decimal(col.type) else col for col in batch.columns]
            yield pa.Table.from_arrays(columns, names=batch.schema.names).cast(schema)


def generate_tpch(sf: float, fmt: str, workers: int, folder: Path, progress: Any = None) -> dict[str, Any]:
    """Fill `folder` with every table at `sf` in `fmt`; return the folder's manifest (each table
    folder gets its own). The raw tpchgen output lives in a hidden folder inside and is removed."""
    from scalebench.datasets.generate import GENERATOR_VERSION, HashingWriter
    from scalebench.datasets.store import MANIFEST

    started = time.perf_counter()
    version = tpchgen_version()
    raw = folder / ".tpchgen"
    tables: dict[str, dict[str, Any]] = {}
    for table in TPCH_TABLES:
        parts = _parts(table, sf)
        cmd = [_tpchgen(), "parquet", "-s", f"{sf:g}", "-T", table, "-o", str(raw), "-n", str(workers),
               "--quiet", "--no-progress", "--overwrite"]
        if parts > 1:
            cmd += ["--parts", str(parts)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"tpchgen-cli failed for {table} at SF{sf:g}: {done.stderr.strip()[:500]}")
        schema, out = TPCH_SCHEMAS[table], folder / table
        out.mkdir()
        files: dict[str, dict[str, Any]] = {}
        rows_total = 0
        for i, src in enumerate(_raw_files(raw, table)):
            name = f"part-{i:05d}.parquet" if fmt == "parquet" else "data.csv"
            mode = "ab" if fmt == "csv" and i else "wb"
            with open(out / name, mode) as raw_file:
                sink = HashingWriter(raw_file)
                rows = _write(_batches([src], schema), schema, fmt, sink, header=(i == 0))
            rows_total += rows
            if fmt == "parquet":
                files[name] = {"rows": rows, "segments": [[0, (out / name).stat().st_size, sink.sha.hexdigest()]]}
            else:
                entry = files.setdefault(name, {"rows": 0, "segments": []})
                offset = sum(s[1] for s in entry["segments"])
                entry["rows"] += rows
                entry["segments"].append([offset, (out / name).stat().st_size - offset, sink.sha.hexdigest()])
            if progress is not None:
                progress(rows)
        for name, entry in files.items():
            entry["mtime_ns"] = (out / name).stat().st_mtime_ns
        shutil.rmtree(raw / table, ignore_errors=True)
        (raw / f"{table}.parquet").unlink(missing_ok=True)
        tables[table] = {
            "generator_version": GENERATOR_VERSION, "dataset": f"{TPCH_PREFIX}{table}", "format": fmt,
            "rows": rows_total, "family_rows": rows_total, "seed": 0, "scale_factor": sf, "generator": version,
            "parts": len(files) if fmt == "parquet" else 1,
            "schema": [[f.name, str(f.type)] for f in schema], "files": files,
            "bytes": sum(sum(s[1] for s in e["segments"]) for e in files.values()),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        (out / MANIFEST).write_text(json.dumps(tables[table], indent=1))
    shutil.rmtree(raw, ignore_errors=True)
    return {"generator_version": GENERATOR_VERSION, "dataset": "tpch", "format": fmt, "scale_factor": sf,
            "generator": version, "seed": 0, "tables": tables,
            "rows": tables["lineitem"]["rows"], "bytes": sum(t["bytes"] for t in tables.values()),
            "files": {f"{t}/{n}": e for t, m in tables.items() for n, e in m["files"].items()},
            "schema": [], "workers": workers, "elapsed_s": round(time.perf_counter() - started, 3),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def _write(batches, schema: pa.Schema, fmt: str, sink: Any, header: bool) -> int:
    """Write the batches to `sink` as Parquet, or as CSV rows (a header line first when asked:
    written here, since pyarrow quotes header names)."""
    rows = 0
    if fmt == "parquet":
        with pq.ParquetWriter(sink, schema, compression="snappy") as writer:
            for t in batches:
                writer.write_table(t, row_group_size=BATCH_ROWS)
                rows += t.num_rows
        return rows
    if header:
        sink.write((",".join(schema.names) + "\n").encode())
    options = pacsv.WriteOptions(include_header=False)
    with pacsv.CSVWriter(sink, schema, write_options=options) as writer:
        for t in batches:
            writer.write_table(t)
            rows += t.num_rows
    return rows
