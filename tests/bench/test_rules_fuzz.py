"""``sluice bench rules-fuzz``: coverage of every rule, the JSON, determinism, and that it catches a wrong rule.

The bounded run uses both real engines (embedded DuckDB and a throwaway PostgreSQL cluster
started by the fuzzer).  It does not assert zero mismatches for the real rules: those are
the fuzzer's findings, reported, not this test's subject.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlglot import exp
from typer.testing import CliRunner

from sqlsluice.bench.rules_fuzz import (
    CHAIN,
    PREPARE,
    Result,
    catalog,
    compare,
    fuzz,
    generate,
    inserts,
    make_instance,
)
from sqlsluice.cli import app
from sqlsluice.rewriters.rules import RULES, Rule

QUERIES = 150


@pytest.fixture(scope="module")
def bounded_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict[str, Any], str]:
    out = tmp_path_factory.mktemp("fuzz") / "fuzz.json"
    res = CliRunner().invoke(app, ["bench", "rules-fuzz", "--queries", str(QUERIES), "--seed", "0",
                                   "--json", str(out), "--backends", "duckdb,postgresql"])
    assert out.exists(), res.output
    return res.exit_code, json.loads(out.read_text()), res.output


def test_every_rule_fires_on_both_engines(bounded_run: tuple[int, dict[str, Any], str]) -> None:
    _, rep, _ = bounded_run
    for r in RULES:
        s = rep["rules"][r.name]
        assert s["fired"] >= 1, f"{r.name} never fired in {QUERIES} queries"
        assert s["fired_by_engine"].get("duckdb", 0) >= 1 and s["fired_by_engine"].get("postgresql", 0) >= 1, r.name
    assert rep["totals"]["rules_never_fired"] == []


def test_json_shape_and_exit_code(bounded_run: tuple[int, dict[str, Any], str]) -> None:
    code, rep, output = bounded_run
    assert set(rep) >= {"settings", "schema_ddl", "shapes", "rules", "totals", "reproducers", "findings", "warnings"}
    assert rep["settings"]["queries"] == QUERIES and rep["settings"]["engines"] == ["duckdb", "postgresql"]
    assert set(rep["rules"]) == {PREPARE, CHAIN} | {r.name for r in RULES}
    assert rep["rules"][CHAIN]["fired"] >= rep["rules"]["constant_fold"]["fired"]
    for s in rep["rules"].values():
        assert set(s) == {"fired", "fired_by_engine", "mismatches", "order_dependent", "renamed_only", "raised"}
        assert set(s["mismatches"]) == {"duckdb", "postgresql"}
    total = sum(sum(s["mismatches"].values()) for s in rep["rules"].values())
    assert rep["totals"]["mismatches"] == total
    assert code == (1 if total else 0), output
    assert sum(rep["shapes"].values()) == QUERIES
    assert any(ddl.startswith('CREATE TABLE "t1"') for ddl in rep["schema_ddl"]["postgresql"])
    for r in rep["reproducers"]:
        assert {"rule", "engine", "dialect", "schema_ddl", "data_inserts", "original_sql", "rewritten_sql",
                "original_result", "rewritten_result", "reason"} <= set(r)
    assert "rules-fuzz" in output and "scalar_subquery_to_join" in output


def test_same_seed_same_queries_and_data() -> None:
    a, b, c = generate(300, 7), generate(300, 7), generate(300, 8)
    assert [q.sql for q in a] == [q.sql for q in b]
    assert [q.sql for q in a] != [q.sql for q in c]
    assert make_instance("nulls_dups", 7) == make_instance("nulls_dups", 7)
    assert make_instance("random", 7) != make_instance("random", 8)


def test_same_seed_same_report() -> None:
    one = fuzz(queries=40, seed=11, engines=("duckdb",), minimise=False)
    two = fuzz(queries=40, seed=11, engines=("duckdb",), minimise=False)
    assert one["rules"] == two["rules"]
    assert one["shapes"] == two["shapes"]


def test_generator_covers_the_constructs() -> None:
    text = "\n".join(q.sql for q in generate(1500, 3))
    for construct in ("LEFT JOIN", "RIGHT JOIN", "FULL JOIN", "CROSS JOIN", "ROLLUP", "HAVING", "DISTINCT ON",
                      "UNION ALL", "INTERSECT", "EXCEPT", "UNION BY NAME", "WITH t3 AS", "NOT IN", "EXISTS",
                      "NOT EXISTS", "CASE WHEN", "COALESCE", "LIMIT", "1.0000000000000000000000000001",
                      "SELECT *", "ORDER BY", "GROUP BY"):
        assert construct in text, construct
    assert all(q.duckdb_only for q in generate(1500, 3) if "BY NAME" in q.sql)


def test_instances_have_keys_duplicates_nulls_and_empty_tables() -> None:
    cat = catalog()
    assert [t.name for t in cat.tables if t.primary_key] == ["t1", "t2", "t4"]
    dups = make_instance("nulls_dups", 0)
    assert len(set(dups["t3"])) < len(dups["t3"])
    assert sum(v is None for rows in dups.values() for r in rows for v in r) > 10
    for name, rows in dups.items():
        pk = cat.table(name).primary_key  # type: ignore[union-attr]
        idx = [i for i, c in enumerate(cat.table(name).columns) if c.name in pk]  # type: ignore[union-attr]
        if pk:
            assert len({tuple(r[i] for i in idx) for r in rows}) == len(rows)
    assert all(not rows for rows in make_instance("all_empty", 0).values())
    assert sum(not rows for rows in make_instance("some_empty", 0).values()) == 2
    assert inserts({"t3": [(1, None, "x")]}) == ["INSERT INTO t3 VALUES (1, NULL, 'x')"]


def test_compare_is_exact_on_numeric_and_tolerant_on_float() -> None:
    a = Result(["x"], [(Decimal("3.0000000000000000000000000003"),)])
    assert compare(a, Result(["x"], [(Decimal("3.0000000000000000000000000003"),)]), False) is None
    assert compare(a, Result(["x"], [(Decimal("3.0000000000000000000000000000"),)]), False) is not None
    assert compare(Result(["x"], [(0.1 + 0.2,)]), Result(["x"], [(0.3,)]), False) is None
    assert compare(Result(["x"], [(1,), (2,)]), Result(["x"], [(2,), (1,)]), False) is None
    assert compare(Result(["x"], [(1,), (2,)]), Result(["x"], [(2,), (1,)]), True) == "rows differ (ordered)"
    assert compare(Result(["x"], [(1,), (1,)]), Result(["x"], [(1,)]), False) is not None  # bags, not sets
    assert compare(Result(["x"], []), Result(["y"], []), False) == "column names ['x'] != ['y']"
    assert compare(Result(["x"], [(1,)]), Result(["y"], [(2,)]), False) == "rows differ (1 vs 1 rows)"
    assert compare(Result(["x"], []), Result(["x", "y"], []), False) == "column count 1 != 2"
    assert compare(Result(["x"], []), Result(error="boom"), False) == "candidate failed: boom"


def _where_drop(expr: exp.Expr, *, schema: object = None, dialect: str | None = None) -> exp.Expr:
    """A deliberately wrong rule: drop the outer query's WHERE."""
    if isinstance(expr, exp.Select) and expr.args.get("where") is not None:
        out = expr.copy()
        out.set("where", None)
        return out
    return expr


BROKEN = Rule("where_drop_broken", None, "drop the WHERE clause (wrong on purpose)", _where_drop, ("test",))


@pytest.mark.parametrize("engine", ["duckdb", "postgresql"])
def test_catches_and_minimises_a_wrong_rule(engine: str) -> None:
    rep = fuzz(queries=40, seed=5, engines=(engine,), rules=[BROKEN], include_prepare=False, max_reproducers=1)
    s = rep["rules"]["where_drop_broken"]
    assert s["fired"] > 0 and s["mismatches"][engine] > 0
    assert rep["totals"]["mismatching_rules"] == ["where_drop_broken"]
    (r,) = rep["reproducers"]
    assert r["minimised"] and r["rule"] == "where_drop_broken" and r["engine"] == engine
    assert len(r["original_sql"]) <= len(r["generated_sql"])
    assert " WHERE " in r["original_sql"].upper() and " WHERE " not in r["rewritten_sql"].upper()
    assert r["original_result"]["columns"] == r["rewritten_result"]["columns"]
    assert r["original_result"]["rows"] != r["rewritten_result"]["rows"]
    # the data is shrunk: at most a handful of rows remain, and they still show the difference
    rows = sum(ins.count("), (") + 1 for ins in r["data_inserts"])
    assert 0 < rows <= 6, r["data_inserts"]


def test_minimised_reproducer_replays_on_duckdb() -> None:
    import duckdb

    rep = fuzz(queries=40, seed=5, engines=("duckdb",), rules=[BROKEN], include_prepare=False, max_reproducers=1)
    r = rep["reproducers"][0]
    con = duckdb.connect()
    for stmt in r["schema_ddl"] + r["data_inserts"]:
        con.execute(stmt)
    before = con.execute(r["rule_input_sql"]).fetchall()
    after = con.execute(r["rewritten_sql"]).fetchall()
    assert sorted(map(repr, before)) != sorted(map(repr, after))
    assert len(before) == r["original_result"]["row_count"] and len(after) == r["rewritten_result"]["row_count"]


def test_cli_rejects_unknown_backend_and_rule(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["bench", "rules-fuzz", "--queries", "1", "--backends", "sqlite"])
    assert r.exit_code == 2 and "unknown backend" in r.output
    r = CliRunner().invoke(app, ["bench", "rules-fuzz", "--queries", "1", "--rules", "no_such_rule",
                                 "--backends", "duckdb"])
    assert r.exit_code == 2 and "unknown rule" in r.output


def test_catches_the_count_bug_when_a_guard_is_lifted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without its NULL-on-empty guard, scalar_subquery_to_join decorrelates COUNT: the classic count
    bug (an outer row without a group sees NULL instead of 0).  The fuzzer must see it."""
    import sqlsluice.rewriters.rules.subqueries as subqueries
    from sqlsluice.rewriters.rules import BY_NAME

    monkeypatch.setattr(subqueries, "_null_on_empty", lambda e: True)
    rep = fuzz(queries=300, seed=4, engines=("duckdb",), rules=[BY_NAME["scalar_subquery_to_join"]],
               include_prepare=False, max_reproducers=1)
    assert rep["rules"]["scalar_subquery_to_join"]["mismatches"]["duckdb"] > 0
    r = rep["reproducers"][0]
    assert "COUNT" in r["original_sql"].upper() and "GROUP BY" in r["rewritten_sql"].upper()
