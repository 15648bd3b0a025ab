"""The product pipeline's fast path: a cached "forward unchanged" per shape, and what ends it.

A statement is answered without running the stages only while the rewriter's store has not
changed for any shape since the answer was cached, in a session with ``sluice.rewrite = on``
outside an explicit transaction; ``SET sluice.rewrite`` takes effect with the next statement.
Real components: the server's product pipeline over an embedded DuckDB (TPC-DS) with its own
rewrite store and background rewriter.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from sqlsluice.config import Config
from sqlsluice.databases import connect
from sqlsluice.middleware.pipeline import Forward, Reply, SessionContext
from sqlsluice.rewriters.api import rewrite
from sqlsluice.rewriters.online import Entry, fingerprint, template_of
from sqlsluice.serving import pipeline as serving_pipeline
from sqlsluice.serving.pipeline import ProductPipeline

# a correlated subquery the rule rewriter decorrelates (a proved, faster rewrite)
Q = ("SELECT i.i_item_id FROM item AS i WHERE i.i_current_price > 1.2 * (SELECT AVG(j.i_current_price) "
     "FROM item AS j WHERE j.i_category = i.i_category) ORDER BY 1")
POINT = "SELECT i_item_id FROM item WHERE i_item_sk = {}"


@pytest.fixture
def product(tpcds_tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.delenv("SLUICE_STATE", raising=False)
    db = tmp_path / "t.duckdb"
    shutil.copy(tpcds_tiny, db)
    cfg = Config.model_validate({"server": {"state": str(tmp_path / "state.sqlite")}})
    be = connect(f"duckdb:///{db}")
    pp = ProductPipeline(cfg, f"duckdb:///{db}", be)
    assert pp.online is not None
    try:
        yield pp, be
    finally:
        pp.close()
        be.close()


def _session(pp: ProductPipeline, be: object) -> tuple[SessionContext, object]:
    p = pp()
    ctx = SessionContext(user="u", database="d", config=pp.config, dialect="duckdb", backend=be)
    return ctx, p


def _run(p: object, ctx: SessionContext, sql: str) -> Forward | Reply:
    return asyncio.run(p.handle(ctx, sql, extended=False))  # type: ignore[attr-defined]


def _store_rewrite(pp: ProductPipeline, be: object) -> str:
    """Store the verified rewrite of Q's shape as the background search would; its fingerprint."""
    online = pp.online
    assert online is not None
    rw = rewrite(be, Q, timing=False)  # type: ignore[arg-type]
    assert rw.rules, "the test query must have a rule rewrite"
    key, _ = fingerprint(Q, "duckdb")
    online.store.put(Entry(key, template_of(Q, "duckdb"), template_of(rw.sql, "duckdb"), rw.rules, rw.verdict,
                           3.0, 1.0, online.stats_version(), 0.0))
    online.store.put_proof(key, rw.proof or {})
    return key


def test_no_rewrite_is_cached_until_the_shape_gets_one(product, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    pp, be = product
    online = pp.online
    # entries never expire by age here: only the rewriter's change of state may end them
    monkeypatch.setattr(serving_pipeline, "_NEGATIVE_TTL_S", 3600.0)
    key, _ = fingerprint(Q, "duckdb")
    # the shape was searched and nothing was found (as the background search stores it)
    online.store.put(Entry(key, template_of(Q, "duckdb"), "", [], "NONE", None, 1.0, online.stats_version(), 0.0))
    ctx, p = _session(pp, be)

    assert p.try_fast(ctx, Q) is None  # the session's first statement runs the stages
    d = _run(p, ctx, Q)
    assert isinstance(d, Forward) and d.sql == Q and ctx.last["rewrite"] == "no stored rewrite"
    ctx.last = {}
    fast = p.try_fast(ctx, Q)  # now answered from the cache, recorded the same way
    assert fast is not None and fast.sql == Q and fast.observe is None
    assert ctx.last["rewrite"] == "no stored rewrite" and ctx.last["fingerprint"] == key
    assert ctx.last["sql"] == Q and ctx.last["action"] == "forward" and "pipeline_ms" in ctx.last
    # other literals, same shape: cached too; another shape: not
    other = Q.replace("1.2", "1.5")
    assert p.try_fast(ctx, other) is not None
    assert p.try_fast(ctx, POINT.format(1)) is None

    # the store changes state for the shape (as when statistics change or a rewrite is dropped):
    # the cached answer is gone at once, the next statement looks again and queues a search
    online._drop(key, "statistics or schema changed")
    assert p.try_fast(ctx, Q) is None
    d = _run(p, ctx, Q)
    assert isinstance(d, Forward) and d.sql == Q and ctx.last["rewrite"] == "queued"
    assert d.observe is not None  # the original's first run is timed: never cached
    assert online.wait_idle(180)  # (timed on tiny data the search may find nothing faster)
    _run(p, ctx, Q)
    # a verified rewrite of the shape is stored (as the search, or an approval in the web
    # console, stores it: the rewriter's generation moves on): served with the next statement
    _store_rewrite(pp, be)
    online.expire_decisions()
    assert p.try_fast(ctx, Q) is None
    d = _run(p, ctx, Q)
    assert isinstance(d, Forward) and d.sql != Q, ctx.last
    assert ctx.last["rewritten"] is True and ctx.last["rules"]
    assert p.try_fast(ctx, Q) is None  # a served rewrite always takes the full path


def test_set_rewrite_off_and_on_take_effect_at_once(product) -> None:  # type: ignore[no-untyped-def]
    pp, be = product
    _store_rewrite(pp, be)
    ctx, p = _session(pp, be)
    d = _run(p, ctx, Q)
    assert isinstance(d, Forward) and d.sql != Q and ctx.last["rewritten"] is True
    # a point query's shape with no rewrite gets cached meanwhile
    key_point = POINT.format(1)
    _run(p, ctx, key_point)
    _run(p, ctx, POINT.format(2))

    assert isinstance(_run(p, ctx, "SET sluice.rewrite = off"), Reply)
    d = _run(p, ctx, Q)
    assert isinstance(d, Forward) and d.sql == Q and "rewritten" not in ctx.last
    fast = p.try_fast(ctx, POINT.format(3))
    assert fast is not None and fast.sql == POINT.format(3) and "rewritten" not in ctx.last

    assert isinstance(_run(p, ctx, "SET sluice.rewrite = shadow"), Reply)
    assert p.try_fast(ctx, Q) is None  # shadow runs the stage (it queues a comparison)

    assert isinstance(_run(p, ctx, "SET sluice.rewrite = on"), Reply)
    d = _run(p, ctx, Q)
    assert isinstance(d, Forward) and d.sql != Q and ctx.last["rewritten"] is True

    # another session keeps its own setting
    ctx2, p2 = _session(pp, be)
    d = _run(p2, ctx2, Q)
    assert isinstance(d, Forward) and d.sql != Q


def test_transactions_and_reload_bypass_the_cache(product, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    pp, be = product
    monkeypatch.setattr(serving_pipeline, "_NEGATIVE_TTL_S", 3600.0)
    _store_rewrite(pp, be)
    ctx, p = _session(pp, be)
    point = POINT.format(7)
    _run(p, ctx, point)  # an unknown shape: a search is queued (the first run is timed: not cached)
    assert pp.online is not None and pp.online.wait_idle(180)
    _run(p, ctx, point)
    assert p.try_fast(ctx, point) is not None
    _run(p, ctx, "BEGIN")
    assert p.try_fast(ctx, point) is None  # inside a transaction every statement runs the stages
    _run(p, ctx, "INSERT INTO store SELECT * FROM store LIMIT 0")
    d = _run(p, ctx, Q)
    assert isinstance(d, Forward) and d.sql == Q  # never rewritten once the transaction wrote
    _run(p, ctx, "ROLLBACK")
    assert p.try_fast(ctx, point) is not None
    d = _run(p, ctx, Q)
    assert isinstance(d, Forward) and d.sql != Q
    # a config reload (SIGHUP sets the product's config) forgets every cached answer
    pp.config = pp.config.model_copy()
    assert p.try_fast(ctx, point) is None
