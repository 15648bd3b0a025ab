"""PostgreSQL protocol v3 message codes, backend message builders, frontend message parsers.

Pure functions over bytes (no I/O), after asyncpg's ``protocol/codecs`` layer.
Builders return the complete message (type byte + length + payload).  Parsers take the
payload of one message (what :class:`sqlsluice.middleware.framing.MessageBuffer` yields)
and return a small frozen dataclass; malformed payloads raise
:class:`~sqlsluice.errors.ProtocolViolation`.

>>> ready_for_query(b"I")
b'Z\\x00\\x00\\x00\\x05I'
>>> parse_query(b"SELECT 1\\x00").sql
'SELECT 1'
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from sqlsluice.errors import ProtocolViolation
from sqlsluice.logs import mask

# --- message type codes -------------------------------------------------------------
# frontend
QUERY = b"Q"
PARSE = b"P"
BIND = b"B"
DESCRIBE = b"D"
EXECUTE = b"E"
CLOSE = b"C"
SYNC = b"S"
FLUSH = b"H"
TERMINATE = b"X"
PASSWORD = b"p"  # PasswordMessage, SASLInitialResponse, SASLResponse, GSSResponse
COPY_DATA = b"d"
COPY_DONE = b"c"
COPY_FAIL = b"f"
FUNCTION_CALL = b"F"
FRONTEND_TYPES = frozenset(b"QPBDECSHXpdcfF")
EXTENDED_TYPES = frozenset(b"PBDECH")  # skipped after an error until Sync

# backend
AUTHENTICATION = b"R"
PARAMETER_STATUS = b"S"
BACKEND_KEY_DATA = b"K"
READY_FOR_QUERY = b"Z"
ROW_DESCRIPTION = b"T"
DATA_ROW = b"D"
COMMAND_COMPLETE = b"C"
EMPTY_QUERY_RESPONSE = b"I"
ERROR_RESPONSE = b"E"
NOTICE_RESPONSE = b"N"
PARSE_COMPLETE = b"1"
BIND_COMPLETE = b"2"
CLOSE_COMPLETE = b"3"
NO_DATA = b"n"
PARAMETER_DESCRIPTION = b"t"
PORTAL_SUSPENDED = b"s"
COPY_IN_RESPONSE = b"G"
COPY_OUT_RESPONSE = b"H"
COPY_BOTH_RESPONSE = b"W"
NOTIFICATION_RESPONSE = b"A"
NEGOTIATE_PROTOCOL_VERSION = b"v"

# startup-phase request codes (in place of the protocol version)
PROTOCOL_V3 = 196608  # 3 << 16
SSL_REQUEST_CODE = 80877103
GSSENC_REQUEST_CODE = 80877104
CANCEL_REQUEST_CODE = 80877102

# authentication sub-codes
AUTH_OK = 0
AUTH_CLEARTEXT = 3
AUTH_MD5 = 5
AUTH_SASL = 10
AUTH_SASL_CONTINUE = 11
AUTH_SASL_FINAL = 12

# transaction status in ReadyForQuery
IDLE = b"I"
IN_TRANSACTION = b"T"
FAILED = b"E"

_I = struct.Struct("!i")
_H = struct.Struct("!h")
_HdrI = struct.Struct("!ci")
_I_pack = _I.pack
_H_pack = _H.pack


def message(code: bytes, payload: bytes = b"") -> bytes:
    """One backend message: type byte, int32 length (self-inclusive), payload."""
    return code + _I_pack(len(payload) + 4) + payload


def cstr(s: str) -> bytes:
    return s.encode() + b"\x00"


# --- backend message builders --------------------------------------------------------
def authentication_ok() -> bytes:
    return message(AUTHENTICATION, _I_pack(AUTH_OK))


def authentication_cleartext() -> bytes:
    return message(AUTHENTICATION, _I_pack(AUTH_CLEARTEXT))


def authentication_md5(salt: bytes) -> bytes:
    if len(salt) != 4:
        raise ValueError("md5 salt must be 4 bytes")
    return message(AUTHENTICATION, _I_pack(AUTH_MD5) + salt)


def authentication_sasl(mechanisms: Sequence[str] = ("SCRAM-SHA-256",)) -> bytes:
    return message(AUTHENTICATION, _I_pack(AUTH_SASL) + b"".join(cstr(m) for m in mechanisms) + b"\x00")


def authentication_sasl_continue(data: bytes) -> bytes:
    return message(AUTHENTICATION, _I_pack(AUTH_SASL_CONTINUE) + data)


def authentication_sasl_final(data: bytes) -> bytes:
    return message(AUTHENTICATION, _I_pack(AUTH_SASL_FINAL) + data)


def parameter_status(name: str, value: str) -> bytes:
    return message(PARAMETER_STATUS, cstr(name) + cstr(value))


def backend_key_data(pid: int, secret: int) -> bytes:
    return message(BACKEND_KEY_DATA, struct.pack("!ii", pid, secret))


_RFQ = {s: message(READY_FOR_QUERY, s) for s in (IDLE, IN_TRANSACTION, FAILED)}


def ready_for_query(status: bytes = IDLE) -> bytes:
    """``status`` is ``b"I"`` (idle), ``b"T"`` (in a transaction) or ``b"E"`` (failed transaction)."""
    return _RFQ[status]


@dataclass(frozen=True)
class FieldDescription:
    """One column of a RowDescription."""

    name: str
    type_oid: int
    type_size: int = -1
    type_modifier: int = -1
    format: int = 0  # 0 text, 1 binary
    table_oid: int = 0
    column_attr: int = 0


_FIELD = struct.Struct("!ihihih")


def row_description(fields: Sequence[FieldDescription]) -> bytes:
    parts = [_H_pack(len(fields))]
    for f in fields:
        parts.append(cstr(f.name))
        parts.append(_FIELD.pack(f.table_oid, f.column_attr, f.type_oid, f.type_size, f.type_modifier, f.format))
    return message(ROW_DESCRIPTION, b"".join(parts))


_NULL_CELL = _I_pack(-1)


def data_row(cells: Sequence[bytes | None]) -> bytes:
    """One DataRow from already-encoded cells (``None`` is SQL NULL)."""
    parts = [_H_pack(len(cells))]
    for c in cells:
        if c is None:
            parts.append(_NULL_CELL)
        else:
            parts.append(_I_pack(len(c)))
            parts.append(c)
    payload = b"".join(parts)
    return b"D" + _I_pack(len(payload) + 4) + payload


def parse_data_row_text(payload: bytes) -> list[str | None]:
    """The cells of a DataRow payload in text format, decoded (``None`` is SQL NULL):
    the inverse of :func:`data_row` for the proxy's own queries upstream."""
    n, pos = _H.unpack_from(payload)[0], 2
    row: list[str | None] = []
    for _ in range(n):
        ln = _I.unpack_from(payload, pos)[0]
        pos += 4
        row.append(None if ln < 0 else payload[pos:pos + ln].decode())
        pos += max(ln, 0)
    return row


def command_complete(tag: str) -> bytes:
    return message(COMMAND_COMPLETE, cstr(tag))


def empty_query_response() -> bytes:
    return message(EMPTY_QUERY_RESPONSE)


def _fields(severity: str, sqlstate: str, msg: str, detail: str | None, hint: str | None,
            position: int | None) -> bytes:
    parts = [b"S", cstr(severity), b"V", cstr(severity), b"C", cstr(sqlstate), b"M", cstr(msg)]
    if detail:
        parts += [b"D", cstr(detail)]
    if hint:
        parts += [b"H", cstr(hint)]
    if position:
        parts += [b"P", cstr(str(position))]
    parts.append(b"\x00")
    return b"".join(parts)


def error_response(sqlstate: str, msg: str, *, severity: str = "ERROR", detail: str | None = None,
                   hint: str | None = None, position: int | None = None) -> bytes:
    """An ErrorResponse; passwords and configured secrets in its texts are masked (sqlsluice.logs)."""
    return message(ERROR_RESPONSE, _fields(severity, sqlstate, mask(msg), mask(detail) if detail else None,
                                           mask(hint) if hint else None, position))


def notice_response(msg: str, *, severity: str = "NOTICE", sqlstate: str = "00000", detail: str | None = None,
                    hint: str | None = None) -> bytes:
    return message(NOTICE_RESPONSE, _fields(severity, sqlstate, msg, detail, hint, None))


def parse_complete() -> bytes:
    return b"1\x00\x00\x00\x04"


def bind_complete() -> bytes:
    return b"2\x00\x00\x00\x04"


def close_complete() -> bytes:
    return b"3\x00\x00\x00\x04"


def no_data() -> bytes:
    return b"n\x00\x00\x00\x04"


def portal_suspended() -> bytes:
    return b"s\x00\x00\x00\x04"


def parameter_description(oids: Sequence[int]) -> bytes:
    return message(PARAMETER_DESCRIPTION, _H_pack(len(oids)) + b"".join(_I_pack(o) for o in oids))


def _copy_response(code: bytes, overall_format: int, column_formats: Sequence[int]) -> bytes:
    return message(code, struct.pack("!bh", overall_format, len(column_formats))
                   + b"".join(_H_pack(f) for f in column_formats))


def copy_in_response(overall_format: int, column_formats: Sequence[int]) -> bytes:
    return _copy_response(COPY_IN_RESPONSE, overall_format, column_formats)


def copy_out_response(overall_format: int, column_formats: Sequence[int]) -> bytes:
    return _copy_response(COPY_OUT_RESPONSE, overall_format, column_formats)


def copy_data(data: bytes) -> bytes:
    return message(COPY_DATA, data)


def copy_done() -> bytes:
    return b"c\x00\x00\x00\x04"


def negotiate_protocol_version(minor: int, unrecognized: Sequence[str]) -> bytes:
    return message(NEGOTIATE_PROTOCOL_VERSION,
                   _I_pack(minor) + _I_pack(len(unrecognized)) + b"".join(cstr(o) for o in unrecognized))


# --- frontend message parsers ----------------------------------------------------------
class Reader:
    """Cursor over one message payload; every read past the end is a ProtocolViolation."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _need(self, n: int) -> None:
        if n < 0 or self.pos + n > len(self.data):
            raise ProtocolViolation("invalid message format: message is truncated")

    def int16(self) -> int:
        self._need(2)
        v: int = _H.unpack_from(self.data, self.pos)[0]
        self.pos += 2
        return v

    def int32(self) -> int:
        self._need(4)
        v: int = _I.unpack_from(self.data, self.pos)[0]
        self.pos += 4
        return v

    def byte(self) -> bytes:
        self._need(1)
        v = self.data[self.pos:self.pos + 1]
        self.pos += 1
        return v

    def take(self, n: int) -> bytes:
        self._need(n)
        v = self.data[self.pos:self.pos + n]
        self.pos += n
        return v

    def cstring(self) -> str:
        end = self.data.find(b"\x00", self.pos)
        if end < 0:
            raise ProtocolViolation("invalid message format: string is not NUL-terminated")
        raw = self.data[self.pos:end]
        self.pos = end + 1
        try:
            return raw.decode()
        except UnicodeDecodeError as e:
            raise ProtocolViolation("invalid byte sequence for encoding \"UTF8\"") from e

    def rest(self) -> bytes:
        v = self.data[self.pos:]
        self.pos = len(self.data)
        return v

    def at_end(self) -> bool:
        return self.pos >= len(self.data)

    def done(self) -> None:
        if self.pos != len(self.data):
            raise ProtocolViolation("invalid message format: trailing bytes")


@dataclass(frozen=True)
class Startup:
    """A StartupMessage (protocol 3.x)."""

    version: int
    params: dict[str, str]

    @property
    def user(self) -> str:
        return self.params.get("user", "")

    @property
    def database(self) -> str:
        return self.params.get("database") or self.user


@dataclass(frozen=True)
class SSLRequest:
    pass


@dataclass(frozen=True)
class GSSENCRequest:
    pass


@dataclass(frozen=True)
class CancelRequest:
    pid: int
    secret: int


StartupPacket = Startup | SSLRequest | GSSENCRequest | CancelRequest


def parse_startup(payload: bytes) -> StartupPacket:
    """Parse the first packet of a connection (its payload, after the int32 length).

    Protocol 2 and other majors raise :class:`ProtocolViolation` with SQLSTATE 0A000
    (what PostgreSQL answers: ``unsupported frontend protocol``).
    """
    r = Reader(payload)
    code = r.int32()
    if code == SSL_REQUEST_CODE:
        return SSLRequest()
    if code == GSSENC_REQUEST_CODE:
        return GSSENCRequest()
    if code == CANCEL_REQUEST_CODE:
        pid = r.int32()
        secret = r.int32()
        return CancelRequest(pid, secret)
    major, minor = code >> 16, code & 0xFFFF
    if major != 3:
        raise ProtocolViolation(f"unsupported frontend protocol {major}.{minor}: server supports 3.0 to 3.0",
                                sqlstate="0A000")
    params: dict[str, str] = {}
    while True:
        key = r.cstring()
        if key == "":
            break
        params[key] = r.cstring()
    if "user" not in params or not params["user"]:
        raise ProtocolViolation("no PostgreSQL user name specified in startup packet", sqlstate="28000")
    return Startup(code, params)


@dataclass(frozen=True)
class Query:
    sql: str


def parse_query(payload: bytes) -> Query:
    r = Reader(payload)
    q = Query(r.cstring())
    return q


@dataclass(frozen=True)
class Parse:
    name: str
    sql: str
    param_oids: tuple[int, ...]


def parse_parse(payload: bytes) -> Parse:
    r = Reader(payload)
    name = r.cstring()
    sql = r.cstring()
    n = r.int16()
    if n < 0:
        raise ProtocolViolation("invalid message format: negative parameter count")
    oids = tuple(r.int32() & 0xFFFFFFFF for _ in range(n))
    r.done()
    return Parse(name, sql, oids)


@dataclass(frozen=True)
class Bind:
    portal: str
    statement: str
    param_formats: tuple[int, ...]
    params: tuple[bytes | None, ...]
    result_formats: tuple[int, ...]

    def param_format(self, i: int) -> int:
        f = self.param_formats
        return 0 if not f else f[0] if len(f) == 1 else f[i]


def parse_bind(payload: bytes) -> Bind:
    r = Reader(payload)
    portal = r.cstring()
    stmt = r.cstring()
    nf = r.int16()
    if nf < 0:
        raise ProtocolViolation("invalid message format: negative format count")
    pformats = tuple(r.int16() for _ in range(nf))
    np_ = r.int16()
    if np_ < 0:
        raise ProtocolViolation("invalid message format: negative parameter count")
    if nf not in (0, 1, np_):
        raise ProtocolViolation(f"bind message has {nf} parameter formats but {np_} parameters")
    params: list[bytes | None] = []
    for _ in range(np_):
        ln = r.int32()
        if ln == -1:
            params.append(None)
        elif ln < 0:
            raise ProtocolViolation("invalid message format: negative parameter length")
        else:
            params.append(r.take(ln))
    nr = r.int16()
    if nr < 0:
        raise ProtocolViolation("invalid message format: negative result format count")
    rformats = tuple(r.int16() for _ in range(nr))
    r.done()
    for f in pformats + rformats:
        if f not in (0, 1):
            raise ProtocolViolation(f"unsupported format code: {f}", sqlstate="22023")
    return Bind(portal, stmt, pformats, tuple(params), rformats)


@dataclass(frozen=True)
class Describe:
    kind: bytes  # b"S" statement, b"P" portal
    name: str


def _kind_and_name(payload: bytes, message: str) -> tuple[bytes, str]:
    """The body of Describe and Close: ``S``/``P`` then a statement or portal name."""
    r = Reader(payload)
    kind = r.byte()
    name = r.cstring()
    r.done()
    if kind not in (b"S", b"P"):
        raise ProtocolViolation(f"invalid {message} message subtype {kind!r}")
    return kind, name


def parse_describe(payload: bytes) -> Describe:
    return Describe(*_kind_and_name(payload, "DESCRIBE"))


@dataclass(frozen=True)
class Execute:
    portal: str
    max_rows: int  # 0 = all


def parse_execute(payload: bytes) -> Execute:
    r = Reader(payload)
    portal = r.cstring()
    n = r.int32()
    r.done()
    return Execute(portal, max(n, 0))


@dataclass(frozen=True)
class Close:
    kind: bytes
    name: str


def parse_close(payload: bytes) -> Close:
    return Close(*_kind_and_name(payload, "CLOSE"))


def parse_password(payload: bytes) -> str:
    """PasswordMessage (cleartext or ``md5...``)."""
    r = Reader(payload)
    pw = r.cstring()
    return pw


@dataclass(frozen=True)
class SASLInitialResponse:
    mechanism: str
    data: bytes


def parse_sasl_initial(payload: bytes) -> SASLInitialResponse:
    r = Reader(payload)
    mech = r.cstring()
    n = r.int32()
    data = b"" if n == -1 else r.take(n)
    return SASLInitialResponse(mech, data)


def parse_sasl_response(payload: bytes) -> bytes:
    return payload


def parse_copy_fail(payload: bytes) -> str:
    return Reader(payload).cstring()


@dataclass(frozen=True)
class ErrorFields:
    """Fields of an ErrorResponse/NoticeResponse, keyed by their one-letter codes."""

    fields: dict[str, str]

    @property
    def sqlstate(self) -> str:
        return self.fields.get("C", "")

    @property
    def message(self) -> str:
        return self.fields.get("M", "")

    @property
    def severity(self) -> str:
        return self.fields.get("V") or self.fields.get("S", "")


def parse_error_fields(payload: bytes) -> ErrorFields:
    """Parse an ErrorResponse/NoticeResponse payload (used by tests and the upstream relay)."""
    r = Reader(payload)
    out: dict[str, str] = {}
    while True:
        code = r.byte()
        if code == b"\x00":
            break
        out[code.decode()] = r.cstring()
    return ErrorFields(out)
