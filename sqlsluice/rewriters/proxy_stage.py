"""The rewrite stage of the proxy's statement pipeline (:mod:`sqlsluice.middleware.pipeline`).

``SET sluice.rewrite = on``: a stored, verified and faster rewrite of the statement's shape
is forwarded instead of the statement; an unknown shape is forwarded unchanged and queued
for a background search.  ``shadow``: the original is always forwarded and the rewrite is
compared with it in the background.  ``off``: nothing.  Only single read-only queries are
touched, never anything inside an explicit transaction that has written; prepared
statements (Parse, with ``$n`` parameters) are forwarded unchanged.  ``SHOW sluice.last``
then shows ``rewritten``, ``rules``, ``verdict``, ``speedup`` (or why not).
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from sqlsluice.config import Config
from sqlsluice.databases import Backend
from sqlsluice.middleware.pipeline import Decision, Forward, SessionContext, Stage
from sqlsluice.rewriters.online import OnlineRewriter, RewriteStore

log = logging.getLogger(__name__)

_BEGIN = re.compile(r"^\s*(BEGIN|START\s+TRANSACTION)\b", re.I)
_END = re.compile(r"^\s*(COMMIT|END|ROLLBACK|ABORT)\b", re.I)
_READ = re.compile(r"^\s*(SELECT|WITH|VALUES|TABLE|SHOW|EXPLAIN|SET|RESET|\()", re.I)


def _track_transaction(ctx: SessionContext, sql: str) -> bool:
    """Update the session's transaction state; True when it has written inside an open transaction."""
    st: dict[str, Any] = ctx.extra.setdefault("rewrite_tx", {"open": False, "wrote": False})
    if _BEGIN.match(sql):
        st.update(open=True, wrote=False)
    elif _END.match(sql):
        st.update(open=False, wrote=False)
    elif st["open"] and not _READ.match(sql):
        st["wrote"] = True
    elif st["open"] and re.search(r"\b(INSERT|UPDATE|DELETE|MERGE)\b", sql, re.I) and sql.lstrip()[:4].upper() == "WITH":
        st["wrote"] = True
    return bool(st["open"] and st["wrote"])


def make_rewrite_stage(backend: Backend, config: Config | None = None, store: RewriteStore | None = None,
                       online: OnlineRewriter | None = None) -> tuple[Stage, OnlineRewriter]:
    """A pipeline stage over one shared :class:`OnlineRewriter` (create once per server)."""
    rewriter = online or OnlineRewriter(backend, config, store)

    async def rewrite_stage(ctx: SessionContext, sql: str, extended: bool) -> Decision | None:
        wrote = _track_transaction(ctx, sql)
        mode = ctx.settings.get("sluice.rewrite", "off")
        if mode == "off" or extended or wrote:
            return None
        head = sql.lstrip()[:6].upper()
        if not head.startswith(("SELECT", "WITH", "(")):
            return None
        try:
            if mode == "shadow":
                queued = await asyncio.to_thread(rewriter.shadow, sql)
                return Forward(sql, {"rewritten": False, "shadow": queued})
            hit = await asyncio.to_thread(rewriter.lookup, sql)
            if hit is not None:
                new_sql, info = hit
                return Forward(new_sql, info)
            queued = await asyncio.to_thread(rewriter.submit, sql)
            return Forward(sql, {"rewritten": False, "rewrite": "queued" if queued else "no stored rewrite"})
        except Exception as e:  # never fail a statement because of the rewriter: forward, log, count
            log.exception("rewrite stage failed; forwarding the original: %s", e)
            rewriter.stats.errors += 1
            return Forward(sql, {"rewritten": False, "rewrite_error": str(e)[:200]})

    return rewrite_stage, rewriter
