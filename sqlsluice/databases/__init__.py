"""Databases behind sqlsluice, chosen by URL.

``duckdb:///path.db``, ``duckdb:///:memory:`` -> :class:`DuckDBBackend`;
``postgresql://user:pass@host:port/db`` -> :class:`PostgresBackend`.
Any other SQLAlchemy URL can be introspected with :func:`introspect_sqlalchemy`.
"""

from __future__ import annotations

from sqlsluice.databases.base import Backend, ColumnInfo, MaterializedResult, Plan, Result, Session
from sqlsluice.databases.catalog import Catalog, Column, ForeignKey, Table
from sqlsluice.databases.introspect import introspect_sqlalchemy
from sqlsluice.errors import ConfigError

__all__ = [
    "Backend", "Catalog", "Column", "ColumnInfo", "ForeignKey", "MaterializedResult", "Plan", "Result",
    "Session", "Table", "connect", "introspect_sqlalchemy", "parse_url",
]


def parse_url(url: str) -> tuple[str, str]:
    """``(kind, target)``: ``("duckdb", path)`` or ``("postgres", url)``."""
    if url.startswith("duckdb://"):
        path = url[len("duckdb://"):]
        if path.startswith("/"):
            path = path[1:]
        return "duckdb", path or ":memory:"
    if url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        return "postgres", url.replace("postgresql+psycopg://", "postgresql://", 1)
    raise ConfigError(f"unsupported backend URL {url!r}: use duckdb:///PATH, duckdb:///:memory: "
                      "or postgresql://USER:PASS@HOST:PORT/DB")


def connect(url: str, **kwargs: object) -> Backend:
    """Open the backend a URL names."""
    kind, target = parse_url(url)
    if kind == "duckdb":
        from sqlsluice.databases.duckdb_backend import DuckDBBackend

        return DuckDBBackend(target, **kwargs)  # type: ignore[arg-type]
    from sqlsluice.databases.postgres_backend import PostgresBackend

    return PostgresBackend(target, **kwargs)  # type: ignore[arg-type]
