"""LLM rewrites in the proxy's background job (scripted replies: plumbing, not quality).

A LITHE rewrite is a whole query, not a rule sequence, so the online store keeps it for the
exact literal instance it was verified and timed on, and serves it only to that instance.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import sqlsluice.state
from sqlsluice.config import Config, LLMConfig, RewriteConfig
from sqlsluice.databases import Backend, connect
from sqlsluice.llm.scripted_server import ScriptedLLMServer
from sqlsluice.rewriters.online import OnlineRewriter, RewriteStore
from sqlsluice.state import StateStore

from .test_scripted_rewriters import FAST, SLOW, by_template, fenced


@pytest.fixture()
def db(tpcds_tiny: Path) -> Iterator[Backend]:
    b = connect(f"duckdb:///{tpcds_tiny}")
    yield b
    b.close()


def test_scripted_online_lithe_rewrite_served_to_its_literal_instance_only(
        db: Backend, srv: ScriptedLLMServer, store: StateStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlsluice.state, "_default", store)  # the LLM ledger of this test alone
    srv.responder = by_template(lithe=fenced(FAST), step="STEP: none\n```sql\n" + FAST + "\n```")
    cfg = Config(llm=LLMConfig(base_url=srv.base_url, models={"default": "scripted-model"}),
                 rewrite=RewriteConfig(rewriter="lithe"))
    online = OnlineRewriter(db, cfg, RewriteStore(store))
    try:
        assert online.lookup(SLOW) is None  # first sight: the original runs, a job is queued
        assert online.submit(SLOW)
        assert online.wait_idle(120)
        assert srv.requests, "the background job asked the LLM"
        hit = online.lookup(SLOW)
        assert hit is not None
        sql, info = hit
        assert sql == FAST and info["rewritten"] and info["rules"][0].startswith("lithe:")
        assert info["scope"] == "this literal instance"
        assert db.execute(sql).rows == db.execute(SLOW).rows
        # another literal: the LLM's query was not checked for it, so it is not served
        other = SLOW.replace("< 60", "< 61")
        assert online.lookup(other) is None
    finally:
        online.close()
