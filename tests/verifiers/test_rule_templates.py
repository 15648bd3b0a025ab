"""``sluice verify rules``: every rule of the catalog fires on its templates and is never refuted
there; the rules proved once on every template stay proved (a regression here means a rule or
the proof tiers changed)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from sqlsluice.rewriters.rules import RULES

PROVED_ON_TEMPLATES = {
    "scalar_subquery_to_join", "exists_to_in", "cte_not_materialized", "cte_inline", "union_branch_prune",
    "constant_fold", "cte_materialize", "subquery_merge", "distinct_remove_under_keys", "in_to_join_under_keys",
    "cte_unused_remove", "union_to_distinct", "or_in_to_union", "distinct_join_to_semi_join", "filter_into_derived",
    "left_join_remove_under_keys", "sort_remove",
    "scalar_subqueries_to_filtered_aggregate", "derived_aggregates_to_filtered_aggregate",
    "exists_table_materialize", "count_positive_to_exists",
}


@pytest.fixture(scope="module")
def cli_rules() -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    """``sluice verify rules --json --budget 4`` run once (it proves every template: the module's
    costliest step); both tests read this one run: the command calls ``prove_rules(budget_s=4.0)``."""
    out = subprocess.run([sys.executable, "-m", "sqlsluice", "verify", "rules", "--json", "--budget", "4"],
                         capture_output=True, text=True, timeout=600, check=False)
    return out, json.loads(out.stdout) if out.stdout.strip() else []


def test_every_rule_fires_on_its_templates_and_none_is_refuted(
        cli_rules: tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]) -> None:
    results = {r["rule"]: r for r in cli_rules[1]}
    assert set(results) == {r.name for r in RULES}, cli_rules[0].stderr
    for r in results.values():
        assert r["status"] in ("PROVED", "UNPROVED"), (r["rule"], r["templates"])
    proved = {n for n, r in results.items() if r["status"] == "PROVED"}
    assert PROVED_ON_TEMPLATES <= proved, PROVED_ON_TEMPLATES - proved


def test_verify_rules_cli_json(cli_rules: tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]) -> None:
    out, rows = cli_rules
    assert out.returncode == 0, out.stderr
    assert {r["rule"] for r in rows} == {r.name for r in RULES}
    assert all(t["fired"] for r in rows for t in r["templates"])


def test_verify_bad_target_is_one_line_and_exit_2() -> None:
    out = subprocess.run([sys.executable, "-m", "sqlsluice", "verify", "rulez"], capture_output=True, text=True,
                         timeout=60, check=False)
    assert out.returncode == 2 and out.stderr.startswith("error: ") and len(out.stderr.strip().splitlines()) == 1
