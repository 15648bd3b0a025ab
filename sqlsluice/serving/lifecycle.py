"""Lifecycle of ``sluice serve``: the composition root that puts the engines on the wire.

:func:`serve` builds a :class:`~sqlsluice.middleware.server.SluiceServer`, gives every
database its product pipeline (:class:`~sqlsluice.serving.pipeline.ProductPipeline`: sluice
settings, ASK, online rewriting), starts ``/metrics``, ``/healthz`` and the web console
(:mod:`sqlsluice.serving.metrics`) and handles the signals:

* SIGTERM or SIGINT stop accepting, let the statements in flight finish for up to
  ``server.shutdown_timeout_s``, then send FATAL 57P01 to the clients left, cancel their
  upstream work and return (exit 0); a second signal skips the wait.
* SIGHUP reloads the config: new sessions use it, open sessions keep running; an invalid
  file is logged (one line per mistake) and the old settings stay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

from sqlsluice.config import Config
from sqlsluice.databases import Backend
from sqlsluice.errors import SluiceError
from sqlsluice.middleware.pipeline import Pipeline
from sqlsluice.middleware.server import SluiceServer, parse_listen, rewrite_namespace

log = logging.getLogger("sqlsluice.server")


def serve(config: Config, *, backend_url: str | None = None, listen: str | None = None,
          on_ready: Callable[[SluiceServer], None] | None = None, product: bool = True,
          reload: Callable[[], Config] | None = None) -> None:
    """Run a server until SIGTERM or SIGINT (the ``sluice serve`` command); returns after a
    graceful shutdown (see the module docs).

    With ``product`` (the default) every session runs the product pipeline of
    :class:`~sqlsluice.serving.pipeline.ProductPipeline` (sluice settings, ASK, online rewriting); without it only the
    sluice settings stage (a plain proxy).  ``reload`` reads the config again on SIGHUP
    (raising :class:`~sqlsluice.errors.ConfigError` when it is invalid: logged, one line per
    mistake, and the old config kept).  With ``config.http.listen`` set, ``/metrics`` and
    ``/healthz`` are served there (:mod:`sqlsluice.serving.metrics`).
    """
    import signal
    import sys

    host, port = parse_listen(listen or config.server.listen)
    # statements run on worker threads that hand results back to the event loop: a shorter
    # GIL switch interval keeps those hand-overs from waiting 5 ms behind another thread
    sys.setswitchinterval(0.0005)

    async def main() -> None:
        srv = SluiceServer(config, backend_url=backend_url)
        srv.tap = True
        products: dict[str, Any] = {}  # backend URL -> its ProductPipeline
        lock = threading.Lock()
        srv.products = lambda: list(products.values())
        if product:
            from sqlsluice.serving.pipeline import ProductPipeline

            def product_for(url: str, backend: Backend | None) -> Callable[[], Pipeline]:
                with lock:
                    p = products.get(url)
                    if p is None:
                        # the server's one backend keeps the store as it was; every other
                        # database its own namespace
                        p = products[url] = ProductPipeline(
                            srv.config, url, backend, namespace="" if srv.is_home(url) else rewrite_namespace(url))
                    return p  # type: ignore[no-any-return]

            if not config.databases:
                srv.open_backend()
                srv.pipeline_factory = product_for(srv.backend_url, srv.backend)
            srv.pipeline_for = product_for
        http = None
        if config.http.listen:
            from sqlsluice.serving.metrics import HttpServer, ServerMetrics

            srv.metrics = ServerMetrics(srv)
            http = HttpServer(srv, config.http.listen)
        loop = asyncio.get_running_loop()
        tasks: set[asyncio.Task[Any]] = set()

        def on_stop(name: str) -> None:
            if srv.shutting_down:
                log.info("%s again: not waiting for statements in flight", name)
                srv.hurry()
                return
            log.info("%s: shutting down (statements in flight get up to %g s)", name,
                     srv.config.server.shutdown_timeout_s)
            t = asyncio.ensure_future(srv.shutdown())
            tasks.add(t)

        async def do_reload() -> None:
            if reload is None:
                return
            try:
                cfg = await asyncio.to_thread(reload)
                srv.reload(cfg)
            except SluiceError as e:
                errors = getattr(e, "errors", None) or str(e.message).splitlines()
                for line in errors:
                    log.error("config reload failed, old settings kept: %s", line)
                if srv.metrics is not None:
                    srv.metrics.reloads.labels("failed").inc()
                return
            except Exception:
                log.exception("config reload failed, old settings kept")
                if srv.metrics is not None:
                    srv.metrics.reloads.labels("failed").inc()
                return
            log.info("config reloaded from %s", srv.config.source or "(defaults)")
            if srv.metrics is not None:
                srv.metrics.reloads.labels("ok").inc()

        def on_hup() -> None:
            t = asyncio.ensure_future(do_reload())
            tasks.add(t)
            t.add_done_callback(tasks.discard)

        try:
            await srv.start(host, port)
            if http is not None:
                await http.start()
                srv.http_address = (http.host, http.port)
                log.info("metrics on http://%s:%s/metrics, health on /healthz", http.host, http.port)
            with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread, or Windows
                loop.add_signal_handler(signal.SIGTERM, on_stop, "SIGTERM")
                loop.add_signal_handler(signal.SIGINT, on_stop, "SIGINT")
                loop.add_signal_handler(signal.SIGHUP, on_hup)
            if on_ready is not None:
                on_ready(srv)
            await srv.wait_stopped()
            log.info("stopped")
        finally:
            if not srv._stopped.is_set():
                await srv.stop()
            if http is not None:
                await http.stop()
            for p in products.values():
                p.close()

    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())
