"""Providers: OpenAI-compatible HTTP (``openai`` client), local ``transformers``, and an
in-process scripted model for unit tests.

Providers do one call and translate errors; retries, the concurrency limit, caching and
the ledger live in :class:`sqlsluice.llm.client.LLM`.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

from sqlsluice.errors import LLMError, LLMNotConfigured
from sqlsluice.llm.base import Choice, Completion, Message, Options, Provider, TokenLogprob, Usage


class RetryableLLMError(LLMError):
    """A transient failure (HTTP 429/5xx, connection error, timeout): worth another try."""

    def __init__(self, message: str, *, retry_after: float | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status


class LLMTimeout(RetryableLLMError):
    sqlstate = "57014"  # query_canceled (statement timeout)


class OpenAIProvider(Provider):
    """Any OpenAI-compatible chat endpoint: OpenAI, vLLM, Ollama, llama.cpp server."""

    name = "openai"
    supports_logprobs = True
    supports_n = True
    needs_key = "OPENAI_API_KEY"

    def __init__(self, *, base_url: str | None, api_key: str, timeout_s: float = 60.0) -> None:
        import openai

        self.base_url = base_url
        self.timeout_s = timeout_s
        # retries are ours (with backoff and ledger entries), not the client's
        self.client = openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout_s, max_retries=0)

    def complete(self, messages: list[Message], *, model: str, options: Options) -> Completion:
        import openai

        kwargs: dict[str, Any] = {
            "model": model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "temperature": options.temperature,
            "max_tokens": options.max_tokens,
        }
        if options.n != 1:
            kwargs["n"] = options.n
        if options.seed is not None:
            kwargs["seed"] = options.seed
        if options.stop:
            kwargs["stop"] = options.stop
        if options.logprobs:
            kwargs["logprobs"] = True
            if options.top_logprobs:
                kwargs["top_logprobs"] = options.top_logprobs
        timeout = options.timeout_s if options.timeout_s is not None else self.timeout_s
        t0 = time.perf_counter()
        try:
            resp = self.client.chat.completions.create(timeout=timeout, **kwargs)
        except openai.APITimeoutError as e:
            raise LLMTimeout(f"LLM request timed out after {timeout:g}s ({self.base_url or 'api.openai.com'})") from e
        except openai.APIConnectionError as e:
            raise RetryableLLMError(f"cannot reach LLM endpoint {self.base_url or 'api.openai.com'}: {e}") from e
        except openai.APIStatusError as e:
            status = e.status_code
            retry_after = _retry_after(e.response.headers.get("retry-after") if e.response is not None else None)
            msg = f"LLM endpoint returned HTTP {status}: {_err_message(e)}"
            if status == 429 or status >= 500 or status == 408:
                raise RetryableLLMError(msg, retry_after=retry_after, status=status) from e
            if status in (401, 403):
                raise LLMNotConfigured(msg, hint="check the API key environment variable") from e
            raise LLMError(msg) from e
        latency = time.perf_counter() - t0
        choices: list[Choice] = []
        for ch in resp.choices:
            lps: list[TokenLogprob] | None = None
            if ch.logprobs is not None and ch.logprobs.content is not None:
                lps = [TokenLogprob(token=t.token, logprob=t.logprob,
                                    top={a.token: a.logprob for a in (t.top_logprobs or [])})
                       for t in ch.logprobs.content]
            choices.append(Choice(text=ch.message.content or "", logprobs=lps, finish_reason=ch.finish_reason))
        usage = Usage(input_tokens=resp.usage.prompt_tokens if resp.usage else 0,
                      output_tokens=resp.usage.completion_tokens if resp.usage else 0)
        return Completion(choices=choices, usage=usage, model=resp.model or model, provider=self.name,
                          latency_s=latency)


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _err_message(e: Any) -> str:
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if body.get("message"):
            return str(body["message"])
    return str(getattr(e, "message", e))


class TransformersProvider(Provider):
    """A local Hugging Face model from a path (optional extra ``sqlsluice[local]``).

    Log-probabilities come from the generation scores.  One generation at a time per model.
    """

    name = "transformers"
    supports_logprobs = True
    supports_n = True

    def __init__(self, model_path: str, *, device: str | None = None) -> None:
        try:
            import torch  # noqa: F401
            import transformers  # noqa: F401
        except ImportError as e:
            raise LLMNotConfigured(
                "llm.provider = 'transformers' needs the optional extra: pip install 'sqlsluice[local]'") from e
        self.model_path = model_path
        self.device = device
        self._model: Any = None
        self._tok: Any = None
        self._lock = threading.Lock()

    def _load(self) -> None:
        if self._model is not None:
            return
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            self._tok = AutoTokenizer.from_pretrained(self.model_path)
            self._model = AutoModelForCausalLM.from_pretrained(self.model_path)
        except OSError as e:
            raise LLMNotConfigured(f"cannot load local model from {self.model_path}: {e}") from e
        dev = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        self._model.to(dev)
        self._model.eval()

    def complete(self, messages: list[Message], *, model: str, options: Options) -> Completion:
        import torch

        with self._lock:
            self._load()
            tok, mdl = self._tok, self._model
            msgs = [{"role": m.role, "content": m.content} for m in messages]
            if getattr(tok, "chat_template", None):
                prompt = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
            else:
                prompt = "\n\n".join(f"{m['role']}: {m['content']}" for m in msgs) + "\n\nassistant: "
            enc = tok(prompt, return_tensors="pt").to(mdl.device)
            n_in = int(enc["input_ids"].shape[1])
            gen_kwargs: dict[str, Any] = dict(max_new_tokens=options.max_tokens, num_return_sequences=options.n,
                                              output_scores=True, return_dict_in_generate=True,
                                              pad_token_id=tok.pad_token_id or tok.eos_token_id)
            if options.temperature > 0:
                gen_kwargs.update(do_sample=True, temperature=options.temperature)
            else:
                gen_kwargs.update(do_sample=False)
            if options.seed is not None:
                torch.manual_seed(options.seed)
            t0 = time.perf_counter()
            with torch.no_grad():
                out = mdl.generate(**enc, **gen_kwargs)
            latency = time.perf_counter() - t0
            seqs = out.sequences[:, n_in:]
            # scores: one [batch, vocab] tensor per generated step
            logp = torch.stack([torch.log_softmax(s.float(), dim=-1) for s in out.scores], dim=1)
            choices: list[Choice] = []
            n_out = 0
            for b in range(seqs.shape[0]):
                ids = seqs[b].tolist()
                lps: list[TokenLogprob] = []
                for j, tid in enumerate(ids):
                    if tid == tok.pad_token_id or tid == tok.eos_token_id:
                        break
                    top: dict[str, float] = {}
                    if options.top_logprobs:
                        vals, idx = torch.topk(logp[b, j], options.top_logprobs)
                        top = {tok.decode([int(i)]): float(v) for v, i in zip(vals, idx, strict=True)}
                    lps.append(TokenLogprob(token=tok.decode([tid]), logprob=float(logp[b, j, tid]), top=top))
                n_out += len(lps)
                text = tok.decode(ids, skip_special_tokens=True)
                if options.stop:
                    for s in options.stop:
                        if s in text:
                            text = text[: text.index(s)]
                choices.append(Choice(text=text, logprobs=lps if options.logprobs else None, finish_reason="stop"))
        return Completion(choices=choices, usage=Usage(input_tokens=n_in, output_tokens=n_out),
                          model=model or self.model_path, provider=self.name, latency_s=latency)


class ScriptedProvider(Provider):
    """An in-process test model: ``enqueue`` replies (text, Completion or an exception), read ``history``.

    Usage is counted with the scripted server's stand-in tokenizer, so it is deterministic.
    """

    name = "scripted"
    supports_logprobs = True
    supports_n = True

    def __init__(self, *replies: str | Completion | Exception) -> None:
        self._queue: deque[str | Completion | Exception] = deque(replies)
        self.history: list[tuple[list[Message], str, Options]] = []
        self._lock = threading.Lock()

    def enqueue(self, *replies: str | Completion | Exception) -> None:
        with self._lock:
            self._queue.extend(replies)

    def complete(self, messages: list[Message], *, model: str, options: Options) -> Completion:
        from sqlsluice.llm.scripted_server import count_tokens

        with self._lock:
            self.history.append((list(messages), model, options))
            if not self._queue:
                raise LLMError("scripted model: no reply left")
            r = self._queue.popleft()
        if isinstance(r, Exception):
            raise r
        if isinstance(r, Completion):
            return r
        lps = [TokenLogprob(token=r, logprob=0.0)] if options.logprobs else None
        return Completion(choices=[Choice(text=r, logprobs=lps, finish_reason="stop")] * options.n,
                          usage=Usage(input_tokens=sum(count_tokens(m.content) for m in messages),
                                      output_tokens=count_tokens(r) * options.n),
                          model=model, provider=self.name)


PROVIDERS: dict[str, type[Provider]] = {
    "openai": OpenAIProvider,
    "transformers": TransformersProvider,
    "scripted": ScriptedProvider,
}
