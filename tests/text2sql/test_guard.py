"""SQL extraction and the read-only guard, on DuckDB and on a real PostgreSQL."""

from __future__ import annotations

import psycopg
import pytest

from sqlsluice.databases import connect
from sqlsluice.errors import InsufficientPrivilege, SyntaxErrorSQL
from sqlsluice.text2sql.guard import check_readonly, extract_sql, run_readonly


@pytest.mark.parametrize("reply, sql", [
    ("```sql\nSELECT a FROM t;\n```", "SELECT a FROM t"),
    ("Sure!\n```SQL\nSELECT 1\n```\nand also\n```\nSELECT 2\n```", "SELECT 1"),
    ("```\nWITH x AS (SELECT 1) SELECT * FROM x\n```", "WITH x AS (SELECT 1) SELECT * FROM x"),
    ("The answer is SELECT name FROM singer;\n\nThis lists names.", "SELECT name FROM singer"),
    ("select name\nfrom singer", "select name\nfrom singer"),
    ("```sql\nSELECT 1 -- cut off", "SELECT 1 -- cut off"),
    ("DROP TABLE singer", "DROP TABLE singer"),
])
def test_extract_sql(reply: str, sql: str) -> None:
    assert extract_sql(reply) == sql


def test_extract_sql_without_sql_is_a_syntax_error() -> None:
    with pytest.raises(SyntaxErrorSQL):
        extract_sql("I cannot answer that.")


@pytest.mark.parametrize("sql", [
    "SELECT 1", "WITH a AS (SELECT 1 AS x) SELECT x FROM a", "SELECT 1 UNION ALL SELECT 2",
    "(SELECT 1) EXCEPT (SELECT 2)", "SELECT * FROM range(3)", "SELECT * FROM generate_series(1, 3)",
])
def test_check_readonly_allows_queries(sql: str) -> None:
    check_readonly(sql, "duckdb")
    check_readonly(sql, "postgres")


@pytest.mark.parametrize("sql, why", [
    ("SELECT 1; SELECT 2", "2 statements"),
    ("DROP TABLE t", "DROP"),
    ("UPDATE t SET a = 1", "UPDATE"),
    ("INSERT INTO t VALUES (1)", "INSERT"),
    ("SELECT * INTO t2 FROM t", "INTO"),
    ("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", "DELETE"),
    ("SELECT * FROM t FOR UPDATE", "LOCK"),
    ("SELECT nextval('s')", "nextval"),
    ("SELECT pg_sleep(10)", "pg_sleep"),
    ("SELECT * FROM read_csv('/etc/passwd')", "read"),
    ("SELECT * FROM '/etc/passwd'", "file path"),
    ("COPY t TO '/tmp/x'", "COPY"),
    ("ATTACH 'x.db' AS x", "ATTACH"),
    ("SELECT * FROM glob('*')", "glob"),
    ("SELECT * FROM some_new_reader('/etc/passwd')", "table function"),
])
def test_check_readonly_refuses(sql: str, why: str) -> None:
    with pytest.raises(InsufficientPrivilege) as ei:
        check_readonly(sql, "duckdb")
    assert ei.value.sqlstate == "42501" and why.lower() in ei.value.message.lower()


def test_run_readonly_limits_rows_on_duckdb() -> None:
    b = connect("duckdb:///:memory:")
    b.execute("CREATE TABLE t AS SELECT range AS i FROM range(50)")
    r = run_readonly(b, "SELECT i FROM t ORDER BY i", row_limit=10)
    assert r.rows == [(i,) for i in range(10)] and r.truncated
    assert not run_readonly(b, "SELECT i FROM t WHERE i < 3", row_limit=10).truncated


def test_readonly_transaction_stops_writes_the_parser_cannot_see(pg_db: str) -> None:
    """A function that writes looks like a plain SELECT; PostgreSQL's READ ONLY transaction refuses it."""
    with psycopg.connect(pg_db, autocommit=True) as c:
        c.execute("CREATE TABLE t (a int)")
        c.execute("CREATE FUNCTION sneaky() RETURNS int LANGUAGE sql AS 'INSERT INTO t VALUES (1) RETURNING 1'")
    b = connect(pg_db)
    try:
        check_readonly("SELECT sneaky()", "postgres")  # the parser lets it through...
        with pytest.raises(InsufficientPrivilege) as ei:
            run_readonly(b, "SELECT sneaky()")  # ...the database does not
        assert "read-only" in ei.value.message
        assert b.execute("SELECT count(*) FROM t").rows == [(0,)]
        assert run_readonly(b, "SELECT count(*) FROM t").rows == [(0,)]
    finally:
        b.close()


def test_statement_timeout_on_postgres(pg_db: str) -> None:
    from sqlsluice.errors import QueryCanceled

    b = connect(pg_db)
    try:
        with pytest.raises(QueryCanceled):
            run_readonly(b, "SELECT count(*) FROM generate_series(1, 100000000000)", timeout_s=0.2)
    finally:
        b.close()
