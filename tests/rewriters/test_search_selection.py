"""The search keeps no state estimated exactly as the original (its plan), bar the "all rules" state:
no timing slot spent on it."""

from __future__ import annotations

from sqlsluice.databases import Backend, Catalog
from sqlsluice.rewriters.search import search


def test_a_state_with_the_original_estimate_is_not_kept(tpcds_backend: Backend, tpcds_catalog: Catalog) -> None:
    # constant_fold fires (2 + 3 -> 5) and changes the text, not the plan
    sql = "SELECT i.i_item_sk FROM item AS i WHERE i.i_current_price > 2 + 3"
    res = search(sql, tpcds_catalog, tpcds_backend)
    assert res.original_cost is not None and res.explains >= 2  # the folded state was planned
    assert tpcds_backend.explain("SELECT i.i_item_sk FROM item AS i WHERE i.i_current_price > 5").cost \
        == res.original_cost
    # constant_fold is the only rule that fires, so its state is also the "all" state: kept
    assert [s.rules for s in res.states] == [["constant_fold"]]


def test_beam_states_with_the_original_estimate_are_dropped(tpcds_backend: Backend, tpcds_catalog: Catalog) -> None:
    from sqlsluice.databases.tpcds import tpcds_queries
    from sqlsluice.rewriters.rules import SEARCH, apply_rules

    for n in (2, 5, 14, 23):
        sql = tpcds_queries()[n]
        res = search(sql, tpcds_catalog, tpcds_backend)
        full = apply_rules(sql, [r.name for r in SEARCH] * 2, tpcds_catalog, "duckdb").sql
        same = [s.rules for s in res.states if s.cost == res.original_cost and s.sql != full]
        assert not same, (n, same)


def test_distinct_plans_are_still_kept(tpcds_backend: Backend, tpcds_catalog: Catalog) -> None:
    from sqlsluice.databases.tpcds import tpcds_queries

    res = search(tpcds_queries()[1], tpcds_catalog, tpcds_backend)
    assert any("scalar_subquery_to_join" in s.rules for s in res.states)
    assert len({s.cost for s in res.states}) == len(res.states)
