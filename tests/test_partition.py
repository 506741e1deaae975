"""Partitioning by the key: the same groupby on the same rows, laid out by key, runs without the
shuffle, and its answer is still the reference's."""

from __future__ import annotations

import pytest

from scalebench.engines import ENGINE_NAMES
from scalebench.runner import QueryRun, query_data
from scalebench.stages import queries


@pytest.mark.parametrize("engine_name", ENGINE_NAMES)
def test_partitioned_input_saves_the_shuffle(engine_name, clusters, datasets, references, out_root):
    engine = clusters.get(engine_name, 2)
    notes = {}
    for query in queries(["partition"]):
        data, inp = query_data(query, lambda name: datasets.get(name, "parquet"))
        assert (inp.partitioned_by == "key") == (query.layout == "key")
        run = QueryRun(engine, query, inp, out_root)
        run.prepare()
        run()
        references.check(run, data)
        notes[query.name] = engine.notes()
    plain, by_key = notes["groupby-unpartitioned"], notes["groupby-by_key"]
    print(f"\n{engine_name}: unpartitioned {plain}\n{engine_name}: by key {by_key}")
    if engine_name == "spark":  # the executed plans: hash exchanges of rows or partials
        assert plain["hash_exchanges"] >= 1 and by_key["hash_exchanges"] == 0
    if engine_name == "dask":  # the optimised expressions
        assert "Shuffle" in plain["steps"] and by_key["steps"] == "none"
    if engine_name in ("pandas", "ray"):
        assert by_key["buckets"] == 8


def test_partition_queries_read_parquet_only():
    assert [q.reads("csv") for q in queries(["partition"])] == [False, False]
    assert all(q.reads("csv") for q in queries(["groupby", "skew"]))
