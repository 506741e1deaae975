"""TPC-H's 22 queries in polars' lazy API (parameters and answer columns: scalebench.tpch).

Written from the specification's text, not from the DuckDB engine's SQL, so that the two
references are unlikely to share a mistake. Each query is a pure function of the eight tables'
LazyFrames and the scale factor: the reference runs it on lazy scans, and the polars engine on
its own frames (scans, or in-memory tables made lazy). Correlated subqueries become what a polars
user writes: a semi or anti join for EXISTS / IN, a group-by joined back or a window (`over`)
for a per-key aggregate, a whole-frame aggregate inside `filter` for a scalar subquery.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import polars as pl

from scalebench.reference_polars.queries import collect
from scalebench.reference_polars.read import CAST, documented
from scalebench.tpch import ANSWERS, scale_factor, tables

if TYPE_CHECKING:
    from scalebench.engines.base import StageInput

__all__ = ["QUERIES", "frames", "tpch"]

Frames = dict[str, pl.LazyFrame]
col = pl.col


def scan_table(inp: StageInput) -> pl.LazyFrame:
    """One table, typed from its documented schema: no inference, so CSV and Parquet agree."""
    schema = documented(inp.dataset)
    if inp.format == "parquet":
        files = [str(f) for f in inp.files]
        if not files:
            raise ValueError(f"{inp.path}: no Parquet part files")
        return pl.scan_parquet(files, schema=schema, hive_partitioning=False, extra_columns="ignore",
                               cast_options=CAST)
    if inp.format == "csv":
        with open(Path(inp.path), encoding="utf-8") as f:
            header = f.readline().rstrip("\r\n").split(",")
        if header != list(schema):  # the schema names columns by position: check they are these
            raise ValueError(f"{inp.path}: header {','.join(header)!r} is not {','.join(schema)!r}")
        # TPC-H has no nulls: an empty quoted text stays the empty string, as it was written
        return pl.scan_csv(inp.path, has_header=True, schema=schema, infer_schema=False,
                           empty_string_is_null=False)
    raise ValueError(f"{inp.path}: unknown format {inp.format!r} (csv or parquet)")


def frames(inp: StageInput) -> Frames:
    """Lazy scans of the eight tables of a TPC-H stage input, by table name."""
    return {name: scan_table(t) for name, t in tables(inp).items()}


def tpch(inp: StageInput, question: str) -> pd.DataFrame:
    """The answer to TPC-H question `question` (q1..q22) on `inp`, collected by the streaming engine."""
    if question not in QUERIES:
        raise ValueError(f"reference_polars: no TPC-H question {question!r}")
    return collect(QUERIES[question](frames(inp), scale_factor(inp)))


# -- helpers -----------------------------------------------------------------------------------

revenue = (col("l_extendedprice") * (1 - col("l_discount")))
"""A line's discounted price, the 'revenue' of most queries."""


def count(name: str) -> pl.Expr:
    """Rows of a group as int64 (polars counts in its index type)."""
    return pl.len().cast(pl.Int64).alias(name)


def total(e: pl.Expr) -> pl.Expr:
    """SQL's SUM over a whole table: null when no row qualifies (polars' sum of nothing is 0)."""
    return pl.when(e.count() > 0).then(e.sum())


def _in(c: str, start: date, end: date) -> pl.Expr:
    """start <= c < end: the specification's half-open date ranges."""
    return (col(c) >= start) & (col(c) < end)


def _answer(lf: pl.LazyFrame, q: str) -> pl.LazyFrame:
    """The answer's columns in order, sorted by the query's ORDER BY and cut at its LIMIT."""
    a = ANSWERS[q]
    lf = lf.select(list(a.columns))
    if a.order:
        lf = lf.sort([c for c, _ in a.order], descending=[d for _, d in a.order], maintain_order=True)
    return lf.head(a.limit) if a.limit is not None else lf


def _region_nations(t: Frames, region: str) -> pl.LazyFrame:
    """The nations of one region (n_nationkey, n_name)."""
    r = t["region"].filter(col("r_name") == region)
    return t["nation"].join(r, left_on="n_regionkey", right_on="r_regionkey").select("n_nationkey", "n_name")


# -- the queries ---------------------------------------------------------------------------------


def q1(t: Frames, sf: float) -> pl.LazyFrame:
    """Pricing summary report: lines shipped up to 90 days before 1998-12-01."""
    li = t["lineitem"].filter(col("l_shipdate") <= date(1998, 9, 2))
    out = li.group_by("l_returnflag", "l_linestatus").agg(
        col("l_quantity").sum().alias("sum_qty"), col("l_extendedprice").sum().alias("sum_base_price"),
        revenue.sum().alias("sum_disc_price"), (revenue * (1 + col("l_tax"))).sum().alias("sum_charge"),
        col("l_quantity").mean().alias("avg_qty"), col("l_extendedprice").mean().alias("avg_price"),
        col("l_discount").mean().alias("avg_disc"), count("count_order"))
    return _answer(out, "q1")


def q2(t: Frames, sf: float) -> pl.LazyFrame:
    """Minimum cost supplier: European suppliers of size-15 brass parts at the part's lowest European cost."""
    parts = t["part"].filter((col("p_size") == 15) & col("p_type").str.ends_with("BRASS"))
    suppliers = t["supplier"].join(_region_nations(t, "EUROPE"), left_on="s_nationkey", right_on="n_nationkey")
    offers = (t["partsupp"].join(parts, left_on="ps_partkey", right_on="p_partkey")
              .join(suppliers, left_on="ps_suppkey", right_on="s_suppkey"))
    cheapest = offers.filter(col("ps_supplycost") == col("ps_supplycost").min().over("ps_partkey"))
    return _answer(cheapest.rename({"ps_partkey": "p_partkey"}), "q2")


def q3(t: Frames, sf: float) -> pl.LazyFrame:
    """Shipping priority: the ten unshipped BUILDING orders of most revenue on 1995-03-15."""
    day = date(1995, 3, 15)
    customers = t["customer"].filter(col("c_mktsegment") == "BUILDING").select("c_custkey")
    orders = t["orders"].filter(col("o_orderdate") < day).join(customers, left_on="o_custkey", right_on="c_custkey",
                                                               how="semi")
    lines = t["lineitem"].filter(col("l_shipdate") > day).join(orders, left_on="l_orderkey", right_on="o_orderkey")
    out = lines.group_by("l_orderkey", "o_orderdate", "o_shippriority").agg(revenue.sum().alias("revenue"))
    return _answer(out, "q3")


def q4(t: Frames, sf: float) -> pl.LazyFrame:
    """Order priority checking: orders of 1993 Q3 with at least one line received late."""
    late = t["lineitem"].filter(col("l_commitdate") < col("l_receiptdate"))
    orders = (t["orders"].filter(_in("o_orderdate", date(1993, 7, 1), date(1993, 10, 1)))
              .join(late, left_on="o_orderkey", right_on="l_orderkey", how="semi"))
    return _answer(orders.group_by("o_orderpriority").agg(count("order_count")), "q4")


def q5(t: Frames, sf: float) -> pl.LazyFrame:
    """Local supplier volume: 1994 revenue in ASIA where customer and supplier share a nation."""
    orders = t["orders"].filter(_in("o_orderdate", date(1994, 1, 1), date(1995, 1, 1)))
    out = (t["lineitem"].join(orders, left_on="l_orderkey", right_on="o_orderkey")
           .join(t["customer"], left_on="o_custkey", right_on="c_custkey")
           .join(t["supplier"], left_on=["l_suppkey", "c_nationkey"], right_on=["s_suppkey", "s_nationkey"])
           .join(_region_nations(t, "ASIA"), left_on="c_nationkey", right_on="n_nationkey")
           .group_by("n_name").agg(revenue.sum().alias("revenue")))
    return _answer(out, "q5")


def q6(t: Frames, sf: float) -> pl.LazyFrame:
    """Forecasting revenue change: 1994 lines with discount 0.05..0.07 and quantity under 24."""
    li = t["lineitem"].filter(_in("l_shipdate", date(1994, 1, 1), date(1995, 1, 1))
                              & col("l_discount").is_between(0.05, 0.07) & (col("l_quantity") < 24))
    return _answer(li.select(total(col("l_extendedprice") * col("l_discount")).alias("revenue")), "q6")


def q7(t: Frames, sf: float) -> pl.LazyFrame:
    """Volume shipping: 1995-1996 trade between FRANCE and GERMANY, both ways, by year."""
    pair = ["FRANCE", "GERMANY"]
    n = t["nation"].filter(col("n_name").is_in(pair))
    supp = t["supplier"].join(n.select(col("n_nationkey"), col("n_name").alias("supp_nation")),
                              left_on="s_nationkey", right_on="n_nationkey").select("s_suppkey", "supp_nation")
    cust = t["customer"].join(n.select(col("n_nationkey"), col("n_name").alias("cust_nation")),
                              left_on="c_nationkey", right_on="n_nationkey").select("c_custkey", "cust_nation")
    out = (t["lineitem"].filter(col("l_shipdate").is_between(date(1995, 1, 1), date(1996, 12, 31)))
           .join(supp, left_on="l_suppkey", right_on="s_suppkey")
           .join(t["orders"], left_on="l_orderkey", right_on="o_orderkey")
           .join(cust, left_on="o_custkey", right_on="c_custkey")
           .filter(col("supp_nation") != col("cust_nation"))
           .group_by("supp_nation", "cust_nation", col("l_shipdate").dt.year().cast(pl.Int64).alias("l_year"))
           .agg(revenue.sum().alias("revenue")))
    return _answer(out, "q7")


def q8(t: Frames, sf: float) -> pl.LazyFrame:
    """National market share: BRAZIL's share of AMERICA's ECONOMY ANODIZED STEEL revenue, 1995-1996."""
    parts = t["part"].filter(col("p_type") == "ECONOMY ANODIZED STEEL").select("p_partkey")
    customers = t["customer"].join(_region_nations(t, "AMERICA"), left_on="c_nationkey", right_on="n_nationkey",
                                   how="semi").select("c_custkey")
    orders = (t["orders"].filter(col("o_orderdate").is_between(date(1995, 1, 1), date(1996, 12, 31)))
              .join(customers, left_on="o_custkey", right_on="c_custkey", how="semi"))
    supp = t["supplier"].join(t["nation"], left_on="s_nationkey", right_on="n_nationkey").select("s_suppkey", "n_name")
    volume = revenue.alias("volume")
    out = (t["lineitem"].join(parts, left_on="l_partkey", right_on="p_partkey", how="semi")
           .join(orders, left_on="l_orderkey", right_on="o_orderkey")
           .join(supp, left_on="l_suppkey", right_on="s_suppkey")
           .select(col("o_orderdate").dt.year().cast(pl.Int64).alias("o_year"), volume, col("n_name"))
           .group_by("o_year").agg(
               (pl.when(col("n_name") == "BRAZIL").then(col("volume")).otherwise(0.0).sum()
                / col("volume").sum()).alias("mkt_share")))
    return _answer(out, "q8")


def q9(t: Frames, sf: float) -> pl.LazyFrame:
    """Product type profit: profit on 'green' parts by supplier nation and order year."""
    parts = t["part"].filter(col("p_name").str.contains("green", literal=True)).select("p_partkey")
    supp = t["supplier"].join(t["nation"], left_on="s_nationkey", right_on="n_nationkey").select("s_suppkey", "n_name")
    amount = revenue - col("ps_supplycost") * col("l_quantity")
    out = (t["lineitem"].join(parts, left_on="l_partkey", right_on="p_partkey", how="semi")
           .join(t["partsupp"], left_on=["l_partkey", "l_suppkey"], right_on=["ps_partkey", "ps_suppkey"])
           .join(supp, left_on="l_suppkey", right_on="s_suppkey")
           .join(t["orders"], left_on="l_orderkey", right_on="o_orderkey")
           .group_by(col("n_name").alias("nation"), col("o_orderdate").dt.year().cast(pl.Int64).alias("o_year"))
           .agg(amount.sum().alias("sum_profit")))
    return _answer(out, "q9")


def q10(t: Frames, sf: float) -> pl.LazyFrame:
    """Returned item reporting: the 20 customers losing most revenue to returns in 1993 Q4."""
    orders = t["orders"].filter(_in("o_orderdate", date(1993, 10, 1), date(1994, 1, 1)))
    out = (t["lineitem"].filter(col("l_returnflag") == "R")
           .join(orders, left_on="l_orderkey", right_on="o_orderkey")
           .group_by("o_custkey").agg(revenue.sum().alias("revenue"))
           .join(t["customer"], left_on="o_custkey", right_on="c_custkey")
           .join(t["nation"], left_on="c_nationkey", right_on="n_nationkey")
           .rename({"o_custkey": "c_custkey"}))
    return _answer(out, "q10")


def q11(t: Frames, sf: float) -> pl.LazyFrame:
    """Important stock identification: GERMANY's parts worth more than 0.0001/SF of its whole stock."""
    fraction = 0.0001 / sf
    supp = t["supplier"].join(t["nation"].filter(col("n_name") == "GERMANY"), left_on="s_nationkey",
                              right_on="n_nationkey", how="semi")
    out = (t["partsupp"].join(supp, left_on="ps_suppkey", right_on="s_suppkey", how="semi")
           .group_by("ps_partkey").agg((col("ps_supplycost") * col("ps_availqty")).sum().alias("value"))
           .filter(col("value") > col("value").sum() * fraction))
    return _answer(out, "q11")


def q12(t: Frames, sf: float) -> pl.LazyFrame:
    """Shipping modes and order priority: late 1994 MAIL and SHIP lines, by urgency of their order."""
    lines = t["lineitem"].filter(
        col("l_shipmode").is_in(["MAIL", "SHIP"]) & (col("l_commitdate") < col("l_receiptdate"))
        & (col("l_shipdate") < col("l_commitdate")) & _in("l_receiptdate", date(1994, 1, 1), date(1995, 1, 1)))
    high = col("o_orderpriority").is_in(["1-URGENT", "2-HIGH"])
    out = (lines.join(t["orders"], left_on="l_orderkey", right_on="o_orderkey")
           .group_by("l_shipmode").agg(high.sum().cast(pl.Int64).alias("high_line_count"),
                                       (~high).sum().cast(pl.Int64).alias("low_line_count")))
    return _answer(out, "q12")


def q13(t: Frames, sf: float) -> pl.LazyFrame:
    """Customer distribution: how many customers have each number of (non special-request) orders."""
    orders = t["orders"].filter(~col("o_comment").str.contains("special.*requests"))
    per_customer = (t["customer"].join(orders, left_on="c_custkey", right_on="o_custkey", how="left")
                    .group_by("c_custkey").agg(col("o_orderkey").count().cast(pl.Int64).alias("c_count")))
    return _answer(per_customer.group_by("c_count").agg(count("custdist")), "q13")


def q14(t: Frames, sf: float) -> pl.LazyFrame:
    """Promotion effect: percent of September 1995 revenue from PROMO parts."""
    promo = pl.when(col("p_type").str.starts_with("PROMO")).then(revenue).otherwise(0.0)
    out = (t["lineitem"].filter(_in("l_shipdate", date(1995, 9, 1), date(1995, 10, 1)))
           .join(t["part"], left_on="l_partkey", right_on="p_partkey")
           .select((100.0 * total(promo) / total(revenue)).alias("promo_revenue")))
    return _answer(out, "q14")


def q15(t: Frames, sf: float) -> pl.LazyFrame:
    """Top supplier: the suppliers of the largest 1996 Q1 revenue (ties all kept)."""
    rev = (t["lineitem"].filter(_in("l_shipdate", date(1996, 1, 1), date(1996, 4, 1)))
           .group_by("l_suppkey").agg(revenue.sum().alias("total_revenue"))
           .filter(col("total_revenue") == col("total_revenue").max()))
    out = t["supplier"].join(rev, left_on="s_suppkey", right_on="l_suppkey")
    return _answer(out, "q15")


def q16(t: Frames, sf: float) -> pl.LazyFrame:
    """Parts/supplier relationship: suppliers without complaints per brand, type and size."""
    parts = t["part"].filter((col("p_brand") != "Brand#45") & ~col("p_type").str.starts_with("MEDIUM POLISHED")
                             & col("p_size").is_in([49, 14, 23, 45, 19, 3, 36, 9]))
    complained = t["supplier"].filter(col("s_comment").str.contains("Customer.*Complaints")).select("s_suppkey")
    out = (t["partsupp"].join(complained, left_on="ps_suppkey", right_on="s_suppkey", how="anti")
           .join(parts, left_on="ps_partkey", right_on="p_partkey")
           .group_by("p_brand", "p_type", "p_size")
           .agg(col("ps_suppkey").n_unique().cast(pl.Int64).alias("supplier_cnt")))
    return _answer(out, "q16")


def q17(t: Frames, sf: float) -> pl.LazyFrame:
    """Small-quantity-order revenue: yearly loss from Brand#23 MED BOX lines under 20 % of the part's mean."""
    parts = t["part"].filter((col("p_brand") == "Brand#23") & (col("p_container") == "MED BOX")).select("p_partkey")
    out = (t["lineitem"].join(parts, left_on="l_partkey", right_on="p_partkey", how="semi")
           .filter(col("l_quantity") < 0.2 * col("l_quantity").mean().over("l_partkey"))
           .select((total(col("l_extendedprice")) / 7.0).alias("avg_yearly")))
    return _answer(out, "q17")


def q18(t: Frames, sf: float) -> pl.LazyFrame:
    """Large volume customer: the 100 most expensive orders of more than 300 units."""
    big = (t["lineitem"].group_by("l_orderkey").agg(col("l_quantity").sum().alias("sum_quantity"))
           .filter(col("sum_quantity") > 300))
    out = (t["orders"].join(big, left_on="o_orderkey", right_on="l_orderkey")
           .join(t["customer"], left_on="o_custkey", right_on="c_custkey")
           .rename({"o_custkey": "c_custkey"}))
    return _answer(out, "q18")


def q19(t: Frames, sf: float) -> pl.LazyFrame:
    """Discounted revenue: air, in-person deliveries of three brand/container/size/quantity mixes."""
    def mix(brand: str, containers: list[str], top: int, qty: int) -> pl.Expr:
        return ((col("p_brand") == brand) & col("p_container").is_in(containers)
                & col("l_quantity").is_between(qty, qty + 10) & col("p_size").is_between(1, top))

    out = (t["lineitem"].filter(col("l_shipmode").is_in(["AIR", "AIR REG"])
                                & (col("l_shipinstruct") == "DELIVER IN PERSON"))
           .join(t["part"], left_on="l_partkey", right_on="p_partkey")
           .filter(mix("Brand#12", ["SM CASE", "SM BOX", "SM PACK", "SM PKG"], 5, 1)
                   | mix("Brand#23", ["MED BAG", "MED BOX", "MED PKG", "MED PACK"], 10, 10)
                   | mix("Brand#34", ["LG CASE", "LG BOX", "LG PACK", "LG PKG"], 15, 20))
           .select(total(revenue).alias("revenue")))
    return _answer(out, "q19")


def q20(t: Frames, sf: float) -> pl.LazyFrame:
    """Potential part promotion: CANADA's suppliers holding more than half their 1994 sales of a forest part."""
    forest = t["part"].filter(col("p_name").str.starts_with("forest")).select("p_partkey")
    shipped = (t["lineitem"].filter(_in("l_shipdate", date(1994, 1, 1), date(1995, 1, 1)))
               .group_by("l_partkey", "l_suppkey").agg((0.5 * col("l_quantity").sum()).alias("half")))
    excess = (t["partsupp"].join(forest, left_on="ps_partkey", right_on="p_partkey", how="semi")
              .join(shipped, left_on=["ps_partkey", "ps_suppkey"], right_on=["l_partkey", "l_suppkey"])
              .filter(col("ps_availqty") > col("half")))
    out = (t["supplier"].join(t["nation"].filter(col("n_name") == "CANADA"), left_on="s_nationkey",
                              right_on="n_nationkey", how="semi")
           .join(excess, left_on="s_suppkey", right_on="ps_suppkey", how="semi"))
    return _answer(out, "q20")


def q21(t: Frames, sf: float) -> pl.LazyFrame:
    """Suppliers who kept orders waiting: SAUDI ARABIA's suppliers alone late on a multi-supplier 'F' order."""
    li = t["lineitem"]
    late = li.filter(col("l_receiptdate") > col("l_commitdate"))
    shared = li.group_by("l_orderkey").agg(col("l_suppkey").n_unique().alias("n")).filter(col("n") > 1)
    alone_late = late.group_by("l_orderkey").agg(col("l_suppkey").n_unique().alias("n")).filter(col("n") == 1)
    supp = t["supplier"].join(t["nation"].filter(col("n_name") == "SAUDI ARABIA"), left_on="s_nationkey",
                              right_on="n_nationkey", how="semi")
    out = (late.join(supp, left_on="l_suppkey", right_on="s_suppkey")
           .join(t["orders"].filter(col("o_orderstatus") == "F"), left_on="l_orderkey", right_on="o_orderkey",
                 how="semi")
           .join(shared, on="l_orderkey", how="semi")
           .join(alone_late, on="l_orderkey", how="semi")
           .group_by("s_name").agg(count("numwait")))
    return _answer(out, "q21")


def q22(t: Frames, sf: float) -> pl.LazyFrame:
    """Global sales opportunity: above-average balances without orders, by phone country code."""
    codes = ["13", "31", "23", "29", "30", "18", "17"]
    customers = (t["customer"].with_columns(col("c_phone").str.slice(0, 2).alias("cntrycode"))
                 .filter(col("cntrycode").is_in(codes)))
    mean_positive = col("c_acctbal").filter(col("c_acctbal") > 0.0).mean()
    out = (customers.filter(col("c_acctbal") > mean_positive)
           .join(t["orders"], left_on="c_custkey", right_on="o_custkey", how="anti")
           .group_by("cntrycode").agg(count("numcust"), col("c_acctbal").sum().alias("totacctbal")))
    return _answer(out, "q22")


QUERIES: dict[str, Callable[[Frames, float], pl.LazyFrame]] = {
    f"q{i}": fn for i, fn in enumerate((q1, q2, q3, q4, q5, q6, q7, q8, q9, q10, q11, q12, q13, q14, q15, q16,
                                        q17, q18, q19, q20, q21, q22), start=1)}
"""Question -> its plan over the eight tables' LazyFrames and the scale factor (q11's fraction)."""
