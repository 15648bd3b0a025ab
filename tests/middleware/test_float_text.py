"""float8 and float4 in text format are written exactly as PostgreSQL 15 writes them.

Over DuckDB, ``SELECT 100.0::float8`` came back as ``100.0`` (Python's repr), ``1e15`` as
``1000000000000000.0`` and a real as the double it widens to (``3.0000000054977558e+38`` for
``3e+38``); PostgreSQL writes ``100``, ``1e+15`` and ``3e+38``.
"""

from __future__ import annotations

import random
import struct

import psycopg

from sqlsluice.middleware.types import pg_float_text

FIXED = [0.0, -0.0, 1.0, -1.0, 100.0, 0.1, 1e-4, 1e-5, 2.5, -7.25, 123456.0, 1234567.0, 999999.9, 1e5, 1e6,
         1e7, 1e14, 1e15, 1e16, 1.5e15, 123456789012345.0, 1e100, 1e-100, 0.30000000000000004, 12345.678,
         3e38, 1.17549435e-38, -68606944.0, 657011968.0]


def _values() -> list[float]:
    rng = random.Random(7)
    return FIXED + [rng.uniform(-1, 1) * 10 ** rng.randint(-12, 20) for _ in range(200)]


def _f32(v: float) -> float:
    return float(struct.unpack("<f", struct.pack("<f", v))[0])


def test_float_text_is_postgresqls(pg_db: str) -> None:
    vals = _values()
    singles = [_f32(v) for v in vals if abs(v) < 3.4e38]
    with psycopg.connect(pg_db) as c:
        pg8 = [c.execute("SELECT %s::float8::text", [v]).fetchone()[0] for v in vals]  # type: ignore[index]
        pg4 = [c.execute("SELECT %s::float8::float4::text", [v]).fetchone()[0]  # type: ignore[index]
               for v in singles]
    assert [pg_float_text(v) for v in vals] == pg8
    assert [pg_float_text(v, single=True) for v in singles] == pg4


def test_floats_over_duckdb_read_as_on_postgresql(server, pg_db: str) -> None:  # type: ignore[no-untyped-def]
    sql = ("SELECT 100.0::float8 AS a, 1e15::float8 AS b, 0.1::float8 AS c, 3e38::real AS d, "
           "0.1::real AS e, (-0.0)::float8 AS f, 1e-5::float8 AS g")
    with psycopg.connect(pg_db) as c:
        want = c.execute(f"SELECT a::text, b::text, c::text, d::text, e::text, f::text, g::text FROM ({sql}) s"
                         ).fetchone()
    with psycopg.connect(server.dsn(), autocommit=True) as c:
        cur = c.cursor(binary=False)
        cur.execute(sql)
        # read the text each column was sent as, without psycopg's float parsing
        got = tuple(cur.pgresult.get_value(0, i).decode() for i in range(7))  # type: ignore[union-attr]
    assert got == want
