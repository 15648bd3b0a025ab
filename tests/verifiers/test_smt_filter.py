"""FILTER aggregates and scalar aggregate subqueries (``verifiers/smt_filter.py``): the
shapes the two FILTER-aggregate rules produce are proved, and near misses are never proved
(FILTER moved into WHERE under GROUP BY, a dropped predicate, COUNT and SUM mixed up, ``p`` vs
``NOT p`` with NULLs, HAVING, COUNT vs SUM on no rows).  Every pair is also run on DuckDB and
PostgreSQL over small instances with NULLs, duplicates and an empty table: the proved pairs
agree on all of them, and each near miss differs on at least one."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import duckdb
import psycopg
import pytest
import sqlglot

from sqlsluice.verifiers import verify
from sqlsluice.verifiers.smt_filter import one_row_limit

DDL = """
CREATE TABLE r (k INT PRIMARY KEY, a INT, g VARCHAR, p BOOLEAN);
CREATE TABLE s (k INT PRIMARY KEY, rk INT, x INT, y INT, g VARCHAR, q BOOLEAN);
"""

PROVED = [
    # scalar_subqueries_to_filtered_aggregate's shape: subqueries -> one FILTER scan, cross joined
    ("SELECT r.k, (SELECT COUNT(*) FROM s WHERE s.q) AS c, (SELECT SUM(s.x) FROM s WHERE NOT s.q) AS t, "
     "(SELECT MIN(s.y) FROM s) AS m FROM r WHERE r.p",
     "SELECT r.k, f.c, f.t, f.m FROM r, (SELECT COUNT(*) FILTER (WHERE s.q) AS c, "
     "SUM(s.x) FILTER (WHERE NOT s.q) AS t, MIN(s.y) AS m FROM s) AS f WHERE r.p"),
    # in WHERE and under CASE, the same subquery twice
    ("SELECT r.k FROM r WHERE r.a > (SELECT AVG(s.x) FROM s WHERE s.y > 2) "
     "AND CASE WHEN (SELECT COUNT(*) FROM s WHERE s.q) > 1 THEN r.a ELSE (SELECT AVG(s.x) FROM s WHERE s.y > 2) END > 0",
     "SELECT r.k FROM r, (SELECT AVG(s.x) FILTER (WHERE s.y > 2) AS v, COUNT(*) FILTER (WHERE s.q) AS n FROM s) AS f "
     "WHERE r.a > f.v AND CASE WHEN f.n > 1 THEN r.a ELSE f.v END > 0"),
    # derived_aggregates_to_filtered_aggregate's shape: common conjuncts in WHERE, the rest in FILTER
    ("SELECT * FROM (SELECT COUNT(*) AS c1, SUM(s.x) AS t1 FROM s WHERE s.g = 'a' AND s.q) AS b1, "
     "(SELECT COUNT(DISTINCT s.y) AS c2, MAX(s.x) AS m2 FROM s WHERE s.g = 'a' AND NOT s.q) AS b2",
     "SELECT * FROM (SELECT COUNT(*) FILTER (WHERE s.q) AS c1, SUM(s.x) FILTER (WHERE s.q) AS t1, "
     "COUNT(DISTINCT s.y) FILTER (WHERE NOT s.q) AS c2, MAX(s.x) FILTER (WHERE NOT s.q) AS m2 "
     "FROM s WHERE s.g = 'a' AND (s.q OR NOT s.q)) AS f"),
    # a join in FROM, expressions over the aggregates, LIMIT on the one row (TPC-DS q28)
    ("SELECT b1.c1 + b2.c2 AS n, b2.a2 FROM (SELECT COUNT(s.x) AS c1 FROM s, r WHERE s.rk = r.k AND s.y > 1) AS b1, "
     "(SELECT COUNT(*) AS c2, AVG(s.x) AS a2 FROM s, r WHERE s.rk = r.k AND r.p) AS b2 LIMIT 100",
     "SELECT f.c1 + f.c2 AS n, f.a2 FROM (SELECT COUNT(s.x) FILTER (WHERE s.y > 1) AS c1, "
     "COUNT(*) FILTER (WHERE r.p) AS c2, AVG(s.x) FILTER (WHERE r.p) AS a2 "
     "FROM s, r WHERE s.rk = r.k AND (s.y > 1 OR r.p)) AS f LIMIT 100"),
    # FILTER on a top-level scalar aggregate is its WHERE (COUNT stays COUNT: 0 on no rows)
    ("SELECT COUNT(*) FILTER (WHERE s.q) AS c FROM s", "SELECT COUNT(*) AS c FROM s WHERE s.q"),
    ("SELECT COUNT(DISTINCT s.y) FILTER (WHERE s.x > 0) AS c, SUM(s.x) AS t FROM s",
     "SELECT d1.c, d2.t FROM (SELECT COUNT(DISTINCT s.y) AS c FROM s WHERE s.x > 0) AS d1, "
     "(SELECT SUM(s.x) AS t FROM s) AS d2"),
    # one predicate written as a disjunction of conjunctions and factored: paired by a z3 check
    ("SELECT (SELECT COUNT(*) FROM s WHERE (s.x > 1 AND s.y > 1) OR (s.x > 1 AND s.q)) AS c, "
     "(SELECT MAX(s.y) FROM s WHERE s.g = 'a') AS m",
     "SELECT COUNT(*) FILTER (WHERE s.x > 1 AND (s.y > 1 OR s.q)) AS c, MAX(s.y) FILTER (WHERE s.g = 'a') AS m "
     "FROM s WHERE (s.x > 1 AND (s.y > 1 OR s.q)) OR s.g = 'a'"),
    # LIMIT n >= 1 on one row is no limit
    ("SELECT COUNT(*) AS c FROM s WHERE s.q LIMIT 1", "SELECT COUNT(*) FILTER (WHERE s.q) AS c FROM s"),
]

NOT_PROVED = [
    # FILTER moved into WHERE under GROUP BY: a group without q rows disappears (COUNT 0 -> no row)
    ("SELECT s.g, COUNT(*) FILTER (WHERE s.q) AS c FROM s GROUP BY s.g",
     "SELECT s.g, COUNT(*) AS c FROM s WHERE s.q GROUP BY s.g"),
    # a predicate dropped
    ("SELECT (SELECT COUNT(*) FROM s WHERE s.q) AS c, (SELECT SUM(s.x) FROM s WHERE s.y > 1) AS t",
     "SELECT COUNT(*) FILTER (WHERE s.q) AS c, SUM(s.x) AS t FROM s"),
    # COUNT and SUM mixed up
    ("SELECT (SELECT COUNT(s.x) FROM s WHERE s.q) AS c, (SELECT SUM(s.x) FROM s WHERE s.q) AS t",
     "SELECT SUM(s.x) FILTER (WHERE s.q) AS c, COUNT(s.x) FILTER (WHERE s.q) AS t FROM s"),
    # NOT q keeps no row where q is NULL; q IS NOT TRUE keeps them
    ("SELECT (SELECT COUNT(*) FROM s WHERE NOT s.q) AS c",
     "SELECT COUNT(*) FILTER (WHERE s.q IS NOT TRUE) AS c FROM s"),
    # complement via COUNT(*) - COUNT(*) FILTER (q): off by the rows where q is NULL
    ("SELECT COUNT(*) FILTER (WHERE NOT s.q) AS c FROM s",
     "SELECT COUNT(*) - COUNT(*) FILTER (WHERE s.q) AS c FROM s"),
    # HAVING: the FILTER form answers a row with 0, the WHERE form none
    ("SELECT COUNT(*) FILTER (WHERE s.q) AS c FROM s HAVING COUNT(*) > 0",
     "SELECT COUNT(*) AS c FROM s WHERE s.q HAVING COUNT(*) > 0"),
    # COUNT is 0 on no rows, SUM(1) is NULL
    ("SELECT r.k, (SELECT COUNT(*) FROM s WHERE s.q) AS c FROM r",
     "SELECT r.k, f.c FROM r, (SELECT SUM(1) FILTER (WHERE s.q) AS c FROM s) AS f"),
    # the same atoms, another predicate: (x AND y) OR q is not (x OR q) AND y
    ("SELECT (SELECT COUNT(*) FROM s WHERE (s.x > 1 AND s.y > 1) OR s.q) AS c, (SELECT MIN(s.y) FROM s) AS m",
     "SELECT COUNT(*) FILTER (WHERE (s.x > 1 OR s.q) AND s.y > 1) AS c, MIN(s.y) AS m FROM s"),
    # the added WHERE disjunction does not cover the FILTER: rows with 0 < x <= 5 and y <= 1 lost
    ("SELECT (SELECT COUNT(*) FROM s WHERE s.x > 0) AS c, (SELECT SUM(s.x) FROM s WHERE s.y > 1) AS t",
     "SELECT COUNT(*) FILTER (WHERE s.x > 0) AS c, SUM(s.x) FILTER (WHERE s.y > 1) AS t "
     "FROM s WHERE s.y > 1 OR s.x > 5"),
    # a grouped derived table is not one row
    ("SELECT r.k, (SELECT COUNT(*) FROM s WHERE s.q) AS c FROM r",
     "SELECT r.k, f.c FROM r, (SELECT COUNT(*) AS c FROM s WHERE s.q GROUP BY s.g) AS f"),
]

# LIMIT is dropped only on a query of exactly one row
LIMIT_NOT_DROPPED = [
    ("SELECT s.k FROM s LIMIT 1", "SELECT s.k FROM s"),
    ("SELECT f.c FROM (SELECT COUNT(*) AS c FROM s) AS f WHERE f.c > 1 LIMIT 1",
     "SELECT f.c FROM (SELECT COUNT(*) AS c FROM s) AS f WHERE f.c > 1"),
    ("SELECT a.c FROM (SELECT COUNT(*) AS c FROM s) AS a, (SELECT s.k AS c FROM s) AS b LIMIT 1",
     "SELECT a.c FROM (SELECT COUNT(*) AS c FROM s) AS a, (SELECT s.k AS c FROM s) AS b"),
]

# instances: NULLs in every nullable column, duplicates, a group without q rows, an empty s
INSTANCES: list[dict[str, list[tuple[Any, ...]]]] = [
    {"r": [(1, 5, "a", True), (2, None, "b", None), (3, 1, "a", False), (4, 7, None, True)],
     "s": [(1, 1, 3, 2, "a", True), (2, 1, None, 2, "a", None), (3, 2, 4, 5, "b", False),
           (4, 4, 4, None, "a", False), (5, 3, -1, 3, "c", None), (6, 1, 2, 2, "a", True),
           (7, 2, 0, 0, "b", True)]},
    {"r": [(1, 5, "a", True), (2, 3, "b", True)], "s": []},
    {"r": [(1, 0, "a", None)], "s": [(1, 1, 1, 1, "a", None), (2, 1, 2, 1, "a", None)]},
]


@pytest.mark.parametrize(("q1", "q2"), PROVED)
def test_filter_shapes_are_proved(q1: str, q2: str) -> None:
    v = verify(q1, q2, DDL, time_budget_s=6.0)
    assert (v.verdict, v.method) == ("EQUIVALENT", "smt"), v.reason


@pytest.mark.parametrize(("q1", "q2"), NOT_PROVED)
def test_near_misses_are_not_proved(q1: str, q2: str) -> None:
    v = verify(q1, q2, DDL, time_budget_s=3.0)
    assert v.verdict == "NOT_EQUIVALENT", v.reason


@pytest.mark.parametrize(("q1", "q2"), LIMIT_NOT_DROPPED)
def test_limit_is_kept_unless_one_row(q1: str, q2: str) -> None:
    assert one_row_limit(sqlglot.parse_one(q1)).args.get("limit") is not None
    assert verify(q1, q2, DDL, time_budget_s=2.0).verdict != "EQUIVALENT"


def test_tpcds_filter_rewrites_are_proved() -> None:
    """The rewrites the two rules make of TPC-DS q9 (scalar subqueries) and q28 (derived tables,
    LIMIT 100) are proved by the SMT tier (a budget, not a timed assertion)."""
    from sqlsluice.bench.pool_proofs import tpcds_catalog
    from sqlsluice.databases.tpcds import tpcds_queries
    from sqlsluice.rewriters.rules import apply_rules
    from sqlsluice.verifiers.smt import prove

    cat, queries = tpcds_catalog(), tpcds_queries()
    for n, rule in ((9, "scalar_subqueries_to_filtered_aggregate"), (28, "derived_aggregates_to_filtered_aggregate")):
        applied = apply_rules(queries[n], [rule], cat, "postgres")
        assert applied.applied == [rule]
        r = prove(sqlglot.parse_one(queries[n], dialect="postgres"), sqlglot.parse_one(applied.sql, dialect="postgres"),
                  cat, "postgres", timeout_s=120)
        assert r.proved, (n, r.reason)


def _norm(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    def one(v: Any) -> Any:
        if isinstance(v, float | Decimal):
            return round(float(v), 6)
        return v
    return sorted((tuple(one(v) for v in r) for r in rows), key=repr)


def _run_duckdb(inst: dict[str, list[tuple[Any, ...]]], sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect()
    try:
        for stmt in DDL.strip().split(";"):
            if stmt.strip():
                con.execute(stmt)
        for t, rows in inst.items():
            for row in rows:
                con.execute(f"INSERT INTO {t} VALUES ({', '.join('?' for _ in row)})", list(row))
        return _norm(con.execute(sql).fetchall())
    finally:
        con.close()


def _run_pg(url: str, inst: dict[str, list[tuple[Any, ...]]], sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as con:
        con.execute("DROP TABLE IF EXISTS r, s")
        con.execute(DDL)
        for t, rows in inst.items():
            for row in rows:
                con.execute(f"INSERT INTO {t} VALUES ({', '.join('%s' for _ in row)})", row)
        return _norm(list(con.execute(sql).fetchall()))


def test_proved_pairs_agree_and_near_misses_differ_on_duckdb_and_postgres(pg_db: str) -> None:
    for engine in ("duckdb", "postgres"):
        def run(inst: dict[str, list[tuple[Any, ...]]], sql: str, engine: str = engine) -> list[tuple[Any, ...]]:
            return _run_duckdb(inst, sql) if engine == "duckdb" else _run_pg(pg_db, inst, sql)

        for q1, q2 in PROVED:
            for inst in INSTANCES:
                assert run(inst, q1) == run(inst, q2), (engine, q1, q2, inst)
        for q1, q2 in NOT_PROVED:
            assert any(run(inst, q1) != run(inst, q2) for inst in INSTANCES), (engine, q1, q2)
