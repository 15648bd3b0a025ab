"""The Python SDK: ``sqlsluice.connect(url)``.

>>> import sqlsluice
>>> client = sqlsluice.connect("duckdb:///:memory:")
>>> client.execute("SELECT 40 + $1 AS answer", [2]).rows
[(42,)]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlsluice.config import Config, load_config
from sqlsluice.databases import Backend, Catalog, ColumnInfo
from sqlsluice.databases import connect as connect_backend

if TYPE_CHECKING:
    from sqlsluice.rewriters.api import Rewrite
    from sqlsluice.text2sql.api import Answer
    from sqlsluice.verifiers import Verdict


@dataclass
class Rows:
    """Rows of one statement with their column names and types."""

    columns: list[ColumnInfo]
    rows: list[tuple[Any, ...]]
    status: str = ""

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.names, r, strict=True)) for r in self.rows]


@dataclass
class Client:
    """A connection to a database through sqlsluice's layers (no wire hop)."""

    backend: Backend
    config: Config = field(default_factory=Config)

    def execute(self, sql: str, params: Sequence[Any] | None = None, *, timeout: float | None = None) -> Rows:
        """Run one statement (``$1``-style parameters) and return its rows."""
        r = self.backend.execute(sql, params, timeout=timeout)
        return Rows(columns=r.columns, rows=r.rows, status=r.status)

    def catalog(self) -> Catalog:
        """Tables, typed columns, keys and row counts."""
        return self.backend.catalog()

    def rewrite(self, sql: str, **options: Any) -> Rewrite:
        """Search, verify and time a faster equivalent of ``sql`` (see ``sluice rewrite``)."""
        from sqlsluice.rewriters.api import rewrite

        return rewrite(self.backend, sql, config=self.config, **options)

    def ask(self, question: str, evidence: str | None = None, **options: Any) -> Answer:
        """Answer a natural-language question with SQL, run read-only (see ``sluice ask``)."""
        from sqlsluice.text2sql.api import ask

        return ask(self.backend, question, evidence=evidence, config=self.config, **options)

    def verify(self, q1: str, q2: str, **options: Any) -> Verdict:
        """Are two queries equivalent over this database's schema?"""
        from sqlsluice.verifiers import verify

        return verify(q1, q2, self.backend.catalog(row_counts=False), dialect=self.backend.dialect, **options)

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(url: str, *, config: Config | str | None = None) -> Client:
    """Open a client on ``duckdb:///path``, ``duckdb:///:memory:`` or ``postgresql://...``."""
    cfg = config if isinstance(config, Config) else load_config(config)
    return Client(backend=connect_backend(url), config=cfg)
