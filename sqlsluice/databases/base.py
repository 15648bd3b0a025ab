"""The backend interface: one for DuckDB and PostgreSQL alike.

A :class:`Backend` is a database (a pool, a file); a :class:`Session` is one connection
with its own transaction state, owned by one client.  ``execute`` returns a
:class:`Result` whose rows stream through ``fetchmany``.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlsluice.databases.catalog import Catalog


@dataclass(frozen=True)
class ColumnInfo:
    """A result column: its name and the backend's type name (``INTEGER``, ``DECIMAL(15,2)``)."""

    name: str
    type: str


@dataclass
class Plan:
    """The planner's estimate for a query: total cost, estimated rows and the raw plan."""

    cost: float
    rows: float | None
    raw: Any
    backend: str


class Result(abc.ABC):
    """Rows of one statement, streamed.  ``columns`` is empty for statements without rows."""

    columns: list[ColumnInfo]
    status: str  # command tag, e.g. ``SELECT 3``, ``INSERT 0 1``, ``CREATE TABLE``
    rowcount: int

    @abc.abstractmethod
    def fetchmany(self, n: int = 1000) -> list[tuple[Any, ...]]: ...

    def fetchall(self) -> list[tuple[Any, ...]]:
        out: list[tuple[Any, ...]] = []
        while True:
            chunk = self.fetchmany(10000)
            if not chunk:
                return out
            out.extend(chunk)

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        while True:
            chunk = self.fetchmany(1000)
            if not chunk:
                return
            yield from chunk

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


@dataclass
class MaterializedResult(Result):
    columns: list[ColumnInfo] = field(default_factory=list)
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    status: str = ""
    rowcount: int = -1
    _pos: int = 0

    def fetchmany(self, n: int = 1000) -> list[tuple[Any, ...]]:
        chunk = self.rows[self._pos:self._pos + n]
        self._pos += len(chunk)
        return chunk


class Session(abc.ABC):
    """One connection to the backend, owned by one client."""

    backend: Backend

    @abc.abstractmethod
    def execute(self, sql: str, params: Sequence[Any] | None = None, *,
                timeout: float | None = None) -> Result:
        """Run one statement.  ``params`` bind ``$1..$n`` (PostgreSQL style) placeholders."""

    @abc.abstractmethod
    def cancel(self) -> None:
        """Cancel the statement running on this session (thread-safe)."""

    @property
    @abc.abstractmethod
    def in_transaction(self) -> bool: ...

    @property
    def transaction_failed(self) -> bool:
        return False

    @abc.abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Backend(abc.ABC):
    """A database behind sqlsluice.  Chosen by URL with :func:`sqlsluice.databases.connect`."""

    url: str
    dialect: str  # sqlglot dialect name: "duckdb" or "postgres"

    @abc.abstractmethod
    def session(self) -> Session: ...

    def execute(self, sql: str, params: Sequence[Any] | None = None, *,
                timeout: float | None = None) -> MaterializedResult:
        """Run one statement on a fresh session and return all its rows."""
        with self.session() as s:
            r = s.execute(sql, params, timeout=timeout)
            rows = r.fetchall() if r.columns else []
            return MaterializedResult(columns=r.columns, rows=rows, status=r.status, rowcount=r.rowcount)

    @abc.abstractmethod
    def execute_readonly(self, sql: str, *, timeout: float) -> MaterializedResult:
        """Run a query for the rewriter or the verifier (timing, result checks): inside a
        READ ONLY transaction that is rolled back, with a statement timeout, so that nothing
        it runs can change the database."""

    def readonly_snapshot(self, sqls: Sequence[str], *, timeout: float) -> list[list[tuple[Any, ...]]]:
        """Run several queries on one snapshot of the database (read only, rolled back), so that
        their results can be compared even while other sessions write."""
        return [self.execute_readonly(q, timeout=timeout).rows for q in sqls]

    @abc.abstractmethod
    def function_volatility(self, names: Sequence[str]) -> dict[str, str]:
        """``name -> 'i' | 's' | 'v'`` (immutable, stable, volatile) for the functions of these
        names the database knows (lower-case names; a name with any volatile overload is 'v')."""

    def output_columns(self, sql: str) -> list[ColumnInfo]:
        """The result columns (names, types) of a query, without running it."""
        with self.session() as s:
            r = s.execute(f"SELECT * FROM ({sql}) AS _q LIMIT 0")
            return list(r.columns)

    @abc.abstractmethod
    def catalog(self, *, row_counts: bool = True) -> Catalog: ...

    @abc.abstractmethod
    def explain(self, sql: str) -> Plan: ...

    def timed(self, sql: str, *, timeout: float | None = None) -> tuple[float, MaterializedResult]:
        """Run a query, return (seconds, result)."""
        t0 = time.perf_counter()
        r = self.execute(sql, timeout=timeout)
        return time.perf_counter() - t0, r

    def stats_version(self) -> str:
        """Changes when the catalog or statistics change (stored rewrites are re-timed)."""
        return self.catalog(row_counts=True).fingerprint()

    def schema_version(self) -> str:
        """Changes when the schema changes: tables, columns and their types, keys and other
        constraints (what a rewrite's soundness rests on; stored rewrites are dropped)."""
        return self.catalog(row_counts=False).schema_fingerprint()

    @abc.abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
