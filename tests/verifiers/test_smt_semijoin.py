"""The semi-join normal form of the SMT tier (``verifiers/smt_semijoin.py``): IN/EXISTS as canonical
EXISTS, LEFT JOIN markers over keyed derived tables, keyed self-join elimination.  Every pair the
tier proves is also run on DuckDB over random databases (differential tier) and must not differ;
every non-equivalent pair must be left unproved and be refuted with a counterexample."""

from __future__ import annotations

import pytest
import sqlglot

from sqlsluice.databases import Catalog
from sqlsluice.verifiers import verify
from sqlsluice.verifiers.smt import prove
from sqlsluice.verifiers.smt_semijoin import canonical_exists, output_keys

EQUIVALENT = [
    # IN under OR -> LEFT JOIN to the grouped keys with a TRUE marker (Calcite's ExpandFilterIn)
    ("SELECT e.empno FROM emp e WHERE e.deptno IN (SELECT e0.deptno FROM emp e0 WHERE e0.empno < 20) OR e.sal < 100",
     "SELECT e1.empno FROM emp e1 LEFT JOIN (SELECT e2.deptno, TRUE AS i FROM emp e2 WHERE e2.empno < 20 "
     "GROUP BY e2.deptno, TRUE) t ON e1.deptno = t.deptno WHERE t.i IS NOT NULL OR e1.sal < 100"),
    # row-valued IN; the derived table is keyed by EMPNO (EMP's primary key), not grouped
    ("SELECT e.empno FROM emp e WHERE (e.empno, e.deptno) IN (SELECT e0.empno, e0.deptno FROM emp e0 "
     "WHERE e0.empno < 20) OR e.sal < 100",
     "SELECT e1.empno FROM emp e1 LEFT JOIN (SELECT e2.empno, e2.deptno, TRUE AS i FROM emp e2 WHERE e2.empno < 20) t "
     "ON e1.empno = t.empno AND e1.deptno = t.deptno WHERE t.i IS NOT NULL OR e1.sal < 100"),
    # uncorrelated EXISTS in the select list -> LEFT JOIN ON TRUE to a one-row marker table
    ("SELECT e.empno, EXISTS (SELECT * FROM emp e0 WHERE e0.empno < 20) AS d FROM emp e",
     "SELECT e1.empno, CASE WHEN t.i IS NOT NULL THEN TRUE ELSE FALSE END AS d FROM emp e1 "
     "LEFT JOIN (SELECT TRUE AS i FROM emp e2 WHERE e2.empno < 20 GROUP BY TRUE) t ON TRUE"),
    # NOT IN over NOT NULL columns is NOT EXISTS, whatever the select list of the EXISTS
    ("SELECT e.sal FROM emp e WHERE e.sal = 4 OR e.empno NOT IN (SELECT d.deptno FROM dept d)",
     "SELECT e0.sal FROM emp e0 LEFT JOIN (SELECT d0.deptno, TRUE AS i FROM dept d0) t ON e0.empno = t.deptno "
     "WHERE e0.sal = 4 OR NOT CASE WHEN t.i IS NOT NULL THEN TRUE ELSE FALSE END"),
    ("SELECT e.ename FROM emp e WHERE NOT EXISTS (SELECT 1 FROM emp e1 WHERE e1.job = e.job AND e1.sal = 34)",
     "SELECT e2.ename FROM emp e2 WHERE NOT EXISTS (SELECT e3.empno, e3.ename FROM emp e3 "
     "WHERE 34 = e3.sal AND e2.job = e3.job)"),
    # NOT EXISTS -> LEFT JOIN to the grouped correlation keys, IS NULL marker
    ("SELECT e.ename FROM emp e WHERE NOT EXISTS (SELECT * FROM emp e1 WHERE e1.job = e.job AND e1.sal = 34)",
     "SELECT e2.ename FROM emp e2 LEFT JOIN (SELECT e4.job, TRUE AS f FROM emp e4 WHERE e4.sal = 34 GROUP BY e4.job) t "
     "ON e2.job = t.job WHERE t.f IS NULL"),
    # IN on a nullable column keeps NULL for a NULL MGR: both sides say so
    ("SELECT e.empno, e.mgr IN (SELECT d.deptno FROM dept d) AS x FROM emp e",
     "SELECT e.empno, e.mgr IN (SELECT d1.deptno FROM dept d1 WHERE TRUE) AS x FROM emp e"),
    # Calcite's NOT IN expansion: a COUNT(*)/COUNT(y) LEFT JOIN and a marker LEFT JOIN (NOT NULL x, y)
    ("SELECT e.sal FROM emp e WHERE e.empno NOT IN (SELECT d.deptno FROM dept d WHERE e.job = d.name)",
     "SELECT e0.sal FROM emp e0 LEFT JOIN (SELECT d0.name, COUNT(*) AS c, COUNT(d0.deptno) AS ck FROM dept d0 "
     "GROUP BY d0.name) t4 ON e0.job = t4.name LEFT JOIN (SELECT d1.deptno, TRUE AS i, d1.name FROM dept d1) t5 "
     "ON e0.empno = t5.deptno AND e0.job = t5.name "
     "WHERE NOT CASE WHEN t4.c = 0 THEN FALSE WHEN t5.i IS NOT NULL THEN TRUE WHEN t4.ck < t4.c THEN TRUE "
     "ELSE FALSE END"),
    # an unaliased subquery reusing the outer table name reads its own rows (no correlation)
    ("SELECT emp.ename FROM emp WHERE emp.sal = 1 OR emp.sal IN (SELECT emp.comm FROM emp)",
     "SELECT e.ename FROM emp e WHERE e.sal = 1 OR EXISTS (SELECT 1 FROM emp e0 WHERE e0.comm = e.sal)"),
    # an inner-joined derived table with at most one row (GROUP BY a constant) is an EXISTS filter
    ("SELECT e.ename FROM emp e WHERE e.sal < 100 AND EXISTS (SELECT * FROM emp e0 WHERE e0.empno < 20)",
     "SELECT e1.ename FROM emp e1, (SELECT t3.i FROM (SELECT * FROM emp WHERE empno < 20) AS t2, "
     "(VALUES (TRUE)) AS t3 (i) GROUP BY t3.i) AS t5 WHERE e1.sal < 100"),
    # EXISTS over the same table correlated by its primary key is a test of the outer row itself
    ("SELECT e.ename FROM emp e WHERE e.sal = 1 OR e.sal > 10",
     "SELECT e.ename FROM emp e WHERE e.sal = 1 OR EXISTS (SELECT 1 FROM emp e0 WHERE e0.empno = e.empno "
     "AND e0.sal > 10)"),
    ("SELECT e.empno, (e.mgr > 10) IS TRUE AS x FROM emp e",
     "SELECT e.empno, EXISTS (SELECT 1 FROM emp e0 WHERE e0.empno = e.empno AND e0.mgr > 10) AS x FROM emp e"),
    # every row meets its own group of an unfiltered GROUP BY over the same NOT NULL column
    ("SELECT e.ename FROM emp e JOIN (SELECT deptno FROM emp GROUP BY deptno) t ON e.deptno = t.deptno",
     "SELECT e.ename FROM emp e"),
    # an uncorrelated EXISTS over the outer row's own table holds when the outer row satisfies it
    ("SELECT e.ename FROM emp e WHERE EXISTS (SELECT 1 FROM emp x WHERE x.deptno = x.deptno)",
     "SELECT e.ename FROM emp e"),
    # LEFT JOIN ONs need agree only on left rows the WHERE keeps (Calcite's PullConstantIntoJoin)
    ("SELECT t.empno, t.ename, d.name FROM (SELECT * FROM emp WHERE empno = 10) t LEFT JOIN dept d "
     "ON t.empno = d.deptno",
     "SELECT t0.empno, t0.ename, t1.name FROM (SELECT * FROM emp WHERE empno = 10) t0 "
     "LEFT JOIN (SELECT * FROM dept WHERE deptno = 10) t1 ON TRUE"),
    # self-join on the primary key is the table itself
    ("SELECT e.ename FROM emp e, dept d WHERE e.deptno = d.deptno",
     "SELECT e.ename FROM emp e JOIN dept d ON e.deptno = d.deptno JOIN emp e2 ON e.empno = e2.empno"),
]

NOT_EQUIVALENT = [
    # the derived table is not duplicate-free on DEPTNO: the LEFT JOIN repeats rows
    ("SELECT d.name FROM dept d WHERE d.deptno IN (SELECT e.deptno FROM emp e) OR d.name = 'x'",
     "SELECT d.name FROM dept d LEFT JOIN (SELECT e.deptno, TRUE AS i FROM emp e) t ON d.deptno = t.deptno "
     "WHERE t.i IS NOT NULL OR d.name = 'x'"),
    # NOT IN on a nullable column is not NOT EXISTS (NULL MGR: NOT IN is NULL, NOT EXISTS TRUE)
    ("SELECT e.ename FROM emp e WHERE e.mgr NOT IN (SELECT e0.empno FROM emp e0)",
     "SELECT e.ename FROM emp e WHERE NOT EXISTS (SELECT 1 FROM emp e0 WHERE e0.empno = e.mgr)"),
    # NOT IN over a subquery whose column may be NULL
    ("SELECT d.name FROM dept d WHERE d.deptno NOT IN (SELECT e.mgr FROM emp e)",
     "SELECT d.name FROM dept d WHERE NOT EXISTS (SELECT 1 FROM emp e WHERE e.mgr = d.deptno)"),
    # IN in the select list over a nullable column is not the TRUE/FALSE marker
    ("SELECT e.empno, e.mgr IN (SELECT e0.empno FROM emp e0) AS x FROM emp e",
     "SELECT e.empno, CASE WHEN t.i IS NOT NULL THEN TRUE ELSE FALSE END AS x FROM emp e "
     "LEFT JOIN (SELECT e0.empno, TRUE AS i FROM emp e0) t ON e.mgr = t.empno"),
    # the same NOT IN expansion over a nullable MGR: a NULL MGR with a matching group differs
    ("SELECT e.sal FROM emp e WHERE e.mgr NOT IN (SELECT d.deptno FROM dept d WHERE e.job = d.name)",
     "SELECT e0.sal FROM emp e0 LEFT JOIN (SELECT d0.name, COUNT(*) AS c, COUNT(d0.deptno) AS ck FROM dept d0 "
     "GROUP BY d0.name) t4 ON e0.job = t4.name LEFT JOIN (SELECT d1.deptno, TRUE AS i, d1.name FROM dept d1) t5 "
     "ON e0.mgr = t5.deptno AND e0.job = t5.name "
     "WHERE NOT CASE WHEN t4.c = 0 THEN FALSE WHEN t5.i IS NOT NULL THEN TRUE WHEN t4.ck < t4.c THEN TRUE "
     "ELSE FALSE END"),
    # the subquery's own EMP shadows the outer one: it is not correlated
    ("SELECT emp.ename FROM emp WHERE emp.sal = 1 OR emp.sal IN (SELECT emp.comm FROM emp)",
     "SELECT e.ename FROM emp e WHERE e.sal = 1 OR e.sal = e.comm"),
    # grouped by a column, the derived table has many rows: not an EXISTS filter
    ("SELECT e.ename FROM emp e WHERE e.sal < 100 AND EXISTS (SELECT * FROM emp e0 WHERE e0.empno < 20)",
     "SELECT e1.ename FROM emp e1, (SELECT e2.deptno FROM emp e2 WHERE e2.empno < 20 GROUP BY e2.deptno) AS t5 "
     "WHERE e1.sal < 100"),
    # correlated by a non-key column, the EXISTS may see another row
    ("SELECT e.ename FROM emp e WHERE e.sal = 1 OR e.sal > 10",
     "SELECT e.ename FROM emp e WHERE e.sal = 1 OR EXISTS (SELECT 1 FROM emp e0 WHERE e0.deptno = e.deptno "
     "AND e0.sal > 10)"),
    # EXISTS is never NULL; a comparison with a NULL MGR is
    ("SELECT e.empno, e.mgr > 10 AS x FROM emp e",
     "SELECT e.empno, EXISTS (SELECT 1 FROM emp e0 WHERE e0.empno = e.empno AND e0.mgr > 10) AS x FROM emp e"),
    # a filtered GROUP BY may lack the row's group; a nullable MGR meets no group
    ("SELECT e.ename FROM emp e JOIN (SELECT deptno FROM emp WHERE sal > 5 GROUP BY deptno) t "
     "ON e.deptno = t.deptno", "SELECT e.ename FROM emp e"),
    ("SELECT e.ename FROM emp e JOIN (SELECT mgr FROM emp GROUP BY mgr) t ON e.mgr = t.mgr",
     "SELECT e.ename FROM emp e"),
    # another row may be the witness; a NULL MGR is not equal to itself
    ("SELECT e.ename FROM emp e WHERE EXISTS (SELECT 1 FROM emp x WHERE x.sal > 5)",
     "SELECT e.ename FROM emp e WHERE e.sal > 5"),
    ("SELECT e.ename FROM emp e WHERE EXISTS (SELECT 1 FROM emp x WHERE x.mgr = x.mgr)", "SELECT e.ename FROM emp e"),
    # the WHERE does not pin EMPNO to 10: the ONs differ on kept rows
    ("SELECT t.empno, t.ename, d.name FROM (SELECT * FROM emp WHERE empno >= 10) t LEFT JOIN dept d "
     "ON t.empno = d.deptno",
     "SELECT t0.empno, t0.ename, t1.name FROM (SELECT * FROM emp WHERE empno >= 10) t0 "
     "LEFT JOIN (SELECT * FROM dept WHERE deptno = 10) t1 ON TRUE"),
    # a self-join on a non-key column multiplies rows
    ("SELECT e.ename FROM emp e", "SELECT e.ename FROM emp e JOIN emp e2 ON e.deptno = e2.deptno"),
    # the marker reads a different filter
    ("SELECT e.empno FROM emp e WHERE e.deptno IN (SELECT e0.deptno FROM emp e0 WHERE e0.empno < 20) OR e.sal < 100",
     "SELECT e1.empno FROM emp e1 LEFT JOIN (SELECT e2.deptno, TRUE AS i FROM emp e2 WHERE e2.empno < 30 "
     "GROUP BY e2.deptno, TRUE) t ON e1.deptno = t.deptno WHERE t.i IS NOT NULL OR e1.sal < 100"),
]


def _tree(sql: str) -> sqlglot.exp.Expression:
    return sqlglot.parse_one(sql, read="duckdb")


@pytest.mark.parametrize(("q1", "q2"), EQUIVALENT)
def test_semijoin_forms_are_proved_and_not_refuted(emp_dept: Catalog, q1: str, q2: str) -> None:
    r = prove(_tree(q1), _tree(q2), emp_dept, "duckdb", timeout_s=10.0)
    assert r.proved, r.reason
    # no proof tiers: random databases on DuckDB find no difference
    v = verify(q1, q2, emp_dept, time_budget_s=1.0, seed=7, proofs=False)
    assert v.verdict == "UNKNOWN", v.counterexample


@pytest.mark.parametrize(("q1", "q2"), NOT_EQUIVALENT)
def test_semijoin_hazards_are_not_proved(emp_dept: Catalog, q1: str, q2: str) -> None:
    r = prove(_tree(q1), _tree(q2), emp_dept, "duckdb", timeout_s=10.0)
    assert not r.proved
    v = verify(q1, q2, emp_dept, time_budget_s=10.0)
    assert v.verdict == "NOT_EQUIVALENT"
    assert v.counterexample is not None


def test_canonical_exists_ignores_aliases_select_list_and_conjunct_order(emp_dept: Catalog) -> None:
    from sqlsluice.verifiers.smt import Builder, normalize

    def body(sql: str) -> object:
        return normalize(Builder(emp_dept).query(_tree(sql)), emp_dept)

    a = canonical_exists(body("SELECT a.empno FROM emp a WHERE a.sal = 3 AND a.deptno = o.deptno"), [])
    b = canonical_exists(body("SELECT b.ename, b.job FROM emp b WHERE o.deptno = b.deptno AND b.sal = 3"), [])
    assert a is not None and b is not None
    assert a.sql() == b.sql()
    c = canonical_exists(body("SELECT b.ename FROM emp b WHERE o.deptno = b.deptno AND b.sal = 4"), [])
    assert c is not None and c.sql() != a.sql()
    # a scalar aggregate always has a row: not an EXISTS body
    assert canonical_exists(body("SELECT COUNT(*) FROM emp b WHERE b.sal = 3"), []) is None


def test_output_keys(emp_dept: Catalog) -> None:
    from sqlsluice.verifiers.smt import Builder, normalize

    def keys(sql: str, names: list[str]) -> list[set[str]]:
        return output_keys(normalize(Builder(emp_dept).query(_tree(sql)), emp_dept), names, emp_dept)

    assert keys("SELECT e.empno, e.deptno, TRUE FROM emp e WHERE e.sal > 1", ["a", "b", "i"]) == [{"a"}]
    assert keys("SELECT e.deptno, TRUE FROM emp e GROUP BY e.deptno, TRUE", ["d", "i"]) == [{"d"}]
    assert keys("SELECT TRUE FROM emp e GROUP BY TRUE", ["i"]) == [set()]
    assert keys("SELECT e.deptno, TRUE FROM emp e", ["d", "i"]) == []
