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
