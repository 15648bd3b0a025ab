"""The upstream -> client scanner, fed raw bytes split at arbitrary points."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sqlsluice.databases.base import ColumnInfo
from sqlsluice.middleware import codec
from sqlsluice.middleware.pipeline import Reply
from sqlsluice.middleware.upstream import ResponseScanner, reply_as_sql, reply_messages

FIELDS = [codec.FieldDescription("a", 23), codec.FieldDescription("b", 25)]
MARKER_ERR = codec.error_response("42703", 'column "sluice-error-1" does not exist')
OUR_ERR = codec.error_response("22023", 'invalid value for parameter "sluice.rewrite": "x"')
OTHER_ERR = codec.error_response("22012", "division by zero")

STREAM = b"".join([
    codec.parameter_status("TimeZone", "UTC"),
    codec.row_description(FIELDS),
    *(codec.data_row([str(i).encode(), b"x" * (i * 37 % 3000)]) for i in range(60)),
    codec.command_complete("SELECT 60"),
    codec.ready_for_query(b"I"),
    codec.parse_complete(), codec.bind_complete(),
    codec.command_complete("BEGIN"),
    codec.ready_for_query(b"T"),
    MARKER_ERR,
    codec.ready_for_query(b"E"),
    OTHER_ERR,
    codec.ready_for_query(b"E"),
    codec.notice_response("bye"),
    codec.ready_for_query(b"I"),
])


def _run(chunks: list[bytes], substitutions: list[tuple[int, bytes, bytes]]) -> tuple[bytes, ResponseScanner]:
    sc = ResponseScanner()
    sc.substitutions.extend(substitutions)
    return b"".join(sc.feed(c) for c in chunks), sc


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, prev = [], 0
    for p in points:
        out.append(data[prev:p])
        prev = p
    out.append(data[prev:])
    return [c for c in out if c]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0), max_size=40))
def test_pg_scanner_forwards_exact_bytes_at_any_split(cuts: list[int]) -> None:
    out, sc = _run(_split(STREAM, cuts), [])
    assert out == STREAM
    assert (sc.ready, sc.status, sc.at_boundary()) == (5, b"I", True)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0), max_size=40))
def test_pg_scanner_replaces_marker_error_only(cuts: list[int]) -> None:
    subs = [(3, b'sluice-error-1"', OUR_ERR), (4, b'sluice-error-2"', OUR_ERR)]  # the 2nd never fails
    out, sc = _run(_split(STREAM, cuts), subs)
    assert out == STREAM.replace(MARKER_ERR, OUR_ERR)
    assert OTHER_ERR in out and sc.substitutions == []


def test_pg_scanner_byte_by_byte() -> None:
    out, sc = _run([STREAM[i:i + 1] for i in range(len(STREAM))], [])
    assert out == STREAM and sc.ready == 5


def test_pg_reply_rendering() -> None:
    reply = Reply([ColumnInfo("key", "VARCHAR"), ColumnInfo("n", "INTEGER")], [("a", 1), (None, None)], "SHOW")
    msgs = reply_messages(reply, b"T")
    assert msgs.endswith(codec.command_complete("SHOW") + codec.ready_for_query(b"T"))
    assert codec.data_row([b"a", b"1"]) in msgs and codec.data_row([None, None]) in msgs
    assert reply_as_sql(reply) == ("SELECT * FROM (VALUES ('a'::text, '1'::integer), (NULL::text, NULL::integer))"
                                   ' AS t("key", "n")')
    assert reply_as_sql(Reply([ColumnInfo("x", "VARCHAR")], [], "SHOW")) == 'SELECT NULL::text AS "x" WHERE false'
