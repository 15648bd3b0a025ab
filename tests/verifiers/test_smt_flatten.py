"""Normalisations that let the proof tiers see through the shapes Calcite (LLM-R2's DSB pool)
writes: filters on grouping keys inside or outside a grouped derived table, arithmetic inside or
outside a scalar aggregate subquery, derived-table and CTE columns and names that differ only by
name.  Each proved pair has near misses beside it that must never be proved."""

from __future__ import annotations

import pytest
import sqlglot

from sqlsluice.databases import Catalog
from sqlsluice.verifiers import verify
from sqlsluice.verifiers.canonical import canonical_sql
from sqlsluice.verifiers.schema import load_schema
from sqlsluice.verifiers.smt import prove

DDL = """
CREATE TABLE r (k INT PRIMARY KEY, a INT, b INT, g VARCHAR);
CREATE TABLE s (k INT PRIMARY KEY, rk INT, x INT, y INT, g VARCHAR);
"""


@pytest.fixture(scope="module")
def cat() -> Catalog:
    return load_schema(DDL, "duckdb")


def _smt(q1: str, q2: str, cat: Catalog, timeout_s: float = 6.0) -> bool:
    return prove(sqlglot.parse_one(q1, read="duckdb"), sqlglot.parse_one(q2, read="duckdb"), cat, "duckdb",
                 timeout_s=timeout_s).proved


GROUPED = "(SELECT s.rk AS k, s.g AS gg, SUM(s.x) AS tot FROM s GROUP BY s.rk, s.g)"

PROVED_SMT = [
    # a filter on a grouping key, outside the grouped derived table or inside it (on the rows)
    (f"SELECT t.k, t.tot FROM {GROUPED} AS t WHERE t.gg = 'a'",
     "SELECT u.k, u.tot FROM (SELECT s.rk AS k, SUM(s.x) AS tot FROM s WHERE s.g = 'a' GROUP BY s.rk, s.g) AS u"),
    (f"SELECT t.k, t.tot, r.b FROM {GROUPED} AS t, r WHERE t.k = r.k AND t.k BETWEEN 3 AND 6 AND t.gg IS NOT NULL",
     "SELECT u.k, u.tot, r.b FROM (SELECT s.rk AS k, SUM(s.x) AS tot FROM s WHERE s.rk >= 3 AND s.rk <= 6 "
     "AND s.g IS NOT NULL GROUP BY s.rk, s.g) AS u JOIN r ON u.k = r.k"),
    # arithmetic over the one row of a scalar aggregate subquery: inside it or outside
    ("SELECT r.k FROM r WHERE r.a > (SELECT AVG(s.x) * 1.2 FROM s WHERE s.rk = r.k)",
     "SELECT r.k FROM r WHERE r.a > (SELECT AVG(s.x) FROM s WHERE s.rk = r.k) * 1.2"),
    ("SELECT r.k FROM r WHERE r.a < (SELECT 2 + MAX(s.y) FROM s WHERE s.g = r.g)",
     "SELECT r.k FROM r WHERE r.a < 2 + (SELECT MAX(s.y) FROM s WHERE s.g = r.g)"),
    # one correlated subquery whose derived table names its columns two ways (Calcite's q1/q30/q81)
    ("SELECT r.k FROM r WHERE r.a > (SELECT AVG(t.tot) FROM (SELECT s.rk AS key0, SUM(s.x) AS tot FROM s "
     "GROUP BY s.rk, s.g) AS t WHERE t.key0 = r.b)",
     "SELECT r.k FROM r WHERE r.a > (SELECT AVG(t2.total) FROM (SELECT s.rk AS rk, SUM(s.x) AS total FROM s "
     "GROUP BY s.rk, s.g) AS t2 WHERE r.b = t2.rk)"),
    # the decorrelated form of that subquery, with the key filter pushed into the grouped side
    (f"SELECT t.k FROM {GROUPED} AS t WHERE t.gg = 'x' AND t.tot > (SELECT AVG(t2.tot) * 1.2 FROM {GROUPED} AS t2 "
     "WHERE t2.k = t.k)",
     "SELECT u.k FROM (SELECT s.rk AS k, SUM(s.x) AS tot FROM s WHERE s.g = 'x' GROUP BY s.rk, s.g) AS u, "
     "(SELECT v.k1, AVG(v.tot) AS m FROM (SELECT s.rk AS k1, SUM(s.x) AS tot FROM s GROUP BY s.rk, s.g) AS v "
     "GROUP BY v.k1) AS w WHERE u.k = w.k1 AND u.tot > w.m * 1.2"),
    # q81's shape: the outer grouped table's keys are equated too (to r and to the average's key);
    # the average, read by a filter only, is the one put back as the correlated subquery
    (f"SELECT r.b, t.tot FROM {GROUPED} AS t, r WHERE t.k = r.k AND t.tot > (SELECT AVG(t2.tot) * 1.2 "
     f"FROM {GROUPED} AS t2 WHERE t2.gg = t.gg)",
     f"SELECT r.b, u.tot FROM {GROUPED} AS u, r, (SELECT v.gg, AVG(v.tot) AS m FROM {GROUPED} AS v GROUP BY v.gg) "
     "AS w WHERE u.k = r.k AND u.gg = w.gg AND u.tot > w.m * 1.2"),
]

NOT_PROVED = [
    # a filter on an aggregate is not a filter on the rows
    (f"SELECT t.k, t.tot FROM {GROUPED} AS t WHERE t.tot > 5",
     "SELECT u.k, u.tot FROM (SELECT s.rk AS k, SUM(s.x) AS tot FROM s WHERE s.x > 5 GROUP BY s.rk, s.g) AS u"),
    # a key filter pushed into the wrong grouped table (or left out)
    (f"SELECT t.k, t.tot FROM {GROUPED} AS t WHERE t.gg = 'a'",
     "SELECT u.k, u.tot FROM (SELECT s.rk AS k, SUM(s.x) AS tot FROM s WHERE s.g = 'b' GROUP BY s.rk, s.g) AS u"),
    (f"SELECT t.k, t.tot FROM {GROUPED} AS t WHERE t.gg = 'a'",
     "SELECT u.k, u.tot FROM (SELECT s.rk AS k, SUM(s.x) AS tot FROM s GROUP BY s.rk, s.g) AS u"),
    # a scalar aggregate (no GROUP BY) answers one row on empty input: its filter is not a row filter
    ("SELECT t.c FROM (SELECT MAX(s.g) AS m, COUNT(*) AS c FROM s) AS t WHERE t.m = 'a'",
     "SELECT COUNT(*) FROM s WHERE s.g = 'a'"),
    # different arithmetic inside and outside the scalar subquery
    ("SELECT r.k FROM r WHERE r.a > (SELECT AVG(s.x) * 1.2 FROM s WHERE s.rk = r.k)",
     "SELECT r.k FROM r WHERE r.a > (SELECT AVG(s.x) FROM s WHERE s.rk = r.k) + 1.2"),
    ("SELECT r.k FROM r WHERE r.a > (SELECT AVG(s.x) - 1 FROM s WHERE s.rk = r.k)",
     "SELECT r.k FROM r WHERE r.a > 1 - (SELECT AVG(s.x) FROM s WHERE s.rk = r.k)"),
    # a grouped subquery may answer several rows or none: the arithmetic is not lifted
    ("SELECT r.k FROM r WHERE r.a > (SELECT COUNT(*) * 2 FROM s WHERE s.rk = r.k GROUP BY s.g)",
     "SELECT r.k FROM r WHERE r.a > (SELECT COUNT(*) FROM s WHERE s.rk = r.k GROUP BY s.g) * 2"),
    # LLM-R2's DSB pool, q10-like pairs 18-34: EXISTS written as an INNER JOIN of the matching rows
    # without DISTINCT; a customer with two matching sales counts twice (shown on DuckDB)
    ("SELECT r.g, COUNT(*) FROM r WHERE EXISTS (SELECT * FROM s WHERE s.rk = r.k AND s.x > 1) GROUP BY r.g",
     "SELECT t.g, COUNT(*) FROM (SELECT r.k, r.g, u.f0 FROM r INNER JOIN (SELECT s.rk, TRUE AS f0 FROM s "
     "WHERE s.x > 1) AS u ON r.k = u.rk) AS t GROUP BY t.g"),
    # columns renamed AND swapped: a different subquery
    ("SELECT r.k FROM r WHERE r.a > (SELECT AVG(t.a1) FROM (SELECT s.x AS a1, s.y AS b1 FROM s) AS t "
     "WHERE t.b1 = r.b)",
     "SELECT r.k FROM r WHERE r.a > (SELECT AVG(t.b1) FROM (SELECT s.x AS a1, s.y AS b1 FROM s) AS t "
     "WHERE t.a1 = r.b)"),
]


@pytest.mark.parametrize(("q1", "q2"), PROVED_SMT)
def test_smt_tier_proves(cat: Catalog, q1: str, q2: str) -> None:
    assert _smt(q1, q2, cat, 30.0)  # a proof ends early: the long budget only matters on a loaded machine
    assert _smt(q2, q1, cat, 30.0)
    v = verify(q1, q2, cat, time_budget_s=30.0)
    assert v.verdict == "EQUIVALENT", v.reason


@pytest.mark.parametrize(("q1", "q2"), NOT_PROVED)
def test_near_misses_are_not_proved(cat: Catalog, q1: str, q2: str) -> None:
    assert not _smt(q1, q2, cat)
    assert not _smt(q2, q1, cat)
    v = verify(q1, q2, cat, time_budget_s=3.0)
    assert v.verdict in ("NOT_EQUIVALENT", "UNKNOWN"), v.reason


def _canon(q: str, cat: Catalog) -> str:
    return canonical_sql(sqlglot.parse_one(q, read="duckdb"), cat, "duckdb")


def test_canonical_renames_cte_references_and_derived_columns(cat: Catalog) -> None:
    # a CTE read through an alias: the CTE's own name does not survive in the canonical form
    a = "WITH c1 AS (SELECT s.rk, SUM(s.x) AS t FROM s GROUP BY s.rk) SELECT x.t FROM c1 AS x, c1 AS y WHERE x.rk = y.t"
    b = "WITH c2 AS (SELECT s.rk, SUM(s.x) AS t FROM s GROUP BY s.rk) SELECT p.t FROM c2 AS p, c2 AS q WHERE p.rk = q.t"
    assert _canon(a, cat) == _canon(b, cat)
    # derived columns named two ways
    c = "SELECT AVG(t.v) FROM (SELECT s.rk AS kk, SUM(s.x) AS v FROM s GROUP BY s.rk, s.g) AS t WHERE t.kk > 3"
    d = "SELECT AVG(u.w) FROM (SELECT s.rk AS rk, SUM(s.x) AS w FROM s GROUP BY s.rk, s.g) AS u WHERE u.rk > 3"
    assert _canon(c, cat) == _canon(d, cat)


def test_canonical_near_misses(cat: Catalog) -> None:
    # the two CTE references swapped in the join condition
    a = "WITH c1 AS (SELECT s.rk, SUM(s.x) AS t FROM s GROUP BY s.rk) SELECT x.t FROM c1 AS x, c1 AS y WHERE x.rk = y.t"
    b = "WITH c2 AS (SELECT s.rk, SUM(s.x) AS t FROM s GROUP BY s.rk) SELECT p.t FROM c2 AS p, c2 AS q WHERE p.t = q.rk"
    assert _canon(a, cat) != _canon(b, cat)
    # derived columns renamed and swapped
    c = "SELECT AVG(t.v) FROM (SELECT s.rk AS kk, SUM(s.x) AS v FROM s GROUP BY s.rk, s.g) AS t WHERE t.kk > 3"
    d = "SELECT AVG(u.w) FROM (SELECT SUM(s.x) AS rk, s.rk AS w FROM s GROUP BY s.rk, s.g) AS u WHERE u.rk > 3"
    assert _canon(c, cat) != _canon(d, cat)
    # a base table named like a CTE of another scope is the base table, not the CTE
    e = "SELECT z.k FROM (WITH s AS (SELECT r.k FROM r) SELECT s.k FROM s) AS z, s AS w WHERE w.k = z.k"
    f = "SELECT z.k FROM (WITH s AS (SELECT r.k FROM r) SELECT s.k FROM s) AS z, r AS w WHERE w.k = z.k"
    assert _canon(e, cat) != _canon(f, cat)


# -- flattening Calcite's nested SELECT-PROJECT-JOIN derived tables (verifiers/flatten.py) --------

FLAT = ("SELECT r.b, s.y FROM r, s, r AS r2 WHERE r.k = s.rk AND s.x > 1 AND r2.k = s.y AND r.a > 0")
NESTED_PROVED = [
    # Calcite's shape: every join a derived table over SELECT *, filters in the innermost ones
    ("SELECT t3.b, t3.y FROM (SELECT * FROM (SELECT * FROM (SELECT * FROM r WHERE r.a > 0) AS t0, "
     "(SELECT * FROM s WHERE s.x > 1) AS t1 WHERE t0.k = t1.rk) AS t2 INNER JOIN r AS r3 ON r3.k = t2.y) AS t3"),
    # explicit projections with expressions, an INNER JOIN tree inside a derived table
    ("SELECT u.bb, u.yy FROM (SELECT r.b AS bb, s.y AS yy, s.y + 0 AS y0 FROM r INNER JOIN s ON r.k = s.rk "
     "WHERE s.x > 1 AND r.a > 0) AS u CROSS JOIN r AS r2 WHERE r2.k = u.yy"),
]

NESTED_NOT_PROVED = [
    # the derived table on the NULL-supplying side of a LEFT JOIN: its filter pads instead of dropping
    ("SELECT r.k, t.y FROM r LEFT JOIN (SELECT * FROM s WHERE s.x > 1) AS t ON t.rk = r.k",
     "SELECT r.k, s.y FROM r LEFT JOIN s ON s.rk = r.k WHERE s.x > 1"),
    # ... and left of a later RIGHT JOIN (everything before it is NULL-supplying)
    ("SELECT t.k, s.y FROM (SELECT * FROM r WHERE r.a > 0) AS t RIGHT JOIN s ON s.rk = t.k",
     "SELECT r.k, s.y FROM r RIGHT JOIN s ON s.rk = r.k WHERE r.a > 0"),
    ("SELECT s.y FROM (SELECT * FROM r WHERE FALSE) AS t RIGHT JOIN s ON s.rk = t.k",
     "SELECT s.y FROM s WHERE FALSE"),
    # DISTINCT and LIMIT bodies are not select-project-join
    ("SELECT r.k FROM (SELECT DISTINCT s.rk FROM s) AS t, r WHERE t.rk = r.k",
     "SELECT r.k FROM s, r WHERE s.rk = r.k"),
    ("SELECT r.k FROM (SELECT s.rk FROM s ORDER BY s.x LIMIT 2) AS t, r WHERE t.rk = r.k",
     "SELECT r.k FROM s, r WHERE s.rk = r.k"),
    # an unqualified name of the parent (r.g) must not come to mean the merged table's g (s.g)
    ("SELECT g FROM (SELECT s.x AS x FROM s) AS t, r WHERE t.x = r.k",
     "SELECT s.g FROM s, r WHERE s.x = r.k"),
    # the body's filter dropped, or put on the wrong table
    ("SELECT t.b FROM (SELECT * FROM r WHERE r.a > 0) AS t, s WHERE t.k = s.rk",
     "SELECT r.b FROM r, s WHERE r.k = s.rk"),
    ("SELECT t.b FROM (SELECT * FROM r WHERE r.a > 0) AS t, s WHERE t.k = s.rk",
     "SELECT r.b FROM r, s WHERE r.k = s.rk AND s.x > 0"),
]


@pytest.mark.parametrize("q", NESTED_PROVED)
def test_nested_derived_tables_are_flattened(cat: Catalog, q: str) -> None:
    v = verify(FLAT, q, cat, time_budget_s=30.0)
    assert v.verdict == "EQUIVALENT", v.reason


@pytest.mark.parametrize(("q1", "q2"), NESTED_NOT_PROVED)
def test_flattening_near_misses_are_not_proved(cat: Catalog, q1: str, q2: str) -> None:
    assert not _smt(q1, q2, cat)
    assert _canon(q1, cat) != _canon(q2, cat)
    v = verify(q1, q2, cat, time_budget_s=3.0)
    assert v.verdict in ("NOT_EQUIVALENT", "UNKNOWN"), v.reason


def test_flattened_queries_return_the_same_rows_on_duckdb(cat: Catalog) -> None:
    """The flattened text itself, run by DuckDB on data with NULLs and duplicates, returns the
    original's rows (as a bag)."""
    import duckdb

    from sqlsluice.verifiers.flatten import flatten_derived

    con = duckdb.connect()
    con.execute(DDL.replace(" PRIMARY KEY", ""))
    con.execute("INSERT INTO r VALUES (1, 1, 10, 'a'), (2, -1, 20, 'b'), (3, 5, NULL, NULL), (3, 5, 30, 'a')")
    con.execute("INSERT INTO s VALUES (1, 1, 2, 3, 'a'), (2, 1, 0, 1, 'b'), (3, 3, 5, 3, NULL), (4, NULL, 7, 2, 'a'),"
                " (5, 3, 5, 3, NULL)")
    queries = [*NESTED_PROVED, *(q for pair in NESTED_NOT_PROVED for q in pair),
               "SELECT r.k, t.y FROM (SELECT * FROM s WHERE s.x > 1) AS t LEFT JOIN r ON t.rk = r.k",
               "SELECT * FROM (SELECT * FROM r WHERE r.a > 0) AS t, (SELECT s.rk, s.y FROM s) AS u WHERE t.k = u.rk",
               "SELECT t.k FROM (SELECT * FROM r) AS t WHERE EXISTS (SELECT 1 FROM s WHERE s.rk = t.k AND s.y > 2)",
               "SELECT v.kk, v.yy FROM (SELECT u.k AS kk, u.y + 1 AS yy FROM (SELECT r.k, s.y FROM r, s "
               "WHERE r.k = s.rk) AS u) AS v WHERE v.yy > 2"]
    flattened = 0
    for q in queries:
        e = sqlglot.parse_one(q, read="duckdb")
        f = flatten_derived(e, cat)
        flattened += f.sql() != e.sql()
        got, want = con.execute(f.sql("duckdb")), con.cursor().execute(q)  # two result sets at once
        assert [d[0] for d in got.description] == [d[0] for d in want.description]  # names kept
        assert sorted(map(repr, got.fetchall())) == sorted(map(repr, want.fetchall())), (q, f.sql("duckdb"))
    assert flattened >= 6


# -- MIN/MAX through a join (Calcite's AGGREGATE_JOIN_TRANSPOSE) -----------------------------------

MINMAX_PROVED = [
    ("SELECT r.g, MIN(s.x), MAX(s.y) FROM r, s WHERE r.k = s.rk GROUP BY r.g",
     "SELECT r.g, MIN(t.mx), MAX(t.my) FROM r, (SELECT s.rk, MIN(s.x) AS mx, MAX(s.y) AS my FROM s "
     "GROUP BY s.rk) AS t WHERE r.k = t.rk GROUP BY r.g"),
    # two levels, and a scalar outer aggregate
    ("SELECT MIN(s.x) FROM r, s WHERE r.k = s.rk AND r.a > 0",
     "SELECT MIN(u.m2) FROM (SELECT t.rk, MIN(t.m1) AS m2 FROM (SELECT s.rk, s.g, MIN(s.x) AS m1 FROM s "
     "GROUP BY s.rk, s.g) AS t GROUP BY t.rk) AS u, r WHERE r.k = u.rk AND r.a > 0"),
]

MINMAX_NOT_PROVED = [
    # COUNT / SUM / AVG count the rows that the inner GROUP BY collapsed
    ("SELECT r.g, COUNT(*) FROM r, s WHERE r.k = s.rk GROUP BY r.g",
     "SELECT r.g, COUNT(*) FROM r, (SELECT s.rk, MIN(s.x) AS mx FROM s GROUP BY s.rk) AS t "
     "WHERE r.k = t.rk GROUP BY r.g"),
    ("SELECT r.g, MIN(s.x), SUM(r.a) FROM r, s WHERE r.k = s.rk GROUP BY r.g",
     "SELECT r.g, MIN(t.mx), SUM(r.a) FROM r, (SELECT s.rk, MIN(s.x) AS mx FROM s GROUP BY s.rk) AS t "
     "WHERE r.k = t.rk GROUP BY r.g"),
    # MAX of the inner minimums is not the maximum
    ("SELECT r.g, MAX(s.x) FROM r, s WHERE r.k = s.rk GROUP BY r.g",
     "SELECT r.g, MAX(t.mx) FROM r, (SELECT s.rk, MIN(s.x) AS mx FROM s GROUP BY s.rk) AS t "
     "WHERE r.k = t.rk GROUP BY r.g"),
    # a filter on the inner minimum is a filter on groups, not rows
    ("SELECT r.g, MIN(s.x) FROM r, s WHERE r.k = s.rk AND s.x > 3 GROUP BY r.g",
     "SELECT r.g, MIN(t.mx) FROM r, (SELECT s.rk, MIN(s.x) AS mx FROM s GROUP BY s.rk) AS t "
     "WHERE r.k = t.rk AND t.mx > 3 GROUP BY r.g"),
    # an inner scalar aggregate answers a row (of NULL) on empty input: groups of r appear
    ("SELECT r.g, MIN(s.x) FROM r, s GROUP BY r.g",
     "SELECT r.g, MIN(t.mx) FROM r, (SELECT MIN(s.x) AS mx FROM s) AS t GROUP BY r.g"),
]


@pytest.mark.parametrize(("q1", "q2"), MINMAX_PROVED)
def test_min_max_through_joins_proved(cat: Catalog, q1: str, q2: str) -> None:
    assert _smt(q1, q2, cat, 30.0)
    assert _smt(q2, q1, cat, 30.0)


@pytest.mark.parametrize(("q1", "q2"), MINMAX_NOT_PROVED)
def test_min_max_near_misses_not_proved(cat: Catalog, q1: str, q2: str) -> None:
    assert not _smt(q1, q2, cat)
    assert not _smt(q2, q1, cat)
    v = verify(q1, q2, cat, time_budget_s=3.0)
    assert v.verdict in ("NOT_EQUIVALENT", "UNKNOWN"), v.reason
