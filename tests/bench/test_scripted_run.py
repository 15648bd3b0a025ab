"""``sluice bench spider run`` end to end against a scripted OpenAI-compatible server.

The server answers each question with its gold SQL: these tests prove plumbing (generation,
tokens, routing, resume, scoring), never quality.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sqlsluice.cli import app
from sqlsluice.llm.scripted_server import Reply, ScriptedLLMServer


def _config(tmp_path: Path, base_url: str) -> Path:
    cfg = tmp_path / "sluice.toml"
    cfg.write_text(f'[server]\nstate = "{tmp_path / "state.sqlite"}"\n\n[llm]\nbase_url = "{base_url}"\n'
                   f'max_retries = 0\n[llm.models]\ndefault = "scripted-model"\n')
    return cfg


def _responder(questions: list[dict], fail: set[str]) -> Any:
    def reply(body: dict[str, Any]) -> Reply:
        text = json.dumps(body["messages"])
        for q in sorted(questions, key=lambda q: -len(q["question"])):
            if json.dumps(q["question"])[1:-1] in text:
                if q["question"] in fail:
                    return Reply(status=500, error_message="scripted outage")
                return Reply(content=f"```sql\n{q['SQL']}\n```")
        return Reply(content="SELECT 1")
    return reply


def _run(args: list[str]) -> tuple[int, str]:
    r = CliRunner().invoke(app, ["bench", "spider", "run", *args])
    return r.exit_code, r.output


def test_scripted_spider_run_resumes_and_scores(spider_bird: Path, questions: list[dict], tmp_path: Path) -> None:
    qs = [q for q in questions if q["db_id"] == "concert_singer"][:8]
    (tmp_path / "q.json").write_text(json.dumps(qs))
    out = tmp_path / "run"
    with ScriptedLLMServer(responder=_responder(qs, fail={qs[2]["question"]})) as srv:
        cfg = _config(tmp_path, srv.base_url)
        base = ["--data", str(spider_bird), "--questions", str(tmp_path / "q.json"), "--pipeline", "basic",
                "--out", str(out), "--config", str(cfg), "-j", "2"]
        code, output = _run([*base, "--limit", "5"])
        assert code == 0, output
        first = len(srv.requests)
        gens = [json.loads(x) for x in (out / "generations.jsonl").read_text().splitlines()]
        assert len(gens) == 5 and sum(1 for g in gens if g["error"]) == 1  # the outage is recorded
        assert all(g["tokens_in"] > 0 and g["tokens_out"] > 0 for g in gens if not g["error"])
        preds = json.loads((out / "predictions.json").read_text())
        assert sorted(map(int, preds)) == [0, 1, 3, 4]

        srv.responder = _responder(qs, fail=set())
        code, output = _run(base)  # all 8: resumes, retrying only the failed one
        assert code == 0, output
        asked = {q["question"] for q in qs if any(q["question"] in json.dumps(r["messages"])
                                                  for r in srv.requests[first:])}
        assert asked == {qs[i]["question"] for i in (2, 5, 6, 7)}

    score = json.loads((out / "score.json").read_text())
    run = score["run"]
    assert run["generated"] == 8 and run["pipeline"] == "basic" and run["pipelines"] == {"basic": 8}
    ok = [json.loads(x) for x in (out / "generations.jsonl").read_text().splitlines() if not json.loads(x)["error"]]
    assert run["tokens_in"] == sum(g["tokens_in"] for g in ok) and run["tokens"] > 0
    assert score["count"]["total"] == 8 and score["missing_predictions"] == 0
    # scripted replies are the gold SQL, so every prediction must execute to the gold result
    assert score["ex"]["total"] == 100.0, output


def test_scripted_cascade_router_is_reported(spider_bird: Path, questions: list[dict], tmp_path: Path) -> None:
    qs = [q for q in questions if q["db_id"] == "pets_1"][:4]
    (tmp_path / "q.json").write_text(json.dumps(qs))
    # BIRD's layout has SQLite files only: the run makes its own DuckDB copy for generation
    data = tmp_path / "data" / "dev_databases" / "pets_1"
    data.mkdir(parents=True)
    shutil.copy(spider_bird / "dev_databases" / "pets_1" / "pets_1.sqlite", data)
    with ScriptedLLMServer(responder=_responder(qs, fail=set())) as srv:
        code, output = _run(["--data", str(tmp_path / "data"), "--questions", str(tmp_path / "q.json"), "--router",
                             "cascade", "--out", str(tmp_path / "run"), "--config",
                             str(_config(tmp_path, srv.base_url))])
        assert code == 0, output
    run = json.loads((tmp_path / "run" / "score.json").read_text())["run"]
    assert run["router"] == "cascade" and run["system"] == "router:cascade"
    assert sum(run["routes"].values()) == 4 and all(r.startswith("cascade") for r in run["routes"])
    assert "router:cascade" in output
    assert (tmp_path / "run" / "duckdb" / "pets_1.duckdb").is_file()
    assert json.loads((tmp_path / "run" / "score.json").read_text())["ex"]["total"] == 100.0


def test_run_without_llm_is_a_clear_error(spider_bird: Path, questions: list[dict], tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "SLUICE_LLM_MODEL", "SLUICE_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "q.json").write_text(json.dumps(questions[:2]))
    cfg = tmp_path / "sluice.toml"
    cfg.write_text(f'[server]\nstate = "{tmp_path / "state.sqlite"}"\n')
    code, output = _run(["--data", str(spider_bird), "--questions", str(tmp_path / "q.json"), "--pipeline", "basic",
                         "--out", str(tmp_path / "run"), "--config", str(cfg)])
    assert code == 2
    assert output.startswith("error: no LLM configured") and len(output.strip().splitlines()) == 1
