"""``verify``: the tiers in order, cheapest first.

1. canonical form (proof), 2. a short differential pass (refutation, and a cross-check of any
proof), 3. SMT proof with z3, 4. the rest of the time budget in differential testing,
5. optionally the live database.  Only tiers 1 and 3 ever answer ``EQUIVALENT``; a difference
found by differential testing always wins (it is a concrete counterexample).  Results are bags,
or lists when both queries have a total order (``order.py``; then a proof must show the same order).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import duckdb
from sqlglot import exp

from sqlsluice.databases import Catalog
from sqlsluice.errors import SyntaxErrorSQL, UndefinedTable
from sqlsluice.verifiers.canonical import CanonicalError, canonical_sql, outer_join_hazard
from sqlsluice.verifiers.compare import Semantics
from sqlsluice.verifiers.count_exists import count_tests_as_exists
from sqlsluice.verifiers.differential import DifferentialTester
from sqlsluice.verifiers.live import check_on_live
from sqlsluice.verifiers.order import order_info
from sqlsluice.verifiers.schema import load_schema
from sqlsluice.verifiers.sqlparse import check_tables, collect_constants, parse_query
from sqlsluice.verifiers.verdict import Counterexample, Evidence, Verdict

log = logging.getLogger(__name__)

DEFAULT_BUDGET_S = 2.0


def verify(q1: str, q2: str, schema: Catalog | str | Path | dict[str, dict[str, str]], dialect: str = "duckdb", *,
           semantics: Semantics = "bag", time_budget_s: float = DEFAULT_BUDGET_S, live: Any = None,
           seed: int = 0, proofs: bool = True, postgres_url: str | None = None) -> Verdict:
    """Decide whether ``q1`` and ``q2`` return the same rows on every database of ``schema``.

    ``schema``: a Catalog, a DDL string, a DDL file path, or a database URL.  ``semantics``:
    ``"bag"`` (duplicates count, the default) or ``"set"``.  ``live``: a Backend on which both
    queries are also run when no tier decided.  ``proofs=False`` runs differential testing
    only (an oracle for benchmarks).  ``postgres_url`` (default ``$SLUICE_VERIFY_POSTGRES_URL``): for
    ``dialect="postgres"``, a PostgreSQL server on which the differential tier runs the queries as
    written (in a schema of its own, dropped afterwards); without one they run on DuckDB.  Raises :class:`SyntaxErrorSQL` for unparseable
    SQL and :class:`UndefinedTable` for a table the schema lacks.

    >>> v = verify("SELECT a FROM t WHERE a > 1", "SELECT a FROM t WHERE 1 < a", "CREATE TABLE t (a INT)")
    >>> v.verdict, v.method
    ('EQUIVALENT', 'canonical')
    """
    start = time.monotonic()
    catalog = load_schema(schema, dialect)
    try:
        e1, e2 = parse_query(q1, dialect), parse_query(q2, dialect)
    except SyntaxErrorSQL as e:
        if dialect != "sqlite":
            raise
        return _sqlite_unparsed(q1, q2, catalog, e.message, semantics=semantics, time_budget_s=time_budget_s, seed=seed)
    tables = check_tables(e1, catalog, q1) | check_tables(e2, catalog, q2)
    ev = Evidence()
    # The differential tier runs on the target dialect's own engine: SQLite itself for sqlite (the
    # queries as written), DuckDB otherwise.  The proof tiers reason with DuckDB's semantics: for
    # sqlite they see each query screened (sqlite_semantics.py): SQLite's meaning written for
    # DuckDB, or no proof at all when a construct's meaning cannot be modelled.
    engine, run1, run2, nondet_why = "duckdb", e1.sql("duckdb"), e2.sql("duckdb"), ""
    proof_cat, proof_dialect, provable = catalog, dialect, proofs
    pg_url = postgres_url or os.environ.get("SLUICE_VERIFY_POSTGRES_URL")
    if dialect in ("postgres", "postgresql") and pg_url:
        engine, run1, run2 = "postgres", q1, q2
    if dialect == "sqlite":
        from sqlsluice.verifiers.sqlite_semantics import proof_catalog, screen

        s1, s2 = screen(e1, catalog), screen(e2, catalog)
        engine, run1, run2 = "sqlite", q1, q2
        ev.tiers["sqlite"] = f"q1: {s1.describe()}; q2: {s2.describe()}"
        if s1.nondeterministic or s2.nondeterministic:
            nondet_why = ("non-deterministic: a bare column of an aggregate query that its group does not determine "
                          "(SQLite takes it from an arbitrary row)")
        try:
            if s1.form is None or s2.form is None:
                raise SyntaxErrorSQL("")
            f1, f2 = parse_query(s1.form.sql("duckdb"), "duckdb"), parse_query(s2.form.sql("duckdb"), "duckdb")
            e1, e2, proof_cat, proof_dialect = f1, f2, proof_catalog(catalog), "duckdb"
        except SyntaxErrorSQL as err:  # declined, or sqlglot cannot write the query for DuckDB
            provable = False
            if err.message:
                ev.tiers["sqlite"] += f"; no proof: not expressible for DuckDB ({err.message[:120]})"
    # row-count tests read as [NOT] EXISTS (count_exists.py: the identity and why it holds)
    e1, e2 = count_tests_as_exists(e1), count_tests_as_exists(e2)
    d1, d2 = e1.sql("duckdb"), e2.sql("duckdb")

    def done(kind: str, method: str, reason: str, cex: Counterexample | None = None) -> Verdict:
        return Verdict(verdict=kind, method=method, counterexample=cex, evidence=ev,  # type: ignore[arg-type]
                       seconds=time.monotonic() - start, reason=reason)

    # Bag semantics unless both queries have a total order: then the results are lists, and a
    # proof must also show the same order (identical canonical text, or the same ORDER BY keys
    # as output positions / directions / NULLS placement for the SMT tier).
    o1, o2 = order_info(e1, proof_cat, proof_dialect), order_info(e2, proof_cat, proof_dialect)
    ordered = o1.total and o2.total
    same_order = ordered and o1.signature is not None and o1.signature == o2.signature
    ev.tiers["order"] = ("lists (both queries have a total order)" if ordered
                         else f"bag (q1: {o1.why}; q2: {o2.why})" if o1.total or o2.total
                         else "bag")
    proved_by = ""
    safe = outer_join_hazard(e1, e2)
    try:
        if not provable:
            ev.tiers["canonical"] = "skipped" if not proofs else "skipped: SQLite's meaning not modelled (see sqlite)"
        elif (canonical_sql(e1, proof_cat, proof_dialect, safe=safe)
              == canonical_sql(e2, proof_cat, proof_dialect, safe=safe)):
            proved_by = "canonical"
            ev.tiers["canonical"] = "same canonical form"
        else:
            ev.tiers["canonical"] = "canonical forms differ"
    except CanonicalError as e:
        ev.tiers["canonical"] = f"not applicable: {e}"
    # ORDER BY is an order, not a bag, whenever either query has one: a proof that compares
    # bags (alias renaming, constants, SMT) stands only when both sort by the same output
    # positions in the same directions; identical canonical forms include the ORDER BY text.
    order_ok, order_why = same_sort(e1, e2, proof_cat, proof_dialect)
    if not order_ok:
        ev.tiers["order"] += f"; {order_why}"
    if provable and not proved_by and order_ok:  # alias renaming / constant queries (smt_extend.py)
        from sqlsluice.verifiers.smt_extend import extra_proof

        extra = extra_proof(e1, e2, d1, d2, proof_cat, semantics=semantics, ordered=ordered)
        if extra is not None:
            proved_by, ev.tiers[extra[0]] = extra

    nondet = _order_dependent(e1) or _order_dependent(e2) or bool(nondet_why)
    tester = DifferentialTester(catalog, tables, run1, run2, collect_constants(e1, e2), semantics=semantics,
                                ordered=ordered, seed=seed, nondeterministic=nondet, engine=engine,
                                dialect=dialect if engine != "duckdb" else None,
                                url=pg_url if engine == "postgres" else None)
    where = {"sqlite": " (SQLite)", "postgres": " (PostgreSQL)"}.get(engine, "")
    try:
        _bind_check(tester, [(run1, q1), (run2, q2)])
        quick = tester.search(max(0.05, min(0.3 * time_budget_s, 0.6)), max_dbs=120, min_dbs=40)
        _absorb(ev, quick)
        if quick.counterexample is not None:
            if proved_by:
                log.error("differential testing refuted a %s proof: %r vs %r", proved_by, q1, q2)
            ev.tiers["differential"] = "difference found" + where
            return done("NOT_EQUIVALENT", "differential", "the queries differ on a generated database" + where,
                        quick.counterexample)
        if proved_by:
            return done("EQUIVALENT", proved_by, ev.tiers[proved_by] if proved_by != "canonical" else "identical canonical forms")

        if not provable:
            ev.tiers["smt"] = "skipped" if not proofs else "skipped: SQLite's meaning not modelled (see sqlite)"
        elif not order_ok:
            ev.tiers["smt"] = f"skipped: {order_why}"
        elif ordered and not same_order:
            ev.tiers["smt"] = ("skipped: both queries are totally ordered " + (
                "and an ORDER BY key is not an output column" if o1.signature is None or o2.signature is None
                else "by different ORDER BY keys") + " (the same order cannot be shown)")
        else:
            from sqlsluice.verifiers.region import region_proof
            from sqlsluice.verifiers.smt import SMTResult, prove

            budget_left = time_budget_s - (time.monotonic() - start)
            # shared subqueries abstracted, then only the region that differs proved (region.py)
            reg = region_proof(e1, e2, proof_cat, proof_dialect, timeout_s=0.6 * budget_left)
            if reg is not None:
                ev.tiers["region"] = reg.reason
                if reg.proved:
                    return done("EQUIVALENT", "region", reg.reason)
                budget_left = time_budget_s - (time.monotonic() - start)
            try:
                # the orders are shown equal (same_sort): a query's plain ORDER BY (no LIMIT/OFFSET)
                # then only sorts the bag the proof compares
                res = prove(_drop_plain_sort(e1), _drop_plain_sort(e2), proof_cat, proof_dialect,
                            timeout_s=max(0.3, 0.4 * time_budget_s, budget_left - 0.15 * time_budget_s))
            except Exception as e:  # a bug in the encoder must not stop the refutation tiers
                log.exception("SMT tier failed on %r vs %r", q1[:200], q2[:200])
                res = SMTResult(False, f"tier error: {type(e).__name__}: {str(e)[:120]}")
            ev.tiers["smt"] = res.reason
            if res.proved:
                return done("EQUIVALENT", "smt", res.reason)
            prefix, sorted_ = _sorted_prefix(e1, e2), True
            if prefix is None:
                prefix, sorted_ = _unsorted_prefix(e1, e2), False
            if prefix is not None:
                budget_left = time_budget_s - (time.monotonic() - start)
                try:
                    res = prove(prefix[0], prefix[1], proof_cat, proof_dialect,
                                timeout_s=max(0.3, 0.4 * time_budget_s, budget_left - 0.15 * time_budget_s))
                except Exception as e:
                    log.exception("SMT tier failed on the unsorted bodies of %r vs %r", q1[:200], q2[:200])
                    res = SMTResult(False, f"tier error: {type(e).__name__}: {str(e)[:120]}")
                ev.tiers["smt"] += f"; without {'ORDER BY .. ' if sorted_ else ''}LIMIT: {res.reason}"
                if res.proved and sorted_:
                    return done("EQUIVALENT", "smt", "the same rows sorted by the same keys, then the same LIMIT/OFFSET "
                                                     f"(equal up to the order of ties): {res.reason}")
                if res.proved:
                    return done("EQUIVALENT", "smt", "the same bag of rows, then the same LIMIT/OFFSET without ORDER BY "
                                                     f"(any rows the one may return, the other may too): {res.reason}")

        left = time_budget_s - (time.monotonic() - start)
        if left > 0.02:
            more = tester.search(left, min_dbs=40)
            _absorb(ev, more)
            if more.counterexample is not None:
                ev.tiers["differential"] = "difference found" + where
                return done("NOT_EQUIVALENT", "differential", "the queries differ on a generated database" + where,
                            more.counterexample)
        ev.tiers["differential"] = f"no difference on {ev.databases_tried} databases{where}"
    finally:
        tester.close()

    if live is not None:
        same = check_on_live(live, d1 if live.dialect == "duckdb" else q1, d2 if live.dialect == "duckdb" else q2,
                             timeout_s=max(1.0, time_budget_s), semantics=semantics, ordered=ordered)
        ev.live = same
        if same is False:
            r1 = live.execute(q1).rows
            r2 = live.execute(q2).rows
            return done("NOT_EQUIVALENT", "live", "the queries differ on the live database",
                        Counterexample(q1_rows=[list(r) for r in r1[:50]], q2_rows=[list(r) for r in r2[:50]]))
    return done("UNKNOWN", "none", (nondet_why + "; " if nondet_why else "") + "no proof and no counterexample: "
                + "; ".join(f"{k}: {v}" for k, v in ev.tiers.items()))


def _sqlite_unparsed(q1: str, q2: str, catalog: Catalog, why: str, *, semantics: Semantics, time_budget_s: float,
                     seed: int) -> Verdict:
    """A pair sqlglot cannot parse but SQLite accepts: differential testing on SQLite alone (the
    tables from SQLite's authorizer, no constants to aim at); never a proof."""
    from sqlsluice.verifiers.sqlite_semantics import tables_read
    from sqlsluice.verifiers.sqlparse import Constants

    start = time.monotonic()
    tables: set[str] = set()
    for q in (q1, q2):
        try:
            tables |= tables_read(q, catalog)
        except sqlite3.Error as e:  # the words batch.SQLITE_REJECTS spells
            raise SyntaxErrorSQL(f"{why}; SQLite rejects it too: {e}") from e
    ev = Evidence()
    ev.tiers["parse"] = f"differential testing only: {why[:200]}"
    tester = DifferentialTester(catalog, tables, q1, q2, Constants(), semantics=semantics, seed=seed,
                                nondeterministic=True, engine="sqlite", dialect="sqlite")
    try:
        res = tester.search(time_budget_s, min_dbs=40)
    finally:
        tester.close()
    _absorb(ev, res)
    kind, reason = (("NOT_EQUIVALENT", "the queries differ on a generated database (SQLite)")
                    if res.counterexample is not None else
                    ("UNKNOWN", f"no proof (sqlglot cannot parse a query) and no difference on {res.databases} "
                                "databases (SQLite)"))
    ev.tiers["differential"] = "difference found (SQLite)" if res.counterexample is not None else \
        f"no difference on {res.databases} databases (SQLite)"
    return Verdict(verdict=kind, method="differential" if res.counterexample is not None else "none",  # type: ignore[arg-type]
                   counterexample=res.counterexample, evidence=ev, seconds=time.monotonic() - start, reason=reason)


def _top_order(q: exp.Expression) -> exp.Order | None:
    order = q.args.get("order")
    return order if isinstance(order, exp.Order) else None


def same_sort(e1: exp.Expression, e2: exp.Expression, catalog: Catalog, dialect: str) -> tuple[bool, str]:
    """Whether a bag proof also shows the same order: neither query has a top-level ORDER BY,
    or both sort by the same output positions, directions and NULLS placement (with LIMIT or
    OFFSET too: the bag proof then covers the ordered prefix only when the SMT tier's own LIMIT
    rule checked it, which needs this signature as well)."""
    o1, o2 = _top_order(e1), _top_order(e2)
    if o1 is None and o2 is None:
        return True, ""
    if o1 is None or o2 is None:
        return False, "only one query has an ORDER BY (orders are compared, not bags)"

    def signature(q: exp.Expression) -> Any:
        c = q.copy()
        for k in ("limit", "offset", "fetch"):
            c.set(k, None)
        return order_info(c, catalog, dialect).signature

    s1, s2 = signature(e1), signature(e2)
    if s1 is None or s2 is None:
        return False, "an ORDER BY key is not an output column (the same order cannot be shown)"
    if s1 != s2:
        return False, "the queries sort by different keys or directions"
    return True, ""


def _drop_plain_sort(e: exp.Expression) -> exp.Expression:
    if _top_order(e) is None or any(e.args.get(k) for k in ("limit", "offset", "fetch")):
        return e
    c = e.copy()
    c.set("order", None)
    return c


def _same_limits(e1: exp.Expression, e2: exp.Expression) -> bool:
    """Both queries have a top-level LIMIT and/or OFFSET, written alike."""
    def text(e: exp.Expression, k: str) -> str:
        v = e.args.get(k)
        return v.sql() if v is not None else ""

    if not (text(e1, "limit") or text(e1, "offset")):
        return False
    return text(e1, "limit") == text(e2, "limit") and text(e1, "offset") == text(e2, "offset")


def _sorted_prefix(e1: exp.Expression, e2: exp.Expression) -> tuple[exp.Expression, exp.Expression] | None:
    """Both queries end in ``ORDER BY .. LIMIT n [OFFSET m]`` with the same n and m (the caller
    has checked that they sort by the same output positions and directions): their bodies
    without ORDER BY, LIMIT and OFFSET.  Equal bags sorted by the same keys give the same
    sequence up to the order of ties, so the same first n rows up to which tied rows are
    picked, which is the original's own freedom: a proof of the bodies proves the queries."""
    o1, o2 = _top_order(e1), _top_order(e2)
    if o1 is None or o2 is None or e1.args.get("fetch") or e2.args.get("fetch"):
        return None

    if not _same_limits(e1, e2):
        return None
    out = []
    for e in (e1, e2):
        c = e.copy()
        for k in ("order", "limit", "offset"):
            c.set(k, None)
        out.append(c)
    return out[0], out[1]


def _unsorted_prefix(e1: exp.Expression, e2: exp.Expression) -> tuple[exp.Expression, exp.Expression] | None:
    """Both queries end in ``LIMIT n [OFFSET m]`` with the same n and m and neither has a top-level
    ORDER BY: their bodies.  ``Q LIMIT n`` without ORDER BY may return any n rows of Q's bag (after
    skipping any m), so when the bodies are equal bags, every answer one query can give the other
    can give too (docs/soundness.md, nondeterministic queries).  Only at the top: a LIMIT inside a
    derived table, a subquery or a set operation's branch is left to the proof tiers (which have no
    LIMIT), and FETCH / WITH TIES / PERCENT forms are not lifted."""
    if _top_order(e1) is not None or _top_order(e2) is not None:
        return None
    if e1.args.get("fetch") or e2.args.get("fetch"):
        return None

    if not _same_limits(e1, e2):
        return None
    for e in (e1, e2):
        lim = e.args.get("limit")
        if lim is not None and not (isinstance(lim, exp.Limit) and isinstance(lim.expression, exp.Literal)
                                    and lim.expression.is_int and not lim.args.get("offset")):
            return None  # a computed or parameterised count, or an odd form: not lifted
        off = e.args.get("offset")
        if off is not None and not (isinstance(off, exp.Offset) and isinstance(off.expression, exp.Literal)
                                    and off.expression.is_int):
            return None
    out = []
    for e in (e1, e2):
        c = e.copy()
        for k in ("limit", "offset"):
            c.set(k, None)
        out.append(c)
    return out[0], out[1]


def _absorb(ev: Evidence, r: Any) -> None:
    ev.databases_tried += r.databases
    ev.max_rows_per_table = max(ev.max_rows_per_table, r.max_rows)
    ev.total_rows += r.total_rows


def _order_dependent(q: exp.Expression) -> bool:
    return q.find(exp.Limit, exp.Fetch, exp.Window) is not None


def _bind_check(tester: DifferentialTester, queries: list[tuple[str, str]]) -> None:
    """Run both queries on the empty database: names that do not resolve are bad input."""
    tester.load({})
    deadline = time.monotonic() + 5.0
    for d, q in queries:
        if tester.engine == "sqlite":
            try:
                tester.run(d, deadline)
            except sqlite3.Error as e:  # SQLite rejects the query: its own message
                raise SyntaxErrorSQL(f"SQLite: {e} in query {q[:80]!r}") from e
            continue
        if tester.engine == "postgres":
            try:
                tester.run(d, deadline)
            except tester.errors as e:
                # 42xxx: syntax errors and undefined names (bad input); others are runtime errors
                if str(getattr(e, "sqlstate", "") or "").startswith("42"):
                    raise SyntaxErrorSQL(f"PostgreSQL: {str(e).splitlines()[0]} in query {q[:80]!r}") from e
            continue
        try:
            tester.run(d, deadline)
        except duckdb.CatalogException as e:
            raise UndefinedTable(f"{str(e).splitlines()[0]} in query {q[:80]!r}") from e
        except (duckdb.ParserException, duckdb.BinderException) as e:
            raise SyntaxErrorSQL(f"{str(e).splitlines()[0]} in query {q[:80]!r}") from e
        except duckdb.Error:
            pass  # runtime errors on the empty database are not bad input
