"""Pooling of PostgreSQL server connections through ``sluice serve`` (issue 12, item 3).

One proxy, several ``[databases]`` names onto the same throwaway PostgreSQL database, each
with its own pool settings: transaction pooling with 2 server connections (``tx``), with 1
and a 1 s wait (``tiny``), session pooling with 1 (``sess``), and ``max_client_conn = 2``
(``few``).  Clients log in as the role ``pool_app``, so that ``pg_stat_activity`` rows of
that role are the pool's server connections (the rewriter's own connections use the
backend URL's role).  Real clients: psycopg, asyncpg, psql.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator

import asyncpg
import psycopg
import pytest

from sqlsluice.bench.pool import many_clients
from sqlsluice.bench.proxy import ServeProcess
from sqlsluice.databases.pgcluster import PgCluster

ROLE = "pool_app"  # clients of ``tx``: its pool's server connections are this role's sessions
OTHER = "pool_other"  # clients of the other databases


@pytest.fixture(scope="module")
def upstream(pg_cluster: PgCluster) -> str:
    url = pg_cluster.create_database("pool_" + uuid.uuid4().hex[:8])
    with psycopg.connect(url, autocommit=True) as c:
        for role in (ROLE, OTHER):
            c.execute(f"DO $$ BEGIN CREATE ROLE {role} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
            c.execute(f"GRANT CREATE, TEMP ON DATABASE \"{url.rsplit('/', 1)[1]}\" TO {role}")
        c.execute("CREATE TABLE items (k int PRIMARY KEY, v text)")
        c.execute("INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 100) g")
        c.execute(f"GRANT SELECT, INSERT, UPDATE ON items TO {ROLE}, {OTHER}")
    return url


@pytest.fixture(scope="module")
def proxy(upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    cfg = tmp_path_factory.mktemp("pool") / "sluice.toml"
    cfg.write_text(f"""[server]
backend = "{upstream}"
auth = "trust"
[databases]
tx = {{backend = "{upstream}", pool_mode = "transaction", pool_size = 2}}
tiny = {{backend = "{upstream}", pool_mode = "transaction", pool_size = 1, query_wait_timeout = 1}}
sess = {{backend = "{upstream}", pool_mode = "session", pool_size = 1}}
few = {{backend = "{upstream}", max_client_conn = 2}}
""")
    with ServeProcess(upstream, config=cfg) as p:
        yield p


def dsn(proxy: ServeProcess, database: str) -> str:
    return proxy.dsn(user=ROLE if database == "tx" else OTHER, database=database)


def server_pids(upstream: str) -> set[int]:
    """The pids of the ``tx`` pool's server connections (sessions of the role ``pool_app``)."""
    with psycopg.connect(upstream, autocommit=True) as c:
        rows = c.execute("SELECT pid FROM pg_stat_activity WHERE usename = %s AND datname = current_database()",
                         [ROLE]).fetchall()
    return {r[0] for r in rows}


# --- transaction pooling ---------------------------------------------------------------
def test_ten_concurrent_clients_on_two_server_connections(proxy: ServeProcess, upstream: str) -> None:
    results: dict[int, list[int]] = {}
    errors: list[BaseException] = []
    seen: set[int] = set()
    stop = threading.Event()

    def client(i: int) -> None:
        try:
            with psycopg.connect(dsn(proxy, "tx")) as c:
                got = []
                for j in range(5):
                    with c.transaction():
                        c.execute("SELECT pg_sleep(0.02)")
                        row = c.execute("SELECT v FROM items WHERE k = %s", [i * 5 + j + 1]).fetchone()
                        assert row is not None
                        got.append(int(row[0][1:]))
                results[i] = got
        except BaseException as e:
            errors.append(e)

    def watch() -> None:
        while not stop.is_set():
            seen.update(server_pids(upstream))
            time.sleep(0.01)

    w = threading.Thread(target=watch, daemon=True)
    w.start()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    stop.set()
    w.join(10)
    assert not errors, errors
    assert results == {i: [i * 5 + j + 1 for j in range(5)] for i in range(10)}
    seen.update(server_pids(upstream))
    assert 1 <= len(seen) <= 2  # every server connection the role ever had, sampled throughout


def test_asyncpg_prepared_statements_move_between_server_connections(proxy: ServeProcess, upstream: str) -> None:
    async def main() -> tuple[int, int, list[int]]:
        a = await asyncpg.connect(dsn(proxy, "tx"))
        b = await psycopg.AsyncConnection.connect(dsn(proxy, "tx"))
        try:
            stmt = await a.prepare("SELECT pg_backend_pid(), v FROM items WHERE k = $1")
            pid1, v1 = await stmt.fetchrow(1)
            assert v1 == "v1"
            # b holds a server connection inside a transaction (the one a had: LIFO)
            await b.execute("BEGIN")
            held = (await (await b.execute("SELECT pg_backend_pid()")).fetchone())[0]  # type: ignore[index]
            pid2, v2 = await stmt.fetchrow(2)
            await b.execute("COMMIT")
            vals = []
            for k in range(3, 13):  # and back and forth, with other clients in between
                async with a.transaction():
                    row = await stmt.fetchrow(k)
                vals.append(int(row[1][1:]))
            # the statement cache of asyncpg's fetch() is named prepared statements too
            vals.append(await a.fetchval("SELECT $1::int * 2", 21))
            assert held == pid1
            return pid1, pid2, vals
        finally:
            await a.close()
            await b.close()

    pid1, pid2, vals = asyncio.run(main())
    assert pid2 != pid1  # the statement was prepared again on another server connection
    assert vals == list(range(3, 13)) + [42]


def test_psycopg_prepared_statements_and_deallocate(proxy: ServeProcess) -> None:
    with psycopg.connect(dsn(proxy, "tx"), autocommit=True, prepare_threshold=0) as c1, \
            psycopg.connect(dsn(proxy, "tx"), autocommit=True, prepare_threshold=0) as c2:
        for k in range(1, 20):
            assert c1.execute("SELECT v FROM items WHERE k = %s", [k]).fetchone() == (f"v{k}",)
            assert c2.execute("SELECT k FROM items WHERE v = %s", [f"v{k}"]).fetchone() == (k,)
        c1.execute("DEALLOCATE ALL")
        assert c1.execute("SELECT v FROM items WHERE k = %s", [5]).fetchone() == ("v5",)


def test_set_is_kept_across_transactions_for_its_client_only(proxy: ServeProcess) -> None:
    with psycopg.connect(dsn(proxy, "tx"), autocommit=True) as a, \
            psycopg.connect(dsn(proxy, "tx"), autocommit=True) as b:
        a.execute("SET statement_timeout = '123s'")
        a.execute("SET application_name = 'pool-a'")
        for _ in range(3):
            with b.transaction():  # b takes a server connection in between
                assert b.execute("SHOW statement_timeout").fetchone() == ("0",)
                assert a.execute("SHOW statement_timeout").fetchone() == ("123s",)
            assert a.execute("SELECT current_setting('application_name')").fetchone() == ("pool-a",)
        a.execute("RESET statement_timeout")
        with b.transaction():
            assert a.execute("SHOW statement_timeout").fetchone() == ("0",)


def test_settings_changed_by_a_do_block_or_a_function_are_kept_for_their_client_only(proxy: ServeProcess,
                                                                                     upstream: str) -> None:
    """A setting changed where the statement's text does not say so: a DO block's EXECUTE
    'SET ...' (read after the transaction, as for SET), a function calling set_config (its
    ParameterStatus says so).  Found by test_pool_differential.py: both were lost for their
    client, and stayed on the server connection for the next one."""
    with psycopg.connect(upstream, autocommit=True) as c:
        c.execute("CREATE OR REPLACE FUNCTION pool_name(text) RETURNS text LANGUAGE sql "
                  "AS $$ SELECT set_config('application_name', $1, false) $$")
    with psycopg.connect(dsn(proxy, "tx"), autocommit=True) as a, \
            psycopg.connect(dsn(proxy, "tx"), autocommit=True) as b:
        default_path = b.execute("SHOW search_path").fetchone()
        a.execute("DO $$BEGIN EXECUTE 'SET search_path = public, a_only'; END$$")
        assert a.execute("SELECT pool_name('a-app')").fetchone() == ("a-app",)
        for _ in range(3):
            with b.transaction():  # b takes a server connection in between
                assert b.execute("SHOW search_path").fetchone() == default_path
                assert b.execute("SELECT current_setting('application_name')").fetchone() != ("a-app",)
                assert a.execute("SHOW search_path").fetchone() == ("public, a_only",)
                assert a.execute("SELECT current_setting('application_name')").fetchone() == ("a-app",)


def test_discard_all_and_deallocate_all_prepared_by_name(proxy: ServeProcess) -> None:
    """DISCARD ALL / DEALLOCATE ALL run as named prepared statements (psycopg prepares what it
    runs often) take effect each time they run, not when they are parsed: a statement parsed and
    never run drops nothing, and the other clients' statements on the shared server connections
    keep working (found by test_pool_differential.py: "prepared statement sluice_s_... does
    not exist" / "already exists" for another client)."""
    async def go() -> None:
        other = await asyncpg.connect(dsn(proxy, "tx"))
        p = await psycopg.AsyncConnection.connect(dsn(proxy, "tx"), autocommit=True, prepare_threshold=0)
        try:
            assert await other.fetchval("SELECT v FROM items WHERE k = $1", 1) == "v1"
            await p.execute("SET application_name = 'before-discard'")
            for i in range(6):
                await p.execute("DISCARD ALL" if i % 2 else "DEALLOCATE ALL")  # named, run again and again
                assert await other.fetchval("SELECT v FROM items WHERE k = $1", i + 2) == f"v{i + 2}"
                cur = await p.execute("SELECT v FROM items WHERE k = %s", [i + 3])
                assert await cur.fetchone() == (f"v{i + 3}",)
            cur = await p.execute("SELECT current_setting('application_name')")
            assert await cur.fetchone() != ("before-discard",)  # DISCARD ALL reset it
            await other.prepare("DISCARD ALL")  # parsed, never run
            await other.prepare("DEALLOCATE ALL")
            for k in (7, 8, 9):
                assert await other.fetchval("SELECT v FROM items WHERE k = $1", k) == f"v{k}"
                cur = await p.execute("SELECT v FROM items WHERE k = %s", [k])
                assert await cur.fetchone() == (f"v{k}",)
        finally:
            await other.close()
            await p.close()

    asyncio.run(go())


@pytest.mark.parametrize("sql", ["LISTEN chan", "CREATE TEMP TABLE t (k int)", "SELECT pg_advisory_lock(1)",
                                 "PREPARE p AS SELECT 1"])
def test_session_state_is_refused_with_0a000(proxy: ServeProcess, sql: str) -> None:
    with psycopg.connect(dsn(proxy, "tx"), autocommit=True) as c:
        with pytest.raises(psycopg.errors.FeatureNotSupported) as e:
            c.execute(sql)
        assert e.value.sqlstate == "0A000" and "transaction pooling" in str(e.value)
        assert c.execute("SELECT 1 FROM pg_advisory_xact_lock(1)").fetchone() == (1,)


def test_psql_through_transaction_pooling(proxy: ServeProcess) -> None:
    psql = shutil.which("psql")
    if psql is None:
        pytest.skip("psql is not installed")
    r = subprocess.run([psql, dsn(proxy, "tx"), "-X", "-A", "-t", "-c", "SELECT count(*) FROM items",
                        "-c", "BEGIN", "-c", "SELECT v FROM items WHERE k = 7", "-c", "COMMIT"],
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["100", "BEGIN", "v7", "COMMIT"]


def test_cancel_reaches_the_held_server_connection(proxy: ServeProcess, upstream: str) -> None:
    with psycopg.connect(dsn(proxy, "tx"), autocommit=True) as c:
        def cancel_when_running() -> None:
            with psycopg.connect(upstream, autocommit=True) as admin:
                for _ in range(600):
                    r = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = %s AND state = 'active' "
                                      "AND query LIKE '%%pg_sleep(30)%%'", [ROLE]).fetchone()
                    if r and r[0]:
                        break
                    time.sleep(0.05)
            c.cancel()

        t = threading.Thread(target=cancel_when_running, daemon=True)
        t.start()
        with pytest.raises(psycopg.errors.QueryCanceled):
            c.execute("SELECT pg_sleep(30)")
        t.join(30)
        assert c.execute("SELECT 1").fetchone() == (1,)


def test_waiting_longer_than_query_wait_timeout_gets_53300(proxy: ServeProcess) -> None:
    with psycopg.connect(dsn(proxy, "tiny")) as holder, psycopg.connect(dsn(proxy, "tiny"), autocommit=True) as late:
        holder.execute("SELECT 1")  # psycopg opened a transaction: the only server connection is held
        with pytest.raises(psycopg.OperationalError) as e:
            late.execute("SELECT 2")
        assert e.value.sqlstate == "53300"
        assert "query_wait_timeout" in str(e.value) and "pool_size" in str(e.value)
        holder.rollback()
        assert holder.execute("SELECT 3").fetchone() == (3,)


def test_clients_wait_in_line_for_a_free_connection(proxy: ServeProcess) -> None:
    async def main() -> list[int]:
        conns = [await asyncpg.connect(dsn(proxy, "tiny")) for _ in range(3)]
        try:
            # each holds the one connection for a while; the others wait (well within 1 s each)
            return list(await asyncio.gather(*(c.fetchval("SELECT $1::int FROM pg_sleep(0.05)", i)
                                               for i, c in enumerate(conns))))
        finally:
            for c in conns:
                await c.close()

    assert asyncio.run(main()) == [0, 1, 2]


# --- session pooling and max_client_conn -------------------------------------------------
def test_session_pool_discards_all_between_clients(proxy: ServeProcess) -> None:
    with psycopg.connect(dsn(proxy, "sess"), autocommit=True) as a:
        pid = a.execute("SELECT pg_backend_pid()").fetchone()
        a.execute("CREATE TEMP TABLE leftover (k int)")
        a.execute("SET work_mem = '7MB'")
        a.execute("PREPARE mine AS SELECT 1")
        a.execute("BEGIN")
    a = psycopg.connect(dsn(proxy, "sess"))
    a.execute("SET work_mem = '7MB'")  # and this one leaves inside a transaction (no COMMIT at close)
    a.close()
    with psycopg.connect(dsn(proxy, "sess"), autocommit=True) as b:
        assert b.execute("SELECT pg_backend_pid()").fetchone() == pid  # the same server connection
        assert b.execute("SELECT to_regclass('pg_temp.leftover')").fetchone() == (None,)
        assert b.execute("SHOW work_mem").fetchone() != ("7MB",)
        assert b.execute("SELECT count(*) FROM pg_prepared_statements").fetchone() == (0,)
        assert b.execute("SELECT pg_current_xact_id_if_assigned()").fetchone() == (None,)


def test_max_client_conn_gets_53300(proxy: ServeProcess) -> None:
    with psycopg.connect(dsn(proxy, "few")), psycopg.connect(dsn(proxy, "few")):
        with pytest.raises(psycopg.OperationalError) as e:
            psycopg.connect(dsn(proxy, "few"))
        assert "too many clients" in str(e.value) and "max_client_conn" in str(e.value)
    with psycopg.connect(dsn(proxy, "few"), autocommit=True) as c:  # a place is free again
        assert c.execute("SELECT 1").fetchone() == (1,)


def test_login_waits_then_53300_when_no_connection_frees(proxy: ServeProcess) -> None:
    with psycopg.connect(dsn(proxy, "tiny")) as holder:
        holder.execute("SELECT 1")
        # a login with settings not seen before needs a server connection for its ParameterStatus
        with pytest.raises(psycopg.OperationalError) as e:
            psycopg.connect(dsn(proxy, "tiny"), application_name="pool-" + uuid.uuid4().hex[:6])
        assert "query_wait_timeout" in str(e.value)
        # one seen before logs in from what the pool remembers, and waits at its first statement
        with psycopg.connect(dsn(proxy, "tiny"), autocommit=True) as late:
            holder.rollback()
            assert late.execute("SELECT 4").fetchone() == (4,)


def test_unnamed_statements_across_batches_and_copy(proxy: ServeProcess, upstream: str) -> None:
    async def main() -> list[int]:
        # no statement cache: asyncpg parses the unnamed statement in one batch and binds it in the next
        a = await asyncpg.connect(dsn(proxy, "tx"), statement_cache_size=0)
        b = await asyncpg.connect(dsn(proxy, "tx"))
        try:
            out = []
            for k in range(1, 9):
                if k % 2:
                    async with b.transaction():  # b holds a server connection meanwhile
                        await b.fetchval("SELECT 1")
                        out.append(await a.fetchval("SELECT k FROM items WHERE v = $1", f"v{k}"))
                else:
                    out.append(await a.fetchval("SELECT k FROM items WHERE v = $1", f"v{k}"))
            return out
        finally:
            await a.close()
            await b.close()

    assert asyncio.run(main()) == list(range(1, 9))
    table = "copy_" + uuid.uuid4().hex[:8]
    with psycopg.connect(upstream, autocommit=True) as admin:
        admin.execute(f"CREATE TABLE {table} (k int, v text)")
        admin.execute(f"GRANT ALL ON {table} TO {ROLE}")
    with psycopg.connect(dsn(proxy, "tx"), autocommit=True) as c:
        with c.cursor().copy(f"COPY {table} FROM STDIN") as cp:
            for i in range(1000):
                cp.write_row((i, f"r{i}"))
        assert c.execute(f"SELECT count(*), sum(k) FROM {table}").fetchone() == (1000, 499500)


def test_the_unnamed_statement_follows_its_client(proxy: ServeProcess) -> None:
    """libpq's PQprepare/PQexecPrepared with the unnamed statement, in two batches, with the
    server connection taken by another client in between."""
    with psycopg.connect(dsn(proxy, "tx"), autocommit=True) as a, psycopg.connect(dsn(proxy, "tx")) as b:
        pq = a.pgconn
        assert pq.prepare(b"", b"SELECT pg_backend_pid(), $1::text").status == psycopg.pq.ExecStatus.COMMAND_OK
        first = pq.exec_prepared(b"", [b"one"])
        held = b.execute("SELECT pg_backend_pid()").fetchone()  # b's transaction holds that connection
        second = pq.exec_prepared(b"", [b"two"])
        assert first.status == second.status == psycopg.pq.ExecStatus.TUPLES_OK, second.error_message
        assert held == (int(first.get_value(0, 0) or b"0"),)
        assert second.get_value(0, 0) != first.get_value(0, 0) and second.get_value(0, 1) == b"two"
        b.rollback()


def test_many_asyncpg_clients_queue_for_two_connections(proxy: ServeProcess, upstream: str) -> None:
    """What ``sluice bench pool`` runs with 1,000 clients, at a test's size."""
    r = asyncio.run(many_clients(dsn(proxy, "tx"), 60, 3, query="SELECT v FROM items WHERE k = $1"))
    assert (r.ok_clients, r.failed_clients, r.errors) == (60, 0, {})
    assert 1 <= len(server_pids(upstream)) <= 2


def test_a_client_leaving_inside_a_transaction_leaves_nothing_behind(proxy: ServeProcess, upstream: str) -> None:
    table = "left_" + uuid.uuid4().hex[:8]
    with psycopg.connect(upstream, autocommit=True) as admin:
        admin.execute(f"CREATE TABLE {table} (k int)")
        admin.execute(f"GRANT ALL ON {table} TO {OTHER}")
    a = psycopg.connect(dsn(proxy, "tiny"))
    a.execute(f"INSERT INTO {table} VALUES (1)")  # inside psycopg's transaction
    a.close()  # Terminate while the transaction is open: rolled back, the connection reused
    with psycopg.connect(dsn(proxy, "tiny"), autocommit=True) as b:
        assert b.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,)
        assert b.execute("SELECT pg_current_xact_id_if_assigned()").fetchone() == (None,)


def test_a_statement_prepared_in_a_rolled_back_transaction_is_not_reused(proxy: ServeProcess,
                                                                        upstream: str) -> None:
    """psycopg's test_change_type_execute, found by the peer suite: a client leaves inside the
    transaction that created a type; a statement parsed there names the type.  The next client's
    identical Parse must not reuse it (PostgreSQL: "cache lookup failed for type")."""
    enum = "e_" + uuid.uuid4().hex[:8]
    with psycopg.connect(upstream, autocommit=True) as admin:
        admin.execute(f"GRANT CREATE ON SCHEMA public TO {OTHER}")
    ins = f"INSERT INTO {enum}_t (bar) VALUES (%(e)s::{enum}[])"
    for _ in range(2):
        a = psycopg.connect(dsn(proxy, "tiny"), prepare_threshold=0)
        a.execute(f"CREATE TYPE {enum} AS ENUM ('foo', 'bar')")
        a.execute(f"CREATE TABLE {enum}_t (id int, bar {enum}[])")
        a.execute(ins, {"e": ["foo"]})  # prepared on the one server connection, inside the transaction
        a.pgconn.finish()  # gone without COMMIT or ROLLBACK: the type is rolled back


def test_prepare_transaction_is_not_refused(proxy: ServeProcess) -> None:
    """Two-phase commit's PREPARE TRANSACTION ends the transaction: allowed in transaction mode
    (as PgBouncer does); only SQL PREPARE of a statement is refused."""
    with psycopg.connect(dsn(proxy, "tx")) as c:
        c.execute("SELECT 1")
        with pytest.raises(psycopg.Error) as e:
            c.execute("PREPARE TRANSACTION 'sluice_2pc'")
        # the server's own answer (max_prepared_transactions = 0 here: 55000), not the pool's 0A000
        assert e.value.sqlstate != "0A000"
    with psycopg.connect(dsn(proxy, "tx")) as c, pytest.raises(psycopg.Error) as e:
        c.execute("PREPARE p1 AS SELECT 1")
    assert e.value.sqlstate == "0A000"


def test_parsing_a_name_twice_is_42p05_as_on_postgresql(proxy: ServeProcess) -> None:
    with psycopg.connect(dsn(proxy, "tx"), autocommit=True) as c:
        pq = c.pgconn
        assert pq.prepare(b"twice", b"SELECT 1").status == psycopg.pq.ExecStatus.COMMAND_OK
        r = pq.prepare(b"twice", b"SELECT 2")
        assert r.status == psycopg.pq.ExecStatus.FATAL_ERROR
        assert r.error_field(psycopg.pq.DiagnosticField.SQLSTATE) == b"42P05"
        assert b"already exists" in (r.error_message or b"")
        assert pq.exec_prepared(b"twice", []).get_value(0, 0) == b"1"


def test_settings_changed_inside_other_statements_are_tracked(proxy: ServeProcess) -> None:
    with psycopg.connect(dsn(proxy, "tx"), autocommit=True) as a, \
            psycopg.connect(dsn(proxy, "tx"), autocommit=True) as b:
        a.execute("SELECT 1; SET work_mem = '9MB'")
        a.execute("SELECT set_config('search_path', 'pg_catalog', false)")
        with b.transaction():  # b holds a connection: a runs on another one
            assert b.execute("SHOW work_mem").fetchone() != ("9MB",)
            assert a.execute("SHOW work_mem").fetchone() == ("9MB",)
            assert a.execute("SHOW search_path").fetchone() == ("pg_catalog",)
        with pytest.raises(psycopg.errors.FeatureNotSupported):
            a.execute("SELECT 1; LISTEN later")


def test_sluice_settings_and_show_last_in_transaction_mode(proxy: ServeProcess) -> None:
    with psycopg.connect(dsn(proxy, "tx"), autocommit=True) as a, \
            psycopg.connect(dsn(proxy, "tx"), autocommit=True) as b:
        a.execute("SET sluice.rewrite = 'off'")
        with b.transaction():
            assert a.execute("SHOW sluice.rewrite").fetchone() == ("off",)
        assert b.execute("SHOW sluice.rewrite").fetchone() != ("off",)
        a.execute("SELECT count(*) FROM items WHERE k > 90")
        last = a.execute("SHOW sluice.last").fetchall()
        assert last and "items" in str(last)


def test_a_connection_drops_shared_statements_beyond_max_prepared(upstream: str) -> None:
    from sqlsluice.config import Config
    from sqlsluice.middleware.server import ServerThread, SluiceServer

    cfg = Config.model_validate({"server": {"backend": upstream, "auth": "trust"}, "databases": {
        "evict": {"backend": upstream, "pool_mode": "transaction", "pool_size": 1}}})
    srv = SluiceServer(cfg)
    with ServerThread(srv) as th, psycopg.connect(f"postgresql://{OTHER}@127.0.0.1:{th.port}/evict",
                                                 autocommit=True, prepare_threshold=0) as c:
        assert c.execute("SELECT v FROM items WHERE k = %s", [1]).fetchone() == ("v1",)
        (pool,) = srv.pools.pools.values()
        pool.max_prepared = 3
        for k in range(2, 8):  # distinct statements: the connection drops them all past 3
            assert c.execute(f"SELECT v, {k} FROM items WHERE k = %s", [k]).fetchone() == (f"v{k}", k)
        n = c.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()
        assert n is not None and n[0] <= 4
        # the client's statements are still there: prepared again where they are used
        assert c.execute("SELECT v FROM items WHERE k = %s", [1]).fetchone() == ("v1",)
        assert c.execute("SELECT v, 2 FROM items WHERE k = %s", [2]).fetchone() == ("v2", 2)
