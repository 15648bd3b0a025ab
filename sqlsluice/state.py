"""Shared state: query log, LLM usage ledger, response cache, stored rewrites, learned routers.

Local state is a SQLite file (``.sluice/state.sqlite``: several processes may open it at
once); with ``postgresql://...`` it lives in schema ``sluice`` so that N proxies share it.
SQL given to :meth:`StateStore.execute` uses ``?`` placeholders and portable types
(TEXT, BIGINT, DOUBLE PRECISION); tables are named without a schema.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlsluice.config import STATE_DIR

_TABLE_NAME = re.compile(r"\b(FROM|INTO|UPDATE|TABLE(?: IF NOT EXISTS)?|JOIN)\s+sluice_", re.I)


class StateStore:
    """A tiny portable store.  Thread-safe; one connection guarded by a lock."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url or f"sqlite:///{STATE_DIR / 'state.sqlite'}"
        self._lock = threading.RLock()
        self._known: set[str] = set()
        if self.url.startswith(("postgresql://", "postgres://")):
            import psycopg

            self.kind = "postgres"
            self._pg = psycopg.connect(self.url, autocommit=True)
            self._pg.execute("CREATE SCHEMA IF NOT EXISTS sluice")
        else:
            self.kind = "sqlite"
            path = self.url.removeprefix("sqlite:///")
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._sq = sqlite3.connect(path, check_same_thread=False, timeout=30, isolation_level=None)
            self._sq.execute("PRAGMA journal_mode=WAL")

    def _sql(self, sql: str) -> str:
        if self.kind == "postgres":
            sql = _TABLE_NAME.sub(lambda m: f"{m.group(1)} sluice.sluice_", sql)
            return sql.replace("?", "%s")
        return sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement; return its rows (empty for writes)."""
        with self._lock:
            if self.kind == "postgres":
                cur = self._pg.execute(self._sql(sql), list(params))  # type: ignore[arg-type]
                return cur.fetchall() if cur.description else []
            cur2 = self._sq.execute(sql, tuple(params))
            return cur2.fetchall() if cur2.description else []

    def ensure(self, ddl: str) -> None:
        """Run a ``CREATE TABLE IF NOT EXISTS sluice_...`` once per process."""
        if ddl in self._known:
            return
        self.execute(ddl)
        self._known.add(ddl)

    def close(self) -> None:
        with self._lock:
            if self.kind == "postgres":
                self._pg.close()
            else:
                self._sq.close()


class NamespacedState(StateStore):
    """One database's view of a store: its stored rewrites (``sluice_rewrite*`` tables) are
    its own, under a table-name suffix; everything else is shared.  Shares the base's connection.

    >>> v = NamespacedState(StateStore("sqlite:///:memory:"), "db1")
    >>> v.ensure("CREATE TABLE IF NOT EXISTS sluice_rewrites (k TEXT)")
    >>> v.execute("SELECT name FROM sqlite_master")
    [('sluice_rewrites_db1',)]
    """

    _OWN = re.compile(r"\b(sluice_rewrites|sluice_rewrite_proofs)\b")

    def __init__(self, base: StateStore, namespace: str) -> None:  # no connection of its own
        self.base = base
        self.url, self.kind = base.url, base.kind
        self.suffix = "_" + re.sub(r"\W", "_", namespace)
        self._known = set()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.base.execute(self._OWN.sub(lambda m: m.group(1) + self.suffix, sql), params)

    def close(self) -> None:
        pass  # the base store is shared


_default: StateStore | None = None


def default_store() -> StateStore:
    """The store of ``$SLUICE_STATE``, else ``.sluice/state.sqlite`` (one per process)."""
    global _default
    if _default is None:
        _default = StateStore(os.environ.get("SLUICE_STATE"))
    return _default


def as_url(state: str) -> str:
    """A ``server.state`` value as a store URL: a plain path is a SQLite file.

    >>> as_url("/var/lib/sluice/state.sqlite"), as_url("postgresql://h/db")
    ('sqlite:////var/lib/sluice/state.sqlite', 'postgresql://h/db')
    """
    return state if state.startswith(("postgresql://", "postgres://", "sqlite:///")) else f"sqlite:///{state}"


def state_url(config: Any = None) -> str | None:
    """Where shared state lives for ``config``: ``$SLUICE_STATE`` (the environment overrides
    the file, as ``$SLUICE_BACKEND`` does), else ``server.state`` of the config, else None
    (``.sluice/state.sqlite``)."""
    url = os.environ.get("SLUICE_STATE") or getattr(getattr(config, "server", None), "state", None)
    return as_url(url) if url else None


_STORES: dict[str, StateStore] = {}
_STORES_LOCK = threading.Lock()


def store_for(config: Any = None) -> StateStore:
    """The state store ``config`` names (see :func:`state_url`), one per URL and process:
    the rewrite store, query log, LLM ledger and cache all use this one."""
    if os.environ.get("SLUICE_STATE") or not getattr(getattr(config, "server", None), "state", None):
        return default_store()
    url = state_url(config)
    assert url is not None
    with _STORES_LOCK:
        if url not in _STORES:
            _STORES[url] = StateStore(url)
        return _STORES[url]
