"""A top-level ``LIMIT n`` without ORDER BY (docs/soundness.md, nondeterministic queries): the query
may return any n rows of its body's bag, so two such queries with the same LIMIT and OFFSET are
equivalent when their bodies are equal bags.  Nothing else is lifted: an ORDER BY on one side,
another count or offset, a LIMIT inside a derived table, bodies that differ.
"""

from __future__ import annotations

import pytest

from sqlsluice.verifiers import verify

DDL = "CREATE TABLE t (k INT, a INT, b INT); CREATE TABLE u (k INT PRIMARY KEY, c INT)"

PROVED = [
    # a join written two ways
    ("SELECT t.a FROM t JOIN u ON t.k = u.k WHERE u.k > 3 LIMIT 5",
     "SELECT t.a FROM t, u WHERE t.k = u.k AND t.k > 3 LIMIT 5"),
    # an uncorrelated scalar aggregate as a cross join with its one-row block (NULL on no rows either way)
    ("SELECT t.a, (SELECT MAX(c) FROM u) AS m FROM t LIMIT 5 OFFSET 2",
     "SELECT t.a, x.m FROM t CROSS JOIN (SELECT MAX(c) AS m FROM u) AS x LIMIT 5 OFFSET 2"),
]


@pytest.mark.parametrize("q1, q2", PROVED, ids=["join", "scalar-as-cross-join"])
def test_same_limit_over_equal_bodies_is_proved(q1: str, q2: str) -> None:
    for a, b in ((q1, q2), (q2, q1)):
        v = verify(a, b, DDL, "postgres", time_budget_s=6)
        assert v.verdict == "EQUIVALENT", v.reason
        assert "without ORDER BY" in v.reason or v.method == "canonical", v.reason


NOT_PROVED = {
    # another count
    "limit-n-vs-m": ("SELECT t.a FROM t JOIN u ON t.k = u.k LIMIT 5", "SELECT t.a FROM t, u WHERE t.k = u.k LIMIT 6"),
    # another offset
    "offset": ("SELECT t.a FROM t JOIN u ON t.k = u.k LIMIT 5 OFFSET 1",
               "SELECT t.a FROM t, u WHERE t.k = u.k LIMIT 5"),
    # only one side sorted: the ORDER BY .. LIMIT picks particular rows
    "one-sorted": ("SELECT t.a FROM t JOIN u ON t.k = u.k ORDER BY t.a LIMIT 5",
                   "SELECT t.a FROM t, u WHERE t.k = u.k LIMIT 5"),
    # the same LIMIT over bodies that differ (a key left out of the join: duplicates)
    "bodies-differ": ("SELECT a FROM t WHERE a IN (SELECT c FROM u) LIMIT 3",
                      "SELECT t.a FROM t JOIN u ON t.a = u.c LIMIT 3"),
    # a LIMIT inside a derived table under an aggregate is not lifted
    "limit-under-aggregate": ("SELECT SUM(s.a) FROM (SELECT t.a FROM t JOIN u ON t.k = u.k LIMIT 2) AS s",
                              "SELECT SUM(s.a) FROM (SELECT t.a FROM t, u WHERE t.k = u.k LIMIT 2) AS s"),
}


@pytest.mark.parametrize("name", sorted(NOT_PROVED))
def test_other_limits_are_not_lifted(name: str) -> None:
    q1, q2 = NOT_PROVED[name]
    for a, b in ((q1, q2), (q2, q1)):
        v = verify(a, b, DDL, "postgres", time_budget_s=3)
        assert v.verdict != "EQUIVALENT" or v.method == "canonical", (name, v.method, v.reason)
    if name == "bodies-differ":  # a key-less join repeats rows: shown on a generated database
        assert verify(q1, q2, DDL, "postgres", time_budget_s=3).verdict == "NOT_EQUIVALENT"
