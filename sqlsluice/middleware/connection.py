"""One authenticated client connection, as handed to a backend-specific session handler.

Contract for the PostgreSQL passthrough (``sqlsluice.middleware.upstream``)
--------------------------------------------------------------------------
When the backend's dialect is ``"postgres"`` the server, after the startup packet, the
SSL negotiation and authentication, has sent exactly one message: ``AuthenticationOk``.
It then calls::

    await sqlsluice.middleware.upstream.serve_upstream(conn)   # conn: ClientConnection

``serve_upstream`` owns the connection from then on:

* it connects to the upstream (``conn.backend_url``, a ``postgresql://`` URL, already
  routed: its database is the one the client named unless ``[databases]`` says otherwise;
  the client's ``conn.user``/``conn.database``/``conn.params`` are what the client asked
  for, and ``conn.password`` is the cleartext password when the client sent one, else
  ``None``);
* with pooling configured for the database (``[pool]``, ``[databases]``) the server
  connection comes from ``conn.server.pools`` (:mod:`sqlsluice.middleware.pool`) instead,
  for the session or, in transaction mode, for each transaction;
* once the upstream session is open it sets ``conn.pipeline = await conn.pipeline_source()``
  when that is set (so a database that does not exist costs no pipeline and no rewriter);
* it sends the client the ParameterStatus messages (from the upstream), BackendKeyData
  and the first ReadyForQuery itself.  BackendKeyData must carry a key obtained from
  ``pid, secret = conn.register_cancel(canceller, pid=upstream_pid)`` (the client sees the
  upstream's real pid, the secret is ours), where ``canceller`` has a ``cancel()`` method
  (sync or async) that cancels the statement running upstream; the server calls it when a
  CancelRequest with that key arrives on another connection;
* when the client sends Terminate nothing more is sent to it; when the upstream ends the
  session its own FATAL ErrorResponse is the last thing the client gets;
* it runs every Query and Parse SQL through ``await conn.pipeline.handle(conn.ctx, sql,
  extended=...)`` (see :mod:`sqlsluice.middleware.pipeline`): ``Forward(sql)`` -> send that
  SQL upstream, ``Reply(columns, rows, status)`` -> answer locally (helpers:
  :func:`sqlsluice.middleware.session_duckdb.reply_messages`), a raised ``SluiceError`` ->
  ErrorResponse (:func:`error_message`);
* it returns when the client sends Terminate or disconnects.  It may raise
  ``ConnectionError``/``asyncio.IncompleteReadError`` on a vanished client; the server
  catches those, unregisters the cancel key, and closes ``conn.writer``.

Bytes: ``conn.reader``/``conn.writer`` are the asyncio streams (already upgraded to TLS
when TLS was negotiated).  Nothing has been read past the startup/auth messages, so the
first byte in ``conn.reader`` is the client's first post-auth message.
Codecs: :mod:`sqlsluice.middleware.codec`, framing: :mod:`sqlsluice.middleware.framing`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from sqlsluice.config import Config
from sqlsluice.errors import SluiceError
from sqlsluice.middleware import codec
from sqlsluice.middleware.pipeline import Pipeline, SessionContext

if TYPE_CHECKING:
    from sqlsluice.middleware.server import SluiceServer


class Canceller(Protocol):
    def cancel(self) -> Any: ...


@dataclass
class ClientConnection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    params: dict[str, str]  # the startup message's parameters (user, database, options, application_name...)
    server: SluiceServer
    pipeline: Pipeline
    ctx: SessionContext
    config: Config
    backend_url: str
    backend: Any = None  # the sqlsluice.databases.Backend the server opened (DuckDB), else None
    password: str | None = None
    peer: str = ""
    keys: list[tuple[int, int]] = field(default_factory=list)
    # PostgreSQL: builds ``pipeline`` once the upstream session is open (see module docs)
    pipeline_source: Callable[[], Awaitable[Pipeline]] | None = None

    @property
    def user(self) -> str:
        return self.params.get("user", "")

    @property
    def database(self) -> str:
        return self.params.get("database") or self.user

    def register_cancel(self, canceller: Canceller, pid: int | None = None) -> tuple[int, int]:
        """Allocate a (pid, secret) pair (``pid`` when given) and route CancelRequests carrying
        it to ``canceller``."""
        key = self.server.register_cancel(canceller, pid)
        self.keys.append(key)
        return key

    def unregister_all(self) -> None:
        for pid, secret in self.keys:
            self.server.unregister_cancel(pid, secret)
        self.keys.clear()


def error_message(e: SluiceError) -> bytes:
    """ErrorResponse for a typed error."""
    return codec.error_response(e.sqlstate, e.message, detail=e.detail, hint=e.hint)
