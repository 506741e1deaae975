"""TPC-H's 22 queries: what each answers, and how its answer is compared.

Every engine answers question qN with the query of the TPC-H specification (revision 3.0.1) and
its validation substitution parameters (clause 2.4.N.3, the values qgen's -d writes and the kit's
answer set was made with), as a small pandas DataFrame with exactly ANSWERS[qN]'s columns, in
that order, every row of the result (after the query's own LIMIT). The input is the lineitem
table, with the other seven tables in StageInput.extra by table name (engines.base: `tables()`).

The parameters, written once here for every engine:
  q1 delta 90 days          q2 size 15, type %BRASS, region EUROPE
  q3 segment BUILDING, date 1995-03-15              q4 date 1993-07-01
  q5 region ASIA, date 1994-01-01                    q6 date 1994-01-01, discount 0.06, quantity 24
  q7 nations FRANCE, GERMANY                         q8 nation BRAZIL, region AMERICA,
                                                        type ECONOMY ANODIZED STEEL
  q9 color green            q10 date 1993-10-01      q11 nation GERMANY, fraction 0.0001 / SF
  q12 modes MAIL, SHIP, date 1994-01-01              q13 words special, requests
  q14 date 1995-09-01       q15 date 1996-01-01      q16 brand Brand#45, type MEDIUM POLISHED,
                                                        sizes 49, 14, 23, 45, 19, 3, 36, 9
  q17 brand Brand#23, container MED BOX              q18 quantity 300
  q19 brands Brand#12, Brand#23, Brand#34, quantities 1, 10, 20
  q20 color forest, date 1994-01-01, nation CANADA   q21 nation SAUDI ARABIA
  q22 country codes 13, 31, 23, 29, 30, 18, 17

Checks (runner.References): at SF1 the official answer set of the TPC-H kit (tpch.official), with
the specification's rules; at other scale factors the DuckDB reference, to a relative 1e-6.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from scalebench.datasets.tables_tpch import TPCH_PREFIX, TPCH_TABLES

if TYPE_CHECKING:
    from scalebench.engines.base import StageInput


@dataclass(frozen=True)
class Answer:
    columns: tuple[str, ...]
    """The answer's columns, in order (the official answer file's, by position)."""
    keys: tuple[str, ...]
    """Columns that identify a row, for the order-normalised comparison."""
    kinds: tuple[str, ...]
    """Each column's rule in the official comparison (the kit's check_answers/colprecision.txt):
    str, int, cnt (exact), num (a single value, exact to the cent), sum (within $100),
    avg (within 1 % after rounding to the cent), rat (within 1 %)."""
    order: tuple[tuple[str, bool], ...] = ()
    """The query's ORDER BY as (column, descending)."""
    limit: int | None = None


def _a(columns: str, keys: str, kinds: str, order: str = "", limit: int | None = None) -> Answer:
    sort = tuple((c.lstrip("-"), c.startswith("-")) for c in order.split())
    return Answer(tuple(columns.split()), tuple(keys.split()), tuple(kinds.split()), sort, limit)


ANSWERS: dict[str, Answer] = {
    "q1": _a("l_returnflag l_linestatus sum_qty sum_base_price sum_disc_price sum_charge avg_qty avg_price "
             "avg_disc count_order", "l_returnflag l_linestatus", "str str sum sum sum sum avg avg avg cnt",
             "l_returnflag l_linestatus"),
    "q2": _a("s_acctbal s_name n_name p_partkey p_mfgr s_address s_phone s_comment", "p_partkey s_name",
             "num str str int str str str str", "-s_acctbal n_name s_name p_partkey", 100),
    "q3": _a("l_orderkey revenue o_orderdate o_shippriority", "l_orderkey", "int sum str int",
             "-revenue o_orderdate", 10),
    "q4": _a("o_orderpriority order_count", "o_orderpriority", "str cnt", "o_orderpriority"),
    "q5": _a("n_name revenue", "n_name", "str sum", "-revenue"),
    "q6": _a("revenue", "revenue", "sum"),
    "q7": _a("supp_nation cust_nation l_year revenue", "supp_nation cust_nation l_year", "str str int sum",
             "supp_nation cust_nation l_year"),
    "q8": _a("o_year mkt_share", "o_year", "int rat", "o_year"),
    "q9": _a("nation o_year sum_profit", "nation o_year", "str int sum", "nation -o_year"),
    "q10": _a("c_custkey c_name revenue c_acctbal n_name c_address c_phone c_comment", "c_custkey",
              "int str sum num str str str str", "-revenue", 20),
    "q11": _a("ps_partkey value", "ps_partkey", "int sum", "-value"),
    "q12": _a("l_shipmode high_line_count low_line_count", "l_shipmode", "str sum sum", "l_shipmode"),
    "q13": _a("c_count custdist", "c_count", "cnt cnt", "-custdist -c_count"),
    "q14": _a("promo_revenue", "promo_revenue", "rat"),
    "q15": _a("s_suppkey s_name s_address s_phone total_revenue", "s_suppkey", "int str str str sum", "s_suppkey"),
    "q16": _a("p_brand p_type p_size supplier_cnt", "p_brand p_type p_size", "str str num cnt",
              "-supplier_cnt p_brand p_type p_size"),
    "q17": _a("avg_yearly", "avg_yearly", "avg"),
    "q18": _a("c_name c_custkey o_orderkey o_orderdate o_totalprice sum_quantity", "o_orderkey",
              "str int int str num sum", "-o_totalprice o_orderdate", 100),
    "q19": _a("revenue", "revenue", "sum"),
    "q20": _a("s_name s_address", "s_name", "str str", "s_name"),
    "q21": _a("s_name numwait", "s_name", "str cnt", "-numwait s_name", 100),
    "q22": _a("cntrycode numcust totacctbal", "cntrycode", "num cnt sum", "cntrycode"),
}
QUESTIONS: tuple[str, ...] = tuple(ANSWERS)
MAIN_TABLE = "lineitem"
EXTRA_TABLES: tuple[tuple[str, str], ...] = tuple((t, f"{TPCH_PREFIX}{t}") for t in TPCH_TABLES if t != MAIN_TABLE)
"""(role, dataset) of the seven other tables, given to every question (StageInput.extra)."""
OFFICIAL_SF = 1.0
"""The scale factor of the kit's answer set."""


def tables(inp: StageInput) -> dict[str, StageInput]:
    """A question's eight inputs by table name: the main input is lineitem, the rest its extra tables."""
    return {MAIN_TABLE: inp, **{table: inp.extra[table] for table, _ in EXTRA_TABLES}}


def scale_factor(inp: StageInput) -> float:
    """The input's scale factor, from the supplier table (exactly SF x 10,000 rows)."""
    return inp.extra["supplier"].rows / 10_000


def q11_fraction(inp: StageInput) -> float:
    """q11's FRACTION: 0.0001 / SF."""
    return 0.0001 / scale_factor(inp)
