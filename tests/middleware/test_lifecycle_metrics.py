"""``sluice serve`` as an operator runs it: SIGTERM/SIGINT drain, SIGHUP reload, /metrics, /healthz.

Every test starts the real command in a subprocess (over a throwaway PostgreSQL or DuckDB)
and talks to it with psycopg, as a client and as a Prometheus scraper would.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sqlsluice.databases.pgcluster import PgCluster

ROOT = Path(__file__).resolve().parents[2]
SHUTDOWN = "terminating connection due to administrator command"


class Sluice:
    """``sluice serve`` in a subprocess; stderr (the log) goes to a file."""

    def __init__(self, tmp: Path, backend: str, config: str = "", *, http: bool = True) -> None:
        self.tmp = tmp
        self.config = tmp / "sluice.toml"
        self.config.write_text(config)
        self.log_path = tmp / "sluice.log"
        env = dict(os.environ, SLUICE_HOME=str(tmp / ".sluice"), SLUICE_STATE=str(tmp / "state.sqlite"))
        env.pop("SLUICE_CONFIG", None)
        args = [sys.executable, "-m", "sqlsluice", "serve", "--backend", backend, "--listen", "127.0.0.1:0",
                "--config", str(self.config)]
        if http:
            args += ["--http-listen", "127.0.0.1:0"]
        self._log = open(self.log_path, "w")  # closed in stop()
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self._log, text=True, env=env, cwd=ROOT)
        assert self.proc.stdout is not None
        lines = [self.proc.stdout.readline() for _ in range(3 if http else 2)]
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", lines[0])
        assert m, (lines, self.log())
        self.port = int(m.group(1))
        self.http_port = 0
        if http:
            h = re.search(r"http://127\.0\.0\.1:(\d+)/metrics", lines[2])
            assert h, lines
            self.http_port = int(h.group(1))

    def connect(self, user: str = "sluice", dbname: str = "memory", **kw: Any) -> psycopg.Connection[Any]:
        c = psycopg.connect(host="127.0.0.1", port=self.port, user=user, dbname=dbname, autocommit=True,
                            connect_timeout=10, **kw)
        notices: list[str] = []
        c.shutdown_notices = notices  # type: ignore[attr-defined]
        c.add_notice_handler(lambda d: notices.append(d.sqlstate or ""))
        return c

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_log(self, text: str, count: int = 1) -> None:
        wait_until(lambda: self.log().count(text) >= count, f"log line {text!r}")

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        status, text = self.get("/metrics")
        assert status == 200
        out = {}
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self) -> int:
        rc = self.proc.wait(120)
        self._log.close()
        return rc

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self._log.close()


def wait_until(cond: Callable[[], bool], what: str, limit: float = 60.0) -> None:
    """Poll ``cond`` (a generous limit: a hung server fails the test instead of hanging it)."""
    deadline = time.monotonic() + limit
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.05)


@pytest.fixture()
def sluice(tmp_path: Path) -> Iterator[Callable[..., Sluice]]:
    started: list[Sluice] = []

    def start(backend: str, config: str = "", **kw: Any) -> Sluice:
        s = Sluice(tmp_path, backend, config, **kw)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


def ours(pg_url: str, dbname: str) -> list[tuple[Any, ...]]:
    """Backends on ``dbname`` other than this observer's own."""
    with psycopg.connect(pg_url, autocommit=True) as c:
        return c.execute("SELECT pid, state, query FROM pg_stat_activity WHERE datname = %s AND pid <> "
                         "pg_backend_pid()", [dbname]).fetchall()


def run_in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []

    def body() -> None:
        try:
            out.append(fn())
        except Exception as e:  # the test looks at it
            out.append(e)

    t = threading.Thread(target=body, daemon=True)
    t.start()
    return t, out


def is_shutdown(e: BaseException) -> bool:
    return getattr(e, "sqlstate", None) == "57P01" or SHUTDOWN in str(e)


def assert_ended_by_shutdown(conn: psycopg.Connection[Any]) -> None:
    """The server sent this connection FATAL 57P01 after its last answer and closed it.

    The FATAL is seen where it lands: still on the socket (peeked), as the error of the next
    statement, or as a notice (libpq turns an ErrorResponse that arrives while idle into
    one).  The next statement fails either way (when the server's reset wins the race libpq
    only says the server closed the connection, as with PostgreSQL's own shutdown)."""
    import select
    import socket

    sock = socket.socket(fileno=os.dup(conn.pgconn.socket))
    try:
        ready, _, _ = select.select([sock], [], [], 60)
        assert ready, "nothing came from the server"
        data = sock.recv(4096, socket.MSG_PEEK)
    finally:
        sock.close()
    with pytest.raises(psycopg.OperationalError) as e:
        conn.execute("SELECT 1")
    assert is_shutdown(e.value) or "closed the connection" in str(e.value), e.value
    notices = getattr(conn, "shutdown_notices", [])
    seen = (b"SFATAL" in data and b"C57P01" in data and SHUTDOWN.encode() in data) or is_shutdown(e.value) \
        or "57P01" in notices
    assert seen, (data, e.value, notices)


def dbname_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


# --- SIGTERM / SIGINT ---------------------------------------------------------------------
def test_sigterm_lets_the_running_statement_finish_then_57p01(pg_db, pg_cluster, sluice):
    db = dbname_of(pg_db)
    s = sluice(pg_db, "[server]\nshutdown_timeout_s = 60\n")
    busy = s.connect(user="postgres", dbname=db)
    idle = s.connect(user="postgres", dbname=db)
    assert idle.execute("SELECT 1").fetchone() == (1,)
    t, out = run_in_thread(lambda: busy.execute("SELECT pg_sleep(2), 42").fetchone())
    wait_until(lambda: any(r[1] == "active" and "pg_sleep" in r[2] for r in ours(pg_cluster.url, db)),
               "pg_sleep running upstream")
    s.signal(signal.SIGTERM)
    wait_until(lambda: s.get("/healthz") == (503, '{"status":"shutting down"}'), "unhealthy while draining")
    t.join(60)
    assert out and out[0] == ("", 42), out  # it completed
    assert_ended_by_shutdown(busy)
    assert_ended_by_shutdown(idle)
    assert s.wait() == 0
    wait_until(lambda: not ours(pg_cluster.url, db), "no upstream session of ours left")
    assert "SIGTERM: shutting down" in s.log()


@pytest.mark.parametrize("pool_mode", ["session", "transaction"])
def test_sigterm_without_metrics_drains_the_passthrough_hot_path(pool_mode, pg_db, pg_cluster, sluice):
    """No ``[http]``: the tap has no sink and the relay keeps its counters inline (both ways);
    the idle session still ends at once, the busy one after its answer, with simple queries
    run back to back before (the fast path) and in both pool modes."""
    db = dbname_of(pg_db)
    s = sluice(pg_db, f"[server]\nshutdown_timeout_s = 60\n[pool]\npool_mode = \"{pool_mode}\"\npool_size = 4\n",
               http=False)
    busy = s.connect(user="postgres", dbname=db)
    idle = s.connect(user="postgres", dbname=db, cursor_factory=psycopg.ClientCursor)  # simple protocol
    for i in range(50):
        assert idle.execute(f"SELECT {i}").fetchone() == (i,)
        assert busy.execute(f"SELECT {i} + 1").fetchone() == (i + 1,)
    t, out = run_in_thread(lambda: busy.execute("SELECT pg_sleep(2), 42").fetchone())
    wait_until(lambda: any(r[1] == "active" and "pg_sleep" in r[2] for r in ours(pg_cluster.url, db)),
               "pg_sleep running upstream")
    s.signal(signal.SIGTERM)
    assert_ended_by_shutdown(idle)  # between statements: ended while the other one still runs
    assert t.is_alive()
    t.join(60)
    assert out and out[0] == ("", 42), out  # it completed
    assert_ended_by_shutdown(busy)
    assert s.wait() == 0


def test_sigterm_past_the_shutdown_timeout_cancels_upstream(pg_db, pg_cluster, sluice):
    db = dbname_of(pg_db)
    s = sluice(pg_db, "[server]\nshutdown_timeout_s = 1\n")
    c = s.connect(user="postgres", dbname=db)
    t, out = run_in_thread(lambda: c.execute("SELECT pg_sleep(30)").fetchone())
    wait_until(lambda: any(r[1] == "active" and "pg_sleep" in r[2] for r in ours(pg_cluster.url, db)),
               "pg_sleep running upstream")
    s.signal(signal.SIGTERM)
    t.join(25)  # well before pg_sleep(30) could end by itself
    assert not t.is_alive()
    assert isinstance(out[0], psycopg.OperationalError) and is_shutdown(out[0]), out
    assert s.wait() == 0
    wait_until(lambda: not any("pg_sleep" in r[2] for r in ours(pg_cluster.url, db)), "the upstream query cancelled")
    wait_until(lambda: not ours(pg_cluster.url, db), "no upstream session of ours left")
    assert "statements still in flight" in s.log()


# a nested-loop join: about 1 s at N = 5000 on a quiet machine, for ever at N = 400000
SLOW_DUCKDB = "SELECT count(*) FROM range(N) a, range(N) b WHERE (a.range * 7 + b.range) % 1000003 = 1"


def test_sigint_over_duckdb_interrupts_past_the_timeout_and_drains_idle(sluice):
    s = sluice("duckdb:///:memory:", "[server]\nshutdown_timeout_s = 0.5\n")
    idle = s.connect()
    assert idle.execute("SELECT 40 + 2").fetchone() == (42,)
    busy = s.connect()
    t, out = run_in_thread(lambda: busy.execute(SLOW_DUCKDB.replace("N", "400000")).fetchone())
    wait_until(lambda: s.metrics()[("sluice_connections_current", ())] == 2, "two sessions")
    time.sleep(0.3)  # let the statement start running
    s.signal(signal.SIGINT)
    t.join(60)
    assert not t.is_alive() and isinstance(out[0], psycopg.OperationalError) and is_shutdown(out[0]), out
    assert_ended_by_shutdown(idle)
    assert s.wait() == 0


def test_sigterm_over_duckdb_lets_the_statement_finish(sluice):
    s = sluice("duckdb:///:memory:", "[server]\nshutdown_timeout_s = 120\n")
    c = s.connect()
    expected = c.execute(SLOW_DUCKDB.replace("N", "2000")).fetchone()
    t, out = run_in_thread(lambda: (c.execute(SLOW_DUCKDB.replace("N", "5000")).fetchone(), time.monotonic()))
    time.sleep(0.3)
    sent = time.monotonic()
    s.signal(signal.SIGTERM)
    t.join(120)
    assert out and not isinstance(out[0], Exception), out
    row, done = out[0]
    assert isinstance(row[0], int) and row[0] >= expected[0]
    if done > sent:  # the usual case: it was in flight when the signal came, and it completed
        s.wait_log("shutting down: 1 session(s) open")
    assert_ended_by_shutdown(c)
    assert s.wait() == 0


# --- SIGHUP -------------------------------------------------------------------------------
CONFIG_V1 = """
[server]
auth = "scram-sha-256"

[[users]]
name = "app"
password = "old-secret"

[rewrite]
mode = "on"

[ask]
row_limit = 100
"""


def test_sighup_reloads_users_and_settings_without_dropping_sessions(sluice):
    s = sluice("duckdb:///:memory:", CONFIG_V1)
    old = s.connect(user="app", password="old-secret")
    assert old.execute("SHOW sluice.rewrite").fetchone() == ("on",)
    assert " DEBUG " not in s.log()
    s.config.write_text(CONFIG_V1.replace("old-secret", "new-secret").replace('mode = "on"', 'mode = "off"')
                        + '\n[log]\nlevel = "debug"\n')
    s.signal(signal.SIGHUP)
    s.wait_log("config reloaded")
    # the open session keeps running, with the settings it started with
    assert old.execute("SELECT 41 + 1").fetchone() == (42,)
    assert old.execute("SHOW sluice.rewrite").fetchone() == ("on",)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        s.connect(user="app", password="old-secret")
    new = s.connect(user="app", password="new-secret")
    assert new.execute("SHOW sluice.rewrite").fetchone() == ("off",)
    with pytest.raises(psycopg.errors.UndefinedTable):
        new.execute("SELECT * FROM no_such_table")
    s.wait_log(" DEBUG ")  # the new log level

    # a broken file: every mistake logged, the old (reloaded) settings kept
    s.config.write_text(CONFIG_V1.replace("row_limit = 100", "row_limit = -1\nbogus = 1"))
    s.signal(signal.SIGHUP)
    s.wait_log("config reload failed", 2)
    failed = [ln for ln in s.log().splitlines() if "config reload failed" in ln]
    assert any("ask.row_limit" in ln for ln in failed) and any("ask.bogus" in ln for ln in failed), failed
    assert "old-secret" not in s.log() and "new-secret" not in s.log()
    again = s.connect(user="app", password="new-secret")
    assert again.execute("SELECT 1").fetchone() == (1,)
    assert old.execute("SELECT 2").fetchone() == (2,)
    m = s.metrics()
    assert m[("sluice_config_reloads_total", (("result", "ok"),))] == 1
    assert m[("sluice_config_reloads_total", (("result", "failed"),))] == 1
    s.signal(signal.SIGTERM)
    assert s.wait() == 0


# --- /metrics and /healthz ----------------------------------------------------------------
@pytest.mark.parametrize("kind", ["postgres", "duckdb"])
def test_metrics_move_with_a_workload(kind, request, sluice):
    if kind == "postgres":
        url = request.getfixturevalue("pg_db")
        user, db = "postgres", dbname_of(url)
    else:
        url, user, db = "duckdb:///:memory:", "sluice", "memory"
    s = sluice(url)
    before = s.metrics()
    with s.connect(user=user, dbname=db) as c:
        assert c.execute("SELECT 1").fetchone() == (1,)
        assert c.execute("SELECT %s::int + 1", [41]).fetchone() == (42,)  # extended protocol
        assert c.execute("SELECT %s::int * 2", [21], prepare=True).fetchone() == (42,)
        with pytest.raises(psycopg.errors.UndefinedTable):
            c.execute("SELECT * FROM no_such_table")
        assert c.execute("SELECT 'still fine'").fetchone() == ("still fine",)
        # a result of many chunks: every message still where it belongs
        rows = c.execute("SELECT x, 'row ' || x FROM generate_series(1, 100000) AS t(x)").fetchall()
        assert len(rows) == 100000 and rows[-1] == (100000, "row 100000")
    wait_until(lambda: s.metrics()[("sluice_connections_current", ())] == 0, "the session closed")
    after = s.metrics()

    def delta(name: str, labels: tuple[tuple[str, str], ...] = ()) -> float:
        return after.get((name, labels), 0.0) - before.get((name, labels), 0.0)

    assert delta("sluice_connections_total") == 1
    assert delta("sluice_statements_total") >= 6
    assert delta("sluice_statement_duration_seconds_count") >= 6
    assert delta("sluice_errors_total", (("sqlstate", "42P01"),)) == 1
    for name in ("searched", "stored", "served", "dropped"):
        assert (f"sluice_rewrites_{name}_total", ()) in after
    assert ("sluice_rewrites_proved", ()) in after and ("sluice_rewrite_time_saved_seconds", ()) in after
    status, body = s.get("/healthz")
    assert status == 200 and json.loads(body)["status"] == "ok"
    s.signal(signal.SIGTERM)
    assert s.wait() == 0


def test_healthz_goes_unhealthy_when_postgres_stops(sluice):
    pg = PgCluster().start()
    try:
        s = sluice(pg.url)
        status, body = s.get("/healthz")
        assert status == 200 and json.loads(body) == {"status": "ok", "backend_ms": json.loads(body)["backend_ms"]}
        pg.stop()
        status, body = s.get("/healthz")
        assert status == 503 and json.loads(body)["status"] == "unavailable", body
        s.signal(signal.SIGTERM)
        assert s.wait() == 0
    finally:
        pg.stop()


def test_metrics_count_ask_by_route_and_pipeline_and_llm_tokens(tmp_path, sluice):
    import duckdb

    from sqlsluice.llm.scripted_server import ScriptedLLMServer

    db = tmp_path / "shop.duckdb"
    with duckdb.connect(str(db)) as d:
        d.execute("CREATE TABLE customers (id INTEGER, name VARCHAR, city VARCHAR)")
        d.execute("INSERT INTO customers VALUES (1, 'Ann', 'Oslo'), (2, 'Bo', 'Rome'), (3, 'Cy', 'Oslo')")
    llm = ScriptedLLMServer(responder=lambda body: "SELECT count(*) AS n FROM customers WHERE city = 'Oslo'").start()
    try:
        s = sluice(f"duckdb:///{db}", f"""
[server]
state = "{tmp_path / 'state.sqlite'}"
[llm]
base_url = "{llm.base_url}"
max_retries = 0
[llm.models]
default = "scripted-model"
""")
        with s.connect(dbname="shop") as c:
            assert c.execute("ASK 'How many customers live in Oslo?'").fetchall() == [(2,)]
            c.execute("SET sluice.router = 'always:basic'")
            assert c.execute("ASK 'How many customers are in Oslo?'").fetchall() == [(2,)]
            assert c.execute("SELECT 1").fetchone() == (1,)  # not an ASK: counted once only
        m = s.metrics()
        asks = {k[1]: v for k, v in m.items() if k[0] == "sluice_ask_questions_total"}
        assert sum(asks.values()) == 2, asks
        assert asks == {(("pipeline", "basic"), ("route", "tables")): 1, (("pipeline", "basic"), ("route", "always:basic")): 1}
        tokens = {k[1]: v for k, v in m.items() if k[0] == "sluice_llm_tokens_total"}
        assert tokens.get((("direction", "input"), ("model", "scripted-model")), 0) > 0, tokens
        assert len(llm.requests) >= 1
        s.signal(signal.SIGTERM)
        assert s.wait() == 0
    finally:
        llm.stop()


def test_metrics_count_rewrites_searched_stored_served(pg_db, tpcds_tiny, sluice):
    try:
        from sqlsluice.bench.tpcds_load import copy_duckdb_to_postgres
    except ImportError:
        from sqlsluice.bench.tpcds_load import copy_duckdb_to_postgres
    from sqlsluice.databases.tpcds import tpcds_queries

    copy_duckdb_to_postgres(tpcds_tiny, pg_db)
    # sf=0.01 is tiny: no 1.2x margin asked
    s = sluice(pg_db, "[rewrite]\nmin_speedup = 1.0\n")
    q1 = tpcds_queries()[1]
    with s.connect(user="postgres", dbname=dbname_of(pg_db)) as c:
        first = c.execute(q1).fetchall()
        wait_until(lambda: s.metrics()[("sluice_rewrites_stored_total", ())] >= 1, "the rewrite searched and stored",
                   limit=240)
        second = c.execute(q1).fetchall()
        last = dict(c.execute("SHOW sluice.last").fetchall())
    assert second == first
    m = s.metrics()
    assert m[("sluice_rewrites_searched_total", ())] >= 1
    assert last["rewritten"] == "True", last
    assert m[("sluice_rewrites_served_total", ())] >= 1
    assert m[("sluice_rewrites_proved", ())] == (1 if last["verdict"] == "EQUIVALENT" else 0)
    assert m[("sluice_rewrites_dropped_total", ())] == 0
    # the served run's time was fed back (its sign is the machine's business: a loaded one may
    # run the rewrite slower once)
    assert m[("sluice_rewrite_time_saved_seconds", ())] != 0.0
    s.signal(signal.SIGTERM)
    assert s.wait() == 0


def test_http_listen_mistakes_are_one_line_and_exit_2(tmp_path):
    r = subprocess.run([sys.executable, "-m", "sqlsluice", "serve", "--backend", "duckdb:///:memory:",
                        "--http-listen", "127.0.0.1:99999"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 2 and "--http-listen: port 99999 is out of range" in r.stderr, r.stderr
    cfg = tmp_path / "sluice.toml"
    cfg.write_text('[http]\nlisten = "nonsense"\n[server]\nshutdown_timeout_s = -1\n')
    r = subprocess.run([sys.executable, "-m", "sqlsluice", "serve", "--backend", "duckdb:///:memory:",
                        "--config", str(cfg)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 2
    assert "http.listen" in r.stderr and "server.shutdown_timeout_s" in r.stderr, r.stderr


def test_asyncpg_through_the_metrics_tap_over_postgres(pg_db, sluice):
    import asyncio

    import asyncpg

    s = sluice(pg_db)

    async def work() -> None:
        c = await asyncpg.connect(host="127.0.0.1", port=s.port, user="postgres", database=dbname_of(pg_db))
        try:
            assert await c.fetchval("SELECT $1::int + 1", 41) == 42
            rows = await c.fetch("SELECT x, md5(x::text) FROM generate_series(1, 50000) AS t(x)")
            assert len(rows) == 50000 and rows[-1][0] == 50000
            with pytest.raises(asyncpg.exceptions.DivisionByZeroError):
                await c.fetchval("SELECT 1 / $1::int", 0)
            async with c.transaction():
                assert await c.fetchval("SELECT 7") == 7
        finally:
            await c.close()

    before = s.metrics()
    asyncio.run(work())
    after = s.metrics()
    assert after[("sluice_errors_total", (("sqlstate", "22012"),))] == 1
    assert after[("sluice_statements_total", ())] - before.get(("sluice_statements_total", ()), 0) >= 5
    s.signal(signal.SIGTERM)
    assert s.wait() == 0


def test_psql_sigterm_between_two_statements(pg_db, pg_cluster, sluice):
    db = dbname_of(pg_db)
    s = sluice(pg_db, "[server]\nshutdown_timeout_s = 60\n")
    env = dict(os.environ, PGCONNECT_TIMEOUT="10")
    psql = subprocess.Popen(["psql", "-X", "-h", "127.0.0.1", "-p", str(s.port), "-U", "postgres", "-d", db,
                             "-c", "SELECT pg_sleep(2), 42 AS answer", "-c", "SELECT 'second' AS s"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    wait_until(lambda: any(r[1] == "active" and "pg_sleep" in r[2] for r in ours(pg_cluster.url, db)),
               "pg_sleep running upstream")
    s.signal(signal.SIGTERM)
    out, err = psql.communicate(timeout=60)
    assert "42" in out and "(1 row)" in out, out  # the first statement completed
    assert "second" not in out  # the second one was not run
    assert psql.returncode == 2 and ("terminating connection due to administrator command" in err
                                     or "server closed the connection" in err), err
    assert s.wait() == 0
    wait_until(lambda: not ours(pg_cluster.url, db), "no upstream session of ours left")


def test_a_second_sigterm_stops_waiting_for_statements_in_flight(sluice):
    s = sluice("duckdb:///:memory:", "[server]\nshutdown_timeout_s = 600\n")
    c = s.connect()
    t, out = run_in_thread(lambda: c.execute(SLOW_DUCKDB.replace("N", "400000")).fetchone())
    time.sleep(0.3)
    s.signal(signal.SIGTERM)
    s.wait_log("shutting down: 1 session(s) open")
    assert t.is_alive()  # still waiting for the statement (600 s allowed)
    s.signal(signal.SIGTERM)
    t.join(60)
    assert not t.is_alive() and isinstance(out[0], psycopg.OperationalError) and is_shutdown(out[0]), out
    assert s.wait() == 0
    assert "SIGTERM again: not waiting for statements in flight" in s.log()
