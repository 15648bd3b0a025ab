"""Subquery rules: decorrelate scalar aggregates, EXISTS to IN, OR of IN to IN of UNION ALL.

All three expect column references qualified with their source (``sqlglot``'s
``qualify`` does it; :func:`sqlsluice.rewriters.rules.prepare` calls it).
"""

from __future__ import annotations

from sqlglot import exp

from sqlsluice.databases.catalog import Catalog
from sqlsluice.rewriters.rules._util import (
    and_all,
    conjuncts,
    fresh_name,
    inner_join_only,
    outer_columns,
    positive_context,
    selects,
    sources,
)

# Aggregates whose value over an empty input is NULL (COUNT is 0: the "count bug").
_NULL_ON_EMPTY_AGGS = (exp.Sum, exp.Avg, exp.Min, exp.Max, exp.Stddev, exp.StddevSamp, exp.StddevPop,
                       exp.Variance, exp.VariancePop)
_ARITH = (exp.Add, exp.Sub, exp.Mul, exp.Div)
_COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE)


def _null_on_empty(e: exp.Expr) -> bool:
    """True when ``e`` (a projection over aggregates) is NULL whenever its input is empty."""
    if isinstance(e, _NULL_ON_EMPTY_AGGS):
        return not isinstance(e, exp.Count)
    if isinstance(e, exp.Paren | exp.Neg | exp.Cast):
        return _null_on_empty(e.this)
    if isinstance(e, _ARITH):
        return _null_on_empty(e.this) or _null_on_empty(e.expression)
    return False


def _columns_under_aggs(e: exp.Expr) -> bool:
    """Every column of ``e`` lies inside an aggregate; no subqueries or windows."""
    if e.find(exp.Subquery, exp.Window, exp.Select):
        return False
    for c in e.find_all(exp.Column):
        if c.find_ancestor(exp.AggFunc) is None:
            return False
    return True


def _correlation(inner: exp.Select, outer_sources: set[str]
                 ) -> tuple[list[tuple[exp.Expr, exp.Column]], list[exp.Expr]] | None:
    """Split the inner WHERE into ``inner_expr = outer_col`` pairs and inner-only terms.

    ``None`` when the subquery refers to the outer query anywhere else, or through a
    source that is not a direct source of the outer SELECT.
    """
    where = inner.args.get("where")
    pairs: list[tuple[exp.Expr, exp.Column]] = []
    rest: list[exp.Expr] = []
    outer_all = outer_columns(inner)
    if not outer_all:
        return None
    used: set[int] = set()
    for term in conjuncts(where.this if where is not None else None):
        outs = [c for c in outer_all if _within(c, term)]
        if not outs:
            rest.append(term)
            continue
        if not isinstance(term, exp.EQ):
            return None
        left, right = term.this, term.expression
        for a, b in ((left, right), (right, left)):
            if isinstance(b, exp.Column) and any(b is o for o in outs) and len(outs) == 1:
                if b.table.lower() not in outer_sources or a.find(exp.AggFunc, exp.Subquery, exp.Select):
                    return None
                pairs.append((a, b))
                used.add(id(b))
                break
        else:
            return None
    if any(id(c) not in used for c in outer_all):
        return None  # a correlation outside the WHERE equalities (projection, JOIN ON, nested)
    return pairs, rest


def _within(node: exp.Expr, ancestor: exp.Expr) -> bool:
    p: exp.Expr | None = node
    while p is not None:
        if p is ancestor:
            return True
        p = p.parent
    return False


def _plain_select(inner: exp.Expr) -> bool:
    if not isinstance(inner, exp.Select):
        return False
    for k in ("group", "having", "limit", "offset", "with_", "qualify", "windows", "distinct"):
        if inner.args.get(k):
            return False
    return inner.args.get("from_") is not None


def scalar_subquery_to_join(expr: exp.Expr, *, schema: Catalog | None = None,
                            dialect: str | None = None) -> exp.Expr:
    """Correlated scalar aggregate in a WHERE comparison -> join with a grouped derived table.

    Calcite: FILTER_SUB_QUERY_TO_CORRELATE followed by decorrelation (SubQueryRemoveRule).

    >>> import sqlglot
    >>> q = sqlglot.parse_one("SELECT a.x FROM a WHERE a.y > (SELECT AVG(b.y) FROM b WHERE b.k = a.k)")
    >>> scalar_subquery_to_join(q).sql()
    'SELECT a.x FROM a, (SELECT b.k AS _k0, AVG(b.y) AS _v FROM b GROUP BY b.k) AS _sq1 WHERE a.y > _sq1._v AND a.k = _sq1._k0'

    Hazards: COUNT (0 on an empty group, not NULL) and any projection that is not NULL on
    empty input are refused; the comparison must be a top-level AND term of WHERE, where
    NULL and FALSE both drop the row; correlation only by equalities, so that each outer
    row meets at most one group.
    """
    root = expr.copy()
    for sel in selects(root):
        where = sel.args.get("where")
        if where is None:
            continue
        outer_sources = sources(sel)
        for term in conjuncts(where.this):
            if not isinstance(term, _COMPARISONS):
                continue
            for sub in list(term.find_all(exp.Subquery)):
                p = sub.parent
                while p is not term and isinstance(p, (*_ARITH, exp.Paren, exp.Neg)):
                    p = p.parent
                if p is not term:
                    continue
                inner = sub.this
                if not _plain_select(inner) or len(inner.expressions) != 1 or not inner_join_only(inner):
                    continue
                proj = inner.expressions[0].unalias()
                if not _columns_under_aggs(proj) or not _null_on_empty(proj):
                    continue
                split = _correlation(inner, outer_sources)
                if split is None:
                    continue
                pairs, rest = split
                name = fresh_name(root, "_sq")
                keys = [a.copy() for a, _ in pairs]
                derived = inner.copy()
                derived.set("expressions", [exp.alias_(k.copy(), f"_k{i}") for i, k in enumerate(keys)]
                            + [exp.alias_(proj.copy(), "_v")])
                rest_where = and_all([r.copy() for r in rest])
                derived.set("where", exp.Where(this=rest_where) if rest_where is not None else None)
                derived.set("group", exp.Group(expressions=keys))
                joins = list(sel.args.get("joins") or [])
                joins.append(exp.Join(this=exp.Subquery(this=derived, alias=exp.TableAlias(
                    this=exp.to_identifier(name)))))
                sel.set("joins", joins)
                sub.replace(exp.column("_v", table=name))
                eqs = [exp.EQ(this=o.copy(), expression=exp.column(f"_k{i}", table=name))
                       for i, (_, o) in enumerate(pairs)]
                sel.set("where", exp.Where(this=and_all([sel.args["where"].this] + eqs)))
                return root  # one application per call; the search applies it again
    return expr


def exists_to_in(expr: exp.Expr, *, schema: Catalog | None = None,
                 dialect: str | None = None) -> exp.Expr:
    """Correlated EXISTS (equality correlation) in a WHERE's AND/OR tree -> ``key IN (SELECT ...)``.

    Calcite: FILTER_SUB_QUERY_TO_CORRELATE / SEMI_JOIN (the planner can then hash the subquery
    once instead of probing it per outer row, also under OR).

    >>> import sqlglot
    >>> q = sqlglot.parse_one("SELECT a.x FROM a WHERE EXISTS (SELECT * FROM b WHERE b.k = a.k AND b.z = 1) OR a.x = 2")
    >>> exists_to_in(q).sql()
    'SELECT a.x FROM a WHERE a.k IN (SELECT b.k AS _k0 FROM b WHERE b.z = 1) OR a.x = 2'

    Hazard: with no match and a NULL key inside, IN is NULL where EXISTS is FALSE; both drop
    the row when the term sits under AND/OR only, so NOT EXISTS and EXISTS under NOT, CASE or
    in a projection are left alone.  Aggregates without GROUP BY (always one row) are refused.
    """
    root = expr.copy()
    for sel in selects(root):
        where = sel.args.get("where")
        if where is None:
            continue
        outer_sources = sources(sel)
        for ex in list(where.find_all(exp.Exists)):
            if not positive_context(ex, where):
                continue
            inner = ex.this
            if isinstance(inner, exp.Subquery):
                inner = inner.this
            if not _plain_select(inner) or any(e.find(exp.AggFunc) for e in inner.expressions):
                continue
            split = _correlation(inner, outer_sources)
            if split is None:
                continue
            pairs, rest = split
            new = inner.copy()
            new.set("expressions", [exp.alias_(a.copy(), f"_k{i}") for i, (a, _) in enumerate(pairs)])
            rest_where = and_all([r.copy() for r in rest])
            new.set("where", exp.Where(this=rest_where) if rest_where is not None else None)
            lhs: exp.Expr = pairs[0][1].copy() if len(pairs) == 1 else exp.Tuple(
                expressions=[o.copy() for _, o in pairs])
            ex.replace(exp.In(this=lhs, query=exp.Subquery(this=new)))
            return root
    return expr


def or_in_to_union(expr: exp.Expr, *, schema: Catalog | None = None,
                   dialect: str | None = None) -> exp.Expr:
    """``k IN (Q1) OR k IN (Q2)`` -> ``k IN (Q1 UNION ALL Q2)``: one semi-join instead of an OR.

    Calcite: no single rule (FILTER_SUB_QUERY_TO_CORRELATE + UNION of semi-joins).

    >>> import sqlglot
    >>> q = sqlglot.parse_one("SELECT a.x FROM a WHERE a.y = 1 AND (a.k IN (SELECT b.k FROM b) OR a.k IN (SELECT c.k FROM c))")
    >>> or_in_to_union(q).sql()
    'SELECT a.x FROM a WHERE a.y = 1 AND (a.k IN (SELECT b.k FROM b UNION ALL SELECT c.k FROM c))'

    Exact under three-valued logic: IN over a union is TRUE, NULL or FALSE exactly when the
    OR of the two INs is.  Both subqueries must have the same number of columns.
    """
    root = expr.copy()
    for node in list(root.find_all(exp.Or)):
        left, right = node.this, node.expression
        while isinstance(left, exp.Paren):
            left = left.this
        while isinstance(right, exp.Paren):
            right = right.this
        if not (isinstance(left, exp.In) and isinstance(right, exp.In)):
            continue
        lq, rq = left.args.get("query"), right.args.get("query")
        if lq is None or rq is None or left.this.sql() != right.this.sql():
            continue
        a, b = lq.this if isinstance(lq, exp.Subquery) else lq, rq.this if isinstance(rq, exp.Subquery) else rq
        if not isinstance(a, exp.Query) or not isinstance(b, exp.Query):
            continue
        if len(a.selects) != len(b.selects) or any(isinstance(s, exp.Star) for s in a.selects + b.selects):
            continue
        union = exp.Union(this=a.copy(), expression=b.copy(), distinct=False)
        node.replace(exp.In(this=left.this.copy(), query=exp.Subquery(this=union)))
        return root
    return expr
