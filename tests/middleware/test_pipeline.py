"""The statement pipeline hook: sluice settings, SHOW sluice.last, and stages appended by later
features, exercised through a real server with psycopg (simple and extended protocol)."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from sqlsluice.config import AskConfig, Config
from sqlsluice.databases.base import ColumnInfo
from sqlsluice.errors import FeatureNotSupported
from sqlsluice.middleware.pipeline import (
    Forward,
    Pipeline,
    Reply,
    SessionContext,
    default_pipeline,
    settings_stage,
)
from sqlsluice.middleware.server import ServerThread, SluiceServer


def test_defaults_come_from_config():
    ctx = SessionContext(user="u", database="d", config=Config(ask=AskConfig(router="cost")))
    assert ctx.settings == {"sluice.rewrite": "on", "sluice.router": "cost"}


def test_settings_stage_set_show_reset():
    ctx = SessionContext(user="u", database="d")
    p = default_pipeline()

    def h(sql):
        return asyncio.run(p.handle(ctx, sql, extended=False))

    assert h("SET sluice.rewrite TO 'shadow'") == Reply([], [], "SET")
    assert h("show sluice.rewrite").rows == [("shadow",)]
    assert h("SELECT 1") == Forward("SELECT 1")
    last = dict(h("SHOW sluice.last").rows)
    assert last["sql"] == "SELECT 1" and last["action"] == "forward"
    assert h("RESET sluice.rewrite").status == "RESET"
    assert h("SHOW sluice.rewrite").rows == [("on",)]
    with pytest.raises(Exception) as ei:
        h("SET sluice.rewrite = sideways")
    assert ei.value.sqlstate == "22023"
    with pytest.raises(Exception) as ei:
        h("SET sluice.nope = 1")
    assert ei.value.sqlstate == "42704"


async def shout_stage(ctx, sql, extended):
    """Rewrites: keep the parameter count, change the SQL (what the rewriter will do)."""
    if "shout" in sql:
        return Forward(sql.replace("'shout'", "upper('shout')"), {"rewritten": True, "rules": "shout"})
    return None


async def ask_stage(ctx, sql, extended):
    """Answers locally (what ASK will do)."""
    if sql.upper().startswith("ASK "):
        if "forbidden" in sql:
            raise FeatureNotSupported("not allowed")
        return Reply([ColumnInfo("answer", "INTEGER"), ColumnInfo("how", "VARCHAR")],
                     [(42, ctx.settings["sluice.router"])], "SELECT 1")
    return None


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    def factory():
        p = Pipeline([settings_stage])
        p.append(shout_stage)
        p.append(ask_stage)
        return p

    srv = SluiceServer(Config(), backend_url=f"duckdb:///{tmp_path_factory.mktemp('pl') / 'p.duckdb'}",
                       pipeline_factory=factory)
    th = ServerThread(srv).start()
    try:
        yield th.port
    finally:
        th.stop()


@pytest.mark.parametrize("prepare", [False, True])
def test_stages_through_the_wire(staged, prepare):
    with psycopg.connect(host="127.0.0.1", port=staged, user="u", dbname="d", autocommit=True) as c:
        run = (lambda q, p=None: c.execute(q, p, prepare=True)) if prepare else c.execute
        assert run("SELECT 'shout' AS s, %s::INTEGER AS n", [5]).fetchone() == ("SHOUT", 5)
        last = dict(run("SHOW sluice.last").fetchall())
        assert last["rewritten"] == "True" and "upper('shout')" in last["forwarded_sql"]
        run("SET sluice.router = 'tables'")
        assert run("ASK how many?").fetchall() == [(42, "tables")]
        with pytest.raises(psycopg.errors.FeatureNotSupported):
            run("ASK something forbidden")
        assert run("SHOW sluice.router").fetchone() == ("tables",)
        with pytest.raises(psycopg.errors.InvalidParameterValue):
            run("SET sluice.rewrite = sideways")
        assert run("SELECT 1").fetchone() == (1,)


def test_settings_are_per_session(staged):
    with psycopg.connect(host="127.0.0.1", port=staged, user="u", dbname="d", autocommit=True) as a, \
            psycopg.connect(host="127.0.0.1", port=staged, user="u", dbname="d", autocommit=True) as b:
        a.execute("SET sluice.rewrite = off")
        assert a.execute("SHOW sluice.rewrite").fetchone() == ("off",)
        assert b.execute("SHOW sluice.rewrite").fetchone() == ("on",)
