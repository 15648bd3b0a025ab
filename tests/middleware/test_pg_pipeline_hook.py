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
        yield f"postgresql://postgres@127.0.0.1:{st.port}/x"


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
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{st.port}/x") as c:
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
