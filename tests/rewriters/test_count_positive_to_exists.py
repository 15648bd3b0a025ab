"""count_positive_to_exists: ``(SELECT COUNT(*) ..) > 0`` -> EXISTS, on a real PostgreSQL, and the gate.

The rule is sound, and the verifier proves each application (it reads a row-count test as
EXISTS: verifiers/count_exists.py, written apart from the rule), so it is served under the
default ``proved`` policy; these tests pin both facts down, and that wrong variants of it are
refuted.
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
CREATE TABLE item (i_item_sk INT PRIMARY KEY, i_manufact TEXT, i_manufact_id INT, i_category TEXT,
                   i_color TEXT, i_product_name TEXT);
CREATE TABLE sale (s_item_sk INT, s_qty INT);
"""
DATA = """
INSERT INTO item VALUES
 (1, 'ese', 740, 'Women', 'powder', 'p1'), (2, 'ese', 741, 'Men', 'red', 'p2'),
 (3, 'anti', 745, 'Women', 'khaki', 'p3'), (4, NULL, 750, 'Women', 'powder', 'p4'),
 (5, 'ought', 760, NULL, NULL, 'p5'), (6, 'bar', 900, 'Men', 'powder', 'p6'),
 (7, 'anti', 770, 'Men', NULL, NULL);
INSERT INTO sale VALUES (1, 5), (1, NULL), (3, 2), (NULL, 1), (9, 4);
"""

# (query, fires): q41's shape, the mirrored and NOT forms, the select list, and near misses
CASES = [
    ("SELECT DISTINCT i1.i_product_name FROM item AS i1 WHERE i1.i_manufact_id BETWEEN 738 AND 778 AND "
     "(SELECT COUNT(*) FROM item WHERE (item.i_manufact = i1.i_manufact AND item.i_category = 'Women') "
     "OR (item.i_manufact = i1.i_manufact AND item.i_color = 'powder')) > 0", True),
    ("SELECT i.i_item_sk FROM item AS i WHERE NOT 0 < (SELECT COUNT(*) FROM sale WHERE sale.s_item_sk = i.i_item_sk)",
     True),
    ("SELECT i.i_item_sk, (SELECT COUNT(1) FROM sale WHERE sale.s_item_sk = i.i_item_sk AND sale.s_qty > 1) >= 1 "
     "AS hot FROM item AS i", True),
    ("SELECT i.i_item_sk FROM item AS i WHERE i.i_color IS NULL OR "
     "(SELECT COUNT(*) FROM sale WHERE sale.s_item_sk = i.i_item_sk) <> 0", True),
    ("SELECT i.i_item_sk FROM item AS i WHERE (SELECT COUNT(sale.s_qty) FROM sale "
     "WHERE sale.s_item_sk = i.i_item_sk) > 0", False),
    ("SELECT i.i_item_sk FROM item AS i WHERE (SELECT COUNT(*) FROM sale "
     "WHERE sale.s_item_sk = i.i_item_sk) >= 0", False),
    ("SELECT i.i_item_sk FROM item AS i WHERE (SELECT COUNT(*) FROM sale "
     "WHERE sale.s_item_sk = i.i_item_sk GROUP BY sale.s_item_sk) > 0", False),
]


def test_docstring() -> None:
    import sqlsluice.rewriters.rules.counts as counts

    res = doctest.testmod(counts)
    assert res.attempted > 0 and res.failed == 0


def test_same_rows_on_postgresql(pg_db: str) -> None:
    schema = load_schema(DDL, "postgres")
    with psycopg.connect(pg_db, autocommit=True) as con:
        con.execute(DDL)
        con.execute(DATA)
        for sql, fires in CASES:
            ap = apply_rules(sql, ["count_positive_to_exists"], schema, "postgres")
            assert bool(ap.applied) == fires, sql
            if not fires:
                continue
            assert "EXISTS" in ap.sql and "COUNT" not in ap.sql.upper()
            before = sorted(map(repr, con.execute(sql).fetchall()))
            after = sorted(map(repr, con.execute(ap.sql).fetchall()))
            assert before, sql  # the comparison should see rows
            assert before == after, (sql, ap.sql)


@pytest.mark.parametrize("wrong", [
    # what the rule must not do: each of these is refuted by the verifier
    ("SELECT r.k FROM r WHERE (SELECT COUNT(*) FROM s WHERE s.rk = r.a) >= 0",
     "SELECT r.k FROM r WHERE EXISTS (SELECT 1 FROM s WHERE s.rk = r.a)"),
    ("SELECT r.k FROM r WHERE (SELECT COUNT(s.x) FROM s WHERE s.rk = r.a) > 0",
     "SELECT r.k FROM r WHERE EXISTS (SELECT 1 FROM s WHERE s.rk = r.a)"),
    ("SELECT r.k FROM r WHERE (SELECT COUNT(*) FROM s WHERE s.rk = r.a) > 1",
     "SELECT r.k FROM r WHERE EXISTS (SELECT 1 FROM s WHERE s.rk = r.a)"),
], ids=["ge0", "count_col", "gt1"])
def test_wrong_variants_refuted(wrong: tuple[str, str]) -> None:
    ddl, _ = load_templates()
    v = verify(wrong[0], wrong[1], load_schema(ddl, "duckdb"), dialect="duckdb", time_budget_s=3)
    assert v.verdict == "NOT_EQUIVALENT"


def test_proved_and_served_under_proved_policy() -> None:
    """Proved on the query at hand: a candidate made by the rule is PROVED, so ``policy = proved`` admits it."""
    assert BY_NAME["count_positive_to_exists"].sound is True
    ddl, templates = load_templates()
    cat = load_schema(ddl, "duckdb")
    sql = next(t["sql"] for t in templates if t["rule"] == "count_positive_to_exists")
    ap = apply_rules(sql, ["count_positive_to_exists"], cat, "duckdb")
    assert ap.applied == ["count_positive_to_exists"]
    cert = certify(sql, Candidate(ap.sql, ap.applied, "rules"), cat, "duckdb", 3.0)
    assert cert.status == "PROVED"
    assert admissible(cert, "proved")
