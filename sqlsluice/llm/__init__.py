"""The shared LLM layer: providers, prompt templates, usage ledger and response cache.

>>> from sqlsluice.llm import get_llm            # doctest: +SKIP
>>> llm = get_llm(config, role="rewrite")         # doctest: +SKIP
>>> llm.complete("lithe_basic", {"query": sql, "schema": ddl}).text   # doctest: +SKIP

See docs/llm.md.
"""

from sqlsluice.llm.base import Choice, Completion, Message, Options, Provider, TokenLogprob, Usage
from sqlsluice.llm.client import LLM, UsageMeter, current_tag, get_llm, resolve_model, usage_meter, usage_tag
from sqlsluice.llm.ledger import Ledger, ResponseCache, UsageTotals, cost_usd, price_for
from sqlsluice.llm.prompts import PromptTemplate, add_prompt_dir, load_prompt, render
from sqlsluice.llm.providers import (
    LLMTimeout,
    OpenAIProvider,
    RetryableLLMError,
    ScriptedProvider,
    TransformersProvider,
)

__all__ = [
    "LLM", "Choice", "Completion", "LLMTimeout", "Ledger", "Message", "OpenAIProvider", "Options",
    "PromptTemplate", "Provider", "ResponseCache", "RetryableLLMError", "ScriptedProvider", "TokenLogprob",
    "TransformersProvider", "Usage", "UsageTotals", "add_prompt_dir", "cost_usd", "current_tag", "get_llm", "load_prompt",
    "UsageMeter", "price_for", "render", "resolve_model", "usage_meter", "usage_tag",
]
