"""Open one raw protocol-v3 session to an upstream PostgreSQL and authenticate.

Used by :mod:`sqlsluice.middleware.upstream` (one upstream session per client session) and
for CancelRequests.  Answers the upstream's authentication request: trust, cleartext,
md5 and SCRAM-SHA-256 (through ``scramp``).  TLS to the upstream is not spoken: the
upstream is expected on a trusted network (``sslmode=require`` in the URL is refused).

The upstream startup uses the backend URL's user, password and database (the server
has already put the database the client named into the URL, see
:func:`sqlsluice.middleware.server.route_database`).  Session parameters from the client's
startup packet (``application_name``, ``client_encoding``, ``DateStyle``, ``TimeZone``,
``options``, ``extra_float_digits`` ...) are passed on, so the upstream session is
configured as the client asked; ``user``, ``database`` and ``replication`` always come
from the URL.

A client checked by ``auth_query`` (:class:`SecretLookup`) has no plaintext password here:
its target's password is a :class:`sqlsluice.middleware.auth.StoredSecret`, and the
upstream's challenge is answered with the ClientKey recovered from the client's SCRAM proof
(SCRAM pass-through) or with the md5 hash (see :mod:`sqlsluice.middleware.auth`).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import logging
import secrets
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlsluice.errors import BackendError, ConfigError, InvalidPassword, ProtocolViolation, SluiceError
from sqlsluice.middleware import codec
from sqlsluice.middleware.auth import StoredSecret, is_md5_hash, md5_hash_answer, scram_client_proof
from sqlsluice.middleware.framing import MAX_MESSAGE

log = logging.getLogger(__name__)
_I = struct.Struct("!i")
_HDR = struct.Struct("!ci")

# startup keys never taken from the client
_RESERVED_STARTUP = frozenset({"user", "database", "replication"})


@dataclass(frozen=True)
class UpstreamTarget:
    """Where and as whom to connect upstream (parsed from a ``postgresql://`` URL)."""

    host: str
    port: int
    user: str
    password: str | None
    database: str
    options: dict[str, str] = field(default_factory=dict)  # extra startup parameters from the URL

    @classmethod
    def from_url(cls, url: str) -> UpstreamTarget:
        host, port, user, password, database, opts = _parse_url(url)
        return cls(host, port, user, password, database, dict(opts))


@functools.lru_cache(maxsize=256)
def _parse_url(url: str) -> tuple[str, int, str, str | None, str, tuple[tuple[str, str], ...]]:
    """:meth:`UpstreamTarget.from_url`'s parse, remembered (every login of a pooled or routed
    client reads its backend URL; psycopg's conninfo parser is a fair share of a login)."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        d = {k: str(v) for k, v in conninfo_to_dict(url).items() if v is not None}
    except Exception as e:  # psycopg.ProgrammingError on a bad URL
        raise ConfigError(f"invalid PostgreSQL URL: {e}") from e
    if d.pop("sslmode", "prefer") in ("require", "verify-ca", "verify-full"):
        raise ConfigError("TLS to the upstream PostgreSQL is not supported (sslmode=require)")
    host = d.pop("host", "127.0.0.1")
    if host.startswith("/"):
        raise ConfigError("the upstream must be reached over TCP (host=/socket/dir is not supported)")
    try:
        port = int(d.pop("port", "5432"))
    except ValueError as e:
        raise ConfigError("invalid port in the upstream URL") from e
    user = d.pop("user", "postgres")
    password = d.pop("password", None)
    database = d.pop("dbname", user)
    opts: dict[str, str] = {}
    for k in ("application_name", "options"):
        if k in d:
            opts[k] = d.pop(k)
    return host, port, user, password, database, tuple(opts.items())


class UpstreamConnection(asyncio.Protocol):
    """The upstream socket as a plain asyncio Protocol.

    During startup it is a small buffered reader (:meth:`readexactly`); then
    :meth:`start_relay` hands every received chunk straight to a callback, without a
    StreamReader, a Future and a task wake-up per read (this is the hot path of the
    passthrough: about a tenth of the CPU per pgbench transaction on the default loop).
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._waiter: asyncio.Future[None] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self._paused = False
        self.closed = False
        self.on_data: Callable[[bytes], None] | None = None
        self.on_lost: Callable[[], None] | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not an asyncio.Transport subclass

    def data_received(self, data: bytes) -> None:
        cb = self.on_data
        if cb is not None:
            cb(data)
            return
        self._buf += data
        self._wake()

    def eof_received(self) -> bool:
        self._lost()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost()

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        w, self._drain_waiter = self._drain_waiter, None
        if w is not None and not w.done():
            w.set_result(None)

    # helpers
    def _wake(self) -> None:
        w, self._waiter = self._waiter, None
        if w is not None and not w.done():
            w.set_result(None)

    def _lost(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._wake()
        self.resume_writing()
        if self.on_lost is not None:
            self.on_lost()

    async def readexactly(self, n: int) -> bytes:
        while len(self._buf) < n:
            if self.closed:
                raise asyncio.IncompleteReadError(bytes(self._buf), n)
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def needs_drain(self) -> bool:
        return self._paused

    async def drain(self) -> None:
        if self.closed:
            raise ConnectionResetError("upstream connection closed")
        if self._paused:
            self._drain_waiter = asyncio.get_running_loop().create_future()
            await self._drain_waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def start_relay(self, on_data: Callable[[bytes], None], on_lost: Callable[[], None]) -> None:
        """From now on every chunk goes to ``on_data``; ``on_lost`` once the connection ends."""
        self.on_data, self.on_lost = on_data, on_lost
        if self._buf:
            data = bytes(self._buf)
            self._buf.clear()
            on_data(data)
        if self.closed:
            on_lost()


@dataclass
class UpstreamSession:
    """A ready upstream session: the connection, the upstream's key, its ParameterStatus messages."""

    conn: UpstreamConnection
    pid: int
    secret: int
    parameter_status: list[bytes]  # complete 'S' messages, in the order received
    status: bytes  # transaction status of the first ReadyForQuery


def startup_params(target: UpstreamTarget, client_params: dict[str, str] | None) -> dict[str, str]:
    params: dict[str, str] = {}
    for k, v in (client_params or {}).items():
        if k not in _RESERVED_STARTUP and not k.startswith("_pq_."):
            params[k] = v
    params.update(target.options)
    params["user"] = target.user
    params["database"] = target.database
    return params


def startup_message(params: dict[str, str]) -> bytes:
    body = _I.pack(codec.PROTOCOL_V3) + b"".join(codec.cstr(k) + codec.cstr(v) for k, v in params.items()) + b"\x00"
    return _I.pack(len(body) + 4) + body


def md5_password(user: str, password: str, salt: bytes) -> str:
    """PostgreSQL's md5 challenge answer: ``"md5" + md5(md5(password + user) + salt)``.

    >>> md5_password("u", "p", b"\\x01\\x02\\x03\\x04")[:3]
    'md5'
    """
    inner = hashlib.md5((password + user).encode()).hexdigest()
    return "md5" + hashlib.md5(inner.encode() + salt).hexdigest()


async def _read(reader: UpstreamConnection) -> tuple[bytes, bytes]:
    head = await reader.readexactly(5)
    code, length = _HDR.unpack(head)
    if length < 4 or length > MAX_MESSAGE:
        raise ProtocolViolation(f"upstream sent an invalid message length {length}")
    return code, (await reader.readexactly(length - 4) if length > 4 else b"")


# startup errors about what the client asked for (its database, too many clients, a server
# starting up): the client gets PostgreSQL's own ErrorResponse, unchanged
_CLIENT_FACING = frozenset({"3D000", "42501", "53300", "57P03"})


class UpstreamRefused(BackendError):
    """The upstream refused the session with an error the client gets as PostgreSQL sent it
    (``payload``: the ErrorResponse body)."""

    def __init__(self, payload: bytes, message: str, *, sqlstate: str, detail: str | None = None,
                 hint: str | None = None) -> None:
        super().__init__(message, sqlstate=sqlstate, detail=detail, hint=hint)
        self.payload = payload


def _upstream_error(payload: bytes) -> SluiceError:
    f = codec.parse_error_fields(payload)
    if f.sqlstate in _CLIENT_FACING:
        return UpstreamRefused(payload, f.message, sqlstate=f.sqlstate, detail=f.fields.get("D"),
                               hint=f.fields.get("H"))
    cls: type[SluiceError] = InvalidPassword if f.sqlstate in ("28P01", "28000") else BackendError
    return cls(f"upstream: {f.message}", sqlstate=f.sqlstate or "08006",
               detail=f.fields.get("D"), hint=f.fields.get("H"))


def _need_password(target: UpstreamTarget) -> str:
    if target.password is None:
        raise InvalidPassword("upstream asks for a password and the backend URL has none", sqlstate="28P01")
    return target.password


async def _authenticate(target: UpstreamTarget, reader: UpstreamConnection,
                        writer: UpstreamConnection, payload: bytes) -> None:
    """Answer one Authentication request (payload of an 'R' message other than AuthOk)."""
    kind = _I.unpack_from(payload)[0]
    if isinstance(target.password, StoredSecret):
        await _pass_through(target, target.password, kind, reader, writer, payload)
        return
    if kind == codec.AUTH_CLEARTEXT:
        writer.write(codec.message(codec.PASSWORD, codec.cstr(_need_password(target))))
    elif kind == codec.AUTH_MD5:
        salt = payload[4:8]
        writer.write(codec.message(codec.PASSWORD, codec.cstr(md5_password(target.user, _need_password(target),
                                                                             salt))))
    elif kind == codec.AUTH_SASL:
        await _scram(target, reader, writer, payload)
        return
    else:
        raise BackendError(f"upstream asks for an unsupported authentication method ({kind})", sqlstate="28000")
    await writer.drain()


def _require_scram(payload: bytes) -> None:
    mechs = [m.decode() for m in payload[4:].split(b"\x00") if m]
    if "SCRAM-SHA-256" not in mechs:
        raise BackendError(f"upstream offers no supported SASL mechanism ({', '.join(mechs)})", sqlstate="28000")


async def _sasl_step(reader: UpstreamConnection, writer: UpstreamConnection, message: bytes, expect: int,
                     what: str) -> bytes:
    """Send one SASL message; the upstream's answer, which must be ``expect`` (SASLContinue or
    SASLFinal); an ErrorResponse is raised as the upstream's own error."""
    writer.write(codec.message(codec.PASSWORD, message))
    await writer.drain()
    code, body = await _read(reader)
    if code == codec.ERROR_RESPONSE:
        raise _upstream_error(body)
    if code != codec.AUTHENTICATION or _I.unpack_from(body)[0] != expect:
        raise ProtocolViolation(f"upstream SCRAM exchange: expected {what}")
    return bytes(body[4:])


async def _scram(target: UpstreamTarget, reader: UpstreamConnection, writer: UpstreamConnection,
                 payload: bytes) -> None:
    import scramp

    _require_scram(payload)
    client = scramp.ScramClient(["SCRAM-SHA-256"], target.user, _need_password(target))
    first = client.get_client_first().encode()
    server_first = await _sasl_step(reader, writer, codec.cstr("SCRAM-SHA-256") + _I.pack(len(first)) + first,
                                    codec.AUTH_SASL_CONTINUE, "SASLContinue")
    try:
        client.set_server_first(server_first.decode())
        final = client.get_client_final().encode()
    except scramp.ScramException as e:
        raise InvalidPassword(f"upstream SCRAM exchange failed: {e}", sqlstate="28P01") from e
    server_final = await _sasl_step(reader, writer, final, codec.AUTH_SASL_FINAL, "SASLFinal")
    try:
        client.set_server_final(server_final.decode())
    except scramp.ScramException as e:
        raise InvalidPassword(f"upstream SCRAM server signature is invalid: {e}", sqlstate="28P01") from e


async def _pass_through(target: UpstreamTarget, secret: StoredSecret, kind: int, reader: UpstreamConnection,
                        writer: UpstreamConnection, payload: bytes) -> None:
    """Answer the upstream's challenge for a client checked by auth_query: md5 with the stored
    hash, SCRAM with the ClientKey recovered from the client's proof."""
    failed = InvalidPassword(f'password authentication failed for user "{target.user}"', sqlstate="28P01")
    if kind == codec.AUTH_MD5 and is_md5_hash(secret):
        writer.write(codec.message(codec.PASSWORD, codec.cstr(md5_hash_answer(secret, payload[4:8]))))
        await writer.drain()
        return
    if kind != codec.AUTH_SASL or secret.verifier is None or not secret.client_key:
        log.warning("upstream asks user %r for authentication method %d, which the secret from auth_query "
                    "cannot answer (a SCRAM verifier answers SCRAM, an md5 hash md5)", target.user, kind)
        raise failed
    _require_scram(payload)
    v = secret.verifier
    cnonce = base64.b64encode(secrets.token_bytes(18)).decode()
    first_bare = "n=,r=" + cnonce
    first = ("n,," + first_bare).encode()
    server_first = (await _sasl_step(reader, writer, codec.cstr("SCRAM-SHA-256") + _I.pack(len(first)) + first,
                                     codec.AUTH_SASL_CONTINUE, "SASLContinue")).decode()
    attrs = dict(p.split("=", 1) for p in server_first.split(",") if len(p) > 1 and p[1] == "=")
    try:
        salt, iterations = base64.b64decode(attrs.get("s", "")), int(attrs.get("i", "0"))
    except ValueError:
        salt, iterations = b"", 0
    nonce = attrs.get("r", "")
    if not nonce.startswith(cnonce) or len(nonce) == len(cnonce):
        raise ProtocolViolation("upstream SCRAM exchange: bad nonce")
    if (salt, iterations) != (v.salt, v.iterations):
        # the role's password changed since auth_query read it: the ClientKey is of no use
        log.info("upstream SCRAM salt of user %r differs from the auth_query verifier's", target.user)
        raise failed
    final_bare = "c=biws,r=" + nonce
    auth_message = f"{first_bare},{server_first},{final_bare}".encode()
    proof = scram_client_proof(secret.client_key, v.stored_key, auth_message)
    server_final = await _sasl_step(reader, writer, f"{final_bare},p={base64.b64encode(proof).decode()}".encode(),
                                    codec.AUTH_SASL_FINAL, "SASLFinal")
    want = b"v=" + base64.b64encode(hmac.new(v.server_key, auth_message, hashlib.sha256).digest())
    if not hmac.compare_digest(server_final.strip(), want):
        raise InvalidPassword("upstream SCRAM server signature is invalid", sqlstate="28P01")


async def open_upstream(target: UpstreamTarget, client_params: dict[str, str] | None = None, *,
                        timeout: float = 10.0) -> UpstreamSession:
    """Connect, start up and authenticate; return once the upstream sent ReadyForQuery."""
    loop = asyncio.get_running_loop()
    try:
        _t, conn = await asyncio.wait_for(loop.create_connection(UpstreamConnection, target.host, target.port),
                                          timeout)
    except (TimeoutError, OSError) as e:
        raise BackendError(f"cannot connect to upstream {target.host}:{target.port}: {e}",
                           sqlstate="08001") from e
    try:
        return await asyncio.wait_for(_startup(target, client_params, conn), timeout)
    except TimeoutError as e:
        conn.close()
        raise BackendError("upstream startup timed out", sqlstate="08001") from e
    except (asyncio.IncompleteReadError, ConnectionError) as e:
        conn.close()
        raise BackendError(f"upstream closed the connection during startup: {e}", sqlstate="08006") from e
    except BaseException:
        conn.close()
        raise


async def _startup(target: UpstreamTarget, client_params: dict[str, str] | None,
                   conn: UpstreamConnection) -> UpstreamSession:
    conn.write(startup_message(startup_params(target, client_params)))
    await conn.drain()
    pid = secret = 0
    status: list[bytes] = []
    while True:
        code, body = await _read(conn)
        if code == codec.AUTHENTICATION:
            if _I.unpack_from(body)[0] != codec.AUTH_OK:
                await _authenticate(target, conn, conn, body)
        elif code == codec.PARAMETER_STATUS:
            status.append(codec.message(code, body))
        elif code == codec.BACKEND_KEY_DATA:
            pid, secret = struct.unpack("!ii", body[:8])
        elif code == codec.READY_FOR_QUERY:
            return UpstreamSession(conn, pid, secret, status, body[:1])
        elif code == codec.ERROR_RESPONSE:
            raise _upstream_error(body)
        elif code in (codec.NOTICE_RESPONSE, codec.NEGOTIATE_PROTOCOL_VERSION):
            continue
        else:
            raise ProtocolViolation(f"unexpected upstream message {code!r} during startup")


async def cancel_upstream(target: UpstreamTarget, pid: int, secret: int, *, timeout: float = 5.0) -> bool:
    """Send a CancelRequest with the upstream's key (a fresh connection, as libpq does).

    True when the request is settled: PostgreSQL closed the connection, which it does once it
    has signalled the backend, or nothing was sent.  False when it was sent and not answered
    within ``timeout``: it may still reach the backend later (a pooled connection is then
    not given to another client, see :meth:`~sqlsluice.middleware.pool.Pool.cancel`).
    """
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(target.host, target.port), timeout)
    except (TimeoutError, OSError):
        return True
    try:
        writer.write(struct.pack("!iiii", 16, codec.CANCEL_REQUEST_CODE, pid, secret))
        await writer.drain()
        # the server closes the connection once it has handled the request
        await asyncio.wait_for(reader.read(1), timeout)
        return True
    except (TimeoutError, OSError):
        return False
    finally:
        writer.close()


# --- auth_query ---------------------------------------------------------------------------
async def run_query(session: UpstreamSession, sql: str, params: tuple[str, ...], *,
                    timeout: float = 10.0) -> list[list[str | None]]:
    """Run ``sql`` with text parameters (``$1`` ...) over the extended protocol on a fresh
    session; rows as text; raises the upstream's error."""
    conn = session.conn
    bind = (b"\0\0" + struct.pack("!hh", 0, len(params))
            + b"".join(_I.pack(len(p.encode())) + p.encode() for p in params) + struct.pack("!h", 0))
    conn.write(codec.message(codec.PARSE, b"\0" + codec.cstr(sql) + struct.pack("!h", 0))
               + codec.message(codec.BIND, bind) + codec.message(codec.EXECUTE, b"\0" + _I.pack(0))
               + codec.message(codec.SYNC))
    rows: list[list[str | None]] = []
    err: SluiceError | None = None

    async def read() -> None:
        nonlocal err
        while True:
            code, body = await _read(conn)
            if code == codec.DATA_ROW:
                rows.append(codec.parse_data_row_text(body))
            elif code == codec.ERROR_RESPONSE:
                f = codec.parse_error_fields(body)
                err = BackendError(f"auth_query: {f.message}", sqlstate=f.sqlstate or "XX000")
            elif code == codec.READY_FOR_QUERY:
                return

    await asyncio.wait_for(read(), timeout)
    if err is not None:
        raise err
    return rows


def _target_key(t: UpstreamTarget) -> tuple[object, ...]:
    return (t.host, t.port, t.user, t.password, t.database, tuple(sorted(t.options.items())))


class SecretLookup:
    """PgBouncer's ``auth_query``: the secret PostgreSQL stores for a user, read upstream as
    ``auth_user``; results (a missing user too) are kept ``ttl`` seconds, per (upstream,
    query, user).  One idle session per upstream target is kept for the next lookup."""

    def __init__(self) -> None:
        self._cache: dict[tuple[object, ...], tuple[float, str | None]] = {}
        self._idle: dict[tuple[object, ...], UpstreamSession] = {}
        self._locks: dict[tuple[object, ...], asyncio.Lock] = {}
        self.lookups = 0  # queries run upstream (cache misses)

    async def secret(self, target: UpstreamTarget, query: str, user: str, ttl: float) -> str | None:
        """The ``passwd`` column (second) of ``query``'s row for ``user``; None when there is no
        row or no password.  Raises when the lookup cannot run (logged without secrets)."""
        key = (*_target_key(target), query, user)
        hit = self._cache.get(key)
        now = time.monotonic()
        if hit is not None and now < hit[0]:
            return hit[1]
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:  # a burst of logins of one user runs one query
            hit = self._cache.get(key)
            if hit is not None and time.monotonic() < hit[0]:
                return hit[1]
            value = await self._query(target, query, user)
            if ttl > 0:
                if len(self._cache) > 10000:
                    self._cache.clear()
                self._cache[key] = (time.monotonic() + ttl, value)
        self._locks.pop(key, None)
        return value

    def forget(self, target: UpstreamTarget, query: str, user: str) -> None:
        self._cache.pop((*_target_key(target), query, user), None)

    async def _query(self, target: UpstreamTarget, query: str, user: str) -> str | None:
        self.lookups += 1
        tkey = _target_key(target)
        session = self._idle.pop(tkey, None)
        if session is not None and (session.conn.closed or session.conn._buf):
            session.conn.close()  # ended (or said something) while idle
            session = None
        reused = session is not None
        while True:
            if session is None:
                session = await open_upstream(target, {"application_name": "sqlsluice auth_query"})
            try:
                rows = await run_query(session, query, (user,))
                break
            except (ConnectionError, asyncio.IncompleteReadError) as e:
                session.conn.close()
                session = None
                if not reused:
                    raise BackendError(f"auth_query: the upstream closed the connection: {e}",
                                       sqlstate="08006") from e
                reused = False  # the kept session had gone stale: once more on a new one
            except BaseException:
                session.conn.close()
                raise
        if tkey in self._idle:
            session.conn.close()
        else:
            self._idle[tkey] = session
        if not rows or len(rows[0]) < 2:
            return None
        return rows[0][1]

    def close(self) -> None:
        for s in self._idle.values():
            s.conn.close()
        self._idle.clear()
