"""Fixtures: a real sqlsluice server over DuckDB, started in-process on a free port."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sqlsluice.config import Config
from sqlsluice.middleware.server import ServerThread, SluiceServer


@dataclass
class Running:
    host: str
    port: int
    server: SluiceServer
    db_path: Path

    def dsn(self, user: str = "sluice", dbname: str = "tpcds", **extra: str) -> str:
        from psycopg.conninfo import make_conninfo

        return make_conninfo(host=self.host, port=self.port, user=user, dbname=dbname, **extra)

    def url(self, driver: str = "postgresql+psycopg", user: str = "sluice") -> str:
        return f"{driver}://{user}@{self.host}:{self.port}/tpcds"


def start(tmp: Path, config: Config | None = None) -> tuple[ServerThread, Running]:
    db = tmp / "mw.duckdb"
    srv = SluiceServer(config or Config(), backend_url=f"duckdb:///{db}")
    th = ServerThread(srv).start()
    return th, Running("127.0.0.1", th.port, srv, db)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """A trust-auth server over a fresh DuckDB file (one per test module)."""
    th, running = start(tmp_path_factory.mktemp("mw"))
    try:
        yield running
    finally:
        th.stop()
