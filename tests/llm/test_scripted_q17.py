"""Scripted LLM (a local OpenAI-compatible server with scripted replies) proposing rewrites of
TPC-H q17 under the default policy (``proved``): the correct decorrelation of the correlated
average is proved and served; wrong variants (a dropped predicate, a COUNT-bug decorrelation,
a reversed ORDER BY) are not.  These prove the plumbing and the gate, never LLM quality.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pytest

from sqlsluice.config import Config, RewriteConfig
from sqlsluice.databases import Backend, connect
from sqlsluice.databases.pgcluster import PgCluster
from sqlsluice.llm import LLM
from sqlsluice.llm.scripted_server import ScriptedLLMServer
from sqlsluice.rewriters.api import admit, catalog_for, rewrite

from .test_scripted_rewriters import by_template, fenced

Q17 = ("SELECT SUM(l_extendedprice) / 7.0 AS avg_yearly FROM lineitem, part WHERE p_partkey = l_partkey "
       "AND p_brand = 'Brand#23' AND p_container = 'MED BOX' "
       "AND l_quantity < (SELECT 0.2 * AVG(l_quantity) FROM lineitem WHERE l_partkey = p_partkey)")
# what a model proposes: the correlated average computed once per part, joined
Q17_DECORRELATED = (
    "SELECT SUM(l.l_extendedprice) / 7.0 AS avg_yearly FROM lineitem AS l, part AS p, "
    "(SELECT l2.l_partkey AS pk, 0.2 * AVG(l2.l_quantity) AS lim FROM lineitem AS l2 GROUP BY l2.l_partkey) AS a "
    "WHERE p.p_partkey = l.l_partkey AND p.p_brand = 'Brand#23' AND p.p_container = 'MED BOX' "
    "AND a.pk = p.p_partkey AND l.l_quantity < a.lim")
Q17_DROPPED_PREDICATE = Q17_DECORRELATED.replace(" AND p.p_container = 'MED BOX'", "")

# parts with no lineitem at all: the correlated COUNT is 0 for them, the join forgets them
ZERO = ("SELECT p_partkey FROM part WHERE p_size < 3 "
        "AND (SELECT COUNT(*) FROM lineitem WHERE l_partkey = p_partkey AND l_quantity > 49) = 0")
ZERO_COUNT_BUG = ("SELECT p.p_partkey FROM part AS p, (SELECT l.l_partkey AS pk, COUNT(*) AS n FROM lineitem AS l "
                  "WHERE l.l_quantity > 49 GROUP BY l.l_partkey) AS c WHERE p.p_size < 3 AND c.pk = p.p_partkey "
                  "AND c.n = 0")

TOP = ("SELECT p_partkey, p_retailprice FROM part WHERE p_retailprice > (SELECT AVG(l_extendedprice) / 30 "
       "FROM lineitem WHERE l_partkey = p_partkey) ORDER BY p_retailprice, p_partkey LIMIT 10")
TOP_REVERSED = ("SELECT p.p_partkey, p.p_retailprice FROM part AS p, (SELECT l.l_partkey AS pk, "
                "AVG(l.l_extendedprice) / 30 AS a FROM lineitem AS l GROUP BY l.l_partkey) AS x "
                "WHERE x.pk = p.p_partkey AND p.p_retailprice > x.a ORDER BY p.p_retailprice DESC, p.p_partkey LIMIT 10")
TOP_RIGHT = TOP_REVERSED.replace("p.p_retailprice DESC", "p.p_retailprice")


@pytest.fixture(scope="module")
def tpch(tmp_path_factory: pytest.TempPathFactory, pg_cluster: PgCluster) -> Iterator[Backend]:
    """TPC-H at sf 0.02 on PostgreSQL (no index on l_partkey: the correlated average is re-run
    per outer row, the decorrelated form aggregates once)."""
    from sqlsluice.bench.tpcds_load import copy_duckdb_to_postgres
    from sqlsluice.databases.tpcds import load_extension

    path = tmp_path_factory.mktemp("tpch") / "tpch.duckdb"
    con = duckdb.connect(str(path))
    load_extension(con, "tpch")
    con.execute("CALL dbgen(sf=0.02)")
    con.close()
    url = pg_cluster.create_database("tpch_q17")
    copy_duckdb_to_postgres(path, url, primary_keys=False)
    be = connect(url)
    yield be
    be.close()


def _lithe(db: Backend, srv: ScriptedLLMServer, make_llm: Callable[..., LLM], original: str, proposal: str):
    srv.responder = by_template(lithe=fenced(proposal), step="STEP: none")
    # generous verification budgets: proofs must not depend on how loaded the machine is
    return rewrite(db, original, rewriter="lithe", llm=make_llm(), timeout_s=60, verify_budget_s=15.0,
                   config=Config(rewrite=RewriteConfig(min_speedup=1.0)))


def test_scripted_q17_decorrelation_is_proved_and_served_by_default(
        tpch: Backend, srv: ScriptedLLMServer, make_llm: Callable[..., LLM]) -> None:
    assert Config().rewrite.policy == "proved"
    cat = catalog_for(tpch)
    assert admit(Q17, Q17_DECORRELATED, None, cat, "postgres", budget_s=15.0)
    out = _lithe(tpch, srv, make_llm, Q17, Q17_DECORRELATED)
    assert out.rewritten and out.source == "lithe", out.reason
    assert out.proof["status"] == "PROVED" and out.verdict == "EQUIVALENT"
    assert out.speedup is not None and out.speedup > 2, out  # measured on this database
    assert tpch.execute(out.sql).rows == tpch.execute(Q17).rows  # NUMERIC: exactly the same value
    assert [c.name for c in tpch.output_columns(out.sql)] == ["avg_yearly"]


@pytest.mark.parametrize(("original", "proposal"), [
    (Q17, Q17_DROPPED_PREDICATE),
    (ZERO, ZERO_COUNT_BUG),
    (TOP, TOP_REVERSED),
])
def test_scripted_wrong_rewrites_are_not_served(tpch: Backend, srv: ScriptedLLMServer,
                                                 make_llm: Callable[..., LLM], original: str, proposal: str) -> None:
    cat = catalog_for(tpch)
    assert not admit(original, proposal, None, cat, "postgres", budget_s=6.0)
    out = _lithe(tpch, srv, make_llm, original, proposal)
    assert not out.rewritten and out.sql == original, out


def test_the_right_order_is_admitted_where_the_reversed_one_is_not(tpch: Backend) -> None:
    cat = catalog_for(tpch)
    assert admit(TOP, TOP_RIGHT, None, cat, "postgres", budget_s=15.0)
    assert not admit(TOP, TOP_REVERSED, None, cat, "postgres", budget_s=6.0)


def test_admit_takes_ddl_too(tmp_path: Path) -> None:
    ddl = "CREATE TABLE t (k INT PRIMARY KEY, a INT); CREATE TABLE s (k INT PRIMARY KEY, tk INT, x INT)"
    orig = "SELECT t.k FROM t WHERE t.a > (SELECT MAX(s.x) FROM s WHERE s.tk = t.k)"
    good = ("SELECT t.k FROM t, (SELECT s.tk AS tk, MAX(s.x) AS m FROM s GROUP BY s.tk) AS d "
            "WHERE d.tk = t.k AND t.a > d.m")
    assert admit(orig, good, None, ddl, "duckdb", budget_s=15.0)
    assert not admit(orig, good.replace("MAX(s.x)", "MIN(s.x)"), None, ddl, "duckdb")
    # the tested policy admits an unproved candidate that no database refutes, proved never does
    unproved = "SELECT t.k FROM t WHERE t.a > (SELECT MAX(s.x) FROM s WHERE s.tk = t.k) AND t.k = t.k"
    assert admit(orig, unproved, None, ddl, "duckdb", policy="tested") or \
        admit(orig, unproved, None, ddl, "duckdb")
