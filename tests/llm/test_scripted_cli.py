"""``sluice llm ...`` and ``sluice bench tpcds --rewriter lithe|llm-r2`` against the scripted server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sqlsluice.cli import app
from sqlsluice.llm.scripted_server import Reply, ScriptedLLMServer

runner = CliRunner()


@pytest.fixture()
def env(srv: ScriptedLLMServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    state = f"sqlite:///{tmp_path / 'state.sqlite'}"
    monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
    monkeypatch.setenv("SLUICE_LLM_MODEL", "scripted-model")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("SLUICE_CONFIG", raising=False)
    monkeypatch.setenv("SLUICE_STATE", state)
    import sqlsluice.state

    monkeypatch.setattr(sqlsluice.state, "_default", None)  # the default store follows $SLUICE_STATE
    monkeypatch.chdir(tmp_path)
    return state


def test_scripted_cli_llm_check(srv: ScriptedLLMServer, env: str) -> None:
    srv.enqueue(Reply(content="SELECT 1", logprobs=False))
    r = runner.invoke(app, ["llm", "check"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["model"] == "scripted-model" and out["reply"] == "SELECT 1" and out["logprobs"] is False
    assert (out["input_tokens"], out["output_tokens"]) == srv.reported_usage


def test_cli_llm_check_not_configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for v in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "SLUICE_LLM_MODEL", "SLUICE_CONFIG"):
        monkeypatch.delenv(v, raising=False)
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["llm", "check"])
    assert r.exit_code == 2 and r.stderr.startswith("error: no LLM configured")


def test_scripted_cli_bench_tpcds_lithe_reports_tokens(srv: ScriptedLLMServer, env: str, tpcds_tiny: Path) -> None:
    srv.responder = lambda body: "STEP: none\n```sql\nSELECT 1 AS wrong\n```"  # refuted for every query
    r = runner.invoke(app, ["bench", "tpcds", "--db", f"duckdb:///{tpcds_tiny}", "--sf", "0.01", "--queries", "3",
                            "--rewriter", "lithe", "--timeout", "20"])
    assert r.exit_code == 0, r.output
    assert "wrong results 0" in r.stdout and "slower served 0" in r.stdout
    u = runner.invoke(app, ["llm", "usage", "--by", "tag", "--json"])
    rows = json.loads(u.stdout)
    assert len(rows) == 1 and rows[0]["tag"].startswith("q:")
    assert (rows[0]["input_tokens"], rows[0]["output_tokens"]) == srv.reported_usage
    p = runner.invoke(app, ["llm", "prompts"])
    assert "lithe_db_sensitive" in p.stdout and "llm_r2_select" in p.stdout
