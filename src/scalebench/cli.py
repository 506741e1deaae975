"""scalebench command line: generate datasets, check an engine, report and compare runs."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from scalebench import __version__
from scalebench.datasets import FORMATS, SCHEMAS, DatasetError, default_data_dir, ensure, rows_for_memory
from scalebench.datasets.store import check_data_dir
from scalebench.sizes import TIERS, format_bytes, parse_bytes, parse_multiple, parse_rows

EPILOG_GENERATE = """\
examples:
  scalebench generate points --rows 10M --format csv,parquet
  scalebench generate users --rows paper                 # the paper's 30M-row users table
  scalebench generate points --memory-multiple 1.2 --memory-budget 2GiB   # 20 % larger than the budget
  scalebench generate tpch --sf 10 --format parquet     # TPC-H's eight tables at SF10 (tpchgen-cli)

Datasets are cached under --data-dir by (dataset, rows, seed, generator version) and
reused when their manifest and checksums still match; --force regenerates.
"""

DESCRIPTION_COMPARE = """\
Compare two saved runs cell by cell from their per-round times, as asv does: the ratio
of medians head/base with a 95 % bootstrap interval, and a Mann-Whitney U test.
  slower: the interval lies above 1, ratio > 1 + threshold and p < alpha
  faster: the interval lies below 1, ratio < 1 / (1 + threshold) and p < alpha
  otherwise: no change detectable (noise, or a change smaller than the threshold)
A cell that stopped finishing (out of memory, timed out) is slower. Exit 1 if any cell
is slower, else 0. Identical runs pass.
"""
EPILOG_COMPARE = """\
examples:
  pytest --benchmark-only --rounds=10 --benchmark-json=base.json     # at least 5 rounds, 10 recommended
  scalebench compare base.json head.json
  scalebench compare base.json head.json --threshold 5% --alpha 0.01

Round times come from extra_info['round_times_s'] (the stage cells save them) or from
stats['data'] (pytest-benchmark's --benchmark-save-data, which the other benchmarks need).
With fewer than 5 rounds in a run, or no round times, a cell is "no change detectable" and
says why. Cells measured with different --io modes are "not comparable" and listed as such.
"""

DESCRIPTION_ADVISE = """\
Read one or more saved runs (say one per size, or per worker count) as one pool of cells and
answer, per stage family and query: the fastest engine at each size; where Dask, Ray and Spark
overtake pandas and DuckDB (between which two measured sizes, placed by interpolating
log(time ratio) linearly in log(rows), never past the largest size); the largest size each
engine completed under the memory budget; speedup, efficiency and COST across worker counts;
and the CPU seconds and price per query. Prints Markdown.
"""
EPILOG_ADVISE = """\
examples:
  pytest --benchmark-only --scale ladder --stages etl,groupby,sort --benchmark-json=ladder.json
  scalebench advise ladder.json
  scalebench advise 1M.json 10M.json 30M.json -o advise/   # advise.md and the plots
"""


def _build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="scalebench", description=__doc__)
    ap.add_argument("--version", action="version", version=f"scalebench {__version__}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    g = sub.add_parser("generate", help="make a synthetic dataset (chunked, parallel, deterministic)",
                       description="Make a synthetic dataset in constant memory, in parallel, with "
                       "identical bytes whatever the number of processes.", epilog=EPILOG_GENERATE,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    g.add_argument("dataset", help=f"tpch (its eight tables, see --sf) or one of: "
                   f"{', '.join(n for n in SCHEMAS if not n.startswith('tpch_'))}")
    g.add_argument("--sf", default="1", help="tpch only: the scale factor, at least 0.01 (default: 1)")
    size = g.add_mutually_exclusive_group()
    size.add_argument("--rows", default="small",
                      help=f"row count (10M, 2.5e7) or tier: {', '.join(f'{k}={v:,}' for k, v in TIERS.items())}"
                      " (default: small)")
    size.add_argument("--memory-multiple", metavar="X",
                      help="size the data at X times --memory-budget, from measured bytes per row")
    g.add_argument("--memory-budget", default="4GiB", help="budget for --memory-multiple (default: 4GiB)")
    g.add_argument("--format", default="csv,parquet",
                   help=f"comma-separated formats from {', '.join(FORMATS)} (default: csv,parquet)")
    g.add_argument("--data-dir", default=None,
                   help=f"dataset cache (default: $SCALEBENCH_DATA_DIR or {default_data_dir()})")
    g.add_argument("--workers", type=int, default=None, help="processes (default: one per core, at most 8)")
    g.add_argument("--seed", type=int, default=42, help="dataset seed (default: 42)")
    g.add_argument("--force", action="store_true", help="regenerate even when a valid copy is cached")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")

    r = sub.add_parser("report", help="side-by-side table and plots from saved pytest-benchmark JSON",
                       description="Turn one or more saved runs (pytest --benchmark-json=RUN.json, or the files "
                       "--benchmark-save writes under .benchmarks/) into report.md, report.html and SVG plots: "
                       "engine x stage x size, ratio to the fastest engine and to DuckDB, speedup and "
                       "efficiency against workers, time against size.")
    r.add_argument("runs", nargs="+", metavar="RUN.json")
    r.add_argument("-o", "--output", default="scalebench-report", help="output folder (default: scalebench-report)")

    adv = sub.add_parser("advise", help="at what size each framework pays off, per stage family and query",
                         description=DESCRIPTION_ADVISE, epilog=EPILOG_ADVISE,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    adv.add_argument("runs", nargs="+", metavar="RUN.json")
    adv.add_argument("-o", "--output", default=None, help="also write advise.md and its SVG plots to this folder")

    cmp_ = sub.add_parser("compare", help="exit 1 when HEAD is slower than BASE beyond noise and a threshold",
                          description=DESCRIPTION_COMPARE, epilog=EPILOG_COMPARE,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    cmp_.add_argument("base", metavar="BASE.json")
    cmp_.add_argument("head", metavar="HEAD.json")
    cmp_.add_argument("--threshold", default="10%",
                      help="smallest change worth reporting, e.g. 10%% or 0.1: slower means ratio > 1 + threshold, "
                      "faster ratio < 1 / (1 + threshold) (default: 10%%)")
    cmp_.add_argument("--alpha", default="0.05",
                      help="significance level of the Mann-Whitney U test on the rounds (default: 0.05)")

    c = sub.add_parser("check", help="run every query of an engine on tiny data and compare with DuckDB")
    c.add_argument("engine")
    c.add_argument("rest", nargs=argparse.REMAINDER, help="options of python -m scalebench.check_engine")
    return ap


def _generate_tpch(ap: argparse.ArgumentParser, args: argparse.Namespace, formats: list[str]) -> int:
    """The tpch stage's tables at --sf, made as the benchmarks would make them (and reused by them)."""
    from scalebench.datasets.store import ensure_tpch
    from scalebench.datasets.tables_tpch import parse_sf

    try:
        sf = parse_sf(args.sf, "--sf")
    except (ValueError, DatasetError) as exc:
        ap.error(str(exc))
    for fmt in formats:
        started = time.perf_counter()
        try:
            data = ensure_tpch(sf, fmt, data_dir=args.data_dir, workers=args.workers, force=args.force)
        except DatasetError as exc:
            ap.error(str(exc))
        elapsed = time.perf_counter() - started
        how = (f"generated in {elapsed:.1f} s with {data.manifest['workers']} process(es)"
               if args.force or elapsed > data.manifest["elapsed_s"] * 0.5 else "cached (valid manifests, checksums)")
        print(f"tpch SF{sf:g} {fmt}: {data.manifest['rows']:,} rows in {len(data.manifest.get('tables', {}))} tables, "
              f"{format_bytes(data.bytes)}, {how}\n  -> {data.folder}")
    return 0


def _generate(ap: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.dataset != "tpch" and args.dataset not in SCHEMAS:
        ap.error(f"unknown dataset {args.dataset!r}; choose from {', '.join(SCHEMAS)}")
    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        ap.error(f"--format: unknown format {','.join(bad) or repr(args.format)}; choose from {', '.join(FORMATS)}")
    if args.dataset == "tpch":
        return _generate_tpch(ap, args, formats)
    if args.workers is not None and args.workers < 1:
        ap.error(f"--workers: {args.workers} must be at least 1")
    try:
        check_data_dir(args.data_dir if args.data_dir is not None else default_data_dir())
        if args.memory_multiple is not None:
            budget = parse_bytes(args.memory_budget)
            rows = rows_for_memory(args.dataset, formats[0], parse_multiple(args.memory_multiple), budget)
            print(f"{args.memory_multiple} x {format_bytes(budget)} of {formats[0]} -> {rows:,} rows")
        else:
            rows = parse_rows(args.rows)
    except (ValueError, DatasetError) as exc:
        ap.error(str(exc))
    for fmt in formats:
        started = time.perf_counter()
        bar = None
        if not args.no_progress:
            from tqdm import tqdm

            tqdm.monitor_interval = 0  # no monitor thread: a lone main thread lets the generator fork
            bar = tqdm(total=rows, unit="rows", unit_scale=True, desc=f"{args.dataset} {fmt}", leave=False)
        try:
            data = ensure(args.dataset, rows, fmt, data_dir=args.data_dir, seed=args.seed, workers=args.workers,
                          force=args.force, progress=bar.update if bar else None)
        except DatasetError as exc:
            ap.error(str(exc))
        finally:
            if bar is not None:
                bar.close()
        elapsed = time.perf_counter() - started
        made = bar is not None and bar.n > 0 or args.force or elapsed > data.manifest["elapsed_s"] * 0.5
        how = (f"generated in {elapsed:.2f} s: {rows / elapsed / 1e6:.2f} M rows/s, "
               f"{data.bytes / elapsed / 1e6:.0f} MB/s with {data.manifest['workers']} process(es)"
               if made else "cached (valid manifest and checksums)")
        print(f"{args.dataset} {fmt}: {rows:,} rows, {format_bytes(data.bytes)}, {len(data.manifest['files'])} files, "
              f"{how}\n  -> {data.folder}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from scalebench.report.load import load_runs
    from scalebench.report.render import write_report

    written = write_report(load_runs(args.runs), args.output)
    print((Path(args.output) / "report.md").read_text())
    print("wrote " + ", ".join(str(p) for p in written.values()))
    return 0


def _advise(args: argparse.Namespace) -> int:
    from scalebench.report.advise import advise
    from scalebench.report.advise_plots import machine_text, markdown, write
    from scalebench.report.load import load_runs

    df = load_runs(args.runs)
    advice = advise(df, ", ".join(args.runs))
    print(markdown(advice, machine=machine_text(df)))
    if args.output is not None:
        written = write(advice, args.output, machine_text(df))
        print("wrote " + ", ".join(str(p) for p in written.values()))
    return 0


def _compare(args: argparse.Namespace) -> int:
    from scalebench.provenance import differences
    from scalebench.report.compare import compare_runs, in_order, parse_alpha, parse_threshold, regressions, summary
    from scalebench.report.load import load_run, provenance_of

    threshold, alpha = parse_threshold(args.threshold), parse_alpha(args.alpha)
    base, head = load_run(args.base, with_rounds=True), load_run(args.head, with_rounds=True)  # each read once
    changes, only_base, only_head = compare_runs(base, head, threshold, alpha)
    moved = differences(provenance_of(base), provenance_of(head))
    if moved:
        print("versions differ between base and head; a change below may be theirs, not the code's:")
        for line in moved:
            print(f"  {line}")
    else:
        print("same versions in base and head (lock, frameworks, Python, Java, machine)")
    width = max((len(c.name) for c in changes), default=0)
    for c in in_order(changes):
        print(c.line(width))
    for name in only_base:
        print(f"missing: only in {args.base}: {name}")
    for name in only_head:
        print(f"new: only in {args.head}: {name}")
    also = " (versions differ: see above)" if moved else ""
    print(summary(changes, threshold, alpha) + also)
    return 1 if regressions(changes) else 0


def main(argv: list[str] | None = None) -> int:
    ap = _build_parser()
    args = ap.parse_args(argv)
    if args.command == "generate":
        return _generate(ap, args)
    if args.command in ("report", "compare", "advise"):
        from scalebench.report.load import ReportError

        try:
            return {"report": _report, "compare": _compare, "advise": _advise}[args.command](args)
        except ReportError as exc:
            ap.error(str(exc))
    if args.command == "check":
        from scalebench.check_engine import main as check_main

        return check_main([args.engine, *args.rest])
    ap.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
