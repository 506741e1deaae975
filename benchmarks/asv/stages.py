"""asv suite: the same stage code as the pytest benchmarks (scalebench.runner), history across commits.

    asv run --quick -E existing            # the current environment, one sample each
    asv continuous main HEAD               # two commits, built in fresh virtualenvs
    asv publish && asv preview

Rows come from SCALEBENCH_ASV_ROWS (default 200k); data from SCALEBENCH_DATA_DIR.
Cluster start is in setup(), so it is never timed.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from pathlib import Path

from scalebench.datasets import ensure
from scalebench.engines import ENGINE_NAMES, ClusterSpec, EngineUnavailable, engine_class
from scalebench.measure.memory import TreeSampler
from scalebench.runner import QueryRun, References, query_data
from scalebench.stages import QUERIES

ROWS = int(float(os.environ.get("SCALEBENCH_ASV_ROWS", "200000")))
QUERY_IDS = ["etl-users", "groupby-age", "sort-global", "h2o_groupby-q3", "join-large", "tpch-q5"]  # one per stage
FORMAT = "parquet"
_QUERY = {q.id: q for q in QUERIES}


def _ensure(name: str):
    # one process: asv runs benchmarks from its own server process, where forking helpers is unsafe
    return ensure(name, ROWS, FORMAT, workers=1)


def _prepare_data() -> dict[str, str]:
    folders = {}
    for query in QUERY_IDS:
        data, inp = query_data(_QUERY[query], _ensure)
        folders[query] = str(data.folder)
    return folders


class _StageBench:
    params = (list(ENGINE_NAMES), QUERY_IDS)
    param_names = ["engine", "query"]
    timeout = 900
    number = 1
    repeat = (1, 5, 60.0)
    warmup_time = 0

    def setup_cache(self) -> dict[str, str]:
        return _prepare_data()

    def setup(self, folders: dict[str, str], engine: str, query: str) -> None:
        q = _QUERY[query]
        data, inp = query_data(q, _ensure)
        try:
            self.engine = engine_class(engine)(ClusterSpec(workers=2, memory_budget_bytes=2 * 2**30))
            self.engine.start()
        except EngineUnavailable as exc:
            raise NotImplementedError(str(exc)) from exc  # asv records the cell as skipped
        self.tmp = Path(tempfile.mkdtemp(prefix="scalebench-asv-"))
        self.inp = inp
        self.query, self.data = q, data
        self.runs = itertools.count()

    def teardown(self, folders: dict[str, str], engine: str, query: str) -> None:
        self.engine.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _run(self) -> QueryRun:
        """One run into a fresh folder (no clean-up inside the timing)."""
        run = QueryRun(self.engine, self.query, self.inp, self.tmp / str(next(self.runs)))
        run()
        return run


class TimeStages(_StageBench):
    def time_query(self, folders: dict[str, str], engine: str, query: str) -> None:
        self._run()  # QUERY_IDS hold no answers.held() question, so nothing stays persisted


class TrackStages(_StageBench):
    unit = "bytes"

    def track_peak_tree_memory(self, folders: dict[str, str], engine: str, query: str) -> int:
        """Peak PSS of the whole process tree (driver, workers, JVM, object store) during one run."""
        with TreeSampler(interval=0.05, extra_pids=self.engine.pids) as mem:
            run = self._run()
        refs = References(self.tmp / "ref")
        try:  # a wrong answer is a failed benchmark, here too
            refs.check(run, self.data)
        finally:
            refs.close()
        return mem.peak_pss
