"""What the console lists for a server with ``[databases]``: one rewrite store per database
(as the proxy will use them, before any client opened one), and decisions taken there."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sqlsluice.config import Config
from sqlsluice.middleware.server import SluiceServer, rewrite_namespace
from sqlsluice.rewriters.online import Entry, RewriteStore
from sqlsluice.serving.web import data
from sqlsluice.state import NamespacedState, default_store


def test_each_database_has_its_own_store_and_decisions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlsluice.state as state

    monkeypatch.setenv("SLUICE_STATE", f"sqlite:///{tmp_path / 'state.sqlite'}")
    monkeypatch.setattr(state, "_default", None)
    shop, sales = f"duckdb:///{tmp_path / 'shop.duckdb'}", f"duckdb:///{tmp_path / 'sales.duckdb'}"
    server = SluiceServer(Config(databases={"shop": shop, "sales": sales}))
    # what the proxy's rewriter for "shop" will have stored (its namespace of the shared store)
    store = RewriteStore(NamespacedState(default_store(), rewrite_namespace(shop)))
    store.put(Entry("fp1", "SELECT 1 FROM t", "SELECT 1 FROM t AS t", ["r"], "EQUIVALENT", 3.0, 0.3, "v", time.time()))
    dbs = {d.label.split()[0]: d for d in data.databases(server)}
    assert set(dbs) == {"shop", "sales"} and dbs["shop"].ns == rewrite_namespace(shop)
    assert [r["fingerprint"] for r in data.rewrite_rows(dbs["shop"])] == ["fp1"] and not data.rewrite_rows(dbs["sales"])
    assert data.rewrite_rows(dbs["shop"])[0]["status"] == "served"  # stored outside review mode
    assert data.decide(server, dbs["shop"], "fp1", "reject", "console:dba") == "rejected"
    assert store.status("fp1")[:2] == ("rejected", "console:dba")  # type: ignore[index]
    detail = data.rewrite_detail(dbs["shop"], "fp1")
    assert detail is not None and detail["status"] == "rejected" and detail["speedup"] == 3.0
    with pytest.raises(KeyError):
        data.decide(server, dbs["sales"], "fp1", "approve", "console:dba")  # not in that database
    assert data.decide(server, dbs["shop"], "fp1", "forget", "console:dba") == "forgotten"
    assert store.get("fp1") is None and data.find(server, "nope") is None
