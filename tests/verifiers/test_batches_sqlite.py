"""``sluice verify`` batches that never stop, exit codes, replayable counterexamples, SQLite semantics.

The CLI runs as a real subprocess; counterexample INSERTs are replayed in real sqlite3, DuckDB
and PostgreSQL (``pg_db``).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest

from sqlsluice.databases import Catalog
from sqlsluice.verifiers import compare_results, load_schema
from sqlsluice.verifiers.batch import exit_code, verify_pair

SLUICE = str(Path(sys.executable).with_name("sluice"))
DDL = "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, dept TEXT, age INTEGER, code TEXT, d DATE);\n"


def _sluice(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "250"}  # help text unwrapped
    return subprocess.run([SLUICE, *args], capture_output=True, text=True, timeout=300, check=False, env=env)


def _files(tmp_path: Path, pairs: list[Any]) -> tuple[str, str]:
    schema = tmp_path / "schema.sql"
    schema.write_text(DDL)
    f = tmp_path / "pairs.jsonl"
    f.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in pairs))
    return str(schema), str(f)


EQ = {"q1": "SELECT name FROM t WHERE age > 1", "q2": "SELECT name FROM t WHERE 1 < age"}
NE = {"q1": "SELECT name FROM t WHERE age > 1", "q2": "SELECT name FROM t WHERE age >= 1"}
UNK = {"q1": "SELECT name FROM t WHERE name LIKE 'a'", "q2": "SELECT name FROM t WHERE lower(name) = 'a'"}


def test_broken_pairs_in_the_middle_do_not_stop_the_batch(tmp_path: Path) -> None:
    schema, pairs = _files(tmp_path, [
        {"id": "p1", **EQ},
        {"id": "p2", "q1": "SELEC name FROM t", "q2": "SELECT name FROM t"},  # does not parse
        {"id": "p3", "q1": "SELECT nme FROM t", "q2": "SELECT name FROM t"},  # SQLite: no such column
        {"id": "p4", "q1": "SELECT name FROM nope", "q2": "SELECT name FROM t"},  # unknown table
        "this line is not JSON",
        {"id": "p6", "q1": "SELECT name FROM t"},  # no q2
        {"id": "p7", **NE},
    ])
    r = _sluice("verify", "--schema", schema, "--pairs", pairs, "--dialect", "sqlite", "--json", "--budget", "0.5")
    assert r.returncode == 1, r.stderr  # a pair is refuted: 1 wins over the ERRORs (3)
    recs = [json.loads(line) for line in r.stdout.splitlines()]
    assert [x["id"] for x in recs] == ["p1", "p2", "p3", "p4", "5", "p6", "p7"]
    assert [x["verdict"] for x in recs] == ["EQUIVALENT", "ERROR", "ERROR", "ERROR", "ERROR", "ERROR", "NOT_EQUIVALENT"]
    assert "cannot parse" in recs[1]["error"]
    assert recs[2]["error"].startswith("SQLite: no such column: nme")
    assert "unknown table 'nope'" in recs[3]["error"]
    assert "not JSON" in recs[4]["error"] and "q1 and q2" in recs[5]["error"]
    assert recs[6]["counterexample"]["inserts"][0].startswith('INSERT INTO "t" ("id", "name", "dept", "age", "code", "d")')
    # the text form: one line per pair as well
    r = _sluice("verify", "--schema", schema, "--pairs", pairs, "--dialect", "sqlite", "--budget", "0.5")
    heads = [line.split(":")[0] for line in r.stdout.splitlines() if not line.startswith("  ")]
    assert r.returncode == 1 and heads == ["p1", "p2", "p3", "p4", "5", "p6", "p7"]


@pytest.mark.parametrize(("pairs", "code"), [
    ([EQ, EQ], 0),
    ([EQ, NE, {"q1": "SELEC", "q2": "SELECT 1"}, UNK], 1),
    ([EQ, UNK], 3),
    ([EQ, {"q1": "SELEC", "q2": "SELECT 1"}], 3),
])
def test_exit_codes_of_batches(tmp_path: Path, pairs: list[dict[str, str]], code: int) -> None:
    schema, f = _files(tmp_path, pairs)
    r = _sluice("verify", "--schema", schema, "--pairs", f, "--dialect", "sqlite", "--json", "--budget", "0.5")
    assert r.returncode == code, r.stdout + r.stderr
    assert len(r.stdout.splitlines()) == len(pairs)


def test_exit_codes_of_a_single_pair_and_trouble(tmp_path: Path) -> None:
    schema, pairs = _files(tmp_path, [EQ])
    for pair, code in ((EQ, 0), (NE, 1), (UNK, 3), ({"q1": "SELECT 1", "q2": "SELEC 1"}, 3)):
        r = _sluice("verify", "--schema", schema, "--dialect", "sqlite", "--budget", "0.5",
                    "--q1", pair["q1"], "--q2", pair["q2"])
        assert r.returncode == code, (pair, r.stdout, r.stderr)
    assert "1: ERROR: cannot parse" in r.stdout
    # trouble: a missing pairs file, bad flags, a schema that is no DDL
    assert _sluice("verify", "--schema", schema, "--pairs", str(tmp_path / "missing.jsonl")).returncode == 2
    assert _sluice("verify", "--schema", schema, "--q1", "SELECT 1").returncode == 2
    assert _sluice("verify", "--schema", schema, "--pairs", pairs, "--semantics", "list").returncode == 2
    bad = tmp_path / "bad.sql"
    bad.write_text("SELECT 1;\n")
    assert _sluice("verify", "--schema", str(bad), "--pairs", pairs).returncode == 2
    helptext = " ".join(_sluice("verify", "--help").stdout.split())
    assert "1 some pair NOT_EQUIVALENT (this wins over everything else)" in helptext


def test_exit_code_folding() -> None:
    assert exit_code([]) == 0
    assert exit_code(["EQUIVALENT"]) == 0
    assert exit_code(["UNKNOWN", "NOT_EQUIVALENT", "ERROR"]) == 1
    assert exit_code(["EQUIVALENT", "ERROR"]) == 3


ODD_DDL = ('CREATE TABLE "order items" ("18_49" INTEGER NOT NULL, "order" TEXT, "my col" INTEGER, '
           '"when" DATE, "ok" BOOLEAN, "price" DECIMAL(10, 2), PRIMARY KEY ("18_49"))')
ODD_Q1 = 'SELECT "order", "my col", "when", "ok", "price" FROM "order items" WHERE "my col" > 1'
ODD_Q2 = 'SELECT "order", "my col", "when", "ok", "price" FROM "order items" WHERE "my col" >= 1'


def _odd_counterexample(dialect: str) -> tuple[Catalog, list[str]]:
    cat = load_schema(ODD_DDL, dialect)
    v = verify_pair(ODD_Q1, ODD_Q2, cat, dialect, time_budget_s=1.0)
    assert v.verdict == "NOT_EQUIVALENT" and v.counterexample is not None, v
    text = " ".join(v.counterexample.inserts)
    assert 'INSERT INTO "order items" ("18_49", "order", "my col", "when", "ok", "price") VALUES' in text
    return cat, v.counterexample.inserts


def _replays(run: Any) -> None:
    r1, r2 = run(ODD_Q1), run(ODD_Q2)
    assert r2 and not compare_results(r1, r2)  # the INSERTs alone reproduce the difference


def test_counterexample_replays_in_sqlite() -> None:
    cat, inserts = _odd_counterexample("sqlite")
    con = sqlite3.connect(":memory:")
    for stmt in [*cat.to_ddl("sqlite"), *inserts]:
        con.execute(stmt)
    _replays(lambda q: con.execute(q).fetchall())


def test_counterexample_replays_in_duckdb() -> None:
    cat, inserts = _odd_counterexample("duckdb")
    con = duckdb.connect(":memory:")
    for stmt in [*cat.to_ddl("duckdb"), *inserts]:
        con.execute(stmt)
    _replays(lambda q: con.execute(q).fetchall())


def test_counterexample_replays_in_postgres(pg_db: str) -> None:
    import psycopg

    cat, inserts = _odd_counterexample("postgres")
    with psycopg.connect(pg_db, autocommit=True) as con:
        for stmt in [*cat.to_ddl("postgres"), *inserts]:
            con.execute(stmt)
        _replays(lambda q: con.execute(q).fetchall())


SQLITE_CAT = load_schema(DDL, "sqlite")


def _v(q1: str, q2: str, dialect: str = "sqlite") -> str:
    return verify_pair(q1, q2, SQLITE_CAT, dialect, time_budget_s=0.6).verdict


def test_integer_division_is_sqlites() -> None:
    v = verify_pair("SELECT 3/2", "SELECT 1.5", SQLITE_CAT, "sqlite")
    assert v.verdict == "NOT_EQUIVALENT" and v.counterexample is not None
    assert v.counterexample.q1_rows == [[1]] and v.counterexample.q2_rows == [[1.5]]
    assert _v("SELECT 3/2", "SELECT 1") != "NOT_EQUIVALENT"
    assert _v("SELECT CAST(age AS REAL) / 2 FROM t", "SELECT age / 2 FROM t") == "NOT_EQUIVALENT"


def test_like_is_ascii_case_insensitive_on_sqlite() -> None:
    assert _v(UNK["q1"], UNK["q2"]) in ("EQUIVALENT", "UNKNOWN")
    assert _v(UNK["q1"], UNK["q2"], "duckdb") == "NOT_EQUIVALENT"  # DuckDB's LIKE is case-sensitive
    assert _v("SELECT 'a' LIKE 'A'", "SELECT 1") != "NOT_EQUIVALENT"
    assert _v("SELECT 'a' LIKE 'A'", "SELECT 0") == "NOT_EQUIVALENT"
    assert _v("SELECT 'a' LIKE 'A'", "SELECT 1", "duckdb") == "NOT_EQUIVALENT"


def test_double_quoted_string_that_names_no_column() -> None:
    # a string in SQLite, and so in the proof tiers too
    assert _v("SELECT name FROM t WHERE dept = \"CV\"", "SELECT name FROM t WHERE dept = 'CV'") == "EQUIVALENT"
    assert _v("SELECT \"dept\" FROM t WHERE \"dept\" = 'CV'", "SELECT dept FROM t WHERE dept = 'CV'") == "EQUIVALENT"
    assert _v("SELECT name FROM t WHERE dept = \"CV\"", "SELECT name FROM t WHERE dept = 'cv'") == "NOT_EQUIVALENT"
    assert _v("SELECT name FROM t WHERE dept = \"CV\"", "SELECT name FROM t WHERE dept = 'CV'", "duckdb") == "ERROR"


def test_bare_columns_iif_concat_and_affinity() -> None:
    # a bare column in an aggregate query: one row, not one per group
    assert _v("SELECT dept, count(*) FROM t", "SELECT dept, count(*) FROM t GROUP BY dept") == "NOT_EQUIVALENT"
    assert _v("SELECT dept, count(*) FROM t", "SELECT dept, count(*) FROM t GROUP BY dept", "duckdb") == "ERROR"
    assert _v("SELECT IIF(age > 3, 'old', 'young') FROM t",
              "SELECT CASE WHEN age > 3 THEN 'old' ELSE 'young' END FROM t") != "NOT_EQUIVALENT"
    assert _v("SELECT name || dept FROM t", "SELECT name || COALESCE(dept, '') FROM t") == "NOT_EQUIVALENT"
    # TEXT compared with an integer: the integer takes the column's TEXT affinity
    assert _v("SELECT id FROM t WHERE code = 5", "SELECT id FROM t WHERE code = '5'") != "NOT_EQUIVALENT"
    assert _v("SELECT id FROM t WHERE code > 5", "SELECT id FROM t WHERE CAST(code AS INTEGER) > 5") == "NOT_EQUIVALENT"
    # a DATE column holds text in SQLite, a date and time included: the SMT tier's date order is not SQLite's
    assert _v("SELECT id FROM t WHERE d > '2000-01-01'", "SELECT id FROM t WHERE d >= '2000-01-02'") == "NOT_EQUIVALENT"


def test_sqlite_rejects_is_error_with_sqlites_message() -> None:
    v = verify_pair("SELECT nme FROM t", "SELECT name FROM t", SQLITE_CAT, "sqlite")
    assert v.verdict == "ERROR" and v.error.startswith("SQLite: no such column: nme")


@pytest.mark.parametrize("dialect", ["sqlite", "duckdb"])
def test_limit_ties_give_no_counterexample(dialect: str) -> None:
    # These two differ only in which of several rows tied on age comes first.  Loading the rows
    # in reverse order does not always show it (the first and last rows may agree on the output),
    # so a difference only counts when it survives breaking the ties both ways.
    q1 = "SELECT name FROM t ORDER BY age LIMIT 1"
    for q2 in ("SELECT name FROM t ORDER BY age, id DESC LIMIT 1", "SELECT name FROM t ORDER BY age, name LIMIT 1"):
        v = verify_pair(q1, q2, SQLITE_CAT, dialect, time_budget_s=1.0)
        assert v.verdict == "UNKNOWN", v.counterexample
    # a difference that survives every tie-breaking is still found
    v = verify_pair(q1, "SELECT name FROM t ORDER BY age DESC LIMIT 1", SQLITE_CAT, dialect, time_budget_s=1.0)
    assert v.verdict == "NOT_EQUIVALENT"
    v = verify_pair(q1, "SELECT name FROM t WHERE age = (SELECT min(age) FROM t)", SQLITE_CAT, dialect)
    assert v.verdict == "NOT_EQUIVALENT"


def test_schema_from_a_sqlite_database_file(tmp_path: Path) -> None:
    db = tmp_path / "bird.sqlite"
    con = sqlite3.connect(db)
    con.execute('CREATE TABLE "my t" (id INTEGER PRIMARY KEY, "my col" TEXT)')
    con.commit()
    con.close()
    for schema in (str(db), f"sqlite:///{db}"):
        r = _sluice("verify", "--dialect", "sqlite", "--schema", schema, "--budget", "0.5",
                    "--q1", 'SELECT "my col" FROM "my t"', "--q2", 'SELECT DISTINCT "my col" FROM "my t"')
        assert r.returncode == 1 and 'INSERT INTO "my t" ("id", "my col") VALUES' in r.stdout, r.stdout + r.stderr


def test_keys_named_in_schema_comments_hold_in_counterexamples() -> None:
    # the BIRD schemas of the shared data name keys only in comments: duplicate keys would be
    # counterexamples no real database of the schema can be
    cat = load_schema("-- 4 rows, primary key: (id)\nCREATE TABLE attribute (id integer, name text);\n"
                      "-- 9 rows\nCREATE TABLE hero (hero_id integer, attribute_id integer);", "sqlite")
    assert [t.primary_key for t in cat.tables] == [["id"], []]
    q1 = "SELECT count(h.hero_id) FROM hero h JOIN attribute a ON h.attribute_id = a.id WHERE a.name = 'x'"
    q2 = "SELECT count(DISTINCT h.hero_id) FROM hero h JOIN attribute a ON h.attribute_id = a.id WHERE a.name = 'x'"
    for seed in range(3):
        v = verify_pair(q1, q2, cat, "sqlite", time_budget_s=0.5, seed=seed)
        assert v.verdict == "NOT_EQUIVALENT" and v.counterexample is not None
        con = sqlite3.connect(":memory:")
        con.execute("CREATE TABLE attribute (id integer PRIMARY KEY, name text)")  # the key enforced
        con.execute("CREATE TABLE hero (hero_id integer, attribute_id integer)")
        for stmt in v.counterexample.inserts:
            con.execute(stmt)
        assert con.execute(q1).fetchall() != con.execute(q2).fetchall()
