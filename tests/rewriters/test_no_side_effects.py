"""Nothing the rewriter runs changes the database, and statements with side effects run
exactly as often as the client ran them (through ``sluice serve`` over PostgreSQL and DuckDB).

The rewriter times and checks queries by running them itself; every such run is inside a
READ ONLY transaction that is rolled back, and statements that call volatile functions
(``nextval``, ``random()``, user functions that write) are never rewritten nor re-run.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from sqlsluice.config import Config, RewriteConfig
from sqlsluice.databases import connect
from sqlsluice.errors import BackendError
from sqlsluice.middleware.server import ServerThread
from sqlsluice.rewriters.api import rewrite
from sqlsluice.rewriters.safety import side_effect_reason

from .conftest import product_server

CALLS = 6

PG_SETUP = """
CREATE TABLE t (k int PRIMARY KEY, a int, g text);
INSERT INTO t SELECT i, i % 7, 'g' || (i % 3) FROM generate_series(1, 40) i;
CREATE SEQUENCE sq;
CREATE TABLE calls (n int);
CREATE FUNCTION logit(x int) RETURNS int VOLATILE LANGUAGE sql AS
  $$ INSERT INTO calls VALUES (x) RETURNING x $$;
CREATE FUNCTION pure(x int) RETURNS int IMMUTABLE LANGUAGE sql AS $$ SELECT x + 1 $$;
"""

# statements with a side effect or a non-deterministic value, each with a rewrite the rule
# search would find (a derived table to merge, a constant to fold)
PG_STATEMENTS = [
    "SELECT d.k, nextval('sq') FROM (SELECT t.k AS k, t.a AS a FROM t WHERE t.a > 2) AS d WHERE d.a < 6",
    "SELECT d.k, logit(d.k) FROM (SELECT t.k AS k, t.a AS a FROM t WHERE 1 = 1) AS d WHERE d.a = 3",
    "SELECT d.k FROM (SELECT t.k AS k, t.a AS a FROM t) AS d WHERE d.a > 2 AND random() < 2",
]


def _direct_counts(url: str) -> tuple[int, int]:
    with psycopg.connect(url, autocommit=True) as c:
        seq = c.execute("SELECT last_value, is_called FROM sq").fetchone()
        assert seq is not None
        calls = c.execute("SELECT count(*) FROM calls").fetchone()
        assert calls is not None
        return (int(seq[0]) if seq[1] else 0), int(calls[0])


def test_pg_readonly_runs_cannot_write(pg_db: str) -> None:
    with psycopg.connect(pg_db, autocommit=True) as c:
        c.execute(PG_SETUP)
    be = connect(pg_db)
    try:
        with pytest.raises(BackendError) as e:
            be.execute_readonly("SELECT nextval('sq')", timeout=5)
        assert e.value.sqlstate == "25006"  # read_only_sql_transaction
        with pytest.raises(BackendError):
            be.execute_readonly("SELECT logit(1)", timeout=5)
        with pytest.raises(BackendError):
            be.execute_readonly("SELECT pg_sleep(3)", timeout=0.2)
        assert be.execute_readonly("SELECT pure(1)", timeout=5).rows == [(2,)]
        assert _direct_counts(pg_db) == (0, 0)
        for sql in PG_STATEMENTS:
            assert side_effect_reason(be, sql), sql
            assert rewrite(be, sql).reason.startswith("not rewritten: calls volatile function")
        assert side_effect_reason(be, "SELECT pure(t.k) FROM t") is None
        assert _direct_counts(pg_db) == (0, 0)
    finally:
        be.close()


def _serve_and_run(url: str, statements: list[str], *, dbname: str) -> list[list[tuple[object, ...]]]:
    cfg = Config(rewrite=RewriteConfig(min_speedup=1.0, policy="tested"))  # the most permissive policy
    server, product = product_server(cfg, url)
    out = []
    with ServerThread(server) as st, psycopg.connect(host="127.0.0.1", port=st.port, user="postgres",
                                                     dbname=dbname, autocommit=True) as c:
        for sql in statements:
            rows: list[tuple[object, ...]] = []
            for _ in range(CALLS):
                rows = c.execute(sql).fetchall()
            out.append(rows)
        assert product.online is not None and product.online.wait_idle(60)
        last = c.execute("SHOW sluice.last").fetchall()
        assert last
    return out


def test_pg_statements_with_side_effects_run_exactly_as_often_as_the_client_ran_them(pg_db: str,
                                                                                     fresh_state: None) -> None:
    with psycopg.connect(pg_db, autocommit=True) as c:
        c.execute(PG_SETUP)
        n_seq = c.execute(f"SELECT count(*) FROM ({PG_STATEMENTS[0].replace(', nextval(' + chr(39) + 'sq' + chr(39) + ')', '')}) q").fetchone()
        n_log = c.execute(f"SELECT count(*) FROM ({PG_STATEMENTS[1].replace(', logit(d.k)', '')}) q").fetchone()
    assert n_seq and n_log and n_seq[0] > 0 and n_log[0] > 0
    dbname = pg_db.rsplit("/", 1)[-1]
    _serve_and_run(pg_db, PG_STATEMENTS, dbname=dbname)
    seq, calls = _direct_counts(pg_db)
    assert seq == CALLS * n_seq[0]
    assert calls == CALLS * n_log[0]


def test_duckdb_statements_with_sequences_run_exactly_as_often_as_the_client_ran_them(tmp_path: Path,
                                                                                         fresh_state: None) -> None:
    import duckdb

    db = tmp_path / "side.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, a INTEGER)")
    con.execute("INSERT INTO t SELECT i, i % 7 FROM range(1, 41) r(i)")
    con.execute("CREATE SEQUENCE sq")
    n = con.execute("SELECT count(*) FROM t WHERE a > 2 AND a < 6").fetchone()
    con.close()
    assert n is not None
    stmt = "SELECT d.k, nextval('sq') AS v FROM (SELECT t.k AS k, t.a AS a FROM t WHERE t.a > 2) AS d WHERE d.a < 6"
    rows = _serve_and_run(f"duckdb:///{db}", [stmt], dbname="side")
    got = max(int(r[1]) for r in rows[0])
    assert got == CALLS * n[0]  # the sequence advanced once per row per client call, no more


def test_duckdb_readonly_runs_cannot_write(tmp_path: Path) -> None:
    be = connect(f"duckdb:///{tmp_path / 'ro.duckdb'}")
    try:
        with be.session() as s:
            s.execute("CREATE TABLE t (a INTEGER)")
            s.execute("CREATE SEQUENCE sq")
        with pytest.raises(BackendError):
            be.execute_readonly("INSERT INTO t VALUES (1)", timeout=5)
        with pytest.raises(BackendError):
            be.execute_readonly("SELECT nextval('sq')", timeout=5)
        assert be.execute("SELECT count(*) FROM t").rows == [(0,)]
        assert be.execute("SELECT nextval('sq')").rows == [(1,)]
        assert side_effect_reason(be, "SELECT random() FROM t")
        assert side_effect_reason(be, "SELECT abs(a) FROM t") is None
    finally:
        be.close()
