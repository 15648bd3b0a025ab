"""Wire-level differential fuzzing of the passthrough (issue 12): random protocol-3 message
sequences, cut into pieces at random byte positions, sent to PostgreSQL directly and through
``sluice serve`` (plain passthrough, transaction pooling with four clients onto one server
connection, session pooling onto two; the first and the last also with PostgreSQL's replies cut
at random places on their way to the proxy, by a TCP relay in between); every message the
client gets back must be the same.

The relay frames client bytes itself on its hot paths (a whole Query, a batch of whole
extended-protocol messages, the statement renaming of transaction pooling) and walks the
server's replies by their headers; a message split across reads takes the general path.  A
framing slip there gives a client wrong or missing answers, which no example test may hit:
here every request is cut at random places (each piece its own write, with a pause so that the
proxy reads it alone), mixing the simple and the extended protocol, named and unnamed
statements and portals, ``Execute`` with a row limit (PortalSuspended) and again, Describe,
Close, Flush, errors in the middle of a batch (the rest skipped to Sync), a name parsed twice,
an unknown statement, empty queries, notices, explicit transactions, multi-statement queries
failing half-way, COPY TO STDOUT, and COPY FROM STDIN with its data sent right behind the
Query (ended by CopyDone, by CopyFail, or failing on bad data), and explicit transactions that
span several requests (with a savepoint, an error that aborts them, COMMIT or ROLLBACK sent
either way).

What is compared: each message's type and body, except what is the session's own and not the
answer's (ParameterStatus, BackendKeyData) and, in an ErrorResponse, the source location fields
(file, line, routine: the same server, but not part of the answer).  One known difference is
masked: a Bind with the wrong number of parameters (08P01) names, through transaction pooling,
the server's statement (``sluice_s_<hash>``) instead of the client's.  And one is avoided: the
database plans every execution afresh (``plan_cache_mode = force_custom_plan``).  Transaction
pooling shares one server statement among the clients that prepare the same SQL, so it is
executed more often than any one client's own, and PostgreSQL switches it to a generic plan
sooner (after five executions); ``$1::int / 0`` then fails at Execute instead of at Bind (its
custom plan folds the constant).  The same error in the same batch, one BindComplete more; a
client running the statement six times directly sees the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import struct
import threading
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from sqlsluice.bench.proxy import ServeProcess
from sqlsluice.databases.pgcluster import PgCluster
from sqlsluice.middleware import codec

CLIENTS = 4  # through the one-connection transaction pool at once
_STMT_NAME = re.compile(rb'prepared statement "[^"]*"')
REQUESTS = 30  # per client program


@pytest.fixture(scope="module")
def upstream(pg_cluster: PgCluster) -> str:
    url = pg_cluster.create_database("wire_" + uuid.uuid4().hex[:8])
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("CREATE TABLE w (k int PRIMARY KEY, v text, n numeric)")
        c.execute("INSERT INTO w SELECT g, 'v' || g, g / 3.0 FROM generate_series(1, 50) g")
        c.execute("CREATE TABLE wc (k int, v text)")  # COPY FROM's target (only its command tags are read)
        # (see the module's docstring: where an error shows depends on the plan cache)
        c.execute(f'ALTER DATABASE "{url.rsplit("/", 1)[1]}" SET plan_cache_mode = force_custom_plan')
    return url


class Chaos:
    """A TCP relay in front of PostgreSQL that cuts the server's bytes at random places, each
    piece written on its own after a pause (so that the proxy reads it alone): the relay's
    walk over replies then meets headers, ReadyForQuery and ErrorResponses split anywhere."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.rng = random.Random(5)
        self.loop = asyncio.new_event_loop()
        self.listen = 0

    def start(self) -> Chaos:
        started = threading.Event()

        def run() -> None:
            server = self.loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
            self.listen = server.sockets[0].getsockname()[1]
            started.set()
            self.loop.run_forever()  # (until stop)
            server.close()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        started.wait(10)
        return self

    async def _handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        try:
            sr, sw = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            cw.close()
            return

        async def up() -> None:
            while data := await cr.read(65536):
                sw.write(data)
                await sw.drain()
            sw.close()

        async def down() -> None:
            while data := await sr.read(65536):
                n = len(data)
                at = sorted(self.rng.sample(range(1, n), min(n - 1, self.rng.randint(0, 3)))) if n > 1 else []
                prev = 0
                for c in [*at, n]:
                    cw.write(data[prev:c])
                    await cw.drain()
                    prev = c
                    if c != n:
                        await asyncio.sleep(0.001)
            cw.close()

        with contextlib.suppress(OSError):
            await asyncio.gather(up(), down())

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def proxy(pg_cluster: PgCluster, upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    chaos = Chaos(pg_cluster.port).start()
    cut = upstream.replace(f":{pg_cluster.port}/", f":{chaos.listen}/")
    assert cut != upstream
    cfg = tmp_path_factory.mktemp("wire") / "sluice.toml"
    cfg.write_text(f"""[server]
backend = "{upstream}"
auth = "trust"
[databases]
tx = {{backend = "{upstream}", pool_mode = "transaction", pool_size = 1, query_wait_timeout = 60}}
plain = {{backend = "{upstream}"}}
sp = {{backend = "{upstream}", pool_mode = "session", pool_size = 2, query_wait_timeout = 60}}
txcut = {{backend = "{cut}", pool_mode = "transaction", pool_size = 1, query_wait_timeout = 60}}
plaincut = {{backend = "{cut}"}}
""")
    try:
        with ServeProcess(upstream, config=cfg) as p:
            yield p
    finally:
        chaos.stop()


# --- messages ---------------------------------------------------------------------------
def query(sql: str) -> bytes:
    return codec.message(b"Q", codec.cstr(sql))


def parse(name: str, sql: str) -> bytes:
    return codec.message(b"P", codec.cstr(name) + codec.cstr(sql) + struct.pack("!h", 0))


def bind(portal: str, stmt: str, params: list[str | None]) -> bytes:
    body = codec.cstr(portal) + codec.cstr(stmt) + struct.pack("!hh", 0, len(params))
    for p in params:
        body += struct.pack("!i", -1) if p is None else struct.pack("!i", len(p.encode())) + p.encode()
    return codec.message(b"B", body + struct.pack("!h", 0))


def describe(kind: bytes, name: str) -> bytes:
    return codec.message(b"D", kind + codec.cstr(name))


def execute(portal: str, max_rows: int = 0) -> bytes:
    return codec.message(b"E", codec.cstr(portal) + struct.pack("!i", max_rows))


def close(kind: bytes, name: str) -> bytes:
    return codec.message(b"C", kind + codec.cstr(name))


SYNC, FLUSH = codec.message(b"S"), codec.message(b"H")

SIMPLE = [
    "SELECT k, v, n FROM w WHERE k = {k}",
    "SELECT v FROM w WHERE k > {k} ORDER BY k LIMIT 3; SELECT {k} AS again",
    "SELECT 1 / ({k} - {k})",
    "SELEC broken {k}",
    "",
    "SELECT count(*), sum(n) FROM w WHERE k <= {k}",
    "SELECT repeat(md5(k::text), 300) FROM w WHERE k <= {k} ORDER BY k",  # replies longer than a read
    "SELECT NULL::int, {k}::numeric / 7, 'x''y'",
    "DO $$BEGIN RAISE NOTICE 'note %', {k}; END$$",
    "INSERT INTO wc VALUES ({k}, 'multi'); SELECT 1 / ({k} - {k})",  # the INSERT is rolled back with it
    "COPY (SELECT k, v FROM w WHERE k <= {k} ORDER BY k) TO STDOUT",
]
EXTENDED = [
    ("SELECT k, v FROM w WHERE k >= $1 ORDER BY k LIMIT 5", 1),
    ("SELECT $1::int / 0", 1),
    ("SELECT v, n FROM w WHERE k = $1", 1),
    ("SELECT count(*) FROM w WHERE k < $1 AND v <> $2", 2),
]


def request(rng: random.Random, names: dict[str, tuple[str, int]]) -> bytes:
    """One request: a Query, or extended-protocol messages ending in a Sync.  ``names``: the
    client's named statements (name -> SQL, parameter count), as the client believes them."""
    k = rng.randint(1, 50)
    kind = rng.random()
    if kind < 0.3:
        return query(rng.choice(SIMPLE).format(k=k))
    if kind < 0.36:  # an explicit transaction around two statements (holds the pooled connection)
        return query("BEGIN") + query(SIMPLE[0].format(k=k)) + query(rng.choice(["COMMIT", "ROLLBACK"]))
    if kind < 0.42:  # COPY FROM STDIN, its data sent right behind the Query: done, failed, or bad data
        rows = b"".join(codec.message(b"d", f"{k + j}\tc{j}\n".encode()) for j in range(rng.randint(0, 3)))
        end = rng.choice([codec.message(b"c"), codec.message(b"f", b"client gave up\0"), codec.message(b"d", b"not-a-number\tx\n") + codec.message(b"c")])
        return query("COPY wc (k, v) FROM STDIN") + rows + end
    out = b""
    for _ in range(rng.randint(1, 3)):  # a batch of statements before one Sync
        sql, nparams = rng.choice(EXTENDED)
        r = rng.random()
        if r < 0.8 and names and rng.random() < 0.5:  # a named statement parsed before, bound again
            name = rng.choice(sorted(names))
            sql, nparams = names[name]
        elif r < 0.4:
            name = ""  # the unnamed statement and portal
        elif r < 0.8:  # a new named statement (or, now and then, a name parsed twice: 42P05)
            name = rng.choice(sorted(names)) if names and rng.random() < 0.1 else f"s{len(names)}"
            if name not in names:
                names[name] = (sql, nparams)
            out += parse(name, sql)
            if rng.random() < 0.5:
                out += describe(b"S", name)
        if r >= 0.9:
            if names:  # Close a statement, then Flush
                victim = rng.choice(sorted(names))
                del names[victim]
                out += close(b"S", victim)
            out += FLUSH
            continue
        if r >= 0.8:
            out += bind("", "nosuch", [])  # 26000, the rest skipped to the Sync
            continue
        params: list[str | None] = [str(k), f"v{k}"][:nparams]
        if rng.random() < 0.1:
            params[0] = None
        if name == "":
            if rng.random() < 0.05:
                out += parse("", "") + bind("", "", []) + execute("")  # EmptyQueryResponse
                continue
            out += parse("", sql) + bind("", "", params)
            if rng.random() < 0.5:
                out += describe(b"P", "")
            out += execute("", rng.choice([0, 0, 2]))
        else:
            out += bind("p1", name, params) + execute("p1", rng.choice([0, 1]))
            if rng.random() < 0.3:
                out += execute("p1", 1)  # the suspended portal again
            out += close(b"P", "p1")
    return out + SYNC


def _tx_statement(rng: random.Random, sql: str) -> bytes:
    """``sql`` as a Query, or through the extended protocol (unnamed statement, then Sync)."""
    if rng.random() < 0.5:
        return query(sql)
    return parse("", sql) + bind("", "", []) + execute("") + SYNC


def program(seed: int, client: int) -> list[bytes]:
    """Requests; now and then an explicit transaction spans several of them (BEGIN in one,
    COMMIT or ROLLBACK some requests later, a savepoint rolled back to in between): transaction
    pooling holds the server connection across those requests, also once an error aborted the
    transaction (25P02 until the ROLLBACK)."""
    rng = random.Random(seed * 100 + client)
    names: dict[str, tuple[str, int]] = {}
    out: list[bytes] = []
    open_for = 0  # requests left in the open transaction (0: none open)
    for _ in range(REQUESTS):
        if not open_for and rng.random() < 0.12:
            out.append(_tx_statement(rng, "BEGIN"))
            open_for = rng.randint(1, 4)
        out.append(request(rng, names))
        if open_for == 2 and rng.random() < 0.5:
            out.append(_tx_statement(rng, "SAVEPOINT sp") + query("SELECT 1 / 0") + _tx_statement(rng, "ROLLBACK TO sp"))
        if open_for:
            open_for -= 1
            if not open_for:
                out.append(_tx_statement(rng, rng.choice(["COMMIT", "ROLLBACK", "COMMIT"])))
    if open_for:
        out.append(_tx_statement(rng, "ROLLBACK"))
    return out


def cuts(seed: int, client: int, requests: list[bytes]) -> list[list[int]]:
    rng = random.Random(seed * 100 + client + 7)
    return [sorted(rng.sample(range(1, len(r)), min(len(r) - 1, rng.randint(0, 3)))) for r in requests]


# --- a client that records what it gets back ------------------------------------------------
def _normal(t: bytes, body: bytes) -> tuple[bytes, bytes]:
    if t in (b"E", b"N"):  # drop the source location fields (F file, L line, R routine)
        fields = [f for f in body.split(b"\0") if f and f[:1] not in (b"F", b"L", b"R")]
        if b"C08P01" in fields:
            # a Bind with the wrong parameter count: transaction pooling's server names its
            # statement by the proxy's name (sluice_s_<hash>), as PgBouncer's names its own
            fields = [_STMT_NAME.sub(b'prepared statement "..."', f) for f in fields]
        return t, b"|".join(fields)
    return t, body


async def _connect(port: int, database: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    params = b"user\0postgres\0database\0" + database.encode() + b"\0\0"
    w.write(struct.pack("!ii", len(params) + 8, 196608) + params)
    await _until_ready(r, [])
    return r, w


async def _read(r: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await asyncio.wait_for(r.readexactly(5), 60)
    return head[:1], await r.readexactly(struct.unpack("!i", head[1:])[0] - 4)


async def _until_ready(r: asyncio.StreamReader, out: list[tuple[bytes, bytes]], count: int = 1) -> None:
    while count:
        t, body = await _read(r)
        if t in (b"S", b"K"):  # ParameterStatus, BackendKeyData: the session's own
            continue
        if t == b"Z":
            count -= 1
        out.append(_normal(t, body))


async def _run(port: int, database: str, requests: list[bytes], splits: list[list[int]]) -> list[tuple[bytes, bytes]]:
    r, w = await _connect(port, database)
    got: list[tuple[bytes, bytes]] = []
    try:
        for i, (req, at) in enumerate(zip(requests, splits, strict=True)):
            got.append((b"#", b"request %d" % i))  # (where each request's answers begin)
            prev = 0
            for c in [*at, len(req)]:
                w.write(req[prev:c])
                await w.drain()
                prev = c
                if c != len(req):
                    await asyncio.sleep(0.002)  # each piece read on its own
            # one ReadyForQuery per Query and per Sync
            n = 0
            pos = 0
            while pos < len(req):
                if req[pos:pos + 1] in (b"Q", b"S"):
                    n += 1
                pos += 1 + struct.unpack("!i", req[pos + 1:pos + 5])[0]
            await _until_ready(r, got, n)
    finally:
        w.write(codec.message(b"X"))
        w.close()
    return got


async def _all(port: int, database: str, seed: int, clients: int) -> list[list[tuple[bytes, bytes]]]:
    progs = [program(seed, i) for i in range(clients)]
    return list(await asyncio.gather(*(_run(port, database, p, cuts(seed, i, p)) for i, p in enumerate(progs))))


@pytest.mark.parametrize("seed", range(1, 1 + int(os.environ.get("SLUICE_FUZZ_SEEDS", "3"))))
@pytest.mark.parametrize("database", ["tx", "sp", "plain", "txcut", "plaincut"],
                         ids=["transaction", "session", "unpooled", "transaction-replies-cut", "unpooled-replies-cut"])
def test_split_messages_get_the_answers_postgresql_gives(pg_cluster: PgCluster, upstream: str, proxy: ServeProcess,
                                                         database: str, seed: int) -> None:
    direct_db = upstream.rsplit("/", 1)[1]
    want = asyncio.run(_all(pg_cluster.port, direct_db, seed, CLIENTS))
    got = asyncio.run(_all(proxy.port, database, seed, CLIENTS))
    for i, (w, g) in enumerate(zip(want, got, strict=True)):
        for j, (a, b) in enumerate(zip(w, g, strict=False)):
            assert b == a, (f"client {i}, message {j}: through sluice {b!r}, PostgreSQL {a!r}; "
                            f"before: {w[max(0, j - 6):j]!r}")
        assert len(g) == len(w), f"client {i}: {len(g)} messages through sluice, {len(w)} from PostgreSQL"
