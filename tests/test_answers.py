"""The db-benchmark check sees the grouping keys: a plausible wrong answer fails, whole or summarised.

db-benchmark's own check (row count and column sums) passes "sum v1 by id2" as q1, since both have
100 groups and the same total. These answers are built in pandas from the input and checked
against the DuckDB reference, the way every engine's answer is.
"""

from __future__ import annotations

import pandas as pd
import pytest

from scalebench import answers, runner
from scalebench.datasets import ensure
from scalebench.engines import ClusterSpec
from scalebench.engines.duckdb import DuckDBEngine
from scalebench.runner import QueryRun, References, stage_input
from scalebench.stages import QUERIES, WrongAnswer

ROWS = 20_000
H2O = {q.variant: q for q in QUERIES if q.op == "h2o_groupby"}


@pytest.fixture(scope="module")
def h2o(data_dir):
    """The tiny G1 table in pandas, and its stored dataset."""
    data = ensure("h2o_groupby", ROWS, "parquet", data_dir=data_dir)
    return pd.read_parquet(data.path), data


def _sum_v1_by(x: pd.DataFrame, key: str) -> pd.DataFrame:
    return x.groupby(key, as_index=False).agg(v1=("v1", "sum"))


def _q2_one_key_dropped(x: pd.DataFrame) -> pd.DataFrame:
    """Grouped by id1 alone, id2 filled with each group's first: the columns q2 asks, the wrong groups."""
    return x.groupby("id1", as_index=False).agg(id2=("id2", "first"), v1=("v1", "sum"))


def _values_moved_between_keys(x: pd.DataFrame) -> pd.DataFrame:
    """The right groups and the right total, but each sum under another key (rotated by one)."""
    right = _sum_v1_by(x, "id1").sort_values("id1", ignore_index=True)
    return right.assign(v1=right["v1"].shift(1, fill_value=right["v1"].iloc[-1]))


WRONG = {
    "sum v1 by id2 as q1": ("q1", lambda x: _sum_v1_by(x, "id2").rename(columns={"id2": "id1"})),
    "q2 with the key id2 dropped": ("q2", _q2_one_key_dropped),
    "q1 sums moved between keys": ("q1", _values_moved_between_keys),
}
RIGHT = {
    "q1": lambda x: _sum_v1_by(x, "id1"),
    "q2": lambda x: x.groupby(["id1", "id2"], as_index=False).agg(v1=("v1", "sum")),
}


@pytest.fixture(params=["whole", "keyed summary"])
def form(request, monkeypatch):
    """Compare whole answers, or force the keyed summary used beyond WHOLE_ROWS_LIMIT rows."""
    if request.param == "keyed summary":
        monkeypatch.setattr(runner, "WHOLE_ROWS_LIMIT", 10)
    return request.param


@pytest.mark.parametrize("name", list(WRONG))
def test_a_wrong_grouping_fails_the_check(h2o, form, name):
    x, data = h2o
    question, make = WRONG[name]
    expected = References(data.folder.parent / f"ref-{form}").answer(H2O[question], data)
    assert expected.summarised == (form == "keyed summary")
    wrong = make(x)
    assert len(wrong) > 0 and wrong["v1"].sum() == x["v1"].sum()  # db-benchmark's own check would pass it
    with pytest.raises(WrongAnswer):
        expected.check(H2O[question], wrong)


@pytest.mark.parametrize("question", list(RIGHT))
def test_the_right_answer_passes_the_check(h2o, form, question):
    x, data = h2o
    expected = References(data.folder.parent / f"ref-{form}").answer(H2O[question], data)
    expected.check(H2O[question], RIGHT[question](x))


def test_a_held_answer_is_fetched_once_and_released():
    released = []
    held = answers.Held(2, lambda: pd.DataFrame({"a": [1, 2]}), lambda: released.append(True))
    assert list(held.take()["a"]) == [1, 2]
    assert released == [True]
    short = answers.Held(3, lambda: pd.DataFrame({"a": [1, 2]}), lambda: released.append(True))
    with pytest.raises(AssertionError, match="counted 3 rows but fetched 2"):
        short.take()
    assert released == [True, True]  # released even when the fetch disagrees


def test_a_held_answer_is_released_once_and_never_fetched_after():
    released = []
    held = answers.Held(1, lambda: pd.DataFrame({"a": [1]}), lambda: released.append(True), where="test store")
    answers.release(held)
    held.release()
    answers.release(held)
    assert released == [True] and held.released
    with pytest.raises(RuntimeError, match="test store.*already released"):
        held.take()
    assert released == [True]


class _OffByOneDuckDB(DuckDBEngine):
    """DuckDB with one count too many in groupby-age: a reference that is wrong."""

    def groupby_age(self, inp):
        answer = super().groupby_age(inp)
        answer.loc[0, "count"] += 1
        return answer


def test_the_duckdb_reference_is_itself_checked_by_polars(monkeypatch, data_dir, tmp_path):
    query = next(q for q in QUERIES if q.id == "groupby-age")
    data = ensure("users", ROWS, "parquet", data_dir=data_dir)
    monkeypatch.setattr(runner, "engine_class", lambda name: _OffByOneDuckDB)
    with pytest.raises(WrongAnswer, match="duckdb reference disagrees with the polars reference"):
        References(tmp_path).answer(query, data)


def test_duckdb_cells_are_checked_against_polars(data_dir, tmp_path):
    query = next(q for q in QUERIES if q.id == "groupby-age")
    data = ensure("users", ROWS, "parquet", data_dir=data_dir)
    refs = References(tmp_path / "ref")
    for engine, source in ((_OffByOneDuckDB, None), (DuckDBEngine, "polars")):
        with engine(ClusterSpec(workers=1)) as duck:
            run = QueryRun(duck, query, stage_input(data), tmp_path)
            run.prepare()
            run()
            if source is None:  # the engine checked, never its own code: its wrong count shows
                with pytest.raises(WrongAnswer, match="column 'count'"):
                    refs.check(run, data)
            else:
                assert refs.check(run, data) == f"equal to {source} reference"
