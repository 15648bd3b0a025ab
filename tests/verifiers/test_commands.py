"""``sluice verify`` and ``sluice bench verify`` through the real Typer app."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from sqlsluice.cli import app

DDL = "CREATE TABLE t (a INT PRIMARY KEY, b INT);\n"


def _schema(tmp_path: Path) -> str:
    p = tmp_path / "schema.sql"
    p.write_text(DDL)
    return str(p)


def test_verify_help_has_example() -> None:
    r = CliRunner().invoke(app, ["verify", "--help"])
    assert r.exit_code == 0 and "Example: sluice verify" in r.output
    r = CliRunner().invoke(app, ["bench", "verify", "--help"])
    assert r.exit_code == 0 and "Example: sluice bench verify" in r.output


def test_verify_json_single_pair(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["verify", "--schema", _schema(tmp_path), "--q1", "SELECT b FROM t",
                                 "--q2", "SELECT DISTINCT b FROM t", "--json"])
    assert r.exit_code == 1, r.output  # exit 1: NOT_EQUIVALENT
    rec = json.loads(r.stdout.strip())
    assert set(rec) == {"id", "verdict", "method", "counterexample", "seconds"}
    assert rec["verdict"] == "NOT_EQUIVALENT" and rec["counterexample"]["inserts"]


def test_verify_pairs_in_order(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("\n".join(json.dumps(x) for x in [
        {"id": "p1", "q1": "SELECT a FROM t WHERE b > 1", "q2": "SELECT a FROM t WHERE 1 < b"},
        {"id": "p2", "q1": "SELECT a FROM t WHERE b > 1", "q2": "SELECT a FROM t WHERE b >= 1"},
    ]) + "\n")
    r = CliRunner().invoke(app, ["verify", "--schema", _schema(tmp_path), "--pairs", str(pairs), "--json"])
    assert r.exit_code == 1, r.output  # exit 1: some pair NOT_EQUIVALENT
    recs = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    assert [x["id"] for x in recs] == ["p1", "p2"]
    assert [x["verdict"] for x in recs] == ["EQUIVALENT", "NOT_EQUIVALENT"]


def test_verify_text_output(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["verify", "--schema", _schema(tmp_path), "--q1", "SELECT b FROM t",
                                 "--q2", "SELECT DISTINCT b FROM t"])
    assert r.exit_code == 1 and "NOT_EQUIVALENT" in r.output and 'INSERT INTO "t"' in r.output


def test_verify_bad_input_exits_2(tmp_path: Path) -> None:
    s = _schema(tmp_path)
    for q1, needle in (("SELEC b FROM t", "cannot parse"), ("SELECT b FROM nope", "unknown table 'nope'")):
        r = CliRunner().invoke(app, ["verify", "--schema", s, "--q1", q1, "--q2", "SELECT b FROM t"])
        assert r.exit_code == 3  # a bad pair is an ERROR verdict (exit 3); 2 is for bad flags and files
        assert needle in r.stdout and r.stdout.startswith("1: ERROR: ") and len(r.stdout.strip().splitlines()) == 1
    r = CliRunner().invoke(app, ["verify", "--schema", s, "--q1", "SELECT b FROM t"])
    assert r.exit_code == 2 and r.stderr.startswith("error:")


def test_bench_verify_json(tmp_path: Path, shared_data: Path) -> None:
    out = tmp_path / "bench.json"
    r = CliRunner().invoke(app, ["bench", "verify", "--data", str(shared_data), "--limit", "3", "--mutants", "3",
                                 "--budget", "0.3", "--oracle-budget", "0.3", "--json", str(out)])
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    for name in ("spes_calcite_232", "verieql_calcite_397", "mutations"):
        keys = {"EQUIVALENT", "NOT_EQUIVALENT", "UNKNOWN", "errors", "median_s", "p95_s"}
        assert keys <= set(res[name])
    assert sum(res["spes_calcite_232"][k] for k in ("EQUIVALENT", "NOT_EQUIVALENT", "UNKNOWN", "errors")) == 3
    assert res["mutations"]["wrong_equivalent"] == 0


def test_verify_dialect_postgres_runs_on_a_throwaway_postgresql(tmp_path: Path) -> None:
    """--dialect postgres with no server configured: one throwaway cluster for the batch; the
    counterexample's rows are PostgreSQL's own (NUMERIC division keeps its scale there)."""
    import os
    import re

    os.environ.pop("SLUICE_VERIFY_POSTGRES_URL", None)
    r = CliRunner().invoke(app, ["verify", "--dialect", "postgres", "--schema", _schema(tmp_path),
                                 "--q1", "SELECT b / 2 FROM t", "--q2", "SELECT b / 2.0 FROM t", "--json"])
    assert r.exit_code == 1, r.output
    rec = json.loads(r.stdout.strip())
    assert rec["verdict"] == "NOT_EQUIVALENT"
    # PostgreSQL's NUMERIC quotient (at least 16 decimals), not DuckDB's double
    assert re.search(r"\.\d{16,}", json.dumps(rec["counterexample"]["q2_rows"], default=str)), rec
    assert "SLUICE_VERIFY_POSTGRES_URL" not in os.environ  # the cluster is gone with the batch
