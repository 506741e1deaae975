"""Every engine implements every query of the catalogue, found by value (Query.op, Query.variant):
an engine that lacks one fails here, by name, instead of skipping at run time."""

from __future__ import annotations

import inspect
from dataclasses import replace

import pytest

from scalebench.engines import ENGINE_NAMES, engine_class
from scalebench.engines.base import MissingQuery, NotApplicable
from scalebench.stages import QUERIES

DISTRIBUTIONS = ("uniform", "zipf")
# What a framework truly has no form of, with words its reason must contain.
NOT_APPLICABLE = {
    **{("pandas", f"skew-{op}-{d}-{r}"): "no workers" for d in DISTRIBUTIONS
       for op, r in (("groupby", "salted"), ("join", "salted"), ("join", "native"))},
    **{("ray", f"skew-join-{d}-native"): "hash-shuffle join" for d in DISTRIBUTIONS},
    **{(single, f"skew-join-{d}-native"): "one hash join" for d in DISTRIBUTIONS for single in ("duckdb", "polars")},
}


@pytest.mark.parametrize("name", ENGINE_NAMES)
def test_every_engine_implements_every_query(name):
    cls = engine_class(name)
    assert not inspect.isabstract(cls), f"{name} lacks {sorted(cls.__abstractmethods__)}"
    missing, not_applicable = [], {}
    for query in QUERIES:
        try:
            found = cls.implementation(query)
        except MissingQuery as exc:
            missing.append(str(exc))
            continue
        except NotApplicable as exc:
            not_applicable[query.id] = str(exc)
            continue
        assert callable(found), (name, query.id, found)
        if query.variant is not None:  # a value the engine's table names, followed to its code
            assert inspect.getsourcefile(found), (name, query.id)
    assert missing == [], f"{name} lacks: " + "; ".join(missing)
    expected = {q for (engine, q) in NOT_APPLICABLE if engine == name}
    assert set(not_applicable) == expected, f"{name}: not applicable {sorted(not_applicable)}, not {sorted(expected)}"
    for query_id, reason in not_applicable.items():
        assert NOT_APPLICABLE[(name, query_id)] in reason and len(reason) > 40, (query_id, reason)


@pytest.mark.parametrize("name", ENGINE_NAMES)
def test_a_query_the_engine_lacks_fails_rather_than_skips(name):
    cls = engine_class(name)
    typo = replace(next(q for q in QUERIES if q.op == "h2o_groupby"), variant="q11")
    with pytest.raises(MissingQuery, match="q11"):
        cls.implementation(typo)
    with pytest.raises(MissingQuery, match="no_such_op"):
        cls.implementation(replace(typo, op="no_such_op"))
