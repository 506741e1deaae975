"""The polars reference: every query agrees with the DuckDB engine on tiny data (both formats),
its db-benchmark answers agree with a plain pandas computation, its edge cases are the documented
ones, and it imports no engine code, so it stays an independent check of DuckDB."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import scalebench.reference_polars as reference_polars
from scalebench.answers import Held
from scalebench.datasets import ensure
from scalebench.datasets.schemas import H2O_GROUPBY_SCHEMA
from scalebench.engines import ClusterSpec
from scalebench.engines.base import StageInput
from scalebench.engines.duckdb import DuckDBEngine
from scalebench.runner import query_data
from scalebench.stages import (
    H2O_GROUPBY_KEYS,
    H2O_GROUPBY_QUESTIONS,
    H2O_JOIN_QUESTIONS,
    QUERIES,
    Query,
    WrongAnswer,
    answer_of,
    compare,
    h2o_groupby_answer,
)

TINY = 20_000
PACKAGE = Path(reference_polars.__file__).parent
CASES = [pytest.param(q.reference_form(), fmt, id=f"{q.id}-{fmt}") for fmt in ("csv", "parquet")
         for q in QUERIES if q.reads(fmt)]


@pytest.fixture(scope="module")
def duckdb_engine():
    engine = DuckDBEngine(ClusterSpec(workers=1))
    engine.start()
    yield engine
    engine.stop()


def _input(query: Query, fmt: str, data_dir: Path) -> StageInput:
    return query_data(query, lambda name: ensure(name, TINY, fmt, data_dir=data_dir))[1]


def _taken(result: object) -> object:
    """A large answer the engine holds (answers.Held), fetched; anything else as it is."""
    return result.take() if isinstance(result, Held) else result


@pytest.mark.parametrize("query, fmt", CASES)
def test_agrees_with_duckdb(query, fmt, duckdb_engine, data_dir, tmp_path):
    inp = _input(query, fmt, data_dir)
    ours = answer_of(query, reference_polars.run(query, inp, tmp_path / "polars"), tmp_path / "polars")
    theirs = answer_of(query, _taken(duckdb_engine.run_query(query, inp, tmp_path / "duckdb")), tmp_path / "duckdb")
    assert len(ours) > 0
    compare(query, ours, theirs)


# -- db-benchmark against plain pandas ----------------------------------------------------------


def _read(inp: StageInput) -> pd.DataFrame:
    return pd.read_csv(inp.path) if inp.format == "csv" else pd.read_parquet(inp.path)


def _r2(d: pd.DataFrame) -> float:
    return d["v1"].corr(d["v2"]) ** 2


def _pandas_groupby(df: pd.DataFrame, question: str) -> pd.DataFrame:
    """Each question as a pandas user writes it on a whole frame."""
    g = list(H2O_GROUPBY_KEYS[question])
    by = df.groupby(g, as_index=False)
    if question == "q8":
        top = df.dropna(subset=["v3"]).sort_values("v3", ascending=False).groupby("id6").head(2)
        return top.rename(columns={"v3": "largest2_v3"})[["id6", "largest2_v3"]]
    if question == "q9":
        return df.groupby(g)[["v1", "v2"]].apply(_r2).rename("r2").reset_index()
    aggs = {"q1": {"v1": ("v1", "sum")}, "q2": {"v1": ("v1", "sum")},
            "q3": {"v1": ("v1", "sum"), "v3": ("v3", "mean")},
            "q4": {"v1": ("v1", "mean"), "v2": ("v2", "mean"), "v3": ("v3", "mean")},
            "q5": {"v1": ("v1", "sum"), "v2": ("v2", "sum"), "v3": ("v3", "sum")},
            "q6": {"median_v3": ("v3", "median"), "sd_v3": ("v3", "std")},
            "q7": {"max_v1": ("v1", "max"), "min_v2": ("v2", "min")},
            "q10": {"v3": ("v3", "sum"), "count": ("v3", "size")}}[question]
    out = by.agg(**aggs)
    if question == "q7":
        out["range_v1_v2"] = out["max_v1"] - out["min_v2"]
    return out


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("question", list(H2O_GROUPBY_QUESTIONS))
def test_h2o_groupby_agrees_with_pandas(question, fmt, data_dir):
    query = next(q for q in QUERIES if q.op == "h2o_groupby" and q.variant == question)
    inp = _input(query, fmt, data_dir)
    ours = reference_polars.run(query, inp, None)
    assert list(ours.columns) == list(h2o_groupby_answer(question))
    compare(query, ours, _pandas_groupby(_read(inp), question)[list(h2o_groupby_answer(question))])


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("question", list(H2O_JOIN_QUESTIONS))
def test_h2o_join_agrees_with_pandas(question, fmt, data_dir):
    query = next(q for q in QUERIES if q.op == "h2o_join" and q.variant == question)
    inp = _input(query, fmt, data_dir)
    table, key, how = H2O_JOIN_QUESTIONS[question]
    expected = _read(inp).merge(_read(inp.extra[table])[[key, "v2"]], on=key, how=how)
    ours = reference_polars.run(query, inp, None)
    if how == "left":
        assert ours["v2"].isna().any() and len(ours) == inp.rows, "q3 keeps every x row, some unmatched"
    compare(query, ours, expected[list(ours.columns)])


# -- the documented edge cases on a hand-made table ------------------------------------------


EDGES = pd.DataFrame({
    # one-row group (id4=1): sd undefined; even-sized group (id4=2): interpolated median;
    # constant v1 (id2=b): r2 undefined; a null v3 skipped by sums, means and the top two
    "id1": ["a", "a", "a", "a", "a"], "id2": ["a", "b", "b", "a", "a"], "id3": ["x", "x", "y", "y", "y"],
    "id4": [1, 2, 2, 2, 2], "id5": [1, 1, 1, 1, 1], "id6": [7, 7, 7, 8, 8],
    "v1": [1, 2, 2, 3, 5], "v2": [4, 1, 3, 5, 6], "v3": [1.0, 2.0, 4.0, None, 10.0]})


@pytest.fixture(params=["csv", "parquet"])
def edges(request, tmp_path) -> StageInput:
    table = pa.Table.from_pandas(EDGES, schema=H2O_GROUPBY_SCHEMA, preserve_index=False)
    if request.param == "csv":
        path = tmp_path / "edges.csv"
        EDGES.to_csv(path, index=False)  # a null v3 is an empty field
        files: tuple[Path, ...] = (path,)
    else:
        path = tmp_path / "edges"
        path.mkdir()
        pq.write_table(table, path / "part-00000.parquet")
        files = (path / "part-00000.parquet",)
    return StageInput("h2o_groupby", request.param, path, files, len(EDGES), 0, tuple(EDGES.columns))


def _answer(question: str, inp: StageInput) -> pd.DataFrame:
    query = next(q for q in QUERIES if q.op == "h2o_groupby" and q.variant == question)
    keys = list(query.keys)
    return reference_polars.run(query, inp).sort_values(keys).reset_index(drop=True)


def test_edge_cases_follow_the_catalogue(edges):
    q3 = _answer("q3", edges)
    assert q3["v3"].tolist() == [1.5, 7.0]  # mean over the non-null v3 only
    q5 = _answer("q5", edges)
    assert q5["v3"].tolist() == [7.0, 10.0]  # the null v3 skipped in the sum
    q6 = _answer("q6", edges)
    assert q6["median_v3"].tolist() == [1.0, 4.0]  # (2, 4, 10): 4; the one-row group: itself
    assert pd.isna(q6["sd_v3"][0]) and q6["sd_v3"][1] == pytest.approx(np.std([2.0, 4.0, 10.0], ddof=1))
    q8 = _answer("q8", edges)
    assert q8.values.tolist() == [[7, 2.0], [7, 4.0], [8, 10.0]]  # id6 8 has one non-null v3
    q9 = _answer("q9", edges)
    r2 = dict(zip(q9["id2"], q9["r2"], strict=True))
    assert pd.isna(r2["b"])  # constant v1: undefined
    assert r2["a"] == pytest.approx(np.corrcoef([1, 3, 5], [4, 5, 6])[0, 1] ** 2)


def test_median_interpolates_between_the_two_middle_values(tmp_path):
    path = tmp_path / "even.parquet"
    even = EDGES.iloc[[1, 2]].assign(v3=[2.0, 5.0])  # one group, two rows
    pq.write_table(pa.Table.from_pandas(even, schema=H2O_GROUPBY_SCHEMA, preserve_index=False), path)
    inp = StageInput("h2o_groupby", "parquet", tmp_path, (path,), 2, 0, tuple(EDGES.columns))
    assert _answer("q6", inp)["median_v3"].tolist() == [3.5]


def test_a_wrong_answer_is_told_apart(data_dir, tmp_path):
    """The comparison the references meet can fail: one count off is a WrongAnswer."""
    query = next(q for q in QUERIES if q.op == "groupby_points")
    ours = reference_polars.run(query, _input(query, "parquet", data_dir))
    wrong = ours.copy()
    wrong.loc[0, "count"] += 1
    with pytest.raises(WrongAnswer, match="column 'count'"):
        compare(query, wrong, ours)


# -- independence -----------------------------------------------------------------------------


def _engine_imports(source: str) -> list[str]:
    """Imports of scalebench.engines (or a framework other than polars) outside `if TYPE_CHECKING:`."""
    tree = ast.parse(source)
    type_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                 and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"
                 for n in ast.walk(node)}
    found = []
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                 else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
        found += [n for n in names if n.startswith("scalebench.engines") or n.split(".")[0] == "duckdb"]
    return found


def test_the_reference_imports_no_engine_code():
    modules = sorted(PACKAGE.glob("*.py"))
    assert len(modules) >= 2
    offending = {m.name: _engine_imports(m.read_text()) for m in modules}
    assert {k: v for k, v in offending.items() if v} == {}
    assert _engine_imports("from scalebench.engines.duckdb import DuckDBEngine") == ["scalebench.engines.duckdb"]


RUN_ALONE = textwrap.dedent("""
    import sys
    from pathlib import Path
    import scalebench.reference_polars as rp
    from scalebench.datasets import ensure
    from scalebench.engines.base import StageInput
    from scalebench.stages import QUERIES

    data_dir, out = Path(sys.argv[1]), Path(sys.argv[2])
    for q in QUERIES:
        if q.op in ("groupby_points", "h2o_groupby", "etl_users"):
            d = ensure(q.dataset, 100, "parquet", data_dir=data_dir)
            inp = StageInput(d.dataset, d.format, d.path, tuple(d.files()), d.rows, d.bytes, ())
            rp.run(q.reference_form(), inp, out / q.id)
    print(" ".join(sorted(m for m in sys.modules if m.startswith("scalebench.engines") or m == "duckdb")))
""")


def test_running_the_reference_loads_no_engine(data_dir, tmp_path):
    """Only the engine contract's module (types, via scalebench.inputs) may be loaded; no engine, no DuckDB."""
    r = subprocess.run([sys.executable, "-c", RUN_ALONE, str(data_dir), str(tmp_path)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    loaded = set(r.stdout.split())
    assert loaded <= {"scalebench.engines", "scalebench.engines.base"}, loaded
