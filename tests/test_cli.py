"""`scalebench generate`: one clear message, exit status 2, nothing left behind."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from scalebench.cli import main

pytestmark = pytest.mark.generate


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scalebench.cli", *args], capture_output=True, text=True,
                          timeout=300)


def test_generate_prints_a_summary(tmp_path, capsys):
    assert main(["generate", "points", "--rows", "50k", "--format", "csv,parquet", "--data-dir", str(tmp_path),
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "points csv: 50,000 rows" in out and "points parquet: 50,000 rows" in out and "M rows/s" in out
    assert main(["generate", "points", "--rows", "50k", "--format", "csv", "--data-dir", str(tmp_path),
                 "--no-progress"]) == 0
    assert "cached" in capsys.readouterr().out


def test_generate_makes_tpch_at_a_scale_factor_and_names_a_bad_one(tmp_path, capsys):
    assert main(["generate", "tpch", "--sf", "0.01", "--format", "parquet", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "tpch SF0.01 parquet: " in out and " in 8 tables, " in out and "generated in" in out, out
    assert main(["generate", "tpch", "--sf", "0.01", "--format", "parquet", "--data-dir", str(tmp_path)]) == 0
    assert "cached" in capsys.readouterr().out
    proc = _run("generate", "tpch", "--sf", "0.001", "--data-dir", str(tmp_path))
    assert proc.returncode == 2 and "--sf: '0.001' must be a scale factor of at least 0.01" in proc.stderr


@pytest.mark.parametrize("args, message", [
    (["points", "--rows", "0"], "--rows: '0' must be a whole number of rows, at least 1"),
    (["points", "--rows", "-3"], "--rows: '-3' must be a whole number of rows, at least 1"),
    (["points", "--rows", "lots"], "--rows: 'lots' is neither a size tier"),
    (["pointz"], "unknown dataset 'pointz'; choose from points, users"),
    (["points", "--format", "csv,orc"], "--format: unknown format orc; choose from csv, parquet"),
    (["points", "--workers", "0"], "--workers: 0 must be at least 1"),
    (["points", "--memory-multiple", "-1"], "--memory-multiple: '-1' must be a positive number"),
    (["points", "--memory-multiple", "1.2", "--memory-budget", "lots"], "--memory-budget: 'lots' is not a size"),
])
def test_bad_arguments(tmp_path, args, message):
    r = _run("generate", *args, "--data-dir", str(tmp_path / "d"))
    assert r.returncode == 2, r.stderr
    assert message in r.stderr
    assert r.stderr.count("error:") == 1 and "Traceback" not in r.stderr
    assert not (tmp_path / "d").exists() or not any((tmp_path / "d").rglob("*.*"))


def test_data_dir_is_a_file(tmp_path):
    f = tmp_path / "not-a-dir"
    f.write_text("")
    r = _run("generate", "points", "--rows", "10", "--data-dir", str(f))
    assert r.returncode == 2 and f"--data-dir: {f} exists and is not a directory" in r.stderr


def test_disk_full_leaves_nothing_behind(tmp_path):
    """A file-size limit stands in for a full disk: writes past 1 MiB fail with EFBIG."""
    script = textwrap.dedent(f"""
        import resource, signal, sys
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (2**20, 2**20))
        from scalebench.cli import main
        sys.exit(main(["generate", "points", "--rows", "200k", "--format", "csv", "--no-progress",
                       "--data-dir", {str(tmp_path)!r}]))
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr
    assert "could not write the dataset: File too large" in r.stderr and "Traceback" not in r.stderr
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file() and not p.name.endswith(".lock")]
    assert leftovers == []


def test_help_lists_examples():
    r = _run("generate", "--help")
    assert r.returncode == 0 and "--memory-multiple" in r.stdout and "examples:" in r.stdout
    assert "20 % larger" in r.stdout and "%%" not in r.stdout  # the epilog is printed as written
