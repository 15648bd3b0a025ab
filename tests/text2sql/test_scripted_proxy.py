"""ASK through the proxy: a real psycopg client, the sluice server, the ASK stage, a scripted LLM."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from sqlsluice.middleware.pipeline import Pipeline, settings_stage
from sqlsluice.middleware.server import ServerThread, SluiceServer
from sqlsluice.serving.ask_stage import ask_stage
from sqlsluice.state import StateStore
from sqlsluice.text2sql.querylog import recent

ANSWERS = {
    "How many singers are there?": "SELECT count(*) AS n FROM singer",
    "Who is the oldest singer?": "SELECT Name, Age FROM singer ORDER BY Age DESC LIMIT 1",
    "Drop the singers": "DROP TABLE singer",
}


@pytest.fixture()
def proxy(concert_db, scripted) -> Iterator[tuple[str, object]]:
    path = concert_db.path
    concert_db.close()
    s = scripted(lambda tpl, q, body: ANSWERS.get(q, "SELECT 1"))
    cfg = s.config
    srv = SluiceServer(cfg, backend_url=f"duckdb:///{path}",
                       pipeline_factory=lambda: Pipeline([settings_stage, ask_stage]))
    with ServerThread(srv) as t:
        yield f"host=127.0.0.1 port={t.port} user=app dbname=concert_singer", s


def test_scripted_ask_through_the_proxy(proxy) -> None:
    dsn, s = proxy
    with psycopg.connect(dsn, autocommit=True) as c:
        assert c.execute("ASK 'How many singers are there?'").fetchall() == [(6,)]
        assert c.execute("ASK 'Who is the oldest singer?' WITH EVIDENCE 'oldest means highest Age'").fetchall() \
            == [("Joe Sharp", 52)]
        rows = dict(c.execute("EXPLAIN ASK 'Who is the oldest singer?'").fetchall())
        assert rows["sql"] == ANSWERS["Who is the oldest singer?"]
        assert rows["route"] and rows["pipeline"] and int(rows["tokens_in"]) >= 0
        c.execute("SET sluice.router = 'always:basic'")
        assert c.execute("ASK 'How many singers are there?'").fetchall() == [(6,)]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("ASK 'Drop the singers'")
        assert c.execute("SELECT count(*) FROM singer").fetchall() == [(6,)]
        with pytest.raises(psycopg.errors.SyntaxError):
            c.execute("ASK how many")
    st = StateStore(str(s.config.server.state and f"sqlite:///{s.config.server.state}"))
    kinds = [r["kind"] for r in recent(st, limit=10)]
    assert "ask" in kinds and "explain_ask" in kinds
    st.close()


def test_scripted_ask_stage_quotes(proxy) -> None:
    dsn, _ = proxy
    with psycopg.connect(dsn, autocommit=True) as c:
        # '' inside the question is one quote; unknown questions get the scripted fallback
        assert c.execute("ASK 'What''s one?'").fetchall() == [(1,)]


def test_scripted_saved_router_loads_in_the_proxy(proxy, shared_data, tmp_path) -> None:
    from sqlsluice.routers.base import fit_learned, save_router
    from sqlsluice.routers.labels import load_labels

    items = load_labels(shared_data / "bird" / "ellie_pipeline_labels.jsonl", limit=150)
    r = fit_learned([x.inp for x in items], [x.label for x in items], costs=(1.0, 2.0, 5.0), lam=0.9,
                    label="tiny")
    path = save_router(r, tmp_path / "tiny.joblib", store=StateStore("sqlite:///:memory:"))
    dsn, _ = proxy
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(f"SET sluice.router = '{path}'")
        assert c.execute("ASK 'How many singers are there?'").fetchall() == [(6,)]
        rows = dict(c.execute("EXPLAIN ASK 'Who is the oldest singer?'").fetchall())
        assert rows["route"].startswith("tiny:P(solved)=")
