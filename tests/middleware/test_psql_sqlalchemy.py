"""The real psql binary (simple protocol, \\d, \\dt) and SQLAlchemy 2 (engine, ORM, reflection)
through sqlsluice over DuckDB."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

PSQL = shutil.which("psql")


def psql(server, *commands: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    if PSQL is None:
        pytest.fail("psql binary not found (install postgresql-client)")
    args = [PSQL, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=0", "-h", server.host, "-p", str(server.port),
            "-U", "sluice", "tpcds"]
    for c in commands:
        args += ["-c", c]
    env = {**os.environ, "PGCONNECT_TIMEOUT": "10", "PGSSLMODE": "prefer"}
    out = subprocess.run(args, capture_output=True, text=True, timeout=60, env=env)
    if check:
        assert out.returncode == 0, out.stderr
    return out


@pytest.fixture(scope="module")
def table(server):
    psql(server, "CREATE TABLE psql_t (id INTEGER PRIMARY KEY, name VARCHAR NOT NULL, price DECIMAL(10,2), "
                 "born DATE, seen TIMESTAMP, ok BOOLEAN)",
         "INSERT INTO psql_t VALUES (1, 'a', 1.50, '2020-01-01', '2020-01-01 10:00:00', true), "
         "(2, 'b', NULL, NULL, NULL, NULL)")
    return "psql_t"


def test_psql_simple_queries_and_types(server, table):
    out = psql(server, "SELECT * FROM psql_t ORDER BY id", "SELECT 1 AS a, 'x' AS b; SELECT 2")
    assert out.stdout.splitlines() == ["1|a|1.50|2020-01-01|2020-01-01 10:00:00|t", "2|b||||", "1|x", "2"]


def test_psql_describe_commands(server, table):
    out = psql(server, "\\dt", "\\d psql_t", "\\d")
    lines = out.stdout.splitlines()
    assert "public|psql_t|table|sluice" in lines
    assert "id|integer||not null|" in lines
    assert "name|character varying||not null|" in lines
    assert "price|numeric(10,2)|||" in lines
    more = psql(server, "\\l", "\\du", "\\dn").stdout.splitlines()
    assert any(line.startswith("sluice|Superuser") for line in more)  # \du: the connected user
    assert any(line.endswith("|UTF8|C|C||libc|") for line in more)  # \l
    assert "public|sluice" in more  # \dn (PostgreSQL: public)


def test_psql_error_then_next_command_works(server, table):
    out = psql(server, "SELECT * FROM nope", "SELECT 42", check=False)
    assert "ERROR:" in out.stderr and "nope" in out.stderr
    assert out.stdout.strip() == "42"


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "orm_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(50))
    price: Mapped[Decimal | None] = mapped_column(sa.Numeric(10, 2))
    born: Mapped[dt.date | None]
    seen: Mapped[dt.datetime | None]
    ok: Mapped[bool | None]
    big: Mapped[int | None] = mapped_column(sa.BigInteger)
    ratio: Mapped[float | None] = mapped_column(sa.Float)


@pytest.fixture(scope="module")
def engine(server):
    eng = sa.create_engine(server.url(), pool_size=2)
    yield eng
    eng.dispose()


def test_sqlalchemy_orm_round_trip(engine):
    Base.metadata.create_all(engine)
    row = dict(id=1, name="x", price=Decimal("9.99"), born=dt.date(2024, 2, 29),
               seen=dt.datetime(2024, 2, 29, 1, 2, 3), ok=True, big=2**40, ratio=0.25)
    with Session(engine) as s:
        s.add_all([Item(**row), Item(id=2, name="y")])
        s.commit()
    with Session(engine) as s:
        got = s.get(Item, 1)
        assert got is not None
        assert {k: getattr(got, k) for k in row} == row
        empty = s.get(Item, 2)
        assert empty is not None and empty.price is None and empty.born is None and empty.ok is None


def test_sqlalchemy_rollback_and_error_recovery(engine):
    Base.metadata.create_all(engine)
    with Session(engine) as s:
        s.add(Item(id=10, name="gone"))
        s.flush()
        s.rollback()
        assert s.get(Item, 10) is None
    with engine.connect() as c:
        with pytest.raises(sa.exc.ProgrammingError):
            c.execute(sa.text("SELECT * FROM nope"))
        c.rollback()
        assert c.execute(sa.text("SELECT :a + 1"), {"a": 41}).scalar() == 42


def test_sqlalchemy_reflection(engine):
    Base.metadata.create_all(engine)
    insp = sa.inspect(engine)
    assert "orm_items" in insp.get_table_names()
    cols = {c["name"]: c for c in insp.get_columns("orm_items")}
    assert isinstance(cols["id"]["type"], sa.Integer) and not cols["id"]["nullable"]
    assert isinstance(cols["name"]["type"], sa.String)
    assert isinstance(cols["price"]["type"], sa.Numeric) and cols["price"]["type"].scale == 2
    assert isinstance(cols["born"]["type"], sa.Date)
    assert isinstance(cols["seen"]["type"], sa.DateTime)
    assert isinstance(cols["ok"]["type"], sa.Boolean)
    assert isinstance(cols["big"]["type"], sa.BigInteger)
    assert insp.get_pk_constraint("orm_items")["constrained_columns"] == ["id"]
    t = sa.Table("orm_items", sa.MetaData(), autoload_with=engine)
    assert [c.name for c in t.primary_key] == ["id"]


def test_psql_long_query_cancelled_with_ctrl_c(server):
    import signal
    import time

    before = len(server.server._cancel)
    proc = subprocess.Popen([PSQL, "-X", "-A", "-t", "-h", server.host, "-p", str(server.port), "-U", "sluice",
                             "tpcds", "-c", "SELECT count(*) FROM range(10000000000) t(x) WHERE x % 7 = 3"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PGCONNECT_TIMEOUT": "10"})
    try:
        out, err = "", ""
        while len(server.server._cancel) <= before and proc.poll() is None:
            time.sleep(0.05)  # wait until psql's session is registered (it is then running the query)
        while proc.poll() is None:  # psql turns SIGINT into a CancelRequest; repeat until it ends
            time.sleep(0.3)
            proc.send_signal(signal.SIGINT)
            try:
                out, err = proc.communicate(timeout=1)
            except subprocess.TimeoutExpired:
                continue
        assert "canceling statement due to user request" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_sqlalchemy_long_query_cancelled(engine):
    import threading

    with engine.connect() as c:
        driver = c.connection.driver_connection
        errors: list[BaseException] = []

        def run() -> None:
            try:
                c.execute(sa.text("SELECT count(*) FROM range(10000000000) t(x) WHERE x % 7 = 3"))
            except BaseException as e:
                errors.append(e)

        t = threading.Thread(target=run)
        t.start()
        while t.is_alive():
            driver.cancel_safe(timeout=5)
            t.join(0.2)
        assert len(errors) == 1 and "canceling statement" in str(errors[0])
        c.rollback()
        assert c.execute(sa.text("SELECT 1")).scalar() == 1
