"""polars: the in-process lifecycle and the reading every stage family shares.

polars has no cluster: start() only tells polars' streaming engine the memory budget (its
out-of-core settings, POLARS_OOC_*), and stop() puts the process's settings back. Every input is
a lazy scan typed from the dataset's documented schema (no inference), or with --io memory the
DataFrame load() collected, made lazy again. Every plan runs on the streaming engine, polars'
default and its out-of-core one: beyond the budget it spills instead of failing.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl

from scalebench.datasets.tables_tpch import TPCH_PREFIX
from scalebench.engines.base import Engine, StageInput
from scalebench.inputs import CSV_TIMESTAMP_FORMAT, normalise_name
from scalebench.reference_polars.read import CAST, TIMESTAMP, documented  # one home for polars' types

STREAMING = "streaming"

"""Parquet parts may carry narrower types than documented (int32 for int64): widened, never narrowed."""
OOC_BUDGET = "POLARS_OOC_MEMORY_BUDGET_MB"
"""The streaming engine's memory budget: past it, operators spill to disk."""
OOC_SPILL_DIR = "POLARS_OOC_SPILL_DIR"
"""Where it spills; polars fixes the folder at the process's first spill and removes its files itself."""
ANSWER_BYTES_PER_ROW = 128
"""A held answer's size in memory per row (db-benchmark's answers: about eight narrow columns)."""


def scan_parquet(files: list[Path] | tuple[Path, ...], dataset: str) -> pl.LazyFrame:
    """Parquet part files as one lazy scan with the documented schema; hive off, so the folders of a
    by-key layout add no column."""
    if not files:
        raise ValueError(f"{dataset}: no Parquet part files")
    return pl.scan_parquet([str(f) for f in files], schema=documented(dataset), hive_partitioning=False,
                           extra_columns="ignore", cast_options=CAST)


def scan_csv(path: Path, dataset: str) -> pl.LazyFrame:
    """The CSV typed from the schema. Header names are normalised (strip, lower case, spaces to '_')
    as every engine accepts them; timestamps are read as text and parsed strictly with the documented
    format; an empty field is null, except in TPC-H, which has no nulls (an empty text stays '')."""
    types = documented(dataset)
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\r\n").split(",")
    names = [normalise_name(h) for h in header]
    if sorted(names) != sorted(types):
        raise ValueError(f"{path}: header {','.join(header)!r} does not name the columns {','.join(types)!r}")
    raw = {h: pl.String() if types[n] == TIMESTAMP else types[n] for h, n in zip(header, names, strict=True)}
    lf = pl.scan_csv(path, has_header=True, schema=raw, infer_schema=False,
                     empty_string_is_null=not dataset.startswith(TPCH_PREFIX))
    lf = lf.rename(dict(zip(header, names, strict=True)))
    stamps = [pl.col(n).str.strptime(TIMESTAMP, CSV_TIMESTAMP_FORMAT, strict=True) for n, t in types.items()
              if t == TIMESTAMP]
    return (lf.with_columns(stamps) if stamps else lf).select(list(types))


def scan(inp: StageInput) -> pl.LazyFrame:
    """Every documented column of the input, typed, under its documented name."""
    if inp.format == "parquet":
        return scan_parquet(inp.files, inp.dataset)
    if inp.format == "csv":
        frames = [scan_csv(Path(f), inp.dataset) for f in inp.files]
        return frames[0] if len(frames) == 1 else pl.concat(frames)
    raise ValueError(f"{inp.path}: unknown format {inp.format!r} (csv or parquet)")


def _reload(name: str) -> None:
    """polars reads its settings from the environment; this re-reads one (what pl.Config's setters call)."""
    from polars import _plr

    _plr.config_reload_env_var(name)


class PolarsReader(Engine):
    """In-process lifecycle and reading, shared by every stage family."""

    name = "polars"

    def start(self) -> None:
        self._own_spill: Path | None = None
        self._saved_env: dict[str, str | None] = {}
        settings = {OOC_BUDGET: str(max(1, self.spec.memory_budget_bytes // 2**20))}
        if self.spec.spill_dir is not None:
            settings[OOC_SPILL_DIR] = str(self.spec.spill_dir)
        for name, value in settings.items():
            self._saved_env[name] = os.environ.get(name)
            os.environ[name] = value
            _reload(name)

    def stop(self) -> None:
        saved, self._saved_env = getattr(self, "_saved_env", {}), {}
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
            _reload(name)
        if getattr(self, "_own_spill", None):
            shutil.rmtree(self._own_spill, ignore_errors=True)
            self._own_spill = None

    def version(self) -> str:
        return pl.__version__

    def describe(self) -> dict[str, Any]:
        threads = pl.thread_pool_size()
        info = {**super().describe(), "idiom": "polars-lazy", "address": "in-process", "processes": 1,
                "threads": threads, "polars_engine": "streaming (collect(engine='streaming'), sink_parquet)",
                "memory_limit": f"{OOC_BUDGET}={os.environ.get(OOC_BUDGET)} (the streaming engine spills past it)",
                "spill_dir": os.environ.get(OOC_SPILL_DIR) or "polars' default temporary folder"}
        if threads != self.spec.cores:
            info["threads_note"] = (f"polars' thread pool has {threads} threads, fixed when polars is imported "
                                    f"(POLARS_MAX_THREADS, else the machine's cores): it cannot follow the "
                                    f"{self.spec.cores} cores of the spec")
        return info

    # -- reading --------------------------------------------------------------------------
    def _load_table(self, inp: StageInput) -> pl.DataFrame:
        """--io memory: the whole table collected into a polars DataFrame, as polars-benchmark holds it."""
        return scan(inp).collect(engine=STREAMING)

    def _frame(self, inp: StageInput) -> pl.LazyFrame:
        """The input as a lazy frame: the loaded DataFrame made lazy (--io memory), else a scan."""
        loaded = self.loaded(inp)
        self.last_notes["input"] = "a loaded polars DataFrame (.lazy())" if loaded is not None else "lazy scan"
        return loaded.lazy() if loaded is not None else scan(inp)

    def _streaming(self, inp: StageInput) -> None:
        """Notes for a plan on `inp`: the engine (always streaming, polars' default and its out-of-core
        engine), and whether the input and its extra tables, as stored, exceed the memory budget, so that
        an out-of-core cell says it was one."""
        read = inp.bytes + sum(t.bytes for t in inp.extra.values())
        self.last_notes.update(engine="streaming", input_bytes=read, over_budget=read > self.spec.memory_budget_bytes)

    def _collect(self, lf: pl.LazyFrame, inp: StageInput) -> pd.DataFrame:
        """The small answer collected by the streaming engine, as pandas (the form answers are compared in)."""
        self._streaming(inp)
        return lf.collect(engine=STREAMING).to_pandas()

    def _sink(self, lf: pl.LazyFrame, target: Path | pl.PartitionBy, inp: StageInput, **options: Any) -> None:
        """The plan written to Parquet by the streaming engine, batch by batch."""
        self._streaming(inp)
        lf.sink_parquet(target, engine=STREAMING, **options)

    def _spill_dir(self) -> Path:
        """A private folder for an answer too large to hold in memory (removed by stop())."""
        if self.spec.spill_dir is not None:
            return Path(tempfile.mkdtemp(prefix="polars-answer-", dir=self.spec.spill_dir))
        if self._own_spill is None:
            self._own_spill = Path(tempfile.mkdtemp(prefix="scalebench-polars-"))
        return Path(tempfile.mkdtemp(dir=self._own_spill))
