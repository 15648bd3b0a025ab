"""Over DuckDB, PostgreSQL's meaning for what clients send (issue #14 item 1): result column
names, command tags, integer division and division by zero, result type OIDs and parameter
types; with psycopg, asyncpg and psql, and compared statement by statement with a real
PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from typing import Any

import asyncpg
import psycopg
import pytest

from sqlsluice.middleware import pgsemantics

# run in this order on both servers: DDL, DML, transaction control, settings, then queries
SETUP = [
    "CREATE TABLE sem_t (id integer PRIMARY KEY, qty integer, big bigint, price numeric(10,2), "
    "ratio double precision, name text, born date, ok boolean)",
    "INSERT INTO sem_t VALUES (1, 2, 20, 1.50, 0.5, 'a', '2020-01-01', true), "
    "(2, 3, 30, 2.25, 1.5, 'b', '2021-06-30', false), (3, 5, 50, NULL, NULL, NULL, NULL, NULL)",
    "UPDATE sem_t SET qty = qty + 1 WHERE id = 1",
    "UPDATE sem_t SET qty = 0 WHERE id = 99",
    "DELETE FROM sem_t WHERE id = 3",
    "INSERT INTO sem_t (id, qty) SELECT 10, 7",
    "INSERT INTO sem_t (id, qty, name) VALUES (20, 1, 'returning'), (21, 2, NULL) RETURNING id, qty * 2, upper(name)",
    "UPDATE sem_t SET qty = 3 WHERE id >= 20 RETURNING *",
    "DELETE FROM sem_t WHERE id >= 20 RETURNING id AS gone",
    "CREATE VIEW sem_v AS SELECT id, qty FROM sem_t",
    "CREATE INDEX sem_i ON sem_t (qty)",
    "CREATE UNIQUE INDEX sem_u ON sem_t (big)",
    "CREATE SCHEMA sem_s",
    "CREATE TABLE sem_c AS SELECT * FROM sem_t",
    "CREATE SEQUENCE sem_seq",
    "BEGIN",
    "SELECT count(*) FROM sem_t",
    "COMMIT",
    "START TRANSACTION",
    "ROLLBACK",
    "SET TimeZone TO 'UTC'",
    "RESET TimeZone",
    "SHOW search_path",
    "SHOW TimeZone",
    "SHOW DateStyle",
]
QUERIES = [
    "SELECT count(*), sum(qty), avg(qty), min(qty), max(qty) FROM sem_t",
    "SELECT sum(big), avg(big), sum(price), avg(price), sum(ratio), avg(ratio) FROM sem_t",
    "SELECT 1, 1 + 1, 'a', 1.5, true, 2147483648",
    "SELECT 7 / 2, 7 % 3, -7 / 2, 2 * 3 - 1",
    "SELECT 1.0 / 3, 1.5 * 2 / 4",
    "SELECT price / 2, ratio / 2, qty / 2.0, id / 2, qty % 2 FROM sem_t ORDER BY id",
    "SELECT current_user, session_user, current_date, version()",
    "SELECT id AS \"Ident\", qty AS q, name FROM sem_t ORDER BY id",
    "SELECT * FROM sem_t ORDER BY id",
    "SELECT sem_t.* FROM sem_t ORDER BY id",
    "SELECT '1'::int, 1::text, 2::bigint, '2020-01-01'::date, qty::text FROM sem_t",
    "SELECT CAST(qty AS bigint), CAST('3' AS integer), 'x'::varchar, 'y'::character varying(3) FROM sem_t",
    "SELECT CASE WHEN qty > 1 THEN 'big' ELSE 'small' END FROM sem_t",
    "SELECT coalesce(name, 'none'), upper(name), lower(name), nullif(qty, 3) FROM sem_t",
    "SELECT length(name), strpos(name, 'a'), extract(year FROM born) FROM sem_t",
    "SELECT now(), current_timestamp, ARRAY[1, 2], NULL, NULL AS n",
    "SELECT EXISTS (SELECT 1 FROM sem_t)",
    "SELECT (SELECT max(qty) FROM sem_t), (SELECT name FROM sem_t ORDER BY id LIMIT 1)",
    "SELECT qty, count(*) FROM sem_t GROUP BY qty ORDER BY qty",
    "SELECT id FROM sem_t UNION ALL SELECT qty FROM sem_t",
    "WITH w AS (SELECT qty FROM sem_t) SELECT count(*) AS n FROM w",
    "VALUES (1, 'a'), (2, 'b')",
    "SELECT max(price), min(born), count(DISTINCT qty) FROM sem_t",
    "SELECT 'a' || 'b', string_agg(name, ',') FROM sem_t",
    "SELECT row_number() OVER (ORDER BY id) FROM sem_t",
    "SELECT 1 WHERE false",
    "SELECT greatest(1, 2), least(1, 2)",
]
TEARDOWN = [
    "TRUNCATE sem_c",
    "DROP VIEW sem_v",
    "DROP INDEX sem_i",
    "DROP TABLE sem_c",
    "DROP SEQUENCE sem_seq",
    "DROP SCHEMA sem_s",
    "ALTER TABLE sem_t ADD COLUMN extra integer",
    "DELETE FROM sem_t",
    "DROP TABLE sem_t",
]
# Known difference, not in the battery: ROW(1, 2) is a record (2249) in PostgreSQL, text here.


def shapes(dsn: str, statements: list[str], *, prepare: bool = False) -> list[tuple[Any, ...]]:
    """(statement, command tag, [(column name, type OID)]) for each statement, in order."""
    out: list[tuple[Any, ...]] = []
    with psycopg.connect(dsn, autocommit=True) as c:
        for q in statements:
            cur = c.execute(q, prepare=prepare)
            cols = [(d.name, d.type_code) for d in cur.description] if cur.description else None
            out.append((q, cur.statusmessage, cols))
    return out


def test_battery_matches_real_postgresql(server, pg_db):
    """Every statement: the same command tag, column names and type OIDs as PostgreSQL 15,
    in the simple protocol, and the queries again in the extended protocol (prepared)."""
    statements = SETUP + QUERIES + TEARDOWN
    pg = shapes(pg_db, SETUP + QUERIES)
    ours = shapes(server.dsn(), SETUP + QUERIES)
    pg_prepared = shapes(pg_db, QUERIES, prepare=True)
    ours_prepared = shapes(server.dsn(), QUERIES, prepare=True)
    pg += shapes(pg_db, TEARDOWN)
    ours += shapes(server.dsn(), TEARDOWN)
    assert len(statements) >= 40
    assert [x for x in ours if x not in pg] == []
    assert ours == pg
    assert ours_prepared == pg_prepared


@pytest.fixture()
def conn(server):
    with psycopg.connect(server.dsn(), autocommit=True) as c:
        yield c


def names(cur: psycopg.Cursor[Any]) -> list[str]:
    assert cur.description is not None
    return [d.name for d in cur.description]


def test_psycopg_column_names(conn):
    conn.execute("CREATE TABLE sem_names (x integer, y bigint)")
    conn.execute("INSERT INTO sem_names VALUES (1, 10), (2, 20)")
    cur = conn.execute("SELECT count(*), sum(x), avg(x), current_user, version(), 1 + 1 FROM sem_names")
    assert names(cur) == ["count", "sum", "avg", "current_user", "version", "?column?"]
    row = cur.fetchone()
    assert row is not None and row[:4] == (2, 3, 1.5, "sluice") and row[4].startswith("PostgreSQL")
    cur = conn.execute("SELECT x AS alias, \"y\", coalesce(x, 0), '1'::int, x::text, CASE WHEN x > 1 THEN 1 END "
                       "FROM sem_names ORDER BY x")
    assert names(cur) == ["alias", "y", "coalesce", "int4", "x", "case"]
    assert cur.fetchall() == [(1, 10, 1, 1, "1", None), (2, 20, 2, 1, "2", 1)]
    assert names(conn.execute("SELECT count(*) FROM sem_names", prepare=True)) == ["count"]
    assert names(conn.execute("SELECT * FROM sem_names WHERE x = %s", [1])) == ["x", "y"]
    assert names(conn.execute("SELECT x AS \"Mixed Case\" FROM sem_names")) == ["Mixed Case"]
    conn.execute("DROP TABLE sem_names")


def test_psycopg_command_tags(conn):
    tags = []
    for q in ["CREATE TABLE sem_tags (a integer)", "BEGIN", "INSERT INTO sem_tags VALUES (1), (2)",
              "UPDATE sem_tags SET a = a + 1", "DELETE FROM sem_tags WHERE a = 3", "COMMIT",
              "START TRANSACTION", "ROLLBACK", "SET application_name = 'x'", "RESET application_name",
              "TRUNCATE sem_tags", "CREATE VIEW sem_tags_v AS SELECT a FROM sem_tags", "DROP VIEW sem_tags_v",
              "ALTER TABLE sem_tags ADD COLUMN b integer", "SELECT * FROM sem_tags", "DROP TABLE sem_tags"]:
        cur = conn.execute(q)
        tags.append(cur.statusmessage)
        if not q.startswith("SELECT"):
            assert cur.description is None, q  # no result set for commands
    assert tags == ["CREATE TABLE", "BEGIN", "INSERT 0 2", "UPDATE 2", "DELETE 1", "COMMIT", "START TRANSACTION",
                    "ROLLBACK", "SET", "RESET", "TRUNCATE TABLE", "CREATE VIEW", "DROP VIEW", "ALTER TABLE",
                    "SELECT 0", "DROP TABLE"]


def test_psycopg_division(conn):
    assert conn.execute("SELECT 7 / 2, -7 / 2, 7 % 3, 7.0 / 2").fetchone() == (3, -3, 1, pytest.approx(3.5))
    for q in ["SELECT 1/0", "SELECT 5 % 0", "SELECT 1.0 / 0", "SELECT 1.5::float8 / 0"]:
        with pytest.raises(psycopg.errors.DivisionByZero, match="division by zero"):
            conn.execute(q)
    conn.execute("CREATE TABLE sem_div (a integer, b integer)")
    conn.execute("INSERT INTO sem_div VALUES (7, 2), (1, 0)")
    assert conn.execute("SELECT a / b FROM sem_div WHERE b <> 0").fetchall() == [(3,)]
    with pytest.raises(psycopg.errors.DivisionByZero):
        conn.execute("SELECT a / b FROM sem_div")
    with pytest.raises(psycopg.errors.DivisionByZero):
        conn.execute("SELECT a / %s FROM sem_div", [0])  # extended protocol, bound divisor
    assert conn.execute("SELECT a / %s FROM sem_div ORDER BY a", [2]).fetchall() == [(0,), (3,)]
    conn.execute("DROP TABLE sem_div")


def test_dml_returning_rows_and_tags(conn):
    conn.execute("CREATE TABLE sem_ret (a integer, b text)")
    cur = conn.execute("INSERT INTO sem_ret VALUES (1, 'x'), (2, 'returning') RETURNING a, upper(b)")
    assert (cur.statusmessage, names(cur), cur.fetchall()) == ("INSERT 0 2", ["a", "upper"],
                                                              [(1, "X"), (2, "RETURNING")])
    cur = conn.execute("UPDATE sem_ret SET a = a + %s WHERE b = %s RETURNING a AS new_a", [10, "x"])
    assert (cur.statusmessage, names(cur), cur.fetchall()) == ("UPDATE 1", ["new_a"], [(11,)])
    cur = conn.execute("DELETE FROM sem_ret RETURNING *")
    assert (cur.statusmessage, cur.fetchall()) == ("DELETE 2", [(11, "x"), (2, "returning")])
    cur = conn.execute("INSERT INTO sem_ret VALUES (%s, 'returning')", [3])  # the word in a string only
    assert (cur.statusmessage, cur.description) == ("INSERT 0 1", None)
    conn.execute("DROP TABLE sem_ret")


def test_explain_cursor_and_copy_header_like_postgresql(conn):
    cur = conn.execute("EXPLAIN SELECT 1")
    plan = cur.fetchall()
    assert (cur.statusmessage, names(cur)) == ("EXPLAIN", ["QUERY PLAN"])
    assert len(plan) > 1 and all(len(r) == 1 and "\n" not in r[0] for r in plan)
    with conn.transaction():
        conn.execute("DECLARE sem_cur CURSOR FOR SELECT count(*), 7 / 2")
        cur = conn.execute("FETCH ALL FROM sem_cur")
        assert (names(cur), cur.fetchall(), cur.statusmessage) == (["count", "?column?"], [(1, 3)], "FETCH 1")
    with conn.cursor().copy("COPY (SELECT count(*), sum(x) FROM (VALUES (1), (2)) v(x)) TO STDOUT "
                            "WITH (FORMAT csv, HEADER true)") as copy:
        assert b"".join(bytes(b) for b in copy).decode().splitlines() == ["count,sum", "2,3"]


def test_division_by_zero_aborts_the_transaction_like_postgresql(server):
    with psycopg.connect(server.dsn()) as c:
        with pytest.raises(psycopg.errors.DivisionByZero):
            c.execute("SELECT 1/0")
        assert c.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
        c.rollback()
        assert c.execute("SELECT 10 / 3").fetchone() == (3,)


def test_asyncpg_typed_parameters_names_and_status(server):
    async def go() -> tuple[Any, ...]:
        c = await asyncpg.connect(host=server.host, port=server.port, user="sluice", database="tpcds")
        try:
            status = [await c.execute("CREATE TABLE sem_apg (id integer, name text)"),
                      await c.execute("INSERT INTO sem_apg VALUES (1, 'a'), (2, 'b')"),
                      await c.execute("BEGIN"), await c.execute("ROLLBACK")]
            value = await c.fetchval("SELECT $1::int + 1", 41)
            cast = await c.prepare("SELECT CAST($1 AS bigint) * 2")
            by_column = await c.prepare("SELECT name FROM sem_apg WHERE id = $1")
            agg = await c.prepare("SELECT count(*), sum(id), 7 / 2 FROM sem_apg")
            return (status, value, [p.name for p in cast.get_parameters()], await cast.fetchval(21),
                    [p.name for p in by_column.get_parameters()], await by_column.fetchval(2),
                    [(a.name, a.type.name) for a in agg.get_attributes()], await agg.fetchrow())
        finally:
            await c.execute("DROP TABLE IF EXISTS sem_apg")
            await c.close()

    status, value, cast_params, doubled, col_params, name, attrs, row = asyncio.run(go())
    assert status == ["CREATE TABLE", "INSERT 0 2", "BEGIN", "ROLLBACK"]
    assert value == 42
    assert cast_params == ["int8"] and doubled == 42
    assert col_params == ["int4"] and name == "b"
    assert attrs == [("count", "int8"), ("sum", "int8"), ("?column?", "int4")]
    assert tuple(row) == (2, 3, 3)


def test_asyncpg_dml_returning(server):
    async def go() -> list[Any]:
        c = await asyncpg.connect(host=server.host, port=server.port, user="sluice", database="tpcds")
        try:
            await c.execute("CREATE TABLE sem_apr (id integer, name text)")
            return [await c.fetch("INSERT INTO sem_apr VALUES ($1, $2), ($3, $4) RETURNING id, upper(name)",
                                  1, "a", 2, "b"),
                    await c.fetch("UPDATE sem_apr SET name = $1 WHERE id = $2 RETURNING *", "c", 2),
                    await c.fetch("DELETE FROM sem_apr RETURNING id AS gone")]
        finally:
            await c.execute("DROP TABLE IF EXISTS sem_apr")
            await c.close()

    inserted, updated, deleted = asyncio.run(go())
    assert [dict(r) for r in inserted] == [{"id": 1, "upper": "A"}, {"id": 2, "upper": "B"}]
    assert [tuple(r) for r in updated] == [(2, "c")]
    assert sorted(r["gone"] for r in deleted) == [1, 2]


def test_psql_prints_postgresql_command_tags(server):
    psql = shutil.which("psql")
    if psql is None:
        pytest.fail("psql binary not found (install postgresql-client)")
    args = [psql, "-X", "-A", "-v", "ON_ERROR_STOP=0", "-h", server.host, "-p", str(server.port), "-U", "sluice",
            "tpcds"]
    for c in ["BEGIN", "CREATE TABLE sem_psql (a integer)", "INSERT INTO sem_psql VALUES (1)",
              "SELECT count(*), 7 / 2 FROM sem_psql", "COMMIT", "SELECT 1/0", "DROP TABLE sem_psql"]:
        args += ["-c", c]
    out = subprocess.run(args, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PGCONNECT_TIMEOUT": "10"})
    assert out.stdout.splitlines() == ["BEGIN", "CREATE TABLE", "INSERT 0 1", "count|?column?", "1|3", "(1 row)",
                                       "COMMIT", "DROP TABLE"]
    assert "ERROR:  division by zero" in out.stderr


# --- the pure functions, on PostgreSQL text ---------------------------------------------------
@pytest.mark.parametrize(("sql", "expected"), [
    ("SELECT count(*) FROM t", ("count",)),
    ("SELECT now(), current_timestamp, current_user, session_user", ("now", "current_timestamp", "current_user",
                                                                     "session_user")),
    ("SELECT pg_catalog.version(), \"Col\", T.X", ("version", "Col", "x")),
    ("SELECT 1::int::text, 'a'::varchar(3), x::double precision, CAST(1 AS bigint)", ("text", "varchar", "x", "int8")),
    ("SELECT ARRAY[1], ROW(1, 2), EXISTS (SELECT 1), (SELECT y FROM t)", ("array", "row", "exists", "y")),
    ("SELECT sum(x) OVER (), trim(x), 1 + 1, -1, NULL, $1", ("sum", "btrim", "?column?", "?column?", "?column?",
                                                             "?column?")),
    ("SELECT *, x FROM t", (pgsemantics.STAR, "x")),
    ("VALUES (1, 2)", ("column1", "column2")),
    ("INSERT INTO t VALUES (1)", None),
])
def test_column_names(sql, expected):
    assert pgsemantics.column_names(sql) == expected


@pytest.mark.parametrize(("sql", "tag"), [
    ("BEGIN ISOLATION LEVEL SERIALIZABLE", "BEGIN"), ("start transaction", "START TRANSACTION"),
    ("END", "COMMIT"), ("ABORT", "ROLLBACK"), ("CREATE TEMP TABLE t (a int)", "CREATE TABLE"),
    ("CREATE OR REPLACE VIEW v AS SELECT 1", "CREATE VIEW"), ("CREATE TABLE t AS SELECT 1", "SELECT 4"),
    ("CREATE MATERIALIZED VIEW m AS SELECT 1", "CREATE MATERIALIZED VIEW"), ("DROP INDEX IF EXISTS i", "DROP INDEX"),
    ("TRUNCATE TABLE t", "TRUNCATE TABLE"), ("INSERT INTO t SELECT 1", "INSERT 0 4"), ("UPDATE t SET a = 1", "UPDATE 4"),
    ("COPY t FROM STDIN", "COPY 4"), ("SET x = 1", "SET"), ("SHOW x", "SHOW"), ("SELECT 1", "SELECT 4"),
])
def test_command_tag(sql, tag):
    assert pgsemantics.command_tag(sql, 4) == tag


def test_guard_division_rewrites_divisors_only():
    assert pgsemantics.guard_division("SELECT a / 2, a % 3 FROM t") == "SELECT a / 2, a % 3 FROM t"
    guarded = pgsemantics.guard_division("SELECT a / (b - 1) FROM t WHERE c % d = 0")
    assert guarded.count("ERROR('division by zero')") == 2
    view = "CREATE VIEW v AS SELECT a / b FROM t"
    assert pgsemantics.guard_division(view) == view  # a stored view keeps its text


# --- parameter types (asyncpg prepares every statement: ParameterDescription and RowDescription)
PARAM_SETUP = "CREATE TABLE sem_pp (id integer PRIMARY KEY, big bigint, price numeric(10,2), name text, " \
              "born date, ok boolean, ts timestamp)"
PARAM_QUERIES = [
    "SELECT $1::int + 1", "SELECT CAST($1 AS bigint)", "SELECT $1::numeric(5,2)",
    "SELECT $1::date, $2::timestamp, $3::boolean, $4::text", "SELECT $1::int[]",
    "SELECT name FROM sem_pp WHERE id = $1", "SELECT name FROM sem_pp p WHERE p.big > $1 AND p.price < $2",
    "SELECT * FROM sem_pp WHERE name LIKE $1", "SELECT * FROM sem_pp WHERE born BETWEEN $1 AND $2",
    "SELECT * FROM sem_pp WHERE id IN ($1, $2)", "SELECT count(*) FROM sem_pp WHERE ok = $1",
    "INSERT INTO sem_pp (id, name, ok) VALUES ($1, $2, $3)", "INSERT INTO sem_pp VALUES ($1, $2, $3, $4, $5, $6, $7)",
    "UPDATE sem_pp SET name = $1 WHERE id = $2", "DELETE FROM sem_pp WHERE ts < $1",
    "SELECT * FROM sem_pp LIMIT $1 OFFSET $2", "SELECT $1 + 1", "SELECT $1 = 1.5", "SELECT $1",
    "SELECT 1 WHERE $1 = 'a'",
    "INSERT INTO sem_pp (id, name) VALUES ($1, $2) RETURNING id, upper(name), price * 2",
    "UPDATE sem_pp SET ok = $1 WHERE id = $2 RETURNING *", "DELETE FROM sem_pp WHERE born < $1 RETURNING id AS gone",
]


async def _prepared_shapes(host: str, port: int, user: str, database: str) -> list[tuple[Any, ...]]:
    c = await asyncpg.connect(host=host, port=port, user=user, database=database)
    try:
        await c.execute(PARAM_SETUP)
        out = []
        for q in PARAM_QUERIES:
            st = await c.prepare(q)
            out.append((q, [p.name for p in st.get_parameters()],
                        [(a.name, a.type.name) for a in st.get_attributes()]))
        await c.execute("DROP TABLE sem_pp")
        return out
    finally:
        await c.close()


def test_asyncpg_parameter_types_match_real_postgresql(server, pg_cluster, pg_db):
    database = pg_db.rsplit("/", 1)[1]
    pg = asyncio.run(_prepared_shapes("127.0.0.1", pg_cluster.port, "postgres", database))
    ours = asyncio.run(_prepared_shapes(server.host, server.port, "sluice", "tpcds"))
    assert [x for x in ours if x not in pg] == []
    assert ours == pg


# --- the 99 TPC-DS queries on the same data (SF 0.01) in PostgreSQL and over DuckDB ----------
# The one difference left by design: DuckDB has a single string type (VARCHAR), sent as text
# (25); the PostgreSQL copy declares varchar (1043), so the two count as the same here.


def test_tpcds_queries_match_real_postgresql(tpcds_tiny, pg_db, tmp_path):
    from psycopg.conninfo import make_conninfo

    from sqlsluice.bench.tpcds_load import copy_duckdb_to_postgres
    from sqlsluice.config import Config
    from sqlsluice.databases.tpcds import tpcds_queries
    from sqlsluice.middleware.server import ServerThread, SluiceServer

    copy_duckdb_to_postgres(tpcds_tiny, pg_db)
    served = tmp_path / "tpcds.duckdb"
    shutil.copy(tpcds_tiny, served)  # the session-wide file stays untouched

    def run(dsn: str) -> dict[int, tuple[Any, ...]]:
        out = {}
        with psycopg.connect(dsn, autocommit=True) as c:
            for n, q in tpcds_queries().items():
                cur = c.execute(q)
                rows = cur.fetchall()
                assert cur.description is not None
                out[n] = ([d.name for d in cur.description],
                          [25 if d.type_code == 1043 else d.type_code for d in cur.description],
                          len(rows), cur.statusmessage)
        return out

    pg = run(pg_db)
    th = ServerThread(SluiceServer(Config(), backend_url=f"duckdb:///{served}")).start()
    try:
        ours = run(make_conninfo(host="127.0.0.1", port=th.port, user="sluice", dbname="tpcds"))
    finally:
        th.stop()
    assert len(pg) == 99
    assert {n: (ours[n][0], pg[n][0]) for n in pg if ours[n][0] != pg[n][0]} == {}  # column names
    assert {n: (ours[n][2:], pg[n][2:]) for n in pg if ours[n][2:] != pg[n][2:]} == {}  # row counts, tags
    assert {n: (ours[n][1], pg[n][1]) for n in pg if ours[n][1] != pg[n][1]} == {}  # type OIDs


def test_a_rewrite_is_named_and_typed_from_the_clients_text():
    """The rewriter re-aliases a rewrite to DuckDB's own output names ("count_star()"); the
    client still sees the names and types PostgreSQL gives the statement it wrote."""
    from sqlsluice.databases.duckdb_backend import DuckDBBackend
    from sqlsluice.middleware import compat, types

    backend = DuckDBBackend(":memory:")
    try:
        c = compat.Compat(backend.session(), {"user": "sluice"})
        c.setup()
        c.execute("CREATE TABLE sem_rw (x integer)")
        c.execute("INSERT INTO sem_rw VALUES (1), (2)")
        client = "SELECT count(*), sum(x) FROM sem_rw WHERE 1 = 1"
        rewrite = 'SELECT count(*) AS "count_star()", sum(x) AS "sum(x)" FROM sem_rw'
        c.written_as(rewrite, client)
        r = c.execute(rewrite)
        assert [col.name for col in r.columns] == ["count", "sum"] and r.fetchall() == [(2, 3)]
        assert c.column_oids(rewrite, r.columns) == [types.INT8, types.INT8]
        _, described = c.describe(rewrite, [])
        assert [col.name for col in described] == ["count", "sum"]
    finally:
        backend.close()
