"""The passthrough's response scanner, fed raw bytes: a batch the relay sends on its own
(Parse + Sync of a prepared-statement variant) is cut out of what the client sees, whole,
even when its messages arrive split across chunks, and says whether the Parse succeeded."""

from __future__ import annotations

from sqlsluice.middleware import codec
from sqlsluice.middleware.upstream import ResponseScanner

PARSE_COMPLETE = codec.message(codec.PARSE_COMPLETE)
BIND_COMPLETE = codec.message(codec.BIND_COMPLETE)


def _client_batch() -> bytes:
    return BIND_COMPLETE + codec.command_complete("SELECT 0") + codec.ready_for_query(b"I")


def test_hidden_batch_is_cut_out_and_reports_success() -> None:
    sc = ResponseScanner()
    seen: list[bool] = []
    sc.hidden[2] = seen.append  # the second ReadyForQuery answers our own batch
    stream = _client_batch() + PARSE_COMPLETE + codec.ready_for_query(b"I") + _client_batch()
    out = b""
    for i in range(len(stream)):  # one byte at a time: every split point
        out += sc.feed(stream[i:i + 1])
    assert out == _client_batch() + _client_batch()
    assert seen == [True] and sc.ready == 3 and not sc.hidden


def test_hidden_batch_that_failed_reports_failure() -> None:
    sc = ResponseScanner(b"T")
    seen: list[bool] = []
    sc.hidden[1] = seen.append
    err = codec.error_response("25P02", "current transaction is aborted")
    out = sc.feed(err + codec.ready_for_query(b"E") + _client_batch())
    assert out == _client_batch()  # the client never sees our batch's error
    assert seen == [False] and sc.ready == 2
