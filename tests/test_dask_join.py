"""Dask joins db-benchmark's medium table the same way whether it is read inside the query or was
persisted in memory first (--io memory): persisted, it keeps its partitions, and Dask left to
choose by partition counts alone shuffled both sides (a P2P hash join, 3.5x slower at 1e7 rows)."""

from __future__ import annotations

from scalebench.runner import QueryRun, query_data
from scalebench.stages import queries


def test_dask_broadcasts_the_medium_table_in_both_input_modes(clusters, datasets, references, out_root):
    engine = clusters.get("dask", 2)
    (query,) = [q for q in queries(["h2o_join"]) if q.name == "q2"]
    data, inp = query_data(query, lambda name: datasets.get(name, "parquet"))
    steps = {}
    for io in ("storage", "memory"):
        if io == "memory":
            engine.load(inp)
        try:
            run = QueryRun(engine, query, inp, out_root)
            run.prepare()
            run()
            references.check(run, data)
            notes = engine.notes()
        finally:
            engine.unload()
        steps[io] = notes["steps"]
        assert notes["idiom"] == "merge(broadcast=True)"
    print(f"\ndask q2 join steps: {steps}")
    # the persisted medium table has more than one partition: the case that shuffled
    assert notes["partitions"]["medium"] > 1, f"medium table in one partition, nothing to test: {notes}"
    assert not any("HashJoin" in s or "Shuffle" in s for s in steps.values()), steps


def test_a_shuffled_aggregation_can_be_merged_on_its_key():
    """Dask 2026.8 cannot plan a merge on a named aggregation's result once the groupby shuffles
    (TPC-H q2, q15 and q20 at SF10 failed so): the TPC-H queries aggregate through _aggregate,
    which can. If the plain form starts working, Dask has fixed it and _aggregate can go."""
    import dask.dataframe as dd
    import numpy as np
    import pandas as pd
    import pytest

    from scalebench.engines.dask.tpch import _aggregate

    rows = pd.DataFrame({"k": np.arange(20_000) % 500, "v": np.arange(20_000, dtype="float64")})
    frame = dd.from_pandas(rows, npartitions=40)  # many partitions: the groupby shuffles
    expected = rows.merge(rows.groupby("k", as_index=False)["v"].min().rename(columns={"v": "m"}), on="k")
    got = frame.merge(_aggregate(frame, "k", "m", "v", "min"), on="k").compute(scheduler="sync")
    pd.testing.assert_frame_equal(got.sort_values(["k", "v"]).reset_index(drop=True),
                                  expected.sort_values(["k", "v"]).reset_index(drop=True))
    with pytest.raises(KeyError, match="not in index"):
        frame.merge(frame.groupby("k").agg(m=("v", "min")).reset_index(), on="k").compute(scheduler="sync")


def test_a_semi_join_keeps_each_left_row_once():
    """Dask 2026.8's leftsemi merge repeats a left row once per right partition holding its key when it
    broadcasts the right side; _semi (TPC-H q4 and q20) keeps each once. If the plain broadcast form
    starts giving 50, Dask has fixed it."""
    import dask.dataframe as dd
    import numpy as np
    import pandas as pd

    from scalebench.engines.dask.tpch import _semi

    left = dd.from_pandas(pd.DataFrame({"k": np.arange(100), "v": np.arange(100)}), npartitions=4)
    right = dd.from_pandas(pd.DataFrame({"rk": np.r_[np.arange(50), np.arange(50)]}), npartitions=8, sort=False)
    got = _semi(left, right, "k", "rk").compute(scheduler="sync")
    assert sorted(got["k"]) == list(range(50))
    plain = left.merge(right, left_on="k", right_on="rk", how="leftsemi", broadcast=True).compute(scheduler="sync")
    assert len(plain) == 100  # each of the 50 keys twice: the upstream bug _semi works around


def test_a_groupby_after_a_broadcast_merge_combines_every_group():
    """Dask 2026.8 takes a broadcast merge's result for hash-partitioned on its key, so a groupby on
    that key skips its shuffle and returns each group once per partition (TPC-H q20 at SF10: 94,700
    groups for 58,782). planner_barrier hides the claim. If the plain form starts giving 750 groups,
    Dask has fixed it and q20 needs no barrier."""
    import dask.dataframe as dd
    import numpy as np
    import pandas as pd

    from scalebench.engines.dask.read import planner_barrier

    rng = np.random.default_rng(0)
    rows = pd.DataFrame({"k": rng.integers(0, 300, 20_000), "j": rng.integers(0, 5, 20_000), "v": np.ones(20_000)})
    left = dd.from_pandas(rows, npartitions=40, sort=False)
    right = dd.from_pandas(pd.DataFrame({"dk": np.arange(0, 300, 2)}), npartitions=4, sort=False)  # several parts
    expected = rows[rows["k"] % 2 == 0].groupby(["k", "j"])["v"].sum()

    def grouped(joined: dd.DataFrame) -> pd.Series:
        return joined.groupby(["k", "j"]).agg({"v": "sum"}, split_out=True).compute(scheduler="sync")["v"]

    got = grouped(planner_barrier(left.merge(right, left_on="k", right_on="dk", broadcast=True)))
    pd.testing.assert_series_equal(got.sort_index(), expected.sort_index())
    plain = grouped(left.merge(right, left_on="k", right_on="dk", broadcast=True))
    assert plain.index.duplicated().any()  # the upstream bug planner_barrier works around
