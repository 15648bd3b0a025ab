"""Online rewriting for the proxy: fingerprint, stored rewrites, a background worker.

A SELECT is fingerprinted with its literals lifted to parameters.  The first sight of a
shape runs the original and queues a background job (search -> verify -> time); when the
rule rewrite is equivalent and faster, the rule sequence is stored per fingerprint in
``sluice_rewrites`` together with the backend's statistics version.  A later query of the
same shape replays that rule sequence on its own text, i.e. the stored rewrite is
re-instantiated with this call's literals; the rules' applicability checks run again on
the concrete query, so a rule whose precondition depended on a literal (pruning a UNION
branch on ``'w' = 's'``) cannot be carried over to literals where it would be wrong: when
the replay does not reproduce the stored sequence the original is served.  Stored
rewrites are dropped when the statistics version changes or when one is observed slower
than the original.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlglot import exp

from sqlsluice.config import Config
from sqlsluice.databases import Backend
from sqlsluice.errors import SluiceError
from sqlsluice.rewriters.api import Rewrite, _same, _time, catalog_for, is_rewritable, rewrite
from sqlsluice.rewriters.rules import BY_NAME, prepare, run_rule
from sqlsluice.state import StateStore

log = logging.getLogger(__name__)

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


def _lift(tree: exp.Expr, dialect: str) -> tuple[str, list[str]]:
    t = tree.copy()
    lits: list[str] = []
    for node in list(t.find_all(exp.Literal)):
        if node.find_ancestor(exp.DataType) is not None:
            continue  # DECIMAL(7,2): part of the shape
        lits.append(node.sql(dialect=dialect))
        node.replace(exp.Placeholder(this=f"p{len(lits)}"))
    return t.sql(dialect=dialect), lits


def instance_key(key: str, literals: list[str]) -> str:
    """The key of one literal instance of a shape (for rewrites that cannot be replayed by rules)."""
    return "i:" + hashlib.sha256(f"{key}\n{json.dumps(literals)}".encode()).hexdigest()[:30]


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

    def __init__(self, state: StateStore) -> None:
        self.state = state
        state.ensure(_DDL)

    def get(self, key: str) -> Entry | None:
        rows = self.state.execute(
            "SELECT fingerprint, original_template, rewritten_template, rules, verdict, speedup, time_original, "
            "stats_version, created FROM sluice_rewrites WHERE fingerprint = ?", [key])
        if not rows:
            return None
        r = rows[0]
        return Entry(r[0], r[1], r[2], json.loads(r[3] or "[]"), r[4], r[5], r[6], r[7], r[8])

    def put(self, e: Entry) -> None:
        self.state.execute("DELETE FROM sluice_rewrites WHERE fingerprint = ?", [e.fingerprint])
        self.state.execute(
            "INSERT INTO sluice_rewrites (fingerprint, original_template, rewritten_template, rules, verdict, "
            "speedup, time_original, stats_version, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [e.fingerprint, e.original_template, e.rewritten_template, json.dumps(e.rules), e.verdict, e.speedup,
             e.time_original, e.stats_version, e.created])

    def drop(self, key: str) -> None:
        self.state.execute("DELETE FROM sluice_rewrites WHERE fingerprint = ?", [key])

    def all(self) -> list[Entry]:
        keys = [r[0] for r in self.state.execute("SELECT fingerprint FROM sluice_rewrites")]
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
    reasons: dict[str, int] = field(default_factory=dict)


class OnlineRewriter:
    """What the proxy calls: :meth:`lookup` before running a query, :meth:`submit` after a miss."""

    def __init__(self, backend: Backend, config: Config | None = None, store: RewriteStore | None = None, *,
                 stats_refresh_s: float = 5.0, timeout_s: float | None = None) -> None:
        from sqlsluice.state import default_store

        self.backend = backend
        self.config = config or Config()
        self.store = store or RewriteStore(default_store())
        self.dialect = backend.dialect
        self.stats_refresh_s = stats_refresh_s
        self.timeout_s = timeout_s or min(self.config.server.statement_timeout_s, 120.0)
        self.stats = _Stats()
        self.shadow_log: list[ShadowRecord] = []
        self._q: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        self._stats_ver: tuple[float, str] | None = None
        self._replays: OrderedDict[tuple[str, str], str | None] = OrderedDict()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._busy = 0

    # -- statistics version, cached ------------------------------------------------------
    def stats_version(self) -> str:
        now = time.monotonic()
        with self._lock:
            if self._stats_ver is not None and now - self._stats_ver[0] < self.stats_refresh_s:
                return self._stats_ver[1]
        try:
            v = self.backend.stats_version()
        except SluiceError:
            v = ""
        with self._lock:
            self._stats_ver = (now, v)
        return v

    def invalidate_stats(self) -> None:
        with self._lock:
            self._stats_ver = None

    # -- serving ------------------------------------------------------------------------
    def lookup(self, sql: str) -> tuple[str, dict[str, Any]] | None:
        """The stored rewrite of this query's shape, with this call's literals; None to run the original."""
        if not is_rewritable(sql, self.dialect):
            return None
        try:
            key, lits = fingerprint(sql, self.dialect)
        except sqlglot.errors.SqlglotError:
            return None
        e = self.store.get(key)
        if e is None or not e.has_rewrite:
            return self._lookup_instance(sql, key, lits)
        if e.stats_version != self.stats_version():
            self.store.drop(key)  # statistics or schema changed: search again on next sight
            self.stats.dropped += 1
            return None
        out = self._replay(sql, e.rules)
        if out is None:
            self.stats.replay_failed += 1
            return None
        self.stats.hits += 1
        return out, {"rewritten": True, "fingerprint": key, "rules": e.rules, "verdict": e.verdict,
                     "speedup": e.speedup}

    def _lookup_instance(self, sql: str, key: str, lits: list[str]) -> tuple[str, dict[str, Any]] | None:
        """A rewrite proposed by an LLM stage is a whole query, not a rule sequence: it is served
        only to the very literal instance it was verified and timed on."""
        e = self.store.get(instance_key(key, lits))
        if e is None or not e.has_rewrite or e.original_template != sql:
            return None
        if e.stats_version != self.stats_version():
            self.store.drop(e.fingerprint)
            self.stats.dropped += 1
            return None
        self.stats.hits += 1
        return e.rewritten_template, {"rewritten": True, "fingerprint": key, "rules": e.rules,
                                      "verdict": e.verdict, "speedup": e.speedup, "scope": "this literal instance"}

    def _replay(self, sql: str, rules: list[str]) -> str | None:
        ck = (sql, json.dumps(rules))
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
        with self._lock:
            self._replays[ck] = out
            while len(self._replays) > 512:
                self._replays.popitem(last=False)
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
        e = self.store.get(key)
        if e is not None and e.stats_version == self.stats_version():
            return False
        with self._lock:
            self._pending.add(key)
            self.stats.submitted += 1
        self._q.put(("search", (key, sql)))
        self._ensure_worker()
        return True

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
            with self._lock:
                self._busy += 1
            try:
                if kind == "search":
                    self._search(*arg)
                elif kind == "shadow":
                    self._shadow(*arg)
            except Exception as e:  # the worker must survive anything a job does
                self.stats.errors += 1
                log.exception("background rewrite job failed: %s", e)
            finally:
                with self._lock:
                    self._busy -= 1
                    if kind == "search":
                        self._pending.discard(arg[0])

    def _search(self, key: str, sql: str) -> Rewrite:
        ver = self.stats_version()
        rw = rewrite(self.backend, sql, config=self.config, rewriter=self.config.rewrite.rewriter, timing=True,
                     timeout_s=self.timeout_s)
        self.stats.searched += 1
        self.stats.reasons[rw.reason] = self.stats.reasons.get(rw.reason, 0) + 1
        template = template_of(sql, self.dialect)
        ok = rw.rewritten and rw.speedup is not None and rw.speedup >= self.config.rewrite.min_speedup
        if ok and rw.source != "rules" and self._replay(sql, rw.rules) is None:
            # an LLM rewrite: store it for this literal instance only (it cannot be re-derived
            # for other literals), with the exact original text it was checked against
            _, lits = fingerprint(sql, self.dialect)
            self.store.put(Entry(instance_key(key, lits), sql, rw.sql, rw.rules, rw.verdict, rw.speedup,
                                 rw.time_original, ver, time.time()))
            self.stats.stored += 1
            ok = False  # the shape itself has no replayable rewrite
        elif ok and self._replay(sql, rw.rules) is None:
            ok = False  # the rule path must replay on the same text
        self.store.put(Entry(key, template, template_of(rw.sql, self.dialect) if ok else "",
                             rw.rules if ok else [], rw.verdict if ok else "NONE", rw.speedup if ok else None,
                             rw.time_original, ver, time.time()))
        if ok:
            self.stats.stored += 1
        return rw

    def observe(self, key: str, seconds_served: float) -> bool:
        """Report how long a served rewrite took; drop it when slower than the original. True if dropped."""
        e = self.store.get(key)
        if e is None or not e.has_rewrite or e.time_original is None:
            return False
        if seconds_served > e.time_original:
            self._demote(key, f"observed slower ({seconds_served:.3f}s > {e.time_original:.3f}s)")
            return True
        return False

    def _demote(self, key: str, why: str) -> None:
        """Keep the shape as "no rewrite" (so it is not searched again until statistics change)."""
        e = self.store.get(key)
        if e is None:
            return
        self.store.put(Entry(key, e.original_template, "", [], "NONE", None, e.time_original,
                             e.stats_version, time.time()))
        self.stats.dropped += 1
        log.warning("rewrite %s %s: dropped", key, why)

    # -- shadow mode --------------------------------------------------------------------
    def shadow(self, sql: str) -> bool:
        """Compare the rewrite with the original in the background (results and timings), and log."""
        if self._closed or not is_rewritable(sql, self.dialect):
            return False
        self._q.put(("shadow", (sql,)))
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
                idle = self._q.empty() and self._busy == 0 and not self._pending
            if idle:
                return True
            time.sleep(0.02)
        return False

    def close(self) -> None:
        self._closed = True
        if self._thread is not None and self._thread.is_alive():
            self._q.put(("stop", None))
            self._thread.join(timeout=5)
