"""exists_table_materialize on a real PostgreSQL: same rows, the plan hashes the fence, and the gate.

TPC-DS q16's ``EXISTS (SELECT * FROM catalog_sales cs2 WHERE cs1.k = cs2.k AND cs1.w <> cs2.w)``
is probed per outer row through the second column of the table's key (a full index scan per
row); over a MATERIALIZED CTE of the two columns PostgreSQL can only scan it once.
"""

from __future__ import annotations

import doctest

import psycopg
import pytest

from sqlsluice.rewriters.api import admissible, certify
from sqlsluice.rewriters.candidates import Candidate
from sqlsluice.rewriters.rule_proofs import load_templates
from sqlsluice.rewriters.rules import BY_NAME, apply_rules
from sqlsluice.verifiers import verify
from sqlsluice.verifiers.schema import load_schema

DDL = """
CREATE TABLE sales (s_item INT PRIMARY KEY, s_order INT, s_wh INT, s_cost NUMERIC(7,2));
CREATE TABLE returns_ (r_item INT, r_order INT, PRIMARY KEY (r_item, r_order));
"""
DATA = """
INSERT INTO sales VALUES (1, 10, 1, 5.00), (2, 10, 2, 6.00), (3, 11, 1, 7.00), (4, 11, 1, 1.50),
 (5, 12, NULL, 2.00), (6, 12, 3, 3.00), (7, 13, 2, NULL), (8, 13, NULL, 4.00), (9, 14, 4, 9.00),
 (10, NULL, 1, 1.00), (11, NULL, 2, 1.00);
INSERT INTO returns_ VALUES (1, 10), (9, 14);
"""

CASES = [
    # q16's shape: COUNT(DISTINCT), EXISTS with = and <>, NOT EXISTS with = only
    ("SELECT COUNT(DISTINCT s1.s_order) AS n, SUM(s1.s_cost) AS c FROM sales AS s1 WHERE EXISTS "
     "(SELECT * FROM sales AS s2 WHERE s1.s_order = s2.s_order AND s1.s_wh <> s2.s_wh) AND NOT EXISTS "
     "(SELECT * FROM returns_ AS r WHERE s1.s_order = r.r_order)", True),
    ("SELECT s1.s_item FROM sales AS s1 WHERE NOT EXISTS (SELECT 1 FROM sales AS s2 "
     "WHERE s2.s_order = s1.s_order AND s2.s_wh < s1.s_wh) OR s1.s_cost > 8", True),
    ("SELECT s1.s_item FROM sales AS s1 WHERE EXISTS (SELECT * FROM returns_ AS r WHERE r.r_order = s1.s_order)",
     False),
]


def test_docstring() -> None:
    import sqlsluice.rewriters.rules.fences as fences

    res = doctest.testmod(fences)
    assert res.attempted > 0 and res.failed == 0


def test_same_rows_and_a_hashed_fence_on_postgresql(pg_db: str) -> None:
    schema = load_schema(DDL, "postgres")
    with psycopg.connect(pg_db, autocommit=True) as con:
        con.execute(DDL)
        con.execute(DATA)
        for sql, fires in CASES:
            ap = apply_rules(sql, ["exists_table_materialize"], schema, "postgres")
            assert bool(ap.applied) == fires, sql
            if not fires:
                continue
            assert "AS MATERIALIZED" in ap.sql
            before = sorted(map(repr, con.execute(sql).fetchall()))
            after = sorted(map(repr, con.execute(ap.sql).fetchall()))
            assert before and before == after, (sql, ap.sql)
        # the fence is evaluated once: one CTE Scan, no parameterised probe of ``sales`` inside
        plan = "\n".join(r[0] for r in con.execute("EXPLAIN " + apply_rules(
            CASES[0][0], ["exists_table_materialize"], schema, "postgres").sql).fetchall())
        assert "CTE _mat1" in plan and "CTE Scan on _mat1" in plan


@pytest.mark.parametrize("wrong", [
    # a fence that drops rows, or reads another column: refuted
    ("SELECT r.k FROM r WHERE EXISTS (SELECT * FROM s AS s2 WHERE s2.rk = r.a AND s2.x <> r.b)",
     "WITH _m AS MATERIALIZED (SELECT s.rk AS rk, s.x AS x FROM s AS s WHERE s.q) "
     "SELECT r.k FROM r WHERE EXISTS (SELECT * FROM _m AS s2 WHERE s2.rk = r.a AND s2.x <> r.b)"),
    ("SELECT r.k FROM r WHERE EXISTS (SELECT * FROM s AS s2 WHERE s2.rk = r.a AND s2.x <> r.b)",
     "WITH _m AS MATERIALIZED (SELECT s.rk AS rk, s.y AS x FROM s AS s) "
     "SELECT r.k FROM r WHERE EXISTS (SELECT * FROM _m AS s2 WHERE s2.rk = r.a AND s2.x <> r.b)"),
], ids=["filtered_fence", "other_column"])
def test_wrong_variants_refuted(wrong: tuple[str, str]) -> None:
    ddl, _ = load_templates()
    v = verify(wrong[0], wrong[1], load_schema(ddl, "postgres"), dialect="postgres", time_budget_s=3)
    assert v.verdict == "NOT_EQUIVALENT"


def test_proved_and_admitted() -> None:
    assert BY_NAME["exists_table_materialize"].sound
    ddl, templates = load_templates()
    cat = load_schema(ddl, "postgres")
    for t in (t for t in templates if t["rule"] == "exists_table_materialize"):
        ap = apply_rules(t["sql"], ["exists_table_materialize"], cat, "postgres")
        assert ap.applied == ["exists_table_materialize"]
        cert = certify(t["sql"], Candidate(ap.sql, ap.applied, "rules"), cat, "postgres", 5.0)
        assert cert.status == "PROVED" and admissible(cert, "proved"), cert.reason


def test_other_dialects_untouched() -> None:
    ddl, templates = load_templates()
    sql = next(t["sql"] for t in templates if t["rule"] == "exists_table_materialize")
    ap = apply_rules(sql, ["exists_table_materialize"], load_schema(ddl, "sqlite"), "sqlite")
    assert not ap.applied  # SQLite has no AS MATERIALIZED


def test_fresh_name_and_quoted_identifiers() -> None:
    """A nested CTE already called ``_mat1`` could capture the reference: the fence takes ``_mat2``;
    quoted mixed-case names keep their quotes."""
    import sqlglot

    from sqlsluice.rewriters.rules.fences import exists_table_materialize

    q = sqlglot.parse_one('WITH x AS (WITH _mat1 AS (SELECT 1 AS k) SELECT o.k FROM t AS o WHERE EXISTS '
                          '(SELECT * FROM "Sales" AS i WHERE i."K" = o.k AND i.w <> o.w)) SELECT * FROM x',
                          read="postgres")
    out = exists_table_materialize(q, dialect="postgres").sql("postgres")
    assert out.startswith('WITH _mat2 AS MATERIALIZED (SELECT "Sales"."K" AS "K", "Sales".w AS w FROM "Sales" AS "Sales")')
    assert 'FROM _mat2 AS i WHERE i."K" = o.k' in out
