"""Semi-join rules: a join with a duplicate-free derived table used only as a filter -> EXISTS.

Expects column references qualified with their source (``sqlglot``'s ``qualify`` does it;
:func:`sqlsluice.rewriters.rules.prepare` calls it).
"""

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
    outer_columns,
    qualifiers,
    selects,
    source_name,
)


def _unwrap(q: exp.Expr) -> exp.Expr:
    """A query without its redundant parentheses (an unaliased ``Subquery`` wrapper)."""
    while isinstance(q, exp.Subquery) and not q.alias:
        q = q.this
    return q


def _has_tail(q: exp.Expr) -> bool:
    """ORDER BY / LIMIT / OFFSET / FETCH / WITH on the query itself: keep it whole."""
    return any(q.args.get(k) for k in ("order", "limit", "offset", "fetch", "with_", "with"))


def _intersect_branches(q: exp.Expr) -> list[exp.Expr] | None:
    """The operands of a chain of ``INTERSECT`` (set, not ``ALL``), or None when ``q`` is not one."""
    q = _unwrap(q)
    if not isinstance(q, exp.Intersect) or not q.args.get("distinct") or _has_tail(q) or q.args.get("by_name"):
        return None
    out: list[exp.Expr] = []
    for side in (q.this, q.expression):
        sub = _intersect_branches(side)
        if sub is not None:
            out.extend(sub)
        else:
            s = _unwrap(side)
            if _has_tail(s) and not isinstance(s, exp.Select):
                return None
            out.append(s)
    return out


def _distinct_body(q: exp.Expr) -> bool:
    """True when ``q`` returns no duplicate rows: a set operation without ALL or SELECT DISTINCT."""
    q = _unwrap(q)
    if isinstance(q, exp.SetOperation):
        return bool(q.args.get("distinct")) and not _has_tail(q)
    if isinstance(q, exp.Select):
        d = q.args.get("distinct")
        return d is not None and not d.args.get("on") and not _has_tail(q)
    return False


def _output_names(item: exp.Subquery) -> list[str] | None:
    """The column names a derived table exposes, or None when a projection is a star or unnamed."""
    body = _unwrap(item.this)
    if not isinstance(body, exp.Query):
        return None
    cols = item.args["alias"].args.get("columns") if item.args.get("alias") else None
    if any(isinstance(p, exp.Star) or (isinstance(p, exp.Column) and isinstance(p.this, exp.Star))
           for p in _projections(body)):
        return None
    names = [c.name.lower() for c in cols] if cols else [n.lower() for n in body.named_selects]
    if not names or any(not n for n in names) or len(set(names)) != len(names):
        return None
    if len(names) != len(_projections(body)):
        return None
    return names


def _projections(q: exp.Expr) -> list[exp.Expr]:
    q = _unwrap(q)
    while isinstance(q, exp.SetOperation):
        q = _unwrap(q.this)
    return list(q.expressions) if isinstance(q, exp.Select) else []


def _column_type(branch: exp.Expr, proj: exp.Expr, schema: Catalog) -> str | None:
    """The declared type of a projection that is a plain column of a base table in ``branch``."""
    inner = proj.this if isinstance(proj, exp.Alias) else proj
    if not isinstance(inner, exp.Column) or not inner.table or not isinstance(branch, exp.Select):
        return None
    root = branch.root()
    ctes = {c.alias_or_name.lower() for c in root.find_all(exp.CTE)}
    for it in from_items(branch):
        if isinstance(it, exp.Table) and source_name(it) == inner.table.lower():
            if it.args.get("db") or it.name.lower() in ctes:
                return None  # a CTE named like a base table has its own column types
            t = schema.table(it.name)
            if t is None:
                return None
            col = t.column(inner.name)
            return col.type.upper() if col is not None else None
    return None


def _same_types(branches: list[exp.Expr], n: int, schema: Catalog | None) -> bool:
    """Every branch projects ``n`` plain base-table columns, position by position of one declared type.

    INTERSECT compares (and outputs) values coerced to a common type; comparing the outer
    value against each branch separately is the same only when no coercion happens.
    """
    if schema is None:
        return False
    types: list[list[str | None]] = []
    for b in branches:
        projs = b.expressions if isinstance(b, exp.Select) else []
        if len(projs) != n:
            return False
        types.append([_column_type(b, p, schema) for p in projs])
    return all(t is not None for row in types for t in row) and all(row == types[0] for row in types)


def _equalities(sel: exp.Select, alias: str, item: exp.Expr, extra: list[exp.Expr]
                ) -> tuple[list[tuple[str, exp.Expr, exp.Expr]], list[exp.Expr]] | None:
    """Split the WHERE (plus ``extra`` ON terms) into ``alias.col = outer_expr`` terms and the rest.

    None when the derived table ``alias`` is referenced anywhere else in ``sel`` (the select
    list, GROUP BY, another predicate, a nested subquery, a star), or when a column is unqualified.
    """
    where = sel.args.get("where")
    terms = conjuncts(where.this) if where is not None else []
    terms = terms + extra
    pairs: list[tuple[str, exp.Expr, exp.Expr]] = []
    rest: list[exp.Expr] = []
    for t in terms:
        if alias not in qualifiers(t):
            rest.append(t)
            continue
        if not isinstance(t, exp.EQ):
            return None
        for mine, other in ((t.this, t.expression), (t.expression, t.this)):
            if isinstance(mine, exp.Column) and mine.table.lower() == alias and alias not in qualifiers(other) \
                    and not other.find(exp.Query, exp.AggFunc, exp.Window, exp.Star):
                pairs.append((mine.name.lower(), other, t))
                break
        else:
            return None
    # every reference to the derived table must be one of the equalities found
    refs = 0
    for c in sel.find_all(exp.Column):
        if is_inside(c, item):
            continue
        if not c.table:
            return None  # unqualified: could be a column of the derived table
        if c.table.lower() == alias:
            refs += 1
    if refs != len(pairs):
        return None
    for p in sel.expressions:
        if isinstance(p, exp.Star) or (isinstance(p, exp.Column) and isinstance(p.this, exp.Star)):
            return None
    return pairs, rest


def _fresh(used: set[str], prefix: str) -> str:
    n = 1
    while f"{prefix}{n}" in used:
        n += 1
    used.add(f"{prefix}{n}")
    return f"{prefix}{n}"


def _semi(sel: exp.Select, root: exp.Expr, schema: Catalog | None, used: set[str]) -> bool:
    if not inner_join_only(sel) or sel.args.get("connect") or sel.args.get("laterals"):
        return False
    items = from_items(sel)
    if len(items) < 2:
        return False
    joins = list(sel.args.get("joins") or [])
    if any(j.args.get("method") or j.args.get("using") for j in joins):
        return False  # NATURAL / USING joins compare columns nobody names
    for item in items:
        if not isinstance(item, exp.Subquery) or not item.alias or item.args.get("pivots"):
            continue
        body = _unwrap(item.this)
        branches = _intersect_branches(body)
        if branches is None and not _distinct_body(body):
            continue
        if outer_columns(body):
            continue  # correlated (LATERAL-like): leave it
        names = _output_names(item)
        if names is None:
            continue
        if branches is not None and not _same_types(branches, len(names), schema):
            continue
        alias = item.alias.lower()
        join = item.parent if isinstance(item.parent, exp.Join) else None
        extra: list[exp.Expr] = []
        if join is not None:
            if join.args.get("using"):
                continue
            extra = conjuncts(join.args.get("on"))
        split = _equalities(sel, alias, item, extra)
        if split is None:
            continue
        pairs, rest = split
        if {n for n, _, _ in pairs} != set(names):
            continue  # a column left free: several rows could match, the join would duplicate
        # detach the derived table from the FROM list
        if join is not None:
            join.pop()
        else:
            nxt = joins[0]
            if nxt.args.get("using"):
                continue
            rest = rest + conjuncts(nxt.args.get("on"))
            sel.set("from_", exp.From(this=nxt.this.copy()))
            nxt.pop()
        if branches is None:
            q = body.copy()
            if isinstance(q, exp.Select):
                q.set("distinct", None)  # EXISTS ignores duplicates
            branches = [q]
        tests: list[exp.Expr] = []
        for b in branches:
            name = _fresh(used, "_semi")
            ta = exp.TableAlias(this=exp.to_identifier(name), columns=[exp.to_identifier(n) for n in names])
            cond = and_all([exp.EQ(this=exp.column(n, table=name), expression=other.copy())
                            for n, other, _ in pairs])
            sub = exp.select(exp.Literal.number(1)).from_(exp.Subquery(this=b.copy(), alias=ta)).where(cond)
            tests.append(exp.Exists(this=sub))
        new_where = and_all([t.copy() for t in rest] + tests)
        sel.set("where", exp.Where(this=new_where) if new_where is not None else None)
        return True
    return False


def distinct_join_to_semi_join(expr: exp.Expr, *, schema: Catalog | None = None,
                               dialect: str | None = None) -> exp.Expr:
    """Inner join with a duplicate-free derived table used only as a filter -> ``EXISTS``.

    Applies when the derived table's output has no duplicate rows (``INTERSECT``, ``UNION``,
    ``EXCEPT`` without ``ALL``, or ``SELECT DISTINCT``), every one of its columns is equated
    (``=``) to an expression of the other sources, and nothing else reads its columns.  Each
    outer row then matches at most one of its rows, so the join neither duplicates nor
    changes rows: it is a semi-join.  An ``INTERSECT`` becomes one ``EXISTS`` per branch (the
    tuple is in the intersection iff it is in every branch; ``=`` already rules out NULLs, so
    INTERSECT's NULL-equal matching plays no part), provided that every branch projects
    plain columns of one declared type per position (no coercion).  PostgreSQL estimates the
    per-branch semi-joins from column statistics instead of guessing one row for the join
    with the set operation (TPC-DS q14).  Calcite: ``JOIN_TO_SEMI_JOIN``.

    >>> import sqlglot
    >>> q = sqlglot.parse_one("SELECT t.a FROM t, (SELECT DISTINCT u.b FROM u) AS s WHERE t.a = s.b")
    >>> distinct_join_to_semi_join(q).sql()
    'SELECT t.a FROM t WHERE EXISTS(SELECT 1 FROM (SELECT u.b FROM u) AS _semi1(b) WHERE _semi1.b = t.a)'

    Hazards: LEFT/FULL joins, a column of the derived table in the select list or any other
    predicate, a column not equated (several matches per row), ``INTERSECT ALL``, branches
    of differing types, and correlated derived tables are left alone.
    """
    if not any(isinstance(s.parent, exp.From | exp.Join) and s.alias
               and (_intersect_branches(_unwrap(s.this)) is not None or _distinct_body(_unwrap(s.this)))
               for s in expr.find_all(exp.Subquery)):
        return expr  # pre-check: no duplicate-free derived table to turn into EXISTS, skip the copy
    root = expr.copy()
    used = defined_names(root) | qualifiers(root)
    changed = False
    for sel in selects(root):
        if _semi(sel, root, schema, used):
            changed = True
    return root if changed else expr


def _single_key(schema: Catalog, table: str, col: str) -> bool:
    """Is ``col`` alone a key of base table ``table`` (primary key, or NOT NULL unique)?"""
    t = schema.table(table)
    if t is None:
        return False
    keys = [list(t.primary_key)] if t.primary_key else []
    keys += [list(u) for u in t.unique
             if u and all((c := t.column(x)) is not None and not c.nullable for x in u)]
    return any(len(k) == 1 and k[0].lower() == col.lower() for k in keys)


def _unique_column(q: exp.Expr, col: str, schema: Catalog, ctes: dict[str, exp.Expr], depth: int = 0) -> bool:
    """True when output column ``col`` of query ``q`` holds no value twice.

    Proved for ``SELECT DISTINCT`` of that one column, ``GROUP BY`` that column alone, and a
    ``SELECT`` from a single source (filters only: WHERE never duplicates a row) that
    projects a one-column key of a base table, or a unique column of a CTE or derived table.
    """
    q = _unwrap(q)
    if depth > 8 or not isinstance(q, exp.Select) or q.args.get("joins") or q.args.get("laterals") \
            or q.args.get("with_"):
        return False
    proj = next((p for p in q.expressions if p.alias_or_name.lower() == col.lower()), None)
    if proj is None:
        return False
    inner = proj.this if isinstance(proj, exp.Alias) else proj
    d = q.args.get("distinct")
    if d is not None and not d.args.get("on") and len(q.expressions) == 1:
        return True
    group = q.args.get("group")
    if group is not None:
        keys = group.expressions
        return (len(keys) == 1 and not group.args.get("rollup") and not group.args.get("cube")
                and not group.args.get("grouping_sets") and keys[0] == inner)
    if q.args.get("having") or any(p.find(exp.AggFunc) for p in q.expressions):
        return False  # an aggregate without GROUP BY: one row, but keep the proof simple
    if not isinstance(inner, exp.Column) or not inner.table:
        return False
    items = from_items(q)
    if len(items) != 1 or source_name(items[0]) != inner.table.lower():
        return False
    src = items[0]
    if isinstance(src, exp.Table) and not src.args.get("db"):
        body = ctes.get(src.name.lower())
        if body is not None:
            return body is not _HIDDEN and _unique_column(body, inner.name, schema, ctes, depth + 1)
        return _single_key(schema, src.name, inner.name)
    if isinstance(src, exp.Subquery) and not (src.args["alias"].args.get("columns") if src.args.get("alias") else None):
        return _unique_column(src.this, inner.name, schema, ctes, depth + 1)
    return False


# Stands for a CTE name whose meaning at the IN is unclear (defined twice, out of scope,
# recursive or with a column list): no uniqueness is proved through it.
_HIDDEN = exp.Null()


def _cte_bodies(root: exp.Expr, at: exp.Expr) -> dict[str, exp.Expr]:
    """CTE bodies by name as seen from ``at``: only WITHs of its ancestors count.

    Every CTE name defined anywhere maps to ``_HIDDEN`` unless it is defined exactly once,
    in scope, not recursive and without a column list: a table of that name is then not
    mistaken for a base table (or for another CTE).
    """
    count: dict[str, int] = {}
    for w in root.find_all(exp.With):
        for c in w.expressions:
            n = c.alias_or_name.lower()
            count[n] = count.get(n, 0) + 1
    out: dict[str, exp.Expr] = {n: _HIDDEN for n in count}
    child: exp.Expr = at
    p: exp.Expr | None = at.parent
    while p is not None:
        scope = p.args.get("with_") if isinstance(p, exp.Query) else None
        visible: list[exp.CTE] = []
        if isinstance(scope, exp.With) and child is not scope and not scope.args.get("recursive"):
            visible = list(scope.expressions)  # in the WITH's main query: all of its CTEs
        elif isinstance(p, exp.With) and isinstance(child, exp.CTE) and not p.args.get("recursive"):
            # inside the body of CTE ``child``: only the CTEs before it (a later name, or its
            # own, is a base table there, which ``_HIDDEN`` keeps from being resolved)
            visible = list(p.expressions)[:p.expressions.index(child)]
        for c in visible:
            n = c.alias_or_name.lower()
            if count[n] == 1 and not (c.args.get("alias") and c.args["alias"].args.get("columns")):
                out[n] = c.this
        child, p = p, p.parent
    return out


def _in_candidate(term: exp.In) -> bool:
    q = term.args.get("query")
    if q is None:
        return False
    inner = _unwrap(q.this if isinstance(q, exp.Subquery) else q)
    return isinstance(inner, exp.Select) and len(inner.expressions) == 1


def in_to_join_under_keys(expr: exp.Expr, *, schema: Catalog | None = None,
                          dialect: str | None = None) -> exp.Expr:
    """``x IN (SELECT k FROM ...)`` as a WHERE conjunct -> an inner join, when ``k`` is unique.

    With no value twice in the subquery's column, each outer row matches at most once, so
    the semi-join is an inner join.  The planner then estimates it like any join (with the
    column statistics of both sides) instead of first de-duplicating the subquery with a
    guessed group count; on TPC-DS q14 (after :func:`distinct_join_to_semi_join`) this turns
    PostgreSQL's per-item index probes of the fact tables into hash joins.  Calcite: none
    (``SubQueryRemoveRule`` followed by ``AGGREGATE_REMOVE`` on the key).

    >>> import sqlglot
    >>> from sqlsluice.databases.catalog import Catalog
    >>> cat = Catalog.from_ddl("CREATE TABLE t (a INT); CREATE TABLE u (k INT PRIMARY KEY, z INT)", "duckdb")
    >>> q = sqlglot.parse_one("SELECT t.a FROM t WHERE t.a IN (SELECT u.k FROM u WHERE u.z > 0)")
    >>> in_to_join_under_keys(q, schema=cat).sql()
    'SELECT t.a FROM t, (SELECT u.k FROM u WHERE u.z > 0) AS _in1(k) WHERE t.a = _in1.k'

    Uniqueness is proved from a one-column key of a base table (through CTEs and derived
    tables that only filter), ``SELECT DISTINCT`` or ``GROUP BY`` of the column.  Hazards:
    ``NOT IN``, IN under OR/NOT/CASE, row-valued IN, correlated subqueries, outer joins
    in the outer query and a CTE name defined twice are left alone.
    """
    if schema is None or not any(_in_candidate(i) for i in expr.find_all(exp.In)):
        return expr  # pre-check: no IN over a one-column SELECT, skip the copy
    root = expr.copy()
    used = defined_names(root) | qualifiers(root)
    for sel in selects(root):
        where = sel.args.get("where")
        if where is None or sel.args.get("from_") is None or not inner_join_only(sel):
            continue
        for term in conjuncts(where.this):
            q = term.args.get("query") if isinstance(term, exp.In) else None
            if q is None or isinstance(term.this, exp.Tuple) or term.this.find(exp.Query):
                continue
            inner = _unwrap(q.this if isinstance(q, exp.Subquery) else q)
            if not isinstance(inner, exp.Select) or len(inner.expressions) != 1 or inner.args.get("with_") \
                    or inner.args.get("with") or outer_columns(inner):
                continue
            if isinstance(inner.expressions[0], exp.Star) or not inner.expressions[0].alias_or_name:
                continue
            if not _unique_column(inner, inner.expressions[0].alias_or_name, schema, _cte_bodies(root, term)):
                continue
            name = _fresh(used, "_in")
            ta = exp.TableAlias(this=exp.to_identifier(name), columns=[exp.to_identifier("k")])
            sel.append("joins", exp.Join(this=exp.Subquery(this=inner.copy(), alias=ta)))
            term.replace(exp.EQ(this=term.this.copy(), expression=exp.column("k", table=name)))
            return root  # one application per call; the search applies it again
    return expr
