"""``SHOW sluice.last`` describes the last statement executed, over both protocols.

A prepared statement executed again (Bind/Execute with no Parse: psycopg ``prepare=True``,
asyncpg's statement cache) is the last statement; and a prepared ``SHOW sluice.last``
(asyncpg caches it too) answers at each execution, not with what it said at its Parse.
Real clients through ``sluice serve`` over DuckDB and over a PostgreSQL upstream.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import psycopg
import pytest

from sqlsluice.config import Config
from sqlsluice.middleware.server import ServerThread

from .conftest import product_server


@pytest.fixture(params=["duckdb", "postgres"])
def served(request: pytest.FixtureRequest, tmp_path: Path, fresh_state: None) -> Iterator[str]:
    """A DSN of ``sluice serve`` (with its product pipeline) over DuckDB or PostgreSQL."""
    if request.param == "duckdb":
        import duckdb

        path = tmp_path / "shop.duckdb"
        duckdb.connect(str(path)).close()
        url, dbname = f"duckdb:///{path}", "shop"
    else:
        url = request.getfixturevalue("pg_db")
        dbname = url.rsplit("/", 1)[1]
    server, _ = product_server(Config(), url)
    with ServerThread(server) as st:
        yield f"postgresql://postgres@127.0.0.1:{st.port}/{dbname}"


def _last(c: psycopg.Connection[Any]) -> str:
    return str(dict(psycopg.ClientCursor(c).execute("SHOW sluice.last").fetchall())["sql"])


@pytest.mark.parametrize("rewrite", ["on", "off"])  # off: no stage watches the statements' Binds
def test_psycopg_prepared_statement_executed_again_is_the_last(served: str, rewrite: str) -> None:
    a, b = "SELECT 1 AS a WHERE 1 = %s", "SELECT 2 AS b"
    with psycopg.connect(served, autocommit=True) as c:
        psycopg.ClientCursor(c).execute(f"SET sluice.rewrite = {rewrite}")
        for sql, args in ((a, (1,)), (b, None), (a, (1,)), (b, None), (a, (1,))):
            c.execute(sql, args, prepare=True).fetchall()  # type: ignore[call-overload]
            assert _last(c) == sql.replace("%s", "$1"), sql
        # the simple protocol after a prepared one, and a prepared one after it
        psycopg.ClientCursor(c).execute("SELECT 3 AS c").fetchall()
        assert _last(c) == "SELECT 3 AS c"
        c.execute(b, prepare=True).fetchall()
        assert _last(c) == b


@pytest.mark.parametrize("rewrite", ["on", "off"])
def test_asyncpg_cached_statements_and_cached_show(served: str, rewrite: str) -> None:
    async def run() -> list[tuple[str, str]]:
        conn = await asyncpg.connect(served)
        seen = []
        try:
            await conn.execute(f"SET sluice.rewrite = {rewrite}")
            for sql, args in (("SELECT 6 AS f", ()), ("SELECT 7 AS g WHERE 1 = $1", (1,)),
                              ("SELECT 6 AS f", ()), ("SELECT 7 AS g WHERE 1 = $1", (1,))):
                await conn.fetch(sql, *args)  # the second time from asyncpg's statement cache
                rows = await conn.fetch("SHOW sluice.last")  # prepared once, then cached too
                seen.append((sql, dict((r[0], r[1]) for r in rows)["sql"]))
        finally:
            await conn.close()
        return seen

    for sql, last in asyncio.run(run()):
        assert last == sql
