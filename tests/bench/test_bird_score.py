"""``sluice bench bird|spider score`` on Spider dev databases built here in BIRD's layout."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sqlsluice.bench.metrics import rves_score
from sqlsluice.cli import app
from tests.bench.conftest import write_predictions

LOOP = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"


def _score(args: list[str]) -> tuple[int, str]:
    r = CliRunner().invoke(app, ["bench", *args])
    return r.exit_code, r.output


def _gold(questions: list[dict]) -> dict[int, str]:
    return {i: q["SQL"] for i, q in enumerate(questions)}


def test_gold_as_predictions_scores_100(spider_bird: Path, questions: list[dict], tmp_path: Path) -> None:
    preds = write_predictions(tmp_path / "gold.json", _gold(questions), questions)
    for bench in ("bird", "spider"):
        code, out = _score([bench, "score", "--data", str(spider_bird), "-p", str(preds),
                            "--metrics", "ex,f1", "--json", str(tmp_path / f"{bench}.json")])
        assert code == 0, out
        s = json.loads((tmp_path / f"{bench}.json").read_text())
        assert s["ex"]["total"] == 100.0 and s["f1"]["total"] == 100.0
        assert s["count"]["total"] == len(questions) == 183
        assert all(v == 100.0 for v in s["ex"].values() if v is not None)
        assert s["errors"] == s["timeouts"] == s["missing_predictions"] == 0
    assert set(s["ex"]) == {"easy", "medium", "hard", "extra", "total"}  # Spider's levels


def _nonempty_gold(spider_bird: Path, questions: list[dict]) -> list[int]:
    out = []
    for i, q in enumerate(questions):
        path = spider_bird / "dev_databases" / q["db_id"] / f"{q['db_id']}.sqlite"
        with sqlite3.connect(path) as c:
            rows = c.execute(q["SQL"]).fetchall()
        if rows and rows != [("sluice-wrong",)]:
            out.append(i)
    return out


def test_known_wrong_predictions_lower_ex_by_exactly_their_count(spider_bird: Path, questions: list[dict],
                                                                tmp_path: Path) -> None:
    sqls = _gold(questions)
    wrong = _nonempty_gold(spider_bird, questions)[::9]  # every 9th question with a non-empty answer
    for i in wrong:
        sqls[i] = "SELECT 'sluice-wrong'"
    preds = write_predictions(tmp_path / "p.json", sqls, questions)
    code, out = _score(["bird", "score", "--data", str(spider_bird), "-p", str(preds), "--json",
                        str(tmp_path / "s.json")])
    assert code == 0, out
    s = json.loads((tmp_path / "s.json").read_text())
    n = len(questions)
    assert len(wrong) >= 15
    assert s["ex"]["total"] == round(100 * (n - len(wrong)) / n, 2)
    wrong_flags = [q["idx"] for q in s["per_question"] if not q["ex"]]
    assert wrong_flags == wrong
    for level in ("simple", "moderate", "challenging"):
        idx = [i for i, q in enumerate(questions) if q["difficulty"] == level]
        right = sum(1 for i in idx if i not in wrong)
        assert s["ex"][level] == round(100 * right / len(idx), 2)


def test_looping_prediction_is_cut_and_syntax_error_is_wrong(spider_bird: Path, questions: list[dict],
                                                            tmp_path: Path) -> None:
    sqls = _gold(questions)
    sqls[0] = LOOP
    sqls[1] = "SELEC name FROM singer WHERE"
    sqls[2] = "SELECT no_such_column FROM singer"
    del sqls[3]  # no prediction at all
    preds = write_predictions(tmp_path / "p.json", sqls, questions)
    code, out = _score(["bird", "score", "--data", str(spider_bird), "-p", str(preds), "--timeout", "1",
                        "--json", str(tmp_path / "s.json")])
    assert code == 0, out
    s = json.loads((tmp_path / "s.json").read_text())
    per = s["per_question"]
    assert per[0]["timeout"] and per[0]["ex"] == 0 and per[0]["seconds"] < 30
    assert not per[1]["timeout"] and per[1]["ex"] == 0 and "syntax error" in per[1]["error"]
    assert per[2]["ex"] == 0 and "no such column" in per[2]["error"]
    assert per[3]["missing"] and per[3]["ex"] == 0
    assert (s["timeouts"], s["errors"], s["missing_predictions"]) == (1, 2, 1)
    assert s["ex"]["total"] == round(100 * (len(questions) - 4) / len(questions), 2)


def test_missing_database_is_a_clear_one_line_error(spider_bird: Path, questions: list[dict],
                                                    tmp_path: Path) -> None:
    qs = [dict(questions[0], db_id="no_such_db")]
    (tmp_path / "q.json").write_text(json.dumps(qs))
    preds = write_predictions(tmp_path / "p.json", {0: "SELECT 1"}, qs)
    code, out = _score(["bird", "score", "--data", str(spider_bird), "-p", str(preds),
                        "--questions", str(tmp_path / "q.json")])
    assert code == 2
    assert out.strip().splitlines() == [out.strip()]
    assert out.startswith("error: database 'no_such_db' not found")


def _official_ex(spider_bird: Path, questions: list[dict], preds: dict[int, str]) -> list[float]:
    """BIRD's EX from its definition, independently: set(fetchall(pred)) == set(fetchall(gold)),
    any exception counts 0; then the mean per difficulty and in total, times 100."""
    res = []
    for i, q in enumerate(questions):
        conn = sqlite3.connect(spider_bird / "dev_databases" / q["db_id"] / f"{q['db_id']}.sqlite")
        try:
            cur = conn.cursor()
            cur.execute(preds[i])
            p = cur.fetchall()
            cur.execute(q["SQL"])
            g = cur.fetchall()
            res.append(1 if set(p) == set(g) else 0)
        except Exception:  # the official script scores any exception 0
            res.append(0)
        finally:
            conn.close()
    out = []
    for level in ("simple", "moderate", "challenging"):
        vals = [r for r, q in zip(res, questions, strict=True) if q["difficulty"] == level]
        out.append(sum(vals) / len(vals) * 100)
    out.append(sum(res) / len(res) * 100)
    return out


def test_ex_equals_the_official_algorithm(spider_bird: Path, questions: list[dict], tmp_path: Path) -> None:
    # Plausible mistakes: dropped DISTINCT, changed limits, swapped order, literal typos, errors.
    sqls = {}
    for i, q in enumerate(questions):
        g = q["SQL"].rstrip(";")
        variants = [g, g.replace("DISTINCT", "", 1), g + " LIMIT 1" if "LIMIT" not in g.upper() else g,
                    g.replace(" DESC", " ASC"), g.replace(">", ">="), g.replace("count(*)", "count(*) + 1"),
                    g.replace("FROM", "FROM FROM", 1)]
        sqls[i] = variants[i % len(variants)]
    preds = write_predictions(tmp_path / "p.json", sqls, questions)
    code, out = _score(["bird", "score", "--data", str(spider_bird), "-p", str(preds), "--json",
                        str(tmp_path / "s.json"), "-j", "3"])
    assert code == 0, out
    s = json.loads((tmp_path / "s.json").read_text())
    official = _official_ex(spider_bird, questions, sqls)
    ours = [s["ex"][k] for k in ("simple", "moderate", "challenging", "total")]
    assert ours == [round(v, 2) for v in official]
    assert 0 < s["ex"]["total"] < 100


def test_ves_and_rves_are_reported_per_level(spider_bird: Path, questions: list[dict], tmp_path: Path) -> None:
    sqls = _gold(questions)
    sqls[0] = "SELECT 'sluice-wrong'"
    preds = write_predictions(tmp_path / "p.json", {i: sqls[i] for i in range(12)}, questions)
    (tmp_path / "q.json").write_text(json.dumps(questions[:12]))
    code, out = _score(["bird", "score", "--data", str(spider_bird), "-p", str(preds), "--questions",
                        str(tmp_path / "q.json"), "--metrics", "all", "--ves-repeats", "5", "--json",
                        str(tmp_path / "s.json")])
    assert code == 0, out
    s = json.loads((tmp_path / "s.json").read_text())
    per = s["per_question"]
    assert per[0]["ves"] == per[0]["rves"] == 0
    # each correct question's R-VES is its time ratio's reward bucket (which bucket a gold-vs-gold
    # ratio lands in is the machine's timing: on a loaded one any of them)
    buckets = [100 * r ** 0.5 for r in (0.25, 0.5, 0.75, 1.0, 1.25)]
    for q in per[1:]:
        assert q["time_ratio"] > 0 and any(abs(q["rves"] - b) < 0.01 for b in buckets), q
        assert q["rves"] == pytest.approx(rves_score(q["time_ratio"]), abs=0.01), q
    assert s["ves"]["total"] == round(sum(q["ves"] for q in per) / 12, 2)
    assert "VES" in out and "R-VES" in out and "Soft-F1" in out


def test_jsonl_predictions_by_question_id(spider_bird: Path, questions: list[dict], tmp_path: Path) -> None:
    lines = [json.dumps({"question_id": q["question_id"], "sql": q["SQL"]}) for q in reversed(questions)]
    (tmp_path / "p.jsonl").write_text("\n".join(lines))
    code, out = _score(["spider", "score", "--data", str(spider_bird), "-p", str(tmp_path / "p.jsonl"),
                        "--json", str(tmp_path / "s.json")])
    assert code == 0, out
    assert json.loads((tmp_path / "s.json").read_text())["ex"]["total"] == 100.0


def test_questions_file_is_chosen_by_prediction_count(spider_bird: Path, questions: list[dict],
                                                      tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "dev_databases").symlink_to(spider_bird / "dev_databases")
    (data / "dev.json").write_text(json.dumps(questions))
    (data / "mini_dev_sqlite.json").write_text(json.dumps(questions[:50]))
    for n in (50, len(questions)):
        preds = write_predictions(tmp_path / f"p{n}.json", {i: q["SQL"] for i, q in enumerate(questions[:n])},
                                  questions)
        code, out = _score(["bird", "score", "--data", str(data), "-p", str(preds), "--json",
                            str(tmp_path / "s.json")])
        assert code == 0, out
        s = json.loads((tmp_path / "s.json").read_text())
        assert s["count"]["total"] == n and s["ex"]["total"] == 100.0
