"""The demo: TPC-DS in an embedded DuckDB file, served over the PostgreSQL wire (``sluice demo``)."""

from __future__ import annotations

from pathlib import Path, PurePath


def build_demo(sf: float = 0.1) -> Path:
    """The demo database for scale factor ``sf``, generated once under ``.sluice/``
    (``tpcds_sf0_1.duckdb`` for the default 0.1) and reused afterwards."""
    from sqlsluice.config import DEMO_DB, STATE_DIR
    from sqlsluice.databases.tpcds import generate_tpcds_duckdb

    path = DEMO_DB if sf == 0.1 else STATE_DIR / f"tpcds_sf{str(sf).replace('.', '_')}.duckdb"
    return generate_tpcds_duckdb(path, sf=sf, progress=True)


def connect_hint(backend_url: str, host: str, port: int, user: str | None = None) -> str:
    """The ``psql`` line that fits the backend: the DuckDB file's name (the demo's is
    ``tpcds_sf0_1``), or the PostgreSQL URL's database and user; never a password.

    >>> connect_hint("duckdb:///.sluice/tpcds_sf0_1.duckdb", "127.0.0.1", 6543)
    'psql -h 127.0.0.1 -p 6543 -U sluice tpcds_sf0_1'
    >>> connect_hint("postgresql://app:secret@db:5432/shop", "0.0.0.0", 6543)
    'psql -h 127.0.0.1 -p 6543 -U app shop'
    """
    from urllib.parse import unquote, urlsplit

    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    if backend_url.startswith(("postgresql://", "postgres://")):
        parts = urlsplit(backend_url)
        db = unquote(parts.path.lstrip("/")) or "postgres"
        name = user or unquote(parts.username or "") or "postgres"
    else:
        path = backend_url.split("///", 1)[-1]
        db = "memory" if path in (":memory:", "") else PurePath(path).stem
        name = user or "sluice"
    return f"psql -h {shown} -p {port} -U {name} {db}"
