"""Calcite's eager aggregation (LLM-R2's DSB pool, q65/q72-like pairs): a COUNT(*) or SUM(x) pushed
below a join and summed again above (``verifiers/regroup.py``).  Each proved shape has wrong
variants beside it that are never proved, and refuted where a generated database shows it.
"""

from __future__ import annotations

import pytest
import sqlglot

from sqlsluice.databases import Catalog
from sqlsluice.verifiers import verify
from sqlsluice.verifiers.regroup import expand_regrouped
from sqlsluice.verifiers.schema import load_schema
from sqlsluice.verifiers.smt import prove

DDL = """
CREATE TABLE sales (s_item INT, s_day INT, s_price DECIMAL(7,2), s_weight DOUBLE);
CREATE TABLE day (d_sk INT, d_year INT);  -- no key: a day may match twice
CREATE TABLE item (i_sk INT PRIMARY KEY, i_cat VARCHAR);
"""

# the plain queries and Calcite's pre-aggregated forms of them
COUNT_PLAIN = ("SELECT sales.s_item, COUNT(*) AS cnt FROM sales, day WHERE sales.s_day = day.d_sk "
               "AND day.d_year = 2000 GROUP BY sales.s_item")
COUNT_EAGER = ("SELECT a.s_item, COALESCE(SUM(a.cnt * b.cnt), 0) AS cnt FROM "
               "(SELECT s_item, s_day, COUNT(*) AS cnt FROM sales GROUP BY s_item, s_day) AS a "
               "INNER JOIN (SELECT d_sk, COUNT(*) AS cnt FROM day WHERE d_year = 2000 GROUP BY d_sk) AS b "
               "ON a.s_day = b.d_sk GROUP BY a.s_item")
SUM_PLAIN = ("SELECT sales.s_item, SUM(sales.s_price) AS rev FROM sales, day WHERE sales.s_day = day.d_sk "
             "AND day.d_year = 2000 GROUP BY sales.s_item")
SUM_EAGER = ("SELECT a.s_item, SUM(a.rev * b.f1) AS rev FROM "
             "(SELECT s_day, s_item, SUM(s_price) AS rev FROM sales GROUP BY s_day, s_item) AS a "
             "INNER JOIN (SELECT d_sk, COUNT(*) AS f1 FROM day WHERE d_year = 2000 GROUP BY d_sk) AS b "
             "ON a.s_day = b.d_sk GROUP BY a.s_item")
# three levels: the middle block's COALESCE(SUM(..), 0) becomes a COUNT(*) for the block above
NESTED_PLAIN = ("SELECT item.i_cat, COUNT(*) AS n FROM sales, day, item WHERE sales.s_day = day.d_sk "
                "AND sales.s_item = item.i_sk GROUP BY item.i_cat ORDER BY n")
NESTED_EAGER = ("SELECT c.i_cat, COALESCE(SUM(m.cnt * c.cnt), 0) AS n FROM "
                "(SELECT a.s_item, COALESCE(SUM(a.cnt * b.cnt), 0) AS cnt FROM "
                "(SELECT s_item, s_day, COUNT(*) AS cnt FROM sales GROUP BY s_item, s_day) AS a "
                "INNER JOIN (SELECT d_sk, COUNT(*) AS cnt FROM day GROUP BY d_sk) AS b ON a.s_day = b.d_sk "
                "GROUP BY a.s_item) AS m "
                "INNER JOIN (SELECT i_sk, i_cat, COUNT(*) AS cnt FROM item GROUP BY i_sk, i_cat) AS c "
                "ON m.s_item = c.i_sk GROUP BY c.i_cat ORDER BY COALESCE(SUM(m.cnt * c.cnt), 0)")


@pytest.fixture(scope="module")
def cat() -> Catalog:
    return load_schema(DDL, "duckdb")


def _q(s: str) -> sqlglot.exp.Expression:
    return sqlglot.parse_one(s, read="postgres")


@pytest.mark.parametrize("plain, eager", [
    (COUNT_PLAIN, COUNT_EAGER), (SUM_PLAIN, SUM_EAGER), (NESTED_PLAIN, NESTED_EAGER),
    # MIN/MAX and DISTINCT aggregates do not see the copies
    ("SELECT sales.s_item, MAX(day.d_year) AS y FROM sales, day WHERE sales.s_day = day.d_sk GROUP BY sales.s_item",
     "SELECT a.s_item, MAX(b.d_year) AS y FROM (SELECT s_item, s_day, COUNT(*) AS c FROM sales "
     "GROUP BY s_item, s_day) AS a INNER JOIN day AS b ON a.s_day = b.d_sk GROUP BY a.s_item"),
    # MIN pushed below the join (Calcite's q72-like MIN pairs), a GROUP BY used as DISTINCT beside it
    ("SELECT MIN(sales.s_price), MAX(day.d_year) FROM sales, day WHERE sales.s_day = day.d_sk",
     "SELECT MIN(a.m), MAX(b.d_year) FROM (SELECT s_day, MIN(s_price) AS m FROM sales GROUP BY s_day) AS a "
     "INNER JOIN (SELECT d_sk, d_year FROM day GROUP BY d_sk, d_year) AS b ON a.s_day = b.d_sk"),
], ids=["count", "sum", "nested-count", "max", "min-pushed"])
def test_eager_aggregation_is_proved(cat: Catalog, plain: str, eager: str) -> None:
    for a, b in ((plain, eager), (eager, plain)):
        res = prove(_q(a), _q(b), cat, "postgres", timeout_s=30)
        assert res.proved, res.reason
    v = verify(plain, eager, cat, "postgres", time_budget_s=30)
    assert v.verdict == "EQUIVALENT", v.reason


NEAR_MISSES = {
    # COUNT(*) above counts the pre-aggregated rows, not the sales
    "count-of-groups": COUNT_EAGER.replace("COALESCE(SUM(a.cnt * b.cnt), 0)", "COUNT(*)"),
    # one factor dropped: the day side's multiplicity is lost (a day listed twice counted once)
    "factor-dropped": COUNT_EAGER.replace("a.cnt * b.cnt", "a.cnt"),
    # SUM of the pre-summed revenue without the count of matching days (a day listed twice
    # counts its sales twice in the plain query)
    "sum-without-count": SUM_EAGER.replace("SUM(a.rev * b.f1)", "SUM(a.rev)"),
    # AVG of per-group sums is not the AVG of the prices
    "avg-of-sums": SUM_EAGER.replace("SUM(a.rev * b.f1)", "AVG(a.rev * b.f1)"),
    # HAVING inside the pre-aggregation drops groups the plain query keeps
    "inner-having": COUNT_EAGER.replace("FROM sales GROUP BY s_item, s_day)",
                                        "FROM sales GROUP BY s_item, s_day HAVING COUNT(*) > 1)"),
    # a LEFT JOIN keeps sales without a matching day (and their NULL count)
    "left-join": COUNT_EAGER.replace("INNER JOIN (SELECT d_sk", "LEFT JOIN (SELECT d_sk"),
}


@pytest.mark.parametrize("name", sorted(NEAR_MISSES))
def test_wrong_eager_aggregation_is_not_proved(cat: Catalog, name: str) -> None:
    plain = SUM_PLAIN if "sum" in name else COUNT_PLAIN
    wrong = NEAR_MISSES[name]
    for a, b in ((plain, wrong), (wrong, plain)):
        res = prove(_q(a), _q(b), cat, "postgres", timeout_s=10)
        assert not res.proved, (name, res.reason)
    v = verify(plain, wrong, cat, "postgres", time_budget_s=6)
    assert v.verdict == "NOT_EQUIVALENT", (name, v.verdict, v.reason)


@pytest.mark.parametrize("wrong", [
    "SELECT MIN(a.m), MAX(b.d_year) FROM (SELECT s_day, MAX(s_price) AS m FROM sales GROUP BY s_day) AS a "
    "INNER JOIN (SELECT d_sk, d_year FROM day GROUP BY d_sk, d_year) AS b ON a.s_day = b.d_sk",
    "SELECT MIN(a.m), COUNT(*) FROM (SELECT s_day, MIN(s_price) AS m FROM sales GROUP BY s_day) AS a "
    "INNER JOIN (SELECT d_sk, d_year FROM day GROUP BY d_sk, d_year) AS b ON a.s_day = b.d_sk",
], ids=["min-of-max", "count-over-distinct"])
def test_wrong_min_pushdown_is_not_proved(cat: Catalog, wrong: str) -> None:
    plain = ("SELECT MIN(sales.s_price), MAX(day.d_year) FROM sales, day WHERE sales.s_day = day.d_sk"
             if "COUNT" not in wrong else
             "SELECT MIN(sales.s_price), COUNT(*) FROM sales, day WHERE sales.s_day = day.d_sk")
    for a, b in ((plain, wrong), (wrong, plain)):
        assert not prove(_q(a), _q(b), cat, "postgres", timeout_s=10).proved
    assert verify(plain, wrong, cat, "postgres", time_budget_s=6).verdict == "NOT_EQUIVALENT"


def test_scalar_sum_of_counts_is_not_a_count(cat: Catalog) -> None:
    """Without GROUP BY above, SUM of counts is NULL on no rows where COUNT(*) is 0; with
    COALESCE(.., 0) it is the count."""
    plain = "SELECT COUNT(*) FROM sales"
    assert prove(_q(plain), _q("SELECT COALESCE(SUM(a.c), 0) FROM (SELECT s_item, COUNT(*) AS c FROM sales "
                               "GROUP BY s_item) AS a"), cat, "postgres", timeout_s=10).proved
    wrong = "SELECT SUM(a.c) FROM (SELECT s_item, COUNT(*) AS c FROM sales GROUP BY s_item) AS a"
    assert not prove(_q(plain), _q(wrong), cat, "postgres", timeout_s=10).proved
    assert verify(plain, wrong, cat, "postgres", time_budget_s=6).verdict == "NOT_EQUIVALENT"


@pytest.mark.parametrize("q", [
    # floats: SUM is not associative, the pre-summed form may round differently
    "SELECT a.s_item, SUM(a.w * b.c) FROM (SELECT s_item, s_day, SUM(s_weight) AS w FROM sales "
    "GROUP BY s_item, s_day) AS a INNER JOIN (SELECT d_sk, COUNT(*) AS c FROM day GROUP BY d_sk) AS b "
    "ON a.s_day = b.d_sk GROUP BY a.s_item",
    # no GROUP BY inside: a scalar aggregate answers one row (count 0) for no input
    "SELECT b.d_sk, SUM(a.c) FROM (SELECT COUNT(*) AS c FROM sales) AS a CROSS JOIN day AS b GROUP BY b.d_sk",
    # the count read outside an aggregate (a filter on it)
    "SELECT a.s_item, SUM(a.c) FROM (SELECT s_item, COUNT(*) AS c FROM sales GROUP BY s_item) AS a "
    "WHERE a.c > 1 GROUP BY a.s_item",
    # the parent does not aggregate: the copies would be rows of the answer
    "SELECT a.s_item, a.c FROM (SELECT s_item, COUNT(*) AS c FROM sales GROUP BY s_item) AS a",
    # COUNT(*) above
    "SELECT a.s_item, COUNT(*) FROM (SELECT s_item, s_day, COUNT(*) AS c FROM sales GROUP BY s_item, s_day) "
    "AS a GROUP BY a.s_item",
    # MIN of per-group MAXes
    "SELECT MIN(a.m) FROM (SELECT s_day, MAX(s_price) AS m FROM sales GROUP BY s_day) AS a",
    # COUNT(*) over a GROUP BY used as DISTINCT
    "SELECT COUNT(*) FROM (SELECT s_day FROM sales GROUP BY s_day) AS a INNER JOIN day AS b ON a.s_day = b.d_sk",
], ids=["float-sum", "scalar-inside", "count-filtered", "no-parent-aggregate", "count-star-above", "min-of-max",
        "count-of-distinct"])
def test_expansion_refuses(cat: Catalog, q: str) -> None:
    assert expand_regrouped(_q(q), cat) is None
