"""An I/O-free protocol state machine for one client connection (after asyncpg's CoreProtocol).

It knows the connection's phase and which messages each phase admits, the transaction
status reported in ReadyForQuery, and the extended-protocol error rule: after an error,
every message up to the next Sync is skipped.  Handlers ask it what to do with each
incoming message type and tell it what happened; it performs no I/O.

>>> st = ProtocolState()
>>> st.start_auth(); st.authenticated()
>>> st.admit(b"P"), st.admit(b"S")
('handle', 'handle')
>>> st.error(extended=True); st.admit(b"B"), st.admit(b"S")
('skip', 'handle')
>>> st.synced(); st.admit(b"B")
'handle'
"""

from __future__ import annotations

import enum
from typing import Literal

from sqlsluice.errors import ProtocolViolation
from sqlsluice.middleware import codec


class Phase(enum.Enum):
    STARTUP = "startup"  # waiting for SSLRequest/StartupMessage/CancelRequest
    AUTH = "auth"  # waiting for a PasswordMessage/SASL response
    READY = "ready"  # normal operation (simple or extended protocol)
    COPY_IN = "copy_in"  # receiving CopyData until CopyDone/CopyFail
    CLOSED = "closed"


_ALLOWED = {
    Phase.AUTH: frozenset({codec.PASSWORD, codec.TERMINATE}),
    Phase.READY: frozenset({codec.QUERY, codec.PARSE, codec.BIND, codec.DESCRIBE, codec.EXECUTE, codec.CLOSE,
                            codec.SYNC, codec.FLUSH, codec.TERMINATE, codec.FUNCTION_CALL,
                            # stray copy messages outside COPY are ignored, as PostgreSQL does
                            codec.COPY_DATA, codec.COPY_DONE, codec.COPY_FAIL}),
    Phase.COPY_IN: frozenset({codec.COPY_DATA, codec.COPY_DONE, codec.COPY_FAIL, codec.FLUSH, codec.SYNC,
                              codec.TERMINATE}),
}
_EXTENDED = frozenset({codec.PARSE, codec.BIND, codec.DESCRIBE, codec.EXECUTE, codec.CLOSE, codec.FLUSH})

Action = Literal["handle", "skip", "ignore"]


class ProtocolState:
    """Phase, error-skip flag and transaction status of one connection."""

    __slots__ = ("phase", "skipping", "tx_status", "in_extended")

    def __init__(self) -> None:
        self.phase = Phase.STARTUP
        self.skipping = False
        self.tx_status: bytes = codec.IDLE
        self.in_extended = False  # an extended-protocol batch is open (awaiting Sync)

    # --- transitions ---------------------------------------------------------------
    def start_auth(self) -> None:
        self._expect(Phase.STARTUP)
        self.phase = Phase.AUTH

    def authenticated(self) -> None:
        self._expect(Phase.AUTH)
        self.phase = Phase.READY

    def copy_in(self) -> None:
        self._expect(Phase.READY)
        self.phase = Phase.COPY_IN

    def copy_done(self) -> None:
        self._expect(Phase.COPY_IN)
        self.phase = Phase.READY

    def close(self) -> None:
        self.phase = Phase.CLOSED

    def _expect(self, phase: Phase) -> None:
        if self.phase is not phase:
            raise ProtocolViolation(f"unexpected protocol transition from {self.phase.value}")

    # --- per message -----------------------------------------------------------------
    def admit(self, code: bytes) -> Action:
        """What to do with a message of this type in the current state.

        Unknown or out-of-phase types raise :class:`ProtocolViolation` (the connection is
        then closed with a FATAL ErrorResponse, as PostgreSQL does).
        """
        allowed = _ALLOWED.get(self.phase)
        if allowed is None or code not in allowed:
            if code in codec.FRONTEND_TYPES:
                raise ProtocolViolation(f"unexpected message type {code!r} in phase {self.phase.value}")
            raise ProtocolViolation(f"invalid frontend message type {code[0] if code else 0}")
        if self.phase is Phase.READY:
            if code in _EXTENDED:
                if code == codec.FLUSH:
                    return "handle"  # Flush is honoured even while skipping
                self.in_extended = True
                return "skip" if self.skipping else "handle"
            if code in (codec.COPY_DATA, codec.COPY_DONE, codec.COPY_FAIL):
                return "ignore"
            if code == codec.QUERY:
                self.in_extended = False  # a simple Query is answered (and flushed) at once
        return "handle"

    def error(self, *, extended: bool) -> None:
        """An error was reported; in the extended protocol skip until Sync."""
        if extended:
            self.skipping = True
        if self.tx_status == codec.IN_TRANSACTION:
            self.tx_status = codec.FAILED

    def synced(self) -> None:
        """A Sync was processed: stop skipping; the batch is closed."""
        self.skipping = False
        self.in_extended = False

    def set_transaction(self, in_transaction: bool, failed: bool) -> None:
        self.tx_status = codec.FAILED if failed else codec.IN_TRANSACTION if in_transaction else codec.IDLE
