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
from typing import TYPE_CHECKING, Any

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
    statement_form,
)

if TYPE_CHECKING:
    from sqlsluice.rewriters.online import OnlineRewriter

log = logging.getLogger("sqlsluice.serving.pipeline")

# literals blanked out: a cheap shape key for the negative cache (no parse on the hot path)
# (a number is a digit run not preceded by a word character, as ``\b\d+...\b``; written to
# start with a digit or a quote so that the regex engine skips to those characters quickly)
_LITERALS = re.compile(r"'(?:[^']|'')*'|\d(?<!\w\d)\d*(?:\.\d+)?(?:[eE][-+]?\d+)?(?!\w)")
_NEGATIVE_TTL_S = 2.0
_NEGATIVE_MAX = 10000
_SHAPES_MAX = 10000  # statement forms whose shape is remembered (fast_path: one dict lookup)
_ZERO_DIGITS = bytes.maketrans(b"123456789", b"000000000")  # (statement_form's table)
_ASCII_DIGIT = re.compile(r"[0-9]")
# statements that no stage but rewriting can concern (not SET/SHOW/RESET, ASK, BEGIN ...)
_HOT_HEADS = ("SELECT", "WITH", "(")
_NO_INFO: dict[str, Any] = {}


class ProductPipeline:
    """Builds per-session pipelines over stages shared by one server."""

    def __init__(self, config: Config, backend_url: str, backend: Backend | None = None, *,
                 namespace: str = "") -> None:
        from sqlsluice.serving.ask_stage import ask_stage

        # shape (literals blanked) -> (valid until, rewriter generation, SHOW sluice.last info)
        self._no_rewrite: dict[str, tuple[float, int, dict[str, Any]]] = {}
        # statement form (UTF-8, ASCII digits as 0) -> its shape (literals blanked), see _shape
        self._shapes: dict[bytes, str] = {}
        self._config = config
        self.backend_url = backend_url
        # a server fronting several databases: each keeps its stored rewrites apart
        self.namespace = namespace
        self.ask_stage = ask_stage
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

    @property
    def config(self) -> Config:
        return self._config

    @config.setter
    def config(self, config: Config) -> None:
        """A new config (``SIGHUP``): decisions cached under the old one are forgotten."""
        self._config = config
        self.forget_cached_decisions()

    def forget_cached_decisions(self) -> None:
        """Forget the per-shape "forward unchanged" decisions (a new config, a review)."""
        self._no_rewrite.clear()

    def _generation(self) -> int:
        online = self.online
        return -1 if online is None else online.generation

    def fast_path(self, ctx: SessionContext, sql: str, form: bytes | None, now: float) -> dict[str, Any] | None:
        """The whole pipeline's answer to a simple-protocol statement when it is known without
        running the stages: "forward unchanged", as the ``Forward.info`` the stages would have
        given (no I/O, no parse, no await; None: run them).  ``form`` is the statement's
        :func:`~sqlsluice.middleware.pipeline.statement_form` when the caller has it, ``now``
        ``time.monotonic()``.

        Only a statement that starts with ``SELECT``, ``WITH`` or ``(`` qualifies (no
        ``SET``/``SHOW``/``RESET sluice.*``, no ``ASK``, no ``BEGIN``/``COMMIT``), outside an
        explicit transaction, in a session whose first statement has been through the stages.
        With ``sluice.rewrite = off`` the answer is "forward" at once (the rewrite stage would
        only have tracked the transaction, which such a statement does not change); with
        ``on``, the cached decision for the statement's shape (literals blanked), which
        :meth:`fast_rewrite_stage` stored after a full lookup found nothing to serve.  An entry
        holds while the rewriter's generation (bumped whenever a rewrite is stored, dropped,
        approved or rejected) is the one it was made in, for at most ``_NEGATIVE_TTL_S``
        seconds (changes made by another process, statistics), and until a config reload.
        The cache only ever skips a rewrite: it can never serve a wrong one.
        """
        extra = ctx.extra
        if "backend_url" not in extra:
            return None
        if form is None:
            form = statement_form(sql)
        key = self._shapes.get(form)  # a statement seen before (up to its numbers): one dict lookup
        if key is None:
            if not sql.lstrip()[:6].upper().startswith(_HOT_HEADS):
                return None
            key = self._shape(sql, form)
        tx = extra.get("rewrite_tx")
        if tx is not None and tx["open"]:
            return None
        mode = ctx.settings.get("sluice.rewrite", "off")
        if mode == "off":
            return _NO_INFO
        online = self.online  # (set together with ``rewrite_stage``)
        if mode != "on" or online is None:
            return None
        hit = self._no_rewrite.get(key)
        # (``online.generation`` read as its attribute: the property is one Python call per statement)
        if hit is None or hit[0] < now or hit[1] != online._generation:
            return None
        return hit[2]

    def _shape(self, sql: str, form: bytes | None = None) -> str:
        """The negative cache's key of a ``SELECT``/``WITH``/``(`` statement (literals blanked),
        remembered under the statement's ``form`` (UTF-8, ASCII digits as ``0``) when that is sound.

        The literal regex sees a digit only as "some digit", so two statements with the same
        form have their literals at the same places; when every ASCII digit of a statement is
        inside a literal (the key has none left), every statement of that form has the same
        key.  So a statement that differs from one seen before only in its numbers (pgbench,
        an ORM's inlined ids) costs one ``bytes.translate`` and one dict lookup, no regex.
        """
        key = _LITERALS.sub("?", sql)
        if form is not None and not _ASCII_DIGIT.search(key):  # no digit outside a literal
            shapes = self._shapes
            if len(shapes) >= _SHAPES_MAX:
                shapes.clear()  # (bounded; cheaper than evicting one by one from a dict)
            shapes[form] = key
        return key

    async def fast_rewrite_stage(self, ctx: SessionContext, sql: str, extended: bool) -> Decision | None:
        """The rewrite stage; its "forward unchanged" answers to simple-protocol queries are
        cached by shape for :meth:`fast_path`.

        Fingerprinting parses the statement; for a shape that was just looked up and has no
        stored rewrite (the common case: point queries, or a search still running) the next
        statements skip the parse and are forwarded at once.  What is cached never carries a
        callback (a first run timed as the baseline of a queued search is not cached).
        """
        if self.rewrite_stage is None:
            return None
        if extended or ctx.settings.get("sluice.rewrite", "off") != "on" or \
                not sql.lstrip()[:6].upper().startswith(_HOT_HEADS):
            return await self.rewrite_stage(ctx, sql, extended)
        form = statement_form(sql)
        key = self._shapes.get(form) or self._shape(sql, form)
        now = time.monotonic()
        gen = self._generation()  # read before the lookup: a change meanwhile invalidates the entry
        hit = self._no_rewrite.get(key)
        if hit is not None and hit[0] > now and hit[1] == gen and not ctx.extra.get("rewrite_tx", {}).get("open"):
            return Forward(sql, hit[2])
        decision = await self.rewrite_stage(ctx, sql, extended)
        if (type(decision) is Forward and decision.sql == sql and not decision.info.get("rewritten")
                and decision.observe is None and decision.on_bind is None and decision.current is None):
            cache = self._no_rewrite
            cache.pop(key, None)
            cache[key] = (now + _NEGATIVE_TTL_S, gen, decision.info)
            if len(cache) > _NEGATIVE_MAX:  # bounded: the entry refreshed longest ago goes
                del cache[next(iter(cache))]
        return decision

    async def bind_stage(self, ctx: SessionContext, sql: str, extended: bool) -> Decision | None:
        """Tell later stages where the database is (passthrough sessions have no embedded backend)."""
        ctx.extra.setdefault("backend_url", self.backend_url)
        return None

    def __call__(self) -> Pipeline:
        self._connect()
        return Pipeline([self.bind_stage, settings_stage, self.ask_stage, self.fast_rewrite_stage],
                        fast=self.fast_path)

    def close(self) -> None:
        if self.online is not None:
            self.online.close()
        if self._owned and self.backend is not None:
            self.backend.close()

