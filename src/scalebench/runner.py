"""Run one query of one engine on one dataset, and check its answer.

Shared by the pytest benchmarks, the asv suite, the tests and `scalebench check`:
the stage code lives in the engines, the glue lives here, once.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from scalebench.datasets import StoredDataset, ensure_partitioned
from scalebench.engines import REFERENCE_ENGINE, ClusterSpec, Engine, engine_class
from scalebench.engines.base import MissingQuery, NotApplicable, StageInput
from scalebench.measure import heap
from scalebench.measure.memory import TreeSampler, release_free_memory
from scalebench.stages import DEFAULT_ZIPF, Query, answer_of, compare, resolve_dataset


def stage_input(data: StoredDataset, extra: dict[str, StoredDataset] | None = None) -> StageInput:
    """The engine's view of a stored dataset; `extra` holds a join's other tables by role."""
    return StageInput(dataset=data.dataset, format=data.format, path=data.path,
                      files=tuple(data.files()), rows=data.rows, bytes=data.bytes,
                      columns=tuple(c for c, _ in data.manifest["schema"]),
                      partitioned_by=data.manifest.get("layout", {}).get("partitioned_by"),
                      extra={role: stage_input(d) for role, d in (extra or {}).items()})


def query_data(query: Query, get: Callable[[str], StoredDataset],
               zipf: float = DEFAULT_ZIPF) -> tuple[StoredDataset, StageInput]:
    """The query's main dataset and its StageInput with every extra table, via `get(dataset name)`."""
    data = get(resolve_dataset(query.dataset, zipf))
    if query.layout is not None:
        data = ensure_partitioned(data, query.layout)
    return data, stage_input(data, {role: get(name) for role, name in query.extra})


@dataclass
class QueryRun:
    """A query bound to an engine and an input, with a private output folder."""

    engine: Engine
    query: Query
    inp: StageInput
    out_root: Path
    result: pd.DataFrame | None = field(default=None, init=False)
    input_checked: bool = field(default=False, init=False, repr=False)

    @property
    def out(self) -> Path:
        return self.out_root / f"{self.engine.name}-{self.query.id}-{self.inp.format}"

    def prepare(self) -> None:
        """Untimed: clear what an earlier round wrote, so every round writes afresh. The first
        time, check the input's structure (header, Parquet footers): BadInput, not a wrong answer."""
        from scalebench.inputs import BadInput, check_structure

        if not self.input_checked:
            problem = check_structure(self.inp)
            if problem is not None:
                raise BadInput(problem)
            self.input_checked = True
        shutil.rmtree(self.out, ignore_errors=True)
        self.result = None
        self.engine.last_notes = {}

    def __call__(self) -> None:
        """Timed: the engine does the whole query, finishing the work. When it fails, a bad
        input is named (scalebench.inputs.diagnose), the same way for every engine, and no
        half-written output folder is left behind."""
        from scalebench.inputs import BadInput, diagnose

        try:
            self.result = self.engine.run_query(self.query, self.inp, self.out)
        except (NotApplicable, MissingQuery):
            raise
        except Exception as exc:
            if self.query.writes:
                shutil.rmtree(self.out, ignore_errors=True)
            problem = diagnose(self.inp)
            if problem is not None:
                raise BadInput(problem) from exc
            raise

    def answer(self) -> pd.DataFrame:
        return answer_of(self.query, self.result, self.out if self.query.writes else None)

    def cleanup(self) -> None:
        shutil.rmtree(self.out, ignore_errors=True)


class References:
    """Reference answers from the DuckDB engine, computed once per (query, dataset)."""

    def __init__(self, out_root: Path, spec: ClusterSpec | None = None):
        self.out_root = Path(out_root)
        self.spec = spec or ClusterSpec(workers=1, threads_per_worker=2)
        self._answers: dict[tuple[str, str], pd.DataFrame] = {}
        self._engine: Engine | None = None

    def answer(self, query: Query, data: StoredDataset, inp: StageInput | None = None) -> pd.DataFrame:
        """`inp` carries a join's other tables; by default the dataset alone."""
        plain = query.reference_form()
        key = (plain.op, plain.variant, str(data.folder.parent))  # csv and parquet hold the same rows
        if key not in self._answers:
            if self._engine is None:
                self._engine = engine_class(REFERENCE_ENGINE)(self.spec)
                self._engine.start()
            run = QueryRun(self._engine, plain, inp or stage_input(data), self.out_root / "reference")
            try:
                run.prepare()
                run()
                self._answers[key] = run.answer()
            finally:
                run.cleanup()
                # DuckDB runs in the driver and keeps its buffers until closed: close it, so the
                # next benchmark's memory does not start with the reference's (it restarts in ms)
                self.close()
        return self._answers[key]

    def check(self, run: QueryRun, data: StoredDataset) -> None:
        """Raise WrongAnswer unless the run's answer equals the reference."""
        compare(run.query, run.answer(), self.answer(run.query, data, run.inp))

    def close(self) -> None:
        if self._engine is not None:
            self._engine.stop()
            self._engine = None


OOM_MARKERS = ("MemoryError", "OutOfMemory", "out of memory", "Java heap space", "KilledWorker",
               "ObjectStoreFull", "GC overhead limit", "memory limit")


def out_of_memory(exc: BaseException) -> str | None:
    """A one-line description when `exc` (or its cause) says memory ran out; else None.

    Frameworks report it in their own words (Dask kills the worker, Ray's memory monitor
    kills the task, the JVM throws OutOfMemoryError), so look at type names and messages."""
    seen = 0
    while exc is not None and seen < 10:
        text = f"{type(exc).__name__}: {exc}"
        if any(marker.lower() in text.lower() for marker in OOM_MARKERS):
            return text.splitlines()[0][:300]
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


@dataclass(frozen=True)
class Measure:
    """What to record around a benchmark besides its time."""

    sample_interval: float | None = 0.05
    """Tree memory sampling period during cold run and rounds; None turns the sampler off."""
    memray: bool = True
    """One extra, untimed run under memray for the driver's peak heap (when memray is installed)."""
    memray_dir: Path | None = None
    """Keep memray capture files here (for flame graphs); None discards them."""


def benchmark_query(benchmark, run: QueryRun, data: StoredDataset, references: References,
                    rounds: int, measure: Measure = Measure()) -> dict:
    """Cold run, checked; then `rounds` warm rounds timed by pytest-benchmark, checked again;
    then, untimed, one run under memray for the driver's heap. With pytest-benchmark disabled,
    only the checked cold run.

    `benchmark` is pytest-benchmark's fixture (anything with pedantic() and extra_info).
    Set-up (clearing the output folder) happens between rounds, outside the timing. The
    tree memory sampler runs through the cold run and the rounds: peak memory is the
    whole cluster's.
    """
    sampler = TreeSampler(measure.sample_interval, run.engine.pids) if measure.sample_interval else None
    spilled_before = run.engine.spilled_bytes()
    references.answer(run.query, data, run.inp)  # before the sampler: the reference is not the engine's
    run.prepare()
    release_free_memory()
    with sampler or contextlib.nullcontext():
        started = time.perf_counter()
        run()
        cold_s = time.perf_counter() - started
    references.check(run, data)  # outside the sampled window: the check's memory is not the engine's
    notes = dict(run.engine.last_notes)
    # --benchmark-disable (CI) times and saves nothing: the checked cold run is the whole test,
    # and repeating it as a round and under memray would only double the suite's time
    recorded = not getattr(benchmark, "disabled", False)
    if recorded:
        with sampler or contextlib.nullcontext():
            benchmark.pedantic(run, setup=run.prepare, rounds=rounds, iterations=1, warmup_rounds=0)
        references.check(run, data)
    spilled_after = run.engine.spilled_bytes()
    stats = getattr(getattr(benchmark, "stats", None), "stats", None)
    median = getattr(stats, "median", None) or cold_s
    info = {
        **run.engine.describe(),
        "stage": run.query.stage, "query": run.query.name, "dataset": data.dataset,
        "format": data.format, "rows": data.rows, "bytes": data.bytes,
        "data_folder": str(data.folder), "seed": data.manifest["seed"],
        "rounds": rounds, "cold_s": cold_s,
        "throughput_rows_per_s": data.rows / median, "throughput_mb_per_s": data.bytes / 1e6 / median,
        "check": f"equal to {REFERENCE_ENGINE} reference", "notes": notes,
        # over the cold run and every round; None where the framework does not report it
        "spilled_bytes": None if spilled_before is None or spilled_after is None else spilled_after - spilled_before,
    }
    if sampler:
        info.update(sampler.summary())
    if recorded and measure.memray and heap.available():
        run.prepare()
        info.update(heap.peak_heap(run, measure.memray_dir, f"{run.engine.name}-{run.query.id}-{data.format}"))
    if str(info.get("address", "")).startswith("in-process"):
        info.pop("address")
    benchmark.extra_info.update(info)
    return info
