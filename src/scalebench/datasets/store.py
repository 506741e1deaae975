"""The validated on-disk cache of generated datasets: where a folder goes, its manifest,
and the lock and rename that make it appear whole (the files themselves: generate.py;
derived layouts: layout.py).

Layout: <data_dir>/<dataset>/r<rows>-s<seed>-g<generator>/<format>/ holding
_manifest.json and the data files (csv: data.csv, half1.csv, half2.csv;
parquet: part-NNNNN.parquet). A format folder is built under a temporary name
and renamed into place only when complete, under a file lock, so a crashed or
concurrent run never leaves a folder that looks valid.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

# Names imported `as` themselves lived here before generation moved to generate.py (and workers.py) and
# stay importable from here.
from scalebench.atomic import atomic_path
from scalebench.datasets.generate import CHUNK_ROWS as CHUNK_ROWS
from scalebench.datasets.generate import GENERATOR_VERSION, generate_folder
from scalebench.datasets.generate import PART_ROWS_MAX as PART_ROWS_MAX
from scalebench.datasets.generate import Part as Part
from scalebench.datasets.generate import bytes_per_row as bytes_per_row
from scalebench.datasets.generate import plan_parts as plan_parts
from scalebench.datasets.generate import rows_for_memory as rows_for_memory
from scalebench.datasets.layout import PARTITION_BUCKETS, partition
from scalebench.datasets.schemas import KEYS_PREFIX, SCHEMAS, schema_for
from scalebench.datasets.schemas import Schema as Schema
from scalebench.datasets.workers import FORK_SAFE_THREADS as FORK_SAFE_THREADS
from scalebench.datasets.workers import default_workers as default_workers

FORMATS = ("csv", "parquet")
MANIFEST = "_manifest.json"  # "_" prefix: every engine skips it when reading the folder
ENV_DATA_DIR = "SCALEBENCH_DATA_DIR"


class DatasetError(ValueError):
    """Bad request or unusable folder; the message names the file or option."""


def default_data_dir() -> Path:
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        return local_dir(env) if env.lower().startswith("file://") else Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "scalebench" / "data"


def local_dir(data_dir: Path | str) -> Path:
    """A local folder from a path or a file:// URL. Other URL schemes (s3://, hdfs://) are
    refused by name: this version generates and reads datasets on a local file system only."""
    if isinstance(data_dir, Path):
        return data_dir.expanduser()
    text = str(data_dir)
    scheme, sep, _ = text.partition("://")
    if not sep:
        return Path(text).expanduser()
    if scheme.lower() != "file":
        raise DatasetError(f"--data-dir: {text}: this version reads only local folders and file:// URLs, "
                           f"not {scheme}://; mount it or copy the data to a local path")
    parsed = urlparse(text)
    if parsed.netloc not in ("", "localhost"):
        raise DatasetError(f"--data-dir: {text}: a file:// URL must name a path on this machine "
                           f"(file:///path), not host {parsed.netloc!r}")
    return Path(url2pathname(parsed.path))


def check_data_dir(data_dir: Path | str) -> Path:
    path = local_dir(data_dir)
    if path.exists() and not path.is_dir():
        raise DatasetError(f"--data-dir: {path} exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetError(f"--data-dir: cannot create {path}: {exc.strerror}") from None
    return path


# -- the cache ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredDataset:
    """A complete, validated format folder."""

    folder: Path
    manifest: dict[str, Any]

    @property
    def dataset(self) -> str:
        return self.manifest["dataset"]

    @property
    def format(self) -> str:
        return self.manifest["format"]

    @property
    def rows(self) -> int:
        return self.manifest["rows"]

    @property
    def bytes(self) -> int:
        return self.manifest["bytes"]

    def files(self, which: str = "data") -> list[Path]:
        """csv: the one file ('data', 'half1', 'half2'); parquet: every part file in order."""
        if self.format == "csv":
            return [self.folder / f"{which}.csv"]
        return [self.folder / name for name in sorted(self.manifest["files"])]

    @property
    def path(self) -> Path:
        return self.files()[0] if self.format == "csv" else self.folder


def dataset_folder(data_dir: Path, name: str, rows: int, seed: int, fmt: str) -> Path:
    return Path(data_dir) / name / f"r{rows}-s{seed}-g{GENERATOR_VERSION}" / fmt


def validate(folder: Path) -> StoredDataset:
    """Raise DatasetError naming the first problem; return the dataset when sound.

    Sizes are always checked; checksums are recomputed for any file whose
    modification time differs from the manifest's (an edit in place changes it).
    """
    folder = Path(folder)
    mpath = folder / MANIFEST
    try:
        manifest = json.loads(mpath.read_text())
    except FileNotFoundError:
        raise DatasetError(f"{folder}: no {MANIFEST}; not a complete dataset") from None
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{mpath}: unreadable manifest ({exc})") from None
    if manifest.get("generator_version") != GENERATOR_VERSION:
        raise DatasetError(f"{mpath}: made by generator version {manifest.get('generator_version')}, "
                           f"this is version {GENERATOR_VERSION}")
    listed = manifest.get("files", {})
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST}
    extra = sorted(present - set(listed))
    if extra:
        raise DatasetError(f"{folder / extra[0]}: file not in the manifest")
    for name, entry in listed.items():
        path = folder / name
        try:
            st = path.stat()
        except FileNotFoundError:
            raise DatasetError(f"{path}: missing") from None
        size = sum(seg[1] for seg in entry["segments"])
        if st.st_size != size:
            raise DatasetError(f"{path}: {st.st_size} bytes, manifest says {size} (truncated or altered)")
        if st.st_mtime_ns != entry["mtime_ns"]:
            for offset, length, digest in entry["segments"]:
                if _sha256_file(path, offset, length) != digest:
                    raise DatasetError(f"{path}: checksum differs from the manifest (altered)")
    return StoredDataset(folder, manifest)


def _sha256_file(path: Path, offset: int = 0, length: int | None = None) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(offset)
        left = length if length is not None else math.inf
        while left > 0:
            block = f.read(int(min(8 << 20, left)))
            if not block:
                break
            h.update(block)
            left -= len(block)
    return h.hexdigest()


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def ensure(name: str, rows: int, fmt: str, *, data_dir: Path | str | None = None, seed: int = 42,
           workers: int | None = None, force: bool = False, progress: Any = None) -> StoredDataset:
    """The dataset folder, generated unless a valid one is cached.

    `rows` is the size of the dataset's family: the table itself for most datasets, the
    table it joins for a join's right tables and dimensions (Schema.table_rows).
    `progress`, when given, is called with the number of rows just finished. A TPC-H table
    (tpch_<table>) comes from ensure_tpch at the scale factor that goes with `rows`
    (tables_tpch.sf_for_rows): its own row count follows from the scale factor.
    """
    from scalebench.datasets.tables_tpch import sf_for_rows, table_of

    table = table_of(name)
    if table is not None and isinstance(rows, int) and rows >= 1:
        return tpch_table(ensure_tpch(sf_for_rows(rows), fmt, data_dir=data_dir, workers=workers, force=force), table)
    schema = schema_for(name)
    if schema is None:
        raise DatasetError(f"unknown dataset {name!r}; choose from {', '.join(SCHEMAS)}, "
                           f"{KEYS_PREFIX}<Zipf exponent>")
    if fmt not in FORMATS:
        raise DatasetError(f"--format: unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    if not isinstance(rows, int) or rows < 1:
        raise DatasetError(f"--rows: {rows!r} must be a whole number of rows, at least 1")
    if workers is not None and workers < 1:
        raise DatasetError(f"--workers: {workers} must be at least 1")
    data = check_data_dir(data_dir if data_dir is not None else default_data_dir())
    final = dataset_folder(data, name, rows, seed, fmt)
    return _build_once(final, lambda tmp: generate_folder(schema, rows, fmt, seed, workers, tmp, progress), force)


def _build_once(final: Path, build: Any, force: bool = False) -> StoredDataset:
    """The valid folder `final`, else `build(tmp folder) -> manifest` under the folder's lock,
    renamed into place only when complete; a failed build leaves nothing behind."""
    label = final.name
    with _locked(final.parent / f".{label}.lock"):
        if final.exists():
            if not force:
                with contextlib.suppress(DatasetError):
                    return validate(final)
            _discard(final)
        for stale in final.parent.glob(f".{label}.tmp-*"):  # left by a crashed run; we hold the lock
            shutil.rmtree(stale, ignore_errors=True)
        made = False  # an OSError of mkdir itself propagates as is; later ones become one line
        try:
            with atomic_path(final) as tmp:  # .{label}.tmp-PID-RANDOM, removed on failure
                tmp.mkdir()
                made = True
                manifest = build(tmp)
                (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        except OSError as exc:
            if made and exc.errno is not None:
                raise DatasetError(f"{final}: could not write the dataset: {exc.strerror}") from exc
            raise
    return validate(final)


def ensure_tpch(sf: float, fmt: str, *, data_dir: Path | str | None = None, workers: int | None = None,
                force: bool = False, progress: Any = None) -> StoredDataset:
    """TPC-H's eight tables at scale factor `sf` (tables_tpch), generated unless a valid folder is
    cached: <data_dir>/tpch/sf<SF>-g<generator>/<format>/<table>/; tpch_table() gives one table."""
    from scalebench.datasets.tables_tpch import MIN_SF, TpchgenMissing, generate_tpch

    if fmt not in FORMATS:
        raise DatasetError(f"--format: unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    if not isinstance(sf, int | float) or not sf >= MIN_SF:
        raise DatasetError(f"--tpch-sf: {sf!r} must be a scale factor of at least {MIN_SF:g}")
    data = check_data_dir(data_dir if data_dir is not None else default_data_dir())
    final = Path(data) / "tpch" / f"sf{sf:g}-g{GENERATOR_VERSION}" / fmt
    try:
        return _build_once(final, lambda tmp: generate_tpch(sf, fmt, workers or default_workers(), tmp, progress),
                           force)
    except TpchgenMissing as exc:
        raise DatasetError(str(exc)) from None


def tpch_table(data: StoredDataset, table: str) -> StoredDataset:
    """One table of an ensure_tpch folder, validated with its own manifest."""
    if table not in data.manifest.get("tables", {}):
        raise DatasetError(f"{data.folder}: no TPC-H table {table!r}")
    return validate(data.folder / table)


def ensure_partitioned(data: StoredDataset, column: str, buckets: int = PARTITION_BUCKETS, *,
                       force: bool = False) -> StoredDataset:
    """The same rows as the Parquet dataset `data`, laid out hive-style by `column % buckets`:
    `<column>_bucket=NN/part-00000.parquet`, every row of a key in one file, so a groupby or
    join on the key can run bucket by bucket without a shuffle. Made once, next to `data`."""
    if data.format != "parquet" or data.manifest.get("layout"):
        raise DatasetError(f"{data.folder}: a partitioned layout is made from a plain Parquet dataset")
    if column not in dict(data.manifest["schema"]):
        raise DatasetError(f"{data.folder}: no column {column!r} to partition by")
    if not isinstance(buckets, int) or buckets < 1:
        raise DatasetError(f"buckets: {buckets!r} must be a whole number, at least 1")
    final = data.folder.with_name(f"parquet-by-{column}{buckets}")
    return _build_once(final, lambda tmp: partition(data, column, buckets, tmp), force)


def _discard(folder: Path) -> None:
    trash = folder.with_name(f".{folder.name}.trash-{uuid.uuid4().hex[:8]}")
    os.rename(folder, trash)
    shutil.rmtree(trash, ignore_errors=True)

