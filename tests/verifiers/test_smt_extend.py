"""Fragment extensions of the proof tiers (``verifiers/smt_extend.py``): alias renaming, constant
and empty queries, FULL/RIGHT JOIN simplification, INTERSECT flattening, ORDER BY .. LIMIT/OFFSET.
Every proved pair also goes through the differential tier inside ``verify`` (a difference would
win); every non-equivalent pair must be left unproved and refuted on DuckDB with a counterexample."""

from __future__ import annotations

import pytest
import sqlglot

from sqlsluice.bench.verify import _typed_empty
from sqlsluice.databases import Catalog
from sqlsluice.verifiers import verify
from sqlsluice.verifiers.smt import prove
from sqlsluice.verifiers.smt_extend import (
    alpha_equivalent,
    constant_query,
    empty_query,
    extra_proof,
    rejects_null,
    simplify_outer_joins,
    top_form,
)

EQUIVALENT = [
    # alias renaming (window functions are outside the SMT tier; the canonical form renames aliases)
    ("canonical", "SELECT * FROM (SELECT e.ename, RANK() OVER (PARTITION BY e.deptno ORDER BY e.sal) AS r FROM emp AS e) AS t "
     "WHERE t.r < 2",
     "SELECT * FROM (SELECT x.ename, RANK() OVER (PARTITION BY x.deptno ORDER BY x.sal) AS r FROM emp AS x) AS u "
     "WHERE u.r < 2"),
    ("canonical", "SELECT d.deptno, d.name FROM dept AS d FULL JOIN (SELECT e.deptno FROM emp AS e GROUP BY e.deptno) AS t "
     "ON d.deptno = t.deptno",
     "SELECT d0.deptno, d0.name FROM dept AS d0 FULL JOIN (SELECT e0.deptno FROM emp AS e0 GROUP BY e0.deptno) AS t5 "
     "ON d0.deptno = t5.deptno"),
    # constant queries: VALUES only, and tables read only under provably empty parts
    ("constant", "SELECT * FROM (VALUES (30, 3)) AS t(a, b) EXCEPT SELECT * FROM (VALUES (40, 4)) AS t0(a, b)",
     "SELECT * FROM (VALUES (30, 3), (40, 4)) AS t(a, b) WHERE t.a < 35"),
    ("constant", "SELECT COUNT(*), SUM(e.empno) FROM emp AS e WHERE NULL = 1",
     "SELECT * FROM (VALUES (0, NULL)) AS t(a, b)"),
    ("constant", "SELECT * FROM (SELECT * FROM emp AS e WHERE FALSE) AS t INNER JOIN dept AS d ON t.deptno = d.deptno",
     "SELECT * FROM (SELECT * FROM emp AS e WHERE FALSE) AS t LEFT JOIN dept AS d ON t.deptno = d.deptno"),
    ("constant", "SELECT e.ename FROM emp AS e ORDER BY e.ename LIMIT 0",
     "SELECT d.name FROM dept AS d WHERE FALSE ORDER BY d.name"),
    # FULL JOIN with null-rejecting WHERE conjuncts -> RIGHT / LEFT / INNER
    ("smt", "SELECT 1 FROM dept AS d FULL JOIN emp AS e ON d.deptno = e.deptno WHERE e.sal > 100",
     "SELECT 1 FROM dept AS d0 RIGHT JOIN (SELECT * FROM emp AS e0 WHERE e0.sal > 100) AS t1 ON d0.deptno = t1.deptno"),
    ("smt", "SELECT 1 FROM dept AS d FULL JOIN emp AS e ON d.deptno = e.deptno WHERE d.name = 'Charlie'",
     "SELECT 1 FROM (SELECT * FROM dept AS d0 WHERE d0.name = 'Charlie') AS t1 LEFT JOIN emp AS e0 "
     "ON t1.deptno = e0.deptno"),
    ("smt", "SELECT d.name, e.ename FROM dept AS d FULL JOIN emp AS e ON d.deptno = e.deptno "
     "WHERE d.name = 'Charlie' AND e.sal + 1 > 100",
     "SELECT t1.name, t2.ename FROM (SELECT * FROM dept AS d0 WHERE d0.name = 'Charlie') AS t1 "
     "INNER JOIN (SELECT * FROM emp AS e0 WHERE e0.sal + 1 > 100) AS t2 ON t1.deptno = t2.deptno"),
    ("smt", "SELECT e.empno, b.job FROM emp AS e FULL JOIN bonus AS b ON e.ename = b.ename WHERE e.sal > 100",
     "SELECT e.empno, b.job FROM emp AS e LEFT JOIN bonus AS b ON e.ename = b.ename WHERE e.sal > 100"),
    # join distributes over UNION ALL; t.sal names the FIRST sal column of the derived table (DuckDB)
    ("smt", "SELECT e.sal FROM emp AS e, (SELECT * FROM emp AS a UNION ALL SELECT * FROM emp AS b) AS t",
     "SELECT t1.sal FROM (SELECT * FROM emp AS c, emp AS d UNION ALL SELECT * FROM emp AS f, emp AS g) AS t1"),
    # the first 10 of a UNION ALL are the first 10 of the union of each branch's first 10
    ("smt", "SELECT * FROM (SELECT d.name FROM dept AS d UNION ALL SELECT d0.name FROM dept AS d0) AS t1 "
     "ORDER BY t1.name LIMIT 10",
     "SELECT * FROM ((SELECT d1.name FROM dept AS d1 ORDER BY d1.name LIMIT 10) UNION ALL "
     "(SELECT d2.name FROM dept AS d2 ORDER BY d2.name LIMIT 12)) AS t10 ORDER BY t10.name LIMIT 10"),
    # a LEFT JOINed derived table with a non-strict output merges behind a NOT NULL pad guard
    ("smt", "SELECT COUNT(*), CASE WHEN e.sal < 11 THEN -1 * e.sal ELSE e.sal END FROM bonus AS b LEFT JOIN emp AS e "
     "ON b.ename = e.ename GROUP BY CASE WHEN e.sal < 11 THEN -1 * e.sal ELSE e.sal END",
     "SELECT COUNT(*), t3.x FROM (SELECT b0.ename FROM bonus AS b0) AS t2 LEFT JOIN (SELECT e0.ename, "
     "CASE WHEN e0.sal < 11 THEN -1 * e0.sal ELSE e0.sal END AS x FROM emp AS e0) AS t3 ON t2.ename = t3.ename "
     "GROUP BY t3.x"),
    # a row of a grouped derived table has a witness row: t1.deptno > 7 carries over to the join
    ("smt", "SELECT 1 FROM (SELECT e.deptno, COUNT(*) AS c FROM emp AS e WHERE e.deptno > 7 GROUP BY e.deptno) AS t1 "
     "INNER JOIN emp AS e0 ON t1.deptno = e0.deptno",
     "SELECT 1 FROM (SELECT x.deptno, COUNT(*) AS c FROM emp AS x WHERE x.deptno > 7 GROUP BY x.deptno) AS t5 "
     "INNER JOIN (SELECT * FROM emp AS y WHERE y.deptno > 7) AS t6 ON t5.deptno = t6.deptno"),
    # an outer join with a provably empty side is the other side with NULL columns
    ("smt", "SELECT * FROM (SELECT * FROM emp AS e WHERE FALSE) AS t0 RIGHT JOIN dept AS d ON t0.deptno = d.deptno",
     "SELECT CAST(NULL AS INTEGER) AS empno, CAST(NULL AS VARCHAR) AS ename, CAST(NULL AS VARCHAR) AS job, "
     "CAST(NULL AS INTEGER) AS mgr, CAST(NULL AS TIMESTAMP) AS hiredate, CAST(NULL AS INTEGER) AS sal, "
     "CAST(NULL AS INTEGER) AS comm, CAST(NULL AS INTEGER) AS deptno, CAST(NULL AS BOOLEAN) AS slacker, "
     "d0.deptno AS deptno0, d0.name FROM dept AS d0"),
    ("smt", "SELECT e.empno, t.name FROM emp AS e FULL JOIN (SELECT * FROM dept AS d WHERE 1 = 0) AS t "
     "ON e.deptno = t.deptno", "SELECT e.empno, NULL FROM emp AS e"),
    # nested INTERSECT flattens
    ("smt", "SELECT * FROM (SELECT * FROM emp AS a WHERE a.deptno = 10 INTERSECT SELECT * FROM emp AS b "
     "WHERE b.deptno = 20) AS t INTERSECT SELECT * FROM emp AS c WHERE c.deptno = 30",
     "SELECT * FROM emp AS x WHERE x.deptno = 10 INTERSECT SELECT * FROM emp AS y WHERE y.deptno = 20 "
     "INTERSECT SELECT * FROM emp AS z WHERE z.deptno = 30"),
    # a projection over ORDER BY .. OFFSET, keys unique (primary key), monotone CAST of the key
    # (the outer query sorts too: ORDER BY is compared as an order whenever either query has one)
    ("smt", "SELECT d.deptno, CAST(d.deptno AS DOUBLE) FROM dept AS d ORDER BY CAST(d.deptno AS DOUBLE) OFFSET 1",
     "SELECT t3.deptno, CAST(t3.deptno AS DOUBLE) FROM (SELECT * FROM dept AS d0 ORDER BY d0.deptno OFFSET 1) AS t3 "
     "ORDER BY 2"),
    ("smt", "SELECT e.empno, e.sal FROM emp AS e WHERE e.sal > 10 ORDER BY e.empno DESC LIMIT 3",
     "SELECT t.empno, t.sal FROM (SELECT * FROM emp AS x WHERE 10 < x.sal ORDER BY x.empno DESC LIMIT 3) AS t "
     "ORDER BY t.empno DESC"),
]

NOT_EQUIVALENT = [
    # aliases swapped between two instances: not a renaming
    ("SELECT a.ename, RANK() OVER (ORDER BY a.sal) FROM emp AS a, emp AS b WHERE a.empno = b.mgr",
     "SELECT b.ename, RANK() OVER (ORDER BY b.sal) FROM emp AS a, emp AS b WHERE a.empno = b.mgr"),
    # constant queries that differ
    ("SELECT * FROM (VALUES (30, 3)) AS t(a, b)", "SELECT * FROM (VALUES (30, 4)) AS t(a, b)"),
    ("SELECT * FROM (VALUES (1), (1)) AS t(a)", "SELECT DISTINCT * FROM (VALUES (1), (1)) AS t(a)"),
    ("SELECT COUNT(*) FROM emp AS e WHERE FALSE", "SELECT 1"),
    # a scalar aggregate over a table that may be empty or not is not constant
    ("SELECT COUNT(*) FROM emp AS e", "SELECT 0"),
    # RIGHT JOIN with an empty left side keeps the right rows
    ("SELECT d.deptno FROM (SELECT * FROM emp AS e WHERE FALSE) AS t RIGHT JOIN dept AS d ON t.deptno = d.deptno",
     "SELECT d.deptno FROM dept AS d WHERE FALSE"),
    # IS NULL and COALESCE do not reject padded rows: FULL JOIN stays (BONUS has no foreign key)
    ("SELECT e.empno, b.job FROM emp AS e FULL JOIN bonus AS b ON e.ename = b.ename WHERE e.sal IS NULL",
     "SELECT e.empno, b.job FROM emp AS e INNER JOIN bonus AS b ON e.ename = b.ename WHERE e.sal IS NULL"),
    ("SELECT e.empno, b.job FROM emp AS e FULL JOIN bonus AS b ON e.ename = b.ename WHERE COALESCE(e.sal, 200) > 100",
     "SELECT e.empno, b.job FROM emp AS e LEFT JOIN bonus AS b ON e.ename = b.ename WHERE COALESCE(e.sal, 200) > 100"),
    # the wrong side of a FULL JOIN
    ("SELECT e.empno, b.job FROM emp AS e FULL JOIN bonus AS b ON e.ename = b.ename WHERE e.sal > 100",
     "SELECT e.empno, b.job FROM emp AS e RIGHT JOIN bonus AS b ON e.ename = b.ename WHERE e.sal > 100"),
    # the second sal column of a derived table cannot be named: t.sal is the first one
    ("SELECT t1.sal FROM (SELECT * FROM emp AS c, emp AS d WHERE c.sal = 1 UNION ALL "
     "SELECT * FROM emp AS f, emp AS g WHERE f.sal = 1) AS t1",
     "SELECT d.sal FROM emp AS c, emp AS d WHERE c.sal = 1 UNION ALL SELECT g.sal FROM emp AS f, emp AS g WHERE f.sal = 1"),
    # COALESCE is not NULL on a padded row: the derived column is
    ("SELECT d.x FROM dept AS de LEFT JOIN (SELECT e.deptno, COALESCE(e.mgr, 0) AS x FROM emp AS e) AS d "
     "ON de.deptno = d.deptno",
     "SELECT COALESCE(e.mgr, 0) FROM dept AS de LEFT JOIN emp AS e ON de.deptno = e.deptno"),
    # the witness gives deptno > 7, not > 8
    ("SELECT 1 FROM (SELECT e.deptno, COUNT(*) AS c FROM emp AS e WHERE e.deptno > 7 GROUP BY e.deptno) AS t1 "
     "INNER JOIN emp AS e0 ON t1.deptno = e0.deptno",
     "SELECT 1 FROM (SELECT x.deptno, COUNT(*) AS c FROM emp AS x WHERE x.deptno > 7 GROUP BY x.deptno) AS t5 "
     "INNER JOIN (SELECT * FROM emp AS y WHERE y.deptno > 8) AS t6 ON t5.deptno = t6.deptno"),
    # a scalar aggregate answers without any input row: no witness (COUNT(*) may be 0)
    ("SELECT t.c FROM (SELECT COUNT(*) AS c FROM emp AS e WHERE e.sal > 10) AS t",
     "SELECT t.c FROM (SELECT COUNT(*) AS c FROM emp AS e WHERE e.sal > 10) AS t WHERE t.c > 0"),
    # an INNER join with an empty side is empty, not padded
    ("SELECT e.empno, t.name FROM emp AS e INNER JOIN (SELECT * FROM dept AS d WHERE FALSE) AS t "
     "ON e.deptno = t.deptno", "SELECT e.empno, NULL FROM emp AS e"),
    ("SELECT e.empno, t.name FROM emp AS e LEFT JOIN (SELECT * FROM dept AS d WHERE FALSE) AS t "
     "ON e.deptno = t.deptno", "SELECT e.empno, e.ename FROM emp AS e"),
    # INTERSECT ALL vs INTERSECT
    ("SELECT e.deptno FROM emp AS e INTERSECT ALL SELECT f.deptno FROM emp AS f",
     "SELECT * FROM (SELECT e.deptno FROM emp AS e INTERSECT SELECT f.deptno FROM emp AS f) AS t "
     "INTERSECT ALL SELECT g.deptno FROM emp AS g"),
    # LIMIT/OFFSET: different offsets, different directions
    ("SELECT d.deptno FROM dept AS d ORDER BY d.deptno OFFSET 1",
     "SELECT t.deptno FROM (SELECT * FROM dept AS d0 ORDER BY d0.deptno OFFSET 2) AS t"),
    ("SELECT d.deptno FROM dept AS d ORDER BY d.deptno LIMIT 1",
     "SELECT t.deptno FROM (SELECT * FROM dept AS d0 ORDER BY d0.deptno DESC LIMIT 1) AS t"),
    # a branch keeps fewer rows than the outer LIMIT, or sorts the other way
    ("SELECT * FROM (SELECT d.name FROM dept AS d UNION ALL SELECT e.ename FROM emp AS e) AS t1 "
     "ORDER BY t1.name LIMIT 3",
     "SELECT * FROM ((SELECT d1.name FROM dept AS d1 ORDER BY d1.name LIMIT 1) UNION ALL "
     "(SELECT e2.ename FROM emp AS e2 ORDER BY e2.ename LIMIT 3)) AS t10 ORDER BY t10.name LIMIT 3"),
    ("SELECT * FROM (SELECT d.name FROM dept AS d UNION ALL SELECT d0.name FROM dept AS d0) AS t1 "
     "ORDER BY t1.name LIMIT 2",
     "SELECT * FROM ((SELECT d1.name FROM dept AS d1 ORDER BY d1.name DESC LIMIT 2) UNION ALL "
     "(SELECT d2.name FROM dept AS d2 ORDER BY d2.name LIMIT 2)) AS t10 ORDER BY t10.name LIMIT 2"),
    # a non-monotone key (negation) is a different order
    ("SELECT d.name FROM dept AS d ORDER BY d.deptno LIMIT 1",
     "SELECT t.name FROM (SELECT * FROM dept AS d0 ORDER BY -d0.deptno LIMIT 1) AS t"),
]


@pytest.mark.parametrize(("method", "q1", "q2"), EQUIVALENT)
def test_extension_proves(emp_dept: Catalog, method: str, q1: str, q2: str) -> None:
    v = verify(q1, q2, emp_dept, time_budget_s=6.0)
    # the region tier proves a pair through its differing regions with the same SMT model
    got = "smt" if v.method == "region" and method == "smt" else v.method
    assert (v.verdict, got) == ("EQUIVALENT", method), v.reason


# the same rows, but only one query promises an order (or they sort differently): never proved
ORDER_NOT_PROVED = [
    ("SELECT d.deptno, CAST(d.deptno AS DOUBLE) FROM dept AS d ORDER BY CAST(d.deptno AS DOUBLE) OFFSET 1",
     "SELECT t3.deptno, CAST(t3.deptno AS DOUBLE) FROM (SELECT * FROM dept AS d0 ORDER BY d0.deptno OFFSET 1) AS t3"),
    ("SELECT e.ename, e.sal FROM emp AS e WHERE e.sal > 10 ORDER BY e.empno DESC LIMIT 3",
     "SELECT t.ename, t.sal FROM (SELECT * FROM emp AS x WHERE 10 < x.sal ORDER BY x.empno DESC LIMIT 3) AS t"),
    ("SELECT e.ename FROM emp AS e ORDER BY e.sal", "SELECT e.ename FROM emp AS e ORDER BY e.sal DESC"),
    ("SELECT e.ename, e.sal FROM emp AS e ORDER BY 2", "SELECT e.ename, e.sal FROM emp AS e ORDER BY 2 DESC"),
    ("SELECT e.ename FROM emp AS e ORDER BY e.sal", "SELECT e.ename FROM emp AS e"),
]


@pytest.mark.parametrize(("q1", "q2"), ORDER_NOT_PROVED)
def test_orders_are_compared_not_bags(emp_dept: Catalog, q1: str, q2: str) -> None:
    v = verify(q1, q2, emp_dept, time_budget_s=2.0)
    assert v.verdict != "EQUIVALENT", v.reason


@pytest.mark.parametrize(("q1", "q2"), NOT_EQUIVALENT)
def test_extension_refutes(emp_dept: Catalog, q1: str, q2: str) -> None:
    v = verify(q1, q2, emp_dept, time_budget_s=6.0)
    assert v.verdict == "NOT_EQUIVALENT", v.reason
    assert v.counterexample is not None


@pytest.mark.parametrize(("q1", "q2"), NOT_EQUIVALENT)
def test_no_tier_proves_a_non_equivalent_pair(emp_dept: Catalog, q1: str, q2: str) -> None:
    """The proof tiers on their own (``verify`` runs a differential pass first, which could hide a
    wrong proof)."""
    e1, e2 = _p(q1), _p(q2)
    assert not prove(e1, e2, emp_dept, "duckdb", timeout_s=5.0).proved
    assert extra_proof(e1, e2, e1.sql("duckdb"), e2.sql("duckdb"), emp_dept) is None


def _p(sql: str) -> sqlglot.exp.Expression:
    return sqlglot.parse_one(sql, read="duckdb")


def test_alpha_requires_aliases_and_a_bijection() -> None:
    assert alpha_equivalent(_p("SELECT a.x FROM t AS a JOIN u AS b ON a.x = b.y"),
                            _p("SELECT p.x FROM t AS p JOIN u AS q ON p.x = q.y"))
    # two aliases merged into one name on one side: not a one-to-one renaming
    assert not alpha_equivalent(_p("SELECT a.x FROM t AS a JOIN t AS b ON a.x = b.x"),
                                _p("SELECT a.x FROM t AS a JOIN t AS a2 ON a2.x = a2.x"))
    # an unaliased table: its name is the qualifier, no renaming is checked
    assert not alpha_equivalent(_p("SELECT t.x FROM t"), _p("SELECT t.x FROM t"))


def test_empty_and_constant_facts() -> None:
    assert empty_query(_p("SELECT a FROM t WHERE 1 = NULL"))
    assert empty_query(_p("SELECT a FROM t WHERE x > 1 AND FALSE"))
    assert empty_query(_p("SELECT a FROM t FETCH NEXT 0 ROWS ONLY"))
    assert empty_query(_p("SELECT t.a FROM (SELECT * FROM t WHERE FALSE) AS t CROSS JOIN u"))
    assert empty_query(_p("SELECT a, COUNT(*) FROM t WHERE FALSE GROUP BY a"))
    assert not empty_query(_p("SELECT COUNT(*) FROM t WHERE FALSE"))  # one row
    assert not empty_query(_p("SELECT a FROM t WHERE x > 1 OR FALSE"))
    assert not empty_query(_p("SELECT u.a FROM (SELECT * FROM t WHERE FALSE) AS s FULL JOIN u ON s.a = u.a"))
    assert constant_query(_p("SELECT COUNT(*) FROM t WHERE FALSE"))
    assert constant_query(_p("SELECT 1 + 2 AS x"))
    assert not constant_query(_p("SELECT random()"))
    assert not constant_query(_p("SELECT * FROM (VALUES (1), (2)) AS v(a) LIMIT 1"))  # which row is not fixed
    assert not constant_query(_p("SELECT COUNT(*), (SELECT MAX(a) FROM t) FROM u WHERE FALSE"))
    assert not constant_query(_p("SELECT ROW_NUMBER() OVER () FROM (VALUES (1), (2)) AS v(a)"))


def test_outer_join_simplification_is_conservative() -> None:
    assert rejects_null(_p("SELECT 1 WHERE b.x + 1 > 2").args["where"].this, {"b"})
    assert rejects_null(_p("SELECT 1 WHERE b.x IS NOT NULL").args["where"].this, {"b"})
    assert not rejects_null(_p("SELECT 1 WHERE b.x IS NULL").args["where"].this, {"b"})
    assert not rejects_null(_p("SELECT 1 WHERE b.x > 1 OR a.y > 1").args["where"].this, {"b"})
    assert not rejects_null(_p("SELECT 1 WHERE COALESCE(b.x, 1) > 0").args["where"].this, {"b"})
    # a FULL JOIN followed by another FULL JOIN is left alone
    q = _p("SELECT 1 FROM a FULL JOIN b ON a.k = b.k FULL JOIN c ON b.k = c.k WHERE b.x > 1")
    sides = [(j.args.get("side") or "") for j in simplify_outer_joins(q).args["joins"]]
    assert [s.upper() for s in sides] == ["FULL", "LEFT"]  # the last one: its padded-left rows have b NULL
    q = _p("SELECT 1 FROM a FULL JOIN b ON a.k = b.k WHERE b.x > 1 AND a.y = 2")
    assert not simplify_outer_joins(q).args["joins"][0].args.get("side")


def test_top_form_needs_a_plain_projection(emp_dept: Catalog) -> None:
    assert top_form(_p("SELECT d.name FROM dept AS d ORDER BY d.deptno LIMIT 2"), emp_dept).total
    assert not top_form(_p("SELECT e.ename FROM emp AS e ORDER BY e.sal LIMIT 2"), emp_dept).total
    # a filter above the LIMIT does not commute with it
    assert top_form(_p("SELECT t.name FROM (SELECT * FROM dept AS d ORDER BY d.deptno LIMIT 2) AS t "
                       "WHERE t.deptno > 1"), emp_dept) is None
    # ORDER BY an output position: not an expression of the input
    assert top_form(_p("SELECT d.name FROM dept AS d ORDER BY 1 LIMIT 2"), emp_dept) is None


def test_typed_empty_values(emp_dept: Catalog) -> None:
    q = _typed_empty("SELECT SUM(t.EMPNO) FROM (VALUES) AS t GROUP BY t.DEPTNO", emp_dept)
    assert q == ("SELECT SUM(t.EMPNO) FROM (SELECT CAST(NULL AS INT) AS EMPNO, CAST(NULL AS INT) AS DEPTNO "
                 "WHERE FALSE) AS t GROUP BY t.DEPTNO")
    # a * would need the relation's full row type: left as it is
    assert _typed_empty("SELECT * FROM (VALUES) AS t0 RIGHT JOIN DEPT AS d ON t0.DEPTNO = d.DEPTNO",
                        emp_dept).startswith("SELECT * FROM (VALUES)")
