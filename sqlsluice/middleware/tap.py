"""Watch one client connection's messages, both directions, without touching its handler.

The server hands a session handler (DuckDB or the PostgreSQL passthrough) the client's
streams; with a :class:`ConnTap` it hands proxies instead, which pass every call through
and count, on the way, the client's Query/Sync/FunctionCall messages and the
ReadyForQuery and ErrorResponse messages sent back.  That is enough to know

* whether a statement is in flight (:attr:`ConnTap.idle`): graceful shutdown waits for
  it and only then sends FATAL 57P01;
* each statement's latency (client message in -> its ReadyForQuery out) and the SQLSTATE
  of every error (``/metrics``), reported to a :class:`StatementSink`.

Both byte streams are walked by message headers only (bodies are skipped, also across
chunks), except ErrorResponse bodies, which are read for their SQLSTATE.  In protocol
mode the passthrough takes the client transport over with ``transport.set_protocol``; the
transport proxy puts a thin protocol in front of the one it installs.

>>> t = ConnTap(None, None)  # no sink: lifecycle only
>>> t.idle  # nothing answered yet (the session's first ReadyForQuery is still to come)
False
>>> from sqlsluice.middleware import codec
>>> t.wrote(codec.ready_for_query(b"I")); t.idle
True
>>> t.arrived(codec.message(codec.QUERY, b"SELECT 1\\x00")); t.idle
False
>>> t.wrote(codec.error_response("42P01", "no such table") + codec.ready_for_query(b"I")); t.idle
True

With a sink (``/metrics``) every message header is read, ErrorResponse bodies whole, also
when split across writes:

>>> class Sink:
...     def statement(self, seconds): print("statement")
...     def error(self, sqlstate): print("error", sqlstate)
>>> t = ConnTap(None, None, Sink())
>>> t.wrote(codec.ready_for_query(b"I"))
>>> t.arrived(codec.message(codec.QUERY, b"SELECT x\\x00"))
>>> out = codec.error_response("42P01", "no such table") + codec.ready_for_query(b"I")
>>> t.wrote(out[:7]); t.idle
False
>>> t.wrote(out[7:])
error 42P01
statement
>>> t.idle
True
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

_Q, _S, _F, _Z, _E = ord("Q"), ord("S"), ord("F"), ord("Z"), ord("E")
_RFQ = b"Z\x00\x00\x00\x05"  # a ReadyForQuery's header
_ASKS = frozenset((_Q, _S, _F))  # client messages answered by one ReadyForQuery each


class StatementSink(Protocol):
    def statement(self, seconds: float | None) -> None: ...

    def error(self, sqlstate: str) -> None: ...


_len = struct.Struct("!I").unpack_from


class _Walk:
    """Message-boundary walk over one direction's bytes (I/O-free)."""

    __slots__ = ("_skip", "_held", "_body", "_want", "_types")

    def __init__(self, types: bytes, want: int = -1) -> None:
        self._types = types  # the message types reported; the rest are only skipped
        self._skip = 0  # bytes of a message body still to come
        self._held = b""  # an incomplete header
        self._want = want  # the type whose body is wanted whole (ErrorResponse), else -1
        self._body: bytearray | None = None  # a wanted body still being collected

    def at_boundary(self) -> bool:
        return self._skip == 0 and not self._held and self._body is None

    def feed(self, data: bytes | bytearray | memoryview) -> list[tuple[int, bytes]]:
        """The (type, body) of every reported message completed in ``data``; bodies only for ``want``."""
        out: list[tuple[int, bytes]] = []
        n = len(data)
        if self._body is not None:
            take = min(self._skip, n)
            self._body += bytes(data[:take])
            self._skip -= take
            if self._skip:
                return out
            out.append((self._want, bytes(self._body)))
            self._body = None
            data = data[take:]
            n = len(data)
        elif self._skip >= n and not self._held:
            self._skip -= n
            return out
        buf = self._held + bytes(data) if self._held else data
        self._held = b""
        n = len(buf)
        pos = self._skip
        want = self._want
        types = self._types
        while pos + 5 <= n:
            t = buf[pos]
            ln = _len(buf, pos + 1)[0]
            if ln < 4:  # not the protocol: stop looking
                self._skip = 1 << 62
                return out
            end = pos + 1 + ln
            if t in types:
                if t == want:
                    if end > n:
                        self._body = bytearray(buf[pos + 5:n])
                        self._skip = end - n
                        return out
                    out.append((t, bytes(buf[pos + 5:end])))
                else:
                    out.append((t, b""))
            pos = end
        if pos > n:
            self._skip = pos - n
        else:
            self._skip = 0
            if pos < n:
                self._held = bytes(buf[pos:])
        return out


def sqlstate_of(body: bytes) -> str:
    """The ``C`` field of an ErrorResponse body.

    >>> from sqlsluice.middleware import codec
    >>> sqlstate_of(codec.error_response("57P01", "bye", severity="FATAL")[5:])
    '57P01'
    """
    for field in body.split(b"\x00"):
        if field[:1] == b"C":
            return field[1:].decode("ascii", "replace")
    return ""


class ConnTap:
    """The message counters of one client connection and the stream proxies that feed them."""

    def __init__(self, reader: Any, writer: Any, sink: StatementSink | None = None) -> None:
        self.sink = sink
        self.reader = _Reader(reader, self) if reader is not None else None
        self.writer = _Writer(writer, self) if writer is not None else None
        self._in = _Walk(b"QSF")
        self._out = _Walk(b"ZE", _E)
        self._asked: deque[float] = deque()  # arrival time of each Query/Sync/FunctionCall not yet answered
        self._ready = 0  # ReadyForQuery messages sent
        self._since: float | None = None  # client bytes arrived and no message of them complete yet
        # without a sink the bytes to the client are not walked: ReadyForQuery messages are
        # counted with bytes.count (a DataRow holding those 5 bytes would count too: an early
        # 57P01 at shutdown is the worst it can do) and the last 6 bytes kept
        self._tail = b""
        self.aligned = False  # the session writes whole messages only (the DuckDB handler)
        # the server ended the session (shutdown): later client bytes are not handled, and
        # nothing more is written
        self.closed = False
        # called right after a write that leaves the session idle (graceful shutdown)
        self.on_idle: Callable[[], None] | None = None

    @property
    def idle(self) -> bool:
        """True between statements: the session has said ReadyForQuery, every client
        message that asks for one has had it, and no message is half sent either way."""
        return (self._ready > 0 and not self._asked and self._since is None and self.at_boundary()
                and self._in.at_boundary())

    def at_boundary(self) -> bool:
        """True when everything written to the client so far ends on a message boundary
        (without a sink: when it ends with a ReadyForQuery, or the session writes whole
        messages only, ``aligned``)."""
        if self.sink is not None:
            return self._out.at_boundary()
        tail = self._tail[-6:]  # (the hot path may leave a whole chunk here)
        return self.aligned or (tail[:5] == _RFQ and tail[5:] in (b"I", b"T", b"E"))

    def arrived(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        # (arrival times are read only by a sink; without one they are counted, not read)
        now = time.perf_counter() if self.sink is not None else 0.0
        w = self._in
        if not w._skip and not w._held and w._body is None:
            # the common case: whole messages from a boundary (a Query; Bind ... Sync): counted
            # without building the walk's list; anything else takes the walk
            n = len(data)
            pos = asks = 0
            while pos + 5 <= n:
                t = data[pos]
                ln = _len(data, pos + 1)[0]
                if ln < 4:
                    break
                if t in _ASKS:
                    asks += 1
                pos += 1 + ln
            if pos == n:
                if asks:
                    t0 = now if self._since is None else self._since
                    if asks == 1:
                        self._asked.append(t0)
                    else:
                        self._asked.extend([t0] * asks)
                self._since = None
                return
        for t, _ in w.feed(data):
            if t == _Q or t == _S or t == _F:
                self._asked.append(now if self._since is None else self._since)
        self._since = None if self._in.at_boundary() else (self._since or now)

    def wrote(self, data: bytes | bytearray | memoryview) -> None:
        sink = self.sink
        if sink is None:  # lifecycle only: ReadyForQuery found at C speed, no walk
            self._wrote_light(data)
            return
        for t, body in self._out.feed(data):
            if t == _Z:
                self._ready += 1
                if self._ready == 1:
                    continue  # the session's first one (after startup) answers nothing
                t0 = self._asked.popleft() if self._asked else None
                if sink is not None:
                    sink.statement(None if t0 is None else time.perf_counter() - t0)
            elif t == _E and sink is not None:
                sink.error(sqlstate_of(body))


    def _count_ready(self, k: int) -> None:
        """``k`` ReadyForQuery messages were written (without a sink)."""
        for _ in range(k):
            self._ready += 1
            if self._ready > 1 and self._asked:
                self._asked.popleft()

    def _wrote_light(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        k = bytes(data).count(_RFQ) if isinstance(data, memoryview) else data.count(_RFQ)
        if k:
            self._count_ready(k)
        self._tail = bytes(data[-6:]) if len(data) >= 6 else (self._tail[-6:] + bytes(data))[-6:]


class _Reader:
    """A StreamReader that tells its tap what was read."""

    def __init__(self, reader: Any, tap: ConnTap) -> None:
        self._r = reader
        self._tap = tap

    async def read(self, n: int = -1) -> bytes:
        data: bytes = await self._r.read(n)
        if self._tap.closed:
            return b""
        self._tap.arrived(data)
        return data

    async def readexactly(self, n: int) -> bytes:
        data: bytes = await self._r.readexactly(n)
        if self._tap.closed:
            raise ConnectionResetError("the server ended the session")
        self._tap.arrived(data)
        return data

    @property
    def _buffer(self) -> Any:
        # the passthrough takes these bytes over when it takes the transport over
        buf = self._r._buffer
        if buf:
            self._tap.arrived(bytes(buf))
        return buf

    def __getattr__(self, name: str) -> Any:
        return getattr(self._r, name)


class _Writer:
    """A StreamWriter that tells its tap what was written."""

    def __init__(self, writer: Any, tap: ConnTap) -> None:
        self._w = writer
        self._tap = tap
        # asyncio's StreamWriter.write is its transport's write (the TLS upgrade, if any, is
        # done before a tap is made): one Python call less per write on the hot path
        self._write = writer.transport.write if type(writer) is asyncio.StreamWriter else writer.write
        self.transport = _Transport(writer.transport, tap)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        tap = self._tap
        if tap.closed:
            return
        if tap.sink is not None:
            tap.wrote(data)
        elif type(data) is bytes and len(data) >= 6:
            # ConnTap._wrote_light inline (the passthrough's hot path: one call less per write;
            # UpstreamRelay._on_upstream_data has the same lines for a transaction's reply)
            k = data.count(_RFQ)
            if k == 1 and tap._ready:
                tap._ready += 1
                if tap._asked:
                    tap._asked.popleft()
            elif k:
                tap._count_ready(k)
            tap._tail = data  # (at_boundary reads its last 6 bytes)
        else:
            tap._wrote_light(data)
        self._write(data)
        if tap.on_idle is not None and tap.idle:
            tap.on_idle()

    def writelines(self, data: Any) -> None:
        for d in data:
            self.write(d)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._w, name)


class _Transport:
    """The client transport; a protocol set on it (passthrough protocol mode) is tapped."""

    def __init__(self, transport: Any, tap: ConnTap) -> None:
        self._t = transport
        self._tap = tap

    def set_protocol(self, protocol: Any) -> None:
        self._t.set_protocol(_TappedProtocol(protocol, self._tap))

    def write(self, data: bytes | bytearray | memoryview) -> None:
        tap = self._tap
        if tap.closed:
            return
        tap.wrote(data)
        self._t.write(data)
        if tap.on_idle is not None and tap.idle:
            tap.on_idle()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._t, name)


class _TappedProtocol(asyncio.Protocol):
    def __init__(self, protocol: Any, tap: ConnTap) -> None:
        self._p = protocol
        self._tap = tap
        self._received = protocol.data_received  # (bound once: the hot path)

    def data_received(self, data: bytes) -> None:
        tap = self._tap
        if tap.closed:
            return
        w = tap._in
        n = len(data)
        if (n >= 5 and not w._skip and not w._held and w._body is None and n == 1 + _len(data, 1)[0]
                and data[0] in w._types):
            # ConnTap.arrived inline for the common case: one whole Query (or Sync) in the chunk
            # (the arrival time only for a sink: without one the times are never read)
            since = tap._since
            tap._asked.append(since if since is not None else time.perf_counter() if tap.sink is not None else 0.0)
            tap._since = None
        else:
            tap.arrived(data)
        self._received(data)

    def eof_received(self) -> bool | None:
        return self._p.eof_received()  # type: ignore[no-any-return]

    def connection_made(self, transport: Any) -> None:
        self._p.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._p.connection_lost(exc)

    def pause_writing(self) -> None:
        self._p.pause_writing()

    def resume_writing(self) -> None:
        self._p.resume_writing()
