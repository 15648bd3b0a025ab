"""The rewrite pipeline stage without a server: modes, transactions that wrote, prepared statements."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlsluice.config import Config
from sqlsluice.databases import connect
from sqlsluice.middleware.pipeline import Forward, SessionContext, default_pipeline
from sqlsluice.rewriters.api import rewrite
from sqlsluice.rewriters.online import Entry, RewriteStore, fingerprint, template_of
from sqlsluice.serving.rewrite_stage import make_rewrite_stage
from sqlsluice.state import StateStore

Q = ("SELECT i.i_item_id FROM item AS i WHERE i.i_current_price > 1.2 * (SELECT AVG(j.i_current_price) "
     "FROM item AS j WHERE j.i_category = i.i_category) ORDER BY 1")


def test_stage_modes_and_transactions(tpcds_tiny: Path, tmp_path: Path) -> None:
    import shutil

    db = tmp_path / "t.duckdb"
    shutil.copy(tpcds_tiny, db)
    be = connect(f"duckdb:///{db}")
    store = RewriteStore(StateStore(f"sqlite:///{tmp_path / 's.sqlite'}"))
    stage, online = make_rewrite_stage(be, Config(), store)
    rw = rewrite(be, Q, timing=False)
    key, _ = fingerprint(Q, "duckdb")
    store.put(Entry(key, template_of(Q, "duckdb"), template_of(rw.sql, "duckdb"), rw.rules, rw.verdict, 3.0, 1.0,
                    online.stats_version(), 0.0))
    p = default_pipeline()
    p.append(stage)
    ctx = SessionContext(user="u", database="d", dialect="duckdb")

    def run(sql: str, extended: bool = False) -> Forward:
        d = asyncio.run(p.handle(ctx, sql, extended=extended))
        assert isinstance(d, Forward)
        return d

    def setting(sql: str) -> None:
        asyncio.run(p.handle(ctx, sql, extended=False))

    try:
        assert run(Q).sql != Q and ctx.last["rewritten"] is True and ctx.last["rules"] == rw.rules
        assert run(Q, extended=True).sql == Q  # prepared statements are left alone
        run("BEGIN")
        assert run(Q).sql != Q  # a read-only transaction may still be served the rewrite
        run("INSERT INTO store SELECT * FROM store LIMIT 0")
        assert run(Q).sql == Q  # ... but not once it has written
        run("ROLLBACK")
        assert run(Q).sql != Q
        setting("SET sluice.rewrite = shadow")
        d = run(Q)
        assert d.sql == Q and ctx.last["shadow"] is True
        assert online.wait_idle(120)
        assert online.shadow_log and online.shadow_log[-1].rewritten
        setting("SET sluice.rewrite = off")
        assert run(Q).sql == Q and "rewritten" not in ctx.last
    finally:
        online.close()
        be.close()
