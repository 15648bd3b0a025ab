"""Does a query's top-level ORDER BY fix the order of its result rows?  (conservative)

A query has a *total order* when its top-level ORDER BY, after qualification, leaves no two
different result rows tied:

- the ORDER BY keys include every output column; or
- with GROUP BY (plain expressions, no ROLLUP/CUBE/GROUPING SETS): the keys include every
  GROUP BY expression (one row per group); or
- without GROUP BY/DISTINCT: every FROM item is a base table, joined by inner/cross joins only,
  and the keys include a full primary key (or a UNIQUE key on NOT NULL columns) of every table
  instance.

Anything else (set operations, derived tables, outer joins, LIMIT/OFFSET, window functions,
DISTINCT ON, a query sqlglot cannot qualify) is *not* total: when in doubt, bag comparison.
When both queries have a total order their results are compared as lists
(see :func:`sqlsluice.verifiers.api.verify`).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp
from sqlglot.optimizer.qualify import qualify

from sqlsluice.databases import Catalog

# (output position, descending, nulls first) per ORDER BY key
OrderSignature = tuple[tuple[int, bool, bool], ...]


@dataclass(frozen=True)
class OrderInfo:
    total: bool
    # every key as an output position; None when some key is not an output column
    signature: OrderSignature | None = None
    why: str = ""


def order_info(q: exp.Expression, catalog: Catalog, dialect: str) -> OrderInfo:
    """Whether ``q``'s top-level ORDER BY is a total order, and its keys as output positions."""
    if not isinstance(q, exp.Select) or q.args.get("order") is None:
        return OrderInfo(False, why="no top-level ORDER BY on a SELECT")
    if q.args.get("limit") or q.args.get("offset") or q.args.get("fetch") or q.find(exp.Window) is not None:
        return OrderInfo(False, why="LIMIT/OFFSET or window function (order-dependent, bag handling)")
    if isinstance(q.args.get("distinct"), exp.Distinct) and q.args["distinct"].args.get("on") is not None:
        return OrderInfo(False, why="DISTINCT ON")
    schema: dict[str, object] = {t.name: {c.name: c.type for c in t.columns} for t in catalog.tables}
    try:
        sel = qualify(q.copy(), schema=schema, dialect=dialect)
    except Exception:  # sqlglot raises many kinds; not qualifiable => not total
        return OrderInfo(False, why="cannot qualify")
    if not isinstance(sel, exp.Select) or any(isinstance(p, exp.Star) or p.is_star for p in sel.expressions):
        return OrderInfo(False, why="unexpanded *")
    outs = [p.this if isinstance(p, exp.Alias) else p for p in sel.expressions]
    out_sql = [o.sql() for o in outs]
    by_alias = {p.alias_or_name.lower(): i for i, p in enumerate(sel.expressions) if p.alias_or_name}

    keys: list[str] = []
    cols: set[tuple[str, str]] = set()  # (table alias, column) of keys that are plain columns
    sig: list[tuple[int, bool, bool]] | None = []
    for o in sel.args["order"].expressions:
        if not isinstance(o, exp.Ordered):
            return OrderInfo(False, why="unexpected ORDER BY term")
        key = o.this
        pos: int | None = None
        if isinstance(key, exp.Literal) and not key.is_string and key.this.isdigit():
            pos = int(key.this) - 1
            if not 0 <= pos < len(outs):
                return OrderInfo(False, why="ORDER BY position out of range")
        elif isinstance(key, exp.Column) and not key.table and key.name.lower() in by_alias:
            pos = by_alias[key.name.lower()]
        elif key.sql() in out_sql:
            pos = out_sql.index(key.sql())
        resolved = outs[pos] if pos is not None else key
        keys.append(resolved.sql())
        if isinstance(resolved, exp.Column) and resolved.table:
            cols.add((resolved.table.lower(), resolved.name.lower()))
        if pos is None or sig is None:
            sig = None
        else:
            sig.append((pos, bool(o.args.get("desc")), bool(o.args.get("nulls_first"))))
    signature = tuple(sig) if sig is not None else None
    kset = set(keys)

    if all(s in kset or isinstance(o, exp.Literal | exp.Null) for o, s in zip(outs, out_sql, strict=True)):
        return OrderInfo(True, signature, "ORDER BY covers every output column")
    group = sel.args.get("group")
    if group is not None:
        if any(group.args.get(k) for k in ("rollup", "cube", "grouping_sets", "totals", "all")) \
                or not group.expressions:
            return OrderInfo(False, signature, "GROUP BY with ROLLUP/CUBE/GROUPING SETS/ALL")
        if all(g.sql() in kset for g in group.expressions):
            return OrderInfo(True, signature, "ORDER BY covers every GROUP BY expression")
        return OrderInfo(False, signature, "ORDER BY misses a GROUP BY expression")
    if sel.args.get("distinct") is not None or any(o.find(exp.AggFunc) for o in outs):
        return OrderInfo(False, signature, "DISTINCT or aggregate without covering keys")
    if _keyed_from(sel, catalog, cols):
        return OrderInfo(True, signature, "ORDER BY covers a key of every joined table")
    return OrderInfo(False, signature, "ORDER BY leaves ties")


def _keyed_from(sel: exp.Select, catalog: Catalog, cols: set[tuple[str, str]]) -> bool:
    """Every FROM item is a base table (inner/cross joins only) whose key the ORDER BY covers."""
    frm = sel.args.get("from_") or sel.args.get("from")
    if frm is None:
        return False
    ctes = {c.alias_or_name.lower() for c in sel.find_all(exp.CTE)}
    items = [frm.this]
    for j in sel.args.get("joins") or []:
        side = (j.args.get("side") or "").upper()
        kind = (j.args.get("kind") or "").upper()
        if side or kind not in ("", "INNER", "CROSS") or j.args.get("method"):
            return False
        items.append(j.this)
    for t in items:
        if not isinstance(t, exp.Table) or not isinstance(t.this, exp.Identifier) or t.name.lower() in ctes:
            return False
        table = catalog.table(t.name)
        if table is None:
            return False
        alias = t.alias_or_name.lower()

        def covered(key: list[str], alias: str = alias) -> bool:
            return all((alias, c.lower()) in cols for c in key)

        ok = bool(table.primary_key) and covered(table.primary_key)
        for u in table.unique:
            ucols = [table.column(c) for c in u]
            if u and all(c is not None and not c.nullable for c in ucols) and covered(u):
                ok = True
        if not ok:
            return False
    return True
