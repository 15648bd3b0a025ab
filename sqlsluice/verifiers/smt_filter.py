"""FILTER aggregates and scalar aggregate subqueries as cross joins of one-row aggregates.

The SMT tier's normal form for the TPC-DS q9/q28/q88/q90 shapes (the rules
``scalar_subqueries_to_filtered_aggregate`` and ``derived_aggregates_to_filtered_aggregate``).
:func:`filter_normal_form` runs at the end of :func:`smt.normalize` on every block.

The argument.  Write ``A(T, w)`` for ``SELECT agg(x) FROM T WHERE w`` without GROUP BY and
HAVING: an aggregate over all rows of ``T`` where ``w`` is TRUE, which yields **exactly one
row**, also when no row qualifies (COUNT is then 0, SUM/AVG/MIN/MAX NULL).

1. *FILTER.*  ``agg(x) FILTER (WHERE p)`` feeds ``agg`` the rows where ``p`` is TRUE (a FALSE
   or UNKNOWN ``p`` drops the row, exactly as WHERE does; DISTINCT applies to the rows kept).
   So in a block ``SELECT f(agg_1(x_1) FILTER (WHERE p_1), ..) FROM T WHERE w`` without GROUP
   BY and HAVING, each aggregate's value is the value of ``A_i = A(T, w AND p_i)`` (an
   aggregate without FILTER: ``p_i`` TRUE), and the block is one row.  Each ``A_i`` is one row,
   so their cross join is one row, and ``SELECT f(A_1.v, ..) FROM A_1, .., A_n`` is that row:
   the same single row.  The aggregate itself is kept as it is (COUNT stays COUNT: on no
   qualifying row it is 0 in both forms); only its predicate moves into the WHERE of its own
   block.  With GROUP BY this is NOT valid: a group in which no row satisfies ``p_i`` still
   exists in the original (with COUNT 0 / NULL) but has no row in ``A_i``; with HAVING the
   block may be empty.  Both are refused (left to the plain model, which reports FILTER as
   outside its fragment).
2. *Scalar subqueries.*  An uncorrelated ``(SELECT agg(x) FROM T WHERE w)`` (no GROUP BY,
   HAVING, LIMIT/OFFSET, window; one output) is the single value of the one row of ``A(T, w)``.
   In a block without aggregation (no GROUP BY, no aggregate of its own), joining that row
   (``CROSS JOIN A AS a``) keeps every row of the block once, and the subquery reads ``a.v``.
3. *One-row derived tables.*  A derived table ``d`` that is a block of case 1 (with or without
   FILTER) in the FROM of a block without aggregation is replaced by its ``A_i`` as units, and
   each ``d.c`` by its output expression over them (case 1 again: the cross join of one-row
   tables is one row).

Both queries are put into this form, so that one scalar aggregate written as a subquery, as a
derived table, or as one FILTER aggregate among several over the same FROM becomes the same
unit ``A_i``, a block of the plain model (WHERE ``w AND p_i``, one aggregate).  Identical
one-row units of a block are merged (a cross join with the same one-row table twice is the same
rows).  Matching the units of the two queries pairwise by proof would cost one z3 proof per
pair (225 for q9), so each unit is *named*: :func:`body_text` (tables, aggregate, the set of
conjuncts after :func:`drop_implied`, aliases renamed) where the texts agree, else
:func:`pair_one_row_units` proves two bodies equivalent with z3 (one check per unit, among
bodies with the same tables, aggregate and atomic predicates: the optimizer writes one
predicate in conjunctive form on one side only) and gives both one name.  The prover then
treats a named unit as a base table shared by both queries: any content, the same on both
sides.  Its actual single row is one such content, so a proof for every content covers it.

The plain model counts an aggregate inside a scalar subquery of the SELECT list as the block's
own (``smt.Builder`` asks ``find(AggFunc)``) and makes the block a scalar aggregate (one row);
:func:`filter_normal_form` gives such a block back its GROUP-less, aggregate-less meaning.

:func:`one_row_limit` drops ``LIMIT n`` (n >= 1, no OFFSET) and ORDER BY from a query that
returns exactly one row by the shape above (a single row sorted or cut to n >= 1 rows is itself).
"""

from __future__ import annotations

import contextvars
import hashlib
import itertools
import time
from typing import Any

from sqlglot import exp

from sqlsluice.databases import Catalog
from sqlsluice.verifiers import smt
from sqlsluice.verifiers.smt import Block, Query, Unit

_FRESH = itertools.count()


def _own(e: exp.Expression, kind: Any) -> list[Any]:
    """Nodes of ``kind`` in ``e`` that are not inside a subquery of ``e``."""
    out: list[Any] = []
    stack = [e]
    while stack:
        n = stack.pop()
        if isinstance(n, kind):
            out.append(n)
            continue
        if n is not e and isinstance(n, exp.Subquery | exp.Select | exp.Union | exp.Intersect | exp.Except):
            continue
        stack.extend(n.iter_expressions())
    return out


def _own_aggs(b: Block) -> list[Any]:
    """The block's own aggregates (a FILTER node stands for its aggregate), outside subqueries."""
    out: list[Any] = []
    for e in b.outputs:
        out.extend(_own(e, (exp.Filter, exp.AggFunc)))
    return out


def _scalar_aggregate(b: Query) -> bool:
    """A block of exactly one row on every input: aggregates, no GROUP BY, no HAVING."""
    return (isinstance(b, Block) and b.group is not None and not b.group and b.having is None
            and bool(_own_aggs(b)))


def _split_parts(b: Block) -> tuple[list[tuple[str, Block]], list[exp.Expression]] | None:
    """The one-row units ``A_i`` of a scalar aggregate block (text key, body) and its outputs
    over them (columns ``_a<n>._v``); None when outside the argument's conditions."""
    parts: dict[str, tuple[str, Block]] = {}
    repl: dict[int, exp.Expression] = {}
    for node in _own_aggs(b):
        if isinstance(node, exp.Filter):
            agg, where = node.this, node.expression
            p = where.this if isinstance(where, exp.Where) else where
            if not isinstance(agg, exp.AggFunc) or p is None or p.find(exp.AggFunc, exp.Window):
                return None
            conds = drop_implied([*b.conds, p])
        else:
            agg, conds = node, list(b.conds)
            if agg.find(exp.Filter):
                return None
        if isinstance(agg.parent, exp.Window) or agg.find(exp.Window):
            return None
        key = node.sql("duckdb")
        if key not in parts:
            body = Block([_copy_unit(u) for u in b.units], [(_copy_unit(u), on) for u, on in b.ljs],
                         conds, [], None, [agg.copy()], [smt._kind_of_type(agg.type)])  # conds shared, not copied
            parts[key] = (f"_a{next(_FRESH)}", body)
        repl[id(node)] = exp.column("_v", table=parts[key][0])
    outputs = []
    for o in b.outputs:
        new = _replace_nodes(o, repl)
        if any(_own(new, exp.Column)) and any(c.table not in {a for a, _ in parts.values()}
                                             for c in _own(new, exp.Column)):
            return None  # a bare column of the input outside any aggregate: not a scalar aggregate
        outputs.append(new)
    return list(parts.values()), outputs


def _replace_nodes(e: exp.Expression, repl: dict[int, exp.Expression]) -> exp.Expression:
    if id(e) in repl:
        return repl[id(e)].copy()
    c = e.copy()
    # copies keep the tree shape: walk both in step to find the nodes to replace
    pairs = list(zip(e.walk(), c.walk(), strict=True))
    for orig, new in pairs:
        if id(orig) in repl and new is not c:
            new.replace(repl[id(orig)].copy())
    return c


def _copy_unit(u: Unit) -> Unit:
    return Unit(u.alias, u.type_key, list(u.columns), u.derived, u.source)


def _unit(alias: str, body: Block) -> Unit:
    """The one-row unit of ``body``: named by its canonical text where it has one (see
    :func:`body_text`; the prover then matches it by name), else by the body, which the prover
    (or :func:`pair_one_row_units`) proves equivalent to its counterpart."""
    kind = body.out_kinds[0] if body.out_kinds else "opaque:unknown"
    key = body_key(body)
    return Unit(alias, "table:" + key if key else f"derived:{id(body)}", [("_v", kind, True)], derived=body)


def _strip(e: exp.Expression) -> exp.Expression:
    while isinstance(e, exp.Paren):
        e = e.this
    return e


def _and_parts(e: exp.Expression) -> list[exp.Expression]:
    e = _strip(e)
    if isinstance(e, exp.And):
        return [*_and_parts(e.this), *_and_parts(e.expression)]
    return [e]


def _or_parts(e: exp.Expression) -> list[exp.Expression]:
    e = _strip(e)
    if isinstance(e, exp.Or):
        return [*_or_parts(e.this), *_or_parts(e.expression)]
    return [e]


# texts of predicate nodes by id, for one normalisation (the node is kept, so its id stays its own)
_TEXTS: contextvars.ContextVar[dict[int, tuple[exp.Expression, str]] | None] = contextvars.ContextVar(
    "smt_filter_texts", default=None)


def _ptext(e: exp.Expression) -> str:
    """SQL text of a predicate with AND/OR/NOT fully parenthesised and written parts flat, so
    that ``a AND b OR c`` and ``(a AND b) OR (c)`` read alike (and unlike ``a AND (b OR c)``)."""
    e = _strip(e)
    memo = _TEXTS.get()
    if memo is not None and id(e) in memo:
        return memo[id(e)][1]
    if isinstance(e, exp.And):
        t = "(" + " AND ".join(_ptext(x) for x in _and_parts(e)) + ")"
    elif isinstance(e, exp.Or):
        t = "(" + " OR ".join(_ptext(x) for x in _or_parts(e)) + ")"
    elif isinstance(e, exp.Not):
        t = "(NOT " + _ptext(e.this) + ")"
    else:
        t = str(e.sql("duckdb"))
    if memo is not None:
        memo[id(e)] = (e, t)
    return t


def drop_implied(conds: list[exp.Expression]) -> list[exp.Expression]:
    """The conjuncts of ``conds`` split at AND, without duplicates and without a disjunction
    ``c = d_1 OR .. OR d_k`` that the other conjuncts imply: (a) some ``d_i`` has every conjunct
    among them, or (b) another conjunct is a disjunction of some of the ``d_i`` (CNF: ``(g OR q
    OR y)`` beside ``(q OR y)``).  Where they hold, ``c`` is TRUE, so the conjunction is TRUE for
    the same rows (three-valued: WHERE keeps TRUE only).  Greedy: a conjunct is dropped only for
    conjuncts still kept, so that two that imply each other are not both dropped.  This removes
    the ``(p_1 OR .. OR p_n)`` that derived_aggregates_to_filtered_aggregate adds beside each
    aggregate's own ``p_i``, also after the optimizer has put it into conjunctive form."""
    parts = [p for c in conds for p in _and_parts(c)]
    texts = [_ptext(p) for p in parts]
    ors = [frozenset(_ptext(d) for d in _or_parts(p)) for p in parts]
    kept = list(range(len(parts)))
    seen: set[str] = set()
    for i in range(len(parts)):
        if texts[i] in seen:
            kept.remove(i)
            continue
        others = {texts[j] for j in kept if j != i}
        implied = False
        if isinstance(_strip(parts[i]), exp.Or):
            implied = any(ors[j] <= ors[i] for j in kept if j != i) or any(
                all(_ptext(x) in others for x in _and_parts(d)) for d in _or_parts(parts[i])
                if len(_and_parts(d)) <= len(others))
        if implied:
            kept.remove(i)
        else:
            seen.add(texts[i])
    return [parts[i] for i in kept]


def _alias_map(b: Block) -> dict[str, str] | None:
    """Aliases of a one-row body over base tables renamed by table (None: another shape)."""
    if b.ljs or b.having is not None or b.group is None or b.group or len(b.outputs) != 1:
        return None
    if any(not u.type_key.startswith("table:") or u.derived is not None for u in b.units):
        return None
    order = sorted(b.units, key=lambda u: u.type_key)
    if len({u.type_key for u in order}) != len(order) or len({u.alias for u in order}) != len(order):
        return None  # a table twice: the renaming would depend on alias names
    return {u.alias: f"_t{i}" for i, u in enumerate(order)}


def _canon(e: exp.Expression, amap: dict[str, str]) -> str | None:
    if e.find(exp.Select, exp.Window) is not None:
        return None
    cols = list(e.find_all(exp.Column))
    if any(col.table not in amap for col in cols):
        return None
    saved = [col.args.get("table") for col in cols]
    try:  # renamed in place for the text only (no copy: bodies can be large), then restored
        for col in cols:
            col.set("table", exp.to_identifier(amap[col.table]))
        token = _TEXTS.set(None)  # renamed text: not the memo's
        try:
            return _ptext(e)
        finally:
            _TEXTS.reset(token)
    finally:
        for col, old in zip(cols, saved, strict=True):
            col.set("table", old)


def body_text(b: Block) -> str | None:
    """A name for the one row of ``SELECT agg FROM t_1, .., t_n WHERE c_1 AND .. AND c_m`` (base
    tables only, no LEFT JOIN) that two queries share exactly when they state the same aggregate
    over the same tables under the same set of conjuncts (aliases renamed by table, conjuncts as
    :func:`drop_implied` leaves them, sorted).  Equal names mean the same query up to these
    steps, so the same single row: the prover then treats the unit as one shared table (any
    content, the same on both sides), which covers the actual row.  None for other shapes."""
    amap = _alias_map(b)
    if amap is None or not _own(b.outputs[0], exp.AggFunc):
        return None
    texts = [_canon(p, amap) for p in drop_implied(b.conds)]
    out = _canon(b.outputs[0], amap)
    if out is None or any(t is None for t in texts):
        return None
    return "|".join([",".join(sorted(u.type_key for u in b.units)), *sorted(str(t) for t in texts), "=>", out])


def body_key(b: Block) -> str | None:
    """:func:`body_text` as a table name (``_onerow_<hash>``)."""
    text = body_text(b)
    return None if text is None else "_onerow_" + hashlib.sha1(text.encode()).hexdigest()[:20]


def _fingerprint(b: Block) -> tuple[Any, ...] | None:
    """What two equivalent one-row bodies written differently (CNF vs DNF, order) still share:
    the tables, the aggregate, and the set of atomic predicates of their conjuncts."""
    amap = _alias_map(b)
    if amap is None:
        return None
    atoms: set[str] = set()
    for c in drop_implied(b.conds):
        stack = [c]
        while stack:
            n = stack.pop()
            if isinstance(n, exp.And | exp.Or | exp.Not | exp.Paren):
                stack.extend(n.iter_expressions())
                continue
            t = _canon(n, amap)
            if t is None:
                return None
            atoms.add(t)
    return (tuple(sorted(u.type_key for u in b.units)), _canon(b.outputs[0], amap), frozenset(atoms))


def _one_row_units(q: Query, out: list[Unit], depth: int = 0) -> None:
    if depth > 12:
        return
    if isinstance(q, smt.SetOp):
        for c in q.children:
            _one_row_units(c, out, depth + 1)
        return
    for u in [*q.units, *(lu for lu, _ in q.ljs)]:
        d = u.derived
        if d is None:
            continue
        if isinstance(d, Block) and _scalar_aggregate(d) and len(d.outputs) == 1 and len(u.columns) == 1:
            out.append(u)
        else:
            _one_row_units(d, out, depth + 1)


def pair_one_row_units(m1: Query, m2: Query, catalog: Catalog, binary_strings: bool) -> None:
    """Give a one-row unit of ``m2`` the name of one of ``m1`` when z3 proves their bodies
    equivalent (tried only for bodies with the same :func:`_fingerprint`, so that a query of many
    one-row units costs one check per unit, not one per pair); in place.  Same name, same row:
    the prover then matches the two units as one shared table."""
    u1s: list[Unit] = []
    u2s: list[Unit] = []
    _one_row_units(m1, u1s)
    _one_row_units(m2, u2s)
    if not u1s or not u2s:
        return
    keys1 = {u.type_key for u in u1s}
    keys2 = {u.type_key for u in u2s}
    open1 = [u for u in u1s if u.type_key not in keys2]
    open2 = [u for u in u2s if u.type_key not in keys1]
    if not open1 or not open2:
        return
    deadline = smt._DEADLINE.get()
    prover = smt.Prover(deadline if deadline is not None else time.monotonic() + 2.0,
                        frozenset(t.name.lower() for t in catalog.tables), binary_strings=binary_strings,
                        catalog=catalog)
    by_fp: dict[Any, list[Unit]] = {}
    for u in open1:
        assert isinstance(u.derived, Block)
        fp = _fingerprint(u.derived)
        if fp is not None:
            by_fp.setdefault(fp, []).append(u)
    used: set[int] = set()
    for u2 in open2:
        assert isinstance(u2.derived, Block)
        fp = _fingerprint(u2.derived)
        for u1 in by_fp.get(fp, []) if fp is not None else []:
            if id(u1) in used or u1.columns[0][1] != u2.columns[0][1]:
                continue
            if prover.equiv(u1.derived, u2.derived):
                used.add(id(u1))
                if not u1.type_key.startswith("table:"):
                    u1.type_key = f"table:_onerow_p{next(_FRESH)}"
                u2.type_key = u1.type_key
                break


def filter_normal_form(q: Block, catalog: Catalog) -> Block:
    """The normal form of the module docstring for one (already normalised) block."""
    token = _TEXTS.set({})
    try:
        return _filter_normal_form(q, catalog)
    finally:
        _TEXTS.reset(token)


def _filter_normal_form(q: Block, catalog: Catalog) -> Block:
    if q.group is not None and not q.group and q.having is None and not _own_aggs(q):
        # smt.Builder counts aggregates inside scalar subqueries as the block's own (it asks
        # ``find(AggFunc)``); a block whose only aggregates are in subqueries does not aggregate
        q = Block(q.units, q.ljs, q.conds, None, None, q.outputs, q.out_kinds)
    if _scalar_aggregate(q) and any(_own(o, exp.Filter) for o in q.outputs):
        split = _split_parts(q)
        if split is None:
            return q
        parts, outputs = split
        return Block([_unit(a, body) for a, body in parts], [], [], None, None, outputs, q.out_kinds)
    if q.group is not None:
        return q
    q = _split_derived(q)
    return _subqueries_to_units(q, catalog)


def _split_derived(q: Block) -> Block:
    """Case 3: one-row aggregate derived tables of a non-aggregating block become their parts."""
    units: list[Unit] = []
    repl_all: list[tuple[str, dict[str, exp.Expression]]] = []
    changed = False
    for u in q.units:
        d = u.derived
        if d is None or not _scalar_aggregate(d):
            units.append(u)
            continue
        assert isinstance(d, Block)
        names = [n for n, _, _ in u.columns]
        if len(names) != len(d.outputs) or len(set(names)) != len(names):
            units.append(u)
            continue
        if len(d.outputs) == 1 and isinstance(d.outputs[0], exp.AggFunc) and not d.ljs:
            key = body_key(d)  # already one bare aggregate: its own part, named by its text
            units.append(Unit(u.alias, "table:" + key, [(n, k, True) for n, k, _ in u.columns], d) if key else u)
            changed = changed or key is not None
            continue
        split = _split_parts(d)
        if split is None:
            units.append(u)
            continue
        parts, outputs = split
        units.extend(_unit(a, body) for a, body in parts)
        repl_all.append((u.alias, dict(zip(names, outputs, strict=True))))
        changed = True
    if not changed:
        return q
    conds, outputs, ljs = list(q.conds), list(q.outputs), list(q.ljs)
    for alias, repl in repl_all:
        conds = [smt._substitute(c, alias, repl) for c in conds]
        outputs = [smt._substitute(o, alias, repl) for o in outputs]
        ljs = [(lu, smt._substitute(on, alias, repl)) for lu, on in ljs]
    return Block(units, ljs, conds, None, None, outputs, q.out_kinds)


def _uncorrelated(sel: exp.Expression) -> bool:
    inner = ({t.alias_or_name for t in sel.find_all(exp.Table)} | {a.name for a in sel.find_all(exp.TableAlias)}
             | {c.alias_or_name for c in sel.find_all(exp.CTE)})
    return all(c.table and c.table in inner for c in sel.find_all(exp.Column))


def _scalar_subquery_body(sub: exp.Subquery) -> exp.Select | None:
    sel = sub.this
    if not isinstance(sel, exp.Select) or len(sel.expressions) != 1:
        return None
    if any(sel.args.get(k) for k in ("group", "having", "limit", "offset", "fetch", "qualify", "windows",
                                      "distinct", "laterals", "pivots")):
        return None
    if sel.find(exp.Window) is not None or not _own(sel.expressions[0], exp.AggFunc):
        return None
    if any(_own(p, exp.Column) and any(not c.find_ancestor(exp.AggFunc) for c in _own(p, exp.Column))
           for p in sel.expressions):
        return None
    return sel if _uncorrelated(sel) else None


def _subqueries_to_units(q: Block, catalog: Catalog) -> Block:
    """Case 2: uncorrelated scalar aggregate subqueries of WHERE and SELECT become one-row units."""
    found: dict[str, tuple[str, Block]] = {}
    repl: dict[int, exp.Expression] = {}
    for e in [*q.conds, *q.outputs]:
        for sub in _own(e, exp.Subquery):
            if not isinstance(sub, exp.Subquery) or isinstance(sub.parent, exp.Exists | exp.In | exp.Any | exp.All):
                continue  # a set, not a value
            sel = _scalar_subquery_body(sub)
            if sel is None:
                continue
            key = sel.sql("duckdb")
            if key not in found:
                try:
                    body = smt.normalize(smt.Builder(catalog).query(sel.copy()), catalog)
                except smt.Outside:
                    continue
                if not isinstance(body, Block) or not _scalar_aggregate(body) or len(body.outputs) != 1:
                    continue  # normalisation changed its shape: leave the subquery as it is
                found[key] = (f"_s{next(_FRESH)}", body)
            repl[id(sub)] = exp.column("_v", table=found[key][0])
    if not found:
        return q
    units = [*q.units, *(_unit(a, body) for a, body in found.values())]
    return Block(units, q.ljs, [_replace_nodes(c, repl) for c in q.conds],
                 None, None, [_replace_nodes(o, repl) for o in q.outputs], q.out_kinds)


# ---------------------------------------------------------------------------------------------
# LIMIT on a one-row query
# ---------------------------------------------------------------------------------------------

def _one_row(e: exp.Expression, ctes: dict[str, exp.Expression] | None = None, depth: int = 0) -> bool:
    """``e`` returns exactly one row on every database, by its shape (see the docstring)."""
    if depth > 20:
        return False
    if isinstance(e, exp.Subquery):
        return _one_row(e.this, ctes, depth + 1)
    if not isinstance(e, exp.Select):
        return False
    ctes = dict(ctes or {})
    w = e.args.get("with_") or e.args.get("with")
    if w is not None:
        if w.args.get("recursive"):
            return False
        for cte in w.expressions:
            ctes[cte.alias_or_name] = cte.this
    if any(e.args.get(k) for k in ("group", "having", "qualify", "windows", "limit", "offset", "fetch",
                                    "laterals", "pivots")):
        return False
    if e.find(exp.Window) is not None:
        return False
    if any(_own(p, exp.AggFunc) for p in e.expressions):
        return True  # an aggregate without GROUP BY / HAVING: one row, whatever FROM and WHERE hold
    frm = e.args.get("from_") or e.args.get("from")
    if e.args.get("where") is not None:
        return False
    if frm is None:
        return not e.args.get("joins")
    if frm.expressions:
        return False
    items = [frm.this]
    for j in e.args.get("joins") or []:
        if j.args.get("on") is not None or j.args.get("using") or j.args.get("side") or j.args.get("method") or \
                (j.args.get("kind") or "CROSS").upper() not in ("CROSS", "INNER", ""):
            return False
        items.append(j.this)
    return all((isinstance(i, exp.Subquery) and _one_row(i.this, ctes, depth + 1))
               or (isinstance(i, exp.Table) and not i.args.get("joins") and i.name in ctes
                   and _one_row(ctes[i.name], ctes, depth + 1)) for i in items)


def one_row_limit(e: exp.Expression) -> exp.Expression:
    """``q [ORDER BY ..] LIMIT n`` with n >= 1 (no OFFSET) is ``q`` when ``q`` is one row."""
    lim = e.args.get("limit")
    if lim is None or e.args.get("offset") or e.args.get("fetch") or not isinstance(lim, exp.Limit):
        return e
    n = lim.expression
    if not (isinstance(n, exp.Literal) and not n.is_string and n.this.isdigit() and int(n.this) >= 1):
        return e
    body = e.copy()
    body.set("limit", None)
    body.set("order", None)
    return body if _one_row(body) else e
