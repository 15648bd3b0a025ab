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
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlsluice.databases.base import ColumnInfo, Result
from sqlsluice.databases.duckdb_backend import DuckDBSession, command_words
from sqlsluice.errors import BackendError, FeatureNotSupported, ProtocolViolation, SluiceError
from sqlsluice.middleware import codec, compat, types
from sqlsluice.middleware.connection import ClientConnection, error_message
from sqlsluice.middleware.framing import MessageBuffer
from sqlsluice.middleware.pipeline import Forward, Reply
from sqlsluice.middleware.protocol import Phase, ProtocolState
from sqlsluice.middleware.sqltext import max_param, split_statements

log = logging.getLogger("sqlsluice.session")
BATCH_ROWS = 2000
FLUSH_BYTES = 1 << 16
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

    # --- plumbing ------------------------------------------------------------------
    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        self.running = True
        try:
            return await self.loop.run_in_executor(self._pool, fn, *args)
        finally:
            self.running = False

    def cancel(self) -> None:
        """Called for a CancelRequest carrying this session's key."""
        if self.running:
            self.session.cancel()

    def send(self, data: bytes) -> None:
        self.out.append(data)
        self.out_size += len(data)

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
        self.state.set_transaction(self.session.in_transaction, self.session.transaction_failed)
        self.send(codec.ready_for_query(self.state.tx_status))

    def error(self, e: SluiceError, *, extended: bool) -> None:
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
        buf = MessageBuffer()
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

    async def close(self) -> None:
        for p in self.portals.values():
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
        for stmt in stmts:
            try:
                await self.run_simple(stmt)
            except SluiceError as e:
                self.error(e, extended=False)
                break
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
        self.check_copy(local)
        result, first, done = await self.call(self._start, local, None, BATCH_ROWS)
        if result.columns:
            oids = [types.oid_for(c.type) for c in result.columns]
            self.send(codec.row_description(field_descriptions(result.columns, (), oids)))
            encoders = types.encoders_for(oids, ())
            await self.stream(result, encoders, first, done, 0)
        self.send(codec.command_complete(result.status))

    def check_copy(self, sql: str) -> None:
        w1, _ = command_words(sql)
        if w1 == "COPY":
            up = sql.upper()
            if "STDIN" in up or "STDOUT" in up:
                raise FeatureNotSupported("COPY FROM STDIN / TO STDOUT is not supported over DuckDB; "
                                          "use COPY with a server-side file or INSERT")

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
                return True
            n = BATCH_ROWS if not limit else min(BATCH_ROWS, limit - sent)
            rows = await self.call(result.fetchmany, n)
            done = len(rows) < n

    def _start(self, sql: str, params: Sequence[Any] | None,
               first_batch: int) -> tuple[Result, list[tuple[Any, ...]], bool]:
        """(worker thread) Execute and fetch the first batch."""
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
        decision = await self.pipeline.handle(self.ctx, sql, extended=True) if sql else Forward("")
        nparams = max(len(msg.param_oids), max_param(sql))
        oids = list(msg.param_oids) + [0] * (nparams - len(msg.param_oids))
        if isinstance(decision, Reply):
            st = Statement(sql, oids, reply=decision)
        else:
            local = self.compat.intercept(decision.sql) if decision.sql else ""
            if isinstance(local, Reply):
                st = Statement(sql, oids, reply=local)
            else:
                self.check_copy(local)
                st = Statement(local, oids)
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
        if any(o == 0 for o in st.param_oids) and any(f == 1 for f in msg.param_formats):
            await self.describe_statement(st)
        params = [types.decode_param(st.param_oids[i] or types.TEXT, msg.param_format(i), raw)
                  for i, raw in enumerate(msg.params)]
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
        elif st.sql:
            ptypes, cols = await self.call(self.compat.describe, st.sql, st.param_oids)
            st.param_oids = [o or ptypes[i] for i, o in enumerate(st.param_oids)]
            st.columns = cols
        else:
            st.columns = []
        if st.columns:
            st.oids = [types.oid_for(c.type) for c in st.columns]
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
        if portal is None:
            raise SluiceError(f'portal "{msg.name}" does not exist', sqlstate="34000")
        st = portal.stmt
        if st.reply is not None or not st.sql:
            cols = st.reply.columns if st.reply is not None else []
        else:
            await self.open_portal(portal)
            assert portal.result is not None
            cols = portal.result.columns
        if cols:
            oids = st.client_oids if st.client_oids is not None and len(st.client_oids) == len(cols) else None
            self.send(codec.row_description(field_descriptions(cols, portal.formats, oids)))
        else:
            self.send(codec.no_data())

    async def open_portal(self, portal: Portal) -> None:
        if portal.result is not None or portal.exhausted:
            return
        result, first, done = await self.call(self._start, portal.stmt.sql, portal.params, BATCH_ROWS)
        portal.result = result
        portal.pending = first
        portal.exhausted = done and not first
        portal.status = result.status
        cols = result.columns
        st = portal.stmt
        oids = st.client_oids if st.client_oids is not None and len(st.client_oids) == len(cols) else [
            types.oid_for(c.type) for c in cols]
        portal.encoders = types.encoders_for(oids, portal.formats) if cols else []
        portal.source_done = done

    async def on_execute(self, msg: codec.Execute) -> None:
        portal = self.portals.get(msg.portal)
        if portal is None:
            raise SluiceError(f'portal "{msg.portal}" does not exist', sqlstate="34000")
        st = portal.stmt
        if not st.sql and st.reply is None:
            self.send(codec.empty_query_response())
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
