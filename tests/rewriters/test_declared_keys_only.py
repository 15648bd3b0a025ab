"""Keys are trusted only where the database declares them.

The rewriter once filled TPC-DS's primary keys into the catalog of any database whose tables
are named like TPC-DS's.  On such a database without keys, holding duplicate rows, a key-based
rule (``distinct_remove_under_keys``) would then drop a DISTINCT and change the answer.
"""

from __future__ import annotations

import duckdb

from sqlsluice.databases import connect
from sqlsluice.databases.tpcds import declare_tpcds_keys
from sqlsluice.rewriters.api import catalog_for, rewrite

TABLES = {
    "store_sales": "ss_item_sk INT, ss_ticket_number INT, ss_quantity INT",
    "date_dim": "d_date_sk INT, d_year INT",
    "item": "i_item_sk INT, i_category VARCHAR",
    "customer": "c_customer_sk INT, c_name VARCHAR",
}


def _keyless_tpcds_lookalike(path: str) -> None:
    con = duckdb.connect(path)
    for t, cols in TABLES.items():
        con.execute(f"CREATE TABLE {t} ({cols})")
    con.execute("INSERT INTO item VALUES (1, 'Music'), (1, 'Music'), (2, 'Books')")  # a duplicate row
    con.execute("INSERT INTO customer VALUES (7, 'a'), (7, 'a')")
    con.close()


def test_keys_named_like_tpcds_are_not_assumed(tmp_path) -> None:
    path = str(tmp_path / "lookalike.duckdb")
    _keyless_tpcds_lookalike(path)
    be = connect(f"duckdb:///{path}")
    try:
        cat = catalog_for(be)
        assert all(not t.primary_key for t in cat.tables)
        sql = "SELECT DISTINCT i_item_sk, i_category FROM item ORDER BY 1"
        r = rewrite(be, sql, timing=False)
        assert "distinct_remove_under_keys" not in (r.rules or [])
        served = r.sql
        assert be.execute(served).rows == be.execute(sql).rows == [(1, "Music"), (2, "Books")]
    finally:
        be.close()


def test_declared_keys_are_used_and_violated_keys_not_declared(tmp_path) -> None:
    path = str(tmp_path / "lookalike.duckdb")
    _keyless_tpcds_lookalike(path)
    con = duckdb.connect(path)
    con.execute("DELETE FROM customer")
    con.execute("INSERT INTO customer VALUES (7, 'a'), (8, 'b')")
    declared = declare_tpcds_keys(con)
    con.close()
    # item holds a duplicate key value: DuckDB refuses that key and the table stays without one
    assert "item" not in declared and {"customer", "store_sales", "date_dim"} <= set(declared)
    be = connect(f"duckdb:///{path}")
    try:
        cat = catalog_for(be)
        assert cat.table("customer").primary_key == ["c_customer_sk"]
        assert not cat.table("item").primary_key
    finally:
        be.close()
