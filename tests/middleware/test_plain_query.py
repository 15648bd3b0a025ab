"""Transaction pooling's shortcut for plain queries agrees with the pool's own checks.

``upstream.plain_query`` lets a statement skip ``pool.refusal`` / ``pool.is_set`` (regular
expressions per statement); every statement it admits must be one those let through as is.
"""

from __future__ import annotations

import pytest

from sqlsluice.middleware.pool import deallocate_target, is_discard_all, is_set, refusal
from sqlsluice.middleware.upstream import plain_query

CORPUS = [
    "SELECT abalance FROM pgbench_accounts WHERE aid = 7;",
    "  select 1",
    "WITH x AS (SELECT 1) SELECT * FROM x;;",
    "SELECT ';' AS semicolon",
    "SELECT 1; LISTEN x",
    "SELECT 1; SET search_path = x",
    "select 1;\n reset all",
    "SELECT pg_advisory_lock(1)",
    "SELECT PG_ADVISORY_LOCK(1)",
    "SELECT set_config('a.b', '1', false)",
    "SELECT SET_CONFIG('a.b', '1', false)",
    "SET x = 1",
    "LISTEN x",
    "PREPARE p AS SELECT 1",
    "DEALLOCATE ALL",
    "DISCARD ALL",
    "CREATE TEMP TABLE t (k int)",
    "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
    "(SELECT 1)",
    "with recursive t(n) as (values (1)) select * from t",
]


@pytest.mark.parametrize("sql", CORPUS)
def test_plain_query_is_let_through_by_the_pool_checks(sql: str) -> None:
    if plain_query(sql):
        assert refusal(sql) is None
        assert not is_set(sql)
        assert deallocate_target(sql) is None and not is_discard_all(sql)


def test_plain_query_admits_point_queries_only() -> None:
    admitted = [s for s in CORPUS if plain_query(s)]
    assert admitted == ["SELECT abalance FROM pgbench_accounts WHERE aid = 7;", "  select 1",
                        "WITH x AS (SELECT 1) SELECT * FROM x;;",
                        "with recursive t(n) as (values (1)) select * from t"]
