"""Name scoping for the rules: which table references name a CTE, and which a base table.

A CTE is visible in the main query of its WITH, in the CTEs defined after it and below
them; not in its own body (unless the WITH is RECURSIVE) nor in earlier CTEs (a forward
reference names a base table).  Rules that read key facts from the catalog, or that move
a CTE body elsewhere, must not mistake one for the other.
"""

from __future__ import annotations

from sqlglot import exp


def cte_names(root: exp.Expr) -> set[str]:
    """Every CTE name defined anywhere in ``root`` (lower case)."""
    return {c.alias_or_name.lower() for c in root.find_all(exp.CTE)}


def binding(t: exp.Table) -> exp.CTE | None:
    """The CTE a table reference names, or None when it names a base table."""
    if t.args.get("db") or t.args.get("catalog"):
        return None
    name = t.name.lower()
    child: exp.Expr = t
    p = t.parent
    while p is not None:
        w = p.args.get("with_") if isinstance(p, exp.Query) else None
        if isinstance(w, exp.With) and child is not w:
            # the reference is in the WITH's main query: every CTE of it is visible
            for c in w.expressions:
                if c.alias_or_name.lower() == name:
                    return c
        if isinstance(p, exp.With) and isinstance(child, exp.CTE):
            # inside the body of CTE ``child``: earlier ones (all of them if RECURSIVE)
            recursive = bool(p.args.get("recursive"))
            for c in p.expressions:
                if c is child and not recursive:
                    break
                if c.alias_or_name.lower() == name:
                    return c
        child, p = p, p.parent
    return None


def ambiguous_ctes(root: exp.Expr) -> bool:
    """True when a CTE name is defined twice, or a table reference carries a CTE's name
    but does not resolve to it (self or forward reference, or outside its WITH)."""
    names = [c.alias_or_name.lower() for c in root.find_all(exp.CTE)]
    if len(set(names)) != len(names):
        return True
    if not names:
        return False
    known = set(names)
    for t in root.find_all(exp.Table):
        if t.name.lower() in known and binding(t) is None:
            return True
    return False


def base_table(t: exp.Expr, ctes: set[str]) -> bool:
    """Is ``t`` a plain reference to a base table of the default schema, not shadowed by a CTE?"""
    return (isinstance(t, exp.Table) and not t.args.get("db") and not t.args.get("catalog")
            and isinstance(t.this, exp.Identifier) and t.name.lower() not in ctes)
