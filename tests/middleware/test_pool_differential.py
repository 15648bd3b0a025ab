"""Differential fuzzing of pooling (issue 12): random client programs, run once straight
against PostgreSQL and once through ``sluice serve`` with ``pool_mode = "transaction"`` and
two server connections for ten clients (and with session pooling, four), must give every
client the same answers, statement by statement.

A wrong answer here is the worst bug a pooler can have: one client's rows, settings,
prepared statement or open transaction reaching another.  The example tests of
``test_pool.py`` check the cases we thought of; this checks random interleavings of them, with
the oracle being PostgreSQL itself.  Each client has its own table, so its answers do not
depend on how the clients interleave (the two runs interleave differently); everything else
is shared: the server connections, their prepared statements, their settings.

Each client program is a random sequence (seeded, the seed in the test id) of what drivers
do: asyncpg (named prepared statements from its cache, ``executemany`` pipelines, cursors in
a transaction, explicit prepared statements reused, a multi-statement simple Query) and
psycopg (server-side prepared statements after the first use, pipeline mode, simple
queries), with transactions committed or rolled back, errors outside and inside
transactions, ``SET`` and ``SET LOCAL`` read back, replies larger than a TCP read, NULL and
NUMERIC values, and clients that leave (idle, or inside a transaction) and come back.

Clients log in as two roles (alternately), each client's table granted to its own role only,
so that a statement run upstream as the wrong role fails or answers differently; ``whoami``
reads ``current_user`` and ``session_user``.  After the pooled run, the pools' server
connections are at most their ``pool_size`` and none is left inside a transaction.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import uuid
from collections.abc import Awaitable, Callable, Iterator
from decimal import Decimal
from typing import Any

import asyncpg
import psycopg
import pytest

from sqlsluice.bench.proxy import ServeProcess
from sqlsluice.databases.pgcluster import PgCluster

ROLES = ("fuzz_app", "fuzz_other")  # client i logs in as ROLES[i % 2]; its table is granted to that role only
CLIENTS = 10  # onto pool_size = 2
STEPS = 40  # operations per client program
ASYNCPG_CLIENTS = range(0, 6)  # the others use psycopg


def _prepare_database(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as c:
        for role in ROLES:
            c.execute(f"DO $$ BEGIN CREATE ROLE {role} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
        for i in range(CLIENTS):
            c.execute(f"CREATE TABLE fz_{i} (k int PRIMARY KEY, v text, n numeric)")
            c.execute(f"INSERT INTO fz_{i} SELECT g, 'v' || g, g / 7.0 FROM generate_series(1, 20) g")
            c.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON fz_{i} TO {ROLES[i % 2]}")
        # a setting changed where the statement's text does not say so
        c.execute("CREATE FUNCTION fz_name(text) RETURNS text LANGUAGE sql "
                  "AS $$ SELECT set_config('application_name', $1, false) $$")


@pytest.fixture(scope="module")
def databases(pg_cluster: PgCluster) -> tuple[str, str]:
    """Two databases prepared alike: one for the direct run, one behind the proxy."""
    urls = []
    for side in ("direct", "pooled"):
        url = pg_cluster.create_database(f"fz_{side}_" + uuid.uuid4().hex[:8])
        _prepare_database(url)
        urls.append(url)
    return urls[0], urls[1]


@pytest.fixture(scope="module")
def proxy(databases: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    pooled = databases[1]
    cfg = tmp_path_factory.mktemp("fuzz") / "sluice.toml"
    cfg.write_text(f"""[server]
backend = "{pooled}"
auth = "trust"
[databases]
fz = {{backend = "{pooled}", pool_mode = "transaction", pool_size = 2, query_wait_timeout = 60}}
fs = {{backend = "{pooled}", pool_mode = "session", pool_size = 4, query_wait_timeout = 60}}
fd = {{backend = "{pooled}"}}
""")
    with ServeProcess(pooled, config=cfg) as p:
        yield p


def _url_as(url: str, user: str) -> str:
    """``url`` with ``user`` as its role (the test cluster trusts local connections)."""
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{user}@{rest.split('@', 1)[1]}"


def _digest(rows: Any) -> str:
    return hashlib.sha1(repr(rows).encode()).hexdigest()[:12]


def _error(e: BaseException) -> str:
    state = getattr(e, "sqlstate", None)
    return f"E{state}" if state else f"E{type(e).__name__}"


# --- the programs -------------------------------------------------------------------------
Op = tuple[str, int, int]  # (operation, key, number)


def program(seed: int, client: int, session: bool = False) -> list[Op]:
    """``session``: also what only a whole session keeps (temporary tables, SQL-level PREPARE),
    refused by transaction pooling."""
    rng = random.Random(seed * 1000 + client)
    names = ASYNCPG_OPS if client in ASYNCPG_CLIENTS else PSYCOPG_OPS + PSYCOPG_SESSION_OPS * session
    ops: list[Op] = [(rng.choice(names), rng.randint(1, 30), rng.randint(0, 999)) for _ in range(STEPS)]
    return [*ops, ("digest", 0, 0)]


class AsyncpgClient:
    def __init__(self, dsn: str, table: str) -> None:
        self.dsn, self.t = dsn, table
        self.c: asyncpg.Connection | None = None
        self.stmt: Any = None

    async def open(self) -> None:
        # the default statement cache: asyncpg's named prepared statements, reused across
        # transactions (and so across server connections when pooled)
        self.c = await asyncpg.connect(self.dsn)
        self.stmt = None

    async def close(self) -> None:
        if self.c is not None:
            await self.c.close()

    async def run(self, op: str, k: int, n: int) -> str:
        c, t = self.c, self.t
        assert c is not None
        if op == "get":
            return repr(await c.fetch(f"SELECT k, v, n FROM {t} WHERE k = $1", k))
        if op == "upsert":  # no parameters: the simple protocol
            return await c.execute(f"INSERT INTO {t} VALUES ({k}, 'a{n}', {n}.5) "
                                   f"ON CONFLICT (k) DO UPDATE SET v = {t}.v || 'u', n = {t}.n + 1")
        if op == "many":
            await c.executemany(f"INSERT INTO {t} VALUES ($1, $2, $3) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
                                [(k + j, f"m{n}", Decimal(n) / 3) for j in range(3)])
            return "ok"
        if op == "whoami":  # each client runs as its own role, whoever held the connection before
            return repr(await c.fetchrow("SELECT current_user, session_user"))
        if op == "hidden_set":  # settings changed by a DO block and by a function
            await c.execute(f"DO $$BEGIN EXECUTE 'SET statement_timeout = ''{n + 2}s'''; END$$")
            return repr(await c.fetchval("SELECT fz_name($1)", f"fn{n}"))
        if op == "many_error":  # a batch whose third row fails (a NOT NULL key)
            try:
                await c.executemany(f"INSERT INTO {t} VALUES ($1, $2, 0) ON CONFLICT (k) DO NOTHING",
                                    [(k + 40, "e"), (k + 41, "e"), (None, "e"), (k + 42, "e")])
            except asyncpg.PostgresError as e:
                return _error(e) + repr(await c.fetchval(f"SELECT count(*) FROM {t} WHERE k > 40"))
            return "no error"
        if op == "tx_commit":
            async with c.transaction():
                await c.execute(f"UPDATE {t} SET v = v || 'c' WHERE k = $1", k)
                return repr(await c.fetchrow(f"SELECT v, n * 2 FROM {t} WHERE k = $1", k))
        if op == "tx_rollback":
            try:
                async with c.transaction():
                    await c.execute(f"DELETE FROM {t} WHERE k = $1", k)
                    raise _Rollback
            except _Rollback:
                pass
            return repr(await c.fetchval(f"SELECT count(*) FROM {t} WHERE k = $1", k))
        if op == "error":
            try:
                await c.fetchval("SELECT 1 / $1::int", 0)
            except asyncpg.PostgresError as e:
                return _error(e)
            return "no error"
        if op == "tx_error":  # an error inside a transaction: aborted until the rollback
            try:
                async with c.transaction():
                    await c.execute(f"UPDATE {t} SET v = 'lost' WHERE k = $1", k)
                    await c.execute(f"INSERT INTO {t} VALUES (1, 'dup', 0)")  # key 1 exists: 23505
            except asyncpg.PostgresError as e:
                return _error(e) + repr(await c.fetchval(f"SELECT v FROM {t} WHERE k = $1", k))
            return "no error"
        if op == "set":
            await c.execute(f"SET application_name = 'fz{n}'")
            await c.execute(f"SET statement_timeout = '{n + 1}s'")
            return "set"
        if op == "show":
            return repr(await c.fetchrow("SELECT current_setting('application_name'), "
                                         "current_setting('statement_timeout')"))
        if op == "set_local":
            async with c.transaction():
                await c.execute(f"SET LOCAL work_mem = '{n + 64}kB'")
                inside = await c.fetchval("SHOW work_mem")
            return f"{inside} {await c.fetchval('SHOW work_mem')}"
        if op == "multi":  # two statements in one simple Query
            return await c.execute(f"UPDATE {t} SET v = v || 'm' WHERE k = {k}; SELECT {n}")
        if op == "prepare":
            self.stmt = await c.prepare(f"SELECT v, n FROM {t} WHERE k = $1")
            return "prepared"
        if op == "use_prepared":
            if self.stmt is None:
                return "none"
            return repr(await self.stmt.fetchrow(k))
        if op == "cursor":
            async with c.transaction():
                rows = [tuple(r) async for r in c.cursor("SELECT g, md5(g::text) FROM generate_series(1, $1) g",
                                                         k + 20, prefetch=7)]
            return _digest(rows)
        if op == "big":  # a reply larger than one read
            return _digest(await c.fetch("SELECT g, repeat(md5(g::text), $1) FROM generate_series(1, 40) g",
                                         100 + n))
        if op == "types":
            return repr(await c.fetchrow("SELECT $1::numeric * 2, NULL::text, $2::text, $3::int[]",
                                         Decimal(f"{n}.10"), None, [k, None, n]))
        if op == "reconnect":
            await self.close()
            await self.open()
            return "reconnected"
        if op == "leave_in_tx":  # a client that goes away inside a transaction
            tr = c.transaction()
            await tr.start()
            await c.execute(f"UPDATE {t} SET v = 'never' WHERE k = $1", k)
            await self.close()
            await self.open()
            return repr(await self.c.fetchval(f"SELECT v FROM {t} WHERE k = $1", k))  # type: ignore[union-attr]
        if op == "savepoint":  # a nested transaction rolled back to its savepoint
            async with c.transaction():
                await c.execute(f"UPDATE {t} SET v = v || 's' WHERE k = $1", k)
                try:
                    async with c.transaction():
                        await c.execute(f"UPDATE {t} SET v = 'gone' WHERE k = $1", k)
                        await c.execute("SELECT 1 / 0")
                except asyncpg.PostgresError as e:
                    err = _error(e)
                return err + repr(await c.fetchval(f"SELECT v FROM {t} WHERE k = $1", k))
        if op == "timeout":  # statement_timeout ends a statement: 57014, the client goes on
            try:
                async with c.transaction():
                    await c.execute("SET LOCAL statement_timeout = '20ms'")
                    await c.execute("SELECT pg_sleep(0.5)")
            except asyncpg.PostgresError as e:
                return _error(e) + repr(await c.fetchval("SELECT $1::int + 1", n))
            return "no error"
        if op == "cancel":  # the driver cancels a statement that runs too long
            try:
                await c.fetchval("SELECT pg_sleep(1)", timeout=0.05)
            except TimeoutError:
                return "timeout" + repr(await c.fetchval("SELECT $1::int * 2", n))
            return "no timeout"
        if op == "copy_in":
            await c.copy_records_to_table(t, records=[(100 + k + j, f"copy{n}", Decimal(j)) for j in range(5)],
                                          columns=["k", "v", "n"])
            return repr(await c.fetchval(f"DELETE FROM {t} WHERE k > 100 AND v = $1 RETURNING 1", f"copy{n}"))
        if op == "copy_out":
            buf: list[bytes] = []

            async def sink(chunk: bytes) -> None:
                buf.append(chunk)

            await c.copy_from_query(f"SELECT k, v, n FROM {t} WHERE k <= $1 ORDER BY k", k, output=sink)
            return _digest(b"".join(buf))
        if op == "digest":
            return repr(await c.fetchrow(f"SELECT count(*), sum(n), string_agg(k || ':' || v, ',' ORDER BY k) "
                                         f"FROM {t}"))
        raise AssertionError(op)


class PsycopgClient:
    def __init__(self, dsn: str, table: str) -> None:
        self.dsn, self.t = dsn, table
        self.c: psycopg.AsyncConnection[Any] | None = None

    async def open(self) -> None:
        # prepare_threshold = 1: server-side prepared statements from the second execution on
        self.c = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True, prepare_threshold=1)

    async def close(self) -> None:
        if self.c is not None:
            await self.c.close()

    async def run(self, op: str, k: int, n: int) -> str:
        c, t = self.c, self.t
        assert c is not None
        if op == "get":
            cur = await c.execute(f"SELECT k, v, n FROM {t} WHERE k = %s", [k])
            return repr(await cur.fetchall())
        if op == "upsert":
            cur = await c.execute(f"INSERT INTO {t} VALUES (%s, %s, %s) "
                                  f"ON CONFLICT (k) DO UPDATE SET v = {t}.v || 'u'", [k, f"p{n}", n])
            return cur.statusmessage or ""
        if op == "pipeline":  # pipeline mode: several Bind/Execute before one Sync
            async with c.pipeline():
                curs = [await c.execute(f"SELECT v FROM {t} WHERE k = %s", [k + j]) for j in range(3)]
                await c.execute(f"UPDATE {t} SET n = n + %s WHERE k = %s", [n, k])
            return repr([await cur.fetchall() for cur in curs])
        if op == "tx_commit":
            async with c.transaction():
                await c.execute(f"UPDATE {t} SET v = v || 'c' WHERE k = %s", [k])
                cur = await c.execute(f"SELECT v, n * 2 FROM {t} WHERE k = %s", [k])
                return repr(await cur.fetchone())
        if op == "tx_rollback":
            async with c.transaction(force_rollback=True):
                await c.execute(f"DELETE FROM {t} WHERE k = %s", [k])
            cur = await c.execute(f"SELECT count(*) FROM {t} WHERE k = %s", [k])
            return repr(await cur.fetchone())
        if op == "error":
            try:
                await c.execute("SELECT 1 / %s::int", [0])
            except psycopg.Error as e:
                return _error(e)
            return "no error"
        if op == "tx_error":
            try:
                async with c.transaction():
                    await c.execute(f"UPDATE {t} SET v = 'lost' WHERE k = %s", [k])
                    await c.execute(f"INSERT INTO {t} VALUES (1, 'dup', 0)")
            except psycopg.Error as e:
                cur = await c.execute(f"SELECT v FROM {t} WHERE k = %s", [k])
                return _error(e) + repr(await cur.fetchone())
            return "no error"
        if op == "set":
            await c.execute(f"SET application_name = 'pz{n}'")
            await c.execute(f"SET search_path = public, fz{n}")
            return "set"
        if op == "show":
            cur = await c.execute("SELECT current_setting('application_name'), current_setting('search_path')")
            return repr(await cur.fetchone())
        if op == "simple":  # several statements in one simple Query
            cur = await c.execute(f"UPDATE {t} SET v = v || 's' WHERE k = {k}; SELECT {n}, NULL::int".encode())
            out: list[Any] = [cur.statusmessage]
            while cur.nextset():
                out.append(await cur.fetchall())
            return repr(out)
        if op == "big":
            cur = await c.execute("SELECT g, repeat(md5(g::text), %s) FROM generate_series(1, 40) g", [100 + n])
            return _digest(await cur.fetchall())
        if op == "reconnect":
            await self.close()
            await self.open()
            return "reconnected"
        if op == "leave_in_tx":
            await c.set_autocommit(False)
            await c.execute(f"UPDATE {t} SET v = 'never' WHERE k = %s", [k])
            await self.close()
            await self.open()
            cur = await self.c.execute(f"SELECT v FROM {t} WHERE k = %s", [k])  # type: ignore[union-attr]
            return repr(await cur.fetchone())
        if op == "whoami":
            cur = await c.execute("SELECT current_user, session_user")
            return repr(await cur.fetchone())
        if op == "temp":  # a temporary table: this session's alone (another's must never show)
            await c.execute("CREATE TEMP TABLE IF NOT EXISTS tt (k int)")
            await c.execute("INSERT INTO tt VALUES (%s)", [k])
            cur = await c.execute("SELECT count(*), sum(k) FROM tt")
            return repr(await cur.fetchone())
        if op == "sql_prepare":  # SQL-level PREPARE / EXECUTE: the session's statement
            try:
                await c.execute(f"PREPARE q{n % 3} AS SELECT $1::int * {n % 3 + 2}")
                made = "prepared"
            except psycopg.Error as e:
                made = _error(e)  # 42P05 when this session prepared it before
            cur = await c.execute(f"EXECUTE q{n % 3}({k})".encode())
            return made + repr(await cur.fetchone())
        if op == "hidden_set":  # settings changed by a DO block and by a function
            await c.execute(f"DO $$BEGIN EXECUTE 'SET search_path = public, hz{n}'; END$$")
            cur = await c.execute("SELECT fz_name(%s)", [f"pn{n}"])
            return repr(await cur.fetchone())
        if op == "pipeline_error":  # an error inside a pipeline: the rest of it is skipped
            got: list[str] = []
            try:
                async with c.pipeline():
                    cur1 = await c.execute(f"UPDATE {t} SET v = v || 'p' WHERE k = %s RETURNING v", [k])
                    await c.execute("SELECT 1 / %s::int", [0])
                    await c.execute(f"UPDATE {t} SET v = 'skipped' WHERE k = %s", [k])
                    got.append(repr(await cur1.fetchall()))
            except psycopg.Error as e:
                got.append(_error(e))
            cur = await c.execute(f"SELECT v FROM {t} WHERE k = %s", [k])
            return repr((got, await cur.fetchone()))
        if op == "cancel":  # conn.cancel_safe() from another task while a statement runs
            async def stop() -> None:
                await asyncio.sleep(0.2)
                await c.cancel_safe()

            stopper = asyncio.ensure_future(stop())
            try:
                await c.execute("SELECT pg_sleep(3)")
                result = "not cancelled"
            except psycopg.Error as e:
                result = _error(e)
            await stopper
            cur = await c.execute("SELECT %s::int + 1", [n])
            return result + repr(await cur.fetchone())
        if op == "copy_error":  # bad COPY data: 22P02, nothing copied, the session goes on
            try:
                async with c.cursor() as cur:
                    async with cur.copy(f"COPY {t} (k, v, n) FROM STDIN") as cp:
                        await cp.write(f"{300 + k}\tok\t1\nnot-a-number\tbad\t2\n".encode())
            except psycopg.Error as e:
                cur = await c.execute(f"SELECT count(*) FROM {t} WHERE k >= 300")
                return _error(e) + repr(await cur.fetchone())
            return "no error"
        if op == "binary":  # binary results, NULL and NUMERIC
            cur = c.cursor(binary=True)
            await cur.execute(f"SELECT k, n, NULL::numeric, %s::numeric FROM {t} WHERE k <= %s ORDER BY k",
                              [Decimal(f"-{n}.25"), k])
            return repr(await cur.fetchall())
        if op == "named_cursor":  # DECLARE ... FETCH inside a transaction
            async with c.transaction():
                async with c.cursor(f"cur{n}") as cur:
                    await cur.execute("SELECT g, md5(g::text) FROM generate_series(1, %s) g", [k + 10])
                    first = await cur.fetchmany(4)
                    rest = await cur.fetchall()
            return _digest((first, rest))
        if op == "copy":
            async with c.cursor() as cur:
                async with cur.copy(f"COPY {t} (k, v, n) FROM STDIN") as cp:
                    for j in range(4):
                        await cp.write_row((200 + k + j, f"cp{n}", j))
                await cur.execute(f"DELETE FROM {t} WHERE k >= 200 AND v = %s", [f"cp{n}"])
                return str(cur.rowcount)
        if op == "digest":
            cur = await c.execute(f"SELECT count(*), sum(n), string_agg(k || ':' || v, ',' ORDER BY k) FROM {t}")
            return repr(await cur.fetchone())
        raise AssertionError(op)


class _Rollback(Exception):
    pass


ASYNCPG_OPS = ["get", "get", "upsert", "many", "tx_commit", "tx_rollback", "error", "tx_error", "set", "show",
               "show", "set_local", "multi", "prepare", "use_prepared", "use_prepared", "cursor", "big", "types",
               "reconnect", "leave_in_tx", "savepoint", "timeout", "cancel", "copy_in", "copy_out", "many_error", "whoami",
               "hidden_set"]
PSYCOPG_OPS = ["get", "get", "upsert", "pipeline", "tx_commit", "tx_rollback", "error", "tx_error", "set", "show",
               "show", "simple", "big", "reconnect", "leave_in_tx", "binary", "named_cursor", "copy",
               "pipeline_error", "cancel", "copy_error", "whoami", "hidden_set"]
# (no DISCARD ALL / DEALLOCATE ALL here: psycopg's own prepared-statement cache loses track of
# them on some sequences, straight against PostgreSQL too; test_pool.py has them, prepared by name)
PSYCOPG_SESSION_OPS = ["temp", "sql_prepare"]


async def _run_client(make: Callable[[], Any], ops: list[Op]) -> list[str]:
    client = make()
    await client.open()
    trace = []
    try:
        for op, k, n in ops:
            trace.append(f"{op} {k} {n} -> {await client.run(op, k, n)}")
    finally:
        await client.close()
    return trace


async def _run_all(dsn: Callable[[str], str], seed: int, session: bool) -> list[list[str]]:
    def maker(i: int) -> Callable[[], Any]:
        cls = AsyncpgClient if i in ASYNCPG_CLIENTS else PsycopgClient
        return lambda: cls(dsn(ROLES[i % 2]), f"fz_{i}")

    runs: list[Awaitable[list[str]]] = [_run_client(maker(i), program(seed, i, session)) for i in range(CLIENTS)]
    return list(await asyncio.wait_for(asyncio.gather(*runs), 240))


def _reset(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as c:
        for i in range(CLIENTS):
            c.execute(f"TRUNCATE fz_{i}")
            c.execute(f"INSERT INTO fz_{i} SELECT g, 'v' || g, g / 7.0 FROM generate_series(1, 20) g")


# more seeds for a longer search: SLUICE_FUZZ_SEEDS=100 (the default 3 keep the suite short)
@pytest.mark.parametrize("seed", range(1, 1 + int(os.environ.get("SLUICE_FUZZ_SEEDS", "3"))))
@pytest.mark.parametrize("database", ["fz", "fs", "fd"], ids=["transaction", "session", "unpooled"])
def test_pooled_clients_get_the_answers_postgresql_gives(databases: tuple[str, str], proxy: ServeProcess,
                                                         database: str, seed: int) -> None:
    direct_url, pooled_url = databases
    _reset(direct_url)
    _reset(pooled_url)
    session = database != "fz"
    direct = asyncio.run(_run_all(lambda role: _url_as(direct_url, role), seed, session))
    pooled = asyncio.run(_run_all(lambda role: proxy.dsn(user=role, database=database), seed, session))
    for i, (want, got) in enumerate(zip(direct, pooled, strict=True)):
        for step, (w, g) in enumerate(zip(want, got, strict=True)):
            assert g == w, f"client {i} step {step}: through the pool {g!r}, PostgreSQL {w!r}"
    # the server connections of the pools (one per database and role; fd's sessions end with
    # their clients): at most their pool sizes together, none left in a transaction
    with psycopg.connect(pooled_url, autocommit=True) as c:
        rows = c.execute("SELECT state, xact_start IS NOT NULL FROM pg_stat_activity "
                         "WHERE usename = ANY(%s) AND datname = current_database()", [list(ROLES)]).fetchall()
    assert len(rows) <= 2 * (2 + 4), rows
    assert all(state == "idle" and not in_xact for state, in_xact in rows), rows
