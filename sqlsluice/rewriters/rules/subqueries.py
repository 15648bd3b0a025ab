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
    defined_names,
    fresh_name,
    inner_join_only,
    is_inside,
    outer_columns,
    positive_context,
    selects,
    sources,
)
from sqlsluice.rewriters.rules.semijoins import _same_types

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
        outs = [c for c in outer_all if is_inside(c, term)]
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
    if not any(_plain_select(s.this) and len(s.this.expressions) == 1
               and _null_on_empty(s.this.expressions[0].unalias()) for s in expr.find_all(exp.Subquery)):
        return expr  # pre-check: no subquery of one NULL-on-empty aggregate, skip the copy
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


def _unparen(e: exp.Expr) -> exp.Expr:
    while isinstance(e, exp.Paren):
        e = e.this
    return e


def _union_leaves(q: exp.Expr) -> list[exp.Select] | None:
    """The SELECTs of a chain of UNION / UNION ALL (no ORDER BY, LIMIT, WITH or BY NAME anywhere in
    the chain), or None.  Under IN, UNION and UNION ALL are one set of values."""
    while isinstance(q, exp.Subquery) and not q.alias:
        q = q.this
    tails = ("order", "limit", "offset", "fetch", "with_", "with")
    if isinstance(q, exp.Select):
        return None if any(q.args.get(k) for k in tails) else [q]
    if not isinstance(q, exp.Union) or q.args.get("by_name") or any(q.args.get(k) for k in tails):
        return None
    left, right = _union_leaves(q.this), _union_leaves(q.expression)
    return None if left is None or right is None else left + right


def or_in_to_union(expr: exp.Expr, *, schema: Catalog | None = None,
                   dialect: str | None = None) -> exp.Expr:
    """``k IN (Q1) OR k IN (Q2)`` -> ``k IN (Q1 UNION ALL Q2)``: one semi-join instead of an OR.

    Calcite: no single rule (FILTER_SUB_QUERY_TO_CORRELATE + UNION of semi-joins).

    >>> import sqlglot
    >>> cat = Catalog.from_ddl("CREATE TABLE a (k INT, x INT, y INT); CREATE TABLE b (k INT); CREATE TABLE c (k INT)")
    >>> q = sqlglot.parse_one("SELECT a.x FROM a WHERE a.y = 1 AND (a.k IN (SELECT b.k FROM b) OR a.k IN (SELECT c.k FROM c))")
    >>> or_in_to_union(q, schema=cat).sql()
    'SELECT a.x FROM a WHERE a.y = 1 AND (a.k IN (SELECT b.k FROM b UNION ALL SELECT c.k FROM c))'

    Exact under three-valued logic: IN over a union is TRUE, NULL or FALSE exactly when the
    OR of the two INs is (also under NOT, for a NULL key and NULLs inside; proved by the SMT
    tier's ``smt_union.in_union_to_or``).  Hazards: a union coerces its branches to a common
    type, so every branch must project plain base-table columns of one declared type per
    position (no schema: no rewrite); and only SELECTs and UNION [ALL] chains without ORDER BY /
    LIMIT / WITH are combined, their branches flattened into one UNION ALL chain (an EXCEPT or
    INTERSECT operand would re-associate when printed: ``A UNION ALL B EXCEPT C`` is
    ``(A UNION ALL B) EXCEPT C``).
    """
    if not any(isinstance(_unparen(o.this), exp.In) and isinstance(_unparen(o.expression), exp.In)
               for o in expr.find_all(exp.Or)):
        return expr  # pre-check: no OR of two INs, skip the copy
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
        leaves = _union_leaves(lq), _union_leaves(rq)
        if leaves[0] is None or leaves[1] is None:
            continue
        branches = leaves[0] + leaves[1]
        width = len(branches[0].expressions)
        if any(isinstance(s, exp.Star) or (isinstance(s, exp.Column) and isinstance(s.this, exp.Star))
               for b in branches for s in b.expressions):
            continue
        if not _same_types(list(branches), width, schema):
            continue  # a coercion to a common type could change what ``=`` compares
        union: exp.Expr = branches[0].copy()
        for b in branches[1:]:
            union = exp.Union(this=union, expression=b.copy(), distinct=False)
        node.replace(exp.In(this=left.this.copy(), query=exp.Subquery(this=union)))
        return root
    return expr


def _single_table_aggregate(q: exp.Expr) -> tuple[str, exp.Expr, exp.Expr | None] | None:
    """``(table sql, aggregate, WHERE condition)`` for ``SELECT agg(...) FROM t [WHERE w]``, else None."""
    if not _plain_select(q) or len(q.expressions) != 1 or q.args.get("joins"):
        return None
    src = q.args["from_"].this
    if not isinstance(src, exp.Table):
        return None
    agg = q.expressions[0].unalias()
    if not isinstance(agg, exp.AggFunc) or agg.find(exp.Subquery, exp.Window, exp.Filter):
        return None
    where = q.args.get("where")
    if where is not None and where.this.find(exp.Subquery, exp.Select, exp.AggFunc):
        return None
    if outer_columns(q):
        return None  # correlated
    return src.sql(), agg, where.this if where is not None else None


def scalar_subqueries_to_filtered_aggregate(expr: exp.Expr, *, schema: Catalog | None = None,
                                            dialect: str | None = None) -> exp.Expr:
    """Several uncorrelated ``(SELECT agg(x) FROM t WHERE w_i)`` over one table -> one scan with ``FILTER``.

    Calcite: none (LITHE-style "common subexpression" rewrite; TPC-DS q9, q28, q88 shapes).

    >>> import sqlglot
    >>> q = sqlglot.parse_one("SELECT (SELECT COUNT(*) FROM t WHERE t.a < 5) AS c, (SELECT AVG(t.b) FROM t WHERE t.a >= 5) AS m FROM r WHERE r.k = 1")
    >>> scalar_subqueries_to_filtered_aggregate(q).sql()
    'SELECT _fa1._v1 AS c, _fa1._v2 AS m FROM r, (SELECT COUNT(*) FILTER(WHERE t.a < 5) AS _v1, AVG(t.b) FILTER(WHERE t.a >= 5) AS _v2 FROM t) AS _fa1 WHERE r.k = 1'

    Sound: an aggregate without GROUP BY yields exactly one row, so the cross join keeps
    the outer rows as they are, and ``agg(x) FILTER (WHERE w)`` over ``t`` is ``agg(x)`` over
    ``t WHERE w``.  Only for an outer SELECT without GROUP BY or aggregates (the new columns
    could not appear in them) and with at least two subqueries over the same table.
    """
    if sum(1 for s in expr.find_all(exp.Subquery) if not isinstance(s.parent, exp.From | exp.Join)
           and _single_table_aggregate(s.this) is not None) < 2:
        return expr  # pre-check: fewer than two candidate subqueries in all, skip the copy
    root = expr.copy()
    for sel in selects(root):
        if sel.args.get("group") or sel.args.get("having") or any(
                a.find_ancestor(exp.Select) is sel for p in sel.expressions for a in p.find_all(exp.AggFunc)):
            continue  # an aggregating SELECT: the new columns would have to be grouped
        groups: dict[str, list[tuple[exp.Subquery, exp.Expr, exp.Expr | None]]] = {}
        for sub in sel.find_all(exp.Subquery):
            if sub.parent is None or isinstance(sub.parent, exp.From | exp.Join) or sub.args.get("alias"):
                continue
            owner = sub.find_ancestor(exp.Select)
            if owner is not sel:
                continue
            found = _single_table_aggregate(sub.this)
            if found is None:
                continue
            table, agg, cond = found
            groups.setdefault(table, []).append((sub, agg, cond))
        for table, subs in groups.items():
            if len(subs) < 2:
                continue
            name = fresh_name(root, "_fa")
            projs = []
            for i, (_, agg, cond) in enumerate(subs, 1):
                a: exp.Expr = agg.copy()
                if cond is not None:
                    a = exp.Filter(this=a, expression=exp.Where(this=cond.copy()))
                projs.append(exp.alias_(a, f"_v{i}"))
            derived = exp.Select(expressions=projs).from_(sqlglot_table(table, subs[0][0]))
            for i, (sub, _, _) in enumerate(subs, 1):
                sub.replace(exp.column(f"_v{i}", table=name))
            if sel.args.get("from_") is None:
                sel.set("from_", exp.From(this=exp.Subquery(this=derived, alias=exp.TableAlias(
                    this=exp.to_identifier(name)))))
            else:
                joins = list(sel.args.get("joins") or [])
                joins.append(exp.Join(this=exp.Subquery(this=derived, alias=exp.TableAlias(
                    this=exp.to_identifier(name)))))
                sel.set("joins", joins)
            return root
    return expr


def sqlglot_table(table_sql: str, sub: exp.Subquery) -> exp.Expr:
    """The FROM table of the subquery (copied with its alias)."""
    return sub.this.args["from_"].this.copy()


def _comma_joins_only(sel: exp.Select) -> bool:
    for j in sel.args.get("joins") or []:
        if j.args.get("on") is not None or j.args.get("using") or j.side or \
                (j.kind and j.kind.upper() != "CROSS"):
            return False
    return True


def _aggregate_block(q: exp.Expr) -> tuple[str, list[str]] | None:
    """``(FROM/JOIN text, WHERE conjunct texts)`` for a SELECT of aliased aggregates only, else None."""
    if not isinstance(q, exp.Select) or not _plain_select(q) or not _comma_joins_only(q) or outer_columns(q):
        return None
    for p in q.expressions:
        if not isinstance(p, exp.Alias) or not isinstance(p.this, exp.AggFunc):
            return None
        if p.this.find(exp.Subquery, exp.Window, exp.Filter):
            return None
    where = q.args.get("where")
    if where is not None and where.this.find(exp.Subquery, exp.Select, exp.AggFunc):
        return None
    src = q.args["from_"].sql() + " " + " ".join(j.sql() for j in q.args.get("joins") or [])
    return src, [t.sql() for t in conjuncts(where.this if where is not None else None)]


def _bound_at(c: exp.Column, sel: exp.Select) -> bool:
    """Does ``c``'s qualifier resolve to a source of ``sel`` (no SELECT in between defines it)?"""
    q = c.table.lower()
    p = c.parent
    while p is not None and p is not sel:
        if isinstance(p, exp.Select) and q in sources(p):
            return False  # a nested subquery with its own source of that name
        p = p.parent
    return p is sel


def derived_aggregates_to_filtered_aggregate(expr: exp.Expr, *, schema: Catalog | None = None,
                                             dialect: str | None = None) -> exp.Expr:
    """Cross-joined one-row aggregate derived tables over the same FROM -> one scan with ``FILTER``.

    Calcite: none (TPC-DS q28, q88 shapes: N scans of the fact table become one).

    >>> import sqlglot
    >>> q = sqlglot.parse_one("SELECT * FROM (SELECT COUNT(*) AS a FROM t WHERE t.x = 1 AND t.y < 5) AS s1, (SELECT AVG(t.z) AS b FROM t WHERE t.x = 1 AND t.y >= 5) AS s2")
    >>> derived_aggregates_to_filtered_aggregate(q).sql()
    'SELECT * FROM (SELECT COUNT(*) FILTER(WHERE t.y < 5) AS a, AVG(t.z) FILTER(WHERE t.y >= 5) AS b FROM t WHERE t.x = 1 AND ((t.y < 5) OR (t.y >= 5))) AS _fa1'

    Sound: each derived table is an aggregate without GROUP BY, i.e. exactly one row, so
    their cross join is one row; conjuncts common to all stay in WHERE and the rest become
    each aggregate's FILTER (rows where it is NULL are dropped, as WHERE drops them); the OR
    of those filters joins the WHERE, since a row passing none feeds no aggregate.
    Output names must be unique; with ``SELECT *`` the merged tables must be the whole FROM.
    Only references bound to the merged tables are renamed: a nested subquery's own source
    of the same name keeps its references.
    """
    if sum(1 for s in expr.find_all(exp.Subquery) if isinstance(s.parent, exp.From | exp.Join)
           and isinstance(s.this, exp.Select)
           and all(isinstance(p, exp.Alias) and isinstance(p.this, exp.AggFunc) for p in s.this.expressions)) < 2:
        return expr  # pre-check: fewer than two aggregate-only derived tables in all, skip the copy
    root = expr.copy()
    for sel in selects(root):
        if not _comma_joins_only(sel) or sel.args.get("from_") is None:
            continue
        items = [sel.args["from_"].this] + [j.this for j in sel.args.get("joins") or []]
        groups: dict[str, list[tuple[exp.Subquery, list[str]]]] = {}
        for it in items:
            if isinstance(it, exp.Subquery) and it.alias and not it.args["alias"].args.get("columns"):
                blk = _aggregate_block(it.this)
                if blk is not None:
                    groups.setdefault(blk[0], []).append((it, blk[1]))
        star = any(isinstance(p, exp.Star) for p in sel.expressions)
        for members in groups.values():
            if len(members) < 2 or (star and len(members) != len(items)):
                continue
            aliases = [m[0].alias.lower() for m in members]
            names = [p.alias.lower() for m in members for p in m[0].this.expressions]
            if len(set(names)) != len(names) or len(set(aliases)) != len(aliases):
                continue
            if any(isinstance(c.this, exp.Star) and c.table.lower() in aliases for c in sel.find_all(exp.Column)):
                continue
            if any(set(aliases) & defined_names(m[0].this) for m in members):
                continue  # an inner alias equal to an outer one would be renamed too
            common = [t for t in members[0][1] if all(t in m[1] for m in members[1:])]
            first_sel = members[0][0].this
            merged = first_sel.copy()
            cterms = [t for t in conjuncts(first_sel.args["where"].this if first_sel.args.get("where") else None)
                      if t.sql() in common]
            merged.set("where", exp.Where(this=and_all([t.copy() for t in cterms])) if cterms else None)
            projs: list[exp.Expr] = []
            conds: list[exp.Expr | None] = []
            for sub, _terms in members:
                w = sub.this.args.get("where")
                rest = [t for t in conjuncts(w.this if w is not None else None) if t.sql() not in common]
                cond = and_all([t.copy() for t in rest])
                conds.append(cond)
                for p in sub.this.expressions:
                    agg: exp.Expr = p.this.copy()
                    if cond is not None:
                        agg = exp.Filter(this=agg, expression=exp.Where(this=cond.copy()))
                    projs.append(exp.alias_(agg, p.alias))
            merged.set("expressions", projs)
            if all(c is not None for c in conds):
                # rows that pass no member's filter feed no aggregate: keep the scan selective
                anyof: exp.Expr = exp.Paren(this=conds[0].copy()) if conds[0] is not None else exp.true()
                for c in conds[1:]:
                    if c is not None:
                        anyof = exp.or_(anyof, exp.Paren(this=c.copy()), copy=False)
                old_where = merged.args.get("where")
                merged.set("where", exp.Where(this=and_all(
                    ([old_where.this] if old_where is not None else []) + [exp.Paren(this=anyof)])))
            name = fresh_name(root, "_fa")
            new_item = exp.Subquery(this=merged, alias=exp.TableAlias(this=exp.to_identifier(name)))
            for c in list(sel.find_all(exp.Column)):
                if c.table and c.table.lower() in aliases and _bound_at(c, sel):
                    c.set("table", exp.to_identifier(name))
            first = members[0][0]
            drop = {id(m[0]) for m in members[1:]}
            first.replace(new_item)
            joins = [j for j in sel.args.get("joins") or [] if id(j.this) not in drop]
            sel.set("joins", joins or None)
            return root
    return expr
