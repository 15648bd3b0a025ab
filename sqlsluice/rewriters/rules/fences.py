"""Fences: the table a correlated EXISTS probes, read once into a MATERIALIZED CTE.

Expects column references qualified with their source (``sqlglot``'s ``qualify`` does it;
:func:`sqlsluice.rewriters.rules.prepare` calls it).
"""

from __future__ import annotations

from sqlglot import exp

from sqlsluice.databases.catalog import Catalog
from sqlsluice.rewriters.rules._scope import base_table, cte_names
from sqlsluice.rewriters.rules._util import conjuncts, defined_names, qualifiers

_DIALECTS = (None, "postgres", "duckdb")  # the ones that speak ``AS MATERIALIZED``


def _probe(ex: exp.Exists, ctes: set[str]) -> tuple[exp.Select, exp.Table, list[exp.Identifier]] | None:
    """``(subquery, its table, the table's columns it reads)`` when ``ex`` is
    ``EXISTS (SELECT .. FROM T [AS a] WHERE ..)`` over one base table, correlated to the outer
    query by at least one equality and at least one other comparison (``a.w <> outer.w``:
    the shape ``exists_to_in`` cannot decorrelate, and PostgreSQL probes per outer row);
    None otherwise."""
    sel = ex.this
    if not isinstance(sel, exp.Select) or sel.args.get("joins") or sel.args.get("laterals"):
        return None
    if any(sel.args.get(k) for k in ("with_", "with", "group", "having", "qualify", "limit", "offset", "fetch",
                                      "distinct", "windows")):
        return None
    f = sel.args.get("from_")
    t = f.this if f is not None else None
    if t is None or not base_table(t, ctes) or t.args.get("joins") or t.args.get("pivots"):
        return None
    alias = (t.alias or t.name).lower()
    # the alias names this table only: no nested source reuses it (shadowing)
    if sum(1 for n in sel.find_all(exp.Table, exp.Subquery) if (n.alias or (n.name if isinstance(n, exp.Table)
                                                                             else "")).lower() == alias) != 1:
        return None
    cols: list[exp.Identifier] = []  # as written (a quoted name keeps its quotes and case)
    for c in sel.find_all(exp.Column):
        if not c.table:
            return None  # unqualified: cannot tell which source it reads
        if c.table.lower() == alias:
            if not isinstance(c.this, exp.Identifier):
                return None  # a star
            if all(c.this.name != k.name or c.this.quoted != k.quoted for k in cols):
                cols.append(c.this)
    if any(isinstance(s, exp.Column) and isinstance(s.this, exp.Star) for s in sel.expressions):
        return None  # ``a.*`` in the select list
    if not cols:
        return None
    inner = defined_names(sel)
    eq = other = False
    for term in conjuncts(sel.args["where"].this if sel.args.get("where") else None):
        outer = {q for q in qualifiers(term) if q not in inner}
        if not outer:
            continue
        if isinstance(term, exp.EQ):
            eq = True
        elif isinstance(term, (exp.NEQ, exp.LT, exp.LTE, exp.GT, exp.GTE)):
            other = True
    return (sel, t, cols) if eq and other else None


def exists_table_materialize(expr: exp.Expr, *, schema: Catalog | None = None,
                             dialect: str | None = None) -> exp.Expr:
    """``EXISTS (SELECT .. FROM T AS a WHERE a.k = o.k AND a.w <> o.w)`` -> the same EXISTS over
    ``_mat1 AS MATERIALIZED (SELECT T.k AS k, T.w AS w FROM T AS T)``: the table read once into a
    fence (TPC-DS q16 on PostgreSQL: the semi-join no longer probes ``catalog_sales`` by the
    second column of its key once per outer row, a full index scan each time; it hashes).

    Always sound: the CTE holds exactly the rows of ``T`` with every column the subquery reads,
    under the same names, so every reference means what it meant; MATERIALIZED only decides when
    the CTE is evaluated.  Fires on a correlated EXISTS over one base table that is correlated
    by an equality and another comparison (``exists_to_in`` handles pure equalities), the
    table named once inside, every column qualified; PostgreSQL and DuckDB only.

    >>> import sqlglot
    >>> q = sqlglot.parse_one("SELECT o.k FROM t AS o WHERE EXISTS (SELECT * FROM t AS i WHERE i.k = o.k AND i.w <> o.w)")
    >>> exists_table_materialize(q).sql("postgres")
    'WITH _mat1 AS MATERIALIZED (SELECT t.k AS k, t.w AS w FROM t AS t) SELECT o.k FROM t AS o WHERE EXISTS(SELECT * FROM _mat1 AS i WHERE i.k = o.k AND i.w <> o.w)'
    """
    if dialect not in _DIALECTS or not isinstance(expr, exp.Select) or expr.find(exp.Exists) is None:
        return expr
    ctes = cte_names(expr)
    if not any(_probe(ex, ctes) for ex in expr.find_all(exp.Exists)):
        return expr
    root = expr.copy()
    for ex in root.find_all(exp.Exists):
        found = _probe(ex, ctes)
        if found is None:
            continue
        _sel, t, cols = found
        # a fresh name: no source, qualifier or CTE (a nested one could capture the reference) uses it
        used = defined_names(root) | qualifiers(root) | ctes
        name = next(f"_mat{n}" for n in range(1, len(used) + 2) if f"_mat{n}" not in used)
        body = exp.select(*[exp.alias_(exp.Column(this=c.copy(), table=t.this.copy()), c.copy()) for c in cols]
                          ).from_(exp.Table(this=t.this.copy(), alias=exp.TableAlias(this=t.this.copy())))
        cte = exp.CTE(this=body, alias=exp.TableAlias(this=exp.to_identifier(name)), materialized=True)
        alias = t.args["alias"].this.copy() if t.args.get("alias") else t.this.copy()
        t.replace(exp.Table(this=exp.to_identifier(name), alias=exp.TableAlias(this=alias)))
        w = root.args.get("with_")
        if w is None:
            root.set("with_", exp.With(expressions=[cte]))
        else:
            w.set("expressions", [cte, *w.expressions])
        return root  # one fence per application: the search applies it again
    return expr
