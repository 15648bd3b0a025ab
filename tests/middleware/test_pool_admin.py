"""Pools made visible and kept fresh: ``SHOW sluice.pools`` (PgBouncer's ``SHOW POOLS``),
the ``sluice_pool_*`` gauges of ``/metrics``, ``server_idle_timeout``, ``server_lifetime``
and the server-wide ``[pool] max_client_conn``.

A real :class:`SluiceServer` over the shared throwaway PostgreSQL; clients are psycopg.
Server connections of the pools are sessions of the role ``padm_app`` upstream, so that
``pg_stat_activity`` shows exactly them.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from sqlsluice.config import Config
from sqlsluice.databases.pgcluster import PgCluster
from sqlsluice.middleware.server import ServerThread, SluiceServer
from sqlsluice.serving.metrics import ServerMetrics

ROLE = "padm_app"


@pytest.fixture(scope="module")
def upstream(pg_cluster: PgCluster) -> str:
    url = pg_cluster.create_database("padm_" + uuid.uuid4().hex[:8])
    with psycopg.connect(url, autocommit=True) as c:
        c.execute(f"DO $$ BEGIN CREATE ROLE {ROLE} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    return url


def _server(upstream: str, pool: dict[str, Any] | None = None, **databases: dict[str, Any]) -> SluiceServer:
    dbs = {name: {"backend": upstream, **opts} for name, opts in databases.items()}
    return SluiceServer(Config.model_validate({"server": {"backend": upstream, "auth": "trust"},
                                               "pool": pool or {}, "databases": dbs}))


@pytest.fixture(scope="module")
def served(upstream: str) -> Iterator[tuple[SluiceServer, int]]:
    srv = _server(upstream, tx={"pool_mode": "transaction", "pool_size": 1},
                  sess={"pool_mode": "session", "pool_size": 2})
    srv.metrics = ServerMetrics(srv)
    with ServerThread(srv) as th:
        yield srv, th.port


def _dsn(port: int, database: str, user: str = ROLE) -> str:
    return f"postgresql://{user}@127.0.0.1:{port}/{database}"


def _pools(port: int) -> dict[str, dict[str, Any]]:
    with psycopg.connect(_dsn(port, "sess"), autocommit=True) as admin:
        cur = admin.execute("SHOW sluice.pools")
        cols = [d.name for d in cur.description or ()]
        return {r[0]: dict(zip(cols, r, strict=True)) for r in cur.fetchall()}


def _until(check: Any, what: str, limit: float = 30.0) -> Any:
    """Poll ``check`` until it returns something truthy (a generous limit: the assertion is
    about what happens, not how fast)."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        got = check()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


def _server_pids(upstream: str) -> set[int]:
    with psycopg.connect(upstream, autocommit=True) as c:
        rows = c.execute("SELECT pid FROM pg_stat_activity WHERE usename = %s AND datname = current_database()",
                         [ROLE]).fetchall()
    return {r[0] for r in rows}


def test_show_pools_counts_active_and_waiting_clients(served: tuple[SluiceServer, int]) -> None:
    srv, port = served
    holder = psycopg.connect(_dsn(port, "tx"))
    holder.execute("SELECT 1")  # inside a transaction: holds tx's only server connection
    waiter = psycopg.connect(_dsn(port, "tx"), autocommit=True)
    done = threading.Event()

    def wait_for_it() -> None:
        waiter.execute("SELECT 2")
        done.set()

    t = threading.Thread(target=wait_for_it)
    t.start()
    try:
        row = _until(lambda: (r := _pools(port).get("tx")) and r["cl_waiting"] == 1 and r,
                     "a client waits for tx's server connection")
        assert list(row) == ["database", "user", "pool_mode", "cl_active", "cl_waiting", "sv_active", "sv_idle",
                             "sv_login", "maxwait_s", "pool_size"]
        assert (row["user"], row["pool_mode"], row["cl_active"], row["sv_active"], row["sv_idle"],
                row["pool_size"]) == (ROLE, "transaction", 1, 1, 0, 1)
        assert row["maxwait_s"] > 0
        metrics = srv.metrics.render().decode()  # type: ignore[union-attr]
        assert re.search(r'^sluice_pool_client_waiting\{database="tx"\} 1\.0$', metrics, re.M)
        assert re.search(r'^sluice_pool_server_active\{database="tx"\} 1\.0$', metrics, re.M)
    finally:
        holder.rollback()
        t.join(30)
        holder.close()
    assert done.is_set()
    row = _pools(port)["tx"]
    assert (row["cl_active"], row["cl_waiting"], row["sv_active"], row["sv_idle"], row["maxwait_s"]) == (1, 0, 0, 1, 0)
    waiter.close()
    row = _until(lambda: (r := _pools(port).get("tx")) and r["cl_active"] == 0 and r, "the clients are gone")
    assert (row["cl_waiting"], row["sv_idle"]) == (0, 1)
    metrics = srv.metrics.render().decode()  # type: ignore[union-attr]
    assert re.search(r'^sluice_pool_server_idle\{database="tx"\} 1\.0$', metrics, re.M)
    assert re.search(r'^sluice_pool_client_active\{database="tx"\} 0\.0$', metrics, re.M)


def test_show_pools_is_for_admins_only(upstream: str) -> None:
    srv = SluiceServer(Config.model_validate({"server": {"backend": upstream, "auth": "cleartext"},
                                              "users": [{"name": ROLE, "password": "pw"}]}))
    db = upstream.rsplit("/", 1)[1]
    with ServerThread(srv) as th, psycopg.connect(f"postgresql://{ROLE}:pw@127.0.0.1:{th.port}/{db}",
                                                 autocommit=True) as c:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("SHOW sluice.pools")


def test_server_lifetime_closes_old_connections_when_they_come_back(upstream: str) -> None:
    srv = _server(upstream, pool={"server_lifetime": 0.3}, life={"pool_mode": "transaction", "pool_size": 1})
    with ServerThread(srv) as th, psycopg.connect(_dsn(th.port, "life"), autocommit=True) as c:
        first = c.execute("SELECT pg_backend_pid()").fetchone()
        time.sleep(0.5)
        second = c.execute("SELECT pg_backend_pid()").fetchone()  # the old one was closed on release
        assert first != second
        assert first is not None and first[0] not in _until(lambda: (p := _server_pids(upstream)) and
                                                              first[0] not in p and p, "the old one is gone")
        assert sum(s["closed_lifetime"] for s in srv.pools.stats()) >= 1


def test_server_idle_timeout_closes_idle_connections(upstream: str) -> None:
    srv = _server(upstream, idle={"pool_mode": "session", "pool_size": 2, "server_idle_timeout": 0.3})
    with ServerThread(srv) as th:
        with psycopg.connect(_dsn(th.port, "idle"), autocommit=True) as c:
            row = c.execute("SELECT pg_backend_pid()").fetchone()
            assert row is not None
            pid = row[0]
        # back in the pool, then closed by the janitor once idle past the timeout
        _until(lambda: pid not in _server_pids(upstream), "the idle server connection is closed")
        assert [s["sv_idle"] for s in srv.pools.stats()] == [0]
        assert sum(s["closed_idle"] for s in srv.pools.stats()) == 1
        with psycopg.connect(_dsn(th.port, "idle"), autocommit=True) as c:
            assert c.execute("SELECT pg_backend_pid() <> %s", [pid]).fetchone() == (True,)


def test_max_client_conn_counts_clients_of_all_databases(upstream: str) -> None:
    srv = _server(upstream, pool={"max_client_conn": 2}, a={}, b={"pool_mode": "transaction"})
    with ServerThread(srv) as th:
        with psycopg.connect(_dsn(th.port, "a")), psycopg.connect(_dsn(th.port, "b")):
            with pytest.raises(psycopg.OperationalError) as e:
                psycopg.connect(_dsn(th.port, "a"))
            assert "too many clients" in str(e.value) and "max_client_conn = 2" in str(e.value)
        _until(lambda: srv.clients_open == 0, "the clients are counted out")
        with psycopg.connect(_dsn(th.port, "b"), autocommit=True) as c:  # places are free again
            assert c.execute("SELECT 1").fetchone() == (1,)


def test_pool_settings_per_database_override_pool_defaults() -> None:
    from sqlsluice.middleware.pool import pool_settings

    cfg = Config.model_validate({"pool": {"server_idle_timeout": 30, "server_lifetime": 100, "max_client_conn": 9},
                                 "databases": {"d": {"backend": "postgresql://h/d", "server_lifetime": 0,
                                                     "max_client_conn": 3}}})
    d, other = pool_settings(cfg, "d"), pool_settings(cfg, "x")
    assert (d.server_idle_timeout, d.server_lifetime, d.max_client_conn) == (30, 0, 3)
    # [pool] max_client_conn is the whole server's, not each database's
    assert (other.server_idle_timeout, other.server_lifetime, other.max_client_conn) == (30, 100, None)
    assert Config().pool.server_idle_timeout == 600 and Config().pool.server_lifetime == 3600


def test_a_reload_shortens_server_idle_timeout_of_open_pools(upstream: str) -> None:
    srv = _server(upstream, idle={"pool_mode": "session", "pool_size": 1})
    with ServerThread(srv) as th:
        with psycopg.connect(_dsn(th.port, "idle"), autocommit=True) as c:
            row = c.execute("SELECT pg_backend_pid()").fetchone()
            assert row is not None
        assert row[0] in _server_pids(upstream)  # idle in the pool (600 s by default)
        srv.reload(_server(upstream, pool={"server_idle_timeout": 0.2},
                           idle={"pool_mode": "session", "pool_size": 1}).config)
        _until(lambda: row[0] not in _server_pids(upstream), "the idle connection is closed after the reload")
