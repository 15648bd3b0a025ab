"""Shared fixtures: a throwaway PostgreSQL cluster, DuckDB databases, shared data paths.

Feature tests live in ``tests/<feature>/`` with their own conftest for local fixtures.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sqlsluice.databases.pgcluster import PgCluster

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SLUICE_SHARED", ROOT.parent / "shared"))
DATA = SHARED / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not DATA.exists():
        pytest.fail(f"shared data not found at {DATA} (set SLUICE_SHARED)")
    return DATA


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """One real PostgreSQL server for the whole run (initdb in a temp dir, free port); one per
    worker under pytest-xdist.  The free port is picked before PostgreSQL binds it, so another
    process (a parallel worker, a client's ephemeral port) may take it first: then a new port."""
    from sqlsluice.errors import ConfigError

    for attempt in range(3):
        pg = PgCluster()
        try:
            pg.start()
            break
        except ConfigError:
            pg.stop()
            if attempt == 2:
                raise
    try:
        yield pg
    finally:
        pg.stop()


@pytest.fixture()
def pg_db(pg_cluster: PgCluster, request: pytest.FixtureRequest) -> str:
    """A fresh, empty database on the shared cluster; returns its URL."""
    import re
    import uuid

    name = re.sub(r"[^a-z0-9_]", "_", request.node.name.lower())[:40] + "_" + uuid.uuid4().hex[:6]
    return pg_cluster.create_database(name)


@pytest.fixture(scope="session")
def tpcds_tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """TPC-DS at scale factor 0.01 in a DuckDB file (generated once per run, ~1 s)."""
    from sqlsluice.databases.tpcds import generate_tpcds_duckdb

    path = tmp_path_factory.mktemp("tpcds") / "tpcds_sf0_01.duckdb"
    generate_tpcds_duckdb(path, sf=0.01, progress=False)
    return path
