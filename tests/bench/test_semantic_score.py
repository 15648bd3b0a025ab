"""``sluice bench bird|spider score --semantic``: predictions against gold SQL by the verifier, no database."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from typer.testing import CliRunner

from sqlsluice.bench import evaluate as ev
from sqlsluice.bench.semantic import SchemaSource, semantic_score, summarize
from sqlsluice.cli import app

DDL = """
-- 3 rows, primary key: (singer_id)
CREATE TABLE singer (singer_id integer, name text, age integer, country text);
CREATE TABLE concert (concert_id integer PRIMARY KEY, singer_id integer, year integer);
"""

# (difficulty, gold, prediction or None, expected verdict)
CASES = [
    ("simple", "SELECT name FROM singer WHERE age > 30", "SELECT name FROM singer WHERE 30 < age", "EQUIVALENT"),
    ("simple", "SELECT count(*) FROM singer", "SELECT count(*) FROM singer WHERE age > 20", "NOT_EQUIVALENT"),
    ("moderate", "SELECT age / 2 FROM singer", "SELECT age * 0.5 FROM singer", "NOT_EQUIVALENT"),  # integer division
    ("moderate", "SELECT name FROM singer", "SELECT nme FROM singer", "ERROR"),
    ("challenging", "SELECT s.name FROM singer s JOIN concert c ON c.singer_id = s.singer_id",
     "SELECT s.name FROM singer s JOIN concert c ON c.concert_id = s.singer_id", "NOT_EQUIVALENT"),
    ("challenging", "SELECT country FROM singer", None, "ERROR"),
]


def _write(tmp_path: Path) -> tuple[Path, Path, Path]:
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    (schemas / "tiny.sql").write_text(DDL)
    qs = [{"question_id": i, "db_id": "tiny", "question": f"q{i}", "evidence": "", "SQL": gold, "difficulty": lv}
          for i, (lv, gold, _, _) in enumerate(CASES)]
    qpath = tmp_path / "questions.json"
    qpath.write_text(json.dumps(qs))
    preds = {str(i): f"{p}\t----- bird -----\ttiny" for i, (_, _, p, _) in enumerate(CASES) if p is not None}
    ppath = tmp_path / "predictions.json"
    ppath.write_text(json.dumps(preds))
    return schemas, qpath, ppath


def _replays_and_differs(pred: str, gold: str, inserts: list[str]) -> bool:
    con = sqlite3.connect(":memory:")
    con.executescript(DDL)
    for stmt in inserts:
        con.execute(stmt)
    a, b = con.execute(pred).fetchall(), con.execute(gold).fetchall()
    return sorted(map(repr, a)) != sorted(map(repr, b))


def test_semantic_score_verdicts_bounds_and_counterexamples(tmp_path: Path) -> None:
    schemas, qpath, ppath = _write(tmp_path)
    qs = ev.load_questions(qpath)
    results = semantic_score(qs, ev.load_predictions(ppath, qs), SchemaSource(schemas), budget_s=1.0,
                             semantics="set")
    assert [r.verdict for r in results] == [c[3] for c in CASES]
    for r, (_, gold, pred, verdict) in zip(results, CASES, strict=True):
        if verdict == "NOT_EQUIVALENT":
            assert r.counterexample is not None
            assert pred is not None and _replays_and_differs(pred, gold, r.counterexample["inserts"])
    assert results[-1].missing and results[-1].error == "no prediction"
    assert "nme" in results[3].error
    s = summarize(results, ("simple", "moderate", "challenging"))
    assert (s["all"]["proved"], s["all"]["refuted"], s["all"]["undecided"]) == (1, 3, 2)
    assert s["all"]["ex_lower_bound"] == round(100 / 6, 2) and s["all"]["semantic_upper_bound"] == 50.0
    assert s["by_level"]["simple"] == {"total": 2, "proved": 1, "refuted": 1, "undecided": 0,
                                       "verdicts": {"EQUIVALENT": 1, "NOT_EQUIVALENT": 1, "UNKNOWN": 0, "ERROR": 0},
                                       "proved_up_to_ties": 0, "ex_lower_bound": 50.0, "semantic_upper_bound": 50.0,
                                       "decided_share": 100.0, "proved_share": 50.0}
    assert s["by_level"]["challenging"]["refuted"] == 1 and s["by_level"]["challenging"]["undecided"] == 1


def test_semantic_cli_writes_json_without_databases(tmp_path: Path) -> None:
    schemas, qpath, ppath = _write(tmp_path)
    out = tmp_path / "semantic.json"
    r = CliRunner().invoke(app, ["bench", "bird", "score", "--semantic", "--questions", str(qpath),
                                 "--schemas", str(schemas), "-p", str(ppath), "--budget", "1", "--json", str(out)])
    assert r.exit_code == 0, r.output
    assert "| all | 6 | 1 | 3 | 2 (0 / 2) | 16.7% | 50.0% |" in r.output
    d = json.loads(out.read_text())
    assert d["mode"] == "semantic" and d["semantics"] == "set" and d["missing_predictions"] == 1
    assert [q["verdict"] for q in d["per_question"]] == [c[3] for c in CASES]
    assert d["per_question"][1]["counterexample"]["q1_rows"] != d["per_question"][1]["counterexample"]["q2_rows"]


def test_semantic_spider_reads_tables_json(tmp_path: Path) -> None:
    tables = [{"db_id": "tiny", "table_names_original": ["singer", "concert"],
               "column_names_original": [[-1, "*"], [0, "singer_id"], [0, "name"], [0, "age"], [0, "country"],
                                         [1, "concert_id"], [1, "singer_id"], [1, "year"]],
               "column_types": ["text", "number", "text", "number", "text", "number", "number", "number"],
               "primary_keys": [1, 5], "foreign_keys": [[6, 1]]}]
    tpath = tmp_path / "tables.json"
    tpath.write_text(json.dumps(tables))
    _, qpath, ppath = _write(tmp_path)
    out = tmp_path / "spider.json"
    r = CliRunner().invoke(app, ["bench", "spider", "score", "--semantic", "--questions", str(qpath),
                                 "--schemas", str(tpath), "-p", str(ppath), "--limit", "3", "--json", str(out)])
    assert r.exit_code == 0, r.output
    d = json.loads(out.read_text())
    assert d["semantics"] == "bag" and d["all"]["total"] == 3
    assert [q["verdict"] for q in d["per_question"]] == [c[3] for c in CASES[:3]]


def test_score_without_data_or_semantic_is_an_error(tmp_path: Path) -> None:
    _, qpath, ppath = _write(tmp_path)
    r = CliRunner().invoke(app, ["bench", "bird", "score", "-p", str(ppath), "--questions", str(qpath)])
    assert r.exit_code != 0 and "--semantic" in r.output


def test_semantic_reads_schemas_from_birds_layout(tmp_path: Path) -> None:
    """``--data DIR`` alone: dev.json and the SQLite files' own DDL (the rows are never read)."""
    _, qpath, ppath = _write(tmp_path)
    data = tmp_path / "bird"
    (data / "dev_databases" / "tiny").mkdir(parents=True)
    con = sqlite3.connect(data / "dev_databases" / "tiny" / "tiny.sqlite")
    con.executescript(DDL)
    con.close()
    (data / "dev.json").write_text(qpath.read_text())
    out = tmp_path / "layout.json"
    r = CliRunner().invoke(app, ["bench", "bird", "score", "--semantic", "--data", str(data), "-p", str(ppath),
                                 "--json", str(out)])
    assert r.exit_code == 0, r.output
    assert [q["verdict"] for q in json.loads(out.read_text())["per_question"]] == [c[3] for c in CASES]


def test_data_constraints_from_ddl_comments_decide_what_the_data_allows(tmp_path: Path) -> None:
    """``Stats: 0% null``: ``WHERE name IS NOT NULL`` changes nothing on that database (proved); without the
    fact a NULL name refutes the pair."""
    schemas = tmp_path / "annotated"
    schemas.mkdir()
    (schemas / "tiny.sql").write_text(
        "CREATE TABLE country (code text, name text);\n"
        "CREATE TABLE singer (\n-- Stats: 0% null 100% unique\nsinger_id integer,\n"
        "-- Stats: 0% null 80% unique\nname text,\n-- Stats: 0% null 10% unique\n"
        "-- Foreign keys: country.code (many-to-one)\ncountry text\n);\n")
    qpath = tmp_path / "q.json"
    qpath.write_text(json.dumps([{"question_id": 0, "db_id": "tiny", "SQL": "SELECT name FROM singer",
                                  "difficulty": "simple"}]))
    ppath = tmp_path / "p.json"
    ppath.write_text(json.dumps({"0": "SELECT name FROM singer WHERE name IS NOT NULL\t----- bird -----\ttiny"}))
    qs = ev.load_questions(qpath)
    with_facts = SchemaSource(schemas)
    r = semantic_score(qs, ev.load_predictions(ppath, qs), with_facts, budget_s=1.0)
    assert r[0].verdict == "EQUIVALENT"
    assert with_facts.applied == {"tiny": {"not_null": 3, "unique": 1, "foreign_keys": 1}}
    singer = with_facts.catalog("tiny").table("singer")
    assert singer is not None and singer.foreign_keys[0].ref_table == "country"
    r = semantic_score(qs, ev.load_predictions(ppath, qs), SchemaSource(schemas, data_constraints=False),
                       budget_s=1.0)
    assert r[0].verdict == "NOT_EQUIVALENT" and r[0].counterexample is not None
