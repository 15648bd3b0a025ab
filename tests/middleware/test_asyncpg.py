"""asyncpg through sqlsluice over DuckDB: extended protocol, binary codecs, prepared statements,
cursors with row limits (PortalSuspended), errors and cancel via timeout."""

from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal

import asyncpg
import pytest

ROW = (7, 2**40, Decimal("12345.678"), 2.5, "héllo", True, dt.date(2024, 2, 29),
       dt.datetime(2024, 2, 29, 13, 14, 15, 123456), None)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


async def _connect(server):
    return await asyncpg.connect(host=server.host, port=server.port, user="sluice", database="tpcds")


def test_types_round_trip_binary(server):
    async def go():
        c = await _connect(server)
        try:
            lit = await c.fetchrow(
                "SELECT 7::INTEGER, 1099511627776::BIGINT, 12345.678::DECIMAL(12,3), 2.5::DOUBLE, 'héllo', true, "
                "DATE '2024-02-29', TIMESTAMP '2024-02-29 13:14:15.123456', NULL::INTEGER")
            par = await c.fetchrow(
                "SELECT $1::INTEGER, $2::BIGINT, $3::DECIMAL(12,3), $4::DOUBLE, $5::VARCHAR, $6::BOOLEAN, $7::DATE, "
                "$8::TIMESTAMP, $9::INTEGER", *ROW)
            return tuple(lit), tuple(par)
        finally:
            await c.close()

    lit, par = run(go())
    assert lit == ROW and par == ROW


def test_prepared_statements_and_executemany(server):
    async def go():
        c = await _connect(server)
        try:
            await c.execute("CREATE TABLE ap_items (id INTEGER PRIMARY KEY, name VARCHAR, price DECIMAL(10,2))")
            await c.executemany("INSERT INTO ap_items VALUES ($1, $2, $3)",
                                [(i, f"n{i}", Decimal(i) / 4) for i in range(1, 21)])
            st = await c.prepare("SELECT name, price FROM ap_items WHERE id = $1")
            assert [t.name for t in st.get_parameters()] == ["int4"]
            assert [a.name for a in st.get_attributes()] == ["name", "price"]
            got = [tuple(await st.fetchrow(i)) for i in (1, 2, 20)]
            named = await c.fetch("SELECT count(*) AS n FROM ap_items WHERE price > $1", Decimal("2"))
            return got, named[0]["n"]
        finally:
            await c.close()

    got, n = run(go())
    assert got == [("n1", Decimal("0.25")), ("n2", Decimal("0.50")), ("n20", Decimal("5.00"))]
    assert n == 12


def test_cursor_fetches_with_row_limits(server):
    async def go():
        c = await _connect(server)
        try:
            async with c.transaction():
                cur = await c.cursor("SELECT range AS x FROM range(1000)")
                first = await cur.fetch(10)
                more = await cur.fetch(500)
                rest = await cur.fetch(1000)
                return [r["x"] for r in first + more + rest]
        finally:
            await c.close()

    assert run(go()) == list(range(1000))


def test_error_leaves_connection_usable(server):
    async def go():
        c = await _connect(server)
        try:
            with pytest.raises(asyncpg.UndefinedTableError):
                await c.fetch("SELECT * FROM no_such_table")
            with pytest.raises(asyncpg.PostgresSyntaxError):
                await c.fetch("SELEC 1")
            return await c.fetchval("SELECT $1::INTEGER + 1", 41)
        finally:
            await c.close()

    assert run(go()) == 42


def test_long_query_cancelled_by_timeout(server):
    async def go():
        c = await _connect(server)
        try:
            with pytest.raises(asyncio.TimeoutError):
                await c.fetchval("SELECT count(*) FROM range(10000000000) t(x) WHERE x % 7 = 3", timeout=0.5)
            return await c.fetchval("SELECT 5")
        finally:
            await c.close()

    assert run(go()) == 5


def test_transaction_rollback(server):
    async def go():
        c = await _connect(server)
        try:
            await c.execute("CREATE TABLE ap_tx (v INTEGER)")
            tx = c.transaction()
            await tx.start()
            await c.execute("INSERT INTO ap_tx VALUES (1)")
            await tx.rollback()
            return await c.fetchval("SELECT count(*) FROM ap_tx")
        finally:
            await c.close()

    assert run(go()) == 0


def test_concurrent_connections(server):
    async def one(i):
        c = await _connect(server)
        try:
            return await c.fetchval("SELECT sum(range) + $1::BIGINT FROM range(100000)", i)
        finally:
            await c.close()

    async def go():
        return await asyncio.gather(*(one(i) for i in range(8)))

    assert run(go()) == [4999950000 + i for i in range(8)]


def test_type_introspection_arrays_and_custom_codecs(server):
    import json

    async def go():
        c = await _connect(server)
        try:
            # int4[], interval and json need asyncpg's type introspection query (answered by sqlsluice)
            await c.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
            return (await c.fetchval("SELECT [1, NULL, 3]::INTEGER[]"),
                    await c.fetchval("SELECT $1::VARCHAR[]", ["a", None]),
                    await c.fetchval("SELECT INTERVAL '1 day 2 hours'"),
                    await c.fetchval("SELECT '{\"a\": [1, 2]}'::JSON"))
        finally:
            await c.close()

    import datetime as dt_

    assert run(go()) == ([1, None, 3], ["a", None], dt_.timedelta(days=1, hours=2), {"a": [1, 2]})
