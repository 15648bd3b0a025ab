"""Flatten select-project-join derived tables into their parent before the proof tiers.

Calcite (and so LLM-R2's pools) writes a join tree as derived tables nested many levels deep:
``SELECT * FROM (SELECT * FROM (SELECT * FROM a WHERE p) AS t, b WHERE q) AS u, c WHERE r``.
sqlglot's optimizer stops at such trees (``SELECT *`` over columns that two sources share, no
merging next to outer joins), so the canonical and SMT tiers saw different shapes for one query.

:func:`flatten_derived` merges a derived table ``(body) AS t`` into the SELECT that reads it when
the merge is an identity of bag semantics:

- the body is a plain SELECT-PROJECT-JOIN: no aggregate, GROUP BY, HAVING, DISTINCT, window,
  LIMIT/OFFSET, set operation, WITH, LATERAL, VALUES; its joins are inner or cross joins
  (an inner join is a filter on the cross product: its ON joins the parent's WHERE);
- ``t`` is the parent's FROM or one of its inner / cross joins, never the NULL-supplying side of an
  outer join (the body's filter would then drop rows that the outer join pads instead): not the
  right operand of a LEFT JOIN, not left of any later RIGHT or FULL JOIN, not a FULL JOIN operand; moving an inner join's ON to WHERE is exact whatever outer joins
  come before or after it (it reads only tables to its left and ``t``);
- every column is resolved first, from the catalog: a reference ``t.c`` is replaced by the body's
  expression for ``c`` (a ``*`` expanded source by source), the body's sources get fresh aliases
  (no capture by the parent's or an enclosing query's names), and nothing is merged when a name is
  ambiguous or unresolvable (two sources with ``c``, an unqualified name that an output alias or a
  nested subquery could also mean).

Anything else is left as it is: the flattening only ever makes two ways of writing one query look
alike, it never decides anything itself.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

from sqlglot import exp

from sqlsluice.databases import Catalog

_FRESH = itertools.count()


class _Skip(Exception):
    """This derived table is not merged."""


def flatten_derived(e: exp.Expression, catalog: Catalog) -> exp.Expression:
    """``e`` (a copy) with every mergeable derived table merged into its parent (see the module)."""
    e = e.copy()
    for sel in reversed([n for n in e.walk(bfs=False) if isinstance(n, exp.Select)]):
        for _ in range(64):
            if not _merge_one(sel, catalog):
                break
    return e


# -- sources and their columns ------------------------------------------------------------------

def _sources(sel: exp.Select) -> list[exp.Expression]:
    frm = sel.args.get("from_") or sel.args.get("from")
    out: list[exp.Expression] = [frm.this] if frm is not None else []
    out.extend(j.this for j in sel.args.get("joins") or [])
    return out


def _cte_names(node: exp.Expression) -> set[str]:
    """CTE names visible at ``node`` (defined by it or an enclosing query)."""
    names: set[str] = set()
    p: Any = node
    while p is not None:
        w = p.args.get("with_") or p.args.get("with") if isinstance(p, exp.Query) else None
        if isinstance(w, exp.With):
            names.update(c.alias_or_name.lower() for c in w.expressions)
        p = p.parent
    return names


def _columns(src: exp.Expression, catalog: Catalog) -> list[str]:
    """Output column names of a FROM source, in order (lower case); raises :class:`_Skip`."""
    if isinstance(src, exp.Table):
        if src.args.get("joins") or not isinstance(src.this, exp.Identifier) or src.args.get("db"):
            raise _Skip("table form")
        if src.name.lower() in _cte_names(src):
            raise _Skip("CTE reference")
        t = catalog.table(src.name)
        if t is None:
            raise _Skip("unknown table")
        alias = src.args.get("alias")
        if isinstance(alias, exp.TableAlias) and alias.columns:
            raise _Skip("column list")
        return [c.name.lower() for c in t.columns]
    if isinstance(src, exp.Subquery):
        alias = src.args.get("alias")
        if src.args.get("joins") or (isinstance(alias, exp.TableAlias) and alias.columns):
            raise _Skip("derived form")
        body = src.this
        if not isinstance(body, exp.Select):
            raise _Skip("set operation")
        return [name for name, _ in _outputs(body, catalog, fresh=None)]
    raise _Skip(f"source {type(src).__name__}")


def _outputs(body: exp.Select, catalog: Catalog, fresh: dict[str, str] | None) -> list[tuple[str, exp.Expression]]:
    """(name, expression) of each output column of ``body``, ``*`` expanded; expressions read the
    sources under their ``fresh`` aliases when given."""
    srcs = {s.alias_or_name: s for s in _sources(body)}
    out: list[tuple[str, exp.Expression]] = []

    def star(alias: str) -> None:
        for c in _columns(srcs[alias], catalog):
            out.append((c, exp.column(c, table=(fresh or {}).get(alias, alias))))

    for p in body.expressions:
        if isinstance(p, exp.Star):
            for a in srcs:
                star(a)
        elif isinstance(p, exp.Column) and isinstance(p.this, exp.Star):
            if p.table not in srcs:
                raise _Skip("t.* of an unknown source")
            star(p.table)
        else:
            name = p.alias_or_name
            if not name:
                raise _Skip("unnamed output")
            expr = p.this if isinstance(p, exp.Alias) else p
            out.append((name.lower(), _renamed(expr, fresh) if fresh else expr))
    return out


# -- scoped column references -------------------------------------------------------------------

def _defines(sel: exp.Expression, alias: str) -> bool:
    if not isinstance(sel, exp.Select):
        return False
    return any(s.alias_or_name == alias for s in _sources(sel)) or alias.lower() in {
        c.alias_or_name.lower() for w in [sel.args.get("with_") or sel.args.get("with")] if w is not None
        for c in w.expressions}


def _refs(root: exp.Expression, alias: str) -> list[exp.Column]:
    """Columns qualified by ``alias`` under ``root`` that mean ``root``'s source ``alias`` (not
    inside a nested query that defines its own ``alias``)."""
    out: list[exp.Column] = []
    stack: list[exp.Expression] = [root]
    while stack:
        n = stack.pop()
        if n is not root and _defines(n, alias):
            continue
        if isinstance(n, exp.Column) and n.table == alias:
            out.append(n)
        stack.extend(n.iter_expressions())
    return out


def _renamed(e: exp.Expression, fresh: dict[str, str]) -> exp.Expression:
    c = e.copy()
    for old, new in fresh.items():
        for col in _refs(c, old) if not isinstance(c, exp.Column) else ([c] if c.table == old else []):
            col.set("table", exp.to_identifier(new))
    return c


def _unqualified(root: exp.Expression, *, nested: bool) -> list[exp.Column]:
    """Unqualified columns of ``root``'s own scope (``nested``: those of nested queries)."""
    out: list[exp.Column] = []
    stack: list[tuple[exp.Expression, bool]] = [(root, False)]
    while stack:
        n, inside = stack.pop()
        if n is not root and isinstance(n, exp.Query):
            inside = True
        if isinstance(n, exp.Column) and not n.table and not isinstance(n.this, exp.Star) and inside == nested:
            out.append(n)
        stack.extend((k, inside) for k in n.iter_expressions())
    return out


# -- the merge --------------------------------------------------------------------------------------

def _mergeable_body(body: exp.Expression) -> bool:
    if not isinstance(body, exp.Select):
        return False
    for k in ("group", "having", "distinct", "limit", "offset", "fetch", "qualify", "windows", "laterals",
              "with_", "with", "pivots", "sample", "connect", "match", "prewhere", "into", "kind"):
        if body.args.get(k):
            return False
    if any(p.find(exp.AggFunc, exp.Window) for p in body.expressions):
        return False
    if any(p.find(exp.Select) for p in body.expressions):
        return False  # a scalar subquery would be copied into every reference
    if not _sources(body):
        return False
    for j in body.args.get("joins") or []:
        if (j.args.get("side") or j.args.get("using") or j.args.get("method")
                or (j.args.get("kind") or "").upper() not in ("", "INNER", "CROSS")):
            return False
    return all(isinstance(s, exp.Table | exp.Subquery) for s in _sources(body))


def _merge_one(sel: exp.Select, catalog: Catalog) -> bool:
    srcs = _sources(sel)
    joins = sel.args.get("joins") or []
    for pos, src in enumerate(srcs):
        if not isinstance(src, exp.Subquery) or not _mergeable_body(src.this):
            continue
        if any((j.args.get("side") or "").upper() in ("RIGHT", "FULL") or (j.args.get("kind") or "").upper() == "FULL"
               for j in joins[pos:]):
            continue  # a later RIGHT / FULL join pads everything to its left with NULLs
        if pos > 0:
            j = joins[pos - 1]
            if (j.args.get("side") or j.args.get("using") or j.args.get("method")
                    or (j.args.get("kind") or "").upper() not in ("", "INNER", "CROSS")):
                continue  # the NULL-supplying side of an outer join, or a USING/NATURAL join
        try:
            _merge(sel, pos, src, catalog)
        except _Skip:
            continue
        return True
    return False


def _merge(sel: exp.Select, pos: int, src: exp.Subquery, catalog: Catalog) -> None:
    body: exp.Select = src.this
    t = src.alias_or_name
    if not t or _refs_star(sel, t):
        raise _Skip("t.* in the parent")
    srcs = _sources(sel)
    cols_of = {s.alias_or_name: _columns(s, catalog) for s in srcs}
    if len(cols_of) != len(srcs):
        raise _Skip("duplicate alias in the parent")
    # the parent's unqualified columns: qualified now, or nothing is merged
    out_aliases = {p.alias.lower() for p in sel.expressions if isinstance(p, exp.Alias)}
    body_srcs = _sources(body)
    body_cols = {s.alias_or_name: _columns(s, catalog) for s in body_srcs}
    if len(body_cols) != len(body_srcs):
        raise _Skip("duplicate alias in the body")
    if any(isinstance(p, exp.Star) for p in sel.expressions) and not (
            len(body.expressions) == 1 and isinstance(body.expressions[0], exp.Star)):
        raise _Skip("the parent's * would expand to the body's sources")
    inner_names = {c for cs in body_cols.values() for c in cs}
    for c in _unqualified(sel, nested=True):
        if c.name.lower() in inner_names and not inside(c, src) and not _resolves_locally(c, catalog):
            raise _Skip("an unqualified name in a nested query could come to mean a merged column")
    for c in _unqualified(sel, nested=False):
        name = c.name.lower()
        if name in out_aliases:
            raise _Skip("an unqualified name that an output alias could mean")
        owners = [a for a, cs in cols_of.items() if name in cs]
        if len(owners) != 1:
            raise _Skip("unresolvable unqualified name")
        c.set("table", exp.to_identifier(owners[0]))
    # the body's unqualified columns, then fresh aliases for its sources
    for c in _unqualified(body, nested=False):
        owners = [a for a, cs in body_cols.items() if c.name.lower() in cs]
        if len(owners) != 1:
            raise _Skip("unresolvable unqualified name in the body")
        c.set("table", exp.to_identifier(owners[0]))
    if _unqualified(body, nested=True):
        raise _Skip("unqualified names in the body's subqueries")
    fresh = {a: f"{re.sub(r'__f[0-9]+$', '', a)}__f{next(_FRESH)}" for a in body_cols}
    outputs = _outputs(body, catalog, fresh)
    by_name: dict[str, list[exp.Expression]] = {}
    for name, expr in outputs:
        by_name.setdefault(name, []).append(expr)
    refs = _refs(sel, t)
    for r in refs:
        if inside(r, src):
            continue
        found = by_name.get(r.name.lower(), [])
        if len(found) != 1:
            raise _Skip("ambiguous or unknown column of the derived table")
    # commit: nothing below raises
    for r in refs:
        if not inside(r, src):
            new: Any = by_name[r.name.lower()][0].copy()
            if r.parent is sel and r.arg_key == "expressions" and new.alias_or_name != r.name:
                new = exp.alias_(new, r.name)  # an output keeps its name (a parent query reads it)
            r.replace(new)
    conds: list[exp.Expression] = []
    new_srcs: list[exp.Expression] = []
    for s in body_srcs:
        s2 = s.copy()
        s2.set("alias", exp.TableAlias(this=exp.to_identifier(fresh[s.alias_or_name])))
        new_srcs.append(s2)
    for j in body.args.get("joins") or []:
        if j.args.get("on") is not None:
            conds.append(_renamed(j.args["on"], fresh))
    if body.args.get("where") is not None:
        conds.append(_renamed(body.args["where"].this, fresh))
    joins = list(sel.args.get("joins") or [])
    key = "from_" if "from_" in sel.args or sel.args.get("from") is None else "from"
    if pos == 0:
        sel.set(key, exp.From(this=new_srcs[0]))
        added = [exp.Join(this=s, kind="CROSS") for s in new_srcs[1:]]
        joins = added + joins
    else:
        j = joins[pos - 1]
        if j.args.get("on") is not None:
            conds.append(j.args["on"].copy())
        joins = joins[:pos - 1] + [exp.Join(this=s, kind="CROSS") for s in new_srcs] + joins[pos:]
    sel.set("joins", joins or None)
    if conds:
        where = sel.args.get("where")
        parts: list[Any] = [exp.Paren(this=c) for c in conds]
        if where is not None:
            parts.insert(0, exp.Paren(this=where.this))
        sel.set("where", exp.Where(this=exp.and_(*parts)))


def _refs_star(sel: exp.Select, t: str) -> bool:
    return any(isinstance(c.this, exp.Star) for c in _refs(sel, t))


def inside(node: exp.Expression, ancestor: exp.Expression) -> bool:
    """``node`` lies strictly below ``ancestor`` (by object identity)."""
    p = node.parent
    while p is not None:
        if p is ancestor:
            return True
        p = p.parent
    return False


def _resolves_locally(c: exp.Column, catalog: Catalog) -> bool:
    """An unqualified column of a nested query that one of that query's own sources provides."""
    q = c.find_ancestor(exp.Select)
    if q is None:
        return False
    try:
        return any(c.name.lower() in _columns(s, catalog) for s in _sources(q))
    except _Skip:
        return False
