"""``sluice bench agree``: the agreement router evaluated offline on made-up predictions of three models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sqlsluice.bench import agree as ag
from sqlsluice.bench import evaluate as ev
from sqlsluice.bench.semantic import SchemaSource
from sqlsluice.cli import app
from sqlsluice.errors import InvalidParameterValue

DDL = "CREATE TABLE singer (singer_id integer PRIMARY KEY, name text, age integer, country text);"

# gold, then the predictions of cheap-a, cheap-b and dear
QUESTIONS = [
    ("SELECT name FROM singer WHERE age > 30",
     "SELECT name FROM singer WHERE 30 < age", "SELECT name FROM singer WHERE age > 30",
     "SELECT name FROM singer WHERE age > 30"),
    ("SELECT count(*) FROM singer",
     "SELECT count(*) FROM singer WHERE age > 20", "SELECT count(*) FROM singer WHERE age > 30",
     "SELECT COUNT(*) FROM singer"),
    ("SELECT name FROM singer",
     "SELECT nme FROM singer", "SELECT name FROM singer", "SELECT name FROM singer"),
    ("SELECT age / 2 FROM singer",
     "SELECT age / 2 FROM singer", "SELECT age * 0.5 FROM singer", "SELECT age / 2 FROM singer"),
]
MODELS = ("cheap-a", "cheap-b", "dear")
PRICES = {"cheap-a": (0.1, 0.1), "cheap-b": (0.2, 0.2), "dear": (10.0, 10.0)}


@pytest.fixture()
def data(tmp_path: Path) -> tuple[Path, Path, Path]:
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    (schemas / "tiny.sql").write_text(DDL)
    qpath = tmp_path / "questions.json"
    qpath.write_text(json.dumps([{"question_id": i, "db_id": "tiny", "question": f"question {i}", "evidence": "",
                                  "SQL": q[0], "difficulty": "simple"} for i, q in enumerate(QUESTIONS)]))
    preds = tmp_path / "predictions"
    preds.mkdir()
    for k, m in enumerate(MODELS, 1):
        (preds / f"mini_dev_{m}_sqlite.json").write_text(json.dumps(
            {str(i): f"{q[k]}\t----- bird -----\ttiny" for i, q in enumerate(QUESTIONS)}))
    return schemas, qpath, preds


def _evaluate(data: tuple[Path, Path, Path]) -> dict:
    schemas, qpath, preds = data
    qs = ev.load_questions(qpath)
    return ag.evaluate(qs, ag.load_models(preds, qs), SchemaSource(schemas), budget_s=1.0, prices=PRICES)


def test_matrix_gold_and_two_cheapest(data) -> None:
    rep = _evaluate(data)
    assert rep["models"] == list(MODELS) and rep["order_by_cost"] == list(MODELS)
    v = [r["verdicts"] for r in rep["per_question"]]
    assert [x["cheap-a|cheap-b"] for x in v] == ["EQ", "NE", "ER", "NE"]
    assert [x["cheap-a|gold"] for x in v] == ["EQ", "NE", "ER", "EQ"]
    assert [x["dear|gold"] for x in v] == ["EQ", "EQ", "EQ", "EQ"]
    assert rep["matrix"]["cheap-a"]["cheap-b"] == {"proved": 25.0, "refuted": 50.0, "undecided": 25.0}
    assert rep["matrix"]["cheap-b"]["cheap-a"] == rep["matrix"]["cheap-a"]["cheap-b"]
    assert rep["gold"]["cheap-a"] == {"proved": 50.0, "refuted": 25.0, "undecided": 25.0}
    assert rep["gold"]["dear"]["proved"] == 100.0
    two = rep["two_cheapest"]["proved"]
    assert (two["cheap"], two["partner"], two["coverage"], two["accepted_proved_gold"]) == ("cheap-a", "cheap-b",
                                                                                            25.0, 100.0)


def test_simulated_cascade_stops_costs_and_answers(data) -> None:
    rep = _evaluate(data)
    c = rep["cascade"]["proved"]
    # q0: a and b agree; q1: nobody agrees, dear's answer taken; q2: b and dear agree; q3: a and dear agree
    assert c["stopped_at"] == {"cheap-b": 25.0, "dear": 75.0}
    assert c["answered_by"] == {"cheap-a": 50.0, "cheap-b": 25.0, "dear": 25.0}
    assert c["proved_gold"] == 100.0 and c["refuted_by_gold"] == 0.0 and c["coverage_two_cheapest"] == 25.0
    costs = [r["cost_usd"] for r in rep["per_question"]]
    asked = [("cheap-a", "cheap-b")] + [MODELS] * 3
    expected = sum(sum(cq[m] for m in a) for cq, a in zip(costs, asked, strict=True)) / 4 * 1000
    assert c["cost_usd_per_1k_questions"] == pytest.approx(expected, rel=1e-3)
    assert rep["cost_usd_per_1k_questions"]["cheap-a"] < c["cost_usd_per_1k_questions"] \
        < rep["cost_usd_per_1k_questions"]["dear"] + rep["cost_usd_per_1k_questions"]["cheap-b"] * 2
    assert rep["prices_usd_per_1m_tokens"]["dear"] == [10.0, 10.0]


def test_cli_writes_json_and_table(data, tmp_path: Path) -> None:
    schemas, qpath, preds = data
    out = tmp_path / "agree.json"
    r = CliRunner().invoke(app, ["bench", "agree", "--predictions", str(preds), "--schemas", str(schemas),
                                 "--questions", str(qpath), "--limit", "2", "--budget", "0.5", "--json", str(out),
                                 "--price", "cheap-a=0.1:0.1", "--price", "cheap-b=0.2:0.2", "--price", "dear=10:10"])
    assert r.exit_code == 0, r.output
    assert "| cheap-a | - | 50 / 50 / 0 | " in r.output
    d = json.loads(out.read_text())
    assert d["questions"] == 2 and d["cascade"]["proved"]["stopped_at"] == {"cheap-b": 50.0, "dear": 50.0}


def test_unknown_model_price_and_bad_price_are_errors(data) -> None:
    schemas, qpath, preds = data
    qs = ev.load_questions(qpath)
    with pytest.raises(InvalidParameterValue, match="no price for model 'cheap-a'"):
        ag.evaluate(qs, ag.load_models(preds, qs), SchemaSource(schemas))
    with pytest.raises(InvalidParameterValue, match="NAME=IN:OUT"):
        ag.parse_prices(["dear=ten"])
    with pytest.raises(InvalidParameterValue, match="at least two"):
        ag.load_models(preds, qs, only=["dear"])
