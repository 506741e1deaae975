"""Say in one line what is wrong with a stage's input, the same way for every engine.

Each framework reports a broken CSV row or a cut-off Parquet file in its own words, buried
in its own stack trace (a Java one for Spark, a remote task's for Ray and Dask). The runner
asks diagnose() when a query fails, and raises BadInput with its answer, so the user reads
"users.csv line 12: column 'age': 'abc' is not an int32" whatever the engine.

diagnose() streams the input with pyarrow against the dataset's documented schema
(scalebench.datasets.schemas): memory stays at one block, never the whole file.
check_structure() is the cheap part of it (header line, Parquet footers): the runner calls
it once per query run, before timing, because some mistakes do not make every engine fail
(DuckDB reads CSV columns by position, so a misnamed column would be read silently; a
header-only file gives empty answers that equal an empty reference).
"""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from scalebench.datasets.schemas import schema_for
from scalebench.engines.base import StageInput

CSV_TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
BLOCK_SIZE = 4 << 20
"""Bytes of CSV parsed at once while scanning: bounds the scan's memory."""
_CONVERSION = re.compile(r"In CSV column #(\d+): Row #(\d+): CSV conversion error to (.+?): invalid value '(.*)'",
                         re.DOTALL)


class BadInput(ValueError):
    """The input of a query is malformed; the message names the file (line) and column."""


def normalise_name(name: str) -> str:
    """etl_users' column-name rule (strip, lower case, spaces to '_'): headers that differ only
    this way are accepted, as every engine accepts them."""
    return name.strip().lower().replace(" ", "_")


def diagnose(inp: StageInput) -> str | None:
    """One line describing the first problem of `inp` (or of a join's extra tables), or None
    when every file reads cleanly with the documented schema."""
    return _each(inp, full=True)


def check_structure(inp: StageInput) -> str | None:
    """The cheap checks only: files present, CSV header and a first row, Parquet footers and
    schemas. Reads a few bytes per file; no data is parsed."""
    return _each(inp, full=False)


def _each(inp: StageInput, full: bool) -> str | None:
    problem = _one(inp, full)
    if problem is not None:
        return problem
    for extra in inp.extra.values():
        problem = _each(extra, full)
        if problem is not None:
            return problem
    return None


def _one(inp: StageInput, full: bool) -> str | None:
    schema = schema_for(inp.dataset)
    if schema is None:
        return f"{inp.path}: unknown dataset {inp.dataset!r}"
    if inp.format == "csv":
        return _csv(Path(inp.path), schema.arrow, full)
    if inp.format == "parquet":
        files = [Path(f) for f in inp.files]
        if not files:
            return f"{inp.path}: no Parquet part files"
        for f in files:
            problem = _parquet(f, schema.arrow, full)
            if problem is not None:
                return problem
        return None
    return f"{inp.path}: unknown format {inp.format!r} (csv or parquet)"


# -- CSV -----------------------------------------------------------------------------


def _csv(path: Path, schema: pa.Schema, full: bool) -> str | None:
    try:
        with open(path, "rb") as f:
            first = f.readline()
            second = f.readline()
    except OSError as exc:
        return f"{path}: cannot read ({exc.strerror})"
    expected = ",".join(schema.names)
    if not first:
        return f"{path}: empty file (0 bytes); expected a header line '{expected}' and rows"
    try:
        header = first.decode("utf-8").rstrip("\r\n").split(",")
    except UnicodeDecodeError:
        return f"{path} line 1: header is not UTF-8 text; expected '{expected}'"
    names = [normalise_name(h) for h in header]
    missing = [c for c in schema.names if c not in names]
    if missing:
        return (f"{path} line 1: header lacks column(s) {', '.join(map(repr, missing))} "
                f"(has '{','.join(header)}', expected '{expected}')")
    unexpected = [h for h, n in zip(header, names, strict=True) if n not in schema.names]
    if unexpected or len(names) != len(set(names)):
        what = f"unexpected column(s) {', '.join(map(repr, unexpected))}" if unexpected else "duplicate columns"
        return f"{path} line 1: header has {what} ('{','.join(header)}', expected '{expected}')"
    if names != list(schema.names):  # DuckDB and Spark read CSV columns by position
        return f"{path} line 1: header columns out of order ('{','.join(header)}', expected '{expected}')"
    if not second.strip():
        return f"{path}: header only, no data rows"
    if not full:
        return None
    return _scan_csv(path, header, names, schema)


def _scan_csv(path: Path, header: list[str], names: list[str], schema: pa.Schema) -> str | None:
    """Stream the file with the documented column types; the first malformed row or value."""
    bad_rows: list[str] = []

    def invalid_row(row: pacsv.InvalidRow) -> str:
        if not bad_rows:
            where = f"line {row.number}" if row.number is not None else "a row"
            bad_rows.append(f"{path} {where}: {row.actual_columns} fields, expected {row.expected_columns} "
                            f"({','.join(header)}): {row.text[:80]!r}")
        return "skip"

    types = {h: schema.field(n).type for h, n in zip(header, names, strict=True)}
    try:
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=BLOCK_SIZE, use_threads=False),
            parse_options=pacsv.ParseOptions(invalid_row_handler=invalid_row),
            convert_options=pacsv.ConvertOptions(column_types=types, timestamp_parsers=[CSV_TIMESTAMP_FORMAT],
                                                 strings_can_be_null=False))
        for _ in reader:
            if bad_rows:
                return bad_rows[0]
    except pa.ArrowInvalid as exc:
        if bad_rows:  # a wrong field count came first
            return bad_rows[0]
        m = _CONVERSION.search(str(exc))
        if m:
            column, line, typ, value = int(m[1]), int(m[2]), m[3], m[4]
            name = header[column] if column < len(header) else f"#{column}"
            return f"{path} line {line}: column {name!r}: {value[:80]!r} is not a valid {typ}"
        return f"{path}: unreadable CSV ({str(exc).splitlines()[0][:200]})"
    except OSError as exc:
        return f"{path}: cannot read ({exc})"
    return bad_rows[0] if bad_rows else None


# -- Parquet -------------------------------------------------------------------------


def _kind(t: pa.DataType) -> str:
    """Types an engine reads interchangeably (int32 for int64, large_string for string)."""
    if pa.types.is_dictionary(t):
        return _kind(t.value_type)
    for kind, test in (("integer", pa.types.is_integer), ("floating", pa.types.is_floating),
                       ("string", lambda x: pa.types.is_string(x) or pa.types.is_large_string(x)),
                       ("bool", pa.types.is_boolean), ("timestamp", pa.types.is_timestamp),
                       ("date", pa.types.is_date)):
        if test(t):
            return kind
    return str(t)


def _parquet(path: Path, schema: pa.Schema, full: bool) -> str | None:
    try:
        pf = pq.ParquetFile(path)
    except FileNotFoundError:
        return f"{path}: missing"
    except OSError as exc:
        return f"{path}: cannot read ({exc.strerror or exc})"
    except (pa.ArrowInvalid, pa.ArrowException) as exc:
        size = path.stat().st_size if path.exists() else 0
        return f"{path}: not a readable Parquet file ({size} bytes; truncated? cannot read the footer: " \
               f"{str(exc).splitlines()[0][:160]})"
    try:
        have = pf.schema_arrow
        for field in schema:
            i = have.get_field_index(field.name)
            if i < 0:
                return f"{path}: column {field.name!r} missing (has {', '.join(have.names)})"
            got = have.field(i).type
            if _kind(got) != _kind(field.type) and not (
                    _kind(field.type) == "timestamp" and _kind(got) == "date"):
                return f"{path}: column {field.name!r} is {got}, expected {field.type}"
        if not full:
            return None
        for rg in range(pf.num_row_groups):  # every page decoded: a damaged middle shows here
            pf.read_row_group(rg, columns=schema.names)
    except (pa.ArrowException, OSError) as exc:
        return f"{path}: corrupt Parquet data ({str(exc).splitlines()[0][:200]})"
    finally:
        pf.close()
    return None
