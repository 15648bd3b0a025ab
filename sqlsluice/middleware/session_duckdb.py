"""The session handler over embedded DuckDB: simple and extended protocol, COPY errors, cancel.

One :class:`DuckDBHandler` per client.  Statements run on the session's own worker thread
(DuckDB releases the GIL while it works), so the event loop keeps serving other clients;
rows are fetched, encoded and written in batches with back-pressure, so a huge result
never sits in memory and a vanished client only ends its own session.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import os
import re
import struct
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlsluice.databases.base import ColumnInfo, Result
from sqlsluice.databases.duckdb_backend import DuckDBSession
from sqlsluice.errors import BackendError, FeatureNotSupported, ProtocolViolation, QueryCanceled, SluiceError
from sqlsluice.middleware import codec, compat, pgsemantics, types
from sqlsluice.middleware.connection import ClientConnection, error_message
from sqlsluice.middleware.copy import (
    BINARY_TRAILER,
    BinaryCopyDecoder,
    ColumnBatch,
    CopySpec,
    CsvDialect,
    TextCopyWriter,
    binary_header,
    binary_row,
    bytea_from_text,
    csv_header,
    load_error,
    parse_copy,
    row_encoder,
)
from sqlsluice.middleware.framing import MessageBuffer
from sqlsluice.middleware.pipeline import Forward, Reply
from sqlsluice.middleware.protocol import Phase, ProtocolState
from sqlsluice.middleware.sqltext import max_param, split_statements

log = logging.getLogger("sqlsluice.session")
BATCH_ROWS = 2000
BINARY_CHUNK = 8 << 20  # binary COPY FROM data decoded and inserted per this many bytes
FLUSH_BYTES = 1 << 16
CLIENT_CHECK_S = 0.5  # while a statement runs, how often to look whether its client has gone
T = TypeVar("T")


def field_descriptions(columns: Sequence[ColumnInfo], formats: Sequence[int] = (),
                       oids: Sequence[int] | None = None) -> list[codec.FieldDescription]:
    oids = [types.oid_for(c.type) for c in columns] if oids is None else oids
    fmts = types.result_formats(len(columns), formats)
    return [codec.FieldDescription(c.name, o, types.type_size(o), types.type_modifier(c.type), f)
            for c, o, f in zip(columns, oids, fmts, strict=True)]


def reply_messages(reply: Reply, formats: Sequence[int] = (), *, describe: bool = True) -> bytes:
    """RowDescription (optional), DataRows and CommandComplete for a local :class:`Reply`."""
    out = []
    if reply.columns:
        oids = [types.oid_for(c.type) for c in reply.columns]
        if describe:
            out.append(codec.row_description(field_descriptions(reply.columns, formats, oids)))
        out.append(types.encode_rows(reply.rows, types.encoders_for(oids, formats)))
    tag = reply.status
    if tag == "SELECT" or (reply.columns and tag == "SHOW"):
        tag = "SELECT " + str(len(reply.rows)) if tag == "SELECT" else tag
    out.append(codec.command_complete(tag))
    return b"".join(out)


_IDENT = r'(\"(?:[^\"]|\"\")+\"|[A-Za-z_][\w$]*)'
_DECLARE = re.compile(r"^\s*DECLARE\s+" + _IDENT + r"\s+(BINARY\s+)?(?:(?:ASENSITIVE|INSENSITIVE)\s+)?"
                      r"(?:(NO\s+)?SCROLL\s+)?CURSOR\s+(?:(WITH|WITHOUT)\s+HOLD\s+)?FOR\s+(.*?)\s*;?\s*$",
                      re.I | re.S)
_FETCH = re.compile(r"^\s*(FETCH|MOVE)\s+(?:(FORWARD|NEXT|ALL|\d+|FORWARD\s+ALL|FORWARD\s+\d+)\s+)?"
                    r"(?:(?:FROM|IN)\s+)?" + _IDENT + r"\s*;?\s*$", re.I)
_CLOSE = re.compile(r"^\s*CLOSE\s+(ALL|" + _IDENT + r")\s*;?\s*$", re.I)


def _ident(name: str) -> str:
    return name[1:-1].replace('""', '"') if name.startswith('"') else name.lower()


_TX_CONTROL = re.compile(r"^\s*(BEGIN|START|COMMIT|END|ROLLBACK|ABORT|SAVEPOINT|RELEASE|PREPARE\s+TRANSACTION)\b",
                         re.I)


@dataclass(frozen=True)
class CursorCommand:
    kind: str  # "declare" | "fetch" | "move" | "close"
    name: str  # "" with kind "close" = CLOSE ALL
    query: str = ""
    count: int = 0  # rows to fetch/move; 0 = all
    binary: bool = False
    hold: bool = False


def parse_cursor_command(sql: str) -> CursorCommand | None:
    """DECLARE/FETCH/MOVE/CLOSE of SQL-level cursors (psycopg's named cursors use them)."""
    head = sql.lstrip()[:7].upper()
    if head.startswith("DECLARE"):
        m = _DECLARE.match(sql)
        if m:
            return CursorCommand("declare", _ident(m.group(1)), query=m.group(5), binary=bool(m.group(2)),
                                 hold=(m.group(4) or "").upper() == "WITH")
    elif head.startswith(("FETCH", "MOVE")):
        m = _FETCH.match(sql)
        if m:
            how = " ".join((m.group(2) or "NEXT").upper().split())
            count = 1 if how in ("NEXT", "FORWARD") else 0 if how.endswith("ALL") else int(how.split()[-1])
            if count == 0 and not how.endswith("ALL"):
                return CursorCommand(m.group(1).lower(), _ident(m.group(3)), count=-1)  # FETCH 0: no rows
            return CursorCommand(m.group(1).lower(), _ident(m.group(3)), count=count)
    elif head.startswith("CLOSE"):
        m = _CLOSE.match(sql)
        if m:
            return CursorCommand("close", "" if m.group(1).upper() == "ALL" else _ident(m.group(1)))
    return None


@dataclass
class Statement:
    """A prepared statement (Parse): the SQL to run (after the pipeline) or a local reply."""

    sql: str
    param_oids: list[int]
    reply: Reply | None = None
    columns: list[ColumnInfo] | None = None  # known after Describe
    oids: list[int] | None = None
    described: bool = False
    client_oids: list[int] | None = None  # column OIDs announced by a Describe of the statement
    copy: CopySpec | None = None  # COPY ... FROM STDIN / TO STDOUT
    cursor: CursorCommand | None = None  # DECLARE / FETCH / MOVE / CLOSE of a SQL cursor
    params_inferred: bool = False
    last: dict[str, Any] | None = None  # the Parse's record for SHOW sluice.last (each Execute restores it)


@dataclass
class Portal:
    stmt: Statement
    params: list[Any]
    formats: tuple[int, ...]
    result: Result | None = None
    encoders: list[Callable[[Any], bytes]] | None = None
    pending: list[tuple[Any, ...]] = field(default_factory=list)
    exhausted: bool = False
    sent_description: bool = False
    reply_pos: int = 0
    status: str = ""
    source_done: bool = False  # the backend result has nothing beyond ``pending``
    hold: bool = False  # a SQL cursor WITH HOLD (survives the end of its transaction)


class DuckDBHandler:
    """Serves one authenticated client over a DuckDB session."""

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self.reader = conn.reader
        self.writer = conn.writer
        self.pipeline = conn.pipeline
        self.ctx = conn.ctx
        self.state = ProtocolState()
        self.state.phase = Phase.READY
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="sluice-duckdb")
        self.session: DuckDBSession = conn.backend.session()
        self.compat = compat.Compat(self.session, conn.params)
        self.statements: dict[str, Statement] = {}
        self.portals: dict[str, Portal] = {}
        self.out: list[bytes] = []
        self.out_size = 0
        self.running = False
        self.loop = asyncio.get_running_loop()
        self.buf = MessageBuffer()
        self.cursors: dict[str, Portal] = {}  # SQL-level cursors (DECLARE ... CURSOR)
        self.timed_out = False
        self.last_sent = 0

    # --- plumbing ------------------------------------------------------------------
    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` on the session's worker thread, under the statement timeout."""
        self.running = True
        timeout = self.compat.statement_timeout(self.conn.config.server.statement_timeout_s)
        timer = self.loop.call_later(timeout, self._timeout) if timeout else None
        self._watch = self.loop.call_later(CLIENT_CHECK_S, self._watch_client)
        try:
            return await self.loop.run_in_executor(self._pool, fn, *args)
        except QueryCanceled:
            if self.timed_out:
                raise QueryCanceled("canceling statement due to statement timeout") from None
            raise
        finally:
            self.running = False
            self.timed_out = False
            if timer is not None:
                timer.cancel()
            self._watch.cancel()

    def _watch_client(self) -> None:
        """A statement whose client has gone (EOF or a closed socket) is interrupted, as
        PostgreSQL's ``client_connection_check_interval`` does, instead of running on."""
        if not self.running:
            return
        if getattr(self.reader, "_eof", False) or self.writer.transport.is_closing():
            self.session.cancel()
            return
        self._watch = self.loop.call_later(CLIENT_CHECK_S, self._watch_client)

    def _timeout(self) -> None:
        if self.running:
            self.timed_out = True
            self.session.cancel()

    def cancel(self) -> None:
        """Called for a CancelRequest carrying this session's key."""
        if self.running:
            self.session.cancel()

    def send(self, data: bytes) -> None:
        self.out.append(data)
        self.out_size += len(data)

    def send_notices(self) -> None:
        for severity, sqlstate, message in self.compat.notices:
            self.send(codec.notice_response(message, severity=severity, sqlstate=sqlstate))
        self.compat.notices.clear()

    async def flush(self) -> None:
        if self.out:
            self.writer.write(b"".join(self.out) if len(self.out) > 1 else self.out[0])
            self.out.clear()
            self.out_size = 0
        await self.writer.drain()

    async def maybe_flush(self) -> None:
        if self.out_size >= FLUSH_BYTES:
            await self.flush()

    def ready(self) -> None:
        if self.cursors and not self.session.in_transaction:
            for name in [n for n, c in self.cursors.items() if not c.hold]:
                self._drop_cursor(name)  # WITHOUT HOLD cursors end with their transaction
        self.state.set_transaction(self.session.in_transaction, self.session.transaction_failed)
        self.send(codec.ready_for_query(self.state.tx_status))

    def error(self, e: SluiceError, *, extended: bool) -> None:
        e = pgsemantics.pg_error(e)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("error %s: %s", e.sqlstate, e.message.splitlines()[0] if e.message else "")
        self.send(error_message(e))
        self.state.error(extended=extended)

    # --- main loop ----------------------------------------------------------------
    async def run(self) -> None:
        from sqlsluice.middleware.server import startup_parameters

        pid, secret = self.conn.register_cancel(self)
        await self.call(self.compat.setup)
        for name, value in startup_parameters(self.conn.params):
            self.send(codec.parameter_status(name, value))
        self.send(codec.backend_key_data(pid, secret))
        self.send(codec.ready_for_query(codec.IDLE))
        await self.flush()
        buf = self.buf
        read = self.reader.read
        try:
            while True:
                data = await read(1 << 16)
                if not data:
                    return
                buf.feed(data)
                while True:
                    msg = buf.next()
                    if msg is None:
                        break
                    code, payload = msg
                    if code == codec.TERMINATE:
                        await self.flush()
                        return
                    action = self.state.admit(code)
                    if action == "handle":
                        await self.dispatch(code, payload)
                if not self.state.in_extended or self.out_size >= FLUSH_BYTES:
                    await self.flush()
        finally:
            await self.close()

    async def pull(self) -> tuple[bytes, bytes]:
        """The next client message, read inline (COPY data)."""
        while True:
            m = self.buf.next()
            if m is not None:
                return m
            data = await self.reader.read(1 << 16)
            if not data:
                raise ConnectionResetError("client closed the connection during COPY")
            self.buf.feed(data)

    async def close(self) -> None:
        for p in (*self.portals.values(), *self.cursors.values()):
            if p.result is not None:
                with contextlib.suppress(Exception):
                    p.result.close()
        self.portals.clear()
        with contextlib.suppress(Exception):
            if self.running:
                self.session.cancel()
            await self.loop.run_in_executor(self._pool, self.session.close)
        self._pool.shutdown(wait=False)

    async def dispatch(self, code: bytes, payload: bytes) -> None:
        extended = code != codec.QUERY and code != codec.SYNC
        try:
            if code == codec.QUERY:
                await self.simple_query(codec.parse_query(payload).sql)
            elif code == codec.PARSE:
                await self.on_parse(codec.parse_parse(payload))
            elif code == codec.BIND:
                await self.on_bind(codec.parse_bind(payload))
            elif code == codec.DESCRIBE:
                await self.on_describe(codec.parse_describe(payload))
            elif code == codec.EXECUTE:
                await self.on_execute(codec.parse_execute(payload))
            elif code == codec.CLOSE:
                self.on_close(codec.parse_close(payload))
            elif code == codec.SYNC:
                self.on_sync()
            elif code == codec.FLUSH:
                await self.flush()
            elif code == codec.FUNCTION_CALL:
                raise FeatureNotSupported("the fastpath function call interface is not supported")
        except SluiceError as e:
            self.error(e, extended=extended)
            if not extended:
                self.ready()
            await self.flush()  # errors go out at once, as PostgreSQL does

    # --- simple query -----------------------------------------------------------------
    async def simple_query(self, sql: str) -> None:
        stmts = split_statements(sql)
        if not stmts:
            self.send(codec.empty_query_response())
            self.ready()
            return
        # PostgreSQL runs the statements of one Query message in one implicit transaction:
        # a later failure undoes the earlier ones.  Do the same when the string holds several
        # statements, no transaction control of its own, and no transaction is open.
        implicit = (len(stmts) > 1 and not self.session.in_transaction
                    and not any(_TX_CONTROL.match(st) for st in stmts))
        if implicit:
            await self.call(self._start, "BEGIN TRANSACTION", None, 0)
        failed = False
        for stmt in stmts:
            try:
                await self.run_simple(stmt)
            except SluiceError as e:
                self.error(e, extended=False)
                failed = True
                break
        if implicit and self.session.in_transaction:
            try:
                await self.call(self._start, "ROLLBACK" if failed else "COMMIT", None, 0)
            except SluiceError as e:  # a failing COMMIT (constraint at commit time) is the Query's error
                if not failed:
                    self.error(e, extended=False)
                with contextlib.suppress(SluiceError):
                    if self.session.in_transaction:
                        await self.call(self._start, "ROLLBACK", None, 0)
        self.ready()

    async def run_simple(self, sql: str) -> None:
        decision = await self.pipeline.handle(self.ctx, sql, extended=False)
        if isinstance(decision, Reply):
            self.send(reply_messages(decision))
            return
        local = self.compat.intercept(decision.sql)
        if isinstance(local, Reply):
            self.send(reply_messages(local))
            return
        if local != sql:
            self.compat.written_as(local, sql)
        spec = parse_copy(local) if local[:8].lstrip()[:4].upper() == "COPY" else None
        if spec is not None:
            self.send(codec.command_complete(await self.run_copy(spec)))
            return
        cmd = parse_cursor_command(local) if local.lstrip()[:1] in "DdFfMmCc" else None
        if cmd is not None:
            await self.run_cursor(cmd, [], (), describe=True)
            return
        result, first, done = await self.call(self._start, local, None, BATCH_ROWS)
        if self.compat.notices:
            self.send_notices()
        if result.columns:
            oids = self.compat.column_oids(local, result.columns)
            self.send(codec.row_description(field_descriptions(result.columns, (), oids)))
            encoders = types.encoders_for(oids, ())
            await self.stream(result, encoders, first, done, 0)
        self.send(codec.command_complete(result.status))

    # --- SQL-level cursors -------------------------------------------------------------
    def _drop_cursor(self, name: str) -> None:
        c = self.cursors.pop(name, None)
        if c is not None and c.result is not None:
            with contextlib.suppress(Exception):
                c.result.close()

    def _cursor(self, name: str) -> Portal:
        c = self.cursors.get(name)
        if c is None:
            raise SluiceError(f'cursor "{name}" does not exist', sqlstate="34000")
        return c

    def cursor_columns(self, cmd: CursorCommand) -> list[ColumnInfo]:
        if cmd.kind != "fetch" or cmd.name not in self.cursors:
            return []
        r = self.cursors[cmd.name].result
        return list(r.columns) if r is not None else []

    async def run_cursor(self, cmd: CursorCommand, params: list[Any], formats: Sequence[int], *,
                         describe: bool) -> None:
        """DECLARE / FETCH / MOVE / CLOSE; ``describe`` sends a RowDescription (simple protocol)."""
        if cmd.kind == "declare":
            if not cmd.hold and not self.session.in_transaction:
                raise SluiceError("DECLARE CURSOR can only be used in transaction blocks", sqlstate="25P01")
            if cmd.name in self.cursors:
                raise SluiceError(f'cursor "{cmd.name}" already exists', sqlstate="42P03")
            query = self.compat.intercept(cmd.query)
            if isinstance(query, Reply):
                raise FeatureNotSupported("DECLARE CURSOR over a locally answered statement is not supported")
            cur = Portal(Statement(query, [0] * len(params)), params, (1,) if cmd.binary else (), hold=cmd.hold)
            await self.open_portal(cur)
            self.cursors[cmd.name] = cur
            self.send(codec.command_complete("DECLARE CURSOR"))
            return
        if cmd.kind == "close":
            if cmd.name:
                self._cursor(cmd.name)  # must exist
            for name in [cmd.name] if cmd.name else list(self.cursors):
                self._drop_cursor(name)
            self.send(codec.command_complete("CLOSE CURSOR"))
            return
        cur = self._cursor(cmd.name)
        result = cur.result
        assert result is not None
        if cmd.kind == "move":
            want = cmd.count if cmd.count > 0 else (0 if cmd.count < 0 else 1 << 62)
            moved = min(want, len(cur.pending))
            cur.pending = cur.pending[moved:]
            while moved < want and not cur.source_done:
                got = await self.call(result.fetchmany, min(BATCH_ROWS, want - moved))
                cur.source_done = len(got) < min(BATCH_ROWS, want - moved)
                moved += min(len(got), want - moved)
            self.send(codec.command_complete(f"MOVE {moved}"))
            return
        fmts = cur.formats if describe else formats
        oids = self.compat.column_oids(cur.stmt.sql, result.columns)
        if describe and result.columns:
            self.send(codec.row_description(field_descriptions(result.columns, fmts, oids)))
        self.last_sent = 0
        if cmd.count >= 0 and result.columns:
            first, cur.pending = cur.pending, []
            await self.stream(result, types.encoders_for(oids, fmts), first, cur.source_done, cmd.count, cur)
        self.send(codec.command_complete(f"FETCH {self.last_sent}"))

    async def run_copy(self, spec: CopySpec) -> str:
        """COPY to or from the client; returns the command tag."""
        if spec.direction == "out":
            return await self._copy_out(spec)
        return await self._copy_in(spec)

    async def _copy_out(self, spec: CopySpec) -> str:
        result, rows, done = await self.call(self._start, spec.select_sql(), None, BATCH_ROWS)
        oids = [types.oid_for(c.type) for c in result.columns]
        binary = spec.format == "binary"
        encode: Callable[[Sequence[Any]], bytes]
        if binary:
            encoders = [types.encode_binary(o) for o in oids]

            def encode_binary_row(row: Sequence[Any]) -> bytes:
                return binary_row(row, encoders)
            encode = encode_binary_row
        else:
            encode = row_encoder(spec, [types.encode_text(o) for o in oids])
        self.send(codec.copy_out_response(int(binary), [int(binary)] * len(oids)))
        prefix = binary_header() if binary else b""  # PostgreSQL sends it with the first row
        if spec.header and spec.format == "csv":
            self.send(codec.copy_data(csv_header(spec, [c.name for c in result.columns])))
        count = 0
        while True:
            try:
                for row in rows:
                    if prefix:
                        self.send(codec.copy_data(prefix + encode(row)))
                        prefix = b""
                    else:
                        self.send(codec.copy_data(encode(row)))
            except (ValueError, TypeError, UnicodeDecodeError, OverflowError, struct.error) as e:
                raise BackendError(f"cannot encode COPY row: {e}", sqlstate="22P02") from e
            count += len(rows)
            await self.maybe_flush()
            if done:
                break
            rows = await self.call(result.fetchmany, BATCH_ROWS)
            done = len(rows) < BATCH_ROWS
        if binary:
            self.send(codec.copy_data(prefix + BINARY_TRAILER))
        self.send(codec.copy_done())
        return f"COPY {count}"

    async def _copy_in(self, spec: CopySpec) -> str:
        if spec.is_query:
            raise SluiceError("COPY FROM requires a table, not a query", sqlstate="42601")
        target = await self.call(self._target_columns, spec)
        ncols = len(target)
        if spec.format == "binary":
            return await self._copy_in_binary(spec, target)
        self.send(codec.copy_in_response(0, [0] * ncols))
        await self.flush()
        self.state.copy_in()
        fd, path = tempfile.mkstemp(prefix="sluice-copy-", suffix=".csv")
        failed: str | None = None
        try:
            with os.fdopen(fd, "wb", buffering=1 << 20) as out:
                # text format: blocks without escapes go to the file as they came (bulk load)
                text = TextCopyWriter(out, spec) if spec.format == "text" else None
                while True:
                    code, payload = await self.pull()
                    if code == codec.COPY_DATA:
                        if text is not None:
                            text.feed(payload)
                        else:
                            out.write(payload)
                    elif code == codec.COPY_DONE:
                        if text is not None:
                            text.finish()
                        break
                    elif code == codec.COPY_FAIL:
                        failed = codec.parse_copy_fail(payload)
                        break
                    elif code in (codec.FLUSH, codec.SYNC):
                        continue  # ignored during COPY IN, as PostgreSQL does
                    elif code == codec.TERMINATE:
                        raise ConnectionResetError("client terminated during COPY")
                    else:
                        raise ProtocolViolation(f"unexpected message type {code!r} during COPY from stdin")
            self.state.copy_done()
            if failed is not None:
                raise BackendError(f"COPY from stdin failed: {failed}", sqlstate="57014")
            n = await self.call(self._copy_from_file, spec, path,
                                text.dialect() if text is not None else CsvDialect.of(spec), target)
        finally:
            if self.state.phase.value == "copy_in":
                self.state.copy_done()
            with contextlib.suppress(OSError):
                os.unlink(path)
        return f"COPY {n}"

    async def _copy_in_binary(self, spec: CopySpec, target: list[ColumnInfo]) -> str:
        """Binary COPY FROM: chunks of about BINARY_CHUNK bytes decoded column by column
        (:class:`BinaryCopyDecoder`) on a thread of their own while the session's worker
        inserts the batch before in bulk, all in one transaction (the client's, or one opened
        here), so that an error anywhere leaves the table as it was."""
        decoder = BinaryCopyDecoder([types.oid_for(c.type) for c in target], spec.source, [c.name for c in target])
        self.send(codec.copy_in_response(1, [1] * len(target)))
        await self.flush()
        self.state.copy_in()
        own_tx = not self.session.in_transaction
        began = done = False
        fd, csv_path = tempfile.mkstemp(prefix="sluice-copy-", suffix=".csv")  # a batch's text columns
        os.close(fd)
        decoding = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="sluice-copy-decode")
        pending: asyncio.Future[int] | None = None
        chunks: list[bytes] = []
        size = n = 0
        try:
            if own_tx:
                await self.call(self.session.execute, "BEGIN")
                began = True
            while True:
                code, payload = await self.pull()
                final = code == codec.COPY_DONE
                if code == codec.COPY_DATA:
                    chunks.append(payload)
                    size += len(payload)
                    if size < BINARY_CHUNK:
                        continue
                elif code == codec.COPY_FAIL:
                    raise BackendError(f"COPY from stdin failed: {codec.parse_copy_fail(payload)}", sqlstate="57014")
                elif code in (codec.FLUSH, codec.SYNC):
                    continue  # ignored during COPY IN, as PostgreSQL does
                elif code == codec.TERMINATE:
                    raise ConnectionResetError("client terminated during COPY")
                elif not final:
                    raise ProtocolViolation(f"unexpected message type {code!r} during COPY from stdin")
                if final:
                    self.state.copy_done()
                batch = await self.loop.run_in_executor(decoding, functools.partial(decoder.feed, chunks, final=final))
                chunks, size = [], 0
                if pending is not None:
                    n += await pending
                    pending = None
                if batch is not None:
                    pending = asyncio.ensure_future(self.call(self._insert_batch, spec, batch, csv_path))
                if final:
                    break
            if pending is not None:
                n += await pending
                pending = None
            if began:
                await self.call(self.session.execute, "COMMIT")
            done = True
        finally:
            decoding.shutdown(wait=False)
            if self.state.phase.value == "copy_in":
                self.state.copy_done()
            if pending is not None:
                with contextlib.suppress(Exception):
                    await pending
            if began and not done:
                with contextlib.suppress(Exception):
                    await self.call(self.session.execute, "ROLLBACK")
            elif not done:
                self.session._failed = True  # the client's transaction is aborted, as PostgreSQL's is
            with contextlib.suppress(OSError):
                os.unlink(csv_path)
        return f"COPY {n}"

    def _insert_batch(self, spec: CopySpec, batch: ColumnBatch, csv_path: str) -> int:
        """Insert one decoded batch of binary COPY rows (worker thread)."""
        if batch.text_columns:
            with open(csv_path, "wb") as f:
                f.write(batch.text_csv)
        con = self.session._con
        view = "__sluice_copy_batch"
        con.register(view, batch.columns)
        try:
            cols = f" ({', '.join(spec.columns)})" if spec.columns else ""
            self.session.execute(f"INSERT INTO {spec.source}{cols} {batch.select_sql(view, csv_path)}")
        except SluiceError as e:
            if "out of range" in e.message and e.sqlstate == "22P02":
                raise BackendError("numeric field overflow", sqlstate="22003",
                                   detail=e.message.split("\n")[0]) from None
            raise
        finally:
            con.unregister(view)
        return batch.rows

    def _target_columns(self, spec: CopySpec) -> list[ColumnInfo]:
        cols = ", ".join(spec.columns) if spec.columns else "*"
        return list(self.compat.execute(f"SELECT {cols} FROM {spec.source} LIMIT 0").columns)

    def _copy_from_file(self, spec: CopySpec, path: str, dialect: CsvDialect, target: list[ColumnInfo]) -> int:
        """DuckDB's bulk ``COPY <table> FROM '<file>'`` of the file written for a text or CSV
        COPY (``dialect`` says how to read it); with a bytea column, an INSERT from
        ``read_csv`` that reads PostgreSQL's hex form of bytea (DuckDB's COPY would not)."""
        def q(v: str) -> str:
            return "'" + v.replace("'", "''") + "'"

        cols = f" ({', '.join(spec.columns)})" if spec.columns else ""
        blob = [types.oid_for(c.type) == types.BYTEA for c in target]
        try:
            if not any(blob):
                r = self.compat.execute(f"COPY {spec.source}{cols} FROM {q(path)} ({dialect.copy_options()})")
            else:
                idents = ['"' + c.name.replace('"', '""') + '"' for c in target]
                types_ = ", ".join(f"{q(c.name)}: {q('VARCHAR' if is_blob else c.type)}"
                                   for c, is_blob in zip(target, blob, strict=True))
                exprs = ", ".join(bytea_from_text(i) if is_blob else i for i, is_blob in zip(idents, blob, strict=True))
                r = self.session.execute(f"INSERT INTO {spec.source}{cols} SELECT {exprs} FROM read_csv({q(path)}, "
                                         f"columns={{{types_}}}, {dialect.read_csv_options()})")
        except SluiceError as e:
            raise load_error(e, spec, [c.name for c in target]) from None
        return max(r.rowcount, 0)

    async def stream(self, result: Result, encoders: list[Callable[[Any], bytes]],
                     first: list[tuple[Any, ...]], done: bool, limit: int,
                     portal: Portal | None = None) -> bool:
        """Send rows (``first`` then more batches) up to ``limit`` (0 = all); True when exhausted."""
        sent = 0
        rows = first
        while True:
            if limit:
                room = limit - sent
                if len(rows) > room:
                    assert portal is not None
                    portal.pending = rows[room:]
                    portal.source_done = done
                    rows = rows[:room]
            if rows:
                self.send(types.encode_rows(rows, encoders))
                sent += len(rows)
                await self.maybe_flush()
            self.last_sent = sent
            if portal is not None and portal.pending:
                return False
            if done:
                return True
            if limit and sent >= limit:
                # peek: is there more?
                more = await self.call(result.fetchmany, 1)
                if more:
                    assert portal is not None
                    portal.pending = more
                    portal.source_done = False
                    return False
                return True  # self.last_sent already counts these rows
            n = BATCH_ROWS if not limit else min(BATCH_ROWS, limit - sent)
            rows = await self.call(result.fetchmany, n)
            done = len(rows) < n

    def _materialize(self) -> None:
        """(worker thread) Read open portal/cursor results to the end before the connection runs
        anything else (DuckDB keeps one open result per connection)."""
        for p in (*self.portals.values(), *self.cursors.values()):
            if p.result is not None and not p.source_done and p.result.columns:
                p.pending = p.pending + p.result.fetchall()
                p.source_done = True

    def _describe(self, sql: str, declared: Sequence[int]) -> tuple[list[int], list[ColumnInfo]]:
        self._materialize()
        return self.compat.describe(sql, declared)

    def _start(self, sql: str, params: Sequence[Any] | None,
               first_batch: int) -> tuple[Result, list[tuple[Any, ...]], bool]:
        """(worker thread) Execute and fetch the first batch.

        DuckDB keeps one open result per connection: results still being read by open
        portals or cursors are read to the end first, so interleaving stays correct.
        """
        self._materialize()
        result = self.compat.execute(sql, params)
        if not result.columns:
            return result, [], True
        rows = result.fetchmany(first_batch) if first_batch else []
        return result, rows, 0 < first_batch and len(rows) < first_batch

    # --- extended protocol -----------------------------------------------------------
    async def on_parse(self, msg: codec.Parse) -> None:
        if msg.name and msg.name in self.statements:
            raise SluiceError(f'prepared statement "{msg.name}" already exists', sqlstate="42P05")
        stmts = split_statements(msg.sql)
        if len(stmts) > 1:
            raise SluiceError("cannot insert multiple commands into a prepared statement", sqlstate="42601")
        sql = stmts[0] if stmts else ""
        before = self.ctx.last
        decision = await self.pipeline.handle(self.ctx, sql, extended=True) if sql else Forward("")
        # this statement's record (none for SHOW sluice.last, which keeps the one before)
        last = self.ctx.last if self.ctx.last is not before else None
        nparams = max(len(msg.param_oids), max_param(sql))
        oids = list(msg.param_oids) + [0] * (nparams - len(msg.param_oids))
        if isinstance(decision, Reply):
            st = Statement(sql, oids, reply=decision)
        else:
            local = self.compat.intercept(decision.sql) if decision.sql else ""
            if isinstance(local, Reply):
                st = Statement(sql, oids, reply=local)
            else:
                if local != sql:
                    self.compat.written_as(local, sql)
                spec = parse_copy(local) if local[:8].lstrip()[:4].upper() == "COPY" else None
                forced = compat.PARAM_OIDS.get(local)
                if forced is not None:
                    oids = [o or forced[i] if i < len(forced) else o for i, o in enumerate(oids)]
                cmd = parse_cursor_command(local) if local.lstrip()[:1] in "DdFfMmCc" else None
                st = Statement(local, oids, copy=spec, cursor=cmd)
        st.last = last
        self.statements[msg.name] = st
        self.send(codec.parse_complete())

    def _statement(self, name: str) -> Statement:
        st = self.statements.get(name)
        if st is None:
            raise SluiceError(f'prepared statement "{name}" does not exist', sqlstate="26000")
        return st

    async def on_bind(self, msg: codec.Bind) -> None:
        st = self._statement(msg.statement)
        if len(msg.params) != len(st.param_oids):
            raise ProtocolViolation(f"bind message supplies {len(msg.params)} parameters, but prepared "
                                    f"statement \"{msg.statement}\" requires {len(st.param_oids)}")
        if msg.portal and msg.portal in self.portals:
            raise SluiceError(f'portal "{msg.portal}" already exists', sqlstate="42P03")
        if not st.params_inferred and 0 in st.param_oids:
            # untyped parameters (pgbench -M extended, psycopg strings): type them from the SQL
            # so that '42' compared with an INTEGER key binds as 42 (and DuckDB uses its index)
            sql = st.cursor.query if st.cursor is not None and st.cursor.kind == "declare" else st.sql
            if sql and st.reply is None:
                # on the loop thread: sqlglot's parse and the column types are cached, and a
                # thread hop per Bind costs more than the look-up under GIL contention
                st.param_oids = self.compat.param_types(sql, st.param_oids)
            st.params_inferred = True
        params = [types.decode_param(st.param_oids[i] or types.TEXT, msg.param_format(i), raw)
                  for i, raw in enumerate(msg.params)]
        if st.reply is not None and st.reply.status == "SHOW" and st.sql.lstrip()[:12].lower() == "show sluice.":
            # a prepared SHOW sluice.*: answered now, not with what it said at its Parse
            fresh = await self.pipeline.handle(self.ctx, st.sql, extended=True)
            if isinstance(fresh, Reply) and fresh.columns == st.reply.columns:
                st.reply = fresh
        old = self.portals.pop(msg.portal, None)
        if old is not None and old.result is not None:
            old.result.close()
        self.portals[msg.portal] = Portal(st, params, msg.result_formats)
        self.send(codec.bind_complete())

    async def describe_statement(self, st: Statement) -> None:
        if st.described:
            return
        if st.reply is not None:
            st.columns = st.reply.columns
        elif st.copy is not None:
            st.columns = []
        elif st.cursor is not None:
            st.columns = self.cursor_columns(st.cursor)
            if st.cursor.kind == "declare" and st.param_oids:
                ptypes, _ = await self.call(self._describe, st.cursor.query, st.param_oids)
                st.param_oids = [o or ptypes[i] for i, o in enumerate(st.param_oids)]
            st.described = st.cursor.kind != "fetch"
            if st.columns:
                st.oids = self.compat.column_oids(st.sql, st.columns)
            return
        elif st.sql:
            ptypes, cols = await self.call(self._describe, st.sql, st.param_oids)
            st.param_oids = [o or ptypes[i] for i, o in enumerate(st.param_oids)]
            st.columns = cols
        else:
            st.columns = []
        if st.columns:
            st.oids = self.compat.column_oids(st.sql, st.columns)
        st.described = True

    async def on_describe(self, msg: codec.Describe) -> None:
        if msg.kind == b"S":
            st = self._statement(msg.name)
            await self.describe_statement(st)
            self.send(codec.parameter_description([o or types.TEXT for o in st.param_oids]))
            st.client_oids = st.oids  # the client now decodes with these
            if st.columns:
                self.send(codec.row_description(field_descriptions(st.columns, (), st.oids)))
            else:
                self.send(codec.no_data())
            return
        portal = self.portals.get(msg.name)
        if portal is None and msg.name in self.cursors:  # a SQL cursor is a portal too
            cur = self.cursors[msg.name]
            cols = list(cur.result.columns) if cur.result is not None else []
            if cols:
                self.send(codec.row_description(field_descriptions(cols, cur.formats,
                                                                   self.compat.column_oids(cur.stmt.sql, cols))))
            else:
                self.send(codec.no_data())
            return
        if portal is None:
            raise SluiceError(f'portal "{msg.name}" does not exist', sqlstate="34000")
        st = portal.stmt
        if st.cursor is not None:
            cols = self.cursor_columns(st.cursor)
        elif st.reply is not None or not st.sql or st.copy is not None:
            cols = st.reply.columns if st.reply is not None else []
        else:
            await self.open_portal(portal)
            assert portal.result is not None
            cols = portal.result.columns
        if cols:
            oids = st.client_oids if st.client_oids is not None and len(st.client_oids) == len(cols) else \
                self.compat.column_oids(st.sql, cols)
            self.send(codec.row_description(field_descriptions(cols, portal.formats, oids)))
        else:
            self.send(codec.no_data())

    async def open_portal(self, portal: Portal) -> None:
        if portal.result is not None or portal.exhausted:
            return
        result, first, done = await self.call(self._start, portal.stmt.sql, portal.params, BATCH_ROWS)
        if self.compat.notices:
            self.send_notices()
        portal.result = result
        portal.pending = first
        portal.exhausted = done and not first
        portal.status = result.status
        cols = result.columns
        st = portal.stmt
        oids = st.client_oids if st.client_oids is not None and len(st.client_oids) == len(cols) else \
            self.compat.column_oids(st.sql, cols)
        portal.encoders = types.encoders_for(oids, portal.formats) if cols else []
        portal.source_done = done

    async def on_execute(self, msg: codec.Execute) -> None:
        portal = self.portals.get(msg.portal)
        if portal is None:
            raise SluiceError(f'portal "{msg.portal}" does not exist', sqlstate="34000")
        st = portal.stmt
        if st.last is not None and self.ctx.last is not st.last:
            self.ctx.last = st.last  # SHOW sluice.last: this execution, not the latest Parse
        if not st.sql and st.reply is None:
            self.send(codec.empty_query_response())
            return
        if st.copy is not None:
            self.send(codec.command_complete(await self.run_copy(st.copy)))
            return
        if st.cursor is not None:
            await self.run_cursor(st.cursor, portal.params, portal.formats, describe=False)
            return
        if st.reply is not None:
            rows = st.reply.rows[portal.reply_pos:]
            if msg.max_rows and len(rows) > msg.max_rows:
                rows = rows[:msg.max_rows]
            portal.reply_pos += len(rows)
            if rows:
                oids = [types.oid_for(c.type) for c in st.reply.columns]
                self.send(types.encode_rows(rows, types.encoders_for(oids, portal.formats)))
            if portal.reply_pos < len(st.reply.rows):
                self.send(codec.portal_suspended())
            else:
                self.send(reply_messages(Reply([], [], st.reply.status if not st.reply.columns else
                                               ("SELECT " + str(len(st.reply.rows)) if st.reply.status == "SELECT"
                                                else st.reply.status))))
            return
        try:
            if portal.result is None:
                await self.open_portal(portal)
            result = portal.result
            assert result is not None and portal.encoders is not None
            if not result.columns:
                self.send(codec.command_complete(portal.status or result.status))
                portal.exhausted = True
                return
            if portal.exhausted:
                self.send(codec.command_complete(result.status))
                return
            first, portal.pending = portal.pending, []
            exhausted = await self.stream(result, portal.encoders, first, portal.source_done, msg.max_rows,
                                          portal)
        except SluiceError:
            self.drop_portal(msg.portal)
            raise
        if exhausted:
            portal.exhausted = True
            self.send(codec.command_complete(result.status))
        else:
            self.send(codec.portal_suspended())

    def drop_portal(self, name: str) -> None:
        p = self.portals.pop(name, None)
        if p is not None and p.result is not None:
            with contextlib.suppress(Exception):
                p.result.close()

    def on_close(self, msg: codec.Close) -> None:
        if msg.kind == b"S":
            self.statements.pop(msg.name, None)
        else:
            self.drop_portal(msg.name)
        self.send(codec.close_complete())

    def on_sync(self) -> None:
        self.state.synced()
        if not self.session.in_transaction:
            for name in list(self.portals):
                self.drop_portal(name)
        else:
            self.drop_portal("")
        self.ready()


async def serve_duckdb(conn: ClientConnection) -> None:
    """Serve an authenticated client over the server's DuckDB backend."""
    if conn.backend is None:
        raise BackendError("no DuckDB backend is open")
    handler = DuckDBHandler(conn)
    await handler.run()
