"""Pooling of PostgreSQL server connections (PgBouncer's ``pool_mode``, ``pool_size``,
``max_client_conn``, ``query_wait_timeout``, ``server_idle_timeout``, ``server_lifetime``).

One :class:`Pool` per (upstream host, port, database, role); the server's
:class:`PoolManager` holds them and counts clients per database (``[pool] max_client_conn``,
the limit over all databases, is the server's).  A client that finds every server
connection busy waits in a FIFO queue for up to ``query_wait_timeout`` seconds, then gets
53300.  A server connection idle longer than ``server_idle_timeout`` is closed (a janitor
task looks every few seconds, and a checkout never takes one); one older than
``server_lifetime`` is closed when it comes back, or while idle.  ``SHOW sluice.pools``
(:func:`pools_view`) shows each pool as PgBouncer's ``SHOW POOLS`` does.

Modes (the relay side is :class:`sqlsluice.middleware.upstream.UpstreamRelay`):

``session``
    a client holds one server connection from login to logout.  Without ``pool_size``
    it is opened for the client and closed after it (no pool at all, the default).  With
    ``pool_size`` it comes from the pool and goes back after ``DISCARD ALL`` (after a
    ``ROLLBACK`` when the client left inside a transaction).
``transaction``
    a client holds a server connection from the first message of a transaction (or of an
    extended-protocol batch) until ReadyForQuery says idle ('I'), then it goes back.

Session state in transaction mode:

* the client's startup parameters (``application_name``, ``TimeZone``, ``-c`` options
  ...) and its own ``SET``/``RESET`` are **tracked and replayed**: after a transaction in
  which the client ran ``SET`` or ``RESET`` the proxy reads the session's settings
  (``pg_settings`` with source ``session``) and, at each checkout of a server connection
  whose settings differ, runs ``RESET ALL`` and ``set_config`` for each;
* named prepared statements (protocol level) are remembered per client (its Parse) and
  prepared under a name of the proxy's own (``sluice_s_`` + a hash of the SQL and the
  parameter types, shared by all clients) on whichever server connection runs a Bind or
  Describe for them; a client's Close answers CloseComplete without dropping the shared
  statement, ``DEALLOCATE`` and ``DISCARD ALL`` are answered for the client alone;
* refused with 0A000 (they would outlive the transaction on a connection other clients
  get next): ``LISTEN``, SQL-level ``PREPARE``, ``DECLARE ... WITH HOLD``, temporary
  tables, session advisory locks (``pg_advisory_lock``; the ``_xact_`` ones are fine),
  ``SET ROLE`` / ``SET SESSION AUTHORIZATION``, ``LOAD``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import struct
import time
import weakref
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from sqlsluice.databases.base import ColumnInfo
from sqlsluice.errors import SluiceError
from sqlsluice.middleware import codec, pipeline
from sqlsluice.middleware.upstream_auth import UpstreamSession, UpstreamTarget, cancel_upstream, open_upstream

if TYPE_CHECKING:
    from sqlsluice.config import Config
    from sqlsluice.middleware.pipeline import SessionContext

log = logging.getLogger(__name__)

DEFAULT_TX_POOL_SIZE = 20
_I = struct.Struct("!i")
# parameters PostgreSQL reports with ParameterStatus (GUC_REPORT), re-read after a client's SET
REPORTED = ("application_name", "client_encoding", "DateStyle", "IntervalStyle", "TimeZone",
            "standard_conforming_strings", "default_transaction_read_only", "is_superuser",
            "session_authorization", "integer_datetimes", "server_encoding", "server_version",
            "in_hot_standby")
_NOT_SETTABLE = frozenset({"user", "database", "replication", "options"})


class PoolTimeout(SluiceError):
    """No server connection became free within ``query_wait_timeout``."""


@dataclass(frozen=True)
class PoolSettings:
    mode: str = "session"  # session | transaction
    size: int | None = None  # None in session mode: no pool (one upstream per client)
    max_client_conn: int | None = None  # clients of this database (its [databases] entry)
    query_wait_timeout: float = 120.0
    server_idle_timeout: float = 600.0  # 0: never
    server_lifetime: float = 3600.0  # 0: never

    @property
    def pooled(self) -> bool:
        return self.mode == "transaction" or self.size is not None


def pool_settings(config: Config, database: str) -> PoolSettings:
    """The pool settings of the client database ``database``: its ``[databases]`` entry
    (or the ``*`` entry) over ``[pool]``.  ``max_client_conn`` is the entry's own limit;
    ``[pool] max_client_conn`` counts the clients of all databases (the server checks it).

    >>> from sqlsluice.config import Config
    >>> cfg = Config.model_validate({"pool": {"pool_size": 5, "server_lifetime": 60},
    ...     "databases": {"a": {"backend": "postgresql://h/a", "pool_mode": "transaction"}}})
    >>> a = pool_settings(cfg, "a")
    >>> a.mode, a.size, a.server_lifetime, pool_settings(cfg, "b").mode
    ('transaction', 5, 60.0, 'session')
    """
    p = config.pool
    entry = config.databases.get(database, config.databases.get("*"))
    mode, size, maxc, wait = p.pool_mode, p.pool_size, None, p.query_wait_timeout
    idle, life = p.server_idle_timeout, p.server_lifetime
    if entry is not None and not isinstance(entry, str):
        mode = entry.pool_mode or mode
        size = entry.pool_size or size
        maxc = entry.max_client_conn
        wait = entry.query_wait_timeout or wait
        idle = idle if entry.server_idle_timeout is None else entry.server_idle_timeout
        life = life if entry.server_lifetime is None else entry.server_lifetime
    if mode == "transaction" and size is None:
        size = DEFAULT_TX_POOL_SIZE
    return PoolSettings(mode, size, maxc, wait, idle, life)


def startup_settings(params: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """The session settings a client's startup packet asks for (``-c name=value`` in
    ``options`` included), as (name, value) pairs for ``set_config``.

    >>> startup_settings({"user": "u", "application_name": "a", "options": "-c work_mem=8MB --geqo=off"})
    (('application_name', 'a'), ('geqo', 'off'), ('work_mem', '8MB'))
    """
    out: dict[str, str] = {}
    for k, v in params.items():
        if k not in _NOT_SETTABLE and not k.startswith("_pq_."):
            out[k.lower()] = v
    opts = params.get("options", "").split()
    i = 0
    while i < len(opts):
        o = opts[i]
        if o == "-c" and i + 1 < len(opts):
            o, i = "--" + opts[i + 1], i + 1
        if o.startswith("--") and "=" in o:
            k, v = o[2:].split("=", 1)
            out[k.replace("-", "_").lower()] = v
        elif o.startswith("-c") and "=" in o:
            k, v = o[2:].split("=", 1)
            out[k.lower()] = v
        i += 1
    return tuple(sorted(out.items()))


def _lit(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def apply_sql(settings: tuple[tuple[str, str], ...]) -> str:
    """``RESET ALL`` and the client's settings, skipping those this role may not change now
    (a startup-only or superuser parameter asked for by a client that may not set it).

    >>> apply_sql(())
    'RESET ALL'
    """
    if not settings:
        return "RESET ALL"
    values = ", ".join(f"({_lit(k)}, {_lit(v)})" for k, v in settings)
    return ("RESET ALL; SELECT count(set_config(s.name, v.value, false)) FROM (VALUES " + values
            + ") AS v(name, value) JOIN pg_settings s ON lower(s.name) = lower(v.name) "
            "WHERE s.context = 'user' OR (s.context = 'superuser' AND current_setting('is_superuser') = 'on')")


CAPTURE_SQL = ("SELECT name, setting, source = 'session' FROM pg_settings WHERE source = 'session' OR name IN ("
               + ", ".join(_lit(n) for n in REPORTED) + ")")


# --- statements that would leave state behind on a shared server connection -------------
_REFUSED = re.compile(
    r"^\s*(?:(LISTEN)\b|(PREPARE)\b(?!\s+TRANSACTION\b)|(LOAD)\b|(SET\s+(?:SESSION\s+)?(?:ROLE|SESSION\s+AUTHORIZATION))\b"
    r"|(DECLARE)\b.*\bWITH\s+HOLD\b|(CREATE)\s+(?:(?:GLOBAL|LOCAL)\s+)?(?:TEMP|TEMPORARY)\b)",
    re.IGNORECASE | re.DOTALL)
_ADVISORY = re.compile(r"\bpg_(?:try_)?advisory_lock(?:_shared)?\s*\(", re.IGNORECASE)
# SET/RESET, and DO/CALL (a DO block's EXECUTE 'SET ...', a procedure's set_config: settings
# changed where the statement's text does not say so; the settings are read after the transaction)
_SETS = re.compile(r"^\s*(?:(?:SET|RESET)\b(?!\s+(?:LOCAL|TRANSACTION|CONSTRAINTS)\b)|DO\b|CALL\b)",
                   re.IGNORECASE)
_DEALLOCATE = re.compile(r"^\s*DEALLOCATE\s+(?:PREPARE\s+)?(ALL|\"(?:[^\"]|\"\")+\"|[^\s;]+)\s*;?\s*$",
                         re.IGNORECASE)
_DISCARD_ALL = re.compile(r"^\s*DISCARD\s+ALL\s*;?\s*$", re.IGNORECASE)
_WHAT = {1: "LISTEN", 2: "PREPARE", 3: "LOAD", 4: "SET ROLE / SET SESSION AUTHORIZATION",
         5: "DECLARE ... WITH HOLD", 6: "temporary tables"}


def _statements(sql: str) -> list[str]:
    """``sql`` and, for a multi-statement string, each part after a ``;`` (a ``;`` inside a
    literal makes a spurious part: at worst a false refusal or an extra settings read)."""
    return [sql, *sql.split(";")[1:]] if ";" in sql else [sql]


def refusal(sql: str) -> SluiceError | None:
    """Why ``sql`` cannot run in transaction pooling (0A000), or None.

    >>> refusal("LISTEN x").sqlstate, refusal("select pg_advisory_xact_lock(1)") is None
    ('0A000', True)
    >>> refusal("CREATE TEMP TABLE t (k int)").message.split(":")[0]
    'temporary tables are not supported in transaction pooling mode'
    >>> refusal("SELECT 1; listen x").sqlstate
    '0A000'
    """
    m = None
    for part in _statements(sql):
        m = _REFUSED.match(part)
        if m is not None:
            break
    if m is not None:
        what = _WHAT[next(i for i in range(1, 7) if m.group(i))]
    elif ("advisory" in sql or "ADVISORY" in sql) and _ADVISORY.search(sql):
        what = "session advisory locks"
    else:
        return None
    return SluiceError(f"{what} are not supported in transaction pooling mode: the server connection goes "
                       "to other clients after each transaction" if what[0].islower() else
                       f"{what} is not supported in transaction pooling mode: the server connection goes "
                       "to other clients after each transaction", sqlstate="0A000",
                       hint="use pool_mode = \"session\" for this database (or SET LOCAL, "
                            "pg_advisory_xact_lock, ON COMMIT DROP tables inside a transaction)")


def is_set(sql: str) -> bool:
    """A statement that may change session settings: SET or RESET (not LOCAL), a DO block or a
    CALL, also inside a multi-statement string, or a ``set_config`` call (tracked and replayed
    in transaction mode).  A function that changes a setting is not seen here; a change of a
    reported setting (application_name, TimeZone ...) is, by its ParameterStatus, whatever did it.

    >>> is_set("set TimeZone = 'UTC'"), is_set("SET LOCAL x = 1"), is_set("reset all")
    (True, False, True)
    >>> is_set("do $$begin execute 'set search_path = x'; end$$"), is_set("CALL p()"), is_set("DOMAIN")
    (True, True, False)
    >>> is_set("SELECT 1; RESET ALL"), is_set("select set_config('a.b', '1', false)")
    (True, True)
    """
    if any(_SETS.match(part) for part in _statements(sql)):
        return True
    return "set_config" in sql or "SET_CONFIG" in sql


def deallocate_target(sql: str) -> str | None:
    """The statement name of a ``DEALLOCATE`` (``"ALL"`` for all), else None."""
    m = _DEALLOCATE.match(sql)
    if m is None:
        return None
    name = m.group(1)
    if name.startswith('"'):
        return name[1:-1].replace('""', '"')
    return "ALL" if name.upper() == "ALL" else name.lower()


def is_discard_all(sql: str) -> bool:
    return _DISCARD_ALL.match(sql) is not None


def server_name(body: bytes) -> bytes:
    """The proxy's name for a prepared statement: a hash of its SQL and parameter types."""
    return b"sluice_s_" + hashlib.blake2b(body, digest_size=10).hexdigest().encode()


# --- server connections and pools ------------------------------------------------------
class ServerConn:
    """One pooled upstream session and what the proxy knows about its state."""

    def __init__(self, session: UpstreamSession, pool: Pool) -> None:
        self.session = session
        self.conn: Any = session.conn  # (an attribute, not a property: read on every checkout)
        self.pool = pool
        self.params: dict[str, str] = {}
        for m in session.parameter_status:
            k, v = m[5:-1].split(b"\0", 1)
            self.params[k.decode()] = v.rstrip(b"\0").decode()
        self.status = session.status
        self.applied: tuple[tuple[str, str], ...] = ()  # settings applied since the last RESET ALL
        self.prepared: set[bytes] = set()  # statements prepared under our own names
        self.unnamed: object | None = None  # which client's Parse the unnamed statement holds
        self.created = self.idle_since = time.monotonic()
        # CancelRequests for this session sent and not yet handled by PostgreSQL (Pool.cancel);
        # while there are any, the connection is not given to another client
        self.cancelling = 0
        self.release_after_cancel = False  # released meanwhile: released again once they are
        self.cancel_unsettled = False  # one of them went unanswered: closed, never reused

    @property
    def closed(self) -> bool:
        return bool(self.conn.closed)

    def parameter_status(self) -> bytes:
        return b"".join(codec.parameter_status(k, v) for k, v in self.params.items())

    async def query(self, sql: str, timeout: float = 30.0) -> list[list[str | None]]:
        """Run a simple Query on the detached connection; rows as text; raises on an error."""
        from sqlsluice.middleware.upstream_auth import _read

        c = self.conn
        c.on_data = c.on_lost = None
        c.write(codec.message(codec.QUERY, codec.cstr(sql)))
        rows: list[list[str | None]] = []
        err: SluiceError | None = None

        async def read() -> None:
            nonlocal err
            while True:
                code, body = await _read(c)
                if code == codec.DATA_ROW:
                    rows.append(codec.parse_data_row_text(body))
                elif code == codec.PARAMETER_STATUS:
                    k, v = body[:-1].split(b"\0", 1)
                    self.params[k.decode()] = v.rstrip(b"\0").decode()
                elif code == codec.ERROR_RESPONSE:
                    f = codec.parse_error_fields(body)
                    err = SluiceError(f.message, sqlstate=f.sqlstate or "XX000")
                elif code == codec.READY_FOR_QUERY:
                    self.status = body[:1]
                    return

        await asyncio.wait_for(read(), timeout)
        if err is not None:
            raise err
        return rows

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()


@dataclass
class Pool:
    """The server connections of one (database, role): at most ``size``, FIFO waiters."""

    target: UpstreamTarget
    size: int
    idle: deque[ServerConn] = field(default_factory=deque)
    total: int = 0  # open or opening
    # FIFO: Futures of acquire(), and the passthrough's task-less waiters (see Waiter)
    waiters: deque[Waiter] = field(default_factory=deque)
    setups: int = 0  # checkouts that had to bring a connection's settings to its client's
    # statements prepared under shared names on one connection before it drops them all
    # (DEALLOCATE ALL when it comes back; clients' statements are prepared again on use)
    max_prepared: int = 1000
    # transaction mode: the ParameterStatus messages a login with these settings gets (as
    # PgBouncer, from a server connection seen before, so that a login takes none)
    welcome: dict[tuple[tuple[str, str], ...], bytes] = field(default_factory=dict)
    opened: int = 0  # server connections opened so far
    name: str = ""  # the client database name this pool serves
    mode: str = "session"
    idle_timeout: float = 600.0  # server_idle_timeout (0: never)
    lifetime: float = 3600.0  # server_lifetime (0: never)
    opening: int = 0  # connections being opened now (part of ``total``)
    clients: int = 0  # clients using this pool now
    closed_idle: int = 0  # connections closed by server_idle_timeout
    closed_old: int = 0  # connections closed by server_lifetime
    wait_since: dict[int, float] = field(default_factory=dict)  # id(waiter) -> when it began
    # the passthrough's waiters' deadline timer (sqlsluice.middleware.upstream._Waiter)
    expiry: asyncio.TimerHandle | None = None
    expiry_at: float = 0.0  # (time.monotonic() it fires at)
    cancel_timeout: float = 5.0  # how long a CancelRequest may go unanswered (see cancel)

    def expired(self, c: ServerConn, now: float) -> str | None:
        """Why ``c`` should be closed now ("lifetime", or "idle" when it is idle), else None."""
        if self.lifetime and now - c.created >= self.lifetime:
            return "lifetime"
        if self.idle_timeout and c in self.idle and now - c.idle_since >= self.idle_timeout:
            return "idle"
        return None

    def try_acquire(self) -> ServerConn | None:
        """An idle connection at once (nobody waiting before us), else None."""
        now = time.monotonic()
        while self.idle and not self.waiters:
            c = self.idle[-1]
            why = self.expired(c, now)
            self.idle.pop()
            if not c.closed and not c.conn._buf and why is None:
                return c
            # closed, too old or idle too long, or it said something while idle (a FATAL on its
            # way, a notice): not reused
            self._count_expired(why)
            self.discard(c)
        return None

    def _count_expired(self, why: str | None) -> None:
        if why == "idle":
            self.closed_idle += 1
        elif why == "lifetime":
            self.closed_old += 1

    def sweep(self) -> None:
        """Close the idle connections past ``server_idle_timeout`` or ``server_lifetime``."""
        now = time.monotonic()
        for c in list(self.idle):
            why = self.expired(c, now)
            if why is not None or c.closed:
                with contextlib.suppress(ValueError):
                    self.idle.remove(c)
                self._count_expired(why)
                log.debug("closing a server connection of %s (%s)", self.name, why or "closed")
                self.discard(c)

    async def acquire(self, timeout: float) -> ServerConn:
        c = self.try_acquire()
        if c is not None:
            return c
        if self.total < self.size and not self.waiters:
            return await self._open()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[ServerConn | None] = loop.create_future()
        self.waiters.append(fut)
        self.wait_since[id(fut)] = time.monotonic()
        # a timer, not asyncio.wait_for (a task, a callback and a future more per waiting client)
        timer = loop.call_later(timeout, _expire, fut)
        try:
            got = await fut
        except _Expired:
            self._drop_waiter(fut)
            raise pool_timeout(self, timeout) from None
        except BaseException:  # the client's task was cancelled
            self._drop_waiter(fut)
            if fut.done() and not fut.cancelled():  # handed a connection (or a slot) at the last moment
                given = fut.result()
                if given is not None:
                    self.release(given)
                else:
                    self._hand_over(None)
            raise
        finally:
            timer.cancel()
            self.wait_since.pop(id(fut), None)
        if got is None:  # a slot became free: open a connection in it
            return await self._open()
        return got

    async def open_in_slot(self) -> ServerConn:
        """A connection opened in a slot handed to a waiter (``_hand_over(None)``)."""
        return await self._open()

    def _drop_waiter(self, fut: Waiter) -> None:
        """Forget a waiter that stopped waiting (a handed-over one was already popped)."""
        if fut in self.waiters:  # (identity first: never a Future's repr, as deque.remove's error has)
            self.waiters.remove(fut)

    async def _open(self) -> ServerConn:
        self.total += 1
        self.opening += 1
        try:
            s = await open_upstream(self.target, None)
        except BaseException:
            self.total -= 1
            self._hand_over(None)
            raise
        finally:
            self.opening -= 1
        self.opened += 1
        return ServerConn(s, self)

    def _hand_over(self, c: ServerConn | None) -> bool:
        """Give ``c`` (None: a free slot) to the first live waiter; False when nobody waits."""
        while self.waiters:
            w = self.waiters.popleft()
            if not w.done():
                w.set_result(c)  # None: the waiter opens a connection in the free slot
                return True
        return False

    async def cancel(self, c: ServerConn) -> None:
        """Cancel what ``c``'s session runs, for the client holding it now.

        A CancelRequest goes over its own connection and PostgreSQL handles it a moment
        later; meanwhile the statement it was meant for may end and ``c`` go back to the pool.
        So ``c`` is given to no other client until PostgreSQL has handled the request (a
        :meth:`release` meanwhile waits for that), else it could cancel another client's
        statement; when the request goes unanswered (``cancel_upstream`` False) ``c`` is
        closed instead of reused.
        """
        c.cancelling += 1
        settled = False  # (also when this task is cancelled: then its outcome is unknown)
        try:
            settled = await cancel_upstream(self.target, c.session.pid, c.session.secret,
                                            timeout=self.cancel_timeout)
        finally:
            c.cancelling -= 1
            if not settled:
                c.cancel_unsettled = True
            if not c.cancelling and c.release_after_cancel:
                c.release_after_cancel = False
                self.release(c)

    def release(self, c: ServerConn) -> None:
        """Take ``c`` back (idle, or to the next waiter); a closed one frees its slot."""
        conn = c.conn
        if conn.closed or c.cancel_unsettled:
            self.discard(c)
            return
        conn.on_data = conn.on_lost = None
        if c.cancelling:  # a CancelRequest is on its way (see cancel): back once it is handled
            c.release_after_cancel = True
            return
        c.idle_since = now = time.monotonic()
        if self.lifetime and now - c.created >= self.lifetime:  # server_lifetime
            self.closed_old += 1
            self.discard(c)
            return
        if len(c.prepared) > self.max_prepared:
            c.prepared.clear()
            _later(self.reset_and_release(c, ("DEALLOCATE ALL",)))
            return
        if not self.waiters or not self._hand_over(c):
            self.idle.append(c)

    def discard(self, c: ServerConn) -> None:
        c.close()
        self.total -= 1
        self._hand_over(None)

    async def reset_and_release(self, c: ServerConn, sql: tuple[str, ...]) -> None:
        """Run the reset statements (each its own Query), then release; close on failure."""
        try:
            for s in sql:
                await c.query(s, timeout=10.0)
            if c.status != b"I":
                raise SluiceError("server connection not idle after reset")
        except Exception as e:
            log.debug("server reset failed, closing the connection: %s", e)
            self.discard(c)
            return
        self.release(c)

    def close(self) -> None:
        while self.idle:
            self.idle.pop().close()


_MANAGERS: weakref.WeakSet[PoolManager] = weakref.WeakSet()  # of this process (SHOW sluice.pools)


class PoolManager:
    """All pools of one server, and the client count of each database."""

    def __init__(self, config: Config | None = None) -> None:
        self.config = config  # for each pool's settings (server_idle_timeout ...); the server's
        self.pools: dict[tuple[Any, ...], Pool] = {}
        self.clients: dict[str, int] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._client_pool: dict[Any, Pool | None] = {}  # a client's task -> the pool it uses
        self._janitor: asyncio.Task[None] | None = None
        _MANAGERS.add(self)

    def pool(self, target: UpstreamTarget, size: int, database: str = "") -> Pool:
        """The pool of the client database ``database`` (its settings) as ``target``'s role.
        Called by a client's task after :meth:`client_in`: the client counts in this pool."""
        key = (database, target.host, target.port, target.database, target.user, target.password,
               tuple(sorted(target.options.items())))
        p = self.pools.get(key)
        if p is None:
            p = self.pools[key] = Pool(target, size, name=database)
        p.size = size  # a reload may change it
        if self.config is not None:
            s = pool_settings(self.config, database)
            p.mode, p.idle_timeout, p.lifetime = s.mode, s.server_idle_timeout, s.server_lifetime
        task = _current_task()
        if task is not None and task in self._client_pool and self._client_pool[task] is None:
            self._client_pool[task] = p
            p.clients += 1
        self._start_janitor()
        return p

    def _start_janitor(self) -> None:
        if self._janitor is None or self._janitor.done():
            self._janitor = asyncio.ensure_future(self._sweep_forever())

    async def _sweep_forever(self) -> None:
        """Close idle connections past server_idle_timeout / server_lifetime, every few seconds."""
        while self.pools:
            limits = [t for p in self.pools.values() for t in (p.idle_timeout, p.lifetime) if t]
            await asyncio.sleep(min(max(min(limits, default=10.0) / 4, 0.05), 5.0))
            for p in list(self.pools.values()):
                try:
                    if self.config is not None:  # a reload may have changed them
                        s = pool_settings(self.config, p.name)
                        p.idle_timeout, p.lifetime = s.server_idle_timeout, s.server_lifetime
                    p.sweep()
                except Exception:  # never let one pool stop the sweeping of the others
                    log.exception("sweeping a pool failed")

    def later(self, coro: Any) -> None:
        t = asyncio.ensure_future(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    def client_in(self, database: str, limit: int | None) -> None:
        n = self.clients.get(database, 0)
        if limit is not None and n >= limit:
            raise SluiceError(f'sorry, too many clients already: database "{database}" has max_client_conn '
                              f"= {limit} clients connected", sqlstate="53300")
        self.clients[database] = n + 1
        task = _current_task()
        if task is not None:
            self._client_pool[task] = None  # its pool, once :meth:`pool` is called

    def client_out(self, database: str) -> None:
        task = _current_task()
        p = self._client_pool.pop(task, None) if task is not None else None
        if p is not None:
            p.clients -= 1
        n = self.clients.get(database, 0) - 1
        if n <= 0:
            self.clients.pop(database, None)
        else:
            self.clients[database] = n

    def stats(self) -> list[dict[str, Any]]:
        """One dict per pool, PgBouncer's ``SHOW POOLS`` columns where they mean something here:
        ``cl_active`` clients of the pool not waiting for a server connection, ``cl_waiting``
        those waiting (at login or at a transaction's first message), ``sv_active`` server
        connections handed out (or being reset), ``sv_idle``, ``sv_login`` (being opened), and
        ``maxwait_s``, how long the oldest waiter has waited."""
        now = time.monotonic()
        out = []
        for p in list(self.pools.values()):
            waiting = len(p.waiters)
            idle = len(p.idle)
            since: list[float] = []
            for _ in range(3):  # read from another thread (admin views, /metrics): the loop may change it
                try:
                    since = list(p.wait_since.values())
                    break
                except RuntimeError:
                    continue
            out.append({"database": p.name, "user": p.target.user, "pool_mode": p.mode,
                        "cl_active": max(p.clients - waiting, 0), "cl_waiting": waiting,
                        "sv_active": max(p.total - idle - p.opening, 0), "sv_idle": idle, "sv_login": p.opening,
                        "maxwait_s": round(now - min(since), 3) if since else 0.0, "pool_size": p.size,
                        "upstream_database": p.target.database, "size": p.size, "open": p.total, "idle": idle,
                        "waiting": waiting, "opened": p.opened, "setups": p.setups,
                        "closed_idle": p.closed_idle, "closed_lifetime": p.closed_old})
        return out

    def close(self) -> None:
        if self._janitor is not None:
            self._janitor.cancel()
            self._janitor = None
        for p in self.pools.values():
            p.close()


def _current_task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:  # no running loop
        return None


_POOL_COLUMNS = (("database", "VARCHAR"), ("user", "VARCHAR"), ("pool_mode", "VARCHAR"), ("cl_active", "BIGINT"),
                 ("cl_waiting", "BIGINT"), ("sv_active", "BIGINT"), ("sv_idle", "BIGINT"), ("sv_login", "BIGINT"),
                 ("maxwait_s", "DOUBLE"), ("pool_size", "BIGINT"))


def pools_view(ctx: SessionContext) -> tuple[list[ColumnInfo], list[tuple[Any, ...]]]:
    """``SHOW sluice.pools``: one row per pool of the servers of this process (PgBouncer's
    ``SHOW POOLS``); no rows without pooling (``[pool]``, ``[databases]``)."""
    rows = [tuple(s[name] for name, _ in _POOL_COLUMNS) for m in list(_MANAGERS) for s in m.stats()]
    return [ColumnInfo(name, kind) for name, kind in _POOL_COLUMNS], sorted(rows, key=lambda r: (r[0], r[1]))


pipeline.ADMIN_VIEWS["sluice.pools"] = pools_view


_UNKNOWN: tuple[tuple[str, str], ...] = (("?", "?"),)  # settings a server connection has: not known


@dataclass
class PoolClient:
    """One client's side of pooling: its pool, its session settings, its prepared statements."""

    pool: Pool
    settings: PoolSettings
    state: tuple[tuple[str, str], ...] = ()  # session settings to apply at each checkout
    startup: tuple[tuple[str, str], ...] = ()  # what its startup packet asked for (DISCARD ALL)
    dirty: bool = False  # a SET/RESET ran since ``state`` was read
    stmts: dict[bytes, tuple[bytes, bytes]] = field(default_factory=dict)  # name -> (server name, Parse body)
    unnamed: bytes | None = None  # the body of its last unnamed Parse
    unnamed_reset: bytes | None = None  # ... when that is DISCARD ALL / DEALLOCATE ALL (upstream._reset_kind)
    unnamed_key: object = None
    capturing: asyncio.Future[None] | None = None

    async def checkout(self, c: ServerConn) -> ServerConn:
        """Bring ``c``'s session settings to this client's; closes it on failure."""
        if c.applied != self.state:
            self.pool.setups += 1
            try:
                await c.query(apply_sql(self.state))
            except BaseException:
                self.pool.discard(c)
                raise
            c.applied = self.state
        return c

    async def capture(self, c: ServerConn) -> None:
        """Read the settings the client's SET/RESET left on ``c`` (then ``c`` goes back)."""
        if self.capturing is None:  # the caller may have set it already (no gap for the client)
            self.capturing = asyncio.get_running_loop().create_future()
        try:
            rows = await c.query(CAPTURE_SQL)
        except Exception as e:
            log.debug("reading a client's session settings failed: %s", e)
            c.applied = _UNKNOWN
            self.pool.discard(c)
        else:
            state = []
            for name, value, session in rows:
                assert name is not None
                if session == "t":
                    state.append((name.lower(), value or ""))
                if name in REPORTED and value is not None:
                    c.params[name] = value
            self.state = c.applied = tuple(sorted(state))
            self.dirty = False
            self.pool.release(c)
        finally:
            f, self.capturing = self.capturing, None
            if f is not None and not f.done():
                f.set_result(None)

    def left(self, c: ServerConn, *, clean: bool) -> None:
        """The client is gone while holding ``c``: reset and release it, or close it."""
        if self.dirty:
            c.applied = _UNKNOWN
        if not clean or c.closed:
            self.pool.discard(c)
            return
        if self.settings.mode == "session":
            c.applied, c.unnamed = (), None
            c.prepared.clear()
            resets: tuple[str, ...] = ("DISCARD ALL",) if c.status == b"I" else ("ROLLBACK", "DISCARD ALL")
        elif c.status != b"I":
            c.prepared.clear()  # statements parsed in the rolled-back transaction may name what it made
            resets = ("ROLLBACK", "DEALLOCATE ALL")
        else:
            self.pool.release(c)
            return
        _later(self.pool.reset_and_release(c, resets))


_TASKS: set[asyncio.Future[Any]] = set()  # resets in flight


class Waiter(Protocol):
    """A client waiting for a server connection: what _hand_over reads of it."""

    def done(self) -> bool: ...

    def set_result(self, c: ServerConn | None, /) -> None: ...


def pool_timeout(pool: Pool, timeout: float) -> PoolTimeout:
    """The 53300 a client gets when no server connection became free in time."""
    return PoolTimeout(
        f"no server connection to database \"{pool.target.database}\" as \"{pool.target.user}\" "
        f"became free within query_wait_timeout ({timeout:g} s): all {pool.size} (pool_size) are busy",
        sqlstate="53300", hint="raise pool_size or query_wait_timeout, or shorten transactions")


class _Expired(Exception):
    """A waiter's query_wait_timeout ran out."""


def _expire(fut: asyncio.Future[Any]) -> None:
    if not fut.done():
        fut.set_exception(_Expired())


def _later(coro: Any) -> None:
    t = asyncio.ensure_future(coro)
    _TASKS.add(t)
    t.add_done_callback(_TASKS.discard)
