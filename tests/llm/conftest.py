"""Fixtures for the LLM layer: a state store per test and the scripted OpenAI-compatible server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sqlsluice.config import Config, LLMConfig
from sqlsluice.llm import LLM, get_llm
from sqlsluice.llm.scripted_server import ScriptedLLMServer
from sqlsluice.state import StateStore


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[StateStore]:
    st = StateStore(f"sqlite:///{tmp_path / 'state.sqlite'}")
    yield st
    st.close()


@pytest.fixture()
def srv() -> Iterator[ScriptedLLMServer]:
    with ScriptedLLMServer() as s:
        yield s


@pytest.fixture()
def make_llm(srv: ScriptedLLMServer, store: StateStore) -> Callable[..., LLM]:
    """An LLM built by get_llm from a config pointing the real openai client at the scripted server."""

    def make(role: str = "rewrite", *, timeout_s: float = 10.0, max_retries: int = 3, cache: bool = True,
             prices: dict[str, tuple[float, float]] | None = None) -> LLM:
        cfg = Config(llm=LLMConfig(base_url=srv.base_url, models={"default": "scripted-model"},
                                   timeout_s=timeout_s, max_retries=max_retries, prices=prices or {}))
        llm = get_llm(cfg, role, store=store, cache=cache)
        llm.backoff_s = 0.01  # keep retry tests quick; the backoff schedule itself is unit-tested
        return llm

    return make
