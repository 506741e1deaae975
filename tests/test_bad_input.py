"""Bad input gets one clear message naming the file (line), column, option or address.

Damaged copies of a tiny generated dataset (a broken row, a missing column, a wrong type, an
empty file, a cut-off Parquet part) fail every engine with the same BadInput message and leave
no half-written output; a cache folder without its manifest is regenerated; an unreachable
cluster address is an error (not a skip) within seconds; a default port that is already taken
does not stop a local cluster; a missing Java skips Spark only; bad pytest options are one
UsageError. Observed messages are printed (run with -s to see them).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from scalebench.datasets import StoredDataset, ensure, validate
from scalebench.datasets.store import MANIFEST
from scalebench.engines import ENGINE_NAMES, ClusterSpec, EngineUnavailable, engine_class
from scalebench.engines.base import ClusterUnreachable, StageInput
from scalebench.inputs import BadInput, check_structure, diagnose
from scalebench.measure.procs import descendants, describe
from scalebench.runner import QueryRun, References, stage_input
from scalebench.stages import QUERIES

REPO = Path(__file__).resolve().parents[1]
ROWS = 400
"""Tiny: a few hundred rows are enough to break one of them."""
GROUPBY_AGE = next(q for q in QUERIES if q.op == "groupby_age")
ETL_USERS = next(q for q in QUERIES if q.op == "etl_users")
HEADER = "id,name,age,salary,signup_date,is_active"


# -- damaged copies of a tiny users dataset ----------------------------------------------


def _copy(data: StoredDataset, dest: Path) -> StageInput:
    """A private copy of the dataset's data files (no manifest: nothing here is trusted)."""
    dest.mkdir(parents=True)
    files = []
    for f in data.files():
        shutil.copy(f, dest / f.name)
        files.append(dest / f.name)
    path = files[0] if data.format == "csv" else dest
    return StageInput(dataset=data.dataset, format=data.format, path=path, files=tuple(files), rows=data.rows,
                      bytes=data.bytes, columns=tuple(c for c, _ in data.manifest["schema"]))


def _edit_lines(path: Path, edit: Callable[[list[str]], list[str]]) -> None:
    lines = path.read_text().splitlines()
    path.write_text("".join(line + "\n" for line in edit(lines)))


def _replace_field(lines: list[str], line_no: int, column: int, value: str) -> list[str]:
    """Line numbers count from 1, the header being line 1."""
    fields = lines[line_no - 1].split(",")
    fields[column] = value
    lines[line_no - 1] = ",".join(fields)
    return lines


def csv_fields(p: Path) -> None:
    _edit_lines(p, lambda ls: ls[:99] + [",".join(ls[99].split(",")[:5])] + ls[100:])  # line 100: 5 fields


def csv_missing_column(p: Path) -> None:
    _edit_lines(p, lambda ls: [",".join(f for i, f in enumerate(line.split(",")) if i != 3) for line in ls])


def csv_age_abc(p: Path) -> None:
    _edit_lines(p, lambda ls: _replace_field(ls, 50, 2, "abc"))


def csv_salary_12x(p: Path) -> None:
    _edit_lines(p, lambda ls: _replace_field(ls, 201, 3, "12x"))


def csv_empty(p: Path) -> None:
    p.write_bytes(b"")


def csv_header_only(p: Path) -> None:
    p.write_text(HEADER + "\n")


def _first_part(p: Path) -> Path:
    return sorted(p.glob("part-*.parquet"))[0]


def parquet_truncated(p: Path) -> None:
    part = _first_part(p)
    data = part.read_bytes()
    part.write_bytes(data[: len(data) // 2])


def parquet_missing_column(p: Path) -> None:
    part = _first_part(p)
    pq.write_table(pq.read_table(part).drop_columns(["salary"]), part)


def parquet_wrong_type(p: Path) -> None:
    part = _first_part(p)
    t = pq.read_table(part)
    pq.write_table(t.set_column(t.schema.get_field_index("age"), "age", t["age"].cast(pa.string())), part)


def parquet_corrupt_page(p: Path) -> None:
    """Footer intact, the first page header of column 'age' overwritten: only reading the data shows it."""
    part = _first_part(p)
    offset = pq.ParquetFile(part).metadata.row_group(0).column(2).data_page_offset
    data = bytearray(part.read_bytes())
    data[offset:offset + 12] = b"\xff" * 12
    part.write_bytes(bytes(data))


DAMAGES: dict[str, tuple[str, Callable[[Path], None], str]] = {
    # case: (format, damage applied to the csv file / parquet folder, expected message after the path)
    "csv-wrong-field-count": ("csv", csv_fields, " line 100: 5 fields, expected 6 (" + HEADER + ")"),
    "csv-missing-column": ("csv", csv_missing_column, " line 1: header lacks column(s) 'salary'"),
    "csv-age-not-int": ("csv", csv_age_abc, " line 50: column 'age': 'abc' is not a valid int32"),
    "csv-salary-not-float": ("csv", csv_salary_12x, " line 201: column 'salary': '12x' is not a valid double"),
    "csv-empty-file": ("csv", csv_empty, ": empty file (0 bytes); expected a header line '" + HEADER + "'"),
    "csv-header-only": ("csv", csv_header_only, ": header only, no data rows"),
    "parquet-truncated": ("parquet", parquet_truncated, ": not a readable Parquet file"),
    "parquet-missing-column": ("parquet", parquet_missing_column, ": column 'salary' missing (has id, name, age,"),
    "parquet-wrong-type": ("parquet", parquet_wrong_type, ": column 'age' is string, expected int32"),
    "parquet-corrupt-page": ("parquet", parquet_corrupt_page, ": corrupt Parquet data (Couldn't deserialize thrift"),
}
STRUCTURAL = {"csv-missing-column", "csv-empty-file", "csv-header-only", "parquet-truncated",
              "parquet-missing-column", "parquet-wrong-type"}
"""Found by the cheap check before the query runs; the others only by the scan after a failure."""


@pytest.fixture(scope="module")
def tiny_users(tmp_path_factory: pytest.TempPathFactory) -> dict[str, StoredDataset]:
    data_dir = tmp_path_factory.mktemp("bad-input-data")
    return {fmt: ensure("users", ROWS, fmt, data_dir=data_dir, workers=1) for fmt in ("csv", "parquet")}


def _damaged(tiny_users: dict[str, StoredDataset], case: str, dest: Path) -> tuple[StageInput, str]:
    fmt, damage, message = DAMAGES[case]
    inp = _copy(tiny_users[fmt], dest)
    damage(inp.path)
    where = _first_part(inp.path) if case.startswith("parquet") else inp.path
    return inp, f"{where}{message}"


def test_a_sound_input_has_no_problem(tiny_users, tmp_path):
    for fmt, data in tiny_users.items():
        inp = _copy(data, tmp_path / fmt)
        assert check_structure(inp) is None and diagnose(inp) is None


@pytest.mark.parametrize("case", DAMAGES)
def test_diagnose_names_file_line_and_column(tiny_users, tmp_path, case):
    inp, expected = _damaged(tiny_users, case, tmp_path / "copy")
    problem = diagnose(inp)
    print(f"\n{case}: {problem}")
    assert problem is not None and problem.startswith(expected), problem
    assert "\n" not in problem
    assert (check_structure(inp) is not None) == (case in STRUCTURAL)


def test_a_bad_extra_table_is_named_too(tiny_users, tmp_path):
    """A join's right-hand table is checked like the main input."""
    main = _copy(tiny_users["parquet"], tmp_path / "main")
    extra, expected = _damaged(tiny_users, "csv-age-not-int", tmp_path / "extra")
    joined = StageInput(**{**main.__dict__, "extra": {"accounts": extra}})
    assert diagnose(joined).startswith(expected)


def test_csv_lines_are_counted_past_the_first_block(tmp_path, monkeypatch):
    """Line numbers stay right when the scan reads the file in several blocks."""
    import scalebench.inputs as inputs

    data = ensure("points", 50_000, "csv", data_dir=tmp_path / "d", workers=1)
    inp = _copy(data, tmp_path / "copy")
    _edit_lines(inp.path, lambda ls: _replace_field(ls, 45_678, 1, "0.5x"))
    monkeypatch.setattr(inputs, "BLOCK_SIZE", 64 << 10)
    assert diagnose(inp) == f"{inp.path} line 45678: column 'x': '0.5x' is not a valid double"


# -- every engine gives the same message --------------------------------------------------


def _started(name: str):
    try:
        engine = engine_class(name)(ClusterSpec(workers=1, threads_per_worker=2, memory_budget_bytes=2 * 2**30))
        engine.start()
    except EngineUnavailable as exc:
        pytest.skip(str(exc))
    return engine


@pytest.fixture(scope="module", params=ENGINE_NAMES)
def engine(request):
    """One local cluster per engine for all the damage cases; nothing it started survives."""
    before = {p.pid for p in descendants()}
    eng = _started(request.param)
    try:
        yield eng
    finally:
        eng.stop()
        deadline = time.monotonic() + 20
        while (left := [describe(p) for p in descendants() if p.pid not in before]) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert left == [], f"{request.param} left processes behind: {left}"


def _benchmark_steps(run: QueryRun, refs: References) -> tuple[BadInput | None, str]:
    """What benchmark_query does (prepare, run, check against the reference): which step
    raised BadInput, and the exception."""
    try:
        run.prepare()
    except BadInput as exc:
        return exc, "before the query"
    try:
        run()
    except BadInput as exc:
        return exc, f"query failed with {type(exc.__cause__).__name__}"
    try:  # the engine answered: the reference (DuckDB, reading every column) must still refuse
        refs.check(run, StoredDataset(Path(run.inp.path), {}))
    except BadInput as exc:
        return exc, f"{run.engine.name} answered; the reference check failed with {type(exc.__cause__).__name__}"
    return None, "no error"


@pytest.mark.parametrize("case", DAMAGES)
def test_every_engine_names_the_bad_input(engine, tiny_users, tmp_path, case):
    inp, expected = _damaged(tiny_users, case, tmp_path / "copy")
    refs = References(tmp_path / "ref")
    try:
        error, step = _benchmark_steps(QueryRun(engine, GROUPBY_AGE, inp, tmp_path / "out"), refs)
    finally:
        refs.close()
    print(f"\n{engine.name} {case}: {error}\n    ({step})")
    assert error is not None, f"{engine.name} accepted {case}"
    assert str(error).startswith(expected)
    # the cheap check answers before any engine work; otherwise the engine failed first
    assert (step == "before the query") == (case in STRUCTURAL)


@pytest.mark.parametrize("case", ["csv-wrong-field-count", "csv-salary-not-float"])
def test_a_failed_write_leaves_no_output_folder(engine, tiny_users, tmp_path, case):
    inp, expected = _damaged(tiny_users, case, tmp_path / "copy")
    run = QueryRun(engine, ETL_USERS, inp, tmp_path / "out")
    run.prepare()
    if engine.name == "polars" and case == "csv-wrong-field-count":
        # polars' CSV reader fills a short row with nulls and has no strict mode (README, Bad input):
        # the query runs, the answer check would fail it, and the scan names the line
        run()
        assert diagnose(inp).startswith(expected)
        return
    with pytest.raises(BadInput, match="^" + expected.replace("(", r"\(").replace(")", r"\)")):
        run()
    assert not run.out.exists(), sorted(str(p) for p in run.out.rglob("*"))
    # and the same engine still works on sound input afterwards
    good = QueryRun(engine, ETL_USERS, stage_input(tiny_users["csv"]), tmp_path / "out")
    good.prepare()
    good()
    assert any(good.out.rglob("*.parquet"))


# -- the cache never uses a folder without its manifest -----------------------------------


def test_a_folder_without_manifest_is_regenerated_not_used(tmp_path):
    """test_datasets covers damaged folders; this one: the manifest gone *and* the data
    altered, so reuse would be visible, and through the pytest Datasets fixture path (ensure)."""
    data = ensure("users", ROWS, "csv", data_dir=tmp_path, workers=1)
    good = data.path.read_bytes()
    (data.folder / MANIFEST).unlink()
    data.path.write_bytes(good.replace(b",Bob,", b",Bo b,", 1))
    again = ensure("users", ROWS, "csv", data_dir=tmp_path, workers=1)
    assert again.path.read_bytes() == good and validate(again.folder).rows == ROWS


def test_a_folder_without_manifest_that_cannot_be_regenerated_is_named(tmp_path):
    """Regeneration impossible (a file-size limit stands in for a full disk): the error names
    the folder, and the manifest-less folder is gone rather than left to be used."""
    data = ensure("users", ROWS, "csv", data_dir=tmp_path, workers=1)
    (data.folder / MANIFEST).unlink()
    script = textwrap.dedent(f"""
        import resource, signal, sys
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        from scalebench.datasets import DatasetError, ensure
        try:
            ensure("users", {ROWS}, "csv", data_dir={str(tmp_path)!r}, workers=1)
        except DatasetError as exc:
            print("ERROR", exc)
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    print(f"\nno manifest, cannot regenerate: {r.stdout.strip()}")
    assert r.stdout.startswith(f"ERROR {data.folder}: could not write the dataset: File too large"), r.stdout + r.stderr
    assert not data.folder.exists()


# -- cluster addresses, ports, Java -------------------------------------------------------

UNREACHABLE = [("dask", "--dask-scheduler", "tcp://127.0.0.1:1"), ("ray", "--ray-address", "127.0.0.1:1"),
               ("spark", "--spark-master", "spark://127.0.0.1:1")]


def _session(tmp_path: Path, body: str, *args: str, env: dict[str, str] | None = None,
             timeout: float = 600) -> subprocess.CompletedProcess:
    """A pytest session of its own on `body`, with the scalebench plugin and `args`."""
    (tmp_path / "test_session.py").write_text(textwrap.dedent(body))
    env = {**(env if env is not None else os.environ),
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "fixtures.plugin", "-q", "-rA", "-p",
                           "no:cacheprovider", str(tmp_path / "test_session.py"), "--rootdir", str(tmp_path),
                           "--data-dir", str(tmp_path / "data"), *args],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=tmp_path)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("name, option, address", UNREACHABLE)
def test_an_unreachable_address_fails_at_once_naming_it(name, option, address):
    before = {p.pid for p in descendants()}
    try:
        engine = engine_class(name)(ClusterSpec(workers=1, address=address))
    except EngineUnavailable as exc:
        pytest.skip(str(exc))
    started = time.monotonic()
    try:
        with pytest.raises(ClusterUnreachable) as info:
            engine.start()
    finally:
        engine.stop()
    print(f"\n{name}: {info.value} ({time.monotonic() - started:.2f} s)")
    assert str(info.value) == (f"{option} {address}: cannot connect to 127.0.0.1:1 (Connection refused); "
                               "is the cluster running there?")
    assert not isinstance(info.value, EngineUnavailable)  # so the cluster pool does not skip it
    assert [describe(p) for p in descendants() if p.pid not in before] == []


def test_an_unreachable_address_is_an_error_not_a_skip(tmp_path):
    """Through the pytest plugin and the cluster pool: every test that needs the cluster errors."""
    r = _session(tmp_path, """
        import pytest

        @pytest.mark.parametrize("name", ["dask", "ray", "spark"])
        def test_connect(clusters, name):
            clusters.get(name, 1)
    """, *[f"{option}={address}" for _, option, address in UNREACHABLE], timeout=300)
    out = r.stdout + r.stderr
    print("\n" + "\n".join(line for line in out.splitlines() if "ClusterUnreachable" in line))
    assert r.returncode == 1, out
    assert "3 failed" in out and "skipped" not in out, out
    for _, option, address in UNREACHABLE:
        assert f"ClusterUnreachable: {option} {address}: cannot connect to 127.0.0.1:1" in out


DEFAULT_PORTS = {"dask": (8786, 8787), "ray": (6379, 8265, 10001), "spark": (4040, 7077, 7078)}
"""What each framework listens on when not told otherwise: Dask scheduler and dashboard, Ray GCS,
dashboard and client server, Spark UI, standalone master and the first driver port tried."""
PORT_SCRIPT = """
import sys
from scalebench.datasets import ensure
from scalebench.engines import ClusterSpec, engine_class
from scalebench.runner import stage_input

if __name__ == "__main__":
    data = ensure("points", 1000, "csv", data_dir=sys.argv[2], workers=1)
    engine = engine_class(sys.argv[1])(ClusterSpec(workers=1, memory_budget_bytes=2 * 2**30))
    engine.start()
    try:
        print("ROWS", int(engine.groupby_points(stage_input(data))["count"].sum()))
    finally:
        engine.stop()
"""


@pytest.mark.parametrize("name", ["dask", "ray", "spark"])
def test_a_taken_default_port_does_not_stop_a_local_cluster(name, tmp_path):
    """Listening sockets on the framework's default ports while its local cluster starts (in a
    process of its own): our engines pick free ports, so the cluster starts and works."""
    held, busy = [], []
    for port in DEFAULT_PORTS[name]:
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            s.listen()
            held.append(s)
        except OSError:  # taken already by someone else: just as good for this test
            s.close()
            busy.append(port)
    script = tmp_path / "port.py"
    script.write_text(PORT_SCRIPT)
    try:
        r = subprocess.run([sys.executable, str(script), name, str(tmp_path / "data")], capture_output=True,
                           text=True, timeout=300)
        ours = [s.getsockname()[1] for s in held if s.fileno() >= 0]
    finally:
        for s in held:
            s.close()
    print(f"\n{name}: ports held {ours}, already taken {busy}: exit {r.returncode}, "
          f"{r.stdout.strip() or r.stderr.strip()[-300:]}")
    if "not installed" in r.stderr or "Java" in r.stderr and "not found" in r.stderr:
        pytest.skip(r.stderr.strip().splitlines()[-1])
    assert r.returncode == 0 and "ROWS 1000" in r.stdout, r.stderr[-3000:]


JAVA_SESSION = """
    import pytest

    @pytest.mark.parametrize("name", ["spark", "pandas"])
    def test_start(clusters, name):
        assert clusters.get(name, 1).alive()
"""


@pytest.mark.parametrize("java", ["missing", "bad-java-home"])
def test_without_java_spark_is_skipped_with_the_reason_and_others_run(java, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
    env["PATH"] = str(Path(sys.executable).parent)  # the venv: Python, no java
    assert shutil.which("java", path=env["PATH"]) is None
    if java == "bad-java-home":
        env["JAVA_HOME"] = str(tmp_path / "no-jdk")
    before = {p.pid for p in descendants()}
    r = _session(tmp_path, JAVA_SESSION, "--engines=spark,pandas", env=env, timeout=300)
    out = r.stdout + r.stderr
    reason = next((line for line in out.splitlines() if line.startswith("SKIPPED")), "")
    print(f"\n{java}: {reason}")
    assert r.returncode == 0 and "1 passed, 1 skipped" in out, out
    if java == "missing":
        assert "spark: Java 17+ not found (no `java` on PATH, JAVA_HOME not set)" in reason
        assert "set JAVA_HOME" in reason
    else:
        assert f"spark: JAVA_HOME={tmp_path / 'no-jdk'} but {tmp_path / 'no-jdk' / 'bin' / 'java'} " \
               "is not an executable" in reason
    assert [describe(p) for p in descendants() if p.pid not in before] == []


# -- pytest options -----------------------------------------------------------------------

BAD_OPTIONS = [
    ("--workers=0", "--workers: '0' must be counts of at least 1, like 1,2,4"),
    ("--workers=abc", "--workers: 'abc' must be counts of at least 1, like 1,2,4"),
    ("--threads-per-worker=0", "--threads-per-worker: 0 must be at least 1"),
    ("--rounds=0", "--rounds: 0 must be at least 1"),
    ("--sample-interval=-1", "--sample-interval: -1.0 must be seconds >= 0"),
    ("--memory-budget=3XB", "--memory-budget: '3XB' is not a size in bytes such as 2GiB or 512MB"),
    ("--memory-budget=0", "--memory-budget: '0' must be more than zero bytes"),
    ("--engines=foo", "--engines: unknown engine(s) foo; choose from pandas, duckdb, polars, dask, ray, spark"),
    ("--formats=xml", "--formats: 'xml' not one of csv,parquet"),
    ("--stages=nope", "--stages: 'nope' not one of etl,groupby,"),
    ("--scale=0", "--scale: '0' must be a whole number of rows, at least 1"),
    ("--memory-multiple=-1", "--memory-multiple: '-1' must be a positive number"),
    ("--zipf=0", "--zipf: '0' must be an exponent above 0 and at most 10"),
    ("--pipeline=spark", "--pipeline: 'spark' is not ETL:ML"),
]


def test_bad_pytest_options_are_one_usage_error(tmp_path):
    """Each bad value stops the session before anything runs, with one line naming the option."""
    import concurrent.futures as cf

    (tmp_path / "test_nothing.py").write_text("def test_nothing():\n    pass\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}

    def run(option: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pytest", "-p", "fixtures.plugin", "-q", "-p", "no:cacheprovider",
                               str(tmp_path / "test_nothing.py"), "--rootdir", str(tmp_path), option],
                              capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)

    with cf.ThreadPoolExecutor(2) as pool:
        results = list(pool.map(run, [option for option, _ in BAD_OPTIONS]))
    wrong = []
    for (option, message), r in zip(BAD_OPTIONS, results, strict=True):
        print(f"\n{option}: {r.stderr.strip()}")
        # 4: pytest's usage-error status; one line, nothing run
        if not (r.returncode == 4 and r.stderr.strip().startswith(f"ERROR: {message}") and r.stderr.count("ERROR") == 1
                and "Traceback" not in r.stderr and "passed" not in r.stdout):
            wrong.append((option, r.returncode, r.stderr[-500:]))
    assert wrong == []
