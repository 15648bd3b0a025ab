"""The product's statement pipeline: what ``sluice serve`` runs for every statement.

    settings (SET/SHOW sluice.*) -> ASK / EXPLAIN ASK -> online rewriting -> forward

One :class:`~sqlsluice.rewriters.online.OnlineRewriter` (a background worker and the
rewrite store) is shared by all sessions of a server; each session gets its own
:class:`~sqlsluice.middleware.pipeline.Pipeline` over the shared stages.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sqlsluice.config import Config
from sqlsluice.databases import Backend, connect
from sqlsluice.middleware.pipeline import Decision, Pipeline, PipelineFactory, SessionContext, settings_stage

if TYPE_CHECKING:
    from sqlsluice.rewriters.online import OnlineRewriter

log = logging.getLogger("sqlsluice.serving")


class ProductPipeline:
    """Builds per-session pipelines over stages shared by one server."""

    def __init__(self, config: Config, backend_url: str, backend: Backend | None = None) -> None:
        from sqlsluice.rewriters.proxy_stage import make_rewrite_stage
        from sqlsluice.text2sql.proxy_stage import ask_stage

        self.config = config
        self.backend_url = backend_url
        # the rewriter needs a backend of its own for EXPLAIN, verification runs and timing;
        # over DuckDB it shares the server's embedded database
        self._owned = backend is None
        self.backend = backend if backend is not None else connect(backend_url)
        self.rewrite_stage, self.online = make_rewrite_stage(self.backend, config)
        self.ask_stage = ask_stage

    async def bind_stage(self, ctx: SessionContext, sql: str, extended: bool) -> Decision | None:
        """Tell later stages where the database is (passthrough sessions have no embedded backend)."""
        ctx.extra.setdefault("backend_url", self.backend_url)
        return None

    def __call__(self) -> Pipeline:
        return Pipeline([self.bind_stage, settings_stage, self.ask_stage, self.rewrite_stage])

    def close(self) -> None:
        self.online.close()
        if self._owned:
            self.backend.close()


def product_pipeline_factory(config: Config, backend_url: str, backend: Any = None) -> PipelineFactory:
    return ProductPipeline(config, backend_url, backend)


def online_rewriter(factory: PipelineFactory) -> OnlineRewriter | None:
    return factory.online if isinstance(factory, ProductPipeline) else None
