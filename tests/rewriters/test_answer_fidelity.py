"""Exactly the database's answer: through ``sluice serve`` with online rewriting on, every
statement of this battery returns the same column names, type OIDs and values (NUMERIC to the
last digit) on every run as the database itself, before and after the rewriter had time to
find, prove and store rewrites of it (simple and extended protocol, PostgreSQL and DuckDB)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from sqlsluice.config import Config, RewriteConfig
from sqlsluice.databases.postgres_backend import settle_statistics
from sqlsluice.middleware.server import ServerThread

from .conftest import product_server

SETUP = [
    "CREATE TABLE t (k INTEGER PRIMARY KEY, n NUMERIC(30, 10), g VARCHAR, f DOUBLE PRECISION)",
    "INSERT INTO t SELECT i, i * 1.0000000001, 'g' || (i % 3), i / 7.0 FROM generate_series(1, 200) AS s(i)",
    # large enough that the correlated average (re-run per row of t) loses to its decorrelation
    "CREATE TABLE u (k INTEGER PRIMARY KEY, tk INTEGER, v NUMERIC(12, 4))",
    "INSERT INTO u SELECT i, i % 250, (i % 97) * 0.0001 FROM generate_series(1, 20000) AS s(i)",
]

BATTERY = [
    # NUMERIC constants PostgreSQL keeps exactly (constant folding at 28 digits changed these)
    "SELECT 1.0000000000000000000000000001 * 3",
    "SELECT t.k, t.n * 1.00000000000000000000000000001 + 0.1 FROM t WHERE t.k < 5 ORDER BY t.k",
    "SELECT d.k, d.x FROM (SELECT t.k AS k, t.n * 3.000000000000000000001 AS x FROM t WHERE 1 = 1) AS d "
    "WHERE d.k > 50 ORDER BY d.k",
    # unnamed and aggregate output columns (?column?, avg, count, sum, max)
    "SELECT t.k + 0, avg(t.n), count(*) FROM t WHERE 2 > 1 GROUP BY t.k + 0 ORDER BY 1 LIMIT 5",
    "SELECT * FROM (SELECT avg(t.n), count(*), sum(t.f) FROM t) AS s",
    "SELECT s.avg FROM (SELECT avg(t.n) FROM t WHERE t.g = 'g1') AS s",
    "SELECT max(d.v) FROM (SELECT u.v AS v, u.tk AS tk FROM u) AS d WHERE d.tk = 3",
    # a decorrelation the rules find and prove
    "SELECT t.k, t.n FROM t WHERE t.n > (SELECT avg(u.v) * 1000 FROM u WHERE u.tk = t.k) ORDER BY t.k",
    "SELECT t.k + 0, t.n * 1.5 FROM t WHERE t.n > (SELECT max(u.v) * 4000 FROM u WHERE u.tk = t.k) ORDER BY 1",
    "SELECT t.g, sum(t.n) FROM t WHERE t.k IN (SELECT u.tk FROM u WHERE u.v > 0.01) GROUP BY t.g ORDER BY t.g",
]


def _run(c: psycopg.Connection[Any], sql: str, prepare: bool) -> tuple[Any, list[tuple[Any, ...]]]:
    try:
        # prepare=False: the simple protocol (a client-side cursor); True: Parse/Bind/Execute
        cur = c.execute(sql, prepare=True) if prepare else psycopg.ClientCursor(c).execute(sql)  # type: ignore[call-overload]
    except psycopg.Error as e:  # the same error every time (DuckDB's DECIMAL is 38 digits at most)
        return ("error", e.sqlstate), []
    desc = [(d.name, d.type_code) for d in (cur.description or [])]
    return desc, [tuple(repr(v) for v in r) for r in cur.fetchall()]


def _battery_through_proxy(backend_url: str, dbname: str, direct: str | None) -> None:
    cfg = Config(rewrite=RewriteConfig(min_speedup=1.0))  # tiny data: any proved rewrite may be served
    server, product = product_server(cfg, backend_url)
    with ServerThread(server) as st, psycopg.connect(host="127.0.0.1", port=st.port, user="postgres",
                                                     dbname=dbname, autocommit=True) as c:
        reference: dict[str, Any] = {}
        if direct is not None:
            with psycopg.connect(direct, autocommit=True) as d:
                for sql in BATTERY:
                    reference[sql] = _run(d, sql, False)
        rewritten = 0
        for round_ in range(4):
            for sql in BATTERY:
                for prepare in (False, True):
                    got = _run(c, sql, prepare)
                    if sql not in reference:
                        reference[sql] = got  # DuckDB: the proxy's own first, unrewritten answer
                    assert got == reference[sql], (round_, prepare, sql)
                    last = dict(psycopg.ClientCursor(c).execute("SHOW sluice.last").fetchall())
                    if last.get("sql") == sql and last.get("rewritten") == "True":
                        rewritten += 1
                        assert last.get("proof", "").startswith("PROVED"), last
            if product.online is not None:
                assert product.online.wait_idle(120)
        assert product.online is not None
        # the battery did exercise served rewrites (both decorrelations are proved and faster
        # on PostgreSQL; DuckDB decorrelates by itself, so there the check is only that nothing
        # served differs)
        if direct is not None:
            assert product.online.stats.hits > 0 and rewritten > 0, product.online.stats


def test_postgres_answers_are_the_databases_own(pg_db: str, fresh_state: None) -> None:
    with psycopg.connect(pg_db, autocommit=True) as c:
        for s in SETUP:
            c.execute(s)  # type: ignore[arg-type]
        settle_statistics(c)  # VACUUM ANALYZE with the load's statistics flushed first
    _battery_through_proxy(pg_db, pg_db.rsplit("/", 1)[-1], pg_db)


def test_duckdb_answers_do_not_change_when_rewrites_are_served(tmp_path: Path, fresh_state: None) -> None:
    import duckdb

    path = tmp_path / "fid.duckdb"
    con = duckdb.connect(str(path))
    for s in SETUP:
        con.execute(s.replace("generate_series(1, 200) AS s(i)", "range(1, 201) AS s(i)")
                    .replace("generate_series(1, 20000) AS s(i)", "range(1, 20001) AS s(i)"))
    con.close()
    _battery_through_proxy(f"duckdb:///{path}", "fid", None)


@pytest.mark.parametrize("sql", BATTERY[:3])
def test_numeric_constants_are_never_folded_inexactly(sql: str) -> None:
    from sqlsluice.rewriters.rules import BY_NAME, prepare, run_rule

    tree = prepare(sql, None, "postgres")
    out = run_rule(BY_NAME["constant_fold"], tree, None, "postgres").sql(dialect="postgres")
    for lit in ("1.0000000000000000000000000001", "1.00000000000000000000000000001", "3.000000000000000000001"):
        if lit in sql:
            assert lit in out, out
