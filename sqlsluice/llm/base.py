"""The provider interface every LLM backend implements (after simonw/llm).

Callers use :class:`LLM` (``sqlsluice.llm.get_llm(config, role)``) which renders a prompt
template, consults the response cache, calls the provider with retries and a concurrency
limit, and records usage in the ledger.  Providers only turn messages into completions.
"""

from __future__ import annotations

import abc
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field


class Options(BaseModel):
    """Generation options; strict so that a typo is an error, not a silent default."""

    model_config = ConfigDict(extra="forbid")
    temperature: float = 0.0
    max_tokens: int = 1024
    n: int = 1
    logprobs: bool = False
    top_logprobs: int | None = None
    seed: int | None = None
    stop: list[str] | None = None
    # per-call timeout in seconds (None: the configured ``llm.timeout_s``); not part of cache keys
    timeout_s: float | None = None


class Message(BaseModel):
    role: str  # system | user | assistant
    content: str


class TokenLogprob(BaseModel):
    token: str
    logprob: float
    top: dict[str, float] = Field(default_factory=dict)


class Choice(BaseModel):
    text: str
    logprobs: list[TokenLogprob] | None = None  # None when the provider returned none
    finish_reason: str | None = None


class Usage(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens


class Completion(BaseModel):
    choices: list[Choice]
    usage: Usage
    model: str
    provider: str
    latency_s: float = 0.0
    cached: bool = False
    template: str | None = None  # prompt template name (``adhoc`` for chat())
    template_hash: str | None = None
    cost_usd: float = 0.0  # from the price table; 0 for cache hits and unknown models

    @property
    def text(self) -> str:
        return self.choices[0].text if self.choices else ""


class Provider(abc.ABC):
    """One LLM backend.  Capabilities are class attributes."""

    name: ClassVar[str]
    supports_logprobs: ClassVar[bool] = False
    supports_n: ClassVar[bool] = False
    needs_key: ClassVar[str | None] = None  # env var holding the key, if any

    @abc.abstractmethod
    def complete(self, messages: list[Message], *, model: str, options: Options) -> Completion:
        """One chat completion.  Raises :class:`sqlsluice.errors.LLMError` subclasses."""
