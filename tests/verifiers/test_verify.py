"""The public API: schema forms, bad input, semantics, live databases, TPC-DS-shaped queries."""

from __future__ import annotations

from pathlib import Path

import pytest

from sqlsluice.databases import Catalog, connect
from sqlsluice.errors import SyntaxErrorSQL, UndefinedTable
from sqlsluice.verifiers import Verdict, check_on_live, verify

DDL = "CREATE TABLE t (a INT PRIMARY KEY, b INT, c VARCHAR NOT NULL);"


def test_schema_forms(tmp_path: Path) -> None:
    p = tmp_path / "s.sql"
    p.write_text(DDL)
    db = tmp_path / "x.duckdb"
    with connect(f"duckdb:///{db}") as be:
        be.execute(DDL)
    q1, q2 = "SELECT a FROM t WHERE b > 1", "SELECT a FROM t WHERE 1 < b"
    for schema in (DDL, p, str(p), Catalog.from_ddl(DDL), f"duckdb:///{db}"):
        v = verify(q1, q2, schema)
        assert isinstance(v, Verdict) and v.verdict == "EQUIVALENT", schema


def test_bad_input_raises_typed_errors() -> None:
    with pytest.raises(SyntaxErrorSQL):
        verify("SELEC a FROM t", "SELECT a FROM t", DDL)
    with pytest.raises(UndefinedTable):
        verify("SELECT a FROM nope", "SELECT a FROM t", DDL)
    with pytest.raises(SyntaxErrorSQL):
        verify("SELECT zz FROM t", "SELECT a FROM t", DDL)


def test_set_semantics() -> None:
    q1, q2 = "SELECT b FROM t", "SELECT DISTINCT b FROM t"
    assert verify(q1, q2, DDL).verdict == "NOT_EQUIVALENT"
    assert verify(q1, q2, DDL, semantics="set", time_budget_s=0.5).verdict == "UNKNOWN"


def test_key_makes_distinct_redundant_only_with_key() -> None:
    # a is the primary key: never a counterexample for DISTINCT a; b has duplicates
    assert verify("SELECT a FROM t", "SELECT DISTINCT a FROM t", DDL, time_budget_s=0.5).verdict != "NOT_EQUIVALENT"
    assert verify("SELECT b FROM t", "SELECT DISTINCT b FROM t", DDL).verdict == "NOT_EQUIVALENT"


def test_postgres_dialect() -> None:
    v = verify("SELECT a::text FROM t WHERE c ILIKE 'x%'", "SELECT CAST(a AS TEXT) FROM t WHERE c ILIKE 'x%'",
               DDL, dialect="postgres")
    assert v.verdict == "EQUIVALENT"


def test_check_on_live(tmp_path: Path) -> None:
    with connect(f"duckdb:///{tmp_path / 'l.duckdb'}") as be:
        be.execute(DDL)
        be.execute("INSERT INTO t VALUES (1, 1, 'x'), (2, 1, 'y'), (3, NULL, 'z')")
        assert check_on_live(be, "SELECT b FROM t", "SELECT b FROM t ORDER BY b", 5) is True
        assert check_on_live(be, "SELECT b FROM t", "SELECT DISTINCT b FROM t", 5) is False
        assert check_on_live(be, "SELECT b FROM t", "SELECT nope FROM t", 5) is None


def test_live_database_refutes_when_generated_data_does_not(tmp_path: Path) -> None:
    with connect(f"duckdb:///{tmp_path / 'l.duckdb'}") as be:
        be.execute(DDL)
        be.execute("INSERT INTO t VALUES (1, 123456, 'x')")
        # generated data aims at 246912 and its neighbours, never at b = 123456
        v = verify("SELECT a FROM t", "SELECT a FROM t WHERE b * 2 <> 246912 OR b IS NULL", be.catalog(), live=be,
                   time_budget_s=0.3)
        assert (v.verdict, v.method) == ("NOT_EQUIVALENT", "live")
        assert v.evidence.live is False and v.evidence.databases_tried > 0


TPCDS_LIKE = [
    # CTE + correlated subquery (TPC-DS q1 shape)
    ("""WITH ctr AS (SELECT sr_customer_sk AS c, sr_store_sk AS s, SUM(sr_return_amt) AS total
                     FROM store_returns, date_dim WHERE sr_returned_date_sk = d_date_sk AND d_year = 2000
                     GROUP BY sr_customer_sk, sr_store_sk)
        SELECT c FROM ctr c1 WHERE c1.total > (SELECT AVG(total) * 1.2 FROM ctr c2 WHERE c1.s = c2.s)
        ORDER BY c LIMIT 100""",
     """WITH ctr AS (SELECT sr_customer_sk AS c, sr_store_sk AS s, SUM(sr_return_amt) AS total
                     FROM date_dim, store_returns WHERE d_year = 2000 AND sr_returned_date_sk = d_date_sk
                     GROUP BY sr_customer_sk, sr_store_sk)
        SELECT c FROM ctr c1 WHERE c1.total > (SELECT AVG(total) * 1.2 FROM ctr c2 WHERE c2.s = c1.s)
        ORDER BY c LIMIT 100"""),
    # EXISTS, UNION ALL, window function, CASE, date arithmetic
    ("""SELECT i_item_id, RANK() OVER (PARTITION BY i_category ORDER BY i_current_price) AS r,
               CASE WHEN i_current_price > 10 THEN 'hi' ELSE 'lo' END AS band
        FROM item WHERE EXISTS (SELECT 1 FROM store_sales WHERE ss_item_sk = i_item_sk)
          AND i_rec_start_date > DATE '2000-01-01' + INTERVAL 30 DAY
        UNION ALL SELECT i_item_id, 0, 'x' FROM item WHERE i_item_sk < 10""",
     """SELECT i_item_id, RANK() OVER (PARTITION BY i_category ORDER BY i_current_price) AS r,
               CASE WHEN i_current_price > 10 THEN 'hi' ELSE 'lo' END AS band
        FROM item WHERE i_rec_start_date > DATE '2000-01-01' + INTERVAL 30 DAY
          AND i_item_sk IN (SELECT ss_item_sk FROM store_sales)
        UNION ALL SELECT i_item_id, 0, 'x' FROM item WHERE i_item_sk < 10"""),
]


@pytest.mark.parametrize(("q1", "q2"), TPCDS_LIKE)
def test_tpcds_shaped_queries_do_not_crash(tpcds_catalog: Catalog, q1: str, q2: str) -> None:
    v = verify(q1, q2, tpcds_catalog, time_budget_s=1.0)
    assert v.verdict in ("EQUIVALENT", "UNKNOWN"), v.counterexample
    assert len(tpcds_catalog.tables) == 24


def test_tpcds_mutation_refuted(tpcds_catalog: Catalog) -> None:
    q1 = "SELECT i_item_id FROM item WHERE i_current_price > 10 AND i_category = 'Books'"
    q2 = "SELECT i_item_id FROM item WHERE i_current_price >= 10 AND i_category = 'Books'"
    v = verify(q1, q2, tpcds_catalog)
    assert v.verdict == "NOT_EQUIVALENT"
