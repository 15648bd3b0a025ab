"""Cost-guided search over rule applications: greedy, then a bounded beam.

States are sqlglot trees; a state's score is the backend planner's estimate
(``backend.explain(sql).cost``).  The search is deterministic for the same inputs: the
rules are tried in catalog order, ties keep the earlier state, and the budget is a count of
planner calls, not a clock.  Besides the cheapest states it always returns the state
reached by applying every safe rule to a fixed point ("all"), because planner estimates
are least trustworthy exactly on the queries a rewrite helps most (the confirming timing
run decides).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from sqlglot import exp

from sqlsluice.databases import Backend, Catalog
from sqlsluice.errors import SluiceError
from sqlsluice.rewriters.rules import SEARCH, Rule, fixed_point, prepare, resolve, run_rule

log = logging.getLogger(__name__)

# where the searches of this context count the states they dropped, by reason (see
# :func:`counting_failures`): the online rewriter adds them to its ``stats.reasons``
_FAILURES: ContextVar[dict[str, int] | None] = ContextVar("sluice_search_failures", default=None)


@contextmanager
def counting_failures() -> Iterator[dict[str, int]]:
    """Count, by reason, the search states dropped by the searches run inside this block."""
    counts: dict[str, int] = {}
    token = _FAILURES.set(counts)
    try:
        yield counts
    finally:
        _FAILURES.reset(token)


class StateFailed(Exception):
    """One search state could not be built or written as SQL (a sqlglot generator error)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class State:
    expr: exp.Expr
    sql: str
    rules: list[str]
    cost: float


@dataclass
class SearchResult:
    original_cost: float | None
    states: list[State] = field(default_factory=list)  # best first, original excluded
    explains: int = 0
    errors: int = 0
    failed: dict[str, int] = field(default_factory=dict)  # states dropped, by reason (generator errors)


class _Applications:
    """Rule applications memoised for one search, so that no rule runs twice on one state.

    A rule is a pure function of its input tree, and two states with the same SQL are one
    state to the search, so a rule's outcome is keyed by (rule, input SQL): the greedy
    descent, the beam and the final fixed-point pass share it.  A tree whose SQL nobody has
    needed yet (the fixed-point pass's intermediates) is keyed by identity instead, which
    spares generating that SQL.
    """

    def __init__(self, catalog: Catalog | None, dialect: str) -> None:
        self.catalog, self.dialect = catalog, dialect
        self.memo: dict[tuple[Rule, str | int], exp.Expr | None] = {}  # None: did not fire
        self.sqls: dict[int, str] = {}  # id(tree) -> its SQL, for trees this search made
        self.alive: list[exp.Expr] = []  # every tree keyed by id() outlives the search

    def sql_of(self, tree: exp.Expr) -> str:
        """The tree's SQL; :class:`StateFailed` when sqlglot cannot write it (seen: a
        ``U&'..' UESCAPE '*'`` literal, whose escape sqlglot compiles as a regular expression)."""
        if id(tree) not in self.sqls:
            try:
                sql = tree.sql(dialect=self.dialect)
            except Exception as e:  # any generator error fails this state only
                raise StateFailed(f"SQL generation failed: {type(e).__name__}: {e}"[:120]) from e
            self.alive.append(tree)
            self.sqls[id(tree)] = sql
        return self.sqls[id(tree)]

    def apply(self, rule: Rule, tree: exp.Expr) -> exp.Expr | None:
        """The rule's output, or None when it returned its input unchanged."""
        key: tuple[Rule, str | int] = (rule, self.sqls.get(id(tree), id(tree)))
        if key not in self.memo:
            self.alive.append(tree)
            new = run_rule(rule, tree, self.catalog, self.dialect)
            self.memo[key] = None if new is tree else new
        return self.memo[key]

    def run(self, rule: Rule, tree: exp.Expr) -> exp.Expr:
        """As :func:`~sqlsluice.rewriters.rules.run_rule` (the input itself when unchanged), memoised."""
        new = self.apply(rule, tree)
        return tree if new is None else new


class _Scorer:
    def __init__(self, backend: Backend | None, dialect: str, max_explains: int) -> None:
        self.backend, self.dialect, self.max = backend, dialect, max_explains
        self.cache: dict[str, float | None] = {}
        self.calls = 0
        self.errors = 0

    def cost(self, sql: str) -> float | None:
        if sql in self.cache:
            return self.cache[sql]
        if self.backend is None:
            return None
        if self.calls >= self.max:
            return None
        self.calls += 1
        try:
            c: float | None = self.backend.explain(sql).cost
        except SluiceError:
            c = None
            self.errors += 1
        self.cache[sql] = c
        return c


def search(sql: str, catalog: Catalog | None, backend: Backend | None, *, dialect: str | None = None,
           rules: tuple[Rule, ...] = SEARCH, beam_width: int = 2, depth: int = 4, max_explains: int = 30,
           keep: int = 4, max_applications: int = 80) -> SearchResult:
    """Explore rule applications; return the cheapest distinct rewrites (at most ``keep``)."""
    dialect = dialect or (backend.dialect if backend else "duckdb")
    scorer = _Scorer(backend, dialect, max_explains)
    root = prepare(sql, catalog, dialect)
    memo = _Applications(catalog, dialect)
    failed: dict[str, int] = {}

    def drop(state_rules: list[str], err: StateFailed) -> None:
        """A state that cannot be written as SQL is dropped, not the search."""
        failed[err.reason] = failed.get(err.reason, 0) + 1
        counts = _FAILURES.get()
        if counts is not None:
            counts[err.reason] = counts.get(err.reason, 0) + 1
        log.debug("search state %s dropped: %s; statement: %s", state_rules or "(original)", err.reason, sql)

    orig_cost = scorer.cost(sql)
    try:
        base = memo.sql_of(root)
    except StateFailed as err:
        # the statement itself cannot be written back (every state derived from it carries the
        # same node): nothing to search, the original is served
        drop([], err)
        return SearchResult(original_cost=orig_cost, states=[], explains=scorer.calls, errors=scorer.errors,
                            failed=failed)
    seen: dict[str, State] = {}
    children: dict[str, list[State]] = {}
    applications = [0]

    def expand(state: State) -> list[State]:
        if state.sql in children:
            return children[state.sql]
        out: list[State] = []
        for r in rules:
            if applications[0] >= max_applications:
                break  # a count, not a clock: the search stays deterministic
            applications[0] += 1
            new = memo.apply(r, state.expr)
            if new is None:
                continue
            try:
                s = memo.sql_of(new)
            except StateFailed as err:
                drop([*state.rules, r.name], err)
                continue
            if s == state.sql or s == base:
                continue
            if s in seen:
                if seen[s].cost != float("inf"):
                    out.append(seen[s])
                continue
            st = State(new, s, [*state.rules, r.name], float("inf"))
            c = scorer.cost(s)
            seen[s] = st
            if c is None:
                continue
            st.cost = c
            out.append(st)
        children[state.sql] = out
        return out

    start = State(root, base, [], orig_cost if orig_cost is not None else float("inf"))
    # greedy descent, then a beam from the start state
    cur = start
    for _ in range(depth * 2):
        kids = sorted(expand(cur), key=lambda s: s.cost)
        if not kids or kids[0].cost >= cur.cost:
            break
        cur = kids[0]
    beam = [start]
    for _ in range(depth):
        pool: dict[str, State] = {}
        for st in beam:
            for k in expand(st):
                pool.setdefault(k.sql, k)
        if not pool:
            break
        beam = sorted(pool.values(), key=lambda s: s.cost)[:beam_width]
    # "all": every safe rule to a fixed point, in catalog order, twice over
    # (``root`` is already prepared, and qualifying is idempotent, so this is apply_rules)
    catalog_rules = [c for c in (resolve(r.name) for r in rules * 2) if c is not None]
    full_expr, full_applied, _ = fixed_point(root, catalog_rules, memo.run)
    try:
        full_sql = memo.sql_of(full_expr)
    except StateFailed as err:
        drop(full_applied, err)
        full_sql = base  # no "all" state
    if full_applied and full_sql not in seen and full_sql != base:
        st = State(full_expr, full_sql, full_applied, float("inf"))
        c = scorer.cost(full_sql)
        if c is not None:
            st.cost = c
            seen[full_sql] = st
    valid = sorted((s for s in seen.values() if s.cost != float("inf")), key=lambda s: s.cost)
    # one state per estimate: equal costs are (nearly always) one plan reached by rules that
    # do not change it, and would crowd distinct candidates out of the ``keep`` slots; so would a
    # state estimated exactly as the original, (nearly always) the original's plan
    # (``constant_fold`` alone, a fence put back by ``cte_inline``); the "all" state is kept anyway
    picked: list[State] = []
    for s in valid:
        if len(picked) < keep and s.cost != orig_cost and all(p.cost != s.cost for p in picked):
            picked.append(s)
    fs = seen.get(full_sql)
    if fs is not None and fs.cost != float("inf") and fs not in picked:
        picked.append(fs)
    return SearchResult(original_cost=orig_cost, states=picked, explains=scorer.calls, errors=scorer.errors,
                        failed=failed)
