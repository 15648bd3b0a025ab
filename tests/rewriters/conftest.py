"""Fixtures for the rewrite engine tests: a TPC-DS DuckDB backend and its keyed catalog, and
``sluice serve`` with online rewriting over a PostgreSQL upstream."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sqlsluice.bench.tpcds_load import copy_duckdb_to_postgres, with_tpcds_keys
from sqlsluice.config import Config, RewriteConfig
from sqlsluice.databases import Backend, Catalog, connect
from sqlsluice.middleware.pipeline import Pipeline, default_pipeline
from sqlsluice.middleware.server import ServerThread, SluiceServer
from sqlsluice.rewriters.online import OnlineRewriter, RewriteStore
from sqlsluice.serving.pipeline import ProductPipeline
from sqlsluice.serving.rewrite_stage import make_rewrite_stage
from sqlsluice.state import StateStore

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "rules"


@dataclass
class RuleCase:
    rule: str
    title: str
    dialect: str
    execute: bool
    fires: bool
    input: str
    expected: str | None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.rule}:{self.title[:40]}"


def load_cases(path: Path) -> list[RuleCase]:
    """Parse ``tests/fixtures/rules/<rule>.sql``: ``# key: value`` headers, ``-- input`` / ``-- expected`` blocks."""
    cases = []
    for chunk in path.read_text().split("# title:")[1:]:
        lines = ("# title:" + chunk).splitlines()
        headers: dict[str, str] = {}
        blocks: dict[str, list[str]] = {}
        cur: str | None = None
        for ln in lines:
            if ln.startswith("# ") and ":" in ln and cur is None:
                k, v = ln[2:].split(":", 1)
                headers[k.strip()] = v.strip()
            elif ln.strip() in ("-- input", "-- expected"):
                cur = ln.strip()[3:]
                blocks[cur] = []
            elif cur is not None:
                blocks[cur].append(ln)

        def text(name: str, blocks: dict[str, list[str]] = blocks) -> str | None:
            if name not in blocks:
                return None
            return "\n".join(blocks[name]).strip().rstrip(";").strip()

        inp = text("input")
        assert inp, f"{path.name}: case {headers.get('title')!r} has no input"
        cases.append(RuleCase(rule=path.stem, title=headers["title"], dialect=headers.get("dialect", "duckdb"),
                              execute=headers.get("execute", "false").lower() == "true",
                              fires=headers.get("fires", "true").lower() != "false",
                              input=inp, expected=text("expected"), headers=headers))
    return cases


def all_cases() -> list[RuleCase]:
    out: list[RuleCase] = []
    for p in sorted(FIXTURES.glob("*.sql")):
        out.extend(load_cases(p))
    return out


@pytest.fixture(scope="session")
def tpcds_backend(tpcds_tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    """A read-only connection for the whole run, to a copy of its own: DuckDB refuses a second
    connection with another configuration to a file this process holds, and other tests open
    ``tpcds_tiny`` read-write (whatever order the tests run in, e.g. under pytest-xdist)."""
    import shutil

    path = tmp_path_factory.mktemp("tpcds_ro") / "tpcds_sf0_01.duckdb"
    shutil.copy(tpcds_tiny, path)
    be = connect(f"duckdb:///{path}", read_only=True)
    yield be
    be.close()


@pytest.fixture(scope="session")
def tpcds_catalog(tpcds_backend: Backend) -> Catalog:
    return with_tpcds_keys(tpcds_backend.catalog(row_counts=False))


@contextmanager
def _rewriting_proxy(pg_db: str, tmp_path: Path) -> Iterator[tuple[str, OnlineRewriter]]:
    backend = connect(pg_db)
    cfg = Config(rewrite=RewriteConfig(min_speedup=1.0))  # sf=0.01 is tiny: no 1.2x margin asked
    stage, online = make_rewrite_stage(backend, cfg, RewriteStore(StateStore(f"sqlite:///{tmp_path / 's.sqlite'}")))

    def pipeline() -> Pipeline:
        p = default_pipeline()
        p.append(stage)
        return p

    server = SluiceServer(cfg, backend_url=pg_db, pipeline_factory=pipeline)
    try:
        with ServerThread(server) as st:
            yield f"postgresql://postgres@127.0.0.1:{st.port}/{pg_db.rsplit('/', 1)[1]}", online
    finally:
        online.close()
        backend.close()


@pytest.fixture()
def rewriting_proxy(pg_db: str, tmp_path: Path) -> Callable[[], AbstractContextManager[tuple[str, OnlineRewriter]]]:
    """Starts ``sluice serve`` with online rewriting over ``pg_db`` (as loaded by then): ``(dsn, online)``."""
    return lambda: _rewriting_proxy(pg_db, tmp_path)


@pytest.fixture()
def tpcds_proxy(pg_db: str, tpcds_tiny: Path,
                rewriting_proxy: Callable[[], AbstractContextManager[tuple[str, OnlineRewriter]]]
                ) -> Iterator[tuple[str, OnlineRewriter]]:
    """The rewriting proxy over TPC-DS sf=0.01 loaded into PostgreSQL (keys, VACUUM ANALYZE)."""
    copy_duckdb_to_postgres(tpcds_tiny, pg_db)
    with rewriting_proxy() as served:
        yield served


_PRODUCT_SERVERS: list[tuple[SluiceServer, ProductPipeline]] = []  # closed after each test


def product_server(cfg: Config, backend_url: str) -> tuple[SluiceServer, ProductPipeline]:
    """``sluice serve``'s server with its product pipeline (settings, ASK, online rewriting) over
    one backend, as ``run_server`` builds it: ``(server, pipeline)`` (``pipeline.online`` is the
    rewriter).  The caller gives it a fresh state store (see :func:`fresh_state`).  Its rewriter
    and backend (a connection pool) are closed when the test ends (:func:`_close_product_servers`),
    not left to the garbage collector, which may run a pool's ``__del__`` on the pool's own worker
    thread ("cannot join current thread")."""
    server = SluiceServer(cfg, backend_url=backend_url)
    server.open_backend()
    product = ProductPipeline(cfg, backend_url, server.backend)
    server.pipeline_factory = product
    _PRODUCT_SERVERS.append((server, product))
    return server, product


@pytest.fixture(autouse=True)
def _close_product_servers() -> Iterator[None]:
    yield
    while _PRODUCT_SERVERS:
        server, product = _PRODUCT_SERVERS.pop()
        product.close()
        if server.backend is not None:
            server.backend.close()


@pytest.fixture()
def fresh_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A state store of this test's own (rewrites stored by other tests or runs stay out)."""
    import sqlsluice.state as state

    monkeypatch.setenv("SLUICE_STATE", f"sqlite:///{tmp_path / 'state.sqlite'}")
    monkeypatch.setattr(state, "_default", None)
    yield
