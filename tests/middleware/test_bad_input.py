"""Hostile and broken clients on raw sockets: each gets an ErrorResponse or a closed connection,
and the server keeps serving everyone else."""

from __future__ import annotations

import socket
import struct

import psycopg
import pytest

from sqlsluice.middleware import codec
from sqlsluice.middleware.framing import MessageBuffer


class Raw:
    """A minimal wire client on a plain socket."""

    def __init__(self, server) -> None:
        self.sock = socket.create_connection((server.host, server.port), timeout=10)
        self.buf = MessageBuffer()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def startup(self, user: str = "raw") -> None:
        body = struct.pack("!i", codec.PROTOCOL_V3) + b"user\x00" + user.encode() + b"\x00database\x00x\x00\x00"
        self.send(struct.pack("!i", len(body) + 4) + body)
        self.until(b"Z")

    def recv(self) -> tuple[bytes, bytes] | None:
        """The next message, or None when the server closed the connection."""
        while True:
            m = self.buf.next()
            if m is not None:
                return m
            data = self.sock.recv(65536)
            if not data:
                return None
            self.buf.feed(data)

    def until(self, code: bytes) -> list[tuple[bytes, bytes]]:
        out = []
        while True:
            m = self.recv()
            assert m is not None, f"connection closed before {code!r}; got {out}"
            out.append(m)
            if m[0] == code:
                return out

    def drain_to_close(self) -> list[tuple[bytes, bytes]]:
        out = []
        while True:
            m = self.recv()
            if m is None:
                return out
            out.append(m)

    def close(self) -> None:
        self.sock.close()


def errors(msgs: list[tuple[bytes, bytes]]) -> list[codec.ErrorFields]:
    return [codec.parse_error_fields(p) for c, p in msgs if c == b"E"]


def still_serving(server) -> None:
    with psycopg.connect(server.dsn(), autocommit=True, connect_timeout=10) as c:
        assert c.execute("SELECT 'alive'").fetchone() == ("alive",)


@pytest.fixture()
def raw(server):
    r = Raw(server)
    yield r
    r.close()
    still_serving(server)


def test_query_without_terminator_is_an_error_and_the_session_goes_on(raw):
    raw.startup()
    raw.send(codec.message(b"Q", b"SELECT 1"))  # no NUL
    msgs = raw.until(b"Z")
    assert [e.sqlstate for e in errors(msgs)] == ["08P01"]
    raw.send(codec.message(b"Q", b"SELECT 7\x00"))
    msgs = raw.until(b"Z")
    assert [c for c, _ in msgs] == [b"T", b"D", b"C", b"Z"]


def test_two_gigabyte_length_is_refused_at_once(raw):
    raw.startup()
    raw.send(b"Q" + struct.pack("!I", 2**31 - 1))
    msgs = raw.drain_to_close()
    errs = errors(msgs)
    assert errs and errs[0].sqlstate == "08P01" and errs[0].severity == "FATAL"


def test_length_below_four_is_refused(raw):
    raw.startup()
    raw.send(b"Q" + struct.pack("!i", 2))
    assert errors(raw.drain_to_close())[0].sqlstate == "08P01"


def test_unknown_message_type_closes_with_fatal(raw):
    raw.startup()
    raw.send(codec.message(b"z", b"junk"))
    errs = errors(raw.drain_to_close())
    assert errs[0].sqlstate == "08P01" and errs[0].severity == "FATAL"


def test_truncated_message_then_eof_closes(raw):
    raw.startup()
    raw.send(b"Q" + struct.pack("!i", 100) + b"SELECT")
    raw.sock.shutdown(socket.SHUT_WR)
    assert raw.drain_to_close() == []


def test_protocol_2_startup_is_refused(raw):
    body = struct.pack("!i", 2 << 16) + b"user\x00raw\x00\x00"
    raw.send(struct.pack("!i", len(body) + 4) + body)
    errs = errors(raw.drain_to_close())
    assert errs[0].sqlstate == "0A000" and "protocol" in errs[0].message


def test_absurd_startup_length_closes(raw):
    raw.send(struct.pack("!i", 2**31 - 1))
    assert errors(raw.drain_to_close())[0].sqlstate == "08P01"


def test_garbage_startup_packet(raw):
    raw.send(struct.pack("!ii", 12, codec.PROTOCOL_V3) + b"user")  # no terminator
    assert errors(raw.drain_to_close())[0].sqlstate == "08P01"


def test_extended_error_skips_to_sync(raw):
    raw.startup()
    raw.send(codec.message(b"P", b"\x00SELEC 1\x00\x00\x00") + codec.message(b"B", b"\x00\x00\x00\x00\x00\x00\x00\x00")
             + codec.message(b"E", b"\x00\x00\x00\x00\x00") + codec.message(b"S"))
    msgs = raw.until(b"Z")
    # Parse is accepted (SQL is checked when it runs), the error comes once, the rest is skipped
    assert [c for c, _ in msgs].count(b"E") == 1 and msgs[-1] == (b"Z", b"I")
    raw.send(codec.message(b"Q", b"SELECT 1\x00"))
    assert [c for c, _ in raw.until(b"Z")] == [b"T", b"D", b"C", b"Z"]


def test_bind_with_wrong_parameter_count(raw):
    raw.startup()
    raw.send(codec.message(b"P", b"s1\x00SELECT $1::INTEGER\x00\x00\x00")
             + codec.message(b"B", b"\x00s1\x00\x00\x00\x00\x00\x00\x00") + codec.message(b"S"))
    msgs = raw.until(b"Z")
    assert [e.sqlstate for e in errors(msgs)] == ["08P01"]


def test_unknown_statement_and_portal(raw):
    raw.startup()
    raw.send(codec.message(b"B", b"\x00nope\x00\x00\x00\x00\x00\x00\x00") + codec.message(b"S")
             + codec.message(b"E", b"nope\x00\x00\x00\x00\x00") + codec.message(b"S"))
    msgs = raw.until(b"Z") + raw.until(b"Z")
    assert [e.sqlstate for e in errors(msgs)] == ["26000", "34000"]


def test_client_vanishing_mid_result(server):
    r = Raw(server)
    r.startup()
    r.send(codec.message(b"Q", b"SELECT range AS x, repeat('y', 200) AS pad FROM range(3000000)\x00"))
    assert r.recv()[0] == b"T"
    r.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST on close
    r.close()
    still_serving(server)
    with psycopg.connect(server.dsn(), autocommit=True) as c:
        assert c.execute("SELECT count(*) FROM range(1000)").fetchone() == (1000,)


def test_cancel_request_with_a_bad_key_is_ignored(server):
    r = Raw(server)
    r.send(struct.pack("!iiii", 16, codec.CANCEL_REQUEST_CODE, 12345, 678))
    assert r.drain_to_close() == []
    r.close()
    still_serving(server)


def test_empty_query_and_terminate(raw):
    raw.startup()
    raw.send(codec.message(b"Q", b"  \x00"))
    assert [c for c, _ in raw.until(b"Z")] == [b"I", b"Z"]
    raw.send(codec.message(b"X"))
    assert raw.drain_to_close() == []


@pytest.mark.parametrize("seed", range(12))
def test_random_garbage_after_startup(server, seed):
    """Random typed messages: the server answers with errors or closes, and never hangs."""
    import random

    rnd = random.Random(seed)
    r = Raw(server)
    try:
        r.startup()
        for _ in range(5):
            code = bytes([rnd.choice(b"QPBDECSHpdcfzZ\x00")])
            payload = bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 40)))
            r.send(codec.message(code, payload))
        r.send(codec.message(b"S") + codec.message(b"Q", b"SELECT 'end'\x00"))
        msgs = []
        while True:  # until the final answer or a close
            m = r.recv()
            if m is None:
                break
            msgs.append(m)
            if m[0] == b"D" and m[1].endswith(b"end"):
                break
        assert msgs, "no reply at all"
    except (ConnectionResetError, BrokenPipeError):
        pass  # the server closed on a FATAL protocol violation while we were still writing
    finally:
        r.close()
    still_serving(server)
