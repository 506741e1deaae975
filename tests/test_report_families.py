"""A whole `pytest --benchmark-only` run, every benchmark file, read back: the report shows every
family (stage cells, db-benchmark, joins, skew, partition, ML, generator, overhead, a cell that did
not finish), the JSON names the versions it measured on, and compare says when they differ."""

from __future__ import annotations

import copy
import hashlib
import html
import json
import os
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import pytest

from conftest import flat
from scalebench.cli import main
from scalebench.provenance import LOCK_NAME

REPO = Path(__file__).resolve().parents[1]
OOM_PLUGIN = textwrap.dedent('''
    """One pandas stage cell runs out of memory, as big data would make it."""
    from scalebench import runner

    _run = runner.QueryRun.__call__


    def _call(self):
        if self.engine.name == "pandas" and self.query.id == "groupby-points":
            raise MemoryError("could not allocate the frame")
        return _run(self)


    runner.QueryRun.__call__ = _call
''')
SECTIONS = ("db-benchmark totals", "Skew", "Partitioning", "Memory against the budget", "Machine learning",
            "Data generator", "Cost of measuring memory", "Measured on")


@pytest.fixture(scope="module")
def whole_run(tmp_path_factory, data_dir) -> Path:
    """The JSON of a real tiny run of every benchmark file on the in-process engines."""
    tmp = tmp_path_factory.mktemp("whole")
    (tmp / "oomplugin.py").write_text(OOM_PLUGIN)
    saved = tmp / "run.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp), str(REPO), env.get("PYTHONPATH", "")])
    args = ["-p", "oomplugin", "-q", "-rfEx", "-p", "no:cacheprovider", "-p", "no:xdist", "--benchmark-only",
            "--engines=pandas,duckdb", "--pipeline=pandas:pandas", "--formats=csv,parquet", "--scale=tiny",
            "--gen-rows=tiny", "--rounds=1", "--no-memray", f"--data-dir={data_dir}", f"--basetemp={tmp / 'basetemp'}",
            f"--benchmark-json={saved}"]
    r = subprocess.run([sys.executable, "-m", "pytest", str(REPO / "benchmarks"), *args],
                       capture_output=True, text=True, cwd=REPO, timeout=900, env=env)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-6000:]
    assert "out of memory: pandas groupby-points" in out, out[-3000:]
    return saved


def test_report_shows_every_family_of_a_whole_run(whole_run, tmp_path, capsys):
    assert main(["report", str(whole_run), "-o", str(tmp_path / "report")]) == 0
    md = flat((tmp_path / "report" / "report.md").read_text())
    page = (tmp_path / "report" / "report.html").read_text()
    for section in SECTIONS:
        assert f"## {section}" in md, section
        assert f"<h2>{html.escape(section)}</h2>" in page, section  # a heading over a real table
    for stage in ("etl-users", "groupby-age", "sort-global", "h2o_groupby-q10", "h2o_join-q5", "join-large",
                  "skew-join-zipf-salted", "partition-groupby-by_key"):
        assert f"| {stage} |" in md, stage
    assert "**out of memory**" in md and "groupby-points" in md
    for variant in ("| logreg | points |", "| tune | serial |", "| tune | distributed |", "| predict | parquet+csv |",
                    "| pipeline | pandas->pandas |"):
        assert variant in md, variant
    for method in ("study-pandas-to_csv", "scalebench-csv", "scalebench-parquet"):
        assert f"| {method} |" in md, method
    assert "| pandas |" in md.split("## Cost of measuring memory")[1]
    machine = f"on a {os.cpu_count()}-core,"
    for figure, words in (("ml", "Median time of each machine-learning benchmark"),
                          ("generate", "Rows written per second when generating the points table"),
                          ("overhead", "The same stage timed with and without the whole-tree memory sampler")):
        assert (tmp_path / "report" / f"{figure}.svg").exists(), figure
        caption = page.split(f"<figure id='fig-{figure}'>")[1].split("<figcaption>")[1].split("</figcaption>")[0]
        assert caption.startswith(words) and machine in caption and " rows" in caption, caption  # in words
        assert page.index(f"id='fig-{figure}'") < page.index("<h2>Machine learning</h2>")  # plots before tables
    assert "<h2>" not in page.split("<h2>All results</h2>")[1]  # the raw table last
    assert md.rindex("## ") == md.index("## All results")


def test_saved_run_names_the_versions_it_measured_on(whole_run):
    record = json.loads(whole_run.read_text())["machine_info"]["scalebench"]
    assert record["lock_sha256"] == hashlib.sha256((REPO / LOCK_NAME).read_bytes()).hexdigest()
    for name in ("pandas", "duckdb", "pyarrow", "numpy", "pytest-benchmark"):
        assert record["versions"][name] == metadata.version(name), name
    assert record["python"] == sys.version.split()[0]
    assert record["machine"]["cores"] == os.cpu_count() and record["machine"]["memory_bytes"] > 2**30
    assert record["machine"]["topology"] == "one host"  # fixtures.multihost sets SCALEBENCH_TOPOLOGY
    assert "java" in record  # None where no Java is installed


def test_compare_says_when_framework_versions_differ(whole_run, tmp_path, capsys):
    doc = json.loads(whole_run.read_text())
    head = copy.deepcopy(doc)
    versions = head["machine_info"]["scalebench"]["versions"]
    versions["pandas"] = "0.0.1-upgraded"
    head["machine_info"]["scalebench"]["lock_sha256"] = "0" * 64
    (tmp_path / "head.json").write_text(json.dumps(head))
    main(["compare", str(whole_run), str(tmp_path / "head.json"), "--threshold", "1000%"])
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("versions differ between base and head"), out[:5]
    assert f"  pandas: {doc['machine_info']['scalebench']['versions']['pandas']} -> 0.0.1-upgraded" in out[:10]
    assert any(line.startswith("  lock: ") for line in out[:10]), out[:10]
    assert "(versions differ: see above)" in out[-1]
    # the same run on clusters spread over hosts is named too (older runs recorded no topology)
    hosts = copy.deepcopy(doc)
    hosts["machine_info"]["scalebench"]["machine"]["topology"] = "3 hosts (network namespaces), links 1gbit"
    del doc["machine_info"]["scalebench"]["machine"]["topology"]
    (tmp_path / "old.json").write_text(json.dumps(doc))
    (tmp_path / "hosts.json").write_text(json.dumps(hosts))
    main(["compare", str(tmp_path / "old.json"), str(tmp_path / "hosts.json"), "--threshold", "1000%"])
    out = capsys.readouterr().out.splitlines()
    assert "  machine topology: one host -> 3 hosts (network namespaces), links 1gbit" in out[:10], out[:10]
    # the same run twice: no difference to report
    main(["compare", str(whole_run), str(whole_run)])
    assert capsys.readouterr().out.startswith("same versions in base and head")


def test_report_reads_several_whole_runs_together(whole_run, tmp_path):
    other = tmp_path / "again.json"
    other.write_text(whole_run.read_text())
    assert main(["report", str(whole_run), str(other), "-o", str(tmp_path / "both")]) == 0
    md = flat((tmp_path / "both" / "report.md").read_text())
    assert f"| {whole_run.stem} |" in md and "| again |" in md
