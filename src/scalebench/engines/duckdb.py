"""DuckDB: the single-node reference, in SQL. Its answers are what every engine is checked against."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import duckdb
import pandas as pd

from scalebench.engines.base import Engine, StageInput
from scalebench.stages import EXTREMES, ID_BUCKET_WIDTH, TOP_EARNERS

CSV_COLUMNS = {
    "points": {"id": "BIGINT", "x": "DOUBLE", "y": "DOUBLE", "category": "VARCHAR"},
    "users": {"id": "BIGINT", "name": "VARCHAR", "age": "INTEGER", "salary": "DOUBLE",
              "signup_date": "TIMESTAMP", "is_active": "BOOLEAN"},
}


def _sql_str(value: str | Path) -> str:
    return "'" + str(value).replace("'", "''") + "'"


class DuckDBEngine(Engine):
    name = "duckdb"

    def start(self) -> None:
        self._own_spill = None
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

    def _scan(self, inp: StageInput) -> str:
        if inp.format == "csv":
            cols = ", ".join(f"{_sql_str(k)}: {_sql_str(v)}" for k, v in CSV_COLUMNS[inp.dataset].items())
            return (f"read_csv({_sql_str(inp.path)}, header = true, columns = {{{cols}}}, "
                    "timestampformat = '%Y-%m-%d %H:%M:%S')")
        return f"read_parquet({_sql_str(Path(inp.path) / '*.parquet')})"

    def _df(self, sql: str) -> pd.DataFrame:
        return self.con.sql(sql).df()

    def _copy(self, sql: str, out: Path, options: str = "") -> None:
        out.mkdir(parents=True, exist_ok=True)
        self.con.sql(f"COPY ({sql}) TO {_sql_str(out)} (FORMAT parquet{options})")

    # -- etl ------------------------------------------------------------------
    def etl_users(self, inp: StageInput, out: Path) -> None:
        raw = self._scan(inp)
        cols = [c for c in self.con.sql(f"SELECT * FROM {raw} LIMIT 0").columns]
        renamed = ", ".join(f'"{c}" AS "{c.strip().lower().replace(" ", "_")}"' for c in cols)
        sql = f"""
            WITH named AS (SELECT {renamed} FROM {raw}),
            typed AS (
                SELECT CAST(id AS BIGINT) AS id, CAST(name AS VARCHAR) AS name, CAST(age AS INTEGER) AS age,
                       CAST(salary AS DOUBLE) AS salary, CAST(signup_date AS DATE) AS signup_date,
                       CAST(is_active AS BOOLEAN) AS is_active
                FROM named)
            SELECT * FROM typed
            WHERE id IS NOT NULL AND name IS NOT NULL AND age IS NOT NULL AND salary IS NOT NULL
              AND signup_date IS NOT NULL AND is_active IS NOT NULL
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


ENGINE = DuckDBEngine
