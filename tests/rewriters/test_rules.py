"""Every rule against its fixture file: fires (or must not), expected text, DuckDB results, verifier."""

from __future__ import annotations

import doctest
import importlib

import pytest
import sqlglot

from sqlsluice.databases import Backend, Catalog
from sqlsluice.rewriters.rules import BY_NAME, RULES, apply_rules, prepare, resolve, run_rule
from sqlsluice.verifiers import compare_results, verify

from .conftest import FIXTURES, RuleCase, all_cases

CASES = all_cases()


def _norm(sql: str, dialect: str) -> str:
    return sqlglot.parse_one(sql, read=dialect).sql(dialect=dialect)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_rule_fixture(case: RuleCase, tpcds_backend: Backend, tpcds_catalog: Catalog) -> None:
    rule = BY_NAME[case.rule]
    tree = prepare(case.input, tpcds_catalog, case.dialect)
    out = run_rule(rule, tree, tpcds_catalog, case.dialect)
    if not case.fires:
        assert out is tree, f"{case.rule} fired on a must-not-fire case: {out.sql(dialect=case.dialect)}"
        return
    assert out is not tree, f"{case.rule} did not fire"
    got = out.sql(dialect=case.dialect)
    assert case.expected is not None
    assert _norm(got, case.dialect) == _norm(case.expected, case.dialect)
    if case.execute:
        before = tpcds_backend.execute(case.input).rows
        after = tpcds_backend.execute(got).rows
        assert before, "a positive case should return rows, or the comparison proves little"
        assert compare_results(before, after, float_tol=1e-9)


@pytest.mark.parametrize("case", [c for c in CASES if c.fires], ids=[c.id for c in CASES if c.fires])
def test_rule_pair_not_refuted_by_verifier(case: RuleCase, tpcds_catalog: Catalog) -> None:
    assert case.expected is not None
    v = verify(case.input, case.expected, tpcds_catalog, dialect=case.dialect, time_budget_s=0.5)
    assert v.verdict != "NOT_EQUIVALENT", v.counterexample


def test_every_rule_has_fixtures_with_both_kinds() -> None:
    for r in RULES:
        path = FIXTURES / f"{r.name}.sql"
        assert path.exists(), f"no fixture file for {r.name}"
        kinds = {c.fires for c in CASES if c.rule == r.name}
        assert kinds == {True, False}, f"{r.name} needs a positive and a must-not-fire case"


def test_rule_docstrings_pass() -> None:
    for modname in ("basic", "ctes", "subqueries"):
        mod = importlib.import_module(f"sqlsluice.rewriters.rules.{modname}")
        res = doctest.testmod(mod)
        assert res.attempted > 0 and res.failed == 0, modname


def test_every_rule_is_documented() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "rewriters.md").read_text()
    for r in RULES:
        assert f"`{r.name}`" in doc, f"{r.name} missing from docs/rewriters.md"
        assert r.description and r.fn.__doc__


def test_apply_rules_resolves_calcite_names_and_counts_unknown(tpcds_catalog: Catalog) -> None:
    sql = ("SELECT c.c_customer_id FROM customer AS c WHERE EXISTS (SELECT * FROM web_sales "
           "WHERE web_sales.ws_bill_customer_sk = c.c_customer_sk) OR EXISTS (SELECT * FROM catalog_sales "
           "WHERE catalog_sales.cs_ship_customer_sk = c.c_customer_sk)")
    a = apply_rules(sql, ["SEMI_JOIN", "NO_SUCH_RULE", "or_in_to_union", "CoreRules.SORT_REMOVE"],
                    tpcds_catalog, "duckdb")
    assert a.applied == ["exists_to_in", "or_in_to_union"]
    assert a.unknown == ["NO_SUCH_RULE"]
    assert a.not_fired == ["sort_remove"]
    assert "UNION ALL" in a.sql and "EXISTS" not in a.sql
    assert resolve("FILTER_SET_OP_TRANSPOSE") is BY_NAME["filter_into_derived"]


def test_no_rule_raises_on_any_tpcds_query(tpcds_catalog: Catalog) -> None:
    from sqlsluice.databases.tpcds import tpcds_queries

    for n, q in tpcds_queries().items():
        tree = prepare(q, tpcds_catalog, "duckdb")
        for r in RULES:
            if r.needs and tree.find(*r.needs) is None:
                continue
            try:
                r.fn(tree, schema=tpcds_catalog, dialect="duckdb")
            except Exception as e:  # pragma: no cover - the assertion message is the point
                raise AssertionError(f"{r.name} raised on TPC-DS q{n}: {e!r}") from e
