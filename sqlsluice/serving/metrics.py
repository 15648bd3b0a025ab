"""``/metrics`` (Prometheus text format) and ``/healthz`` for ``sluice serve``.

Turned on by ``[http] listen = "127.0.0.1:6544"`` in ``sluice.toml`` or ``sluice serve
--http-listen HOST:PORT``; served by uvicorn on the wire server's own event loop (a small
Starlette app).  Every server has its own :class:`prometheus_client.CollectorRegistry`,
so several servers in one process never share counters.

What is exported (all names start with ``sluice_``):

* ``connections_current``, ``connections_total``: client sessions (after authentication);
* ``statements_total``: statements answered (one per ReadyForQuery after a Query, Sync or
  FunctionCall); ``statement_duration_seconds``: their latency (client message in ->
  ReadyForQuery out, as the proxy sees it); ``errors_total{sqlstate}``: ErrorResponses sent;
* ``rewrites_searched_total``, ``rewrites_stored_total``, ``rewrites_served_total``,
  ``rewrites_dropped_total`` (from the online rewriter's counters, summed over backends),
  ``rewrites_proved`` (stored rewrites whose verdict is EQUIVALENT), ``rewrite_time_saved_seconds``
  (served rewrites: executions x (original's time - served mean), from the served-time feedback);
* ``ask_questions_total{route,pipeline}`` and ``ask_tokens_total{route,pipeline}`` (route: the
  router, as ``SET sluice.router`` names it);
* ``llm_tokens_total{model,direction}``, ``llm_cost_usd_total{model}``: the LLM usage
  ledger of the state store (every LLM call of this and other proxies sharing it);
* ``config_reloads_total{result}``: SIGHUP reloads (``ok`` | ``failed``);
* ``pool_client_active{database}``, ``pool_client_waiting{database}``,
  ``pool_server_active{database}``, ``pool_server_idle{database}``: the server connection
  pools (``SHOW sluice.pools`` summed over each client database's pools, one per upstream role).

``/healthz`` answers 200 ``{"status": "ok"}`` when the backend answers ``SELECT 1`` within
2 s, else 503 with the reason (also while the server shuts down).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from sqlsluice.middleware.server import SluiceServer

log = logging.getLogger("sqlsluice.serving.metrics")

HEALTH_TIMEOUT_S = 2.0
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                   60.0, 300.0)


class ServerMetrics:
    """The metrics of one server (its own registry); also the statement sink of its connections."""

    def __init__(self, server: SluiceServer | None = None) -> None:
        self.server = server
        r = self.registry = CollectorRegistry()
        self.connections = Gauge("sluice_connections_current", "Client sessions open now", registry=r)
        self.connections_total = Counter("sluice_connections", "Client sessions opened (after authentication)",
                                         registry=r)
        self.statements = Counter("sluice_statements", "Statements answered (ReadyForQuery after a Query, "
                                  "Sync or FunctionCall)", registry=r)
        self.errors = Counter("sluice_errors", "ErrorResponses sent to clients, by SQLSTATE", ["sqlstate"],
                              registry=r)
        self.latency = Histogram("sluice_statement_duration_seconds", "Statement latency as the proxy sees it "
                                 "(client message in -> ReadyForQuery out)", buckets=LATENCY_BUCKETS, registry=r)
        self.asks = Counter("sluice_ask_questions", "ASK questions answered, by route and pipeline",
                            ["route", "pipeline"], registry=r)
        self.ask_tokens = Counter("sluice_ask_tokens", "LLM tokens spent on ASK questions, by route and pipeline",
                                  ["route", "pipeline"], registry=r)
        self.reloads = Counter("sluice_config_reloads", "Config reloads (SIGHUP), by result", ["result"],
                               registry=r)
        r.register(_EngineCollector(self))

    # --- StatementSink (sqlsluice.middleware.tap) ----------------------------------------
    def statement(self, seconds: float | None) -> None:
        self.statements.inc()
        if seconds is not None:
            self.latency.observe(seconds)

    def error(self, sqlstate: str) -> None:
        self.errors.labels(sqlstate or "unknown").inc()

    def ask(self, info: dict[str, Any], router: str = "") -> None:
        """One ASK answered: ``route`` is the router that chose (the session's
        ``sluice.router``; the route's reason, e.g. how many tables were linked, is left out to
        keep the label set small), ``pipeline`` the pipeline it chose."""
        route = router or str(info.get("route") or "").split(":", 1)[0]
        pipeline = str(info.get("pipeline") or "")
        self.asks.labels(route, pipeline).inc()
        with contextlib.suppress(TypeError, ValueError):
            self.ask_tokens.labels(route, pipeline).inc(int(info.get("tokens") or 0))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _EngineCollector(Collector):
    """Read at scrape time: the online rewriters' counters and the LLM usage ledger."""

    def __init__(self, metrics: ServerMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Any]:
        srv = self.metrics.server
        products = list(srv.products()) if srv is not None else []
        totals = {"searched": 0, "stored": 0, "hits": 0, "dropped": 0}
        proved = 0
        saved = 0.0
        for p in products:
            online = getattr(p, "online", None)
            if online is None:
                continue
            stats = getattr(online, "stats", None)
            for k in totals:
                totals[k] += int(getattr(stats, k, 0) or 0)
            with contextlib.suppress(Exception):
                proved += sum(1 for e in online.store.all() if e.has_rewrite and e.verdict == "EQUIVALENT")
            saved += _time_saved(online)
        for name, key, doc in (("searched", "searched", "Rewrite searches run"),
                               ("stored", "stored", "Search results stored (rewrites and no-rewrite markers)"),
                               ("served", "hits", "Statements served with a stored rewrite"),
                               ("dropped", "dropped", "Stored rewrites dropped (slower when served, or wrong)")):
            c = CounterMetricFamily(f"sluice_rewrites_{name}", doc)
            c.add_metric([], totals[key])
            yield c
        g = GaugeMetricFamily("sluice_rewrites_proved", "Stored rewrites proved equivalent (verdict EQUIVALENT)")
        g.add_metric([], proved)
        yield g
        g = GaugeMetricFamily("sluice_rewrite_time_saved_seconds", "Time saved by served rewrites: executions x "
                              "(original's time - served mean), from the served-time feedback (this process)")
        g.add_metric([], saved)
        yield g
        yield from _pool_metrics(srv)
        yield from _ledger_metrics(srv)


_POOL_GAUGES = (("client_active", "cl_active", "Clients of a pool not waiting for a server connection"),
                ("client_waiting", "cl_waiting", "Clients waiting for a server connection"),
                ("server_active", "sv_active", "Server connections handed out to clients (or being reset)"),
                ("server_idle", "sv_idle", "Idle server connections in the pool"))


def _pool_metrics(srv: Any) -> Iterator[Any]:
    """The pools of the server, summed per client database (``SHOW sluice.pools``)."""
    pools = getattr(srv, "pools", None)
    by_db: dict[str, dict[str, int]] = {}
    with contextlib.suppress(Exception):  # a pool added while we read: the next scrape has it
        for s in pools.stats() if pools is not None else []:
            d = by_db.setdefault(str(s["database"]), dict.fromkeys((k for _, k, _ in _POOL_GAUGES), 0))
            for _, key, _ in _POOL_GAUGES:
                d[key] += int(s[key])
    for name, key, doc in _POOL_GAUGES:
        g = GaugeMetricFamily(f"sluice_pool_{name}", doc, labels=["database"])
        for db, d in sorted(by_db.items()):
            g.add_metric([db], d[key])
        yield g


def _time_saved(online: Any) -> float:
    saved = 0.0
    lock = getattr(online, "_lock", None)
    with lock if lock is not None else contextlib.nullcontext():
        served = list(getattr(online, "_served", {}).values())
    for sv in served:
        with contextlib.suppress(Exception):
            orig = sv.original()
            if sv.n_rewrite and sv.rewrite_s is not None and orig is not None:
                saved += sv.n_rewrite * (orig - sv.rewrite_s)
    return saved


def _ledger_metrics(srv: Any) -> Iterator[Any]:
    tokens = CounterMetricFamily("sluice_llm_tokens", "LLM tokens recorded in the usage ledger",
                                 labels=["model", "direction"])
    cost = CounterMetricFamily("sluice_llm_cost_usd", "LLM cost recorded in the usage ledger (USD)", labels=["model"])
    try:
        from sqlsluice.llm.ledger import Ledger
        from sqlsluice.text2sql.querylog import store_for

        by_model = Ledger(store_for(srv.config if srv is not None else None)).by("model")
    except Exception as e:  # the ledger is optional: never fail a scrape for it
        log.debug("LLM usage ledger not readable: %s", e)
        by_model = {}
    for model, t in sorted(by_model.items(), key=lambda kv: str(kv[0])):
        m = str(model or "")
        tokens.add_metric([m, "input"], t.input_tokens)
        tokens.add_metric([m, "output"], t.output_tokens)
        cost.add_metric([m], t.cost_usd)
    yield tokens
    yield cost


# --- HTTP --------------------------------------------------------------------------------
def make_app(server: SluiceServer) -> Any:
    """The Starlette app: ``/metrics``, ``/healthz`` and the web console (:mod:`sqlsluice.serving.web`)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    async def metrics(request: Request) -> Response:
        assert server.metrics is not None
        body = await asyncio.to_thread(server.metrics.render)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    async def healthz(request: Request) -> Response:
        if server.shutting_down:  # load balancers stop sending while statements drain
            return JSONResponse({"status": "shutting down"}, status_code=503)
        t0 = time.perf_counter()
        try:
            await asyncio.wait_for(server.check_backend(), HEALTH_TIMEOUT_S)
        except TimeoutError:
            return JSONResponse({"status": "unavailable", "reason": f"backend did not answer SELECT 1 within "
                                 f"{HEALTH_TIMEOUT_S:g} s"}, status_code=503)
        except Exception as e:
            from sqlsluice.logs import mask

            return JSONResponse({"status": "unavailable", "reason": mask(str(e).splitlines()[0] if str(e) else
                                                                          type(e).__name__)}, status_code=503)
        return JSONResponse({"status": "ok", "backend_ms": round((time.perf_counter() - t0) * 1000, 3)})

    from sqlsluice.serving.web import console_routes  # the web console (/console/...), same port

    return Starlette(routes=[Route("/metrics", metrics), Route("/healthz", healthz), *console_routes(server)])


def _uvicorn_server() -> type:
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield  # the wire server handles SIGTERM/SIGINT/SIGHUP (on the same loop)

    return Server


class HttpServer:
    """uvicorn serving :func:`make_app` on the running event loop."""

    def __init__(self, server: SluiceServer, listen: str) -> None:
        import uvicorn

        from sqlsluice.middleware.server import parse_listen

        host, port = parse_listen(listen)
        self.config = uvicorn.Config(make_app(server), host=host, port=port, log_level="warning",
                                     access_log=False, lifespan="off", loop="none")
        self.server = _uvicorn_server()(self.config)
        self._task: asyncio.Task[None] | None = None
        self.host, self.port = host, port

    async def start(self) -> None:
        """Bind (a clear error when the address is taken) and serve in a task of this loop."""
        import socket

        from sqlsluice.errors import ConfigError

        try:
            infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
            family, kind, proto, _, addr = infos[0]
            sock = socket.socket(family, kind, proto)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(addr)
            sock.listen(128)
            sock.setblocking(False)
        except OSError as e:
            raise ConfigError(f"cannot serve HTTP on {self.host}:{self.port}: {e.strerror or e}") from e
        self.host, self.port = sock.getsockname()[:2]
        self._task = asyncio.ensure_future(self.server.serve(sockets=[sock]))
        while not self.server.started and not self._task.done():
            await asyncio.sleep(0.01)
        if self._task.done():
            raise ConfigError(f"cannot serve HTTP on {self.host}:{self.port}: {self._task.exception()}")

    async def stop(self) -> None:
        self.server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, 5)
