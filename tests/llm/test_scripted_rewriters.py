"""LLM-R2 and LITHE through the rewrite gate, with the real ``openai`` client against the scripted
server and the ``tpcds_tiny`` DuckDB database.  These prove the plumbing, never LLM quality.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sqlsluice.config import Config, RewriteConfig
from sqlsluice.databases import Backend, connect
from sqlsluice.llm import LLM, usage_meter
from sqlsluice.llm.scripted_server import Reply, ScriptedLLMServer
from sqlsluice.rewriters import lithe, llm_r2
from sqlsluice.rewriters.api import catalog_for, rewrite
from sqlsluice.state import StateStore

# An ORDER BY inside a derived table that only feeds COUNT(*): sorting ~1.7M joined rows for nothing.
# Dropping it (SORT_REMOVE) keeps the result (the verifier proves it) and is orders of magnitude faster.
SLOW = ("SELECT COUNT(*) AS n FROM (SELECT a.ss_item_sk FROM store_sales AS a, item AS b WHERE b.i_item_sk < 60"
        " ORDER BY a.ss_list_price * b.i_current_price) AS t")
FAST = "SELECT COUNT(*) AS n FROM (SELECT a.ss_item_sk FROM store_sales AS a, item AS b WHERE b.i_item_sk < 60) AS t"
SIMPLE = "SELECT COUNT(*) AS n FROM store_sales WHERE ss_quantity > 50"
WRONG = "SELECT COUNT(*) AS n FROM store_sales WHERE ss_quantity >= 50"  # plausible, but not equivalent


@pytest.fixture(scope="module")
def db(tpcds_tiny: Path) -> Iterator[Backend]:
    b = connect(f"duckdb:///{tpcds_tiny}")
    yield b
    b.close()


def by_template(**replies: str | Reply) -> Callable[[dict[str, Any]], str | Reply]:
    """A responder choosing the reply by the prompt template a request was rendered from."""

    def respond(body: dict[str, Any]) -> str | Reply:
        user = body["messages"][-1]["content"]
        if "Rewrite rules you may use" in user:
            return replies["r2"]
        if "Make ONE further rewrite step" in user:
            return replies.get("step", "STEP: none")
        if "Table sizes (rows) of the tables" in user:
            return replies.get("db", replies["lithe"])
        if "Consider these strategies" in user:
            return replies.get("hints", replies["lithe"])
        return replies["lithe"]

    return respond


def fenced(sql: str, prose: str = "Here is a faster equivalent query:") -> str:
    return f"{prose}\n```sql\n{sql}\n```\nIt avoids unnecessary work."


def assert_tokens_add_up(srv: ScriptedLLMServer, llm: LLM, out_tokens: int | None = None) -> None:
    t = llm.ledger.totals()
    assert (t.input_tokens, t.output_tokens) == srv.reported_usage
    assert t.calls - t.cached_calls - t.failed_calls == len(srv.usage_log)
    if out_tokens is not None:
        assert out_tokens == sum(srv.reported_usage)


# -- LLM-R2 ----------------------------------------------------------------------------------

def test_scripted_llm_r2_correct_rule_list(db: Backend, srv: ScriptedLLMServer, make_llm: Callable[..., LLM]) -> None:
    srv.responder = by_template(r2='["SORT_REMOVE"]')
    llm = make_llm()
    out = rewrite(db, SLOW, rewriter="llm-r2", llm=llm, timeout_s=30)
    assert out.rewritten and out.source == "llm-r2" and out.rules == ["sort_remove"]
    assert out.verdict == "EQUIVALENT" and "ORDER BY" not in out.sql.upper()
    assert db.execute(out.sql).rows == db.execute(SLOW).rows
    prompt = srv.requests[0]["messages"][-1]["content"]
    assert "SORT_REMOVE: drop ORDER BY" in prompt and "Example 1:" in prompt and "Gain:" in prompt
    assert_tokens_add_up(srv, llm, out.tokens)


def test_scripted_llm_r2_unknown_rule_name(db: Backend, srv: ScriptedLLMServer, make_llm: Callable[..., LLM]) -> None:
    srv.responder = by_template(r2='I suggest ["FILTER_INTO_JOIN_TURBO", "SORT_REMOVE"] in that order.')
    before = llm_r2.STATS["unknown_rules"]
    cands, rep = llm_r2.propose_with_report(SLOW, catalog_for(db), db, llm=make_llm())
    assert rep.unknown == ["FILTER_INTO_JOIN_TURBO"] and rep.chosen == ["sort_remove"]
    assert llm_r2.STATS["unknown_rules"] == before + 1
    assert [c.rules for c in cands] == [["sort_remove"]] and "FILTER_INTO_JOIN_TURBO" in cands[0].notes


def test_scripted_llm_r2_malformed_output(db: Backend, srv: ScriptedLLMServer, make_llm: Callable[..., LLM]) -> None:
    srv.responder = by_template(r2="You could add an index on store_sales.")
    llm = make_llm()
    cands, rep = llm_r2.propose_with_report(SLOW, catalog_for(db), db, llm=llm)
    assert cands == [] and rep.malformed == 1 and rep.calls == 1
    out = rewrite(db, SLOW, rewriter="llm-r2", llm=llm, timeout_s=30)
    assert not out.rewritten and out.sql == SLOW and "no candidate" in out.reason


def test_scripted_llm_r2_rules_that_do_not_fire(db: Backend, srv: ScriptedLLMServer, make_llm: Callable[..., LLM]) -> None:
    srv.responder = by_template(r2='["UNION_REMOVE", "AGGREGATE_REMOVE"]')
    cands, rep = llm_r2.propose_with_report(SIMPLE, catalog_for(db), db, llm=make_llm())
    assert cands == [] and rep.unchanged == 1
    assert set(rep.not_fired) == {"union_branch_prune", "distinct_remove_under_keys"}


# -- LITHE -----------------------------------------------------------------------------------

def test_scripted_lithe_correct_rewrite_is_served(db: Backend, srv: ScriptedLLMServer,
                                                   make_llm: Callable[..., LLM]) -> None:
    srv.responder = by_template(lithe=fenced(FAST), step="STEP: none\n```sql\n" + FAST + "\n```")
    llm = make_llm()
    out = rewrite(db, SLOW, rewriter="lithe", llm=llm, timeout_s=30)
    assert out.rewritten and out.source == "lithe" and out.verdict == "EQUIVALENT"
    assert out.rules[0].startswith("lithe:lithe_") and out.speedup is not None
    assert db.execute(out.sql).rows == db.execute(SLOW).rows
    # the database-sensitive prompt carried sizes, selectivities and redundancies from the database
    db_prompt = next(r["messages"][-1]["content"] for r in srv.requests
                     if "Table sizes (rows)" in r["messages"][-1]["content"])
    assert "store_sales: 28," in db_prompt and "item: b.i_item_sk < 60" not in db_prompt
    assert "i_item_sk < 60" in db_prompt and "sample of" in db_prompt
    assert_tokens_add_up(srv, llm, out.tokens)


def test_scripted_lithe_wrong_rewrite_rejected_with_counterexample(
        db: Backend, srv: ScriptedLLMServer, make_llm: Callable[..., LLM], store: StateStore,
        caplog: pytest.LogCaptureFixture) -> None:
    srv.responder = by_template(lithe=fenced(WRONG), step="STEP: none")
    llm = make_llm()
    with caplog.at_level(logging.WARNING, logger="sqlsluice.rewriters.lithe"), usage_meter() as meter:
        out = rewrite(db, SIMPLE, rewriter="lithe", llm=llm, timeout_s=30,
                      config=Config(rewrite=RewriteConfig(policy="tested")))
    assert not out.rewritten and out.sql == SIMPLE  # never served
    assert any("rejected a wrong rewrite" in r.message and "counterexample" in r.message for r in caplog.records)
    rej = lithe.rejections(store)
    assert rej and rej[0]["verdict"] == "NOT_EQUIVALENT" and rej[0]["candidate"].endswith(">= 50")
    cex = json.loads(rej[0]["counterexample"])
    assert cex["inserts"] and cex["q1_rows"] != cex["q2_rows"]
    # no candidate survived, so the tokens spent are counted by the meter (and the ledger)
    assert_tokens_add_up(srv, llm, meter.tokens)


def test_scripted_lithe_wrong_rewrite_refuted_by_gate_too(
        db: Backend, srv: ScriptedLLMServer, make_llm: Callable[..., LLM]) -> None:
    """Even with LITHE's own guard off, the gate's verifier refuses the wrong rewrite."""
    srv.responder = by_template(lithe=fenced(WRONG), step="STEP: none")
    cands, _ = lithe.propose_with_report(SIMPLE, catalog_for(db), db, llm=make_llm(), verify_guard=False,
                                         mcts_iterations=0)
    assert [c.sql for c in cands] == [WRONG]
    from sqlsluice.verifiers import verify

    v = verify(SIMPLE, cands[0].sql, catalog_for(db), dialect="duckdb", time_budget_s=2.0)
    assert v.verdict == "NOT_EQUIVALENT" and v.counterexample is not None


def test_scripted_lithe_slower_rewrite_rejected(db: Backend, srv: ScriptedLLMServer,
                                                make_llm: Callable[..., LLM]) -> None:
    srv.responder = by_template(lithe=fenced(SLOW), step="STEP: none")
    out = rewrite(db, FAST, rewriter="lithe", llm=make_llm(), timeout_s=30)
    assert not out.rewritten and out.sql == FAST
    # verified (the sort is provably irrelevant), then rejected by the timed run
    assert out.candidates_tried == 1 and out.reason != "no candidate passed verification"


def test_scripted_lithe_malformed_output(db: Backend, srv: ScriptedLLMServer, make_llm: Callable[..., LLM]) -> None:
    srv.responder = by_template(lithe="I would add an index on ss_quantity.", hints="```python\nprint('x')\n```",
                                db="```sql\nSELEKT COUNT(* FROM\n```", step="STEP: add an index")
    llm = make_llm()
    cands, rep = lithe.propose_with_report(SIMPLE, catalog_for(db), db, llm=llm)
    assert cands == [] and rep.malformed >= 3 and rep.calls == len(srv.requests)
    out = rewrite(db, SIMPLE, rewriter="lithe", llm=llm, timeout_s=30)
    assert not out.rewritten and "no candidate" in out.reason


def test_scripted_lithe_search_uses_logprobs(db: Backend, srv: ScriptedLLMServer,
                                              make_llm: Callable[..., LLM]) -> None:
    # the ensemble answers with the query unchanged; the search's first step finds the rewrite
    srv.responder = by_template(lithe=fenced(SLOW), step="STEP: drop the ORDER BY\n```sql\n" + FAST + "\n```")
    cands, rep = lithe.propose_with_report(SLOW, catalog_for(db), db, llm=make_llm(), mcts_iterations=2)
    assert rep.unchanged >= 3 and rep.expansions >= 1
    assert [c.rules for c in cands] == [["lithe:drop the ORDER BY"]]
    assert "mean token logprob" in cands[0].notes
    assert all(r.get("logprobs") is True for r in srv.requests)


def test_scripted_lithe_search_without_logprobs(db: Backend, srv: ScriptedLLMServer,
                                                 make_llm: Callable[..., LLM]) -> None:
    step = "STEP: drop the ORDER BY\n```sql\n" + FAST + "\n```"
    srv.responder = by_template(lithe=Reply(content=fenced(SLOW), logprobs=False),
                                step=Reply(content=step, logprobs=False))
    cands, rep = lithe.propose_with_report(SLOW, catalog_for(db), db, llm=make_llm(), mcts_iterations=2)
    assert [c.rules for c in cands] == [["lithe:drop the ORDER BY"]]
    assert "mean token logprob" not in cands[0].notes  # flat prior


def test_scripted_lithe_token_budget(db: Backend, srv: ScriptedLLMServer, make_llm: Callable[..., LLM]) -> None:
    srv.responder = by_template(lithe=fenced(SLOW), step="STEP: none")
    cands, rep = lithe.propose_with_report(SLOW, catalog_for(db), db, llm=make_llm(), budget=50)
    assert rep.calls == 1 and len(srv.requests) == 1 and rep.stopped == "token budget spent"
    assert rep.tokens == sum(srv.reported_usage) > 50


def test_scripted_lithe_timeout(db: Backend, srv: ScriptedLLMServer, make_llm: Callable[..., LLM]) -> None:
    srv.responder = lambda body: Reply(content=fenced(FAST), delay=1.0)
    llm = make_llm(timeout_s=0.2, max_retries=1)
    cands, rep = lithe.propose_with_report(SLOW, catalog_for(db), db, llm=llm)
    assert cands == [] and rep.calls == 0 and "timed out" in rep.errors[0]
    assert len(srv.requests) == 2  # one try and one retry, then the stage gives up
    assert llm.ledger.totals().failed_calls == 2


def test_scripted_lithe_429_then_success(db: Backend, srv: ScriptedLLMServer, make_llm: Callable[..., LLM]) -> None:
    srv.enqueue(Reply(status=429))
    srv.responder = by_template(lithe=fenced(FAST), step="STEP: none")
    llm = make_llm()
    cands, rep = lithe.propose_with_report(SLOW, catalog_for(db), db, llm=llm, mcts_iterations=0)
    assert [c.sql for c in cands] == [FAST] and not rep.errors
    assert llm.ledger.totals().failed_calls == 1
    assert_tokens_add_up(srv, llm, sum(c.tokens for c in cands))


def test_scripted_lithe_search_goes_several_steps_deep(db: Backend, srv: ScriptedLLMServer,
                                                        make_llm: Callable[..., LLM]) -> None:
    merged = "SELECT COUNT(*) AS n FROM store_sales AS a, item AS b WHERE b.i_item_sk < 60"

    def respond(body: dict[str, Any]) -> str:
        user = body["messages"][-1]["content"]
        if "Make ONE further rewrite step" not in user:
            return "Sorry, I do not know."  # the ensemble fails; only the search finds something
        current = user.split("Current query")[1]
        if "ORDER BY" in current:
            return "STEP: drop the sort\n```sql\n" + FAST + "\n```"
        if "AS t" in current:
            return "STEP: merge the derived table\n```sql\n" + merged + "\n```"
        return "STEP: none\n```sql\n" + merged + "\n```"

    srv.responder = respond
    cands, rep = lithe.propose_with_report(SLOW, catalog_for(db), db, llm=make_llm(), mcts_iterations=10)
    assert rep.malformed == 3 and rep.stopped == "search space exhausted"
    paths = {tuple(c.rules): c.sql for c in cands}
    assert paths[("lithe:drop the sort",)] == FAST
    assert paths[("lithe:drop the sort", "lithe:merge the derived table")] == merged
    for sql in paths.values():
        assert db.execute(sql).rows == db.execute(SLOW).rows


def test_scripted_llm_r2_several_samples(db: Backend, srv: ScriptedLLMServer, make_llm: Callable[..., LLM]) -> None:
    srv.enqueue('["SORT_REMOVE"]', '["SORT_REMOVE", "PROJECT_MERGE"]', '["SORT_REMOVE"]')
    cands, rep = llm_r2.propose_with_report(SLOW, catalog_for(db), db, llm=make_llm(), samples=3)
    assert rep.calls == 3 and rep.unchanged == 1  # the third sample repeats the first
    assert [c.rules for c in cands] == [["sort_remove"], ["sort_remove", "subquery_merge"]]
    assert srv.requests[0]["temperature"] == 0.0 and srv.requests[1]["temperature"] == 0.8
    assert sum(c.tokens for c in cands) == sum(srv.reported_usage)
