"""Online rewriting for the proxy: fingerprint, stored rewrites, a background worker.

A SELECT is fingerprinted with its literals lifted to parameters.  The first sight of a
shape runs the original and queues a background job (search -> verify -> time); when the
rule rewrite is equivalent and faster, the rule sequence is stored per fingerprint in
``sluice_rewrites`` together with the backend's schema and statistics versions.  A later query of the
same shape replays that rule sequence on its own text, i.e. the stored rewrite is
re-instantiated with this call's literals; the rules' applicability checks run again on
the concrete query, so a rule whose precondition depended on a literal (pruning a UNION
branch on ``'w' = 's'``) cannot be carried over to literals where it would be wrong: when
the replay does not reproduce the stored sequence the original is served.  Stored
rewrites are dropped when the schema changes (tables, columns, keys, constraints: what
their soundness rests on).  A change of statistics (an ANALYZE, autovacuum's autoanalyze)
bears only on speed: the rewrite stays served and is re-timed against the original in the
background, and demoted only if that finds it slower, as it is when one is observed
slower when served.

Review mode (``[rewrite] mode = "review"``, as SQL plan baselines): a rewrite the search
stores is ``pending`` and is not served until approved (``sluice rewrites approve FP`` or
:meth:`RewriteStore.set_status`); ``rejected`` is never served and is kept, so the shape is
not searched again until the schema changes; forgetting deletes it (searched again on
next sight).  The decision lives in ``sluice_rewrite_status`` and is written in one
statement; outside review mode a stored rewrite without a row there is served, in review
mode it is held (nobody approved it).  A decision is dropped with the rewrite when the
schema changes, so a rewrite found again waits for a new review; a statistics change keeps
both (it is the same rewrite).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import queue
import sqlite3
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlglot import exp

from sqlsluice.config import Config
from sqlsluice.databases import Backend
from sqlsluice.errors import BackendError, SluiceError
from sqlsluice.logs import current_statement
from sqlsluice.rewriters.api import (
    Rewrite,
    _same,
    _time,
    catalog_for,
    is_rewritable,
    match_columns,
    realias,
    rewrite,
)
from sqlsluice.rewriters.rules import BY_NAME, prepare, run_rule
from sqlsluice.rewriters.safety import side_effect_reason
from sqlsluice.rewriters.search import counting_failures
from sqlsluice.state import StateStore

log = logging.getLogger(__name__)

_MAX_MEMO = 10000  # entries per in-memory map (decisions, instances, feedback)

_DDL = """CREATE TABLE IF NOT EXISTS sluice_rewrites (
    fingerprint TEXT PRIMARY KEY,
    original_template TEXT,
    rewritten_template TEXT,
    rules TEXT,
    verdict TEXT,
    speedup DOUBLE PRECISION,
    time_original DOUBLE PRECISION,
    stats_version TEXT,
    created DOUBLE PRECISION
)"""
# the certificate of each stored rewrite (how it was proved), beside the rewrite itself
_PROOF_DDL = """CREATE TABLE IF NOT EXISTS sluice_rewrite_proofs (
    fingerprint TEXT PRIMARY KEY,
    proof TEXT
)"""


# the review decision of each stored rewrite (review mode); no row: served
_STATUS_DDL = """CREATE TABLE IF NOT EXISTS {table} (
    fingerprint TEXT PRIMARY KEY,
    status TEXT,
    decided_by TEXT,
    decided_at DOUBLE PRECISION
)"""
PENDING, APPROVED, REJECTED = "pending", "approved", "rejected"
STATUSES = (PENDING, APPROVED, REJECTED)


def fingerprint(sql: str, dialect: str) -> tuple[str, list[str]]:
    """``(template_key, literals)``: the query's shape with literals lifted to ``:pN`` parameters.

    >>> k1, l1 = fingerprint("SELECT a FROM t WHERE b = 3 AND c = 'x'", "duckdb")
    >>> k2, l2 = fingerprint("SELECT a FROM t WHERE b = 7 AND c = 'y'", "duckdb")
    >>> k1 == k2, l1, l2
    (True, ['3', "'x'"], ['7', "'y'"])
    """
    tree = sqlglot.parse_one(sql, read=dialect)
    template, lits = _lift(tree, dialect)
    key = hashlib.sha256(f"{dialect}\n{template}".encode()).hexdigest()[:32]
    return key, lits


def _is_slot_param(node: exp.Expr) -> bool:
    """``$n``: a positional parameter of a prepared statement."""
    return isinstance(node, exp.Parameter) and isinstance(node.this, exp.Literal) and node.this.is_int


def _lift(tree: exp.Expr, dialect: str) -> tuple[str, list[str]]:
    """Literals and ``$n`` parameters become the same ``:pN`` slots, numbered in tree order,
    so ``WHERE c = $1`` (a Parse) and ``WHERE c = 'x'`` (its literal instance) share a shape."""
    t = tree.copy()
    lits: list[str] = []
    for node in list(t.find_all(exp.Literal, exp.Parameter)):
        if isinstance(node, exp.Parameter):
            if not _is_slot_param(node):
                continue
        elif isinstance(node.parent, exp.Parameter) or node.find_ancestor(exp.DataType) is not None:
            continue  # the n of $n; DECIMAL(7,2): part of the shape
        lits.append(node.sql(dialect=dialect))
        node.replace(exp.Placeholder(this=f"p{len(lits)}"))
    return t.sql(dialect=dialect), lits


def instance_key(key: str, literals: list[str]) -> str:
    """The key of one literal instance of a shape (for rewrites that cannot be replayed by rules)."""
    return "i:" + hashlib.sha256(f"{key}\n{json.dumps(literals)}".encode()).hexdigest()[:30]


def _literal(v: Any) -> exp.Expr | None:
    """A bound parameter value as the literal that lifts back into the same slot (None: not possible)."""
    import datetime as dt
    import decimal
    import math
    import uuid

    if v is None or isinstance(v, bytes | list | tuple | dict | dt.timedelta):
        return None  # NULL lifts to another shape; arrays, bytes, intervals: no plain literal
    if isinstance(v, bool):
        return exp.Literal.string("true" if v else "false")
    if isinstance(v, int | float | decimal.Decimal):
        if isinstance(v, float) and not math.isfinite(v) or isinstance(v, decimal.Decimal) and not v.is_finite():
            return exp.Literal.string(str(v))
        if v < 0:
            return exp.Literal.string(str(v))  # -5 would parse as a negation: an untyped '-5' is one slot
        return exp.Literal.number(repr(v) if isinstance(v, float) else str(v))
    if isinstance(v, dt.datetime | dt.date | dt.time | uuid.UUID | str):
        return exp.Literal.string(str(v))
    return None


def instantiate(sql: str, values: Sequence[Any] | None, dialect: str) -> str | None:
    """The literal instance of a prepared ``sql`` under a Bind's decoded parameter ``values``.

    Numbers become number literals, everything else an untyped string literal, which
    PostgreSQL resolves from context just as it does a parameter.  None when a value has no
    such literal (NULL, arrays, bytea) or there are no values (the Bind did not match).
    """
    if values is None:
        return None
    try:
        tree = sqlglot.parse_one(sql, read=dialect)
    except (sqlglot.errors.SqlglotError, IndexError):
        return None
    lits = [_literal(v) for v in values]
    for node in list(tree.find_all(exp.Parameter)):
        if not _is_slot_param(node):
            continue
        i = int(node.this.name) - 1
        lit = lits[i] if 0 <= i < len(lits) else None
        if lit is None:
            return None
        node.replace(lit.copy())
    return tree.sql(dialect=dialect)


def template_of(sql: str, dialect: str) -> str:
    return _lift(sqlglot.parse_one(sql, read=dialect), dialect)[0]


@dataclass
class Entry:
    fingerprint: str
    original_template: str
    rewritten_template: str
    rules: list[str]
    verdict: str
    speedup: float | None
    time_original: float | None
    stats_version: str
    created: float

    @property
    def has_rewrite(self) -> bool:
        return bool(self.rules)


class RewriteStore:
    """Stored rewrites (and "no rewrite found" markers) in ``sluice_rewrites`` of a :class:`StateStore`."""

    def __init__(self, state: StateStore, *, review: bool = False) -> None:
        self.state = state
        self.review = review  # review mode: a stored rewrite without a decision is not served
        state.ensure(_DDL)
        state.ensure(_PROOF_DDL)
        # a namespaced view (one database of several) keeps its decisions apart too
        self._status = "sluice_rewrite_status" + str(getattr(state, "suffix", ""))
        state.ensure(_STATUS_DDL.format(table=self._status))

    def status(self, key: str) -> tuple[str, str, float] | None:
        """The review decision ``(status, decided_by, decided_at)`` of a stored rewrite, or None
        (none recorded: served)."""
        rows = self.state.execute(f"SELECT status, decided_by, decided_at FROM {self._status} WHERE fingerprint = ?",
                                  [key])
        return (str(rows[0][0]), str(rows[0][1] or ""), float(rows[0][2] or 0.0)) if rows else None

    def set_status(self, key: str, status: str, by: str) -> None:
        if status not in STATUSES:
            raise ValueError(f"unknown review status {status!r}")
        # one statement (an upsert, SQLite 3.24+ and PostgreSQL): a DELETE then INSERT let a
        # reader in between see no decision, i.e. a stored rewrite it would serve
        self.state.execute(f"INSERT INTO {self._status} (fingerprint, status, decided_by, decided_at) "
                           "VALUES (?, ?, ?, ?) ON CONFLICT (fingerprint) DO UPDATE SET status = excluded.status, "
                           "decided_by = excluded.decided_by, decided_at = excluded.decided_at",
                           [key, status, by, time.time()])

    def clear_status(self, key: str) -> None:
        self.state.execute(f"DELETE FROM {self._status} WHERE fingerprint = ?", [key])

    def review_status(self, e: Entry) -> str:
        """What serving does with a stored entry: ``pending`` | ``approved`` | ``rejected`` |
        ``served`` (no decision, outside review mode) | ``none`` (no rewrite: searched, none found).
        In review mode a stored rewrite without a decision is ``pending``: nobody approved it."""
        if not e.has_rewrite:
            return "none"
        st = self.status(e.fingerprint)
        return st[0] if st is not None else PENDING if self.review else "served"

    def blocked(self, key: str) -> str | None:
        """Why the stored rewrite of ``key`` may not be served (pending review, rejected), or None.
        In review mode a rewrite with no decision recorded is held: only ``approved`` serves."""
        st = self.status(key)
        if st is None:
            return f"pending review, no decision recorded (sluice rewrites approve {key})" if self.review else None
        if st[0] == APPROVED:
            return None
        if st[0] == PENDING:
            return f"pending review (sluice rewrites approve {key})"
        return f"rejected by {st[1] or '?'}"

    def resolve(self, prefix: str) -> list[str]:
        """The stored fingerprints starting with ``prefix`` (a unique prefix names one)."""
        rows = self.state.execute("SELECT fingerprint FROM sluice_rewrites WHERE fingerprint = ?", [prefix])
        if rows:
            return [prefix]
        esc = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = self.state.execute("SELECT fingerprint FROM sluice_rewrites WHERE fingerprint LIKE ? ESCAPE '\\' "
                                  "ORDER BY fingerprint", [esc + "%"])
        return [str(r[0]) for r in rows]

    def put_proof(self, key: str, proof: dict[str, Any]) -> None:
        self.state.execute("INSERT INTO sluice_rewrite_proofs (fingerprint, proof) VALUES (?, ?) "
                           "ON CONFLICT (fingerprint) DO UPDATE SET proof = excluded.proof", [key, json.dumps(proof)])

    def proof(self, key: str) -> dict[str, Any] | None:
        rows = self.state.execute("SELECT proof FROM sluice_rewrite_proofs WHERE fingerprint = ?", [key])
        return json.loads(rows[0][0]) if rows and rows[0][0] else None

    def get(self, key: str) -> Entry | None:
        rows = self.state.execute(
            "SELECT fingerprint, original_template, rewritten_template, rules, verdict, speedup, time_original, "
            "stats_version, created FROM sluice_rewrites WHERE fingerprint = ?", [key])
        if not rows:
            return None
        r = rows[0]
        return Entry(r[0], r[1], r[2], json.loads(r[3] or "[]"), r[4], r[5], r[6], r[7], r[8])

    def put(self, e: Entry) -> None:
        # an upsert: a reader never finds the shape missing (and searches it again) meanwhile
        self.state.execute(
            "INSERT INTO sluice_rewrites (fingerprint, original_template, rewritten_template, rules, verdict, "
            "speedup, time_original, stats_version, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (fingerprint) DO UPDATE SET original_template = excluded.original_template, "
            "rewritten_template = excluded.rewritten_template, rules = excluded.rules, verdict = excluded.verdict, "
            "speedup = excluded.speedup, time_original = excluded.time_original, "
            "stats_version = excluded.stats_version, created = excluded.created",
            [e.fingerprint, e.original_template, e.rewritten_template, json.dumps(e.rules), e.verdict, e.speedup,
             e.time_original, e.stats_version, e.created])

    def drop(self, key: str) -> None:
        """Delete the entry, its proof and its review decision (the shape is searched again)."""
        self.state.execute("DELETE FROM sluice_rewrites WHERE fingerprint = ?", [key])
        self.state.execute("DELETE FROM sluice_rewrite_proofs WHERE fingerprint = ?", [key])
        self.clear_status(key)

    def all(self) -> list[Entry]:
        keys = [r[0] for r in self.state.execute("SELECT fingerprint FROM sluice_rewrites ORDER BY created")]
        return [e for k in keys if (e := self.get(k)) is not None]


@dataclass
class ShadowRecord:
    sql: str
    rewritten: bool
    rules: list[str]
    time_original: float | None
    time_rewrite: float | None
    same_results: bool | None
    note: str = ""


@dataclass
class _Stats:
    submitted: int = 0
    searched: int = 0
    stored: int = 0
    hits: int = 0
    dropped: int = 0
    replay_failed: int = 0
    errors: int = 0
    prepared_hits: int = 0  # Parse messages answered with a stored rewrite
    bound_instances: int = 0  # literal instances built from a first Bind and queued
    observed: int = 0  # served executions fed back (rewrites and originals)
    rechecks: int = 0  # served rewrites re-timed against the original after looking slower
    retimed: int = 0  # stored rewrites re-timed because the statistics changed (kept meanwhile)
    proved: int = 0  # stored rewrites whose certificate is a proof (PROVED)
    pending: int = 0  # stored for review (review mode), not served until approved
    held: int = 0  # lookups that found a stored rewrite pending review or rejected
    reasons: dict[str, int] = field(default_factory=dict)


# served-time feedback: an exponentially weighted mean per shape, compared with the
# original's time on the same shape; several observations and a margin before acting,
# and then a side-by-side re-timing decides (one slow run, or a database that got slower
# for both forms, drops nothing)
EWMA_ALPHA = 0.3
MIN_OBSERVATIONS = 3
SLOWER_MARGIN = 1.2  # served rewrite vs the original's time on the shape
DRIFT = 2.0  # served rewrite vs its own verified time: the data changed, check it still wins


@dataclass
class Served:
    """What serving a shape has measured (in memory, per proxy)."""

    rewrite_s: float | None = None  # EWMA of served rewrite executions
    n_rewrite: int = 0
    original_s: float | None = None  # EWMA of served originals (first sight, replay misses, re-timings)
    n_original: int = 0
    baseline_s: float | None = None  # the original's time recorded with the stored rewrite
    expected_s: float | None = None  # the rewrite's time when it was verified (or last re-timed)
    recheck_pending: bool = False
    note: str = ""

    def original(self) -> float | None:
        return self.original_s if self.n_original else self.baseline_s


def _put_bounded(memo: OrderedDict[Any, Any], k: Any, v: Any, cap: int = _MAX_MEMO) -> None:
    """``memo[k] = v`` as the most recent entry, the oldest dropped beyond ``cap``."""
    memo[k] = v
    memo.move_to_end(k)
    while len(memo) > cap:
        memo.popitem(last=False)


def _ewma(old: float | None, x: float) -> float:
    return x if old is None else old + EWMA_ALPHA * (x - old)


_LIVE: weakref.WeakSet[OnlineRewriter] = weakref.WeakSet()  # every open rewriter of this process
# called with (rewriter, shape, seconds, rewritten) for each served execution fed back; must not
# block (the event loop calls it): the web console records served timings over time this way
SERVED_HOOKS: list[Callable[[OnlineRewriter, str, float, bool], None]] = []


@dataclass(frozen=True)
class Prepared:
    """The answer to a Parse: the SQL to parse upstream (with the client's ``$n``) and the
    parameter types to declare, or ``sql=None`` to parse the original."""

    key: str | None
    sql: str | None
    param_oids: tuple[int, ...] | None
    info: dict[str, Any]
    generation: int
    stats_at: float


class OnlineRewriter:
    """What the proxy calls: :meth:`lookup` before running a query, :meth:`submit` after a miss."""

    def __init__(self, backend: Backend, config: Config | None = None, store: RewriteStore | None = None, *,
                 stats_refresh_s: float = 5.0, timeout_s: float | None = None) -> None:
        from sqlsluice.state import store_for

        self.backend = backend
        self.config = config or Config()
        self.store = store or RewriteStore(store_for(self.config))  # $SLUICE_STATE, else server.state
        if self.review:
            self.store.review = True  # a rewrite stored without a decision waits for one
        self.dialect = backend.dialect
        self.stats_refresh_s = stats_refresh_s
        self.timeout_s = timeout_s or min(self.config.server.statement_timeout_s, 120.0)
        self.stats = _Stats()
        self.shadow_log: list[ShadowRecord] = []
        self._q: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        self._stats_ver: tuple[float, str] | None = None
        self._retiming: set[str] = set()  # shapes queued for a re-time after a statistics change
        self._replays: OrderedDict[tuple[str, str], str | None] = OrderedDict()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._busy = 0
        # extended protocol and feedback
        self._generation = 0  # bumped whenever a stored rewrite changes (cached decisions expire)
        self._prepared: OrderedDict[tuple[str, tuple[int, ...]], Prepared] = OrderedDict()
        self._simple: OrderedDict[str, Prepared] = OrderedDict()  # simple-protocol hits, by exact text
        self._instances: OrderedDict[str, str] = OrderedDict()  # shape -> a literal instance seen
        self._bound_jobs: set[str] = set()
        self._served: OrderedDict[str, Served] = OrderedDict()
        self._dropped: OrderedDict[str, str] = OrderedDict()  # shape -> why its rewrite was dropped
        self.min_observations = MIN_OBSERVATIONS  # served executions before the feedback acts
        _LIVE.add(self)  # what the admin console lists (SHOW sluice.stats, sluice.rewrites)

    @property
    def review(self) -> bool:
        """Review mode: rewrites found are stored pending and served only once approved."""
        return self.config.rewrite.mode == "review"

    # -- statistics version, cached ------------------------------------------------------
    def stats_version(self) -> str:
        """The version stamped on a stored entry: ``<schema version>/<statistics version>``.

        Only the schema part bears on soundness (tables, columns, keys, constraints: what the
        rules' preconditions and the proofs read); statistics only bear on speed."""
        now = time.monotonic()
        with self._lock:
            if self._stats_ver is not None and now - self._stats_ver[0] < self.stats_refresh_s:
                return self._stats_ver[1]
        try:
            v = f"{self.backend.schema_version()}/{self.backend.stats_version()}"
        except SluiceError:
            v = ""  # unknown: every stored entry counts as from another schema (dropped)
        with self._lock:
            self._stats_ver = (now, v)
        return v

    def _changed(self, e: Entry) -> str | None:
        """What changed since ``e`` was stored: None (nothing), ``"statistics"`` (the rewrite is
        still sound: keep serving it, re-time it) or ``"schema"`` (drop it).  An entry stamped
        before versions had a schema part, or while the version was unknown, counts as schema."""
        cur = self.stats_version()
        if e.stats_version == cur:
            return None
        old_schema, sep, _ = e.stats_version.partition("/")
        new_schema, sep2, _ = cur.partition("/")
        return "statistics" if sep and sep2 and old_schema and old_schema == new_schema else "schema"

    def _still_sound(self, e: Entry, instance: str | None) -> bool:
        """False when the schema changed since ``e`` was stored (it is dropped: searched again on
        next sight); on a statistics change, True, with a background re-time of the rewrite
        against the original queued (it is demoted only if that finds it slower)."""
        what = self._changed(e)
        if what == "schema":
            self._drop(e.fingerprint, "schema changed")
            return False
        if what == "statistics" and e.has_rewrite and (self.store.status(e.fingerprint) or ("",))[0] != REJECTED:
            self._retime(e.fingerprint, instance)  # (a rejected one is never served: nothing to time)
        return True

    def _retime(self, key: str, instance: str | None) -> None:
        """Queue one re-time of the stored rewrite of ``key`` after a statistics change."""
        if self._closed:
            return
        with self._lock:
            if key in self._retiming:
                return
            self._retiming.add(key)
            self.stats.retimed += 1
        if instance is not None:
            self.note_instance(key, instance)
        self._enqueue("retime", (key,))
        self._ensure_worker()

    def invalidate_stats(self) -> None:
        with self._lock:
            self._stats_ver = None

    # -- serving ------------------------------------------------------------------------
    def lookup(self, sql: str) -> tuple[str, dict[str, Any]] | None:
        """The stored rewrite of this query's shape, with this call's literals; None to run the original."""
        out, info = self.lookup_ex(sql)
        return None if out is None else (out, info)

    def cached_lookup(self, sql: str) -> tuple[str, dict[str, Any]] | None:
        """A rule rewrite served for exactly this text before, while nothing changed since
        (no parse, no I/O: called on the event loop)."""
        with self._lock:
            p = self._simple.get(sql)
            if p is None or p.sql is None or not self._current(p):
                return None
            self.stats.hits += 1
            return p.sql, dict(p.info)

    def _current(self, p: Prepared) -> bool:
        """A memoised decision still holds: no rewrite stored or dropped since, statistics recent
        (the caller holds the lock)."""
        return p.generation == self._generation and time.monotonic() - p.stats_at < self.stats_refresh_s

    def _remember(self, memo: OrderedDict[Any, Prepared], k: Any, p: Prepared) -> None:
        with self._lock:
            _put_bounded(memo, k, p)

    def lookup_ex(self, sql: str) -> tuple[str | None, dict[str, Any]]:
        """``(rewritten SQL or None, info)``; info has the shape's ``fingerprint`` (when it has
        one) and, on a miss, why (``rewrite``: e.g. that a served rewrite was dropped)."""
        with self._lock:
            gen = self._generation
        now = time.monotonic()
        out, info = self._lookup_ex(sql)
        if out is not None and "scope" not in info:
            self._remember(self._simple, sql, Prepared(info.get("fingerprint"), out, None, info, gen, now))
        return out, info

    def _lookup_ex(self, sql: str) -> tuple[str | None, dict[str, Any]]:
        if not is_rewritable(sql, self.dialect):
            return None, {"rewritten": False, "rewrite": "not a single read-only query"}
        try:
            key, lits = fingerprint(sql, self.dialect)
        except sqlglot.errors.SqlglotError:
            return None, {"rewritten": False, "rewrite": "not parsed"}
        e = self.store.get(key)
        miss: dict[str, Any] = {"rewritten": False, "fingerprint": key}
        if e is None or not e.has_rewrite:
            hit = self._lookup_instance(sql, key, lits)
            if hit is not None:
                return hit
            with self._lock:
                why = self._dropped.get(key)
            miss["rewrite"] = f"dropped: {why}" if why else "no stored rewrite" if e is not None else "unknown shape"
            return None, miss
        if not self._still_sound(e, sql):  # the schema changed: searched again on next sight
            miss["rewrite"] = "dropped: schema changed"
            return None, miss
        held = self.store.blocked(key)
        if held is not None:
            self.stats.held += 1
            miss["rewrite"] = held
            return None, miss
        out = self._replay(sql, e.rules)
        if out is None:
            self.stats.replay_failed += 1
            miss["rewrite"] = "stored rules do not apply to these literals"
            return None, miss
        self.stats.hits += 1
        self.note_instance(key, sql)
        return out, {"rewritten": True, "fingerprint": key, "rules": e.rules, "verdict": e.verdict,
                     "speedup": e.speedup, "time_original": e.time_original, "proof": self._proof_line(key)}

    def _lookup_instance(self, sql: str, key: str, lits: list[str]) -> tuple[str | None, dict[str, Any]] | None:
        """A rewrite proposed by an LLM stage is a whole query, not a rule sequence: it is served
        only to the very literal instance it was verified and timed on."""
        e = self.store.get(instance_key(key, lits))
        if e is None or not e.has_rewrite or e.original_template != sql:
            return None
        if not self._still_sound(e, sql):
            return None
        if self.store.blocked(e.fingerprint) is not None:
            self.stats.held += 1
            return None
        self.stats.hits += 1
        return e.rewritten_template, {"rewritten": True, "fingerprint": key, "rules": e.rules,
                                      "verdict": e.verdict, "speedup": e.speedup, "scope": "this literal instance",
                                      "proof": self._proof_line(e.fingerprint)}

    def _proof_line(self, key: str) -> str:
        """The stored certificate in one line (``SHOW sluice.last``)."""
        p = self.store.proof(key)
        if not p:
            return "none"
        status = p.get("status", "?")
        if status == "PROVED":
            steps = [st.get("rule", "?") + (f" ({st['method']})" if st.get("method") else "")
                     for st in p.get("steps", [])]
            by = p.get("by", "")
            head = f"PROVED by {by}" + (f" ({p.get('method')})" if by == "whole query" else "")
            return head + (": " + " -> ".join(steps) if steps else "")
        if status == "TESTED":
            return "TESTED, not proved (served under policy 'tested'): " + str(p.get("reason", ""))[:160]
        return str(status)

    def _replay(self, sql: str, rules: list[str], *, rename: bool = True) -> str | None:
        ck = (sql, json.dumps(rules) + ("" if rename else "#raw"))
        with self._lock:
            if ck in self._replays:
                self._replays.move_to_end(ck)
                return self._replays[ck]
        catalog = catalog_for(self.backend)
        tree = prepare(sql, catalog, self.dialect)
        out: str | None = None
        for name in rules:
            rule = BY_NAME.get(name)
            new = run_rule(rule, tree, catalog, self.dialect) if rule else tree
            if new is tree:
                break  # this literal instance does not admit the stored sequence
            tree = new
        else:
            out = tree.sql(dialect=self.dialect)
            if rename and out != sql:
                # a rewrite never renames a column (rules qualify with generated aliases)
                out = match_columns(self.backend, sql, out)
        with self._lock:
            _put_bounded(self._replays, ck, out, 512)
        return out

    # -- background search --------------------------------------------------------------
    def submit(self, sql: str) -> bool:
        """Queue a background rewrite job for this shape; False when known, pending or not a query."""
        if self._closed or not is_rewritable(sql, self.dialect):
            return False
        try:
            key, _ = fingerprint(sql, self.dialect)
        except sqlglot.errors.SqlglotError:
            return False
        with self._lock:
            if key in self._pending:
                return False
        unsafe = side_effect_reason(self.backend, sql)
        if unsafe:  # never re-run, never rewritten
            with self._lock:
                self.stats.reasons[f"not rewritten: {unsafe}"] = self.stats.reasons.get(f"not rewritten: {unsafe}", 0) + 1
            return False
        e = self.store.get(key)
        if e is not None:
            what = self._changed(e)
            # a stored rewrite outlives a statistics change (re-timed, see _still_sound); a "no
            # rewrite" marker is searched again, the search may find one under new statistics
            if what is None or what == "statistics" and e.has_rewrite:
                return False
        with self._lock:
            self._pending.add(key)
            self.stats.submitted += 1
        self._enqueue("search", (key, sql))
        self._ensure_worker()
        return True

    def _enqueue(self, kind: str, arg: Any) -> None:
        with self._lock:
            self._busy += 1  # counted from the moment it is queued (see wait_idle)
        self._q.put((kind, arg))

    def _ensure_worker(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="sluice-rewriter", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            kind, arg = self._q.get()
            if kind == "stop":
                return
            # sqlglot warnings raised by this job name its statement (this thread's own context)
            current_statement.set(arg[0] if kind == "shadow" else arg[1] if kind in ("search", "bound") else None)
            try:
                if kind == "search":
                    self._search(*arg)
                elif kind == "shadow":
                    self._shadow(*arg)
                elif kind == "bound":
                    self._bound(*arg)
                elif kind == "recheck":
                    self._recheck(*arg)
                elif kind == "retime":
                    self._recheck(*arg, statistics_changed=True)
            except Exception as e:  # the worker must survive anything a job does
                self.stats.errors += 1
                log.exception("background rewrite job failed: %s", e)
            finally:
                with self._lock:
                    self._busy -= 1
                    if kind == "search":
                        self._pending.discard(arg[0])
                    elif kind == "bound":
                        self._bound_jobs.discard(arg[0])
                    elif kind == "recheck":
                        sv = self._served.get(arg[0])
                        if sv is not None:
                            sv.recheck_pending = False
                    elif kind == "retime":
                        self._retiming.discard(arg[0])

    def _search(self, key: str, sql: str) -> Rewrite:
        ver = self.stats_version()
        self.note_instance(key, sql)
        with counting_failures() as failed:  # states the search dropped (generator errors)
            rw = rewrite(self.backend, sql, config=self.config, rewriter=self.config.rewrite.rewriter, timing=True,
                         timeout_s=self.timeout_s)
        self.stats.searched += 1
        with self._lock:
            self.stats.reasons[rw.reason] = self.stats.reasons.get(rw.reason, 0) + 1
            for why, n in failed.items():
                self.stats.reasons[f"search state dropped: {why}"] = \
                    self.stats.reasons.get(f"search state dropped: {why}", 0) + n
        template = template_of(sql, self.dialect)
        ok = rw.rewritten and rw.speedup is not None and rw.speedup >= self.config.rewrite.min_speedup
        if ok and rw.source != "rules" and self._replay(sql, rw.rules) is None:
            # an LLM rewrite: store it for this literal instance only (it cannot be re-derived
            # for other literals), with the exact original text it was checked against
            _, lits = fingerprint(sql, self.dialect)
            self._hold(instance_key(key, lits))
            self.store.put(Entry(instance_key(key, lits), sql, rw.sql, rw.rules, rw.verdict, rw.speedup,
                                 rw.time_original, ver, time.time()))
            self.store.put_proof(instance_key(key, lits), rw.proof)
            self._stored(instance_key(key, lits), rw)
            ok = False  # the shape itself has no replayable rewrite
        elif ok and self._replay(sql, rw.rules) is None:
            ok = False  # the rule path must replay on the same text
        if ok:
            self._hold(key)
        self.store.put(Entry(key, template, template_of(rw.sql, self.dialect) if ok else "",
                             rw.rules if ok else [], rw.verdict if ok else "NONE", rw.speedup if ok else None,
                             rw.time_original, ver, time.time()))
        if ok:
            self.store.put_proof(key, rw.proof)
            self._stored(key, rw)
        else:
            self.store.clear_status(key)
        with self._lock:
            self._generation += 1
            self._dropped.pop(key, None)
            self._served.pop(key, None)
        return rw

    def _hold(self, key: str) -> None:
        """Review mode: ``key`` is marked pending before its rewrite is stored, so that no lookup
        in between finds a stored rewrite without a decision (which it would serve)."""
        if self.review:
            self.store.set_status(key, PENDING, "search")

    def _stored(self, key: str, rw: Rewrite) -> None:
        """Count a stored rewrite; in review mode it waits for approval (pending: :meth:`_hold`)."""
        self.stats.stored += 1
        if (rw.proof or {}).get("status") == "PROVED":
            self.stats.proved += 1
        if self.review:
            self.stats.pending += 1
            log.info("rewrite %s stored pending review (rules %s)", key, ",".join(rw.rules))
        else:
            self.store.clear_status(key)

    def observe(self, key: str, seconds_served: float) -> bool:
        """Report how long a served rewrite of shape ``key`` took (Python API of the feedback
        the proxy gives through :meth:`observer`).  True when a re-check against the original
        was queued (or, with no literal instance known to re-time, the rewrite was dropped)."""
        e = self.store.get(key)
        if e is None or not e.has_rewrite:
            return False
        with self._lock:
            sv = self._served.setdefault(key, Served())
            if sv.baseline_s is None:
                sv.baseline_s = e.time_original
                if e.time_original and e.speedup:
                    sv.expected_s = e.time_original / e.speedup
        self.observe_served(key, seconds_served, rewritten=True)
        with self._lock:
            return sv.recheck_pending or key in self._dropped

    def observer(self, key: str, *, rewritten: bool, ctx: Any = None, baseline_s: float | None = None,
                 speedup: float | None = None) -> Callable[[float], None]:
        """A callback for the proxy: feeds each measured execution of a statement of shape
        ``key`` back, and says so in ``ctx.last`` (``SHOW sluice.last``) when that still is
        this statement's record."""
        with self._lock:
            sv = self._served.get(key)
            if sv is None:
                sv = self._served[key] = Served()
                while len(self._served) > _MAX_MEMO:
                    self._served.popitem(last=False)
            if baseline_s is not None and sv.baseline_s is None:
                sv.baseline_s = baseline_s
                if speedup:
                    sv.expected_s = baseline_s / speedup

        def observe(seconds: float) -> None:
            note = self.observe_served(key, seconds, rewritten=rewritten)
            last = getattr(ctx, "last", None)
            if isinstance(last, dict) and last.get("fingerprint") == key:
                last["served_ms"] = round(seconds * 1000, 3)
                if note:
                    last["feedback"] = note

        return observe

    def observe_served(self, key: str, seconds: float, *, rewritten: bool) -> str:
        """Fold one measured execution into the shape's EWMA; queue a side-by-side re-timing once
        a served rewrite looks slower than the original (never blocks: called on the event loop)."""
        for hook in SERVED_HOOKS:
            hook(self, key, seconds, rewritten)
        with self._lock:
            self.stats.observed += 1
            sv = self._served.setdefault(key, Served())
            if not rewritten:
                sv.original_s = _ewma(sv.original_s, seconds)
                sv.n_original += 1
                return ""
            sv.rewrite_s = _ewma(sv.rewrite_s, seconds)
            sv.n_rewrite += 1
            orig = sv.original()
            assert sv.rewrite_s is not None
            if orig is None:
                return f"served avg {sv.rewrite_s * 1000:.3g} ms over {sv.n_rewrite}"
            note = (f"served avg {sv.rewrite_s * 1000:.3g} ms over {sv.n_rewrite} vs original "
                    f"{orig * 1000:.3g} ms")
            slower = sv.rewrite_s > orig * SLOWER_MARGIN
            drift = sv.expected_s is not None and sv.rewrite_s > sv.expected_s * DRIFT
            if drift and not slower:
                assert sv.expected_s is not None
                note += f", {sv.rewrite_s / sv.expected_s:.3g}x its verified time"
            if sv.n_rewrite < self.min_observations or not (slower or drift):
                return note
            if sv.recheck_pending:
                return note + ": re-timing both"
            sv.recheck_pending = True
            sv.note = note
            self.stats.rechecks += 1
        self._enqueue("recheck", (key,))
        self._ensure_worker()
        return note + ": re-timing both"

    def _recheck(self, key: str, *, statistics_changed: bool = False) -> None:
        """Time the original and the stored rewrite side by side on a literal instance of the
        shape; drop the rewrite when it is slower (or returns other rows), else refresh its
        baseline and stamp it with the current statistics version.

        ``statistics_changed``: queued because the statistics changed since it was stored (not
        because it looked slow when served): with no instance to re-time it is kept as it is
        (its soundness does not rest on statistics; the served-time feedback still watches)."""
        e = self.store.get(key)
        if e is None or not e.has_rewrite:
            return
        ver = self.stats_version()
        if self._changed(e) == "schema":
            self._drop(key, "schema changed")
            return
        with self._lock:
            inst = self._instances.get(key)
            sv = self._served.setdefault(key, Served())
            note = "after a statistics change" if statistics_changed else f"after serving ({sv.note})"
            orig = sv.original()
            slower = orig is not None and sv.rewrite_s is not None and sv.rewrite_s > orig * SLOWER_MARGIN
        instance_only = key.startswith("i:")  # an LLM rewrite, of exactly one literal instance
        if instance_only:
            inst = e.original_template
        if inst is None and statistics_changed:
            self.store.put(Entry(key, e.original_template, e.rewritten_template, e.rules, e.verdict, e.speedup,
                                 e.time_original, ver, e.created))
            log.info("re-time: rewrite %s kept under new statistics (no literal instance to re-time)", key)
            return
        if inst is None:
            if slower:
                self._demote(key, f"slower when served ({note}); no literal instance to re-time")
            else:  # only slower than it used to be: nothing to compare with, keep counting
                with self._lock:
                    sv.expected_s, sv.n_rewrite = sv.rewrite_s, 0
            return
        rsql = e.rewritten_template if instance_only else self._replay(inst, e.rules)
        if rsql is None:
            self._demote(key, "stored rules no longer apply to the recorded instance")
            return
        t_o: list[float] = []
        t_r: list[float] = []
        rows_o = rows_r = None
        for _ in range(3):  # alternate, keep the best of each (noise only ever adds time)
            a, ro = _time(self.backend, inst, self.timeout_s)
            b, rr = _time(self.backend, rsql, self.timeout_s)
            if a is not None:
                t_o.append(a)
                rows_o = ro if rows_o is None else rows_o
            if b is not None:
                t_r.append(b)
                rows_r = rr if rows_r is None else rows_r
        if rows_o is not None and rows_r is not None and not _same(rows_o, rows_r):
            # the timed runs ran on different snapshots (another session may have written in
            # between): compare again on one snapshot before calling the rewrite wrong
            try:
                rows_o, rows_r = self.backend.readonly_snapshot([inst, rsql], timeout=self.timeout_s)
            except SluiceError as err:
                log.info("re-check: no same-snapshot comparison: %s", err.message)
        if rows_o is not None and rows_r is not None and not _same(rows_o, rows_r):
            log.error("re-check: rewrite %s returned different rows; dropped (original %d rows %r, rewrite %d rows %r)",
                      key, len(rows_o), rows_o[:3], len(rows_r), rows_r[:3])
            self._drop(key, "re-check returned different rows")
            return
        best_o = min(t_o) if t_o else None
        best_r = min(t_r) if t_r else None
        if best_r is None and best_o is not None:
            self._demote(key, f"slower than the original, re-timed {note}: rewrite timed out, "
                              f"original {best_o * 1000:.3g} ms")
            return
        if best_r is not None and best_o is not None and best_r > best_o:
            self._demote(key, f"slower than the original, re-timed {note}: rewrite "
                              f"{best_r * 1000:.3g} ms > original {best_o * 1000:.3g} ms")
            return
        # still faster (or the original timed out): refresh the baseline, start counting again
        speed = None if best_o is None or not best_r else best_o / best_r
        self.store.put(Entry(key, e.original_template, e.rewritten_template, e.rules, e.verdict, speed or e.speedup,
                             best_o if best_o is not None else e.time_original, ver, e.created))
        with self._lock:
            self._served[key] = Served(original_s=best_o, n_original=1 if best_o is not None else 0,
                                       baseline_s=best_o, expected_s=best_r,
                                       note=f"re-timed {note}: rewrite still faster")
            self._generation += 1
        log.info("re-check: rewrite %s still faster (%s vs %s)", key, best_r, best_o)

    @property
    def generation(self) -> int:
        """Bumped whenever a stored rewrite or its review status changes: a decision cached
        under an older generation is stale."""
        return self._generation

    def expire_decisions(self) -> None:
        """A stored rewrite changed outside this rewriter (reviewed in the web console)."""
        with self._lock:
            self._generation += 1

    def _drop(self, key: str, why: str) -> None:
        self.store.drop(key)
        self._note_dropped(key, why)

    def _note_dropped(self, key: str, why: str) -> None:
        with self._lock:
            self.stats.dropped += 1
            self._generation += 1
            _put_bounded(self._dropped, key, why)

    def _demote(self, key: str, why: str) -> None:
        """Keep the shape as "no rewrite" (so it is not searched again until statistics change)."""
        e = self.store.get(key)
        if e is None:
            return
        # stamped with the version it was found slower under: searched again when it changes
        self.store.put(Entry(key, e.original_template, "", [], "NONE", None, e.time_original,
                             self.stats_version(), time.time()))
        self.store.clear_status(key)
        self._note_dropped(key, why)
        log.warning("rewrite %s %s: dropped", key, why)

    def dropped_reason(self, key: str) -> str | None:
        with self._lock:
            return self._dropped.get(key)

    def note_instance(self, key: str, sql: str) -> None:
        """Remember a literal instance of the shape (what a re-check re-times)."""
        with self._lock:
            _put_bounded(self._instances, key, sql)

    # -- extended protocol --------------------------------------------------------------
    def cached_prepared(self, sql: str, param_oids: tuple[int, ...]) -> Prepared | None:
        """The decision for this Parse when it is cached and current (no I/O: event loop)."""
        with self._lock:
            p = self._prepared.get((sql, param_oids))
            return p if p is not None and self._current(p) else None

    def lookup_prepared(self, sql: str, param_oids: tuple[int, ...]) -> Prepared:
        """What to parse upstream for a Parse of ``sql`` (with ``$n`` parameters).

        A shape with a stored rule rewrite is replayed on the ``$n`` text itself (rules whose
        precondition needs a literal value do not fire on a parameter, so the replay fails and
        the original is served); the rewrite is then described upstream with the original's
        parameter types, and served only when its result columns (names, types) are the same.
        """
        with self._lock:
            gen = self._generation
        now = time.monotonic()
        p = self._lookup_prepared(sql, param_oids, gen, now)
        self._remember(self._prepared, (sql, param_oids), p)
        return p

    def _lookup_prepared(self, sql: str, oids: tuple[int, ...], gen: int, now: float) -> Prepared:
        def miss(key: str | None, why: str) -> Prepared:
            info: dict[str, Any] = {"rewritten": False, "rewrite": why}
            if key:
                info["fingerprint"] = key
            return Prepared(key, None, None, info, gen, now)

        if self.dialect != "postgres":
            return miss(None, "prepared statements are rewritten over PostgreSQL only")
        if not is_rewritable(sql, self.dialect):
            return miss(None, "not a single read-only query")
        try:
            key, _ = fingerprint(sql, self.dialect)
        except sqlglot.errors.SqlglotError:
            return miss(None, "not parsed")
        e = self.store.get(key)
        if e is None:
            with self._lock:
                pending = key in self._pending or key in self._bound_jobs
                inst = self._instances.get(key)
            if not pending and inst is not None:
                pending = self.submit(inst)  # searched before (statistics changed since): again
            return miss(key, "queued" if pending else "unknown shape: queued at the first Bind")
        if not self._still_sound(e, None):
            return miss(key, "dropped: schema changed")
        if not e.has_rewrite:
            with self._lock:
                inst = self._instances.get(key)
            if inst is not None and self._changed(e) == "statistics" and self.submit(inst):
                return miss(key, "queued: statistics changed since no rewrite was found")
            why = self.dropped_reason(key)
            return miss(key, f"dropped: {why}" if why else "no stored rewrite")
        held = self.store.blocked(key)
        if held is not None:
            self.stats.held += 1
            return miss(key, held)
        out = self._replay(sql, e.rules, rename=False)
        if out is None:
            self.stats.replay_failed += 1
            return miss(key, "stored rules do not apply with parameters in place of literals")
        try:
            ptypes, cols = self.describe(sql, oids)
            ptypes2, cols2 = self.describe(out, ptypes)
            if ptypes == ptypes2 and cols != cols2 and [c[1:] for c in cols] == [c[1:] for c in cols2]:
                # only the names differ: a rewrite never renames a column
                named = realias(out, [c[0] for c in cols], self.dialect)
                if named is not None:
                    out = named
                    ptypes2, cols2 = self.describe(out, ptypes)
        except SluiceError as err:
            return miss(key, f"not described upstream: {err.message}"[:200])
        if cols != cols2 or ptypes != ptypes2:
            return miss(key, "the rewrite's result columns or parameter types differ")
        info = {"rewritten": True, "fingerprint": key, "rules": e.rules, "verdict": e.verdict,
                "speedup": e.speedup, "time_original": e.time_original, "proof": self._proof_line(key)}
        return Prepared(key, out, ptypes, info, gen, now)

    def describe(self, sql: str, param_oids: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[tuple[str, int, int], ...]]:
        """``(parameter type OIDs, result columns (name, type OID, typmod))`` of ``sql`` prepared
        upstream with ``param_oids`` (0: let PostgreSQL infer)."""
        pool = getattr(self.backend, "pool", None)
        if pool is None:
            raise BackendError("describe needs a PostgreSQL backend")
        import psycopg
        from psycopg import pq

        try:
            with pool.connection() as conn:
                pg = conn.pgconn
                r = pg.prepare(b"", sql.encode(), list(param_oids) or None)
                if r.status != pq.ExecStatus.COMMAND_OK:
                    raise BackendError((r.error_message or b"").decode(errors="replace").strip() or "prepare failed")
                d = pg.describe_prepared(b"")
                if d.status != pq.ExecStatus.COMMAND_OK:
                    raise BackendError((d.error_message or b"").decode(errors="replace").strip() or "describe failed")
                ptypes = tuple(int(d.param_type(i)) for i in range(d.nparams))
                cols = tuple(((d.fname(i) or b"").decode(), int(d.ftype(i)), int(d.fmod(i)))
                             for i in range(d.nfields))
        except psycopg.Error as err:
            raise BackendError(str(err).strip()) from err
        return ptypes, cols

    def bound(self, key: str, sql: str, param_oids: tuple[int, ...],
              values: Callable[[tuple[int, ...]], Sequence[Any] | None]) -> None:
        """The first Bind of a Parse whose shape needs a literal instance (unknown shape, or no
        instance recorded to re-time): build it in the background.  Never blocks.

        ``values`` decodes the Bind's parameters under the statement's parameter types (known
        only after a Describe here); the wire format is the caller's business."""
        if self._closed:
            return
        with self._lock:
            if key in self._bound_jobs or key in self._pending or key in self._instances:
                return
            self._bound_jobs.add(key)
        self._enqueue("bound", (key, sql, param_oids, values))
        self._ensure_worker()

    def wants_instance(self, key: str) -> bool:
        with self._lock:
            return key not in self._instances and key not in self._bound_jobs

    def _bound(self, key: str, sql: str, param_oids: tuple[int, ...],
               values: Callable[[tuple[int, ...]], Sequence[Any] | None]) -> None:
        try:
            ptypes, _ = self.describe(sql, param_oids)
        except BackendError as e:  # the client's own Parse failed too (or the statement no longer
            # describes): nothing to instantiate, and nothing wrong with the rewriter
            log.debug("no instance of a prepared statement that does not describe: %s", e)
            self.stats.reasons["prepared statement does not describe"] = \
                self.stats.reasons.get("prepared statement does not describe", 0) + 1
            return
        try:
            decoded = values(ptypes)
        except (SluiceError, ValueError, IndexError):
            decoded = None
        inst = instantiate(sql, decoded, self.dialect)
        if inst is None:
            self.stats.reasons["bind values not expressible as literals"] = \
                self.stats.reasons.get("bind values not expressible as literals", 0) + 1
            return
        if fingerprint(inst, self.dialect)[0] != key:
            self.stats.reasons["literal instance changed shape"] = \
                self.stats.reasons.get("literal instance changed shape", 0) + 1
            return
        self.stats.bound_instances += 1
        self.note_instance(key, inst)
        self.submit(inst)  # a no-op when the shape is known or already queued

    # -- shadow mode --------------------------------------------------------------------
    def shadow(self, sql: str) -> bool:
        """Compare the rewrite with the original in the background (results and timings), and log."""
        if self._closed or not is_rewritable(sql, self.dialect) or side_effect_reason(self.backend, sql):
            return False
        self._enqueue("shadow", (sql,))
        self._ensure_worker()
        return True

    def _shadow(self, sql: str) -> None:
        hit = self.lookup(sql)
        if hit is None:
            rw = self._search(fingerprint(sql, self.dialect)[0], sql)
            rec = ShadowRecord(sql, rw.rewritten, rw.rules, rw.time_original, rw.time_rewrite,
                               True if rw.rewritten else None, note=rw.reason)
        else:
            rsql, info = hit
            t1, r1 = _time(self.backend, sql, self.timeout_s)
            t2, r2 = _time(self.backend, rsql, self.timeout_s)
            same = None if r1 is None or r2 is None else _same(r1, r2)
            rec = ShadowRecord(sql, True, info["rules"], t1, t2, same)
            if same is False:
                log.error("shadow: rewrite %s returned different rows; dropped", info["fingerprint"])
                self.store.drop(info["fingerprint"])
            elif t1 is not None and t2 is not None and t2 > t1:
                self._demote(info["fingerprint"], f"shadow run slower ({t2:.3f}s > {t1:.3f}s)")
        log.info("shadow: %s", rec)
        self.shadow_log.append(rec)

    # -- lifecycle ----------------------------------------------------------------------
    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Block until the queue is drained (tests, benchmarks)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                idle = self._busy == 0 and not self._pending
            if idle:
                return True
            time.sleep(0.02)
        return False

    def close(self) -> None:
        self._closed = True
        if self._thread is not None and self._thread.is_alive():
            self._q.put(("stop", None))
            self._thread.join(timeout=5)


# -- the admin console (SHOW sluice.stats, SHOW sluice.rewrites) ----------------------------
def _rewriters_for(ctx: Any) -> list[OnlineRewriter]:
    """The open rewriters serving the session's database (all open ones when none matches)."""
    live = [r for r in list(_LIVE) if not r._closed]
    url = (getattr(ctx, "extra", {}) or {}).get("backend_url") or getattr(getattr(ctx, "backend", None), "url", None)
    mine = [r for r in live if r.backend is getattr(ctx, "backend", None) or (url and r.backend.url == url)]
    return mine or live


_STAT_NAMES = (("rewrites_submitted", "submitted"), ("rewrites_searched", "searched"),
               ("rewrites_stored", "stored"), ("rewrites_proved", "proved"), ("rewrites_pending", "pending"),
               ("rewrites_served", "hits"), ("rewrites_served_prepared", "prepared_hits"),
               ("rewrites_held_for_review", "held"), ("rewrites_dropped", "dropped"),
               ("rewrites_replay_failed", "replay_failed"), ("rewrites_rechecked", "rechecks"),
               ("rewriter_errors", "errors"))


def _stats_rows(ctx: Any) -> list[tuple[str, Any]]:
    rws = _rewriters_for(ctx)
    rows: list[tuple[str, Any]] = [(name, sum(int(getattr(r.stats, attr)) for r in rws)) for name, attr in _STAT_NAMES]
    with contextlib.suppress(SluiceError, sqlite3.Error):
        stores = {id(r.store): r.store for r in rws}
        counts: dict[str, int] = {}
        for store in stores.values():
            for e in store.all():
                st = store.review_status(e)
                counts[st] = counts.get(st, 0) + 1
        rows += [(f"stored_{st}", counts.get(st, 0)) for st in ("served", "pending", "approved", "rejected", "none")]
    return rows


def _fmt_time(t: float | None) -> str:
    return "" if not t else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))


def _rewrites_view(ctx: Any) -> tuple[list[Any], list[tuple[Any, ...]]]:
    from sqlsluice.databases.base import ColumnInfo

    rows: list[tuple[Any, ...]] = []
    seen: set[int] = set()
    for r in _rewriters_for(ctx):
        if id(r.store) in seen:
            continue
        seen.add(id(r.store))
        for e in r.store.all():
            proof = r.store.proof(e.fingerprint) or {}
            rows.append((e.fingerprint, r.store.review_status(e), ",".join(e.rules), str(proof.get("status", "")),
                         e.speedup, e.time_original, _fmt_time(e.created)))
    cols = [ColumnInfo("fingerprint", "VARCHAR"), ColumnInfo("status", "VARCHAR"), ColumnInfo("rules", "VARCHAR"),
            ColumnInfo("proof", "VARCHAR"), ColumnInfo("speedup", "DOUBLE"), ColumnInfo("time_original", "DOUBLE"),
            ColumnInfo("created", "VARCHAR")]
    return cols, rows


def _pool_size(url: str) -> int | None:
    for r in list(_LIVE):
        if not r._closed and r.backend.url == url:
            n = getattr(r.backend, "_pool_size", None)
            return int(n) if n is not None else None
    return None


def admin_views() -> tuple[dict[str, Callable[[Any], Any]], Callable[[Any], list[tuple[str, Any]]],
                           Callable[[str], int | None]]:
    """What the rewriter adds to the admin console, for the composition root to register in
    the pipeline's registries: ``(views by SHOW name, a stats source, a pool-size source)``."""
    return {"sluice.rewrites": _rewrites_view}, _stats_rows, _pool_size
