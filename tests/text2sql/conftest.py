"""Fixtures for text-to-SQL tests: a real Spider database in DuckDB, a scripted LLM endpoint.

Scripted tests prove plumbing (routing, guards, logging); they never measure quality.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sqlsluice.config import Config
from sqlsluice.databases import Backend, connect
from sqlsluice.llm.scripted_server import Reply, ScriptedLLMServer
from sqlsluice.state import StateStore
from sqlsluice.text2sql.spider import build_spider_duckdb

_Q = re.compile(r"^Question: (.*)$", re.M)


@pytest.fixture(scope="session")
def concert_singer_file(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Spider's concert_singer (schema.sql translated from MySQL, CSVs loaded) in a DuckDB file."""
    return build_spider_duckdb(shared_data / "spider" / "databases" / "concert_singer",
                               tmp_path_factory.mktemp("spider") / "concert_singer.duckdb")


@pytest.fixture()
def concert_db(concert_singer_file: Path, tmp_path: Path) -> Iterator[Backend]:
    """A private copy per test (some tests add rows)."""
    p = tmp_path / "concert_singer.duckdb"
    shutil.copy(concert_singer_file, p)
    b = connect(f"duckdb:///{p}")
    yield b
    b.close()


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[StateStore]:
    st = StateStore(f"sqlite:///{tmp_path / 'state.sqlite'}")
    yield st
    st.close()


def template_of(body: dict[str, Any]) -> str:
    """Which of our prompts a request is (by its system message)."""
    system = body["messages"][0]["content"]
    for key, name in (("You translate questions", "basic"), ("You plan SQL", "decompose"),
                      ("following the plan", "plan_sql"), ("You fix", "repair"),
                      ("Think step by step", "cot"), ("You judge", "select")):
        if key in system:
            return name
    return "?"


def question_of(body: dict[str, Any]) -> str:
    m = _Q.search(body["messages"][-1]["content"])
    return m.group(1).strip() if m else ""


@dataclass
class Scripted:
    server: ScriptedLLMServer
    config: Config

    @property
    def calls(self) -> list[str]:
        return [template_of(b) for b in self.server.requests]


@pytest.fixture()
def scripted(tmp_path: Path) -> Iterator[Callable[[Callable[[str, str, dict[str, Any]], str | Reply]], Scripted]]:
    """``scripted(fn)`` starts a local OpenAI-compatible server whose reply to each request is
    ``fn(template, question, body)``, and a Config pointing at it."""
    servers: list[ScriptedLLMServer] = []

    def make(fn: Callable[[str, str, dict[str, Any]], str | Reply]) -> Scripted:
        srv = ScriptedLLMServer(responder=lambda body: fn(template_of(body), question_of(body), body)).start()
        servers.append(srv)
        cfg = Config.model_validate({
            "llm": {"base_url": srv.base_url, "models": {"default": "scripted-model"}, "max_retries": 0},
            "server": {"state": str(tmp_path / "state.sqlite")},
        })
        return Scripted(srv, cfg)

    yield make
    for s in servers:
        s.stop()
