"""PostgreSQL passthrough: one upstream session per client session, bytes relayed as-is.

:func:`serve_upstream` is what the server calls after client authentication when the
backend is PostgreSQL (contract: :mod:`sqlsluice.middleware.connection`).  It opens one
upstream session (:mod:`sqlsluice.middleware.upstream_auth`), relays the upstream's
ParameterStatus messages, hands the client a BackendKeyData with the upstream's real pid
(what ``pg_backend_pid()`` and NOTIFY's sender pid say) and a secret of our own (a
CancelRequest with it is forwarded with the upstream's key; the proxy's own upstream
connections cannot be reached that way) and then relays in both directions:

client -> upstream
    messages are framed; only Query ('Q') and Parse ('P') are decoded and run through the
    statement pipeline.  ``Forward`` sends the (possibly rewritten) SQL on; at Parse the
    statement name and the parameter type section are kept as sent, so the parameter
    count does not change.  A ``Reply`` to a Query is answered locally (RowDescription,
    DataRow, CommandComplete, ReadyForQuery with the upstream's transaction status) once
    the upstream is idle, so answers stay in order.  A ``Reply`` to a Parse becomes an
    equivalent ``SELECT`` over literal rows, so the upstream runs the extended-protocol
    state machine (Bind/Describe/Execute/Sync) as it does for every other statement.
    A pipeline error is turned into an upstream error in the same position: a marker
    statement that fails upstream is sent instead, and its ErrorResponse is replaced by
    ours on the way back.  The upstream therefore also aborts the transaction and skips
    to the next Sync exactly as PostgreSQL would.  Every other message (Bind, Execute,
    COPY data, FunctionCall ...) goes on untouched as bytes.

upstream -> client
    bytes are forwarded as they arrive; only message headers are walked (no per-message
    objects) to see ReadyForQuery (transaction status, idleness).

Ends of a session, as PostgreSQL has them: after the client's Terminate nothing more is
sent to it; when the upstream ends the session (``pg_terminate_backend``, shutdown) its
own FATAL ErrorResponse is the last message the client gets (ours, 08006, only when the
upstream vanished without one).

Both directions run on plain asyncio Protocol callbacks: the upstream connection is an
:class:`~sqlsluice.middleware.upstream_auth.UpstreamConnection`, and the client transport
is taken over from the server's StreamReader once the session starts (bytes it already
buffered are handled first).  A chunk that needs no pipeline work, or whose pipeline
decision is ready at once (the default stages never wait), is forwarded inside the
callback; anything that has to wait (a local answer queued behind the upstream, a stage
that awaits I/O) runs as a task while further client bytes queue up behind it.  This
saves a Future and a task wake-up per read compared with asyncio streams.  When the
takeover is not possible the StreamReader path does the same job.  Backpressure: reading
the upstream pauses while the client's socket buffer is full, and reading the client
pauses while the upstream's is.

``SHOW sluice.last`` works as on the DuckDB backend: the pipeline records every statement
in ``ctx.last``.

Pooling (``[pool]`` / ``[databases]``, :mod:`sqlsluice.middleware.pool`): in session mode
with ``pool_size`` the upstream session comes from a pool and goes back after ``DISCARD
ALL`` (a client's Terminate is not passed on).  In transaction mode the relay holds no
server connection between transactions: it attaches one (:meth:`UpstreamRelay._attach_now`,
or waiting in the pool's FIFO queue) when client bytes arrive and gives it back once
ReadyForQuery says idle and no batch is open (:meth:`UpstreamRelay._maybe_release`).  Parse,
Bind, Describe and Close carry the server's statement names (the scanner hides or converts
the ParseComplete/CloseComplete answers of what the relay added), and the pipeline's
prepared-statement variants are not used (the form parsed at Parse is served).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import struct
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from sqlsluice.errors import SluiceError
from sqlsluice.middleware import codec
from sqlsluice.middleware.framing import MAX_MESSAGE
from sqlsluice.middleware.pipeline import _ZERO_DIGITS, Forward, Reply
from sqlsluice.middleware.pool import (
    PoolClient,
    ServerConn,
    deallocate_target,
    is_discard_all,
    is_set,
    pool_settings,
    pool_timeout,
    refusal,
    server_name,
    startup_settings,
)
from sqlsluice.middleware.tap import _RFQ, ConnTap
from sqlsluice.middleware.tap import _Transport as _TapTransport
from sqlsluice.middleware.tap import _Writer as _TapWriter
from sqlsluice.middleware.upstream_auth import (
    UpstreamConnection,
    UpstreamRefused,
    UpstreamSession,
    UpstreamTarget,
    cancel_upstream,
    open_upstream,
)

_monotonic = time.monotonic
log = logging.getLogger(__name__)

_I = struct.Struct("!i")
_unpack_i = _I.unpack_from
_READ = 262144  # bytes per read
_HIGH_WATER = 1 << 20  # drain a writer once this much is buffered

_Q, _P, _S, _X, _F, _Z, _E, _B, _C = (ord(c) for c in "QPSXFZEBC")
_PARSE_COMPLETE = ord("1")
_PARAMETER_STATUS = ord("S")  # (server -> client; the same byte as the client's Sync)
_SLOW = frozenset((_Q, _P, _X))  # client messages the hot path hands to the framing path
_SLOW_BIND = frozenset((_Q, _P, _X, _B, _C))  # ... while some prepared statement is watched
_D = ord("D")
_SLOW_TX = frozenset((_Q, _P, _X, _B, _C, _D))  # transaction pooling: statement names are mapped
_CLOSE_COMPLETE = ord("3")
_PARSE_COMPLETE_MSG = b"1\0\0\0\4"
# what the scanner does with the ParseComplete/CloseComplete of a Parse or Close the relay sent
PQ_PASS, PQ_HIDE, PQ_AS_PARSE = 0, 1, 2
_PRIVATE = b"sluice_v"  # names of the relay's own prepared-statement variants
_RESETS = ("DEALLOCATE", "DISCARD")  # statements that drop the session's prepared statements
_MAX_WATCHED = 1000  # prepared statements per session whose executions are timed
_FRONTEND = codec.FRONTEND_TYPES
# frontend messages the hot paths pass on (one set lookup instead of two per message)
_FAST_TYPES = _FRONTEND - _SLOW
_FAST_TYPES_BIND = _FRONTEND - _SLOW_BIND
_FAST_TYPES_TX = _FRONTEND - _SLOW_TX
_MARKER = b"sluice-error-"


class _NoServer:
    """Where upstream writes go while a transaction-pooled client holds no server connection
    (nothing should be written then: the relay attaches one first)."""

    closed = False
    transport = None

    def write(self, data: Any) -> None:
        raise RuntimeError("transaction pooling: no server connection attached")

    def needs_drain(self) -> bool:
        return False

    async def drain(self) -> None:
        return None

    def close(self) -> None:
        return None


class _NoServerSession:
    conn = _NoServer()
    pid = secret = 0
    status = b"I"


_NO_SERVER_SESSION = _NoServerSession()
_NO_SERVER = _NO_SERVER_SESSION.conn
_CLOSE_NONE = codec.message(codec.CLOSE, b"Ssluice_none\0")  # answers CloseComplete, drops nothing
# a Parse that PostgreSQL answers as it answers any inside an aborted transaction (25P02), and
# that leaves nothing behind elsewhere (closed again)
_PROBE = (codec.message(codec.PARSE, b"sluice_probe\0SELECT 1\0\0\0")
          + codec.message(codec.CLOSE, b"Ssluice_probe\0"))
_TX_EXIT = re.compile(rb"\s*(?:COMMIT|END|ROLLBACK|ABORT|PREPARE\s+TRANSACTION)\b", re.IGNORECASE)
# transaction pooling: the "server name" of a client's statement that is DISCARD ALL or DEALLOCATE
# ALL (never prepared on the server; see UpstreamRelay._tx_parse)
_RESET_DISCARD = b"\0discard"
_RESET_DEALLOCATE = b"\0deallocate"


def _reset_kind(body: bytes) -> bytes | None:
    """For a Parse body (SQL, NUL, types): _RESET_DISCARD, _RESET_DEALLOCATE or None."""
    end = body.find(b"\0")
    if end < 0 or not body[:end].lstrip()[:10].upper().startswith((b"DISCARD", b"DEALLOCATE")):
        return None
    try:
        sql = body[:end].decode()
    except UnicodeDecodeError:
        return None
    if is_discard_all(sql):
        return _RESET_DISCARD
    return _RESET_DEALLOCATE if deallocate_target(sql) == "ALL" else None


class PooledCanceller:
    """Cancels what the server connection a pooled client holds now runs; the connection goes
    to no other client until PostgreSQL has handled the request
    (:meth:`~sqlsluice.middleware.pool.Pool.cancel`).  A client waiting in the pool's queue
    has its first waiting request answered 57014 instead (:meth:`UpstreamRelay._cancel_waiting`)."""

    def __init__(self, relay: UpstreamRelay) -> None:
        self.relay = relay

    async def cancel(self) -> None:
        relay = self.relay
        srv = relay.server
        if srv is None:
            relay._cancel_waiting()
            return
        ready = relay.scanner.ready
        await srv.pool.cancel(srv)
        # PostgreSQL ignores a cancel that arrives before the statement has started, which a
        # statement handed over from the pool's queue a moment ago may not have: once more when,
        # a moment later, the same connection still has not answered any of this client's
        # requests (a cancel that worked has its answer there by then); in the background, the
        # client's cancel connection is answered now, as PostgreSQL answers it
        relay._keep_task(self._again(srv, ready))

    async def _again(self, srv: ServerConn, ready: int) -> None:
        relay = self.relay
        await asyncio.sleep(_CANCEL_AGAIN_S)
        if relay.server is srv and relay.scanner.ready == ready and ready < relay.sent_syncs:
            await srv.pool.cancel(srv)


class UpstreamCanceller:
    """Cancels the statement running upstream with the upstream's own key."""

    def __init__(self, target: UpstreamTarget, pid: int, secret: int) -> None:
        self.target, self.pid, self.secret = target, pid, secret

    async def cancel(self) -> None:
        await cancel_upstream(self.target, self.pid, self.secret)


# --- local answers ---------------------------------------------------------------------
def reply_messages(reply: Reply, status: bytes) -> bytes:
    """RowDescription/DataRow/CommandComplete/ReadyForQuery for a local simple-protocol answer."""
    from sqlsluice.middleware import types

    parts: list[bytes] = []
    if reply.columns:
        oids = [types.oid_for(c.type) for c in reply.columns]
        encs = [types.encode_text(o) for o in oids]
        parts.append(codec.row_description([
            codec.FieldDescription(c.name, o, types.type_size(o), types.type_modifier(c.type))
            for c, o in zip(reply.columns, oids, strict=True)]))
        for row in reply.rows:
            parts.append(codec.data_row([None if v is None else e(v) for e, v in zip(encs, row, strict=True)]))
        tag = reply.status if reply.status not in ("SELECT", "") else f"SELECT {len(reply.rows)}"
    else:
        tag = reply.status or "OK"
    parts.append(codec.command_complete(tag))
    parts.append(codec.ready_for_query(status))
    return b"".join(parts)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def reply_as_sql(reply: Reply) -> str:
    """A PostgreSQL statement whose result is ``reply`` (for answers at Parse).

    >>> from sqlsluice.databases.base import ColumnInfo
    >>> reply_as_sql(Reply([ColumnInfo("k", "VARCHAR")], [("a'b",), (None,)], "SHOW"))
    'SELECT * FROM (VALUES (\\'a\\'\\'b\\'::text), (NULL::text)) AS t("k")'
    """
    from sqlsluice.middleware import types

    if not reply.columns:
        status = reply.status.split()[0].upper() if reply.status else ""
        # placeholder settings are accepted by PostgreSQL for any user
        return "RESET sluice.noop" if status == "RESET" else "SET sluice.noop = ''"
    oids = [types.oid_for(c.type) for c in reply.columns]
    casts = [types.PG_NAME.get(o, "text") if o not in types.ELEMENT_OF else "text" for o in oids]
    encs = [types.encode_text(o) if o not in types.ELEMENT_OF else types.encode_text(types.TEXT) for o in oids]
    names = ", ".join(_ident(c.name) for c in reply.columns)
    if not reply.rows:
        cols = ", ".join(f"NULL::{cast} AS {_ident(c.name)}" for c, cast in zip(reply.columns, casts, strict=True))
        return f"SELECT {cols} WHERE false"
    rows = []
    for row in reply.rows:
        cells = []
        for v, e, cast in zip(row, encs, casts, strict=True):
            cells.append(f"NULL::{cast}" if v is None else f"{_literal(e(v).decode())}::{cast}")
        rows.append("(" + ", ".join(cells) + ")")
    return f"SELECT * FROM (VALUES {', '.join(rows)}) AS t({names})"


def plain_query(sql: str) -> bool:
    """One ``SELECT``/``WITH`` statement that calls no advisory lock function and no
    ``set_config``: what transaction pooling lets through as it is (pool.refusal is None, pool.is_set
    is False, not DEALLOCATE/DISCARD), decided without their regular expressions (the hot path).

    >>> plain_query("SELECT abalance FROM pgbench_accounts WHERE aid = 7;"), plain_query("SELECT 1; LISTEN x")
    (True, False)
    >>> plain_query("select pg_advisory_lock(1)"), plain_query("SET x = 1")
    (False, False)
    """
    return (sql.lstrip()[:6].upper().startswith(("SELECT", "WITH")) and ";" not in sql.rstrip().rstrip(";")
            and "advisory" not in sql and "ADVISORY" not in sql and "set_config" not in sql
            and "SET_CONFIG" not in sql)


# statement form (UTF-8, ASCII digits as 0: pipeline.statement_form) -> plain_query of the statement
_PLAIN_FORMS: dict[bytes, bool] = {}
_PLAIN_FORMS_MAX = 10000
_PLAIN_FORM_LEN = 4096  # longer statements are checked each time (the cache stays small)


def plain_form(form: bytes, sql: str) -> bool:
    """:func:`plain_query` of ``sql``, remembered under its ``form`` (the hot path: one dict
    lookup for a statement seen before up to its numbers).  Sound because each of
    plain_query's tests (the head, a ``;`` inside, the function names) is blind to which ASCII
    digit stands where: statements with the same form get the same answer.

    >>> f = lambda s: s.encode().translate(_ZERO_DIGITS)
    >>> plain_form(f("SELECT 1 FROM t WHERE k = 7"), "SELECT 1 FROM t WHERE k = 7")
    True
    >>> _PLAIN_FORMS[f("SELECT 5 FROM t WHERE k = 3")], plain_form(f("SELECT 2; SELECT 3"), "SELECT 2; SELECT 3")
    (True, False)
    """
    plain = _PLAIN_FORMS.get(form)
    if plain is None:
        plain = plain_query(sql)
        if len(form) <= _PLAIN_FORM_LEN:
            if len(_PLAIN_FORMS) >= _PLAIN_FORMS_MAX:
                _PLAIN_FORMS.clear()  # (bounded; cheaper than evicting one by one)
            _PLAIN_FORMS[form] = plain
    return plain


def _fatal(sqlstate: str, msg: str) -> bytes:
    return codec.error_response(sqlstate, msg, severity="FATAL")


class ResponseScanner:
    """I/O-free walk over the upstream's byte stream (upstream -> client direction).

    :meth:`feed` takes bytes as they arrive and returns the bytes to forward now.  Only
    message headers are read; bodies are skipped, also across chunks.  It tracks
    ReadyForQuery (``status``, ``ready``) and replaces registered ErrorResponses (pipeline
    errors, see :class:`UpstreamRelay`).  Bytes are held back only for an incomplete
    header or an ErrorResponse that may have to be replaced.

    >>> sc = ResponseScanner()
    >>> cc, z = codec.command_complete("BEGIN"), codec.ready_for_query(b"T")
    >>> sc.feed(cc + z[:3]) == cc, sc.ready
    (True, 0)
    >>> sc.feed(z[3:]) == z, sc.status, sc.ready
    (True, b'T', 1)
    """

    __slots__ = ("status", "ready", "last", "substitutions", "hidden", "_hidden_ok", "_held", "_skip", "pq",
                 "reported")

    def __init__(self, status: bytes = b"I") -> None:
        self.status = status  # transaction status of the last ReadyForQuery
        self.ready = 0  # ReadyForQuery messages seen
        self.last = 0  # type byte of the last message whose header was read
        # (ReadyForQuery number it belongs to, marker token, replacement ErrorResponse)
        self.substitutions: list[tuple[int, bytes, bytes]] = []
        # ReadyForQuery number -> callback(parsed_ok): a batch the relay sent on its own
        # (Parse + Sync of a prepared-statement variant); its answers never reach the client
        self.hidden: dict[int, Callable[[bool], None]] = {}
        self._hidden_ok = False
        self._held = b""
        self._skip = 0  # bytes of a message body still to come
        # transaction pooling: one entry per Parse/Close sent upstream, in order, while any is
        # registered: (ReadyForQuery number of its batch, PQ_* action, undo when it never completed)
        self.pq: deque[tuple[int, int, Callable[[], None] | None]] = deque()
        # a ParameterStatus went by: the session changed a reported setting (application_name,
        # TimeZone ...), whatever statement did it (transaction pooling then reads the settings)
        self.reported = False

    def _drop_pq(self) -> None:
        """A ReadyForQuery: Parse/Close entries of finished batches never completed (an error);
        their undos run last one first (a Parse then a Close of the same name, both skipped,
        leave the name as it was before either)."""
        pq, ready = self.pq, self.ready
        undos = []
        while pq and pq[0][0] <= ready:
            undo = pq.popleft()[2]
            if undo is not None:
                undos.append(undo)
        for undo in reversed(undos):
            undo()

    def at_boundary(self) -> bool:
        """True when everything forwarded so far ends on a message boundary."""
        return not self._held and self._skip == 0

    def feed(self, data: bytes) -> bytes:
        skip = self._skip
        n = len(data)
        if skip >= n and not self._held:
            self._skip = skip - n
            return data
        if not skip and not self._held and not self.hidden and not self.substitutions and not self.pq:
            # the common case: nothing to replace or hide, only ReadyForQuery matters
            pos = 0
            t = 0
            while pos + 5 <= n:
                t = data[pos]
                ln = _unpack_i(data, pos + 1)[0]
                if ln < 4:
                    raise ConnectionError("upstream sent an invalid message length")
                if t == _Z:
                    if pos + 6 > n:
                        break  # hold the 5 bytes until the status byte arrives
                    self.status = data[pos + 5:pos + 6]
                    self.ready += 1
                elif t == _PARAMETER_STATUS:
                    self.reported = True
                pos += 1 + ln
            if t:
                self.last = t
            if pos > n:
                self._skip = pos - n
                return data
            if pos < n:
                self._held = data[pos:]
                return data[:pos]
            return data
        if self._held:
            buf = self._held + data
            self._held = b""
            n = len(buf)
        else:
            buf = data
        pos = skip
        pieces: list[bytes] | None = None  # only when a message is replaced
        start = 0
        t = 0
        while pos + 5 <= n:
            t = buf[pos]
            ln = _unpack_i(buf, pos + 1)[0]
            if ln < 4:
                raise ConnectionError("upstream sent an invalid message length")
            if self.hidden and self.ready + 1 in self.hidden:
                end = pos + 1 + ln
                if end > n:
                    break  # hold it until complete, then cut it out
                if pieces is None:
                    pieces = []
                pieces.append(buf[start:pos])
                start = end
                if t == _PARSE_COMPLETE:
                    self._hidden_ok = True
                elif t == _E:
                    self._hidden_ok = False
                elif t == _Z:
                    self.status = buf[pos + 5:pos + 6]
                    self.ready += 1
                    done = self.hidden.pop(self.ready)
                    ok, self._hidden_ok = self._hidden_ok, False
                    done(ok)
                pos = end
                continue
            if t == _Z:
                if pos + 6 > n:
                    break  # hold the 5 bytes until the status byte arrives
                self.status = buf[pos + 5:pos + 6]
                self.ready += 1
                if self.pq:
                    self._drop_pq()
                if self.substitutions:
                    # a marker that never failed (the upstream skipped it after an earlier error)
                    self.substitutions = [x for x in self.substitutions if x[0] > self.ready]
            elif t == _PARAMETER_STATUS:
                self.reported = True
            elif t == _E and self.substitutions:
                end = pos + 1 + ln
                if end > n:
                    break  # hold the whole ErrorResponse until it is complete
                body = buf[pos + 5:end]
                for i, (_seq, token, repl) in enumerate(self.substitutions):
                    if token in body:
                        if pieces is None:
                            pieces = []
                        pieces.append(buf[start:pos])
                        pieces.append(repl)
                        start = end
                        del self.substitutions[i]
                        break
            elif (t == _PARSE_COMPLETE or t == _CLOSE_COMPLETE) and self.pq:
                action = self.pq.popleft()[1]
                if action != PQ_PASS:
                    if pieces is None:
                        pieces = []
                    pieces.append(buf[start:pos])
                    if action == PQ_AS_PARSE:
                        pieces.append(_PARSE_COMPLETE_MSG)
                    start = pos + 1 + ln
            pos += 1 + ln
        if t:
            self.last = t
        if pos > n:
            self._skip = pos - n
            cut = n
        else:
            self._skip = 0
            cut = pos
            if pos < n:
                self._held = buf[pos:]
        if pieces is not None:
            pieces.append(buf[start:cut])
            return b"".join(pieces)
        return buf if cut == n else buf[:cut]


# --- the relay -------------------------------------------------------------------------
class UpstreamRelay:
    """The two directions of one passthrough session."""

    def __init__(self, conn: Any, target: UpstreamTarget, up: UpstreamSession | None,
                 pooled: PoolClient | None = None) -> None:
        self.conn = conn
        self.target = target
        # pooling (sqlsluice.middleware.pool): the server connection is the pool's, not closed
        # here; in transaction mode (``_tx``) it is attached per transaction
        self.pooled = pooled
        self._tx = pooled if pooled is not None and pooled.settings.mode == "transaction" else None
        self.server: ServerConn | None = None
        self.up: Any = up if up is not None else _NO_SERVER_SESSION
        self.creader: asyncio.StreamReader = conn.reader
        self.cwriter: asyncio.StreamWriter = conn.writer
        self.uconn: Any = self.up.conn
        self.uwriter: Any = self.up.conn  # write() and close() as on a StreamWriter
        self.scanner = ResponseScanner(self.up.status)
        self.sent_syncs = 0  # Query/Sync/FunctionCall sent upstream (each answered by one ReadyForQuery)
        self._idle_waiter: asyncio.Future[None] | None = None  # set while waiting for the upstream to go idle
        self._marker_seq = 0
        self.client_gone = False
        self.terminated = False  # the client sent Terminate: nothing more goes to it
        self.upstream_gone = False
        self._in_buf = bytearray()  # client bytes not yet handled (an incomplete Query/Parse or header)
        self._in_skip = 0  # bytes of a passed-through client message still to come
        self._ctransport = conn.writer.transport
        self._cwrite = conn.writer.write
        # the server's tap on the client (graceful shutdown), when it has no sink (no
        # /metrics): its counters are kept here on the hot paths, one Python call less each
        # way (_on_client_data, _on_upstream_data); every other write still goes through the tap
        w = conn.writer
        self._ctap: ConnTap | None = w._tap if type(w) is _TapWriter and w._tap.sink is None else None
        self._craw: Callable[[bytes], None] | None = w._write if self._ctap is not None else None
        self._ctap_in: ConnTap | None = None  # set once client reads come here untapped (protocol mode)
        self._down_paused = False  # upstream reading paused until the client catches up
        # protocol mode (see _take_over_client)
        self._cproto: _ClientProtocol | None = None
        self._client_write_paused = False
        self._done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._ended = False  # _done is done (a plain attribute: read on every client chunk)
        # transaction pooling's hot path reads the pool's deques directly (a client's pool is
        # the same for its whole session, and a Pool never replaces them)
        self._pool: Any = self._tx.pool if self._tx is not None else None
        self._idle: deque[ServerConn] = self._pool.idle if self._pool is not None else deque()
        self._waiters: deque[Any] = self._pool.waiters if self._pool is not None else deque()
        self._busy = False
        self._pending: list[bytes] = []
        self._waiting: _Waiter | None = None  # in the pool's queue (transaction pooling)
        self._task: asyncio.Future[None] | None = None
        # timing fed back to the pipeline (Forward.observe): (ReadyForQuery number, start, callback)
        self._timings: deque[tuple[int, float, Callable[[float], None]]] = deque()
        # prepared statements whose Binds matter (see _Watched)
        self._stmts: dict[bytes, _Watched] = {}
        self._slow = _SLOW if self._tx is None else _SLOW_TX
        self._bind_obs: tuple[float, Callable[[float], None]] | None = None  # a Bind waiting for its Sync
        self._open = False  # client messages sent upstream since the last Sync (a batch is open)
        self._nprivate = 0  # variants parsed upstream under our own names
        # SHOW sluice.last after Bind/Execute with no Parse (a prepared statement run again):
        # each statement's Parse record, and the latest Bind sent on (its chunk and offset,
        # read only when a statement asks the pipeline: nothing per message on the hot path)
        self._records: dict[bytes, dict[str, Any]] = {}
        self._last_bind: tuple[bytes, int] | None = None
        # the upstream callbacks, bound once (transaction pooling sets them at every attach)
        self._up_data = self._on_upstream_data
        self._up_lost = self._on_upstream_lost

    # -- upstream -> client ------------------------------------------------------------
    def _on_upstream_data(self, data: bytes) -> None:
        """Called by the upstream connection for every chunk it receives (no task, no future)."""
        sc = self.scanner
        try:
            out = sc.feed(data)
        except ConnectionError:
            self.uconn.close()
            return
        if self._timings and sc.ready >= self._timings[0][0]:
            self._fire_timings()
        if sc.ready >= self.sent_syncs:
            if self._idle_waiter is not None:
                self._wake_idle()
            if self._tx is not None and sc.status == b"I":
                if out and not self.client_gone:
                    tap = self._ctap
                    if tap is not None and type(out) is bytes and len(out) >= 6:
                        # the tap's writer inline (tap._Writer.write, kept in step with it: its
                        # counters, then the write; one Python call less per transaction, 0.7 us;
                        # test_sigterm_without_metrics_drains_the_passthrough_hot_path checks it)
                        if not tap.closed:
                            k = out.count(_RFQ)
                            if k == 1 and tap._ready:
                                tap._ready += 1
                                if tap._asked:
                                    tap._asked.popleft()
                            elif k:
                                tap._count_ready(k)
                            tap._tail = out  # (at_boundary reads its last 6 bytes)
                            self._craw(out)  # type: ignore[misc]  # (set together with _ctap)
                            if tap.on_idle is not None and tap.idle:
                                tap.on_idle()
                    else:
                        self._cwrite(out)
                self._maybe_release()
                return
        if out and not self.client_gone:
            self._cwrite(out)
            if not self._down_paused and (self._client_write_paused if self._cproto is not None
                                          else self._ctransport.get_write_buffer_size() > _HIGH_WATER):
                # the client reads slower than the upstream sends: stop reading the upstream for now
                self._down_paused = True
                ut = self.uconn.transport
                if ut is not None:
                    ut.pause_reading()
                if self._cproto is None:
                    asyncio.ensure_future(self._resume_upstream())

    def _fire_timings(self) -> None:
        """Statements whose ReadyForQuery has arrived: report their upstream time."""
        now = time.perf_counter()
        ready = self.scanner.ready
        timings = self._timings
        while timings and ready >= timings[0][0]:
            _n, t0, cb = timings.popleft()
            try:
                cb(now - t0)
            except Exception:  # feedback must never break the session
                log.exception("statement timing callback failed")

    def _forward_unchanged(self, data: bytes, sql: str, decision: Forward | Reply | SluiceError) -> bool:
        """The hot path of a simple Query the pipeline left as it was: send the client's bytes
        as they are (timed when asked); False when the decision needs :meth:`_query_decided`."""
        if type(decision) is not Forward or decision.sql != sql:
            return False
        self.sent_syncs += 1
        self._timed(decision)
        if self._nprivate:
            self._forget_variants(sql)
        self.uwriter.write(data)
        return True

    def _timed(self, decision: Forward) -> None:
        """Time the statement just counted in ``sent_syncs`` when the pipeline asked for it."""
        if decision.observe is not None:
            self._timings.append((self.sent_syncs, time.perf_counter(), decision.observe))

    async def _resume_upstream(self) -> None:
        with contextlib.suppress(ConnectionError, OSError, RuntimeError):
            await self.cwriter.drain()
        self._down_paused = False
        ut = self.uconn.transport
        if ut is not None and not self.uconn.closed:
            ut.resume_reading()

    def _on_upstream_lost(self) -> None:
        self.upstream_gone = True
        self._wake_idle()
        if not self.client_gone:
            with contextlib.suppress(ConnectionError, OSError, RuntimeError):
                # PostgreSQL's own FATAL (the last message before it closes) is the only one
                if self.scanner.at_boundary() and self.scanner.last != _E:
                    self._cwrite(_fatal("08006", "terminating connection: the upstream PostgreSQL server closed "
                                                 "the connection"))
                self.cwriter.close()

    # -- client -> upstream ------------------------------------------------------------
    async def upstream(self) -> None:
        """Stream mode: read the client through the server's StreamReader (fallback)."""
        read = self.creader.read
        process = self._process
        try:
            while True:
                data = await read(_READ)
                if not data or self.upstream_gone:
                    return
                self._busy = True
                ok = await process(data)
                self._busy = False
                if not ok:
                    return
                if self._tx is not None:
                    self._maybe_release()
        except (ConnectionError, OSError):
            return

    def _whole_query(self, data: bytes) -> str | None:
        """The SQL when ``data`` is exactly one whole, UTF-8 Query message and nothing is buffered."""
        if (data[0] == _Q and len(data) > 5 and len(data) == 1 + _unpack_i(data, 1)[0] and data[-1] == 0
                and not self._in_buf and not self._in_skip):
            try:
                return data[5:-1].decode()
            except UnicodeDecodeError:
                return None
        return None

    async def _process(self, data: bytes) -> bool:
        """Handle one chunk of client bytes; False when the session ends."""
        if self._tx is not None and self.server is None and not await self._attach(data):
            return False
        sql = self._whole_query(data)
        if sql is not None:
            # the simple-protocol hot path: one whole Query in the chunk
            if self._pass_fast(data, sql):
                if self.uconn.needs_drain():
                    await self.uconn.drain()
                return True
            decision: Forward | Reply | SluiceError
            try:
                decision = await self._decide(sql, False)
            except SluiceError as e:
                decision = e
            if self._forward_unchanged(data, sql, decision):
                return True
            return await self._query_decided(data, sql, decision)
        r = self._fast_client(data)
        if r == 1:
            return True
        if r == 2:
            await self.uconn.drain()
            return True
        return await self._handle_client(data)

    def _pass_fast(self, data: bytes, sql: str) -> bool:
        """:meth:`_on_client_data`'s fast path for a whole Query handled in a task (a client
        that waited for a server connection): forwarded as it is when the pipeline's
        :attr:`~sqlsluice.middleware.pipeline.Pipeline.fast` answer says so; False: decide."""
        pipeline = self.conn.pipeline
        if pipeline.fast is None:
            return False
        form = data[5:-1].translate(_ZERO_DIGITS)
        if self._tx is not None and not (_PLAIN_FORMS.get(form) or plain_form(form, sql)):
            return False  # transaction pooling's own answer first (_decide)
        if self._last_bind is not None:
            self._settle_last()
        if not pipeline.forward_fast(self.conn.ctx, sql, form):
            return False
        self.sent_syncs += 1
        if self._nprivate:
            self._forget_variants(sql)
        self.uwriter.write(data)
        return True

    # -- client -> upstream, protocol mode ----------------------------------------------
    def _take_over_client(self) -> bool:
        """Receive client bytes in :class:`_ClientProtocol` callbacks instead of the StreamReader.

        Saves a Future and a task wake-up per client read.  Bytes the StreamReader already
        holds are handled first.  Falls back to stream mode (False) when the reader or the
        transport does not look as expected.
        """
        reader = self.creader
        transport: Any = self.cwriter.transport
        buf = getattr(reader, "_buffer", None)
        if (not isinstance(buf, bytearray) or not hasattr(transport, "set_protocol")
                or getattr(reader, "_exception", None) is not None or transport.is_closing()):
            return False
        leftover = bytes(buf)
        buf.clear()
        eof = bool(getattr(reader, "_eof", False))
        self._cproto = _ClientProtocol(self)
        counted_here = self._ctap is not None and type(transport) is _TapTransport
        if counted_here:  # no _TappedProtocol in front: _on_client_data counts the arrivals
            transport._t.set_protocol(self._cproto)
        else:
            transport.set_protocol(self._cproto)
        with contextlib.suppress(Exception):
            transport.resume_reading()  # the StreamReader may have paused it
        if leftover:
            self._on_client_data(leftover)  # (counted by the tap's reader as it was handed over)
        if counted_here:
            self._ctap_in = self._ctap
        if eof:
            self._finish()
        return True

    def _finish(self) -> None:
        self._ended = True
        if not self._done.done():
            self._done.set_result(None)

    def _on_client_data(self, data: bytes, counted: bool = False) -> None:
        n = len(data)
        whole = n >= 5 and n == 1 + _unpack_i(data, 1)[0]  # one whole message (if it starts one)
        tap = self._ctap_in
        if tap is not None and not counted:  # _TappedProtocol.data_received's count, inline
            if tap.closed:
                return
            w = tap._in
            if whole and not w._skip and not w._held and w._body is None and data[0] in w._types:
                tap._asked.append(0.0)  # (no sink: arrival times are never read)
                tap._since = None
            else:
                tap.arrived(data)
        if self._ended:
            return
        if self._busy:
            pending = self._pending
            pending.append(data)
            if len(pending) == _PENDING_PAUSE:  # (a client waiting in a pool's queue is read
                self._ctransport.pause_reading()  # on until it sends this many chunks more)
            return
        tx = self._tx
        if tx is not None and self.server is None:
            # the pool's most recently idle connection, when it can serve this client as it is
            # (nobody waiting before us, open, silent, its settings this client's); anything
            # else goes the general way (Pool.try_acquire); server_idle_timeout and
            # server_lifetime are the sweep's and Pool.release's to apply
            idle = self._idle
            c = idle[-1] if idle and not self._waiters and tx.capturing is None and data[0] != _X else None
            if c is not None and c.applied == tx.state and not c.conn.closed and not c.conn._buf:
                idle.pop()  # attached here
                self.server = c
                self.up = c.session
                conn = c.conn
                self.uconn = self.uwriter = conn
                conn.on_data = self._up_data
                conn.on_lost = self._up_lost
            elif not self._attach_now(data):
                return
        sql: str | None = None
        if whole and data[0] == _Q and n > 5 and data[-1] == 0 and not self._in_buf and not self._in_skip:
            text = data[5:-1]
            try:
                sql = text.decode()
            except UnicodeDecodeError:  # (not UTF-8: the general path)
                sql = None
        if sql is not None:
            if self._last_bind is not None:
                self._settle_last()
            pipeline = self.conn.pipeline
            # the statement's form (pipeline.statement_form, from the bytes as they are): the
            # key of the plain-query and shape caches
            form = text.translate(_ZERO_DIGITS) if tx is not None or pipeline.fast is not None else None
            if tx is not None and not (_PLAIN_FORMS.get(form) or plain_form(form, sql)):  # type: ignore[arg-type]
                pre = self._tx_pre(sql)
                if pre is not None:
                    self._start(self._query_decided(data, sql, pre))
                    return
            if pipeline.fast is not None and pipeline.forward_fast(self.conn.ctx, sql, form):
                # the pipeline's answer without running its stages: forward as it is, one write
                self.sent_syncs += 1
                if self._nprivate:
                    self._forget_variants(sql)
                uw = self.uwriter
                if type(uw) is UpstreamConnection:  # its write() inline
                    ut = uw.transport
                    if ut is not None and not uw.closed:
                        ut.write(data)
                    if uw._paused:
                        self._start(self._drain_upstream())
                else:
                    uw.write(data)
                    if uw.needs_drain():
                        self._start(self._drain_upstream())
                return
            coro = pipeline.handle(self.conn.ctx, sql, extended=False)
            decision: Forward | Reply | SluiceError
            try:
                yielded = coro.send(None)
            except StopIteration as stop:
                decision = stop.value
            except SluiceError as e:
                decision = e
            else:  # a stage really waits for something: finish the pipeline in a task
                self._start(self._finish_query(data, sql, coro, yielded))
                return
            if self._forward_unchanged(data, sql, decision):
                if self.uconn.needs_drain():
                    self._start(self._drain_upstream())
                return
            self._start(self._query_decided(data, sql, decision))
            return
        r = self._fast_client(data)
        if r == 1:
            return
        if r == 2:
            self._start(self._drain_upstream())
            return
        self._start(self._handle_client(data))

    async def _drain_upstream(self) -> bool:
        await self.uconn.drain()
        return True

    async def _finish_query(self, data: bytes, sql: str, coro: Any, yielded: Any) -> bool:
        decision: Forward | Reply | SluiceError
        try:
            decision = await _Resume(coro, yielded)
        except SluiceError as e:
            decision = e
        if self._forward_unchanged(data, sql, decision):
            return True
        return await self._query_decided(data, sql, decision)

    def _start(self, step: Any) -> None:
        """Run an async step; client bytes that arrive meanwhile wait their turn."""
        self._busy = True
        self._ctransport.pause_reading()
        self._task = asyncio.ensure_future(self._run_steps(step))

    async def _run_steps(self, step: Any) -> None:
        try:
            ok = await step
            while ok and self._pending and not self._done.done():
                ok = await self._process(self._pending.pop(0))
        except (ConnectionError, OSError):
            ok = False
        except Exception:
            log.exception("passthrough session failed")
            ok = False
        self._busy = False
        if not ok:
            self._finish()
        elif not self._done.done():
            with contextlib.suppress(Exception):
                self._ctransport.resume_reading()
            if self._tx is not None:
                self._maybe_release()

    def _on_client_writable(self) -> None:
        if self._down_paused:
            self._down_paused = False
            ut = self.uconn.transport
            if ut is not None and not self.uconn.closed:
                ut.resume_reading()

    def _fast_tx(self, data: bytes) -> int:
        """:meth:`_fast_client` in transaction pooling: Bind, Describe and Close get the
        server's statement names (and a Parse first where the connection lacks the statement);
        one write for the chunk."""
        if self._in_skip or self._in_buf or self._bind_obs is not None:
            return 0
        tx, c = self._tx, self.server
        assert tx is not None and c is not None
        n = len(data)
        pos = start = 0
        watched = bool(self._stmts)
        syncs = 0
        bind = -1
        general = False  # a Describe or Close of a statement, or a Bind the connection lacks: _tx_named
        pieces: list[bytes] | None = None  # renamed Binds (computed only: nothing changes before the end)
        t = 0
        stmts, prepared = tx.stmts, c.prepared
        ok = _FAST_TYPES_BIND if watched else _FAST_TYPES  # (watched: Bind and Close go the slow way)
        while pos + 5 <= n:  # check first: nothing may change when the chunk goes the slow way
            t = data[pos]
            ln = _unpack_i(data, pos + 1)[0]
            if t not in ok or not 4 <= ln <= MAX_MESSAGE:
                return 0
            end = pos + 1 + ln
            if t == _B:
                bind = pos
                if not general:  # the common case: a named statement this connection has already
                    p1 = data.find(0, pos + 5, end)
                    p2 = data.find(0, p1 + 1, end) if p1 > 0 else -1
                    entry = stmts.get(data[p1 + 1:p2]) if p2 > p1 + 1 else None
                    if entry is not None and entry[0] in prepared:
                        sname = entry[0]
                        if pieces is None:
                            pieces = []
                        pieces.append(data[start:pos])
                        pieces.append(b"B" + _I.pack(end - pos - (p2 - p1) + len(sname)) + data[pos + 5:p1 + 1]
                                      + sname + data[p2:end])
                        start = end
                    else:
                        general = True
            elif t == _S or t == _F:
                syncs += 1
            elif t == _C or (t == _D and data[pos + 5:pos + 6] == b"S"):  # (a portal's: as is; may be cut)
                general = True
            pos = end
        if pos != n:
            return 0
        if general:
            return self._tx_rename(data)
        self.sent_syncs += syncs
        if bind >= 0:
            self._last_bind = (data, bind)
        self._open = t != _S and t != _F
        uw = self.uwriter
        if pieces is not None:
            pieces.append(data[start:])
            uw.write(b"".join(pieces))
        else:
            uw.write(data)
        return 2 if uw.needs_drain() else 1

    def _tx_rename(self, data: bytes) -> int:
        """:meth:`_fast_tx` for a checked chunk of whole messages that needs :meth:`_tx_named`."""
        n = len(data)
        pos = start = 0
        pieces: list[bytes] = []
        t = 0
        while pos < n:
            t = data[pos]
            end = pos + 1 + _unpack_i(data, pos + 1)[0]
            if t == _B or t == _C or t == _D:
                msg = data[pos:end]
                if t == _B:
                    self._last_bind = (data, pos)
                new = self._tx_named(t, msg)
                if new != msg:
                    pieces.append(data[start:pos])
                    pieces.append(new)
                    start = end
            elif t == _S or t == _F:
                self.sent_syncs += 1
            pos = end
        self._open = t != _S and t != _F
        uw = self.uwriter
        if pieces:
            pieces.append(data[start:])
            uw.write(b"".join(pieces))
        else:
            uw.write(data)
        return 2 if uw.needs_drain() else 1

    def _fast_client(self, data: bytes) -> int:
        """The hot path: a chunk of whole messages none of which needs the pipeline; sent as is.

        Returns 0 (having changed nothing) when the chunk needs :meth:`_handle_client`,
        1 when it was sent, 2 when it was sent and the upstream writer should be drained.
        """
        if self._tx is not None:
            return self._fast_tx(data)
        if self._in_skip or self._in_buf or self._bind_obs is not None:
            return 0
        n = len(data)
        pos = 0
        syncs = 0
        bind = -1
        slow = self._slow
        ok = _FAST_TYPES if slow is _SLOW else _FAST_TYPES_BIND if slow is _SLOW_BIND else _FRONTEND - slow
        while pos + 5 <= n:
            t = data[pos]
            ln = _unpack_i(data, pos + 1)[0]
            if t not in ok or not 4 <= ln <= MAX_MESSAGE:
                return 0
            if t == _S or t == _F:
                syncs += 1
            elif t == _B:
                bind = pos
            pos += 1 + ln
        if pos != n:
            return 0
        if syncs:
            self.sent_syncs += syncs
        if bind >= 0:
            self._last_bind = (data, bind)
        self._open = t != _S and t != _F
        uw = self.uwriter
        uw.write(data)
        return 2 if uw.needs_drain() else 1

    def _send(self, data: bytes | bytearray | memoryview) -> None:
        self.uwriter.write(data)

    async def _handle_client(self, data: bytes) -> bool:
        """Frame client bytes, forward them; False when the session ends."""
        skip = self._in_skip
        if skip and not self._in_buf:
            n = len(data)
            if skip >= n:
                self._in_skip = skip - n
                self._send(data)
                return True
            self._send(data[:skip])
            data = data[skip:]
            self._in_skip = 0
        if self._in_buf:
            self._in_buf += data
            buf: bytes | bytearray = self._in_buf
        else:
            buf = data
        n = len(buf)
        pos = 0
        start = 0  # first byte not yet sent upstream
        while pos + 5 <= n:
            t = buf[pos]
            ln = _unpack_i(buf, pos + 1)[0]
            if ln < 4 or ln > MAX_MESSAGE or t not in _FRONTEND:
                if start < pos:
                    self._send(buf[start:pos])
                self._protocol_error(t, ln)
                return False
            end = pos + 1 + ln
            if self._tx is not None and (t == _B or t == _C or t == _D):
                if end > n:
                    break  # need the whole message to see its statement
                if start < pos:
                    self._send(buf[start:pos])
                msg = bytes(buf[pos:end])
                if t == _B and not self._stmts:
                    self._last_bind = (msg, 0)
                if t == _C and self._stmts:
                    self._closed_stmt(buf, pos, end)
                elif t == _B and self._stmts:
                    msg = await self._bind(buf, pos, end) or msg
                self._send(self._tx_named(t, msg))
                start = end
                self._open = True
            elif (t == _B or t == _C) and self._stmts:
                if end > n:
                    break  # need the whole message to see its statement
                if t == _C:
                    self._closed_stmt(buf, pos, end)
                else:
                    if start < pos:
                        self._send(buf[start:pos])
                        start = pos
                    replaced = await self._bind(buf, pos, end)
                    if replaced is not None:
                        self._send(replaced)
                        start = end
                self._open = True
            elif t == _Q or t == _P:
                if end > n:
                    break  # need the whole statement
                if start < pos:
                    self._send(buf[start:pos])
                start = end
                raw = bytes(buf[pos:end]) if pos or end != n or type(buf) is not bytes else buf
                ok = await (self._query(raw) if t == _Q else self._parse(raw))
                if not ok:
                    return False
                self._open = t == _P
            elif t == _B:
                self._last_bind = (bytes(buf[pos:min(end, n)]), 0)  # (a watched one: _bind above)
            elif t == _S or t == _F:
                self.sent_syncs += 1
                self._open = False
                if self._bind_obs is not None:
                    t0, cb = self._bind_obs
                    self._bind_obs = None
                    self._timings.append((self.sent_syncs, t0, cb))
            elif t == _X:
                if start < pos:
                    self._send(buf[start:pos])
                if self.pooled is None:
                    self._send(buf[pos:min(end, n)])
                # as PostgreSQL: nothing goes to the client after its Terminate
                self.terminated = self.client_gone = True
                self._close_upstream()
                return False
            if t != _S and t != _F and t != _Q and t != _P:
                self._open = True
            if end > n:
                # a passed-through message whose body is still arriving: send what we have
                self._send(buf[start:n])
                self._in_skip = end - n
                start = pos = n
                break
            pos = end
        if start < pos:
            self._send(buf[start:pos])
        rest = buf[pos:]
        if rest:
            self._in_buf = bytearray(rest)
        else:
            self._in_buf = bytearray()
        if self.uconn.needs_drain():
            await self.uconn.drain()
        return True

    def _protocol_error(self, t: int, ln: int) -> None:
        if t not in _FRONTEND:
            msg = f"invalid frontend message type {t}"
        else:
            msg = f"invalid message length {ln} for message type {chr(t)!r}"
        self._fail(_fatal("08P01", msg))

    def _fail(self, error: bytes) -> None:
        """End the session on bad client input: the error goes out unless an answer is mid-flight."""
        if self.scanner.ready >= self.sent_syncs or self.upstream_gone:
            with contextlib.suppress(ConnectionError, OSError, RuntimeError):
                self.cwriter.write(error)

    async def _wait_idle(self) -> None:
        """Wait until every answer the upstream owes has been forwarded."""
        while self.scanner.ready < self.sent_syncs and not self.upstream_gone:
            self._idle_waiter = asyncio.get_running_loop().create_future()
            await self._idle_waiter

    def _wake_idle(self) -> None:
        w = self._idle_waiter
        if w is not None:
            self._idle_waiter = None
            if not w.done():
                w.set_result(None)

    def _marker(self, err: SluiceError, sync_no: int) -> str:
        """Register a substitution; return the SQL that makes the upstream fail in its place."""
        self._marker_seq += 1
        token = _MARKER + str(self._marker_seq).encode() + b'"'
        from sqlsluice.middleware.connection import error_message

        self.scanner.substitutions.append((sync_no, token, error_message(err)))
        return f'SELECT "{token[:-1].decode()}"'

    async def _query(self, raw: bytes) -> bool:
        if len(raw) < 6 or raw[-1] != 0:
            self._fail(_fatal("08P01", "invalid message format: Query string is not NUL-terminated"))
            return False
        try:
            sql = raw[5:-1].decode()
        except UnicodeDecodeError:
            # not UTF-8 (another client_encoding, or bad bytes): the upstream decides
            self.sent_syncs += 1
            self._send(raw)
            return True
        decision: Forward | Reply | SluiceError
        try:
            decision = await self._decide(sql, False)
        except SluiceError as e:
            decision = e
        return await self._query_decided(raw, sql, decision)

    async def _decide(self, sql: str, extended: bool) -> Forward | Reply:
        """The pipeline's answer, after transaction pooling's own (refusals, DEALLOCATE ...)."""
        if self._last_bind is not None:
            self._settle_last()
        if self._tx is not None:
            pre = self._tx_pre(sql, extended)
            if isinstance(pre, SluiceError):
                raise pre
            if pre is not None:
                return pre
        return await self.conn.pipeline.handle(self.conn.ctx, sql, extended=extended)

    def _settle_last(self) -> None:
        """``ctx.last`` := the record of the statement the latest Bind ran, when that Bind came
        after the latest statement the pipeline saw (a prepared statement executed again)."""
        assert self._last_bind is not None
        data, pos = self._last_bind
        self._last_bind = None
        try:
            p1 = data.index(0, pos + 5)
            name = bytes(data[p1 + 1:data.index(0, p1 + 1)])
        except ValueError:
            return  # the Bind's names had not all arrived: keep what is recorded
        rec = self._records.get(name)
        if rec is not None:
            self.conn.ctx.last = rec

    def _record(self, name: bytes, before: Any) -> None:
        """Keep the Parse's record of statement ``name`` (none: a SHOW sluice.last, which keeps
        the record before it) for :meth:`_settle_last`."""
        self._last_bind = None  # this Parse is newer than any Bind sent before it
        last = getattr(self.conn.ctx, "last", None)
        if last is None or last is before:
            self._records.pop(name, None)
            return
        if name not in self._records and len(self._records) >= _MAX_WATCHED:
            del self._records[next(iter(self._records))]
        self._records[name] = last

    async def _query_decided(self, raw: bytes, sql: str, decision: Forward | Reply | SluiceError) -> bool:
        """Act on the pipeline's answer to a Query."""
        if self._nprivate:
            self._forget_variants(sql)
        if isinstance(decision, SluiceError):
            # fail upstream in this position so the transaction aborts as on PostgreSQL
            self.sent_syncs += 1
            self._send(codec.message(codec.QUERY, codec.cstr(self._marker(decision, self.sent_syncs))))
            return True
        if isinstance(decision, Reply):
            await self._wait_idle()
            self.cwriter.write(reply_messages(decision, self.scanner.status))
            return True
        self.sent_syncs += 1
        self._timed(decision)
        if decision.sql == sql:
            self._send(raw)
        else:
            self._send(codec.message(codec.QUERY, codec.cstr(decision.sql)))
        return True

    async def _parse(self, raw: bytes) -> bool:
        payload = raw[5:]
        try:
            name_end = payload.index(0)
            sql_end = payload.index(0, name_end + 1)
        except ValueError:
            self._fail(_fatal("08P01", "invalid message format: malformed Parse message"))
            return False
        try:
            sql = payload[name_end + 1:sql_end].decode()
        except UnicodeDecodeError:
            self._send(raw)  # not UTF-8: the upstream decides
            return True
        rest = client_types = payload[sql_end + 1:]  # the parameter type section
        oids: tuple[int, ...] = ()
        if len(rest) >= 2:
            n = struct.unpack_from("!h", rest)[0]
            if 0 < n and len(rest) >= 2 + 4 * n:
                oids = struct.unpack_from(f"!{n}I", rest, 2)
        ctx = self.conn.ctx
        name = payload[:name_end]
        new_sql: str | None
        decision: Forward | Reply | None = None
        before = getattr(ctx, "last", None)
        try:
            if hasattr(ctx, "parse_param_oids"):
                ctx.parse_param_oids = oids
            decision = await self._decide(sql, True)
            if isinstance(decision, Forward):
                new_sql = None if decision.sql == sql else decision.sql
            else:
                new_sql = reply_as_sql(decision)
        except SluiceError as e:
            new_sql = self._marker(e, self.sent_syncs + 1)
        if isinstance(decision, Forward) and decision.param_oids is not None and new_sql is not None:
            rest = struct.pack(f"!h{len(decision.param_oids)}I", len(decision.param_oids), *decision.param_oids)
        if self._tx is not None:
            self._tx_parse(name, payload[name_end + 1:] if new_sql is None else codec.cstr(new_sql) + rest)
        elif new_sql is None:
            self._send(raw)
        else:
            self._send(codec.message(codec.PARSE, payload[:name_end + 1] + codec.cstr(new_sql) + rest))
        if self._nprivate:
            self._forget_variants(sql)
        self._record(name, before)
        self._watch(name, decision, new_sql or sql, client_types, sql)
        if (isinstance(decision, Reply) and decision.status == "SHOW" and name
                and new_sql is not None and sql.lstrip()[:12].lower() == "show sluice."):
            self._watch_show(name, sql, new_sql, client_types)
        return True

    def _watch_show(self, name: bytes, sql: str, parsed: str, types: bytes) -> None:
        """A prepared ``SHOW sluice.*`` (asyncpg caches it): each Bind asks the pipeline again
        and runs the answer, parsed under one name of our own (the previous one closed)."""
        async def refresh() -> Forward | None:
            fresh = await self._decide(sql, True)
            return Forward(reply_as_sql(fresh), current=refresh) if isinstance(fresh, Reply) else None

        if name in self._stmts or len(self._stmts) < _MAX_WATCHED:
            w = _Watched(Forward(parsed, current=refresh), parsed, types, sql, None)
            w.show = True
            self._stmts[name] = w
            self._slow = _SLOW_TX if self._tx is not None else _SLOW_BIND

    def _watch(self, name: bytes, decision: Forward | Reply | None, sql: str = "", types: bytes = b"",
               original: str = "") -> None:
        """Remember what the pipeline wants to hear about the executions of this statement."""
        stmts = self._stmts
        if isinstance(decision, Forward) and (decision.observe is not None or decision.on_bind is not None
                                              or decision.current is not None):
            if name in stmts or len(stmts) < _MAX_WATCHED:
                stmts[name] = _Watched(decision, sql, types, original, getattr(self.conn.ctx, "last", None))
        elif name in stmts:
            del stmts[name]
        self._slow = _SLOW_TX if self._tx is not None else _SLOW_BIND if stmts else _SLOW

    def _unwatch(self, name: bytes) -> None:
        self._stmts.pop(name, None)
        self._slow = _SLOW_TX if self._tx is not None else _SLOW_BIND if self._stmts else _SLOW

    def _closed_stmt(self, buf: bytes | bytearray, pos: int, end: int) -> None:
        """Close of a prepared statement: stop watching it (it goes on as is)."""
        if end - pos > 6 and buf[pos + 5] == ord("S"):
            self._unwatch(bytes(buf[pos + 6:end - 1]))

    def _forget_variants(self, sql: str) -> None:
        """DEALLOCATE / DISCARD drop our variants upstream too: parse them again when needed."""
        if sql.lstrip()[:10].upper().startswith(_RESETS):
            for w in self._stmts.values():
                w.variants.clear()
            self._nprivate = 0

    async def _bind(self, buf: bytes | bytearray, pos: int, end: int) -> bytes | None:
        """A whole Bind of a watched statement: hand the first one to ``on_bind``, point it at
        the form the pipeline wants now (a variant parsed under our own name when that
        differs from what the client's Parse put upstream), and time the execution.
        Returns the Bind to send instead, or None to send it as is."""
        try:
            p1 = buf.index(0, pos + 5, end)
            p2 = buf.index(0, p1 + 1, end)
        except ValueError:
            return None  # malformed: the upstream answers it
        name = bytes(buf[p1 + 1:p2])
        w = self._stmts.get(name)
        if w is None or not w.show:  # (a SHOW sluice.* is not the statement it describes)
            self._last_bind = (bytes(buf[pos:end]), 0)
        if w is None:
            return None
        if w.on_bind is not None:
            on_bind, w.on_bind = w.on_bind, None
            try:
                on_bind(codec.parse_bind(bytes(buf[pos + 5:end])))
            except Exception:  # a Bind we cannot read, or a failing hook: the upstream still gets it
                log.debug("on_bind hook failed", exc_info=True)
        target, observe, last = name, w.observe, w.last
        if w.current is not None:
            try:
                want = await w.current()
            except Exception:
                log.exception("prepared statement hook failed; running what was parsed")
                want = None
            if want is not None:
                if want.sql == w.sql:
                    observe = want.observe
                    if w.want is not want:  # the answer changed since the Parse: say so
                        w.want = want
                        w.last = {"sql": w.original, "extended": True, "action": "forward", **want.info}
                        if w.sql != w.original:
                            w.last["forwarded_sql"] = w.sql
                    last = w.last
                    if want.current is None and want.observe is None and w.on_bind is None:
                        self._unwatch(name)  # final: nothing more to do for this statement
                elif self._tx is not None:
                    if w.show and name in self._tx.stmts:
                        # transaction pooling: the client's name now stands for the fresh answer,
                        # prepared under its own shared name on whichever connection runs this Bind
                        # (_tx_named), as any statement of the client's is
                        body = codec.cstr(want.sql) + w.types
                        self._tx.stmts[name] = (server_name(body), body)
                        w.sql = want.sql
                else:
                    v = w.variants.get(want.sql)
                    if v is None and not self._open and self._nprivate < _MAX_WATCHED:
                        v = await self._parse_variant(w, want)
                    if v is not None:
                        target, observe, last = v[0], want.observe, v[1]
        if observe is not None:
            self._bind_obs = (time.perf_counter(), observe)
        if last is not None and not w.show:
            self._last_bind = None
            if getattr(self.conn.ctx, "last", None) is not last:
                self.conn.ctx.last = last  # SHOW sluice.last: this statement's execution
        if w.current is None and observe is None and w.on_bind is None and name in self._stmts:
            self._unwatch(name)
        if target == name:
            return None
        body = bytes(buf[pos + 5:p1 + 1]) + target + bytes(buf[p2:end])
        return codec.message(codec.BIND, body)

    async def _parse_variant(self, w: _Watched, want: Forward) -> tuple[bytes, dict[str, Any]] | None:
        """Parse ``want.sql`` upstream under a name of our own, in a batch of its own whose
        answers the client never sees; None when it failed (e.g. inside a failed transaction)."""
        self._nprivate += 1
        self._marker_seq += 1
        vname = _PRIVATE + str(self._marker_seq).encode()
        oids = want.param_oids
        types = w.types if oids is None else struct.pack(f"!h{len(oids)}I", len(oids), *oids)
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

        def done(ok: bool) -> None:
            if not fut.done():
                fut.set_result(ok)

        close = b""
        if w.show:  # a SHOW's answer of before is not asked for again: one variant at a time
            close = b"".join(codec.message(codec.CLOSE, b"S" + v + b"\0") for v, _ in w.variants.values())
            self._nprivate -= len(w.variants)
            w.variants.clear()
        self.sent_syncs += 1
        self.scanner.hidden[self.sent_syncs] = done
        self._send(close + codec.message(codec.PARSE, vname + b"\0" + codec.cstr(want.sql) + types)
                   + codec.message(codec.SYNC))
        try:
            ok = await asyncio.wait_for(fut, 30.0)
        except TimeoutError:
            ok = False
        if not ok:
            return None
        last: dict[str, Any] = {"sql": w.original, "extended": True, "action": "forward",
                                "forwarded_sql": want.sql, **want.info, "prepared_variant": vname.decode()}
        w.variants[want.sql] = (vname, last)
        return vname, last

    # -- transaction pooling -------------------------------------------------------------
    def _attach_server(self, c: ServerConn) -> None:
        self.server = c
        self.up = c.session
        self.uconn = self.uwriter = c.conn
        c.conn.start_relay(self._up_data, self._up_lost)

    def _attach_now(self, data: bytes) -> bool:
        """Attach an idle server connection at once; False when that has to wait (a task then
        attaches one and handles ``data``) or when the chunk needs none."""
        tx = self._tx
        assert tx is not None
        if data[:1] == b"X":  # Terminate: no server connection needed
            self.terminated = self.client_gone = True
            self._finish()
            return False
        if tx.capturing is None:
            pool = tx.pool
            c = pool.try_acquire()
            if c is not None:
                if c.applied == tx.state:
                    self._attach_server(c)
                    return True
                self._start(self._attach_then(data, c))
                return False
            if pool.total >= pool.size or pool.waiters:
                # every server connection is busy: wait in the pool's queue without a task;
                # the connection is handed to _handed by whichever transaction ends first
                self._busy = True  # (reading goes on: a waiting client is usually silent)
                self._waiting = _Waiter(self, data, tx.settings.query_wait_timeout)
                pool.waiters.append(self._waiting)
                return False
        self._start(self._attach_then(data, None))
        return False

    def _handed(self, c: ServerConn | None, data: bytes) -> None:
        """A :class:`_Waiter`'s turn: ``c`` (None: a free slot to open one in) for ``data``,
        the client chunk that waited.  Runs inside the releasing session's callback."""
        tx = self._tx
        assert tx is not None
        self._waiting = None
        if self._ended or self.client_gone:  # the client left while waiting: pass it on
            if c is not None:
                tx.pool.release(c)
            else:
                tx.pool._hand_over(None)
            return
        if c is None or c.applied != tx.state or tx.capturing is not None:
            self._task = asyncio.ensure_future(self._run_steps(self._attach_then(data, c, slot=c is None)))
            return
        self._attach_server(c)
        self._busy = False
        self._on_client_data(data, counted=True)
        pending = self._pending
        if pending:
            paused = len(pending) >= _PENDING_PAUSE
            while pending and not self._busy and not self._ended:
                self._on_client_data(pending.pop(0), counted=True)
            if paused and not self._busy and not self._ended:
                with contextlib.suppress(Exception):
                    self._ctransport.resume_reading()

    def _wait_expired(self, waiter: _Waiter) -> None:
        """query_wait_timeout ran out for a :class:`_Waiter`: FATAL 53300, as acquire says it."""
        tx = self._tx
        assert tx is not None
        self._waiting = None
        pool = tx.pool
        with contextlib.suppress(ValueError):
            pool.waiters.remove(waiter)  # (a _Waiter's repr is cheap)
        self._busy = False
        e = pool_timeout(pool, tx.settings.query_wait_timeout)
        self._fail(codec.error_response(e.sqlstate, e.message, severity="FATAL", hint=e.hint))
        self._finish()

    def _cancel_waiting(self) -> None:
        """A CancelRequest while the client waits in the pool's queue: nothing of its runs yet,
        so its first waiting request (a Query, or extended-protocol messages up to a Sync) is
        answered as PostgreSQL answers a statement cancelled while it runs (57014, then
        ReadyForQuery) and never sent; what it sent after that waits on.  Without this the
        client would hang until a connection frees and its statement has run in full
        (PgBouncer's issue 1222).  Waiting bytes that do not start with one whole request are
        left to wait (nothing is answered)."""
        w = self._waiting
        tx = self._tx
        if w is None or w._done or tx is None or self._ended:
            return
        data = w.data
        n = len(data)
        pos = end = 0
        while pos + 5 <= n:
            t = data[pos]
            ln = _unpack_i(data, pos + 1)[0]
            if ln < 4 or pos + 1 + ln > n:
                break
            pos += 1 + ln
            if t == _Q or t == _S or t == _F:
                end = pos
                break
        if not end:
            return
        self._cwrite(codec.error_response("57014", "canceling statement due to user request")
                     + codec.ready_for_query(b"I"))
        rest = data[end:]
        if not rest and self._pending:
            rest = b"".join(self._pending)
            self._pending.clear()
            with contextlib.suppress(Exception):
                self._ctransport.resume_reading()  # (paused at _PENDING_PAUSE held chunks)
        if rest:
            w.data = rest  # the rest keeps its place in the queue
            return
        pool = tx.pool
        w._done = True
        pool.wait_since.pop(id(w), None)
        with contextlib.suppress(ValueError):
            pool.waiters.remove(w)
        self._waiting = None
        self._busy = False

    async def _attach_then(self, data: bytes, c: ServerConn | None, slot: bool = False) -> bool:
        if not await self._attach(data, c, slot=slot):
            return False
        return await self._process(data)

    async def _attach(self, data: bytes, c: ServerConn | None = None, slot: bool = False) -> bool:
        """Wait for a server connection (FIFO, up to query_wait_timeout); False when none came
        (the client got FATAL 53300) or when the chunk is a Terminate."""
        tx = self._tx
        assert tx is not None
        if data[:1] == b"X":
            self.terminated = self.client_gone = True
            if c is not None:
                tx.pool.release(c)
            return False
        try:
            if c is None and slot:  # handed a free slot (a _Waiter): open a connection in it
                c = await tx.pool.open_in_slot()
            if c is None:
                while tx.capturing is not None:
                    await asyncio.shield(tx.capturing)
                c = await tx.pool.acquire(tx.settings.query_wait_timeout)
            await tx.checkout(c)
        except SluiceError as e:
            self._fail(codec.error_response(e.sqlstate, e.message, severity="FATAL", hint=e.hint))
            return False
        except (ConnectionError, OSError, TimeoutError) as e:
            self._fail(_fatal("08006", f"server connection failed: {e}"))
            return False
        if self.client_gone:
            tx.pool.release(c)
            return False
        self._attach_server(c)
        return True

    def _maybe_release(self) -> None:
        """Give the server connection back once the client is idle between transactions."""
        c = self.server
        tx = self._tx
        sc = self.scanner
        if (c is None or tx is None or self._busy or self._open or self._in_buf or self._in_skip
                or sc.status != b"I" or sc.ready < self.sent_syncs or sc._held or sc._skip or self.upstream_gone):
            return
        conn = c.conn
        if self._down_paused:
            self._down_paused = False
            ut = conn.transport
            if ut is not None:
                ut.resume_reading()
        self.server = None
        self.up = _NO_SERVER_SESSION
        self.uconn = self.uwriter = _NO_SERVER
        conn.on_data = conn.on_lost = None
        c.status = b"I"
        if sc.reported:  # a reported setting changed, by a SET or by anything else (DO, a function)
            sc.reported = False
            tx.dirty = True
        if tx.dirty:
            # the client's next statement waits for this (``_attach``), from now on
            tx.capturing = asyncio.get_running_loop().create_future()
            self._keep_task(tx.capture(c))
        else:
            tx.pool.release(c)

    def _keep_task(self, coro: Any) -> None:
        t = asyncio.ensure_future(coro)
        _TASKS.add(t)
        t.add_done_callback(_TASKS.discard)

    def _tx_pre(self, sql: str, extended: bool = False) -> Reply | SluiceError | None:
        """Transaction pooling's answer to a statement before the pipeline's (None: go on).
        ``extended``: at its Parse (DEALLOCATE ALL and DISCARD ALL then take effect at each
        Bind, when they run: _tx_named)."""
        tx = self._tx
        assert tx is not None
        if plain_query(sql):
            return None
        err = refusal(sql)
        if err is not None:
            return err
        if is_set(sql):
            tx.dirty = True
            return None
        c = sql.lstrip()[:1]
        if c not in "dD":
            return None
        status, srv = self.scanner.status, self.server
        if status == b"E" or srv is None:
            return None  # an aborted transaction: the server refuses it as it should
        # DEALLOCATE ALL and DISCARD ALL go to the server (drivers read their command tags),
        # which then has none of our statements; DEALLOCATE <name> is the client's alone
        target = deallocate_target(sql)
        if target == "ALL":
            if not extended:
                self._reset_statements(srv, discard=False)
            return None
        if target is not None:
            if tx.stmts.pop(target.encode(), None) is None:
                return SluiceError(f'prepared statement "{target}" does not exist', sqlstate="26000")
            return Reply([], [], "DEALLOCATE")
        if is_discard_all(sql):
            if status != b"I":
                return SluiceError("DISCARD ALL cannot run inside a transaction block", sqlstate="25001")
            if not extended:
                self._reset_statements(srv, discard=True)
        return None

    def _reset_statements(self, srv: ServerConn, *, discard: bool) -> None:
        """DEALLOCATE ALL (``discard``: DISCARD ALL) on its way to ``srv``: the server will have
        none of the proxy's statements, and the client none of its own (nor, for DISCARD ALL,
        its settings)."""
        tx = self._tx
        assert tx is not None
        tx.stmts.clear()
        srv.prepared.clear()
        if discard:
            tx.unnamed = None
            tx.state = tx.startup
            srv.applied, srv.unnamed = (), None

    def _pq(self, action: int, undo: Callable[[], None] | None = None) -> None:
        self.scanner.pq.append((self.sent_syncs + 1, action, undo))

    def _tx_parse(self, name: bytes, body: bytes) -> None:
        """A client's Parse: under the proxy's own name for a named statement (shared by every
        client; answered by a ParseComplete of our own where this connection has it already)."""
        tx, c = self._tx, self.server
        assert tx is not None and c is not None
        if not name:
            tx.unnamed = body
            tx.unnamed_reset = _reset_kind(body)
            tx.unnamed_key = c.unnamed = object()
            self._pq(PQ_PASS)
            self._send(codec.message(codec.PARSE, b"\0" + body))
            return
        if name in tx.stmts:  # as PostgreSQL: a named statement is not replaced
            err = SluiceError(f'prepared statement "{name.decode(errors="replace")}" already exists',
                              sqlstate="42P05")
            self._pq(PQ_PASS)  # a Parse that fails (the marker), creating nothing
            self._send(codec.message(codec.PARSE, b"sluice_err\0" + codec.cstr(self._marker(err, self.sent_syncs + 1))
                                     + b"\0\0"))
            return
        # DISCARD ALL / DEALLOCATE ALL prepared under a name are never kept on the server (each
        # run would drop every statement there, the proxy's shared ones included): the unnamed
        # statement at each Bind (_ensure)
        reset = _reset_kind(body)
        sname = reset if reset is not None else server_name(body)
        entry = tx.stmts[name] = (sname, body)

        def undo() -> None:  # the Parse never completed (it failed, or an error before it skipped it)
            if tx.stmts.get(name) is entry:
                del tx.stmts[name]

        if reset is not None or sname in c.prepared:
            # nothing to parse on the server: a ParseComplete of our own, except inside an aborted
            # transaction, where PostgreSQL refuses any Parse but a transaction end's (25P02): a
            # probe Parse gets the server's answer (and is closed again where it succeeds: the
            # status read here is the batch's first, and a ROLLBACK in the batch may end it)
            if self.scanner.status == b"E" and not _TX_EXIT.match(body):
                self._pq(PQ_PASS, undo)
                self._pq(PQ_HIDE)
                self._send(_PROBE)
                return
            self._pq(PQ_AS_PARSE, undo)
            self._send(_CLOSE_NONE)
            return
        c.prepared.add(sname)

        def undo_prepared() -> None:
            c.prepared.discard(sname)
            undo()

        self._pq(PQ_PASS, undo_prepared)
        self._send(codec.message(codec.PARSE, sname + b"\0" + body))

    def _ensure(self, name: bytes) -> tuple[bytes, bytes]:
        """(Parse to send first or b"", the server's name) for a client statement name."""
        tx, c = self._tx, self.server
        assert tx is not None and c is not None
        if not name:
            if tx.unnamed is not None and c.unnamed is not tx.unnamed_key:
                c.unnamed = tx.unnamed_key
                self._pq(PQ_HIDE)
                return codec.message(codec.PARSE, b"\0" + tx.unnamed), name
            return b"", name
        entry = tx.stmts.get(name)
        if entry is None:
            return b"", name  # the server says it does not exist, with the client's name
        sname, body = entry
        if sname is _RESET_DISCARD or sname is _RESET_DEALLOCATE:  # (see _tx_parse)
            c.unnamed = None  # the client's own unnamed statement is parsed again where it is used
            self._pq(PQ_HIDE)
            return codec.message(codec.PARSE, b"\0" + body), b""
        if sname in c.prepared:
            return b"", sname
        c.prepared.add(sname)
        self._pq(PQ_HIDE, lambda: c.prepared.discard(sname))
        return codec.message(codec.PARSE, sname + b"\0" + body), sname

    def _tx_named(self, t: int, msg: bytes) -> bytes:
        """A Bind, Describe or Close with the client's statement name mapped to the server's."""
        if t == _C:
            if msg[5:6] != b"S":
                self._pq(PQ_PASS)
                return msg
            name = msg[6:-1]
            tx = self._tx
            assert tx is not None
            if not name:
                self._pq(PQ_PASS)
                tx.unnamed = None
                return msg
            stmts = tx.stmts
            entry = stmts.pop(name, None)
            # a Close that never completes (an error earlier in its batch skipped it) closed nothing
            self._pq(PQ_PASS, None if entry is None else lambda: stmts.setdefault(name, entry))  # type: ignore[arg-type]
            return _CLOSE_NONE  # the shared statement stays for the next client
        if t == _D:
            if msg[5:6] != b"S":
                return msg
            first, sname = self._ensure(msg[6:-1])
            return first + (msg if sname == msg[6:-1] else codec.message(codec.DESCRIBE, b"S" + sname + b"\0"))
        try:  # Bind: portal \0 statement \0 ...
            p1 = msg.index(0, 5)
            p2 = msg.index(0, p1 + 1)
        except ValueError:
            return msg  # malformed: the server answers it
        name = msg[p1 + 1:p2]
        tx = self._tx
        assert tx is not None
        if name:  # the statement's server name, or its _RESET_* marker (see _tx_parse)
            entry = tx.stmts.get(name)
            kind = entry[0] if entry is not None else None
        else:
            kind = tx.unnamed_reset
        first, sname = self._ensure(name)
        if sname != name:
            msg = codec.message(codec.BIND, msg[5:p1 + 1] + sname + msg[p2:])
        if kind is not None and self.server is not None:
            status = self.scanner.status
            # it runs now (its Bind is sent), as _tx_pre has it: DEALLOCATE ALL outside an aborted
            # transaction, DISCARD ALL outside any (the server refuses it there)
            if (kind is _RESET_DISCARD and status == b"I") or (kind is _RESET_DEALLOCATE and status != b"E"):
                self._reset_statements(self.server, discard=kind is _RESET_DISCARD)
        return first + msg

    def _close_upstream(self) -> None:
        if self.pooled is not None:
            return  # the pool's: serve_upstream resets and releases it, or closes it
        with contextlib.suppress(ConnectionError, OSError, RuntimeError):
            self.uwriter.close()

    async def run(self) -> None:
        if self._tx is None:
            self.uconn.start_relay(self._on_upstream_data, self._on_upstream_lost)
        try:
            if self._take_over_client():
                await self._done
            else:
                await self.upstream()
        finally:
            self.client_gone = True
            if self._task is not None and not self._task.done():
                self._task.cancel()
            busy = self.scanner.ready < self.sent_syncs and not self.upstream_gone and not self.terminated
            if busy:
                # the client left while a statement runs: stop it instead of letting it finish
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(cancel_upstream(self.target, self.up.pid, self.up.secret), 2.0)
            self._close_upstream()
            if self._cproto is None:
                with contextlib.suppress(ConnectionError, OSError, RuntimeError):
                    await self.cwriter.drain()
            if self.pooled is not None:
                self._leave_pool(busy)

    def _leave_pool(self, cancelled: bool) -> None:
        """The client is gone: the server connection it holds goes back (reset) when it is
        between statements, else it is closed."""
        c, tx = self.server, self.pooled
        if c is None or tx is None:
            return
        self.server = None
        sc = self.scanner
        clean = (not cancelled and not self.upstream_gone and not self._open and not self._in_skip
                 and sc.ready >= self.sent_syncs and sc.at_boundary() and not sc.pq)
        c.conn.on_data = c.conn.on_lost = None
        c.status = sc.status  # what the relay saw last (ROLLBACK first when not idle)
        if sc.reported:
            tx.dirty = True  # (its settings are not this client's to keep: reset at the next checkout)
        if self._down_paused and c.conn.transport is not None:
            c.conn.transport.resume_reading()
        tx.left(c, clean=clean)


_TASKS: set[asyncio.Future[Any]] = set()


_PENDING_PAUSE = 64  # client chunks held while a session is busy before its reading pauses
_CANCEL_AGAIN_S = 0.05  # PooledCanceller: how long a statement may take to start


class _Waiter:
    """A client in a pool's queue (``Pool.waiters``) without a task, a Future or a timer of
    its own: the pool's hand-over (``done``/``set_result``, as on the Futures of
    ``Pool.acquire``) attaches the connection and runs the client's chunk at once; the
    pool's expiry timer (:func:`_expire_waiters`) ends a wait past its deadline with 53300."""

    __slots__ = ("relay", "data", "deadline", "_done")

    def __init__(self, relay: UpstreamRelay, data: bytes, timeout: float) -> None:
        self.relay = relay
        self.data = data
        self._done = False
        pool = relay._pool
        now = _monotonic()
        self.deadline = now + timeout
        pool.wait_since[id(self)] = now
        if pool.expiry is None or self.deadline < pool.expiry_at:  # (a reload may shorten the timeout)
            if pool.expiry is not None:
                pool.expiry.cancel()
            pool.expiry = asyncio.get_running_loop().call_later(timeout, _expire_waiters, pool)
            pool.expiry_at = self.deadline

    def done(self) -> bool:
        return self._done

    def set_result(self, c: ServerConn | None) -> None:
        self._done = True
        self.relay._pool.wait_since.pop(id(self), None)
        self.relay._handed(c, self.data)


def _expire_waiters(pool: Any) -> None:
    """A pool's expiry timer: every :class:`_Waiter` past its deadline gets 53300; the timer
    is set again for the earliest deadline left (none left: unset until the next waiter)."""
    pool.expiry = None
    now = _monotonic()
    later = None
    for w in list(pool.waiters):
        if type(w) is not _Waiter or w._done:
            continue
        if w.deadline <= now:
            w._done = True
            pool.wait_since.pop(id(w), None)
            w.relay._wait_expired(w)
        elif later is None or w.deadline < later:
            later = w.deadline
    if later is not None:
        pool.expiry = asyncio.get_running_loop().call_later(later - now, _expire_waiters, pool)
        pool.expiry_at = later


class _Watched:
    """A prepared statement the pipeline asked to hear about (``Forward.observe`` /
    ``on_bind`` / ``current`` at its Parse)."""

    __slots__ = ("observe", "on_bind", "current", "sql", "types", "original", "last", "variants", "want", "show")

    def __init__(self, d: Forward, sql: str, types: bytes, original: str, last: dict[str, Any] | None) -> None:
        self.observe = d.observe
        self.on_bind = d.on_bind
        self.current = d.current
        self.sql = sql  # what the client's Parse put upstream under its name
        self.types = types  # the parameter type section the client sent
        self.original = original  # the client's SQL
        self.last = last  # the Parse's record for SHOW sluice.last
        # other forms parsed upstream under our own names: SQL -> (name, SHOW sluice.last record)
        self.variants: dict[str, tuple[bytes, dict[str, Any]]] = {}
        self.want: Forward | None = d  # the pipeline's answer ``last`` describes
        self.show = False  # a prepared SHOW sluice.*: answered again at each Bind (never ``last``)


class _ClientProtocol(asyncio.Protocol):
    """Takes the client transport over from the server's StreamReaderProtocol (protocol mode)."""

    def __init__(self, relay: UpstreamRelay) -> None:
        self.relay = relay
        self.data_received = relay._on_client_data  # type: ignore[method-assign]  # one call less per read

    def data_received(self, data: bytes) -> None:
        self.relay._on_client_data(data)

    def eof_received(self) -> bool:
        self.relay._finish()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.relay.client_gone = True
        self.relay._finish()
        self.relay._on_client_writable()

    def pause_writing(self) -> None:
        self.relay._client_write_paused = True

    def resume_writing(self) -> None:
        self.relay._client_write_paused = False
        self.relay._on_client_writable()


class _Resume:
    """Await the rest of a coroutine that was started with ``send(None)`` and yielded ``first``."""

    __slots__ = ("coro", "first")

    def __init__(self, coro: Any, first: Any) -> None:
        self.coro, self.first = coro, first

    def __await__(self) -> Any:
        coro, pending = self.coro, self.first
        while True:
            try:
                value = yield pending
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # cancellation and friends go into the pipeline
                try:
                    pending = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
                continue
            try:
                pending = coro.send(value)
            except StopIteration as stop:
                return stop.value


def client_identity(target: UpstreamTarget, conn: Any) -> UpstreamTarget:
    """Who the client's session runs as upstream: its own user name (or its ``[[users]]``
    entry's ``upstream_role``), with that entry's password, so that PostgreSQL's own grants
    apply; the backend URL's role only with ``server.upstream_identity = "backend"``.  The
    backend URL's password is reused only for the backend URL's own role."""
    import dataclasses

    cfg = conn.config
    if cfg.server.upstream_identity == "backend" or not conn.user:
        return target
    entry = cfg.user(conn.user)
    role = (entry.upstream_role if entry is not None and entry.upstream_role else None) or conn.user
    password: str | None
    if entry is not None:
        password = entry.upstream_password if entry.upstream_password is not None else entry.password
    else:
        password = conn.password  # what the client itself gave (cleartext auth), else none
    if password is None and role == target.user:
        password = target.password
    return dataclasses.replace(target, user=role, password=password)


async def _refuse(conn: Any, e: SluiceError) -> None:
    if isinstance(e, UpstreamRefused):  # e.g. 3D000 for a database that does not exist
        conn.writer.write(codec.message(codec.ERROR_RESPONSE, e.payload))
    else:
        conn.writer.write(codec.error_response(e.sqlstate, e.message, severity="FATAL", detail=e.detail,
                                               hint=e.hint))
    with contextlib.suppress(ConnectionError, OSError):
        await conn.writer.drain()


async def _start_session(conn: Any) -> None:
    ctx = conn.ctx
    if conn.pipeline_source is not None:
        conn.pipeline = await conn.pipeline_source()
    if getattr(ctx, "dialect", None) != "postgres":
        ctx.dialect = "postgres"


async def serve_upstream(conn: Any) -> None:
    """Serve one authenticated client over an upstream PostgreSQL session: its own (see the
    module docs) or, with pooling configured, one from a pool (:mod:`sqlsluice.middleware.pool`)."""
    try:
        target = client_identity(UpstreamTarget.from_url(conn.backend_url), conn)
    except SluiceError as e:
        await _refuse(conn, e)
        return
    settings = pool_settings(conn.config, conn.database)
    pools = getattr(conn.server, "pools", None)
    if pools is None or not (settings.pooled or settings.max_client_conn):
        await _serve_own(conn, target)
        return
    try:
        pools.client_in(conn.database, settings.max_client_conn)
    except SluiceError as e:
        await _refuse(conn, e)
        return
    try:
        if settings.pooled:
            await _serve_pooled(conn, target, PoolClient(pools.pool(target, settings.size or 1, conn.database),
                                                             settings))
        else:
            await _serve_own(conn, target)
    finally:
        pools.client_out(conn.database)


async def _serve_pooled(conn: Any, target: UpstreamTarget, pc: PoolClient) -> None:
    pc.state = pc.startup = startup_settings(conn.params)
    tx = pc.settings.mode == "transaction"
    status = pc.pool.welcome.get(pc.state) if tx else None
    c: ServerConn | None = None
    if status is None:
        try:
            c = await pc.checkout(await pc.pool.acquire(pc.settings.query_wait_timeout))
        except SluiceError as e:
            await _refuse(conn, e)
            return
        except (ConnectionError, OSError, TimeoutError) as e:
            await _refuse(conn, SluiceError(f"server connection failed: {e}", sqlstate="08006"))
            return
        status = c.parameter_status()
        if tx:
            if len(pc.pool.welcome) < 100:
                pc.pool.welcome[pc.state] = status
            pc.pool.release(c)  # held again from the client's first statement
            c = None
    try:
        await _start_session(conn)
    except BaseException:
        if c is not None:
            pc.pool.release(c)
        raise
    if tx or c is None:
        relay = UpstreamRelay(conn, target, None, pc)
        pid, secret = conn.register_cancel(PooledCanceller(relay))
    else:
        relay = UpstreamRelay(conn, target, c.session, pc)
        relay.server = c
        # session mode: the client sees the server connection's own pid, as without a pool; its
        # cancels hold the connection back from the next client until they are handled
        pid, secret = conn.register_cancel(PooledCanceller(relay), pid=c.session.pid)
    conn.writer.write(status + codec.backend_key_data(pid, secret) + codec.ready_for_query(b"I"))
    await relay.run()


async def _serve_own(conn: Any, target: UpstreamTarget) -> None:
    try:
        up = await open_upstream(target, conn.params)
    except SluiceError as e:
        await _refuse(conn, e)
        return
    try:
        await _start_session(conn)
        # the client sees the upstream's own pid; the secret is ours
        pid, secret = conn.register_cancel(UpstreamCanceller(target, up.pid, up.secret), pid=up.pid)
        conn.writer.write(b"".join(up.parameter_status) + codec.backend_key_data(pid, secret)
                          + codec.ready_for_query(up.status))
        await UpstreamRelay(conn, target, up).run()
    finally:
        up.conn.close()
