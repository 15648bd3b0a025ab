"""Every catalog query psql 15 sent for its backslash commands and tab completion, captured
on a real PostgreSQL (``bench/psql_capture.py`` -> ``tests/fixtures/psql/catalog_queries.sql``),
replayed by psql on PostgreSQL 15 and on sluice over DuckDB with the same schema and data:
no errors, the same column names, the same number of rows (the differences that remain are
listed below with their reason)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from sqlsluice.config import Config
from sqlsluice.middleware.server import ServerThread, SluiceServer

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "psql" / "catalog_queries.sql"
PSQL = shutil.which("psql")
# psql steps whose row counts differ for a reason that is not a bug
ROWS_DIFFER = {
    "\\l": "databases: PostgreSQL lists postgres, template0, template1; DuckDB its attached databases",
    "\\l+": "as \\l",
    "\\db": "tablespaces: PostgreSQL has pg_default and pg_global, DuckDB none",
    "\\du": "roles: the shared test cluster has the roles other tests created, DuckDB one user",
}


def corpus() -> tuple[list[str], list[tuple[str, str]]]:
    schema: list[str] = []
    queries: list[tuple[str, str]] = []
    for block in CORPUS.read_text().split("\n;;\n"):
        m = re.search(r"^-- (schema|psql: ([^\n]*))\n(.*)", block, re.M | re.S)
        if not m:
            continue
        if m.group(1) == "schema":
            schema.append(m.group(3))
        else:
            queries.append((m.group(2), m.group(3)))
    return schema, queries


SCHEMA, QUERIES = corpus()


def psql(port: int, user: str, sql: str) -> subprocess.CompletedProcess[str]:
    if PSQL is None:
        pytest.fail("psql not found (install postgresql-client)")
    return subprocess.run([PSQL, "-X", "-A", "-P", "pager=off", "-h", "127.0.0.1", "-p", str(port), "-U", user,
                           "tpcds", "-c", sql], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PGCONNECT_TIMEOUT": "10"})


def shape(out: subprocess.CompletedProcess[str]) -> tuple[list[str], int]:
    """(column names, row count) of psql -A output."""
    lines = out.stdout.rstrip("\n").splitlines()
    m = re.fullmatch(r"\((\d+) rows?\)", lines[-1])
    assert m, out.stdout
    return lines[0].split("|"), int(m.group(1))


@pytest.fixture(scope="module")
def targets(pg_cluster, tmp_path_factory):
    """(port, user, oids) of PostgreSQL and of sluice over DuckDB, the same schema in each."""
    import duckdb
    import psycopg

    dsn = pg_cluster.create_database("tpcds")
    with psycopg.connect(dsn, autocommit=True) as c:
        for s in SCHEMA:
            c.execute(s)
        pg_oids = dict(c.execute("SELECT relname, oid::text FROM pg_class WHERE relnamespace = "
                                 "'public'::regnamespace").fetchall())
    db = tmp_path_factory.mktemp("psqlcorpus") / "tpcds.duckdb"
    with duckdb.connect(str(db)) as con:
        for s in SCHEMA:
            con.execute(s)
    th = ServerThread(SluiceServer(Config(), backend_url=f"duckdb:///{db}")).start()
    try:
        # DuckDB numbers its catalog when it opens a file: ask the server
        with psycopg.connect(host="127.0.0.1", port=th.port, user="sluice", dbname="tpcds") as c:
            duck_oids = {n: str(o) for n, o in c.execute("SELECT relname, oid FROM pg_catalog.pg_class").fetchall()}
        yield {"postgresql": (pg_cluster.port, "postgres", pg_oids), "sluice": (th.port, "sluice", duck_oids)}
    finally:
        th.stop()


def test_corpus_is_captured() -> None:
    labels = {label for label, _ in QUERIES}
    assert {"tab: SELECT * FROM sto", "tab: ... WHERE ss_", "tab: SET sea", "\\d", "\\dt", "\\di", "\\dv", "\\df",
            "\\dn", "\\du", "\\l", "\\d+ store_sales"} <= labels
    assert len(QUERIES) >= 50


@pytest.mark.parametrize("label, sql", QUERIES, ids=[f"{i:02d} {label}" for i, (label, _) in enumerate(QUERIES)])
def test_psql_query_same_shape_as_postgresql(targets, label: str, sql: str) -> None:
    got = {}
    for name, (port, user, oids) in targets.items():
        text = re.sub(r"\{oid:(\w+)\}", lambda m, oids=oids: oids[m.group(1)], sql)
        out = psql(port, user, text)
        assert out.returncode == 0 and "ERROR" not in out.stderr, (name, out.stderr)
        got[name] = shape(out)
    (pg_cols, pg_rows), (sl_cols, sl_rows) = got["postgresql"], got["sluice"]
    assert sl_cols == pg_cols
    if label not in ROWS_DIFFER:
        assert sl_rows == pg_rows, (pg_rows, sl_rows)
