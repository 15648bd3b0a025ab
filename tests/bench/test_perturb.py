"""``sluice bench spider perturb``: model-like errors in Spider's gold SQL, labelled by execution on
the real Spider SQLite databases (built from ../shared/data/spider), verified, refutations replayed
in sqlite3."""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
from pathlib import Path

from sqlsluice.bench.perturb import KINDS, make_pairs, perturb, replays, run_study, same_on
from sqlsluice.verifiers import load_schema

SLUICE = str(Path(sys.executable).with_name("sluice"))


def _catalogs(data: Path):  # type: ignore[no-untyped-def]
    cache = {}

    def get(db: str):  # type: ignore[no-untyped-def]
        if db not in cache:
            cache[db] = load_schema(data / "dev_databases" / db / f"{db}.sqlite", "sqlite")
        return cache[db]

    return get


def test_every_kind_applies_to_spider_gold_sql_and_sqlite_runs_the_result(spider_bird: Path) -> None:
    questions = json.loads((spider_bird / "dev.json").read_text())
    pairs = make_pairs(questions, _catalogs(spider_bird), per_kind=15, seed=3)
    assert {p.kind for p in pairs} == set(KINDS)
    ran = 0
    for p in pairs:
        con = sqlite3.connect(spider_bird / "dev_databases" / p.db_id / f"{p.db_id}.sqlite")
        assert p.pred != p.gold
        try:
            con.execute(p.pred).fetchall()
            ran += 1
        except sqlite3.Error:
            pass
        con.close()
    assert ran >= 0.9 * len(pairs), (ran, len(pairs))


def test_perturbations_on_known_queries() -> None:
    cat = load_schema("CREATE TABLE p (id INTEGER PRIMARY KEY, owner_id INTEGER, name TEXT, age INTEGER);"
                      "CREATE TABLE o (id INTEGER PRIMARY KEY, pet_id INTEGER, city TEXT);", "sqlite")
    rng = random.Random(0)
    got = perturb("SELECT o.city FROM p JOIN o ON p.owner_id = o.id", "join_key", cat, rng)
    assert got == "SELECT o.city FROM p JOIN o ON p.owner_id = o.pet_id"
    assert perturb("SELECT DISTINCT name FROM p", "distinct", cat) == "SELECT name FROM p"
    assert perturb("SELECT count(DISTINCT name) FROM p", "distinct", cat) == "SELECT COUNT(name) FROM p"
    assert perturb("SELECT max(age) FROM p", "aggregate", cat) == "SELECT MIN(age) FROM p"
    assert perturb("SELECT name FROM p WHERE age > 3", "condition", cat) == "SELECT name FROM p"
    assert perturb("SELECT name FROM p WHERE age = (SELECT min(age) FROM p)", "limit_ties", cat) == \
        "SELECT name FROM p ORDER BY age LIMIT 1"
    assert perturb("SELECT name FROM p WHERE name = '12'", "type_mixing", cat) == "SELECT name FROM p WHERE name = 12"
    assert perturb("SELECT name FROM p", "order_direction", cat) is None


def test_labels_break_ties_both_ways_and_counterexamples_replay() -> None:
    con = sqlite3.connect(":memory:")
    ddl = ["CREATE TABLE p (id INTEGER PRIMARY KEY, name TEXT, age INTEGER)"]
    con.execute(ddl[0])
    con.execute("INSERT INTO p VALUES (1, 'a', 5), (2, 'b', 5), (3, 'c', 1)")
    top = "SELECT name FROM p ORDER BY age DESC LIMIT 1"
    assert same_on(con, top, "SELECT name FROM p ORDER BY age DESC, name DESC LIMIT 1")  # a tie: either row
    assert not same_on(con, top, "SELECT name FROM p WHERE age = (SELECT max(age) FROM p)")  # both tied rows
    assert not same_on(con, "SELECT name FROM p ORDER BY age, id", "SELECT name FROM p ORDER BY age DESC, id")
    assert same_on(con, "SELECT name FROM p", "SELECT name FROM p ORDER BY name DESC")  # gold unsorted: a bag
    inserts = ["INSERT INTO p VALUES (1, 'a', 5), (2, 'b', 5)"]
    assert replays(ddl, inserts, top, "SELECT name FROM p WHERE age = (SELECT max(age) FROM p)")
    assert not replays(ddl, inserts, top, "SELECT name FROM p ORDER BY age DESC, name LIMIT 1")


def test_study_has_no_wrong_equivalent_and_its_refutations_replay(spider_bird: Path) -> None:
    rep = run_study(spider_bird, per_kind=4, budget_s=0.5, seed=1)
    a = rep["all"]
    assert a["pairs"] == len(rep["pairs"]) >= 20
    assert a["wrong_equivalent"] == 0
    assert a["same"] + a["different"] + a["label_errors"] == a["pairs"]
    for p in rep["pairs"]:
        if p["verdict"] == "NOT_EQUIVALENT" and p["label"] == "different":
            assert p["counterexample"]["inserts"] is not None and p["replays"] is not None
        if p["verdict"] == "EQUIVALENT":
            assert p["label"] == "same", p
    assert a["refuted_replaying"] == sum(1 for p in rep["pairs"] if p["label"] == "different"
                                         and p["verdict"] == "NOT_EQUIVALENT" and p["replays"])
    assert set(rep["by_kind"]) == set(KINDS)


def test_perturb_command_writes_json(spider_bird: Path, tmp_path: Path) -> None:
    out = tmp_path / "perturb.json"
    r = subprocess.run([SLUICE, "bench", "spider", "perturb", "--data", str(spider_bird), "--per-kind", "2",
                        "--kinds", "order_direction,condition", "--budget", "0.5", "--json", str(out)],
                       capture_output=True, text=True, timeout=600, check=False,
                       env={**os.environ, "COLUMNS": "200"})
    assert r.returncode == 0, r.stderr
    rep = json.loads(out.read_text())
    assert set(rep["by_kind"]) == {"order_direction", "condition"} and rep["all"]["pairs"] == 4
    assert "wrong EQUIVALENT 0" in r.stdout and "| order_direction |" in r.stdout
    r = subprocess.run([SLUICE, "bench", "spider", "perturb", "--kinds", "nope"], capture_output=True, text=True,
                       timeout=120, check=False)
    assert r.returncode != 0 and "unknown kind" in (r.stdout + r.stderr)
