"""SQLite's semantics in every tier: no EQUIVALENT where SQLite tells the queries apart, and every
refutation replays in real sqlite3 (the counterexample INSERTs on the schema's own DDL).

Each construct where SQLite and DuckDB differ has a pair that the proof tiers would "prove" with
DuckDB's semantics but that SQLite separates (must be refuted), and where it can be modelled a
pair that SQLite's semantics make equal (proved, or at least never refuted).
"""

from __future__ import annotations

import sqlite3

import pytest
import sqlglot

from sqlsluice.errors import SyntaxErrorSQL
from sqlsluice.verifiers import compare_results, load_schema
from sqlsluice.verifiers.api import verify
from sqlsluice.verifiers.sqlite_semantics import affinity, proof_catalog, screen
from sqlsluice.verifiers.verdict import Verdict

DDL = ("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, dept TEXT, age INTEGER, code TEXT, d DATE, r REAL, "
       "amount DECIMAL(10, 2));")
CAT = load_schema(DDL, "sqlite")


def _verify(q1: str, q2: str, budget: float = 1.0) -> Verdict:
    return verify(q1, q2, CAT, "sqlite", time_budget_s=budget)


def _replay(v: Verdict, q1: str, q2: str) -> tuple[list[tuple], list[tuple]]:
    """Run the counterexample in a fresh sqlite3 database: both queries' rows."""
    assert v.counterexample is not None
    con = sqlite3.connect(":memory:")
    for stmt in [*CAT.to_ddl("sqlite"), *v.counterexample.inserts]:
        con.execute(stmt)
    return con.execute(q1).fetchall(), con.execute(q2).fetchall()


# Pairs that SQLite tells apart (DuckDB's semantics would not, or would reject them): refuted,
# and the counterexample separates them in sqlite3 itself.
DIFFERENT = {
    "integer division vs real": ("SELECT age / 2 FROM t", "SELECT age * 0.5 FROM t"),
    "constant integer division": ("SELECT 3 / 2", "SELECT 1.5"),
    "LIKE is case-insensitive": ("SELECT id FROM t WHERE name LIKE 'ab'", "SELECT id FROM t WHERE name = 'ab'"),
    "constant LIKE": ("SELECT 'a' LIKE 'A'", "SELECT 0"),
    "text compared as text": ("SELECT id FROM t WHERE code > 5", "SELECT id FROM t WHERE CAST(code AS INTEGER) > 5"),
    "an integer is less than any text": ("SELECT count(*) FROM t HAVING count(*) >= '0'",
                                         "SELECT count(*) FROM t HAVING count(*) >= 0"),
    "bare column vs grouped": ("SELECT name, count(*) FROM t", "SELECT name, count(*) FROM t GROUP BY name"),
    "double-quoted string": ('SELECT id FROM t WHERE dept = "CV"', "SELECT id FROM t WHERE dept = 'cv'"),
    "IIF on text truthiness": ("SELECT id, IIF(code, 1, 0) FROM t",
                               "SELECT id, CASE WHEN code IS NOT NULL THEN 1 ELSE 0 END FROM t"),
    "CAST AS REAL then divide": ("SELECT CAST(age AS REAL) / 2 FROM t", "SELECT age / 2 FROM t"),
    "CAST text AS REAL": ("SELECT id FROM t WHERE CAST(code AS REAL) > 1", "SELECT id FROM t WHERE code > 1"),
    "|| with NULL": ("SELECT name || dept FROM t", "SELECT COALESCE(name, '') || COALESCE(dept, '') FROM t"),
    "LIMIT vs all ties": ("SELECT name FROM t ORDER BY age DESC LIMIT 1",
                          "SELECT name FROM t WHERE age = (SELECT max(age) FROM t)"),
    "groups larger than the constant": ("SELECT dept FROM t GROUP BY dept HAVING count(*) > 9",
                                        "SELECT dept FROM t GROUP BY dept HAVING count(*) > 10"),
    "ORDER direction": ("SELECT name FROM t ORDER BY age", "SELECT name FROM t ORDER BY age DESC"),
    "dates are text": ("SELECT id FROM t WHERE d >= '2000-01-01' AND d < '2000-01-02'",
                       "SELECT id FROM t WHERE d = '2000-01-01'"),
    "UNION of an integer and its text": ("SELECT age FROM t UNION SELECT code FROM t",
                                         "SELECT CAST(age AS TEXT) FROM t UNION SELECT code FROM t"),
}


@pytest.mark.parametrize("name", sorted(DIFFERENT))
def test_sqlite_differences_are_refuted_and_replay_in_sqlite3(name: str) -> None:
    q1, q2 = DIFFERENT[name]
    v = _verify(q1, q2)
    assert v.verdict == "NOT_EQUIVALENT", (name, v.verdict, v.reason)
    r1, r2 = _replay(v, q1, q2)
    assert not compare_results(r1, r2, ordered=name == "ORDER direction"), (name, v.counterexample, r1, r2)
    assert (r1, r2) == ([tuple(x) for x in v.counterexample.q1_rows], [tuple(x) for x in v.counterexample.q2_rows]) \
        or name == "LIMIT vs all ties"  # a LIMIT's row may be another of the (equal) rows the database holds
    if name == "LIMIT vs all ties":  # not a tie: the LIMIT 1 query returns fewer rows than the ties
        assert len(r1) != len(r2)


# Pairs that SQLite's semantics make equal; where the construct is modelled they are proved.
PROVED = {
    "integer division folded": ("SELECT 7 / 2", "SELECT 3"),
    "number literal against a text column": ("SELECT id FROM t WHERE code = 5", "SELECT id FROM t WHERE code = '5'"),
    "text literal against an integer column": ("SELECT id FROM t WHERE age = '5'", "SELECT id FROM t WHERE age = 5"),
    "text order of a text column": ("SELECT count(*) FROM t WHERE code > 5", "SELECT count(*) FROM t WHERE code > '5'"),
    "bare column determined by the key": ("SELECT name, count(*) FROM t GROUP BY id",
                                          "SELECT name, count(*) FROM t GROUP BY id, name"),
    "double-quoted string": ('SELECT id FROM t WHERE dept = "CV"', "SELECT id FROM t WHERE dept = 'CV'"),
    "a number is less than any text": ("SELECT id FROM t WHERE NOT (age < 'a')",
                                       "SELECT id FROM t WHERE age IS NULL AND 1 = 0"),
    "IIF with a condition": ("SELECT IIF(age > 1, 'y', 'n') FROM t",
                             "SELECT CASE WHEN age > 1 THEN 'y' ELSE 'n' END FROM t"),
}


@pytest.mark.parametrize("name", sorted(PROVED))
def test_modelled_constructs_are_proved(name: str) -> None:
    q1, q2 = PROVED[name]
    v = _verify(q1, q2, budget=5.0)  # a proof ends the run: the budget only matters on a loaded machine
    assert v.verdict == "EQUIVALENT", (name, v.verdict, v.reason)
    assert "modelled" in v.evidence.tiers["sqlite"]


# Equal in SQLite but not modelled: never refuted (and never a DuckDB-only "proof").
UNDECIDED_OK = {
    "LIKE without wildcards vs ASCII lower": ("SELECT id FROM t WHERE name LIKE 'ab'",
                                              "SELECT id FROM t WHERE lower(name) = 'ab'"),
    "integer division in a predicate": ("SELECT id FROM t WHERE age / 2 = 1", "SELECT id FROM t WHERE age IN (2, 3)"),
    "LIMIT with a tie-break": ("SELECT name FROM t ORDER BY age DESC LIMIT 1",
                               "SELECT name FROM t ORDER BY age DESC, id LIMIT 1"),
}


@pytest.mark.parametrize("name", sorted(UNDECIDED_OK))
def test_equal_in_sqlite_is_never_refuted(name: str) -> None:
    q1, q2 = UNDECIDED_OK[name]
    assert _verify(q1, q2).verdict in ("EQUIVALENT", "UNKNOWN")


def test_bare_columns_are_reported_non_deterministic() -> None:
    v = _verify("SELECT name, max(age) FROM t", "SELECT name, max(age) FROM t WHERE id = id OR id IS NULL")
    assert v.verdict != "EQUIVALENT"
    if v.verdict == "UNKNOWN":
        assert v.reason.startswith("non-deterministic: a bare column")
    assert "bare column name in an aggregate query" in v.evidence.tiers["sqlite"]


def _q(sql: str) -> sqlglot.exp.Expression:
    return sqlglot.parse_one(sql, read="sqlite")


@pytest.mark.parametrize(("sql", "hazard"), [
    ("SELECT amount / 2 FROM t", "division"),  # NUMERIC affinity stores 2.0 as the integer 2
    ("SELECT code / 2 FROM t", "division"),
    ("SELECT r % 2 FROM t", "% on non-integers"),
    ("SELECT id FROM t WHERE d = 2000", "date column"),
    ("SELECT id FROM t WHERE code", "non-boolean condition"),
    ("SELECT CAST(r AS INTEGER) FROM t", "CAST"),
    ("SELECT r || 'x' FROM t", "||"),
    ("SELECT 'a' LIKE 'A'", "LIKE in a query that reads no table"),
    ("SELECT id FROM t WHERE code IN (SELECT age FROM t)", "IN of text"),
    ("SELECT name, sum(age) FROM t GROUP BY dept", "bare column name"),
])
def test_screen_declines_what_it_cannot_model(sql: str, hazard: str) -> None:
    s = screen(_q(sql), CAT)
    assert s.form is None and any(hazard in h for h in s.hazards), s.hazards


def test_screen_models_in_duckdb_terms() -> None:
    s = screen(_q("SELECT age / 2, r / 2, IIF(age > 1, 1, 0) FROM t WHERE code = 5 AND age = '7'"), CAT)
    assert s.form is not None and not s.hazards
    assert s.form.sql("duckdb") == ('SELECT "t"."age" // 2 AS "_col_0", "t"."r" / NULLIF(2, 0) AS "_col_1", '
                                    'CASE WHEN "t"."age" > 1 THEN 1 ELSE 0 END AS "_col_2" FROM "t" AS "t" '
                                    "WHERE \"t\".\"code\" = '5' AND \"t\".\"age\" = 7")


def test_affinity_and_proof_catalog() -> None:
    assert [affinity(t) for t in ("INTEGER", "VARCHAR(3)", "REAL", "DATE", "NUMERIC", "")] == [
        "INTEGER", "TEXT", "REAL", "NUMERIC", "NUMERIC", "BLOB"]
    types = {c.name: c.type for c in proof_catalog(CAT).tables[0].columns}
    assert types == {"id": "BIGINT", "name": "TEXT", "dept": "TEXT", "age": "BIGINT", "code": "TEXT", "d": "TEXT",
                     "r": "DOUBLE", "amount": "DECIMAL(38, 10)"}


def test_postgres_dialect_runs_on_a_configured_postgres(pg_db: str) -> None:
    """The same principle for PostgreSQL: with a server configured the differential tier runs the
    queries there (integer division, as in SQLite; DuckDB divides as reals and finds nothing)."""
    import psycopg

    cat = load_schema("CREATE TABLE t (id INTEGER PRIMARY KEY, a INTEGER, s TEXT);", "postgres")
    q1, q2 = "SELECT a / 2 FROM t", "SELECT a * 0.5 FROM t"
    assert verify(q1, q2, cat, "postgres", time_budget_s=1.0).verdict != "NOT_EQUIVALENT"  # DuckDB: the same
    v = verify(q1, q2, cat, "postgres", time_budget_s=1.0, postgres_url=pg_db)
    assert v.verdict == "NOT_EQUIVALENT" and "PostgreSQL" in v.reason
    with psycopg.connect(pg_db, autocommit=True) as con:
        for stmt in [*cat.to_ddl("postgres"), *v.counterexample.inserts]:
            con.execute(stmt)
        r1, r2 = con.execute(q1).fetchall(), con.execute(q2).fetchall()
        assert not compare_results(r1, r2)
        # the tester's schema is gone, only public's table is left
        assert con.execute("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'sluice_verify_%'").fetchone() == (0,)
    # a name PostgreSQL does not know is bad input, in PostgreSQL's words
    with pytest.raises(SyntaxErrorSQL, match="PostgreSQL: column \"nope\" does not exist"):
        verify("SELECT nope FROM t", q2, cat, "postgres", postgres_url=pg_db)


def test_sqlite_sql_that_duckdb_cannot_express_is_still_decided_on_sqlite() -> None:
    # DATETIME() with no argument (BIRD gpt-4 #132): sqlglot reads it as SQLite but cannot write it
    # for DuckDB, so no proof; SQLite's own run refutes, and a name SQLite rejects is SQLite's error
    q1, q2 = "SELECT DATETIME() - age FROM t WHERE age > 1", "SELECT DATETIME() - age FROM t WHERE age >= 1"
    v = _verify(q1, q2)
    assert v.verdict == "NOT_EQUIVALENT" and "not expressible for DuckDB" in v.evidence.tiers["sqlite"]
    r1, r2 = _replay(v, q1, q2)
    assert len(r1) != len(r2)
    with pytest.raises(SyntaxErrorSQL, match="SQLite: no such column: nope"):
        _verify("SELECT DATETIME() - nope FROM t", q2)


@pytest.mark.parametrize("seed", range(6))
def test_limit_ties_are_never_a_counterexample(seed: int) -> None:
    # INTEGER PRIMARY KEY rows come back in key order whatever the insertion order, so only the
    # exact check (any choice of the rows tied at the LIMIT boundary) tells ties from differences
    q1 = "SELECT name FROM t ORDER BY age LIMIT 2"
    for q2 in ("SELECT name FROM t ORDER BY age, id DESC LIMIT 2", "SELECT name FROM t ORDER BY age, dept LIMIT 2"):
        v = verify(q1, q2, CAT, "sqlite", time_budget_s=0.5, seed=seed)
        assert v.verdict == "UNKNOWN", v.counterexample
