"""Logging for ``sluice serve``: a level, text or JSON lines, secrets masked, library warnings demoted.

:func:`configure_logging` installs one handler on the root logger.  Every line it writes
passes through :func:`mask`, which hides passwords in URLs (``postgresql://u:***@h``),
``password=...`` in conninfo strings, ``PASSWORD '...'`` in SQL, and every secret
registered with :func:`register_secret` (configured user passwords, the backend password,
the LLM API key).  Warnings from third-party libraries that are about a statement, not
about the server (sqlglot's "Applying array index offset", Python ``warnings``), are
logged once each at DEBUG with the statement they are about: code that hands a statement
to sqlglot runs inside :func:`statement` so that the handler can name it.

>>> mask("backend postgresql://app:s3cret@db:5432/x, dsn 'host=db password=s3cret user=app'")
"backend postgresql://app:***@db:5432/x, dsn 'host=db password=*** user=app'"
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import IO, Any

LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("text", "json")
MASK = "***"

# the statement being handled by this task or thread (set by the statement pipeline)
current_statement: ContextVar[str | None] = ContextVar("sluice_current_statement", default=None)

# loggers of libraries whose warnings are about a statement, not the server
DEMOTED = ("sqlglot", "py.warnings")

_URL_PASSWORD = re.compile(r"(?P<pre>\b[a-z][a-z0-9+.\-]*://[^\s:/@'\"]*:)(?P<pw>[^\s@/'\"]+)(?=@)", re.I)
_KV_PASSWORD = re.compile(
    r"(?P<pre>\b(?:password|passwd|pgpassword|api[_-]?key)['\"]?\s*[=:]\s*)(?P<pw>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[^\s,;&)]+)",
    re.I)
_SQL_PASSWORD = re.compile(r"(?P<pre>\bpassword\s+)(?P<pw>'(?:[^']|'')*')", re.I)
_MIN_LITERAL = 4  # shorter registered secrets are masked only where a pattern above finds them

_secrets: set[str] = set()


def register_secret(*values: str | None) -> None:
    """Mask these strings wherever they appear in a log line or a message."""
    for v in values:
        if v and len(v) >= _MIN_LITERAL:
            _secrets.add(v)


def register_url(url: str | None) -> None:
    """Register the password of a ``scheme://user:password@host`` URL."""
    if url:
        for m in _URL_PASSWORD.finditer(url):
            register_secret(m.group("pw"))


def mask(text: str) -> str:
    """``text`` with passwords and registered secrets replaced by ``***``."""
    if not text:
        return text
    text = _URL_PASSWORD.sub(lambda m: m.group("pre") + MASK, text)
    text = _KV_PASSWORD.sub(lambda m: m.group("pre") + MASK, text)
    text = _SQL_PASSWORD.sub(lambda m: m.group("pre") + f"'{MASK}'", text)
    for s in sorted(_secrets, key=len, reverse=True):
        if s in text:
            text = text.replace(s, MASK)
    return text


@contextmanager
def statement(sql: str | None) -> Iterator[None]:
    """Name ``sql`` as the statement being handled (for warnings raised while it is).

    Restores the previous value with ``set``, not ``reset``: the passthrough drives
    pipeline coroutines by hand, so the exit may run in another context than the entry.
    """
    previous = current_statement.get()
    current_statement.set(sql)
    try:
        yield
    finally:
        current_statement.set(previous)


class ThirdPartyFilter(logging.Filter):
    """Demote warnings of :data:`DEMOTED` loggers to DEBUG, once per (message, statement),
    with the statement attached; drop records under ``threshold``."""

    def __init__(self, threshold: int = logging.INFO, demoted: Iterable[str] = DEMOTED,
                 max_seen: int = 10_000) -> None:
        super().__init__()
        self.threshold = threshold
        self.demoted = tuple(demoted)
        self.max_seen = max_seen
        self._seen: set[tuple[str, str, str | None]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        root = record.name.split(".", 1)[0] if record.name != "py.warnings" else record.name
        if root in self.demoted and logging.DEBUG < record.levelno < logging.ERROR:
            stmt = current_statement.get()
            msg = record.getMessage()
            key = (record.name, msg, stmt)
            if key in self._seen:
                return False
            if len(self._seen) >= self.max_seen:
                self._seen.clear()
            self._seen.add(key)
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            if stmt:
                record.statement = stmt
                record.msg, record.args = f"{msg} [statement: {' '.join(stmt.split())}]", None
        return record.levelno >= self.threshold


class TextFormatter(logging.Formatter):
    """``2026-12-04 22:30:01,123 INFO sqlsluice.server: message``, masked."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return mask(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``message`` (and ``statement``,
    ``exc`` when there is one), masked."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        obj: dict[str, Any] = {"ts": ts, "level": record.levelname.lower(), "logger": record.name,
                               "message": mask(record.getMessage())}
        stmt = getattr(record, "statement", None)
        if stmt:
            obj["statement"] = mask(stmt)
        if record.exc_info:
            obj["exc"] = mask(self.formatException(record.exc_info))
        return json.dumps(obj, default=str)


_HANDLER_NAME = "sqlsluice"


def configure_logging(level: str = "info", fmt: str = "text", *, stream: IO[str] | None = None) -> logging.Handler:
    """Send all logging to ``stream`` (stderr) at ``level`` in ``fmt``; idempotent (a second
    call replaces the handler, e.g. on reload)."""
    if level not in LEVELS:
        raise ValueError(f"log level {level!r}: use one of {', '.join(LEVELS)}")
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r}: use one of {', '.join(FORMATS)}")
    threshold = logging.getLevelName(level.upper())
    root = logging.getLogger()
    for h in list(root.handlers):
        if h.get_name() == _HANDLER_NAME:
            root.removeHandler(h)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(ThirdPartyFilter(threshold))
    root.addHandler(handler)
    # demoted loggers must let their warnings through to the filter, which decides
    root.setLevel(threshold)
    for name in DEMOTED:
        logging.getLogger(name).setLevel(min(threshold, logging.WARNING))
    logging.captureWarnings(True)
    return handler


def register_config_secrets(cfg: Any, *urls: str | None) -> None:
    """Register the secrets a config holds: user passwords, URL passwords, the auth_query
    role's password, the LLM API key."""
    import os

    for u in getattr(cfg, "users", []):
        register_secret(u.password, u.upstream_password)
    register_secret(getattr(getattr(cfg, "auth", None), "password", None))
    server = getattr(cfg, "server", None)
    for url in (getattr(server, "backend", None), getattr(server, "state", None), *urls):
        register_url(url)
    llm = getattr(cfg, "llm", None)
    if llm is not None:
        register_secret(os.environ.get(llm.api_key_env))
