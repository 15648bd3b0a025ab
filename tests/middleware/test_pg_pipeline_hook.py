"""The statement pipeline over a PostgreSQL upstream: Forward with rewritten SQL, Reply, errors.

A server with an extra pipeline stage runs in-process (``ServerThread``) in front of the
shared real PostgreSQL; the clients are real psycopg and asyncpg connections.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import psycopg
import pytest

from sqlsluice.config import Config
from sqlsluice.databases.base import ColumnInfo
from sqlsluice.errors import FeatureNotSupported
from sqlsluice.middleware.pipeline import Decision, Forward, Pipeline, Reply, SessionContext, default_pipeline
from sqlsluice.middleware.server import ServerThread, SluiceServer


async def rewrite_stage(ctx: SessionContext, sql: str, extended: bool) -> Decision | None:
    if "/*+slow*/" in sql:  # a stage that really waits (an LLM call, a cache lookup over the network)
        await asyncio.sleep(0.2)
        return Forward(sql.replace("/*+slow*/", "+ 1"))
    if "/*+double*/" in sql:
        return Forward(sql.replace("/*+double*/", "* 2"), info={"rule": "double"})
    if sql.startswith("ASK "):
        return Reply([ColumnInfo("answer", "INTEGER"), ColumnInfo("why", "VARCHAR")], [(42, "it's known")], "SELECT")
    if "forbidden" in sql:
        raise FeatureNotSupported("forbidden statements are not supported here")
    return None


def _pipeline() -> Pipeline:
    p = default_pipeline()
    p.append(rewrite_stage)
    return p


@pytest.fixture(scope="module")
def dsn(pg_cluster) -> Iterator[str]:  # type: ignore[no-untyped-def]
    import uuid

    url = pg_cluster.create_database("pghook_" + uuid.uuid4().hex[:8])
    server = SluiceServer(Config(), backend_url=url, pipeline_factory=_pipeline)
    with ServerThread(server) as st:
        yield f"postgresql://postgres@127.0.0.1:{st.port}/{url.rsplit('/', 1)[1]}"


def test_pg_forward_rewrites_query_and_parse(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as c:
        assert c.execute("SELECT 21 /*+double*/").fetchone() == (42,)
        last = dict(c.execute("SHOW sluice.last").fetchall())
        assert last["forwarded_sql"] == "SELECT 21 * 2" and last["rule"] == "double"
        # extended protocol: the rewrite happens at Parse and the parameter count is kept
        assert c.execute("SELECT %s::int /*+double*/", [5]).fetchone() == (10,)
        for _ in range(3):
            assert c.execute("SELECT %s::int /*+double*/", [7], prepare=True).fetchone() == (14,)


def test_pg_reply_answers_locally_in_both_protocols(dsn: str) -> None:
    with psycopg.connect(dsn) as c:
        c.execute("SELECT 1")  # open a transaction: local answers carry the upstream's status
        cur = c.execute("ASK 'what is the answer'")
        assert cur.fetchall() == [(42, "it's known")] and [d.name for d in cur.description] == ["answer", "why"]
        assert c.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        assert c.execute("ASK 'again'", prepare=True).fetchall() == [(42, "it's known")]
        c.rollback()

    async def main() -> None:
        import asyncpg

        con = await asyncpg.connect(dsn)
        try:
            row = await con.fetchrow("ASK 'binary please'")
            assert tuple(row) == (42, "it's known")
        finally:
            await con.close()

    asyncio.run(main())


def test_pg_pipeline_error_in_a_pipelined_batch(dsn: str) -> None:
    """Errors keep their place: earlier statements of the batch are answered first."""
    with psycopg.connect(dsn, autocommit=True) as c:
        with c.pipeline() as p:
            r1 = c.execute("SELECT %s::int /*+double*/", [1])
            with pytest.raises(psycopg.errors.FeatureNotSupported, match="forbidden"):
                c.execute("SELECT 'forbidden', %s::int", [2])
                p.sync()
            assert r1.fetchone() == (2,)
        assert c.execute("SELECT 'after'").fetchone() == ("after",)


def test_pg_stream_mode_fallback(pg_cluster, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """When the client transport cannot be taken over, the StreamReader path does the same job."""
    from sqlsluice.middleware import upstream

    monkeypatch.setattr(upstream.UpstreamRelay, "_take_over_client", lambda self: False)
    url = pg_cluster.create_database("pgstream_" + __import__("uuid").uuid4().hex[:8])
    with ServerThread(SluiceServer(Config(), backend_url=url, pipeline_factory=_pipeline)) as st:
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{st.port}/{url.rsplit('/', 1)[1]}") as c:
            assert c.execute("SELECT 21 /*+double*/").fetchone() == (42,)
            assert c.execute("SELECT %s::int /*+double*/", [4], prepare=True).fetchone() == (8,)
            assert c.execute("ASK 'x'").fetchone() == (42, "it's known")
            c.execute("CREATE TABLE s (x int)")
            with c.cursor().copy("COPY s FROM STDIN") as cp:
                for i in range(1000):
                    cp.write_row((i,))
            assert c.execute("SELECT sum(x) FROM s").fetchone() == (499500,)
            with pytest.raises(psycopg.errors.FeatureNotSupported):
                c.execute("SELECT 'forbidden'")
            c.rollback()
            assert len(c.execute("SELECT repeat('x', 1000) FROM generate_series(1, 5000)").fetchall()) == 5000


def test_pg_waiting_stage_keeps_answers_in_order(dsn: str) -> None:
    """A stage that awaits: statements sent meanwhile wait their turn; answers come back in order."""
    import socket
    import struct

    from sqlsluice.middleware import codec

    port = int(dsn.split(":")[2].split("/")[0])
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    body = struct.pack("!i", codec.PROTOCOL_V3) + b"user\x00postgres\x00\x00"
    s.sendall(struct.pack("!i", len(body) + 4) + body)
    buf = b""
    while not buf.endswith(b"Z\x00\x00\x00\x05I"):
        buf += s.recv(65536)
    s.sendall(codec.message(b"Q", b"SELECT 1 /*+slow*/\x00"))
    s.sendall(codec.message(b"Q", b"SELECT 10\x00"))
    s.sendall(codec.message(b"Q", b"SELECT 2 /*+slow*/\x00") + codec.message(b"Q", b"SELECT 20\x00"))
    data = b""
    while data.count(b"Z\x00\x00\x00\x05I") < 4:
        chunk = s.recv(65536)
        assert chunk
        data += chunk
    s.close()
    rows = []
    pos = 0
    while pos < len(data):
        code, ln = struct.unpack_from("!ci", data, pos)
        if code == b"D":
            rows.append(data[pos + 11:pos + 1 + ln].decode())
        pos += 1 + ln
    assert rows == ["2", "10", "3", "20"]
