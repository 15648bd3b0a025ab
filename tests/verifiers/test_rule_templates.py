"""``sluice verify rules``: every rule of the catalog fires on its templates and is never refuted
there; the rules proved once on every template stay proved (a regression here means a rule or
the proof tiers changed)."""

from __future__ import annotations

import json
import subprocess
import sys

from sqlsluice.rewriters.rule_proofs import prove_rules
from sqlsluice.rewriters.rules import RULES

PROVED_ON_TEMPLATES = {
    "scalar_subquery_to_join", "exists_to_in", "cte_not_materialized", "cte_inline", "union_branch_prune",
    "constant_fold", "cte_materialize", "subquery_merge", "distinct_remove_under_keys", "in_to_join_under_keys",
    "cte_unused_remove", "union_to_distinct", "or_in_to_union", "distinct_join_to_semi_join", "filter_into_derived",
    "left_join_remove_under_keys", "sort_remove",
    "scalar_subqueries_to_filtered_aggregate", "derived_aggregates_to_filtered_aggregate",
}


def test_every_rule_fires_on_its_templates_and_none_is_refuted() -> None:
    results = {r.rule: r for r in prove_rules(budget_s=4.0)}
    assert set(results) == {r.name for r in RULES}
    for r in results.values():
        assert r.status in ("PROVED", "UNPROVED"), (r.rule, [t.__dict__ for t in r.templates])
    proved = {n for n, r in results.items() if r.status == "PROVED"}
    assert PROVED_ON_TEMPLATES <= proved, PROVED_ON_TEMPLATES - proved


def test_verify_rules_cli_json() -> None:
    out = subprocess.run([sys.executable, "-m", "sqlsluice", "verify", "rules", "--json"], capture_output=True,
                         text=True, timeout=600, check=False)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert {r["rule"] for r in rows} == {r.name for r in RULES}
    assert all(t["fired"] for r in rows for t in r["templates"])


def test_verify_bad_target_is_one_line_and_exit_2() -> None:
    out = subprocess.run([sys.executable, "-m", "sqlsluice", "verify", "rulez"], capture_output=True, text=True,
                         timeout=60, check=False)
    assert out.returncode == 2 and out.stderr.startswith("error: ") and len(out.stderr.strip().splitlines()) == 1
