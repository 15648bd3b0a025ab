"""Shapes of LLM-R2's DSB positive pool (rewrites Calcite wrote) that the verifier decides: each
proved shape has a wrong variant beside it that must never be proved, and the pool's genuinely
wrong rewrites (EXISTS written as a join of the matching rows) are refuted with a counterexample.
"""

from __future__ import annotations

import duckdb
import pytest
import sqlglot

from sqlsluice.databases import Catalog
from sqlsluice.verifiers import compare_results, verify
from sqlsluice.verifiers.canonical import canonical_sql
from sqlsluice.verifiers.differential import DifferentialTester
from sqlsluice.verifiers.schema import load_schema
from sqlsluice.verifiers.sqlparse import collect_constants, referenced_tables

DDL = """
CREATE TABLE item (i_item_sk INT PRIMARY KEY, i_category VARCHAR, i_manager_id INT);
CREATE TABLE sales (s_item_sk INT NOT NULL, s_ticket INT NOT NULL, s_price DECIMAL(7,2),
                    PRIMARY KEY (s_item_sk, s_ticket));
"""


@pytest.fixture(scope="module")
def cat() -> Catalog:
    return load_schema(DDL, "duckdb")


def _canon(q: str, cat: Catalog) -> str:
    return canonical_sql(sqlglot.parse_one(q, read="postgres"), cat, "postgres")


# Calcite's q65-85 shape: IN written as OR, BETWEEN as two comparisons, output columns renamed
# (``i_item_sk0``), ORDER BY an output alias
PAIR_QUERY = ("SELECT i1.i_item_sk, i2.i_item_sk, COUNT(*) AS cnt FROM item AS i1, item AS i2, sales AS s1, "
              "sales AS s2 WHERE i1.i_item_sk < i2.i_item_sk AND s1.s_ticket = s2.s_ticket "
              "AND s1.s_item_sk = i1.i_item_sk AND s2.s_item_sk = i2.i_item_sk "
              "AND i1.i_category IN ('Books', 'Home') AND i2.i_manager_id BETWEEN 30 AND 49 "
              "GROUP BY i1.i_item_sk, i2.i_item_sk ORDER BY cnt")
PAIR_CALCITE = ("SELECT item.i_item_sk, item0.i_item_sk AS i_item_sk0, COUNT(*) AS cnt FROM item, item AS item0, "
                "sales, sales AS sales0 WHERE item.i_item_sk < item0.i_item_sk "
                "AND sales.s_ticket = sales0.s_ticket AND (sales.s_item_sk = item.i_item_sk "
                "AND sales0.s_item_sk = item0.i_item_sk) AND (item.i_category = 'Books' "
                "OR item.i_category = 'Home') AND (item0.i_manager_id >= 30 AND item0.i_manager_id <= 49) "
                "GROUP BY item.i_item_sk, item0.i_item_sk ORDER BY COUNT(*)")


def test_in_list_and_its_disjunction_have_one_canonical_form(cat: Catalog) -> None:
    assert _canon(PAIR_QUERY, cat) == _canon(PAIR_CALCITE, cat)
    v = verify(PAIR_QUERY, PAIR_CALCITE, cat, "postgres", time_budget_s=2.0)
    assert v.verdict == "EQUIVALENT" and v.method == "canonical"


@pytest.mark.parametrize("wrong", [
    # another list than the IN's
    PAIR_CALCITE.replace("OR item.i_category = 'Home'", "OR item.i_category = 'Garden'"),
    # a disjunct dropped
    PAIR_CALCITE.replace("(item.i_category = 'Books' OR item.i_category = 'Home')", "item.i_category = 'Books'"),
    # the OR moved to the other item
    PAIR_CALCITE.replace("OR item.i_category = 'Home'", "OR item0.i_category = 'Home'"),
    # sorted by another output column
    PAIR_CALCITE.replace("ORDER BY COUNT(*)", "ORDER BY i_item_sk0"),
    PAIR_CALCITE.replace("ORDER BY COUNT(*)", "ORDER BY COUNT(*) DESC"),
])
def test_in_list_near_misses_are_not_proved(cat: Catalog, wrong: str) -> None:
    assert _canon(PAIR_QUERY, cat) != _canon(wrong, cat)
    assert verify(PAIR_QUERY, wrong, cat, "postgres", time_budget_s=1.0).verdict != "EQUIVALENT"


def test_order_by_alias_is_an_output_position(cat: Catalog) -> None:
    q = "SELECT i_item_sk AS a, i_manager_id AS b FROM item ORDER BY b, a"
    same = "SELECT i_item_sk AS x, i_manager_id AS y FROM item ORDER BY y, x"
    swapped = "SELECT i_item_sk AS b, i_manager_id AS a FROM item ORDER BY b, a"  # sorts by the other column
    assert _canon(q, cat) == _canon(same, cat)
    assert _canon(q, cat) != _canon(swapped, cat)
    assert verify(q, swapped, cat, "postgres", time_budget_s=1.0).verdict != "EQUIVALENT"


def test_not_in_list_keeps_its_parentheses(cat: Catalog) -> None:
    # NOT (x = 1 OR x = 2) is NOT IN (1, 2); (NOT x = 1) OR x = 2 is not, and neither is a list with a NULL
    q = "SELECT i_item_sk FROM item WHERE i_manager_id NOT IN (1, 2)"
    for wrong in ("SELECT i_item_sk FROM item WHERE (NOT i_manager_id = 1) OR i_manager_id = 2",
                  "SELECT i_item_sk FROM item WHERE i_manager_id NOT IN (1, 2, NULL)"):
        assert _canon(q, cat) != _canon(wrong, cat)
        assert verify(q, wrong, cat, "postgres", time_budget_s=1.0).verdict == "NOT_EQUIVALENT"


# -- refuting the pool's wrong rewrites -------------------------------------------------------------

# DSB's q10 shape: a customer counted once when some sale of theirs matches (EXISTS); Calcite's
# rewrite joins the matching sales instead (``LEFT JOIN (SELECT ss_customer_sk, TRUE AS f0 ..)``),
# so a customer with two matching sales counts twice.  Only databases where every filter of five
# tables holds at once and one customer has two matching sales show it.
Q10_DDL = """
CREATE TABLE customer (c_customer_sk INT PRIMARY KEY, c_current_addr_sk INT, c_current_cdemo_sk INT,
                       c_first_name VARCHAR);
CREATE TABLE customer_address (ca_address_sk INT PRIMARY KEY, ca_state VARCHAR, ca_city VARCHAR);
CREATE TABLE customer_demographics (cd_demo_sk INT PRIMARY KEY, cd_gender VARCHAR, cd_marital_status VARCHAR,
                                    cd_dep_count INT);
CREATE TABLE store_sales (ss_item_sk INT NOT NULL, ss_ticket_number INT NOT NULL, ss_customer_sk INT,
                          ss_sold_date_sk INT, ss_list_price DECIMAL(7,2), ss_quantity INT,
                          PRIMARY KEY (ss_item_sk, ss_ticket_number));
CREATE TABLE date_dim (d_date_sk INT PRIMARY KEY, d_year INT, d_moy INT, d_dom INT);
"""
Q10 = ("SELECT cd_gender, cd_marital_status, COUNT(*) AS cnt FROM customer c, customer_address ca, "
       "customer_demographics WHERE c.c_current_addr_sk = ca.ca_address_sk AND ca_state IN ('AK', 'NV') "
       "AND cd_demo_sk = c.c_current_cdemo_sk AND cd_marital_status = 'S' "
       "AND EXISTS (SELECT * FROM store_sales, date_dim WHERE c.c_customer_sk = ss_customer_sk "
       "AND ss_sold_date_sk = d_date_sk AND d_year = 1998 AND d_moy BETWEEN 8 AND 10 "
       "AND ss_list_price BETWEEN 119 AND 208) GROUP BY cd_gender, cd_marital_status")
SEMI = ("(SELECT {distinct}ss.ss_customer_sk, TRUE AS f0 FROM (SELECT * FROM store_sales WHERE ss_list_price >= 119 "
        "AND ss_list_price <= 208) AS ss INNER JOIN (SELECT * FROM date_dim WHERE d_year = 1998 AND d_moy >= 8 "
        "AND d_moy <= 10) AS d ON ss.ss_sold_date_sk = d.d_date_sk)")
Q10_CALCITE = ("SELECT t.cd_gender, t.cd_marital_status, COUNT(*) AS cnt FROM (SELECT c.c_customer_sk, "
               "ca.ca_state, cd.cd_gender, cd.cd_marital_status, c.c_current_addr_sk, ca.ca_address_sk, "
               "c.c_current_cdemo_sk, cd.cd_demo_sk, m.f0 FROM customer AS c CROSS JOIN customer_address AS ca "
               "CROSS JOIN customer_demographics AS cd LEFT JOIN {semi} AS m ON c.c_customer_sk = m.ss_customer_sk) "
               "AS t WHERE t.c_current_addr_sk = t.ca_address_sk AND t.ca_state IN ('AK', 'NV') "
               "AND t.cd_demo_sk = t.c_current_cdemo_sk AND t.cd_marital_status = 'S' AND t.f0 IS NOT NULL "
               "GROUP BY t.cd_gender, t.cd_marital_status")


@pytest.fixture(scope="module")
def q10_cat() -> Catalog:
    """The five TPC-DS tables of q10 with their keys (only the columns it reads, and one more each)."""
    return load_schema(Q10_DDL, "postgres")


def test_exists_written_as_a_join_is_refuted(q10_cat: Catalog) -> None:
    wrong = Q10_CALCITE.format(semi=SEMI.format(distinct=""))
    e1, e2 = sqlglot.parse_one(Q10, read="postgres"), sqlglot.parse_one(wrong, read="postgres")
    d1, d2 = e1.sql("duckdb"), e2.sql("duckdb")
    # bounded by the number of databases, not by time: the same databases on any machine
    tester = DifferentialTester(q10_cat, referenced_tables(e1) | referenced_tables(e2), d1, d2,
                                collect_constants(e1, e2))
    try:
        res = tester.search(600.0, max_dbs=40)
    finally:
        tester.close()
    assert res.counterexample is not None
    # the counterexample replays on a fresh DuckDB database with the schema's keys
    con = duckdb.connect()
    for ddl in q10_cat.to_ddl("duckdb"):
        con.execute(ddl)
    for ins in res.counterexample.inserts:
        con.execute(ins)
    assert not compare_results(con.execute(d1).fetchall(), con.execute(d2).fetchall())
    assert con.execute("SELECT COUNT(*) FROM store_sales").fetchone() == (2,)  # two sales of one customer
    # and verify() never proves it (it refutes it when its time budget reaches such a database)
    v = verify(Q10, wrong, q10_cat, "postgres", time_budget_s=8.0)
    assert v.verdict in ("NOT_EQUIVALENT", "UNKNOWN")


def test_exists_written_as_a_distinct_join_is_not_refuted(q10_cat: Catalog) -> None:
    right = Q10_CALCITE.format(semi=SEMI.format(distinct="DISTINCT "))
    assert verify(Q10, right, q10_cat, "postgres", time_budget_s=3.0).verdict != "NOT_EQUIVALENT"


# -- grouping keys, CTE joins ---------------------------------------------------------------------

GROUPED = ("SELECT i.i_category, i.i_manager_id, COUNT(*) FROM item AS i, sales AS s WHERE s.s_item_sk = i.i_item_sk "
           "AND i.i_category IN ('Books', 'Home', 'Home') GROUP BY {keys}")


def test_group_by_key_order_and_repeated_in_literals(cat: Catalog) -> None:
    q = GROUPED.format(keys="i.i_category, i.i_manager_id")
    same = GROUPED.format(keys="i.i_manager_id, i.i_category").replace(", 'Home', 'Home')", ", 'Home')")
    assert _canon(q, cat) == _canon(same, cat)


def test_rollup_key_order_is_not_a_set(cat: Catalog) -> None:
    # Calcite swapped DSB q27's ROLLUP (i_item_id, s_state): other subtotal rows (pool pairs 48-64)
    q = GROUPED.format(keys="ROLLUP (i.i_category, i.i_manager_id)")
    wrong = GROUPED.format(keys="ROLLUP (i.i_manager_id, i.i_category)")
    assert _canon(q, cat) != _canon(wrong, cat)
    assert verify(q, wrong, cat, "postgres", time_budget_s=2.0).verdict == "NOT_EQUIVALENT"


def test_in_over_an_expression_is_left_alone(cat: Catalog) -> None:
    # x IN (..) reads x once: only a column is written as the OR of equalities
    q = "SELECT i_item_sk FROM item WHERE i_manager_id + 1 IN (3, 4)"
    assert " IN " in _canon(q, cat)


def test_joins_inside_a_cte_are_ordered_too(cat: Catalog) -> None:
    # DISTINCT keeps the CTE from being merged into the main query
    q = ("WITH c AS (SELECT DISTINCT s.s_ticket, i.i_category FROM sales AS s JOIN item AS i "
         "ON s.s_item_sk = i.i_item_sk WHERE s.s_price > 10) SELECT c.i_category, COUNT(*) FROM c GROUP BY c.i_category")
    same = ("WITH c AS (SELECT DISTINCT s.s_ticket, i.i_category FROM item AS i JOIN sales AS s "
            "ON i.i_item_sk = s.s_item_sk AND s.s_price > 10) SELECT c.i_category, COUNT(*) FROM c GROUP BY c.i_category")
    wrong = same.replace("s.s_price > 10", "s.s_price > 11")
    assert _canon(q, cat) == _canon(same, cat)
    assert _canon(q, cat) != _canon(wrong, cat)
