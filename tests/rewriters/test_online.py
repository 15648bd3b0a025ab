"""OnlineRewriter at the Python level: fingerprints, stored rewrites replayed with new literals,
re-timed on a statistics change, dropped on a schema change and on observed slowness, writes
never rewritten, shadow mode."""

from __future__ import annotations

import shutil
from pathlib import Path

from sqlsluice.config import Config
from sqlsluice.databases import connect
from sqlsluice.rewriters.api import rewrite
from sqlsluice.rewriters.online import Entry, OnlineRewriter, RewriteStore, fingerprint, template_of
from sqlsluice.state import StateStore
from sqlsluice.verifiers import compare_results

Q = ("SELECT i.i_item_id FROM item AS i WHERE i.i_category = '{cat}' AND i.i_current_price > 1.2 * "
     "(SELECT AVG(j.i_current_price) FROM item AS j WHERE j.i_category = i.i_category) ORDER BY 1")


def test_fingerprint_lifts_literals_and_keeps_shape() -> None:
    k1, l1 = fingerprint(Q.format(cat="Music"), "duckdb")
    k2, l2 = fingerprint(Q.format(cat="Books"), "duckdb")
    k3, _ = fingerprint(Q.format(cat="Music").replace("1.2", "1.2 + 0"), "duckdb")
    assert k1 == k2 and k1 != k3
    assert "'Music'" in l1 and "'Books'" in l2
    assert "CAST(x AS DECIMAL(7, 2))" in template_of("SELECT CAST(x AS DECIMAL(7,2)) FROM t WHERE y = 3", "duckdb")


def test_stored_rewrite_replayed_with_this_calls_literals(tpcds_tiny: Path, tmp_path: Path) -> None:
    db = tmp_path / "tpcds.duckdb"
    shutil.copy(tpcds_tiny, db)
    be = connect(f"duckdb:///{db}")
    store = RewriteStore(StateStore(f"sqlite:///{tmp_path / 'state.sqlite'}"))
    online = OnlineRewriter(be, Config(), store, stats_refresh_s=0.0)
    try:
        first = Q.format(cat="Music")
        assert online.lookup(first) is None  # unknown shape: run the original
        # what the background job stores once a rewrite is verified and faster
        rw = rewrite(be, first, timing=False)
        assert rw.rules and "scalar_subquery_to_join" in rw.rules
        key, _ = fingerprint(first, "duckdb")
        store.put(Entry(key, template_of(first, "duckdb"), template_of(rw.sql, "duckdb"), rw.rules, rw.verdict,
                        2.0, 1.0, online.stats_version(), 0.0))
        second = Q.format(cat="Books")
        hit = online.lookup(second)
        assert hit is not None
        sql2, info = hit
        assert info["rewritten"] and info["rules"] == rw.rules and "'Books'" in sql2 and "'Music'" not in sql2
        assert compare_results(be.execute(second).rows, be.execute(sql2).rows, ordered=True)
        assert be.execute(second).rows  # the comparison is over real rows
        # writes and DDL are never rewritten nor queued
        assert online.lookup("INSERT INTO item SELECT * FROM item LIMIT 0") is None
        assert online.submit("INSERT INTO item SELECT * FROM item LIMIT 0") is False
        assert online.submit("CREATE TABLE x AS SELECT 1") is False
        # served slower than the original: one observation is noise; after several, the two
        # forms are re-timed side by side on the recorded literal instance, which decides
        assert online.observe(key, 5.0) is False
        assert online.observe(key, 5.0) is False
        assert online.observe(key, 5.0) is True
        assert online.wait_idle(60) and online.stats.rechecks == 1 and online.stats.errors == 0
        kept = store.get(key)
        assert kept is not None
        if kept.has_rewrite:  # still faster on the real runs: kept with the re-timed baseline
            assert kept.time_original is not None and kept.time_original < 1.0
        else:
            assert "re-timed" in (online.dropped_reason(key) or "")
            assert online.lookup(second) is None
        # statistics change -> the rewrite (still sound) stays served and is re-timed
        store.put(Entry(key, template_of(first, "duckdb"), "", rw.rules, rw.verdict, 2.0, 1.0,
                        online.stats_version(), 0.0))
        assert online.lookup(second) is not None
        be.execute("INSERT INTO item SELECT * REPLACE (i_item_sk + 1000000 AS i_item_sk) FROM item LIMIT 1")
        online.invalidate_stats()
        assert online.lookup(second) is not None and online.stats.retimed == 1
        assert online.wait_idle(60) and online.stats.errors == 0
        kept = store.get(key)
        assert kept is not None and kept.stats_version == online.stats_version()
        assert kept.has_rewrite or "re-timed after a statistics change" in (online.dropped_reason(key) or "")
        # schema change -> stored rewrites dropped
        store.put(Entry(key, template_of(first, "duckdb"), "", rw.rules, rw.verdict, 2.0, 1.0,
                        online.stats_version(), 0.0))
        be.execute("CREATE TABLE sluice_test_extra (a INTEGER)")
        online.invalidate_stats()
        assert online.lookup(second) is None
        assert store.get(key) is None and online.dropped_reason(key) == "schema changed"
    finally:
        online.close()
        be.close()


def test_submit_runs_in_background_and_dedupes(tpcds_tiny: Path, tmp_path: Path) -> None:
    be = connect(f"duckdb:///{tpcds_tiny}", read_only=True)
    store = RewriteStore(StateStore(f"sqlite:///{tmp_path / 'state.sqlite'}"))
    online = OnlineRewriter(be, Config(), store)
    try:
        sql = Q.format(cat="Music")
        assert online.submit(sql) is True
        assert online.submit(Q.format(cat="Books")) is False  # same shape: deduplicated
        assert online.wait_idle(120)
        key, _ = fingerprint(sql, "duckdb")
        e = store.get(key)
        assert e is not None  # searched and recorded: a rewrite, or "none" so it is not searched again
        assert online.stats.searched == 1 and online.stats.errors == 0
        assert online.submit(sql) is False  # known shape
        # shadow: compare in the background and log a record
        assert online.shadow(sql) is True
        assert online.wait_idle(120)
        assert len(online.shadow_log) == 1 and online.shadow_log[0].same_results in (True, None)
    finally:
        online.close()
        be.close()
