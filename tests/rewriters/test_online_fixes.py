"""Issue #11 follow-ups in the online rewriter, each a defect seen before:

* a review decision is written in one statement: no reader ever sees a stored rewrite
  without its decision in between (it would serve it), and in review mode a stored
  rewrite with no decision at all is held, not served;
* the background search drops a state sqlglot cannot write as SQL (``U&'..' UESCAPE '*'``:
  sqlglot compiles the escape as a regular expression, "nothing to repeat") instead of
  failing the whole search;
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlglot import exp

from sqlsluice.config import Config, RewriteConfig
from sqlsluice.databases import Backend, Catalog, connect
from sqlsluice.rewriters.api import rewrite
from sqlsluice.rewriters.online import (
    APPROVED,
    PENDING,
    REJECTED,
    Entry,
    OnlineRewriter,
    RewriteStore,
    fingerprint,
    template_of,
)
from sqlsluice.rewriters.rules import SEARCH, Rule
from sqlsluice.rewriters.search import counting_failures, search
from sqlsluice.state import StateStore

Q = ("SELECT i.i_item_id FROM item AS i WHERE i.i_category = '{cat}' AND i.i_current_price > 1.2 * "
     "(SELECT AVG(j.i_current_price) FROM item AS j WHERE j.i_category = i.i_category) ORDER BY 1")


class _Probed(StateStore):
    """A state store that, after each statement it runs, records what ``probe`` (a reader on
    another connection) sees: the states between the statements of one write."""

    def __init__(self, url: str, probe: Callable[[], Any]) -> None:
        super().__init__(url)
        self.probe = probe
        self.seen: list[Any] = []
        self.statements: list[str] = []

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        rows = super().execute(sql, params)
        if not sql.lstrip().upper().startswith(("SELECT", "CREATE")):
            self.statements.append(sql)
            self.seen.append(self.probe())
        return rows


def test_a_review_decision_is_never_missing_while_it_changes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.sqlite'}"
    reader = RewriteStore(StateStore(url))  # another process (the proxy) serving from the store
    key = "f" * 32
    writer_state = _Probed(url, lambda: reader.blocked(key))
    writer = RewriteStore(writer_state)  # `sluice rewrites ...` deciding
    writer.put(Entry(key, "SELECT 1", "SELECT 1", ["scalar_subquery_to_join"], "EQUIVALENT", 2.0, 1.0, "v", 0.0))
    writer.set_status(key, REJECTED, "dba")
    writer_state.seen.clear()
    writer_state.statements.clear()
    # rejected -> pending (found again, waiting for a review): not served at any moment
    writer.set_status(key, PENDING, "search")
    assert writer_state.statements, "the decision was written"
    assert all(seen is not None for seen in writer_state.seen), writer_state.seen
    assert reader.status(key)[:2] == (PENDING, "search")  # type: ignore[index]
    # the stored rewrite itself is replaced in place too: a reader never finds the shape gone
    writer_state.probe = lambda: reader.get(key) is not None
    writer_state.seen.clear()
    writer.put(Entry(key, "SELECT 1", "SELECT 1", ["exists_to_in"], "EQUIVALENT", 3.0, 1.0, "v", 1.0))
    assert writer_state.seen and all(writer_state.seen)
    e = reader.get(key)
    assert e is not None and e.rules == ["exists_to_in"] and e.speedup == 3.0
    writer_state.probe = lambda: reader.proof(key) is not None
    writer.put_proof(key, {"status": "PROVED"})
    writer_state.seen.clear()
    writer.put_proof(key, {"status": "PROVED", "by": "whole query"})
    assert writer_state.seen and all(writer_state.seen)
    assert reader.proof(key) == {"status": "PROVED", "by": "whole query"}


def test_review_mode_holds_a_stored_rewrite_without_a_decision(tpcds_tiny: Path, tmp_path: Path) -> None:
    db = tmp_path / "tpcds.duckdb"
    shutil.copy(tpcds_tiny, db)
    be = connect(f"duckdb:///{db}")
    store = RewriteStore(StateStore(f"sqlite:///{tmp_path / 'state.sqlite'}"))
    online = OnlineRewriter(be, Config(rewrite=RewriteConfig(mode="review")), store, stats_refresh_s=0.0)
    try:
        first, second = Q.format(cat="Music"), Q.format(cat="Books")
        rw = rewrite(be, first, timing=False)
        assert rw.rules
        key, _ = fingerprint(first, "duckdb")
        # stored with no decision (a store filled outside review mode, or a decision lost)
        store.put(Entry(key, template_of(first, "duckdb"), template_of(rw.sql, "duckdb"), rw.rules, rw.verdict,
                        2.0, 1.0, online.stats_version(), 0.0))
        assert store.status(key) is None
        out, info = online.lookup_ex(second)
        assert out is None and "no decision recorded" in info["rewrite"], info
        assert store.review_status(store.get(key)) == PENDING  # type: ignore[arg-type]
        assert online.stats.held == 1
        store.set_status(key, APPROVED, "dba")
        out, info = online.lookup_ex(second)
        assert out is not None and info["rewritten"] and "'Books'" in out, info
        # the same store outside review mode serves a rewrite with no decision
        plain = RewriteStore(StateStore(f"sqlite:///{tmp_path / 'state.sqlite'}"))
        plain.clear_status(key)
        assert plain.blocked(key) is None and plain.review_status(plain.get(key)) == "served"  # type: ignore[arg-type]
        assert store.blocked(key) is not None
    finally:
        online.close()
        be.close()


# -- a state sqlglot cannot write drops that state, not the search ----------------------------
def _poison(tree: exp.Expr, *, schema: Catalog | None = None, dialect: str | None = None) -> exp.Expr:
    """A rule whose output sqlglot cannot write: it adds ``U&'d*0061t' UESCAPE '*'`` to the
    projection (sqlglot compiles the escape as a regular expression: 'nothing to repeat')."""
    if not isinstance(tree, exp.Select):
        return tree
    out = tree.copy()
    out.select(exp.UnicodeString(this="d*0061t", escape=exp.Literal.string("*")), copy=False)
    return out


def _small(url: str) -> Backend:
    """Two small tables on PostgreSQL (sqlglot writes ``U&'..' UESCAPE`` for PostgreSQL only)."""
    be = connect(url)
    with be.session() as s:
        s.execute("CREATE TABLE t (a int PRIMARY KEY, b text, n int)")
        s.execute("CREATE TABLE u (a int, c int)")
        s.execute("INSERT INTO t SELECT g, 'dat', g FROM generate_series(1, 50) g")
        s.execute("INSERT INTO u SELECT g % 7, g % 3 FROM generate_series(1, 50) g")
        s.execute("ANALYZE")
    return be


SCALAR = "SELECT t.a FROM t WHERE t.n > (SELECT AVG(u.c) FROM u WHERE u.a = t.a) AND t.b = '{b}'"


def test_a_state_that_cannot_be_written_is_dropped_not_the_search(pg_db: str) -> None:
    poison = Rule("select_unicode_poison", None, "test: an output sqlglot cannot generate", _poison, ("test",))
    be = _small(pg_db)
    try:
        with counting_failures() as failed:
            res = search(SCALAR.format(b="dat"), be.catalog(row_counts=False), be, rules=(poison, *SEARCH))
    finally:
        be.close()
    assert [st.rules for st in res.states] == [["scalar_subquery_to_join"]]
    assert res.failed and all("nothing to repeat" in why for why in res.failed), res.failed
    assert failed == res.failed


def test_uescape_statement_is_searched_without_a_worker_error(pg_db: str, tmp_path: Path) -> None:
    be = _small(pg_db)
    store = RewriteStore(StateStore(f"sqlite:///{tmp_path / 'state.sqlite'}"))
    online = OnlineRewriter(be, Config(), store, stats_refresh_s=0.0)
    try:
        sql = "SELECT a FROM t WHERE b = U&'d*0061t' UESCAPE '*' AND a IN (SELECT a FROM u WHERE u.c = 1)"
        assert be.execute(sql).rows  # PostgreSQL accepts it: 'dat'
        assert online.submit(sql)
        assert online.wait_idle(120)
        assert online.stats.errors == 0 and online.stats.searched == 1, online.stats
        dropped = {k: n for k, n in online.stats.reasons.items() if k.startswith("search state dropped")}
        assert dropped and all("nothing to repeat" in k for k in dropped), online.stats.reasons
        key, _ = fingerprint(sql, "postgres")
        e = store.get(key)
        assert e is not None and not e.has_rewrite  # searched: no rewrite, not searched again
        assert online.submit(sql) is False
        assert online.lookup(sql) is None  # the original is served
    finally:
        online.close()
        be.close()


# -- statistics vs schema ------------------------------------------------------------------
def test_statistics_change_keeps_the_rewrite_and_retimes_schema_change_drops(pg_db: str, tmp_path: Path) -> None:
    be = _small(pg_db)
    with be.session() as s:  # the test makes each statistics change itself: no autoanalyze racing it
        s.execute("ALTER TABLE t SET (autovacuum_enabled = false)")
        s.execute("ALTER TABLE u SET (autovacuum_enabled = false)")
    store = RewriteStore(StateStore(f"sqlite:///{tmp_path / 'state.sqlite'}"))
    online = OnlineRewriter(be, Config(), store, stats_refresh_s=0.0)
    try:
        first, second = SCALAR.format(b="dat"), SCALAR.format(b="zzz")
        rw = rewrite(be, first, timing=False)
        assert rw.rules == ["scalar_subquery_to_join"], rw.reason
        key, _ = fingerprint(first, "postgres")
        v0 = online.stats_version()
        store.put(Entry(key, template_of(first, "postgres"), template_of(rw.sql, "postgres"), rw.rules, rw.verdict,
                        2.0, 1.0, v0, 0.0))
        assert online.lookup(second) is not None
        # what autovacuum's autoanalyze does: new statistics, same schema
        with be.session() as s:
            s.execute("INSERT INTO u SELECT g % 11, g % 5 FROM generate_series(1, 5000) g")
            s.execute("ANALYZE u")
        online.invalidate_stats()
        v1 = online.stats_version()
        assert v1 != v0 and v1.split("/")[0] == v0.split("/")[0]
        hit = online.lookup(second)
        assert hit is not None and hit[1]["rules"] == rw.rules  # still served meanwhile
        prepared = online.lookup_prepared(SCALAR.replace("'{b}'", "$1"), ())
        assert prepared.sql is not None and prepared.info["rewritten"], prepared.info
        assert online.stats.retimed == 1  # one re-time queued for the shape, not one per lookup
        assert online.wait_idle(120) and online.stats.errors == 0, online.stats
        e = store.get(key)
        assert e is not None and e.stats_version == v1  # re-timed under the new statistics
        if e.has_rewrite:
            assert online.lookup(second) is not None and online.dropped_reason(key) is None
        else:  # found slower on the re-time: demoted (and only then)
            assert "re-timed after a statistics change" in (online.dropped_reason(key) or "")
            store.put(Entry(key, template_of(first, "postgres"), template_of(rw.sql, "postgres"), rw.rules,
                            rw.verdict, 2.0, 1.0, v1, 0.0))
            assert online.lookup(second) is not None
        # a schema change the planner statistics do not show (a foreign key): dropped
        with be.session() as s:
            s.execute("DELETE FROM u WHERE a NOT IN (SELECT a FROM t)")
            s.execute("ALTER TABLE u ADD CONSTRAINT u_t FOREIGN KEY (a) REFERENCES t (a)")
        online.invalidate_stats()
        assert online.stats_version().split("/")[0] != v1.split("/")[0]
        out, info = online.lookup_ex(second)
        assert out is None and info["rewrite"] == "dropped: schema changed", info
        assert store.get(key) is None and online.dropped_reason(key) == "schema changed"
        # a rewrite stored before versions had a schema part is dropped too (nothing vouches for it)
        store.put(Entry(key, template_of(first, "postgres"), template_of(rw.sql, "postgres"), rw.rules, rw.verdict,
                        2.0, 1.0, "0123456789abcdef", 0.0))
        assert online.lookup(second) is None and store.get(key) is None
        # a "no rewrite found" marker is searched again once the statistics changed, at a Parse too
        schema = online.stats_version().split("/")[0]
        store.put(Entry(key, template_of(first, "postgres"), "", [], "NONE", None, 1.0, f"{schema}/before", 0.0))
        online.note_instance(key, second)
        searched = online.stats.searched
        prepared = online.lookup_prepared(SCALAR.replace("'{b}'", "$1"), ())
        assert prepared.sql is None and prepared.info["rewrite"].startswith("queued"), prepared.info
        assert online.wait_idle(120) and online.stats.searched == searched + 1 and online.stats.errors == 0
    finally:
        online.close()
        be.close()


# -- server.state is the store everything uses -----------------------------------------------
def test_configured_state_is_the_one_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import duckdb
    import psycopg
    from typer.testing import CliRunner

    import sqlsluice.state as state
    from sqlsluice.cli import app
    from sqlsluice.config import load_config
    from sqlsluice.llm.client import _store_for
    from sqlsluice.middleware.server import ServerThread
    from sqlsluice.text2sql import querylog

    from .conftest import product_server

    monkeypatch.chdir(tmp_path)  # the default store would be ./.sluice/state.sqlite
    monkeypatch.delenv("SLUICE_STATE", raising=False)
    monkeypatch.setattr(state, "_default", None)
    db = tmp_path / "shop.duckdb"
    with duckdb.connect(str(db)) as d:
        d.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, n INTEGER)")
        d.execute("INSERT INTO t SELECT i, i % 10 FROM range(1, 200) s(i)")
    configured = tmp_path / "configured.sqlite"
    (tmp_path / "sluice.toml").write_text(f'[server]\nbackend = "duckdb:///{db}"\nstate = "{configured}"\n')
    cfg = load_config(str(tmp_path / "sluice.toml"))
    url = f"sqlite:///{configured}"
    assert state.state_url(cfg) == url
    server, product = product_server(cfg, f"duckdb:///{db}")
    with ServerThread(server) as st, psycopg.connect(host="127.0.0.1", port=st.port, user="postgres",
                                                     dbname="shop", autocommit=True) as c:
        assert c.execute("SELECT k FROM t WHERE n = 3 ORDER BY k LIMIT 2").fetchall() == [(3,), (13,)]
        assert product.online is not None and product.online.wait_idle(120)
        assert product.online.store.state.url == url  # the online rewriter's store
        assert product.online.stats.searched == 1
    key, _ = fingerprint("SELECT k FROM t WHERE n = 3 ORDER BY k LIMIT 2", "duckdb")
    assert RewriteStore(StateStore(url)).get(key) is not None  # stored in the configured file
    assert not (tmp_path / ".sluice" / "state.sqlite").exists()  # and nothing in the default one
    # the query log and the LLM ledger, and `sluice rewrites --config`, use the same store
    assert querylog.store_for(cfg).url == url and _store_for(cfg).url == url
    r = CliRunner().invoke(app, ["rewrites", "list", "--all", "--config", str(tmp_path / "sluice.toml")])
    assert r.exit_code == 0 and key[:12] in r.stdout, r.stdout
    # $SLUICE_STATE overrides the file (as $SLUICE_BACKEND does; README, `sluice rewrites --help`)
    monkeypatch.setenv("SLUICE_STATE", f"sqlite:///{tmp_path / 'env.sqlite'}")
    assert state.state_url(cfg) == f"sqlite:///{tmp_path / 'env.sqlite'}"
    assert state.store_for(cfg).url == f"sqlite:///{tmp_path / 'env.sqlite'}"


def test_review_tools_show_a_rewrite_without_a_decision_as_pending(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from sqlsluice.cli import app

    monkeypatch.delenv("SLUICE_STATE", raising=False)
    url = f"sqlite:///{tmp_path / 'state.sqlite'}"
    key = "c" * 32
    RewriteStore(StateStore(url)).put(Entry(key, "SELECT 1", "SELECT 1", ["exists_to_in"], "EQUIVALENT", 2.0, 1.0,
                                            "v", 0.0))
    toml = tmp_path / "sluice.toml"
    for mode, shown in (("review", "pending"), ("on", "served")):
        toml.write_text(f'[server]\nstate = "{url}"\n\n[rewrite]\nmode = "{mode}"\n')
        r = CliRunner().invoke(app, ["rewrites", "list", "--config", str(toml)])
        assert r.exit_code == 0 and f"{key}  {shown}" in r.stdout, r.stdout
