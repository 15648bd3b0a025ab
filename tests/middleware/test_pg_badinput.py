"""Bad client input over a PostgreSQL upstream: raw bytes on a socket to ``sluice serve``.

Each case gets an ErrorResponse or a closed connection within a second, the server keeps
serving other clients, and nothing reaches the database from the broken statement.
"""

from __future__ import annotations

import socket
import struct
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from sqlsluice.bench.proxy import ServeProcess
from sqlsluice.databases.pgcluster import PgCluster
from sqlsluice.middleware import codec


@pytest.fixture(scope="module")
def upstream(pg_cluster: PgCluster) -> str:
    url = pg_cluster.create_database("pgbad_" + uuid.uuid4().hex[:8])
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("CREATE TABLE victim (x int)")
    return url


@pytest.fixture(scope="module")
def proxy(upstream: str) -> Iterator[ServeProcess]:
    # plain: the product's background rewriter would time the same statement text, which
    # would confound the pg_stat_activity checks below (it is tested in tests/rewriters)
    with ServeProcess(upstream, plain=True) as p:
        yield p


def _startup(port: int, database: str) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    body = struct.pack("!i", codec.PROTOCOL_V3) + b"user\x00postgres\x00database\x00" + database.encode() + b"\x00\x00"
    s.sendall(struct.pack("!i", len(body) + 4) + body)
    buf = b""
    while not buf.endswith(b"Z\x00\x00\x00\x05I"):
        chunk = s.recv(65536)
        assert chunk, f"closed during startup: {buf!r}"
        buf += chunk
    assert buf.startswith(b"R\x00\x00\x00\x08\x00\x00\x00\x00")
    return s


def _messages(data: bytes) -> list[tuple[bytes, bytes]]:
    out = []
    pos = 0
    while pos + 5 <= len(data):
        code, ln = struct.unpack_from("!ci", data, pos)
        out.append((code, data[pos + 5:pos + 1 + ln]))
        pos += 1 + ln
    return out


def _answer(s: socket.socket, timeout: float = 1.0) -> tuple[list[tuple[bytes, bytes]], bool]:
    """What arrives within ``timeout`` s: the messages, and whether the server closed the socket."""
    s.settimeout(0.2)
    deadline = time.monotonic() + timeout
    data = b""
    closed = False
    while time.monotonic() < deadline:
        try:
            chunk = s.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            closed = True
            break
        if not chunk:
            closed = True
            break
        data += chunk
    return _messages(data), closed


def _errors(msgs: list[tuple[bytes, bytes]]) -> list[str]:
    return [codec.parse_error_fields(p).sqlstate for c, p in msgs if c == b"E"]


def _still_serving(proxy: ServeProcess, upstream: str) -> None:
    assert proxy.alive()
    with psycopg.connect(proxy.dsn()) as c:
        assert c.execute("SELECT 'fine'").fetchone() == ("fine",)
    with psycopg.connect(upstream) as c:
        assert c.execute("SELECT count(*) FROM victim").fetchone() == (0,)


BAD = {
    "huge_length": b"Q" + struct.pack("!i", 0x7FFFFFF0) + b"INSERT INTO victim VALUES (1)\x00",
    "length_below_4": b"Q\x00\x00\x00\x02INSERT INTO victim VALUES (1)\x00",
    "unknown_type": b"!\x00\x00\x00\x04" + codec.message(b"Q", b"INSERT INTO victim VALUES (1)\x00"),
    "query_not_nul_terminated": codec.message(b"Q", b"INSERT INTO victim VALUES (1)"),
    "parse_not_nul_terminated": codec.message(b"P", b"\x00INSERT INTO victim VALUES (1)"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_pg_bad_message_errors_or_closes(proxy: ServeProcess, upstream: str, case: str) -> None:
    s = _startup(proxy.port, upstream.rsplit("/", 1)[1])
    try:
        s.sendall(BAD[case])
        msgs, closed = _answer(s)
        assert closed or "08P01" in _errors(msgs), (msgs, closed)
        assert set(_errors(msgs)) <= {"08P01"}
    finally:
        s.close()
    _still_serving(proxy, upstream)


def test_pg_invalid_utf8_is_the_upstreams_error(proxy: ServeProcess, upstream: str) -> None:
    """SQL that is not valid UTF-8 skips the pipeline; PostgreSQL answers 22021 and the session goes on."""
    s = _startup(proxy.port, upstream.rsplit("/", 1)[1])
    try:
        s.sendall(codec.message(b"Q", b"INSERT INTO victim VALUES (1) -- \xff\xfe\x00"))
        msgs, closed = _answer(s)
        assert not closed and _errors(msgs) == ["22021"] and msgs[-1] == (b"Z", b"I")
    finally:
        s.close()
    _still_serving(proxy, upstream)


def test_pg_malformed_bind_is_rejected_by_upstream(proxy: ServeProcess, upstream: str) -> None:
    """Bind is passed through as bytes: the upstream's own ErrorResponse comes back, then the session goes on."""
    s = _startup(proxy.port, upstream.rsplit("/", 1)[1])
    try:
        parse = codec.message(b"P", b"\x00INSERT INTO victim VALUES ($1)\x00\x00\x00")
        bind = codec.message(b"B", b"\x00\x00\x00\x00\x00\x01\x00\x00\x00\x09ab")  # parameter claims 9 bytes
        s.sendall(parse + bind + codec.message(b"E", b"\x00\x00\x00\x00\x00") + codec.message(b"S"))
        msgs, _closed = _answer(s)
        assert "08P01" in _errors(msgs)
        assert msgs[-1] == (b"Z", b"I")
        s.sendall(codec.message(b"Q", b"SELECT 41 + 1\x00"))
        msgs, _closed = _answer(s)
        assert (b"D", b"\x00\x01\x00\x00\x00\x0242") in msgs
    finally:
        s.close()
    _still_serving(proxy, upstream)


def test_pg_truncated_statement_then_vanish(proxy: ServeProcess, upstream: str) -> None:
    msg = codec.message(b"Q", b"INSERT INTO victim VALUES (1)\x00")
    s = _startup(proxy.port, upstream.rsplit("/", 1)[1])
    s.sendall(msg[:len(msg) // 2])
    s.close()
    s = _startup(proxy.port, upstream.rsplit("/", 1)[1])
    s.sendall(msg[:3])  # not even a whole header
    s.close()
    _still_serving(proxy, upstream)


def test_pg_client_vanishes_mid_result(proxy: ServeProcess, upstream: str) -> None:
    """A client that leaves during a large result: the upstream statement is stopped, others go on."""
    s = _startup(proxy.port, upstream.rsplit("/", 1)[1])
    s.sendall(codec.message(b"Q", b"SELECT g, repeat('x', 200), pg_sleep(0.00001) FROM generate_series(1, 2000000) g"
                                  b" /* vanish-test */\x00"))
    assert s.recv(65536)
    s.close()
    _still_serving(proxy, upstream)
    with psycopg.connect(upstream, autocommit=True) as c:
        deadline = time.monotonic() + 30
        while True:
            n = c.execute("SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%vanish-test%' "
                          "AND pid <> pg_backend_pid()").fetchone()
            if n == (0,) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert n == (0,)
