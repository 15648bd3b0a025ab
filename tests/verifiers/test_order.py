"""ORDER BY: results are compared as lists only when both queries have a total order."""

from __future__ import annotations

import duckdb
import pytest
import sqlglot

from sqlsluice.databases import Catalog
from sqlsluice.verifiers import Verdict, compare_results, verify
from sqlsluice.verifiers.order import order_info

KEYED = "CREATE TABLE t (k INT PRIMARY KEY, a INT, b VARCHAR, u INT NOT NULL UNIQUE, n INT UNIQUE)"


def _replay(v: Verdict, ddl: list[str], q1: str, q2: str) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """Run the counterexample on a fresh DuckDB database with every constraint declared."""
    assert v.counterexample is not None
    con = duckdb.connect(":memory:")
    for d in ddl:
        con.execute(d)
    for ins in v.counterexample.inserts:
        con.execute(ins)  # also checks PK / UNIQUE / NOT NULL / FK constraints
    r1, r2 = con.execute(q1).fetchall(), con.execute(q2).fetchall()
    assert compare_results(r1, v.counterexample.q1_rows, ordered=True)
    assert compare_results(r2, v.counterexample.q2_rows, ordered=True)
    return r1, r2


@pytest.mark.parametrize(("q1", "q2"), [
    ("SELECT empno, ename FROM emp ORDER BY empno", "SELECT empno, ename FROM emp ORDER BY empno DESC"),
    ("SELECT deptno, COUNT(*) FROM emp GROUP BY deptno ORDER BY deptno",
     "SELECT deptno, COUNT(*) FROM emp GROUP BY deptno ORDER BY deptno DESC"),
    ("SELECT e.ename FROM emp e JOIN dept d ON e.deptno = d.deptno ORDER BY e.empno, d.deptno",
     "SELECT e.ename FROM emp e JOIN dept d ON e.deptno = d.deptno ORDER BY d.deptno, e.empno"),
])
def test_same_bag_different_total_order_refuted(emp_dept: Catalog, q1: str, q2: str) -> None:
    v = verify(q1, q2, emp_dept, time_budget_s=1.0)
    assert v.verdict == "NOT_EQUIVALENT" and v.method == "differential"
    assert v.evidence.tiers["order"].startswith("lists")
    r1, r2 = _replay(v, emp_dept.to_ddl("duckdb", foreign_keys=True), q1, q2)
    assert compare_results(r1, r2)  # the same bag ...
    assert not compare_results(r1, r2, ordered=True)  # ... in another order


def test_nulls_placement_compared_per_dialect() -> None:
    q1, q2 = "SELECT a FROM t ORDER BY a NULLS FIRST", "SELECT a FROM t ORDER BY a NULLS LAST"
    v = verify(q1, q2, KEYED, time_budget_s=1.0)
    assert v.verdict == "NOT_EQUIVALENT"
    r1, r2 = _replay(v, [KEYED], q1, q2)
    assert None in {r[0] for r in r1} and compare_results(r1, r2) and not compare_results(r1, r2, ordered=True)
    # DuckDB sorts NULLs last by default; PostgreSQL sorts them first for DESC
    assert verify("SELECT a FROM t ORDER BY a", q2, KEYED).verdict == "EQUIVALENT"
    assert verify("SELECT a FROM t ORDER BY a DESC", "SELECT a FROM t ORDER BY a DESC NULLS FIRST",
                  KEYED, "postgres").verdict == "EQUIVALENT"
    v = verify("SELECT a FROM t ORDER BY a DESC", "SELECT a FROM t ORDER BY a DESC NULLS LAST", KEYED, "postgres",
               time_budget_s=1.0)
    assert v.verdict == "NOT_EQUIVALENT" and v.counterexample is not None


@pytest.mark.parametrize(("q1", "q2", "method"), [
    # alias vs expression vs position: the same order, proved by z3 with the same ORDER BY signature
    ("SELECT sal * 2 AS x, empno FROM emp ORDER BY x, empno", "SELECT sal * 2, empno FROM emp ORDER BY sal * 2, 2",
     "smt"),
    ("SELECT e.ename FROM emp e ORDER BY e.empno", "SELECT ename FROM emp ORDER BY empno", "canonical"),
    ("SELECT empno, sal FROM emp WHERE sal > 1 ORDER BY empno", "SELECT empno, sal FROM emp WHERE 1 < sal ORDER BY 1",
     "canonical"),
])
def test_identical_total_order_written_differently(emp_dept: Catalog, q1: str, q2: str, method: str) -> None:
    v = verify(q1, q2, emp_dept, time_budget_s=1.0)
    assert v.evidence.tiers["order"].startswith("lists")
    assert (v.verdict, v.method) == ("EQUIVALENT", method)


def test_total_orders_with_keys_outside_output_are_not_proved_by_smt(emp_dept: Catalog) -> None:
    # both totally ordered by the key, which is not an output column: the SMT tier cannot show the
    # same order, so a pair that differs beyond canonical form stays unrefuted but unproved
    q1 = "SELECT ename FROM emp WHERE sal * 2 > 2 ORDER BY empno"
    v = verify(q1, "SELECT ename FROM emp WHERE sal > 1 ORDER BY empno", emp_dept, time_budget_s=0.5)
    assert v.evidence.tiers["order"].startswith("lists")
    assert v.verdict == "UNKNOWN" and "not an output column" in v.evidence.tiers["smt"]
    # the same pair without ORDER BY is proved (bag), and with the key in the output too (list)
    assert verify("SELECT ename FROM emp WHERE sal * 2 > 2", "SELECT ename FROM emp WHERE sal > 1",
                  emp_dept, time_budget_s=0.5).method == "smt"
    v = verify("SELECT empno, ename FROM emp WHERE sal * 2 > 2 ORDER BY empno",
               "SELECT empno, ename FROM emp WHERE sal > 1 ORDER BY 1", emp_dept, time_budget_s=0.5)
    assert (v.verdict, v.method) == ("EQUIVALENT", "smt")
    v = verify(q1, "SELECT ename FROM emp WHERE sal > 1 ORDER BY empno DESC", emp_dept, time_budget_s=1.0)
    assert v.verdict == "NOT_EQUIVALENT" and v.counterexample is not None


@pytest.mark.parametrize(("q1", "q2"), [
    # neither order is total (ties on deptno), but they are opposite orders
    ("SELECT ename, deptno FROM emp ORDER BY deptno", "SELECT ename, deptno FROM emp ORDER BY deptno DESC"),
    # only one side is total: still different orders
    ("SELECT empno, deptno FROM emp ORDER BY empno", "SELECT empno, deptno FROM emp ORDER BY deptno"),
    # one query promises an order, the other none
    ("SELECT empno, deptno FROM emp ORDER BY empno DESC", "SELECT empno, deptno FROM emp"),
])
def test_orders_are_compared_whenever_either_query_has_one(emp_dept: Catalog, q1: str, q2: str) -> None:
    """The same bag of rows in another order is not the same answer (the first round proved
    these by bag comparison)."""
    v = verify(q1, q2, emp_dept, time_budget_s=1.0)
    assert v.verdict != "EQUIVALENT", v.reason
    v = verify(q1, q1.replace("FROM emp", "FROM emp WHERE 1 = 1"), emp_dept, time_budget_s=1.0)
    assert v.verdict == "EQUIVALENT", v.reason  # the same order, written differently


def test_order_by_limit_keeps_existing_handling(emp_dept: Catalog) -> None:
    q = "SELECT empno FROM emp ORDER BY empno LIMIT 2"
    v = verify(q, "SELECT empno FROM emp ORDER BY empno DESC LIMIT 2", emp_dept, time_budget_s=1.0)
    assert v.verdict == "NOT_EQUIVALENT" and v.evidence.tiers["order"].startswith("bag")
    # a counterexample: other rows, or the same rows in another order (both queries sort, and each
    # order is determined on that database, so the client sees a different answer)
    cex = v.counterexample
    assert cex is not None and not compare_results(cex.q1_rows, cex.q2_rows, ordered=True)
    v = verify(q, "SELECT  empno  FROM emp  ORDER BY empno LIMIT 2", emp_dept)
    assert (v.verdict, v.method) == ("EQUIVALENT", "canonical")


@pytest.mark.parametrize(("sql", "total"), [
    ("SELECT a, b FROM t ORDER BY b, a", True),  # every output column
    ("SELECT a FROM t ORDER BY k", True),  # the primary key
    ("SELECT a FROM t ORDER BY u DESC", True),  # UNIQUE on a NOT NULL column
    ("SELECT a FROM t ORDER BY n", False),  # UNIQUE on a nullable column: NULLs tie
    ("SELECT a, COUNT(*) FROM t GROUP BY a ORDER BY a", True),  # every GROUP BY expression
    ("SELECT a, COUNT(*) AS c FROM t GROUP BY a ORDER BY c", False),
    ("SELECT a + 1 AS x, b FROM t ORDER BY x, 2", True),  # alias and position resolve to outputs
    ("SELECT x.a FROM t x JOIN t y ON x.a = y.a ORDER BY x.k, y.k", True),  # a key per table instance
    ("SELECT x.a FROM t x JOIN t y ON x.a = y.a ORDER BY x.k", False),
    ("SELECT x.a FROM t x LEFT JOIN t y ON x.a = y.a ORDER BY x.k, y.k", False),  # outer join
    ("WITH c AS (SELECT * FROM t) SELECT a FROM c ORDER BY k", False),  # not a base table
    ("SELECT a FROM (SELECT * FROM t) s ORDER BY s.k", False),
    ("SELECT a FROM t ORDER BY k LIMIT 3", False),  # LIMIT: existing order-dependent handling
    ("SELECT a, ROW_NUMBER() OVER (ORDER BY k) FROM t ORDER BY k", False),
    ("SELECT a FROM t ORDER BY a", True),
    ("SELECT a FROM t", False),
    ("SELECT a FROM t UNION ALL SELECT a FROM t ORDER BY a", False),  # set operations: not handled
    ("SELECT DISTINCT a FROM t ORDER BY a", True),
    ("SELECT DISTINCT a, b FROM t ORDER BY a", False),
])
def test_order_info_total_order_rule(sql: str, total: bool) -> None:
    cat = Catalog.from_ddl(KEYED, "duckdb")
    assert order_info(sqlglot.parse_one(sql, read="duckdb"), cat, "duckdb").total is total
