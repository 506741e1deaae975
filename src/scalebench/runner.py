"""Run one query of one engine on one dataset, and check its answer.

Shared by the pytest benchmarks, the asv suite, the tests and `scalebench check`:
the stage code lives in the engines, the glue lives here, once.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from scalebench.answers import WHOLE_ROWS_LIMIT, keyed_summary, release
from scalebench.datasets import StoredDataset, ensure_partitioned
from scalebench.engines import REFERENCE_ENGINE, ClusterSpec, Engine, engine_class
from scalebench.engines.base import MissingQuery, NotApplicable, StageInput
from scalebench.measure.cost import Prices
from scalebench.measure.rounds import benchmark_checked
from scalebench.stages import (
    DEFAULT_ZIPF,
    Query,
    WrongAnswer,
    answer_of,
    compare,
    normalise,
    resolve_dataset,
    sorted_answer,
)


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
    result: object = field(default=None, init=False)
    """The last run's answer: a DataFrame, an answers.Held, or None for a query that writes."""
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
        self.discard()
        self.engine.last_notes = {}

    def discard(self) -> None:
        """Drop the last answer unchecked: release what the engine holds, remove what it wrote."""
        release(self.result)
        self.result = None
        shutil.rmtree(self.out, ignore_errors=True)

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
        """The last run's answer as a frame (a held one is fetched and released: ask once per run).
        The engine's notes are worked out first (base.Later), while what it holds still exists."""
        self.engine.notes()
        result, self.result = self.result, None
        return answer_of(self.query, result, self.out if self.query.writes else None)

    def cleanup(self) -> None:
        self.discard()


@dataclass(frozen=True)
class Expected:
    """A reference answer in the form it is compared in: whole, or its keyed summary beyond
    answers.WHOLE_ROWS_LIMIT rows (then `columns` says which of an answer's columns it covers)."""

    frame: pd.DataFrame
    columns: tuple[str, ...]
    summarised: bool
    source: str
    """The implementation that computed it: 'duckdb' (the engine) or 'polars' (the second reference)."""

    @classmethod
    def of(cls, query: Query, answer: pd.DataFrame, source: str) -> Expected:
        if len(answer) <= WHOLE_ROWS_LIMIT:  # sorted once here, not at every round's check
            return cls(sorted_answer(answer, query.keys), tuple(answer.columns), False, source)
        columns = tuple(answer.columns)
        return cls(keyed_summary(normalise(answer), query.keys), columns, True, source)

    def check(self, query: Query, got: pd.DataFrame) -> None:
        """Raise WrongAnswer unless `got` equals this reference (whole, or through its summary)."""
        if not self.summarised:
            compare(query, got, self.frame, presorted=True)
            return
        missing = [c for c in self.columns if c not in got.columns]
        if missing:
            raise WrongAnswer(f"{query.id}: answer lacks column(s) {missing}; has {list(got.columns)}")
        summary = keyed_summary(normalise(got[list(self.columns)]), query.keys)
        compare(replace(query, keys=("rows",)), summary, self.frame)


@dataclass(frozen=True)
class Official:
    """TPC-H at SF1: the kit's official answer set, compared with the specification's rules
    (tpch.official); it shares no code with any engine."""

    question: str
    source: str = "official TPC-H SF1 answers (spec rules)"
    summarised: bool = False

    @staticmethod
    def applies(query: Query, data: StoredDataset) -> bool:
        from scalebench.tpch import OFFICIAL_SF

        return query.stage == "tpch" and data.manifest.get("scale_factor") == OFFICIAL_SF

    def check(self, query: Query, got: pd.DataFrame) -> None:
        from scalebench.tpch.official import OfficialMismatch, compare_official

        try:
            compare_official(self.question, got)
        except OfficialMismatch as exc:
            raise WrongAnswer(str(exc)) from None


SECOND_REFERENCE = "polars"
CROSS_CHECK_ROWS = 1_000_000
"""Up to this many input rows (the tiny and small sizes) the DuckDB reference's every answer is
itself checked against the second reference before any engine is checked against it."""


class References:
    """Reference answers, computed once per (query, dataset): DuckDB's for every engine but DuckDB,
    whose cells are checked against a second implementation sharing no code with it
    (scalebench.reference_polars); at small sizes that one checks the DuckDB reference too."""

    def __init__(self, out_root: Path, spec: ClusterSpec | None = None):
        self.out_root = Path(out_root)
        self.spec = spec or ClusterSpec(workers=1, threads_per_worker=2)
        self._answers: dict[tuple, Expected] = {}
        self._engine: Engine | None = None

    @staticmethod
    def _key(source: str, query: Query, data: StoredDataset) -> tuple:
        plain = query.reference_form()
        return source, plain.op, plain.variant, str(data.folder.parent)  # csv and parquet hold the same rows

    def answer(self, query: Query, data: StoredDataset, inp: StageInput | None = None) -> Expected:
        """DuckDB's answer; `inp` carries a join's other tables (by default the dataset alone)."""
        key = self._key(REFERENCE_ENGINE, query, data)
        if key not in self._answers:
            plain = query.reference_form()
            if self._engine is None:
                self._engine = engine_class(REFERENCE_ENGINE)(self.spec)
                self._engine.start()
            run = QueryRun(self._engine, plain, inp or stage_input(data), self.out_root / "reference")
            try:
                run.prepare()
                run()
                found = run.answer()
            finally:
                run.cleanup()
                # DuckDB runs in the driver and keeps its buffers until closed: close it, so the
                # next benchmark's memory does not start with the reference's (it restarts in ms)
                self.close()
            if (inp or stage_input(data)).rows <= CROSS_CHECK_ROWS:
                try:
                    self.second(query, data, inp).check(plain, found)
                except WrongAnswer as exc:
                    raise WrongAnswer(f"the {REFERENCE_ENGINE} reference disagrees with the {SECOND_REFERENCE} "
                                      f"reference: {exc}") from None
            self._answers[key] = Expected.of(plain, found, REFERENCE_ENGINE)
        return self._answers[key]

    def second(self, query: Query, data: StoredDataset, inp: StageInput | None = None) -> Expected:
        """The second reference's answer (scalebench.reference_polars), in the driver."""
        from scalebench import reference_polars

        key = self._key(SECOND_REFERENCE, query, data)
        if key not in self._answers:
            plain = query.reference_form()
            inp = inp or stage_input(data)
            out = self.out_root / SECOND_REFERENCE / f"{plain.id}-{inp.format}"
            shutil.rmtree(out, ignore_errors=True)
            try:
                result = reference_polars.run(plain, inp, out)
                found = answer_of(plain, result, out if plain.writes else None)
            finally:
                shutil.rmtree(out, ignore_errors=True)
            self._answers[key] = Expected.of(plain, found, SECOND_REFERENCE)
        return self._answers[key]

    def expected(self, run: QueryRun, data: StoredDataset) -> Expected | Official:
        """What `run` is checked against: never the engine's own code (TPC-H at SF1: the official answers)."""
        if Official.applies(run.query, data):
            return Official(str(run.query.variant))
        if run.engine.name == REFERENCE_ENGINE:
            return self.second(run.query, data, run.inp)
        return self.answer(run.query, data, run.inp)

    def check(self, run: QueryRun, data: StoredDataset) -> str:
        """Raise WrongAnswer unless the run's answer equals its reference; return what it was
        checked against, for the record."""
        expected = self.expected(run, data)
        expected.check(run.query, run.answer())
        if isinstance(expected, Official):
            return f"equal to the {expected.source}"
        return f"equal to {expected.source} reference" + (" (keyed summary)" if expected.summarised else "")

    def close(self) -> None:
        if self._engine is not None:
            self._engine.stop()
            self._engine = None


IO_MODES = ("storage", "memory")
"""storage: the query reads its input inside the timing. memory: Engine.load() before it."""


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
    prices: Prices = Prices()
    """Turn CPU seconds and GiB-seconds into a cost per query (measure.cost)."""


def benchmark_query(benchmark, run: QueryRun, data: StoredDataset, references: References,
                    rounds: int, measure: Measure = Measure(), io: str = "storage") -> dict:
    """Cold run, checked; then `rounds` warm rounds timed by pytest-benchmark, each checked;
    then, untimed, one run under memray for the driver's heap, checked too. With pytest-benchmark
    disabled, only the checked cold run (measure.rounds.benchmark_checked, shared with the ML
    benchmarks).

    `benchmark` is pytest-benchmark's fixture (anything with pedantic() and extra_info). Before
    each run, outside the timing, the output folder is cleared; after it, outside the timing and
    the memory sampler's window, its answer is checked (a held one fetched, then released).
    """
    references.expected(run, data)  # before any sampling: the reference is not the engine's

    def check(_: object) -> str:
        return references.check(run, data)

    _, measured = benchmark_checked(benchmark, run, check, rounds, engines=[run.engine], prepare=run.prepare,
                                    measure=measure, heap_name=f"{run.engine.name}-{run.query.id}-{data.format}")
    run.discard()
    median = measured["median_s"]
    info = {
        **run.engine.describe(),
        "stage": run.query.stage, "query": run.query.name, "dataset": data.dataset,
        "format": data.format, "rows": data.rows, "bytes": data.bytes,
        "data_folder": str(data.folder), "seed": data.manifest["seed"], "io": io,
        "throughput_rows_per_s": data.rows / median, "throughput_mb_per_s": data.bytes / 1e6 / median,
        "notes": run.engine.notes(),
        **measured,
    }
    if "scale_factor" in data.manifest:  # TPC-H: the size users compare with published figures
        info["scale_factor"] = data.manifest["scale_factor"]
    if str(info.get("address", "")).startswith("in-process"):
        info.pop("address")
    benchmark.extra_info.update(info)
    return info
