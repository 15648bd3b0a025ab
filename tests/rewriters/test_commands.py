"""``sluice rewrite`` and ``sluice bench tpcds`` from the command line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

import sqlsluice.cli  # noqa: F401 - registers the feature commands
from sqlsluice.cli.app import app

runner = CliRunner()


@pytest.fixture()
def tpcds_copy(tpcds_tiny: Path, tmp_path: Path) -> Path:
    """A private copy: the session's read-only connection to tpcds_tiny may be open in this process."""
    db = tmp_path / "t.duckdb"
    shutil.copy(tpcds_tiny, db)
    return db

Q6ISH = ("SELECT i.i_item_id FROM item AS i WHERE i.i_current_price > 1.2 * (SELECT AVG(j.i_current_price) "
         "FROM item AS j WHERE j.i_category = i.i_category) ORDER BY 1 LIMIT 5")


def test_rewrite_json_prints_one_object(tpcds_copy: Path) -> None:
    r = runner.invoke(app, ["rewrite", "--db", f"duckdb:///{tpcds_copy}", "--sql", Q6ISH, "--json", "--no-timing"])
    assert r.exit_code == 0, r.output
    obj = json.loads(r.stdout)
    assert set(obj) >= {"original", "sql", "rules", "verdict", "speedup", "est_cost_before", "est_cost_after"}
    assert obj["original"] == Q6ISH and obj["speedup"] is None
    assert obj["sql"] == Q6ISH or obj["rules"]


def test_rewrite_bad_input_is_one_line_and_exit_2(tpcds_copy: Path, tmp_path: Path) -> None:
    tpcds_tiny = tpcds_copy
    r = runner.invoke(app, ["rewrite", "--db", f"duckdb:///{tpcds_tiny}"])
    assert r.exit_code == 2 and r.stderr.startswith("error: ")
    r = runner.invoke(app, ["rewrite", "--db", f"duckdb:///{tpcds_tiny}", "--file", str(tmp_path / "none.sql")])
    assert r.exit_code == 2 and "error:" in r.stderr
    r = runner.invoke(app, ["rewrite", "--db", "mysql://x", "--sql", "SELECT 1"])
    assert r.exit_code == 2 and "unsupported backend URL" in r.stderr
    r = runner.invoke(app, ["rewrite", "--db", f"duckdb:///{tpcds_tiny}", "--sql", "SELEC oops FROM"])
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1
    r = runner.invoke(app, ["bench", "tpcds", "--db", f"duckdb:///{tpcds_tiny}", "--queries", "100"])
    assert r.exit_code == 2 and "no TPC-DS query 100" in r.stderr


def test_bench_tpcds_small_run_prints_rows_and_totals(tpcds_copy: Path, tmp_path: Path) -> None:
    db = tpcds_copy
    out = tmp_path / "r.json"
    r = runner.invoke(app, ["bench", "tpcds", "--db", f"duckdb:///{db}", "--sf", "0.01", "--queries", "1,35",
                            "--timeout", "30", "--json", str(out)])
    assert r.exit_code == 0, r.output
    assert "q1" in r.stdout and "q35" in r.stdout and "wrong results 0" in r.stdout
    rep = json.loads(out.read_text())
    assert rep["totals"]["queries"] == 2 and rep["totals"]["wrong_results"] == 0
    assert rep["totals"]["slower_served"] == 0


def test_every_command_has_an_example_in_its_help() -> None:
    for args in (["rewrite", "--help"], ["bench", "tpcds", "--help"], ["bench", "dsb", "--help"]):
        r = runner.invoke(app, args)
        assert r.exit_code == 0 and "Example:" in r.stdout, args


def test_bench_dsb_runs_selected_queries(tpcds_copy: Path, shared_data: Path, tmp_path: Path) -> None:
    from sqlsluice.bench.rewrite import to_markdown

    out = tmp_path / "dsb.json"
    r = runner.invoke(app, ["bench", "dsb", "--db", f"duckdb:///{tpcds_copy}", "--sf", "0.01", "--timeout", "30",
                            "--data", str(shared_data / "rewrite" / "rbot" / "dsb"), "--queries", "query001,query010",
                            "--json", str(out)])
    assert r.exit_code == 0, r.output
    rep = json.loads(out.read_text())
    assert [q["query"] for q in rep["queries"]] == ["query001", "query010"]
    assert rep["totals"]["wrong_results"] == 0 and rep["totals"]["errors"] == 0
    md = to_markdown(rep)
    assert "| query001 |" in md and "Totals: 2 queries" in md
    bad = runner.invoke(app, ["bench", "dsb", "--db", f"duckdb:///{tpcds_copy}", "--queries", "query999",
                              "--data", str(shared_data / "rewrite" / "rbot" / "dsb")])
    assert bad.exit_code == 2 and "no DSB query" in bad.stderr
