"""Stand-ins for what :class:`~sqlsluice.middleware.pool.Pool` reads of a ServerConn and its
upstream connection, for the pool's bookkeeping tests (no server needed): ``release`` of an
open one puts it back to idle, ``discard`` closes it, ``cancel`` reads its session's key."""

from __future__ import annotations

import time
from typing import Any


class StandInConn:
    closed = False
    _buf = b""
    on_data: Any = None
    on_lost: Any = None

    def close(self) -> None:
        self.closed = True


class StandInSession:
    pid, secret = 4242, 77


class StandInServer:
    def __init__(self) -> None:
        self.conn = StandInConn()
        self.session = StandInSession()
        self.prepared: set[bytes] = set()
        self.created = self.idle_since = time.monotonic()
        self.applied = ()
        self.cancelling = 0
        self.release_after_cancel = self.cancel_unsettled = False

    def close(self) -> None:
        self.conn.close()
