"""The real ``openai`` client against the scripted server: retries, timeouts, logprobs, ledger.

These prove the plumbing, never LLM quality.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from sqlsluice.config import Config, LLMConfig
from sqlsluice.errors import LLMError, LLMNotConfigured
from sqlsluice.llm import LLM, LLMTimeout, Options, get_llm, usage_tag
from sqlsluice.llm.scripted_server import Reply, ScriptedLLMServer
from sqlsluice.state import StateStore


def test_scripted_plain_completion_records_reported_usage(srv: ScriptedLLMServer, make_llm: Callable[..., LLM]) -> None:
    srv.enqueue("SELECT 1")
    llm = make_llm()
    c = llm.complete("lithe_basic", {"query": "SELECT 1 FROM t", "schema": "CREATE TABLE t (a INT);",
                                     "dialect": "duckdb"})
    assert c.text == "SELECT 1"
    assert c.provider == "openai" and c.model == "scripted-model" and not c.cached
    assert c.template == "lithe_basic" and c.template_hash
    # the request carried the rendered template, system prompt first
    msgs = srv.requests[0]["messages"]
    assert msgs[0]["role"] == "system" and "SELECT 1 FROM t" in msgs[-1]["content"]
    tot = llm.ledger.totals()
    assert (tot.input_tokens, tot.output_tokens) == srv.reported_usage
    assert (c.usage.input_tokens, c.usage.output_tokens) == srv.reported_usage


def test_scripted_429_then_success(srv: ScriptedLLMServer, make_llm: Callable[..., LLM]) -> None:
    srv.enqueue(Reply(status=429, error_message="slow down"), Reply(status=503), "SELECT 2")
    llm = make_llm()
    c = llm.chat([{"role": "user", "content": "go"}], tag="q429")
    assert c.text == "SELECT 2"
    assert len(srv.requests) == 3
    t = llm.ledger.totals(tag="q429")
    assert t.calls == 3 and t.failed_calls == 2
    assert (t.input_tokens, t.output_tokens) == srv.reported_usage


def test_scripted_429_gives_up_after_retries(srv: ScriptedLLMServer, make_llm: Callable[..., LLM]) -> None:
    srv.enqueue(*[Reply(status=429)] * 3)
    llm = make_llm(max_retries=2)
    with pytest.raises(LLMError, match="HTTP 429.*gave up after 3 attempts"):
        llm.chat([{"role": "user", "content": "go"}])
    assert len(srv.requests) == 3


def test_scripted_client_error_is_not_retried(srv: ScriptedLLMServer, make_llm: Callable[..., LLM]) -> None:
    srv.enqueue(Reply(status=400, error_message="bad request body"), "never sent")
    with pytest.raises(LLMError, match="HTTP 400: bad request body"):
        make_llm().chat([{"role": "user", "content": "go"}])
    assert len(srv.requests) == 1


def test_scripted_timeout(srv: ScriptedLLMServer, make_llm: Callable[..., LLM]) -> None:
    srv.enqueue(Reply(content="late", delay=1.5), Reply(content="late", delay=1.5))
    llm = make_llm(timeout_s=0.3, max_retries=1)
    with pytest.raises(LLMTimeout, match="timed out") as ei:
        llm.chat([{"role": "user", "content": "go"}])
    assert ei.value.sqlstate == "57014"
    t = llm.ledger.totals()
    assert t.failed_calls == 2 and t.tokens == 0


def test_scripted_timeout_then_success(srv: ScriptedLLMServer, make_llm: Callable[..., LLM]) -> None:
    srv.enqueue(Reply(content="late", delay=1.5), "on time")
    llm = make_llm()
    c = llm.chat([{"role": "user", "content": "go"}], options=Options(timeout_s=0.3))
    assert c.text == "on time"
    assert (llm.ledger.totals().input_tokens, llm.ledger.totals().output_tokens) == srv.reported_usage


def test_scripted_logprobs_present(srv: ScriptedLLMServer, make_llm: Callable[..., LLM]) -> None:
    srv.enqueue("SELECT a FROM t")
    c = make_llm().chat([{"role": "user", "content": "go"}], options=Options(logprobs=True, top_logprobs=3))
    lps = c.choices[0].logprobs
    assert lps is not None and [t.token for t in lps] == ["SELECT", "a", "FROM", "t"]
    assert all(t.logprob <= 0 for t in lps) and len(lps[0].top) == 3
    assert srv.requests[0]["logprobs"] is True and srv.requests[0]["top_logprobs"] == 3


def test_scripted_logprobs_absent(srv: ScriptedLLMServer, make_llm: Callable[..., LLM]) -> None:
    srv.enqueue(Reply(content="SELECT 1", logprobs=False), "SELECT 2")
    llm = make_llm()
    asked = llm.chat([{"role": "user", "content": "a"}], options=Options(logprobs=True))
    assert asked.text == "SELECT 1" and asked.choices[0].logprobs is None
    plain = llm.chat([{"role": "user", "content": "b"}])
    assert plain.choices[0].logprobs is None and "logprobs" not in srv.requests[1]


def test_scripted_cache_hit_costs_nothing(srv: ScriptedLLMServer, make_llm: Callable[..., LLM]) -> None:
    srv.enqueue("SELECT 1")
    llm = make_llm(prices={"scripted-model": (1.0, 2.0)})
    v = {"query": "SELECT * FROM t", "schema": "", "dialect": "duckdb"}
    first = llm.complete("lithe_basic", v, tag="q1")
    second = llm.complete("lithe_basic", v, tag="q1")
    assert len(srv.requests) == 1
    assert second.text == first.text and second.cached and second.usage.total == 0 and second.cost_usd == 0
    t = llm.ledger.totals(tag="q1")
    assert t.calls == 2 and t.cached_calls == 1
    assert (t.input_tokens, t.output_tokens) == srv.reported_usage
    pin, pout = srv.reported_usage
    assert t.cost_usd == pytest.approx((pin * 1.0 + pout * 2.0) / 1e6)
    # different options -> a different cache key -> a real call
    srv.enqueue("SELECT 2")
    third = llm.complete("lithe_basic", v, options=Options(temperature=0.7), tag="q1")
    assert third.text == "SELECT 2" and len(srv.requests) == 2


def test_scripted_threads_share_ledger(srv: ScriptedLLMServer, make_llm: Callable[..., LLM]) -> None:
    srv.responder = lambda body: Reply(content=f"echo {body['messages'][-1]['content']}", delay=0.05)
    llm = make_llm()
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            with usage_tag(f"t{i % 3}"):
                llm.chat([{"role": "user", "content": f"question {i}"}])
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(12)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    assert len(srv.requests) == 12
    by_tag = llm.ledger.by("tag")
    assert sorted(by_tag) == ["t0", "t1", "t2"] and all(v.calls == 4 for v in by_tag.values())
    total = llm.ledger.totals()
    assert (total.input_tokens, total.output_tokens) == srv.reported_usage


def test_scripted_model_per_role(srv: ScriptedLLMServer, store: StateStore) -> None:
    srv.enqueue("a", "b")
    cfg = Config(llm=LLMConfig(base_url=srv.base_url, models={"default": "small", "rewrite": "big"}))
    get_llm(cfg, "text2sql", store=store).chat([{"role": "user", "content": "x"}])
    get_llm(cfg, "rewrite", store=store).chat([{"role": "user", "content": "x"}])
    assert [r["model"] for r in srv.requests] == ["small", "big"]
    assert set(Ledger_by_role(store)) == {"text2sql", "rewrite"}


def Ledger_by_role(store: StateStore) -> dict[str | None, object]:
    from sqlsluice.llm import Ledger

    return dict(Ledger(store).by("role"))


def test_scripted_env_configuration(srv: ScriptedLLMServer, store: StateStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
    monkeypatch.setenv("SLUICE_LLM_MODEL", "env-model")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    srv.enqueue("ok")
    assert get_llm(Config(), store=store).chat([{"role": "user", "content": "x"}]).text == "ok"
    assert srv.requests[0]["model"] == "env-model"


def test_not_configured(store: StateStore, monkeypatch: pytest.MonkeyPatch) -> None:
    for v in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "SLUICE_LLM_MODEL"):
        monkeypatch.delenv(v, raising=False)
    with pytest.raises(LLMNotConfigured, match="no LLM configured") as ei:
        get_llm(Config(), store=store)
    assert ei.value.sqlstate == "55000"
    with pytest.raises(LLMNotConfigured, match="no model for LLM role 'rewrite'"):
        get_llm(Config(llm=LLMConfig(base_url="http://127.0.0.1:9/v1")), "rewrite", store=store)
    with pytest.raises(LLMNotConfigured, match="model_path"):
        get_llm(Config(llm=LLMConfig(provider="transformers")), store=store)


def test_scripted_ledger_and_cache_in_postgres_state(srv: ScriptedLLMServer, pg_db: str) -> None:
    """Shared state for several proxies: the ledger and the cache in a PostgreSQL schema."""
    store = StateStore(pg_db)
    try:
        srv.enqueue("SELECT 1", "SELECT 2")
        cfg = Config(llm=LLMConfig(base_url=srv.base_url, models={"default": "scripted-model"}))
        a, b = get_llm(cfg, "rewrite", store=store), get_llm(cfg, "rewrite", store=store)
        assert a.chat([{"role": "user", "content": "q"}], tag="t").text == "SELECT 1"
        hit = b.chat([{"role": "user", "content": "q"}], tag="t")  # another proxy: served from the cache
        assert hit.cached and hit.text == "SELECT 1" and len(srv.requests) == 1
        t = b.ledger.totals(tag="t")
        assert (t.calls, t.cached_calls) == (2, 1) and (t.input_tokens, t.output_tokens) == srv.reported_usage
        assert store.execute("SELECT COUNT(*) FROM sluice_llm_usage")[0][0] == 2
    finally:
        store.close()
