"""Served and verified timings of stored rewrites over time (what the console plots).

The online rewriter feeds every measured execution of a shape back
(:data:`sqlsluice.rewriters.online.SERVED_HOOKS`); :func:`install` adds a hook that folds them
into per-shape buckets in memory (no I/O on the event loop), and :meth:`TimingRecorder.flush`
writes one row per (shape, kind, flush interval) into the rewrite store's state::

    CREATE TABLE IF NOT EXISTS sluice_rewrite_timings (
        ns TEXT,                  -- the rewrite store's namespace ('' for the server's one backend)
        fingerprint TEXT,
        ts DOUBLE PRECISION,      -- unix time (end of the bucket, or when the rewrite was verified)
        kind TEXT,                -- served_rewrite | served_original | verified_original | verified_rewrite
        n BIGINT,                 -- executions in the bucket (1 for verified timings)
        mean_s DOUBLE PRECISION, min_s DOUBLE PRECISION, max_s DOUBLE PRECISION
    )

Verified timings (the original's and the rewrite's time when the rewrite was stored, and
each time it is re-timed) are recorded when a flush sees an entry's ``time_original`` or
``speedup`` change.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("sqlsluice.serving.web")

DDL = ("CREATE TABLE IF NOT EXISTS sluice_rewrite_timings (ns TEXT, fingerprint TEXT, ts DOUBLE PRECISION, "
       "kind TEXT, n BIGINT, mean_s DOUBLE PRECISION, min_s DOUBLE PRECISION, max_s DOUBLE PRECISION)")
KINDS = ("served_rewrite", "served_original", "verified_original", "verified_rewrite")


def namespace(store: Any) -> str:
    """The namespace of a :class:`~sqlsluice.rewriters.online.RewriteStore` ('' when it has none)."""
    return str(getattr(store.state, "suffix", "")).removeprefix("_")


class TimingRecorder:
    """Buckets of served timings per (store, shape, kind), flushed to the state store."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # id(store) -> (store, {(fingerprint, kind): [n, sum, min, max]})
        self._buckets: dict[int, tuple[Any, dict[tuple[str, str], list[float]]]] = {}
        self._verified: dict[tuple[str, str], tuple[Any, Any]] = {}  # (ns, fp) -> (time_original, speedup)
        self._flushing = threading.Lock()  # the flusher thread and a page view may flush at once

    def hook(self, rewriter: Any, key: str, seconds: float, rewritten: bool) -> None:
        """:data:`~sqlsluice.rewriters.online.SERVED_HOOKS` entry: O(1), never raises."""
        try:
            store = rewriter.store
            kind = "served_rewrite" if rewritten else "served_original"
            with self._lock:
                _, b = self._buckets.setdefault(id(store), (store, {}))
                acc = b.get((key, kind))
                if acc is None:
                    b[(key, kind)] = [1, seconds, seconds, seconds]
                else:
                    acc[0] += 1
                    acc[1] += seconds
                    acc[2] = min(acc[2], seconds)
                    acc[3] = max(acc[3], seconds)
        except Exception:  # the console's bookkeeping never fails a statement
            log.debug("served-timing hook failed", exc_info=True)

    def flush(self, stores: list[Any]) -> int:
        """Write the buckets (and verified timings that changed in ``stores``); rows written."""
        with self._flushing:
            return self._flush(stores)

    def _flush(self, stores: list[Any]) -> int:
        now = time.time()
        with self._lock:
            buckets, self._buckets = self._buckets, {}
        rows = 0
        for store, b in buckets.values():
            ns = namespace(store)
            store.state.ensure(DDL)
            for (fp, kind), (n, total, lo, hi) in b.items():
                store.state.execute("INSERT INTO sluice_rewrite_timings (ns, fingerprint, ts, kind, n, mean_s, "
                                    "min_s, max_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                    [ns, fp, now, kind, int(n), total / n, lo, hi])
                rows += 1
        for store in stores:
            rows += self._flush_verified(store)
        return rows

    def _flush_verified(self, store: Any) -> int:
        ns = namespace(store)
        store.state.ensure(DDL)
        rows = 0
        for e in store.all():
            if not e.has_rewrite or not e.time_original:
                continue
            seen = self._verified.get((ns, e.fingerprint))
            now = (e.time_original, e.speedup)
            if seen == now:
                continue
            last = store.state.execute(
                "SELECT kind, mean_s FROM sluice_rewrite_timings WHERE ns = ? AND fingerprint = ? AND kind IN "
                "('verified_original', 'verified_rewrite') AND ts = (SELECT max(ts) FROM sluice_rewrite_timings "
                "WHERE ns = ? AND fingerprint = ? AND kind = 'verified_original')", [ns, e.fingerprint, ns,
                                                                                       e.fingerprint])
            recorded = dict(last)
            rewrite_s = e.time_original / e.speedup if e.speedup else None
            if seen is None and _close(recorded.get("verified_original"), e.time_original) and \
                    _close(recorded.get("verified_rewrite"), rewrite_s):
                self._verified[(ns, e.fingerprint)] = now  # recorded by an earlier run of the server
                continue
            ts = e.created if seen is None and not recorded else time.time()
            for kind, v in (("verified_original", e.time_original), ("verified_rewrite", rewrite_s)):
                if v is not None:
                    store.state.execute("INSERT INTO sluice_rewrite_timings (ns, fingerprint, ts, kind, n, mean_s, "
                                        "min_s, max_s) VALUES (?, ?, ?, ?, 1, ?, ?, ?)",
                                        [ns, e.fingerprint, ts, kind, v, v, v])
                    rows += 1
            self._verified[(ns, e.fingerprint)] = now
        return rows


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= 1e-9 * max(abs(a), abs(b), 1.0)


def history(store: Any, fingerprint: str) -> dict[str, list[tuple[float, float, int]]]:
    """``kind -> [(ts, mean seconds, n)]`` in time order, for one stored rewrite."""
    store.state.ensure(DDL)
    out: dict[str, list[tuple[float, float, int]]] = {k: [] for k in KINDS}
    for kind, ts, mean_s, n in store.state.execute(
            "SELECT kind, ts, mean_s, n FROM sluice_rewrite_timings WHERE ns = ? AND fingerprint = ? ORDER BY ts",
            [namespace(store), fingerprint]):
        if kind in out and mean_s is not None:
            out[kind].append((float(ts), float(mean_s), int(n or 0)))
    return out


def served_counts(store: Any) -> dict[str, int]:
    """Fingerprint -> executions served with its rewrite (as recorded; the buckets not yet
    flushed are not counted)."""
    store.state.ensure(DDL)
    rows = store.state.execute("SELECT fingerprint, sum(n) FROM sluice_rewrite_timings WHERE ns = ? AND "
                               "kind = 'served_rewrite' GROUP BY fingerprint", [namespace(store)])
    return {str(fp): int(n or 0) for fp, n in rows}


def forget(store: Any, fingerprint: str) -> None:
    """Delete a shape's timing history (``forget`` in the console)."""
    store.state.ensure(DDL)
    store.state.execute("DELETE FROM sluice_rewrite_timings WHERE ns = ? AND fingerprint = ?",
                        [namespace(store), fingerprint])


RECORDER = TimingRecorder()
_installed = threading.Lock()


def install() -> TimingRecorder:
    """Add the recorder's hook to the online rewriters' feedback (once per process)."""
    from sqlsluice.rewriters import online

    with _installed:
        if RECORDER.hook not in online.SERVED_HOOKS:
            online.SERVED_HOOKS.append(RECORDER.hook)
    return RECORDER


class Flusher:
    """A daemon thread flushing :data:`RECORDER` every ``interval`` seconds for one server,
    until ``done()`` (the server shuts down): then once more, and it ends."""

    def __init__(self, stores: Callable[[], list[Any]], interval: float = 2.0,
                 done: Callable[[], bool] = lambda: False, verified_every: int = 5) -> None:
        self.stores = stores  # () -> the live rewrite stores
        self.interval = interval
        self.done = done
        # reading every stored entry for changed verified timings: every few flushes (and on
        # each console page view), the served buckets every flush
        self.verified_every = verified_every
        self._n = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sluice-console-timings", daemon=True)

    def start(self) -> Flusher:
        self._thread.start()
        return self

    def flush(self) -> None:
        try:
            RECORDER.flush(self.stores())
        except Exception:
            log.warning("console: recording rewrite timings failed", exc_info=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._n += 1
            done = self.done()
            if done or self._n % self.verified_every == 0:
                self.flush()
            else:
                try:
                    RECORDER.flush([])
                except Exception:
                    log.warning("console: recording rewrite timings failed", exc_info=True)
            if done:
                return

    def stop(self) -> None:
        self._stop.set()
        self.flush()
