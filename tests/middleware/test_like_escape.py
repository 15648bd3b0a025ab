"""LIKE and ILIKE over DuckDB escape with a backslash by default, as PostgreSQL does
(``LIKE 'ss\\_%'`` matches ``ss_x`` and not ``ssax``); an explicit ESCAPE is kept."""

from __future__ import annotations

import psycopg

QUERIES = [
    r"SELECT 'ss_x' LIKE 'ss\_%', 'ssax' LIKE 'ss\_%', 'a%b' LIKE 'a\%b', 'axb' LIKE 'a\%b'",
    r"SELECT 'SS_X' ILIKE 'ss\_x', 'SSAX' ILIKE 'ss\_x', 'ss_x' NOT LIKE 'ss\_x', 'a\b' LIKE 'a\\b'",
    r"SELECT 'a!b' LIKE 'a!!b' ESCAPE '!', 'ab' LIKE 'ab', 7 / 2",
    r"SELECT count(*) FROM (VALUES ('ss_a'), ('ssxa'), ('ss_b')) AS t(s) WHERE s LIKE 'ss\_a'",
]


def test_like_backslash_escape_same_as_postgresql(server, pg_db):
    with psycopg.connect(server.dsn(), autocommit=True) as duck, psycopg.connect(pg_db, autocommit=True) as pg:
        for q in QUERIES:
            assert duck.execute(q).fetchall() == pg.execute(q).fetchall(), q
