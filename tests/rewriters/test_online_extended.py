"""Online rewriting over the extended protocol, and served-time feedback, end to end:
real clients (psycopg with server-side parameters, asyncpg) through ``sluice serve`` over a
real PostgreSQL upstream.

* an unknown shape is queued at its first Bind (the bound values are the literal
  instance); the next Parse of the same shape is parsed upstream as the stored rewrite,
  with the client's ``$n`` and parameter types, and returns the same rows;
* a served rewrite that turns out slower after the data changed (statistics unchanged,
  so only the feedback can notice) is re-timed against the original and dropped, and
  ``SHOW sluice.last`` says so.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import asyncpg
import psycopg
import pytest

from sqlsluice.databases.tpcds import tpcds_queries
from sqlsluice.rewriters.online import OnlineRewriter, fingerprint


def _last(c: psycopg.Connection[Any]) -> dict[str, str]:
    return dict(c.execute("SHOW sluice.last").fetchall())  # type: ignore[arg-type]


# TPC-DS q1 with its two literals as parameters: the same shape as the literal query
Q1 = tpcds_queries()[1].replace("d_year = 2000", "d_year = %s").replace("s_state = 'TN'", "s_state = %s")


def test_psycopg_server_side_params_get_the_rewrite_on_the_second_execution(
        tpcds_proxy: tuple[str, OnlineRewriter]) -> None:
    dsn, online = tpcds_proxy
    # at sf=0.01 both forms take milliseconds: keep the feedback (tested below) out of the way
    online.min_observations = 10**6
    assert fingerprint(Q1.replace("%s", "$1", 1).replace("%s", "$2"), "postgres")[0] == \
        fingerprint(tpcds_queries()[1], "postgres")[0]
    with psycopg.connect(dsn, autocommit=True) as c:
        # a named prepared statement (prepare=True), parsed while the shape is unknown
        first = c.execute(Q1, (2000, "TN"), prepare=True).fetchall()  # type: ignore[arg-type]
        last = _last(c)
        assert last["extended"] == "True" and last["rewritten"] == "False", last
        assert online.wait_idle(180)
        # the first Bind's values became the literal instance that was searched and stored
        assert online.stats.bound_instances == 1 and online.stats.stored == 1, online.stats
        # the same prepared statement, executed again: its Bind now runs the rewrite (parsed
        # upstream under the proxy's own name, the client's statement untouched)
        again = c.execute(Q1, (2000, "TN"), prepare=True).fetchall()  # type: ignore[arg-type]
        last = _last(c)
        assert last["rewritten"] == "True" and last["prepared_variant"].startswith("sluice_v"), last
        assert first and again == first
        # inside a transaction that has written, the same statement runs the original again
        with c.transaction():
            c.execute("CREATE TEMP TABLE w_tx (a int)")
            assert c.execute(Q1, (2000, "TN"), prepare=True).fetchall() == first  # type: ignore[arg-type]
            last = _last(c)
            assert last["rewritten"] == "False" and last["rewrite"] == "inside a transaction that has written"
        assert c.execute(Q1, (2000, "TN"), prepare=True).fetchall() == first  # type: ignore[arg-type]
        assert _last(c)["rewritten"] == "True"
        # unnamed statements (psycopg's default): the Parse itself is answered with the rewrite
        second = c.execute(Q1, (2000, "TN")).fetchall()  # type: ignore[arg-type]
        last = _last(c)
        assert last["rewritten"] == "True" and last["extended"] == "True", last
        assert "scalar_subquery_to_join" in last["rules"]
        assert "$1" in last["forwarded_sql"] and "$2" in last["forwarded_sql"]
        assert second == first  # ORDER BY ... LIMIT 100: identical, in order
        # the simple protocol serves the same stored rewrite, and its execution is timed
        assert c.execute(tpcds_queries()[1]).fetchall() == first  # type: ignore[arg-type]
        last = _last(c)
        assert last["extended"] == "False" and last["rewritten"] == "True" and float(last["served_ms"]) > 0, last
        # other literal values: the same stored rewrite, this call's values
        assert c.execute(Q1, (2001, "TN")).fetchall() == \
            c.execute(tpcds_queries()[1].replace("d_year = 2000", "d_year = 2001")).fetchall()  # type: ignore[arg-type]
    # a named prepared statement (prepare=True) on a new connection is parsed as the rewrite
    with psycopg.connect(dsn, autocommit=True) as c:
        got = c.execute(Q1, (2000, "TN"), prepare=True).fetchall()  # type: ignore[arg-type]
        last = _last(c)
        assert last["rewritten"] == "True", last
        assert got == first
        assert c.execute(Q1, (2000, "TN"), prepare=True).fetchall() == first  # type: ignore[arg-type]
        assert float(_last(c)["served_ms"]) > 0  # the served execution was timed and fed back
    assert online.stats.prepared_hits >= 1 and online.stats.observed >= 2 and online.stats.errors == 0


# --- feedback: a rewrite that loses after the data changed ----------------------------
SETUP = [
    "CREATE TABLE t (id int PRIMARY KEY, k int NOT NULL, v int NOT NULL) WITH (autovacuum_enabled = off)",
    "CREATE TABLE u (k int NOT NULL, v int NOT NULL) WITH (autovacuum_enabled = off)",
    "INSERT INTO t SELECT g, g % 400, g % 97 FROM generate_series(1, 1000) g",
    "INSERT INTO u SELECT g % 400, g % 89 FROM generate_series(1, 20000) g",
    "ANALYZE t", "ANALYZE u",
]
# correlated scalar subquery: decorrelated into a join with u grouped by k (much faster
# while t has many rows); once t has a single row, grouping all of a big u loses
QT = ("SELECT t.id, t.v FROM t WHERE t.k < $1 AND t.v > (SELECT AVG(u.v) FROM u WHERE u.k = t.k) "
      "ORDER BY t.id")


@pytest.fixture()
def tu_proxy(pg_db: str, rewriting_proxy: Callable[[], AbstractContextManager[tuple[str, OnlineRewriter]]]
             ) -> Iterator[tuple[str, OnlineRewriter, str]]:
    with psycopg.connect(pg_db, autocommit=True) as c:
        for s in SETUP:
            c.execute(s)  # type: ignore[arg-type]
    with rewriting_proxy() as (dsn, online):
        yield dsn, online, pg_db


def test_asyncpg_gets_the_rewrite_and_a_rewrite_slower_after_data_change_is_dropped(
        tu_proxy: tuple[str, OnlineRewriter, str]) -> None:
    dsn, online, direct = tu_proxy

    shows = iter(range(10**6))

    async def last(c: asyncpg.Connection) -> dict[str, str]:
        # asyncpg caches prepared statements by text, and a local answer is fixed at Parse:
        # a fresh text each time (trailing blanks) asks again
        return {r[0]: r[1] for r in await c.fetch("SHOW sluice.last" + " " * next(shows))}

    async def go() -> None:
        # asyncpg's default: a statement cache, so the second fetch only Binds the named
        # statement prepared by the first
        cached = await asyncpg.connect(dsn)
        # no statement cache: every fetch is a Parse (unnamed statement), as in many drivers
        c = await asyncpg.connect(dsn, statement_cache_size=0)
        try:
            first = await cached.fetch(QT, 300)  # binary int4 parameter
            lst = await last(cached)
            assert lst["rewritten"] == "False" and lst["extended"] == "True", lst
            assert await asyncio.to_thread(online.wait_idle, 120)
            assert online.stats.bound_instances == 1 and online.stats.stored == 1, online.stats
            second = await cached.fetch(QT, 300)
            lst = await last(cached)
            assert lst["rewritten"] == "True" and "scalar_subquery_to_join" in lst["rules"], lst
            assert first and [tuple(r) for r in second] == [tuple(r) for r in first]
            assert float(lst["served_ms"]) > 0
            rows = await c.fetch(QT, 300)
            lst = await last(c)
            assert lst["rewritten"] == "True" and "prepared_variant" not in lst, lst  # at Parse
            assert [tuple(r) for r in rows] == [tuple(r) for r in first]
            # a cached (named) statement on a fresh connection: parsed as the rewrite, same rows
            c2 = await asyncpg.connect(dsn)
            try:
                stmt = await c2.prepare(QT)
                assert [tuple(r) for r in await stmt.fetch(300)] == [tuple(r) for r in first]
                assert (await last(c2))["rewritten"] == "True"
                assert [a.name for a in stmt.get_attributes()] == ["id", "v"]
                assert [t.name for t in stmt.get_parameters()] == ["int4"]
            finally:
                await c2.close()

            # the data changes (statistics do not: no ANALYZE, autovacuum off), and the
            # rewrite now loses: only the served-time feedback can notice
            v0 = await asyncio.to_thread(online.backend.stats_version)
            with psycopg.connect(direct, autocommit=True) as d:
                d.execute("DELETE FROM t WHERE id > 1")
                d.execute("INSERT INTO u SELECT g % 100000, g % 89 FROM generate_series(1, 600000) g")
            assert await asyncio.to_thread(online.backend.stats_version) == v0
            notes = []
            for _ in range(8):
                rows = await c.fetch(QT, 300)
                assert [tuple(r) for r in rows] == [(1, 1)] or rows == []
                lst = await last(c)
                notes.append(lst.get("feedback", ""))
                if lst["rewritten"] == "False":
                    break
                if "re-timing" in notes[-1]:
                    assert await asyncio.to_thread(online.wait_idle, 120)
            assert any("re-timing" in n for n in notes), notes
            assert await asyncio.to_thread(online.wait_idle, 120)
            await c.fetch(QT, 300)
            lst = await last(c)
            assert lst["rewritten"] == "False", lst
            assert lst["rewrite"].startswith("dropped: slower than the original, re-timed"), lst
            key = fingerprint(QT, "postgres")[0]
            e = online.store.get(key)
            assert e is not None and not e.has_rewrite  # kept as "no rewrite": not searched again
            assert online.stats.rechecks >= 1 and online.stats.errors == 0
            # the cached named statement, switched to the rewrite before, is switched back
            rows = await cached.fetch(QT, 300)
            lst = await last(cached)
            assert lst["rewritten"] == "False" and lst["rewrite"].startswith("dropped"), lst
            assert [tuple(r) for r in rows] == [tuple(r) for r in await c.fetch(QT, 300)]
            # DEALLOCATE ALL drops the proxy's variants with the client's statements
            await cached.execute("DEALLOCATE ALL")
            cached._drop_local_statement_cache()
            assert [tuple(r) for r in await cached.fetch(QT, 300)] == [tuple(r) for r in rows]
        finally:
            await c.close()
            await cached.close()

    asyncio.run(asyncio.wait_for(go(), 300))
