"""The product's statement pipeline: what ``sluice serve`` runs for every statement.

    settings (SET/SHOW sluice.*) -> ASK / EXPLAIN ASK -> online rewriting -> forward

One :class:`~sqlsluice.rewriters.online.OnlineRewriter` (a background worker and the
rewrite store) is shared by all sessions of a server; each session gets its own
:class:`~sqlsluice.middleware.pipeline.Pipeline` over the shared stages.
"""

from __future__ import annotations

import logging
import re
import time
from typing import TYPE_CHECKING

from sqlsluice.config import Config
from sqlsluice.databases import Backend, connect
from sqlsluice.errors import SluiceError
from sqlsluice.middleware.pipeline import (
    Decision,
    Forward,
    Pipeline,
    SessionContext,
    Stage,
    settings_stage,
)

if TYPE_CHECKING:
    from sqlsluice.rewriters.online import OnlineRewriter

log = logging.getLogger("sqlsluice.serving.pipeline")

# literals blanked out: a cheap shape key for the negative cache (no parse on the hot path)
_LITERALS = re.compile(r"'(?:[^']|'')*'|\b\d+(?:\.\d+)?(?:[eE][-+]?\d+)?\b")
_NEGATIVE_TTL_S = 2.0
_NEGATIVE_MAX = 10000


class ProductPipeline:
    """Builds per-session pipelines over stages shared by one server."""

    def __init__(self, config: Config, backend_url: str, backend: Backend | None = None, *,
                 namespace: str = "") -> None:
        from sqlsluice.serving.ask_stage import ask_stage

        self.config = config
        self.backend_url = backend_url
        # a server fronting several databases: each keeps its stored rewrites apart
        self.namespace = namespace
        self.ask_stage = ask_stage
        self._no_rewrite: dict[str, float] = {}
        # the rewriter needs a backend of its own for EXPLAIN, verification runs and timing;
        # over DuckDB it shares the server's embedded database
        self._owned = backend is None
        self.backend: Backend | None = backend
        self.online: OnlineRewriter | None = None
        self.rewrite_stage: Stage | None = None
        self._next_try = 0.0
        self.unavailable_reason = ""
        self._connect()

    def _connect(self) -> None:
        """Open the rewriter's backend; when the database is unreachable, serve without
        rewriting (logged, with the reason in ``SHOW sluice.last``) and retry later."""
        from sqlsluice.serving.rewrite_stage import make_rewrite_stage

        if self.online is not None or time.monotonic() < self._next_try:
            return
        try:
            if self.backend is None:
                self.backend = connect(self.backend_url)
            store = None
            if self.namespace:
                from sqlsluice.rewriters.online import RewriteStore
                from sqlsluice.state import NamespacedState, store_for

                store = RewriteStore(NamespacedState(store_for(self.config), self.namespace))
            self.rewrite_stage, self.online = make_rewrite_stage(self.backend, self.config, store)
            self.unavailable_reason = ""
        except SluiceError as e:
            self._next_try = time.monotonic() + 30.0
            self.unavailable_reason = f"rewriter unavailable: {e.message}"
            log.error("online rewriting disabled for now (retry in 30 s): %s", e.message)

    async def fast_rewrite_stage(self, ctx: SessionContext, sql: str, extended: bool) -> Decision | None:
        """The rewrite stage behind a negative cache.

        Fingerprinting parses the statement; for a shape that was just looked up and has no
        stored rewrite (the common case: point queries, or a search still running), skip the
        parse for a couple of seconds and forward at once.  The cache only ever skips a
        rewrite, so it can never serve a wrong one; a rewrite stored meanwhile is picked up
        when the entry expires.
        """
        head = sql.lstrip()[:6].upper()
        if self.rewrite_stage is None:
            return None
        if extended or not head.startswith(("SELECT", "WITH", "(")):
            return await self.rewrite_stage(ctx, sql, extended)  # keeps transaction tracking exact
        if ctx.settings.get("sluice.rewrite", "off") != "on":
            return await self.rewrite_stage(ctx, sql, extended)
        key = _LITERALS.sub("?", sql)
        now = time.monotonic()
        until = self._no_rewrite.get(key)
        if until is not None and until > now:
            return Forward(sql, {"rewritten": False, "rewrite": "no stored rewrite"})
        if self.rewrite_stage is None:
            return Forward(sql, {"rewritten": False, "rewrite": self.unavailable_reason})
        decision = await self.rewrite_stage(ctx, sql, extended)
        if decision is None or (isinstance(decision, Forward) and not decision.info.get("rewritten")):
            if len(self._no_rewrite) >= _NEGATIVE_MAX:
                self._no_rewrite.clear()
            self._no_rewrite[key] = now + _NEGATIVE_TTL_S
        return decision

    async def bind_stage(self, ctx: SessionContext, sql: str, extended: bool) -> Decision | None:
        """Tell later stages where the database is (passthrough sessions have no embedded backend)."""
        ctx.extra.setdefault("backend_url", self.backend_url)
        return None

    def __call__(self) -> Pipeline:
        self._connect()
        return Pipeline([self.bind_stage, settings_stage, self.ask_stage, self.fast_rewrite_stage])

    def close(self) -> None:
        if self.online is not None:
            self.online.close()
        if self._owned and self.backend is not None:
            self.backend.close()

