"""``sluice serve``, ``sluice query`` and ``sluice demo --help`` as a user runs them."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import psycopg
from typer.testing import CliRunner

from sqlsluice.cli import app

runner = CliRunner()


def test_every_command_has_help_with_an_example():
    for cmd in ("serve", "demo", "query"):
        r = runner.invoke(app, [cmd, "--help"])
        assert r.exit_code == 0 and "Example" in r.output, r.output


def test_query_prints_a_table_and_json(tmp_path):
    db = f"duckdb:///{tmp_path / 'q.duckdb'}"
    r = runner.invoke(app, ["query", "--db", db, "SELECT 42 AS answer, 'x' AS s"])
    assert r.exit_code == 0 and "answer" in r.output and "42" in r.output and "(1 row)" in r.output
    r = runner.invoke(app, ["query", "--db", db, "--json", "SELECT 42 AS answer, NULL AS n"])
    assert json.loads(r.output)["rows"] == [{"answer": 42, "n": None}]


def test_query_bad_sql_is_one_line_and_exit_2(tmp_path):
    r = subprocess.run([sys.executable, "-m", "sqlsluice", "query", "--db", f"duckdb:///{tmp_path / 'q.duckdb'}",
                        "SELEC 1"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.startswith("error: ") and len(r.stderr.strip().splitlines()) == 1


def test_serve_prints_the_psql_line_and_serves(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "sqlsluice", "serve", "--backend",
                             f"duckdb:///{tmp_path / 's.duckdb'}", "--listen", "127.0.0.1:0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [proc.stdout.readline(), proc.stdout.readline()]
        # the hint names the DuckDB file's database (s.duckdb -> s)
        m = re.search(r"psql -h 127\.0\.0\.1 -p (\d+) -U sluice s$", lines[1].strip())
        assert m, lines
        with psycopg.connect(host="127.0.0.1", port=int(m.group(1)), user="sluice", dbname="s",
                             autocommit=True) as c:
            assert c.execute("SELECT 40 + %s", [2]).fetchone() == (42,)
    finally:
        proc.terminate()
        proc.wait(30)


def test_serve_bad_listen_address_is_exit_2(tmp_path):
    r = runner.invoke(app, ["serve", "--backend", "duckdb:///:memory:", "--listen", "nonsense"])
    assert r.exit_code == 2 and "HOST:PORT" in r.output
