"""Aggregate normal forms of the SMT tier (``smt_aggregates``): what they prove, and the
near misses (empty inputs, NULLs, duplicates, DISTINCT, float sums) they must leave alone.

Near misses are checked twice: the SMT tier finds no proof, and the full verifier (differential
testing on DuckDB) finds the counterexample."""

from __future__ import annotations

import pytest
import sqlglot

from sqlsluice.databases import Catalog
from sqlsluice.verifiers import verify
from sqlsluice.verifiers.smt import prove

PROVED = [
    # two-level aggregation over UNION ALL: SUM of SUM, SUM of COUNT, MIN of MIN, MAX of MAX (NULLs in mgr)
    ("SELECT t.ename, SUM(t.mgr), COUNT(t.mgr), COUNT(*), MIN(t.sal), MAX(t.mgr) "
     "FROM (SELECT * FROM emp UNION ALL SELECT * FROM emp WHERE sal > 10) t GROUP BY t.ename",
     "SELECT u.ename, SUM(u.s), SUM(u.c), SUM(u.n), MIN(u.lo), MAX(u.hi) FROM ("
     "SELECT ename, SUM(mgr) s, COUNT(mgr) c, COUNT(*) n, MIN(sal) lo, MAX(mgr) hi FROM emp GROUP BY ename UNION ALL "
     "SELECT ename, SUM(mgr), COUNT(mgr), COUNT(*), MIN(sal), MAX(mgr) FROM emp WHERE sal > 10 GROUP BY ename) u "
     "GROUP BY u.ename"),
    # no GROUP BY: scalar inner aggregates answer one row each, even for an empty table
    ("SELECT SUM(t.mgr), COUNT(*) FROM (SELECT mgr FROM emp UNION ALL SELECT mgr FROM emp) t",
     "SELECT SUM(u.s), SUM(u.c) FROM (SELECT SUM(mgr) s, COUNT(*) c FROM emp UNION ALL "
     "SELECT SUM(mgr), COUNT(*) FROM emp) u"),
    # a coarser outer grouping over one grouped block
    ("SELECT deptno, SUM(sal), MAX(mgr) FROM emp GROUP BY deptno",
     "SELECT t.deptno, SUM(t.s), MAX(t.m) FROM (SELECT deptno, job, SUM(sal) s, MAX(mgr) m FROM emp "
     "GROUP BY deptno, job) t GROUP BY t.deptno"),
    # same keys inside and out: SUM over one inner row is that row; SUM(DISTINCT key) is the key
    ("SELECT sal, SUM(comm), MIN(comm), SUM(DISTINCT sal) FROM emp GROUP BY sal",
     "SELECT t.sal, SUM(t.s), MIN(t.m), SUM(t.sal) FROM (SELECT sal, SUM(comm) s, MIN(comm) m FROM emp "
     "GROUP BY sal) t GROUP BY t.sal"),
    # DISTINCT of distinct branches
    ("SELECT t.deptno, t.job FROM (SELECT deptno, job FROM emp UNION ALL SELECT deptno, job FROM emp) t "
     "GROUP BY t.deptno, t.job",
     "SELECT t.deptno, t.job FROM (SELECT deptno, job FROM emp GROUP BY deptno, job UNION ALL "
     "SELECT deptno, job FROM emp GROUP BY deptno, job) t GROUP BY t.deptno, t.job"),
    # INTERSECT written as a count over UNION ALL of distinct branches
    ("SELECT deptno, job FROM emp WHERE sal > 5 INTERSECT SELECT deptno, job FROM emp WHERE comm > 5",
     "SELECT t.deptno, t.job FROM (SELECT deptno, job, COUNT(*) c FROM emp WHERE sal > 5 GROUP BY deptno, job "
     "UNION ALL SELECT deptno, job, COUNT(*) FROM emp WHERE comm > 5 GROUP BY deptno, job) t "
     "GROUP BY t.deptno, t.job HAVING COUNT(*) = 2"),
    # GROUP BY pushed below a join on a primary key: the join neither drops nor duplicates groups
    ("SELECT emp.deptno FROM emp JOIN dept ON emp.deptno = dept.deptno GROUP BY emp.deptno",
     "SELECT t.deptno FROM (SELECT deptno FROM emp GROUP BY deptno) t JOIN dept ON t.deptno = dept.deptno"),
    # aggregate below a join with a distinct (unique) other side
    ("SELECT t.name, SUM(emp.sal) AS s, COUNT(*) AS c FROM emp JOIN (SELECT name FROM dept GROUP BY name) t "
     "ON emp.job = t.name GROUP BY t.name",
     "SELECT t2.name, t1.s, t1.c FROM (SELECT job, SUM(sal) AS s, COUNT(*) AS c FROM emp GROUP BY job) t1 "
     "JOIN (SELECT name FROM dept GROUP BY name) t2 ON t1.job = t2.name"),
    # a filter on a grouping key inside holds on the rows outside
    ("SELECT 1 FROM (SELECT deptno, COUNT(*) FROM emp WHERE deptno > 7 GROUP BY deptno) t JOIN emp e "
     "ON t.deptno = e.deptno",
     "SELECT 1 FROM (SELECT deptno, COUNT(*) FROM emp WHERE deptno > 7 GROUP BY deptno) t "
     "JOIN (SELECT * FROM emp WHERE deptno > 7) e ON t.deptno = e.deptno"),
    # COALESCE(SUM(counts), 0) is a COUNT even where no inner group exists (empty table)
    ("SELECT COUNT(*) FROM emp",
     "SELECT COALESCE(SUM(t.c), 0) FROM (SELECT deptno, COUNT(*) c FROM emp GROUP BY deptno) t"),
    # grouped by a primary key: every aggregate sees one row
    ("SELECT empno, COUNT(mgr), SUM(sal), COUNT(*) FROM emp GROUP BY empno, deptno",
     "SELECT empno, CASE WHEN mgr IS NOT NULL THEN 1 ELSE 0 END, sal, 1 FROM emp"),
    # under GROUP BY without aggregates, DISTINCT inside LEFT JOINs does not matter
    ("SELECT t0.ename FROM (SELECT * FROM emp WHERE ename = 'A') t0 LEFT JOIN dept ON t0.job = dept.name "
     "GROUP BY t0.ename",
     "SELECT t5.ename FROM (SELECT ename, job FROM emp WHERE ename = 'A' GROUP BY ename, job) t5 LEFT JOIN "
     "(SELECT name FROM dept GROUP BY name) t6 ON t5.job = t6.name GROUP BY t5.ename"),
    # a LEFT JOIN on the other side's key keeps a duplicate-free block duplicate-free
    ("SELECT t0.job, dept.name FROM (SELECT * FROM emp WHERE ename = 'A') t0 LEFT JOIN dept ON t0.job = dept.name "
     "GROUP BY t0.job, dept.name",
     "SELECT * FROM (SELECT job FROM emp WHERE ename = 'A' GROUP BY job) t5 LEFT JOIN "
     "(SELECT name FROM dept GROUP BY name) t6 ON t5.job = t6.name"),
    # SUM over inner groups keyed by (outer keys, k) adds each value of k once: SUM(DISTINCT k)
    ("SELECT deptno, SUM(comm), MIN(comm), SUM(DISTINCT sal), COUNT(DISTINCT sal) FROM emp GROUP BY deptno",
     "SELECT t.deptno, SUM(t.s), MIN(t.m), SUM(t.sal), COUNT(t.sal) FROM (SELECT deptno, sal, SUM(comm) s, "
     "MIN(comm) m FROM emp GROUP BY deptno, sal) t GROUP BY t.deptno"),
    # BOOL_AND of BOOL_ANDs
    ("SELECT t.ename, BOOL_AND(t.b), BOOL_OR(t.b) FROM (SELECT ename, slacker b FROM emp UNION ALL "
     "SELECT ename, slacker FROM emp WHERE sal > 3) t GROUP BY t.ename",
     "SELECT u.ename, BOOL_AND(u.x), BOOL_OR(u.y) FROM (SELECT ename, BOOL_AND(slacker) x, BOOL_OR(slacker) y "
     "FROM emp GROUP BY ename UNION ALL SELECT ename, BOOL_AND(slacker), BOOL_OR(slacker) FROM emp WHERE sal > 3 "
     "GROUP BY ename) u GROUP BY u.ename"),
    # COUNT(DISTINCT ..) does not see the duplicates an unread LEFT JOIN adds
    ("SELECT d.deptno, COUNT(DISTINCT d.name) FROM dept d LEFT JOIN emp e ON e.deptno = d.deptno GROUP BY d.deptno",
     "SELECT deptno, COUNT(DISTINCT name) FROM dept GROUP BY deptno"),
    # DISTINCT over UNION ALL branches, some of them distinct already
    ("SELECT t.job, t.c FROM (SELECT job, deptno AS c FROM emp GROUP BY job, deptno UNION ALL "
     "SELECT job, deptno FROM emp GROUP BY job, deptno) t GROUP BY t.job, t.c",
     "SELECT t.job, t.deptno FROM (SELECT job, deptno FROM emp GROUP BY job, deptno UNION ALL "
     "SELECT job, deptno FROM emp) t GROUP BY t.job, t.deptno"),
]

# not equivalent in SQL: the normal forms must not apply (the hazard is named)
NEAR_MISSES = [
    # SUM of COUNTs over no inner row is NULL, COUNT(*) of an empty table is 0
    ("SELECT COUNT(*) FROM emp", "SELECT SUM(t.c) FROM (SELECT deptno, COUNT(*) c FROM emp GROUP BY deptno) t"),
    # DISTINCT aggregates do not decompose
    ("SELECT deptno, SUM(DISTINCT sal) FROM emp GROUP BY deptno",
     "SELECT t.deptno, SUM(t.s) FROM (SELECT deptno, job, SUM(DISTINCT sal) s FROM emp GROUP BY deptno, job) t "
     "GROUP BY t.deptno"),
    # COUNT of COUNTs counts groups
    ("SELECT deptno, COUNT(*) FROM emp GROUP BY deptno",
     "SELECT t.deptno, COUNT(t.c) FROM (SELECT deptno, job, COUNT(*) c FROM emp GROUP BY deptno, job) t "
     "GROUP BY t.deptno"),
    # MAX of MIN
    ("SELECT deptno, MAX(sal) FROM emp GROUP BY deptno",
     "SELECT t.deptno, MAX(t.m) FROM (SELECT deptno, job, MIN(sal) m FROM emp GROUP BY deptno, job) t GROUP BY t.deptno"),
    # SUM of a finer key counts each inner group once (duplicates lost)
    ("SELECT deptno, SUM(sal) FROM emp GROUP BY deptno",
     "SELECT t.deptno, SUM(t.sal) FROM (SELECT deptno, sal FROM emp GROUP BY deptno, sal) t GROUP BY t.deptno"),
    # SUM(k) of a grouping key is not k (it multiplies by the group size)
    ("SELECT sal, SUM(sal) FROM emp GROUP BY sal", "SELECT sal, sal FROM emp GROUP BY sal"),
    # HAVING COUNT(*) = 1 is not an INTERSECT of two branches
    ("SELECT deptno FROM emp WHERE sal > 5 INTERSECT SELECT deptno FROM emp WHERE comm > 5",
     "SELECT t.deptno FROM (SELECT deptno FROM emp WHERE sal > 5 GROUP BY deptno UNION ALL "
     "SELECT deptno FROM emp WHERE comm > 5 GROUP BY deptno) t GROUP BY t.deptno HAVING COUNT(*) = 1"),
    # branches with duplicates: COUNT(*) = 2 may come from one branch alone
    ("SELECT deptno FROM emp WHERE sal > 5 INTERSECT SELECT deptno FROM emp WHERE comm > 5",
     "SELECT t.deptno FROM (SELECT deptno FROM emp WHERE sal > 5 UNION ALL "
     "SELECT deptno FROM emp WHERE comm > 5) t GROUP BY t.deptno HAVING COUNT(*) = 2"),
    # a join on a non-key column duplicates the distinct rows
    ("SELECT deptno FROM emp GROUP BY deptno",
     "SELECT t.deptno FROM (SELECT deptno FROM emp GROUP BY deptno) t JOIN emp e ON t.deptno = e.deptno"),
    # an aggregate above the join counts the duplicates a DISTINCT derived table removed
    ("SELECT deptno, COUNT(*) FROM emp GROUP BY deptno",
     "SELECT t.d, COUNT(*) FROM (SELECT DISTINCT deptno d FROM emp) t GROUP BY t.d"),
    # aggregate below a join whose other side is not unique on the join key
    ("SELECT e0.job, COUNT(*) FROM emp e0 JOIN emp e ON e0.job = e.ename GROUP BY e0.job",
     "SELECT t.job, t.c FROM (SELECT job, COUNT(*) c FROM emp GROUP BY job) t JOIN emp e ON t.job = e.ename"),
    # a grouped outer block over a scalar aggregate groups the row an empty input still yields
    ("SELECT t.s FROM (SELECT SUM(sal) s FROM emp) t GROUP BY t.s", "SELECT SUM(sal) FROM emp GROUP BY deptno"),
    # COALESCE(.., 0) turns the NULL of an empty SUM into 0
    ("SELECT SUM(sal) FROM emp",
     "SELECT COALESCE(SUM(t.s), 0) FROM (SELECT deptno, SUM(sal) s FROM emp GROUP BY deptno) t"),
    # grouping columns without a key: groups hold several rows
    ("SELECT job, COUNT(*) FROM emp GROUP BY job, deptno", "SELECT job, 1 FROM emp"),
    # an unread LEFT JOIN may be dropped under DISTINCT, not under COUNT(*)
    ("SELECT e.deptno, COUNT(*) FROM emp e LEFT JOIN emp f ON e.deptno = f.deptno GROUP BY e.deptno",
     "SELECT deptno, COUNT(*) FROM emp GROUP BY deptno"),
    # SUM over inner groups with an extra key is not SUM(DISTINCT ..)
    ("SELECT deptno, SUM(DISTINCT sal) FROM emp GROUP BY deptno",
     "SELECT t.deptno, SUM(t.sal) FROM (SELECT deptno, sal, job FROM emp GROUP BY deptno, sal, job) t "
     "GROUP BY t.deptno"),
    # COUNT without DISTINCT sees the duplicates of a LEFT JOIN
    ("SELECT d.deptno, COUNT(d.name) FROM dept d LEFT JOIN emp e ON e.deptno = d.deptno GROUP BY d.deptno",
     "SELECT deptno, COUNT(name) FROM dept GROUP BY deptno"),
    # COUNT(*) over UNION ALL sees the duplicates the branches' GROUP BY removed
    ("SELECT t.job, COUNT(*) FROM (SELECT job FROM emp GROUP BY job UNION ALL SELECT job FROM emp) t GROUP BY t.job",
     "SELECT t.job, COUNT(*) FROM (SELECT job FROM emp UNION ALL SELECT job FROM emp) t GROUP BY t.job"),
    # a LEFT JOIN on a non-key column duplicates rows
    ("SELECT e.empno FROM emp e LEFT JOIN emp f ON e.deptno = f.deptno",
     "SELECT DISTINCT e.empno FROM emp e LEFT JOIN emp f ON e.deptno = f.deptno"),
]


def _prove(a: str, b: str, cat: Catalog) -> bool:
    return prove(sqlglot.parse_one(a, read="duckdb"), sqlglot.parse_one(b, read="duckdb"), cat, "duckdb",
                 timeout_s=10.0).proved


@pytest.mark.parametrize(("q1", "q2"), PROVED)
def test_aggregate_normal_forms_prove(q1: str, q2: str, emp_dept: Catalog) -> None:
    assert _prove(q1, q2, emp_dept)
    assert _prove(q2, q1, emp_dept)


@pytest.mark.parametrize(("q1", "q2"), NEAR_MISSES)
def test_aggregate_near_misses_not_proved_and_refuted(q1: str, q2: str, emp_dept: Catalog) -> None:
    assert not _prove(q1, q2, emp_dept)
    assert not _prove(q2, q1, emp_dept)
    v = verify(q1, q2, emp_dept, time_budget_s=20.0)
    assert v.verdict == "NOT_EQUIVALENT", (v.verdict, v.method)
    assert v.counterexample is not None


def test_float_sums_do_not_merge() -> None:
    """SUM over DOUBLE is not associative: SUM of partial sums may round differently."""
    ddl = "CREATE TABLE f (k INT, g INT, x DOUBLE)"
    cat = Catalog.from_ddl(ddl, "duckdb")
    q1 = "SELECT k, SUM(x) FROM f GROUP BY k"
    q2 = "SELECT t.k, SUM(t.s) FROM (SELECT k, g, SUM(x) s FROM f GROUP BY k, g) t GROUP BY t.k"
    assert not _prove(q1, q2, cat)
    # the same shape over an exact type is proved
    cat_int = Catalog.from_ddl(ddl.replace("DOUBLE", "BIGINT"), "duckdb")
    assert _prove(q1, q2, cat_int)


def test_verify_reports_the_smt_tier(emp_dept: Catalog) -> None:
    """The full verifier reports the SMT tier for a two-level aggregation over UNION ALL."""
    q1, q2 = PROVED[0]
    v = verify(q1, q2, emp_dept, time_budget_s=20.0)
    assert (v.verdict, v.method) == ("EQUIVALENT", "smt")
