"""One test group per tier: canonical form, SMT proof, differential testing."""

from __future__ import annotations

import pytest
import sqlglot

from sqlsluice.databases import Catalog
from sqlsluice.verifiers import verify
from sqlsluice.verifiers.canonical import canonical_sql
from sqlsluice.verifiers.smt import prove


def _canon(sql: str, cat: Catalog) -> str:
    return canonical_sql(sqlglot.parse_one(sql, read="duckdb"), cat, "duckdb")


# -- canonical ---------------------------------------------------------------------------------

def test_canonical_aliases_join_order_and_commutativity(emp_dept: Catalog) -> None:
    a = "SELECT e.ename FROM emp e JOIN dept d ON e.deptno = d.deptno WHERE e.sal > 10"
    b = "SELECT x.ename FROM dept y, emp x WHERE 10 < x.sal AND y.deptno = x.deptno"
    assert _canon(a, emp_dept) == _canon(b, emp_dept)


def test_canonical_keeps_outer_join_apart(emp_dept: Catalog) -> None:
    a = "SELECT e.ename FROM emp e LEFT JOIN dept d ON e.deptno = d.deptno"
    b = "SELECT e.ename FROM emp e JOIN dept d ON e.deptno = d.deptno"
    assert _canon(a, emp_dept) != _canon(b, emp_dept)


def test_canonical_verdict(emp_dept: Catalog) -> None:
    v = verify("SELECT * FROM (SELECT * FROM emp WHERE sal > 5) t WHERE t.deptno = 10",
               "SELECT * FROM emp WHERE deptno = 10 AND sal > 5", emp_dept)
    assert (v.verdict, v.method) == ("EQUIVALENT", "canonical")


# -- SMT ------------------------------------------------------------------------------------------

PROVABLE = [
    ("SELECT DISTINCT deptno FROM emp", "SELECT deptno FROM emp GROUP BY deptno"),
    ("SELECT ename FROM emp WHERE comm > 10 OR NOT (comm > 10)", "SELECT ename FROM emp"),
    ("SELECT ename FROM emp UNION ALL SELECT name FROM dept", "SELECT name FROM dept UNION ALL SELECT ename FROM emp"),
    ("SELECT e.ename FROM emp e LEFT JOIN dept d ON e.deptno = d.deptno WHERE d.name = 'a'",
     "SELECT e.ename FROM emp e JOIN dept d ON e.deptno = d.deptno WHERE d.name = 'a'"),
    ("SELECT deptno, SUM(sal) AS s FROM emp WHERE sal + 1 > 3 GROUP BY deptno",
     "SELECT deptno, SUM(sal) FROM emp WHERE sal > 2 GROUP BY deptno"),
    ("SELECT CASE WHEN sal > 10 THEN 1 ELSE 0 END FROM emp", "SELECT CASE WHEN NOT sal > 10 THEN 0 ELSE 1 END FROM emp"),
    # filter over a grouped derived table = HAVING; HAVING on a grouping column = WHERE
    ("SELECT t.n, t.c FROM (SELECT name AS n, COUNT(*) AS c FROM dept GROUP BY name) t WHERE t.n = 'x'",
     "SELECT name, COUNT(*) FROM dept WHERE name = 'x' GROUP BY name"),
    # NOT NULL foreign key to a primary key: the join neither drops nor duplicates employees
    ("SELECT e.ename FROM emp e JOIN dept d ON e.deptno = d.deptno", "SELECT ename FROM emp"),
    # joins and filters distribute over UNION ALL; derived columns pruned and put in one order
    ("SELECT t.sal FROM (SELECT * FROM emp UNION ALL SELECT * FROM emp) t WHERE t.sal > 5",
     "SELECT sal FROM emp WHERE sal > 5 UNION ALL SELECT sal FROM emp WHERE 5 < sal"),
    ("SELECT ename, AVG(empno) FROM (SELECT empno, ename FROM emp UNION ALL SELECT empno, ename FROM emp) t GROUP BY ename",
     "SELECT ename, AVG(empno) FROM (SELECT ename, empno FROM emp UNION ALL SELECT ename, empno FROM emp) t GROUP BY ename"),
    # UNION = DISTINCT of UNION ALL, nested DISTINCTs collapse
    ("SELECT deptno FROM emp UNION SELECT deptno FROM dept",
     "SELECT t.deptno FROM (SELECT deptno FROM emp UNION ALL SELECT deptno FROM dept) t GROUP BY t.deptno"),
    # both always empty
    ("SELECT deptno FROM dept WHERE deptno = 7 AND deptno = 8", "SELECT deptno FROM emp WHERE FALSE"),
    # VALUES as a constant relation
    ("SELECT t.a + 1 FROM (VALUES (1), (2)) AS t(a) WHERE t.a > 1", "SELECT 3"),
    # EXISTS ignores the select list; a one-row-if-any derived table is an EXISTS filter
    ("SELECT empno FROM emp WHERE EXISTS (SELECT * FROM dept WHERE deptno < 20)",
     "SELECT e.empno FROM emp e, (SELECT TRUE AS i FROM dept d WHERE d.deptno < 20 GROUP BY TRUE) t"),
    # a WHERE conjunct IN / EXISTS is a join with the DISTINCT matching keys; a key makes DISTINCT void
    ("SELECT e.sal FROM emp e WHERE e.empno IN (SELECT d.deptno FROM dept d WHERE e.job = d.name)",
     "SELECT e.sal FROM emp e JOIN dept d ON e.job = d.name AND e.empno = d.deptno"),
    ("SELECT * FROM emp e WHERE EXISTS (SELECT * FROM emp m WHERE e.deptno = m.deptno)",
     "SELECT e.* FROM emp e JOIN (SELECT deptno, TRUE AS f FROM emp GROUP BY deptno) t ON e.deptno = t.deptno"),
    # a derived table on the NULL-padded side merges only when its outputs are NULL on padded rows
    ("SELECT e.ename, t.s FROM emp e LEFT JOIN (SELECT name, deptno * 2 < 11 AS s FROM dept WHERE deptno > 1) t "
     "ON e.job = t.name",
     "SELECT e.ename, d.deptno * 2 < 11 FROM emp e LEFT JOIN dept d ON e.job = d.name AND d.deptno > 1"),
    # string order (DuckDB compares VARCHAR bytewise)
    ("SELECT name FROM dept WHERE name > 'b' AND name > 'c'", "SELECT name FROM dept WHERE name > 'c'"),
]


@pytest.mark.parametrize(("q1", "q2"), PROVABLE)
def test_smt_proves(emp_dept: Catalog, q1: str, q2: str) -> None:
    r = prove(sqlglot.parse_one(q1), sqlglot.parse_one(q2), emp_dept, "duckdb", timeout_s=5)
    assert r.proved, r.reason


NOT_PROVABLE = [
    # MGR is nullable: three-valued logic makes the filter drop NULL rows
    ("SELECT ename FROM emp WHERE mgr > 10 OR NOT (mgr > 10)", "SELECT ename FROM emp"),
    # a scalar aggregate answers one row even on an empty input
    ("SELECT COUNT(*), 5 FROM emp WHERE 1 = 0", "SELECT COUNT(*), 6 FROM emp WHERE 1 = 0"),
    ("SELECT ename FROM emp UNION SELECT name FROM dept", "SELECT ename FROM emp UNION ALL SELECT name FROM dept"),
    ("SELECT deptno FROM emp", "SELECT DISTINCT deptno FROM emp"),
    ("SELECT e.ename FROM emp e LEFT JOIN dept d ON e.job = d.name",
     "SELECT e.ename FROM emp e JOIN dept d ON e.job = d.name"),
    ("SELECT e.ename FROM emp e, dept d", "SELECT e.ename FROM emp e"),
    ("SELECT deptno, SUM(sal) FROM emp GROUP BY deptno", "SELECT deptno, SUM(comm) FROM emp GROUP BY deptno"),
    ("SELECT deptno, COUNT(*) FROM emp GROUP BY deptno, job", "SELECT deptno, COUNT(*) FROM emp GROUP BY deptno"),
    # a join on a nullable column that is no foreign key can drop rows
    ("SELECT e.ename FROM emp e JOIN emp m ON e.mgr = m.empno", "SELECT ename FROM emp"),
    # GROUP BY over UNION ALL must not be pushed into the branches
    ("SELECT t.deptno, COUNT(*) FROM (SELECT deptno FROM emp UNION ALL SELECT deptno FROM emp) t GROUP BY t.deptno",
     "SELECT deptno, COUNT(*) FROM emp GROUP BY deptno UNION ALL SELECT deptno, COUNT(*) FROM emp GROUP BY deptno"),
    # without GROUP BY the derived table has one row per match: a join, not a filter
    ("SELECT empno FROM emp WHERE EXISTS (SELECT * FROM dept WHERE deptno < 20)",
     "SELECT e.empno FROM emp e, (SELECT TRUE AS i FROM dept d WHERE d.deptno < 20) t"),
    # sqlglot's merge_subqueries would turn t.i into TRUE: unmatched employees must get NULL
    ("SELECT t.i FROM emp e LEFT JOIN (SELECT name, TRUE AS i FROM dept) t ON e.job = t.name",
     "SELECT TRUE FROM emp e LEFT JOIN dept d ON e.job = d.name"),
    ("SELECT t.x FROM emp e LEFT JOIN (SELECT name, COALESCE(name, 'z') AS x FROM dept) t ON e.job = t.name",
     "SELECT COALESCE(d.name, 'z') FROM emp e LEFT JOIN dept d ON e.job = d.name"),
    # the join with a non-distinct subquery repeats rows
    ("SELECT * FROM emp e WHERE EXISTS (SELECT * FROM emp m WHERE e.deptno = m.deptno)",
     "SELECT e.* FROM emp e JOIN (SELECT deptno FROM emp) t ON e.deptno = t.deptno"),
    # under OR, or negated, IN is not a join
    ("SELECT ename FROM emp WHERE sal = 4 OR empno NOT IN (SELECT mgr FROM emp)",
     "SELECT e.ename FROM emp e JOIN (SELECT DISTINCT mgr FROM emp) t ON e.empno <> t.mgr OR e.sal = 4"),
    # a scalar aggregate answers a row even when the filter rejects everything
    ("SELECT COUNT(*) FROM emp WHERE 1 = 0", "SELECT deptno FROM emp WHERE 1 = 0"),
    ("SELECT COUNT(*) FROM emp HAVING COUNT(*) > 0 AND 1 = 0", "SELECT COUNT(*) FROM emp WHERE 1 = 0"),
]


@pytest.mark.parametrize(("q1", "q2"), NOT_PROVABLE)
def test_smt_does_not_prove_non_equivalent(emp_dept: Catalog, q1: str, q2: str) -> None:
    r = prove(sqlglot.parse_one(q1), sqlglot.parse_one(q2), emp_dept, "duckdb", timeout_s=5)
    assert not r.proved


def test_smt_says_outside_fragment(emp_dept: Catalog) -> None:
    r = prove(sqlglot.parse_one("SELECT ROW_NUMBER() OVER (ORDER BY sal) FROM emp"),
              sqlglot.parse_one("SELECT ROW_NUMBER() OVER (ORDER BY sal) FROM emp"), emp_dept, "duckdb")
    assert not r.proved and r.reason.startswith("outside fragment")


# -- differential -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("q1", "q2"), NOT_PROVABLE)
def test_differential_refutes_with_counterexample(emp_dept: Catalog, q1: str, q2: str) -> None:
    v = verify(q1, q2, emp_dept, time_budget_s=2.0)
    assert v.verdict == "NOT_EQUIVALENT" and v.method == "differential"
    assert v.counterexample is not None
    # the counterexample is real: replay it on a fresh DuckDB database
    import duckdb

    from sqlsluice.verifiers import compare_results

    con = duckdb.connect()
    for ddl in emp_dept.to_ddl("duckdb", foreign_keys=True):
        con.execute(ddl)
    for ins in v.counterexample.inserts:
        con.execute(ins)  # also checks PK / NOT NULL / FK constraints of the schema
    r1, r2 = con.execute(q1).fetchall(), con.execute(q2).fetchall()
    assert not compare_results(r1, r2)
    assert compare_results(r1, v.counterexample.q1_rows) and compare_results(r2, v.counterexample.q2_rows)


def test_foreign_key_join_is_not_refuted(emp_dept: Catalog) -> None:
    # EMP.DEPTNO is NOT NULL and references DEPT's key: every employee has exactly one department
    q1 = "SELECT e.ename FROM emp e JOIN dept d ON e.deptno = d.deptno"
    assert verify(q1, "SELECT ename FROM emp", emp_dept).verdict == "EQUIVALENT"
    q2 = "SELECT e.ename FROM emp e LEFT JOIN dept d ON e.deptno = d.deptno"
    assert verify(q1, q2, emp_dept, time_budget_s=0.5).verdict != "NOT_EQUIVALENT"
    # without the foreign key the join can drop employees
    cat = emp_dept.model_copy(deep=True)
    emp = cat.table("EMP")
    assert emp is not None
    emp.foreign_keys = []
    v = verify(q1, "SELECT ename FROM emp", cat)
    assert v.verdict == "NOT_EQUIVALENT"


def test_differential_shrinks(emp_dept: Catalog) -> None:
    v = verify("SELECT deptno FROM emp", "SELECT DISTINCT deptno FROM emp", emp_dept)
    assert v.counterexample is not None
    text = " ".join(v.counterexample.inserts)
    assert text.count("), (") == 1  # exactly two EMP rows: the smallest database with a duplicate


def test_not_in_with_nulls_is_refuted(emp_dept: Catalog) -> None:
    v = verify("SELECT ename FROM emp e WHERE NOT EXISTS (SELECT 1 FROM emp m WHERE m.mgr = e.empno)",
               "SELECT ename FROM emp e WHERE e.empno NOT IN (SELECT m.mgr FROM emp m)", emp_dept)
    assert v.verdict == "NOT_EQUIVALENT"


def test_unknown_carries_evidence(emp_dept: Catalog) -> None:
    q = "SELECT ename, ROW_NUMBER() OVER (PARTITION BY deptno ORDER BY empno) FROM emp"
    v = verify(q, q.replace("ename,", "ename ,"), emp_dept, time_budget_s=0.5)
    assert v.verdict in ("EQUIVALENT", "UNKNOWN")
    v2 = verify("SELECT ename, ROW_NUMBER() OVER (ORDER BY empno) FROM emp",
                "SELECT ename, ROW_NUMBER() OVER (ORDER BY empno) + 0 FROM emp", emp_dept, time_budget_s=0.5)
    assert v2.verdict == "UNKNOWN"
    assert v2.evidence.databases_tried > 0 and v2.evidence.max_rows_per_table > 0
    assert "smt" in v2.evidence.tiers
