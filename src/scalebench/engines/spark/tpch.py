"""TPC-H's 22 queries in Spark's DataFrame API, with the validation parameters (scalebench.tpch).

Each query is one DataFrame plan over the tables it needs, written as a Spark user would: filters
before joins, correlated subqueries as an aggregate joined back, IN / EXISTS / NOT EXISTS as
left_semi / left_anti joins (with the subquery's extra condition in the join condition), a scalar
subquery as a one-row aggregate cross-joined in. Only the small final answer is collected.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from scalebench import tpch as catalogue
from scalebench.engines.base import StageInput
from scalebench.engines.spark.read import SparkReader

Tables = Callable[[str], DataFrame]
"""A table of the question's input by name, read (or taken from --io memory) on first use."""
Query = Callable[[Tables, float], DataFrame]
"""A question: the tables and q11's fraction -> the answer's DataFrame, ordered and limited."""

col, lit = F.col, F.lit


def _day(text: str) -> Column:
    return lit(dt.date.fromisoformat(text))


def _during(name: str, start: str, end: str) -> Column:
    """start <= name < end: the specification's DATE 'start' + INTERVAL, worked out here."""
    return (col(name) >= _day(start)) & (col(name) < _day(end))


def _revenue() -> Column:
    return col("l_extendedprice") * (1 - col("l_discount"))


def _nation(t: Tables, name: str) -> DataFrame:
    """The one nation's key, for joins that keep only its rows."""
    return t("nation").filter(col("n_name") == name).select("n_nationkey")


def _q1(t: Tables, fraction: float) -> DataFrame:
    shipped = t("lineitem").filter(col("l_shipdate") <= lit(dt.date(1998, 12, 1) - dt.timedelta(days=90)))
    disc_price = _revenue()
    return (shipped.groupBy("l_returnflag", "l_linestatus")
            .agg(F.sum("l_quantity").alias("sum_qty"), F.sum("l_extendedprice").alias("sum_base_price"),
                 F.sum(disc_price).alias("sum_disc_price"),
                 F.sum(disc_price * (1 + col("l_tax"))).alias("sum_charge"),
                 F.avg("l_quantity").alias("avg_qty"), F.avg("l_extendedprice").alias("avg_price"),
                 F.avg("l_discount").alias("avg_disc"), F.count(lit(1)).alias("count_order"))
            .orderBy("l_returnflag", "l_linestatus"))


def _q2(t: Tables, fraction: float) -> DataFrame:
    europe = (t("region").filter(col("r_name") == "EUROPE")
              .join(t("nation"), col("r_regionkey") == col("n_regionkey")).select("n_nationkey", "n_name"))
    suppliers = t("supplier").join(europe, col("s_nationkey") == col("n_nationkey"))
    offers = t("partsupp").join(suppliers, col("ps_suppkey") == col("s_suppkey"))
    parts = (t("part").filter((col("p_size") == 15) & col("p_type").endswith("BRASS"))
             .select("p_partkey", "p_mfgr"))
    candidates = offers.join(parts, col("ps_partkey") == col("p_partkey"))
    cheapest = candidates.groupBy("p_partkey").agg(F.min("ps_supplycost").alias("ps_supplycost"))
    return (candidates.join(cheapest, ["p_partkey", "ps_supplycost"])
            .select("s_acctbal", "s_name", "n_name", "p_partkey", "p_mfgr", "s_address", "s_phone", "s_comment")
            .orderBy(col("s_acctbal").desc(), "n_name", "s_name", "p_partkey").limit(100))


def _q3(t: Tables, fraction: float) -> DataFrame:
    day = _day("1995-03-15")
    customers = t("customer").filter(col("c_mktsegment") == "BUILDING").select("c_custkey")
    orders = (t("orders").filter(col("o_orderdate") < day)
              .join(customers, col("o_custkey") == col("c_custkey"), "left_semi"))
    lines = t("lineitem").filter(col("l_shipdate") > day)
    return (lines.join(orders, col("l_orderkey") == col("o_orderkey"))
            .groupBy("l_orderkey", "o_orderdate", "o_shippriority").agg(F.sum(_revenue()).alias("revenue"))
            .select("l_orderkey", "revenue", "o_orderdate", "o_shippriority")
            .orderBy(col("revenue").desc(), "o_orderdate").limit(10))


def _q4(t: Tables, fraction: float) -> DataFrame:
    late = t("lineitem").filter(col("l_commitdate") < col("l_receiptdate"))
    return (t("orders").filter(_during("o_orderdate", "1993-07-01", "1993-10-01"))
            .join(late, col("o_orderkey") == col("l_orderkey"), "left_semi")
            .groupBy("o_orderpriority").agg(F.count(lit(1)).alias("order_count")).orderBy("o_orderpriority"))


def _q5(t: Tables, fraction: float) -> DataFrame:
    asia = (t("region").filter(col("r_name") == "ASIA")
            .join(t("nation"), col("r_regionkey") == col("n_regionkey")).select("n_nationkey", "n_name"))
    suppliers = (t("supplier").join(asia, col("s_nationkey") == col("n_nationkey"))
                 .select("s_suppkey", "s_nationkey", "n_name"))
    orders = (t("orders").filter(_during("o_orderdate", "1994-01-01", "1995-01-01"))
              .join(t("customer"), col("o_custkey") == col("c_custkey")).select("o_orderkey", "c_nationkey"))
    return (t("lineitem").join(orders, col("l_orderkey") == col("o_orderkey"))
            .join(suppliers, (col("l_suppkey") == col("s_suppkey")) & (col("c_nationkey") == col("s_nationkey")))
            .groupBy("n_name").agg(F.sum(_revenue()).alias("revenue")).orderBy(col("revenue").desc()))


def _q6(t: Tables, fraction: float) -> DataFrame:
    return (t("lineitem")
            .filter(_during("l_shipdate", "1994-01-01", "1995-01-01")
                    & col("l_discount").between(0.05, 0.07) & (col("l_quantity") < 24))
            .agg(F.sum(col("l_extendedprice") * col("l_discount")).alias("revenue")))


def _q7(t: Tables, fraction: float) -> DataFrame:
    pair = t("nation").filter(col("n_name").isin("FRANCE", "GERMANY"))
    suppliers = t("supplier").join(pair, col("s_nationkey") == col("n_nationkey")).select(
        "s_suppkey", col("n_name").alias("supp_nation"))
    customers = t("customer").join(pair, col("c_nationkey") == col("n_nationkey")).select(
        "c_custkey", col("n_name").alias("cust_nation"))
    orders = t("orders").join(customers, col("o_custkey") == col("c_custkey")).select("o_orderkey", "cust_nation")
    return (t("lineitem").filter(col("l_shipdate").between(_day("1995-01-01"), _day("1996-12-31")))
            .join(suppliers, col("l_suppkey") == col("s_suppkey"))
            .join(orders, col("l_orderkey") == col("o_orderkey"))
            .filter(col("supp_nation") != col("cust_nation"))
            .groupBy("supp_nation", "cust_nation", F.year("l_shipdate").alias("l_year"))
            .agg(F.sum(_revenue()).alias("revenue")).orderBy("supp_nation", "cust_nation", "l_year"))


def _q8(t: Tables, fraction: float) -> DataFrame:
    america = (t("region").filter(col("r_name") == "AMERICA")
               .join(t("nation"), col("r_regionkey") == col("n_regionkey")).select("n_nationkey"))
    customers = t("customer").join(america, col("c_nationkey") == col("n_nationkey"), "left_semi")
    orders = (t("orders").filter(col("o_orderdate").between(_day("1995-01-01"), _day("1996-12-31")))
              .join(customers, col("o_custkey") == col("c_custkey"), "left_semi")
              .select("o_orderkey", F.year("o_orderdate").alias("o_year")))
    parts = t("part").filter(col("p_type") == "ECONOMY ANODIZED STEEL").select("p_partkey")
    suppliers = (t("supplier").join(t("nation"), col("s_nationkey") == col("n_nationkey"))
                 .select("s_suppkey", col("n_name").alias("nation")))
    volume = _revenue()
    return (t("lineitem").join(parts, col("l_partkey") == col("p_partkey"), "left_semi")
            .join(orders, col("l_orderkey") == col("o_orderkey"))
            .join(suppliers, col("l_suppkey") == col("s_suppkey"))
            .groupBy("o_year")
            .agg((F.sum(F.when(col("nation") == "BRAZIL", volume).otherwise(0.0)) / F.sum(volume)).alias("mkt_share"))
            .orderBy("o_year"))


def _q9(t: Tables, fraction: float) -> DataFrame:
    green = t("part").filter(col("p_name").contains("green")).select("p_partkey")
    suppliers = (t("supplier").join(t("nation"), col("s_nationkey") == col("n_nationkey"))
                 .select("s_suppkey", col("n_name").alias("nation")))
    amount = _revenue() - col("ps_supplycost") * col("l_quantity")
    return (t("lineitem").join(green, col("l_partkey") == col("p_partkey"), "left_semi")
            .join(t("partsupp"), (col("l_partkey") == col("ps_partkey")) & (col("l_suppkey") == col("ps_suppkey")))
            .join(suppliers, col("l_suppkey") == col("s_suppkey"))
            .join(t("orders"), col("l_orderkey") == col("o_orderkey"))
            .groupBy("nation", F.year("o_orderdate").alias("o_year")).agg(F.sum(amount).alias("sum_profit"))
            .orderBy("nation", col("o_year").desc()))


def _q10(t: Tables, fraction: float) -> DataFrame:
    orders = (t("orders").filter(_during("o_orderdate", "1993-10-01", "1994-01-01"))
              .select("o_orderkey", "o_custkey"))
    revenue = (t("lineitem").filter(col("l_returnflag") == "R")
               .join(orders, col("l_orderkey") == col("o_orderkey"))
               .groupBy("o_custkey").agg(F.sum(_revenue()).alias("revenue")))
    return (revenue.join(t("customer"), col("o_custkey") == col("c_custkey"))
            .join(t("nation"), col("c_nationkey") == col("n_nationkey"))
            .select("c_custkey", "c_name", "revenue", "c_acctbal", "n_name", "c_address", "c_phone", "c_comment")
            .orderBy(col("revenue").desc()).limit(20))


def _q11(t: Tables, fraction: float) -> DataFrame:
    suppliers = t("supplier").join(_nation(t, "GERMANY"), col("s_nationkey") == col("n_nationkey"), "left_semi")
    stock = (t("partsupp").join(suppliers, col("ps_suppkey") == col("s_suppkey"), "left_semi")
             .select("ps_partkey", (col("ps_supplycost") * col("ps_availqty")).alias("worth")))
    threshold = stock.agg((F.sum("worth") * fraction).alias("threshold"))
    return (stock.groupBy("ps_partkey").agg(F.sum("worth").alias("value"))
            .crossJoin(threshold).filter(col("value") > col("threshold"))
            .select("ps_partkey", "value").orderBy(col("value").desc()))


def _q12(t: Tables, fraction: float) -> DataFrame:
    lines = t("lineitem").filter(
        col("l_shipmode").isin("MAIL", "SHIP") & (col("l_commitdate") < col("l_receiptdate"))
        & (col("l_shipdate") < col("l_commitdate")) & _during("l_receiptdate", "1994-01-01", "1995-01-01"))
    high = col("o_orderpriority").isin("1-URGENT", "2-HIGH")
    return (lines.join(t("orders"), col("l_orderkey") == col("o_orderkey"))
            .groupBy("l_shipmode")
            .agg(F.sum(F.when(high, 1).otherwise(0)).alias("high_line_count"),
                 F.sum(F.when(high, 0).otherwise(1)).alias("low_line_count"))
            .orderBy("l_shipmode"))


def _q13(t: Tables, fraction: float) -> DataFrame:
    orders = t("orders").filter(~col("o_comment").like("%special%requests%")).select("o_orderkey", "o_custkey")
    return (t("customer").join(orders, col("c_custkey") == col("o_custkey"), "left")
            .groupBy("c_custkey").agg(F.count("o_orderkey").alias("c_count"))
            .groupBy("c_count").agg(F.count(lit(1)).alias("custdist"))
            .orderBy(col("custdist").desc(), col("c_count").desc()))


def _q14(t: Tables, fraction: float) -> DataFrame:
    lines = t("lineitem").filter(_during("l_shipdate", "1995-09-01", "1995-10-01"))
    revenue = _revenue()
    promo = F.sum(F.when(col("p_type").startswith("PROMO"), revenue).otherwise(0.0))
    return (lines.join(t("part"), col("l_partkey") == col("p_partkey"))
            .agg((100.0 * promo / F.sum(revenue)).alias("promo_revenue")))


def _q15(t: Tables, fraction: float) -> DataFrame:
    # The maximum is taken over the same computed revenues (a window over them all, ~SF x 10,000
    # rows), not over a second evaluation of the aggregate, whose float sum could differ in the
    # last bit with the order its partial sums arrive in, and then equal nothing.
    revenue = (t("lineitem").filter(_during("l_shipdate", "1996-01-01", "1996-04-01"))
               .groupBy("l_suppkey").agg(F.sum(_revenue()).alias("total_revenue")))
    top = (revenue.withColumn("top", F.max("total_revenue").over(Window.partitionBy()))
           .filter(col("total_revenue") == col("top")))
    return (t("supplier").join(top, col("s_suppkey") == col("l_suppkey"))
            .select("s_suppkey", "s_name", "s_address", "s_phone", "total_revenue").orderBy("s_suppkey"))


def _q16(t: Tables, fraction: float) -> DataFrame:
    parts = t("part").filter((col("p_brand") != "Brand#45") & ~col("p_type").startswith("MEDIUM POLISHED")
                             & col("p_size").isin(49, 14, 23, 45, 19, 3, 36, 9))
    complaints = t("supplier").filter(col("s_comment").like("%Customer%Complaints%")).select("s_suppkey")
    return (t("partsupp").join(complaints, col("ps_suppkey") == col("s_suppkey"), "left_anti")
            .join(parts, col("ps_partkey") == col("p_partkey"))
            .groupBy("p_brand", "p_type", "p_size").agg(F.countDistinct("ps_suppkey").alias("supplier_cnt"))
            .orderBy(col("supplier_cnt").desc(), "p_brand", "p_type", "p_size"))


def _q17(t: Tables, fraction: float) -> DataFrame:
    parts = t("part").filter((col("p_brand") == "Brand#23") & (col("p_container") == "MED BOX")).select("p_partkey")
    lines = (t("lineitem").join(parts, col("l_partkey") == col("p_partkey"), "left_semi")
             .select("l_partkey", "l_quantity", "l_extendedprice"))
    small = lines.groupBy("l_partkey").agg((0.2 * F.avg("l_quantity")).alias("small_quantity"))
    return (lines.join(small, "l_partkey").filter(col("l_quantity") < col("small_quantity"))
            .agg((F.sum("l_extendedprice") / 7.0).alias("avg_yearly")))


def _q18(t: Tables, fraction: float) -> DataFrame:
    # The lines of an order are exactly the lines grouped by its key, so the HAVING subquery's sum
    # is the answer's sum_quantity: one aggregate serves both.
    large = (t("lineitem").groupBy("l_orderkey").agg(F.sum("l_quantity").alias("sum_quantity"))
             .filter(col("sum_quantity") > 300))
    return (t("orders").join(large, col("o_orderkey") == col("l_orderkey"))
            .join(t("customer"), col("o_custkey") == col("c_custkey"))
            .select("c_name", "c_custkey", "o_orderkey", "o_orderdate", "o_totalprice", "sum_quantity")
            .orderBy(col("o_totalprice").desc(), "o_orderdate").limit(100))


def _q19(t: Tables, fraction: float) -> DataFrame:
    def branch(brand: str, containers: tuple[str, ...], quantity: int, size: int) -> Column:
        return ((col("p_brand") == brand) & col("p_container").isin(*containers)
                & col("l_quantity").between(quantity, quantity + 10) & col("p_size").between(1, size))

    lines = t("lineitem").filter(col("l_shipmode").isin("AIR", "AIR REG")
                                 & (col("l_shipinstruct") == "DELIVER IN PERSON"))
    return (lines.join(t("part"), col("l_partkey") == col("p_partkey"))
            .filter(branch("Brand#12", ("SM CASE", "SM BOX", "SM PACK", "SM PKG"), 1, 5)
                    | branch("Brand#23", ("MED BAG", "MED BOX", "MED PKG", "MED PACK"), 10, 10)
                    | branch("Brand#34", ("LG CASE", "LG BOX", "LG PACK", "LG PKG"), 20, 15))
            .agg(F.sum(_revenue()).alias("revenue")))


def _q20(t: Tables, fraction: float) -> DataFrame:
    forest = t("part").filter(col("p_name").startswith("forest")).select("p_partkey")
    shipped = (t("lineitem")
               .filter(_during("l_shipdate", "1994-01-01", "1995-01-01"))
               .groupBy("l_partkey", "l_suppkey").agg((0.5 * F.sum("l_quantity")).alias("half_shipped")))
    # An offer with no shipped line has a NULL subquery, which no availqty exceeds: an inner join.
    offers = (t("partsupp").join(forest, col("ps_partkey") == col("p_partkey"), "left_semi")
              .join(shipped, (col("ps_partkey") == col("l_partkey")) & (col("ps_suppkey") == col("l_suppkey")))
              .filter(col("ps_availqty") > col("half_shipped")).select("ps_suppkey"))
    return (t("supplier").join(_nation(t, "CANADA"), col("s_nationkey") == col("n_nationkey"), "left_semi")
            .join(offers, col("s_suppkey") == col("ps_suppkey"), "left_semi")
            .select("s_name", "s_address").orderBy("s_name"))


def _q21(t: Tables, fraction: float) -> DataFrame:
    late = col("l_receiptdate") > col("l_commitdate")
    others = t("lineitem").select(col("l_orderkey").alias("o2_orderkey"), col("l_suppkey").alias("o2_suppkey"))
    late_others = t("lineitem").filter(late).select(col("l_orderkey").alias("o3_orderkey"),
                                                    col("l_suppkey").alias("o3_suppkey"))
    suppliers = (t("supplier").join(_nation(t, "SAUDI ARABIA"), col("s_nationkey") == col("n_nationkey"), "left_semi")
                 .select("s_suppkey", "s_name"))
    failed = t("orders").filter(col("o_orderstatus") == "F").select("o_orderkey")
    return (t("lineitem").filter(late).select("l_orderkey", "l_suppkey")
            .join(suppliers, col("l_suppkey") == col("s_suppkey"))
            .join(failed, col("l_orderkey") == col("o_orderkey"), "left_semi")
            .join(others, (col("o2_orderkey") == col("l_orderkey")) & (col("o2_suppkey") != col("l_suppkey")),
                  "left_semi")
            .join(late_others, (col("o3_orderkey") == col("l_orderkey")) & (col("o3_suppkey") != col("l_suppkey")),
                  "left_anti")
            .groupBy("s_name").agg(F.count(lit(1)).alias("numwait"))
            .orderBy(col("numwait").desc(), "s_name").limit(100))


def _q22(t: Tables, fraction: float) -> DataFrame:
    codes = ("13", "31", "23", "29", "30", "18", "17")
    customers = (t("customer").select("c_custkey", "c_acctbal", F.substring("c_phone", 1, 2).alias("cntrycode"))
                 .filter(col("cntrycode").isin(*codes)))
    average = customers.filter(col("c_acctbal") > 0.0).agg(F.avg("c_acctbal").alias("avg_acctbal"))
    return (customers.crossJoin(average).filter(col("c_acctbal") > col("avg_acctbal"))
            .join(t("orders"), col("c_custkey") == col("o_custkey"), "left_anti")
            .groupBy("cntrycode").agg(F.count(lit(1)).alias("numcust"), F.sum("c_acctbal").alias("totacctbal"))
            .orderBy("cntrycode"))


TPCH_QUESTIONS: dict[str, Query] = {
    "q1": _q1, "q2": _q2, "q3": _q3, "q4": _q4, "q5": _q5, "q6": _q6, "q7": _q7, "q8": _q8, "q9": _q9, "q10": _q10,
    "q11": _q11, "q12": _q12, "q13": _q13, "q14": _q14, "q15": _q15, "q16": _q16, "q17": _q17, "q18": _q18,
    "q19": _q19, "q20": _q20, "q21": _q21, "q22": _q22}
"""TPC-H question -> its DataFrame plan over the tables."""


def tpch_answer(engine: SparkReader, inp: StageInput, question: str) -> DataFrame:
    """The question's plan over the input's eight tables, each read only if the plan uses it."""
    inputs = catalogue.tables(inp)
    tables: Tables = functools.cache(lambda name: engine._read(inputs[name]))
    query = TPCH_QUESTIONS[question]
    return query(tables, catalogue.q11_fraction(inp)).select(*catalogue.ANSWERS[question].columns)
