"""``sluice rewrites list|show|approve|reject|forget`` on a state store file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sqlsluice.cli import app
from sqlsluice.cli.rewrites import open_store
from sqlsluice.rewriters.online import Entry, RewriteStore
from sqlsluice.state import NamespacedState, StateStore

runner = CliRunner()

FP1 = "a1" + "0" * 30
FP2 = "a2" + "0" * 30
FP3 = "b3" + "0" * 30  # searched, no rewrite found
PROOF = {"status": "PROVED", "by": "rule composition", "method": "", "verdict": "EQUIVALENT",
         "steps": [{"rule": "scalar_subquery_to_join", "method": "rule template", "verdict": "EQUIVALENT"}],
         "reason": ""}


def _fill(store: RewriteStore) -> None:
    store.put(Entry(FP1, "SELECT a FROM t WHERE b > (SELECT avg(c) FROM u WHERE u.k = t.k)",
                    "SELECT a FROM t JOIN (SELECT k, avg(c) AS m FROM u GROUP BY k) AS s ON s.k = t.k WHERE b > s.m",
                    ["scalar_subquery_to_join"], "EQUIVALENT", 3.5, 0.2, "v1", 1.0))
    store.put_proof(FP1, PROOF)
    store.set_status(FP1, "pending", "search")
    store.put(Entry(FP2, "SELECT 1", "SELECT 1", ["constant_fold"], "EQUIVALENT", 1.5, 0.01, "v1", 2.0))
    store.put(Entry(FP3, "SELECT 2", "", [], "NONE", None, 0.01, "v1", 3.0))


@pytest.fixture()
def state(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'state.sqlite'}"
    _fill(RewriteStore(StateStore(url)))
    return url


def _run(*args: str) -> tuple[int, str, str]:
    r = runner.invoke(app, ["rewrites", *args])
    return r.exit_code, r.stdout, r.stderr


def test_list_text_and_json(state: str) -> None:
    code, out, _ = _run("list", "--state", state)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["fingerprint", "status", "proof", "speedup", "rules"]
    assert lines[1].split() == [FP1, "pending", "PROVED", "3.50x", "scalar_subquery_to_join"]
    assert lines[2].split() == [FP2, "served", "-", "1.50x", "constant_fold"]
    assert len(lines) == 3  # the shape with no rewrite only with --all
    code, out, _ = _run("list", "--state", state, "--json", "--all")
    rows = json.loads(out)
    assert [(r["fingerprint"], r["status"]) for r in rows] == [(FP1, "pending"), (FP2, "served"), (FP3, "none")]
    assert rows[0]["decided_by"] == "search" and rows[0]["proof"] == "PROVED"


def test_show_prints_templates_rules_proof_speedup(state: str) -> None:
    code, out, _ = _run("show", "a1", "--state", state)  # a unique prefix
    assert code == 0, out
    assert f"fingerprint:   {FP1}" in out and "status:        pending (by search)" in out
    assert "speedup:       3.5x" in out and "time_original: 200 ms" in out
    assert "rules:         scalar_subquery_to_join" in out
    assert "  SELECT a FROM t WHERE b > (SELECT avg(c) FROM u WHERE u.k = t.k)" in out
    assert "  SELECT a FROM t JOIN (SELECT k, avg(c) AS m FROM u GROUP BY k)" in out
    assert "proof:         PROVED by rule composition" in out
    assert "  1. scalar_subquery_to_join: method=rule template, verdict=EQUIVALENT" in out
    code, out, _ = _run("show", FP1, "--state", state, "--json")
    d = json.loads(out)
    assert d["certificate"] == PROOF and d["rewritten"].startswith("SELECT a FROM t JOIN")


def test_approve_reject_forget(state: str) -> None:
    store = RewriteStore(StateStore(state))
    code, out, _ = _run("approve", FP1, "--state", state, "--by", "dba")
    assert (code, out) == (0, f"{FP1}: approved\n")
    assert store.status(FP1)[:2] == ("approved", "dba")  # type: ignore[index]
    assert store.blocked(FP1) is None
    code, out, _ = _run("reject", FP2, "--state", state, "--by", "dba")
    assert (code, out) == (0, f"{FP2}: rejected\n")
    assert store.blocked(FP2) == "rejected by dba"
    code, out, _ = _run("forget", FP2, "--state", state)
    assert (code, out) == (0, f"{FP2}: forgotten\n")
    assert store.get(FP2) is None and store.status(FP2) is None and store.proof(FP2) is None


@pytest.mark.parametrize("args", [("show", "ffff"), ("approve", "ffff"), ("reject", "zz"), ("forget", "0")])
def test_unknown_fingerprint_is_one_line_and_exit_2(state: str, args: tuple[str, str]) -> None:
    code, out, err = _run(*args, "--state", state)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith(f"error: no stored rewrite with fingerprint '{args[1]}'"), err


def test_ambiguous_prefix_and_nothing_to_review(state: str) -> None:
    code, _, err = _run("approve", "a", "--state", state)
    assert code == 2 and "ambiguous" in err and err.count("\n") == 1
    code, _, err = _run("approve", FP3, "--state", state)
    assert code == 2 and "no rewrite was found" in err


def test_state_from_env_then_config(tmp_path: Path, state: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SLUICE_STATE", state)
    assert FP1 in _run("list")[1]
    monkeypatch.delenv("SLUICE_STATE")
    other = tmp_path / "other.sqlite"
    (tmp_path / "sluice.toml").write_text(f'[server]\nstate = "{other}"\n')
    assert _run("list")[1].endswith("(no stored rewrites)\n")  # server.state, a plain path
    assert open_store().state.url == f"sqlite:///{other}"


def test_database_namespace(tmp_path: Path) -> None:
    from sqlsluice.middleware.server import rewrite_namespace

    url = f"sqlite:///{tmp_path / 's.sqlite'}"
    db = "postgresql://app@db:5432/sales"
    _fill(RewriteStore(NamespacedState(StateStore(url), rewrite_namespace(db))))
    assert "(no stored rewrites)" in _run("list", "--state", url)[1]
    code, out, _ = _run("approve", FP1, "--state", url, "--database", db)
    assert code == 0 and "approved" in out
    assert f"{FP1}  approved" in _run("list", "--state", url, "--database", db)[1]


def test_on_a_postgresql_state_store(pg_db: str) -> None:
    """Shared state in PostgreSQL (schema ``sluice``): the same commands, the same answers."""
    _fill(RewriteStore(StateStore(pg_db)))
    code, out, _ = _run("list", "--state", pg_db)
    assert code == 0 and out.splitlines()[1].split()[:2] == [FP1, "pending"], out
    assert _run("approve", "a1", "--state", pg_db, "--by", "dba")[0] == 0
    assert "status:        approved (by dba)" in _run("show", FP1, "--state", pg_db)[1]
    assert _run("forget", FP1, "--state", pg_db)[0] == 0
    assert _run("show", FP1, "--state", pg_db)[0] == 2
    import psycopg

    with psycopg.connect(pg_db) as c:
        assert c.execute("SELECT count(*) FROM sluice.sluice_rewrite_status").fetchone() == (0,)
