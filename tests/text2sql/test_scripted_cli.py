"""``sluice ask`` on a real Spider database with a scripted endpoint."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from sqlsluice.cli.app import app


def _config(tmp_path: Path, base_url: str) -> Path:
    p = tmp_path / "sluice.toml"
    p.write_text(f'[server]\nstate = "{tmp_path / "cli_state.sqlite"}"\n'
                 f'[llm]\nbase_url = "{base_url}"\nmax_retries = 0\n[llm.models]\ndefault = "scripted-model"\n')
    return p


def test_scripted_cli_ask_json_and_explain(concert_db, scripted, tmp_path: Path) -> None:
    import sqlsluice.cli  # noqa: F401  (registers the feature commands)

    s = scripted(lambda tpl, q, body: "SELECT Name FROM singer WHERE Age > 40 ORDER BY Name")
    cfg = _config(tmp_path, s.server.base_url)
    url = f"duckdb:///{concert_db.path}"
    concert_db.close()
    r = CliRunner().invoke(app, ["ask", "--db", url, "Which singers are older than 40?", "--json",
                                 "--config", str(cfg), "--router", "always:basic"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["rows"] == [["Joe Sharp"], ["John Nizinik"], ["Rose White"]] and out["pipeline"] == "basic"
    r = CliRunner().invoke(app, ["ask", "--db", url, "Which singers are older than 40?", "--explain",
                                 "--config", str(cfg), "--pipeline", "basic"])
    assert r.exit_code == 0 and "route: pipeline:basic" in r.stdout


def test_scripted_cli_ask_refusal_is_one_line_exit_2(concert_db, scripted, tmp_path: Path) -> None:
    import sqlsluice.cli  # noqa: F401

    s = scripted(lambda tpl, q, body: "DELETE FROM singer")
    cfg = _config(tmp_path, s.server.base_url)
    url = f"duckdb:///{concert_db.path}"
    concert_db.close()
    r = CliRunner().invoke(app, ["ask", "--db", url, "Remove everyone", "--config", str(cfg),
                                 "--router", "always:basic"])
    assert r.exit_code == 2
    assert r.stderr.strip().startswith("error: generated SQL refused: DELETE")


def test_cli_ask_help_has_an_example() -> None:
    import sqlsluice.cli  # noqa: F401

    r = CliRunner().invoke(app, ["ask", "--help"])
    assert r.exit_code == 0 and "Example: sluice ask" in r.stdout
