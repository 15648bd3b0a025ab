"""Framing: turn a byte stream into complete protocol messages.

:class:`MessageBuffer` is fed raw bytes as they arrive and yields ``(type, payload)``
pairs for each complete message; in the startup phase (``startup=True``) messages have
no type byte and yield ``(b"", payload)``.  Lengths below 4 or above :data:`MAX_MESSAGE`
raise :class:`~sqlsluice.errors.ProtocolViolation` at once, before any payload arrives,
so a 2 GB length field never makes the server wait or allocate.

>>> buf = MessageBuffer()
>>> buf.feed(b"Q\\x00\\x00\\x00\\x0dSELECT 1\\x00X\\x00\\x00")
>>> list(buf)
[(b'Q', b'SELECT 1\\x00')]
>>> buf.feed(b"\\x00\\x04")
>>> list(buf)
[(b'X', b'')]
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterator

from sqlsluice.errors import ProtocolViolation

MAX_MESSAGE = 1 << 30  # PostgreSQL's own limit for a message (1 GB)
MAX_STARTUP = 10000  # PostgreSQL: MAX_STARTUP_PACKET_LENGTH

_I = struct.Struct("!i")
_TYPED = struct.Struct("!ci")


class MessageBuffer:
    """Incremental framing buffer.  Not thread-safe; one per connection direction."""

    __slots__ = ("_buf", "_pos", "startup", "max_message")

    def __init__(self, *, startup: bool = False, max_message: int = MAX_MESSAGE) -> None:
        self._buf = bytearray()
        self._pos = 0
        self.startup = startup
        self.max_message = max_message

    def feed(self, data: bytes) -> None:
        if self._pos:
            del self._buf[:self._pos]
            self._pos = 0
        self._buf += data

    def pending(self) -> int:
        """Bytes buffered but not yet yielded."""
        return len(self._buf) - self._pos

    def take_raw(self) -> bytes:
        """Remove and return everything not yet yielded (e.g. to hand over to another reader)."""
        out = bytes(self._buf[self._pos:])
        self._buf.clear()
        self._pos = 0
        return out

    def next(self) -> tuple[bytes, bytes] | None:
        """The next complete message, or None when more bytes are needed."""
        buf = self._buf
        pos = self._pos
        avail = len(buf) - pos
        if self.startup:
            if avail < 4:
                return None
            (length,) = _I.unpack_from(buf, pos)
            if length < 8 or length > MAX_STARTUP:
                raise ProtocolViolation(f"invalid length of startup packet: {length}")
            if avail < length:
                return None
            payload = bytes(buf[pos + 4:pos + length])
            self._pos = pos + length
            return b"", payload
        if avail < 5:
            return None
        code, length = _TYPED.unpack_from(buf, pos)
        if length < 4 or length > self.max_message:
            raise ProtocolViolation(f"invalid message length {length} for message type {code!r}")
        end = pos + 1 + length
        if len(buf) < end:
            return None
        payload = bytes(buf[pos + 5:end])
        self._pos = end
        return code, payload

    def __iter__(self) -> Iterator[tuple[bytes, bytes]]:
        while True:
            m = self.next()
            if m is None:
                return
            yield m


async def read_startup(reader: asyncio.StreamReader) -> bytes:
    """Read one startup-phase packet (no type byte); return its payload."""
    head = await reader.readexactly(4)
    (length,) = _I.unpack(head)
    if length < 8 or length > MAX_STARTUP:
        raise ProtocolViolation(f"invalid length of startup packet: {length}")
    return await reader.readexactly(length - 4)


async def read_message(reader: asyncio.StreamReader, max_message: int = MAX_MESSAGE) -> tuple[bytes, bytes]:
    """Read one typed message; ``(type, payload)``.  Raises IncompleteReadError at EOF."""
    head = await reader.readexactly(5)
    code, length = _TYPED.unpack(head)
    if length < 4 or length > max_message:
        raise ProtocolViolation(f"invalid message length {length} for message type {code!r}")
    payload = await reader.readexactly(length - 4) if length > 4 else b""
    return code, payload
