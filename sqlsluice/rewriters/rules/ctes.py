"""CTE rules: inline, unmark or mark materialisation, drop unused ones."""

from __future__ import annotations

from sqlglot import exp

from sqlsluice.databases.catalog import Catalog
from sqlsluice.rewriters.rules._scope import ambiguous_ctes, binding

# Functions that give a different value per evaluation: inlining a CTE that calls one
# evaluates it once per reference instead of once.
_VOLATILE = ("random", "rand", "uuid", "gen_random_uuid", "nextval", "setseed", "clock_timestamp")


def _volatile(e: exp.Expr) -> bool:
    if e.find(exp.Rand):
        return True
    for f in e.find_all(exp.Anonymous, exp.Func):
        name = (f.name if isinstance(f, exp.Anonymous) else f.sql_name()).lower()
        if name in _VOLATILE:
            return True
    return False


def _references(root: exp.Expr, cte: exp.CTE) -> list[exp.Table]:
    """Table nodes that refer to ``cte``: its name, where that name resolves to it (see ``_scope``)."""
    name = cte.alias_or_name.lower()
    out = []
    for t in root.find_all(exp.Table):
        if t.name.lower() == name and not t.args.get("db") and binding(t) is cte:
            out.append(t)
    return out




def _shadowed(root: exp.Expr, cte: exp.CTE) -> bool:
    """True when another CTE or derived table somewhere reuses the CTE's name."""
    name = cte.alias_or_name.lower()
    n = 0
    for c in root.find_all(exp.CTE):
        if c.alias_or_name.lower() == name:
            n += 1
    return n > 1


def _ctes(root: exp.Expr) -> list[tuple[exp.With, exp.CTE]]:
    out = []
    for w in root.find_all(exp.With):
        if w.args.get("recursive"):
            continue
        for c in w.expressions:
            out.append((w, c))
    return out


def cte_inline(expr: exp.Expr, *, schema: Catalog | None = None,
               dialect: str | None = None) -> exp.Expr:
    """Inline every referenced non-recursive CTE as a derived table at each reference.

    Each reference then gets its own copy, so the planner can push that reference's
    predicates into it (the per-reference pushdown q4/q11/q74 need).  Calcite: none
    (Calcite has no CTEs; closest is the planner's view expansion).

    >>> import sqlglot
    >>> cte_inline(sqlglot.parse_one("WITH c AS (SELECT a FROM t) SELECT x.a FROM c AS x, c")).sql()
    'SELECT x.a FROM (SELECT a FROM t) AS x, (SELECT a FROM t) AS c'

    Hazards: volatile functions (evaluated once per copy instead of once), recursive CTEs,
    data-modifying CTEs and names shadowed by another CTE are left alone, and so is any
    query where a CTE's name also names a base table (inside the CTE's own body, in an
    earlier CTE, outside its WITH): the inlined body or the references could be mistaken.
    """
    if ambiguous_ctes(expr):
        return expr  # a name meaning a base table in one place and the CTE in another
    root = expr.copy()
    changed = False
    for w, cte in reversed(_ctes(root)):
        body = cte.this
        if not isinstance(body, exp.Query) or _volatile(body) or _shadowed(root, cte):
            continue
        refs = _references(root, cte)
        if not refs:
            continue
        cols = cte.args["alias"].args.get("columns") if cte.args.get("alias") else None
        for t in refs:
            alias = t.alias or t.name
            ta = exp.TableAlias(this=exp.to_identifier(alias, quoted=bool(t.args.get("alias") and
                                                                           t.args["alias"].this.quoted)))
            if cols:
                ta.set("columns", [c.copy() for c in cols])
            t.replace(exp.Subquery(this=body.copy(), alias=ta))
        cte.pop()
        changed = True
        if not w.expressions:
            w.pop()
    return root if changed else expr


def cte_not_materialized(expr: exp.Expr, *, schema: Catalog | None = None,
                         dialect: str | None = None) -> exp.Expr:
    """Mark CTEs used more than once ``NOT MATERIALIZED`` (PostgreSQL 12+, DuckDB).

    The planner then inlines each reference and pushes its predicates down, instead of
    computing the whole CTE once and scanning it with blind row estimates.  Calcite: none.

    >>> import sqlglot
    >>> cte_not_materialized(sqlglot.parse_one("WITH c AS (SELECT a FROM t) SELECT * FROM c, c AS d")).sql("postgres")
    'WITH c AS NOT MATERIALIZED (SELECT a FROM t) SELECT * FROM c, c AS d'

    Hazard: volatile functions (a different value per reference) are left alone.
    """
    # each CTE is judged alone (marking one changes no other's references): test, then copy
    if not any(_shared(expr, cte) for _, cte in _ctes(expr)):
        return expr
    root = expr.copy()
    changed = False
    for _, cte in _ctes(root):
        if _shared(root, cte):
            cte.set("materialized", False)
            changed = True
    return root if changed else expr


def _shared(root: exp.Expr, cte: exp.CTE) -> bool:
    """An unmarked, non-volatile CTE referenced at least twice."""
    if cte.args.get("materialized") is not None or _volatile(cte.this):
        return False
    return len(_references(root, cte)) >= 2


def cte_materialize(expr: exp.Expr, *, schema: Catalog | None = None,
                    dialect: str | None = None) -> exp.Expr:
    """Mark aggregating CTEs used once ``MATERIALIZED``: an optimisation fence (PostgreSQL 12+, DuckDB).

    Calcite: none.

    >>> import sqlglot
    >>> cte_materialize(sqlglot.parse_one("WITH c AS (SELECT k, SUM(v) AS s FROM t GROUP BY k) SELECT * FROM c")).sql("postgres")
    'WITH c AS MATERIALIZED (SELECT k, SUM(v) AS s FROM t GROUP BY k) SELECT * FROM c'

    Always sound: materialising only changes when the CTE is evaluated.
    """
    # each CTE is judged alone (marking one changes no other's references): test, then copy
    if not any(_aggregating_once(expr, cte) for _, cte in _ctes(expr)):
        return expr
    root = expr.copy()
    changed = False
    for _, cte in _ctes(root):
        if _aggregating_once(root, cte):
            cte.set("materialized", True)
            changed = True
    return root if changed else expr


def _aggregating_once(root: exp.Expr, cte: exp.CTE) -> bool:
    """An unmarked CTE that groups or aggregates, referenced exactly once."""
    body = cte.this
    if cte.args.get("materialized") is not None or not isinstance(body, exp.Query):
        return False
    if not (body.find(exp.Group) or body.find(exp.AggFunc)):
        return False
    return len(_references(root, cte)) == 1


def cte_unused_remove(expr: exp.Expr, *, schema: Catalog | None = None,
                      dialect: str | None = None) -> exp.Expr:
    """Drop CTEs that nothing refers to.  Calcite: none (sqlglot: ``eliminate_ctes``).

    >>> import sqlglot
    >>> cte_unused_remove(sqlglot.parse_one("WITH c AS (SELECT 1 AS a), d AS (SELECT 2 AS b) SELECT * FROM d")).sql()
    'WITH d AS (SELECT 2 AS b) SELECT * FROM d'
    """
    if all(_references(expr, cte) for _, cte in _ctes(expr)):
        return expr  # pre-check: every CTE is used (dropping one is what makes others unused)
    root = expr.copy()
    changed = False
    for w, cte in reversed(_ctes(root)):
        if not _references(root, cte):
            cte.pop()
            changed = True
            if not w.expressions:
                w.pop()
    return root if changed else expr
