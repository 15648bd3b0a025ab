"""The LLM layer without HTTP: templates, prices, retries and backoff, cache keys (in-process scripted model)."""

from __future__ import annotations

import string

import pytest

from sqlsluice.errors import InvalidParameterValue, LLMError
from sqlsluice.llm import (
    LLM,
    Completion,
    Options,
    PromptTemplate,
    RetryableLLMError,
    ScriptedProvider,
    cost_usd,
    load_prompt,
    price_for,
)
from sqlsluice.llm.prompts import list_prompts
from sqlsluice.state import StateStore

SAMPLE_VARS = {"query": "SELECT 1", "schema": "", "dialect": "duckdb", "table_sizes": "", "selectivities": "",
               "redundancies": "", "original": "SELECT 1", "depth": 0, "steps": "", "rules": "", "demonstrations": ""}


def test_shipped_prompts_render_and_are_versioned() -> None:
    prompts = list_prompts()
    assert {"lithe_basic", "lithe_hints", "lithe_db_sensitive", "lithe_step", "llm_r2_select"} <= {p.name for p in prompts}
    for p in prompts:
        assert p.version >= 1 and len(p.hash) == 16
        names = set(string.Template(p.system).get_identifiers()) | set(string.Template(p.template).get_identifiers())
        msgs = p.render({n: SAMPLE_VARS.get(n, "x") for n in names})
        assert msgs[-1].role == "user" and "$" not in msgs[-1].content.replace("$$", "")


def test_render_missing_variable_is_an_error() -> None:
    with pytest.raises(InvalidParameterValue, match="missing variable 'query'"):
        load_prompt("lithe_basic").render({"schema": "", "dialect": "duckdb"})


def test_render_leaves_braces_and_values_alone() -> None:
    t = PromptTemplate(name="t", template='JSON {"a": 1} for $q')
    assert t.render({"q": "SELECT '$x' FROM t WHERE a = $1"})[0].content == \
        'JSON {"a": 1} for SELECT \'$x\' FROM t WHERE a = $1'


def test_template_hash_changes_with_text_and_options() -> None:
    a = PromptTemplate(name="t", template="x $q")
    assert a.hash != PromptTemplate(name="t", template="y $q").hash
    assert a.hash != PromptTemplate(name="t", template="x $q", defaults={"temperature": 0.5}).hash
    assert a.hash != PromptTemplate(name="t", version=2, template="x $q").hash


def test_template_defaults_and_overrides() -> None:
    t = PromptTemplate(name="t", template="x", defaults={"max_tokens": 77, "temperature": 0.3})
    assert t.options().max_tokens == 77
    o = t.options(Options(temperature=0.9))
    assert (o.max_tokens, o.temperature) == (77, 0.9)
    with pytest.raises(InvalidParameterValue):
        PromptTemplate(name="t", template="x", defaults={"tempreature": 1}).options()


def test_prices_prefix_and_override() -> None:
    assert price_for("gpt-4o-mini") == (0.15, 0.60)
    assert price_for("gpt-4o-2024-08-06") == (2.50, 10.00)
    assert price_for("llama3:8b") is None and cost_usd("llama3:8b", 1000, 1000) == 0.0
    assert cost_usd("my-model", 1_000_000, 500_000, {"my-model": (1.0, 4.0)}) == pytest.approx(3.0)


def test_retry_backoff_then_success(tmp_path) -> None:
    p = ScriptedProvider(RetryableLLMError("busy", status=503), RetryableLLMError("busy", status=429), "ok")
    llm = LLM(p, model="m", store=StateStore(f"sqlite:///{tmp_path}/s.sqlite"), backoff_s=0.001)
    assert llm.chat([{"role": "user", "content": "x"}], tag="r").text == "ok"
    t = llm.ledger.totals(tag="r")
    assert t.calls == 3 and t.failed_calls == 2 and t.output_tokens == 1
    assert len(p.history) == 3


def test_non_retryable_error_propagates(tmp_path) -> None:
    p = ScriptedProvider(LLMError("bad request"), "never")
    llm = LLM(p, model="m", store=StateStore(f"sqlite:///{tmp_path}/s.sqlite"))
    with pytest.raises(LLMError, match="bad request"):
        llm.chat([{"role": "user", "content": "x"}])
    assert len(p.history) == 1


def test_cache_can_be_bypassed_and_completion_returned_verbatim(tmp_path) -> None:
    st = StateStore(f"sqlite:///{tmp_path}/s.sqlite")
    p = ScriptedProvider("a", "b")
    llm = LLM(p, model="m", store=st)
    msgs = [{"role": "user", "content": "same"}]
    assert llm.chat(msgs).text == "a"
    assert llm.chat(msgs).text == "a"  # cached
    assert llm.chat(msgs, cache=False).text == "b"
    assert len(p.history) == 2
    # a second LLM on the same store shares the cache
    assert LLM(ScriptedProvider(), model="m", store=st).chat(msgs).cached


def test_usage_reported_by_provider_is_recorded_verbatim(tmp_path) -> None:
    from sqlsluice.llm import Choice, Usage

    comp = Completion(choices=[Choice(text="x")], usage=Usage(input_tokens=123, output_tokens=45),
                      model="gpt-4o-mini", provider="scripted")
    llm = LLM(ScriptedProvider(comp), model="gpt-4o-mini", store=StateStore(f"sqlite:///{tmp_path}/s.sqlite"))
    c = llm.chat([{"role": "user", "content": "x"}], template="probe")
    t = llm.ledger.totals(template="probe")
    assert (t.input_tokens, t.output_tokens) == (123, 45)
    assert c.cost_usd == pytest.approx(t.cost_usd) == pytest.approx((123 * 0.15 + 45 * 0.6) / 1e6)


def test_transformers_provider_needs_the_extra() -> None:
    import importlib.util

    from sqlsluice.config import Config, LLMConfig
    from sqlsluice.errors import LLMNotConfigured
    from sqlsluice.llm import get_llm

    if importlib.util.find_spec("transformers") and importlib.util.find_spec("torch"):
        pytest.skip("transformers is installed here")
    with pytest.raises(LLMNotConfigured, match=r"pip install 'sqlsluice\[local\]'"):
        get_llm(Config(llm=LLMConfig(provider="transformers", model_path="/models/x")),
                store=StateStore("sqlite:///:memory:"))


def test_usage_meter_counts_nested_blocks(tmp_path) -> None:
    from sqlsluice.llm import usage_meter

    llm = LLM(ScriptedProvider("a b", "c"), model="m", store=StateStore(f"sqlite:///{tmp_path}/s.sqlite"))
    with usage_meter() as outer:
        llm.chat([{"role": "user", "content": "one"}])
        with usage_meter() as inner:
            llm.chat([{"role": "user", "content": "two"}])
            llm.chat([{"role": "user", "content": "two"}])  # cache hit
    assert (inner.calls, inner.cached_calls, inner.output_tokens) == (2, 1, 1)
    assert (outer.calls, outer.output_tokens) == (3, 3)
    assert outer.tokens == llm.ledger.totals().tokens
