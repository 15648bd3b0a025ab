"""Which statements the rewriter may touch at all: nothing it runs may change the database.

The rewriter runs a client's statement itself (to time it, to compare results).  Two
guards make sure that can never have an effect the client did not ask for:

1. every such run goes through :meth:`Backend.execute_readonly` (a READ ONLY transaction that
   is rolled back, with a statement timeout): a write, ``nextval()`` or a function that writes
   fails there instead of happening;
2. statements that call a volatile function (PostgreSQL ``pg_proc.provolatile = 'v'``,
   DuckDB ``duckdb_functions().stability = 'VOLATILE'``: ``nextval``, ``random()``, user
   functions that write) or take row locks are never rewritten and never re-run, because
   running them again gives another answer (or, outside the guard, another database).
"""

from __future__ import annotations

import threading
import time

import sqlglot
from sqlglot import exp

from sqlsluice.databases import Backend
from sqlsluice.errors import SluiceError

# Volatile whatever the catalog says (and the names DuckDB / sqlglot spell differently).
KNOWN_VOLATILE = frozenset({
    "random", "rand", "setseed", "nextval", "setval", "currval", "lastval", "uuid", "gen_random_uuid",
    "uuid_generate_v1", "uuid_generate_v4", "clock_timestamp", "timeofday", "statement_timestamp",
    "txid_current", "pg_current_xact_id", "pg_sleep", "pg_advisory_lock", "pg_advisory_xact_lock",
    "pg_try_advisory_lock", "pg_notify", "set_config", "dblink", "dblink_exec", "lo_import", "lo_export",
    "pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf", "pg_rotate_logfile",
})
_CACHE_S = 30.0


def function_names(tree: exp.Expr, dialect: str | None) -> set[str]:
    """Every function a statement calls, lower-case, as written and as the dialect spells it."""
    names: set[str] = set()
    for node in tree.find_all(exp.Func):
        if isinstance(node, exp.Anonymous):
            names.add(str(node.name).lower())
            continue
        if isinstance(node, exp.Cast | exp.TryCast | exp.Case | exp.If | exp.Coalesce):
            continue
        names.add(node.sql_name().lower())
        try:
            head = node.sql(dialect=dialect).split("(", 1)[0].strip().lower()
        except Exception:  # a node the dialect cannot render: its class name above is enough
            continue
        if head and head.replace("_", "").isalnum():
            names.add(head)
    return names


class VolatilityCheck:
    """``reason(sql)``: why the rewriter must leave ``sql`` alone (None: it may rewrite it).

    Catalog answers are cached per function name for a short while (the check runs on the
    proxy's path for every statement of a new shape).
    """

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.dialect = backend.dialect
        self._known: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def reason(self, sql: str | exp.Expr) -> str | None:
        try:
            tree = sql if isinstance(sql, exp.Expr) else sqlglot.parse_one(sql, read=self.dialect)
        except sqlglot.errors.SqlglotError:
            return "not parsed"
        if tree.find(exp.Lock) is not None:
            return "takes row locks (FOR UPDATE/SHARE)"
        if tree.find(exp.Into) is not None:
            return "SELECT INTO writes a table"
        names = function_names(tree, self.dialect)
        static = sorted(names & KNOWN_VOLATILE)
        if static:
            return f"calls volatile function {static[0]}()"
        vol = self._volatility(names)
        bad = sorted(n for n in names if vol.get(n) == "v")
        if bad:
            return f"calls volatile function {bad[0]}()"
        return None

    def _volatility(self, names: set[str]) -> dict[str, str]:
        now = time.monotonic()
        out: dict[str, str] = {}
        missing: list[str] = []
        with self._lock:
            for n in names:
                hit = self._known.get(n)
                if hit is not None and now - hit[0] < _CACHE_S:
                    out[n] = hit[1]
                else:
                    missing.append(n)
        if missing:
            try:
                found = self.backend.function_volatility(missing)
            except SluiceError:
                # cannot tell: treat every unknown name as volatile (never rewrite blind)
                found = {n: "v" for n in missing}
            with self._lock:
                for n in missing:
                    v = found.get(n, "i")  # not a catalog function (operators, keywords)
                    self._known[n] = (now, v)
                    out[n] = v
        return out


_CHECKS: dict[int, VolatilityCheck] = {}
_CHECKS_LOCK = threading.Lock()


def check_for(backend: Backend) -> VolatilityCheck:
    """One cached check per backend object."""
    with _CHECKS_LOCK:
        c = _CHECKS.get(id(backend))
        if c is None or c.backend is not backend:
            c = _CHECKS[id(backend)] = VolatilityCheck(backend)
        return c


def side_effect_reason(backend: Backend, sql: str | exp.Expr) -> str | None:
    """Why ``sql`` must not be rewritten or re-run on ``backend`` (None: it may)."""
    return check_for(backend).reason(sql)
