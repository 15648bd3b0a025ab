"""Typed errors.  Every error that can reach a client carries a SQLSTATE code.

The wire server turns a :class:`SluiceError` into an ErrorResponse with its ``sqlstate``;
the CLI prints ``error: <message>`` and exits non-zero.
"""

from __future__ import annotations


class SluiceError(Exception):
    """Base class.  ``sqlstate`` follows PostgreSQL's error codes appendix."""

    sqlstate = "XX000"  # internal_error

    def __init__(self, message: str, *, sqlstate: str | None = None, detail: str | None = None,
                 hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if sqlstate is not None:
            self.sqlstate = sqlstate
        self.detail = detail
        self.hint = hint


class ConfigError(SluiceError):
    sqlstate = "F0000"  # config_file_error


class BackendError(SluiceError):
    """An error raised by the database behind sqlsluice (sqlstate passed through)."""

    sqlstate = "58000"  # system_error


class QueryCanceled(BackendError):
    sqlstate = "57014"  # query_canceled


class ProtocolViolation(SluiceError):
    sqlstate = "08P01"  # protocol_violation


class FeatureNotSupported(SluiceError):
    sqlstate = "0A000"


class InvalidPassword(SluiceError):
    sqlstate = "28P01"


class InsufficientPrivilege(SluiceError):
    sqlstate = "42501"


class SyntaxErrorSQL(SluiceError):
    sqlstate = "42601"


class UndefinedTable(SluiceError):
    sqlstate = "42P01"


class InvalidParameterValue(SluiceError):
    sqlstate = "22023"


class LLMError(SluiceError):
    """LLM provider failures (not configured, HTTP errors after retries, timeouts)."""

    sqlstate = "58030"  # io_error


class LLMNotConfigured(LLMError):
    sqlstate = "55000"  # object_not_in_prerequisite_state
