"""The rewrite stage of the proxy's statement pipeline (:mod:`sqlsluice.middleware.pipeline`).

``SET sluice.rewrite = on``: a stored, verified and faster rewrite of the statement's shape
is forwarded instead of the statement; an unknown shape is forwarded unchanged and queued
for a background search.  ``shadow``: the original is always forwarded and the rewrite is
compared with it in the background.  ``off``: nothing.  Only single read-only queries are
touched, never anything inside an explicit transaction that has written.  ``SHOW sluice.last``
then shows ``rewritten``, ``rules``, ``verdict``, ``speedup`` (or why not).

Prepared statements (Parse with ``$n`` parameters, over PostgreSQL): the shape's fingerprint
treats literals and ``$n`` alike, so a stored rule rewrite is replayed on the ``$n`` text
and parsed upstream in place of the original, declared with the original's parameter types
(:meth:`OnlineRewriter.lookup_prepared`); Describe, Bind and Execute then work unchanged.
An unknown shape is queued at its first Bind, with the bound values as the literal
instance.  Every served rewrite (and the first run of an original) is timed by the proxy
and fed back (:meth:`OnlineRewriter.observer`): a rewrite that turns out slower when served
is re-timed against the original and dropped; ``SHOW sluice.last`` says so
(``served_ms``, ``feedback``, and ``rewrite = dropped: ...`` afterwards).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from typing import Any

from sqlsluice.config import Config
from sqlsluice.databases import Backend
from sqlsluice.middleware.pipeline import Decision, Forward, SessionContext, Stage
from sqlsluice.rewriters.online import OnlineRewriter, Prepared, RewriteStore

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


def _register_admin_views() -> None:
    """``SHOW sluice.rewrites`` and the rewriter's counters in ``SHOW sluice.stats`` (admins)."""
    from sqlsluice.middleware import pipeline
    from sqlsluice.rewriters.online import admin_views

    views, stats, pools = admin_views()
    pipeline.ADMIN_VIEWS.update(views)
    if stats not in pipeline.STATS_SOURCES:
        pipeline.STATS_SOURCES.append(stats)
    if pools not in pipeline.POOL_SIZES:
        pipeline.POOL_SIZES.append(pools)


def make_rewrite_stage(backend: Backend, config: Config | None = None, store: RewriteStore | None = None,
                       online: OnlineRewriter | None = None) -> tuple[Stage, OnlineRewriter]:
    """A pipeline stage over one shared :class:`OnlineRewriter` (create once per server)."""
    rewriter = online or OnlineRewriter(backend, config, store)
    _register_admin_views()

    async def rewrite_stage(ctx: SessionContext, sql: str, extended: bool) -> Decision | None:
        wrote = _track_transaction(ctx, sql)
        mode = ctx.settings.get("sluice.rewrite", "off")
        if mode == "off" or wrote:
            return None
        head = sql.lstrip()[:6].upper()
        if not head.startswith(("SELECT", "WITH", "(")):
            return None
        try:
            if extended:
                return await _prepared(ctx, sql) if mode == "on" else None
            if mode == "shadow":
                queued = await asyncio.to_thread(rewriter.shadow, sql)
                return Forward(sql, {"rewritten": False, "shadow": queued})
            hit = rewriter.cached_lookup(sql)
            new_sql, info = hit if hit is not None else await asyncio.to_thread(rewriter.lookup_ex, sql)
            key = info.get("fingerprint")
            if new_sql is not None:
                obs = None
                if key and "scope" not in info:  # rule rewrites of the shape: fed back
                    obs = rewriter.observer(key, rewritten=True, ctx=ctx, baseline_s=info.get("time_original"),
                                          speedup=info.get("speedup"))
                return Forward(new_sql, info, observe=obs)
            queued = await asyncio.to_thread(rewriter.submit, sql)  # unknown, or statistics changed
            if queued:
                info["rewrite"] = "queued"
                if key:  # the original's first run: the baseline of the feedback
                    return Forward(sql, info, observe=rewriter.observer(key, rewritten=False, ctx=ctx))
            return Forward(sql, info)
        except Exception as e:  # never fail a statement because of the rewriter: forward, log, count
            log.exception("rewrite stage failed; forwarding the original: %s", e)
            rewriter.stats.errors += 1
            return Forward(sql, {"rewritten": False, "rewrite_error": str(e)[:200]})

    async def _prepared(ctx: SessionContext, sql: str) -> Decision | None:
        oids = tuple(ctx.parse_param_oids)
        p = rewriter.cached_prepared(sql, oids)
        if p is None:
            p = await asyncio.to_thread(rewriter.lookup_prepared, sql, oids)
        seen: list[Any] = [p, None]

        async def current() -> Forward | None:
            """At each Bind: what this statement should run now (the relay switches forms)."""
            tx = ctx.extra.get("rewrite_tx") or {}
            if tx.get("open") and tx.get("wrote"):  # never rewritten inside a transaction that wrote
                return Forward(sql, {"rewritten": False, "rewrite": "inside a transaction that has written"},
                               current=current)
            q = rewriter.cached_prepared(sql, oids)
            if q is None:
                q = await asyncio.to_thread(rewriter.lookup_prepared, sql, oids)
            if q is not seen[0] or seen[1] is None:
                seen[0], seen[1] = q, _decision(ctx, sql, oids, q, current, at_parse=False)
            return seen[1]

        d = _decision(ctx, sql, oids, p, current, at_parse=True)
        seen[1] = d
        return d

    def _instance_hook(key: str, sql: str, oids: tuple[int, ...]) -> Callable[[Any], None] | None:
        """The first Bind's values as a literal instance of the shape, when the rewriter wants one
        (to search an unknown shape, or to re-time a served rewrite against the original)."""
        if not rewriter.wants_instance(key):
            return None
        return lambda bind: rewriter.bound(key, sql, oids, bind_values(bind))

    def _decision(ctx: SessionContext, sql: str, oids: tuple[int, ...], p: Prepared,
                  current: Any, *, at_parse: bool) -> Forward:
        key = p.key
        info = dict(p.info)
        if p.sql is not None and key is not None:
            if at_parse:
                rewriter.stats.prepared_hits += 1
            obs = rewriter.observer(key, rewritten=True, ctx=ctx, baseline_s=info.get("time_original"),
                                    speedup=info.get("speedup"))
            # still watched: a drop switches the statement back to the original
            return Forward(p.sql, info, param_oids=p.param_oids, observe=obs,
                           on_bind=_instance_hook(key, sql, oids), current=current)
        # (or a stored rewrite waits for review: approved, it is switched to at the next Bind)
        pending = key is not None and str(info.get("rewrite", "")).startswith(("unknown shape", "queued",
                                                                               "pending review"))
        first_bind = _instance_hook(key, sql, oids) if pending and key is not None else None
        # a search pending: keep asking at each Bind, so that a named statement switches to
        # the rewrite once it is stored (final answers stop the watching: the hot path)
        return Forward(sql, info, on_bind=first_bind, current=current if pending else None)

    return rewrite_stage, rewriter


def bind_values(bind: Any) -> Callable[[tuple[int, ...]], list[Any] | None]:
    """Decodes a Bind's parameters (text or binary format, as the client sent them) under the
    statement's parameter types, which the rewriter learns later; None when the counts differ.
    The wire format stays here: the rewriter only sees Python values."""
    from sqlsluice.middleware.types import decode_param

    def decode(ptypes: tuple[int, ...]) -> list[Any] | None:
        if len(bind.params) != len(ptypes):
            return None
        return [decode_param(ptypes[i], bind.param_format(i), raw) for i, raw in enumerate(bind.params)]

    return decode
