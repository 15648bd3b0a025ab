"""Byte-level tests of the codec, framing, protocol state machine, type codecs, SQL splitter
and SCRAM, fed raw payloads (no sockets)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import struct
import uuid
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sqlsluice.errors import InvalidPassword, ProtocolViolation
from sqlsluice.middleware import codec, types
from sqlsluice.middleware.auth import ScramExchange, check_md5, md5_password
from sqlsluice.middleware.framing import MessageBuffer
from sqlsluice.middleware.protocol import Phase, ProtocolState
from sqlsluice.middleware.sqltext import max_param, split_statements


def test_backend_messages_have_postgres_layout():
    assert codec.authentication_ok() == b"R\x00\x00\x00\x08\x00\x00\x00\x00"
    assert codec.ready_for_query(b"T") == b"Z\x00\x00\x00\x05T"
    assert codec.command_complete("SELECT 1") == b"C\x00\x00\x00\x0dSELECT 1\x00"
    assert codec.parameter_status("a", "b") == b"S\x00\x00\x00\x08a\x00b\x00"
    assert codec.backend_key_data(1, 2) == b"K\x00\x00\x00\x0c\x00\x00\x00\x01\x00\x00\x00\x02"
    assert codec.data_row([b"1", None]) == b"D\x00\x00\x00\x0f\x00\x02\x00\x00\x00\x011\xff\xff\xff\xff"
    rd = codec.row_description([codec.FieldDescription("a", types.INT4, 4, -1, 1)])
    assert rd == b"T" + struct.pack("!ih", 4 + 2 + 2 + 18, 1) + b"a\x00" + struct.pack("!ihihih", 0, 0, 23, 4, -1, 1)
    assert codec.parameter_description([23, 25]) == b"t\x00\x00\x00\x0e\x00\x02\x00\x00\x00\x17\x00\x00\x00\x19"
    assert codec.authentication_sasl(["SCRAM-SHA-256"]) == (
        b"R" + struct.pack("!ii", 4 + 4 + 15, 10) + b"SCRAM-SHA-256\x00\x00")
    assert codec.authentication_md5(b"abcd")[-4:] == b"abcd"
    assert codec.copy_in_response(0, [0, 0]) == b"G\x00\x00\x00\x0b\x00\x00\x02\x00\x00\x00\x00"
    for simple, code in [(codec.parse_complete, b"1"), (codec.bind_complete, b"2"), (codec.close_complete, b"3"),
                         (codec.no_data, b"n"), (codec.portal_suspended, b"s"), (codec.empty_query_response, b"I")]:
        assert simple() == code + b"\x00\x00\x00\x04"


def test_error_response_fields_round_trip():
    raw = codec.error_response("42P01", "no such table", detail="d", hint="h", position=5)
    assert raw[:1] == b"E" and struct.unpack("!i", raw[1:5])[0] == len(raw) - 1
    f = codec.parse_error_fields(raw[5:])
    assert (f.severity, f.sqlstate, f.message, f.fields["D"], f.fields["H"], f.fields["P"]) == (
        "ERROR", "42P01", "no such table", "d", "h", "5")
    n = codec.parse_error_fields(codec.notice_response("hello")[5:])
    assert n.severity == "NOTICE" and n.message == "hello"


def test_startup_packets():
    body = struct.pack("!i", codec.PROTOCOL_V3) + b"user\x00bob\x00database\x00db\x00application_name\x00x\x00\x00"
    s = codec.parse_startup(body)
    assert isinstance(s, codec.Startup) and (s.user, s.database, s.params["application_name"]) == ("bob", "db", "x")
    assert isinstance(codec.parse_startup(struct.pack("!i", codec.SSL_REQUEST_CODE)), codec.SSLRequest)
    assert isinstance(codec.parse_startup(struct.pack("!i", codec.GSSENC_REQUEST_CODE)), codec.GSSENCRequest)
    assert codec.parse_startup(struct.pack("!iii", codec.CANCEL_REQUEST_CODE, 7, 9)) == codec.CancelRequest(7, 9)
    with pytest.raises(ProtocolViolation) as ei:
        codec.parse_startup(struct.pack("!i", 2 << 16) + b"user\x00bob\x00\x00")
    assert ei.value.sqlstate == "0A000"
    with pytest.raises(ProtocolViolation) as ei:
        codec.parse_startup(struct.pack("!i", codec.PROTOCOL_V3) + b"database\x00db\x00\x00")
    assert ei.value.sqlstate == "28000"
    with pytest.raises(ProtocolViolation):
        codec.parse_startup(struct.pack("!i", codec.PROTOCOL_V3) + b"user\x00bob")


def test_extended_protocol_messages_parse():
    p = codec.parse_parse(b"s1\x00SELECT $1\x00\x00\x01\x00\x00\x00\x17")
    assert p == codec.Parse("s1", "SELECT $1", (23,))
    b = codec.parse_bind(b"p\x00s1\x00\x00\x01\x00\x01\x00\x02\x00\x00\x00\x04\x00\x00\x00\x2a\xff\xff\xff\xff"
                         b"\x00\x01\x00\x01")
    assert b.portal == "p" and b.statement == "s1" and b.params == (b"\x00\x00\x00\x2a", None)
    assert b.param_format(1) == 1 and b.result_formats == (1,)
    assert codec.parse_describe(b"S\x00") == codec.Describe(b"S", "")
    assert codec.parse_execute(b"p\x00\x00\x00\x00\x0a") == codec.Execute("p", 10)
    assert codec.parse_close(b"P\x00") == codec.Close(b"P", "")
    assert codec.parse_sasl_initial(b"SCRAM-SHA-256\x00\x00\x00\x00\x03abc") == codec.SASLInitialResponse(
        "SCRAM-SHA-256", b"abc")
    assert codec.parse_password(b"pw\x00") == "pw"


@pytest.mark.parametrize("payload", [
    b"s1\x00SELECT 1\x00\x00\x01",  # truncated OID list
    b"s1\x00SELECT 1\x00\xff\xff",  # negative count
    b"s1\x00SELECT 1",  # unterminated SQL
    b"s1\x00SELECT 1\x00\x00\x00extra",  # trailing bytes
])
def test_malformed_parse_is_a_protocol_violation(payload):
    with pytest.raises(ProtocolViolation):
        codec.parse_parse(payload)


@pytest.mark.parametrize("payload", [
    b"\x00\x00\x00\x02\x00\x00\x00\x00\x00\x01\x00\x00\x00\x04ab",  # 2 formats, 1 param... and short value
    b"\x00\x00\x00\x00\x00\x01\x00\x00\x00\x10abc",  # value shorter than its length
    b"\x00\x00\x00\x01\x00\x07\x00\x00\x00\x00",  # format code 7
    b"\x00\x00",
])
def test_malformed_bind_is_a_protocol_violation(payload):
    with pytest.raises(ProtocolViolation):
        codec.parse_bind(payload)


def test_invalid_describe_and_close_kinds():
    with pytest.raises(ProtocolViolation):
        codec.parse_describe(b"X\x00")
    with pytest.raises(ProtocolViolation):
        codec.parse_close(b"Q\x00")
    with pytest.raises(ProtocolViolation):
        codec.parse_query(b"\xff\xfe\x00")


def test_framing_buffer_yields_complete_messages_across_feeds():
    stream = codec.message(b"Q", b"SELECT 1\x00") + codec.message(b"S") + codec.message(b"X")
    buf = MessageBuffer()
    got = []
    for i in range(len(stream)):  # one byte at a time
        buf.feed(stream[i:i + 1])
        got.extend(buf)
    assert got == [(b"Q", b"SELECT 1\x00"), (b"S", b""), (b"X", b"")]
    assert buf.pending() == 0


def test_framing_rejects_absurd_lengths_before_the_payload():
    buf = MessageBuffer()
    buf.feed(b"Q" + struct.pack("!I", 2**31 - 1))
    with pytest.raises(ProtocolViolation):
        buf.next()
    buf = MessageBuffer()
    buf.feed(b"Q\x00\x00\x00\x03")
    with pytest.raises(ProtocolViolation):
        buf.next()
    buf = MessageBuffer(startup=True)
    buf.feed(struct.pack("!i", 20000))
    with pytest.raises(ProtocolViolation):
        buf.next()
    buf = MessageBuffer(startup=True)
    buf.feed(struct.pack("!ii", 8, codec.SSL_REQUEST_CODE))
    assert buf.next() == (b"", struct.pack("!i", codec.SSL_REQUEST_CODE))


@given(st.lists(st.tuples(st.sampled_from(list(b"QPBDESHCX")), st.binary(max_size=50)), max_size=20),
       st.integers(1, 64))
def test_framing_round_trips_any_chunking(msgs, chunk):
    stream = b"".join(codec.message(bytes([c]), p) for c, p in msgs)
    buf = MessageBuffer()
    got = []
    for i in range(0, len(stream), chunk):
        buf.feed(stream[i:i + chunk])
        got.extend(buf)
    assert got == [(bytes([c]), p) for c, p in msgs]


def test_protocol_state_machine_guards_phases_and_skips_to_sync():
    st_ = ProtocolState()
    with pytest.raises(ProtocolViolation):
        st_.admit(b"Q")  # nothing before startup
    st_.start_auth()
    assert st_.admit(b"p") == "handle"
    with pytest.raises(ProtocolViolation):
        st_.admit(b"Q")  # no queries before authentication
    st_.authenticated()
    with pytest.raises(ProtocolViolation):
        st_.authenticated()  # guarded transition
    assert st_.phase is Phase.READY
    assert [st_.admit(c) for c in (b"P", b"B", b"E")] == ["handle"] * 3
    st_.error(extended=True)
    assert [st_.admit(c) for c in (b"B", b"D", b"E", b"C", b"H")] == ["skip", "skip", "skip", "skip", "handle"]
    assert st_.admit(b"S") == "handle"
    st_.synced()
    assert st_.admit(b"B") == "handle"
    assert st_.admit(b"d") == "ignore"  # stray CopyData outside COPY
    with pytest.raises(ProtocolViolation):
        st_.admit(b"z")
    st_.admit(b"P")
    assert st_.in_extended
    st_.admit(b"Q")  # asyncpg: Parse/Describe/Flush, then a simple Query (COPY): answer it now
    assert not st_.in_extended
    st_.set_transaction(True, False)
    assert st_.tx_status == b"T"
    st_.error(extended=False)
    assert st_.tx_status == b"E"


def test_type_mapping():
    assert [types.oid_for(t) for t in ("INTEGER", "BIGINT", "SMALLINT", "TINYINT", "HUGEINT", "DECIMAL(15,2)",
                                       "DOUBLE", "FLOAT", "VARCHAR", "BOOLEAN", "DATE", "TIME", "TIMESTAMP",
                                       "TIMESTAMP WITH TIME ZONE", "INTERVAL", "BLOB", "UUID", "JSON",
                                       "INTEGER[]", "VARCHAR[]", "INTEGER[][]", "STRUCT(a INTEGER)", "NULL")] == [
        23, 20, 21, 21, 1700, 1700, 701, 700, 25, 16, 1082, 1083, 1114, 1184, 1186, 17, 2950, 114,
        1007, 1009, 25, 25, 25]
    assert types.type_modifier("DECIMAL(15,2)") == (15 << 16 | 2) + 4


VALUES = [
    (types.BOOL, True), (types.INT2, -7), (types.INT4, 2**31 - 1), (types.INT8, -(2**63)),
    (types.FLOAT8, 2.5), (types.FLOAT4, 0.5), (types.TEXT, "héllo"), (types.DATE, dt.date(1999, 12, 31)),
    (types.DATE, dt.date(2024, 2, 29)), (types.TIMESTAMP, dt.datetime(1970, 1, 1, 0, 0, 0, 1)),
    (types.TIMESTAMPTZ, dt.datetime(2020, 5, 6, 7, 8, 9, tzinfo=dt.UTC)), (types.TIME, dt.time(23, 59, 59, 999999)),
    (types.INTERVAL, dt.timedelta(days=3, seconds=5)), (types.BYTEA, b"\x00\xff"), (types.UUID, uuid.uuid4()),
    (types.NUMERIC, Decimal("0")), (types.NUMERIC, Decimal("12345.678")), (types.NUMERIC, Decimal("-0.0001")),
    (types.NUMERIC, Decimal("100000000")), (types.NUMERIC, Decimal("1E+20")), (types.NUMERIC, Decimal("0.10")),
    (1007, [1, None, 3]), (1009, ["a", None]),
]


@pytest.mark.parametrize(("oid", "value"), VALUES)
def test_binary_encoders_round_trip_through_decoders(oid, value):
    raw = types.encode_binary(oid)(value)
    assert types.decode_param(oid, 1, raw) == value


def test_numeric_binary_matches_postgres_bytes():
    # SELECT '12345.678'::numeric sent in binary by PostgreSQL 15
    assert types.encode_binary(types.NUMERIC)(Decimal("12345.678")) == bytes.fromhex("0003000100000003000109291a7c")
    assert types.encode_binary(types.NUMERIC)(Decimal("-0.5")) == bytes.fromhex("0001ffff40000001" "1388")


@given(st.decimals(allow_nan=False, allow_infinity=False, places=6, min_value=-10**12, max_value=10**12))
def test_numeric_binary_round_trip(d):
    assert types.decode_param(types.NUMERIC, 1, types.encode_binary(types.NUMERIC)(d)) == d


def test_text_encoders():
    enc = {oid: types.encode_text(oid) for oid in (types.BOOL, types.FLOAT8, types.NUMERIC, types.TIMESTAMPTZ,
                                                   types.INTERVAL, types.BYTEA, 1009)}
    assert enc[types.BOOL](False) == b"f"
    assert enc[types.FLOAT8](float("inf")) == b"Infinity" and enc[types.FLOAT8](float("nan")) == b"NaN"
    assert enc[types.NUMERIC](Decimal("1E+3")) == b"1000"
    assert enc[types.TIMESTAMPTZ](dt.datetime(2020, 1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1)))) == (
        b"2020-01-01 00:00:00+00")
    assert enc[types.INTERVAL](dt.timedelta(days=1, hours=2, minutes=3, seconds=4)) == b"1 days 02:03:04"
    assert enc[types.BYTEA](b"\x01\xab") == b"\\x01ab"
    assert enc[1009](["a b", None, 'q"', ""]) == b'{"a b",NULL,"q\\"",""}'


def test_text_parameter_decoding():
    assert types.decode_param(types.INT4, 0, b"42") == 42
    assert types.decode_param(types.BOOL, 0, b"t") is True
    assert types.decode_param(types.TIMESTAMPTZ, 0, b"2020-01-01 10:00:00+02") == dt.datetime(
        2020, 1, 1, 8, tzinfo=dt.UTC)
    assert types.decode_param(types.TEXT, 0, None) is None
    with pytest.raises(Exception) as ei:
        types.decode_param(types.INT4, 0, b"x")
    assert getattr(ei.value, "sqlstate", "") == "22P02"


def test_split_statements_and_params():
    assert split_statements("SELECT 1; SELECT 2;") == ["SELECT 1", "SELECT 2"]
    assert split_statements("SELECT ';' AS a; SELECT \"x;y\" FROM t") == ["SELECT ';' AS a", 'SELECT "x;y" FROM t']
    assert split_statements("SELECT $$a;b$$; SELECT $t$;$t$") == ["SELECT $$a;b$$", "SELECT $t$;$t$"]
    assert split_statements("SELECT 1 -- c;\n; /* a; /* nested; */ b; */ SELECT E'\\';'") == [
        "SELECT 1 -- c;", "/* a; /* nested; */ b; */ SELECT E'\\';'"]
    assert split_statements("  ;; -- only a comment") == []
    assert max_param("SELECT $1, '$9', $2 -- $8\n /* $7 */") == 2
    assert max_param("SELECT $$ $5 $$, $3") == 3


def _scram_client(password: str, server: ScramExchange) -> tuple[bytes, bytes]:
    """A client side of SCRAM-SHA-256 written from RFC 5802 (libpq sends n=,)."""
    cnonce = "rOprNGfwEbeRWgbNEkqO"
    first_bare = f"n=,r={cnonce}"
    server_first = server.first(("n,," + first_bare).encode()).decode()
    attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"]))
    ck = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    without = f"c=biws,r={attrs['r']}"
    auth = f"{first_bare},{server_first},{without}".encode()
    sig = hmac.new(hashlib.sha256(ck).digest(), auth, hashlib.sha256).digest()
    proof = base64.b64encode(bytes(a ^ b for a, b in zip(ck, sig, strict=True))).decode()
    final = server.final(f"{without},p={proof}".encode())
    sk = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return final, b"v=" + base64.b64encode(hmac.new(sk, auth, hashlib.sha256).digest())


def test_scram_exchange():
    final, expected = _scram_client("pencil", ScramExchange("pencil"))
    assert final == expected
    with pytest.raises(InvalidPassword):
        _scram_client("wrong", ScramExchange("pencil"))
    with pytest.raises(ProtocolViolation):
        ScramExchange("x").first(b"p=tls-server-end-point,,n=,r=abc")


def test_md5():
    salt = b"\x01\x02\x03\x04"
    sent = md5_password("pw", "bob", salt)
    assert check_md5(sent, "pw", "bob", salt) and not check_md5(sent, "pw", "alice", salt)


def test_statement_timeout_units():
    from sqlsluice.middleware.compat import _parse_duration

    assert _parse_duration("1500") == 1.5 and _parse_duration("2s") == 2.0 and _parse_duration("1min") == 60.0
    assert _parse_duration("0") == 0.0 and _parse_duration("soon") is None


def test_data_row_text_round_trip() -> None:
    payload = codec.data_row([b"ab", None, b"", "\u00e9".encode()])[5:]  # past the type byte and length
    assert codec.parse_data_row_text(payload) == ["ab", None, "", "\u00e9"]
