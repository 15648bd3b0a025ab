"""IS [NOT] DISTINCT FROM between values of kinds the SMT model cannot compare.

The SMT tier read such a predicate as FALSE, so it "proved" ``a IS NOT DISTINCT FROM '5'``
equivalent to ``WHERE FALSE`` and ``s IS DISTINCT FROM 5`` equivalent to no filter at all,
though both engines coerce the literal and the predicate holds for ``a = 5`` / ``s = '5'``.
Such a predicate is now outside the model (no proof; the differential tier may still refute).
"""

from __future__ import annotations

import duckdb
import pytest

from sqlsluice.verifiers import verify

DDL = "CREATE TABLE t (a INT, s VARCHAR, d DATE, ts TIMESTAMP);"
PAIRS = [
    ("SELECT a FROM t WHERE a IS NOT DISTINCT FROM '5'", "SELECT a FROM t WHERE FALSE"),
    ("SELECT a FROM t WHERE s IS DISTINCT FROM 5", "SELECT a FROM t"),
]


@pytest.mark.parametrize(("q1", "q2"), PAIRS)
def test_not_proved_and_really_different(q1: str, q2: str) -> None:
    for dialect in ("duckdb", "postgres"):
        assert verify(q1, q2, DDL, dialect=dialect, time_budget_s=5).verdict != "EQUIVALENT"
    con = duckdb.connect()
    con.execute(DDL)
    con.execute("INSERT INTO t VALUES (5, '5', NULL, NULL), (6, '6', NULL, NULL)")
    assert sorted(con.execute(q1).fetchall()) != sorted(con.execute(q2).fetchall())


def test_comparable_kinds_are_still_proved() -> None:
    v = verify("SELECT a FROM t WHERE a IS NOT DISTINCT FROM 5", "SELECT a FROM t WHERE a = 5 OR FALSE", DDL,
               dialect="postgres", time_budget_s=5)
    assert v.verdict == "EQUIVALENT"
