"""Proof decomposition: abstract what both queries share, prove only the region that differs.

Two steps, both applied to the queries after sqlglot's ``qualify`` (the same name resolution the
other tiers start from), both used only to PROVE (this tier never refutes: a region that differs
may differ in a way its context hides, e.g. rows a later join never matches).

1. **Abstraction of identical subqueries.**  A subquery body ``B`` (a derived table, a CTE body, an
   IN / EXISTS / scalar subquery) that occurs with the same text in BOTH queries is replaced, in
   both, by one fresh base table ``T`` with ``B``'s output columns, added to a copy of the catalog
   with no keys and no NOT NULL constraints.  Argument: for a database ``D``, ``B`` denotes one
   bag ``R = B(D)`` wherever it occurs, provided (checked in code) that

   - it is uncorrelated: every column it reads belongs to a source defined inside ``B``
     (sqlglot's scopes, followed only up to ``B`` itself; an unqualified column that is not an
     output alias of its own SELECT counts as correlated);
   - every table name it reads resolves the same way at every occurrence: no CTE of that name is
     defined anywhere outside ``B`` in either query (a CTE shadowing a base table, or two
     different CTEs of one name, are therefore never abstracted across), or it is a fresh table
     of an earlier abstraction (fresh names cannot be shadowed);
   - it is deterministic: no LIMIT / OFFSET / FETCH, window function or volatile function inside
     (two evaluations could then give different bags).

   A proof of ``q1[T] = q2[T]`` holds for every instance of ``T`` allowed by its declared column
   types, in particular for ``R``; so ``q1 = q2`` on ``D``.  The declared types must therefore
   admit every value ``R`` can hold: a column is declared with sqlglot's annotated type, except
   that an integer type is kept only for a plain column or COUNT (``SUM(bigint)`` is NUMERIC on
   PostgreSQL: any other integer-looking expression is declared DECIMAL, whose models include the
   integers), and an unknown type is declared UNKNOWN (an uninterpreted sort in the SMT tier).
   Output names must be distinct (a table cannot have two columns of one name).  A CTE is
   abstracted by deleting it and pointing its references at ``T`` (only when its name is defined
   once in the query, it is not recursive, and no earlier CTE of its WITH or its own body names it).

2. **Congruence on the differing region.**  After abstraction, the smallest subtree where the two
   trees differ is found (same node types and arguments along one path); from there we climb to
   the nearest enclosing query node ``r`` that is a subquery (derived table, CTE body, IN / EXISTS
   / scalar subquery, set-operation branch), uncorrelated and with only globally resolved table
   names (as above).  If ``r1`` and ``r2`` are proved equivalent as bags by the existing tiers (a
   sort is compared as a sort), have the same output column names in the same order and the same
   annotated types (never UNKNOWN), then, since the two queries are identical outside ``r`` and an
   uncorrelated subquery's value is its bag of rows, the queries are equivalent.  The context must
   not observe the region's row order: a context with a window function, DISTINCT ON, an
   order-sensitive aggregate, or LIMIT / OFFSET / FETCH without ORDER BY makes the tier give up;
   with such a context absent, a plain ORDER BY inside the region is dropped (it orders a bag no
   one sees in order).  ORDER BY .. LIMIT inside a region is left to the tiers (which require the
   same keys and limit, as ``top_proof`` does).  Column types matter because the context may
   compute with them (integer vs. numeric division, union type resolution).

   Several differences: each goes to its nearest region (a region inside another chosen one is
   dropped, so the regions are disjoint).  ``C[r1, r2] = C[s1, r2] = C[s1, s2]``: one region at a
   time, by the argument above, since each region's value does not depend on its context.

   Context filter: for a derived table ``A`` in the FROM of a SELECT ``S`` without outer (or semi /
   anti / positional) joins, the WHERE conjuncts ``c`` of ``S`` that read only ``A``'s columns, hold
   no subquery and are deterministic, and are the same text on both sides, remove every row of
   ``A`` failing ``c`` from every row combination of ``S`` before anything else of ``S`` reads it
   (grouping, HAVING, projection, subqueries in the output are evaluated on surviving
   combinations only).  So ``S``'s result is a function of ``SELECT .. FROM (A) WHERE c`` and that
   pair is what is proved.  Not on the NULL-padded side of an outer join (padding depends on all
   rows of ``A``), hence no outer joins at all in ``S``.

   Differences outside every region (in the top query): the regions are proved first; then ``q2``
   with each of its regions replaced by ``q1``'s is equivalent to ``q2`` (the argument above, the
   context filters being in ``q2`` too), and is proved equal to ``q1`` by the tiers after the now
   identical regions are abstracted (step 1).
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from typing import cast

from sqlglot import exp
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import Scope, build_scope

from sqlsluice.databases import Catalog
from sqlsluice.databases.catalog import Column, Table

log = logging.getLogger(__name__)

FRESH = "_sluice_abs"
# order-sensitive aggregates: their value depends on the order of their input rows
_ORDERED_AGGS: tuple[type[exp.Expr], ...] = (exp.ArrayAgg, exp.GroupConcat, exp.First, exp.Last,
                                                   exp.AnyValue)
_VOLATILE = {"rand", "random", "uuid", "gen_random_uuid", "now", "current_timestamp", "nextval", "setseed",
             "current_time", "current_date", "localtimestamp", "localtime", "currval", "clock_timestamp",
             "statement_timestamp", "timeofday", "txid_current"}
_MAX_ROUNDS = 64


@dataclass
class RegionResult:
    proved: bool
    reason: str


# ---------------------------------------------------------------------------------------------
# helpers: text, scopes, names
# ---------------------------------------------------------------------------------------------

def _text(e: exp.Expr) -> str:
    return e.sql("duckdb")


def _is_body(q: exp.Expr) -> bool:
    """A query node that is a subquery body: derived table, CTE, IN / EXISTS / scalar subquery."""
    p = q.parent
    if not isinstance(q, exp.Query) or p is None:
        return False
    if isinstance(p, exp.Subquery):
        return not isinstance(p.parent, exp.Lateral) and not p.args.get("lateral")
    return isinstance(p, exp.CTE | exp.Exists) and q.arg_key == "this"


def _cte_names_outside(root: exp.Expr, node: exp.Expr, ctes: list[exp.CTE] | None = None) -> set[str]:
    """Names of CTEs defined in ``root`` (``ctes``: its CTE nodes, when known) but not inside ``node``."""
    out = set()
    for c in ctes if ctes is not None else root.find_all(exp.CTE):
        if not _inside(c, node):
            out.add(c.alias_or_name.lower())
    return out


def _inside(n: exp.Expr | None, anc: exp.Expr) -> bool:
    while n is not None:
        if n is anc:
            return True
        n = n.parent
    return False


def _table_names(node: exp.Expr) -> set[str]:
    return {t.name.lower() for t in node.find_all(exp.Table) if t.name and not t.args.get("db")}


def _names_resolve_alike(root: exp.Expr, node: exp.Expr, ctes: list[exp.CTE] | None = None) -> bool:
    """Every table name read in ``node`` means the same wherever ``node``'s text appears: no CTE of
    that name outside ``node`` (fresh abstraction tables cannot be shadowed)."""
    outside = _cte_names_outside(root, node, ctes)
    return not any(n in outside and not n.startswith(FRESH) for n in _table_names(node))


def _uncorrelated(body: exp.Expr) -> bool:
    """No column of ``body`` refers to a source outside ``body``."""
    try:
        root: Scope | None = build_scope(body)
    except Exception:  # sqlglot raises many kinds on odd trees
        return False
    if root is None:
        return False
    for scope in root.traverse():
        outputs = {s.alias_or_name.lower() for s in scope.expression.selects} \
            if isinstance(scope.expression, exp.Select) else set()
        for col in scope.columns:
            t = col.table
            if not t:
                if col.name.lower() not in outputs:
                    return False
                continue
            s: Scope | None = scope
            found = False
            while s is not None:
                if t in s.sources:
                    found = True
                    break
                s = s.parent
            if not found:
                return False
    return True


def _deterministic(body: exp.Expr) -> bool:
    if body.find(exp.Limit, exp.Fetch, exp.Offset, exp.Window, exp.Rand) is not None:
        return False
    for f in body.find_all(exp.Func):
        name = (f.name if isinstance(f, exp.Anonymous) else f.sql_name()).lower()
        if name in _VOLATILE:
            return False
    return True


def _head(q: exp.Expr) -> exp.Expr:
    while isinstance(q, exp.SetOperation):
        q = q.this
    return q


def _outputs(q: exp.Expr, catalog: Catalog, dialect: str) -> list[tuple[str, exp.DataType | None,
                                                                               exp.Expr]] | None:
    """``(name, annotated type, expression)`` of each output column (the first branch of a set
    operation names them; a column's type is the branches' common type or None), or None with a
    ``*`` left or names that are empty."""
    try:
        ann = annotate_types(q.copy(), schema=_schema(catalog), dialect=dialect)
    except Exception:
        return None
    branches: list[exp.Expr] = []

    def collect(n: exp.Expr) -> None:
        if isinstance(n, exp.SetOperation):
            collect(n.this)
            collect(n.expression)
        else:
            branches.append(n)

    collect(ann)
    if not all(isinstance(b, exp.Select) or (isinstance(b, exp.Subquery) and isinstance(b.this, exp.Select))
               for b in branches):
        return None
    sels = [b if isinstance(b, exp.Select) else b.this for b in branches]
    head = sels[0].expressions
    if any(s.is_star for s in head) or any(len(s.expressions) != len(head) for s in sels):
        return None
    out = []
    for i, p in enumerate(head):
        name = p.alias_or_name
        if not name:
            return None
        types = {_type_text(s.expressions[i].type) for s in sels}
        t = head[i].type if len(types) == 1 and "UNKNOWN" not in types else None
        out.append((name, t, p.this if isinstance(p, exp.Alias) else p))
    return out


def _schema(catalog: Catalog) -> dict[str, object]:
    return dict(catalog.mapping())


def _type_text(t: exp.DataType | None) -> str:
    if t is None or t.this == exp.DataType.Type.UNKNOWN:
        return "UNKNOWN"
    return t.sql("duckdb").upper()


def _declared_type(t: exp.DataType | None, e: exp.Expr) -> str:
    """A type whose values include every value the column can hold (see the module docstring)."""
    txt = _type_text(t)
    if txt == "UNKNOWN":
        return "UNKNOWN"
    if "INT" in txt and not isinstance(e, exp.Column | exp.Count):
        return "DECIMAL(38,10)"
    return txt


# ---------------------------------------------------------------------------------------------
# 1. abstraction
# ---------------------------------------------------------------------------------------------

def _bodies(root: exp.Expr) -> list[exp.Expr]:
    return [q for q in root.find_all(exp.Query) if q is not root and _is_body(q)]


def _abstractable(root: exp.Expr, body: exp.Expr) -> bool:
    if not _deterministic(body) or not _names_resolve_alike(root, body) or not _uncorrelated(body):
        return False
    p = body.parent
    if isinstance(p, exp.CTE):
        return _cte_replaceable(root, p)
    return True


def _cte_replaceable(root: exp.Expr, cte: exp.CTE) -> bool:
    name = cte.alias_or_name.lower()
    if sum(1 for c in root.find_all(exp.CTE) if c.alias_or_name.lower() == name) != 1:
        return False
    w = cte.parent
    if not isinstance(w, exp.With) or w.args.get("recursive"):
        return False
    for c in w.expressions:
        if c is cte:
            break
        if name in _table_names(c):
            return False
    if name in _table_names(cte.this):
        return False
    alias = cte.args.get("alias")
    return not (alias is not None and alias.columns and any(
        t.name.lower() == name and t.args.get("alias") is not None and t.args["alias"].columns
        for t in _owner(cte).find_all(exp.Table)))


def _owner(cte: exp.CTE) -> exp.Expr:
    w = cte.parent
    assert w is not None and w.parent is not None
    return w.parent


def _replace(root: exp.Expr, body: exp.Expr, fresh: str, cols: list[str]) -> exp.Expr:
    """Replace one occurrence of ``body`` by the fresh table; returns the (possibly new) root."""
    p = body.parent
    if isinstance(p, exp.CTE):
        name = p.alias_or_name.lower()
        owner = _owner(p)
        calias = p.args.get("alias")
        for t in list(owner.find_all(exp.Table)):
            if t.name.lower() != name or t.args.get("db") or _inside(t, p):
                continue
            alias = t.args.get("alias")
            new_alias = alias.copy() if alias is not None else exp.TableAlias(this=exp.to_identifier(t.name))
            if calias is not None and calias.columns:
                new_alias.set("columns", [c.copy() for c in calias.columns])
            t.replace(exp.Table(this=exp.to_identifier(fresh), alias=new_alias))
        w = p.parent
        p.pop()
        if isinstance(w, exp.With) and not w.expressions:
            w.pop()
        return root
    sub = p
    if isinstance(sub, exp.Subquery) and isinstance(sub.parent, exp.From | exp.Join):
        alias = sub.args.get("alias")
        new = exp.Table(this=exp.to_identifier(fresh),
                        alias=alias.copy() if alias is not None else exp.TableAlias(this=exp.to_identifier(fresh)))
        sub.replace(new)
        return root
    sel = exp.select(*[exp.column(exp.to_identifier(c, quoted=True), table=fresh) for c in cols]).from_(fresh)
    body.replace(sel)
    return root


def abstract(q1: exp.Expr, q2: exp.Expr, catalog: Catalog, dialect: str
             ) -> tuple[exp.Expr, exp.Expr, Catalog, int]:
    """Replace, in copies of both queries, every subquery body occurring identically in both by a
    fresh base table (largest first, repeatedly); returns the copies, the widened catalog and the
    number of bodies abstracted."""
    a1, a2 = q1.copy(), q2.copy()
    cat = catalog
    n = 0
    blocked: set[str] = set()
    base = sum(1 for t in catalog.tables if t.name.startswith(FRESH))  # fresh names stay fresh
    for _ in range(_MAX_ROUNDS):
        by1: dict[str, list[exp.Expr]] = {}
        by2: dict[str, list[exp.Expr]] = {}
        for root, by in ((a1, by1), (a2, by2)):
            for b in _bodies(root):
                by.setdefault(b.sql(dialect), []).append(b)  # the source dialect: no transpiling
        common = sorted((k for k in by1 if k in by2 and k not in blocked), key=len, reverse=True)
        done = False
        for key in common:
            occ = [(a1, b) for b in by1[key]] + [(a2, b) for b in by2[key]]
            if not all(_abstractable(r, b) for r, b in occ):
                blocked.add(key)
                continue
            outs = _outputs(occ[0][1], cat, dialect)
            if outs is None or len({o[0].lower() for o in outs}) != len(outs):
                blocked.add(key)
                continue
            fresh = f"{FRESH}{base + n}"
            cols = [o[0] for o in outs]
            table = Table(name=fresh, columns=[Column(name=o[0], type=_declared_type(o[1], o[2])) for o in outs])
            cat = Catalog(tables=[*cat.tables, table], dialect=cat.dialect)
            # replace deepest-last: occurrences are disjoint (identical text, none inside another)
            for r, b in occ:
                if r is a1:
                    a1 = _replace(a1, b, fresh, cols)
                else:
                    a2 = _replace(a2, b, fresh, cols)
            n += 1
            done = True
            break
        if not done:
            break
    return a1, a2, cat, n


# ---------------------------------------------------------------------------------------------
# 2. the differing region
# ---------------------------------------------------------------------------------------------

def _digests(root: exp.Expr) -> dict[int, bytes]:
    """A digest of every subtree (its node type, plain arguments and children's digests), by id."""
    out: dict[int, bytes] = {}
    for n in reversed(list(root.walk(bfs=False))):
        h = hashlib.blake2b(type(n).__name__.encode(), digest_size=20)
        for k in sorted(n.args):
            v = n.args[k]
            h.update(b"\x00" + k.encode())
            for x in v if isinstance(v, list) else [v]:
                h.update(b"\x01" + (out[id(x)] if isinstance(x, exp.Expr) else repr(x).encode()))
        out[id(n)] = h.digest()
    return out


def _diff_points(a: exp.Expr, b: exp.Expr, out: list[tuple[exp.Expr, exp.Expr]],
                 d: dict[int, bytes]) -> None:
    """The smallest subtree pairs (at the same paths) outside which ``a`` and ``b`` agree
    (``d``: the digests of both trees)."""

    def _same(x: exp.Expr, y: exp.Expr) -> bool:
        return d[id(x)] == d[id(y)]

    if _same(a, b):
        return
    if type(a) is not type(b):
        out.append((a, b))
        return
    pairs: list[tuple[exp.Expr, exp.Expr]] = []
    for k in sorted(set(a.args) | set(b.args)):
        va, vb = a.args.get(k), b.args.get(k)
        la = va if isinstance(va, list) else [va]
        lb = vb if isinstance(vb, list) else [vb]
        if len(la) != len(lb):
            out.append((a, b))
            return
        for x, y in zip(la, lb, strict=True):
            if isinstance(x, exp.Expr) and isinstance(y, exp.Expr):
                if not _same(x, y):
                    pairs.append((x, y))
            elif isinstance(x, exp.Expr) or isinstance(y, exp.Expr) or x != y:
                out.append((a, b))
                return
    for x, y in pairs:
        _diff_points(x, y, out, d)


def _order_hazard(root: exp.Expr, region: exp.Expr) -> str:
    """Why the context (``root`` outside ``region``) could observe the region's row order, or ''."""
    for n in root.walk():
        if _inside(n, region):
            continue
        if isinstance(n, exp.Window):
            return "a window function"
        if isinstance(n, _ORDERED_AGGS):
            return f"an order-sensitive aggregate ({n.key})"
        if isinstance(n, exp.Select) and n.args.get("distinct") is not None and n.args["distinct"].args.get("on"):
            return "DISTINCT ON"
        if isinstance(n, exp.Query) and any(n.args.get(k) for k in ("limit", "offset", "fetch")) \
                and not n.args.get("order"):
            return "LIMIT/OFFSET without ORDER BY"
    return ""


def _nearest_region(a1: exp.Expr, a2: exp.Expr, n1: exp.Expr | None, n2: exp.Expr | None,
                    skipped: list[str], ctes: tuple[list[exp.CTE], list[exp.CTE]],
                    memo: dict[int, tuple[exp.Expr, exp.Expr] | None]) -> tuple[exp.Expr, exp.Expr] | None:
    seen = []
    while n1 is not None and n2 is not None and n1 is not a1:
        if id(n1) in memo:
            found = memo[id(n1)]
            break
        seen.append(id(n1))
        if isinstance(n1, exp.Query) and isinstance(n2, exp.Query) and (
                (_is_body(n1) and _is_body(n2)) or isinstance(n1.parent, exp.SetOperation)):
            if not (_names_resolve_alike(a1, n1, ctes[0]) and _names_resolve_alike(a2, n2, ctes[1])):
                skipped.append("a region reads a CTE defined outside it")
            elif not (_uncorrelated(n1) and _uncorrelated(n2)):
                skipped.append("a correlated region")
            elif isinstance(n1.parent, exp.SetOperation) and _filtered_union(n1) and _filtered_union(n2):
                skipped.append("a set-operation branch under a filter on its derived table")
            else:
                found = (n1, n2)
                break
        n1, n2 = n1.parent, n2.parent
    else:
        found = None
    for i in seen:
        memo[i] = found
    return found


def _filtered_union(branch: exp.Expr) -> bool:
    """A branch of a set operation that is a derived table filtered by its context: the derived
    table is the region to prove (under the filter), not the branch alone."""
    top = branch.parent
    while isinstance(top, exp.SetOperation) and isinstance(top.parent, exp.SetOperation):
        top = top.parent
    if not isinstance(top, exp.SetOperation) or not _is_body(top):
        return False
    f = context_filter(top)
    return f is not None and bool(f[1])


def find_regions(a1: exp.Expr, a2: exp.Expr) -> tuple[list[tuple[exp.Expr, exp.Expr]], str, bool] | None:
    """Disjoint uncorrelated subquery pairs enclosing the differences (each difference in its
    nearest one; a region inside another chosen one is dropped), why larger ones were skipped,
    and whether some difference lies in no region (in the top query); None when there is no
    difference or no region."""
    points: list[tuple[exp.Expr, exp.Expr]] = []
    _diff_points(a1, a2, points, {**_digests(a1), **_digests(a2)})
    if not points:
        return None
    skipped: list[str] = []
    regions: list[tuple[exp.Expr, exp.Expr]] = []
    top = False
    ctes = (list(a1.find_all(exp.CTE)), list(a2.find_all(exp.CTE)))
    memo: dict[int, tuple[exp.Expr, exp.Expr] | None] = {}
    for p1, p2 in points:
        r = _nearest_region(a1, a2, p1, p2, skipped, ctes, memo)
        if r is None:
            top = True
            continue
        if not any(r[0] is q[0] for q in regions):
            regions.append(r)
    regions = [r for r in regions if not any(q[0] is not r[0] and _inside(r[0], q[0]) for q in regions)]
    if not regions:
        return None
    return regions, "; ".join(sorted(set(skipped))), top


def context_filter(r: exp.Expr) -> tuple[str, list[exp.Expr]] | None:
    """For a derived table in the FROM of a SELECT without outer joins: its alias and the WHERE
    conjuncts of that SELECT that read only its columns (no subquery, deterministic).  The SELECT's
    result depends on the derived table's rows only through the rows that satisfy them (every
    other row is removed from every combination before grouping, projection or any subquery in
    its output is evaluated), so proving the two regions equal under these conjuncts suffices."""
    sub = r.parent
    if not isinstance(sub, exp.Subquery) or not isinstance(sub.parent, exp.From | exp.Join):
        return None
    sel = sub.parent.parent
    if not isinstance(sel, exp.Select) or sel.args.get("where") is None:
        return None
    if any(j.args.get("side") or (j.args.get("kind") or "").upper() in ("FULL", "OUTER", "ANTI", "SEMI")
           or j.args.get("method") for j in sel.args.get("joins") or []):
        return None
    alias = sub.alias_or_name
    if not alias:
        return None
    cond = sel.args["where"].this
    conj = list(cond.flatten()) if isinstance(cond, exp.And) else [cond]
    keep = []
    for c in conj:
        cols = list(c.find_all(exp.Column))
        if not cols or any(col.table != alias for col in cols) or c.find(exp.Query) is not None:
            continue
        if not _deterministic(c):
            continue
        keep.append(c)
    return alias, keep


def _where(r: exp.Expr) -> str:
    p = r.parent
    if isinstance(p, exp.CTE):
        return f"CTE {p.alias_or_name}"
    if isinstance(p, exp.SetOperation):
        return f"a {p.key.upper()} branch"
    if isinstance(p, exp.Subquery):
        if isinstance(p.parent, exp.From | exp.Join):
            return f"derived table {p.alias_or_name or '?'}"
        return "a subquery"
    if isinstance(p, exp.Exists):
        return "an EXISTS subquery"
    return r.key


# ---------------------------------------------------------------------------------------------
# the tier
# ---------------------------------------------------------------------------------------------

def _prove_pair(a: exp.Expr, b: exp.Expr, catalog: Catalog, dialect: str, timeout_s: float
                ) -> RegionResult:
    """The proof tiers of ``verify`` on one pair: SMT (sorts compared as sorts; the cheaper for
    the small regions this tier makes), then the canonical form (which includes any ORDER BY)."""
    from sqlsluice.verifiers.api import _drop_plain_sort, _sorted_prefix, same_sort
    from sqlsluice.verifiers.canonical import CanonicalError, canonical_sql, outer_join_hazard
    from sqlsluice.verifiers.smt import prove

    a, b = cast(exp.Expression, a), cast(exp.Expression, b)
    deadline = time.monotonic() + timeout_s
    ok, why = same_sort(a, b, catalog, dialect)
    if ok:
        res = prove(_drop_plain_sort(a), _drop_plain_sort(b), catalog, dialect,
                    timeout_s=max(0.2, deadline - time.monotonic()))
        if res.proved:
            return RegionResult(True, res.reason)
        why = res.reason
        prefix = _sorted_prefix(a, b)
        if prefix is not None and deadline - time.monotonic() > 0.2:
            r2 = prove(prefix[0], prefix[1], catalog, dialect, timeout_s=deadline - time.monotonic())
            if r2.proved:
                return RegionResult(True, "the same rows sorted by the same keys, then the same LIMIT/OFFSET: "
                                    + r2.reason)
    safe = outer_join_hazard(a, b)
    try:
        if canonical_sql(a, catalog, dialect, safe=safe) == canonical_sql(b, catalog, dialect, safe=safe):
            return RegionResult(True, "same canonical form")
    except CanonicalError:
        pass
    return RegionResult(False, why)


def _qualified(e: exp.Expr, catalog: Catalog, dialect: str) -> exp.Expr | None:
    try:
        return qualify(e.copy(), schema=_schema(catalog), dialect=dialect, validate_qualify_columns=False)
    except Exception:  # sqlglot raises many kinds (OptimizeError, KeyError, ...)
        return None


def _strip_sort(r: exp.Expr) -> exp.Expr:
    if r.args.get("order") is not None and not any(r.args.get(k) for k in ("limit", "offset", "fetch")):
        r = r.copy()
        r.set("order", None)
    return r


def region_proof(e1: exp.Expr, e2: exp.Expr, catalog: Catalog, dialect: str, *,
                 timeout_s: float = 2.0) -> RegionResult | None:
    """Try to prove ``e1`` and ``e2`` equivalent by abstraction and congruence (module docstring).
    None when the tier does not apply (nothing shared to abstract and no proper region); never
    raises (a bug here must not stop the other tiers) and never refutes."""
    try:
        return _region_proof(e1, e2, catalog, dialect, timeout_s)
    except Exception as e:
        log.exception("region tier failed")
        return RegionResult(False, f"tier error: {type(e).__name__}: {str(e)[:120]}")


def _region_proof(e1: exp.Expr, e2: exp.Expr, catalog: Catalog, dialect: str,
                  timeout_s: float) -> RegionResult | None:
    q1, q2 = _qualified(e1, catalog, dialect), _qualified(e2, catalog, dialect)
    if q1 is None or q2 is None:
        return None
    a1, a2, cat, n = abstract(q1, q2, catalog, dialect)
    shared = f"{n} identical subqueries abstracted" if n else "nothing shared abstracted"
    if n and _text(a1) == _text(a2):
        return RegionResult(True, f"identical after abstraction ({shared})")
    found = find_regions(a1, a2)
    if found is None:
        if not n:
            return None
        res = _prove_pair(a1, a2, cat, dialect, timeout_s)
        return RegionResult(res.proved, f"whole query, {shared}: {res.reason}")
    regions, skipped, top = found
    note = f" (skipped: {skipped})" if skipped else ""
    deadline = time.monotonic() + timeout_s
    proved: list[str] = []
    reason = ""
    parts = len(regions) + (1 if top else 0)
    for i, (r1, r2) in enumerate(regions):
        where = _where(r1)
        why = _region_ok(a1, a2, r1, r2, cat, dialect)
        if why:
            return RegionResult(False, f"region {where}: {why}{note}")
        p1, p2, under = _filtered(r1, r2, cat, dialect)
        left = (deadline - time.monotonic()) / (parts - i)
        res = _prove_pair(p1, p2, cat, dialect, max(0.3, left))
        if not res.proved:
            return RegionResult(False, f"region {where}{under} ({shared}){note}: {res.reason}"
                                + (f" ({len(proved)} other regions proved)" if proved else ""))
        proved.append(f"{where}{under}")
        reason = res.reason
    what = "region " + proved[0] if len(proved) == 1 else f"{len(proved)} regions ({', '.join(proved)})"
    if top:
        # the rest differs in the top query: q2 with each proved region put back as q1's is
        # equivalent to q2 (congruence, under the same context filters), and is proved equal to
        # q1 with the now identical regions abstracted
        b2 = a2.copy()
        for r1, r2 in regions:
            path = _path(a2, r2)
            _at(b2, path).replace(r1.copy())
        c1, c2, cat2, m = abstract(a1, b2, cat, dialect)
        res = _prove_pair(c1, c2, cat2, dialect, max(0.3, deadline - time.monotonic()))
        if not res.proved:
            return RegionResult(False, f"{what} proved ({shared}){note}; the top query with them abstracted "
                                       f"({m} abstracted) not: {res.reason}")
        return RegionResult(True, f"{what} ({shared}){note}: {reason}; the top query with them abstracted "
                                  f"({m} abstracted): {res.reason}")
    return RegionResult(True, f"{what} ({shared}){note}: {reason}")


def _path(root: exp.Expr, node: exp.Expr) -> list[tuple[str, int | None]]:
    """The argument keys (and list indexes) from ``root`` down to ``node``."""
    out: list[tuple[str, int | None]] = []
    n = node
    while n is not root:
        p, key = n.parent, n.arg_key
        assert p is not None and key is not None
        v = p.args.get(key)
        out.append((key, next(i for i, x in enumerate(v) if x is n) if isinstance(v, list) else None))
        n = p
    return out[::-1]


def _at(root: exp.Expr, path: list[tuple[str, int | None]]) -> exp.Expr:
    n = root
    for k, i in path:
        v = n.args[k]
        n = v[i] if i is not None else v
    return n


def _region_ok(a1: exp.Expr, a2: exp.Expr, r1: exp.Expr, r2: exp.Expr, cat: Catalog, dialect: str) -> str:
    """Why the region pair cannot stand for the queries ('' when it can): order, names, types."""
    hazard = _order_hazard(a1, r1) or _order_hazard(a2, r2)
    if hazard:
        return f"its row order is observable ({hazard})"
    o1, o2 = _outputs(r1, cat, dialect), _outputs(r2, cat, dialect)
    if o1 is None or o2 is None:
        return "output columns unknown"
    if [o[0] for o in o1] != [o[0] for o in o2]:
        return "output column names differ"
    t1, t2 = [_type_text(o[1]) for o in o1], [_type_text(o[1]) for o in o2]
    if "UNKNOWN" in t1 or t1 != t2:
        return "output column types differ or are unknown"
    return ""


def _filtered(r1: exp.Expr, r2: exp.Expr, cat: Catalog, dialect: str) -> tuple[exp.Expr, exp.Expr, str]:
    """The region pair to prove: under the context's filter on it when there is one."""
    f1, f2 = context_filter(r1), context_filter(r2)
    if f1 is None or f2 is None or not f1[1] or [_text(c) for c in f1[1]] != [_text(c) for c in f2[1]]:
        return _strip_sort(r1), _strip_sort(r2), ""
    alias, conj = f1
    out = []
    for r in (r1, r2):
        sub = r.parent
        assert isinstance(sub, exp.Subquery)
        ta = sub.args.get("alias")
        names = [c.name for c in ta.columns] if ta is not None and ta.columns else \
            [o[0] for o in (_outputs(r, cat, dialect) or [])]
        body = exp.Subquery(this=_strip_sort(r).copy(), alias=ta.copy() if ta is not None else None)
        cols = [exp.column(exp.to_identifier(n, quoted=True), table=exp.to_identifier(alias, quoted=True))
                for n in names]
        out.append(exp.select(*cols).from_(body).where(exp.and_(*[c.copy() for c in conj])))
    return out[0], out[1], f" under the context's filter {exp.and_(*conj).sql()[:120]}"
