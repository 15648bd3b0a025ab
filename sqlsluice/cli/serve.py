"""``sluice serve``, ``sluice demo``, ``sluice query``: the wire server and a one-shot query."""

from __future__ import annotations

import logging
from enum import Enum, StrEnum
from typing import Annotated, Any

import typer

from sqlsluice.cli.app import app, handle_errors

LOG_LEVEL_HELP = "debug | info | warning | error (default: log.level in the config, else info)"
HTTP_LISTEN_HELP = ("HOST:PORT for /metrics (Prometheus) and /healthz, e.g. 127.0.0.1:6544 "
                    "(default: http.listen in the config, else off)")
LOG_FORMAT_HELP = "text | json: one JSON object per line (default: log.format in the config, else text)"


def _run_server(config_path: str | None, backend: str | None, listen: str | None, *,
                plain: bool = False, log_level: str | None = None, log_format: str | None = None,
                http_listen: str | None = None) -> None:
    from sqlsluice.config import DEFAULT_BACKEND, DEMO_DB, Config, load_config
    from sqlsluice.errors import ConfigError
    from sqlsluice.logs import configure_logging, mask, register_config_secrets
    from sqlsluice.middleware.server import SluiceServer
    from sqlsluice.serving.demo import connect_hint
    from sqlsluice.serving.lifecycle import serve

    def load() -> Config:
        """The config as the command line says (SIGHUP runs it again; flags still win)."""
        c = load_config(config_path, listen=listen, backend=backend, http_listen=http_listen)
        register_config_secrets(c, backend, *(d if isinstance(d, str) else d.backend for d in c.databases.values()))
        configure_logging(log_level or c.log.level, log_format or c.log.format)
        return c

    cfg = load()
    if not cfg.databases and cfg.server.backend == DEFAULT_BACKEND and not DEMO_DB.exists():
        raise ConfigError(f"the demo database {DEMO_DB} does not exist yet: run `sluice demo` to build it, "
                          "or pass --backend duckdb:///PATH")

    def ready(srv: SluiceServer) -> None:
        log = logging.getLogger("sqlsluice.serve")
        log.info("listening on %s:%s, backend %s, config %s", srv.host, srv.port, srv.backend_url,
                 cfg.source or "(defaults)")
        log.debug("effective config: %s", cfg.model_dump(mode="json"))
        typer.echo(f"sqlsluice listening on {srv.host}:{srv.port} (backend {mask(srv.backend_url)})")
        user = cfg.users[0].name if cfg.users else None
        typer.echo(f"connect with: {connect_hint(srv.backend_url, srv.host, srv.port, user)}")
        if srv.http_address is not None:
            h, p = srv.http_address
            typer.echo(f"metrics: http://{h}:{p}/metrics (health: /healthz, web console: /console)")

    try:
        serve(cfg, backend_url=backend, listen=listen, on_ready=ready, product=not plain, reload=load)
    except KeyboardInterrupt:
        pass
    typer.echo("stopped")


class LogLevel(StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


class LogFormat(StrEnum):
    text = "text"
    json = "json"


@app.command("serve")
@handle_errors
def serve_cmd(
    backend: Annotated[str | None, typer.Option("--backend", "-b", help="duckdb:///PATH, duckdb:///:memory: or "
                                                "postgresql://USER:PASS@HOST:PORT/DB (default: server.backend "
                                                "from the config, else the demo DuckDB file)")] = None,
    listen: Annotated[str | None, typer.Option("--listen", "-l", help="HOST:PORT (default 127.0.0.1:6543; "
                                               "port 0: any free port)")] = None,
    config: Annotated[str | None, typer.Option("--config", "-c", help="sluice.toml path")] = None,
    plain: Annotated[bool, typer.Option("--plain", help="a plain proxy: no ASK and no online rewriting "
                                        "(SET/SHOW sluice.* still answered)")] = False,
    log_level: Annotated[LogLevel | None, typer.Option("--log-level", case_sensitive=False,
                                                       help=LOG_LEVEL_HELP)] = None,
    log_format: Annotated[LogFormat | None, typer.Option("--log-format", case_sensitive=False,
                                                         help=LOG_FORMAT_HELP)] = None,
    http_listen: Annotated[str | None, typer.Option("--http-listen", help=HTTP_LISTEN_HELP)] = None,
) -> None:
    """Serve a database over the PostgreSQL wire protocol.

    SIGTERM/SIGINT: statements in flight finish (up to server.shutdown_timeout_s), then
    clients get FATAL 57P01 and the server exits 0.  SIGHUP: reload sluice.toml.

    Example:  sluice serve --backend duckdb:///.sluice/tpcds_sf0_1.duckdb --listen 127.0.0.1:6543
    then:     psql -h 127.0.0.1 -p 6543 -U sluice tpcds_sf0_1
    """
    _run_server(config, backend, listen, plain=plain, log_level=_lower(log_level), log_format=_lower(log_format),
                http_listen=http_listen)


@app.command("demo")
@handle_errors
def demo_cmd(
    listen: Annotated[str | None, typer.Option("--listen", "-l", help="HOST:PORT (default 127.0.0.1:6543)")] = None,
    sf: Annotated[float, typer.Option(help="TPC-DS scale factor")] = 0.1,
    config: Annotated[str | None, typer.Option("--config", "-c", help="sluice.toml path")] = None,
    log_level: Annotated[LogLevel | None, typer.Option("--log-level", case_sensitive=False,
                                                       help=LOG_LEVEL_HELP)] = None,
    log_format: Annotated[LogFormat | None, typer.Option("--log-format", case_sensitive=False,
                                                         help=LOG_FORMAT_HELP)] = None,
    http_listen: Annotated[str | None, typer.Option("--http-listen", help=HTTP_LISTEN_HELP)] = None,
) -> None:
    """Build the TPC-DS demo database once (DuckDB file under .sluice/) and serve it.

    Example:  sluice demo
    then:     psql -h 127.0.0.1 -p 6543 -U sluice tpcds_sf0_1
    """
    from sqlsluice.config import load_config
    from sqlsluice.serving.demo import build_demo

    load_config(config, listen=listen, http_listen=http_listen)  # every config mistake before the (long) build
    path = build_demo(sf)
    _run_server(config, f"duckdb:///{path}", listen, log_level=_lower(log_level), log_format=_lower(log_format),
                http_listen=http_listen)


def _lower(v: Enum | None) -> str | None:
    return str(v.value) if v is not None else None


@app.command("query")
@handle_errors
def query_cmd(
    sql: Annotated[str, typer.Argument(help="one SQL statement")],
    db: Annotated[str | None, typer.Option("--db", help="database URL (default: server.backend from the "
                                           "config)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON rows instead of a table")] = False,
    config: Annotated[str | None, typer.Option("--config", "-c", help="sluice.toml path")] = None,
) -> None:
    """Run one SQL statement on a database and print its rows.

    Example:  sluice query --db duckdb:///.sluice/tpcds_sf0_1.duckdb "SELECT count(*) FROM store_sales"
    """
    import json

    from sqlsluice.config import load_config
    from sqlsluice.databases import connect

    cfg = load_config(config)
    backend = connect(db or cfg.server.backend)
    try:
        r = backend.execute(sql)
    finally:
        backend.close()
    if as_json:
        names = [c.name for c in r.columns]
        typer.echo(json.dumps({"columns": [{"name": c.name, "type": c.type} for c in r.columns],
                               "rows": [dict(zip(names, row, strict=True)) for row in r.rows],
                               "status": r.status}, default=str))
        return
    if not r.columns:
        typer.echo(r.status)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(*[f"{c.name}\n[dim]{c.type}[/dim]" for c in r.columns])
    for row in r.rows:
        table.add_row(*[_cell(v) for v in row])
    Console().print(table)
    typer.echo(f"({len(r.rows)} row{'s' if len(r.rows) != 1 else ''})")


def _cell(v: Any) -> str:
    return "NULL" if v is None else str(v)
