"""TPC-H: the data tpchgen-cli makes in the store, the official answer set, and the reference
checked against it at SF1 (every engine's 22 answers at a tiny scale factor run in
benchmarks/test_stages.py, against this reference)."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from scalebench.datasets import DatasetError
from scalebench.datasets.store import MANIFEST, ensure_tpch, tpch_table
from scalebench.datasets.tables_tpch import TPCH_SCHEMAS, TPCH_TABLES, parse_sf, sf_for_rows
from scalebench.engines import ClusterSpec, engine_class
from scalebench.runner import stage_input
from scalebench.stages import queries
from scalebench.tpch import ANSWERS, EXTRA_TABLES, QUESTIONS, scale_factor
from scalebench.tpch.official import OfficialMismatch, compare_official, official_answer


def _input(data):
    return stage_input(tpch_table(data, "lineitem"), {t: tpch_table(data, t) for t, _ in EXTRA_TABLES})


def test_tpch_tables_are_stored_whole_in_both_formats(data_dir):
    parquet = ensure_tpch(0.01, "parquet", data_dir=data_dir)
    csv = ensure_tpch(0.01, "csv", data_dir=data_dir)
    assert sorted(parquet.manifest["tables"]) == sorted(TPCH_TABLES)
    assert parquet.manifest["generator"].startswith("tpchgen-cli")
    rows = {t: tpch_table(parquet, t).rows for t in TPCH_TABLES}
    assert rows["nation"] == 25 and rows["region"] == 5 and rows["supplier"] == 100  # SF x 10,000
    assert scale_factor(_input(parquet)) == 0.01
    for table in TPCH_TABLES:  # the suite's types, the same values in CSV and Parquet
        t = tpch_table(parquet, table)
        assert pq.read_schema(t.files()[0]) == TPCH_SCHEMAS[table]
        assert tpch_table(csv, table).rows == t.rows
    import pyarrow.csv as pacsv

    li = tpch_table(csv, "lineitem")
    from_csv = pacsv.read_csv(li.path, convert_options=pacsv.ConvertOptions(
        column_types=TPCH_SCHEMAS["lineitem"])).to_pandas()
    from_parquet = pads.dataset([str(f) for f in tpch_table(parquet, "lineitem").files()]).to_table().to_pandas()
    pd.testing.assert_frame_equal(from_csv, from_parquet)
    assert from_parquet["l_extendedprice"].iloc[0] == 24710.35  # correctly rounded from the decimal
    again = ensure_tpch(0.01, "parquet", data_dir=data_dir)
    assert again.manifest["created"] == parquet.manifest["created"]  # reused, not made again


def test_a_damaged_tpch_table_is_made_again_not_reused(data_dir, tmp_path):
    data = ensure_tpch(0.01, "parquet", data_dir=tmp_path)
    part = tpch_table(data, "orders").files()[0]
    with open(part, "r+b") as f:
        f.seek(100)
        f.write(b"\0\0\0\0")
    with pytest.raises(DatasetError, match="checksum"):
        tpch_table(data, "orders")
    fresh = ensure_tpch(0.01, "parquet", data_dir=tmp_path)
    assert fresh.manifest["created"] >= data.manifest["created"]
    tpch_table(fresh, "orders")  # valid again
    assert not [p for p in fresh.folder.parent.iterdir() if p.name.startswith(".") and "tmp" in p.name]
    assert json.loads((fresh.folder / "orders" / MANIFEST).read_text())["dataset"] == "tpch_orders"


def test_bad_scale_factors_are_named():
    with pytest.raises(ValueError, match="--tpch-sf: 'big'"):
        parse_sf("big")
    with pytest.raises(ValueError, match="at least 0.01"):
        parse_sf("0.001")
    with pytest.raises(DatasetError, match="--tpch-sf"):
        ensure_tpch(0, "parquet")
    assert parse_sf("SF10") == 10 and sf_for_rows(1_000_000) == 0.1 and sf_for_rows(20_000) == 0.01


def test_the_official_answers_load_and_a_wrong_cell_is_caught():
    for q in QUESTIONS:
        answer = official_answer(q)
        assert list(answer.columns) == list(ANSWERS[q].columns) and len(answer) > 0
    q1 = official_answer("q1")
    compare_official("q1", q1)  # the answer set passes its own check
    wrong = q1.copy()
    wrong.loc[2, "sum_qty"] = str(float(wrong.loc[2, "sum_qty"]) + 101)  # beyond the $100 of a sum
    with pytest.raises(OfficialMismatch, match="sum_qty"):
        compare_official("q1", wrong)
    with pytest.raises(OfficialMismatch, match="rows"):
        compare_official("q3", official_answer("q3").iloc[:9])


def test_the_duckdb_reference_matches_the_official_answers_at_sf1(data_dir):
    """The reference every engine's TPC-H answer is checked against, itself checked against the kit's
    answers with the specification's rules; about a minute (SF1 data made once, 22 queries)."""
    inp = _input(ensure_tpch(1, "parquet", data_dir=data_dir))
    engine = engine_class("duckdb")(ClusterSpec(workers=1, threads_per_worker=2))
    engine.start()
    try:
        for query in queries(["tpch"]):
            compare_official(query.name, engine.run_query(query, inp))
    finally:
        engine.stop()
