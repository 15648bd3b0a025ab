"""The query log: one record per statement the proxy or SDK handled.

Table ``sluice_query_log`` in the :class:`~sqlsluice.state.StateStore` (shared by ASK and
the proxy's rewrite records)::

    CREATE TABLE IF NOT EXISTS sluice_query_log (
        ts DOUBLE PRECISION,      -- unix time the statement finished
        kind TEXT,                -- 'ask' | 'explain_ask' | 'rewrite' | 'sql'
        db TEXT,                  -- backend URL (no password)
        question TEXT,            -- ASK: the question; SQL: the statement as received
        evidence TEXT,            -- ASK: the hint, if any
        sql TEXT,                 -- the SQL that was (or would be) run
        route TEXT,               -- ASK: the router and its decision, e.g. 'tables:2->decompose'
        pipeline TEXT,            -- ASK: the pipeline that produced ``sql``; rewrite: the rewriter
        tokens_in BIGINT,
        tokens_out BIGINT,
        seconds DOUBLE PRECISION, -- generation + execution time
        status TEXT,              -- 'ok' | 'refused' | 'error'
        error TEXT,               -- message (with SQLSTATE) when status is not 'ok'
        detail TEXT               -- JSON: anything else (candidates, rules, verdict, escalations)
    )
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from sqlsluice.state import StateStore, default_store

DDL = (
    "CREATE TABLE IF NOT EXISTS sluice_query_log (ts DOUBLE PRECISION, kind TEXT, db TEXT, question TEXT, "
    "evidence TEXT, sql TEXT, route TEXT, pipeline TEXT, tokens_in BIGINT, tokens_out BIGINT, "
    "seconds DOUBLE PRECISION, status TEXT, error TEXT, detail TEXT)"
)
COLUMNS = ("ts", "kind", "db", "question", "evidence", "sql", "route", "pipeline", "tokens_in", "tokens_out",
           "seconds", "status", "error", "detail")


def _redact(url: str) -> str:
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def log_query(*, kind: str, db: str, question: str | None = None, evidence: str | None = None,
              sql: str | None = None, route: str | None = None, pipeline: str | None = None,
              tokens_in: int = 0, tokens_out: int = 0, seconds: float = 0.0, status: str = "ok",
              error: str | None = None, detail: dict[str, Any] | None = None,
              store: StateStore | None = None) -> None:
    """Append one record to ``sluice_query_log``."""
    st = store if store is not None else default_store()
    st.ensure(DDL)
    st.execute(
        "INSERT INTO sluice_query_log (ts, kind, db, question, evidence, sql, route, pipeline, tokens_in, "
        "tokens_out, seconds, status, error, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [time.time(), kind, _redact(db), question, evidence, sql, route, pipeline, int(tokens_in),
         int(tokens_out), float(seconds), status, error, json.dumps(detail or {}, default=str)])


def recent(store: StateStore | None = None, limit: int = 20, kind: str | None = None) -> list[dict[str, Any]]:
    """The newest records first, as dicts."""
    st = store if store is not None else default_store()
    st.ensure(DDL)
    where = "WHERE kind = ? " if kind else ""
    rows = st.execute(f"SELECT {', '.join(COLUMNS)} FROM sluice_query_log {where}ORDER BY ts DESC LIMIT ?",
                      [kind, limit] if kind else [limit])
    return [dict(zip(COLUMNS, r, strict=True)) for r in rows]


def store_for(config: Any) -> StateStore:
    """The state store of a config: ``$SLUICE_STATE``, else ``server.state``, else the default one."""
    from sqlsluice.state import store_for as shared_store_for

    return shared_store_for(config)
