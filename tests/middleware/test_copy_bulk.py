"""COPY FROM STDIN over DuckDB loads in bulk (DuckDB's own COPY of the data as sent) and
reads the data as PostgreSQL does: the same bytes into a real PostgreSQL and into sqlsluice
give the same table; bad data gives PostgreSQL's SQLSTATEs."""

from __future__ import annotations

import io

import psycopg
import pytest

from sqlsluice.middleware.copy import CopySpec, TextCopyWriter

DDL = "CREATE TABLE bulk (id INTEGER, s VARCHAR, n NUMERIC(10,2), d DATE, big BIGINT)"


def text_data(rows: int) -> bytes:
    """Plain lines, with every 500th line carrying escapes, quotes, '#' and control characters."""
    out = []
    for i in range(rows):
        if i % 500 == 7:
            s = "tab\\there\\nnew \\\\back \"q\" \x01 #x"
        elif i % 500 == 9:
            s = "#starts like a comment"
        else:
            s = "\\N" if i % 13 == 0 else ("" if i % 17 == 0 else f"name {i}")
        n = "\\N" if i % 11 == 0 else f"{i % 1000}.{i % 100:02d}"
        out.append(f"{i}\t{s}\t{n}\t2021-{1 + i % 12:02d}-{1 + i % 28:02d}\t{i * 1000003}\n")
    return "".join(out).encode()


def load(conn: psycopg.Connection, data: bytes, opts: str = "") -> int:
    conn.execute("DROP TABLE IF EXISTS bulk")
    conn.execute(DDL)
    with conn.cursor() as cur:
        with cur.copy(f"COPY bulk FROM STDIN {opts}") as cp:
            for i in range(0, len(data), 8192):  # lines split across CopyData messages
                cp.write(data[i:i + 8192])
        return cur.rowcount


def table(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute("SELECT id, s, n, d, big FROM bulk ORDER BY id").fetchall()


@pytest.fixture()
def both(server, pg_db):
    with psycopg.connect(server.dsn(), autocommit=True) as duck, psycopg.connect(pg_db, autocommit=True) as pg:
        yield duck, pg


@pytest.mark.parametrize("opts, transform", [
    ("", lambda b: b),
    ("(DELIMITER '|', NULL 'NULL')", lambda b: b.replace(b"\t", b"|").replace(b"\\N", b"NULL")),
    ("(NULL '')", lambda b: b.replace(b"\\N", b"")),
    ("", lambda b: b.replace(b"\n", b"\r\n")),
])
def test_text_copy_same_table_as_postgresql(both, opts, transform):
    duck, pg = both
    data = transform(text_data(3000))
    assert load(duck, data, opts) == load(pg, data, opts) == 3000
    got, want = table(duck), table(pg)
    assert got == want
    assert sum(1 for r in got if r[1] is None) > 100 and any(r[1] == "" for r in got) != (opts == "(NULL '')")


def test_csv_copy_same_table_as_postgresql(both):
    duck, pg = both
    data = (b"id,s,n,d,big\n1,\"a,b\",1.5,2020-01-01,7\n2,,,,\n3,\"\",-2.25,1999-12-31,9\n"
            b"#4,x,1,2020-01-01,1\n")
    opts = "(FORMAT csv, HEADER true)"
    with pytest.raises(psycopg.errors.InvalidTextRepresentation):
        load(pg, data, opts)  # '#4' is not an integer: no line is a comment
    with pytest.raises(psycopg.errors.InvalidTextRepresentation):
        load(duck, data, opts)
    data = data.replace(b"#4", b"4")
    assert load(duck, data, opts) == load(pg, data, opts) == 4
    assert table(duck) == table(pg)


@pytest.mark.parametrize("data, sqlstate, message", [
    (b"1\tx\t1.5\t2020-01-01\t1\n2\tx\n", "22P04", 'missing data for column "n"'),
    (b"1\tx\t1.5\t2020-01-01\t1\textra\n", "22P04", "extra data after last expected column"),
    (b"1\tx\t1.5\t2020-01-01\t1\nzz\tx\t1.5\t2020-01-01\t1\n", "22P02", 'invalid input syntax for type integer: "zz"'),
    (b"1\t\xff\xfe\t1.5\t2020-01-01\t1\n", "22021", 'invalid byte sequence for encoding "UTF8"'),
])
def test_bad_text_data_is_postgresql_error(server, pg_db, data, sqlstate, message):
    for dsn in (server.dsn(), pg_db):
        with psycopg.connect(dsn, autocommit=True) as c:
            with pytest.raises(psycopg.Error) as e:
                load(c, data)
            assert e.value.sqlstate == sqlstate
            assert str(e.value).startswith(message), (dsn, str(e.value))
            assert c.execute("SELECT count(*) FROM bulk").fetchone() == (0,)  # nothing loaded, session usable


def test_text_writer_passes_plain_blocks_through():
    data = text_data(2000)
    plain = b"\n".join(data.split(b"\n")[10:400]) + b"\n"  # lines 10..399: no escapes
    assert b"\\t" not in plain
    w = TextCopyWriter(io.BytesIO(), CopySpec("t", False, [], "in"))
    w.feed(plain)
    w.feed(b"5\ta\\tb\t\\N\t2020-01-01\t1\n")
    w.finish()
    assert w.fast_blocks == 1 and w.slow_blocks == 1
    assert w.out.getvalue().startswith(plain)
    assert w.out.getvalue().endswith(b"\x015\x01\t\x01a\tb\x01\t\\N\t\x012020-01-01\x01\t\x011\x01\n")


def test_header_in_text_format_and_csv_escape_as_postgresql(both):
    duck, pg = both
    text = b"id\ts\tn\td\tbig\n1\tx\t1.5\t2020-01-01\t7\n2\t\\N\t\\N\t\\N\t\\N\n"
    assert load(duck, text, "(HEADER true)") == load(pg, text, "(HEADER true)") == 2
    assert table(duck) == table(pg)
    csv = b'1,"a\\"b",1.5,2020-01-01,7\n2,"c\\\\",,,\n'
    opts = "(FORMAT csv, ESCAPE '\\')"
    assert load(duck, csv, opts) == load(pg, csv, opts) == 2
    assert table(duck) == table(pg) and table(pg)[0][1] == 'a"b'


def test_copy_module_doctests():
    import doctest

    from sqlsluice.middleware import copy

    result = doctest.testmod(copy)
    assert result.attempted >= 10 and result.failed == 0


def test_text_copy_with_column_list_as_postgresql(both):
    for c in both:
        c.execute("DROP TABLE IF EXISTS bulk_cols")
        c.execute("CREATE TABLE bulk_cols (id INTEGER, s VARCHAR DEFAULT 'dflt', n INTEGER)")
        with c.cursor() as cur:
            with cur.copy("COPY bulk_cols (n, id) FROM STDIN") as cp:
                cp.write(b"10\t1\n\\N\t2\n30\t3\n")
            assert cur.rowcount == 3
    duck, pg = both
    q = "SELECT id, s, n FROM bulk_cols ORDER BY id"
    assert duck.execute(q).fetchall() == pg.execute(q).fetchall() == [(1, "dflt", 10), (2, "dflt", None),
                                                                       (3, "dflt", 30)]


def test_binary_copy_same_table_as_postgresql(both):
    import datetime as dt
    from decimal import Decimal

    rows = [(i, i * 3 - 50, Decimal(i * 7919 - 10**6).scaleb(-3), None if i % 7 == 0 else f'q"{i}\n,\\x',
             dt.date(1 + i % 9000, 1 + i % 12, 1 + i % 28), i % 2 == 0, i / 7, dt.datetime(2020, 1, 1, i % 24))
            for i in range(2000)]
    rows.append((9999, None, Decimal("12345678901234.5678"), "", dt.date(2024, 2, 29), None, None, None))
    for c in both:
        c.execute("DROP TABLE IF EXISTS bulk_bin")
        c.execute("CREATE TABLE bulk_bin (id INTEGER, small SMALLINT, n NUMERIC(20,4), s VARCHAR, d DATE, b BOOLEAN, "
                  "f DOUBLE PRECISION, ts TIMESTAMP)")
        with c.cursor() as cur:
            with cur.copy("COPY bulk_bin FROM STDIN (FORMAT binary)") as cp:
                cp.set_types(["int4", "int2", "numeric", "text", "date", "bool", "float8", "timestamp"])
                for r in rows:
                    cp.write_row(r)
            assert cur.rowcount == len(rows)
    duck, pg = both
    q = "SELECT * FROM bulk_bin ORDER BY id"
    assert duck.execute(q).fetchall() == pg.execute(q).fetchall()


# --- binary format: decoded column by column (BinaryCopyDecoder) ------------------------------
BIN_DDL = ("CREATE TABLE bin_all (id INTEGER, i2 SMALLINT, i8 BIGINT, f4 REAL, f8 DOUBLE PRECISION, "
           "n NUMERIC(20,4), m NUMERIC(12,2), s TEXT, v VARCHAR, d DATE, ts TIMESTAMP, tz TIMESTAMPTZ, "
           "b BOOLEAN, raw BYTEA, u UUID)")
BIN_TYPES = ["int4", "int2", "int8", "float4", "float8", "numeric", "numeric", "text", "varchar", "date",
             "timestamp", "timestamptz", "bool", "bytea", "uuid"]


def bin_rows(count: int) -> list[tuple]:
    import datetime as dt
    import uuid
    from decimal import Decimal

    texts = ["", "plain", "tab\there", "new\nline\r\n", 'q"uote', "back\\slash", "ctl \x01 \x02 \x03", "é 日本",
             "00\x05", "x" * 300]
    numerics = [Decimal("0"), Decimal("-0.0001"), Decimal("12345678901234.5678"), Decimal("1.00005"),
                Decimal("-99999999.99"), Decimal("10000"), Decimal("0.5"), Decimal("123456789012.3456")]
    twodp = [Decimal("1.005"), Decimal("-1.005"), Decimal("0.01"), Decimal("9999999999.99"), Decimal("7"),
             Decimal("-0.004"), Decimal("1234.5")]
    dates = [dt.date(2000, 1, 1), dt.date(1999, 12, 31), dt.date(1, 1, 1), dt.date(9999, 12, 31), dt.date(1970, 1, 1)]
    utc = dt.UTC
    rows = []
    for i in range(count):
        def null(k: int, v, i: int = i):  # every column is NULL on some rows, each on its own pattern
            return None if (i + k) % (7 + k) == 0 else v
        rows.append((
            i, null(1, (i * 37) % 65536 - 32768), null(2, (i - count // 2) * 10**12 + i),
            null(3, [0.5, -1.25, float("inf"), 1024.0, -0.0][i % 5]), null(4, (i - 700) / 7),
            null(5, numerics[i % len(numerics)] * (1 if i % 3 else -1)), null(6, twodp[i % len(twodp)]),
            null(7, texts[i % len(texts)] + str(i)), null(8, texts[(i + 3) % len(texts)]),
            null(9, dates[i % len(dates)] if i % 2 else dt.date(2000, 1, 1) + dt.timedelta(days=i * 13 - 5000)),
            null(10, dt.datetime(1990, 1, 1) + dt.timedelta(seconds=i * 86399.123457)),
            null(11, dt.datetime(2001, 2, 3, 4, 5, 6, i, tzinfo=dt.timezone(dt.timedelta(hours=i % 12 - 6))) if i % 5
                 else dt.datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=utc)),
            null(12, i % 3 == 0), null(13, bytes([i % 256, 0, 255]) * (i % 4)), null(14, uuid.UUID(int=i * 7919)),
        ))
    return rows


def copy_binary(conn: psycopg.Connection, rows: list[tuple], table: str = "bin_all",
                types: list[str] = BIN_TYPES) -> int:
    with conn.cursor() as cur:
        with cur.copy(f"COPY {table} FROM STDIN (FORMAT binary)") as cp:
            cp.set_types(types)
            for r in rows:
                cp.write_row(r)
        return cur.rowcount


@pytest.fixture()
def small_batches(monkeypatch):
    """Batches of a few kB, so that a COPY is many batches and rows straddle them."""
    from sqlsluice.middleware import session_duckdb

    monkeypatch.setattr(session_duckdb, "BINARY_CHUNK", 3000)
    inserts = []
    insert = session_duckdb.DuckDBHandler._insert_batch

    def counted(self, *args):
        inserts.append(1)
        return insert(self, *args)
    monkeypatch.setattr(session_duckdb.DuckDBHandler, "_insert_batch", counted)
    return inserts


@pytest.mark.parametrize("batches", ["one", "many"])
def test_binary_copy_every_type_same_as_postgresql(both, request, batches):
    inserts = request.getfixturevalue("small_batches") if batches == "many" else None
    rows = bin_rows(1500)
    rows.append((10**6, None, None, None, None, None, None, "L" * (3 << 20), None, None, None, None, None, None,
                 None))  # one value longer than the CSV reader's default line limit
    for c in both:
        c.execute("DROP TABLE IF EXISTS bin_all")
        c.execute(BIN_DDL)
        assert copy_binary(c, rows) == len(rows)
    duck, pg = both
    q = "SELECT * FROM bin_all ORDER BY id"
    got, want = duck.execute(q).fetchall(), pg.execute(q).fetchall()
    assert len(got) == len(want) == len(rows)
    for g, w in zip(got, want, strict=True):
        assert g == w
    assert inserts is None or len(inserts) > 5
    assert sum(1 for r in got if r[7] is None) > 50 and any(r[6] == __import__("decimal").Decimal("-1.01")
                                                               for r in got)  # 1.005 rounds half away from 0


def test_binary_copy_infinities_as_postgresql(both):
    import struct as st

    from sqlsluice.middleware.copy import BINARY_TRAILER, binary_header

    def row(*fields: bytes | None) -> bytes:
        return st.pack("!h", len(fields)) + b"".join(
            st.pack("!i", -1) if f is None else st.pack("!i", len(f)) + f for f in fields)

    data = binary_header() + b"".join([
        row(st.pack("!i", 1), st.pack("!i", 2**31 - 1), st.pack("!q", 2**63 - 1), st.pack("!q", 2**63 - 1)),
        row(st.pack("!i", 2), st.pack("!i", -2**31), st.pack("!q", -2**63), st.pack("!q", -2**63)),
        row(st.pack("!i", 3), st.pack("!i", 0), st.pack("!q", 0), None),
    ]) + BINARY_TRAILER
    for c in both:
        c.execute("DROP TABLE IF EXISTS bin_inf")
        c.execute("CREATE TABLE bin_inf (id INTEGER, d DATE, ts TIMESTAMP, tz TIMESTAMPTZ)")
        with c.cursor() as cur:
            with cur.copy("COPY bin_inf FROM STDIN (FORMAT binary)") as cp:
                cp.write(data)
            assert cur.rowcount == 3
    q = ("SELECT id, isfinite(d), d > DATE '2000-01-01', isfinite(ts), ts > TIMESTAMP '2000-01-01', "
         "tz IS NULL FROM bin_inf ORDER BY id")
    duck, pg = both
    assert duck.execute(q).fetchall() == pg.execute(q).fetchall() == [
        (1, False, True, False, True, False), (2, False, False, False, False, False), (3, True, False, True, False, True)]


def _bin_row(*fields: bytes | None) -> bytes:
    import struct as st

    return st.pack("!h", len(fields)) + b"".join(
        st.pack("!i", -1) if f is None else st.pack("!i", len(f)) + f for f in fields)


def _bin_ok(i: int) -> bytes:
    import struct as st

    return _bin_row(st.pack("!i", i), f"row {i}".encode(), None)


_HDR = b"PGCOPY\n\xff\r\n\x00" + bytes(8)


@pytest.mark.parametrize("data, sqlstate, message", [
    (b"PGCOPX\n\xff\r\n\x00" + bytes(8) + b"\xff\xff", "22P04", "COPY file signature not recognized"),
    (_HDR + _bin_ok(1) + _bin_row(b"\x00\x00\x00\x02", b"x") + b"\xff\xff", "22P04", "row field count is 2, expected 3"),
    (_HDR + _bin_ok(1) + b"\x00\x03\x00\x00\x00\x04\x00\x00\x00\x02\xff\xff\xff\xfe", "22P04", "invalid field size"),
    (_HDR + _bin_ok(1) + _bin_ok(2)[:9], "22P04", "unexpected EOF in COPY data"),
    (_HDR + _bin_ok(1) + b"\xff\xff" + _bin_ok(2), "22P04", "received copy data after EOF marker"),
    (_HDR + _bin_ok(1) + _bin_row(b"\x00\x00\x02", b"x", None) + b"\xff\xff", "08P01",
     "insufficient data left in message"),
    (_HDR + _bin_ok(1) + _bin_row(b"\x00\x00\x00\x00\x02", b"x", None) + b"\xff\xff", "22P03",
     "incorrect binary data format"),
    (_HDR + _bin_ok(1) + _bin_row(b"\x00\x00\x00\x02", b"ok \xc3(", None) + b"\xff\xff", "22021",
     'invalid byte sequence for encoding "UTF8": 0xc3 0x28'),
    (_HDR + _bin_ok(1) + _bin_row(b"\x00\x00\x00\x02", b"a\x00b", None) + b"\xff\xff", "22021",
     'invalid byte sequence for encoding "UTF8": 0x00'),
    (_HDR + _bin_ok(1) + _bin_row(b"\x00\x00\x00\x02", b"x", bytes.fromhex("0001000000000000" "2710")) + b"\xff\xff",
     "22P03", 'invalid digit in external "numeric" value'),
])
def test_bad_binary_data_is_postgresql_error(server, pg_db, data, sqlstate, message):
    for dsn in (server.dsn(), pg_db):
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute("DROP TABLE IF EXISTS bin_bad")
            c.execute("CREATE TABLE bin_bad (id INTEGER, s TEXT, n NUMERIC(10,2))")
            c.execute("INSERT INTO bin_bad VALUES (0, 'before', 1.5)")
            with pytest.raises(psycopg.Error) as e:
                with c.cursor() as cur, cur.copy("COPY bin_bad FROM STDIN (FORMAT binary)") as cp:
                    cp.write(data)
            assert (e.value.sqlstate, str(e.value).split("\n")[0]) == (sqlstate, message), dsn
            # nothing of the COPY is left, and the session goes on
            assert c.execute("SELECT id, s FROM bin_bad").fetchall() == [(0, "before")]


def test_binary_copy_is_one_transaction(both, small_batches):
    """A duplicate key or bad data in a late batch undoes the batches already inserted."""
    rows = [(i, f"row {i}", None) for i in range(3000)]
    types = ["int4", "text", "numeric"]
    for c in both:
        c.execute("DROP TABLE IF EXISTS bin_tx")
        c.execute("CREATE TABLE bin_tx (id INTEGER PRIMARY KEY, s TEXT, n NUMERIC(10,2))")
        c.execute("INSERT INTO bin_tx VALUES (-1, 'before', NULL)")
        with pytest.raises(psycopg.errors.UniqueViolation):
            copy_binary(c, [*rows, (5, "again", None)], "bin_tx", types)
        with pytest.raises(psycopg.errors.UniqueViolation):
            copy_binary(c, [*rows, (-1, "again", None)], "bin_tx", types)
        assert c.execute("SELECT id, s FROM bin_tx").fetchall() == [(-1, "before")]
        with pytest.raises(psycopg.errors.BadCopyFileFormat):
            with c.cursor() as cur, cur.copy("COPY bin_tx FROM STDIN (FORMAT binary)") as cp:
                cp.write(_HDR + b"".join(_bin_ok(i) for i in range(2000)) + b"\x00\x01")
                cp.write(b"\x00\x00\x00\x01x" + b"\xff\xff")
        assert c.execute("SELECT count(*) FROM bin_tx").fetchone() == (1,)
        # inside the client's transaction: the error aborts it, as any error does
        c.execute("BEGIN")
        c.execute("INSERT INTO bin_tx VALUES (-2, 'in tx', NULL)")
        assert copy_binary(c, rows[:10], "bin_tx", types) == 10
        with pytest.raises(psycopg.errors.UniqueViolation):
            copy_binary(c, rows[:20], "bin_tx", types)
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            c.execute("SELECT 1")
        c.execute("ROLLBACK")
        assert c.execute("SELECT id, s FROM bin_tx").fetchall() == [(-1, "before")]
        c.execute("BEGIN")
        assert copy_binary(c, rows, "bin_tx", types) == 3000
        c.execute("COMMIT")
        assert c.execute("SELECT count(*), sum(id) FROM bin_tx").fetchone() == (3001, sum(range(3000)) - 1)


@pytest.mark.parametrize("fmt", ["text", "csv", "binary"])
def test_psql_backslash_copy_from_file_as_postgresql(server, pg_db, tmp_path, fmt):
    """psql's \\copy of a file PostgreSQL wrote (COPY TO in that format) into both."""
    import os
    import subprocess

    rows = bin_rows(400)
    with psycopg.connect(pg_db, autocommit=True) as pg:
        pg.execute(BIN_DDL)
        copy_binary(pg, rows)
        pg.execute("CREATE TABLE bin_back (LIKE bin_all)")
    path = tmp_path / f"all.{fmt}"
    env = {**os.environ, "PGCONNECT_TIMEOUT": "10", "PGTZ": "UTC"}
    pg_url = psycopg.conninfo.conninfo_to_dict(pg_db)
    to_pg = ["psql", "-X", "-v", "ON_ERROR_STOP=1", "-h", str(pg_url["host"]), "-p", str(pg_url["port"]),
             "-U", str(pg_url["user"]), str(pg_url["dbname"])]
    to_duck = ["psql", "-X", "-v", "ON_ERROR_STOP=1", "-h", server.host, "-p", str(server.port), "-U", "sluice", "tpcds"]
    opts = f"WITH (FORMAT {fmt})"
    r = subprocess.run([*to_pg, "-c", f"\\copy bin_all TO '{path}' {opts}"], capture_output=True, text=True, env=env,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    with psycopg.connect(server.dsn(), autocommit=True) as duck:
        duck.execute("DROP TABLE IF EXISTS bin_all")
        duck.execute(BIN_DDL)
    for base, table in ((to_duck, "bin_all"), (to_pg, "bin_back")):
        r = subprocess.run([*base, "-c", f"\\copy {table} FROM '{path}' {opts}"], capture_output=True, text=True,
                           env=env, timeout=120)
        assert r.returncode == 0 and "COPY 400" in r.stdout, r.stderr
    with psycopg.connect(server.dsn()) as duck, psycopg.connect(pg_db) as pg:
        got = duck.execute("SELECT * FROM bin_all ORDER BY id").fetchall()
        assert got == pg.execute("SELECT * FROM bin_back ORDER BY id").fetchall()
        assert got == pg.execute("SELECT * FROM bin_all ORDER BY id").fetchall()


def _batch_rows(batch) -> list[tuple]:
    """A ColumnBatch's rows as Python values (numpy columns with their NULL masks, CSV text)."""
    names = [e.split()[-1] if e.startswith("c") else e for e in batch.exprs]
    lines = batch.text_csv.decode().split("\n")[:-1] if batch.text_columns else []
    text = [[None if f == "" else f[1:-1] for f in line.split(chr(batch.delim))] for line in lines]
    out = []
    for r in range(batch.rows):
        row = []
        for c in range(len(batch.exprs)):
            name = f"c{c}"
            if name in batch.text_columns:
                row.append(text[r][batch.text_columns.index(name)])
            elif f"n{c}" in batch.columns and batch.columns[f"n{c}"][r]:
                row.append(None)
            else:
                row.append(batch.columns[name][r].item())
        out.append(tuple(row))
    assert names
    return out


def test_binary_decoder_any_split_same_rows():
    """Rows split anywhere across CopyData messages (and ints whose bytes look like a field
    count) decode to the same rows as the whole stream at once."""
    import random

    from sqlsluice.middleware import types
    from sqlsluice.middleware.copy import BINARY_TRAILER, BinaryCopyDecoder, binary_header, binary_row

    oids = [types.INT4, types.TEXT, types.INT8]
    enc = [types.encode_binary(o) for o in oids]
    rows = [(None if i % 9 == 0 else (3 << 16) + i, None if i % 7 == 0 else "t" * (i % 5), 3 * i if i % 4 else None)
            for i in range(300)]
    data = binary_header() + b"".join(binary_row(r, enc) for r in rows) + BINARY_TRAILER
    whole = BinaryCopyDecoder(oids).feed(data, final=True)
    assert _batch_rows(whole) == rows
    rng = random.Random(7)
    for _ in range(20):
        d, got, at = BinaryCopyDecoder(oids), [], 0
        while at < len(data):
            step = rng.randint(1, 60)
            batch = d.feed([data[at:at + step]], final=at + step >= len(data))
            at += step
            if batch is not None:
                got += _batch_rows(batch)
        assert got == rows and d.finished


def test_binary_decoder_numeric_paths():
    """Numerics decode through int64 at a common scale, or value by value when one needs it
    (NaN, more than 16 digits, digits beyond dscale, which PostgreSQL truncates)."""
    from decimal import Decimal

    from sqlsluice.middleware import types
    from sqlsluice.middleware.copy import BinaryCopyDecoder, binary_header, binary_row

    enc = [types.encode_binary(types.NUMERIC)]

    def decode(values):
        return BinaryCopyDecoder([types.NUMERIC]).feed(binary_header() + b"".join(binary_row([v], enc)
                                                                                   for v in values) + b"\xff\xff")
    b = decode([Decimal("12.34"), Decimal("-0.0001"), None, Decimal("99999999.5")])
    assert b.exprs == ["CASE WHEN n0 THEN NULL ELSE (c0::DECIMAL(18,0) * 0.0001) END"]
    assert b.columns["c0"].tolist()[:2] + b.columns["c0"].tolist()[3:] == [123400, -1, 999999995000]
    b = decode([Decimal("1.5"), Decimal("NaN"), Decimal("12345678901234567.25")])
    assert b.exprs == ["c0"] and b.columns["c0"].tolist() == ["1.5", "NaN", "12345678901234567.25"]
    hidden = bytes.fromhex("0001ffff00000002" "0d05")  # 0.3333 with dscale 2: PostgreSQL reads 0.33
    b = BinaryCopyDecoder([types.NUMERIC]).feed(binary_header() + b"\x00\x01\x00\x00\x00\x0a" + hidden + b"\xff\xff")
    assert b.columns["c0"].tolist() == ["0.33"]
