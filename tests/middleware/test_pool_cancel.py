"""A pooled client's CancelRequest never cancels another client's statement (issue 12).

A CancelRequest travels over its own connection and PostgreSQL signals the backend a
moment later.  If the statement it was meant for ends meanwhile and the server connection
goes to another client, the signal would cancel that client's statement (found by
``test_pool_differential.py``: a client's ``BEGIN`` failed with "canceling statement due to
user request" sent for another client's statement).  So a connection with a cancel in
flight is given to nobody until PostgreSQL has handled it (closed the cancel connection),
and one whose cancel went unanswered is closed instead of reused.

PostgreSQL's side is a small TCP server here, so that the moment it answers is the test's
to choose.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

from sqlsluice.middleware.pool import Pool
from sqlsluice.middleware.upstream_auth import UpstreamTarget
from tests.middleware.pool_standins import StandInServer


class _Postmaster:
    """Accepts CancelRequests and closes each connection when ``answer`` is set."""

    def __init__(self) -> None:
        self.requests: list[tuple[int, int]] = []
        self.answer = asyncio.Event()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        _n, code, pid, secret = struct.unpack("!iiii", await r.readexactly(16))
        assert code == 80877102
        self.requests.append((pid, secret))
        await self.answer.wait()
        w.close()


async def _pool(pm: _Postmaster, size: int = 1) -> Pool:
    port = await pm.start()
    return Pool(UpstreamTarget("127.0.0.1", port, "app", None, "db"), size=size, total=size)


def test_a_connection_released_during_a_cancel_waits_for_postgresql_to_handle_it() -> None:
    async def run() -> None:
        pm = _Postmaster()
        pool = await _pool(pm)
        c = StandInServer()
        waiter = asyncio.ensure_future(pool.acquire(5.0))  # another client, waiting for the one connection
        await asyncio.sleep(0.01)
        cancel = asyncio.ensure_future(pool.cancel(c))  # type: ignore[arg-type]
        while not pm.requests:
            await asyncio.sleep(0.005)
        assert pm.requests == [(4242, 77)]
        pool.release(c)  # type: ignore[arg-type]  # the cancelled client's transaction ended meanwhile
        await asyncio.sleep(0.05)
        assert not waiter.done() and not pool.idle and c.release_after_cancel  # held back
        pm.answer.set()  # PostgreSQL has signalled the backend
        await cancel
        assert await asyncio.wait_for(waiter, 1.0) is c  # now it goes on, to the waiting client
        assert c.cancelling == 0 and not c.release_after_cancel and not c.conn.closed
        pm.server.close()

    asyncio.run(run())


def test_a_connection_whose_cancel_goes_unanswered_is_closed_not_reused() -> None:
    async def run() -> None:
        pm = _Postmaster()  # never answers
        pool = await _pool(pm, size=2)
        pool.cancel_timeout = 0.1
        released_during, released_after = StandInServer(), StandInServer()
        first = asyncio.ensure_future(pool.cancel(released_during))  # type: ignore[arg-type]
        await asyncio.sleep(0.02)
        pool.release(released_during)  # type: ignore[arg-type]
        await pool.cancel(released_after)  # type: ignore[arg-type]
        await first
        assert released_during.conn.closed and not pool.idle
        assert released_after.cancel_unsettled
        pool.release(released_after)  # type: ignore[arg-type]  # its client's transaction ends later
        assert released_after.conn.closed and not pool.idle
        assert pool.total == 0  # both slots freed for new connections
        pm.answer.set()
        pm.server.close()

    asyncio.run(run())


def test_without_a_cancel_in_flight_release_is_immediate() -> None:
    async def run() -> None:
        pm = _Postmaster()
        pool = await _pool(pm)
        pm.answer.set()
        c = StandInServer()
        await pool.cancel(c)  # type: ignore[arg-type]  # answered: settled
        pool.release(c)  # type: ignore[arg-type]
        assert list(pool.idle) == [c] and not c.conn.closed
        pm.server.close()

    asyncio.run(run())


class _Scanner:
    ready = 0


class _Relay:
    """What PooledCanceller reads of an UpstreamRelay."""

    def __init__(self, server: StandInServer) -> None:
        self.server = server
        self.scanner = _Scanner()
        self.sent_syncs = 1  # one request sent, not answered yet
        self.tasks: list[asyncio.Future[None]] = []

    def _keep_task(self, coro: Any) -> None:
        self.tasks.append(asyncio.ensure_future(coro))


def test_a_cancel_is_sent_again_when_the_statement_had_not_started() -> None:
    """PostgreSQL ignores a cancel that arrives before the statement starts (one just handed
    over from the pool's queue): the canceller sends it once more when, a moment later, the
    client's request still has no answer; not when it has one (the cancel worked, or the
    statement ended), and never for a connection the client no longer holds."""
    from sqlsluice.middleware.upstream import PooledCanceller

    async def run() -> None:
        pm = _Postmaster()
        pm.answer.set()
        pool = await _pool(pm)
        for answered, kept, want in ((False, True, 2), (True, True, 1), (False, False, 1)):
            pm.requests.clear()
            c = StandInServer()
            c.pool = pool  # type: ignore[attr-defined]
            relay = _Relay(c)
            await PooledCanceller(relay).cancel()  # type: ignore[arg-type]
            assert len(pm.requests) == 1  # the first one before the client's cancel is answered
            if answered:
                relay.scanner.ready = 1
            if not kept:
                relay.server = None  # type: ignore[assignment]
            await asyncio.gather(*relay.tasks)
            assert len(pm.requests) == want, (answered, kept)
        pm.server.close()

    asyncio.run(run())
