"""The recorded BIRD mini-dev predictions: all parse, and each lines up with its question."""

from __future__ import annotations

import json
from pathlib import Path

import sqlglot
from sqlglot import exp

from sqlsluice.bench.evaluate import load_predictions, load_questions


def _tables(sql: str, dialect: str) -> set[str]:
    try:
        tree = sqlglot.parse_one(sql, read=dialect)
    except sqlglot.errors.SqlglotError:
        return set()
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    return {t.name.lower() for t in tree.find_all(exp.Table)} - ctes


def test_every_prediction_file_parses_and_aligns_with_mini_dev(shared_data: Path) -> None:
    files = sorted((shared_data / "bird" / "predictions").glob("mini_dev_*.json"))
    assert len(files) == 12
    gold_by_dialect: dict[str, list[set[str]]] = {}  # six files per dialect share one question file
    for f in files:
        dialect = f.stem.rsplit("_", 1)[1]
        questions = load_questions(shared_data / "bird" / "mini_dev" / f"mini_dev_{dialect}.json")
        preds = load_predictions(f, questions)
        assert sorted(preds) == list(range(len(questions))) == list(range(500)), f.name
        for q in questions:
            p = preds[q.idx]
            assert p.db_id == q.db_id, (f.name, q.idx)
        # The SQL is the text before BIRD's separator, never the separator or the database name.
        assert all("----- bird -----" not in p.sql and p.sql for p in preds.values()), f.name
        # Content alignment (not executed): a parseable prediction reads a table its own question's
        # gold SQL reads far more often than one of the next question's gold SQL.
        read = "postgres" if dialect == "postgresql" else "sqlite"
        if dialect not in gold_by_dialect:
            gold_by_dialect[dialect] = [_tables(q.sql, read) for q in questions]
        gold = gold_by_dialect[dialect]
        parsed = own = shifted = 0
        for q in questions:
            t = _tables(preds[q.idx].sql, read)
            if not t:
                continue
            parsed += 1
            own += bool(t & gold[q.idx])
            shifted += bool(t & gold[(q.idx + 1) % len(questions)])
        assert own >= 0.9 * parsed and own - shifted >= 0.15 * parsed, (f.name, parsed, own, shifted)


def test_gold_files_agree_with_question_files(shared_data: Path) -> None:
    for dialect in ("sqlite", "postgresql"):
        qs = json.loads((shared_data / "bird" / "mini_dev" / f"mini_dev_{dialect}.json").read_text())
        gold = (shared_data / "bird" / "mini_dev" / f"mini_dev_{dialect}_gold.sql").read_text().splitlines()
        assert len(gold) == len(qs) == 500
        assert all(line.rsplit("\t", 1)[1] == q["db_id"] for line, q in zip(gold, qs, strict=True))


def test_check_command_agrees_with_the_independent_count(shared_data: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from sqlsluice.cli import app

    f = shared_data / "bird" / "predictions" / "mini_dev_gpt-4_sqlite.json"
    q = shared_data / "bird" / "mini_dev" / "mini_dev_sqlite.json"
    r = CliRunner().invoke(app, ["bench", "bird", "check", str(f), "--questions", str(q), "--json",
                                 str(tmp_path / "c.json")])
    assert r.exit_code == 0, r.output
    row = json.loads((tmp_path / "c.json").read_text())[0]
    questions = load_questions(q)
    preds = load_predictions(f, questions)
    tables = [_tables(p.sql, "sqlite") for p in (preds[i] for i in range(500))]
    gold = [_tables(x.sql, "sqlite") for x in questions]
    assert row["predictions"] == row["db_id_aligned"] == 500
    assert row["parsed"] == sum(1 for t in tables if t)
    assert row["shares_table_with_own_gold"] == sum(1 for t, g in zip(tables, gold, strict=True) if t & g)
