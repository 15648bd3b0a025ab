"""The database layer: both backends behind one interface, and SQLAlchemy introspection."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from sqlsluice.databases import Catalog, connect, introspect_sqlalchemy, parse_url
from sqlsluice.errors import ConfigError, QueryCanceled

DDL = [
    "CREATE TABLE dept (id INTEGER PRIMARY KEY, name VARCHAR NOT NULL)",
    "CREATE TABLE emp (id INTEGER PRIMARY KEY, dept_id INTEGER REFERENCES dept (id), sal DECIMAL(10,2))",
    "INSERT INTO dept VALUES (1, 'a'), (2, 'b')",
    "INSERT INTO emp VALUES (1, 1, 10.5), (2, 1, 20), (3, 2, NULL)",
]
LONG = {"duckdb": "SELECT count(*) FROM range(100000000000) a",
        "postgres": "SELECT pg_sleep(30)"}


@pytest.fixture(params=["duckdb", "postgres"])
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "duckdb":
        return f"duckdb:///{tmp_path / 'x.duckdb'}"
    return str(request.getfixturevalue("pg_db"))


def _check_catalog(cat: Catalog) -> None:
    emp, dept = cat.table("emp"), cat.table("dept")
    assert emp is not None and dept is not None
    assert [c.name for c in emp.columns] == ["id", "dept_id", "sal"]
    assert emp.primary_key == ["id"] and dept.primary_key == ["id"]
    assert emp.foreign_keys[0].columns == ["dept_id"] and emp.foreign_keys[0].ref_table == "dept"
    assert not dept.column("name").nullable  # type: ignore[union-attr]


def test_backend_executes_describes_explains_and_cancels(backend_url: str) -> None:
    b = connect(backend_url)
    try:
        for stmt in DDL:
            b.execute(stmt)
        r = b.execute("SELECT id, sal FROM emp WHERE dept_id = $1 ORDER BY id", [1])
        assert [c.name for c in r.columns] == ["id", "sal"] and [row[0] for row in r.rows] == [1, 2]
        assert r.status == "SELECT 2"
        cat = b.catalog()
        _check_catalog(cat)
        if b.dialect == "duckdb":  # PostgreSQL's counts are planner statistics until ANALYZE
            assert cat.table("emp").row_count == 3  # type: ignore[union-attr]
        assert b.explain("SELECT * FROM emp JOIN dept ON emp.dept_id = dept.id").cost > 0
        # streaming, a statement timeout, and a cancel from another thread
        with b.session() as s:
            res = s.execute("SELECT * FROM emp ORDER BY id")
            assert len(res.fetchmany(2)) == 2 and len(res.fetchmany(2)) == 1
            with pytest.raises(QueryCanceled):
                s.execute(LONG[b.dialect], timeout=0.5).fetchall()
            threading.Timer(0.5, s.cancel).start()
            with pytest.raises(QueryCanceled):  # only a cancel ends these before the test's timeout
                s.execute(LONG[b.dialect]).fetchall()
            assert s.execute("SELECT 1").fetchall() == [(1,)]  # the session is still usable
    finally:
        b.close()


def test_sqlalchemy_url_introspects_into_the_same_catalog(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite"
    con = sqlite3.connect(path)
    for stmt in DDL:
        con.execute(stmt)
    con.commit()
    con.close()
    cat = introspect_sqlalchemy(f"sqlite:///{path}")
    _check_catalog(cat)
    assert cat.table("emp").row_count == 3 and cat.dialect == "sqlite"  # type: ignore[union-attr]


def test_catalog_round_trips_through_ddl() -> None:
    cat = Catalog.from_ddl(";\n".join(DDL[:2]))
    _check_catalog(cat)
    again = Catalog.from_ddl(";\n".join(cat.to_ddl()))
    assert again.schema_fingerprint() == cat.schema_fingerprint()


def test_backend_urls() -> None:
    assert parse_url("duckdb:///:memory:") == ("duckdb", ":memory:")
    assert parse_url("duckdb:////abs/x.db") == ("duckdb", "/abs/x.db")
    assert parse_url("postgresql://u:p@h:5/d")[0] == "postgres"
    with pytest.raises(ConfigError):
        parse_url("mysql://x")
