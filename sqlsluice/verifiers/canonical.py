"""Tier 1: canonical form.  Two queries with the same canonical text are equivalent.

sqlglot's optimizer (qualify, push projections and predicates, merge subqueries, normalize,
simplify, canonicalize) followed by our own normalisations: inner-join operands in a fixed
order with their ON conditions folded into one sorted conjunct set, commutative operands
sorted, table aliases renamed in order of appearance.  Every step preserves bag semantics;
``unnest_subqueries`` is left out on purpose (decorrelation is where NULL and duplicate
hazards live).
"""

from __future__ import annotations

from typing import Any, cast

from sqlglot import exp
from sqlglot.optimizer import RULES, optimize
from sqlglot.optimizer.normalize import normalize
from sqlglot.optimizer.simplify import simplify

from sqlsluice.databases import Catalog

_SKIP = {"unnest_subqueries"}
CANON_RULES = tuple(r for r in RULES if getattr(r, "__name__", "") not in _SKIP)
# sqlglot's merge_subqueries moves a derived table's projections out of the NULL-padded side of an
# outer join (``LEFT JOIN (SELECT k, TRUE AS i ...) t`` -> ``TRUE``), which is wrong for unmatched
# rows: queries with outer joins and derived tables / CTEs are optimized without it.
SAFE_RULES = tuple(r for r in CANON_RULES if getattr(r, "__name__", "") != "merge_subqueries")


def outer_join_hazard(*qs: exp.Expression) -> bool:
    """Any of the queries has an outer join and a derived table or CTE."""
    for q in qs:
        outer = any((j.args.get("side") or "").upper() in ("LEFT", "RIGHT", "FULL")
                    or (j.args.get("kind") or "").upper() == "FULL" for j in q.find_all(exp.Join))
        if outer and (q.find(exp.CTE) is not None
                      or any(isinstance(s.parent, exp.From | exp.Join) for s in q.find_all(exp.Subquery))):
            return True
    return False

_COMMUTATIVE = (exp.EQ, exp.NEQ, exp.NullSafeEQ, exp.NullSafeNEQ, exp.Add, exp.Mul)


class CanonicalError(Exception):
    """The optimizer could not process a query (the tier then does not decide)."""


def optimized(q: exp.Expression, catalog: Catalog, dialect: str, *, safe: bool = False) -> exp.Expression:
    """sqlglot's optimizer with our rule list (``safe``: without merge_subqueries, see
    :func:`outer_join_hazard`); raises :class:`CanonicalError` on failure."""
    rules = SAFE_RULES if safe or outer_join_hazard(q) else CANON_RULES
    key = (id(catalog), dialect, rules is SAFE_RULES, q.sql(dialect))
    hit = _OPTIMIZED.get(key)
    if hit is not None and hit[0] is catalog:  # the catalog is held: its id is not reused
        if isinstance(hit[1], CanonicalError):
            raise CanonicalError(str(hit[1]))
        return hit[1].copy()
    try:
        from sqlsluice.verifiers.flatten import flatten_derived  # Calcite's nested SELECT * join trees

        flat = flatten_derived(q, catalog)
        if outer_join_hazard(flat) != outer_join_hazard(q) and not safe:  # derived tables merged away
            rules = SAFE_RULES if outer_join_hazard(flat) else CANON_RULES
        out: exp.Expression | CanonicalError = cast(
            exp.Expression, optimize(flat, schema=_schema(catalog), dialect=dialect, rules=rules))
    except Exception as e:  # sqlglot raises many kinds (OptimizeError, KeyError, ...)
        out = CanonicalError(f"{type(e).__name__}: {str(e)[:200]}")
    if len(_OPTIMIZED) >= 128:
        _OPTIMIZED.pop(next(iter(_OPTIMIZED)))
    _OPTIMIZED[key] = (catalog, out)
    if isinstance(out, CanonicalError):
        raise CanonicalError(str(out))
    return out.copy()


# optimized queries: the tiers (canonical form, SMT, regions) optimize the same query more than once
_OPTIMIZED: dict[tuple[int, str, bool, str], tuple[Catalog, Any]] = {}


def _schema(catalog: Catalog) -> dict[str, Any]:
    return {t.name: {c.name: c.type for c in t.columns} for t in catalog.tables}


def canonical_sql(q: exp.Expression, catalog: Catalog, dialect: str, *, safe: bool = False) -> str:
    e = optimized(q, catalog, dialect, safe=safe)
    # every SELECT, children first (sqlglot's transform does not descend into a node it replaced,
    # so only the outermost SELECT with joins was folded: a CTE's or derived table's joins kept
    # their written order)
    e = _post_order(e, _fold_inner_joins)
    e = _rename_derived_columns(e)
    e = _rename_aliases(e)
    e = _post_order(e, _in_to_or)
    e = _post_order(e, _sort_commutative)
    e = _strip_output_names(_order_by_position(e))
    return e.sql("duckdb", normalize=True)


def _post_order(e: exp.Expression, fn: object) -> exp.Expression:
    """Apply ``fn`` to every node, children before parents (sqlglot's transform is pre-order)."""
    root = e.copy()
    for node in reversed(list(root.walk(bfs=False))):
        new = fn(node)  # type: ignore[operator]
        if new is not node:
            if node is root:
                root = new
            else:
                node.replace(new)
    return root


def _in_to_or(node: exp.Expression) -> exp.Expression:
    """``x IN (a, b)`` -> ``x = a OR x = b`` for a list of literals (Calcite writes the OR).

    The same in three-valued logic: IN is defined as the disjunction of the equalities, so a
    NULL ``x`` (or no match with a NULL in the list) gives NULL on both sides.  ``NOT IN`` is the
    negation of it, so it follows.  Lists of two to 32 literals only (no subquery, no columns), and
    ``x`` a column (IN reads ``x`` once, the OR once per literal: the same only for a column).  A
    literal listed twice gives one equality (``p OR p`` is ``p`` in three-valued logic too).

    >>> _in_to_or(exp.condition("x IN (1, 2)")).sql()
    '(x = 1 OR x = 2)'
    """
    if (not isinstance(node, exp.In) or node.args.get("query") is not None or node.args.get("unnest")
            or node.args.get("field") is not None or not 2 <= len(node.expressions) <= 32
            or not all(isinstance(v, exp.Literal) for v in node.expressions) or not isinstance(node.this, exp.Column)):
        return node
    values = list({v.sql(): v for v in node.expressions}.values())
    # in parentheses: the text is compared, and ``NOT x IN (..)`` must not read ``NOT x = a OR x = b``
    return exp.Paren(this=exp.or_(*[exp.EQ(this=node.this.copy(), expression=v.copy()) for v in values]))


def _order_by_position(e: exp.Expression) -> exp.Expression:
    """``SELECT x AS a .. ORDER BY a`` -> ``.. ORDER BY 1``: a sort key that names an output column
    (an unqualified name equal to one output alias, which both DuckDB and PostgreSQL resolve to that
    output column before any input column) is that column's position, so that output names can be
    dropped.  Returns the query unchanged unless every key is such a name."""
    order = e.args.get("order") if isinstance(e, exp.Select) else None
    if not isinstance(order, exp.Order):
        return e
    names = [p.alias_or_name for p in e.expressions]
    new_keys = []
    for o in order.expressions:
        key = o.this if isinstance(o, exp.Ordered) else None
        if not (isinstance(key, exp.Column) and not key.table and names.count(key.name) == 1
                and isinstance(e.expressions[names.index(key.name)], exp.Alias)):
            return e
        new = o.copy()
        new.set("this", exp.Literal.number(names.index(key.name) + 1))
        new_keys.append(new)
    out = e.copy()
    out.set("order", exp.Order(expressions=new_keys))
    out.meta["positional_order"] = True
    return out


def _strip_output_names(e: exp.Expression) -> exp.Expression:
    """Output column names do not matter for bag equality of rows (nor for a list sorted by
    output positions)."""
    if isinstance(e, exp.Select) and (not e.args.get("order") or e.meta.get("positional_order")):
        e = e.copy()
        e.set("expressions", [p.this if isinstance(p, exp.Alias) else p for p in e.expressions])
    return e


def _sort_commutative(node: exp.Expression) -> exp.Expression:
    if (isinstance(node, exp.Group) and not any(node.args.get(k) for k in ("rollup", "cube", "grouping_sets", "totals"))
            and len(node.expressions) > 1):
        # GROUP BY a, b and GROUP BY b, a form the same groups (a plain list is a set of keys;
        # ROLLUP / CUBE / GROUPING SETS keep their order)
        new = node.copy()
        new.set("expressions", sorted((x.copy() for x in node.expressions), key=lambda x: x.sql()))
        return new
    if isinstance(node, _COMMUTATIVE):
        a, b = node.this, node.expression
        if a.sql() > b.sql():
            return type(node)(this=b, expression=a)
    if isinstance(node, exp.And | exp.Or):
        parts = list(node.flatten())
        if len(parts) > 1:
            parts.sort(key=lambda x: x.sql())
            out: Any = parts[0]
            for p in parts[1:]:
                out = type(node)(this=out, expression=p)
            return out
    return node


def _fold_inner_joins(node: exp.Expression) -> exp.Expression:
    """``FROM a JOIN b ON p WHERE w`` -> ``FROM a, b WHERE p AND w`` with sources sorted, when
    every join of the SELECT is an inner or cross join (outer joins keep their order)."""
    if not isinstance(node, exp.Select):
        return node
    joins = node.args.get("joins") or []
    frm = node.args.get("from_") or node.args.get("from")
    if not joins or frm is None:
        return node
    conds = []
    sources = [frm.this]
    for j in joins:
        kind = (j.args.get("kind") or "").upper()
        side = (j.args.get("side") or "").upper()
        if side or kind not in ("", "INNER", "CROSS") or j.args.get("using") or j.args.get("method"):
            return node
        if j.args.get("on") is not None:
            conds.append(j.args["on"])
        sources.append(j.this)
    if any(isinstance(s, exp.Lateral | exp.Unnest) for s in sources):
        return node
    sources.sort(key=lambda s: _source_key(s))
    where = node.args.get("where")
    if where is not None:
        conds.append(where.this)
    new = node.copy()
    new.set("joins", [exp.Join(this=s.copy()) for s in sources[1:]])
    new.set("from_" if "from_" in node.args else "from", exp.From(this=sources[0].copy()))
    if conds:
        new.set("where", exp.Where(this=simplify(normalize(exp.and_(*[c.copy() for c in conds])))))
    return new


def _source_key(s: exp.Expression) -> str:
    if isinstance(s, exp.Table):
        body = _cte_body(s)
        if body is not None:  # a CTE is known by what it computes, not by its name (renamed later)
            return "s:" + body.sql()
        return "t:" + s.name.lower()
    body = s.this if isinstance(s, exp.Subquery) else s
    return "s:" + body.sql()


def _cte_body(t: exp.Table) -> exp.Expression | None:
    """The body of the CTE of an enclosing WITH that ``t`` names (None: a base table)."""
    if t.args.get("db"):
        return None
    p = t.parent
    while p is not None:
        w = p.args.get("with_") or p.args.get("with") if isinstance(p, exp.Query) else None
        if isinstance(w, exp.With):
            for c in w.expressions:
                if c.alias_or_name == t.name:
                    return c.this
        p = p.parent
    return None


def _rename_aliases(e: exp.Expression) -> exp.Expression:
    """Rename table aliases to ``_t0, _t1 ...`` in order of appearance (columns follow)."""
    mapping: dict[str, str] = {}
    for node in e.find_all(exp.TableAlias):
        name = node.name
        if name and name not in mapping:
            mapping[name] = f"_t{len(mapping)}"
    for t in e.find_all(exp.Table):  # an alias the optimizer left as a bare identifier
        a = t.args.get("alias")
        if isinstance(a, exp.Identifier) and a.name and a.name not in mapping:
            mapping[a.name] = f"_t{len(mapping)}"
    ctes: set[str] = set()
    for cte in e.find_all(exp.CTE):
        name = cte.alias_or_name
        ctes.add(name)
        if name and name not in mapping:
            mapping[name] = f"_t{len(mapping)}"

    def ren(n: exp.Expression) -> exp.Expression:
        if isinstance(n, exp.TableAlias) and n.name in mapping:
            n = n.copy()
            n.set("this", exp.to_identifier(mapping[n.name]))
            return n
        if isinstance(n, exp.Column) and n.table in mapping:
            n = n.copy()
            n.set("table", exp.to_identifier(mapping[n.table]))
            return n
        # a reference to a CTE is renamed with it, aliased or not (``FROM cte AS x``: the CTE's
        # own name must not survive, or one query written with two CTE names differs)
        if (isinstance(n, exp.Table) and n.name in mapping and not n.args.get("db")
                and (not n.args.get("alias") or id(n) in cte_refs)):
            n = n.copy()
            n.set("this", exp.to_identifier(mapping[n.name]))
            alias = n.args.get("alias")  # not visited once the table is replaced
            if isinstance(alias, exp.TableAlias) and alias.name in mapping:
                alias.set("this", exp.to_identifier(mapping[alias.name]))
            elif isinstance(alias, exp.Identifier) and alias.name in mapping:
                n.set("alias", exp.to_identifier(mapping[alias.name]))
            return n
        if isinstance(n, exp.Table) and isinstance(n.args.get("alias"), exp.Identifier) and n.alias in mapping:
            n = n.copy()
            n.set("alias", exp.to_identifier(mapping[n.alias]))
            return n
        return n

    e = e.copy()
    cte_refs = {id(t) for t in e.find_all(exp.Table) if t.name in ctes and _cte_in_scope(t)}
    return e.transform(ren, copy=False)


def _cte_in_scope(t: exp.Table) -> bool:
    """``t`` names a CTE of an enclosing WITH (not a base table that a CTE elsewhere shadows)."""
    p = t.parent
    while p is not None:
        w = p.args.get("with_") or p.args.get("with") if isinstance(p, exp.Query) else None
        if isinstance(w, exp.With) and any(c.alias_or_name == t.name for c in w.expressions):
            return True
        p = p.parent
    return False


def _rename_derived_columns(e: exp.Expression) -> exp.Expression:
    """Name the columns of derived tables and CTEs by position (``_c0, _c1 ..``), so that one
    query whose inner columns are named two ways has one form.  Only where it is unambiguous:
    the body is a plain SELECT with no column list on the alias, and every alias through which
    the columns are read names exactly one source in the whole query (columns are qualified)."""
    e = e.copy()
    source_aliases: dict[str, int] = {}
    for t in e.find_all(exp.Table, exp.Subquery):
        if isinstance(t, exp.Subquery) and not isinstance(t.parent, exp.From | exp.Join):
            continue
        a = t.alias_or_name
        source_aliases[a] = source_aliases.get(a, 0) + 1
    # an unqualified column (an output alias read by ORDER BY, a USING column) could resolve to a
    # renamed name: then nothing is renamed
    if any(c.name.startswith("_c") or not c.table for c in e.find_all(exp.Column)):
        return e
    renames: dict[str, dict[str, str]] = {}  # source alias -> old column name -> new

    def names_of(body: exp.Expression) -> dict[str, str] | None:
        if not isinstance(body, exp.Select) or any(isinstance(p, exp.Star) for p in body.expressions):
            return None
        olds = [p.alias_or_name for p in body.expressions]
        if any(not n for n in olds) or len(set(olds)) != len(olds):
            return None
        return {n: f"_c{i}" for i, n in enumerate(olds)}

    bodies: list[tuple[exp.Expression, list[str]]] = []
    for sq in list(e.find_all(exp.Subquery)):
        al = sq.args.get("alias")
        if not isinstance(sq.parent, exp.From | exp.Join) or al is None or al.columns:
            continue
        m = names_of(sq.this)
        if m is None or source_aliases.get(sq.alias, 0) != 1:
            continue
        renames[sq.alias] = m
        bodies.append((sq.this, list(m)))
    for cte in list(e.find_all(exp.CTE)):
        al = cte.args.get("alias")
        if al is None or al.columns:
            continue
        m = names_of(cte.this)
        if m is None:
            continue
        refs = [t for t in e.find_all(exp.Table) if t.name == cte.alias_or_name and not t.args.get("db")]
        if not refs or any(source_aliases.get(t.alias_or_name, 0) != 1 or t.alias_or_name in renames for t in refs):
            continue
        if any(cte.alias_or_name == t.alias_or_name for t in e.find_all(exp.Table) if t not in refs):
            continue
        for t in refs:
            renames[t.alias_or_name] = m
        bodies.append((cte.this, list(m)))
    if not renames:
        return e
    for body, olds in bodies:
        for p, old in zip(list(body.expressions), olds, strict=True):
            new = exp.alias_(p.this.copy() if isinstance(p, exp.Alias) else p.copy(), f"_c{olds.index(old)}")
            p.replace(new)
    for col in list(e.find_all(exp.Column)):
        m = renames.get(col.table)
        if m is not None and col.name in m:
            col.set("this", exp.to_identifier(m[col.name]))
    return e
