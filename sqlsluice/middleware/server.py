"""The asyncio TCP server: startup, SSL negotiation, authentication, cancel routing, dispatch.

After authentication the client's database name is routed to a backend URL
(:func:`route_database`: ``[databases]`` in the config, else ``server.backend`` with, for
PostgreSQL, the client's database name in it) and the connection is handed to that
backend's handler: the DuckDB session handler (:mod:`sqlsluice.middleware.session_duckdb`)
or, for a PostgreSQL upstream, ``sqlsluice.middleware.upstream.serve_upstream`` (contract
in :mod:`sqlsluice.middleware.connection`).  Each backend URL gets its own pipeline
(``pipeline_for``), hence its own rewriter and catalog.

Start one on a running loop with :meth:`SluiceServer.start`; :class:`ServerThread` runs one
in a background thread (tests).  ``sluice serve`` composes a server with the product's
stages, signals and HTTP endpoints in :mod:`sqlsluice.serving.lifecycle`: this layer knows
the wire and the backends, never the engines (rewriting, ASK) that run on it.

Shutdown (:meth:`SluiceServer.shutdown`): stop accepting, let the statements in flight
finish for up to ``server.shutdown_timeout_s``, then send FATAL 57P01 to the clients left,
cancel their upstream work (a CancelRequest upstream, a DuckDB interrupt); :meth:`hurry`
skips the wait.  :meth:`SluiceServer.reload` takes a new config: new sessions use it, open
sessions keep running.  With ``tap`` on, the server sees each connection's messages
(:mod:`sqlsluice.middleware.tap`), so that it knows which sessions are between statements,
and feeds ``metrics`` (set by the composition root).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import inspect
import ipaddress
import logging
import secrets
import ssl
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from sqlsluice.config import Config, DatabaseConfig
from sqlsluice.databases import Backend, connect, parse_url
from sqlsluice.errors import ConfigError, InvalidPassword, ProtocolViolation, SluiceError
from sqlsluice.middleware import codec
from sqlsluice.middleware.auth import (
    ScramExchange,
    ScramVerifier,
    StoredSecret,
    check_cleartext,
    check_md5,
    is_md5_hash,
    md5_hash_answer,
    parse_secret,
)
from sqlsluice.middleware.connection import Canceller, ClientConnection
from sqlsluice.middleware.framing import read_message, read_startup
from sqlsluice.middleware.pipeline import Pipeline, SessionContext, default_pipeline
from sqlsluice.middleware.pool import PoolManager
from sqlsluice.middleware.tap import ConnTap
from sqlsluice.middleware.upstream_auth import SecretLookup, UpstreamTarget

log = logging.getLogger("sqlsluice.server")

SERVER_VERSION = "15.0 (sqlsluice)"
STARTUP_TIMEOUT_S = 30.0
SHUTDOWN_MESSAGE = "terminating connection due to administrator command"


def parse_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"bad listen address {listen!r}: use HOST:PORT, e.g. 127.0.0.1:6543")
    return host.strip("[]"), int(port)


def database_url(url: str, dbname: str) -> str:
    """A ``postgresql://`` URL with its database replaced by ``dbname``.

    >>> database_url("postgresql://u:p@h:5/db?application_name=a&dbname=x", "my db")
    'postgresql://u:p@h:5/my%20db?application_name=a'
    """
    parts = urlsplit(url)
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "dbname"])
    return urlunsplit((parts.scheme, parts.netloc, "/" + quote(dbname, safe=""), query, parts.fragment))


def _entry_url(entry: DatabaseConfig | str) -> str:
    return entry if isinstance(entry, str) else entry.backend


def route_database(config: Config, default_url: str, name: str) -> str | None:
    """The backend URL serving the client database ``name``; None when there is none.

    With no ``[databases]``: ``default_url``, for PostgreSQL with ``name`` as its database.
    Else the entry named ``name``, else ``*`` with ``name`` as its database.

    >>> cfg = Config(databases={"shop": "duckdb:///shop.duckdb", "*": "postgresql://u@h/x"})
    >>> route_database(cfg, "", "shop"), route_database(cfg, "", "crm")
    ('duckdb:///shop.duckdb', 'postgresql://u@h/crm')
    >>> route_database(Config(databases={"shop": "duckdb:///s.db"}), "", "crm") is None
    True
    >>> route_database(Config(), "postgresql://u@h:5/main", "crm")
    'postgresql://u@h:5/crm'
    """
    dbs = config.databases
    if not dbs:
        return database_url(default_url, name) if parse_url(default_url)[0] == "postgres" else default_url
    entry = dbs.get(name)
    if entry is not None:
        return _entry_url(entry)
    star = dbs.get("*")
    return None if star is None else database_url(_entry_url(star), name)


def check_databases(config: Config) -> None:
    """Every ``[databases]`` URL is a backend URL; ``*`` is a PostgreSQL one."""
    for name, entry in config.databases.items():
        kind, _ = parse_url(_entry_url(entry))
        if name == "*" and kind != "postgres":
            raise ConfigError('databases."*" must be a postgresql:// URL (the client\'s database name goes in it)')


def rewrite_namespace(url: str) -> str:
    """A short name for the database a backend URL reaches (host, port and database for
    PostgreSQL, the file for DuckDB; not the user): its stored rewrites' namespace.

    >>> rewrite_namespace("postgresql://a@h:5432/db") == rewrite_namespace("postgresql://b:pw@h:5432/db")
    True
    """
    import hashlib

    kind, target = parse_url(url)
    if kind == "postgres":
        from psycopg.conninfo import conninfo_to_dict

        d = conninfo_to_dict(target)
        target = f"{d.get('host', '')}:{d.get('port', '5432')}/{d.get('dbname', d.get('user', ''))}"
    return hashlib.sha256(f"{kind}:{target}".encode()).hexdigest()[:12]


def _is_local(peer: Any) -> bool:
    if not peer:
        return True  # unix socket
    try:
        return ipaddress.ip_address(peer[0]).is_loopback
    except ValueError:
        return False


class SluiceServer:
    """One listening server over one backend."""

    def __init__(self, config: Config | None = None, *, backend_url: str | None = None,
                 backend: Backend | None = None, pipeline_factory: Callable[[], Pipeline] | None = None) -> None:
        self.config = config or Config()
        self.backend_url = backend_url or self.config.server.backend
        self.kind, _ = parse_url(self.backend_url)
        check_databases(self.config)
        # what route_database makes of the backend URL's own database (the same database)
        self._home_url = self.backend_url
        if self.kind == "postgres" and not self.config.databases:
            with contextlib.suppress(SluiceError):
                self._home_url = database_url(self.backend_url, UpstreamTarget.from_url(self.backend_url).database)
        self.backend = backend
        self.pipeline_factory = pipeline_factory or default_pipeline
        # the pipeline factory of a backend URL other than ``backend_url`` (``serve`` sets it;
        # called on a worker thread: it may connect); None: ``pipeline_factory`` for all
        self.pipeline_for: Callable[[str, Backend | None], Callable[[], Pipeline]] | None = None
        self._factories: dict[str, Callable[[], Pipeline]] = {}
        self._backends: dict[str, Backend] = {}  # DuckDB backends of [databases] entries, opened on use
        # (pid, secret) -> canceller; the pid of a passthrough session is the upstream's own
        self._cancel: dict[tuple[int, int], Canceller] = {}
        self.pools = PoolManager(self.config)  # pooled PostgreSQL server connections ([pool], [databases])
        self.secrets = SecretLookup()  # auth_query's lookups and their cache ([auth])
        self._mock_key = secrets.token_bytes(16)  # mock SCRAM salts of unknown users
        self.clients_open = 0  # client connections past their startup packet ([pool] max_client_conn)
        self._server: asyncio.Server | None = None
        self._ssl: ssl.SSLContext | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        sc = self.config.server
        if bool(sc.tls_cert) != bool(sc.tls_key):
            raise ConfigError("server.tls_cert and server.tls_key must be set together")
        if sc.tls_cert and sc.tls_key:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            try:
                ctx.load_cert_chain(sc.tls_cert, sc.tls_key)
            except (OSError, ssl.SSLError) as e:
                raise ConfigError(f"cannot load TLS certificate {sc.tls_cert}: {e}") from e
            self._ssl = ctx
        self.host = ""
        self.port = 0
        # lifecycle and metrics (see the module docs); ``serve`` turns the tap on
        self.tap = False
        self.metrics: Any = None  # sqlsluice.serving.metrics.ServerMetrics when /metrics is served
        # id(conn) -> (conn, its tap): the sessions open now
        self.sessions: dict[int, tuple[ClientConnection, ConnTap | None]] = {}
        self.shutting_down = False
        self._stopped = asyncio.Event()
        self._deadline = 0.0
        # the product pipelines (their rewriters feed /metrics); ``serve`` sets it
        self.products: Callable[[], list[Any]] = list
        self.http_address: tuple[str, int] | None = None  # where /metrics is served, once it is

    # --- cancel registry -------------------------------------------------------------
    def register_cancel(self, canceller: Canceller, pid: int | None = None) -> tuple[int, int]:
        """Route CancelRequests with (pid, secret) to ``canceller.cancel()``; returns the key.

        ``pid`` is the one the client sees (a passthrough session's real upstream pid), else
        made up; the secret is always ours, so only this client's own key reaches ``canceller``.
        """
        if pid is None:
            pid = secrets.randbelow(2**31 - 2) + 1
        secret = secrets.randbelow(2**31 - 1)
        while (pid, secret) in self._cancel:
            secret = secrets.randbelow(2**31 - 1)
        self._cancel[(pid, secret)] = canceller
        return pid, secret

    def unregister_cancel(self, pid: int, secret: int) -> None:
        self._cancel.pop((pid, secret), None)

    async def _handle_cancel(self, pid: int, secret: int) -> None:
        canceller = self._cancel.get((pid, secret))
        if canceller is None:
            return  # PostgreSQL silently ignores bad keys
        r = canceller.cancel()
        if inspect.isawaitable(r):
            await r

    # --- database routing ------------------------------------------------------------
    def _backend_for(self, url: str) -> Backend | None:
        """The embedded backend of a DuckDB URL (opened once); None for PostgreSQL."""
        if url == self.backend_url and self.backend is not None:
            return self.backend
        if parse_url(url)[0] != "duckdb":
            return None
        b = self._backends.get(url)
        if b is None:
            b = self._backends[url] = connect(url)
        return b

    def is_home(self, url: str) -> bool:
        """True when ``url`` (routed) is the server's one backend (no ``[databases]``)."""
        return not self.config.databases and url in (self.backend_url, self._home_url)

    async def _factory_for(self, url: str, backend: Backend | None) -> Callable[[], Pipeline]:
        if self.pipeline_for is None or self.is_home(url):
            return self.pipeline_factory
        f = self._factories.get(url)
        if f is None:
            f = await asyncio.to_thread(self.pipeline_for, url, backend)
            f = self._factories.setdefault(url, f)
        return f

    # --- lifecycle -------------------------------------------------------------------
    def open_backend(self) -> None:
        if self.backend is None and self.kind == "duckdb" and not self.config.databases:
            self.backend = connect(self.backend_url)

    async def start(self, host: str | None = None, port: int | None = None) -> None:
        self.open_backend()
        if host is None or port is None:
            h, p = parse_listen(self.config.server.listen)
            host = h if host is None else host
            port = p if port is None else port
        try:
            self._server = await asyncio.start_server(self._client, host, port, limit=1 << 20)
        except OSError as e:
            raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror}") from e
        sock = self._server.sockets[0].getsockname()
        self.host, self.port = sock[0], sock[1]

    async def serve_forever(self) -> None:
        assert self._server is not None
        async with self._server:
            await self._server.serve_forever()

    async def wait_stopped(self) -> None:
        """Until :meth:`shutdown` has finished."""
        await self._stopped.wait()

    async def shutdown(self, timeout: float | None = None) -> None:
        """Stop accepting; end each session once it is between statements (FATAL 57P01), for
        up to ``timeout`` seconds (``server.shutdown_timeout_s``); then end the rest: FATAL
        57P01, their upstream statements cancelled; then :meth:`stop`."""
        if self.shutting_down:
            return
        self.shutting_down = True
        if timeout is None:
            timeout = self.config.server.shutdown_timeout_s
        if self._server is not None:
            self._server.close()  # no new connections
        loop = asyncio.get_running_loop()
        self._deadline = loop.time() + timeout
        ended: set[int] = set()
        if self.sessions:
            log.info("shutting down: %d session(s) open, waiting up to %g s for statements in flight",
                     len(self.sessions), timeout)
        while True:
            for key, (conn, tap) in list(self.sessions.items()):
                if key in ended or tap is None:
                    continue
                if tap.idle:
                    ended.add(key)
                    self._terminate(conn, tap)
                elif tap.on_idle is None:
                    # ended the moment its statement's ReadyForQuery is written: the client
                    # cannot slip another statement in
                    tap.on_idle = functools.partial(self._end_idle, ended, key, conn, tap)
            if not any(c not in ended for c in self.sessions) or loop.time() >= self._deadline:
                break
            await asyncio.sleep(0.02)
        left = [ct for k, ct in self.sessions.items() if k not in ended]
        if left:
            log.warning("shutdown: ending %d session(s) with statements still in flight", len(left))
        for conn, tap in left:
            self._terminate(conn, tap, cancel=True)
        end = loop.time() + 5.0
        while self.sessions and loop.time() < end:
            await asyncio.sleep(0.02)
        await self.stop()
        self._stopped.set()

    def _end_idle(self, ended: set[int], key: int, conn: ClientConnection, tap: ConnTap) -> None:
        if key not in ended:
            ended.add(key)
            self._terminate(conn, tap)

    def hurry(self) -> None:
        """A second SIGTERM/SIGINT: stop waiting for statements in flight."""
        self._deadline = 0.0

    def _terminate(self, conn: ClientConnection, tap: ConnTap | None, *, cancel: bool = False) -> None:
        """FATAL 57P01 to the client (unless a message to it is half sent), close it, and with
        ``cancel`` stop what its session still runs on the backend."""
        writer = conn.writer
        with contextlib.suppress(Exception):
            if tap is None or tap.at_boundary():
                writer.write(codec.error_response("57P01", SHUTDOWN_MESSAGE, severity="FATAL"))
            if tap is not None:
                tap.on_idle = None
                tap.closed = True  # whatever the session still sends or reads is dropped
            # half-close first (the FATAL, then FIN) and close a moment later: closing at once
            # with the client's next message unread makes the kernel send RST, which can reach
            # the client before the FATAL does
            if writer.can_write_eof():
                writer.write_eof()
                asyncio.get_running_loop().call_later(1.0, writer.close)
            else:
                writer.close()
        if cancel:
            for key in list(conn.keys):
                canceller = self._cancel.get(key)
                if canceller is None:
                    continue
                try:
                    r = canceller.cancel()
                    if inspect.isawaitable(r):
                        asyncio.ensure_future(r)
                except Exception:
                    log.exception("cancelling a session's statement at shutdown failed")

    def reload(self, config: Config) -> None:
        """Use ``config`` from now on: new sessions authenticate, route and get their settings
        defaults with it; open sessions keep theirs.  The shared rewriters take its
        ``[rewrite]`` settings at once.  ``server.listen``, ``server.backend``, TLS and
        ``http.listen`` need a restart."""
        check_databases(config)
        old = self.config
        for what, a, b in (("server.listen", old.server.listen, config.server.listen),
                           ("server.backend", old.server.backend, config.server.backend),
                           ("server.tls_cert", old.server.tls_cert, config.server.tls_cert),
                           ("http.listen", old.http.listen, config.http.listen)):
            if a != b:
                log.warning("config reload: %s changed; it takes effect after a restart", what)
        self.config = config
        self.pools.config = config
        for p in self.products():
            with contextlib.suppress(AttributeError):
                p.config = config
                if getattr(p, "online", None) is not None:
                    p.online.config = config

    async def check_backend(self) -> None:
        """``SELECT 1`` on the server's backend (raises when it does not answer)."""
        if self.kind == "postgres":
            import psycopg

            target = parse_url(self.backend_url)[1]
            conn = await psycopg.AsyncConnection.connect(target, connect_timeout=2, autocommit=True)
            try:
                await conn.execute("SELECT 1")
            finally:
                await conn.close()
            return
        backend = self.backend or self._backend_for(self.backend_url)
        if backend is None:
            raise SluiceError("no backend is open")
        await asyncio.to_thread(backend.execute, "SELECT 1")

    async def stop(self) -> None:
        self.shutting_down = True
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        if tasks:
            with contextlib.suppress(Exception):
                await asyncio.wait(tasks, timeout=2)
        for b in self._backends.values():
            with contextlib.suppress(Exception):
                b.close()
        self._backends.clear()
        self.pools.close()
        self.secrets.close()

    # --- one client ---------------------------------------------------------------------
    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._run_client(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, TimeoutError, OSError):
            pass
        except asyncio.CancelledError:
            pass
        except SluiceError as e:
            with contextlib.suppress(Exception):
                writer.write(codec.error_response(e.sqlstate, e.message, severity="FATAL"))
                await writer.drain()
        except Exception:  # a bug in a handler must not kill the server
            log.exception("connection handler failed")
            with contextlib.suppress(Exception):
                writer.write(codec.error_response("XX000", "internal error in sqlsluice", severity="FATAL"))
        finally:
            if task is not None:
                self._tasks.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    async def _run_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        tls_done = False
        while True:
            payload = await asyncio.wait_for(read_startup(reader), STARTUP_TIMEOUT_S)
            pkt = codec.parse_startup(payload)
            if isinstance(pkt, codec.SSLRequest):
                if tls_done:
                    raise ProtocolViolation("duplicate SSLRequest")
                if self._ssl is not None:
                    writer.write(b"S")
                    await writer.drain()
                    await writer.start_tls(self._ssl)
                    tls_done = True
                else:
                    writer.write(b"N")
                    await writer.drain()
                continue
            if isinstance(pkt, codec.GSSENCRequest):
                writer.write(b"N")
                await writer.drain()
                continue
            if isinstance(pkt, codec.CancelRequest):
                await self._handle_cancel(pkt.pid, pkt.secret)
                return
            break
        params = dict(pkt.params)
        if self.shutting_down:
            raise SluiceError("the database system is shutting down", sqlstate="57P03")
        limit = self.config.pool.max_client_conn
        if limit is not None and self.clients_open >= limit:  # PgBouncer's max_client_conn: all databases
            raise SluiceError(f"sorry, too many clients already: max_client_conn = {limit} clients connected",
                              sqlstate="53300")
        self.clients_open += 1
        try:
            await self._serve_client(reader, writer, params, peer)
        finally:
            self.clients_open -= 1

    async def _serve_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                            params: dict[str, str], peer: Any) -> None:
        database = params.get("database") or params["user"]
        url = route_database(self.config, self.backend_url, database)
        try:
            password = await self._authenticate(reader, writer, params, peer, database, url)
        except InvalidPassword:
            # a secret looked up before may be stale (the role's password changed): the next
            # attempt looks it up again
            how = self.auth_query(database, url) if self.config.user(params["user"]) is None else None
            if how is not None:
                self.secrets.forget(how[0], how[1], params["user"])
            raise
        writer.write(codec.authentication_ok())
        if url is None:  # as PostgreSQL says it, after AuthenticationOk
            raise SluiceError(f'database "{database}" does not exist', sqlstate="3D000")
        kind, _ = parse_url(url)
        backend = self._backend_for(url)

        async def pipeline_source() -> Pipeline:
            return (await self._factory_for(url, backend))()

        ctx = SessionContext(user=params["user"], database=database, config=self.config,
                             dialect="postgres" if kind == "postgres" else "duckdb", backend=backend,
                             client_addr=str(peer[0]) if isinstance(peer, tuple) else "")
        tap: ConnTap | None = None
        if self.tap:
            tap = ConnTap(reader, writer, _SessionSink(self.metrics, ctx) if self.metrics is not None else None)
            tap.aligned = kind != "postgres"  # the DuckDB handler writes whole messages
            reader, writer = tap.reader, tap.writer  # type: ignore[assignment]  # stream proxies
        conn = ClientConnection(reader=reader, writer=writer, params=params, server=self,
                                pipeline=Pipeline() if kind == "postgres" else await pipeline_source(), ctx=ctx,
                                config=self.config, backend_url=url, backend=backend, password=password,
                                peer=str(peer), pipeline_source=pipeline_source if kind == "postgres" else None)
        self.sessions[id(conn)] = (conn, tap)
        if self.metrics is not None:
            self.metrics.connections.inc()
            self.metrics.connections_total.inc()
        try:
            if kind == "postgres":
                from sqlsluice.middleware import upstream

                await upstream.serve_upstream(conn)
            else:
                from sqlsluice.middleware.session_duckdb import serve_duckdb

                await serve_duckdb(conn)
        finally:
            conn.unregister_all()
            self.sessions.pop(id(conn), None)
            if self.metrics is not None:
                self.metrics.connections.dec()

    def auth_query(self, database: str, url: str | None) -> tuple[UpstreamTarget, str, float] | None:
        """Where and how ``auth_query`` looks a client of ``database`` up: the target (the
        routed upstream, as ``auth_user`` in ``auth_dbname``), the query, the cache time; None
        when no ``auth_user`` is configured for it or it is not served by PostgreSQL."""
        cfg = self.config
        a = cfg.auth
        user, query, dbname = a.user, a.query, a.dbname
        entry = cfg.databases.get(database, cfg.databases.get("*"))
        if isinstance(entry, DatabaseConfig):
            user = entry.auth_user or user
            query = entry.auth_query or query
            dbname = entry.auth_dbname or dbname
        if not user or url is None or parse_url(url)[0] != "postgres":
            return None
        target = UpstreamTarget.from_url(url)
        password = a.password if user == a.user else None  # [auth] password: [auth] user's
        if password is None:
            if target.user == user:
                password = target.password
            elif (u := cfg.user(user)) is not None:
                password = u.upstream_password or u.password
        return replace(target, user=user, password=password, database=dbname or target.database), query, a.cache_s

    async def _lookup_secret(self, database: str, url: str | None, user: str) -> str | None:
        """The secret ``auth_query`` returns for ``user`` (None: no such user, or no password)."""
        how = self.auth_query(database, url)
        if how is None:
            return None
        target, query, ttl = how
        try:
            return await self.secrets.secret(target, query, user, ttl)
        except (SluiceError, OSError, TimeoutError) as e:
            log.warning("auth_query as %r in database %r failed: %s", target.user, target.database, e)
            raise SluiceError("authentication lookup (auth_query) failed upstream; see the proxy log",
                              sqlstate="08006") from None

    async def _authenticate(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                            params: dict[str, str], peer: Any, database: str = "",
                            url: str | None = None) -> str | None:
        cfg = self.config
        user = params["user"]
        method = cfg.auth_method
        if method == "trust":
            if not cfg.users and not _is_local(peer) and cfg.server.auth is None:
                raise SluiceError(f'no users configured: only local connections are trusted (user "{user}")',
                                  sqlstate="28000")
            return None
        u = cfg.user(user)
        failed = InvalidPassword(f'password authentication failed for user "{user}"')
        # the secret to check against: a [[users]] password, else what auth_query returns (a
        # SCRAM verifier, an md5 hash, a plain password; None: unknown, refused the same way)
        plain: str | None = u.password if u is not None else None
        stored_text: str | None = None
        verifier: ScramVerifier | None = None
        if u is None:
            stored_text = await self._lookup_secret(database, url, user)
            parsed = parse_secret(stored_text)
            if isinstance(parsed, ScramVerifier):
                verifier = parsed
            elif isinstance(parsed, str) and not is_md5_hash(parsed):
                plain = parsed
        md5_hash = stored_text if stored_text is not None and is_md5_hash(stored_text) else None
        if verifier is not None and method == "md5":
            method = "scram-sha-256"  # as PostgreSQL's md5 method does for a SCRAM-stored password
        elif md5_hash is not None and cfg.server.auth is None:
            method = "md5"  # no method configured: the one the stored secret allows

        async def read_password() -> bytes:
            code, payload = await asyncio.wait_for(read_message(reader, 1 << 16), STARTUP_TIMEOUT_S)
            if code == codec.TERMINATE:
                raise ConnectionResetError("client closed during authentication")
            if code != codec.PASSWORD:
                raise ProtocolViolation(f"expected password response, got message type {code!r}")
            return payload

        if method == "cleartext":
            writer.write(codec.authentication_cleartext())
            await writer.drain()
            sent = codec.parse_password(await read_password())
            if plain is not None:
                ok = secrets.compare_digest(sent.encode(), plain.encode())
            else:
                secret = verifier or md5_hash
                ok = secret is not None and check_cleartext(sent, secret, user)
            if not ok:
                raise failed
            return sent
        if method == "md5":
            salt = secrets.token_bytes(4)
            writer.write(codec.authentication_md5(salt))
            await writer.drain()
            sent = codec.parse_password(await read_password())
            if plain is not None and check_md5(sent, plain, user, salt):
                return plain
            if md5_hash is not None and secrets.compare_digest(sent.encode(), md5_hash_answer(md5_hash, salt).encode()):
                return StoredSecret(md5_hash)
            raise failed
        # SCRAM-SHA-256; a missing user still runs the exchange (no user enumeration)
        writer.write(codec.authentication_sasl(["SCRAM-SHA-256"]))
        await writer.drain()
        init = codec.parse_sasl_initial(await read_password())
        if init.mechanism != "SCRAM-SHA-256":
            raise ProtocolViolation(f"unsupported SASL mechanism {init.mechanism!r}", sqlstate="28000")
        # an unknown user gets a salt of its own that does not change between attempts, as a
        # known one does (PostgreSQL's mock authentication)
        scram = ScramExchange(verifier or plain or secrets.token_hex(16),
                              salt=None if verifier or plain else hmac.new(self._mock_key, user.encode(),
                                                                            "sha256").digest()[:16])
        writer.write(codec.authentication_sasl_continue(scram.first(init.data)))
        await writer.drain()
        final = codec.parse_sasl_response(await read_password())
        try:
            server_final = scram.final(final)
        except InvalidPassword:
            raise failed from None
        if verifier is None and plain is None:
            raise failed
        writer.write(codec.authentication_sasl_final(server_final))
        if verifier is not None:
            assert stored_text is not None
            return StoredSecret(stored_text, verifier=verifier, client_key=scram.client_key)
        return plain


class _SessionSink:
    """One session's statements and errors into the server's metrics; ASK answers counted by
    route and pipeline (what the ASK stage left in ``ctx.extra["ask_last"]``)."""

    __slots__ = ("metrics", "ctx", "_ask")

    def __init__(self, metrics: Any, ctx: SessionContext) -> None:
        self.metrics = metrics
        self.ctx = ctx
        self._ask: Any = None

    def statement(self, seconds: float | None) -> None:
        self.metrics.statement(seconds)
        ask = self.ctx.extra.get("ask_last")
        if ask is not None and ask is not self._ask:
            self._ask = ask
            if "route" in ask:
                self.metrics.ask(ask, self.ctx.settings.get("sluice.router") or self.ctx.config.ask.router)

    def error(self, sqlstate: str) -> None:
        self.metrics.error(sqlstate)


def startup_parameters(params: dict[str, str], *, is_superuser: bool = True) -> list[tuple[str, str]]:
    """The ParameterStatus messages sent after authentication (what drivers expect)."""
    return [
        ("server_version", SERVER_VERSION),
        ("server_encoding", "UTF8"),
        ("client_encoding", "UTF8"),
        ("DateStyle", "ISO, MDY"),
        ("IntervalStyle", "postgres"),
        ("integer_datetimes", "on"),
        ("standard_conforming_strings", "on"),
        ("TimeZone", "UTC"),
        ("application_name", params.get("application_name", "")),
        ("is_superuser", "on" if is_superuser else "off"),
        ("session_authorization", params.get("user", "")),
    ]


class ServerThread:
    """Run a :class:`SluiceServer` on its own event loop in a daemon thread (tests, notebooks)."""

    def __init__(self, server: SluiceServer, host: str = "127.0.0.1", port: int = 0) -> None:
        self.server = server
        self._host, self._port = host, port
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="sluice-server", daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.server.start(self._host, self._port))
        except BaseException as e:  # reported to the starting thread
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()

    def start(self) -> ServerThread:
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self

    @property
    def port(self) -> int:
        return self.server.port

    def stop(self) -> None:
        if not self.loop.is_running():
            return
        fut = asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop)
        with contextlib.suppress(Exception):
            fut.result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
