"""psycopg 3 through sqlsluice over DuckDB: client- and server-side binding, binary results,
executemany, transactions, errors and cancel."""

from __future__ import annotations

import datetime as dt
import threading
import time
from decimal import Decimal

import psycopg
import pytest

ROW = (7, 2**40, Decimal("12345.678"), 2.5, "héllo", True, dt.date(2024, 2, 29),
       dt.datetime(2024, 2, 29, 13, 14, 15, 123456), None)
SELECT = ("SELECT 7::INTEGER AS i, 1099511627776::BIGINT AS b, 12345.678::DECIMAL(12,3) AS n, 2.5::DOUBLE AS f, "
          "'héllo' AS t, true AS ok, DATE '2024-02-29' AS d, TIMESTAMP '2024-02-29 13:14:15.123456' AS ts, "
          "NULL::INTEGER AS z")


@pytest.fixture()
def conn(server):
    with psycopg.connect(server.dsn(), autocommit=True) as c:
        yield c


def test_types_round_trip_text_and_binary(conn):
    assert conn.execute(SELECT).fetchone() == ROW
    assert conn.execute(SELECT, binary=True).fetchone() == ROW
    with conn.cursor(binary=True) as cur:
        cur.execute(SELECT)
        assert cur.fetchone() == ROW


def test_server_side_binding_round_trips_parameters(conn):
    q = "SELECT %s::INTEGER, %s::BIGINT, %s::DECIMAL(12,3), %s::DOUBLE, %s, %s::BOOLEAN, %s::DATE, %s::TIMESTAMP, %s"
    assert conn.execute(q, list(ROW)).fetchone() == ROW
    assert conn.execute(q, list(ROW), binary=True).fetchone() == ROW


def test_client_side_binding(server):
    with psycopg.connect(server.dsn(), autocommit=True, cursor_factory=psycopg.ClientCursor) as c:
        cur = c.execute("SELECT %s::INTEGER + 1, %s, %s::DATE", [41, "it's", dt.date(2020, 1, 2)])
        assert cur.fetchone() == (42, "it's", dt.date(2020, 1, 2))


def test_executemany_and_table_round_trip(conn):
    conn.execute("CREATE TABLE pg_items (id INTEGER PRIMARY KEY, name VARCHAR, price DECIMAL(10,2), "
                 "born DATE, seen TIMESTAMP, ok BOOLEAN)")
    rows = [(1, "a", Decimal("1.50"), dt.date(2020, 1, 1), dt.datetime(2020, 1, 1, 10), True),
            (2, None, None, None, None, None),
            (3, "ç", Decimal("-0.01"), dt.date(1999, 12, 31), dt.datetime(1999, 12, 31, 23, 59, 59), False)]
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO pg_items VALUES (%s, %s, %s, %s, %s, %s)", rows)
    assert conn.execute("SELECT * FROM pg_items ORDER BY id").fetchall() == rows
    assert conn.execute("SELECT * FROM pg_items ORDER BY id", binary=True).fetchall() == rows
    assert conn.execute("SELECT name FROM pg_items WHERE id = %s", [3]).fetchone() == ("ç",)


def test_transaction_rolled_back_leaves_nothing(server):
    with psycopg.connect(server.dsn()) as c:  # autocommit off: psycopg sends BEGIN
        c.execute("CREATE TABLE IF NOT EXISTS pg_tx (v INTEGER)")
        c.commit()
        c.execute("INSERT INTO pg_tx VALUES (1)")
        assert c.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        c.rollback()
        assert c.execute("SELECT count(*) FROM pg_tx").fetchone() == (0,)
        c.rollback()
        with c.transaction():
            c.execute("INSERT INTO pg_tx VALUES (2)")
        assert c.execute("SELECT v FROM pg_tx").fetchall() == [(2,)]


def test_error_in_transaction_reports_failed_status_until_rollback(server):
    with psycopg.connect(server.dsn()) as c:
        with pytest.raises(psycopg.errors.UndefinedTable):
            c.execute("SELECT * FROM no_such_table")
        assert c.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            c.execute("SELECT 1")
        c.rollback()
        assert c.execute("SELECT 1").fetchone() == (1,)


def test_error_leaves_connection_usable(conn):
    with pytest.raises(psycopg.errors.SyntaxError):
        conn.execute("SELEC 1")
    with pytest.raises(psycopg.Error) as ei:
        conn.execute("SELECT 1 / 'x'::INTEGER")
    assert ei.value.sqlstate is not None
    assert conn.execute("SELECT 2").fetchone() == (2,)
    assert conn.execute("SELECT %s::INTEGER", [3]).fetchone() == (3,)


def test_failed_statement_writes_nothing(conn):
    conn.execute("CREATE TABLE pg_pk (id INTEGER PRIMARY KEY)")
    conn.execute("INSERT INTO pg_pk VALUES (1)")
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute("INSERT INTO pg_pk VALUES (2), (1)")
    assert conn.execute("SELECT id FROM pg_pk").fetchall() == [(1,)]


def test_long_query_is_cancelled_from_the_client(server):
    with psycopg.connect(server.dsn(), autocommit=True) as c:
        errors: list[BaseException] = []

        def run() -> None:
            try:
                c.execute("SELECT count(*) FROM range(10000000000) t(x) WHERE x % 7 = 3")
            except BaseException as e:
                errors.append(e)

        t = threading.Thread(target=run)
        t.start()
        # cancel_safe(): libpq's blocking PQcancel would hold the GIL while this in-process
        # server answers; the non-blocking variant is what an asyncio-friendly client uses
        while t.is_alive():  # cancel until the statement is gone (no timing assumption)
            c.cancel_safe(timeout=5)
            t.join(0.2)
        assert len(errors) == 1 and isinstance(errors[0], psycopg.errors.QueryCanceled)
        assert c.execute("SELECT 1").fetchone() == (1,)


def test_many_rows_stream_in_batches(conn):
    rows = conn.execute("SELECT range AS x, 'row ' || range::VARCHAR AS s FROM range(50000)").fetchall()
    assert len(rows) == 50000 and rows[-1] == (49999, "row 49999")


def test_multiple_statements_in_one_query(server):
    with psycopg.connect(server.dsn(), autocommit=True) as c:
        cur = c.cursor()
        cur.execute("SELECT 1; SELECT 'two'; -- trailing comment")
        assert cur.fetchall() == [(1,)]
        assert cur.nextset() and cur.fetchall() == [("two",)]


def test_connect_time_catalog_answers(conn):
    assert conn.execute("SELECT version()").fetchone()[0].startswith("PostgreSQL 15")
    assert conn.execute("SHOW standard_conforming_strings").fetchone() == ("on",)
    assert conn.execute("SHOW transaction isolation level").fetchone() == ("read committed",)
    assert conn.execute("SELECT current_schema()").fetchone() == ("public",)
    assert conn.execute("SELECT set_config('application_name', 'x', false)").fetchone() == ("x",)
    conn.execute("SET extra_float_digits = 3")
    conn.execute("SET application_name TO 'tests'")
    conn.execute("SET TIME ZONE 'UTC'")
    assert conn.info.parameter_status("server_version").split()[0] >= "12"
    assert conn.info.parameter_status("client_encoding") == "UTF8"


def test_other_clients_are_served_during_a_long_query(server):
    with psycopg.connect(server.dsn(), autocommit=True) as slow, \
            psycopg.connect(server.dsn(), autocommit=True) as fast:
        t = threading.Thread(target=lambda: _swallow(slow.execute,
                                                     "SELECT count(*) FROM range(10000000000) t(x) WHERE x % 7 = 3"))
        t.start()
        try:
            time.sleep(0.2)
            assert fast.execute("SELECT 42").fetchone() == (42,)
        finally:
            while t.is_alive():
                slow.cancel_safe(timeout=5)
                t.join(0.2)


def _swallow(fn, *args):
    try:
        fn(*args)
    except psycopg.Error:
        pass


def test_named_server_cursor(server):
    with psycopg.connect(server.dsn()) as c:  # DECLARE needs a transaction, as on PostgreSQL
        with c.cursor(name="big") as cur:
            cur.itersize = 100
            cur.execute("SELECT range AS x FROM range(%s)", [5000])
            first = cur.fetchmany(10)
            assert c.execute("SELECT 'interleaved'").fetchone() == ("interleaved",)
            rest = [r[0] for r in cur]
        assert [r[0] for r in first] + rest == list(range(5000))
        with c.cursor(name="bin", binary=True) as cur:
            cur.execute("SELECT DATE '2020-01-02' + range::INTEGER AS d FROM range(3)")
            assert cur.fetchall() == [(dt.date(2020, 1, 2 + i),) for i in range(3)]
        c.rollback()
    with psycopg.connect(server.dsn(), autocommit=True) as c:
        with pytest.raises(psycopg.errors.NoActiveSqlTransaction):
            c.execute("DECLARE nohold CURSOR FOR SELECT 1")
        c.execute("DECLARE held CURSOR WITH HOLD FOR SELECT range FROM range(10)")
        c.execute("MOVE 3 FROM held")
        assert c.execute("FETCH 2 FROM held").fetchall() == [(3,), (4,)]
        assert c.execute("FETCH ALL FROM held").fetchall() == [(i,) for i in range(5, 10)]
        c.execute("CLOSE held")
        with pytest.raises(psycopg.errors.InvalidCursorName):
            c.execute("FETCH 1 FROM held")


def test_notices_reach_the_client(conn):
    got: list[tuple[str, str]] = []
    conn.add_notice_handler(lambda d: got.append((d.severity, d.message_primary)))
    conn.execute("COMMIT")
    conn.execute("BEGIN")
    conn.execute("BEGIN")
    conn.execute("ROLLBACK")
    assert got == [("WARNING", "there is no transaction in progress"),
                   ("WARNING", "there is already a transaction in progress")]


def test_statement_timeout_set_by_the_client(conn):
    conn.execute("SET statement_timeout = '300ms'")
    with pytest.raises(psycopg.errors.QueryCanceled) as ei:
        conn.execute("SELECT count(*) FROM range(10000000000) t(x) WHERE x % 7 = 3")
    assert "statement timeout" in str(ei.value)
    conn.execute("SET statement_timeout = 0")
    assert conn.execute("SELECT 1").fetchone() == (1,)
    conn.execute("RESET statement_timeout")


def test_server_statement_timeout_from_config(tmp_path):
    from sqlsluice.config import Config, ServerConfig

    from .conftest import start

    th, srv = start(tmp_path, Config(server=ServerConfig(statement_timeout_s=0.3)))
    try:
        with psycopg.connect(srv.dsn(), autocommit=True) as c:
            with pytest.raises(psycopg.errors.QueryCanceled) as ei:
                c.execute("SELECT count(*) FROM range(10000000000) t(x) WHERE x % 7 = 3")
            assert "statement timeout" in str(ei.value)
            assert c.execute("SELECT 2").fetchone() == (2,)
    finally:
        th.stop()


def test_statements_of_one_query_run_in_one_implicit_transaction(server):
    """As on PostgreSQL: a failure later in a multi-statement Query undoes the earlier statements."""
    with psycopg.connect(server.dsn(), autocommit=True) as c:
        c.execute("CREATE TABLE implicit_tx (a INTEGER PRIMARY KEY)")
        with pytest.raises(psycopg.errors.Error):
            c.execute("INSERT INTO implicit_tx VALUES (1); INSERT INTO implicit_tx VALUES (1)", prepare=False)
        assert c.execute("SELECT count(*) FROM implicit_tx").fetchone() == (0,)
        c.execute("INSERT INTO implicit_tx VALUES (1); INSERT INTO implicit_tx VALUES (2)", prepare=False)
        assert c.execute("SELECT count(*) FROM implicit_tx").fetchone() == (2,)
        assert c.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
