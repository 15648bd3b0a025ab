"""Filter, union, sort, distinct and join rules, plus sqlglot's optimizer passes under Calcite names."""

from __future__ import annotations

from sqlglot import exp

from sqlsluice.databases.catalog import Catalog
from sqlsluice.rewriters.rules._util import (
    and_all,
    conjuncts,
    defined_names,
    from_items,
    inner_join_only,
    is_inside,
    qualifiers,
    source_name,
)


def _branches(q: exp.Expr) -> list[exp.Select] | None:
    """The SELECT branches of a UNION ALL tree (or the SELECT itself); None otherwise."""
    if isinstance(q, exp.Select):
        return [q]
    if isinstance(q, exp.Union) and not q.args.get("distinct") and not q.args.get("order") \
            and not q.args.get("limit"):
        a, b = _branches(q.this), _branches(q.expression)
        if a is None or b is None:
            return None
        return a + b
    return None


def _output_maps(item: exp.Subquery, branches: list[exp.Select]) -> list[dict[str, exp.Expr]] | None:
    """Per branch, output column name -> that branch's expression.

    UNION ALL is positional: the names come from the derived table's column list, else from
    the first branch, and every branch contributes its expression at that position.
    """
    first = branches[0].expressions
    if any(isinstance(p, exp.Star) or not p.alias_or_name for p in first):
        return None
    alias = item.args.get("alias")
    cols = alias.args.get("columns") if alias is not None else None
    names = [c.name.lower() for c in cols] if cols else [p.alias_or_name.lower() for p in first]
    if len(set(names)) != len(names):
        return None
    out = []
    for b in branches:
        if len(b.expressions) != len(names) or any(isinstance(p, exp.Star) for p in b.expressions):
            return None
        out.append({n: p.unalias() for n, p in zip(names, b.expressions, strict=True)})
    return out


def filter_into_derived(expr: exp.Expr, *, schema: Catalog | None = None,
                        dialect: str | None = None) -> exp.Expr:
    """Copy a single-source WHERE predicate into a derived table (and each UNION ALL branch of it).

    Calcite: FILTER_PROJECT_TRANSPOSE, FILTER_SET_OP_TRANSPOSE, FILTER_AGGREGATE_TRANSPOSE.

    >>> import sqlglot
    >>> q = sqlglot.parse_one("SELECT d.k FROM (SELECT t.k AS k, 's' AS ty FROM t UNION ALL SELECT u.k AS k, 'w' AS ty FROM u) AS d WHERE d.ty = 's'")
    >>> filter_into_derived(q).sql()
    "SELECT d.k FROM (SELECT t.k AS k, 's' AS ty FROM t WHERE 's' = 's' UNION ALL SELECT u.k AS k, 'w' AS ty FROM u WHERE 'w' = 's') AS d WHERE d.ty = 's'"

    The predicate stays outside too (it is implied, so harmless).  A predicate on an
    aggregate output goes to HAVING; on a grouping output to WHERE (same groups survive).
    Hazards: branches with LIMIT, window functions or DISTINCT ON, volatile predicates, and
    SELECTs with outer joins (NULL-accepting predicates) are left alone; UNION ALL columns are
    matched by position, not by each branch's own aliases.
    """
    if not _filter_into_derived(expr, apply=False):  # look first: copying big trees is the cost
        return expr
    root = expr.copy()
    _filter_into_derived(root, apply=True)
    return root


def _filter_into_derived(root: exp.Expr, *, apply: bool) -> bool:
    found = False
    for sel in list(root.find_all(exp.Select)):
        if not inner_join_only(sel):
            # on the NULL-extended side of an outer join, a NULL-accepting predicate
            # (``d.x IS NULL``) pushed inside would turn dropped rows into NULL-extended ones
            continue
        terms = conjuncts(sel.args["where"].this) if sel.args.get("where") else []
        for j in sel.args.get("joins") or []:
            if not j.side and j.args.get("on") is not None:
                terms += conjuncts(j.args["on"])
        for item in from_items(sel):
            if not isinstance(item, exp.Subquery) or not item.alias:
                continue
            name = source_name(item)
            branches = _branches(item.this)
            if not branches:
                continue
            if any(b.args.get(k) for b in branches for k in ("limit", "offset", "qualify", "with_")) or \
                    any(b.find(exp.Window) for b in branches) or \
                    any(b.args.get("distinct") is not None and b.args["distinct"].args.get("on") for b in branches):
                continue  # DISTINCT ON keeps one row per key: filtering first changes which one
            maps = _output_maps(item, branches)
            if maps is None:
                continue
            for term in terms:
                if qualifiers(term) != {name} or term.find(exp.Subquery, exp.Select, exp.AggFunc, exp.Rand):
                    continue
                cols = list(term.find_all(exp.Column))
                if any(c.name.lower() not in m for m in maps for c in cols):
                    continue
                pushed = []
                for b, m in zip(branches, maps, strict=True):
                    t = term.copy()
                    for c in list(t.find_all(exp.Column)):
                        rep = m[c.name.lower()].copy()
                        c.replace(exp.Paren(this=rep) if not isinstance(rep, exp.Column | exp.Literal) else rep)
                    where_slot = "having" if t.find(exp.AggFunc) else "where"
                    if where_slot == "where" and t.find(exp.Window):
                        break
                    if where_slot == "having" and not (b.args.get("group") or b.find(exp.AggFunc)):
                        break
                    existing = conjuncts(b.args[where_slot].this) if b.args.get(where_slot) else []
                    if any(x.sql() == t.sql() for x in existing):
                        break
                    pushed.append((b, where_slot, existing, t))
                else:
                    if len(pushed) == len(branches):
                        if not apply:
                            return True
                        for b, slot, existing, t in pushed:  # every pushable predicate in one call
                            node_cls = exp.Having if slot == "having" else exp.Where
                            b.set(slot, node_cls(this=and_all([x.copy() for x in existing] + [t])))
                        found = True
    return found


def _is_false(e: exp.Expr) -> bool:
    while isinstance(e, exp.Paren):
        e = e.this
    if isinstance(e, exp.Boolean):
        return not e.this
    if isinstance(e, exp.EQ) and isinstance(e.this, exp.Literal) and isinstance(e.expression, exp.Literal):
        a, b = e.this, e.expression
        return a.is_string == b.is_string and a.is_string and a.this != b.this
    return False


def _has_false_term(b: exp.Select) -> bool:
    return any(_is_false(t) for t in conjuncts(b.args["where"].this))


def union_branch_prune(expr: exp.Expr, *, schema: Catalog | None = None,
                       dialect: str | None = None) -> exp.Expr:
    """Drop a UNION ALL branch whose WHERE has a term that is always FALSE (``'w' = 's'``).

    Calcite: PRUNE_EMPTY_UNION (PruneEmptyRules.UNION_INSTANCE), UNION_REMOVE.

    >>> import sqlglot
    >>> union_branch_prune(sqlglot.parse_one("SELECT a FROM t WHERE 1 = 1 UNION ALL SELECT a FROM u WHERE 'w' = 's'")).sql()
    'SELECT a FROM t WHERE 1 = 1'

    Hazard: an aggregate without GROUP BY returns one row even on no input, so such a
    branch is kept.
    """
    if not any(isinstance(b, exp.Select) and b.args.get("where") and _has_false_term(b)
               for u in expr.find_all(exp.Union) for b in (u.this, u.expression)):
        return expr  # pre-check: no branch with an always-FALSE term, skip the copy
    root = expr.copy()
    for u in list(root.find_all(exp.Union)):
        if u.args.get("distinct") or u.args.get("order") or u.args.get("limit"):
            continue
        for side, other in (("this", "expression"), ("expression", "this")):
            b = u.args.get(side)
            if not isinstance(b, exp.Select) or not b.args.get("where"):
                continue
            if not any(_is_false(t) for t in conjuncts(b.args["where"].this)):
                continue
            if b.find(exp.AggFunc) and not b.args.get("group"):
                continue
            keep: exp.Expr = u.args[other]
            if side == "this" and isinstance(keep, exp.Select):
                # the first branch names the columns: carry its aliases over
                names = [p.alias_or_name for p in b.expressions]
                if len(names) != len(keep.expressions):
                    continue
                keep = keep.copy()
                keep.set("expressions", [exp.alias_(p.unalias(), n) if n else p
                                         for p, n in zip(keep.expressions, names, strict=True)])
            elif side == "this":
                continue
            new = keep.copy() if keep is u.args.get(other) else keep
            if u is root:
                return new
            u.replace(new)
            return root
    return expr


def constant_fold(expr: exp.Expr, *, schema: Catalog | None = None,
                  dialect: str | None = None) -> exp.Expr:
    """Fold constants and simplify boolean logic (sqlglot's ``simplify``).

    Calcite: FILTER_REDUCE_EXPRESSIONS, PROJECT_REDUCE_EXPRESSIONS, JOIN_REDUCE_EXPRESSIONS.

    >>> import sqlglot
    >>> constant_fold(sqlglot.parse_one("SELECT a FROM t WHERE 1 = 1 AND a > 2 + 3")).sql()
    'SELECT a FROM t WHERE a > 5'
    """
    from sqlglot.optimizer.simplify import simplify

    if not any(_constant(n) for n in expr.find_all(exp.Binary, exp.Not)):
        return expr
    out = simplify(expr.copy(), dialect=dialect)
    return out if out.sql() != expr.sql() else expr


def _constant(n: exp.Expr) -> bool:
    """A comparison, arithmetic or boolean operation whose operands are all literals."""
    kids = [c for c in (n.args.get("this"), n.args.get("expression")) if c is not None]
    return bool(kids) and all(isinstance(c, exp.Literal | exp.Boolean | exp.Null) for c in kids)


def _mergeable_body(q: exp.Expr | None) -> bool:
    """False when sqlglot's ``merge_subqueries`` surely refuses to merge this derived table or
    CTE body: not a plain SELECT with a FROM, a clause it cannot merge (GROUP BY, DISTINCT,
    LIMIT...), or an aggregate or subquery in the projections (its own first checks)."""
    from sqlglot.optimizer.merge_subqueries import UNMERGABLE_ARGS

    while isinstance(q, exp.Paren | exp.Subquery):
        q = q.this
    if not isinstance(q, exp.Select) or q.args.get("from_") is None:
        return False
    if any(v for k, v in q.args.items() if k in UNMERGABLE_ARGS):
        return False
    return not any(s.find(exp.AggFunc, exp.Select) for s in q.selects)


def subquery_merge(expr: exp.Expr, *, schema: Catalog | None = None,
                   dialect: str | None = None) -> exp.Expr:
    """Merge simple derived tables and CTEs into the outer query (sqlglot's ``merge_subqueries``).

    Calcite: PROJECT_MERGE, FILTER_MERGE, AGGREGATE_PROJECT_MERGE.

    >>> import sqlglot
    >>> subquery_merge(sqlglot.parse_one("SELECT d.a AS a FROM (SELECT t.a AS a FROM t AS t WHERE t.b = 1) AS d")).sql()
    'SELECT t.a AS a FROM t AS t WHERE t.b = 1'

    sqlglot refuses merges that change semantics (aggregates, DISTINCT, windows, outer joins).
    """
    from sqlglot.optimizer.merge_subqueries import merge_subqueries

    if not any(_mergeable_body(n.this) for n in expr.find_all(exp.Subquery, exp.CTE)):
        return expr  # cheap pre-check: nothing sqlglot's _mergeable could accept, skip the copy
    try:
        out = merge_subqueries(expr.copy())
    except Exception:  # sqlglot raises assorted errors on shapes it cannot scope
        return expr
    ctes = {c.alias_or_name.lower() for c in out.find_all(exp.CTE)}
    if not qualifiers(out) <= defined_names(out) | ctes:
        return expr  # a reference left dangling by the merge: refuse rather than emit broken SQL
    return out if out.sql() != expr.sql() else expr


def union_to_distinct(expr: exp.Expr, *, schema: Catalog | None = None,
                      dialect: str | None = None) -> exp.Expr:
    """``A UNION B`` -> ``SELECT DISTINCT * FROM (A UNION ALL B)``.  Calcite: UNION_TO_DISTINCT.

    >>> import sqlglot
    >>> union_to_distinct(sqlglot.parse_one("SELECT a FROM t UNION SELECT a FROM u")).sql()
    'SELECT DISTINCT * FROM (SELECT a FROM t UNION ALL SELECT a FROM u) AS _u'

    Exact: UNION removes duplicates across and within branches, as DISTINCT does.  A UNION
    with its own ORDER BY or LIMIT is left alone.
    """
    root = expr.copy()
    for u in list(root.find_all(exp.Union)):
        if not u.args.get("distinct") or u.args.get("order") or u.args.get("limit") or u.args.get("with_"):
            continue
        if isinstance(u.parent, exp.Union):
            continue
        inner = exp.Union(this=u.this.copy(), expression=u.expression.copy(), distinct=False)
        new = exp.select("*").distinct().from_(exp.Subquery(this=inner, alias=exp.TableAlias(
            this=exp.to_identifier("_u"))))
        if u is root:
            return new
        u.replace(new)
        return root
    return expr


def sort_remove(expr: exp.Expr, *, schema: Catalog | None = None,
                dialect: str | None = None) -> exp.Expr:
    """Drop ORDER BY inside a subquery when no LIMIT/OFFSET depends on it.  Calcite: SORT_REMOVE.

    >>> import sqlglot
    >>> sort_remove(sqlglot.parse_one("SELECT d.a FROM (SELECT a FROM t ORDER BY a) AS d")).sql()
    'SELECT d.a FROM (SELECT a FROM t) AS d'

    Sound under bag semantics: a derived table, CTE or IN/EXISTS subquery has no order.
    """
    if not any(_removable_order(node, expr) for node in expr.find_all(exp.Order)):
        return expr  # pre-check on the input: nothing to drop, skip the copy
    root = expr.copy()
    for node in list(root.find_all(exp.Order)):
        if _removable_order(node, root):
            node.pop()
            return root
    return expr


def _removable_order(node: exp.Order, root: exp.Expr) -> bool:
    q = node.parent
    if not isinstance(q, exp.Select | exp.Union) or q is root:
        return False
    if q.args.get("limit") or q.args.get("offset") or q.args.get("fetch"):
        return False
    return isinstance(q.parent, exp.Subquery | exp.CTE | exp.Exists | exp.In)


def _key_columns(schema: Catalog | None, table: str) -> list[list[str]]:
    if schema is None:
        return []
    t = schema.table(table)
    if t is None:
        return []
    out = [[c.lower() for c in t.primary_key]] if t.primary_key else []
    for u in t.unique:  # UNIQUE admits several NULLs: only NOT NULL unique keys count
        if u and all((col := t.column(c)) is not None and not col.nullable for c in u):
            out.append([c.lower() for c in u])
    return out


def distinct_remove_under_keys(expr: exp.Expr, *, schema: Catalog | None = None,
                               dialect: str | None = None) -> exp.Expr:
    """Drop DISTINCT when the output keeps a key of every (inner-joined) base table.  Calcite: AGGREGATE_REMOVE.

    >>> import sqlglot
    >>> from sqlsluice.databases.catalog import Catalog
    >>> cat = Catalog.from_ddl("CREATE TABLE t (k INT PRIMARY KEY, a INT)")
    >>> distinct_remove_under_keys(sqlglot.parse_one("SELECT DISTINCT t.k, t.a FROM t AS t"), schema=cat).sql()
    'SELECT t.k, t.a FROM t AS t'

    Hazards: outer joins (NULL-extended rows) and derived tables are refused; UNIQUE keys
    count only when all their columns are NOT NULL.
    """
    root = expr.copy()
    for sel in list(root.find_all(exp.Select)):
        if not sel.args.get("distinct") or sel.args["distinct"].args.get("on") or sel.args.get("group"):
            continue
        if sel.find(exp.AggFunc) or any(j.side or (j.kind and j.kind.upper() not in ("INNER", "CROSS"))
                                        for j in sel.args.get("joins") or []):
            continue
        items = from_items(sel)
        if not items or not all(isinstance(i, exp.Table) for i in items):
            continue
        projected: dict[str, set[str]] = {}
        for p in sel.expressions:
            e = p.unalias()
            if isinstance(e, exp.Column) and e.table:
                projected.setdefault(e.table.lower(), set()).add(e.name.lower())
        ok = True
        for i in items:
            keys = _key_columns(schema, i.name)
            cols = projected.get(source_name(i), set())
            if not any(set(k) <= cols for k in keys):
                ok = False
                break
        if ok:
            sel.set("distinct", None)
            return root
    return expr


def left_join_remove_under_keys(expr: exp.Expr, *, schema: Catalog | None = None,
                                dialect: str | None = None) -> exp.Expr:
    """Drop ``LEFT JOIN t ON t.<key> = ...`` when nothing else uses ``t``.  Calcite: PROJECT_JOIN_REMOVE.

    >>> import sqlglot
    >>> from sqlsluice.databases.catalog import Catalog
    >>> cat = Catalog.from_ddl("CREATE TABLE d (k INT PRIMARY KEY, v INT)")
    >>> left_join_remove_under_keys(sqlglot.parse_one("SELECT f.a FROM f AS f LEFT JOIN d AS d ON d.k = f.dk"), schema=cat).sql()
    'SELECT f.a FROM f AS f'

    Sound because a LEFT JOIN on a full key of the right side neither drops nor duplicates
    left rows.  Needs a declared key; ``SELECT *`` and any other use of the table refuse.
    """
    if not any(j.side == "LEFT" and isinstance(j.this, exp.Table) for j in expr.find_all(exp.Join)):
        return expr  # pre-check: no LEFT JOIN of a table, skip the copy
    root = expr.copy()
    for sel in list(root.find_all(exp.Select)):
        joins = sel.args.get("joins") or []
        for j in joins:
            t = j.this
            if j.side != "LEFT" or not isinstance(t, exp.Table) or j.args.get("using"):
                continue
            name = source_name(t)
            on = j.args.get("on")
            if on is None:
                continue
            bound: set[str] = set()
            ok = True
            for term in conjuncts(on):
                if not isinstance(term, exp.EQ):
                    ok = False
                    break
                a, b = term.this, term.expression
                if isinstance(b, exp.Column) and b.table.lower() == name:
                    a, b = b, a
                if not (isinstance(a, exp.Column) and a.table.lower() == name and name not in qualifiers(b)):
                    ok = False
                    break
                bound.add(a.name.lower())
            if not ok or not any(set(k) <= bound for k in _key_columns(schema, t.name)):
                continue
            if any(isinstance(p, exp.Star) or (isinstance(p, exp.Column) and isinstance(p.this, exp.Star))
                   for p in sel.expressions):
                continue
            used_elsewhere = False
            for c in sel.find_all(exp.Column):
                if c.table.lower() == name and not is_inside(c, j):
                    used_elsewhere = True
                    break
            if used_elsewhere:
                continue
            sel.set("joins", [x for x in joins if x is not j])
            return root
    return expr


