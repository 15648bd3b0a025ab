"""The passthrough's synchronous hot path (issue 12, proxy throughput) under the cases it must
leave to the general path: a Query or a pipelined extended-protocol batch split across TCP
reads, a response split across reads, cancel while a server connection is attached, errors
in transaction pooling.  ``pool_size = 1`` makes every transaction share one server
connection, so a connection that was not given back, or given back too early, shows.

Clients: a raw socket where the split points must be chosen (each piece is its own write,
with a pause so that the proxy reads it alone), psycopg and asyncpg otherwise.
"""

from __future__ import annotations

import asyncio
import struct
import threading
import uuid
from collections.abc import Iterator

import asyncpg
import psycopg
import pytest

from sqlsluice.bench.proxy import ServeProcess
from sqlsluice.databases.pgcluster import PgCluster


@pytest.fixture(scope="module")
def upstream(pg_cluster: PgCluster) -> str:
    url = pg_cluster.create_database("hot_" + uuid.uuid4().hex[:8])
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("CREATE TABLE t1 (k int PRIMARY KEY, v text)")
        c.execute("INSERT INTO t1 SELECT g, 'v' || g FROM generate_series(1, 100) g")
    return url


@pytest.fixture(scope="module")
def proxy(upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    cfg = tmp_path_factory.mktemp("hot") / "sluice.toml"
    cfg.write_text(f"""[server]
backend = "{upstream}"
auth = "trust"
[databases]
tx = {{backend = "{upstream}", pool_mode = "transaction", pool_size = 1, query_wait_timeout = 20}}
tx2 = {{backend = "{upstream}", pool_mode = "transaction", pool_size = 2, query_wait_timeout = 20}}
sess = {{backend = "{upstream}"}}
""")
    with ServeProcess(upstream, config=cfg) as p:
        yield p


# --- a raw protocol client ---------------------------------------------------------------
def _msg(code: bytes, body: bytes = b"") -> bytes:
    return code + struct.pack("!i", len(body) + 4) + body


def query(sql: str) -> bytes:
    return _msg(b"Q", sql.encode() + b"\0")


def parse(name: str, sql: str) -> bytes:
    return _msg(b"P", name.encode() + b"\0" + sql.encode() + b"\0" + struct.pack("!h", 0))


def bind(stmt: str, *params: str) -> bytes:
    body = b"\0" + stmt.encode() + b"\0" + struct.pack("!h", 0) + struct.pack("!h", len(params))
    for p in params:
        body += struct.pack("!i", len(p)) + p.encode()
    return _msg(b"B", body + struct.pack("!h", 0))


EXECUTE = _msg(b"E", b"\0" + struct.pack("!i", 0))
SYNC = _msg(b"S")


class Raw:
    """A protocol-3 client over a plain socket (trust auth); messages read back as (type, body)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int) -> None:
        self.r, self.w, self.port = reader, writer, port
        self.key = b""  # BackendKeyData's pid and secret

    @classmethod
    async def connect(cls, port: int, database: str) -> Raw:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        params = b"user\0postgres\0database\0" + database.encode() + b"\0\0"
        w.write(struct.pack("!ii", len(params) + 8, 196608) + params)
        raw = cls(r, w, port)
        for t, body in await raw.until_ready():
            if t == b"K":
                raw.key = body
        return raw

    async def cancel(self) -> None:
        """A CancelRequest with this session's key, as libpq sends it (its own connection)."""
        r, w = await asyncio.open_connection("127.0.0.1", self.port)
        w.write(struct.pack("!ii", 16, 80877102) + self.key)
        await w.drain()
        assert await asyncio.wait_for(r.read(), 30) == b""  # closed once handled
        w.close()

    async def read(self) -> tuple[bytes, bytes]:
        head = await asyncio.wait_for(self.r.readexactly(5), 30)
        body = await self.r.readexactly(struct.unpack("!i", head[1:])[0] - 4)
        return head[:1], body

    async def until_ready(self) -> list[tuple[bytes, bytes]]:
        out = []
        while True:
            m = await self.read()
            out.append(m)
            if m[0] == b"E" and b"FATAL" in m[1]:
                raise AssertionError(m[1])
            if m[0] == b"Z":
                return out

    async def send_in_pieces(self, data: bytes, cuts: list[int]) -> None:
        """``data`` as separate writes cut at ``cuts``, each left to be read on its own."""
        prev = 0
        for c in [*cuts, len(data)]:
            self.w.write(data[prev:c])
            await self.w.drain()
            prev = c
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        self.w.write(_msg(b"X"))
        self.w.close()


def rows(msgs: list[tuple[bytes, bytes]]) -> list[str]:
    """The first column of each DataRow (text)."""
    out = []
    for t, body in msgs:
        if t == b"D":
            n = struct.unpack("!i", body[2:6])[0]
            out.append(body[6:6 + n].decode())
    return out


def types(msgs: list[tuple[bytes, bytes]]) -> bytes:
    return b"".join(t for t, _ in msgs)


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def other_client_works(proxy: ServeProcess) -> int:
    """A second client of the one-connection pool runs a statement (the first gave it back)."""
    with psycopg.connect(proxy.dsn(database="tx"), autocommit=True, connect_timeout=10) as c:
        row = c.execute("SELECT count(*) FROM t1").fetchone()
    assert row is not None
    return int(row[0])


# --- tests -------------------------------------------------------------------------------
@pytest.mark.parametrize("database", ["tx", "sess"])
def test_a_query_split_across_reads(proxy: ServeProcess, database: str) -> None:
    async def go() -> None:
        raw = await Raw.connect(proxy.port, database)
        try:
            q = query("SELECT 41 + 1")
            for cuts in ([1], [3], [5], [7, 12], list(range(1, len(q)))):
                await raw.send_in_pieces(q, cuts)
                got = await raw.until_ready()
                assert rows(got) == ["42"] and got[-1] == (b"Z", b"I"), (cuts, got)
            # then whole ones again, differing in their numbers only (the shape cache's case)
            for k in (1, 22, 3, 7, 100, 33):
                raw.w.write(query(f"SELECT v FROM t1 WHERE k = {k}"))
                assert rows(await raw.until_ready()) == [f"v{k}"]
        finally:
            await raw.close()

    run(go())
    assert other_client_works(proxy) == 100


@pytest.mark.parametrize("database", ["tx", "sess"])
def test_pipelined_extended_batches_split_across_chunks(proxy: ServeProcess, database: str) -> None:
    batch = (parse("dbl", "SELECT $1::int * 2") + bind("dbl", "21") + EXECUTE + SYNC
             + bind("dbl", "50") + EXECUTE + SYNC)
    again = bind("dbl", "4") + EXECUTE + SYNC + bind("dbl", "5") + EXECUTE + SYNC

    async def go() -> None:
        raw = await Raw.connect(proxy.port, database)
        try:
            await raw.send_in_pieces(batch, [3, 9, 30, 31, len(batch) - 10])
            first, second = await raw.until_ready(), await raw.until_ready()
            assert types(first) == b"12DCZ" and rows(first) == ["42"], first
            assert types(second) == b"2DCZ" and rows(second) == ["100"], second
            # another client uses the only server connection in between (transaction mode:
            # the statement is prepared again there when this client binds it)
            await asyncio.to_thread(other_client_works, proxy)
            for cuts in ([], [1], [len(again) // 2], list(range(5, len(again), 9))):
                await raw.send_in_pieces(again, cuts)
                a, b = await raw.until_ready(), await raw.until_ready()
                assert (rows(a), rows(b)) == (["8"], ["10"]), (cuts, a, b)
                assert types(a) == b"2DCZ" and types(b) == b"2DCZ"
        finally:
            await raw.close()

    run(go())
    assert other_client_works(proxy) == 100


@pytest.mark.parametrize("kind", [b"S", b"P"])
def test_a_chunk_ending_right_after_a_describe_header(proxy: ServeProcess, kind: bytes) -> None:
    """A Bind and the first five bytes of a Describe in one read (transaction pooling's batch
    path looks at the Describe's kind byte: not there yet); the session goes on (found by
    test_wire_differential.py: an IndexError ended the session)."""
    async def go() -> None:
        raw = await Raw.connect(proxy.port, "tx")
        try:
            raw.w.write(parse("s9", "SELECT v FROM t1 WHERE k = $1") + SYNC)
            assert (await raw.until_ready())[-1] == (b"Z", b"I")
            target = b"S" + b"s9\0" if kind == b"S" else b"P" + b"\0"
            batch = bind("s9", "12") + _msg(b"D", target) + EXECUTE + SYNC
            cut = len(bind("s9", "12")) + 5  # right after the Describe's header
            await raw.send_in_pieces(batch, [cut])
            got = await raw.until_ready()
            assert rows(got) == ["v12"] and got[-1] == (b"Z", b"I"), got
        finally:
            await raw.close()

    run(go())
    assert other_client_works(proxy) == 100


def test_a_response_split_across_reads_gives_the_connection_back_once_complete(proxy: ServeProcess) -> None:
    sql = "SELECT g, repeat('x', 2000) FROM generate_series(1, 4000) g"
    with psycopg.connect(proxy.dsn(database="tx"), autocommit=True) as c:
        for _ in range(3):
            got = c.execute(sql).fetchall()
            assert len(got) == 4000 and got[-1][0] == 4000 and len(got[-1][1]) == 2000
            assert other_client_works(proxy) == 100  # given back after the last byte, not before
        with c.cursor() as cur:  # the same through the extended protocol, binary results
            cur.execute("SELECT g, repeat('y', 2000)::bytea FROM generate_series(1, 4000) g WHERE g > %s", [0],
                        binary=True)
            assert len(cur.fetchall()) == 4000
    assert other_client_works(proxy) == 100


def test_cancel_while_a_server_connection_is_attached(proxy: ServeProcess) -> None:
    with psycopg.connect(proxy.dsn(database="tx"), autocommit=True) as c:
        timer = threading.Timer(0.5, c.cancel)
        timer.start()
        try:
            with pytest.raises(psycopg.errors.QueryCanceled):
                c.execute("SELECT pg_sleep(20)")
        finally:
            timer.cancel()
        assert c.execute("SELECT 7").fetchone() == (7,)
    assert other_client_works(proxy) == 100


def test_errors_in_transaction_mode_leave_the_client_and_the_pool_usable(proxy: ServeProcess) -> None:
    with psycopg.connect(proxy.dsn(database="tx"), autocommit=True) as c:
        with pytest.raises(psycopg.errors.DivisionByZero):
            c.execute("SELECT 1 / 0")
        assert c.execute("SELECT 2").fetchone() == (2,)
        with pytest.raises(psycopg.errors.UndefinedTable):
            c.execute("SELECT * FROM no_such_table WHERE k = %s", [1])  # extended protocol
        assert c.execute("SELECT v FROM t1 WHERE k = %s", [3]).fetchone() == ("v3",)
        c.execute("BEGIN")
        with pytest.raises(psycopg.errors.DivisionByZero):
            c.execute("SELECT 1 / 0")
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            c.execute("SELECT 3")
        c.execute("ROLLBACK")
        assert c.execute("SELECT 4").fetchone() == (4,)
    assert other_client_works(proxy) == 100

    async def prepared() -> None:
        conn = await asyncpg.connect(proxy.dsn(database="tx"))
        try:
            stmt = await conn.prepare("SELECT 10 / $1::int")
            assert await stmt.fetchval(5) == 2
            with pytest.raises(asyncpg.DivisionByZeroError):
                await stmt.fetchval(0)
            assert await stmt.fetchval(2) == 5
        finally:
            await conn.close()

    run(prepared())
    assert other_client_works(proxy) == 100


def test_many_short_transactions_from_concurrent_clients(proxy: ServeProcess) -> None:
    """pgbench's pattern (one simple-protocol SELECT per transaction, the numbers differ) from
    8 clients sharing one server connection: every answer is its own."""
    async def client(i: int) -> None:
        raw = await Raw.connect(proxy.port, "tx")
        try:
            for j in range(200):
                k = (i * 200 + j) % 100 + 1
                raw.w.write(query(f"SELECT v, {i} FROM t1 WHERE k = {k}"))
                got = await raw.until_ready()
                assert rows(got) == [f"v{k}"] and got[-1] == (b"Z", b"I"), (k, got)
        finally:
            await raw.close()

    async def go() -> None:
        await asyncio.gather(*(client(i) for i in range(8)))

    run(go())
    assert other_client_works(proxy) == 100


def test_asyncpg_cached_show_sluice_last_is_fresh_in_transaction_mode(proxy: ServeProcess) -> None:
    """asyncpg prepares ``SHOW sluice.last`` once and then only binds it: each execution must
    describe the statement before it, as in session mode (it used to repeat the first answer)."""
    async def go() -> None:
        conn = await asyncpg.connect(proxy.dsn(database="tx"))
        try:
            for k in (5, 6, 7):
                assert await conn.fetchval(f"SELECT v FROM t1 WHERE k = {k}") == f"v{k}"
                last = dict(await conn.fetch("SHOW sluice.last"))  # the same prepared statement
                assert f"k = {k}" in last["sql"], (k, last)
                await asyncio.to_thread(other_client_works, proxy)  # the next runs on a connection used since
        finally:
            await conn.close()

    run(go())


def test_deallocate_all_forgets_the_clients_statements_on_every_server_connection(proxy: ServeProcess) -> None:
    """``DEALLOCATE ALL`` runs on the connection held at that moment; the client's statements
    prepared on another connection (held meanwhile by someone else) must be gone too, as on
    PostgreSQL: a later Bind gets 26000 wherever it runs, and the name can be parsed again."""
    async def go() -> None:
        raw = await Raw.connect(proxy.port, "tx2")
        other = await asyncpg.connect(proxy.dsn(database="tx2"))
        try:
            raw.w.write(parse("s1", "SELECT 1 + 1") + bind("s1") + EXECUTE + SYNC)
            assert rows(await raw.until_ready()) == ["2"]
            tr = other.transaction()  # holds the connection s1 was just prepared on (the pool is LIFO)
            await tr.start()
            await other.fetchval("SELECT 1")
            raw.w.write(query("DEALLOCATE ALL"))
            assert types(await raw.until_ready()) == b"CZ"
            await tr.commit()  # that connection is free again: the next Bind may run there
            for _ in range(2):
                raw.w.write(bind("s1") + EXECUTE + SYNC)
                got = await raw.until_ready()
                assert got[0][0] == b"E" and b"26000" in got[0][1], got
            raw.w.write(parse("s1", "SELECT 3") + bind("s1") + EXECUTE + SYNC)
            assert rows(await raw.until_ready()) == ["3"]
        finally:
            await other.close()
            await raw.close()

    run(go())


# --- clients queued for the one server connection (the task-less waiter) -----------------
async def _holding(port: int) -> Raw:
    """A client inside a transaction: the pool's one connection is its own until COMMIT."""
    holder = await Raw.connect(port, "tx")
    holder.w.write(query("BEGIN"))
    assert (await holder.until_ready())[-1] == (b"Z", b"T")
    return holder


def test_a_waiting_client_that_leaves_passes_the_connection_on(proxy: ServeProcess) -> None:
    async def go() -> None:
        holder = await _holding(proxy.port)
        quitter = await Raw.connect(proxy.port, "tx")
        quitter.w.write(query("SELECT 1"))  # waits in the queue ...
        await asyncio.sleep(0.2)
        quitter.w.close()  # ... and leaves without a word
        waiter = await Raw.connect(proxy.port, "tx")
        waiter.w.write(query("SELECT v FROM t1 WHERE k = 42"))  # queued behind the one that left
        await asyncio.sleep(0.2)
        holder.w.write(query("COMMIT"))
        assert (await holder.until_ready())[-1] == (b"Z", b"I")
        got = await waiter.until_ready()
        assert rows(got) == ["v42"] and got[-1] == (b"Z", b"I")
        await waiter.close()
        await holder.close()

    run(go())
    assert other_client_works(proxy) == 100


def test_a_waiting_client_sending_more_gets_every_answer_in_order(proxy: ServeProcess) -> None:
    """Queries sent one after the other while the client waits for the connection (each its
    own read: held, then run in order once the connection is handed over)."""
    async def go() -> None:
        holder = await _holding(proxy.port)
        waiter = await Raw.connect(proxy.port, "tx")
        for k in (5, 6, 7):
            waiter.w.write(query(f"SELECT v FROM t1 WHERE k = {k}"))
            await waiter.w.drain()
            await asyncio.sleep(0.05)
        holder.w.write(query("COMMIT"))
        await holder.until_ready()
        answers = [rows(await waiter.until_ready()) for _ in range(3)]
        assert answers == [["v5"], ["v6"], ["v7"]]
        await waiter.close()
        await holder.close()

    run(go())
    assert other_client_works(proxy) == 100


def _error_code(msgs: list[tuple[bytes, bytes]]) -> str | None:
    for t, body in msgs:
        if t == b"E":
            return next(f[1:].decode() for f in body.split(b"\0") if f[:1] == b"C")
    return None


def test_a_cancel_while_waiting_for_a_connection_answers_the_waiting_request_with_57014(proxy: ServeProcess) -> None:
    """A client waiting in the queue has nothing running upstream: its CancelRequest is answered
    at once (57014 for the first waiting request, never sent), as PostgreSQL answers a statement
    cancelled while it runs; the requests it sent after it wait on and run in order.  Without
    this the client hangs until the holder commits (PgBouncer's issue 1222)."""
    async def go() -> None:
        holder = await _holding(proxy.port)
        waiter = await Raw.connect(proxy.port, "tx")
        waiter.w.write(query("UPDATE t1 SET v = 'cancelled' WHERE k = 9"))  # waits, then is cancelled
        waiter.w.write(parse("", "SELECT v FROM t1 WHERE k = $1") + bind("", "9") + EXECUTE + SYNC)
        await waiter.w.drain()
        await asyncio.sleep(0.2)
        await waiter.cancel()
        first = await waiter.until_ready()  # while the holder still holds the only connection
        assert _error_code(first) == "57014" and first[-1] == (b"Z", b"I"), first
        await waiter.cancel()  # the extended batch waiting next: also answered 57014
        second = await waiter.until_ready()
        assert _error_code(second) == "57014" and second[-1] == (b"Z", b"I"), second
        waiter.w.write(query("SELECT v FROM t1 WHERE k = 9"))  # waits again, runs once the holder is done
        await asyncio.sleep(0.2)
        holder.w.write(query("COMMIT"))
        assert (await holder.until_ready())[-1] == (b"Z", b"I")
        got = await waiter.until_ready()
        assert rows(got) == ["v9"] and got[-1] == (b"Z", b"I")  # the cancelled UPDATE never ran
        await waiter.close()
        await holder.close()

    run(go())
    assert other_client_works(proxy) == 100


def test_a_cancel_while_waiting_leaves_the_requests_after_it_queued(proxy: ServeProcess) -> None:
    async def go() -> None:
        holder = await _holding(proxy.port)
        waiter = await Raw.connect(proxy.port, "tx")
        waiter.w.write(query("SELECT pg_sleep(30)") + query("SELECT v FROM t1 WHERE k = 3"))  # one chunk
        await waiter.w.drain()
        await asyncio.sleep(0.2)
        await waiter.cancel()
        assert _error_code(await waiter.until_ready()) == "57014"
        holder.w.write(query("COMMIT"))
        await holder.until_ready()
        got = await waiter.until_ready()
        assert rows(got) == ["v3"] and _error_code(got) is None
        await waiter.close()
        await holder.close()

    run(go())
    assert other_client_works(proxy) == 100


def test_parse_and_close_skipped_after_an_error_change_no_statement(proxy: ServeProcess) -> None:
    """Transaction pooling keeps each client's statement names itself; a Parse or Close that
    PostgreSQL skips (an error earlier in its batch) must leave them as they were: the next Parse
    of that name is 42P05 exactly when PostgreSQL would say so (found by
    test_wire_differential.py: a skipped Parse then Close of one name left it "existing")."""
    def close_stmt(name: str) -> bytes:
        return _msg(b"C", b"S" + name.encode() + b"\0")

    def types(msgs: list[tuple[bytes, bytes]]) -> str:
        return "".join(t.decode() for t, _ in msgs)

    async def go() -> None:
        raw = await Raw.connect(proxy.port, "tx")
        # the division fails; the Parse and the Close of s1 after it are skipped: no s1
        raw.w.write(parse("s0", "SELECT $1::int / 0") + bind("s0", "7") + EXECUTE
                    + parse("s1", "SELECT 2") + close_stmt("s1") + SYNC)
        got = await raw.until_ready()
        assert types(got) == "1EZ" and _error_code(got) == "22012", got
        raw.w.write(parse("s1", "SELECT 3") + bind("s1") + EXECUTE + SYNC)  # s1 is new: parsed
        got = await raw.until_ready()
        assert types(got) == "12DCZ" and rows(got) == ["3"], got
        # the Bind fails; the Close of s0 after it is skipped: s0 is still there
        raw.w.write(bind("nosuch") + close_stmt("s0") + SYNC)
        got = await raw.until_ready()
        assert _error_code(got) == "26000", got
        raw.w.write(parse("s0", "SELECT 4") + SYNC)
        got = await raw.until_ready()
        assert _error_code(got) == "42P05", got
        raw.w.write(close_stmt("s0") + SYNC)  # now it is closed
        assert types(await raw.until_ready()) == "3Z"
        raw.w.write(parse("s0", "SELECT 5") + bind("s0") + EXECUTE + SYNC)
        got = await raw.until_ready()
        assert rows(got) == ["5"] and _error_code(got) is None, got
        await raw.close()

    run(go())
    assert other_client_works(proxy) == 100


def test_a_parse_inside_an_aborted_transaction_is_refused_as_postgresql_refuses_it(proxy: ServeProcess) -> None:
    """A Parse of SQL the server connection has prepared already is answered by the proxy
    itself; inside an aborted transaction PostgreSQL refuses any Parse but a transaction end's
    (25P02), and so must the proxy (found by test_wire_differential.py: ParseComplete, and the
    statement "existing" after the ROLLBACK)."""
    async def go() -> None:
        raw = await Raw.connect(proxy.port, "tx")
        try:
            raw.w.write(parse("s1", "SELECT 11") + SYNC)
            assert (await raw.until_ready())[-1] == (b"Z", b"I")
            raw.w.write(query("BEGIN") + query("SELECT 1 / 0"))
            await raw.until_ready()
            assert (await raw.until_ready())[-1] == (b"Z", b"E")
            raw.w.write(parse("s2", "SELECT 11") + SYNC)  # the same SQL: prepared there already
            got = await raw.until_ready()
            assert _error_code(got) == "25P02" and got[-1] == (b"Z", b"E"), got
            raw.w.write(parse("rb", "ROLLBACK") + bind("rb") + EXECUTE + SYNC)  # a transaction end parses
            got = await raw.until_ready()
            assert _error_code(got) is None and got[-1] == (b"Z", b"I"), got
            raw.w.write(bind("s2") + EXECUTE + SYNC)
            assert _error_code(await raw.until_ready()) == "26000"  # never made
            raw.w.write(parse("s2", "SELECT 11") + bind("s2") + EXECUTE + SYNC)
            got = await raw.until_ready()
            assert rows(got) == ["11"] and got[-1] == (b"Z", b"I"), got
        finally:
            await raw.close()

    run(go())
    assert other_client_works(proxy) == 100


def test_queued_clients_are_served_first_come_first_served(proxy: ServeProcess) -> None:
    async def go() -> None:
        holder = await _holding(proxy.port)
        order: list[int] = []

        async def client(i: int) -> None:
            raw = await Raw.connect(proxy.port, "tx")
            raw.w.write(query(f"SELECT v FROM t1 WHERE k = {i + 1}"))
            assert rows(await raw.until_ready()) == [f"v{i + 1}"]
            order.append(i)
            await raw.close()

        tasks = []
        for i in range(5):
            tasks.append(asyncio.ensure_future(client(i)))
            await asyncio.sleep(0.1)  # each queued after the one before
        holder.w.write(query("COMMIT"))
        await holder.until_ready()
        await asyncio.gather(*tasks)
        assert order == [0, 1, 2, 3, 4]
        await holder.close()

    run(go())
    assert other_client_works(proxy) == 100
