"""DuckDB: the single-node reference, in SQL. Its answers are what every engine is checked against."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import duckdb
import pandas as pd

from scalebench import tpch as tpch_catalogue
from scalebench.answers import Held, held
from scalebench.datasets.schemas import schema_for
from scalebench.engines.base import Engine, StageInput
from scalebench.engines.duckdb_tpch import TPCH_SQL
from scalebench.inputs import CSV_TIMESTAMP_FORMAT, normalise_name
from scalebench.stages import (
    EXTREMES,
    H2O_JOIN_ANSWER,
    H2O_JOIN_QUESTIONS,
    H2O_JOIN_X,
    ID_BUCKET_WIDTH,
    SALT_BUCKETS,
    TOP_EARNERS,
)

SQL_TYPES = {"int64": "BIGINT", "int32": "INTEGER", "double": "DOUBLE", "string": "VARCHAR", "bool": "BOOLEAN",
             "timestamp[us]": "TIMESTAMP", "date32[day]": "DATE"}


def csv_columns(dataset: str) -> dict[str, str]:
    """Every column's SQL type from the dataset's schema: no inference pass over the CSV."""
    return {f.name: SQL_TYPES[str(f.type)] for f in schema_for(dataset).arrow}


def _sql_str(value: str | Path) -> str:
    return "'" + str(value).replace("'", "''") + "'"


# etl_users' casts: the users schema's SQL types, except that the ETL keeps the day of signup_date
ETL_USERS_TYPES = {**csv_columns("users"), "signup_date": "DATE"}

# db-benchmark groupby questions, each one grouped query over the input {x}
GROUPBY_SQL = {
    "q1": "SELECT id1, sum(v1) AS v1 FROM {x} GROUP BY id1",
    "q2": "SELECT id1, id2, sum(v1) AS v1 FROM {x} GROUP BY id1, id2",
    "q3": "SELECT id3, sum(v1) AS v1, avg(v3) AS v3 FROM {x} GROUP BY id3",
    "q4": "SELECT id4, avg(v1) AS v1, avg(v2) AS v2, avg(v3) AS v3 FROM {x} GROUP BY id4",
    "q5": "SELECT id6, sum(v1) AS v1, sum(v2) AS v2, sum(v3) AS v3 FROM {x} GROUP BY id6",
    "q6": "SELECT id4, id5, median(v3) AS median_v3, stddev_samp(v3) AS sd_v3 FROM {x} GROUP BY id4, id5",
    "q7": "SELECT id3, max(v1) - min(v2) AS range_v1_v2 FROM {x} GROUP BY id3",
    "q8": ("SELECT id6, v3 AS largest2_v3 FROM {x} WHERE v3 IS NOT NULL "
           "QUALIFY row_number() OVER (PARTITION BY id6 ORDER BY v3 DESC) <= 2"),
    "q9": "SELECT id2, id4, pow(corr(v1, v2), 2) AS r2 FROM {x} GROUP BY id2, id4",
    "q10": ("SELECT id1, id2, id3, id4, id5, id6, sum(v3) AS v3, count(*) AS count "
            "FROM {x} GROUP BY id1, id2, id3, id4, id5, id6"),
}


# -- skew remedies: each gives the grouped (or joined) rows as SQL --------------------------------
def _groupby_plain(engine: DuckDBEngine, inp: StageInput) -> str:
    return f"SELECT key, count(*) AS n, sum(v) AS s FROM {engine._scan(inp)} GROUP BY key"


def _groupby_by_key(engine: DuckDBEngine, inp: StageInput) -> str:
    """DuckDB aggregates per hive partition when grouping by its column."""
    files = ", ".join(_sql_str(f) for f in inp.require_partitioned("key", "duckdb"))
    return (f"SELECT key, count(*) AS n, sum(v) AS s FROM read_parquet([{files}], hive_partitioning = true) "
            "GROUP BY key_bucket, key")


def _groupby_salted(engine: DuckDBEngine, inp: StageInput) -> str:
    """One thread per salt bucket, then combine: pointless here, done for the record."""
    return (f"SELECT key, sum(n) AS n, sum(s) AS s FROM (SELECT key, id % {SALT_BUCKETS} AS salt, "
            f"count(*) AS n, sum(v) AS s FROM {engine._scan(inp)} GROUP BY key, salt) GROUP BY key")


def _join_plain(engine: DuckDBEngine, inp: StageInput) -> str:
    keys, dim = engine._scan(inp), engine._scan(inp.extra["keys_dim"])
    return f"SELECT k.v, d.w FROM {keys} k JOIN {dim} d ON k.key = d.key"


def _join_salted(engine: DuckDBEngine, inp: StageInput) -> str:
    """Each dimension row copied once per salt."""
    keys, dim = engine._scan(inp), engine._scan(inp.extra["keys_dim"])
    return (f"SELECT k.v, d.w FROM (SELECT *, id % {SALT_BUCKETS} AS salt FROM {keys}) k "
            f"JOIN (SELECT *, unnest(range({SALT_BUCKETS})) AS salt FROM {dim}) d "
            f"ON k.key = d.key AND k.salt = d.salt")


# a str is the reason DuckDB has no form of the remedy; Engine.implementation prefixes "duckdb: "
SKEW_GROUPBY: dict[str, Callable[..., str] | str] = {
    "plain": _groupby_plain, "salted": _groupby_salted, "by_key": _groupby_by_key,
    "native": "has no native skew remedy for groupby (native)"}
SKEW_JOIN: dict[str, Callable[..., str] | str] = {
    "plain": _join_plain, "salted": _join_salted,
    "native": "runs one hash join on one machine: no native skew remedy"}


class DuckDBEngine(Engine):
    name = "duckdb"

    def start(self) -> None:
        self._own_spill = None
        self._held_tables = 0
        spill = self.spec.spill_dir
        if spill is None:
            spill = self._own_spill = Path(tempfile.mkdtemp(prefix="scalebench-duckdb-"))
        self.con = duckdb.connect(config={
            "threads": self.spec.cores,
            "memory_limit": f"{self.spec.memory_budget_bytes // 2**20}MiB",
            "temp_directory": str(spill),
            "preserve_insertion_order": False,  # lets large writes stream
        })

    def stop(self) -> None:
        con = getattr(self, "con", None)
        if con is not None:
            con.close()
            self.con = None
        if getattr(self, "_own_spill", None):
            shutil.rmtree(self._own_spill, ignore_errors=True)
            self._own_spill = None

    def version(self) -> str:
        return duckdb.__version__

    def describe(self) -> dict:
        return {**super().describe(), "idiom": "duckdb-sql", "address": "in-process"}

    def _load_table(self, inp: StageInput) -> str:
        """--io memory: the input copied into a DuckDB table (its own columnar format, in memory or
        its temp directory), as db-benchmark's DuckDB script loads it."""
        name = f"scalebench_input_{len(self._loaded)}_{inp.format}"
        self.con.sql(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM {self._scan(inp)}")
        return name

    def _unload_table(self, held: str) -> None:
        if self.con is not None:
            self.con.sql(f"DROP TABLE IF EXISTS {held}")

    def _scan(self, inp: StageInput) -> str:
        loaded = self.loaded(inp)
        if loaded is not None:
            return loaded
        if inp.format == "csv":
            cols = ", ".join(f"{_sql_str(k)}: {_sql_str(v)}" for k, v in csv_columns(inp.dataset).items())
            return (f"read_csv({_sql_str(inp.path)}, header = true, columns = {{{cols}}}, "
                    f"timestampformat = {_sql_str(CSV_TIMESTAMP_FORMAT)})")
        return f"read_parquet([{', '.join(_sql_str(f) for f in inp.files)}])"

    def _df(self, sql: str) -> pd.DataFrame:
        return self.con.sql(sql).df()

    def _copy(self, sql: str, out: Path, options: str = "") -> None:
        out.mkdir(parents=True, exist_ok=True)
        self.con.sql(f"COPY ({sql}) TO {_sql_str(out)} (FORMAT parquet{options})")

    # -- etl ------------------------------------------------------------------
    def etl_users(self, inp: StageInput, out: Path) -> None:
        raw = self._scan(inp)
        cols = [c for c in self.con.sql(f"SELECT * FROM {raw} LIMIT 0").columns]
        renamed = ", ".join(f'"{c}" AS "{normalise_name(c)}"' for c in cols)
        typed = ", ".join(f"CAST({c} AS {t}) AS {c}" for c, t in ETL_USERS_TYPES.items())
        complete = " AND ".join(f"{c} IS NOT NULL" for c in ETL_USERS_TYPES)
        sql = f"""
            WITH named AS (SELECT {renamed} FROM {raw}),
            typed AS (SELECT {typed} FROM named)
            SELECT * FROM typed
            WHERE {complete}
            QUALIFY row_number() OVER (PARTITION BY id) = 1"""
        self._copy(sql, out, ", PARTITION_BY (is_active), OVERWRITE_OR_IGNORE")

    def etl_points(self, inp: StageInput, out: Path) -> None:
        self._copy(f"SELECT id, x, y, category FROM {self._scan(inp)}", out,
                   ", PER_THREAD_OUTPUT true, OVERWRITE_OR_IGNORE")

    # -- groupby --------------------------------------------------------------
    def groupby_points(self, inp: StageInput) -> pd.DataFrame:
        return self._df(f"""SELECT category, count(*) AS count, sum(x) AS sum_x, avg(x) AS mean_x,
                                   sum(y) AS sum_y, avg(y) AS mean_y
                            FROM {self._scan(inp)} GROUP BY category""")

    def groupby_age(self, inp: StageInput) -> pd.DataFrame:
        return self._df(f"SELECT age, count(*) AS count, avg(salary) AS mean_salary "
                        f"FROM {self._scan(inp)} GROUP BY age")

    def groupby_id_bucket(self, inp: StageInput) -> pd.DataFrame:
        return self._df(f"SELECT id // {ID_BUCKET_WIDTH} AS bucket, count(*) AS count, "
                        f"sum(salary) AS sum_salary FROM {self._scan(inp)} GROUP BY bucket")

    # -- sort -----------------------------------------------------------------
    def _distinct_ids(self, inp: StageInput) -> str:
        return f"(SELECT * FROM {self._scan(inp)} QUALIFY row_number() OVER (PARTITION BY id) = 1)"

    def sort_top_earners(self, inp: StageInput) -> pd.DataFrame:
        return self._df(f"SELECT id, name, salary FROM {self._distinct_ids(inp)} WHERE salary IS NOT NULL "
                        f"ORDER BY salary DESC, id LIMIT {TOP_EARNERS}")

    def sort_active_extremes(self, inp: StageInput) -> pd.DataFrame:
        active = f"(SELECT id, name, age FROM {self._distinct_ids(inp)} WHERE is_active)"
        return self._df(f"""
            (SELECT 'youngest' AS "end", id, name, age FROM {active} ORDER BY age, id LIMIT {EXTREMES})
            UNION ALL
            (SELECT 'oldest' AS "end", id, name, age FROM {active} ORDER BY age DESC, id LIMIT {EXTREMES})""")

    def sort_global(self, inp: StageInput, out: Path) -> None:
        # one ordered file: DuckDB's COPY keeps ORDER BY order only when writing a single file
        out.mkdir(parents=True, exist_ok=True)
        self.con.sql(f"COPY (SELECT * FROM {self._scan(inp)} WHERE salary IS NOT NULL ORDER BY salary, id) "
                     f"TO {_sql_str(out / 'sorted.parquet')} (FORMAT parquet)")

    # -- db-benchmark ------------------------------------------------------------
    def _held(self, sql: str) -> Held:
        """A large answer made a temp table inside the timer and counted there; fetched and
        dropped after it. A closed connection took its temp tables with it: release is then a no-op."""
        self._held_tables += 1
        name = f"scalebench_answer_{self._held_tables}"
        con = self.con

        def release() -> None:
            if self.con is con:
                con.sql(f"DROP TABLE IF EXISTS {name}")

        try:
            con.sql(f"CREATE TEMP TABLE {name} AS {sql}")
            rows = con.sql(f"SELECT count(*) FROM {name}").fetchall()[0][0]
        except BaseException:
            with contextlib.suppress(Exception):  # the query's own error is the one to report
                release()
            raise

        self.last_notes["answer"] = "materialised as a DuckDB temp table and counted; fetched after the timer"
        return Held(rows=rows, fetch=lambda: con.sql(f"SELECT * FROM {name}").df(), release=release,
                    where="a DuckDB temp table")

    def _answer(self, op: str, question: str, sql: str) -> pd.DataFrame | Held:
        """Small answers collected as a DataFrame; large ones (answers.held) kept in a temp table."""
        if held(op, question):
            return self._held(sql)
        self.last_notes["answer"] = "collected to the driver (.df())"
        return self._df(sql)

    def h2o_groupby(self, inp: StageInput, question: str) -> pd.DataFrame | Held:
        """The question's SQL (GROUPBY_SQL) over the input: group keys, then the answer columns."""
        return self._answer("h2o_groupby", question, GROUPBY_SQL[question].format(x=self._scan(inp)))

    def h2o_join(self, inp: StageInput, question: str) -> pd.DataFrame | Held:
        """x joined with the question's right table on its key, how (stages.H2O_JOIN_QUESTIONS):
        every x column, then the right table's v2 (stages.H2O_JOIN_ANSWER)."""
        table, key, how = H2O_JOIN_QUESTIONS[question]
        columns = ", ".join(f"x.{c}" if c in H2O_JOIN_X else f"r.{c}" for c in H2O_JOIN_ANSWER)
        return self._answer("h2o_join", question,
                            f"SELECT {columns} FROM {self._scan(inp)} x {how.upper()} JOIN "
                            f"{self._scan(inp.extra[table])} r ON x.{key} = r.{key}")

    # -- joins on users -------------------------------------------------------------
    def join_dim(self, inp: StageInput) -> pd.DataFrame:
        return self._df(f"SELECT d.region, count(*) AS count, sum(u.salary) AS sum_salary, "
                        f"sum(d.weight) AS sum_weight FROM {self._scan(inp)} u "
                        f"JOIN {self._scan(inp.extra['names_dim'])} d ON u.name = d.name GROUP BY d.region")

    def join_large(self, inp: StageInput) -> pd.DataFrame:
        return self._df(f"SELECT u.is_active, count(*) AS count, sum(a.balance) AS sum_balance, "
                        f"sum(u.salary) AS sum_salary FROM {self._scan(inp)} u "
                        f"JOIN {self._scan(inp.extra['accounts'])} a ON u.id = a.id GROUP BY u.is_active")

    # -- skew -------------------------------------------------------------------------
    def skew_groupby(self, inp: StageInput, remedy: str) -> pd.DataFrame:
        grouped = self.variant("skew_groupby", remedy)(self, inp)
        return self._df(f"SELECT count(*) AS groups, sum(n) AS rows, sum(s) AS sum_v, max(n) AS max_count "
                        f"FROM ({grouped})")

    def skew_join(self, inp: StageInput, remedy: str) -> pd.DataFrame:
        joined = self.variant("skew_join", remedy)(self, inp)
        return self._df(f"SELECT count(*) AS rows, sum(v) AS sum_v, sum(w) AS sum_w FROM ({joined})")

    # -- TPC-H ---------------------------------------------------------------------------
    def tpch(self, inp: StageInput, question: str) -> pd.DataFrame:
        """The question's SQL (engines.duckdb_tpch) over the eight tables' scans, collected."""
        scans = {table: self._scan(t) for table, t in tpch_catalogue.tables(inp).items()}
        self.last_notes["answer"] = "collected to the driver (.df())"
        return self._df(TPCH_SQL[question].format(**scans, fraction=repr(tpch_catalogue.q11_fraction(inp))))

    VARIANTS = {"h2o_groupby": dict.fromkeys(GROUPBY_SQL, h2o_groupby),
                "tpch": dict.fromkeys(TPCH_SQL, tpch),
                "h2o_join": dict.fromkeys(H2O_JOIN_QUESTIONS, h2o_join),
                "skew_groupby": SKEW_GROUPBY, "skew_join": SKEW_JOIN}


ENGINE = DuckDBEngine
