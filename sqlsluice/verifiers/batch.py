"""Verify pairs one after another without ever stopping, in the queries' own dialect.

:func:`verify_pair` never raises for a bad pair: a pair that cannot be parsed, names a table or
column the schema lacks, or that the target engine rejects gets an ``ERROR`` verdict with the
message.  :func:`exit_code` folds a batch's verdicts into ``sluice verify``'s exit status.

For ``dialect="sqlite"`` (:func:`verify_sqlite`) the differential tier runs both queries, as
written, on SQLite itself (the standard library's sqlite3), so that SQLite's semantics hold
(integer division, ASCII case-insensitive LIKE, type affinity, bare columns in aggregates,
double-quoted strings that name no column); the proof tiers of :func:`~sqlsluice.verifiers.api.verify`
are tried in between, and a difference found on SQLite always wins over a proof.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterable
from typing import Any

import duckdb
from sqlglot import exp

from sqlsluice.databases import Catalog
from sqlsluice.errors import SluiceError, SyntaxErrorSQL
from sqlsluice.verifiers.api import verify
from sqlsluice.verifiers.compare import Semantics
from sqlsluice.verifiers.differential import DifferentialTester, DiffResult
from sqlsluice.verifiers.sqlparse import check_tables, collect_constants, parse_query, sqlite_quoted_strings
from sqlsluice.verifiers.verdict import Counterexample, Evidence, Verdict

log = logging.getLogger(__name__)

EXIT_EQUIVALENT, EXIT_NOT_EQUIVALENT, EXIT_TROUBLE, EXIT_UNDECIDED = 0, 1, 2, 3


def exit_code(verdicts: Iterable[str]) -> int:
    """0 when every pair is EQUIVALENT (or there are none), 1 when any pair is NOT_EQUIVALENT
    (a refutation wins over everything else), otherwise 3 (some UNKNOWN or ERROR).

    >>> exit_code(["EQUIVALENT", "ERROR", "NOT_EQUIVALENT"]), exit_code(["EQUIVALENT", "UNKNOWN"])
    (1, 3)
    """
    seen = set(verdicts)
    if "NOT_EQUIVALENT" in seen:
        return EXIT_NOT_EQUIVALENT
    if seen - {"EQUIVALENT"}:
        return EXIT_UNDECIDED
    return EXIT_EQUIVALENT


def error_verdict(message: str, seconds: float = 0.0) -> Verdict:
    first = message.strip().splitlines()[0] if message.strip() else "error"
    return Verdict(verdict="ERROR", error=first, reason=first, seconds=seconds)


def verify_pair(q1: Any, q2: Any, catalog: Catalog, dialect: str = "duckdb", *, semantics: Semantics = "bag",
                time_budget_s: float = 2.0, seed: int = 0) -> Verdict:
    """:func:`verify` (or :func:`verify_sqlite` for SQLite) that returns ERROR instead of raising."""
    start = time.monotonic()
    try:
        if not isinstance(q1, str) or not isinstance(q2, str):
            raise SyntaxErrorSQL("q1 and q2 must be strings")
        if dialect == "sqlite":
            return verify_sqlite(q1, q2, catalog, semantics=semantics, time_budget_s=time_budget_s, seed=seed)
        return verify(q1, q2, catalog, dialect, semantics=semantics, time_budget_s=time_budget_s, seed=seed)
    except SluiceError as e:
        return error_verdict(e.message, time.monotonic() - start)
    except (duckdb.Error, sqlite3.Error) as e:
        return error_verdict(f"{type(e).__name__}: {e}", time.monotonic() - start)
    except Exception as e:  # a bug on one pair must not stop the batch; it is logged and reported
        log.exception("verify failed on %r vs %r", str(q1)[:200], str(q2)[:200])
        return error_verdict(f"internal error: {type(e).__name__}: {e}", time.monotonic() - start)


def verify_sqlite(q1: str, q2: str, catalog: Catalog, *, semantics: Semantics = "bag",
                  time_budget_s: float = 2.0, seed: int = 0) -> Verdict:
    """Decide two SQLite queries with SQLite's semantics.

    Raises :class:`SyntaxErrorSQL` (with SQLite's own message) when SQLite rejects a query.

    >>> from sqlsluice.verifiers import load_schema
    >>> cat = load_schema("CREATE TABLE t (a INTEGER)", "sqlite")
    >>> verify_sqlite("SELECT a / 2 FROM t", "SELECT a * 0.5 FROM t", cat).verdict
    'NOT_EQUIVALENT'
    """
    start = time.monotonic()
    e1, e2 = parse_query(q1, "sqlite"), parse_query(q2, "sqlite")
    tables = check_tables(e1, catalog, q1) | check_tables(e2, catalog, q2)
    ordered = _both_totally_ordered(e1, e2, catalog)
    ev = Evidence()
    ev.tiers["order"] = "lists (both queries have a total order)" if ordered else "bag"

    def done(kind: str, method: str, reason: str, cex: Counterexample | None = None) -> Verdict:
        return Verdict(verdict=kind, method=method, counterexample=cex, evidence=ev,  # type: ignore[arg-type]
                       seconds=time.monotonic() - start, reason=reason)

    nondet = any(q.find(exp.Limit, exp.Fetch, exp.Window) is not None for q in (e1, e2))
    tester = DifferentialTester(catalog, tables, q1, q2, collect_constants(e1, e2), semantics=semantics,
                                ordered=ordered, seed=seed, nondeterministic=nondet, engine="sqlite",
                                dialect="sqlite")
    try:
        tester.load({})
        for q in (q1, q2):
            try:
                tester.run(q, time.monotonic() + 5.0)
            except sqlite3.Error as e:
                raise SyntaxErrorSQL(f"SQLite: {e} in query {q[:80]!r}") from e
        quick = tester.search(max(0.05, min(0.3 * time_budget_s, 0.6)), max_dbs=120, min_dbs=40)
        _absorb(ev, quick)
        if quick.counterexample is not None:
            ev.tiers["differential"] = "difference found on SQLite"
            return done("NOT_EQUIVALENT", "differential", "the queries differ on a generated database (SQLite)",
                        quick.counterexample)

        # The proof tiers (canonical form, SMT); their DuckDB-run cross-check may object to what
        # only DuckDB's semantics make different: then nothing is proved and SQLite decides.
        # Double-quoted names that name no column are strings there, as in SQLite.
        p1, p2 = (_as_strings(e, q, catalog) for e, q in ((e1, q1), (e2, q2)))
        left = time_budget_s - (time.monotonic() - start)
        try:
            pv = verify(p1, p2, catalog, "sqlite", semantics=semantics, time_budget_s=max(0.2, 0.5 * left), seed=seed)
            ev.tiers["proofs"] = f"{pv.verdict} ({pv.method}): {pv.reason}"[:300]
            if pv.verdict == "EQUIVALENT":
                return done("EQUIVALENT", pv.method, pv.reason)
        except (SluiceError, duckdb.Error) as e:
            ev.tiers["proofs"] = f"not applicable: {str(e).splitlines()[0][:200]}"

        left = time_budget_s - (time.monotonic() - start)
        if left > 0.02:
            more = tester.search(left, min_dbs=40)
            _absorb(ev, more)
            if more.counterexample is not None:
                ev.tiers["differential"] = "difference found on SQLite"
                return done("NOT_EQUIVALENT", "differential",
                            "the queries differ on a generated database (SQLite)", more.counterexample)
        ev.tiers["differential"] = f"no difference on {ev.databases_tried} databases (SQLite)"
    finally:
        tester.close()
    return done("UNKNOWN", "none", "no proof and no counterexample: "
                + "; ".join(f"{k}: {v}" for k, v in ev.tiers.items()))


def _as_strings(e: exp.Expression, sql: str, catalog: Catalog) -> str:
    n = sqlite_quoted_strings(e, catalog)
    return sql if n == e else n.sql("sqlite")


def _both_totally_ordered(e1: exp.Expression, e2: exp.Expression, catalog: Catalog) -> bool:
    from sqlsluice.verifiers.order import order_info

    try:
        return order_info(e1, catalog, "sqlite").total and order_info(e2, catalog, "sqlite").total
    except Exception:  # a query the order analysis cannot read is compared as a bag
        return False


def _absorb(ev: Evidence, r: DiffResult) -> None:
    ev.databases_tried += r.databases
    ev.max_rows_per_table = max(ev.max_rows_per_table, r.max_rows)
    ev.total_rows += r.total_rows
