"""What the LLM stages read and build: SQL extraction, rule lists, the demonstration pool, the
database-sensitive context.  No LLM involved."""

from __future__ import annotations

from pathlib import Path

import pytest

from sqlsluice.databases import connect
from sqlsluice.llm.sqltext import extract_sql, extract_step, parse_rule_list
from sqlsluice.rewriters import llm_r2
from sqlsluice.rewriters.lithe import build_context
from sqlsluice.state import StateStore


@pytest.mark.parametrize(("reply", "expected"), [
    ("```sql\nselect a from t\n```", "SELECT a FROM t"),
    ("```\nSELECT a FROM t;\n```", "SELECT a FROM t"),
    ("First try:\n```sql\nSELECT broken FROM\n```\nFixed:\n```sql\nSELECT b FROM t\n```", "SELECT b FROM t"),
    ("Use this:\n\nWITH x AS (SELECT 1 AS a)\nSELECT a FROM x\n\nIt is faster because x.", "WITH x AS (SELECT 1 AS a) SELECT a FROM x"),
    ("SELECT a FROM t; -- done\nExplanation: none", "SELECT a FROM t"),
    ("```python\nprint(1)\n```", None),
    ("I cannot improve this query.", None),
    ("```sql\nDELETE FROM t\n```", None),
])
def test_extract_sql(reply: str, expected: str | None) -> None:
    assert extract_sql(reply, "duckdb") == expected


def test_extract_step() -> None:
    assert extract_step("STEP: push d_year = 2000 into the CTE\n```sql\nSELECT 1\n```") == "push d_year = 2000 into the CTE"
    assert extract_step("```sql\nSELECT 1\n```") == ""


def _resolve(name: str) -> str | None:
    from sqlsluice.rewriters.rules import resolve

    r = resolve(name)
    return r.name if r else None


@pytest.mark.parametrize(("reply", "rules", "unknown", "ok"), [
    ('["SORT_REMOVE", "FILTER_REDUCE_EXPRESSIONS"]', ["sort_remove", "constant_fold"], [], True),
    ("Rules: CoreRules.SORT_REMOVE then FILTER_INTO_JOIN_RULE", ["sort_remove"], ["FILTER_INTO_JOIN_RULE"], True),
    ("apply sort_remove and cte_inline", ["sort_remove", "cte_inline"], [], True),
    ("[]", [], [], True),
    ("The query is already optimal.", [], [], False),
])
def test_parse_rule_list(reply: str, rules: list[str], unknown: list[str], ok: bool) -> None:
    got = parse_rule_list(reply, _resolve)
    assert got == (rules, unknown, ok)


def test_pool_seeded_from_shared_data(shared_data: Path) -> None:
    demos = llm_r2.load_pool_csv(shared_data / "rewrite" / "llmr2" / "pos_pool_dsb.csv")
    assert len(demos) > 100
    assert all(d.gain > 1 and d.rules and d.source == "llmr2-dsb" for d in demos)
    pool = llm_r2.DemoPool(demos)
    q = demos[0].sql.replace("2001", "1999")
    near = pool.nearest(q, 3)
    assert len(near) == 3 and near[0].sql.split()[:6] == demos[0].sql.split()[:6]


def test_pool_missing_file_and_stored_demonstrations(tmp_path: Path) -> None:
    store = StateStore(f"sqlite:///{tmp_path / 's.sqlite'}")
    assert llm_r2.load_pool_csv(tmp_path / "absent.csv") == []
    llm_r2.record_demonstration(store, "SELECT a FROM (SELECT a FROM t ORDER BY a) s", ["SORT_REMOVE"], 3.0)
    llm_r2.record_demonstration(store, "SELECT 1", ["sort_remove"], 0.9)  # slower: not a demonstration
    llm_r2.record_demonstration(store, "SELECT 2", ["NO_SUCH_RULE"], 5.0)  # no rule we know
    pool = llm_r2.DemoPool.load(store, csv_path=tmp_path / "absent.csv")
    assert len(pool) == 1 and pool.demos[0].rules == ("sort_remove",) and pool.demos[0].source == "sluice"
    assert pool.nearest("SELECT a FROM t ORDER BY a", 3)[0].gain == 3.0
    assert "Rules: [\"SORT_REMOVE\"]" in pool.demos[0].render(1)


def test_db_context_for_tpcds_query(tpcds_tiny: Path) -> None:
    from sqlsluice.databases.tpcds import tpcds_queries

    b = connect(f"duckdb:///{tpcds_tiny}")
    try:
        ctx = build_context(tpcds_queries()[1], b.catalog(), b)
        assert set(ctx.tables) == {"store_returns", "date_dim", "store", "customer"}
        assert ctx.table_sizes["date_dim"] == 73049
        sel = {s.predicate: s for s in ctx.selectivities}
        assert "d_year = 2000" in sel and 0 < sel["d_year = 2000"].fraction < 0.05
        assert any("customer_total_return is referenced 2 times" in r for r in ctx.redundancies)
        assert "CREATE TABLE store_returns" in ctx.schema_ddl and "CREATE TABLE item" not in ctx.schema_ddl
    finally:
        b.close()


def test_pool_reads_the_proxys_stored_rewrites(tmp_path: Path) -> None:
    from sqlsluice.rewriters.online import Entry, RewriteStore

    store = StateStore(f"sqlite:///{tmp_path / 's.sqlite'}")
    assert llm_r2.stored_demonstrations(store) == []  # no sluice_rewrites table yet: fine
    rs = RewriteStore(store)
    rs.put(Entry("k1", "SELECT a FROM (SELECT a FROM t ORDER BY a) AS s WHERE a > :p0", "SELECT ...",
                 ["sort_remove"], "EQUIVALENT", 4.0, 0.5, "v1", 0.0))
    rs.put(Entry("k2", "SELECT b FROM t", "SELECT b FROM t", [], "NONE", None, 0.1, "v1", 0.0))  # "nothing found"
    demos = llm_r2.stored_demonstrations(store)
    assert [(d.rules, d.gain, d.source) for d in demos] == [(("sort_remove",), 4.0, "sluice-rewrites")]


def test_db_context_on_postgres_uses_planner_estimates(pg_db: str) -> None:
    b = connect(pg_db)
    try:
        b.execute("CREATE TABLE sales (id INT PRIMARY KEY, qty INT NOT NULL, region TEXT)")
        b.execute("INSERT INTO sales SELECT g, g % 100, CASE WHEN g % 10 = 0 THEN 'north' ELSE 'south' END"
                  " FROM generate_series(1, 5000) AS g")
        b.execute("ANALYZE sales")
        sql = "SELECT DISTINCT id, qty FROM sales WHERE qty < 10 AND region = 'north' AND qty < 10"
        ctx = build_context(sql, b.catalog(), b)
        assert ctx.table_sizes == {"sales": 5000}
        sel = {s.predicate: s for s in ctx.selectivities}
        assert sel["qty < 10"].method == "planner estimate" and 0.05 < sel["qty < 10"].fraction < 0.15
        assert 0.05 < sel["region = 'north'"].fraction < 0.15
        assert any(r.startswith("DISTINCT over sales includes its key (id)") for r in ctx.redundancies)
        assert any(r.startswith("predicate repeated: qty < 10") for r in ctx.redundancies)
        assert "PRIMARY KEY (id)" in ctx.schema_ddl
    finally:
        b.close()
