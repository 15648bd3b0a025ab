"""Filter, union, sort, distinct and join rules, plus sqlglot's optimizer passes under Calcite names."""

from __future__ import annotations

from sqlglot import exp

from sqlsluice.databases.catalog import Catalog
from sqlsluice.rewriters.rules._scope import ambiguous_ctes, base_table, binding, cte_names
from sqlsluice.rewriters.rules._util import (
    and_all,
    conjuncts,
    defined_names,
    from_items,
    inner_join_only,
    is_inside,
    qualifiers,
    source_name,
    sources,
)


def _branches(q: exp.Expr) -> list[exp.Select] | None:
    """The SELECT branches of a UNION ALL tree (or the SELECT itself); None otherwise."""
    if isinstance(q, exp.Select):
        return [q]
    if isinstance(q, exp.Union) and not q.args.get("distinct") and not q.args.get("order") \
            and not q.args.get("limit") and not q.args.get("offset") and not q.args.get("by_name") \
            and not q.args.get("with_"):
        # BY NAME matches the branches' columns by name, not by position: not handled
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
    matched by position, not by each branch's own aliases, and ``UNION ALL BY NAME`` is left
    alone.  HAVING only under a plain GROUP BY (an aggregate without GROUP BY yields a row on
    no input; ROLLUP / CUBE / GROUPING SETS add total rows); WHERE only into a plain GROUP BY
    or a SELECT without aggregates.  Under a union of several branches a column may only be
    compared as it is (a branch's own type is not the union's).
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
                if any(not c.table for c in cols) or any(c.name.lower() not in m for m in maps for c in cols):
                    continue  # an unqualified column may belong to another source
                if len(branches) > 1 and not _type_free(term, name):
                    continue  # a branch's own type may differ from the union's (1/2 is 0, 1.0/2 is 0.5)
                pushed = []
                for b, m in zip(branches, maps, strict=True):
                    t = term.copy()
                    for c in list(t.find_all(exp.Column)):
                        rep = m[c.name.lower()].copy()
                        c.replace(exp.Paren(this=rep) if not isinstance(rep, exp.Column | exp.Literal) else rep)
                    if t.find(exp.Window, exp.Subquery, exp.Select, exp.Rand, exp.Unnest, exp.Explode) \
                            or _volatile_call(t):
                        break  # evaluated per input row (or per group) it would mean something else
                    where_slot = "having" if t.find(exp.AggFunc) else "where"
                    if not _plain_group(b):
                        # HAVING without GROUP BY (one group even on no input) and ROLLUP / CUBE /
                        # GROUPING SETS (grouping columns NULL in the total rows) are left alone;
                        # WHERE only into a SELECT that does not aggregate at all
                        if where_slot == "having" or b.args.get("group") or b.args.get("having") \
                                or b.find(exp.AggFunc):
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


def _plain_group(b: exp.Select) -> bool:
    """A GROUP BY of plain expressions (no ROLLUP / CUBE / GROUPING SETS / GROUPING())."""
    group = b.args.get("group")
    if group is None or any(group.args.get(k) for k in ("rollup", "cube", "grouping_sets", "totals")):
        return False
    if any(isinstance(g, exp.Rollup | exp.Cube | exp.GroupingSets) for g in group.expressions):
        return False
    return not b.find(exp.Grouping)


def _volatile_call(e: exp.Expr) -> bool:
    for f in e.find_all(exp.Anonymous, exp.Func):
        name = (f.name if isinstance(f, exp.Anonymous) else f.sql_name()).lower()
        if name in ("random", "rand", "uuid", "gen_random_uuid", "nextval", "setseed", "clock_timestamp",
                    "generate_series", "unnest", "range"):
            return True
    return False


_CMP = (exp.EQ, exp.NEQ, exp.LT, exp.LTE, exp.GT, exp.GTE)


def _type_free(term: exp.Expr, name: str) -> bool:
    """Each column of ``name`` in ``term`` is a bare operand of a comparison or IS NULL.

    Then its value, not its type, decides the outcome: the union's coerced type and one
    branch's own type compare equal values alike (no arithmetic, no functions on them).
    """
    for c in term.find_all(exp.Column):
        p = c.parent
        while isinstance(p, exp.Paren):
            p = p.parent
        if not isinstance(p, (*_CMP, exp.Is, exp.In)):
            return False
        if isinstance(p, exp.In) and (p.this is not c or p.args.get("query") is not None):
            return False
        other = [x for x in (p.args.get("this"), p.args.get("expression")) if x is not None and x is not c]
        other += list(p.expressions) if isinstance(p, exp.In) else []
        for o in other:
            while isinstance(o, exp.Paren):
                o = o.this
            if not isinstance(o, exp.Literal | exp.Null | exp.Boolean) and not (
                    isinstance(o, exp.Column) and o.table.lower() == name):
                return False
    return True


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


def _empty_on_false_where(b: exp.Select) -> bool:
    """True when a SELECT whose WHERE is FALSE returns no rows.

    Not so for an aggregate without GROUP BY, a HAVING without GROUP BY (one group even
    on no input), nor ROLLUP / CUBE / GROUPING SETS (the grand total row is always there).
    """
    group = b.args.get("group")
    if group is not None:
        return not any(group.args.get(k) for k in ("rollup", "cube", "grouping_sets")) and \
            not any(isinstance(g, exp.Rollup | exp.Cube | exp.GroupingSets) for g in group.expressions)
    return not (b.args.get("having") or b.find(exp.AggFunc))


def _same_output_types(pruned: exp.Select, first: exp.Select, schema: Catalog | None,
                       dialect: str | None) -> bool:
    """Every column of ``pruned`` has the known type of ``first``'s column at that position.

    A UNION's column types are resolved over all its branches: dropping a branch of another
    type (``1`` against ``1.5``) would change the output type.  Decimal literals are refused
    (their precision and scale are part of the type and sqlglot calls them all DOUBLE).
    """
    from sqlglot.optimizer.annotate_types import annotate_types

    if len(pruned.expressions) != len(first.expressions):
        return False
    mapping: dict[str, object] | None = dict(schema.mapping()) if schema is not None else None
    try:
        a = annotate_types(pruned.copy(), schema=mapping, dialect=dialect)
        b = annotate_types(first.copy(), schema=mapping, dialect=dialect)
    except Exception:  # sqlglot cannot type an odd shape: nothing proved
        return False
    for x, y in zip(a.expressions, b.expressions, strict=True):
        if isinstance(x, exp.Star) or isinstance(y, exp.Star) or x.type is None or y.type is None:
            return False
        if x.is_type("unknown") or y.is_type("unknown") or x.type.sql() != y.type.sql():
            return False
        for e in (x.unalias(), y.unalias()):
            if isinstance(e, exp.Literal) and not e.is_string and not e.this.isdigit():
                return False
    return True


def union_branch_prune(expr: exp.Expr, *, schema: Catalog | None = None,
                       dialect: str | None = None) -> exp.Expr:
    """Drop a UNION ALL branch whose WHERE has a term that is always FALSE (``'w' = 's'``).

    Calcite: PRUNE_EMPTY_UNION (PruneEmptyRules.UNION_INSTANCE), UNION_REMOVE.

    >>> import sqlglot
    >>> union_branch_prune(sqlglot.parse_one("SELECT 'x' AS a FROM t WHERE 1 = 1 UNION ALL SELECT 'y' AS a FROM u WHERE 'w' = 's'")).sql()
    "SELECT 'x' AS a FROM t WHERE 1 = 1"

    Hazards: an aggregate without GROUP BY and a ROLLUP / CUBE / GROUPING SETS return a row
    even on no input, so such a branch is kept.  The first branch names the output columns
    and is never dropped; a later branch is dropped only when each of its columns provably
    has the type of the first branch's column (the union's type is resolved over all
    branches).  ``UNION ALL BY NAME`` (a branch may bring its own columns) is left alone.
    """
    if not any(isinstance(u.expression, exp.Select) and u.expression.args.get("where")
               and _has_false_term(u.expression) for u in expr.find_all(exp.Union)):
        return expr  # pre-check: no later branch with an always-FALSE term, skip the copy
    root = expr.copy()
    for u in list(root.find_all(exp.Union)):
        if u.args.get("distinct") or u.args.get("order") or u.args.get("limit") or u.args.get("offset") \
                or u.args.get("by_name") or u.args.get("with_"):
            continue
        b = u.expression  # never the first branch (u.this): it names the columns
        if not isinstance(b, exp.Select) or not b.args.get("where") or not _has_false_term(b):
            continue
        if not _empty_on_false_where(b):
            continue
        first: exp.Expr = u.this
        while isinstance(first, exp.Union | exp.Subquery | exp.Paren):
            first = first.this
        if not isinstance(first, exp.Select) or not _same_output_types(b, first, schema, dialect):
            continue
        keep = u.this.copy()
        if u is root:
            return keep
        u.replace(keep)
        return root
    return expr


_INT4 = 2147483647  # literals up to this are integer (int4) in PostgreSQL and DuckDB alike


def _const(e: exp.Expr) -> tuple[str, object] | None:
    """``("int", n)``, ``("str", s)`` or ``("bool", b)`` for a literal the folder may read, else None."""
    while isinstance(e, exp.Paren):
        e = e.this
    if isinstance(e, exp.Boolean):
        return "bool", bool(e.this)
    if isinstance(e, exp.Literal):
        if e.is_string:
            return "str", e.this
        if e.this.isdigit() and int(e.this) <= _INT4:
            return "int", int(e.this)
        return None  # decimal, float or bigint literal: the backend's arithmetic is not ours
    if isinstance(e, exp.Neg):
        inner = _const(e.this)
        if inner is not None and inner[0] == "int" and isinstance(inner[1], int):
            return "int", -inner[1]
    return None


def _int_node(v: int) -> exp.Expr:
    return exp.Literal.number(v) if v >= 0 else exp.Paren(this=exp.Neg(this=exp.Literal.number(-v)))


_INT_OPS = (exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Mod)
_CMP_OPS = (exp.EQ, exp.NEQ, exp.LT, exp.LTE, exp.GT, exp.GTE)


def _fold_node(e: exp.Expr, dialect: str | None) -> exp.Expr | None:
    """The folded replacement of ``e`` (whose children are folded already), or None."""
    if isinstance(e, exp.Not):
        c = _const(e.this)
        return exp.Boolean(this=not c[1]) if c is not None and c[0] == "bool" else None
    if isinstance(e, exp.And | exp.Or):
        a, b = _const(e.this), _const(e.expression)
        neutral, absorbing = (True, False) if isinstance(e, exp.And) else (False, True)
        # exact under three-valued logic: x AND FALSE = FALSE, x AND TRUE = x (NULL stays NULL)
        for c, other in ((a, e.expression), (b, e.this)):
            if c is not None and c[0] == "bool":
                return exp.Boolean(this=absorbing) if c[1] == absorbing else other
        return None
    if not isinstance(e, _INT_OPS + _CMP_OPS):
        return None
    a, b = _const(e.this), _const(e.expression)
    if a is None or b is None or a[0] != b[0]:
        return None
    x, y = a[1], b[1]
    if a[0] == "str":
        if isinstance(e, exp.EQ | exp.NEQ):  # equality of two text literals (deterministic collation)
            return exp.Boolean(this=(x == y) == isinstance(e, exp.EQ))
        return None  # ordering of text depends on the collation
    if a[0] != "int" or not isinstance(x, int) or not isinstance(y, int):
        return None
    if isinstance(e, _CMP_OPS):
        ops = {exp.EQ: x == y, exp.NEQ: x != y, exp.LT: x < y, exp.LTE: x <= y, exp.GT: x > y, exp.GTE: x >= y}
        return exp.Boolean(this=ops[type(e)])
    if isinstance(e, exp.Div | exp.Mod):
        # integer division truncates toward zero in PostgreSQL; DuckDB's ``/`` is a DOUBLE
        # division.  Never fold a division by zero (the backend raises).
        if y == 0 or (isinstance(e, exp.Div) and (dialect or "").lower() not in ("postgres", "postgresql")):
            return None
        q = abs(x) // abs(y) * (1 if (x >= 0) == (y >= 0) else -1)
        v = q if isinstance(e, exp.Div) else x - q * y
    elif isinstance(e, exp.Add):
        v = x + y
    elif isinstance(e, exp.Sub):
        v = x - y
    else:
        v = x * y
    if not -_INT4 <= v <= _INT4:
        return None  # the backend raises on integer overflow: keep the expression
    return _int_node(v)


_NO_FOLD_BELOW = (exp.Query, exp.Subquery, exp.Order, exp.Ordered, exp.Group, exp.Window, exp.Limit,
                  exp.Offset, exp.Fetch)


def _fold(e: exp.Expr, dialect: str | None) -> exp.Expr:
    """Fold ``e`` bottom-up in place; returns the (possibly new) node for ``e``."""
    for val in list(e.args.values()):
        for k in val if isinstance(val, list) else [val]:
            if isinstance(k, exp.Expr) and not isinstance(k, _NO_FOLD_BELOW):
                _fold(k, dialect)
    new = _fold_node(e, dialect)
    if new is None:
        return e
    new = new.copy() if new.parent is not None else new
    e.replace(new)
    return new


def _fold_regions(root: exp.Expr) -> list[exp.Expr]:
    """Where folding keeps names and types: WHERE, HAVING, JOIN ON and aliased projections
    of inner queries.

    An unaliased projection is named after its text (by DuckDB), the outermost query's
    projections are never folded (the client sees them; ``prepare`` may have aliased an
    unnamed one), and a folded integer in ORDER BY or GROUP BY would become a column position.
    """
    out: list[exp.Expr] = []
    top: set[int] = set()  # the SELECTs whose columns the client sees (branches of a top-level union)
    stack: list[exp.Expr] = [root]
    while stack:
        q = stack.pop()
        if isinstance(q, exp.SetOperation):
            stack += [q.this, q.expression]
        elif isinstance(q, exp.Subquery):
            stack.append(q.this)
        else:
            top.add(id(q))
    for node in root.find_all(exp.Where, exp.Having, exp.Join, exp.Select):
        if isinstance(node, exp.Where | exp.Having):
            out.append(node.this)
        elif isinstance(node, exp.Join):
            if node.args.get("on") is not None:
                out.append(node.args["on"])
        elif id(node) not in top:  # the outermost projections keep their text (and name) as written
            out.extend(p.this for p in node.expressions if isinstance(p, exp.Alias))
    return out


def constant_fold(expr: exp.Expr, *, schema: Catalog | None = None,
                  dialect: str | None = None) -> exp.Expr:
    """Fold integer constants and simplify boolean logic where the backend agrees exactly.

    Calcite: FILTER_REDUCE_EXPRESSIONS, PROJECT_REDUCE_EXPRESSIONS, JOIN_REDUCE_EXPRESSIONS.

    >>> import sqlglot
    >>> constant_fold(sqlglot.parse_one("SELECT a FROM t WHERE 1 = 1 AND a > 2 + 3")).sql()
    'SELECT a FROM t WHERE a > 5'

    Hazards: decimal, float and bigint arithmetic (NUMERIC is arbitrary precision in
    PostgreSQL), integer overflow and division by zero (the backend raises), ``/`` outside
    PostgreSQL (DuckDB divides integers as DOUBLE), text ordering (collations) and anything
    with NULL are left alone; boolean rules are only those exact under three-valued logic
    (``x AND FALSE`` is FALSE, ``x OR NOT x`` is not TRUE).  Unaliased projections, ORDER BY
    and GROUP BY are never folded (names, column positions); ``WHERE TRUE`` is dropped,
    ``HAVING TRUE`` kept (a HAVING makes a query an aggregate).
    """
    if not any(_constant(n) for n in expr.find_all(exp.Binary, exp.Not)):
        return expr
    root = expr.copy()
    for region in _fold_regions(root):
        _fold(region, dialect)
    for w in list(root.find_all(exp.Where)):
        c = _const(w.this)
        if c is not None and c == ("bool", True) and isinstance(w.parent, exp.Select) and w.arg_key == "where":
            w.pop()  # a SELECT's WHERE TRUE only (an aggregate's FILTER (WHERE TRUE) keeps its WHERE)
    return root if root.sql() != expr.sql() else expr


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


def _merge_hazard(expr: exp.Expr) -> bool:
    """True when merging derived tables or CTEs of ``expr`` could change its meaning."""
    if ambiguous_ctes(expr):
        return True
    for j in expr.find_all(exp.Join):
        if j.side in ("RIGHT", "FULL") or (j.kind or "").upper() in ("FULL", "OUTER") and j.side != "LEFT":
            return True
        if j.side == "LEFT" or (j.kind or "").upper() in ("SEMI", "ANTI"):
            # the NULL side: a merged computed column (``0 AS c``, ``COALESCE(x, 0)``) is not
            # NULL-extended as the derived table's column was
            for s in j.this.find_all(exp.Select):
                if any(not isinstance(p.unalias(), exp.Column | exp.Star) for p in s.expressions):
                    return True
            if isinstance(j.this, exp.Table) and binding(j.this) is not None:
                return True
    for g in expr.find_all(exp.Group, exp.Order):
        if isinstance(g, exp.Group) and (any(g.args.get(k) for k in ("rollup", "cube", "grouping_sets"))
                                         or g.find(exp.Rollup, exp.Cube, exp.GroupingSets)):
            return True
        owner = g.parent
        aliases = {p.alias.lower() for p in owner.expressions if isinstance(p, exp.Alias)} \
            if isinstance(owner, exp.Select) else set()
        for e in g.expressions:
            e = e.this if isinstance(e, exp.Ordered) else e
            if isinstance(g, exp.Order) and (isinstance(e, exp.Literal) or (
                    isinstance(e, exp.Column) and not e.table and e.name.lower() in aliases)):
                continue  # ORDER BY a position or an output name: the merge keeps the select list
            if isinstance(e, exp.Literal) or any(not c.table for c in e.find_all(exp.Column)):
                return True  # a GROUP BY name may bind to an input column or to a select alias
    for n in expr.find_all(exp.Subquery, exp.CTE):
        body = n.this
        if isinstance(body, exp.Select) and any(isinstance(p, exp.Star) or (
                isinstance(p, exp.Column) and isinstance(p.this, exp.Star)) for p in body.expressions):
            return True
        if isinstance(body, exp.Query) and body.args.get("order") is not None:
            return True  # an ordered body: its order is dropped or moved where a consumer reads it
    # a correlated reference whose name is defined twice: the merge might move a source of
    # that name into the subquery's scope, where it would capture the reference
    counts: dict[str, int] = {}
    for node in expr.find_all(exp.Table, exp.Subquery, exp.CTE):
        nm = node.alias_or_name.lower() if isinstance(node, exp.CTE) else source_name(node)
        if nm:
            counts[nm] = counts.get(nm, 0) + 1
    twice = {n for n, k in counts.items() if k > 1}
    if twice:
        for c in expr.find_all(exp.Column):
            q = c.table.lower() if c.table else ""
            if q in twice:
                sel = c.find_ancestor(exp.Select)
                if sel is None or q not in sources(sel):
                    return True
    return False


def subquery_merge(expr: exp.Expr, *, schema: Catalog | None = None,
                   dialect: str | None = None) -> exp.Expr:
    """Merge simple derived tables and CTEs into the outer query (sqlglot's ``merge_subqueries``).

    Calcite: PROJECT_MERGE, FILTER_MERGE, AGGREGATE_PROJECT_MERGE.

    >>> import sqlglot
    >>> subquery_merge(sqlglot.parse_one("SELECT d.a AS a FROM (SELECT t.a AS a FROM t AS t WHERE t.b = 1) AS d")).sql()
    'SELECT t.a AS a FROM t AS t WHERE t.b = 1'

    sqlglot refuses merges that change semantics (aggregates, DISTINCT, windows, outer joins).
    Hazards it misses, refused here (see :func:`_merge_hazard`): a computed column of a
    derived table on the NULL side of a LEFT JOIN (a constant would stay non-NULL), RIGHT
    and FULL joins (operands re-associated), ROLLUP / CUBE / GROUPING SETS (two grouping
    columns may become one expression), positional or unqualified GROUP BY / ORDER BY terms
    and starred or ordered bodies (rebinding to a select alias; an order that feeds a window,
    an ordered aggregate or DISTINCT ON would be lost), CTE names that do not resolve to
    their CTE everywhere, and a correlated reference to a name that is defined twice (a
    merged source of that name would capture it).
    """
    from sqlglot.optimizer.merge_subqueries import merge_subqueries

    if not any(_mergeable_body(n.this) for n in expr.find_all(exp.Subquery, exp.CTE)):
        return expr  # cheap pre-check: nothing sqlglot's _mergeable could accept, skip the copy
    if _merge_hazard(expr):
        return expr
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
    with its own ORDER BY or LIMIT, ``UNION BY NAME`` (not positional) and a first branch
    with unnamed, starred or repeated column names (``SELECT *`` would rename them) are left alone.
    """
    root = expr.copy()
    for u in list(root.find_all(exp.Union)):
        if not u.args.get("distinct") or u.args.get("order") or u.args.get("limit") or u.args.get("with_") \
                or u.args.get("offset") or u.args.get("by_name"):
            continue  # BY NAME matches columns by name: the UNION ALL below would be positional
        if isinstance(u.parent, exp.Union):
            continue
        first: exp.Expr = u.this
        while isinstance(first, exp.Union | exp.Subquery | exp.Paren):
            first = first.this
        names = [p.alias_or_name.lower() for p in first.expressions] if isinstance(first, exp.Select) else []
        if not names or any(isinstance(p, exp.Star) or not n for p, n in zip(first.expressions, names, strict=True)) \
                or len(set(names)) != len(names):
            continue  # ``SELECT *`` over duplicate or unnamed columns renames them (DuckDB: a_1)
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
    """Drop ORDER BY inside a subquery whose consumer ignores row order.  Calcite: SORT_REMOVE.

    >>> import sqlglot
    >>> sort_remove(sqlglot.parse_one("SELECT d.a FROM (SELECT a FROM t ORDER BY a) AS d ORDER BY d.a")).sql()
    'SELECT d.a FROM (SELECT a FROM t) AS d ORDER BY d.a'

    Sound under bag semantics where nothing reads the order: an IN or EXISTS subquery, or a
    derived table (or CTE) whose consumer sorts its own output or aggregates it without
    GROUP BY (one row).  Hazards:
    LIMIT / OFFSET / FETCH and DISTINCT ON (of the query itself or of a consumer), window
    functions and order-sensitive aggregates (array_agg, string_agg, list, first...) in a
    consumer, and a consumer that passes the order on to the client (the outermost query
    without its own ORDER BY) keep the ORDER BY.
    """
    if not any(_removable_order(node, expr) for node in expr.find_all(exp.Order)):
        return expr  # pre-check on the input: nothing to drop, skip the copy
    root = expr.copy()
    for node in list(root.find_all(exp.Order)):
        if _removable_order(node, root):
            node.pop()
            return root
    return expr


# Aggregates whose result depends on the order of their input rows.
_ORDERED_AGGS = ("array_agg", "arrayagg", "string_agg", "group_concat", "listagg", "list", "first", "last",
                 "first_value", "last_value", "any_value", "arbitrary", "json_agg", "jsonb_agg",
                 "json_group_array", "json_object_agg", "jsonb_object_agg", "xmlagg", "histogram",
                 "array_agg_distinct", "string_agg_distinct", "nth_value", "mode", "argmin", "argmax",
                 "arg_min", "arg_max", "min_by", "max_by")


def _order_sensitive(sel: exp.Expr) -> bool:
    """Does ``sel`` (one SELECT) read the order of its input rows?"""
    if not isinstance(sel, exp.Select):
        return True
    if any(sel.args.get(k) for k in ("limit", "offset", "fetch", "qualify", "windows")):
        return True
    d = sel.args.get("distinct")
    if d is not None and d.args.get("on"):
        return True
    for f in sel.find_all(exp.Window, exp.Func, exp.WithinGroup):
        if isinstance(f, exp.Window | exp.WithinGroup):
            return True
        assert isinstance(f, exp.Func)
        name = (f.name if isinstance(f, exp.Anonymous) else f.sql_name()).lower()
        if name in _ORDERED_AGGS or isinstance(f, exp.ArrayAgg | exp.GroupConcat | exp.First | exp.Last
                                               | exp.AnyValue):
            return True
    return False


def _order_free(q: exp.Expr, root: exp.Expr, depth: int = 0) -> bool:
    """True when nothing reads the row order of query ``q``'s output."""
    if depth > 16:
        return False
    p = q.parent
    if isinstance(p, exp.Exists):
        return True
    if isinstance(p, exp.In) and p.args.get("query") is q:
        return True
    if isinstance(p, exp.Subquery) and isinstance(p.parent, exp.In) and p.parent.args.get("query") is p:
        return True
    if isinstance(p, exp.Subquery) and isinstance(p.parent, exp.From | exp.Join):
        return _consumer_order_free(p.parent.parent, root, depth)
    if isinstance(p, exp.CTE):
        refs = [t for t in root.find_all(exp.Table) if binding(t) is p]
        if not refs or ambiguous_ctes(root):
            return False
        return all(isinstance(t.parent, exp.From | exp.Join) and _consumer_order_free(t.parent.parent, root, depth)
                   for t in refs)
    return False


def _consumer_order_free(sel: exp.Expr | None, root: exp.Expr, depth: int) -> bool:
    """A SELECT that reads a derived table: does its result ignore that table's row order?"""
    if not isinstance(sel, exp.Select) or _order_sensitive(sel):
        return False
    if sel.args.get("order") is not None:
        return True  # it sorts its own output (no LIMIT: checked above)
    if sel.args.get("group") is None and any(a.find_ancestor(exp.Select) is sel
                                             for p in sel.expressions for a in p.find_all(exp.AggFunc)):
        return True  # an aggregate without GROUP BY: one row, whatever the input order
    if sel is root:
        return False  # the client receives the rows in the order they come
    return _order_free(sel, root, depth + 1)


def _removable_order(node: exp.Order, root: exp.Expr) -> bool:
    q = node.parent
    if not isinstance(q, exp.Select | exp.Union) or q is root or q.args.get("order") is not node:
        return False
    if q.args.get("limit") or q.args.get("offset") or q.args.get("fetch"):
        return False
    d = q.args.get("distinct")  # a UNION's is a bool
    if isinstance(d, exp.Distinct) and d.args.get("on"):
        return False  # DISTINCT ON keeps the first row of each key in this order
    return _order_free(q, root)


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
    count only when all their columns are NOT NULL; a CTE named like a keyed table (or a
    table of another schema) is not that table.
    """
    root = expr.copy()
    ctes = cte_names(root)
    for sel in list(root.find_all(exp.Select)):
        if not sel.args.get("distinct") or sel.args["distinct"].args.get("on") or sel.args.get("group"):
            continue
        if sel.find(exp.AggFunc) or any(j.side or (j.kind and j.kind.upper() not in ("INNER", "CROSS"))
                                        for j in sel.args.get("joins") or []):
            continue
        items = from_items(sel)
        if not items or not all(base_table(i, ctes) for i in items):
            continue  # key facts hold for base tables only, not a CTE or view named like one
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
    left rows.  Needs a declared key; ``SELECT *``, any other use of the table, an
    unqualified column, LEFT SEMI / ANTI joins and a CTE named like the table refuse.
    """
    if not any(j.side == "LEFT" and isinstance(j.this, exp.Table) for j in expr.find_all(exp.Join)):
        return expr  # pre-check: no LEFT JOIN of a table, skip the copy
    root = expr.copy()
    ctes = cte_names(root)
    for sel in list(root.find_all(exp.Select)):
        joins = sel.args.get("joins") or []
        for j in joins:
            t = j.this
            if j.side != "LEFT" or (j.kind or "OUTER").upper() != "OUTER" or not base_table(t, ctes) \
                    or j.args.get("using") or j.args.get("method"):
                continue  # LEFT SEMI / ANTI / NATURAL joins filter; a CTE named like a table has no key
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
            outputs = {p.alias.lower() for p in sel.expressions if isinstance(p, exp.Alias)}
            for c in sel.find_all(exp.Column):
                if not c.table and isinstance(c.parent, exp.Ordered) and c.parent.parent is sel.args.get("order") \
                        and c.name.lower() in outputs:
                    continue  # ORDER BY an output name
                if (not c.table or c.table.lower() == name) and not is_inside(c, j):
                    # an unqualified column could be one of ``t``'s
                    used_elsewhere = True
                    break
            if used_elsewhere:
                continue
            sel.set("joins", [x for x in joins if x is not j])
            return root
    return expr


