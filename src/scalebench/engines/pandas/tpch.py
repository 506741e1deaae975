"""pandas TPC-H: the 22 queries as a data engineer writes them in pandas, on whole frames.

Each query reads only the columns it needs, filters with boolean masks, joins with merge (or
isin for a semi-join), aggregates with groupby().agg and orders with sort_values / nlargest.
Correlated subqueries become a groupby whose result is merged (or mapped) back. Semantics and
parameters are engines.duckdb_tpch's SQL (scalebench.tpch); the answer's columns are
tpch.ANSWERS'. Dates are datetime64 (Parquet's date32 read with date_as_object=False, CSV's
parsed), so date filters are vectorised comparisons rather than Python date objects.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from scalebench import tpch as catalogue
from scalebench.engines.base import StageInput
from scalebench.engines.pandas.read import PandasReader, csv_dtypes

D = pd.Timestamp


def read_table(inp: StageInput, columns: list[str] | None = None) -> pd.DataFrame:
    """A TPC-H table from storage with only `columns`: CSV with the schema's dtypes and its dates
    parsed (read.csv_dtypes), Parquet with dates as datetime64, not objects."""
    if inp.format == "csv":
        dtypes, dates = csv_dtypes(inp.dataset)
        if columns is not None:
            dtypes = {c: t for c, t in dtypes.items() if c in columns}
            dates = [c for c in dates if c in columns]
        return pd.read_csv(inp.path, engine="pyarrow", usecols=columns, dtype=dtypes, parse_dates=dates)
    return pd.read_parquet(inp.path, columns=columns, to_pandas_kwargs={"date_as_object": False})


@dataclass(frozen=True)
class Tables:
    """The eight tables of one question: each read with only the columns asked for, from the
    engine's loaded frame under --io memory, else from storage."""

    engine: PandasReader
    inputs: dict[str, StageInput]

    def __call__(self, table: str, columns: list[str]) -> pd.DataFrame:
        loaded = self.engine.loaded(self.inputs[table])
        return loaded[columns] if loaded is not None else read_table(self.inputs[table], columns)

    @property
    def fraction(self) -> float:
        return catalogue.q11_fraction(self.inputs["lineitem"])


def _revenue(df: pd.DataFrame) -> pd.Series:
    return df["l_extendedprice"] * (1 - df["l_discount"])


def _in(s: pd.Series, start: str, end: str) -> pd.Series:
    """start <= s < end: the SQL's date + INTERVAL ranges, with the end written out."""
    return (s >= D(start)) & (s < D(end))


def _nations(t: Tables, region: str | None = None, names: list[str] | None = None) -> pd.DataFrame:
    """n_nationkey, n_name of the nations in `region` or with one of `names`."""
    nation = t("nation", ["n_nationkey", "n_name", "n_regionkey"])
    if region is not None:
        regions = t("region", ["r_regionkey", "r_name"])
        nation = nation[nation["n_regionkey"].isin(regions.loc[regions["r_name"] == region, "r_regionkey"])]
    if names is not None:
        nation = nation[nation["n_name"].isin(names)]
    return nation[["n_nationkey", "n_name"]]


def _q1(t: Tables) -> pd.DataFrame:
    li = t("lineitem", ["l_returnflag", "l_linestatus", "l_quantity", "l_extendedprice", "l_discount", "l_tax",
                        "l_shipdate"])
    li = li[li["l_shipdate"] <= D("1998-12-01") - pd.Timedelta(days=90)]
    li = li.assign(disc_price=_revenue(li))
    li = li.assign(charge=li["disc_price"] * (1 + li["l_tax"]))
    return (li.groupby(["l_returnflag", "l_linestatus"], as_index=False)
            .agg(sum_qty=("l_quantity", "sum"), sum_base_price=("l_extendedprice", "sum"),
                 sum_disc_price=("disc_price", "sum"), sum_charge=("charge", "sum"),
                 avg_qty=("l_quantity", "mean"), avg_price=("l_extendedprice", "mean"),
                 avg_disc=("l_discount", "mean"), count_order=("l_quantity", "size"))
            .sort_values(["l_returnflag", "l_linestatus"]))


def _q2(t: Tables) -> pd.DataFrame:
    part = t("part", ["p_partkey", "p_mfgr", "p_size", "p_type"])
    part = part[(part["p_size"] == 15) & part["p_type"].str.endswith("BRASS")]
    supplier = t("supplier", ["s_suppkey", "s_name", "s_address", "s_nationkey", "s_phone", "s_acctbal", "s_comment"])
    supplier = supplier.merge(_nations(t, region="EUROPE"), left_on="s_nationkey", right_on="n_nationkey")
    ps = t("partsupp", ["ps_partkey", "ps_suppkey", "ps_supplycost"])
    offers = (part.merge(ps, left_on="p_partkey", right_on="ps_partkey")
              .merge(supplier, left_on="ps_suppkey", right_on="s_suppkey"))
    # the correlated min(ps_supplycost) over Europe's suppliers of the same part
    cheapest = offers[offers["ps_supplycost"] == offers.groupby("p_partkey")["ps_supplycost"].transform("min")]
    return cheapest.sort_values(["s_acctbal", "n_name", "s_name", "p_partkey"],
                                ascending=[False, True, True, True]).head(100)


def _q3(t: Tables) -> pd.DataFrame:
    customer = t("customer", ["c_custkey", "c_mktsegment"])
    orders = t("orders", ["o_orderkey", "o_custkey", "o_orderdate", "o_shippriority"])
    orders = orders[(orders["o_orderdate"] < D("1995-03-15"))
                    & orders["o_custkey"].isin(customer.loc[customer["c_mktsegment"] == "BUILDING", "c_custkey"])]
    li = t("lineitem", ["l_orderkey", "l_extendedprice", "l_discount", "l_shipdate"])
    li = li[li["l_shipdate"] > D("1995-03-15")]
    joined = li.merge(orders, left_on="l_orderkey", right_on="o_orderkey")
    revenue = (joined.assign(revenue=_revenue(joined))
               .groupby(["l_orderkey", "o_orderdate", "o_shippriority"], as_index=False)["revenue"].sum())
    return revenue.sort_values(["revenue", "o_orderdate"], ascending=[False, True]).head(10)


def _q4(t: Tables) -> pd.DataFrame:
    orders = t("orders", ["o_orderkey", "o_orderdate", "o_orderpriority"])
    orders = orders[_in(orders["o_orderdate"], "1993-07-01", "1993-10-01")]
    li = t("lineitem", ["l_orderkey", "l_commitdate", "l_receiptdate"])
    late = li.loc[li["l_commitdate"] < li["l_receiptdate"], "l_orderkey"]
    return (orders[orders["o_orderkey"].isin(late)].groupby("o_orderpriority").size()
            .reset_index(name="order_count").sort_values("o_orderpriority"))


def _q5(t: Tables) -> pd.DataFrame:
    nation = _nations(t, region="ASIA")
    customer = t("customer", ["c_custkey", "c_nationkey"])
    customer = customer[customer["c_nationkey"].isin(nation["n_nationkey"])]
    orders = t("orders", ["o_orderkey", "o_custkey", "o_orderdate"])
    orders = orders[_in(orders["o_orderdate"], "1994-01-01", "1995-01-01")]
    li = t("lineitem", ["l_orderkey", "l_suppkey", "l_extendedprice", "l_discount"])
    supplier = t("supplier", ["s_suppkey", "s_nationkey"])
    joined = (li.merge(orders, left_on="l_orderkey", right_on="o_orderkey")
              .merge(customer, left_on="o_custkey", right_on="c_custkey")
              .merge(supplier, left_on=["l_suppkey", "c_nationkey"], right_on=["s_suppkey", "s_nationkey"])
              .merge(nation, left_on="s_nationkey", right_on="n_nationkey"))
    return (joined.assign(revenue=_revenue(joined)).groupby("n_name", as_index=False)["revenue"].sum()
            .sort_values("revenue", ascending=False))


def _q6(t: Tables) -> pd.DataFrame:
    li = t("lineitem", ["l_extendedprice", "l_discount", "l_quantity", "l_shipdate"])
    # BETWEEN 0.06 - 0.01 AND 0.06 + 0.01, written as the decimals the SQL computes
    li = li[_in(li["l_shipdate"], "1994-01-01", "1995-01-01") & li["l_discount"].between(0.05, 0.07)
            & (li["l_quantity"] < 24)]
    return pd.DataFrame({"revenue": [(li["l_extendedprice"] * li["l_discount"]).sum(min_count=1)]})


def _q7(t: Tables) -> pd.DataFrame:
    nation = _nations(t, names=["FRANCE", "GERMANY"])
    supplier = (t("supplier", ["s_suppkey", "s_nationkey"])
                .merge(nation, left_on="s_nationkey", right_on="n_nationkey")
                [["s_suppkey", "n_name"]].rename(columns={"n_name": "supp_nation"}))
    customer = (t("customer", ["c_custkey", "c_nationkey"])
                .merge(nation, left_on="c_nationkey", right_on="n_nationkey")
                [["c_custkey", "n_name"]].rename(columns={"n_name": "cust_nation"}))
    li = t("lineitem", ["l_orderkey", "l_suppkey", "l_extendedprice", "l_discount", "l_shipdate"])
    li = li[(li["l_shipdate"] >= D("1995-01-01")) & (li["l_shipdate"] <= D("1996-12-31"))]
    joined = (li.merge(supplier, left_on="l_suppkey", right_on="s_suppkey")
              .merge(t("orders", ["o_orderkey", "o_custkey"]), left_on="l_orderkey", right_on="o_orderkey")
              .merge(customer, left_on="o_custkey", right_on="c_custkey"))
    joined = joined[joined["supp_nation"] != joined["cust_nation"]]
    joined = joined.assign(l_year=joined["l_shipdate"].dt.year, revenue=_revenue(joined))
    return (joined.groupby(["supp_nation", "cust_nation", "l_year"], as_index=False)["revenue"].sum()
            .sort_values(["supp_nation", "cust_nation", "l_year"]))


def _q8(t: Tables) -> pd.DataFrame:
    part = t("part", ["p_partkey", "p_type"])
    li = t("lineitem", ["l_orderkey", "l_partkey", "l_suppkey", "l_extendedprice", "l_discount"])
    li = li[li["l_partkey"].isin(part.loc[part["p_type"] == "ECONOMY ANODIZED STEEL", "p_partkey"])]
    orders = t("orders", ["o_orderkey", "o_custkey", "o_orderdate"])
    orders = orders[(orders["o_orderdate"] >= D("1995-01-01")) & (orders["o_orderdate"] <= D("1996-12-31"))]
    customer = t("customer", ["c_custkey", "c_nationkey"])
    customer = customer[customer["c_nationkey"].isin(_nations(t, region="AMERICA")["n_nationkey"])]
    supplier = (t("supplier", ["s_suppkey", "s_nationkey"])
                .merge(_nations(t), left_on="s_nationkey", right_on="n_nationkey"))
    joined = (li.merge(orders, left_on="l_orderkey", right_on="o_orderkey")
              .merge(customer, left_on="o_custkey", right_on="c_custkey")
              .merge(supplier, left_on="l_suppkey", right_on="s_suppkey"))
    volume = _revenue(joined)
    joined = joined.assign(o_year=joined["o_orderdate"].dt.year, volume=volume,
                           brazil=volume.where(joined["n_name"] == "BRAZIL", 0.0))
    shares = joined.groupby("o_year", as_index=False).agg(brazil=("brazil", "sum"), volume=("volume", "sum"))
    return shares.assign(mkt_share=shares["brazil"] / shares["volume"]).sort_values("o_year")


def _q9(t: Tables) -> pd.DataFrame:
    part = t("part", ["p_partkey", "p_name"])
    li = t("lineitem", ["l_orderkey", "l_partkey", "l_suppkey", "l_quantity", "l_extendedprice", "l_discount"])
    li = li[li["l_partkey"].isin(part.loc[part["p_name"].str.contains("green", regex=False), "p_partkey"])]
    supplier = (t("supplier", ["s_suppkey", "s_nationkey"])
                .merge(_nations(t), left_on="s_nationkey", right_on="n_nationkey"))
    joined = (li.merge(t("partsupp", ["ps_partkey", "ps_suppkey", "ps_supplycost"]),
                       left_on=["l_partkey", "l_suppkey"], right_on=["ps_partkey", "ps_suppkey"])
              .merge(supplier, left_on="l_suppkey", right_on="s_suppkey")
              .merge(t("orders", ["o_orderkey", "o_orderdate"]), left_on="l_orderkey", right_on="o_orderkey"))
    joined = joined.assign(nation=joined["n_name"], o_year=joined["o_orderdate"].dt.year,
                           amount=_revenue(joined) - joined["ps_supplycost"] * joined["l_quantity"])
    return (joined.groupby(["nation", "o_year"], as_index=False).agg(sum_profit=("amount", "sum"))
            .sort_values(["nation", "o_year"], ascending=[True, False]))


def _q10(t: Tables) -> pd.DataFrame:
    orders = t("orders", ["o_orderkey", "o_custkey", "o_orderdate"])
    orders = orders[_in(orders["o_orderdate"], "1993-10-01", "1994-01-01")]
    li = t("lineitem", ["l_orderkey", "l_extendedprice", "l_discount", "l_returnflag"])
    li = li[li["l_returnflag"] == "R"]
    joined = li.merge(orders, left_on="l_orderkey", right_on="o_orderkey")
    # group by the customer key alone; the customer's other columns depend on it and join after the top 20
    top = (joined.assign(revenue=_revenue(joined)).groupby("o_custkey", as_index=False)["revenue"].sum()
           .nlargest(20, "revenue"))
    customer = t("customer", ["c_custkey", "c_name", "c_acctbal", "c_nationkey", "c_address", "c_phone", "c_comment"])
    return (top.merge(customer, left_on="o_custkey", right_on="c_custkey")
            .merge(_nations(t), left_on="c_nationkey", right_on="n_nationkey")
            .sort_values("revenue", ascending=False))


def _q11(t: Tables) -> pd.DataFrame:
    supplier = t("supplier", ["s_suppkey", "s_nationkey"])
    german = supplier.loc[supplier["s_nationkey"].isin(_nations(t, names=["GERMANY"])["n_nationkey"]), "s_suppkey"]
    ps = t("partsupp", ["ps_partkey", "ps_suppkey", "ps_availqty", "ps_supplycost"])
    ps = ps[ps["ps_suppkey"].isin(german)]
    ps = ps.assign(value=ps["ps_supplycost"] * ps["ps_availqty"])
    value = ps.groupby("ps_partkey", as_index=False)["value"].sum()
    return value[value["value"] > ps["value"].sum() * t.fraction].sort_values("value", ascending=False)


def _q12(t: Tables) -> pd.DataFrame:
    li = t("lineitem", ["l_orderkey", "l_shipmode", "l_shipdate", "l_commitdate", "l_receiptdate"])
    li = li[li["l_shipmode"].isin(["MAIL", "SHIP"]) & (li["l_commitdate"] < li["l_receiptdate"])
            & (li["l_shipdate"] < li["l_commitdate"]) & _in(li["l_receiptdate"], "1994-01-01", "1995-01-01")]
    joined = li.merge(t("orders", ["o_orderkey", "o_orderpriority"]), left_on="l_orderkey", right_on="o_orderkey")
    high = joined["o_orderpriority"].isin(["1-URGENT", "2-HIGH"])
    return (joined.assign(high=high, low=~high)
            .groupby("l_shipmode", as_index=False).agg(high_line_count=("high", "sum"), low_line_count=("low", "sum"))
            .sort_values("l_shipmode"))


def _q13(t: Tables) -> pd.DataFrame:
    orders = t("orders", ["o_orderkey", "o_custkey", "o_comment"])
    orders = orders[~orders["o_comment"].str.contains("special.*requests", regex=True)]
    counts = (t("customer", ["c_custkey"]).merge(orders, left_on="c_custkey", right_on="o_custkey", how="left")
              .groupby("c_custkey")["o_orderkey"].count())
    return (counts.value_counts().rename_axis("c_count").reset_index(name="custdist")
            .sort_values(["custdist", "c_count"], ascending=False))


def _q14(t: Tables) -> pd.DataFrame:
    li = t("lineitem", ["l_partkey", "l_extendedprice", "l_discount", "l_shipdate"])
    li = li[_in(li["l_shipdate"], "1995-09-01", "1995-10-01")]
    joined = li.merge(t("part", ["p_partkey", "p_type"]), left_on="l_partkey", right_on="p_partkey")
    revenue = _revenue(joined)
    promo = revenue.where(joined["p_type"].str.startswith("PROMO"), 0.0)
    return pd.DataFrame({"promo_revenue": [100.0 * promo.sum() / revenue.sum()]})


def _q15(t: Tables) -> pd.DataFrame:
    li = t("lineitem", ["l_suppkey", "l_extendedprice", "l_discount", "l_shipdate"])
    li = li[_in(li["l_shipdate"], "1996-01-01", "1996-04-01")]
    revenue = li.assign(total_revenue=_revenue(li)).groupby("l_suppkey", as_index=False)["total_revenue"].sum()
    best = revenue[revenue["total_revenue"] == revenue["total_revenue"].max()]
    supplier = t("supplier", ["s_suppkey", "s_name", "s_address", "s_phone"])
    return supplier.merge(best, left_on="s_suppkey", right_on="l_suppkey").sort_values("s_suppkey")


def _q16(t: Tables) -> pd.DataFrame:
    supplier = t("supplier", ["s_suppkey", "s_comment"])
    complaints = supplier.loc[supplier["s_comment"].str.contains("Customer.*Complaints", regex=True), "s_suppkey"]
    part = t("part", ["p_partkey", "p_brand", "p_type", "p_size"])
    part = part[(part["p_brand"] != "Brand#45") & ~part["p_type"].str.startswith("MEDIUM POLISHED")
                & part["p_size"].isin([49, 14, 23, 45, 19, 3, 36, 9])]
    ps = t("partsupp", ["ps_partkey", "ps_suppkey"])
    ps = ps[~ps["ps_suppkey"].isin(complaints)]
    return (part.merge(ps, left_on="p_partkey", right_on="ps_partkey")
            .groupby(["p_brand", "p_type", "p_size"], as_index=False).agg(supplier_cnt=("ps_suppkey", "nunique"))
            .sort_values(["supplier_cnt", "p_brand", "p_type", "p_size"], ascending=[False, True, True, True]))


def _q17(t: Tables) -> pd.DataFrame:
    part = t("part", ["p_partkey", "p_brand", "p_container"])
    keys = part.loc[(part["p_brand"] == "Brand#23") & (part["p_container"] == "MED BOX"), "p_partkey"]
    li = t("lineitem", ["l_partkey", "l_quantity", "l_extendedprice"])
    li = li[li["l_partkey"].isin(keys)]
    # the correlated avg(l_quantity) of the same part, over all its lines
    small = li[li["l_quantity"] < 0.2 * li.groupby("l_partkey")["l_quantity"].transform("mean")]
    # min_count=1: SQL's sum over no rows is NULL, not 0 (SF 0.01 has no qualifying line)
    return pd.DataFrame({"avg_yearly": [small["l_extendedprice"].sum(min_count=1) / 7.0]})


def _q18(t: Tables) -> pd.DataFrame:
    quantity = t("lineitem", ["l_orderkey", "l_quantity"]).groupby("l_orderkey", as_index=False)["l_quantity"].sum()
    big = quantity[quantity["l_quantity"] > 300].rename(columns={"l_quantity": "sum_quantity"})
    orders = t("orders", ["o_orderkey", "o_custkey", "o_orderdate", "o_totalprice"])
    return (orders.merge(big, left_on="o_orderkey", right_on="l_orderkey")
            .merge(t("customer", ["c_custkey", "c_name"]), left_on="o_custkey", right_on="c_custkey")
            .sort_values(["o_totalprice", "o_orderdate"], ascending=[False, True]).head(100))


Q19_TERMS = (("Brand#12", ["SM CASE", "SM BOX", "SM PACK", "SM PKG"], 1, 5),
             ("Brand#23", ["MED BAG", "MED BOX", "MED PKG", "MED PACK"], 10, 10),
             ("Brand#34", ["LG CASE", "LG BOX", "LG PACK", "LG PKG"], 20, 15))
"""q19's three disjuncts: brand, containers, least quantity (up to 10 more), greatest size."""


def _q19(t: Tables) -> pd.DataFrame:
    li = t("lineitem", ["l_partkey", "l_quantity", "l_extendedprice", "l_discount", "l_shipmode", "l_shipinstruct"])
    li = li[li["l_shipmode"].isin(["AIR", "AIR REG"]) & (li["l_shipinstruct"] == "DELIVER IN PERSON")]
    joined = li.merge(t("part", ["p_partkey", "p_brand", "p_container", "p_size"]),
                      left_on="l_partkey", right_on="p_partkey")
    keep = pd.Series(False, index=joined.index)
    for brand, containers, quantity, size in Q19_TERMS:
        keep |= ((joined["p_brand"] == brand) & joined["p_container"].isin(containers)
                 & joined["l_quantity"].between(quantity, quantity + 10) & joined["p_size"].between(1, size))
    return pd.DataFrame({"revenue": [_revenue(joined[keep]).sum(min_count=1)]})


def _q20(t: Tables) -> pd.DataFrame:
    part = t("part", ["p_partkey", "p_name"])
    forest = part.loc[part["p_name"].str.startswith("forest"), "p_partkey"]
    li = t("lineitem", ["l_partkey", "l_suppkey", "l_quantity", "l_shipdate"])
    li = li[_in(li["l_shipdate"], "1994-01-01", "1995-01-01") & li["l_partkey"].isin(forest)]
    shipped = li.groupby(["l_partkey", "l_suppkey"], as_index=False)["l_quantity"].sum()
    ps = t("partsupp", ["ps_partkey", "ps_suppkey", "ps_availqty"])
    # the correlated sum is NULL (so the comparison false) where nothing shipped: an inner merge
    ps = ps[ps["ps_partkey"].isin(forest)].merge(shipped, left_on=["ps_partkey", "ps_suppkey"],
                                                 right_on=["l_partkey", "l_suppkey"])
    suppkeys = ps.loc[ps["ps_availqty"] > 0.5 * ps["l_quantity"], "ps_suppkey"]
    supplier = t("supplier", ["s_suppkey", "s_name", "s_address", "s_nationkey"])
    supplier = supplier[supplier["s_suppkey"].isin(suppkeys)
                        & supplier["s_nationkey"].isin(_nations(t, names=["CANADA"])["n_nationkey"])]
    return supplier.sort_values("s_name")


def _q21(t: Tables) -> pd.DataFrame:
    li = t("lineitem", ["l_orderkey", "l_suppkey", "l_commitdate", "l_receiptdate"])
    late = li[li["l_receiptdate"] > li["l_commitdate"]]
    # EXISTS another supplier on the order: it has more than one; NOT EXISTS another late
    # supplier: l1's own (late) supplier is the order's only late one
    suppliers = li.groupby("l_orderkey")["l_suppkey"].nunique()
    late_suppliers = late.groupby("l_orderkey")["l_suppkey"].nunique()
    supplier = t("supplier", ["s_suppkey", "s_name", "s_nationkey"])
    supplier = supplier[supplier["s_nationkey"].isin(_nations(t, names=["SAUDI ARABIA"])["n_nationkey"])]
    orders = t("orders", ["o_orderkey", "o_orderstatus"])
    l1 = late[late["l_orderkey"].isin(orders.loc[orders["o_orderstatus"] == "F", "o_orderkey"])]
    l1 = l1[(l1["l_orderkey"].map(suppliers) > 1) & (l1["l_orderkey"].map(late_suppliers) == 1)]
    return (l1.merge(supplier, left_on="l_suppkey", right_on="s_suppkey")
            .groupby("s_name", as_index=False).agg(numwait=("l_orderkey", "size"))
            .sort_values(["numwait", "s_name"], ascending=[False, True]).head(100))


def _q22(t: Tables) -> pd.DataFrame:
    customer = t("customer", ["c_custkey", "c_phone", "c_acctbal"])
    customer = customer.assign(cntrycode=customer["c_phone"].str.slice(0, 2))
    customer = customer[customer["cntrycode"].isin(["13", "31", "23", "29", "30", "18", "17"])]
    average = customer.loc[customer["c_acctbal"] > 0.0, "c_acctbal"].mean()
    customer = customer[(customer["c_acctbal"] > average)
                        & ~customer["c_custkey"].isin(t("orders", ["o_custkey"])["o_custkey"])]
    return (customer.groupby("cntrycode", as_index=False)
            .agg(numcust=("c_custkey", "size"), totacctbal=("c_acctbal", "sum")).sort_values("cntrycode"))


TPCH_QUESTIONS: dict[str, Callable[[Tables], pd.DataFrame]] = {
    "q1": _q1, "q2": _q2, "q3": _q3, "q4": _q4, "q5": _q5, "q6": _q6, "q7": _q7, "q8": _q8, "q9": _q9,
    "q10": _q10, "q11": _q11, "q12": _q12, "q13": _q13, "q14": _q14, "q15": _q15, "q16": _q16, "q17": _q17,
    "q18": _q18, "q19": _q19, "q20": _q20, "q21": _q21, "q22": _q22}


def answer(engine: PandasReader, inp: StageInput, question: str) -> pd.DataFrame:
    """The question's function (the engine's VARIANTS) on the eight tables, cut to the answer's
    columns in order, the rows already in the query's ORDER BY and LIMIT."""
    engine.last_notes.update(mode="whole", idiom="merge, boolean masks, groupby().agg on whole frames")
    result = engine.variant("tpch", question)(Tables(engine, catalogue.tables(inp)))
    return result[list(catalogue.ANSWERS[question].columns)].reset_index(drop=True)
