"""Catalog numbers over DuckDB as PostgreSQL clients read them: every OID of pg_class, pg_index,
pg_constraint and pg_attribute within int4 (pgjdbc and DBeaver read oids with getInt; a
constraint's index has an OID sluice makes up), the made-up ones resolving through
pg_get_indexdef / pg_get_constraintdef; and pgcatalog_types.py as its generator writes it from
the real PostgreSQL 15 (bench/gen_pgcatalog_types.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[2]
INT4_MAX = 2**31 - 1


@pytest.fixture(scope="module")
def conn(server):
    with psycopg.connect(server.dsn(), autocommit=True) as c:
        c.execute("CREATE TABLE oid_a (a_id INTEGER PRIMARY KEY, a_code VARCHAR UNIQUE, a_n INTEGER NOT NULL)")
        c.execute("CREATE TABLE oid_b (b_id INTEGER PRIMARY KEY, b_a INTEGER REFERENCES oid_a (a_id), "
                  "b_n INTEGER CHECK (b_n > 0))")
        c.execute("CREATE INDEX oid_b_n_idx ON oid_b (b_n)")
        yield c


def test_every_catalog_oid_fits_int4(conn) -> None:
    for sql in ("SELECT oid FROM pg_catalog.pg_class", "SELECT indexrelid FROM pg_catalog.pg_index",
                "SELECT indrelid FROM pg_catalog.pg_index", "SELECT oid FROM pg_catalog.pg_constraint",
                "SELECT conindid FROM pg_catalog.pg_constraint", "SELECT conrelid FROM pg_catalog.pg_constraint",
                "SELECT confrelid FROM pg_catalog.pg_constraint", "SELECT attrelid FROM pg_catalog.pg_attribute",
                "SELECT typnamespace FROM pg_catalog.pg_type", "SELECT oid FROM pg_catalog.pg_namespace"):
        values = [v for (v,) in conn.execute(sql).fetchall() if v is not None]
        assert values and all(0 <= v <= INT4_MAX for v in values), (sql, max(values, default=None))


def test_constraint_oids_resolve(conn) -> None:
    cons = conn.execute("SELECT c.conname, c.contype, pg_catalog.pg_get_constraintdef(c.oid, true), c.conindid "
                        "FROM pg_catalog.pg_constraint c JOIN pg_catalog.pg_class t ON t.oid = c.conrelid "
                        "WHERE t.relname IN ('oid_a', 'oid_b') ORDER BY 1").fetchall()
    assert [(n, t, d) for n, t, d, _ in cons] == [
        ("oid_a_a_code_key", "u", "UNIQUE (a_code)"), ("oid_a_pkey", "p", "PRIMARY KEY (a_id)"),
        ("oid_b_b_a_fkey", "f", "FOREIGN KEY (b_a) REFERENCES oid_a(a_id)"),
        ("oid_b_b_n_check", "c", "CHECK (b_n > 0)"), ("oid_b_pkey", "p", "PRIMARY KEY (b_id)")]
    by_name = {n: i for n, _, _, i in cons}
    assert by_name["oid_b_b_a_fkey"] == by_name["oid_a_pkey"]  # a foreign key's index: the referenced key's
    idx = conn.execute("SELECT c.relname, pg_catalog.pg_get_indexdef(i.indexrelid), i.indexrelid = ANY(%s) "
                       "FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid "
                       "WHERE i.indrelid = 'oid_a'::regclass ORDER BY 1", [list(by_name.values())]).fetchall()
    assert idx == [("oid_a_a_code_key", "CREATE UNIQUE INDEX oid_a_a_code_key ON public.oid_a USING btree (a_code)",
                    True),
                   ("oid_a_pkey", "CREATE UNIQUE INDEX oid_a_pkey ON public.oid_a USING btree (a_id)", True)]
    cols = conn.execute("SELECT a.attname FROM pg_catalog.pg_attribute a WHERE a.attrelid = %s",
                        [by_name["oid_a_pkey"]]).fetchall()
    assert cols == [("a_id",)]  # the index's own column (psql's \d oid_a_pkey)


def test_generator_writes_the_module(pg_cluster) -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    import gen_pgcatalog_types as gen

    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as c:
        text = gen.render(*gen.read_catalog(c))
    assert text == gen.MODULE.read_text()
