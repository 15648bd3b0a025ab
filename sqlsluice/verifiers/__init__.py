"""Equivalence of SQL queries: prove, refute with a counterexample, or say it cannot tell.

>>> from sqlsluice.verifiers import verify, compare_results
>>> verify("SELECT a FROM t", "SELECT DISTINCT a FROM t", "CREATE TABLE t (a INT)").verdict
'NOT_EQUIVALENT'

Tiers (see ``docs/verifiers.md``): canonical form, SMT proof (z3), bounded differential testing
on DuckDB, optionally a live database.  Only the first two ever answer ``EQUIVALENT``.
"""

from __future__ import annotations

from sqlsluice.verifiers.api import verify
from sqlsluice.verifiers.compare import compare_results
from sqlsluice.verifiers.live import check_on_live
from sqlsluice.verifiers.schema import load_schema
from sqlsluice.verifiers.verdict import Counterexample, Evidence, Verdict

__all__ = ["Counterexample", "Evidence", "Verdict", "check_on_live", "compare_results", "load_schema", "verify"]
