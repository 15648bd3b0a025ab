"""Expand pre-aggregated derived tables back into their rows (Calcite's eager aggregation).

Calcite's ``AGGREGATE_JOIN_TRANSPOSE`` pushes an aggregate below a join: ``COUNT(*)`` becomes a
``COUNT(*) AS cnt`` per join input and ``COALESCE(SUM(a.cnt * b.cnt), 0)`` above; a ``SUM(x)``
becomes per-group ``SUM(x) AS s`` below and ``SUM(s * cnt)`` above.  :func:`expand_regrouped`
undoes one such step at a time, which the SMT tier then proves against the plain query:

    S = SELECT .. agg(.. D.c ..) .. FROM .. D .. GROUP BY ..        (S aggregates)
    D = (SELECT k1, .., COUNT(*) AS c, SUM(x) AS s FROM .. WHERE .. GROUP BY k1, ..)

becomes S over ``D' = (SELECT k1, .., 1 AS c, x AS s FROM .. WHERE ..)``, with ``D.c`` read as 1.

Why it keeps every answer: a group g of D with rows R_g (|R_g| = n_g >= 1, GROUP BY is not
empty so D has no row for an empty input) becomes n_g rows of D' that agree with g's row on every
non-aggregate column (they are GROUP BY expressions).  S's WHERE/ON/GROUP BY/HAVING outside
aggregates never read ``c`` or ``s`` (checked), so each row rho of S's join built from g becomes n_g
rows in the same group of S.  Every aggregate of S must then be unchanged by that (checked):

- ``SUM(c * F)`` (``COALESCE(.., 0)`` around it too): sum over rho of n_g * F = the sum over the n_g
  copies of F (NULL F skipped on both sides; all NULL: NULL on both sides);
- ``SUM(s * F)`` / ``SUM(s)``: sum over rho of (sum over R_g of x) * F = sum over the copies of x * F
  (distributivity; NULL x are skipped by both SUMs, a group whose x are all NULL adds nothing);
- ``MIN``/``MAX``/``agg(DISTINCT ..)`` of expressions without ``c``/``s``: copies do not matter.

A D whose aggregates are all ``MIN(x) AS m`` / ``MAX(x) AS m`` (or that has none: a GROUP BY used as
DISTINCT) is expanded the same way (``m`` becomes ``x``) when every aggregate of S is blind to
copies: ``MIN``/``MAX``/``agg(DISTINCT ..)``, where ``m`` is read only as ``MIN(D.m)`` of a MIN
(``MAX(D.m)`` of a MAX): the MIN over the groups' MINs is the MIN over their rows (NULLs skipped
by both).  ``MIN`` of a ``MAX``, or ``COUNT(*)`` over a deduplicated D, refuse.

Anything else refuses the step: ``COUNT(*)``, ``AVG``, a plain ``SUM`` without the factor in S (each
would count the copies); D with HAVING, DISTINCT, LIMIT, ROLLUP, a window or no GROUP BY (a scalar
aggregate answers one row for no input); D on the NULL side of an outer join or any outer join in
S (a padded row's ``c`` is NULL, not 1); floats or unknown kinds in the summed values (``SUM`` of
floats is not associative); ``c``/``s`` read anywhere else, unqualified, or from a nested query.
After the step ``COALESCE(SUM(1), 0)`` is ``COUNT(*)`` (both 0 on no rows), so the step above can
use it as a count in turn.
"""

from __future__ import annotations

from typing import Any

from sqlglot import exp

from sqlsluice.databases import Catalog

_EXACT = ("INT", "INTEGER", "INT2", "INT4", "INT8", "DECIMAL", "NUMERIC", "BIGINT", "SMALLINT", "TINYINT", "HUGEINT", "UBIGINT", "UINTEGER",
          "USMALLINT", "UTINYINT", "UHUGEINT")


class _No(Exception):
    """The step does not apply."""


def expand_regrouped(e: exp.Expression, catalog: Catalog, *, max_steps: int = 32) -> exp.Expression | None:
    """A copy of ``e`` with every expandable pre-aggregated derived table expanded, or None when
    nothing changed."""
    from sqlsluice.verifiers.flatten import flatten_derived  # a projection between S and D merged away

    if not any(isinstance(d.this, exp.Select) and d.this.args.get("group") is not None
               for d in e.find_all(exp.Subquery)):
        return None  # no grouped derived table: nothing to expand

    e = e.copy()
    changed = False
    for _ in range(max_steps):
        step = False
        e = flatten_derived(e, catalog)
        for sel in reversed([n for n in e.walk(bfs=False) if isinstance(n, exp.Select)]):
            for src in _sources(sel):
                if _expand_one(sel, src, catalog):
                    step = changed = True
                    break
            if step:
                break
        if not step:
            break
    return e if changed else None


def _sources(sel: exp.Select) -> list[exp.Expression]:
    frm = sel.args.get("from_") or sel.args.get("from")
    out: list[exp.Expression] = [frm.this] if frm is not None else []
    out.extend(j.this for j in sel.args.get("joins") or [])
    return out


def _plain_group(sel: exp.Select) -> list[exp.Expression] | None:
    g = sel.args.get("group")
    if g is None:
        return None
    if any(g.args.get(k) for k in ("rollup", "cube", "grouping_sets", "totals")):
        raise _No("grouping sets")
    return list(g.expressions)


def _expand_one(s: exp.Select, d: exp.Expression, catalog: Catalog) -> bool:
    try:
        plan = _check(s, d, catalog)
    except _No:
        return False
    if plan is None:
        return False
    body, alias, counts, sums = plan
    # D': the rows of each group (a COUNT is 1 per row, a SUM(x) is x)
    new_exprs = []
    for o in body.expressions:
        name = o.alias_or_name
        if name in counts:
            new_exprs.append(exp.alias_(exp.Literal.number(1), name, quoted=True))
        elif name in sums:
            new_exprs.append(exp.alias_(sums[name].copy(), name, quoted=True))
        else:
            new_exprs.append(o)
    body.set("expressions", new_exprs)
    body.set("group", None)
    # S reads D.c as 1
    for col in list(s.find_all(exp.Column)):
        if col.table == alias and col.name in counts and not _inside(col, d):
            col.replace(exp.Literal.number(1))
    _fold_ones(s)
    _counts(s)  # the step above may read this block's COALESCE(SUM(1), 0) as a COUNT(*)
    return True


def _inside(node: Any, anc: Any) -> bool:
    p: Any = node
    while p is not None:
        if p is anc:
            return True
        p = p.parent
    return False


def _own_scope(node: Any, s: exp.Select) -> bool:
    """``node`` belongs to ``s`` itself, not to a subquery nested in it."""
    p = node.parent
    while p is not None and p is not s:
        if isinstance(p, (exp.Select, exp.Subquery, exp.SetOperation)):
            return False
        p = p.parent
    return p is s


def _check(s: exp.Select, d: exp.Expression, catalog: Catalog
           ) -> tuple[exp.Select, str, set[str], dict[str, exp.Expression]] | None:
    if not isinstance(d, exp.Subquery) or not isinstance(d.this, exp.Select) or not d.alias:
        return None
    body = d.this
    alias = d.alias
    # D: a plain grouped aggregate
    group = _plain_group(body)
    if not group:
        return None  # no GROUP BY: a scalar aggregate answers a row even for no input
    if any(body.args.get(k) for k in ("having", "distinct", "limit", "offset", "order", "with", "qualify")):
        return None
    if body.find(exp.Window) is not None:
        return None
    group_text = {g.sql() for g in group}
    counts: set[str] = set()
    sums: dict[str, exp.Expression] = {}
    extremes: dict[str, tuple[type, exp.Expression]] = {}
    for o in body.expressions:
        name = o.alias_or_name
        inner = o.this if isinstance(o, exp.Alias) else o
        if isinstance(inner, exp.Count) and isinstance(inner.this, exp.Star) and not inner.args.get("distinct"):
            counts.add(name)
        elif isinstance(inner, exp.Sum) and not isinstance(inner.this, exp.Distinct):
            x = inner.this
            if x.find(exp.AggFunc, exp.Subquery, exp.Select, exp.Window) is not None or not _exact(x, body, catalog):
                return None
            sums[name] = x
        elif isinstance(inner, (exp.Min, exp.Max)) and not isinstance(inner.this, exp.Distinct):
            if inner.this.find(exp.AggFunc, exp.Subquery, exp.Select, exp.Window) is not None:
                return None
            extremes[name] = (type(inner), inner.this)
        elif inner.find(exp.AggFunc) is not None:
            return None
        elif inner.sql() not in group_text:
            return None  # an output that is not a grouping expression
    if (counts or sums) and extremes:
        return None
    # without COUNT/SUM outputs (MIN/MAX only, or none: a GROUP BY as DISTINCT) every aggregate of S
    # must be blind to duplicates
    blind = not counts and not sums
    aggcols = counts | set(sums) | set(extremes)
    if len(aggcols) != len([o for o in body.expressions if o.alias_or_name in aggcols]):
        return None  # a name twice
    # S: an aggregate query over inner / cross joins only
    if s.args.get("distinct") is not None and s.args["distinct"].args.get("on") is not None:
        return None
    s_group = _plain_group(s)
    own_aggs = [a for a in s.find_all(exp.AggFunc) if _own_scope(a, s) and not _inside(a, d)]
    if s_group is None and not own_aggs:
        return None
    if any(_own_scope(w, s) for w in s.find_all(exp.Window)):
        return None
    for j in s.args.get("joins") or []:
        if (j.args.get("side") or "") or (j.args.get("kind") or "").upper() not in ("", "INNER", "CROSS"):
            return None
        if j.args.get("using"):
            return None
    if [x.alias_or_name for x in _sources(s)].count(alias) != 1:
        return None
    if any(isinstance(x, exp.Star) for x in s.expressions) or any(
            isinstance(c.this, exp.Star) for c in s.find_all(exp.Column) if c.table == alias):
        return None
    # every read of c / s: qualified, in S's own scope, inside an aggregate of the allowed forms
    for col in s.find_all(exp.Column):
        if _inside(col, d):
            continue
        if not col.table and col.name in aggcols:
            return None
        if col.table != alias or col.name not in aggcols:
            continue
        if not _own_scope(col, s):
            return None
        agg = col.find_ancestor(exp.AggFunc)
        if agg is None or not _own_scope(agg, s):
            return None
    for agg in own_aggs:
        reads = [c for c in agg.find_all(exp.Column) if c.table == alias and c.name in aggcols]
        if blind:
            if not (isinstance(agg, (exp.Min, exp.Max)) or isinstance(agg.this, exp.Distinct)):
                return None  # an aggregate that counts copies
            if reads and not (len(reads) == 1 and agg.this is reads[0] and isinstance(agg, extremes[reads[0].name][0])):
                return None  # MIN of a MIN (MAX of a MAX) only
            continue
        if not reads:
            if isinstance(agg, (exp.Min, exp.Max)) or isinstance(agg.this, exp.Distinct):
                continue
            return None  # COUNT(*), AVG, a SUM without the factor: the copies would count
        if not isinstance(agg, exp.Sum) or isinstance(agg.this, exp.Distinct) or len(reads) != 1:
            return None
        factors = _factors(agg.this)
        hit = [f for f in factors if isinstance(f, exp.Column) and f.table == alias and f.name in aggcols]
        if len(hit) != 1:
            return None  # c / s not a factor of the product
        rest = [f for f in factors if f is not hit[0]]
        if not all(_exact(f, s, catalog) for f in rest):
            return None
    values = dict(sums)
    values.update({k: x for k, (_, x) in extremes.items()})
    return body, alias, counts, values


def _factors(e: Any) -> list[exp.Expression]:
    e = e.unnest() if isinstance(e, exp.Paren) else e
    if isinstance(e, exp.Mul):
        return _factors(e.this) + _factors(e.expression)
    return [e]


def _exact(e: exp.Expression, sel: exp.Select, catalog: Catalog, depth: int = 0) -> bool:
    """Every value ``e`` reads is of an exact numeric kind (integers, DECIMAL/NUMERIC): a column
    of the catalog (every table that has a column of that name agrees), or an output of a derived
    table of ``sel`` that is a COUNT, or a SUM/MIN/MAX/plain expression of exact values."""
    if depth > 8:
        return False
    if isinstance(e, exp.Literal):
        return not e.is_string
    if isinstance(e, exp.Column):
        return _exact_column(e, sel, catalog, depth)
    if isinstance(e, (exp.Mul, exp.Add, exp.Sub, exp.Neg, exp.Paren)):
        return all(_exact(c, sel, catalog, depth) for c in e.iter_expressions())
    if isinstance(e, exp.Coalesce):
        return all(_exact(c, sel, catalog, depth) for c in e.iter_expressions())
    return False


def _exact_column(c: exp.Column, sel: exp.Select, catalog: Catalog, depth: int) -> bool:
    src = None
    for x in _sources(sel):
        if c.table and x.alias_or_name == c.table:
            src = x
    if isinstance(src, exp.Subquery) and isinstance(src.this, exp.Select):
        body = src.this
        for o in body.expressions:
            if isinstance(o, exp.Star):
                continue
            if o.alias_or_name == c.name:
                inner = o.this if isinstance(o, exp.Alias) else o
                if isinstance(inner, exp.Count):
                    return True
                if isinstance(inner, (exp.Sum, exp.Min, exp.Max)):
                    inner = inner.this
                return not isinstance(inner, exp.Distinct) and _exact(inner, body, catalog, depth + 1)
        if not any(isinstance(o, exp.Star) for o in body.expressions):
            return False
    types = [col.type for t in catalog.tables for col in t.columns if col.name.lower() == c.name.lower()]
    return bool(types) and all(str(t).upper().split("(")[0].strip() in _EXACT for t in types)


def _fold_ones(sel: exp.Select) -> None:
    """``1 * x`` / ``x * 1`` is ``x`` (a number times one, NULL stays NULL)."""
    for m in list(sel.find_all(exp.Mul)):
        a, b = m.this, m.expression
        if _is_one(a):
            m.replace(b)
        elif _is_one(b):
            m.replace(a)


def _is_one(e: exp.Expression) -> bool:
    return isinstance(e, exp.Literal) and not e.is_string and e.this == "1"


def _counts(sel: exp.Select) -> None:
    """``COALESCE(SUM(1), 0)`` is ``COUNT(*)``: both count the rows, both 0 on none."""
    for co in list(sel.find_all(exp.Coalesce)):
        args = [co.this, *co.expressions]
        if (len(args) == 2 and isinstance(args[0], exp.Sum) and _is_one(args[0].this)
                and isinstance(args[1], exp.Literal) and not args[1].is_string and args[1].this == "0"):
            co.replace(exp.Count(this=exp.Star()))
