"""Pool waiters (issue 12, transaction pooling under more clients than ``pool_size``): a
client that waits gets a connection handed over, a FATAL-worthy 53300 when
``query_wait_timeout`` runs out, or nothing at all when its task is cancelled; in no case
does the pool lose a connection or a slot, or keep a stale waiter.

No server is needed for the bookkeeping: the connections handed around are stand-ins the
pool only counts (``release`` of an open one puts it back to idle).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sqlsluice.middleware.pool import Pool, PoolTimeout
from sqlsluice.middleware.upstream_auth import UpstreamTarget
from tests.middleware.pool_standins import StandInServer


def _full_pool() -> Pool:
    """A pool whose one slot is taken (every acquire waits)."""
    return Pool(UpstreamTarget("127.0.0.1", 1, "app", None, "db"), size=1, total=1)


def test_a_waiter_times_out_with_53300_and_is_forgotten() -> None:
    async def run() -> None:
        pool = _full_pool()
        with pytest.raises(PoolTimeout) as e:
            await pool.acquire(0.05)
        assert e.value.sqlstate == "53300" and "query_wait_timeout" in e.value.message
        assert not pool.waiters and not pool.wait_since

    asyncio.run(run())


def test_a_connection_released_goes_to_the_first_waiter_in_order() -> None:
    async def run() -> None:
        pool = _full_pool()
        got: list[tuple[int, Any]] = []

        async def wait(i: int) -> None:
            got.append((i, await pool.acquire(5.0)))

        tasks = [asyncio.ensure_future(wait(i)) for i in range(3)]
        await asyncio.sleep(0.01)
        assert len(pool.waiters) == 3
        servers = [StandInServer() for _ in range(3)]
        for s in servers:
            pool.release(s)  # type: ignore[arg-type]
        await asyncio.gather(*tasks)
        assert got == [(0, servers[0]), (1, servers[1]), (2, servers[2])]
        assert not pool.waiters and not pool.wait_since and not pool.idle

    asyncio.run(run())


def test_a_cancelled_waiter_leaves_no_trace_and_loses_nothing() -> None:
    async def run() -> None:
        pool = _full_pool()
        t = asyncio.ensure_future(pool.acquire(5.0))
        await asyncio.sleep(0.01)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        assert not pool.waiters and not pool.wait_since
        # a connection handed over in the same loop turn as the cancel is not lost
        t = asyncio.ensure_future(pool.acquire(5.0))
        await asyncio.sleep(0.01)
        s = StandInServer()
        pool.release(s)  # type: ignore[arg-type]  # the waiter's future now holds s
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        assert list(pool.idle) == [s] and not pool.waiters

    asyncio.run(run())


def test_many_waiters_time_out_without_slowing_down() -> None:
    """A thousand clients that all time out (the error path once built each waiting
    Future's repr)."""
    async def run() -> None:
        pool = _full_pool()
        results = await asyncio.gather(*(pool.acquire(0.05) for _ in range(1000)), return_exceptions=True)
        assert all(isinstance(r, PoolTimeout) for r in results)
        assert not pool.waiters and not pool.wait_since

    asyncio.run(run())


class _Relay:
    """What a passthrough waiter (``upstream._Waiter``) calls on its session."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self.expired: list[Any] = []
        self.handed: list[tuple[Any, bytes]] = []

    def _wait_expired(self, w: Any) -> None:
        self._pool.waiters.remove(w)
        self.expired.append(w)

    def _handed(self, c: Any, data: bytes) -> None:
        self.handed.append((c, data))


def test_passthrough_waiters_expire_at_their_own_deadlines_and_are_handed_in_order() -> None:
    from sqlsluice.middleware.upstream import _Waiter

    async def run() -> None:
        pool = _full_pool()
        relay = _Relay(pool)
        slow = _Waiter(relay, b"slow", 5.0)  # type: ignore[arg-type]
        pool.waiters.append(slow)
        fast = _Waiter(relay, b"fast", 0.05)  # type: ignore[arg-type]  # (a reload shortened the timeout)
        pool.waiters.append(fast)
        later = _Waiter(relay, b"later", 5.0)  # type: ignore[arg-type]
        pool.waiters.append(later)
        await asyncio.sleep(0.3)
        assert relay.expired == [fast] and list(pool.waiters) == [slow, later]
        s1, s2 = StandInServer(), StandInServer()
        pool.release(s1)  # type: ignore[arg-type]
        pool.release(s2)  # type: ignore[arg-type]
        assert relay.handed == [(s1, b"slow"), (s2, b"later")]
        assert not pool.waiters and not pool.wait_since and not pool.idle
        assert pool.expiry is not None  # the 5 s timer, harmless with nobody left
        pool.expiry.cancel()

    asyncio.run(run())
