"""Faithful sessions and database routing through ``sluice serve`` (issue 12, items 1 and 4).

Over a real PostgreSQL: the client sees the upstream's real backend pid (BackendKeyData,
NOTIFY's sender pid), cancel keys are still the proxy's, a session the upstream ends gets
PostgreSQL's one FATAL and nothing more, nothing is sent after Terminate, and the
database the client names is the one it reaches (``[databases]`` routes names to DuckDB
or PostgreSQL backends).  Over DuckDB: a client that disconnects mid-statement has its
statement interrupted.  Real clients: psycopg, asyncpg, node-postgres and raw sockets.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import sqlite3
import struct
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from sqlsluice.bench.proxy import ServeProcess
from sqlsluice.databases.pgcluster import PgCluster
from sqlsluice.middleware import codec
from sqlsluice.middleware.server import rewrite_namespace

from .conftest import start


@pytest.fixture(scope="module")
def upstream(pg_cluster: PgCluster) -> str:
    url = pg_cluster.create_database("pgsess_" + uuid.uuid4().hex[:8])
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("CREATE TABLE kv (k int PRIMARY KEY, v text)")
    return url


@pytest.fixture(scope="module")
def proxy(upstream: str) -> Iterator[ServeProcess]:
    with ServeProcess(upstream) as p:
        yield p


@pytest.fixture()
def dsn(proxy: ServeProcess, upstream: str) -> str:
    return proxy.dsn(database=upstream.rsplit("/", 1)[1])


def when_running(upstream: str, marker: str, action: object) -> threading.Thread:
    """Call ``action()`` once a statement containing ``marker`` runs upstream."""

    def run() -> None:
        with psycopg.connect(upstream, autocommit=True) as admin:
            for _ in range(600):
                n = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                                  "AND query LIKE %s AND pid <> pg_backend_pid()", [f"%{marker}%"]).fetchone()
                if n and n[0]:
                    break
                time.sleep(0.05)
        action()  # type: ignore[operator]

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


# --- raw protocol helpers --------------------------------------------------------------
def _startup(port: int, database: str, user: str = "postgres") -> tuple[socket.socket, list[tuple[bytes, bytes]]]:
    """Connect, send a StartupMessage, read up to the first ReadyForQuery; return the messages."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    body = struct.pack("!i", codec.PROTOCOL_V3) + b"".join(
        k.encode() + b"\0" + v.encode() + b"\0" for k, v in (("user", user), ("database", database))) + b"\0"
    s.sendall(struct.pack("!i", len(body) + 4) + body)
    buf = b""
    while True:
        msgs, _rest = _split(buf)
        if any(c == b"Z" for c, _ in msgs) or any(c == b"E" for c, _ in msgs):
            return s, msgs
        chunk = s.recv(65536)
        assert chunk, f"closed during startup: {buf!r}"
        buf += chunk


def _split(buf: bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
    out = []
    pos = 0
    while pos + 5 <= len(buf):
        ln = struct.unpack_from("!i", buf, pos + 1)[0]
        if pos + 1 + ln > len(buf):
            break
        out.append((buf[pos:pos + 1], buf[pos + 5:pos + 1 + ln]))
        pos += 1 + ln
    return out, buf[pos:]


def _read_to_close(s: socket.socket) -> bytes:
    buf = b""
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            return buf
        if not chunk:
            return buf
        buf += chunk


def _startup_error(port: int, database: str) -> codec.ErrorFields:
    """The FATAL a startup for ``database`` ends with (after AuthenticationOk, as PostgreSQL)."""
    s, msgs = _startup(port, database)
    rest, _ = _split(_read_to_close(s))
    s.close()
    msgs += rest
    assert msgs[0] == (b"R", struct.pack("!i", 0))
    (err,) = [codec.parse_error_fields(p) for c, p in msgs if c == b"E"]
    assert err.fields.get("S") == "FATAL"
    return err


def _key(msgs: list[tuple[bytes, bytes]]) -> tuple[int, int]:
    (payload,) = [p for c, p in msgs if c == b"K"]
    pid, secret = struct.unpack("!ii", payload)
    return pid, secret


# --- the real backend pid --------------------------------------------------------------
def test_pg_session_backend_pid_is_the_upstreams(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as c:
        assert c.execute("SELECT pg_backend_pid()").fetchone() == (c.info.backend_pid,)


def test_pg_session_asyncpg_server_pid(dsn: str) -> None:
    import asyncpg

    async def main() -> tuple[int, int]:
        con = await asyncpg.connect(dsn)
        try:
            return con.get_server_pid(), await con.fetchval("SELECT pg_backend_pid()")
        finally:
            await con.close()

    seen, real = asyncio.run(main())
    assert seen == real


def test_pg_session_notify_sender_pid(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as listener, psycopg.connect(dsn, autocommit=True) as sender:
        listener.execute("LISTEN sess_chan")
        sender.execute("NOTIFY sess_chan, 'hello'")
        (n,) = list(listener.notifies(timeout=10, stop_after=1))
        assert (n.channel, n.payload, n.pid) == ("sess_chan", "hello", sender.info.backend_pid)


def test_pg_session_cancel_still_mapped(dsn: str, upstream: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as c:
        when_running(upstream, "sess-cancel", c.cancel_safe)
        with pytest.raises(psycopg.errors.QueryCanceled) as ei:
            c.execute("SELECT pg_sleep(10) /* sess-cancel */")
        assert ei.value.sqlstate == "57014"
        assert c.execute("SELECT 1").fetchone() == (1,)


def test_pg_session_cancel_needs_the_proxys_secret(proxy: ServeProcess, upstream: str) -> None:
    """A CancelRequest with the real pid but another secret (e.g. the upstream's own, or a
    guess) is ignored, as PostgreSQL ignores a bad key: the statement runs to its end."""
    db = upstream.rsplit("/", 1)[1]
    s, msgs = _startup(proxy.port, db)
    pid, secret = _key(msgs)

    def bad_cancel() -> None:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as c:
            c.sendall(struct.pack("!iiii", 16, codec.CANCEL_REQUEST_CODE, pid, secret ^ 1))
            c.recv(1)

    when_running(upstream, "sess-badkey", bad_cancel)
    s.sendall(codec.message(b"Q", b"SELECT pg_sleep(1.5), 'slept' /* sess-badkey */\0"))
    buf = b""
    while not any(c == b"Z" for c, _ in _split(buf)[0]):
        chunk = s.recv(65536)
        assert chunk
        buf += chunk
    codes = [c for c, _ in _split(buf)[0]]
    assert codes == [b"T", b"D", b"C", b"Z"]
    s.close()


# --- ends of a session -----------------------------------------------------------------
def test_pg_session_terminated_upstream_sends_one_fatal(proxy: ServeProcess, upstream: str) -> None:
    s, msgs = _startup(proxy.port, upstream.rsplit("/", 1)[1])
    pid, _ = _key(msgs)
    with psycopg.connect(upstream, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone() == (True,)
    rest, tail = _split(_read_to_close(s))
    s.close()
    assert tail == b""
    errors = [codec.parse_error_fields(p) for c, p in rest if c == b"E"]
    assert [(e.sqlstate, e.fields.get("S")) for e in errors] == [("57P01", "FATAL")]
    assert [c for c, _ in rest] == [b"E"]


def test_pg_session_psycopg_commit_after_terminate(dsn: str, upstream: str) -> None:
    c = psycopg.connect(dsn)
    try:
        c.execute("INSERT INTO kv VALUES (1, 'lost')")
        with psycopg.connect(upstream, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [c.info.backend_pid])
        with pytest.raises(psycopg.OperationalError) as ei:
            c.commit()
        assert "received 2 results" not in str(ei.value)
        assert "terminating connection due to administrator command" in str(ei.value)
    finally:
        c.close()
    with psycopg.connect(upstream) as check:
        assert check.execute("SELECT count(*) FROM kv WHERE k = 1").fetchone() == (0,)


def test_pg_session_self_terminate(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as c:
        with pytest.raises(psycopg.errors.AdminShutdown):
            c.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        assert c.closed


def test_pg_session_psql_self_terminate_as_direct(dsn: str, upstream: str) -> None:
    """psql reports a terminated session through the proxy word for word as it does directly."""
    outs = [subprocess.run(["psql", "-X", "-d", d, "-c", "SELECT pg_terminate_backend(pg_backend_pid())"],
                           capture_output=True, text=True, timeout=60, check=False) for d in (upstream, dsn)]
    assert outs[0].stderr.startswith("FATAL:  terminating connection due to administrator command")
    assert [(o.returncode, o.stdout, o.stderr) for o in outs[1:]] == [(o.returncode, o.stdout, o.stderr)
                                                                      for o in outs[:1]]


def test_pg_session_asyncpg_terminate(dsn: str, upstream: str) -> None:
    import asyncpg

    async def main() -> tuple[bool, str]:
        con = await asyncpg.connect(dsn)
        with psycopg.connect(upstream, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [con.get_server_pid()])
        for _ in range(200):  # asyncpg reads the FATAL as it arrives and closes
            if con.is_closed():
                break
            await asyncio.sleep(0.05)
        closed = con.is_closed()
        me = await asyncpg.connect(dsn)
        try:
            await me.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        except asyncpg.ConnectionDoesNotExistError as e:
            return closed, str(e)
        return closed, "no error"

    closed, err = asyncio.run(main())
    assert closed
    assert err == "connection was closed in the middle of operation: terminating connection due to administrator command"


def test_pg_session_nothing_after_terminate(proxy: ServeProcess, upstream: str) -> None:
    s, msgs = _startup(proxy.port, upstream.rsplit("/", 1)[1])
    assert msgs[-1][0] == b"Z"
    s.sendall(codec.message(b"Q", b"SELECT 1\0"))
    buf = b""
    while not any(c == b"Z" for c, _ in _split(buf)[0]):
        buf += s.recv(65536)
    s.sendall(codec.message(b"X", b""))
    assert _read_to_close(s) == b""  # the proxy closed without a word
    s.close()


NODE_SCRIPT = """
const { Client } = require('pg');
const c = new Client({ host: '127.0.0.1', port: %d, user: 'postgres', database: %s });
let errors = [];
c.on('error', (e) => errors.push(String(e)));
process.on('uncaughtException', (e) => { console.log(JSON.stringify({ uncaught: String(e) })); process.exit(3); });
(async () => {
  await c.connect();
  const r = await c.query('SELECT pg_backend_pid() AS pid, $1::int + 1 AS n', [41]);
  await c.end();
  await new Promise((res) => setTimeout(res, 300));
  console.log(JSON.stringify({ n: r.rows[0].n, pid: r.rows[0].pid, processID: c.processID, errors }));
})().catch((e) => { console.log(JSON.stringify({ failed: String(e) })); process.exit(2); });
"""


@pytest.fixture(scope="module")
def node_pg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node-postgres test: node/npm not installed")
    d = Path("/tmp/sluice-node-pg")
    if not (d / "node_modules" / "pg").exists():
        d.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "pg"], cwd=d, capture_output=True,
                           text=True, timeout=120, check=False)
        if r.returncode != 0:
            pytest.skip(f"node-postgres test: `npm install pg` failed (no registry?): {r.stderr[-300:]}")
    return d


def test_pg_session_node_postgres_end(node_pg: Path, proxy: ServeProcess, upstream: str) -> None:
    script = node_pg / f"t_{uuid.uuid4().hex[:6]}.js"
    script.write_text(NODE_SCRIPT % (proxy.port, json.dumps(upstream.rsplit("/", 1)[1])))
    try:
        r = subprocess.run(["node", str(script)], cwd=node_pg, capture_output=True, text=True, timeout=60,
                           check=False)
    finally:
        script.unlink()
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["errors"] == [] and out["n"] == 42
    assert out["pid"] == out["processID"]


JDBC_SOURCE = """
import java.sql.*;
public class Sessions {
  public static void main(String[] a) throws Exception {
    try (Connection c = DriverManager.getConnection(a[0], "postgres", "")) {
      int pid = ((org.postgresql.PGConnection) c).getBackendPID();
      ResultSet r = c.createStatement().executeQuery("SELECT pg_backend_pid()");
      r.next();
      System.out.println("pid " + (pid == r.getInt(1) ? "matches" : pid + " != " + r.getInt(1)));
      Statement s = c.createStatement();
      new Thread(() -> { try { Thread.sleep(1000); s.cancel(); } catch (Exception e) { e.printStackTrace(); } }).start();
      try { s.executeQuery("SELECT pg_sleep(10)"); System.out.println("cancel: none"); }
      catch (SQLException e) { System.out.println("cancel: " + e.getSQLState()); }
      try { c.createStatement().execute("SELECT pg_terminate_backend(pg_backend_pid())"); System.out.println("none"); }
      catch (SQLException e) { System.out.println("terminate: " + e.getSQLState() + " " + e.getMessage()); }
      System.out.println("closed " + c.isClosed());
    }
  }
}
"""


def test_pg_session_pgjdbc_as_direct(tmp_path: Path, proxy: ServeProcess, upstream: str) -> None:
    """pgjdbc: backend pid, Statement.cancel() and a terminated session, word for word as direct."""
    jars = sorted(Path.home().glob(".m2/repository/org/postgresql/postgresql/*/postgresql-*.jar")) or \
        sorted(Path("/usr/share/java").glob("postgresql*.jar"))  # Debian's libpostgresql-jdbc-java
    if shutil.which("java") is None or not jars:
        pytest.skip("pgjdbc test: java or the pgjdbc jar (libpostgresql-jdbc-java, ~/.m2) not installed")
    src = tmp_path / "Sessions.java"
    src.write_text(JDBC_SOURCE)
    db = upstream.rsplit("/", 1)[1]
    port = int(upstream.split(":")[2].split("/")[0])
    outs = []
    for p in (port, proxy.port):
        r = subprocess.run(["java", "-cp", str(jars[-1]), str(src), f"jdbc:postgresql://127.0.0.1:{p}/{db}"],
                           capture_output=True, text=True, timeout=120, check=False)
        assert r.returncode == 0, r.stdout + r.stderr
        outs.append(r.stdout)
    assert outs[0].splitlines()[:3] == ["pid matches", "cancel: 57014",
                                        "terminate: 57P01 FATAL: terminating connection due to administrator command"]
    assert outs[1] == outs[0]


# --- database routing ------------------------------------------------------------------
def test_pg_route_unknown_database_is_postgres_3d000(proxy: ServeProcess) -> None:
    with pytest.raises(psycopg.OperationalError) as ei:
        psycopg.connect(proxy.dsn(database="nosuchdb")).close()
    assert 'FATAL:  database "nosuchdb" does not exist' in str(ei.value)
    err = _startup_error(proxy.port, "nosuchdb")
    assert (err.sqlstate, err.message) == ("3D000", 'database "nosuchdb" does not exist')
    assert err.fields.get("R") == "InitPostgres"  # PostgreSQL's own ErrorResponse, forwarded
    assert proxy.alive()


@pytest.fixture(scope="module")
def two_dbs(pg_cluster: PgCluster) -> tuple[str, str]:
    names = []
    for tag in ("north", "south"):
        url = pg_cluster.create_database(f"route_{tag}_{uuid.uuid4().hex[:6]}")
        with psycopg.connect(url, autocommit=True) as c:
            c.execute("CREATE TABLE region (name text)")
            c.execute("INSERT INTO region VALUES (%s)", [tag])
        names.append(url.rsplit("/", 1)[1])
    return names[0], names[1]


def test_pg_route_each_database_by_name(proxy: ServeProcess, two_dbs: tuple[str, str]) -> None:
    for name, tag in zip(two_dbs, ("north", "south"), strict=True):
        with psycopg.connect(proxy.dsn(database=name), autocommit=True) as c:
            assert c.execute("SELECT current_database(), name FROM region").fetchall() == [(name, tag)]


def test_pg_route_databases_map(tmp_path: Path, pg_cluster: PgCluster, two_dbs: tuple[str, str]) -> None:
    import duckdb

    wh = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(wh)) as d:
        d.execute("CREATE TABLE region AS SELECT 'duck' AS name")
    north, south = two_dbs
    cfg = tmp_path / "sluice.toml"
    cfg.write_text(f'[databases]\nwarehouse = "duckdb:///{wh}"\n'
                   f'sales = {{ backend = "postgresql://postgres@127.0.0.1:{pg_cluster.port}/{north}" }}\n')
    with ServeProcess(f"postgresql://postgres@127.0.0.1:{pg_cluster.port}/{south}", config=cfg) as p:
        with psycopg.connect(p.dsn(database="warehouse"), autocommit=True) as c:
            assert c.execute("SELECT name FROM region").fetchall() == [("duck",)]
        with psycopg.connect(p.dsn(database="sales"), autocommit=True) as c:
            assert c.execute("SELECT current_database(), name FROM region").fetchall() == [(north, "north")]
            assert c.execute("SELECT pg_backend_pid()").fetchone() == (c.info.backend_pid,)
        for name in (south, "nosuchdb"):  # not in the map, and no "*"
            with pytest.raises(psycopg.OperationalError, match=f'FATAL:  database "{name}" does not exist'):
                psycopg.connect(p.dsn(database=name)).close()
            err = _startup_error(p.port, name)
            assert (err.sqlstate, err.message) == ("3D000", f'database "{name}" does not exist')
        assert p.alive()


def test_pg_route_databases_only_config(tmp_path: Path, pg_cluster: PgCluster, two_dbs: tuple[str, str]) -> None:
    """A sluice.toml with only [databases] (no server.backend, no demo database) serves; the
    password in an entry's URL never reaches the log."""
    north, _ = two_dbs
    cfg = tmp_path / "sluice.toml"
    cfg.write_text(f'[databases]\nsales = "postgresql://postgres:s3kr1t-pw@127.0.0.1:{pg_cluster.port}/{north}"\n')
    p = ServeProcess("duckdb:///unused.duckdb", config=cfg)
    i = p.argv.index("--backend")
    del p.argv[i:i + 2]
    p.argv += ["--log-level", "debug"]
    p.env["SLUICE_HOME"] = str(tmp_path / "home")  # no demo database there
    with p:
        with psycopg.connect(p.dsn(database="sales"), autocommit=True) as c:
            assert c.execute("SELECT current_database(), name FROM region").fetchall() == [(north, "north")]
        assert _startup_error(p.port, "other").sqlstate == "3D000"
        assert "sales" in p.log() and "s3kr1t-pw" not in p.log()


def test_pg_route_star(tmp_path: Path, pg_cluster: PgCluster, two_dbs: tuple[str, str]) -> None:
    cfg = tmp_path / "sluice.toml"
    cfg.write_text(f'[databases]\n"*" = "postgresql://postgres@127.0.0.1:{pg_cluster.port}/postgres"\n')
    state = tmp_path / "state.sqlite"
    with ServeProcess(f"postgresql://postgres@127.0.0.1:{pg_cluster.port}/postgres", config=cfg,
                      state=f"sqlite:///{state}") as p:
        for name, tag in zip(two_dbs, ("north", "south"), strict=True):
            with psycopg.connect(p.dsn(database=name), autocommit=True) as c:
                assert c.execute("SELECT current_database(), name FROM region").fetchall() == [(name, tag)]
                c.execute("SELECT name FROM region WHERE name <> 'zz'")  # a rewrite search in the background
        assert _startup_error(p.port, "nosuchdb").sqlstate == "3D000"
        # each database keeps its stored rewrites (here: "none found" markers) in its own tables
        tables = {name: "sluice_rewrites_" + rewrite_namespace(f"postgresql://postgres@127.0.0.1:{pg_cluster.port}/"
                                                               f"{name}") for name in two_dbs}
        counts: dict[str, int] = {}
        for _ in range(600):
            with sqlite3.connect(state) as db:
                have = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                counts = {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                          for t in tables.values() if t in have}
            if len(counts) == 2 and all(counts.values()):
                break
            time.sleep(0.1)
        assert sorted(counts) == sorted(tables.values()) and all(n >= 1 for n in counts.values()), counts


def test_route_star_must_be_postgres(tmp_path: Path) -> None:
    from sqlsluice.config import Config
    from sqlsluice.errors import ConfigError
    from sqlsluice.middleware.server import SluiceServer

    with pytest.raises(ConfigError, match=r'databases\."\*" must be a postgresql:// URL'):
        SluiceServer(Config(databases={"*": f"duckdb:///{tmp_path / 'x.duckdb'}"}))


# --- DuckDB: a vanished client's statement is interrupted ---------------------------------
def test_duckdb_disconnect_interrupts_statement(tmp_path: Path) -> None:
    th, running = start(tmp_path)
    try:
        before = {t for t in threading.enumerate() if t.name.startswith("sluice-duckdb")}
        s, msgs = _startup(running.port, "tpcds", user="sluice")
        assert msgs[-1][0] == b"Z"
        (worker,) = [t for t in threading.enumerate() if t.name.startswith("sluice-duckdb") and t not in before]
        # about 10^12 rows: minutes of work unless interrupted (the statement timeout is 300 s)
        s.sendall(codec.message(b"Q", b"SELECT count(*) FROM range(1000000) a, range(1000000) b\0"))
        time.sleep(1.0)  # let it start
        s.close()
        worker.join(30)
        assert not worker.is_alive(), "the statement kept running after its client left"
        with psycopg.connect(running.dsn(), autocommit=True) as c:  # the server serves on
            assert c.execute("SELECT 1").fetchone() == (1,)
    finally:
        th.stop()
