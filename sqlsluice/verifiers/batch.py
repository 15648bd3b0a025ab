"""Verify pairs one after another without ever stopping, in the queries' own dialect.

:func:`verify_pair` never raises for a bad pair: a pair that cannot be parsed, names a table or
column the schema lacks, or that the target engine rejects gets an ``ERROR`` verdict with the
message.  :func:`exit_code` folds a batch's verdicts into ``sluice verify``'s exit status.

For ``dialect="sqlite"`` :func:`~sqlsluice.verifiers.api.verify` runs the differential tier on
SQLite itself (the standard library's sqlite3), so that SQLite's semantics hold (integer
division, ASCII case-insensitive LIKE, type affinity, bare columns in aggregates, double-quoted
strings that name no column), and its proof tiers see the queries screened by
:mod:`~sqlsluice.verifiers.sqlite_semantics`; a difference found on SQLite always wins over a proof.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterable
from typing import Any

import duckdb

from sqlsluice.databases import Catalog
from sqlsluice.errors import SluiceError, SyntaxErrorSQL
from sqlsluice.verifiers.api import verify
from sqlsluice.verifiers.compare import Semantics
from sqlsluice.verifiers.verdict import Verdict

log = logging.getLogger(__name__)

EXIT_EQUIVALENT, EXIT_NOT_EQUIVALENT, EXIT_TROUBLE, EXIT_UNDECIDED = 0, 1, 2, 3
SQLITE_REJECTS = "SQLite rejects it too: "  # in an ERROR's message: SQLite's own reason follows


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
        return verify(q1, q2, catalog, dialect, semantics=semantics, time_budget_s=time_budget_s, seed=seed)
    except SluiceError as e:
        if dialect == "sqlite" and not e.message.startswith("SQLite: ") and SQLITE_REJECTS not in e.message:
            # a query sqlglot cannot read or that names an unknown table: add SQLite's words when
            # SQLite rejects it too (so that an ERROR is SQLite's unless the verifier is at fault)
            for q in (q1, q2):
                why = sqlite_rejects(q, catalog) if isinstance(q, str) else None
                if why is not None:
                    return error_verdict(f"{e.message}; {SQLITE_REJECTS}{why}", time.monotonic() - start)
        return error_verdict(e.message, time.monotonic() - start)
    except (duckdb.Error, sqlite3.Error) as e:
        return error_verdict(f"{type(e).__name__}: {e}", time.monotonic() - start)
    except Exception as e:  # a bug on one pair must not stop the batch; it is logged and reported
        log.exception("verify failed on %r vs %r", str(q1)[:200], str(q2)[:200])
        return error_verdict(f"internal error: {type(e).__name__}: {e}", time.monotonic() - start)


def sqlite_rejects(sql: str, catalog: Catalog) -> str | None:
    """SQLite's own message when it rejects ``sql`` on an empty database of ``catalog`` (None: accepted).

    >>> from sqlsluice.verifiers import load_schema
    >>> cat = load_schema("CREATE TABLE t (a INTEGER)", "sqlite")
    >>> sqlite_rejects("SELECT b FROM t", cat), sqlite_rejects("SELECT a FROM t", cat)
    ('no such column: b', None)
    """
    con = sqlite3.connect(":memory:")
    try:
        for stmt in catalog.to_ddl("sqlite"):
            con.execute(stmt)
    except sqlite3.Error:
        con.close()
        return None  # the schema itself does not load: nothing to say about the query
    try:
        con.execute("EXPLAIN " + sql)
        return None
    except sqlite3.Error as e:
        return str(e)
    except sqlite3.Warning:  # several statements
        return "not a single SQL statement"
    finally:
        con.close()


def verify_sqlite(q1: str, q2: str, catalog: Catalog, *, semantics: Semantics = "bag",
                  time_budget_s: float = 2.0, seed: int = 0) -> Verdict:
    """Decide two SQLite queries with SQLite's semantics: :func:`verify` with ``dialect="sqlite"``
    (differential testing on SQLite itself, proofs on the queries screened by
    :mod:`~sqlsluice.verifiers.sqlite_semantics`).

    Raises :class:`SyntaxErrorSQL` (with SQLite's own message) when SQLite rejects a query.

    >>> from sqlsluice.verifiers import load_schema
    >>> cat = load_schema("CREATE TABLE t (a INTEGER)", "sqlite")
    >>> verify_sqlite("SELECT a / 2 FROM t", "SELECT a * 0.5 FROM t", cat).verdict
    'NOT_EQUIVALENT'
    """
    return verify(q1, q2, catalog, "sqlite", semantics=semantics, time_budget_s=time_budget_s, seed=seed)
