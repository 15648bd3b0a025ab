"""Fixtures for the benchmark tests: a few Spider dev databases built in BIRD's layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sqlsluice.bench.spider import build_spider

# Small dev databases with 183 questions of every hardness level between them.
SPIDER_DBS = ("concert_singer", "pets_1", "battle_death", "poker_player", "orchestra")


@pytest.fixture(scope="session")
def spider_bird(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``dev.json`` + ``dev_databases/<db>/<db>.sqlite`` (and ``.duckdb``) for SPIDER_DBS."""
    out = tmp_path_factory.mktemp("spider_bird")
    build_spider(out, spider_dir=shared_data / "spider", dbs=list(SPIDER_DBS), duckdb=True)
    return out


@pytest.fixture()
def questions(spider_bird: Path) -> list[dict]:
    return json.loads((spider_bird / "dev.json").read_text())


def write_predictions(path: Path, sqls: dict[int, str], questions: list[dict]) -> Path:
    """BIRD's prediction format, keyed by question position."""
    path.write_text(json.dumps({str(i): f"{sql}\t----- bird -----\t{questions[i]['db_id']}"
                                for i, sql in sqls.items()}))
    return path
