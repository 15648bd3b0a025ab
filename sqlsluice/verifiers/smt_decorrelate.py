"""Decorrelated scalar aggregates, put back as the correlated subqueries they stand for.

A query that joins a grouped derived table on all of its grouping keys and filters on its
aggregate,

    SELECT .. FROM R, (SELECT S.k AS k, AGG(S.x) AS v FROM S WHERE P GROUP BY S.k) AS d
    WHERE R.c = d.k AND cmp(R.., d.v) AND ..

returns the same bag of rows as

    SELECT .. FROM R WHERE cmp(R.., (SELECT AGG(S.x) FROM S WHERE P AND S.k = R.c)) AND ..

under these conditions, each checked in code:

1. ``d`` is a block ``SELECT keys, aggregates FROM base tables WHERE P GROUP BY keys`` with
   no HAVING, no LEFT JOIN, no DISTINCT, every GROUP BY expression among its outputs, and
   every other output one of ``AVG``, ``SUM``, ``MIN``, ``MAX`` (NULL over no rows:
   ``COUNT`` is 0 there, the COUNT bug, and is refused);
2. ``d`` is an inner unit of the outer block and every grouping key is equated (``=``) in a
   WHERE conjunct to an outer expression that does not read ``d`` and holds no subquery;
   no LEFT JOIN condition reads ``d``;
3. some other WHERE conjunct reads an aggregate of ``d`` and is NULL-strict (NULL when any
   column it reads is NULL).

Why: ``d`` holds at most one row per key value, so the join never duplicates an outer row.
An outer row whose key has a group in ``d`` is kept with ``v`` = the aggregate over exactly
the rows of ``S`` that satisfy ``P`` and ``S.k = R.c``, which is the subquery's value.  An
outer row with no group (no such ``S`` row, or ``R.c`` NULL, where ``=`` is never TRUE) is
dropped by the join; in the correlated form the subquery is then NULL (condition 1), so the
strict conjunct (condition 3) is not TRUE and the row is dropped too.  Every other reference
to ``d.v`` or ``d.k`` is only evaluated on kept rows, where ``d.k = R.c`` and ``d.v`` equals
the subquery.  The SMT tier then models each subquery as an uninterpreted function of its
correlated values (the same subquery, up to alias names, conjunct order and the sides of
``=``, is the same function), which is how the original query is modelled too.

The subquery put back declares ``S``'s tables under fresh aliases (``S``'s own references
renamed with them, scope-aware): the rule's output reuses the outer query's table names inside
``d`` (TPC-DS q32 joins ``catalog_sales`` outside and inside), and an outer expression equated
to a key, copied into the subquery, must keep meaning the outer table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlglot import exp

if TYPE_CHECKING:
    from sqlsluice.verifiers.smt import Block

_NULL_ON_EMPTY = (exp.Avg, exp.Sum, exp.Min, exp.Max)


def recorrelate(q: Block) -> Block:
    """``q`` (an SMT :class:`~sqlsluice.verifiers.smt.Block`) with each decorrelated scalar
    aggregate it joins put back as a correlated scalar subquery (see the module docstring)."""
    from sqlsluice.verifiers.smt import _FRESH, Block, _rename_alias, _substitute

    flat: list[Any] = []
    for cond in q.conds:  # a JOIN's ON condition arrives as one conjunct
        c: Any = cond.unnest() if isinstance(cond, exp.Paren) else cond
        flat.extend(x.unnest() if isinstance(x, exp.Paren) else x for x in (c.flatten() if isinstance(c, exp.And) else [c]))
    if len(flat) != len(q.conds):
        q = Block(q.units, q.ljs, flat, q.group, q.having, q.outputs, q.out_kinds)
    # a scalar subquery's value is read by a filter, not output: such units first (a grouped unit
    # whose keys happen to be equated too is then left as the join it also is, as in the original)
    shown = {c.table for o in [*q.outputs, *(q.group or [])] for c in o.find_all(exp.Column)}
    for ui in sorted(range(len(q.units)), key=lambda i: q.units[i].alias in shown):
        u = q.units[ui]
        g = u.derived
        if not isinstance(g, Block) or not g.group or g.having is not None or g.ljs:
            continue
        if any(not gu.type_key.startswith("table:") and gu.source is None for gu in g.units):
            continue
        names = [n for n, _, _ in u.columns]
        if len(names) != len(g.outputs) or len(set(names)) != len(names):
            continue
        group_sql = [ge.sql() for ge in g.group]
        keys: dict[str, exp.Expression] = {}  # output name -> its grouping expression
        aggs: dict[str, exp.Expression] = {}
        ok = True
        for n, o in zip(names, g.outputs, strict=True):
            if o.sql() in group_sql:
                keys[n] = o
            elif _null_on_empty(o):
                aggs[n] = o
            else:
                ok = False
        if not ok or not aggs or {k.sql() for k in keys.values()} != set(group_sql):
            continue
        if any(any(c.table == u.alias for c in on.find_all(exp.Column)) for _, on in q.ljs):
            continue

        def reads_d(e: exp.Expression, alias: str = u.alias) -> bool:
            return any(c.table == alias for c in e.find_all(exp.Column))

        equated: dict[str, exp.Expression] = {}
        used: set[int] = set()
        for ci, c in enumerate(q.conds):
            if not isinstance(c, exp.EQ):
                continue
            for mine, other in ((c.this, c.expression), (c.expression, c.this)):
                if isinstance(mine, exp.Column) and mine.table == u.alias and mine.name.lower() in keys \
                        and mine.name.lower() not in equated and not reads_d(other) and not other.find(exp.Select):
                    equated[mine.name.lower()] = other
                    used.add(ci)
                    break
        if set(equated) != set(keys):
            continue
        strict = [c for ci, c in enumerate(q.conds) if ci not in used and _strict_in(c, u.alias, set(aggs))]
        if not strict:
            continue
        repl: dict[str, exp.Expression] = {}
        for n, outer in equated.items():
            repl[n] = outer
        # the subquery's tables under fresh aliases: an outer expression equated to a key must not
        # be captured by an inner table of the same name (the rule's output reuses the names)
        fresh = {gu.alias: f"{gu.alias}__c{next(_FRESH)}" for gu in g.units}
        if {c.table for o in equated.values() for c in o.find_all(exp.Column)} & set(fresh.values()):
            continue  # (an outer name that happens to be a fresh one would be captured)

        def inner(e: exp.Expression, fresh: dict[str, str] = fresh) -> exp.Expression:
            for old, new in fresh.items():
                e = _rename_alias(e, old, new)
            return e

        for n, agg in aggs.items():
            corr = [exp.EQ(this=inner(keys[k]), expression=equated[k].copy()) for k in keys]
            where = exp.and_(*[inner(c) for c in g.conds], *corr)
            sel = exp.Select(expressions=[inner(agg)])
            first, *rest = g.units
            sel = sel.from_(_source(first, fresh[first.alias]))
            for gu in rest:
                sel = sel.join(_source(gu, fresh[gu.alias]))
            sel = sel.where(where)
            repl[n] = exp.Subquery(this=sel)
        a = u.alias

        def sub(e: exp.Expression, a: str = a, repl: dict[str, exp.Expression] = repl) -> exp.Expression:
            return _substitute(e, a, repl)

        out = Block([*q.units[:ui], *q.units[ui + 1:]],
                    [(lu, sub(on)) for lu, on in q.ljs],
                    [sub(c) for ci, c in enumerate(q.conds) if ci not in used],
                    [sub(x) for x in q.group] if q.group is not None else None,
                    sub(q.having) if q.having is not None else None,
                    [sub(o) for o in q.outputs], q.out_kinds)
        if any(reads_d(e) for e in [*out.conds, *out.outputs, *(out.group or [])]):
            continue  # a column of d that is neither a key nor an aggregate
        return recorrelate(out)
    return q


def _strict_in(c: exp.Expression, alias: str, names: set[str]) -> bool:
    """``c`` is NULL (so not TRUE) whenever column ``alias.n`` (some n of ``names``) is NULL: the
    path from ``c`` down to that column is made only of NULL-propagating operators (the other
    operands may be anything, a subquery included)."""
    from sqlsluice.verifiers.smt import _STRICT

    for col in c.find_all(exp.Column):
        if col.table != alias or col.name.lower() not in names:
            continue
        node: exp.Expression | None = col
        ok = True
        while node is not None and node is not c:
            parent = node.parent
            if parent is None or not isinstance(parent, _STRICT) or isinstance(parent, exp.Column):
                ok = False
                break
            node = parent
        if ok and node is c:
            return True
    return False


def _source(u: Any, name: str) -> exp.Expression:
    """A unit as a FROM item: its base table, or its derived table's body, under alias ``name``."""
    alias = exp.TableAlias(this=exp.to_identifier(name, quoted=True))
    if u.type_key.startswith("table:"):
        return exp.Table(this=exp.to_identifier(u.type_key.split(":", 1)[1], quoted=True), alias=alias)
    return exp.Subquery(this=u.source.copy(), alias=alias)


def _null_on_empty(o: exp.Expression) -> bool:
    """NULL over no rows: AVG/SUM/MIN/MAX, or NULL-propagating arithmetic over them (and literals)."""
    from sqlsluice.verifiers.smt import _STRICT

    strict = (*_STRICT, exp.Div, exp.IntDiv)  # NULL in, NULL out (both queries divide alike)
    if o.find(exp.Select) is not None or not isinstance(o, (*_NULL_ON_EMPTY, *strict)):
        return False
    if isinstance(o, _NULL_ON_EMPTY):
        return True
    found = False
    stack = [o]
    while stack:
        n = stack.pop()
        if isinstance(n, _NULL_ON_EMPTY):
            found = True
            continue  # what an aggregate reads is its own business
        if isinstance(n, exp.AggFunc) or not isinstance(n, strict) or isinstance(n, exp.Column):
            return False  # another aggregate (COUNT) or a column outside any aggregate
        stack.extend(n.iter_expressions())
    return found


def canonical_subquery(sub: exp.Expression) -> exp.Expression:
    """A scalar subquery up to what does not change its value: the output's alias, the order of
    WHERE conjuncts and the sides of ``=`` (used to name its uninterpreted function)."""
    c = sub.copy()
    if not isinstance(c, exp.Select):
        return c
    c.set("expressions", [p.this if isinstance(p, exp.Alias) else p for p in c.expressions])
    where = c.args.get("where")
    if where is not None:
        parts = list(where.this.flatten()) if isinstance(where.this, exp.And) else [where.this]
        canon: list[Any] = []
        for p in parts:
            p = p.unnest() if isinstance(p, exp.Paren) else p
            if isinstance(p, exp.EQ) and p.this.sql() > p.expression.sql():
                p = exp.EQ(this=p.expression.copy(), expression=p.this.copy())
            canon.append(p)
        canon.sort(key=lambda x: x.sql())
        c.set("where", exp.Where(this=exp.and_(*canon)))
    return c
