"""Row-count tests read as EXISTS by the verifier (verifiers/count_exists.py): the pairs that are
the same predicate are proved, and each wrong variant next to them is not (refuted where the
differential tier finds a database that tells them apart)."""

from __future__ import annotations

import duckdb
import pytest
import sqlglot

from sqlsluice.verifiers.api import verify
from sqlsluice.verifiers.count_exists import count_tests_as_exists

SCHEMA = "CREATE TABLE t (a INT, k INT); CREATE TABLE u (k INT, v INT)"
EX = "EXISTS (SELECT 1 FROM u WHERE u.k = t.k)"

PROVED = [
    ("SELECT a FROM t WHERE (SELECT COUNT(*) FROM u WHERE u.k = t.k) > 0", f"SELECT a FROM t WHERE {EX}"),
    ("SELECT a FROM t WHERE (SELECT COUNT(*) FROM u WHERE u.k = t.k) >= 1", f"SELECT a FROM t WHERE {EX}"),
    ("SELECT a FROM t WHERE 0 < (SELECT COUNT(1) FROM u WHERE u.k = t.k)", f"SELECT a FROM t WHERE {EX}"),
    ("SELECT a FROM t WHERE (SELECT COUNT(*) FROM u WHERE u.k = t.k) <> 0", f"SELECT a FROM t WHERE {EX}"),
    ("SELECT a FROM t WHERE (SELECT COUNT(*) FROM u WHERE u.k = t.k) = 0", f"SELECT a FROM t WHERE NOT {EX}"),
    ("SELECT a FROM t WHERE a > 3 OR (SELECT COUNT(*) FROM u WHERE u.k = t.k) > 0",
     f"SELECT a FROM t WHERE a > 3 OR {EX}"),
    ("SELECT a, (SELECT COUNT(*) FROM u WHERE u.k = t.k) > 0 AS has FROM t", f"SELECT a, {EX} AS has FROM t"),
]

WRONG = [
    # COUNT(col) skips NULLs: a match whose v is NULL counts 0
    ("SELECT a FROM t WHERE (SELECT COUNT(u.v) FROM u WHERE u.k = t.k) > 0", f"SELECT a FROM t WHERE {EX}"),
    # > 1 is "at least two"
    ("SELECT a FROM t WHERE (SELECT COUNT(*) FROM u WHERE u.k = t.k) > 1", f"SELECT a FROM t WHERE {EX}"),
    # = 0 is NOT EXISTS
    ("SELECT a FROM t WHERE (SELECT COUNT(*) FROM u WHERE u.k = t.k) = 0", f"SELECT a FROM t WHERE {EX}"),
    # another correlation
    ("SELECT a FROM t WHERE (SELECT COUNT(*) FROM u WHERE u.k = t.k) > 0",
     "SELECT a FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.k = t.a)"),
    # GROUP BY: no group means no row (NULL), several groups an error
    ("SELECT a FROM t WHERE (SELECT COUNT(*) FROM u WHERE u.k = t.k GROUP BY u.v) > 0", f"SELECT a FROM t WHERE {EX}"),
    # LIMIT 0: the scalar subquery is NULL
    ("SELECT a FROM t WHERE (SELECT COUNT(*) FROM u WHERE u.k = t.k LIMIT 0) >= 0", f"SELECT a FROM t WHERE {EX}"),
]


@pytest.mark.parametrize(("q1", "q2"), PROVED)
def test_count_test_proved(q1: str, q2: str) -> None:
    v = verify(q1, q2, SCHEMA, time_budget_s=3)
    assert v.verdict == "EQUIVALENT", v.reason


@pytest.mark.parametrize(("q1", "q2"), WRONG)
def test_wrong_variant_not_proved(q1: str, q2: str) -> None:
    v = verify(q1, q2, SCHEMA, time_budget_s=3)
    assert v.verdict != "EQUIVALENT", v.reason


def test_refused_forms_left_alone() -> None:
    for sql in ["SELECT a FROM t WHERE (SELECT COUNT(DISTINCT u.v) FROM u WHERE u.k = t.k) > 0",
                "SELECT a FROM t WHERE (SELECT COUNT(*) FROM u WHERE u.k = t.k HAVING COUNT(*) > 2) > 0",
                "SELECT a FROM t WHERE (SELECT COUNT(*) FROM u WHERE u.k = t.k OFFSET 1) > 0",
                "SELECT a FROM t WHERE (SELECT COUNT(*) FROM u WHERE u.k = t.k) > 0.5",
                "SELECT a FROM t WHERE (SELECT COUNT(*) FROM u WHERE u.k = t.k) > '0'"]:
        e = sqlglot.parse_one(sql, read="duckdb")
        assert count_tests_as_exists(e) is e, sql


def test_identity_on_corner_data() -> None:
    """The identity itself, run: empty tables, NULL keys, duplicates, a NULL-only match."""
    con = duckdb.connect()
    con.execute(SCHEMA)
    datasets = [
        ([], []),
        ([(1, 1), (2, None), (3, 2)], []),
        ([(1, 1), (2, None), (3, 2), (3, 2)], [(1, None), (1, None), (None, 5), (2, 7)]),
    ]
    for t_rows, u_rows in datasets:
        con.execute("DELETE FROM t; DELETE FROM u")
        if t_rows:
            con.executemany("INSERT INTO t VALUES (?, ?)", t_rows)
        if u_rows:
            con.executemany("INSERT INTO u VALUES (?, ?)", u_rows)
        for q1, _q2 in PROVED:
            rewritten = count_tests_as_exists(sqlglot.parse_one(q1, read="duckdb")).sql("duckdb")
            assert "COUNT" not in rewritten.upper()
            assert sorted(con.execute(q1).fetchall(), key=repr) == sorted(con.execute(rewritten).fetchall(), key=repr)
