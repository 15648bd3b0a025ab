"""Real clients through ``sluice serve --backend postgresql://...`` (passthrough mode).

psql, psycopg 3, asyncpg and SQLAlchemy 2 each run the same battery against a real
PostgreSQL behind the proxy: types round-trip, an error leaves the connection usable, a
long statement is cancelled from the client.  Plus COPY both ways, session state (SET,
prepared statements, transactions) and ``SHOW sluice.last``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import signal
import subprocess
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from sqlsluice.bench.proxy import ServeProcess
from sqlsluice.databases.pgcluster import PgCluster

VALUES = (7, 9_000_000_000, decimal.Decimal("12345.678"), 2.5, "héllo 'world'", True,
          dt.date(2024, 2, 29), dt.datetime(2024, 2, 29, 13, 45, 1, 123456), None)
TYPES = ("int", "bigint", "numeric", "double precision", "text", "boolean", "date", "timestamp", "text")
BATTERY_SQL = ("SELECT 7::int, 9000000000::bigint, 12345.678::numeric, 2.5::float8, 'héllo ''world'''::text, "
               "true, DATE '2024-02-29', TIMESTAMP '2024-02-29 13:45:01.123456', NULL::text")


@pytest.fixture(scope="module")
def upstream(pg_cluster: PgCluster) -> str:
    import uuid

    url = pg_cluster.create_database("pgclients_" + uuid.uuid4().hex[:8])
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, price numeric(10,2), "
                  "added date DEFAULT DATE '2024-01-01')")
        c.execute("INSERT INTO items VALUES (1, 'apple', 1.50), (2, 'pear', 2.25), (3, 'plum', NULL)")
    return url


@pytest.fixture(scope="module")
def proxy(upstream: str) -> Iterator[ServeProcess]:
    with ServeProcess(upstream) as p:
        yield p


@pytest.fixture()
def dsn(proxy: ServeProcess, upstream: str) -> str:
    return proxy.dsn(database=upstream.rsplit("/", 1)[1])


def cancel_when_running(upstream: str, marker: str, cancel: object) -> threading.Thread:
    """Call ``cancel()`` once a statement containing ``marker`` runs upstream (polls pg_stat_activity)."""

    def run() -> None:
        with psycopg.connect(upstream, autocommit=True) as admin:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                n = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE %s "
                                  "AND pid <> pg_backend_pid()", [f"%{marker}%"]).fetchone()
                if n and n[0]:
                    break
                time.sleep(0.05)
        time.sleep(0.2)
        cancel()  # type: ignore[operator]

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


# --- psql (simple protocol) --------------------------------------------------------------
def _psql(dsn: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["psql", "-X", "-d", dsn, *args], input=stdin, capture_output=True, text=True,
                          timeout=60, check=False)


def test_pg_psql_types_and_describe(dsn: str) -> None:
    r = _psql(dsn, "-A", "-t", "-F", "|", "-c", BATTERY_SQL)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "7|9000000000|12345.678|2.5|héllo 'world'|t|2024-02-29|2024-02-29 13:45:01.123456|"
    r = _psql(dsn, "-c", r"\d items")
    assert r.returncode == 0, r.stderr
    for word in ("Table \"public.items\"", "id", "integer", "name", "text", "price", "numeric(10,2)", "items_pkey"):
        assert word in r.stdout
    r = _psql(dsn, "-c", r"\dt")
    assert "items" in r.stdout


def test_pg_psql_error_leaves_session_usable(dsn: str) -> None:
    r = _psql(dsn, "-A", "-t", stdin="SELECT 1/0;\nSELECT 40 + 2;\nSELECT * FROM no_such_table;\nSELECT 'ok';\n")
    assert "division by zero" in r.stderr
    assert 'relation "no_such_table" does not exist' in r.stderr
    assert r.stdout.split() == ["42", "ok"]


def test_pg_psql_cancel(dsn: str, upstream: str) -> None:
    p = subprocess.Popen(["psql", "-X", "-d", dsn, "-c", "SELECT pg_sleep(30) /* psql-cancel */"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.monotonic()
    cancel_when_running(upstream, "psql-cancel", lambda: p.send_signal(signal.SIGINT))  # psql sends a CancelRequest
    _out, err = p.communicate(timeout=40)
    assert "canceling statement due to user request" in err
    assert time.monotonic() - t0 < 25


def test_pg_psql_copy(dsn: str) -> None:
    r = _psql(dsn, "-c", "CREATE TABLE IF NOT EXISTS psql_copy (a int, b text)")
    assert r.returncode == 0, r.stderr
    r = _psql(dsn, "-c", "COPY psql_copy FROM STDIN", stdin="1\tone\n2\ttwo\n3\t\\N\n\\.\n")
    assert r.returncode == 0 and "COPY 3" in r.stdout, r.stderr
    r = _psql(dsn, "-c", "COPY (SELECT * FROM psql_copy ORDER BY a) TO STDOUT")
    assert r.stdout == "1\tone\n2\ttwo\n3\t\\N\n"


# --- psycopg 3 ---------------------------------------------------------------------------
def test_pg_psycopg_types_client_and_server_binding(dsn: str) -> None:
    params = VALUES[:-1]
    ph = ", ".join(f"%s::{t}" for t in TYPES[:-1]) + ", NULL::text"
    with psycopg.connect(dsn) as c:
        assert c.execute(BATTERY_SQL).fetchone() == VALUES
        # server-side binding (extended protocol), text and binary results
        assert c.execute(f"SELECT {ph}", params).fetchone() == VALUES
        assert c.cursor(binary=True).execute(f"SELECT {ph}", params).fetchone() == VALUES
        # client-side binding (simple protocol)
        assert psycopg.ClientCursor(c).execute(f"SELECT {ph}", params).fetchone() == VALUES
        # a prepared statement (psycopg prepares after the 1st run with prepare=True)
        for _ in range(3):
            assert c.execute(f"SELECT {ph}", params, prepare=True).fetchone() == VALUES


def test_pg_psycopg_executemany_and_rollback(dsn: str) -> None:
    with psycopg.connect(dsn) as c:
        c.execute("CREATE TABLE IF NOT EXISTS pmany (id int PRIMARY KEY, v text)")
        c.execute("TRUNCATE pmany")
        c.commit()
        with c.cursor() as cur:
            cur.executemany("INSERT INTO pmany VALUES (%s, %s)", [(i, f"v{i}") for i in range(100)])
        c.commit()
        c.execute("INSERT INTO pmany VALUES (1000, 'gone')")
        assert c.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        c.rollback()
        assert c.execute("SELECT count(*), max(id) FROM pmany").fetchone() == (100, 99)


def test_pg_psycopg_error_leaves_connection_usable(dsn: str) -> None:
    with psycopg.connect(dsn) as c:
        with pytest.raises(psycopg.errors.DivisionByZero):
            c.execute("SELECT 1/0")
        c.rollback()
        with pytest.raises(psycopg.errors.UndefinedTable):
            c.execute("SELECT * FROM missing WHERE id = %s", [1])
        # in a failed transaction PostgreSQL refuses everything until ROLLBACK
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            c.execute("SELECT 1")
        c.rollback()
        assert c.execute("SELECT %s::int * 2", [21]).fetchone() == (42,)


def test_pg_psycopg_cancel(dsn: str, upstream: str) -> None:
    with psycopg.connect(dsn) as c:
        cancel_when_running(upstream, "psycopg-cancel", c.cancel_safe)
        t0 = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled):
            c.execute("SELECT pg_sleep(30) /* psycopg-cancel */")
        assert time.monotonic() - t0 < 25
        c.rollback()
        assert c.execute("SELECT 1").fetchone() == (1,)


def test_pg_cancel_reaches_the_right_backend(dsn: str, upstream: str) -> None:
    """Two sessions sleep; cancelling one must not touch the other."""
    with psycopg.connect(dsn, autocommit=True) as a, psycopg.connect(dsn, autocommit=True) as b:
        result: dict[str, object] = {}

        def run_b() -> None:
            try:
                result["b"] = b.execute("SELECT pg_sleep(3), 'b done'").fetchone()
            except psycopg.Error as e:
                result["b"] = e

        tb = threading.Thread(target=run_b)
        tb.start()
        cancel_when_running(upstream, "cancel-a", a.cancel_safe)
        with pytest.raises(psycopg.errors.QueryCanceled):
            a.execute("SELECT pg_sleep(30) /* cancel-a */")
        tb.join(30)
        assert result["b"] == ("", "b done")


def test_pg_psycopg_copy_both_directions(dsn: str) -> None:
    with psycopg.connect(dsn) as c:
        c.execute("CREATE TABLE IF NOT EXISTS pcopy (id int, payload text, amount numeric)")
        c.execute("TRUNCATE pcopy")
        rows = [(i, f"row {i}\twith tab" if i % 7 else None, decimal.Decimal(i) / 4) for i in range(5000)]
        with c.cursor() as cur:
            with cur.copy("COPY pcopy FROM STDIN") as cp:
                for r in rows:
                    cp.write_row(r)
            with cur.copy("COPY pcopy (id, payload, amount) FROM STDIN (FORMAT binary)") as cp:
                cp.set_types(["int4", "text", "numeric"])
                cp.write_row((-1, "binary", decimal.Decimal("0.5")))
        c.commit()
        assert c.execute("SELECT count(*), sum(id) FROM pcopy").fetchone() == (5001, sum(range(5000)) - 1)
        with c.cursor() as cur:
            with cur.copy("COPY (SELECT id, payload, amount FROM pcopy WHERE id >= 0 ORDER BY id) TO STDOUT") as cp:
                back = [tuple(r) for r in cp.rows()]
        assert [(int(a), b, decimal.Decimal(d) if d is not None else None) for a, b, d in back] == rows
        # COPY FROM STDIN that fails part-way leaves nothing behind and the session usable
        with pytest.raises(psycopg.errors.InvalidTextRepresentation):
            with c.cursor() as cur, cur.copy("COPY pcopy FROM STDIN") as cp:
                cp.write(b"1\tok\t1\nnot-a-number\tbad\t2\n")
        c.rollback()
        assert c.execute("SELECT count(*) FROM pcopy").fetchone() == (5001,)


def test_pg_session_state_is_kept(dsn: str) -> None:
    """One upstream session per client: SET, PREPARE, temp tables and transactions persist."""
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("SET TimeZone = 'Asia/Tokyo'")
        assert c.execute("SHOW TimeZone").fetchone() == ("Asia/Tokyo",)
        assert c.info.parameter_status("TimeZone") == "Asia/Tokyo"  # ParameterStatus relayed
        c.execute("PREPARE twice(int) AS SELECT $1 * 2")
        assert c.execute("EXECUTE twice(21)").fetchone() == (42,)
        c.execute("CREATE TEMP TABLE tmp_state (x int)")
        c.execute("INSERT INTO tmp_state VALUES (1)")
        assert c.execute("SELECT count(*) FROM tmp_state").fetchone() == (1,)
        pid = c.execute("SELECT pg_backend_pid()").fetchone()
        assert c.execute("SELECT pg_backend_pid()").fetchone() == pid
        notices: list[str] = []
        c.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        c.execute("DO $$ BEGIN RAISE NOTICE 'hello from upstream'; END $$")
        assert notices == ["hello from upstream"]


def test_pg_listen_notify(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as a, psycopg.connect(dsn, autocommit=True) as b:
        a.execute("LISTEN chan")
        b.execute("NOTIFY chan, 'payload-1'")
        got = [(n.channel, n.payload) for n in a.notifies(timeout=5, stop_after=1)]
        assert got == [("chan", "payload-1")]


def test_pg_show_sluice_last_and_settings(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("SELECT 40 + 2")
        last = dict(c.execute("SHOW sluice.last").fetchall())
        assert last["sql"] == "SELECT 40 + 2" and last["action"] == "forward" and last["extended"] == "False"
        c.execute("SELECT %s::int", [5])
        last = dict(c.execute("SHOW sluice.last", prepare=False).fetchall())
        assert last["sql"] == "SELECT $1::int" and last["extended"] == "True"
        c.execute("SET sluice.rewrite = off")
        assert c.execute("SHOW sluice.rewrite").fetchone() == ("off",)
        # the same through the extended protocol (the upstream answers a literal SELECT)
        assert c.execute("SHOW sluice.rewrite", prepare=True).fetchone() == ("off",)
        assert c.execute("SHOW sluice.rewrite", prepare=True).fetchone() == ("off",)
        with pytest.raises(psycopg.errors.InvalidParameterValue) as ei:
            c.execute("SET sluice.rewrite = 'sideways'")
        assert "sideways" in str(ei.value)
        with pytest.raises(psycopg.errors.InvalidParameterValue):
            c.execute("SET sluice.rewrite = %s", ["sideways"])  # extended protocol
        assert c.execute("SELECT 'still fine'").fetchone() == ("still fine",)


def test_pg_pipeline_error_aborts_transaction_like_postgres(dsn: str) -> None:
    with psycopg.connect(dsn) as c:
        c.execute("SELECT 1")
        with pytest.raises(psycopg.errors.InvalidParameterValue):
            c.execute("SET sluice.rewrite = 'nope'")
        assert c.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            c.execute("SELECT 2")
        c.rollback()
        assert c.execute("SELECT 3").fetchone() == (3,)


# --- asyncpg (extended protocol, binary codecs) --------------------------------------------
def test_pg_asyncpg_battery(dsn: str) -> None:
    import asyncpg

    async def main() -> None:
        con = await asyncpg.connect(dsn)
        try:
            row = await con.fetchrow(BATTERY_SQL)
            assert tuple(row) == VALUES
            ph = ", ".join(f"${i + 1}::{t}" for i, t in enumerate(TYPES))
            row = await con.fetchrow(f"SELECT {ph}", *VALUES)
            assert tuple(row) == VALUES
            stmt = await con.prepare("SELECT id, name, price FROM items WHERE id <= $1 ORDER BY id")
            assert [tuple(r) for r in await stmt.fetch(2)] == [(1, "apple", decimal.Decimal("1.50")),
                                                                (2, "pear", decimal.Decimal("2.25"))]
            assert [tuple(r) for r in await stmt.fetch(1)] == [(1, "apple", decimal.Decimal("1.50"))]
            assert [a.name for a in stmt.get_attributes()] == ["id", "name", "price"]
            # an error leaves the connection usable
            with pytest.raises(asyncpg.exceptions.DivisionByZeroError):
                await con.fetchval("SELECT 1 / $1::int", 0)
            with pytest.raises(asyncpg.exceptions.UndefinedTableError):
                await con.fetch("SELECT * FROM nope")
            assert await con.fetchval("SELECT $1::int + 1", 41) == 42
            # transactions
            await con.execute("CREATE TABLE IF NOT EXISTS apg (x int)")
            try:
                async with con.transaction():
                    await con.execute("INSERT INTO apg VALUES (1)")
                    raise RuntimeError("roll back")
            except RuntimeError:
                pass
            assert await con.fetchval("SELECT count(*) FROM apg") == 0
            await con.executemany("INSERT INTO apg VALUES ($1)", [(i,) for i in range(10)])
            assert await con.fetchval("SELECT sum(x) FROM apg") == 45
            # cancellation: asyncpg sends a CancelRequest when the timeout fires
            t0 = time.monotonic()
            with pytest.raises(asyncio.TimeoutError):
                await con.fetchval("SELECT pg_sleep(30)", timeout=1.0)
            assert time.monotonic() - t0 < 20
            assert await con.fetchval("SELECT 'alive'") == "alive"
            # COPY through asyncpg
            await con.copy_records_to_table("apg", records=[(100,), (200,)])
            assert await con.fetchval("SELECT max(x) FROM apg") == 200
        finally:
            await con.close()

    asyncio.run(main())


# --- SQLAlchemy 2 ----------------------------------------------------------------------------
class Base(DeclarativeBase):
    pass


class Gadget(Base):
    __tablename__ = "gadgets"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]
    when: Mapped[dt.datetime]


def test_pg_sqlalchemy_engine_orm_reflection(dsn: str, upstream: str) -> None:
    engine = sa.create_engine(dsn.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as c:
            assert tuple(c.execute(sa.text(BATTERY_SQL)).one()) == VALUES
            assert c.execute(sa.text("SELECT :a + :b"), {"a": 40, "b": 2}).scalar() == 42
            with pytest.raises(sa.exc.DBAPIError):
                c.execute(sa.text("SELECT 1/0"))
            c.rollback()
            assert c.execute(sa.text("SELECT 'usable'")).scalar() == "usable"

        items = sa.Table("items", sa.MetaData(), autoload_with=engine)
        assert [col.name for col in items.columns] == ["id", "name", "price", "added"]
        assert isinstance(items.c.price.type, sa.Numeric) and items.c.id.primary_key
        assert "items" in sa.inspect(engine).get_table_names()

        Base.metadata.create_all(engine)
        with Session(engine) as s:
            s.add_all([Gadget(id=1, name="a", when=dt.datetime(2024, 1, 1, 12)),
                       Gadget(id=2, name="b", when=dt.datetime(2024, 1, 2, 12))])
            s.commit()
        with Session(engine) as s:
            s.add(Gadget(id=3, name="c", when=dt.datetime(2024, 1, 3)))
            s.rollback()
            got = s.scalars(sa.select(Gadget).order_by(Gadget.id)).all()
            assert [(g.id, g.name, g.when) for g in got] == [(1, "a", dt.datetime(2024, 1, 1, 12)),
                                                             (2, "b", dt.datetime(2024, 1, 2, 12))]
        # cancel from the client through the DBAPI connection
        with engine.connect() as c:
            raw = c.connection.dbapi_connection
            assert raw is not None
            cancel_when_running(upstream, "sqla-cancel", raw.cancel_safe)  # type: ignore[attr-defined]
            with pytest.raises(sa.exc.OperationalError, match="canceling statement"):
                c.execute(sa.text("SELECT pg_sleep(30) /* sqla-cancel */"))
            c.rollback()
            assert c.execute(sa.text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()


def test_pg_upstream_disconnect_reaches_the_client(dsn: str, upstream: str) -> None:
    """The upstream backend dies: the client gets an error and a closed connection; others go on."""
    c = psycopg.connect(dsn, autocommit=True)
    try:
        pid = c.execute("SELECT pg_backend_pid()").fetchone()
        with psycopg.connect(upstream, autocommit=True) as admin:
            assert admin.execute("SELECT pg_terminate_backend(%s)", pid).fetchone() == (True,)
        with pytest.raises(psycopg.OperationalError):
            c.execute("SELECT 1")
        assert c.closed or c.broken
    finally:
        c.close()
    with psycopg.connect(dsn) as other:
        assert other.execute("SELECT 'still serving'").fetchone() == ("still serving",)


def test_pg_terminate_closes_the_upstream_session(dsn: str, upstream: str) -> None:
    c = psycopg.connect(dsn, autocommit=True, application_name="sluice-terminate-test")
    pid = c.execute("SELECT pg_backend_pid()").fetchone()
    # the client's startup parameters reach the upstream session
    assert c.execute("SELECT current_setting('application_name')").fetchone() == ("sluice-terminate-test",)
    c.close()  # sends Terminate
    with psycopg.connect(upstream, autocommit=True) as admin:
        deadline = time.monotonic() + 10
        while admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", pid).fetchone() != (0,):
            assert time.monotonic() < deadline, "upstream backend still there"
            time.sleep(0.1)
