"""Extensions of the proof tiers beyond the SMT tier's core fragment.

Each proof here is sound under SQL bag semantics with NULLs; its precondition is stated in its
docstring and checked in code (anything else answers "no proof", never a guess).

* :func:`alpha_equivalent`: the two queries are the same text up to a one-to-one renaming of
  table aliases (Calcite prints a rewrite that changed nothing with fresh aliases).
* :func:`constant_proof`: a query whose every table read lies in a provably empty part (``WHERE
  FALSE``, ``LIMIT 0``, an inner join with an empty side, ...) or reads no table at all returns
  the same rows on every database; two such queries are equivalent iff they agree on one
  database, so DuckDB evaluates both on the empty database of the schema and compares the bags.
* :func:`simplify_outer_joins`: ``a FULL JOIN b ON c WHERE w`` where a conjunct of ``w`` is never
  TRUE on a row whose ``b`` columns are all NULL is ``a LEFT JOIN b`` (symmetrically RIGHT, both:
  INNER); a RIGHT JOIN whose left side is null-rejected the same way is an INNER JOIN.
* :func:`flatten_intersect`: ``(x INTERSECT y) INTERSECT z`` = ``x INTERSECT y INTERSECT z`` for
  INTERSECT (set) and INTERSECT ALL (bag: the minimum of multiplicities is associative).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any

import duckdb
from sqlglot import exp

from sqlsluice.databases import Catalog

log = logging.getLogger(__name__)

_NONDETERMINISTIC = {"rand", "random", "uuid", "gen_random_uuid", "now", "current_timestamp", "nextval",
                     "setseed", "current_time", "current_date", "localtimestamp", "localtime", "currval",
                     "get_current_time", "today", "transaction_timestamp"}


# ---------------------------------------------------------------------------------------------
# alpha-equivalence
# ---------------------------------------------------------------------------------------------

def _alias_canonical(e: exp.Expression) -> str | None:
    """Text of ``e`` with every table alias renamed ``__a<i>`` in order of first appearance, or
    None when a precondition fails: no CTEs, every table / derived table has an alias, and every
    column qualifier names one of those aliases (so the renaming is one-to-one on the names that
    resolve to relations and captures nothing)."""
    if e.find(exp.With, exp.CTE) is not None:
        return None
    names: dict[str, str] = {}
    for n in e.walk():
        if isinstance(n, exp.Table | exp.Subquery) and not isinstance(n.parent, exp.Exists | exp.In):
            if isinstance(n, exp.Subquery) and n.args.get("alias") is None:
                continue  # a scalar / IN / EXISTS subquery: no alias
            a = n.args.get("alias")
            if a is None or not a.name:
                if isinstance(n, exp.Table):
                    return None
                continue
            if a.name not in names:
                names[a.name] = f"__a{len(names)}"
        elif isinstance(n, exp.Values):
            a = n.args.get("alias")
            if a is not None and a.name and a.name not in names:
                names[a.name] = f"__a{len(names)}"
    for col in e.find_all(exp.Column):
        if col.table and col.table not in names:
            return None
    if any(n.startswith("__a") for n in names):
        return None  # an alias already spelled like a canonical name
    if any(not col.table and col.name in names for col in e.find_all(exp.Column)):
        return None  # an unqualified name that could denote a whole row of a relation

    return rename_aliases(e.copy(), names).sql("duckdb")


def rename_aliases(e: exp.Expression, names: dict[str, str]) -> exp.Expression:
    """``e`` (changed in place) with table aliases and the column qualifiers that use them renamed."""

    def ren(n: exp.Expression) -> exp.Expression:
        if isinstance(n, exp.TableAlias) and n.name in names:
            n = n.copy()
            n.set("this", exp.to_identifier(names[n.name]))
        elif isinstance(n, exp.Column) and n.table in names:
            n = n.copy()
            n.set("table", exp.to_identifier(names[n.table]))
        return n

    return e.transform(ren, copy=False)


def alpha_equivalent(e1: exp.Expression, e2: exp.Expression) -> bool:
    """Both queries are one query up to a one-to-one renaming of table aliases (declarations and
    references renamed together), which does not change what a query means."""
    c1 = _alias_canonical(e1)
    return c1 is not None and c1 == _alias_canonical(e2)


# ---------------------------------------------------------------------------------------------
# emptiness and constant queries
# ---------------------------------------------------------------------------------------------

_CMP = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.Like, exp.ILike)


def never_true(p: exp.Expression) -> bool:
    """A predicate that is FALSE or UNKNOWN on every row (so a WHERE/HAVING/ON drops every row)."""
    if isinstance(p, exp.Paren):
        return never_true(p.this)
    if isinstance(p, exp.Boolean):
        return not p.this
    if isinstance(p, exp.Null):
        return True
    if isinstance(p, exp.And):
        return never_true(p.this) or never_true(p.expression)
    if isinstance(p, exp.Or):
        return never_true(p.this) and never_true(p.expression)
    if isinstance(p, exp.Not):
        return isinstance(p.this, exp.Boolean) and bool(p.this.this)
    if isinstance(p, _CMP):
        return any(isinstance(_unparen(x), exp.Null) for x in (p.this, p.expression))
    return False


def _unparen(e: exp.Expression) -> exp.Expression:
    while isinstance(e, exp.Paren):
        e = e.this
    return e


def _limit_zero(q: exp.Expression) -> bool:
    """``LIMIT 0`` / ``FETCH NEXT 0 ROWS ONLY`` (not WITH TIES or PERCENT)."""
    for k in ("limit", "fetch"):
        node = q.args.get(k)
        if isinstance(node, exp.Limit):
            x = node.expression
        elif isinstance(node, exp.Fetch):
            opts = node.args.get("limit_options")
            if opts is not None and (opts.args.get("percent") or opts.args.get("with_ties")):
                continue
            x = node.args.get("count")
        else:
            continue
        x = _unparen(x) if isinstance(x, exp.Expression) else x
        if isinstance(x, exp.Literal) and not x.is_string and x.this.strip() == "0":
            return True
    return False


def _scalar_aggregate(s: exp.Select) -> bool:
    """No GROUP BY but an aggregate in the select list or a HAVING: one row even on empty input."""
    if s.args.get("group") is not None:
        return False
    if s.args.get("having") is not None:
        return True
    return any(_has_agg(p) for p in s.expressions)


def _has_agg(e: exp.Expression) -> bool:
    for a in e.find_all(exp.AggFunc):
        if a.find_ancestor(exp.Window) is None and a.find_ancestor(exp.Select) is e.find_ancestor(exp.Select):
            return True
    return False


def _source(j: exp.Expression) -> exp.Expression:
    return j.this if isinstance(j, exp.Join | exp.From) else j


class _Facts:
    """Emptiness and constancy of query nodes, memoised by node identity."""

    def __init__(self) -> None:
        self.memo_empty: dict[int, bool] = {}

    def empty(self, q: exp.Expression) -> bool:
        """True only when ``q`` returns no row on every database."""
        k = id(q)
        if k not in self.memo_empty:
            self.memo_empty[k] = self._empty(q)
        return self.memo_empty[k]

    def _empty(self, q: exp.Expression) -> bool:
        if isinstance(q, exp.Subquery):
            return _limit_zero(q) or self.empty(q.this)
        if isinstance(q, exp.Table):
            return False
        if isinstance(q, exp.Values):
            return not q.expressions
        if _limit_zero(q):
            return True
        if isinstance(q, exp.Union):
            return self.empty(q.this) and self.empty(q.expression)
        if isinstance(q, exp.Intersect):
            return self.empty(q.this) or self.empty(q.expression)
        if isinstance(q, exp.Except):
            return self.empty(q.this)
        if isinstance(q, exp.Select):
            having = q.args.get("having")
            if having is not None and never_true(having.this):
                return True
            if _scalar_aggregate(q):
                return False
            return self.input_empty(q)
        return False

    def input_empty(self, s: exp.Select) -> bool:
        """The FROM / JOIN / WHERE of ``s`` produce no row on any database."""
        where = s.args.get("where")
        if where is not None and never_true(where.this):
            return True
        frm = s.args.get("from_") or s.args.get("from")
        if frm is None:
            return False
        joins = s.args.get("joins") or []
        if frm.expressions:
            return False  # comma list: not modelled
        # the rows so far are empty iff ...
        empty = self.empty(frm.this)
        for j in joins:
            side = (j.args.get("side") or "").upper()
            kind = (j.args.get("kind") or "").upper()
            if j.args.get("method") or kind in ("SEMI", "ANTI", "ASOF", "POSITIONAL") or kind not in (
                    "", "INNER", "CROSS", "OUTER"):
                return False
            right_empty = self.empty(j.this)
            on = j.args.get("on")
            if side == "":
                empty = empty or right_empty or (on is not None and never_true(on))
            elif side == "LEFT":
                pass  # every left row survives
            elif side == "RIGHT":
                empty = right_empty
            else:  # FULL
                empty = empty and right_empty
        return empty

    def constant(self, q: exp.Expression) -> bool:
        """``q`` returns the same rows on every database: it is empty, or every table it reads
        lies in a provably empty part and it calls nothing non-deterministic or order-dependent."""
        if self.empty(q):
            return True
        if isinstance(q, exp.Table):
            return False
        if isinstance(q, exp.Subquery):
            return (q.args.get("limit") is None and q.args.get("offset") is None and q.args.get("fetch") is None
                    and self.constant(q.this))
        if isinstance(q, exp.Values):
            return all(self._const_expr(r) for r in q.expressions)
        if isinstance(q, exp.Union | exp.Intersect | exp.Except):
            if any(q.args.get(k) is not None for k in ("limit", "offset", "fetch")):
                return False
            return self.constant(q.this) and self.constant(q.expression)
        if not isinstance(q, exp.Select):
            return False
        if any(q.args.get(k) is not None for k in ("limit", "offset", "fetch", "qualify", "windows",
                                                   "laterals", "sample", "with_", "with")):
            return False  # LIMIT without a total order, windows: order-dependent
        frm = q.args.get("from_") or q.args.get("from")
        if self.input_empty(q):
            # no row reaches the select list: only a scalar aggregate answers, from empty input
            parts: list[exp.Expression] = [*q.expressions]
            if q.args.get("having") is not None:
                parts.append(q.args["having"].this)
            return all(self._const_expr(p, empty_input=True) for p in parts)
        if frm is not None:
            if frm.expressions:
                return False
            if not self.constant(frm.this):
                return False
            for j in q.args.get("joins") or []:
                if not self.constant(j.this) or (j.args.get("on") is not None
                                                 and not self._const_expr(j.args["on"])):
                    return False
        parts = [*q.expressions]
        for k in ("where", "having", "group", "order"):
            node = q.args.get(k)
            if node is not None:
                parts.append(node)
        return all(self._const_expr(p) for p in parts)

    def _const_expr(self, e: exp.Expression, empty_input: bool = False) -> bool:
        """Deterministic, no window; its subqueries are constant queries."""
        for n in e.walk():
            if isinstance(n, exp.Window):
                return False
            if isinstance(n, exp.Rand | exp.CurrentTimestamp | exp.CurrentDate | exp.CurrentTime):
                return False
            if isinstance(n, exp.Anonymous | exp.Func):
                name = (n.name if isinstance(n, exp.Anonymous) else type(n).__name__).lower()
                if name in _NONDETERMINISTIC:
                    return False
            if isinstance(n, exp.Select | exp.Union | exp.Intersect | exp.Except):
                if n is not e and not self.constant(n):
                    return False
        return True


def constant_query(q: exp.Expression) -> bool:
    """True when ``q`` returns the same rows on every database (see :meth:`_Facts.constant`)."""
    return _Facts().constant(q)


def empty_query(q: exp.Expression) -> bool:
    """True when ``q`` returns no row on any database."""
    return _Facts().empty(q)


def constant_proof(d1: str, d2: str, e1: exp.Expression, e2: exp.Expression, catalog: Catalog, *,
                   semantics: str = "bag", ordered: bool = False) -> str | None:
    """Both queries are constant (:func:`constant_query`): run them on the empty database of
    ``catalog`` (DuckDB SQL ``d1``/``d2``) and compare exactly (bags, sets, or lists when
    ``ordered``).  Returns the reason for a proof, or None (not constant, an error, or different
    rows; differential testing reports a difference itself)."""
    if not (constant_query(e1) and constant_query(e2)):
        return None
    if empty_query(e1) and empty_query(e2):
        return "both queries are empty on every database"
    con = duckdb.connect()
    try:
        for ddl in catalog.to_ddl("duckdb", foreign_keys=False):
            con.execute(ddl)
        r1 = con.execute(d1).fetchall()
        r2 = con.execute(d2).fetchall()
    except duckdb.Error:
        return None
    finally:
        con.close()
    if not _same_rows(r1, r2, semantics, ordered):
        return None
    return f"both queries are constant (independent of the database) and return the same {len(r1)} row(s)"


def _exact(v: Any) -> Any:
    if isinstance(v, float) and v != v:
        return ("nan", id(v))  # NaN never matches anything (no proof rather than a guess)
    if isinstance(v, list | tuple):
        return tuple(_exact(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _exact(x)) for k, x in v.items()))
    return v


def _same_rows(r1: list[tuple[Any, ...]], r2: list[tuple[Any, ...]], semantics: str, ordered: bool) -> bool:
    a = [tuple(_exact(x) for x in r) for r in r1]
    b = [tuple(_exact(x) for x in r) for r in r2]
    if any(len(r) != len(s) for r in a for s in b[:1]):
        return False
    if ordered:
        return a == b
    if semantics == "set":
        return set(a) == set(b)
    return Counter(a) == Counter(b)


# ---------------------------------------------------------------------------------------------
# outer-join simplification and INTERSECT flattening
# ---------------------------------------------------------------------------------------------

_STRICT = (exp.Column, exp.Literal, exp.Paren, exp.Add, exp.Sub, exp.Mul, exp.Neg, exp.Cast, exp.Identifier,
           exp.DataType, exp.DataTypeParam)


def _strict_on(e: exp.Expression, aliases: set[str]) -> bool:
    """NULL whenever every column of ``aliases`` is NULL: built of NULL-propagating operators, and
    it reads at least one column, all from ``aliases``."""
    e = _unparen(e)
    cols = list(e.find_all(exp.Column))
    return bool(cols) and all(c.table in aliases for c in cols) and all(isinstance(n, _STRICT) for n in e.walk())


def rejects_null(p: exp.Expression, aliases: set[str]) -> bool:
    """``p`` is never TRUE on a row whose columns of ``aliases`` are all NULL."""
    p = _unparen(p)
    if isinstance(p, exp.And):
        return rejects_null(p.this, aliases) or rejects_null(p.expression, aliases)
    if isinstance(p, exp.Or):
        return rejects_null(p.this, aliases) and rejects_null(p.expression, aliases)
    if isinstance(p, _CMP):
        return _strict_on(p.this, aliases) or _strict_on(p.expression, aliases)
    if isinstance(p, exp.Between):
        return _strict_on(p.this, aliases)
    if isinstance(p, exp.In) and p.args.get("query") is None:
        return _strict_on(p.this, aliases)
    if isinstance(p, exp.Not) and isinstance(_unparen(p.this), exp.Is):
        inner = _unparen(p.this)
        return isinstance(inner.expression, exp.Null) and _strict_on(inner.this, aliases)
    return False


def _aliases(src: exp.Expression) -> set[str]:
    return {src.alias_or_name} if src.alias_or_name else set()


def simplify_outer_joins(tree: exp.Expression) -> exp.Expression:
    """FULL/RIGHT JOINs whose NULL-padded rows the WHERE clause always rejects become LEFT/INNER
    joins (a padded row of side X has every column of X NULL; a WHERE conjunct that is never TRUE
    on such a row removes all of them, and the rest of the join is unchanged).  Only for a SELECT
    whose joins are the FROM item and plain joins (no USING/NATURAL), on a copy."""
    tree = tree.copy()
    ctes = {c.alias_or_name: c.this for c in tree.find_all(exp.CTE)}
    for s in list(tree.find_all(exp.Select)):
        _drop_empty_outer(s, ctes)
        where = s.args.get("where")
        joins = s.args.get("joins") or []
        frm = s.args.get("from_") or s.args.get("from")
        if where is None or not joins or frm is None or frm.expressions:
            continue
        left: set[str] = _aliases(frm.this)
        for ji, j in enumerate(joins):
            side = (j.args.get("side") or "").upper()
            kind = (j.args.get("kind") or "").upper()
            right = _aliases(j.this)
            plain = not j.args.get("using") and not j.args.get("method") and kind in ("", "OUTER") and left and right
            # later joins must keep padded rows padded and create no new padded rows of this
            # join's sides: only inner and LEFT joins may follow
            later_ok = all((k.args.get("side") or "").upper() in ("", "LEFT") for k in joins[ji + 1:])
            if plain and later_ok and side in ("FULL", "RIGHT"):
                drop_left_pad = rejects_null(where.this, left)  # rows with the left side padded
                drop_right_pad = side == "FULL" and rejects_null(where.this, right)
                if side == "FULL":
                    if drop_left_pad and drop_right_pad:
                        j.set("side", None)
                    elif drop_left_pad:
                        j.set("side", "LEFT")
                    elif drop_right_pad:
                        j.set("side", "RIGHT")
                elif drop_left_pad:
                    j.set("side", None)
                if j.args.get("side") is None:
                    j.set("kind", None)
            left |= right
    return tree


def _drop_empty_outer(s: exp.Select, ctes: dict[str, exp.Expression]) -> None:
    """``x LEFT JOIN e ON c`` (also ``e RIGHT JOIN x``, and ``FULL JOIN`` either way) where ``e`` is
    provably empty (:func:`empty_query`) is ``x`` with every column of ``e`` NULL: the join is
    dropped and ``e``'s columns become NULL literals (in place).  Only for a SELECT with exactly
    one plain join, and when no nested scope of ``s`` reuses ``e``'s alias."""
    from sqlsluice.verifiers.flatten import inside as _inside

    joins = s.args.get("joins") or []
    frm = s.args.get("from_") or s.args.get("from")
    if len(joins) != 1 or frm is None or frm.expressions:
        return
    j = joins[0]
    side = (j.args.get("side") or "").upper()
    kind = (j.args.get("kind") or "").upper()
    if j.args.get("using") or j.args.get("method") or kind not in ("", "OUTER") or side not in ("LEFT", "RIGHT", "FULL"):
        return

    def empty(src: exp.Expression) -> bool:
        if isinstance(src, exp.Table) and not src.args.get("joins") and src.name in ctes and not src.args.get("db"):
            return empty_query(ctes[src.name])
        return isinstance(src, exp.Subquery | exp.Values) and empty_query(src)

    left, right = frm.this, j.this
    if side in ("LEFT", "FULL") and empty(right):
        gone, keep = right, left
    elif side in ("RIGHT", "FULL") and empty(left):
        gone, keep = left, right
    else:
        return
    alias = gone.alias_or_name
    if not alias or not keep.alias_or_name:
        return
    for n in s.find_all(exp.Table, exp.Subquery, exp.Values):
        if n is not gone and n.alias_or_name == alias and n.args.get("alias") is not None:
            return
    for col in list(s.find_all(exp.Column)):
        if col.table == alias and not _inside(col, gone):
            col.replace(exp.Null())
    frm.set("this", keep.copy())
    s.set("joins", None)


def flatten_intersect(q: Any) -> Any:
    """INTERSECT (DISTINCT or ALL) children that are INTERSECTs of the same kind are spliced in:
    both are associative and commutative (set intersection; minimum of multiplicities)."""
    from sqlsluice.verifiers.smt import SetOp, _unwrap

    if not isinstance(q, SetOp) or q.kind != "intersect":
        return q
    flat: list[Any] = []
    for c in q.children:
        c = flatten_intersect(_unwrap(c))
        if isinstance(c, SetOp) and c.kind == "intersect" and c.distinct == q.distinct:
            flat.extend(c.children)
        else:
            flat.append(c)
    return SetOp("intersect", q.distinct, flat, q.out_kinds)


def extra_proof(e1: exp.Expression, e2: exp.Expression, d1: str, d2: str, catalog: Catalog, *,
                semantics: str = "bag", ordered: bool = False) -> tuple[str, str] | None:
    """The proofs of this module that need no SMT: ``(method, reason)`` or None."""
    try:
        if alpha_equivalent(e1, e2):
            return "alpha", "the same query up to a one-to-one renaming of table aliases"
        reason = constant_proof(d1, d2, e1, e2, catalog, semantics=semantics, ordered=ordered)
    except Exception:  # a bug here must not stop the other tiers (no proof instead)
        log.exception("smt_extend failed on %r vs %r", d1[:200], d2[:200])
        return None
    if reason is not None:
        return "constant", reason
    return None


# ---------------------------------------------------------------------------------------------
# ORDER BY ... LIMIT / OFFSET (Top-k)
# ---------------------------------------------------------------------------------------------

_INT32 = {"INT", "INTEGER", "INT4", "SMALLINT", "INT2", "TINYINT", "INT1"}
_WIDER = {exp.DataType.Type.INT, exp.DataType.Type.BIGINT, exp.DataType.Type.INT128, exp.DataType.Type.DOUBLE}


def _tables_of(s: exp.Select, catalog: Catalog) -> dict[str, Any]:
    """Alias -> catalog table for the base tables in the FROM / JOINs of ``s``."""
    out: dict[str, Any] = {}
    frm = s.args.get("from_") or s.args.get("from")
    srcs = ([frm.this] if frm is not None else []) + [j.this for j in s.args.get("joins") or []]
    for src in srcs:
        if isinstance(src, exp.Table) and isinstance(src.this, exp.Identifier):
            t = catalog.table(src.name)
            if t is not None:
                out[src.alias_or_name] = t
    return out


def _strip_monotone(k: exp.Expression, tables: dict[str, Any]) -> exp.Expression:
    """``CAST(c AS INTEGER/BIGINT/HUGEINT/DOUBLE)`` of a 32-bit integer column orders rows exactly
    as ``c`` does (strictly increasing, exact, NULL to NULL): sort by ``c`` instead."""
    while isinstance(k, exp.Cast) and not isinstance(k, exp.TryCast) and isinstance(k.to, exp.DataType):
        arg = _unparen(k.this)
        if not isinstance(arg, exp.Column) or arg.table not in tables or k.to.this not in _WIDER or k.to.expressions:
            break
        col = tables[arg.table].column(arg.name)
        if col is None or str(col.type).upper() not in _INT32:
            break
        k = arg
    return k



def _count(node: Any) -> int | None:
    """The integer of a LIMIT / OFFSET / FETCH clause (None when absent; -1 when not a plain count)."""
    if node is None:
        return None
    if isinstance(node, exp.Fetch):
        opts = node.args.get("limit_options")
        if opts is not None and (opts.args.get("percent") or opts.args.get("with_ties")):
            return -1
        x = node.args.get("count")
    else:
        if not isinstance(node, exp.Limit | exp.Offset) or node.args.get("offset") is not None or node.args.get(
                "expressions"):
            return -1  # LIMIT o, n / LIMIT .. BY: not modelled
        x = node.expression
    x = _unparen(x) if isinstance(x, exp.Expression) else x
    if isinstance(x, exp.Literal) and not x.is_string and x.this.strip().isdigit():
        return int(x.this)
    return -1


@dataclass
class _Top:
    body: exp.Select  # the query without ORDER BY / LIMIT / OFFSET, keys appended as outputs _k<i>
    dirs: list[tuple[bool, bool]]  # (descending, nulls first) per key
    limit: int | None
    offset: int | None
    total: bool  # the sorted body is one list: keys unique (a primary key) or tied rows identical


def _top_of_select(s: exp.Select, catalog: Catalog) -> _Top | None:
    """``SELECT f FROM .. ORDER BY k LIMIT l OFFSET o`` (keys qualified columns / expressions of
    the input, no DISTINCT / GROUP BY / window): body ``SELECT f, k AS _k0.. FROM ..``."""
    order = s.args.get("order")
    if order is None or any(s.args.get(k) is not None for k in ("distinct", "group", "having", "qualify",
                                                                "windows", "with_", "with")):
        return None
    if s.find(exp.Window) is not None:
        return None
    limit = _count(s.args.get("limit")) if not isinstance(s.args.get("limit"), exp.Fetch) else None
    fetch = s.args.get("fetch") if s.args.get("fetch") is not None else (
        s.args.get("limit") if isinstance(s.args.get("limit"), exp.Fetch) else None)
    if fetch is not None:
        if limit is not None:
            return None
        limit = _count(fetch)
    offset = _count(s.args.get("offset"))
    if (limit is None and offset is None) or limit == -1 or offset == -1:
        return None
    tables = _tables_of(s, catalog)
    keys: list[exp.Expression] = []
    dirs: list[tuple[bool, bool]] = []
    for o in order.expressions:
        k = o.this if isinstance(o, exp.Ordered) else o
        if isinstance(k, exp.Literal) or any(not c.table for c in k.find_all(exp.Column)) or k.find(exp.Select):
            return None  # a position or an output alias: not an expression of the input
        keys.append(_strip_monotone(k, tables))
        dirs.append((bool(o.args.get("desc")), bool(o.args.get("nulls_first"))) if isinstance(o, exp.Ordered)
                    else (False, False))
    body = s.copy()
    for k in ("order", "limit", "offset", "fetch"):
        body.set(k, None)
    outputs = _outputs_of(s)
    covered = outputs is not None and all(any(o.sql().lower() == k.sql().lower() for k in keys) for o in outputs)
    if covered and limit is not None:
        _drop_branch_tops(body, keys, dirs, (offset or 0) + limit)
    body.set("expressions", [*body.expressions, *[exp.alias_(k.copy(), f"_k{i}") for i, k in enumerate(keys)]])
    return _Top(body, dirs, limit, offset, covered or _keys_unique(s, keys, tables))


def _outputs_of(s: exp.Select) -> list[exp.Expression] | None:
    """The output expressions of ``s``; a lone ``*`` over one derived table is its columns."""
    exprs = s.expressions
    if len(exprs) == 1 and isinstance(exprs[0], exp.Star):
        frm = s.args.get("from_") or s.args.get("from")
        if frm is None or frm.expressions or s.args.get("joins") or not isinstance(frm.this, exp.Subquery):
            return None
        sub = frm.this
        names = sub.this.named_selects if isinstance(sub.this, exp.Query) else []
        if not sub.alias_or_name or not names or len({n.lower() for n in names}) != len(names):
            return None
        return [exp.column(n, table=sub.alias_or_name) for n in names]
    if any(p.is_star for p in exprs):
        return None
    return [p.this if isinstance(p, exp.Alias) else p for p in exprs]


def _drop_branch_tops(body: exp.Select, keys: list[exp.Expression], dirs: list[tuple[bool, bool]], n: int) -> None:
    """``SELECT * FROM (b1 UNION ALL b2 ..) t ORDER BY k LIMIT l OFFSET o`` whose keys cover every
    output column (tied rows are identical): the first n = o + l rows of the union are the first n
    of the union of each branch's first n, so a branch ``ORDER BY`` the same keys (same output
    positions and directions) ``LIMIT m`` with m >= n may drop its ORDER BY and LIMIT (in place)."""
    frm = body.args.get("from_") or body.args.get("from")
    if frm is None or not isinstance(frm.this, exp.Subquery) or not isinstance(frm.this.this, exp.Union):
        return
    alias = frm.this.alias_or_name
    union = frm.this.this
    names = [x.lower() for x in union.named_selects]
    pos = []
    for k in keys:
        if not isinstance(k, exp.Column) or k.table != alias or k.name.lower() not in names:
            return
        pos.append(names.index(k.name.lower()))
    branches: list[exp.Expression] = []

    def walk(q: exp.Expression) -> bool:
        if isinstance(q, exp.Subquery):
            return walk(q.this)
        if isinstance(q, exp.Union):
            if q.args.get("distinct") or any(q.args.get(a) is not None for a in ("order", "limit", "offset", "fetch")):
                return False
            return walk(q.this) and walk(q.expression)
        branches.append(q)
        return True

    if not walk(union):
        return
    for b in branches:
        if not isinstance(b, exp.Select) or b.args.get("order") is None or b.args.get("offset") is not None:
            continue
        lim = b.args.get("limit") if b.args.get("limit") is not None else b.args.get("fetch")
        m = _count(lim) if lim is not None else None
        if m is None or m == -1 or m < n or b.args.get("distinct") or b.args.get("group") or b.find(exp.Window):
            continue
        outs = [(p.this if isinstance(p, exp.Alias) else p).sql().lower() for p in b.expressions]
        bpos, bdirs = [], []
        for o in b.args["order"].expressions:
            k = o.this if isinstance(o, exp.Ordered) else o
            if k.sql().lower() not in outs:
                break
            bpos.append(outs.index(k.sql().lower()))
            bdirs.append((bool(o.args.get("desc")), bool(o.args.get("nulls_first"))) if isinstance(o, exp.Ordered)
                         else (False, False))
        else:
            if bpos == pos and bdirs == dirs:
                for a in ("order", "limit", "fetch"):
                    b.set(a, None)


def _keys_unique(s: exp.Select, keys: list[exp.Expression], tables: dict[str, Any]) -> bool:
    """One base table, no joins: the keys include every column of its primary key (NOT NULL and
    unique), so no two rows tie."""
    frm = s.args.get("from_") or s.args.get("from")
    if frm is None or frm.expressions or s.args.get("joins") or len(tables) != 1:
        return False
    alias, t = next(iter(tables.items()))
    if not isinstance(frm.this, exp.Table) or not t.primary_key:
        return False
    cols = {k.name.lower() for k in keys if isinstance(k, exp.Column) and k.table == alias}
    return all(c.lower() in cols for c in t.primary_key)


def top_form(e: exp.Expression, catalog: Catalog) -> _Top | None:
    """A query whose result is the first rows of a sorted input: ``SELECT .. ORDER BY .. LIMIT``,
    or a plain projection ``SELECT f(t.c) FROM (SELECT .. ORDER BY .. LIMIT ..) AS t`` of one
    (projection commutes with taking the first rows: the keys travel along as ``t._k<i>``)."""
    if not isinstance(e, exp.Select):
        return None
    top = _top_of_select(e, catalog)
    if top is not None or e.args.get("order") is not None:
        return top
    frm = e.args.get("from_") or e.args.get("from")
    if (frm is None or frm.expressions or not isinstance(frm.this, exp.Subquery) or e.args.get("joins")
            or any(e.args.get(k) is not None for k in ("where", "group", "having", "distinct", "limit", "offset",
                                                       "fetch", "qualify", "windows", "with_", "with"))):
        return None
    sub = frm.this
    alias = sub.alias_or_name
    if not alias or not isinstance(sub.this, exp.Select) or any(sub.args.get(k) for k in ("limit", "offset", "fetch")):
        return None
    if any(p.is_star or isinstance(p, exp.Star) or p.find(exp.Window, exp.AggFunc, exp.Select) for p in e.expressions):
        return None
    if any(c.table != alias for p in e.expressions for c in p.find_all(exp.Column)):
        return None
    inner = _top_of_select(sub.this, catalog)
    if inner is None:
        return None
    body = e.copy()
    bfrm = body.args.get("from_") or body.args.get("from")
    if bfrm is None:
        return None
    bfrm.this.set("this", inner.body)
    body.set("expressions", [*body.expressions, *[exp.column(f"_k{i}", table=alias) for i in range(len(inner.dirs))]])
    return _Top(body, inner.dirs, inner.limit, inner.offset, inner.total)


def top_proof(e1: exp.Expression, e2: exp.Expression, catalog: Catalog, dialect: str, timeout_s: float) -> Any:
    """Both queries take rows ``offset+1 .. offset+limit`` of a sorted input, with the same
    LIMIT/OFFSET, key directions and NULL placement, and the sort is deterministic on one side
    (keys unique, or every output column is a key so that tied rows are identical).  If the inputs with the keys as extra columns are equivalent bags, both
    sorted lists are equal, and so are their slices.  Returns an SMTResult, or None when the shape
    does not apply."""
    from sqlsluice.verifiers.smt import SMTResult, prove

    t1, t2 = top_form(e1, catalog), top_form(e2, catalog)
    if t1 is None or t2 is None:
        return None
    if (t1.limit, t1.offset, t1.dirs) != (t2.limit, t2.offset, t2.dirs):
        return SMTResult(False, "outside fragment: LIMIT/OFFSET or ORDER BY directions differ")
    if not (t1.total or t2.total):
        return SMTResult(False, "outside fragment: LIMIT/OFFSET without a provably total order")
    r = prove(t1.body, t2.body, catalog, dialect, timeout_s=timeout_s)
    if r.proved:
        return SMTResult(True, "proved: same sorted input (a deterministic sort) and same LIMIT/OFFSET; " + r.reason)
    return SMTResult(False, "LIMIT/OFFSET inputs: " + r.reason)


def first_wins(names: list[str]) -> list[str]:
    """Column names of a derived table as DuckDB resolves them: ``t.c`` names the FIRST column
    called ``c`` (case-insensitively); later namesakes get names no query can spell."""
    seen: set[str] = set()
    out = []
    for i, n in enumerate(names):
        low = n.lower()
        out.append(n if low not in seen else f"{n}\x00dup{i}")
        seen.add(low)
    return out


def pad_guarded(outputs: list[exp.Expression], inner: Any, strict: Any) -> list[exp.Expression] | None:
    """Outputs of ``LEFT JOIN (SELECT f(c) .. FROM t ..) d`` rewritten over ``t`` so that they are
    NULL on a NULL-padded row, as ``d.x`` is: a NULL-strict ``f`` as it is, any other as ``CASE WHEN
    t.n IS NULL THEN NULL ELSE f(c) END`` with ``n`` a NOT NULL column of the base table ``t``
    (NULL exactly on padded rows).  None when some output cannot be guarded (no NOT NULL column,
    or a subquery / aggregate / window in it)."""
    if all(strict(o) for o in outputs):
        return outputs
    nn = next((n for n, _, nullable in inner.columns if not nullable), None)
    if nn is None or not inner.type_key.startswith("table:"):
        return None
    out: list[exp.Expression] = []
    for o in outputs:
        if strict(o):
            out.append(o)
        elif o.find(exp.Select, exp.AggFunc, exp.Window) is not None or o.find(exp.Column) is None:
            return None  # constants are the semi-join markers of smt_semijoin.py: left to it
        else:
            pad = exp.Is(this=exp.column(nn, table=inner.alias), expression=exp.Null())
            out.append(exp.Case(ifs=[exp.If(this=pad, true=exp.Null())], default=o.copy()))
    return out


def witness(prover: Any, u: Any, cols: dict[str, Any], tag: str) -> list[Any]:
    """Facts about one row ``cols`` of a derived table ``u`` whose query is a block without LEFT
    JOINs: some row ``r`` of its FROM satisfies its WHERE conjuncts and every output that is not an
    aggregate equals its expression on ``r``.  For a grouped block ``r`` is a row of the (non-empty)
    group; a scalar aggregate (``GROUP BY ()``) may answer without any input row: no facts.  The
    fresh ``r`` is free in the assumptions, so a validity check reads them as "there is such an r".
    Only one level deep (the inner block's own derived tables get no facts)."""
    from sqlsluice.verifiers.smt import Block, Outside, Scope, _ns_eq, _unwrap

    q = u.derived
    if q is None or getattr(prover, "_witness_depth", 0) > 0:
        return []
    q = _unwrap(q)
    if (not isinstance(q, Block) or q.ljs or not q.units or len(q.units) > 3 or (q.group is not None and not q.group)
            or len(q.outputs) != len(u.columns)):
        return []
    prover._witness_depth = 1
    try:
        inner, out = prover.make_env(q.units, f"{tag}w")
        s = Scope(prover.enc, {iu.alias: inner[i] for i, iu in enumerate(q.units)}, tables=prover.tables)
        for c in q.conds:
            if c.find(exp.Select) is None:
                out.append(s.pred(c).t)
        for (name, _, _), o in zip(u.columns, q.outputs, strict=True):
            if o.find(exp.AggFunc, exp.Select, exp.Window) is not None or name not in cols:
                continue
            v = s.val(o)
            if v.kind != cols[name].kind or v.v is None:
                continue  # only same-kind values (no coercion that could fail)
            out.append(_ns_eq(cols[name], v, strict=True))  # an assumption: never a vacuous False
        return out
    except Outside:
        return []
    finally:
        prover._witness_depth = 0
