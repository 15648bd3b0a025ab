"""``LLM``: template rendering, response cache, retries with backoff, a concurrency limit
and the usage ledger around one provider.

>>> from sqlsluice.llm import LLM, ScriptedProvider
>>> from sqlsluice.state import StateStore
>>> llm = LLM(ScriptedProvider("SELECT 1"), model="m", store=StateStore("sqlite:///:memory:"))
>>> llm.chat([{"role": "user", "content": "hi"}]).text
'SELECT 1'
>>> llm.ledger.totals().calls
1
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import random
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlsluice.config import Config, load_config
from sqlsluice.errors import LLMError, LLMNotConfigured
from sqlsluice.llm.base import Completion, Message, Options, Provider, Usage
from sqlsluice.llm.ledger import Ledger, ResponseCache, cache_key, cost_usd
from sqlsluice.llm.prompts import ADHOC, PromptTemplate, load_prompt
from sqlsluice.llm.providers import LLMTimeout, OpenAIProvider, RetryableLLMError, TransformersProvider
from sqlsluice.state import StateStore, default_store

_TAG: contextvars.ContextVar[str | None] = contextvars.ContextVar("sluice_llm_tag", default=None)
_METERS: contextvars.ContextVar[tuple[UsageMeter, ...]] = contextvars.ContextVar("sluice_llm_meters", default=())


@dataclass
class UsageMeter:
    """Usage of the LLM calls made inside one :func:`usage_meter` block (this thread/context)."""

    calls: int = 0
    cached_calls: int = 0
    failed_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def add(self, *, input_tokens: int, output_tokens: int, cost: float, cached: bool, failed: bool) -> None:
        with self._lock:
            self.calls += 1
            self.cached_calls += int(cached)
            self.failed_calls += int(failed)
            self.input_tokens += input_tokens
            self.output_tokens += output_tokens
            self.cost_usd += cost


@contextlib.contextmanager
def usage_meter() -> Iterator[UsageMeter]:
    """Count tokens and cost of every LLM call inside the block, including calls that produced
    nothing useful (``with usage_meter() as m: ...; m.tokens``).  Blocks may nest."""
    m = UsageMeter()
    token = _METERS.set((*_METERS.get(), m))
    try:
        yield m
    finally:
        _METERS.reset(token)
_SEMAPHORES: dict[tuple[str, str, int], threading.BoundedSemaphore] = {}
_SEM_LOCK = threading.Lock()


@contextlib.contextmanager
def usage_tag(tag: str | None) -> Iterator[None]:
    """Attribute every LLM call made inside the block (in this thread/context) to ``tag``."""
    token = _TAG.set(tag)
    try:
        yield
    finally:
        _TAG.reset(token)


def current_tag() -> str | None:
    """The tag set by the innermost :func:`usage_tag` block (None outside any)."""
    return _TAG.get()


def _semaphore(key: str, provider: str, limit: int) -> threading.BoundedSemaphore:
    k = (provider, key, max(1, limit))
    with _SEM_LOCK:
        if k not in _SEMAPHORES:
            _SEMAPHORES[k] = threading.BoundedSemaphore(k[2])
        return _SEMAPHORES[k]


class LLM:
    """One provider + model for one role, with caching, retries, a concurrency limit and a ledger."""

    def __init__(self, provider: Provider, *, model: str, role: str = "default", store: StateStore | None = None,
                 max_retries: int = 4, backoff_s: float = 0.5, max_backoff_s: float = 20.0,
                 concurrency: int = 4, cache: bool = True,
                 prices: dict[str, tuple[float, float]] | None = None, endpoint: str = "") -> None:
        self.provider = provider
        self.model = model
        self.role = role
        self.store = store if store is not None else default_store()
        self.ledger = Ledger(self.store)
        self.cache = ResponseCache(self.store) if cache else None
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.prices = prices or {}
        self._sem = _semaphore(endpoint or f"{id(provider)}", provider.name, concurrency)

    # -- public API ----------------------------------------------------------------------
    @property
    def supports_logprobs(self) -> bool:
        return self.provider.supports_logprobs

    def complete(self, template: str | PromptTemplate, variables: dict[str, Any], *,
                 options: Options | None = None, tag: str | None = None, cache: bool | None = None) -> Completion:
        """Render ``template`` with ``variables`` and complete it (cached, retried, recorded)."""
        tpl = template if isinstance(template, PromptTemplate) else load_prompt(template)
        messages = tpl.render(variables)
        return self._run(tpl.name, tpl.hash, messages, tpl.options(options), tag, cache)

    def chat(self, messages: Sequence[Message | dict[str, str]], *, options: Options | None = None,
             template: str = "adhoc", tag: str | None = None, cache: bool | None = None) -> Completion:
        """Complete ad-hoc messages; ``template`` names them in the ledger."""
        msgs = [m if isinstance(m, Message) else Message.model_validate(m) for m in messages]
        thash = ADHOC.hash if template == "adhoc" else PromptTemplate(name=template, template="").hash
        return self._run(template, thash, msgs, options or Options(), tag, cache)

    # -- machinery -----------------------------------------------------------------------
    def _record(self, *, template: str, template_hash: str, model: str, input_tokens: int, output_tokens: int,
                latency_s: float, cost: float, cached: bool, status: str, tag: str | None) -> None:
        self.ledger.record(provider=self.provider.name, model=model, role=self.role, template=template,
                           template_hash=template_hash, input_tokens=input_tokens, output_tokens=output_tokens,
                           latency_s=latency_s, cost_usd=cost, cached=cached, status=status, tag=tag)
        for m in _METERS.get():
            m.add(input_tokens=input_tokens, output_tokens=output_tokens, cost=cost, cached=cached,
                  failed=status != "ok")

    def _run(self, name: str, thash: str, messages: list[Message], options: Options,
             tag: str | None, cache: bool | None) -> Completion:
        tag = tag if tag is not None else _TAG.get()
        use_cache = self.cache is not None and (cache if cache is not None else True)
        key = cache_key(self.provider.name, self.model, thash, messages, options)
        if use_cache and self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                self._record(template=name, template_hash=thash, model=self.model, input_tokens=0, output_tokens=0,
                             latency_s=0.0, cost=0.0, cached=True, status="ok", tag=tag)
                return hit.model_copy(update={"cached": True, "usage": Usage(), "cost_usd": 0.0, "latency_s": 0.0})
        attempt = 0
        while True:
            t0 = time.perf_counter()
            try:
                with self._sem:
                    comp = self.provider.complete(messages, model=self.model, options=options)
                break
            except RetryableLLMError as e:
                self._record(template=name, template_hash=thash, model=self.model, input_tokens=0, output_tokens=0,
                             latency_s=time.perf_counter() - t0, cost=0.0, cached=False,
                             status="timeout" if isinstance(e, LLMTimeout) else f"retry:{e.status or 'conn'}",
                             tag=tag)
                if attempt >= self.max_retries:
                    kind = type(e)
                    raise kind(f"{e.message} (gave up after {attempt + 1} attempts)") from e
                delay = min(self.max_backoff_s, self.backoff_s * (2 ** attempt))
                delay = delay * (0.5 + random.random() / 2)
                if e.retry_after is not None:
                    delay = max(delay, min(e.retry_after, self.max_backoff_s))
                time.sleep(delay)
                attempt += 1
            except LLMError as e:  # not worth retrying (bad request, auth, no reply left): record, raise
                self._record(template=name, template_hash=thash, model=self.model, input_tokens=0, output_tokens=0,
                             latency_s=time.perf_counter() - t0, cost=0.0, cached=False,
                             status=f"error:{type(e).__name__}", tag=tag)
                raise
        cost = cost_usd(comp.model or self.model, comp.usage.input_tokens, comp.usage.output_tokens, self.prices)
        comp = comp.model_copy(update={"template": name, "template_hash": thash, "cost_usd": cost,
                                       "latency_s": comp.latency_s or time.perf_counter() - t0})
        self._record(template=name, template_hash=thash, model=comp.model or self.model,
                     input_tokens=comp.usage.input_tokens, output_tokens=comp.usage.output_tokens,
                     latency_s=comp.latency_s, cost=cost, cached=False, status="ok", tag=tag)
        if use_cache and self.cache is not None:
            self.cache.put(key, comp)
        return comp


def _store_for(config: Config) -> StateStore:
    """``$SLUICE_STATE``, else ``server.state``, else the default store (one per URL)."""
    from sqlsluice.state import store_for

    return store_for(config)


def resolve_model(config: Config, role: str) -> str | None:
    m = config.llm.models
    return m.get(role) or m.get("default") or os.environ.get("SLUICE_LLM_MODEL")


def get_llm(config: Config | None = None, role: str = "default", *, store: StateStore | None = None,
            cache: bool = True) -> LLM:
    """The configured LLM for ``role`` (e.g. ``text2sql``, ``rewrite``).

    OpenAI-compatible: ``llm.base_url`` or ``$OPENAI_BASE_URL``; key from ``$<llm.api_key_env>``
    (default ``OPENAI_API_KEY``; endpoints with a base URL may need none); model from
    ``llm.models[role]``, ``llm.models["default"]`` or ``$SLUICE_LLM_MODEL``.
    Local: ``llm.provider = "transformers"`` with ``llm.model_path``.
    Raises :class:`LLMNotConfigured` (SQLSTATE 55000) when nothing is configured.
    """
    cfg = config if config is not None else load_config()
    lc = cfg.llm
    st = store if store is not None else _store_for(cfg)
    common: dict[str, Any] = dict(role=role, store=st, max_retries=lc.max_retries, concurrency=lc.concurrency,
                                  cache=cache, prices=lc.prices)
    if lc.provider == "transformers":
        if not lc.model_path:
            raise LLMNotConfigured("llm.provider = 'transformers' needs llm.model_path in the config file")
        tp = TransformersProvider(lc.model_path)
        return LLM(tp, model=resolve_model(cfg, role) or os.path.basename(lc.model_path.rstrip("/")),
                   endpoint=lc.model_path, **common)
    base_url = lc.base_url or os.environ.get("OPENAI_BASE_URL") or None
    key = os.environ.get(lc.api_key_env) or os.environ.get("OPENAI_API_KEY")
    if not base_url and not key:
        raise LLMNotConfigured(
            "no LLM configured: set OPENAI_BASE_URL and/or OPENAI_API_KEY (and SLUICE_LLM_MODEL),"
            " or an [llm] section in sluice.toml",
            hint="see docs/llm.md")
    model = resolve_model(cfg, role)
    if not model:
        raise LLMNotConfigured(
            f"no model for LLM role {role!r}: set llm.models.{role} or llm.models.default in sluice.toml,"
            " or $SLUICE_LLM_MODEL")
    provider = OpenAIProvider(base_url=base_url, api_key=key or "not-needed", timeout_s=lc.timeout_s)
    return LLM(provider, model=model, endpoint=base_url or "https://api.openai.com/v1", **common)


__all__ = ["LLM", "LLMError", "UsageMeter", "current_tag", "get_llm", "usage_meter", "usage_tag"]
