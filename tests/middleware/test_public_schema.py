"""DuckDB's default schema ``main`` is presented as PostgreSQL's ``public``, as PostgreSQL has it:
in pg_namespace and information_schema (one OID everywhere), current_schema(), current_schemas(),
SHOW search_path, and ``public.t`` / ``"public"."t"`` in client SQL (SELECT, DML, DDL, COPY,
psql's ``\\d public.t``) resolves to DuckDB's main.t. Real psql and psycopg through the server."""

from __future__ import annotations

import os
import shutil
import subprocess

import psycopg
import pytest

PSQL = shutil.which("psql")


def psql(server, *commands: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    if PSQL is None:
        pytest.fail("psql binary not found (install postgresql-client)")
    args = [PSQL, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", server.host, "-p", str(server.port),
            "-U", "sluice", "tpcds"]
    for c in commands:
        args += ["-c", c]
    env = {**os.environ, "PGCONNECT_TIMEOUT": "10", "PGSSLMODE": "prefer"}
    out = subprocess.run(args, capture_output=True, text=True, timeout=60, env=env, input=stdin)
    assert out.returncode == 0, out.stderr
    return out


@pytest.fixture(scope="module")
def conn(server):
    with psycopg.connect(server.dsn(), autocommit=True) as c:
        c.execute("CREATE TABLE pub_t (id INTEGER PRIMARY KEY, name VARCHAR)")
        yield c


def test_schema_functions_and_search_path(conn) -> None:
    assert conn.execute("SELECT current_schema(), current_schemas(false), current_schemas(true)").fetchone() \
        == ("public", ["public"], ["pg_catalog", "public"])
    assert conn.execute("SELECT current_schema").fetchone() == ("public",)
    assert conn.execute("SHOW search_path").fetchone() == ('"$user", public',)


def test_catalog_shows_public_with_one_oid(conn) -> None:
    rows = conn.execute("SELECT oid, nspname FROM pg_catalog.pg_namespace").fetchall()
    names = [n for _, n in rows]
    assert "public" in names and "main" not in names
    nsp = dict((n, o) for o, n in rows)["public"]
    assert conn.execute("SELECT 'public'::regnamespace::oid").fetchone() == (nsp,)
    assert conn.execute("SELECT relnamespace FROM pg_catalog.pg_class WHERE relname = 'pub_t'").fetchone() == (nsp,)
    assert conn.execute("SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
                        "ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relname = 'pub_t'").fetchall() \
        == [("pub_t",)]
    assert conn.execute("SELECT table_schema FROM information_schema.tables WHERE table_name = 'pub_t'").fetchall() \
        == [("public",)]
    assert conn.execute("SELECT DISTINCT table_schema FROM information_schema.columns "
                        "WHERE table_name = 'pub_t'").fetchall() == [("public",)]
    assert conn.execute("SELECT schema_name FROM information_schema.schemata").fetchall() == [("public",)]
    assert conn.execute("SELECT pg_get_indexdef(i.indexrelid) FROM pg_catalog.pg_index i "
                        "WHERE i.indrelid = 'pub_t'::regclass").fetchone() \
        == ("CREATE UNIQUE INDEX pub_t_pkey ON public.pub_t USING btree (id)",)


def test_public_qualified_names_reach_main(conn) -> None:
    assert conn.execute("INSERT INTO public.pub_t VALUES (1, 'a'), (2, 'b')").rowcount == 2
    assert conn.execute('UPDATE "public"."pub_t" SET name = \'B\' WHERE id = 2').rowcount == 1
    assert conn.execute("SELECT public.pub_t.name FROM public.pub_t WHERE name = 'public.x' OR id = 1").fetchall() \
        == [("a",)]
    conn.execute("CREATE TABLE public.pub_ddl (a INTEGER)")
    conn.execute("ALTER TABLE public.pub_ddl ADD COLUMN b VARCHAR")
    assert conn.execute("SELECT table_schema, column_name FROM information_schema.columns "
                        "WHERE table_name = 'pub_ddl' ORDER BY ordinal_position").fetchall() \
        == [("public", "a"), ("public", "b")]
    conn.execute("DROP TABLE public.pub_ddl")
    assert conn.execute("DELETE FROM public.pub_t WHERE id = 2").rowcount == 1
    assert conn.execute("SELECT 'public.pub_t' AS s").fetchone() == ("public.pub_t",)  # literals untouched


def test_psql_copy_and_describe_public_table(server, conn) -> None:
    psql(server, "\\copy public.pub_t FROM STDIN", stdin="7\tseven\n8\teight\n\\.\n")
    out = psql(server, "COPY (SELECT id, name FROM public.pub_t WHERE id > 6 ORDER BY id) TO STDOUT",
               "COPY public.pub_t TO STDOUT", "\\d public.pub_t", "\\dn")
    lines = out.stdout.splitlines()
    assert lines[:2] == ["7\tseven", "8\teight"]
    assert "1\ta" in lines
    assert "id|integer||not null|" in lines and "name|character varying|||" in lines
    assert "public|sluice" in lines  # \dn
    head = psql(server, "\\pset tuples_only off", "\\d public.pub_t").stdout
    assert 'Table "public.pub_t"' in head and '"pub_t_pkey" PRIMARY KEY, btree (id)' in head


def test_create_schema_public_as_postgresql(conn) -> None:
    notices: list[str] = []
    conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
    assert conn.execute('CREATE SCHEMA IF NOT EXISTS "public"').statusmessage == "CREATE SCHEMA"
    assert notices == ['schema "public" already exists, skipping']
    with pytest.raises(psycopg.errors.DuplicateSchema):
        conn.execute("CREATE SCHEMA public")
    names = [n for (n,) in conn.execute("SELECT nspname FROM pg_catalog.pg_namespace").fetchall()]
    assert names.count("public") == 1 and "main" not in names
