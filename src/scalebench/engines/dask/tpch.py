"""Dask TPC-H (scalebench.tpch): the 22 queries in dask.dataframe, one function each in
TPCH_QUERIES, written as coiled/benchmarks' TPC-H writes them: projected reads, filters, merges,
groupby().agg, and one compute of the answer.

Joins: a small dimension (nation, region, supplier, a filtered part or customer, a few selected
orders) is joined with merge(broadcast=True), so the large side never moves; two large tables
(lineitem, orders, partsupp, an unfiltered part or customer) are merged with Dask's own choice
(a hash join by P2P shuffle unless a side is small in partitions). A groupby on a large table's
key (orderkey, custkey) uses split_out=True, as the db-benchmark questions with many groups do,
on a column (groupby(k)[c].sum(split_out=True)): a named aggregation with split_out followed by a
merge fails in Dask 2026.8 (KeyError: the group key "not in index"). A sum over no rows is SQL's
NULL (min_count=1), not 0: q17 selects no rows at SF0.01.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import dask.dataframe as dd
import pandas as pd

from scalebench import tpch as catalogue
from scalebench.engines.base import StageInput, later
from scalebench.engines.dask.read import DaskReader, one_row, plan, planner_barrier


@dataclass(frozen=True)
class Tables:
    """One question's eight tables; called with a table and columns, the projected lazy frame."""

    engine: DaskTpch
    inputs: Mapping[str, StageInput]
    fraction: float
    """q11's FRACTION (0.0001 / SF)."""

    def __call__(self, table: str, *columns: str) -> dd.DataFrame:
        return self.engine._table(self.inputs[table])[list(columns)]

    def nations(self, region: str | None = None, names: tuple[str, ...] = ()) -> dd.DataFrame:
        """n_nationkey and n_name of the nations in a region or of the given names (tiny)."""
        nation = self("nation", "n_nationkey", "n_name", "n_regionkey")
        if names:
            nation = nation[nation["n_name"].isin(list(names))]
        if region is not None:
            r = self("region", "r_regionkey", "r_name")
            nation = nation.merge(r[r["r_name"] == region], left_on="n_regionkey", right_on="r_regionkey",
                                  broadcast=True)
        return nation[["n_nationkey", "n_name"]]


Result = dd.DataFrame | dict[str, Any]
"""A question's answer before its ORDER BY and LIMIT: a lazy frame, or named Dask scalars."""


def _between(s: dd.Series, lo: date, hi: date) -> dd.Series:
    """lo <= s < hi (the queries' half-open date ranges)."""
    return (s >= lo) & (s < hi)


def _aggregate(frame: dd.DataFrame, by: str | list[str], name: str, column: str, how: str) -> dd.DataFrame:
    """frame.groupby(by).agg(name=(column, how)).reset_index(), as a dict aggregation renamed after
    reset_index: Dask 2026.8 cannot plan a merge on a named aggregation's result once the groupby
    shuffles (many partitions, as at SF10): KeyError "['<key>'] not in index" from
    RenameFrame.unique_partition_mapping_columns_from_shuffle."""
    return frame.groupby(by).agg({column: how}).reset_index().rename(columns={column: name})


def _semi(left: dd.DataFrame, right: dd.DataFrame, left_on: str, right_on: str) -> dd.DataFrame:
    """EXISTS / IN: the rows of `left` (unique on `left_on`) with a match in `right`, each once.
    Dask 2026.8's merge(how='leftsemi') repeats a left row once per right partition holding its key
    when it broadcasts the right side (reproduced on 8 partitions: 100 rows for 50), so the result is
    de-duplicated on the left's key."""
    return left.merge(right, left_on=left_on, right_on=right_on, how="leftsemi").drop_duplicates(subset=left_on)


def _revenue(df: dd.DataFrame) -> dd.Series:
    return df["l_extendedprice"] * (1 - df["l_discount"])


def _year(s: dd.Series) -> dd.Series:
    return s.dt.year.astype("int64")


def _q1(t: Tables) -> Result:
    li = t("lineitem", "l_returnflag", "l_linestatus", "l_quantity", "l_extendedprice", "l_discount", "l_tax",
           "l_shipdate")
    li = li[li["l_shipdate"] <= date(1998, 9, 2)]
    disc_price = _revenue(li)
    li = li.assign(disc_price=disc_price, charge=disc_price * (1 + li["l_tax"]))
    return li.groupby(["l_returnflag", "l_linestatus"]).agg(
        sum_qty=("l_quantity", "sum"), sum_base_price=("l_extendedprice", "sum"),
        sum_disc_price=("disc_price", "sum"), sum_charge=("charge", "sum"), avg_qty=("l_quantity", "mean"),
        avg_price=("l_extendedprice", "mean"), avg_disc=("l_discount", "mean"),
        count_order=("l_quantity", "size")).reset_index()


def _q2(t: Tables) -> Result:
    """The minimum cost per part over European suppliers, then the offers at that cost."""
    supplier = t("supplier", "s_suppkey", "s_name", "s_address", "s_nationkey", "s_phone", "s_acctbal", "s_comment")
    supplier = supplier.merge(t.nations("EUROPE"), left_on="s_nationkey", right_on="n_nationkey", broadcast=True)
    part = t("part", "p_partkey", "p_mfgr", "p_size", "p_type")
    part = part[(part["p_size"] == 15) & part["p_type"].str.endswith("BRASS")]
    ps = t("partsupp", "ps_partkey", "ps_suppkey", "ps_supplycost")
    offers = ps.merge(part, left_on="ps_partkey", right_on="p_partkey", broadcast=True)
    offers = offers.merge(supplier, left_on="ps_suppkey", right_on="s_suppkey", broadcast=True)
    cheapest = _aggregate(offers, "p_partkey", "min_cost", "ps_supplycost", "min")
    best = offers.merge(cheapest, on="p_partkey", broadcast=True)
    return best[best["ps_supplycost"] == best["min_cost"]]


def _q3(t: Tables) -> Result:
    day = date(1995, 3, 15)
    customer = t("customer", "c_custkey", "c_mktsegment")
    customer = customer[customer["c_mktsegment"] == "BUILDING"][["c_custkey"]]
    orders = t("orders", "o_orderkey", "o_custkey", "o_orderdate", "o_shippriority")
    orders = orders[orders["o_orderdate"] < day].merge(customer, left_on="o_custkey", right_on="c_custkey",
                                                       broadcast=True)
    li = t("lineitem", "l_orderkey", "l_extendedprice", "l_discount", "l_shipdate")
    li = li[li["l_shipdate"] > day]
    joined = li.merge(orders, left_on="l_orderkey", right_on="o_orderkey")
    joined = joined.assign(revenue=_revenue(joined))
    return joined.groupby(["l_orderkey", "o_orderdate", "o_shippriority"]).agg(
        revenue=("revenue", "sum")).reset_index()


def _q4(t: Tables) -> Result:
    """EXISTS as a semi-join (_semi: merge how='leftsemi')."""
    orders = t("orders", "o_orderkey", "o_orderdate", "o_orderpriority")
    orders = orders[_between(orders["o_orderdate"], date(1993, 7, 1), date(1993, 10, 1))]
    li = t("lineitem", "l_orderkey", "l_commitdate", "l_receiptdate")
    late = li[li["l_commitdate"] < li["l_receiptdate"]][["l_orderkey"]]
    found = _semi(orders, late, "o_orderkey", "l_orderkey")
    return found.groupby("o_orderpriority").agg(order_count=("o_orderkey", "size")).reset_index()


def _q5(t: Tables) -> Result:
    asia = t.nations("ASIA")
    customer = t("customer", "c_custkey", "c_nationkey")
    customer = customer.merge(asia, left_on="c_nationkey", right_on="n_nationkey", broadcast=True)
    orders = t("orders", "o_orderkey", "o_custkey", "o_orderdate")
    orders = orders[_between(orders["o_orderdate"], date(1994, 1, 1), date(1995, 1, 1))]
    orders = orders.merge(customer[["c_custkey", "c_nationkey", "n_name"]], left_on="o_custkey",
                          right_on="c_custkey", broadcast=True)
    li = t("lineitem", "l_orderkey", "l_suppkey", "l_extendedprice", "l_discount")
    joined = li.merge(orders, left_on="l_orderkey", right_on="o_orderkey")
    supplier = t("supplier", "s_suppkey", "s_nationkey")
    joined = joined.merge(supplier, left_on=["l_suppkey", "c_nationkey"], right_on=["s_suppkey", "s_nationkey"],
                          broadcast=True)
    joined = joined.assign(revenue=_revenue(joined))
    return joined.groupby("n_name").agg(revenue=("revenue", "sum")).reset_index()


def _q6(t: Tables) -> Result:
    li = t("lineitem", "l_shipdate", "l_discount", "l_quantity", "l_extendedprice")
    li = li[_between(li["l_shipdate"], date(1994, 1, 1), date(1995, 1, 1)) & (li["l_discount"] >= 0.05)
            & (li["l_discount"] <= 0.07) & (li["l_quantity"] < 24)]
    return {"revenue": (li["l_extendedprice"] * li["l_discount"]).sum(min_count=1)}


def _q7(t: Tables) -> Result:
    pair = t.nations(names=("FRANCE", "GERMANY"))
    supplier = t("supplier", "s_suppkey", "s_nationkey").merge(
        pair.rename(columns={"n_name": "supp_nation"}), left_on="s_nationkey", right_on="n_nationkey", broadcast=True)
    customer = t("customer", "c_custkey", "c_nationkey").merge(
        pair.rename(columns={"n_name": "cust_nation"}), left_on="c_nationkey", right_on="n_nationkey", broadcast=True)
    li = t("lineitem", "l_orderkey", "l_suppkey", "l_extendedprice", "l_discount", "l_shipdate")
    li = li[(li["l_shipdate"] >= date(1995, 1, 1)) & (li["l_shipdate"] <= date(1996, 12, 31))]
    li = li.merge(supplier[["s_suppkey", "supp_nation"]], left_on="l_suppkey", right_on="s_suppkey", broadcast=True)
    orders = t("orders", "o_orderkey", "o_custkey").merge(
        customer[["c_custkey", "cust_nation"]], left_on="o_custkey", right_on="c_custkey", broadcast=True)
    joined = li.merge(orders, left_on="l_orderkey", right_on="o_orderkey")
    joined = joined[joined["supp_nation"] != joined["cust_nation"]]
    joined = joined.assign(l_year=_year(joined["l_shipdate"]), volume=_revenue(joined))
    return joined.groupby(["supp_nation", "cust_nation", "l_year"]).agg(revenue=("volume", "sum")).reset_index()


def _q8(t: Tables) -> Result:
    part = t("part", "p_partkey", "p_type")
    part = part[part["p_type"] == "ECONOMY ANODIZED STEEL"][["p_partkey"]]
    li = t("lineitem", "l_orderkey", "l_partkey", "l_suppkey", "l_extendedprice", "l_discount")
    li = li.merge(part, left_on="l_partkey", right_on="p_partkey", broadcast=True)
    customer = t("customer", "c_custkey", "c_nationkey").merge(
        t.nations("AMERICA"), left_on="c_nationkey", right_on="n_nationkey", broadcast=True)[["c_custkey"]]
    orders = t("orders", "o_orderkey", "o_custkey", "o_orderdate")
    orders = orders[(orders["o_orderdate"] >= date(1995, 1, 1)) & (orders["o_orderdate"] <= date(1996, 12, 31))]
    orders = orders.merge(customer, left_on="o_custkey", right_on="c_custkey", broadcast=True)
    joined = li.merge(orders, left_on="l_orderkey", right_on="o_orderkey")
    supplier = t("supplier", "s_suppkey", "s_nationkey").merge(
        t.nations(), left_on="s_nationkey", right_on="n_nationkey", broadcast=True)[["s_suppkey", "n_name"]]
    joined = joined.merge(supplier, left_on="l_suppkey", right_on="s_suppkey", broadcast=True)
    volume = _revenue(joined)
    joined = joined.assign(o_year=_year(joined["o_orderdate"]), volume=volume,
                           brazil=volume.where(joined["n_name"] == "BRAZIL", 0.0))
    by_year = joined.groupby("o_year").agg(brazil=("brazil", "sum"), volume=("volume", "sum"))
    return by_year.assign(mkt_share=by_year["brazil"] / by_year["volume"]).reset_index()


def _q9(t: Tables) -> Result:
    part = t("part", "p_partkey", "p_name")
    green = part[part["p_name"].str.contains("green", regex=False)][["p_partkey"]]
    li = t("lineitem", "l_orderkey", "l_partkey", "l_suppkey", "l_quantity", "l_extendedprice", "l_discount")
    li = li.merge(green, left_on="l_partkey", right_on="p_partkey", broadcast=True)
    ps = t("partsupp", "ps_partkey", "ps_suppkey", "ps_supplycost").merge(
        green.rename(columns={"p_partkey": "g_partkey"}), left_on="ps_partkey", right_on="g_partkey", broadcast=True)
    joined = li.merge(ps, left_on=["l_partkey", "l_suppkey"], right_on=["ps_partkey", "ps_suppkey"])
    supplier = t("supplier", "s_suppkey", "s_nationkey").merge(
        t.nations(), left_on="s_nationkey", right_on="n_nationkey", broadcast=True)[["s_suppkey", "n_name"]]
    joined = joined.merge(supplier, left_on="l_suppkey", right_on="s_suppkey", broadcast=True)
    joined = joined.merge(t("orders", "o_orderkey", "o_orderdate"), left_on="l_orderkey", right_on="o_orderkey")
    joined = joined.assign(nation=joined["n_name"], o_year=_year(joined["o_orderdate"]),
                           amount=_revenue(joined) - joined["ps_supplycost"] * joined["l_quantity"])
    return joined.groupby(["nation", "o_year"]).agg(sum_profit=("amount", "sum")).reset_index()


def _q10(t: Tables) -> Result:
    """Revenue per customer first, then the customer's columns joined to the (smaller) aggregate."""
    orders = t("orders", "o_orderkey", "o_custkey", "o_orderdate")
    orders = orders[_between(orders["o_orderdate"], date(1993, 10, 1), date(1994, 1, 1))]
    li = t("lineitem", "l_orderkey", "l_extendedprice", "l_discount", "l_returnflag")
    li = li[li["l_returnflag"] == "R"]
    joined = li.merge(orders, left_on="l_orderkey", right_on="o_orderkey")
    joined = joined.assign(revenue=_revenue(joined))
    per_cust = joined.groupby("o_custkey")["revenue"].sum(split_out=True).to_frame("revenue").reset_index()
    customer = t("customer", "c_custkey", "c_name", "c_address", "c_nationkey", "c_phone", "c_acctbal", "c_comment")
    customer = customer.merge(t.nations(), left_on="c_nationkey", right_on="n_nationkey", broadcast=True)
    return per_cust.merge(customer, left_on="o_custkey", right_on="c_custkey")


def _q11(t: Tables) -> Result:
    """The HAVING threshold is a Dask scalar, so the filter stays in the one compute."""
    germany = t.nations(names=("GERMANY",))
    supplier = t("supplier", "s_suppkey", "s_nationkey").merge(
        germany, left_on="s_nationkey", right_on="n_nationkey", broadcast=True)[["s_suppkey"]]
    ps = t("partsupp", "ps_partkey", "ps_suppkey", "ps_availqty", "ps_supplycost")
    ps = ps.merge(supplier, left_on="ps_suppkey", right_on="s_suppkey", broadcast=True)
    ps = ps.assign(value=ps["ps_supplycost"] * ps["ps_availqty"])
    threshold = ps["value"].sum() * t.fraction
    per_part = ps.groupby("ps_partkey").agg(value=("value", "sum")).reset_index()
    return per_part[per_part["value"] > threshold]


def _q12(t: Tables) -> Result:
    li = t("lineitem", "l_orderkey", "l_shipmode", "l_shipdate", "l_commitdate", "l_receiptdate")
    li = li[li["l_shipmode"].isin(["MAIL", "SHIP"]) & (li["l_commitdate"] < li["l_receiptdate"])
            & (li["l_shipdate"] < li["l_commitdate"])
            & _between(li["l_receiptdate"], date(1994, 1, 1), date(1995, 1, 1))]
    joined = li.merge(t("orders", "o_orderkey", "o_orderpriority"), left_on="l_orderkey", right_on="o_orderkey")
    high = joined["o_orderpriority"].isin(["1-URGENT", "2-HIGH"])
    joined = joined.assign(high=high.astype("int64"), low=(~high).astype("int64"))
    return joined.groupby("l_shipmode").agg(high_line_count=("high", "sum"),
                                            low_line_count=("low", "sum")).reset_index()


def _q13(t: Tables) -> Result:
    """The outer join as orders counted per customer, left-merged onto every customer (0 where none)."""
    orders = t("orders", "o_orderkey", "o_custkey", "o_comment")
    orders = orders[~orders["o_comment"].str.contains("special.*requests", regex=True)]
    counts = orders.groupby("o_custkey")["o_orderkey"].count(split_out=True).to_frame("c_count").reset_index()
    per_cust = t("customer", "c_custkey").merge(counts, left_on="c_custkey", right_on="o_custkey", how="left")
    per_cust = per_cust.assign(c_count=per_cust["c_count"].fillna(0).astype("int64"))
    return per_cust.groupby("c_count").agg(custdist=("c_custkey", "size")).reset_index()


def _q14(t: Tables) -> Result:
    li = t("lineitem", "l_partkey", "l_extendedprice", "l_discount", "l_shipdate")
    li = li[_between(li["l_shipdate"], date(1995, 9, 1), date(1995, 10, 1))]
    joined = li.merge(t("part", "p_partkey", "p_type"), left_on="l_partkey", right_on="p_partkey")
    revenue = _revenue(joined)
    promo = revenue.where(joined["p_type"].str.startswith("PROMO"), 0.0)
    return {"promo_revenue": 100.0 * promo.sum(min_count=1) / revenue.sum(min_count=1)}


def _q15(t: Tables) -> Result:
    li = t("lineitem", "l_suppkey", "l_extendedprice", "l_discount", "l_shipdate")
    li = li[_between(li["l_shipdate"], date(1996, 1, 1), date(1996, 4, 1))]
    revenue = _aggregate(li.assign(revenue=_revenue(li)), "l_suppkey", "total_revenue", "revenue", "sum")
    top = revenue[revenue["total_revenue"] == revenue["total_revenue"].max()]
    supplier = t("supplier", "s_suppkey", "s_name", "s_address", "s_phone")
    return supplier.merge(top, left_on="s_suppkey", right_on="l_suppkey", broadcast=True)


def _q16(t: Tables) -> Result:
    """NOT IN as an anti-join: a left merge with the complaining suppliers, keeping the unmatched."""
    part = t("part", "p_partkey", "p_brand", "p_type", "p_size")
    part = part[(part["p_brand"] != "Brand#45") & ~part["p_type"].str.startswith("MEDIUM POLISHED")
                & part["p_size"].isin([49, 14, 23, 45, 19, 3, 36, 9])]
    supplier = t("supplier", "s_suppkey", "s_comment")
    complaints = supplier[supplier["s_comment"].str.contains("Customer.*Complaints", regex=True)][["s_suppkey"]]
    ps = t("partsupp", "ps_partkey", "ps_suppkey")
    ps = ps.merge(complaints, left_on="ps_suppkey", right_on="s_suppkey", how="left", broadcast=True)
    ps = ps[ps["s_suppkey"].isna()]
    joined = ps.merge(part, left_on="ps_partkey", right_on="p_partkey", broadcast=True)
    counts = joined.groupby(["p_brand", "p_type", "p_size"])["ps_suppkey"].nunique()
    return counts.to_frame("supplier_cnt").reset_index()


def _q17(t: Tables) -> Result:
    """The correlated average per part, computed for the selected parts only and merged back."""
    part = t("part", "p_partkey", "p_brand", "p_container")
    part = part[(part["p_brand"] == "Brand#23") & (part["p_container"] == "MED BOX")][["p_partkey"]]
    li = t("lineitem", "l_partkey", "l_quantity", "l_extendedprice")
    li = li.merge(part, left_on="l_partkey", right_on="p_partkey", broadcast=True)
    avg = li.groupby("l_partkey").agg(avg_qty=("l_quantity", "mean")).reset_index()
    li = li.merge(avg, on="l_partkey", broadcast=True)
    small = li[li["l_quantity"] < 0.2 * li["avg_qty"]]
    return {"avg_yearly": small["l_extendedprice"].sum(min_count=1) / 7.0}


def _q18(t: Tables) -> Result:
    """Quantity per order (split_out: one group per order); the few orders over 300 are gathered
    into one partition and broadcast to orders."""
    li = t("lineitem", "l_orderkey", "l_quantity")
    per_order = li.groupby("l_orderkey")["l_quantity"].sum(split_out=True).to_frame("sum_quantity").reset_index()
    big = per_order[per_order["sum_quantity"] > 300].repartition(npartitions=1)
    orders = t("orders", "o_orderkey", "o_custkey", "o_orderdate", "o_totalprice")
    orders = orders.merge(big, left_on="o_orderkey", right_on="l_orderkey", broadcast=True)
    return orders.merge(t("customer", "c_custkey", "c_name"), left_on="o_custkey", right_on="c_custkey",
                        broadcast=True)


def _q19(t: Tables) -> Result:
    li = t("lineitem", "l_partkey", "l_quantity", "l_extendedprice", "l_discount", "l_shipinstruct", "l_shipmode")
    li = li[(li["l_shipinstruct"] == "DELIVER IN PERSON") & li["l_shipmode"].isin(["AIR", "AIR REG"])
            & (li["l_quantity"] >= 1) & (li["l_quantity"] <= 30)]
    part = t("part", "p_partkey", "p_brand", "p_size", "p_container")
    part = part[part["p_brand"].isin(["Brand#12", "Brand#23", "Brand#34"]) & (part["p_size"] >= 1)
                & (part["p_size"] <= 15)]
    j = li.merge(part, left_on="l_partkey", right_on="p_partkey", broadcast=True)
    qty, size, brand, box = j["l_quantity"], j["p_size"], j["p_brand"], j["p_container"]
    match = (((brand == "Brand#12") & box.isin(["SM CASE", "SM BOX", "SM PACK", "SM PKG"])
              & (qty >= 1) & (qty <= 11) & (size <= 5))
             | ((brand == "Brand#23") & box.isin(["MED BAG", "MED BOX", "MED PKG", "MED PACK"])
                & (qty >= 10) & (qty <= 20) & (size <= 10))
             | ((brand == "Brand#34") & box.isin(["LG CASE", "LG BOX", "LG PACK", "LG PKG"])
                & (qty >= 20) & (qty <= 30) & (size <= 15)))
    return {"revenue": _revenue(j[match]).sum(min_count=1)}


def _q20(t: Tables) -> Result:
    """Shipped quantity per (part, supplier) of the forest parts; IN as an inner merge with the
    distinct supplier keys, gathered into one partition (drop_duplicates, split_out=1). Not _semi:
    at SF10 Dask 2026.8's leftsemi here returned 2,352 rows for the reference's 1,804.
    planner_barrier before the groupby: Dask 2026.8's planner takes a merge's result for
    hash-partitioned on its keys (Merge.unique_partition_mapping_columns_from_shuffle), which a
    broadcast of a side of several partitions is not, so the groupby skipped its shuffle and
    returned partial groups (the part table in 8 partitions at SF10: 94,700 groups for 58,782).
    Only here: after every broadcast merge it made q5 at SF10 run out of memory in its hash join."""
    part = t("part", "p_partkey", "p_name")
    forest = part[part["p_name"].str.startswith("forest")][["p_partkey"]]
    li = t("lineitem", "l_partkey", "l_suppkey", "l_quantity", "l_shipdate")
    li = li[_between(li["l_shipdate"], date(1994, 1, 1), date(1995, 1, 1))]
    li = li.merge(forest, left_on="l_partkey", right_on="p_partkey", broadcast=True)
    shipped = _aggregate(planner_barrier(li), ["l_partkey", "l_suppkey"], "shipped", "l_quantity", "sum")
    ps = t("partsupp", "ps_partkey", "ps_suppkey", "ps_availqty")
    ps = ps.merge(forest, left_on="ps_partkey", right_on="p_partkey", broadcast=True)
    ps = ps.merge(shipped, left_on=["ps_partkey", "ps_suppkey"], right_on=["l_partkey", "l_suppkey"], broadcast=True)
    excess = ps[ps["ps_availqty"] > 0.5 * ps["shipped"]][["ps_suppkey"]].drop_duplicates(split_out=1)
    supplier = t("supplier", "s_suppkey", "s_name", "s_address", "s_nationkey").merge(
        t.nations(names=("CANADA",)), left_on="s_nationkey", right_on="n_nationkey", broadcast=True)
    return supplier.merge(excess, left_on="s_suppkey", right_on="ps_suppkey")[list(supplier.columns)]


def _q21(t: Tables) -> Result:
    """EXISTS another supplier: the order has more than one distinct supplier; NOT EXISTS another
    late supplier: its late lines have exactly one (l1's). Both nunique per order (split_out)."""
    li = t("lineitem", "l_orderkey", "l_suppkey", "l_commitdate", "l_receiptdate")
    late = li[li["l_receiptdate"] > li["l_commitdate"]][["l_orderkey", "l_suppkey"]]
    suppliers = li.groupby("l_orderkey")["l_suppkey"].nunique(split_out=True).to_frame("n_supp").reset_index()
    late_suppliers = late.groupby("l_orderkey")["l_suppkey"].nunique(split_out=True).to_frame("n_late").reset_index()
    saudi = t("supplier", "s_suppkey", "s_name", "s_nationkey").merge(
        t.nations(names=("SAUDI ARABIA",)), left_on="s_nationkey", right_on="n_nationkey", broadcast=True)
    l1 = late.merge(saudi[["s_suppkey", "s_name"]], left_on="l_suppkey", right_on="s_suppkey", broadcast=True)
    orders = t("orders", "o_orderkey", "o_orderstatus")
    l1 = l1.merge(orders[orders["o_orderstatus"] == "F"][["o_orderkey"]], left_on="l_orderkey", right_on="o_orderkey")
    l1 = l1.merge(suppliers[suppliers["n_supp"] > 1], on="l_orderkey")
    l1 = l1.merge(late_suppliers[late_suppliers["n_late"] == 1], on="l_orderkey")
    return l1.groupby("s_name").agg(numwait=("l_orderkey", "size")).reset_index()


def _q22(t: Tables) -> Result:
    """The average is a Dask scalar; NOT EXISTS is an anti-join (left merge, keep the unmatched)."""
    customer = t("customer", "c_custkey", "c_phone", "c_acctbal")
    customer = customer.assign(cntrycode=customer["c_phone"].str.slice(0, 2))
    customer = customer[customer["cntrycode"].isin(["13", "31", "23", "29", "30", "18", "17"])]
    average = customer[customer["c_acctbal"] > 0.0]["c_acctbal"].mean()
    rich = customer[customer["c_acctbal"] > average]
    buyers = t("orders", "o_custkey").drop_duplicates()
    rich = rich.merge(buyers, left_on="c_custkey", right_on="o_custkey", how="left")
    rich = rich[rich["o_custkey"].isna()]
    return rich.groupby("cntrycode").agg(numcust=("c_acctbal", "size"), totacctbal=("c_acctbal", "sum")).reset_index()


TPCH_QUERIES: dict[str, Callable[[Tables], Result]] = {f"q{i}": fn for i, fn in enumerate(
    (_q1, _q2, _q3, _q4, _q5, _q6, _q7, _q8, _q9, _q10, _q11, _q12, _q13, _q14, _q15, _q16, _q17, _q18, _q19,
     _q20, _q21, _q22), start=1)}


class DaskTpch(DaskReader):
    """TPC-H's questions, each one compute on the cluster (tables read as any catalogued table: _table)."""

    def tpch_answer(self, inp: StageInput, question: str) -> pd.DataFrame:
        """The question's function, then its ORDER BY and LIMIT on the cluster, in one compute."""
        t = Tables(self, catalogue.tables(inp), catalogue.q11_fraction(inp))
        result = self.variant("tpch", question)(t)
        spec = catalogue.ANSWERS[question]
        columns = list(spec.columns)
        self.last_notes = {}
        if isinstance(result, dict):
            return one_row(**result)[columns]
        if spec.order:
            result = result.sort_values([c for c, _ in spec.order], ascending=[not desc for _, desc in spec.order])
        if spec.limit is not None:
            result = result.head(spec.limit, compute=False)
        answer = result[columns]
        self.last_notes["plan"] = later(plan, answer)
        return answer.compute().reset_index(drop=True)

