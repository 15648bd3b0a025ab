"""The statement pipeline hook: every SQL string a client sends passes through here.

The server calls :meth:`Pipeline.handle` for each statement of a simple Query and for
each Parse message (the SQL of a prepared statement is fixed at Parse, so a rewrite
happens there and keeps the parameter count).  The answer is a :data:`Decision`:

* :class:`Forward` - run this SQL (possibly rewritten) on the backend;
* :class:`Reply` - answer locally with these columns and rows (``SHOW sluice.*``,
  ``SET sluice.*``, ``ASK ...``);
* or a raised :class:`~sqlsluice.errors.SluiceError`, which becomes an ErrorResponse.

A pipeline is a list of *stages*, each ``async def stage(ctx, sql, extended) -> Decision | None``;
the first stage that returns a decision wins, and when none does the statement is
forwarded unchanged.  Later features append stages (the rewriter, ASK) with
:meth:`Pipeline.append`.  The hook is backend-agnostic: the DuckDB session and the
PostgreSQL passthrough call the same pipeline.

>>> import asyncio
>>> ctx = SessionContext(user="u", database="d")
>>> p = default_pipeline()
>>> asyncio.run(p.handle(ctx, "SET sluice.rewrite = off", extended=False)).status
'SET'
>>> asyncio.run(p.handle(ctx, "SHOW sluice.rewrite", extended=False)).rows
[('off',)]

The admin console, in the PgBouncer style, answers admin users only (``[[users]] admin =
true``; with no users and trust authentication, a client connecting from the loopback
address): ``SHOW sluice.stats`` (one row per counter), ``SHOW sluice.clients`` (connected
sessions), ``SHOW sluice.databases`` (backends, passwords masked), and whatever the engines
register in :data:`ADMIN_VIEWS` (the rewriter adds ``SHOW sluice.rewrites``).  Anyone else
gets 42501.  The wire layer knows no engine: engines register views and counters here.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import logging
import re
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlsluice.config import Config, router_error
from sqlsluice.databases.base import ColumnInfo
from sqlsluice.errors import InsufficientPrivilege, InvalidParameterValue, SluiceError
from sqlsluice.logs import mask, statement

log = logging.getLogger("sqlsluice.pipeline")


@dataclass
class SessionContext:
    """Per-client-session state the pipeline may read and write."""

    user: str
    database: str
    config: Config = field(default_factory=Config)
    dialect: str = "duckdb"  # sqlglot dialect of the backend ("duckdb" | "postgres")
    settings: dict[str, str] = field(default_factory=dict)
    # the fast path's record of the latest statement, not yet turned into ``last``/``activity``:
    # (sql, the fast path's info, monotonic time before and after its decision); these three
    # come before ``last`` and ``activity``, which __init__ sets through their properties
    _fast: tuple[str, dict[str, Any], float, float] | None = field(default=None, init=False, repr=False,
                                                                     compare=False)
    _last: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)
    _activity: tuple[str, float] | None = field(default=None, init=False, repr=False, compare=False)
    # what happened to the previous statement (SHOW sluice.last); a statement answered by the
    # fast path leaves a tuple in ``_fast`` instead, turned into ``last`` and ``activity``
    # when either is read or written (see _settle_fast: nothing is built per statement)
    last: dict[str, Any] = field(default_factory=dict)
    backend: Any = None  # sqlsluice.databases.Backend when there is one (DuckDB); None for passthrough
    extra: dict[str, Any] = field(default_factory=dict)  # free space for stages (caches, counters)
    # while a Parse is handled (extended=True): the parameter type OIDs the client sent (0 = unspecified)
    parse_param_oids: tuple[int, ...] = ()
    # the client's address as the server saw it ("": a Unix socket; None: not a wire session)
    client_addr: str | None = None
    # the admin console's view of the session: a number, when it connected, its latest statement
    session_id: int = 0
    connected_at: float = 0.0
    activity: tuple[str, float] | None = None  # (most recent statement, when it arrived: time.time())
    task: Any = field(default=None, repr=False, compare=False)  # the asyncio task serving it
    # set by a server that watches the connection's messages: True while a statement is in
    # flight (SHOW sluice.clients then says active or idle, else only connected)
    busy: Callable[[], bool] | None = field(default=None, repr=False, compare=False)

    def _settle_fast(self) -> None:
        """Build ``last`` and ``activity`` from the fast path's record of the latest statement
        (what :meth:`Pipeline.handle` records for a statement forwarded unchanged)."""
        fast = self._fast
        if fast is None:
            return
        self._fast = None
        sql, info, t0, t1 = fast
        # (milliseconds to 3 places; round() costs more than the rest)
        last: dict[str, Any] = {"sql": sql, "extended": False, "action": "forward",
                                "pipeline_ms": int((t1 - t0) * 1e6 + 0.5) / 1000}
        if info:
            last.update(info)
        self._last = last
        # when the decision was made, on the wall clock (as time.time() read then)
        self._activity = (sql, time.time() - (time.monotonic() - t1))

    def __post_init__(self) -> None:
        mode = self.config.rewrite.mode
        # review mode serves approved rewrites only; the session setting is plain "on"
        defaults = {"sluice.rewrite": ("on" if mode == "review" else mode) if self.config.rewrite.enabled else "off",
                    "sluice.router": self.config.ask.router}
        for k, v in defaults.items():
            self.settings.setdefault(k, v)
        if not self.session_id:  # once (RESET calls this again)
            self.session_id = next(_SESSION_IDS)
            self.connected_at = time.time()
            try:
                self.task = asyncio.current_task()
            except RuntimeError:  # not on an event loop (tests, the SDK)
                self.task = None
            _SESSIONS[self.session_id] = self

    @property
    def connected(self) -> bool:
        return self.task is None or not self.task.done()


def _get_last(ctx: SessionContext) -> dict[str, Any]:
    if ctx._fast is not None:
        ctx._settle_fast()
    return ctx._last


def _set_last(ctx: SessionContext, value: dict[str, Any]) -> None:
    if ctx._fast is not None:
        ctx._settle_fast()  # (its ``activity`` stays)
    ctx._last = value


def _get_activity(ctx: SessionContext) -> tuple[str, float] | None:
    if ctx._fast is not None:
        ctx._settle_fast()
    return ctx._activity


def _set_activity(ctx: SessionContext, value: tuple[str, float] | None) -> None:
    if ctx._fast is not None:
        ctx._settle_fast()  # (its ``last`` stays)
    ctx._activity = value


# ``last`` and ``activity`` read and written through the fast path's pending record (the
# dataclass's __init__, repr and comparison go through them too)
setattr(SessionContext, "last", property(_get_last, _set_last))  # noqa: B010
setattr(SessionContext, "activity", property(_get_activity, _set_activity))  # noqa: B010

_SESSION_IDS = itertools.count(1)
# every live session of this process (SHOW sluice.clients); an entry goes with its context
_SESSIONS: weakref.WeakValueDictionary[int, SessionContext] = weakref.WeakValueDictionary()


def sessions() -> list[SessionContext]:
    """The sessions connected now (a read-only snapshot, oldest first)."""
    return sorted((c for c in list(_SESSIONS.values()) if c.connected), key=lambda c: c.session_id)


@dataclass(frozen=True)
class Forward:
    """Run ``sql`` on the backend.  ``info`` says what the pipeline did (for ``SHOW sluice.last``)."""

    sql: str
    info: dict[str, Any] = field(default_factory=dict)
    # at Parse: the parameter type OIDs to send upstream instead of the client's (a rewrite
    # keeps the original's parameter types, so ParameterDescription does not change)
    param_oids: tuple[int, ...] | None = None
    # called with the seconds the statement took upstream (sent -> ReadyForQuery); for a
    # Parse, every execution (Bind ... Sync) of the statement is timed
    observe: Callable[[float], None] | None = None
    # at Parse: called once with the first Bind of this statement (a codec.Bind)
    on_bind: Callable[[Any], None] | None = None
    # at Parse: asked at each Bind of the statement what it should run now (a stored rewrite
    # that appeared, or was dropped, since the Parse); None: keep what was parsed.  A
    # returned Forward without ``current`` is final (the statement is no longer watched).
    current: Callable[[], Awaitable[Forward | None]] | None = None


_NEW = object.__new__


def forward_as_is(sql: str, info: dict[str, Any]) -> Forward:
    """``Forward(sql, info)`` with no callbacks, built without the frozen dataclass's field by
    field ``__setattr__`` (the hot path; ``info`` is shared, read only).

    >>> forward_as_is("SELECT 1", {}) == Forward("SELECT 1")
    True
    """
    f: Forward = _NEW(Forward)
    f.__dict__.update(sql=sql, info=info, param_oids=None, observe=None, on_bind=None, current=None)
    return f


@dataclass(frozen=True)
class Reply:
    """Answer locally.  ``rows`` are Python values typed by ``columns`` (DuckDB type names)."""

    columns: list[ColumnInfo]
    rows: list[tuple[Any, ...]]
    status: str


Decision = Forward | Reply
Stage = Callable[[SessionContext, str, bool], Awaitable[Decision | None]]

# settings a client may SET; values are free text unless listed
KNOWN_SETTINGS: dict[str, tuple[str, ...] | None] = {
    "sluice.rewrite": ("on", "off", "shadow"),
    "sluice.router": None,
}
# checks of free-text settings: value -> why it is invalid (a message listing the valid
# values), or None; checked like the config file (sqlsluice.config)
SETTING_CHECKS: dict[str, Callable[[str], str | None]] = {
    "sluice.router": router_error,
}

_SET = re.compile(r"^\s*SET\s+(?:SESSION\s+|LOCAL\s+)?(sluice\.[A-Za-z_][\w.]*)\s*(?:=|\s+TO\s+)\s*(.*?)\s*;?\s*$",
                  re.I | re.S)
_SHOW = re.compile(r"^\s*SHOW\s+(sluice\.[A-Za-z_][\w.]*|sluice\.all)\s*;?\s*$", re.I)
_RESET = re.compile(r"^\s*RESET\s+(sluice\.[A-Za-z_][\w.]*)\s*;?\s*$", re.I)


def _unquote(v: str) -> str:
    v = v.strip()
    if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"":
        return v[1:-1].replace(v[0] * 2, v[0])
    return v


def _value_text(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, list | tuple):
        return ",".join(map(str, v))
    return str(v)


async def settings_stage(ctx: SessionContext, sql: str, extended: bool) -> Decision | None:
    """``SET sluice.x = v``, ``RESET sluice.x``, ``SHOW sluice.x``, ``SHOW sluice.last``, ``SHOW sluice.all``."""
    head = sql.lstrip()[:6].upper()
    if not head.startswith(("SET", "SHOW", "RESET")) or "sluice." not in sql.lower():
        return None
    m = _SET.match(sql)
    if m:
        name, value = m.group(1).lower(), _unquote(m.group(2))
        allowed = KNOWN_SETTINGS.get(name, ())
        if name not in KNOWN_SETTINGS:
            raise InvalidParameterValue(f'unrecognized configuration parameter "{name}"', sqlstate="42704",
                                        hint="known: " + ", ".join(sorted(KNOWN_SETTINGS)))
        if m.group(2).strip().upper() == "DEFAULT":  # SET x TO DEFAULT is RESET x (unquoted only)
            ctx.settings.pop(name, None)
            ctx.__post_init__()
            return Reply([], [], "SET")
        if allowed and value.lower() not in allowed:
            raise InvalidParameterValue(f'invalid value for parameter "{name}": "{value}"'
                                        f' (valid values: {", ".join(allowed)})',
                                        hint="allowed: " + ", ".join(allowed))
        check = SETTING_CHECKS.get(name)
        if check is not None and (err := await asyncio.to_thread(check, value)):
            raise InvalidParameterValue(f'invalid value for parameter "{name}": {err}')
        ctx.settings[name] = value.lower() if allowed else value
        return Reply([], [], "SET")
    m = _RESET.match(sql)
    if m:
        name = m.group(1).lower()
        ctx.settings.pop(name, None)
        ctx.__post_init__()
        return Reply([], [], "RESET")
    m = _SHOW.match(sql)
    if m:
        name = m.group(1).lower()
        if name == "sluice.last":
            cols = [ColumnInfo("key", "VARCHAR"), ColumnInfo("value", "VARCHAR")]
            rows = [(k, _value_text(v)) for k, v in ctx.last.items()]
            return Reply(cols, rows, "SHOW")
        if name == "sluice.all":
            cols = [ColumnInfo("name", "VARCHAR"), ColumnInfo("setting", "VARCHAR")]
            rows = sorted(ctx.settings.items())
            return Reply(cols, rows, "SHOW")
        view = ADMIN_VIEWS.get(name)
        if view is not None:
            if not is_admin(ctx):
                raise InsufficientPrivilege(f"permission denied: SHOW {name} is for admin users",
                                            hint="mark the user admin = true in its [[users]] entry")
            cols, rows = await asyncio.to_thread(view, ctx)
            return Reply(cols, rows, "SHOW")
        if name not in ctx.settings:
            raise InvalidParameterValue(f'unrecognized configuration parameter "{name}"', sqlstate="42704")
        return Reply([ColumnInfo(name, "VARCHAR")], [(ctx.settings[name],)], "SHOW")
    return None


# -- the admin console -------------------------------------------------------------------
AdminView = Callable[[SessionContext], tuple[list[ColumnInfo], list[tuple[Any, ...]]]]
# counters of the statements that ran this process's pipeline stages; those the fast path
# forwarded are counted apart (one global per statement): read both with counters()
COUNTERS: dict[str, int] = {"statements": 0, "replies": 0, "forwarded": 0, "forwarded_rewritten": 0,
                            "errors": 0}
_fast_forwarded = 0  # statements the fast path forwarded unchanged (each a statement and a forward)


def counters() -> dict[str, int]:
    """This process's pipeline counters (``SHOW sluice.stats``), fast path included."""
    out = dict(COUNTERS)
    out["statements"] += _fast_forwarded
    out["forwarded"] += _fast_forwarded
    return out

# more counters, from the engines: each returns ``(name, value)`` rows for a session's view
STATS_SOURCES: list[Callable[[SessionContext], list[tuple[str, Any]]]] = []
# backend URL -> size of the connection pool the engines keep on it (None: none known)
POOL_SIZES: list[Callable[[str], int | None]] = []


def is_admin(ctx: SessionContext) -> bool:
    """An admin: a ``[[users]]`` entry with ``admin = true``; with no users and trust
    authentication, a client on the loopback address (or a Unix socket)."""
    cfg = ctx.config
    u = cfg.user(ctx.user)
    if u is not None:
        return bool(u.admin)
    if cfg.users or cfg.auth_method != "trust" or ctx.client_addr is None:
        return False
    if ctx.client_addr == "":
        return True
    try:
        return ipaddress.ip_address(ctx.client_addr.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _stats_view(ctx: SessionContext) -> tuple[list[ColumnInfo], list[tuple[Any, ...]]]:
    rows: list[tuple[Any, ...]] = [("clients", len(sessions()))]
    rows += list(counters().items())
    for source in list(STATS_SOURCES):
        rows += source(ctx)
    return [ColumnInfo("counter", "VARCHAR"), ColumnInfo("value", "BIGINT")], rows


def _clients_view(ctx: SessionContext) -> tuple[list[ColumnInfo], list[tuple[Any, ...]]]:
    now = time.time()
    rows: list[tuple[Any, ...]] = []
    for c in sessions():
        sql, at = c.activity if c.activity is not None else ("", None)
        # the pipeline sees a statement arrive, not finish: without the server's ``busy`` probe
        # a session other than the one asking is "connected" with its latest statement
        # (pg_stat_activity's query column)
        state = "active" if c is ctx else "connected" if c.busy is None else "active" if c.busy() else "idle"
        rows.append((c.session_id, c.user, c.database, c.client_addr or "local", state, " ".join(sql.split())[:1000],
                     None if at is None else round(now - at, 3), round(now - c.connected_at, 3)))
    cols = [ColumnInfo("session", "BIGINT"), ColumnInfo("user", "VARCHAR"), ColumnInfo("database", "VARCHAR"),
            ColumnInfo("client_addr", "VARCHAR"), ColumnInfo("state", "VARCHAR"), ColumnInfo("statement", "VARCHAR"),
            ColumnInfo("statement_age_s", "DOUBLE"), ColumnInfo("connected_s", "DOUBLE")]
    return cols, rows


def _session_url(c: SessionContext) -> str:
    url = c.extra.get("backend_url") or getattr(c.backend, "url", None) or c.config.server.backend
    return str(url)


def _databases_view(ctx: SessionContext) -> tuple[list[ColumnInfo], list[tuple[Any, ...]]]:
    from sqlsluice.databases import parse_url

    live = sessions()
    entries: list[tuple[str, str]] = []
    if ctx.config.databases:
        for name, entry in ctx.config.databases.items():
            entries.append((name, entry if isinstance(entry, str) else entry.backend))
    else:
        urls = dict.fromkeys([_session_url(ctx)] + [_session_url(c) for c in live])
        entries += [("*" if parse_url(u)[0] == "postgres" else "(server.backend)", u) for u in urls]
    rows: list[tuple[Any, ...]] = []
    for name, url in entries:
        try:
            kind = parse_url(url)[0]
        except SluiceError:
            kind = "?"
        pool = next((n for f in list(POOL_SIZES) if (n := f(url)) is not None), None)
        clients = sum(1 for c in live if (c.database == name if ctx.config.databases else _session_url(c) == url))
        rows.append((name, mask(url), kind, pool, clients))
    cols = [ColumnInfo("name", "VARCHAR"), ColumnInfo("backend", "VARCHAR"), ColumnInfo("kind", "VARCHAR"),
            ColumnInfo("pool_size", "BIGINT"), ColumnInfo("clients", "BIGINT")]
    return cols, rows


# SHOW name -> view (admins only); engines add theirs
ADMIN_VIEWS: dict[str, AdminView] = {
    "sluice.stats": _stats_view,
    "sluice.clients": _clients_view,
    "sluice.databases": _databases_view,
}


# the "forward unchanged" answer to a simple-protocol statement when it is known without
# running the stages: ``fast(ctx, sql, form, now)`` returns what the stages would have put in
# ``Forward.info`` (read only, shared), or None to run them; never raises, never waits.
# ``form`` is :func:`statement_form` of ``sql`` when the caller has it (else None), ``now``
# is ``time.monotonic()`` (see ``Pipeline.fast``)
FastPath = Callable[[SessionContext, str, bytes | None, float], dict[str, Any] | None]

_ZERO_DIGITS = bytes.maketrans(b"123456789", b"000000000")
_monotonic = time.monotonic


def statement_form(sql: str) -> bytes:
    """A statement's UTF-8 bytes with every ASCII digit as ``0``: one key for the statements
    that differ only in their numbers (the relay has it from the wire bytes at the cost of
    one ``bytes.translate``).

    >>> statement_form("SELECT * FROM t1 WHERE id = 42")
    b'SELECT * FROM t0 WHERE id = 00'
    """
    return sql.encode("utf-8", "surrogatepass").translate(_ZERO_DIGITS)


class Pipeline:
    """An ordered list of stages; the first decision wins, else the SQL is forwarded unchanged.

    ``fast``, when given, is asked first for a simple-protocol statement: a synchronous
    shortcut that says when the stages would have forwarded the statement unchanged (a
    cached "forward unchanged"), or None to run them.  What a session records (``SHOW
    sluice.last``, ``SHOW sluice.clients``, the counters) is the same either way; the fast
    path leaves it as one tuple, built into a record only when something reads it.
    """

    def __init__(self, stages: Sequence[Stage] = (), *, fast: FastPath | None = None) -> None:
        self.stages: list[Stage] = list(stages)
        self.fast = fast
        # (read once: the fast path's per-statement debug line is the only logging on it, and
        # the level is set before any pipeline is made)
        self._debug = log.isEnabledFor(logging.DEBUG)

    def append(self, stage: Stage) -> None:
        self.stages.append(stage)

    def insert(self, index: int, stage: Stage) -> None:
        self.stages.insert(index, stage)

    def forward_fast(self, ctx: SessionContext, sql: str, form: bytes | None = None) -> bool:
        """True when :attr:`fast` says a simple-protocol statement goes upstream unchanged
        (recorded as :meth:`handle` records it); False when the stages have to run.  The
        relay's hot path: one clock read, one tuple, no Forward and no dict per statement."""
        global _fast_forwarded
        fast = self.fast
        if fast is None:
            return False
        t0 = _monotonic()
        info = fast(ctx, sql, form, t0)
        if info is None:
            return False
        ctx._fast = (sql, info, t0, t0)  # (its pipeline_ms: the fast path's ~1 us reads as 0)
        _fast_forwarded += 1
        if self._debug:
            log.debug("%s@%s forward: %s", ctx.user, ctx.database, " ".join(sql.split())[:500])
        return True

    def try_fast(self, ctx: SessionContext, sql: str) -> Forward | None:
        """The decision for a simple-protocol statement through :attr:`fast`, recorded as
        :meth:`handle` records it; None when the stages have to run (call :meth:`handle`)."""
        if not self.forward_fast(ctx, sql):
            return None
        fast = ctx._fast
        return forward_as_is(sql, fast[1] if fast is not None else {})

    async def handle(self, ctx: SessionContext, sql: str, *, extended: bool) -> Decision:
        if not extended and self.fast is not None:
            fast = self.try_fast(ctx, sql)
            if fast is not None:
                return fast
        t0 = time.perf_counter()
        decision: Decision | None = None
        ctx.activity = (sql, time.time())
        COUNTERS["statements"] += 1
        # library warnings raised while this statement is handled name it (sqlsluice.logs);
        # tasks and to_thread calls started here inherit it
        with statement(sql):
            try:
                for stage in self.stages:
                    decision = await stage(ctx, sql, extended)
                    if decision is not None:
                        break
            except SluiceError:
                COUNTERS["errors"] += 1
                raise
        if decision is None:
            decision = Forward(sql)
        if isinstance(decision, Reply):
            COUNTERS["replies"] += 1
        else:
            COUNTERS["forwarded"] += 1
            if decision.sql != sql:
                COUNTERS["forwarded_rewritten"] += 1
        # record what happened (not for SHOW sluice.last itself, which would erase it)
        if not (isinstance(decision, Reply) and decision.status == "SHOW" and "sluice.last" in sql.lower()):
            last: dict[str, Any] = {"sql": sql, "extended": extended,
                                    "action": "reply" if isinstance(decision, Reply) else "forward",
                                    "pipeline_ms": round((time.perf_counter() - t0) * 1000, 3)}
            if isinstance(decision, Forward):
                if decision.sql != sql:
                    last["forwarded_sql"] = decision.sql
                last.update(decision.info)
            ctx.last = last
        if log.isEnabledFor(logging.DEBUG):
            what = "reply " + decision.status if isinstance(decision, Reply) else \
                ("forward rewritten" if decision.sql != sql else "forward")
            log.debug("%s@%s %s: %s", ctx.user, ctx.database, what, " ".join(sql.split())[:500])
        return decision


def default_pipeline() -> Pipeline:
    """The pipeline every session starts with: sluice settings, then forward."""
    return Pipeline([settings_stage])


PipelineFactory = Callable[[], Pipeline]
