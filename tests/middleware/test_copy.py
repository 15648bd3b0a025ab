"""COPY FROM STDIN / TO STDOUT over DuckDB with psycopg and psql."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from decimal import Decimal

import psycopg
import pytest

from sqlsluice.middleware.copy import parse_copy, text_row_to_csv

ROWS = [(1, "plain", Decimal("1.50"), dt.date(2020, 1, 1)),
        (2, "tab\there, new\nline, back\\slash, \"quote\", comma", None, None),
        (3, "", Decimal("-2.25"), dt.date(1999, 12, 31))]


@pytest.fixture()
def conn(server):
    with psycopg.connect(server.dsn(), autocommit=True) as c:
        c.execute("CREATE OR REPLACE TABLE cp (id INTEGER, s VARCHAR, n DECIMAL(10,2), d DATE)")
        yield c


def test_copy_in_text_format_with_escapes(conn):
    with conn.cursor().copy("COPY cp FROM STDIN") as cp:
        for r in ROWS:
            cp.write_row(r)
    assert conn.execute("SELECT * FROM cp ORDER BY id").fetchall() == ROWS


def test_copy_in_csv_with_header_and_columns(conn):
    with conn.cursor().copy("COPY cp (id, s) FROM STDIN WITH (FORMAT csv, HEADER true)") as cp:
        cp.write(b'id,s\n1,"a,b"\n2,\n3,""\n')
    assert conn.execute("SELECT id, s, n FROM cp ORDER BY id").fetchall() == [
        (1, "a,b", None), (2, None, None), (3, "", None)]


def test_copy_out_text_and_csv_round_trip(conn):
    with conn.cursor().copy("COPY cp FROM STDIN") as cp:
        for r in ROWS:
            cp.write_row(r)
    with conn.cursor().copy("COPY (SELECT * FROM cp ORDER BY id) TO STDOUT") as cp:
        cp.set_types(["int4", "text", "numeric", "date"])
        assert list(cp.rows()) == ROWS
    with conn.cursor().copy("COPY cp TO STDOUT WITH (FORMAT csv, HEADER)") as cp:
        data = b"".join(cp)
    assert data.startswith(b"id,s,n,d\n1,plain,1.50,2020-01-01\n")


def test_copy_fail_from_client_writes_nothing(conn):
    with pytest.raises(RuntimeError):  # psycopg sends CopyFail, reads the error, re-raises its own
        with conn.cursor().copy("COPY cp FROM STDIN") as cp:
            cp.write_row((9, "x", None, None))
            raise RuntimeError("client gives up")
    assert conn.execute("SELECT count(*) FROM cp").fetchone() == (0,)


def test_copy_bad_data_is_an_error_and_connection_survives(conn):
    with pytest.raises(psycopg.Error):
        with conn.cursor().copy("COPY cp FROM STDIN") as cp:
            cp.write(b"not-a-number\tx\t\\N\t\\N\n")
    assert conn.execute("SELECT count(*) FROM cp").fetchone() == (0,)
    with pytest.raises(psycopg.Error):
        with conn.cursor().copy("COPY cp FROM STDIN (FORMAT binary)") as cp:
            cp.write(b"not a PGCOPY header at all")
    assert conn.execute("SELECT count(*) FROM cp").fetchone() == (0,)


def test_binary_copy_with_psycopg(conn):
    with conn.cursor().copy("COPY cp FROM STDIN (FORMAT binary)") as cp:
        cp.set_types(["int4", "text", "numeric", "date"])
        for r in ROWS:
            cp.write_row(r)
    assert conn.execute("SELECT * FROM cp ORDER BY id").fetchall() == ROWS
    with conn.cursor().copy("COPY (SELECT * FROM cp ORDER BY id) TO STDOUT (FORMAT binary)") as cp:
        cp.set_types(["int4", "text", "numeric", "date"])
        assert list(cp.rows()) == ROWS


def test_asyncpg_copy_records_and_copy_out(server, conn):
    import asyncio

    import asyncpg

    async def go():
        c = await asyncpg.connect(host=server.host, port=server.port, user="sluice", database="tpcds")
        try:
            await c.copy_records_to_table("cp", records=ROWS, columns=["id", "s", "n", "d"])
            got = [tuple(r) for r in await c.fetch("SELECT * FROM cp ORDER BY id")]
            import io

            buf = io.BytesIO()
            await c.copy_from_query("SELECT id, s FROM cp WHERE id <> 2 ORDER BY id", output=buf, format="csv")
            return got, buf.getvalue()
        finally:
            await c.close()

    got, csv = asyncio.run(go())
    assert got == ROWS
    assert csv == b'1,plain\n3,""\n'


def test_psql_backslash_copy(server, conn, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("1,hello,2.50,2021-02-03\n2,,,\n")
    env = {**os.environ, "PGCONNECT_TIMEOUT": "10"}
    base = ["psql", "-X", "-A", "-t", "-h", server.host, "-p", str(server.port), "-U", "sluice", "tpcds"]
    r = subprocess.run([*base, "-c", f"\\copy cp FROM '{src}' WITH (FORMAT csv)"], capture_output=True, text=True,
                       env=env, timeout=60)
    assert r.returncode == 0 and "COPY 2" in r.stdout, r.stderr
    r = subprocess.run([*base, "-c", "COPY (SELECT id, s FROM cp ORDER BY id) TO STDOUT"], capture_output=True,
                       text=True, env=env, timeout=60)
    assert r.stdout == "1\thello\n2\t\\N\n"


def test_parse_copy_variants():
    assert parse_copy("SELECT 1") is None
    assert parse_copy("COPY t TO '/tmp/file.csv'") is None  # server-side file: DuckDB runs it
    c = parse_copy("copy public.t from stdin with csv header delimiter ';' null 'NA'")
    assert (c.source, c.format, c.header, c.delimiter, c.null) == ("public.t", "csv", True, ";", "NA")
    c = parse_copy("COPY (SELECT a, (b) FROM t) TO STDOUT")
    assert c.is_query and c.select_sql() == "SELECT a, (b) FROM t" and c.direction == "out"
    assert text_row_to_csv(b'a\\nb\t"q"\t\\N') == '"a\nb","""q""",\\N\n'
