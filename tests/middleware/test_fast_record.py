"""What a statement answered by the pipeline's fast path records (issue 12, proxy throughput).

The fast path leaves one tuple per statement; ``SHOW sluice.last`` (``ctx.last``),
``SHOW sluice.clients`` (``ctx.activity``) and ``SHOW sluice.stats`` (the counters) build
their view of it only when they are read.  What they show must be what the stages record
for the same decision: checked against a pipeline whose stage gives that decision, then
end to end through ``sluice serve`` over PostgreSQL (session and transaction pooling) with
psycopg, where the first run of a point query takes the stages and the later runs the fast
path.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from sqlsluice.bench.proxy import ServeProcess
from sqlsluice.databases.pgcluster import PgCluster
from sqlsluice.middleware import pipeline as mp
from sqlsluice.middleware.pipeline import Forward, Pipeline, SessionContext, settings_stage, statement_form

INFO = {"rewrite": "no stored rewrite", "fingerprint": "f00"}


def _fast(ctx: SessionContext, sql: str, form: bytes | None, now: float) -> dict[str, Any] | None:
    """Forward point queries unchanged with INFO (what ProductPipeline.fast_path answers from its cache)."""
    assert form is None or form == statement_form(sql)
    return INFO if sql.startswith("SELECT") else None


async def _forward_stage(ctx: SessionContext, sql: str, extended: bool) -> Forward | None:
    return Forward(sql, INFO) if sql.startswith("SELECT") else None


def _run(p: Pipeline, ctx: SessionContext, sql: str) -> Any:
    return asyncio.run(p.handle(ctx, sql, extended=False))


def _without_ms(rec: dict[str, Any]) -> dict[str, Any]:
    assert isinstance(rec["pipeline_ms"], float) and rec["pipeline_ms"] >= 0
    return {k: v for k, v in rec.items() if k != "pipeline_ms"}


def test_the_fast_record_is_the_stages_record() -> None:
    slow_ctx, fast_ctx = SessionContext("u", "d"), SessionContext("u", "d")
    slow = Pipeline([settings_stage, _forward_stage])
    fast = Pipeline([settings_stage, _forward_stage], fast=_fast)
    sql = "SELECT v FROM t WHERE k = 42"
    before = time.time()
    d_slow, d_fast = _run(slow, slow_ctx, sql), _run(fast, fast_ctx, sql)
    assert d_fast == d_slow == Forward(sql, INFO)
    assert fast_ctx._fast is not None  # nothing built yet
    assert list(fast_ctx.last) == list(slow_ctx.last)  # same keys, same order
    assert _without_ms(fast_ctx.last) == _without_ms(slow_ctx.last) == \
        {"sql": sql, "extended": False, "action": "forward", **INFO}
    assert fast_ctx._fast is None and fast_ctx.last is fast_ctx.last  # built once
    assert fast_ctx.activity is not None and slow_ctx.activity is not None
    assert fast_ctx.activity[0] == slow_ctx.activity[0] == sql
    assert before - 1.0 <= fast_ctx.activity[1] <= time.time() + 1.0  # the wall clock, as time.time()
    # SHOW sluice.last through the stages reads the pending record (and keeps it)
    fast.forward_fast(fast_ctx, "SELECT 7")
    show = _run(fast, fast_ctx, "SHOW sluice.last")
    rows = dict(show.rows)
    assert rows["sql"] == "SELECT 7" and rows["action"] == "forward" and rows["rewrite"] == "no stored rewrite"
    assert fast_ctx.last["sql"] == "SELECT 7"
    assert fast_ctx.activity is not None and fast_ctx.activity[0] == "SHOW sluice.last"


def test_a_statement_through_the_stages_replaces_a_pending_record() -> None:
    ctx = SessionContext("u", "d")
    p = Pipeline([settings_stage, _forward_stage], fast=_fast)
    assert p.forward_fast(ctx, "SELECT 1")
    _run(p, ctx, "SET sluice.rewrite = off")  # the stages: its record wins
    assert ctx.last["sql"] == "SET sluice.rewrite = off" and ctx.last["action"] == "reply"
    assert ctx.activity is not None and ctx.activity[0] == "SET sluice.rewrite = off"
    # written directly (the relay restores a prepared statement's record): the pending one goes
    assert p.forward_fast(ctx, "SELECT 2")
    rec = {"sql": "prepared", "extended": True}
    ctx.last = rec
    assert ctx.last is rec and ctx.activity is not None and ctx.activity[0] == "SELECT 2"
    # ... and the other way round
    assert p.forward_fast(ctx, "SELECT 3")
    ctx.activity = ("x", 1.0)
    assert ctx.last["sql"] == "SELECT 3" and ctx.activity == ("x", 1.0)


def test_counters_include_the_fast_path() -> None:
    ctx = SessionContext("u", "d")
    p = Pipeline([settings_stage, _forward_stage], fast=_fast)
    c0 = mp.counters()
    for i in range(5):
        assert p.try_fast(ctx, f"SELECT {i}") == Forward(f"SELECT {i}", INFO)
    _run(p, ctx, "SET sluice.rewrite = off")
    c1 = mp.counters()
    assert c1["statements"] - c0["statements"] == 6
    assert c1["forwarded"] - c0["forwarded"] == 5
    assert c1["replies"] - c0["replies"] == 1
    assert c1["forwarded_rewritten"] == c0["forwarded_rewritten"]
    rows = dict(mp._stats_view(ctx)[1])
    assert rows["statements"] >= c1["statements"] and rows["forwarded"] >= c1["forwarded"]


# --- end to end: sluice serve over PostgreSQL --------------------------------------------
@pytest.fixture(scope="module")
def proxy(pg_cluster: PgCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    url = pg_cluster.create_database("fastrec_" + uuid.uuid4().hex[:8])
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("CREATE TABLE t1 (k int PRIMARY KEY, v text)")
        c.execute("INSERT INTO t1 SELECT g, 'v' || g FROM generate_series(1, 100) g")
    cfg = tmp_path_factory.mktemp("fastrec") / "sluice.toml"
    cfg.write_text(f"""[server]
backend = "{url}"
auth = "trust"
[databases]
tx = {{backend = "{url}", pool_mode = "transaction", pool_size = 2, query_wait_timeout = 20}}
sess = {{backend = "{url}"}}
""")
    with ServeProcess(url, config=cfg) as p:
        yield p


def _last(c: psycopg.Connection[Any]) -> dict[str, str]:
    return dict(c.execute("SHOW sluice.last").fetchall())


def _stats(c: psycopg.Connection[Any]) -> dict[str, int]:
    return {k: int(v) for k, v in c.execute("SHOW sluice.stats").fetchall()}


@pytest.mark.parametrize("database", ["tx", "sess"])
def test_show_sluice_last_stats_and_clients_after_fast_statements(proxy: ServeProcess, database: str) -> None:
    dsn = proxy.dsn(database=database)
    with psycopg.connect(dsn, autocommit=True) as c, psycopg.connect(dsn, autocommit=True) as admin:
        first = "SELECT v FROM t1 WHERE k = 1"
        assert c.execute(first).fetchall() == [("v1",)]
        rec1 = _last(c)  # the stages' record (the shape's first lookup)
        assert rec1["sql"] == first and rec1["action"] == "forward" and rec1["extended"] == "False"
        c.execute("SELECT v FROM t1 WHERE k = 2").fetchall()
        rec2 = _last(c)  # the stages' record, which the fast path caches for the shape
        s0 = _stats(admin)
        for k in range(3, 23):  # the same shape: answered by the fast path from now on
            assert c.execute(f"SELECT v FROM t1 WHERE k = {k}").fetchall() == [(f"v{k}",)]
        rec = _last(c)
        # the stages' record for the shape, for this statement (what the cached lookup says
        # may have moved on meanwhile: the background search of the shape ends "no stored rewrite")
        assert list(rec) == list(rec2) and rec["sql"] == "SELECT v FROM t1 WHERE k = 22"
        assert rec["extended"] == "False" and rec["action"] == "forward" and float(rec["pipeline_ms"]) >= 0
        assert rec["fingerprint"] == rec2["fingerprint"] == rec1["fingerprint"]
        assert rec["rewrite"] in ("no stored rewrite", "unknown shape", "search running"), rec
        assert _last(c)["sql"] == "SELECT v FROM t1 WHERE k = 22"  # SHOW sluice.last keeps it
        # 20 point queries, 2 SHOW sluice.last and this SHOW sluice.stats, counted once each
        s1 = _stats(admin)
        assert s1["statements"] - s0["statements"] == 20 + 2 + 1
        assert s1["forwarded"] - s0["forwarded"] == 20 and s1["replies"] - s0["replies"] == 3
        # the other session's latest statement, as SHOW sluice.clients shows it
        c.execute("SELECT v FROM t1 WHERE k = 99").fetchall()
        clients = admin.execute("SHOW sluice.clients").fetchall()
        mine = [r for r in clients if r[5] == "SELECT v FROM t1 WHERE k = 99"]
        assert len(mine) == 1 and mine[0][2] == database and mine[0][6] is not None and mine[0][6] >= 0

        # sluice.rewrite = off: the fast path forwards at once; its record is the stages' one
        c.execute("SET sluice.rewrite = off")
        c.execute("VALUES (1)")  # not a SELECT: the stages forward it, with nothing to add
        rec_stages = _last(c)
        c.execute("SELECT v FROM t1 WHERE k = 5")
        rec_fast = _last(c)
        assert list(rec_fast) == list(rec_stages) == ["sql", "extended", "action", "pipeline_ms"]
        assert rec_fast["sql"] == "SELECT v FROM t1 WHERE k = 5" and rec_stages["sql"] == "VALUES (1)"
        assert (rec_fast["extended"], rec_fast["action"]) == (rec_stages["extended"], rec_stages["action"]) == \
            ("False", "forward")
