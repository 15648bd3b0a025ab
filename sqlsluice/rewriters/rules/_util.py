"""Small helpers shared by the rules: conjuncts, sources of a SELECT, outer references."""

from __future__ import annotations

from collections.abc import Iterator

from sqlglot import exp


def conjuncts(e: exp.Expr | None) -> list[exp.Expr]:
    """Top-level AND terms (parentheses unwrapped)."""
    if e is None:
        return []
    while isinstance(e, exp.Paren):
        e = e.this
    if isinstance(e, exp.And):
        return conjuncts(e.this) + conjuncts(e.expression)
    return [e]


def and_all(terms: list[exp.Expr]) -> exp.Expr | None:
    if not terms:
        return None
    out = terms[0]
    for t in terms[1:]:
        out = exp.and_(out, t, copy=False)
    return out


def from_items(sel: exp.Select) -> list[exp.Expr]:
    """The FROM item and every JOIN item of one SELECT (not nested ones)."""
    out: list[exp.Expr] = []
    f = sel.args.get("from_")
    if f is not None:
        out.append(f.this)
    for j in sel.args.get("joins") or []:
        out.append(j.this)
    return out


def source_name(item: exp.Expr) -> str:
    """The name a FROM item is referred to by (its alias, else its table name)."""
    alias = item.alias if hasattr(item, "alias") else ""
    if alias:
        return alias.lower()
    if isinstance(item, exp.Table):
        return item.name.lower()
    return ""


def sources(sel: exp.Select) -> set[str]:
    return {source_name(i) for i in from_items(sel)} - {""}


def defined_names(e: exp.Expr) -> set[str]:
    """Every table alias or table name introduced anywhere inside ``e``."""
    out: set[str] = set()
    for node in e.find_all(exp.Table, exp.Subquery):
        n = source_name(node)
        if n:
            out.add(n)
    return out


def outer_columns(e: exp.Expr) -> list[exp.Column]:
    """Columns inside ``e`` whose qualifier names no source defined inside ``e`` (correlations)."""
    inner = defined_names(e)
    return [c for c in e.find_all(exp.Column) if c.table and c.table.lower() not in inner]


def qualifiers(e: exp.Expr) -> set[str]:
    return {c.table.lower() for c in e.find_all(exp.Column) if c.table}


def inner_join_only(sel: exp.Select) -> bool:
    """True when every JOIN of ``sel`` is an inner or comma join."""
    for j in sel.args.get("joins") or []:
        if j.side or (j.kind and j.kind.upper() not in ("INNER", "CROSS")):
            return False
    return True


def positive_context(node: exp.Expr, stop: exp.Expr) -> bool:
    """True when only AND/OR/parentheses lie between ``node`` and ``stop`` (no NOT, CASE, ...)."""
    p = node.parent
    while p is not None and p is not stop:
        if not isinstance(p, exp.And | exp.Or | exp.Paren):
            return False
        p = p.parent
    return p is stop


def selects(e: exp.Expr) -> Iterator[exp.Select]:
    """Every SELECT in ``e``, innermost first (so that rewrites of children come first)."""
    found = list(e.find_all(exp.Select))
    found.reverse()
    yield from found


def fresh_name(e: exp.Expr, prefix: str) -> str:
    """A source alias of the form ``<prefix><n>`` not used in ``e``."""
    used = defined_names(e) | qualifiers(e)
    n = 1
    while f"{prefix}{n}" in used:
        n += 1
    return f"{prefix}{n}"


def is_inside(node: exp.Expr, anc: exp.Expr) -> bool:
    """Is ``node`` ``anc`` itself or somewhere below it (by identity)?"""
    p: exp.Expr | None = node
    while p is not None:
        if p is anc:
            return True
        p = p.parent
    return False
