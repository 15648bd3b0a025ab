"""The search's shortcuts (memoised rule applications, pre-checks) must not change its results.

Speed itself is measured side by side by ``docs/rewriters-search-speed.md``'s command, never
asserted here.
"""

from __future__ import annotations

import pytest
from sqlglot import exp
from sqlglot.optimizer.merge_subqueries import merge_subqueries

from sqlsluice.databases import Backend, Catalog
from sqlsluice.databases.tpcds import tpcds_queries
from sqlsluice.rewriters.rules import SEARCH, apply_rules, prepare
from sqlsluice.rewriters.rules.basic import _mergeable_body
from sqlsluice.rewriters.search import search

from .conftest import all_cases

# q14/q23: subquery rules firing repeatedly; q4/q64: CTE-heavy; q2/q5: unions; q47: windows
QUERIES = (2, 4, 5, 14, 23, 47, 64)


@pytest.mark.parametrize("n", QUERIES)
def test_search_all_state_is_apply_rules(n: int, tpcds_backend: Backend, tpcds_catalog: Catalog) -> None:
    """The memoised final pass reaches exactly what apply_rules reaches from scratch."""
    sql = tpcds_queries()[n]
    full = apply_rules(sql, [r.name for r in SEARCH] * 2, tpcds_catalog, "duckdb")
    base = prepare(sql, tpcds_catalog, "duckdb").sql(dialect="duckdb")
    res = search(sql, tpcds_catalog, tpcds_backend)
    assert res.states, f"q{n}: no rewrite found"
    if full.applied and full.sql != base:
        hits = [s for s in res.states if s.sql == full.sql]
        assert hits, f"q{n}: the all-rules state is missing"
        assert hits[0].cost == tpcds_backend.explain(full.sql).cost


@pytest.mark.parametrize("n", QUERIES[:4])
def test_search_is_deterministic(n: int, tpcds_backend: Backend, tpcds_catalog: Catalog) -> None:
    sql = tpcds_queries()[n]
    a = search(sql, tpcds_catalog, tpcds_backend)
    b = search(sql, tpcds_catalog, tpcds_backend)
    assert [(s.sql, s.rules, s.cost) for s in a.states] == [(s.sql, s.rules, s.cost) for s in b.states]
    assert a.explains == b.explains


def _inputs(catalog: Catalog) -> list[exp.Expr]:
    trees = [prepare(q, catalog, "duckdb") for q in tpcds_queries().values()]
    for case in all_cases():
        try:
            trees.append(prepare(case.input, None, case.dialect))
        except Exception:  # a fixture written for a case that must not parse
            continue
    return trees


def test_subquery_merge_precheck_never_refuses_a_merge(tpcds_catalog: Catalog) -> None:
    """Wherever the pre-check skips sqlglot's merge_subqueries, the merge changes nothing."""
    skipped = 0
    for tree in _inputs(tpcds_catalog):
        if any(_mergeable_body(n.this) for n in tree.find_all(exp.Subquery, exp.CTE)):
            continue
        skipped += 1
        try:
            merged = merge_subqueries(tree.copy())
        except Exception:  # the rule treats a raising merge as "not applicable" too
            continue
        assert merged.sql() == tree.sql()
    assert skipped > 10  # the pre-check does skip work on TPC-DS
