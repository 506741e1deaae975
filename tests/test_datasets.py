"""The generator: schemas, distributions, determinism, halves, and the cache's defences."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from scalebench.datasets import DatasetError, ensure, ensure_partitioned, rows_for_memory, validate
from scalebench.datasets import schemas as sc
from scalebench.datasets.store import MANIFEST, plan_parts

pytestmark = pytest.mark.generate
ROWS = 300_000


@pytest.fixture(scope="module")
def users(data_dir):
    return ensure("users", ROWS, "parquet", data_dir=data_dir, workers=2)


@pytest.fixture(scope="module")
def points(data_dir):
    return ensure("points", ROWS, "parquet", data_dir=data_dir, workers=2)


def test_parquet_schemas(users, points):
    assert pq.read_schema(points.files()[0]).remove_metadata() == sc.POINTS_SCHEMA
    assert pq.read_schema(users.files()[0]).remove_metadata() == sc.USERS_SCHEMA
    assert users.rows == sum(pq.ParquetFile(f).metadata.num_rows for f in users.files()) == ROWS


def test_csv_matches_parquet(data_dir, points, users):
    """Same rows, same values: the two formats are two encodings of one dataset."""
    for pq_data in (points, users):
        csv = ensure(pq_data.dataset, ROWS, "csv", data_dir=data_dir, workers=2)
        header = csv.path.open().readline().strip().split(",")
        assert header == list(sc.SCHEMAS[pq_data.dataset].columns)
        types = {f.name: f.type for f in sc.SCHEMAS[pq_data.dataset].arrow}
        from_csv = pacsv.read_csv(csv.path, convert_options=pacsv.ConvertOptions(column_types=types)).to_pandas()
        from_pq = pd.read_parquet(pq_data.path)
        pd.testing.assert_frame_equal(from_csv, from_pq, check_dtype=False)


def test_points_distribution(points):
    df = pd.read_parquet(points.path)
    assert df["id"].tolist() == list(range(ROWS))
    for col in ("x", "y"):
        assert df[col].between(0, 1, inclusive="left").all()
        assert abs(df[col].mean() - 0.5) < 0.005 and abs(df[col].var() - 1 / 12) < 0.002
        assert np.allclose(df[col] * 1e6, np.round(df[col] * 1e6), atol=1e-6)  # six decimals
    # class shares match the true model integrated over the unit square
    g = np.linspace(0.0005, 0.9995, 1000)
    gx, gy = np.meshgrid(g, g)
    w = np.stack([np.exp(b0 + bx * gx + by * gy) for b0, bx, by in sc.TRUE_COEFFICIENTS.values()])
    expected = (w / w.sum(axis=0)).mean(axis=(1, 2))
    observed = df["category"].value_counts(normalize=True).reindex(list(sc.CATEGORIES)).to_numpy()
    assert np.allclose(observed, expected, atol=0.005), (observed, expected)


def test_points_recover_true_coefficients(points):
    """A fitted multinomial logit lands on the generator's coefficients."""
    sklearn = pytest.importorskip("sklearn.linear_model")
    df = pd.read_parquet(points.path)
    model = sklearn.LogisticRegression(C=np.inf, max_iter=500).fit(df[["x", "y"]], df["category"])
    coef = np.column_stack([model.intercept_, model.coef_])
    coef -= coef[list(model.classes_).index("A")]  # A is the baseline
    truth = np.array([sc.TRUE_COEFFICIENTS[c] for c in model.classes_])
    assert np.abs(coef - truth).max() < 0.12, coef


def test_users_distribution(users):
    df = pd.read_parquet(users.path)
    assert df["age"].between(sc.AGE_MIN, sc.AGE_MAX).all()
    assert set(df["age"].unique()) == set(range(sc.AGE_MIN, sc.AGE_MAX + 1))
    assert set(df["name"].unique()) <= set(sc.NAMES)
    slope = np.polyfit(df["age"][df["salary"].notna()], df["salary"].dropna(), 1)[0]
    assert abs(slope - sc.SALARY_PER_YEAR) < 50
    resid_sd = (df["salary"] - (sc.SALARY_BASE + sc.SALARY_PER_YEAR * (df["age"] - sc.AGE_MIN))).std()
    assert abs(resid_sd - sc.SALARY_SD) < 500
    assert abs(df["salary"].isna().mean() - sc.P_NULL_SALARY) < 0.002
    assert abs(df["signup_date"].isna().mean() - sc.P_NULL_SIGNUP) < 0.0015
    assert abs(df["is_active"].mean() - sc.P_ACTIVE) < 0.005
    dates = df["signup_date"].dropna()
    anchor = pd.Timestamp(str(sc.SIGNUP_ANCHOR))
    assert dates.max() <= anchor and dates.min() >= anchor - pd.Timedelta(days=3653)
    dup = df["id"].duplicated(keep=False)
    assert abs(df["id"].duplicated().mean() - sc.P_DUPLICATE) < 0.0015
    assert df[dup].duplicated(keep=False).all()  # duplicates are exact copies


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_same_bytes_with_one_and_two_processes(tmp_path, fmt):
    rows = 1_100_000  # several parts and chunks
    one = ensure("points", rows, fmt, data_dir=tmp_path / "one", workers=1)
    two = ensure("points", rows, fmt, data_dir=tmp_path / "two", workers=2)
    assert len(plan_parts(rows)) > 1
    strip = lambda m: {k: v["segments"] for k, v in m["files"].items()}  # noqa: E731
    assert strip(one.manifest) == strip(two.manifest)
    for a, b in zip(one.files(), two.files(), strict=True):
        assert a.read_bytes() == b.read_bytes()


def test_csv_halves_add_up_to_the_whole(data_dir):
    data = ensure("users", 1_100_000, "csv", data_dir=data_dir, workers=2)
    whole = data.path.read_bytes()
    header, body = whole.split(b"\n", 1)
    h1, h2 = (p.read_bytes().split(b"\n", 1) for p in data.files("half1") + data.files("half2"))
    assert h1[0] == h2[0] == header
    assert h1[1] + h2[1] == body
    rows = [data.manifest["files"][f"half{i}.csv"]["rows"] for i in (1, 2)]
    assert sum(rows) == data.rows and abs(rows[0] - rows[1]) <= data.rows * 0.3


def _fresh(tmp_path, fmt="parquet"):
    return ensure("points", 1_100_000, fmt, data_dir=tmp_path, workers=2)


@pytest.mark.parametrize("damage", ["missing", "truncated", "altered", "extra", "no-manifest"])
def test_cache_rejects_a_damaged_folder(tmp_path, damage):
    data = _fresh(tmp_path)
    victim = data.files()[-1]
    original = victim.read_bytes()
    if damage == "missing":
        victim.unlink()
    elif damage == "truncated":
        victim.write_bytes(original[: len(original) // 2])
    elif damage == "altered":  # same size, one byte flipped
        victim.write_bytes(original[:100] + bytes([original[100] ^ 1]) + original[101:])
    elif damage == "extra":
        (data.folder / "part-99999.parquet").write_bytes(original)
    else:
        (data.folder / MANIFEST).unlink()
    with pytest.raises(DatasetError, match=r"missing|truncated|altered|not in the manifest|no _manifest"):
        validate(data.folder)
    again = _fresh(tmp_path)  # never used as valid: regenerated instead
    assert validate(again.folder).manifest["files"] == again.manifest["files"]
    assert again.files()[-1].read_bytes() == original
    assert not list(tmp_path.rglob("*.tmp-*")) and not list(tmp_path.rglob("*.trash-*"))


def test_cached_dataset_is_reused_without_rewriting(tmp_path):
    first = _fresh(tmp_path)
    mtimes = {p: p.stat().st_mtime_ns for p in first.files()}
    second = _fresh(tmp_path)
    assert {p: p.stat().st_mtime_ns for p in second.files()} == mtimes


def test_parquet_parts_have_a_sane_size():
    parts = plan_parts(100_000_000)
    assert len(parts) % 2 == 0 and max(p.rows for p in parts) <= 4_000_000
    assert plan_parts(1) == plan_parts(1)[:1] and plan_parts(1)[0].rows == 1


def test_memory_multiple_sizes_the_files(tmp_path):
    budget = 20 * 2**20
    rows = rows_for_memory("points", "csv", 1.2, budget)
    data = ensure("points", rows, "csv", data_dir=tmp_path, workers=2)
    assert abs(data.bytes / budget - 1.2) < 0.02


@pytest.mark.parametrize("kwargs, message", [
    (dict(name="points", rows=0, fmt="csv"), "--rows"),
    (dict(name="points", rows=-5, fmt="csv"), "--rows"),
    (dict(name="nope", rows=10, fmt="csv"), "unknown dataset 'nope'"),
    (dict(name="points", rows=10, fmt="xml"), "--format: unknown format 'xml'"),
])
def test_bad_requests(tmp_path, kwargs, message):
    with pytest.raises(DatasetError, match=message):
        ensure(kwargs["name"], kwargs["rows"], kwargs["fmt"], data_dir=tmp_path)
    assert not any(tmp_path.iterdir())


def test_data_dir_that_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(DatasetError, match=f"--data-dir: {f} exists and is not a directory"):
        ensure("points", 10, "csv", data_dir=f)


def test_manifest_records_what_a_reader_needs(users):
    m = json.loads((users.folder / MANIFEST).read_text())
    assert {"generator_version", "schema", "rows", "bytes", "files", "seed", "parts"} <= set(m)
    assert all(len(seg[2]) == 64 for e in m["files"].values() for seg in e["segments"])
    assert os.path.basename(users.folder) == "parquet"


def test_a_script_without_a_main_guard_can_generate(tmp_path):
    """With another thread alive the generator forks from a server process; the caller's
    unguarded script must not run again in the workers (it used to deadlock on the lock)."""
    import subprocess
    import sys

    script = tmp_path / "unguarded.py"
    script.write_text(
        "import threading, time\n"
        "from scalebench.datasets import ensure\n"
        "threading.Thread(target=time.sleep, args=(3,)).start()\n"
        "print('script body ran')\n"
        f"print(ensure('points', 1_100_000, 'csv', data_dir={str(tmp_path / 'd')!r}, workers=2).rows)\n")
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["script", "body", "ran", "1100000"]


def test_partitioned_layout_holds_the_same_rows_each_key_in_one_file(tmp_path):
    plain = ensure("keys_s0", 1_100_000, "parquet", data_dir=tmp_path, workers=2)
    by_key = ensure_partitioned(plain, "key")
    assert by_key.folder.parent == plain.folder.parent and by_key.rows == plain.rows
    assert by_key.manifest["layout"] == {"partitioned_by": "key", "buckets": 8, "hive_column": "key_bucket"}
    files = by_key.files()
    assert [f.parent.name for f in files] == [f"key_bucket={b:02d}" for b in range(8)]
    keys = [set(pq.read_table(f, columns=["key"])["key"].to_pylist()) for f in files]
    assert all(k % 8 == b for b, ks in enumerate(keys) for k in ks)
    assert sum(len(ks) for ks in keys) == len(set().union(*keys))  # no key in two files
    whole = pd.concat([pd.read_parquet(f) for f in files]).sort_values("id", ignore_index=True)
    pd.testing.assert_frame_equal(whole, pd.read_parquet(plain.folder).sort_values("id", ignore_index=True))
    mtimes = [f.stat().st_mtime_ns for f in files]
    assert [f.stat().st_mtime_ns for f in ensure_partitioned(plain, "key").files()] == mtimes  # reused
    files[3].write_bytes(files[3].read_bytes()[:100])  # damaged: rebuilt, never reused
    assert validate(ensure_partitioned(plain, "key").folder).rows == plain.rows


def test_partitioned_layout_bad_requests_and_failures_leave_nothing(tmp_path, monkeypatch):
    plain = ensure("keys_s0", 50_000, "parquet", data_dir=tmp_path)
    with pytest.raises(DatasetError, match=r"/csv: a partitioned layout is made from a plain Parquet"):
        ensure_partitioned(ensure("keys_s0", 50_000, "csv", data_dir=tmp_path), "key")
    with pytest.raises(DatasetError, match=r"no column 'nope' to partition by"):
        ensure_partitioned(plain, "nope")

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pq, "read_table", full_disk)
    with pytest.raises(DatasetError, match=r"parquet-by-key8: could not write the dataset: No space left"):
        ensure_partitioned(plain, "key")
    assert sorted(p.name for p in plain.folder.parent.iterdir() if not p.name.endswith(".lock")) == ["csv", "parquet"]
