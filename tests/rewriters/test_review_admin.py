"""Review mode and the admin console through ``sluice serve`` with real clients.

``[rewrite] mode = "review"``: a rewrite the server finds and proves is stored ``pending``
and the client keeps getting the original (``SHOW sluice.last`` says so) until ``sluice
rewrites approve`` (a CLI process on the same state file); ``reject`` stops serving it and
does not search the shape again; ``forget`` deletes it and the shape is searched again.
The admin console (``SHOW sluice.stats|clients|databases|rewrites``) answers admin users and
refuses everyone else with 42501.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from sqlsluice.config import Config, RewriteConfig, User
from sqlsluice.databases.postgres_backend import settle_statistics
from sqlsluice.middleware.pipeline import SessionContext, is_admin
from sqlsluice.middleware.server import ServerThread

from .conftest import product_server
from .test_answer_fidelity import SETUP

# a correlated average the rules decorrelate, prove and (on this data) make faster
QUERY = "SELECT t.k, t.n FROM t WHERE t.n > (SELECT avg(u.v) * 1000 FROM u WHERE u.tk = t.k) ORDER BY t.k"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``sluice rewrites ...`` as a separate process (the state store is a shared file)."""
    return subprocess.run([sys.executable, "-m", "sqlsluice", "rewrites", *args], capture_output=True, text=True,
                          env=os.environ.copy(), timeout=120)


def _run(c: psycopg.Connection[Any], sql: str, prepare: bool = False) -> tuple[list[tuple[Any, ...]], dict[str, str]]:
    """Run ``sql`` (simple protocol, or Parse/Bind/Execute with ``prepare``); its rows and what
    ``SHOW sluice.last`` says about it."""
    cur = c.execute(sql, prepare=True) if prepare else psycopg.ClientCursor(c).execute(sql)  # type: ignore[call-overload]
    rows = cur.fetchall()
    last = dict(psycopg.ClientCursor(c).execute("SHOW sluice.last").fetchall())
    return rows, last


def _until(c: psycopg.Connection[Any], pred: Callable[[dict[str, str]], bool],
           prepare: bool = False) -> tuple[list[Any], dict[str, str]]:
    """Run QUERY until ``pred(last)`` holds: the server's cached decisions (a negative cache of
    2 s, memoised hits of 5 s) pick up a decision made by another process only when they
    expire.  Fails with the last record after 30 runs."""
    rows, last = _run(c, QUERY, prepare)
    for _ in range(30):
        if pred(last):
            return rows, last
        time.sleep(0.5)
        rows, last = _run(c, QUERY, prepare)
    raise AssertionError(f"never reached: {last}")


def _show(c: psycopg.Connection[Any], what: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    cur = psycopg.ClientCursor(c).execute(f"SHOW {what}")  # type: ignore[arg-type]
    return [d.name for d in cur.description or []], cur.fetchall()


def test_review_mode_serves_only_approved_rewrites(pg_db: str, fresh_state: None, tmp_path: Path) -> None:
    with psycopg.connect(pg_db, autocommit=True) as c:
        for s in SETUP:
            c.execute(s)  # type: ignore[arg-type]
        settle_statistics(c)  # VACUUM ANALYZE with the load's statistics flushed first
        expected = c.execute(QUERY).fetchall()  # type: ignore[arg-type]
    state = os.environ["SLUICE_STATE"]
    cfg = Config(rewrite=RewriteConfig(min_speedup=1.0, mode="review"))
    server, product = product_server(cfg, pg_db)
    dbname = pg_db.rsplit("/", 1)[-1]
    with ServerThread(server) as st, psycopg.connect(host="127.0.0.1", port=st.port, user="postgres",
                                                     dbname=dbname, autocommit=True) as c:
        online = product.online
        assert online is not None
        assert dict(_show(c, "sluice.all")[1])["sluice.rewrite"] == "on"  # review serves approved ones
        rows, last = _run(c, QUERY)
        assert rows == expected and last["rewrite"] == "queued", last
        fp = last["fingerprint"]
        assert online.wait_idle(120)
        e = online.store.get(fp)
        assert e is not None and e.has_rewrite, e  # found, proved, faster: stored
        assert online.store.status(fp)[0] == "pending"  # type: ignore[index]
        # pending: the original is served, and the session is told why
        rows, last = _until(c, lambda la: la.get("rewrite", "").startswith("pending review"))
        assert rows == expected and last["rewritten"] == "False"
        rows, last = _until(c, lambda la: la.get("rewrite", "").startswith("pending review"), prepare=True)
        assert rows == expected and last["extended"] == "True" and last["rewritten"] == "False"
        assert online.stats.hits == 0 and online.stats.prepared_hits == 0 and online.stats.pending == 1

        # the CLI on the same state file: list, show, approve
        out = _cli("list", "--state", state)
        assert out.returncode == 0 and fp in out.stdout and "pending" in out.stdout, out
        out = _cli("show", fp[:10], "--state", state)
        assert out.returncode == 0, out
        assert "status:        pending" in out.stdout and "proof:         PROVED" in out.stdout, out.stdout
        assert "original:" in out.stdout and "rewritten:" in out.stdout and e.rules[0] in out.stdout
        out = _cli("approve", fp, "--state", state, "--by", "dba")
        assert out.returncode == 0 and out.stdout.strip() == f"{fp}: approved", out

        rows, last = _until(c, lambda la: la.get("rewritten") == "True")
        assert rows == expected and last["proof"].startswith("PROVED"), last
        assert last["forwarded_sql"] != QUERY
        # the statement prepared while the rewrite was pending switches to it at its next Bind
        rows, last = _until(c, lambda la: la.get("rewritten") == "True" and la["extended"] == "True", prepare=True)
        assert rows == expected and "prepared_variant" in last, last
        cols, rewrites = _show(c, "sluice.rewrites")
        assert cols == ["fingerprint", "status", "rules", "proof", "speedup", "time_original", "created"]
        assert [r[:2] for r in rewrites if r[0] == fp] == [(fp, "approved")] and rewrites[0][3] == "PROVED"

        # reject: served no more, and not searched again
        searched = online.stats.searched
        assert _cli("reject", fp, "--state", state, "--by", "dba").returncode == 0
        rows, last = _until(c, lambda la: la.get("rewritten") == "False")
        assert rows == expected and last["rewrite"] == "rejected by dba", last
        rows, last = _until(c, lambda la: la.get("rewritten") == "False" and la["extended"] == "True", prepare=True)
        assert rows == expected and last["rewrite"] == "rejected by dba", last
        assert online.wait_idle(60) and online.stats.searched == searched
        assert [r[1] for r in _show(c, "sluice.rewrites")[1] if r[0] == fp] == ["rejected"]

        # forget: deleted; the next sight searches the shape again (stored pending again)
        out = _cli("forget", fp, "--state", state)
        assert out.returncode == 0 and out.stdout.strip() == f"{fp}: forgotten", out
        rows, last = _until(c, lambda la: la.get("rewrite") == "queued")
        assert rows == expected
        assert online.wait_idle(120) and online.stats.searched == searched + 1
        assert online.store.status(fp)[0] == "pending"  # type: ignore[index]

        # unknown fingerprint: one line, exit 2
        out = _cli("approve", "ffffffffffff", "--state", state)
        assert out.returncode == 2 and out.stderr.count("\n") == 1 and "no stored rewrite" in out.stderr, out

        # the admin console over PostgreSQL (trust, no users: the local client is admin)
        stats = dict(_show(c, "sluice.stats")[1])
        assert stats["rewrites_searched"] == searched + 1 and stats["rewrites_served"] >= 1
        assert stats["rewrites_proved"] >= 2 and stats["stored_pending"] == 1
        dbs = _show(c, "sluice.databases")[1]
        assert [(r[2], r[3]) for r in dbs] == [("postgres", online.backend._pool_size)], dbs  # type: ignore[attr-defined]
    product.close()


@pytest.fixture()
def duck_url(tmp_path: Path) -> str:
    import duckdb

    path = tmp_path / "admin.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE t AS SELECT range AS k FROM range(10)")
    con.close()
    return f"duckdb:///{path}"


def test_admin_console_for_admins_only(duck_url: str, fresh_state: None) -> None:
    cfg = Config(users=[User(name="boss", password="pw-boss", admin=True), User(name="app", password="pw-app")])
    server, product = product_server(cfg, duck_url)
    with ServerThread(server) as st:
        def connect(user: str) -> psycopg.Connection[Any]:
            return psycopg.connect(host="127.0.0.1", port=st.port, user=user, password=f"pw-{user}",
                                   dbname="admin", autocommit=True)

        with connect("boss") as boss, connect("app") as app:
            assert app.execute("SELECT count(*) FROM t").fetchone() == (10,)
            for what in ("sluice.stats", "sluice.clients", "sluice.databases", "sluice.rewrites"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege) as err:
                    app.execute(f"SHOW {what}")  # type: ignore[arg-type]
                assert err.value.sqlstate == "42501" and "admin" in str(err.value)
            assert dict(_show(app, "sluice.last")[1])["sql"] == "SELECT count(*) FROM t"  # still the app's

            cols, clients = _show(boss, "sluice.clients")
            assert cols[:6] == ["session", "user", "database", "client_addr", "state", "statement"]
            mine = {r[1]: r for r in clients}
            assert mine["boss"][2:6] == ("admin", "127.0.0.1", "active", "SHOW sluice.clients")
            assert mine["app"][3] == "127.0.0.1" and mine["app"][4] == "connected"
            assert mine["app"][5] == "SHOW sluice.last"  # its latest statement
            stats = dict(_show(boss, "sluice.stats")[1])
            assert stats["clients"] >= 2 and stats["statements"] >= 7 and stats["errors"] >= 4
            assert {"rewrites_searched", "rewrites_stored", "rewrites_served", "rewrites_dropped",
                    "rewrites_proved", "forwarded"} <= set(stats)
            dbs = _show(boss, "sluice.databases")[1]
            assert dbs == [("(server.backend)", duck_url, "duckdb", None, 2)], dbs
            assert _show(boss, "sluice.rewrites")[0][:2] == ["fingerprint", "status"]
        # disconnected sessions leave the list
        with connect("boss") as boss:
            users = [r[1] for r in _show(boss, "sluice.clients")[1]]
            assert users.count("app") == 0 and users.count("boss") == 1, users

        async def with_asyncpg() -> None:  # the extended protocol with a Describe first
            import asyncpg

            a = await asyncpg.connect(host="127.0.0.1", port=st.port, user="boss", password="pw-boss",
                                      database="admin")
            try:
                rows = await a.fetch("SHOW sluice.stats")
                assert {r["counter"] for r in rows} >= {"statements", "rewrites_served"}
                assert all(isinstance(r["value"], int) for r in rows)
            finally:
                await a.close()
            b = await asyncpg.connect(host="127.0.0.1", port=st.port, user="app", password="pw-app",
                                      database="admin")
            try:
                with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
                    await b.fetch("SHOW sluice.clients")
            finally:
                await b.close()

        asyncio.run(with_asyncpg())
    product.close()


def test_who_is_admin() -> None:
    trust = Config()
    assert is_admin(SessionContext(user="x", database="d", config=trust, client_addr="127.0.0.1"))
    assert is_admin(SessionContext(user="x", database="d", config=trust, client_addr="::1"))
    assert not is_admin(SessionContext(user="x", database="d", config=trust, client_addr="10.1.2.3"))
    assert not is_admin(SessionContext(user="x", database="d", config=trust))  # not a wire session
    users = Config(users=[User(name="a", password="p", admin=True), User(name="b", password="p")])
    assert is_admin(SessionContext(user="a", database="d", config=users, client_addr="10.1.2.3"))
    assert not is_admin(SessionContext(user="b", database="d", config=users, client_addr="127.0.0.1"))
    assert not is_admin(SessionContext(user="c", database="d", config=users, client_addr="127.0.0.1"))
