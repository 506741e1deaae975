"""Ray engine, TPC-H's 22 queries in Ray Data (the SQL they match: engines.duckdb_tpch).

Each reads only the columns it needs, filters with expressions (pushed into the Parquet read),
joins with ``Dataset.join`` (a hash shuffle of both sides; EXISTS / IN are left_semi, NOT EXISTS
/ NOT IN left_anti), adds per-row columns with ``with_column`` expressions (CASE WHEN as a
boolean cast times the value) or, where no expression exists, ``map_batches`` (pyarrow), groups
with ``groupby().aggregate``, then ``sort`` and ``limit`` and collects the small answer with
``to_pandas()``. Correlated subqueries are decorrelated the way a Ray user writes them: a grouped
aggregate joined back (q2, q17, q20), a global aggregate taken with ``Dataset.aggregate`` and
used as a literal in a second pass (q11, q15, q22); an intermediate read twice is
``materialize()``d in the object store, so both passes see the same blocks.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import ray.data
from ray.data.aggregate import Count, CountDistinct, Max, Mean, Min, Sum
from ray.data.datatype import DataType
from ray.data.expressions import Expr, col, lit

from scalebench import tpch as catalogue
from scalebench.engines.base import StageInput
from scalebench.engines.ray.read import RayReader

Dataset = ray.data.Dataset
IDIOM = ("ray-data: read(columns), filter(expr), Dataset.join (hash shuffle; semi/anti for EXISTS/IN), "
         "with_column(expr) / map_batches(pyarrow), groupby().aggregate, sort, limit, to_pandas()")


def _d(text: str) -> Expr:
    """A date literal (date32 columns compare with it in Arrow)."""
    return lit(dt.date.fromisoformat(text))


def _volume(ds: Dataset, name: str = "volume") -> Dataset:
    """l_extendedprice * (1 - l_discount), the revenue of a line."""
    return ds.with_column(name, col("l_extendedprice") * (1 - col("l_discount")))


def _when(cond: Expr, value: Expr) -> Expr:
    """CASE WHEN cond THEN value ELSE 0 END."""
    return cond.cast(DataType.float64()) * value


def _late_supplier(tbl: pa.Table) -> pa.Table:
    """q21: the line's supplier where it was received late, else null (skipped by Min / Max)."""
    late = pc.greater(tbl["l_receiptdate"], tbl["l_commitdate"])
    return tbl.append_column("late_supp", pc.if_else(late, tbl["l_suppkey"], pa.scalar(None, pa.int64())))


class _Q:
    """One question's inputs: reads with column projection and filters, joins with the shuffle
    partitions sized by lineitem (RayReader._partitions)."""

    def __init__(self, engine: RayReader, inp: StageInput) -> None:
        self.engine = engine
        self.inputs = catalogue.tables(inp)
        self.parts = engine._partitions(inp)
        self.fraction = catalogue.q11_fraction(inp)

    def __call__(self, table: str, columns: str, where: Expr | None = None, by: str = "") -> Dataset:
        """`columns` of `table`, filtered by `where`, which may also use the columns `by` (read, then dropped)."""
        ds = self.engine._read(self.inputs[table], columns.split() + by.split())
        ds = ds if where is None else ds.filter(expr=where)
        return ds.select_columns(columns.split()) if by else ds

    def join(self, left: Dataset, right: Dataset, on: str, right_on: str | None = None, how: str = "inner") -> Dataset:
        """left joined with right on the named columns; the right side's key columns are dropped."""
        return left.join(right, how, self.parts, on=tuple(on.split()),
                         right_on=tuple(right_on.split()) if right_on else None)

    def group(self, ds: Dataset, keys: str, *aggs: Any) -> Dataset:
        """groupby(keys).aggregate(aggs), a hash shuffle into the question's partitions."""
        return ds.groupby(keys.split(), num_partitions=self.parts).aggregate(*aggs)

    def nations(self, region: str, names: str = "n_nationkey n_name") -> Dataset:
        """The nations of a region."""
        region_key = self("region", "r_regionkey", col("r_name") == region, "r_name")
        return self.join(self("nation", f"{names} n_regionkey"), region_key, "n_regionkey", "r_regionkey", "left_semi")

    def suppliers(self, columns: str, nation: str | None = None) -> Dataset:
        """Suppliers with their nation's n_name, or only those of `nation`."""
        supp = self("supplier", f"{columns} s_nationkey")
        if nation is None:
            return self.join(supp, self("nation", "n_nationkey n_name"), "s_nationkey", "n_nationkey")
        chosen = self("nation", "n_nationkey", col("n_name") == nation, "n_name")
        return self.join(supp, chosen, "s_nationkey", "n_nationkey", "left_semi")


def _finish(ds: Dataset, question: str) -> pd.DataFrame:
    """The answer's ORDER BY and LIMIT in Ray Data, then its columns collected (to_pandas()).
    Order is preserved for this execution only: the context is shared with the inputs' datasets
    (a loaded table's too), so it is restored afterwards."""
    answer = catalogue.ANSWERS[question]
    if answer.order:
        ds = ds.sort([c for c, _ in answer.order], descending=[d for _, d in answer.order])
    if answer.limit:
        ds = ds.limit(answer.limit)
    options = ds.context.execution_options
    kept, options.preserve_order = options.preserve_order, True  # limit keeps the sort's first rows
    try:
        return ds.select_columns(list(answer.columns)).to_pandas()
    finally:
        options.preserve_order = kept


def _one_row(ds: Dataset, *aggs: Any) -> dict[str, Any]:
    """A global aggregate (Dataset.aggregate): its one row."""
    return ds.aggregate(*aggs) or {}


def q1(q: _Q) -> Dataset:
    li = q("lineitem", "l_returnflag l_linestatus l_quantity l_extendedprice l_discount l_tax",
           col("l_shipdate") <= _d("1998-09-02"), "l_shipdate")
    li = _volume(li, "disc_price").with_column("charge", col("disc_price") * (1 + col("l_tax")))
    return q.group(li, "l_returnflag l_linestatus", Sum("l_quantity", alias_name="sum_qty"),
                   Sum("l_extendedprice", alias_name="sum_base_price"), Sum("disc_price", alias_name="sum_disc_price"),
                   Sum("charge", alias_name="sum_charge"), Mean("l_quantity", alias_name="avg_qty"),
                   Mean("l_extendedprice", alias_name="avg_price"), Mean("l_discount", alias_name="avg_disc"),
                   Count(alias_name="count_order"))


def q2(q: _Q) -> Dataset:
    """The minimum cost per part over European suppliers (grouped), joined back on (part, cost)."""
    supp = q.join(q("supplier", "s_suppkey s_name s_address s_nationkey s_phone s_acctbal s_comment"),
                  q.nations("EUROPE"), "s_nationkey", "n_nationkey")
    part = q("part", "p_partkey p_mfgr p_type", (col("p_size") == 15) & col("p_type").str.ends_with("BRASS"), "p_size")
    offers = q.join(q.join(q("partsupp", "ps_partkey ps_suppkey ps_supplycost"), part, "ps_partkey", "p_partkey"),
                    supp, "ps_suppkey", "s_suppkey").materialize()
    cheapest = q.group(offers, "ps_partkey", Min("ps_supplycost", alias_name="min_cost"))
    best = q.join(offers, cheapest, "ps_partkey ps_supplycost", "ps_partkey min_cost")
    return best.rename_columns({"ps_partkey": "p_partkey"})


def q3(q: _Q) -> Dataset:
    cust = q("customer", "c_custkey", col("c_mktsegment") == "BUILDING", "c_mktsegment")
    orders = q("orders", "o_orderkey o_custkey o_orderdate o_shippriority", col("o_orderdate") < _d("1995-03-15"))
    orders = q.join(orders, cust, "o_custkey", "c_custkey", "left_semi")
    li = q("lineitem", "l_orderkey l_extendedprice l_discount", col("l_shipdate") > _d("1995-03-15"), "l_shipdate")
    joined = _volume(q.join(li, orders, "l_orderkey", "o_orderkey"))
    return q.group(joined, "l_orderkey o_orderdate o_shippriority", Sum("volume", alias_name="revenue"))


def q4(q: _Q) -> Dataset:
    orders = q("orders", "o_orderkey o_orderpriority",
               (col("o_orderdate") >= _d("1993-07-01")) & (col("o_orderdate") < _d("1993-10-01")), "o_orderdate")
    late = q("lineitem", "l_orderkey", col("l_commitdate") < col("l_receiptdate"), "l_commitdate l_receiptdate")
    return q.group(q.join(orders, late, "o_orderkey", "l_orderkey", "left_semi"), "o_orderpriority",
                   Count(alias_name="order_count"))


def q5(q: _Q) -> Dataset:
    supp = q.join(q("supplier", "s_suppkey s_nationkey"), q.nations("ASIA"), "s_nationkey", "n_nationkey")
    orders = q("orders", "o_orderkey o_custkey",
               (col("o_orderdate") >= _d("1994-01-01")) & (col("o_orderdate") < _d("1995-01-01")), "o_orderdate")
    orders = q.join(orders, q("customer", "c_custkey c_nationkey"), "o_custkey", "c_custkey")
    li = q.join(q("lineitem", "l_orderkey l_suppkey l_extendedprice l_discount"), orders, "l_orderkey", "o_orderkey")
    joined = _volume(q.join(li, supp, "l_suppkey c_nationkey", "s_suppkey s_nationkey"))
    return q.group(joined, "n_name", Sum("volume", alias_name="revenue"))


def q6(q: _Q) -> pd.DataFrame:
    li = q("lineitem", "l_extendedprice l_discount",
           (col("l_shipdate") >= _d("1994-01-01")) & (col("l_shipdate") < _d("1995-01-01"))
           & (col("l_discount") >= 0.05) & (col("l_discount") <= 0.07) & (col("l_quantity") < 24),
           "l_shipdate l_quantity")
    row = _one_row(li.with_column("rev", col("l_extendedprice") * col("l_discount")), Sum("rev", alias_name="revenue"))
    return pd.DataFrame({"revenue": [row.get("revenue")]})


def q7(q: _Q) -> Dataset:
    pair = q("nation", "n_nationkey n_name", col("n_name").is_in(["FRANCE", "GERMANY"]))
    supp = q.join(q("supplier", "s_suppkey s_nationkey"), pair.rename_columns({"n_name": "supp_nation"}),
                  "s_nationkey", "n_nationkey")
    cust = q.join(q("customer", "c_custkey c_nationkey"), pair.rename_columns({"n_name": "cust_nation"}),
                  "c_nationkey", "n_nationkey")
    li = q("lineitem", "l_orderkey l_suppkey l_shipdate l_extendedprice l_discount",
           (col("l_shipdate") >= _d("1995-01-01")) & (col("l_shipdate") <= _d("1996-12-31")))
    li = q.join(q.join(li, supp, "l_suppkey", "s_suppkey"), q("orders", "o_orderkey o_custkey"),
                "l_orderkey", "o_orderkey")
    joined = q.join(li, cust, "o_custkey", "c_custkey").filter(expr=col("supp_nation") != col("cust_nation"))
    joined = _volume(joined.with_column("l_year", col("l_shipdate").dt.year()))
    return q.group(joined, "supp_nation cust_nation l_year", Sum("volume", alias_name="revenue"))


def q8(q: _Q) -> Dataset:
    cust = q.join(q("customer", "c_custkey c_nationkey"), q.nations("AMERICA", "n_nationkey"),
                  "c_nationkey", "n_nationkey", "left_semi")
    orders = q("orders", "o_orderkey o_custkey o_orderdate",
               (col("o_orderdate") >= _d("1995-01-01")) & (col("o_orderdate") <= _d("1996-12-31")))
    orders = q.join(orders, cust, "o_custkey", "c_custkey", "left_semi")
    part = q("part", "p_partkey", col("p_type") == "ECONOMY ANODIZED STEEL", "p_type")
    li = q.join(q("lineitem", "l_orderkey l_partkey l_suppkey l_extendedprice l_discount"), part,
                "l_partkey", "p_partkey", "left_semi")
    supp = q.suppliers("s_suppkey")
    joined = q.join(q.join(li, orders, "l_orderkey", "o_orderkey"), supp, "l_suppkey", "s_suppkey")
    joined = _volume(joined.with_column("o_year", col("o_orderdate").dt.year()))
    joined = joined.with_column("brazil", _when(col("n_name") == "BRAZIL", col("volume")))
    shares = q.group(joined, "o_year", Sum("brazil", alias_name="brazil"), Sum("volume", alias_name="volume"))
    return shares.with_column("mkt_share", col("brazil") / col("volume"))


def q9(q: _Q) -> Dataset:
    part = q("part", "p_partkey", col("p_name").str.contains("green"), "p_name")
    li = q.join(q("lineitem", "l_orderkey l_partkey l_suppkey l_quantity l_extendedprice l_discount"), part,
                "l_partkey", "p_partkey", "left_semi")
    li = q.join(li, q("partsupp", "ps_partkey ps_suppkey ps_supplycost"), "l_partkey l_suppkey",
                "ps_partkey ps_suppkey")
    li = q.join(li, q("orders", "o_orderkey o_orderdate"), "l_orderkey", "o_orderkey")
    supp = q.suppliers("s_suppkey")
    joined = _volume(q.join(li, supp, "l_suppkey", "s_suppkey"))
    joined = joined.with_column("amount", col("volume") - col("ps_supplycost") * col("l_quantity"))
    joined = joined.with_column("o_year", col("o_orderdate").dt.year()).rename_columns({"n_name": "nation"})
    return q.group(joined, "nation o_year", Sum("amount", alias_name="sum_profit"))


def q10(q: _Q) -> Dataset:
    """Grouped by c_custkey alone (the other grouping columns depend on it), then the customer joined."""
    orders = q("orders", "o_orderkey o_custkey",
               (col("o_orderdate") >= _d("1993-10-01")) & (col("o_orderdate") < _d("1994-01-01")), "o_orderdate")
    li = q("lineitem", "l_orderkey l_extendedprice l_discount", col("l_returnflag") == "R", "l_returnflag")
    revenue = q.group(_volume(q.join(li, orders, "l_orderkey", "o_orderkey")), "o_custkey",
                      Sum("volume", alias_name="revenue"))
    cust = q.join(q("customer", "c_custkey c_name c_address c_nationkey c_phone c_acctbal c_comment"),
                  q("nation", "n_nationkey n_name"), "c_nationkey", "n_nationkey")
    return q.join(cust, revenue, "c_custkey", "o_custkey")


def q11(q: _Q) -> Dataset:
    """Two passes: the German stock value per part (materialised), its total, the parts above the fraction."""
    supp = q.suppliers("s_suppkey", "GERMANY")
    ps = q.join(q("partsupp", "ps_partkey ps_suppkey ps_availqty ps_supplycost"), supp, "ps_suppkey", "s_suppkey",
                "left_semi").with_column("v", col("ps_supplycost") * col("ps_availqty"))
    value = q.group(ps, "ps_partkey", Sum("v", alias_name="value")).materialize()
    total = _one_row(value, Sum("value", alias_name="total")).get("total") or 0.0
    return value.filter(expr=col("value") > total * q.fraction)


def q12(q: _Q) -> Dataset:
    li = q("lineitem", "l_orderkey l_shipmode",
           col("l_shipmode").is_in(["MAIL", "SHIP"]) & (col("l_commitdate") < col("l_receiptdate"))
           & (col("l_shipdate") < col("l_commitdate")) & (col("l_receiptdate") >= _d("1994-01-01"))
           & (col("l_receiptdate") < _d("1995-01-01")), "l_commitdate l_receiptdate l_shipdate")
    joined = q.join(li, q("orders", "o_orderkey o_orderpriority"), "l_orderkey", "o_orderkey")
    high = col("o_orderpriority").is_in(["1-URGENT", "2-HIGH"]).cast(DataType.int64())
    joined = joined.with_column("high", high).with_column("low", 1 - col("high"))
    return q.group(joined, "l_shipmode", Sum("high", alias_name="high_line_count"),
                   Sum("low", alias_name="low_line_count"))


def q13(q: _Q) -> Dataset:
    orders = q("orders", "o_orderkey o_custkey", ~col("o_comment").str.match("%special%requests%"), "o_comment")
    joined = q.join(q("customer", "c_custkey"), orders, "c_custkey", "o_custkey", "left_outer")
    counts = q.group(joined, "c_custkey", Count("o_orderkey", ignore_nulls=True, alias_name="c_count"))
    return q.group(counts, "c_count", Count(alias_name="custdist"))


def q14(q: _Q) -> pd.DataFrame:
    li = q("lineitem", "l_partkey l_extendedprice l_discount",
           (col("l_shipdate") >= _d("1995-09-01")) & (col("l_shipdate") < _d("1995-10-01")), "l_shipdate")
    joined = _volume(q.join(li, q("part", "p_partkey p_type"), "l_partkey", "p_partkey"))
    joined = joined.with_column("promo", _when(col("p_type").str.starts_with("PROMO"), col("volume")))
    row = _one_row(joined, Sum("promo", alias_name="promo"), Sum("volume", alias_name="volume"))
    promo, volume = row.get("promo"), row.get("volume")
    return pd.DataFrame({"promo_revenue": [100.0 * promo / volume if volume else None]})


def q15(q: _Q) -> Dataset:
    """Two passes over the materialised revenue view: its maximum, then the suppliers that reach it."""
    li = q("lineitem", "l_suppkey l_extendedprice l_discount",
           (col("l_shipdate") >= _d("1996-01-01")) & (col("l_shipdate") < _d("1996-04-01")), "l_shipdate")
    revenue = q.group(_volume(li), "l_suppkey", Sum("volume", alias_name="total_revenue")).materialize()
    top = _one_row(revenue, Max("total_revenue", alias_name="top")).get("top")
    best = revenue.filter(expr=col("total_revenue") == top)
    return q.join(q("supplier", "s_suppkey s_name s_address s_phone"), best, "s_suppkey", "l_suppkey")


def q16(q: _Q) -> Dataset:
    complaints = q("supplier", "s_suppkey", col("s_comment").str.match("%Customer%Complaints%"), "s_comment")
    ps = q.join(q("partsupp", "ps_partkey ps_suppkey"), complaints, "ps_suppkey", "s_suppkey", "left_anti")
    part = q("part", "p_partkey p_brand p_type p_size",
             (col("p_brand") != "Brand#45") & ~col("p_type").str.starts_with("MEDIUM POLISHED")
             & col("p_size").is_in([49, 14, 23, 45, 19, 3, 36, 9]))
    return q.group(q.join(ps, part, "ps_partkey", "p_partkey"), "p_brand p_type p_size",
                   CountDistinct("ps_suppkey", alias_name="supplier_cnt"))


def q17(q: _Q) -> pd.DataFrame:
    """The lines of the chosen parts (materialised), their mean quantity per part joined back."""
    part = q("part", "p_partkey", (col("p_brand") == "Brand#23") & (col("p_container") == "MED BOX"),
             "p_brand p_container")
    li = q.join(q("lineitem", "l_partkey l_quantity l_extendedprice"), part, "l_partkey", "p_partkey",
                "left_semi").materialize()
    avg = q.group(li, "l_partkey", Mean("l_quantity", alias_name="avg_qty"))
    small = q.join(li, avg, "l_partkey").filter(expr=col("l_quantity") < 0.2 * col("avg_qty"))
    total = _one_row(small, Sum("l_extendedprice", alias_name="s")).get("s")
    return pd.DataFrame({"avg_yearly": [None if total is None else total / 7.0]})


def q18(q: _Q) -> Dataset:
    """The big orders' quantity is the outer query's sum: one grouped pass serves both."""
    big = q.group(q("lineitem", "l_orderkey l_quantity"), "l_orderkey", Sum("l_quantity", alias_name="sum_quantity"))
    big = big.filter(expr=col("sum_quantity") > 300)
    orders = q.join(q("orders", "o_orderkey o_custkey o_orderdate o_totalprice"), big, "o_orderkey", "l_orderkey")
    return q.join(orders, q("customer", "c_custkey c_name"), "o_custkey", "c_custkey").rename_columns(
        {"o_custkey": "c_custkey"})


def q19(q: _Q) -> pd.DataFrame:
    li = q("lineitem", "l_partkey l_quantity l_extendedprice l_discount",
           col("l_shipmode").is_in(["AIR", "AIR REG"]) & (col("l_shipinstruct") == "DELIVER IN PERSON")
           & (col("l_quantity") >= 1) & (col("l_quantity") <= 30), "l_shipmode l_shipinstruct")
    part = q("part", "p_partkey p_brand p_size p_container",
             col("p_brand").is_in(["Brand#12", "Brand#23", "Brand#34"]) & (col("p_size") >= 1) & (col("p_size") <= 15))

    def case(brand: str, size: str, boxes: str, lo: int, hi: int) -> Expr:
        return ((col("p_brand") == brand) & col("p_container").is_in([f"{size} {b}" for b in boxes.split()])
                & (col("l_quantity") >= lo) & (col("l_quantity") <= lo + 10) & (col("p_size") <= hi))

    match = (case("Brand#12", "SM", "CASE BOX PACK PKG", 1, 5) | case("Brand#23", "MED", "BAG BOX PKG PACK", 10, 10)
             | case("Brand#34", "LG", "CASE BOX PACK PKG", 20, 15))
    joined = _volume(q.join(li, part, "l_partkey", "p_partkey").filter(expr=match))
    return pd.DataFrame({"revenue": [_one_row(joined, Sum("volume", alias_name="r")).get("r")]})


def q20(q: _Q) -> Dataset:
    part = q("part", "p_partkey", col("p_name").str.starts_with("forest"), "p_name")
    shipped = q.group(q("lineitem", "l_partkey l_suppkey l_quantity",
                        (col("l_shipdate") >= _d("1994-01-01")) & (col("l_shipdate") < _d("1995-01-01")), "l_shipdate"),
                      "l_partkey l_suppkey", Sum("l_quantity", alias_name="qty"))
    ps = q.join(q("partsupp", "ps_partkey ps_suppkey ps_availqty"), part, "ps_partkey", "p_partkey", "left_semi")
    excess = q.join(ps, shipped, "ps_partkey ps_suppkey", "l_partkey l_suppkey").filter(
        expr=col("ps_availqty") > 0.5 * col("qty"))
    supp = q.suppliers("s_suppkey s_name s_address", "CANADA")
    return q.join(supp, excess, "s_suppkey", "ps_suppkey", "left_semi")


def q21(q: _Q) -> Dataset:
    """Per order, the least and greatest supplier of all lines and of the late ones: another
    supplier exists where they differ; no other supplier was late where the late ones are equal."""
    lines = q("lineitem", "l_orderkey l_suppkey l_commitdate l_receiptdate").map_batches(
        _late_supplier, batch_format="pyarrow", batch_size=None)
    per_order = q.group(lines, "l_orderkey", Min("l_suppkey", alias_name="lo"), Max("l_suppkey", alias_name="hi"),
                        Min("late_supp", alias_name="late_lo"), Max("late_supp", alias_name="late_hi"))
    per_order = per_order.filter(expr=(col("lo") != col("hi")) & (col("late_lo") == col("late_hi")))
    supp = q.suppliers("s_suppkey s_name", "SAUDI ARABIA")
    late = q("lineitem", "l_orderkey l_suppkey", col("l_receiptdate") > col("l_commitdate"),
             "l_receiptdate l_commitdate")
    l1 = q.join(late, supp, "l_suppkey", "s_suppkey")
    done = q("orders", "o_orderkey", col("o_orderstatus") == "F", "o_orderstatus")
    l1 = q.join(l1, done, "l_orderkey", "o_orderkey", "left_semi")
    return q.group(q.join(l1, per_order, "l_orderkey"), "s_name", Count(alias_name="numwait"))


def q22(q: _Q) -> Dataset:
    """Two passes: the mean positive balance of the chosen countries, then the customers above it."""
    codes = ["13", "31", "23", "29", "30", "18", "17"]
    cust = q("customer", "c_custkey c_phone c_acctbal", col("c_phone").str.slice(0, 2).is_in(codes))
    cust = cust.with_column("cntrycode", col("c_phone").str.slice(0, 2)).materialize()
    avg = _one_row(cust.filter(expr=col("c_acctbal") > 0.0), Mean("c_acctbal", alias_name="avg")).get("avg")
    rich = q.join(cust.filter(expr=col("c_acctbal") > avg), q("orders", "o_custkey"), "c_custkey", "o_custkey",
                  "left_anti")
    return q.group(rich, "cntrycode", Count(alias_name="numcust"), Sum("c_acctbal", alias_name="totacctbal"))


TPCH_QUERIES: dict[str, Callable[[_Q], Dataset | pd.DataFrame]] = {
    f"q{i}": fn for i, fn in enumerate((q1, q2, q3, q4, q5, q6, q7, q8, q9, q10, q11, q12, q13, q14, q15, q16, q17,
                                        q18, q19, q20, q21, q22), start=1)}
"""Each question's Ray Data plan: a dataset (sorted, limited and collected by _finish) or, for a
single-row answer, the DataFrame of its global aggregate."""


def run(engine: RayReader, inp: StageInput, question: str) -> pd.DataFrame:
    """The question's plan (TPCH_QUERIES via the engine's VARIANTS), its answer collected."""
    engine._note(IDIOM, engine._partitions(inp))
    engine.last_notes["answer"] = "collected to the driver (to_pandas())"
    result = engine.variant("tpch", question)(_Q(engine, inp))
    return result if isinstance(result, pd.DataFrame) else _finish(result, question)
