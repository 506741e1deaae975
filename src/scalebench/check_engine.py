"""`python -m scalebench.check_engine ENGINE`: every query on tiny data, checked against DuckDB."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from scalebench.datasets import FORMATS, ensure
from scalebench.engines import ClusterSpec, engine_class
from scalebench.engines.base import NotApplicable
from scalebench.runner import QueryRun, References, query_data
from scalebench.sizes import parse_bytes, parse_rows
from scalebench.stages import queries


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m scalebench.check_engine", description=__doc__)
    ap.add_argument("engine")
    ap.add_argument("--rows", default="tiny", help="size tier or row count (default: tiny)")
    ap.add_argument("--formats", default=",".join(FORMATS))
    ap.add_argument("--stages", default=None, help="comma-separated stages (default: all)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--memory-budget", default="4GiB", help="cluster memory budget (default: 4GiB)")
    args = ap.parse_args(argv)
    rows = parse_rows(args.rows)
    spec = ClusterSpec(workers=args.workers, memory_budget_bytes=parse_bytes(args.memory_budget))
    failures = 0
    with tempfile.TemporaryDirectory(prefix="scalebench-check-") as tmp:
        refs = References(Path(tmp))
        engine = engine_class(args.engine)(spec)
        t = time.perf_counter()
        engine.start()
        print(f"{args.engine}: started in {time.perf_counter() - t:.2f} s: {engine.describe()}")
        try:
            for query in queries(args.stages.split(",") if args.stages else None):
                for fmt in (f for f in args.formats.split(",") if query.reads(f)):
                    data, inp = query_data(query, lambda name, f=fmt: ensure(name, rows, f, data_dir=args.data_dir))
                    run = QueryRun(engine, query, inp, Path(tmp))
                    run.prepare()
                    t = time.perf_counter()
                    try:
                        run()
                        elapsed = time.perf_counter() - t
                        refs.check(run, data)
                        print(f"  ok    {query.id:28s} {fmt:8s} {elapsed:8.3f} s  {engine.notes() or ''}")
                    except NotApplicable as exc:
                        print(f"  skip  {query.id:28s} {fmt:8s} {exc}")
                    except Exception as exc:  # report every query, not just the first
                        failures += 1
                        print(f"  FAIL  {query.id:28s} {fmt:8s} {type(exc).__name__}: {exc}")
                    run.cleanup()
        finally:
            engine.stop()
            refs.close()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
