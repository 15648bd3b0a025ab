"""``sluice data spider``: Spider's CSV + MySQL DDL -> SQLite/DuckDB/PostgreSQL in BIRD's layout."""

from __future__ import annotations

import csv
import json
import sqlite3
from collections import Counter
from pathlib import Path

import duckdb
import psycopg
import sqlglot
from typer.testing import CliRunner

from sqlsluice.bench.spider import spider_questions
from sqlsluice.cli import app
from tests.bench.conftest import SPIDER_DBS, write_predictions


def test_hardness_levels_match_spiders_published_dev_split(shared_data: Path) -> None:
    qs = spider_questions(shared_data / "spider")
    assert len(qs) == 1034
    # Spider's evaluation reports 248 easy, 446 medium, 174 hard, 166 extra on dev.
    assert Counter(q["hardness"] for q in qs) == {"easy": 248, "medium": 446, "hard": 174, "extra": 166}
    assert Counter(q["difficulty"] for q in qs) == {"simple": 694, "moderate": 174, "challenging": 166}
    assert all(q["evidence"] == "" and q["SQL"] for q in qs)


def test_every_csv_row_lands_in_sqlite_and_duckdb(spider_bird: Path, shared_data: Path) -> None:
    for db in SPIDER_DBS:
        lite = sqlite3.connect(spider_bird / "dev_databases" / db / f"{db}.sqlite")
        duck = duckdb.connect(str(spider_bird / "dev_databases" / db / f"{db}.duckdb"), read_only=True)
        for f in sorted((shared_data / "spider" / "databases" / db / "data").glob("*.csv")):
            with open(f, newline="", encoding="utf-8") as fh:
                n = sum(1 for _ in csv.reader(fh)) - 1
            assert lite.execute(f'SELECT count(*) FROM "{f.stem}"').fetchone() == (n,), f
            assert duck.execute(f'SELECT count(*) FROM "{f.stem}"').fetchone() == (n,), f
        lite.close()
        duck.close()
    questions = json.loads((spider_bird / "dev.json").read_text())
    assert {q["db_id"] for q in questions} == set(SPIDER_DBS)
    assert (spider_bird / "MISSING.txt").read_text().count("wta_1") >= 1  # shared data's notes carried over


def test_unknown_database_is_rejected(tmp_path: Path, shared_data: Path) -> None:
    r = CliRunner().invoke(app, ["data", "spider", "--to", str(tmp_path), "--dbs", "nope_1",
                                 "--source", str(shared_data / "spider")])
    assert r.exit_code == 2 and r.output.startswith("error: unknown Spider database(s): nope_1")


def test_postgres_build_and_postgres_scoring(tmp_path: Path, shared_data: Path, pg_db: str) -> None:
    dbs = "concert_singer,pets_1"
    r = CliRunner().invoke(app, ["data", "spider", "--to", str(tmp_path / "sp"), "--dbs", dbs, "--postgres", pg_db,
                                 "--source", str(shared_data / "spider")])
    assert r.exit_code == 0, r.output
    questions = json.loads((tmp_path / "sp" / "dev.json").read_text())
    # Gold SQL in PostgreSQL's dialect (as BIRD ships mini_dev_postgresql.json); keep the ones it runs.
    kept = []
    with psycopg.connect(pg_db, autocommit=True) as conn:
        for q in questions:
            sql = sqlglot.transpile(q["SQL"], read="sqlite", write="postgres")[0]
            conn.execute(f'SET search_path TO "{q["db_id"]}"')
            try:
                conn.execute(sql).fetchall()
            except psycopg.Error:
                continue
            kept.append(dict(q, SQL=sql))
    assert len(kept) >= 0.7 * len(questions)  # the rest: SQLite-only GROUP BY and text = integer
    (tmp_path / "q.json").write_text(json.dumps(kept))
    sqls = {i: q["SQL"] for i, q in enumerate(kept)}
    sqls[0] = "SELECT 'sluice-wrong'"
    sqls[1] = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
    sqls[2] = "DROP TABLE singer"  # read-only transaction: an error, and the table survives
    preds = write_predictions(tmp_path / "p.json", sqls, kept)
    r = CliRunner().invoke(app, ["bench", "bird", "score", "--data", str(tmp_path / "sp"), "--questions",
                                 str(tmp_path / "q.json"), "-p", str(preds), "--dialect", "postgresql",
                                 "--db-url", pg_db, "--timeout", "1", "--json", str(tmp_path / "s.json")])
    assert r.exit_code == 0, r.output
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["timeouts"] == 1 and s["errors"] == 1
    assert s["ex"]["total"] == round(100 * (len(kept) - 3) / len(kept), 2)
    with psycopg.connect(pg_db) as conn:
        assert conn.execute('SELECT count(*) FROM concert_singer.singer').fetchone()[0] > 0
