"""The mutation property: no mutant that some database tells apart is ever proved EQUIVALENT."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import sqlglot

from sqlsluice.bench.verify import load_spes, mutation_suite
from sqlsluice.databases import Catalog
from sqlsluice.verifiers import verify
from sqlsluice.verifiers.mutations import MUTATORS, mutants


def test_each_operator_changes_the_query(emp_dept: Catalog) -> None:
    q = sqlglot.parse_one(
        "SELECT DISTINCT e.deptno, SUM(e.sal) FROM emp e JOIN dept d ON e.deptno = d.deptno AND d.name = 'x' "
        "WHERE e.sal > 10 AND NOT EXISTS (SELECT 1 FROM emp m WHERE m.mgr = e.empno) "
        "AND e.job IN (SELECT job FROM bonus) GROUP BY e.deptno UNION SELECT 1, 2")
    kinds = {k for k, _ in mutants(q, "duckdb", random.Random(0))}
    assert kinds == set(MUTATORS)


HAND_MUTANTS = [
    # (original, mutant): each a real semantic change
    ("SELECT ename FROM emp WHERE sal > 1000", "SELECT ename FROM emp WHERE sal >= 1000"),
    ("SELECT ename FROM emp WHERE sal > 1000 AND deptno = 10", "SELECT ename FROM emp WHERE deptno = 10"),
    ("SELECT e.ename FROM emp e JOIN dept d ON e.deptno = d.deptno AND d.name = 'A'",
     "SELECT e.ename FROM emp e LEFT JOIN dept d ON e.deptno = d.deptno AND d.name = 'A'"),
    ("SELECT job FROM emp", "SELECT DISTINCT job FROM emp"),
    ("SELECT deptno, SUM(sal) FROM emp GROUP BY deptno", "SELECT deptno, MAX(sal) FROM emp GROUP BY deptno"),
    ("SELECT job FROM emp UNION ALL SELECT job FROM bonus", "SELECT job FROM emp UNION SELECT job FROM bonus"),
    ("SELECT ename FROM emp e WHERE NOT EXISTS (SELECT 1 FROM emp m WHERE m.mgr = e.empno)",
     "SELECT ename FROM emp e WHERE e.empno NOT IN (SELECT m.mgr FROM emp m)"),
    ("SELECT COUNT(mgr) FROM emp", "SELECT COUNT(*) FROM emp"),
]


@pytest.mark.parametrize(("q1", "q2"), HAND_MUTANTS)
def test_hand_mutants_refuted(emp_dept: Catalog, q1: str, q2: str) -> None:
    v = verify(q1, q2, emp_dept, time_budget_s=2.0)
    assert v.verdict == "NOT_EQUIVALENT" and v.counterexample is not None


def test_no_sampled_mutant_proved_when_a_database_tells_them_apart(shared_data: Path) -> None:
    pairs = load_spes(shared_data)[:60]
    checked = refuted = 0
    for mid, _kind, q1, q2, cat in mutation_suite(pairs, sample=16, seed=3):
        v = verify(q1, q2, cat, time_budget_s=0.4)
        checked += 1
        if v.verdict == "NOT_EQUIVALENT":
            refuted += 1
        elif v.verdict == "EQUIVALENT":
            oracle = verify(q1, q2, cat, time_budget_s=1.0, seed=99, proofs=False)
            # the oracle re-runs differential testing with another seed: it must find nothing
            assert oracle.verdict != "NOT_EQUIVALENT", (mid, q2)
    assert checked == 16 and refuted > 0
