"""The proxy's ASK stage: ``ASK 'question' [WITH EVIDENCE 'hint']`` and ``EXPLAIN ASK ...``.

Register it on a session pipeline (:mod:`sqlsluice.middleware.pipeline`)::

    pipeline.append(ask_stage)

``ASK`` replies with the answer's rows (generated SQL run read-only, see
:func:`sqlsluice.text2sql.api.ask`); ``EXPLAIN ASK`` replies with one ``(key, value)`` row
per fact: sql, route, pipeline, tokens_in, tokens_out, seconds, error, without running the
answer.  The router is the session's ``sluice.router`` setting (``SET sluice.router =
'cascade'``).  Questions and hints use SQL string quoting (``'it''s'``).  Generated SQL
that is not one read-only query is refused with SQLSTATE 42501.

>>> parse_ask("EXPLAIN ASK 'How many singers?' WITH EVIDENCE 'singer means a row of singer'")
(True, 'How many singers?', 'singer means a row of singer')
>>> parse_ask("SELECT 1") is None
True
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from sqlsluice.databases.base import ColumnInfo
from sqlsluice.errors import SyntaxErrorSQL
from sqlsluice.middleware.pipeline import Decision, Reply, SessionContext

_STR = r"'((?:[^']|'')*)'"
_ASK = re.compile(rf"^\s*(EXPLAIN\s+)?ASK\s+{_STR}(?:\s+WITH\s+EVIDENCE\s+{_STR})?\s*;?\s*$", re.I | re.S)
_HEAD = re.compile(r"^\s*(?:EXPLAIN\s+)?ASK\b", re.I)


def parse_ask(sql: str) -> tuple[bool, str, str | None] | None:
    """``(explain, question, evidence)`` for an ASK statement, None for anything else.
    Raises :class:`SyntaxErrorSQL` for a malformed ASK."""
    if not _HEAD.match(sql):
        return None
    m = _ASK.match(sql)
    if m is None:
        raise SyntaxErrorSQL("syntax error in ASK: use ASK 'question' [WITH EVIDENCE 'hint'] "
                             "(quote with single quotes, double them inside)")
    q = m.group(2).replace("''", "'")
    ev = m.group(3).replace("''", "'") if m.group(3) is not None else None
    return bool(m.group(1)), q, ev


def _backend(ctx: SessionContext) -> Any:
    if ctx.backend is not None:
        return ctx.backend
    b = ctx.extra.get("ask_backend")
    if b is None:
        from sqlsluice.databases import connect

        # passthrough sessions have no embedded backend: open our own connection to the upstream
        b = connect(ctx.extra.get("backend_url") or ctx.config.server.backend)
        ctx.extra["ask_backend"] = b
    return b


async def ask_stage(ctx: SessionContext, sql: str, extended: bool) -> Decision | None:
    parsed = parse_ask(sql)
    if parsed is None:
        return None
    explain, question, evidence = parsed
    from sqlsluice.text2sql.api import ask, generate

    router = ctx.settings.get("sluice.router") or ctx.config.ask.router
    backend = _backend(ctx)
    if explain:
        g = await asyncio.to_thread(generate, backend, question, evidence=evidence, router=router,
                                    config=ctx.config)
        from sqlsluice.text2sql.querylog import log_query, store_for

        log_query(kind="explain_ask", db=backend.url, question=question, evidence=evidence, sql=g.sql,
                  route=g.route, pipeline=g.pipeline, tokens_in=g.tokens_in, tokens_out=g.tokens_out,
                  seconds=g.seconds, status="ok" if g.sql else "error", error=g.error,
                  store=store_for(ctx.config))
        rows = [("sql", g.sql or ""), ("route", g.route), ("pipeline", g.pipeline),
                ("tokens_in", str(g.tokens_in)), ("tokens_out", str(g.tokens_out)),
                ("seconds", f"{g.seconds:.3f}"), ("error", g.error or "")]
        ctx.extra["ask_last"] = dict(rows)
        return Reply([ColumnInfo("key", "VARCHAR"), ColumnInfo("value", "VARCHAR")], rows, f"SELECT {len(rows)}")
    a = await asyncio.to_thread(ask, backend, question, evidence=evidence, router=router, config=ctx.config)
    ctx.extra["ask_last"] = {"sql": a.sql, "route": a.route, "pipeline": a.pipeline, "tokens": a.tokens,
                             "seconds": round(a.seconds, 3)}
    return Reply(list(a.columns), list(a.rows), f"SELECT {len(a.rows)}")
