"""SQLite's meaning for the proof tiers: a DuckDB-semantics query with the same meaning, or no proof.

The proof tiers (canonical form, SMT, constant queries) reason with DuckDB's semantics.  For
``dialect="sqlite"`` each query is first *screened*: the constructs whose meaning differs between
SQLite and DuckDB are either modelled exactly in the query the proofs see, or the query is
declined (no proof is attempted; the differential tier, which runs on SQLite itself, decides).

Modelled exactly (on the declared column types; a value is assumed to be of its column's type,
as the differential tier's generated databases are):

- ``/`` between integers is integer division (truncating; by zero NULL): DuckDB's ``//``.
- a comparison of a column having an affinity with a literal of the other kind: the literal is
  converted as SQLite converts it (``text_col = 5`` -> ``text_col = '5'``,
  ``int_col = '5'`` -> ``int_col = 5``).
- a bare column of an aggregate query that its group's keys determine (a key of its table is
  grouped on): grouped on as well (the same groups, the same value).
- double-quoted names that name no column are strings (:func:`sqlite_quoted_strings`).
- ``IIF(c, a, b)`` with a boolean condition is ``CASE WHEN c THEN a ELSE b END``; ``x || NULL`` is
  NULL in both engines; ``CAST(int AS REAL)`` is exact; ``max(a, b)`` is written by sqlglot with
  SQLite's NULL rule.
- date and time columns hold text in SQLite: the proofs see them as TEXT (:func:`proof_catalog`).

Declined (the verdict's evidence says which and why): division or ``%`` where an operand is
not known to be an integer (NUMERIC-affinity columns store 2.0 as the integer 2), text compared
with a number where no affinity converts it (a number is less than any text in SQLite), a
non-boolean condition (SQLite's truthiness of text), ``CAST`` of text to a number (SQLite reads
a numeric prefix) or of a real to an integer (SQLite truncates, DuckDB rounds), ``||`` on reals,
LIKE in a query that reads no table (constant queries are evaluated on DuckDB, whose LIKE is
case-sensitive), and bare columns of aggregate queries that the group does not determine:
SQLite takes them from an arbitrary row of the group (from the row of the extreme when the
query has a single ``min()``/``max()``, ties still arbitrary), so the query is
non-deterministic and the verdict says so.  Ties under ``ORDER BY .. LIMIT`` are left to the
proof tier's own rule (proved only "equal up to the order of ties") and to the differential
tier's tie check.

    >>> from sqlsluice.databases import Catalog
    >>> cat = Catalog.from_ddl("CREATE TABLE t (a INTEGER, b TEXT, r REAL)", "sqlite")
    >>> s = screen(sqlglot.parse_one("SELECT a / 2, r / 2 FROM t WHERE b = 5", read="sqlite"), cat)
    >>> s.form.sql("duckdb"), s.modelled
    ('SELECT "t"."a" // 2 AS "_col_0", "t"."r" / NULLIF(2, 0) AS "_col_1" FROM "t" AS "t" WHERE "t"."b" = \\'5\\'', \
['text affinity converts the number 5', 'integer division'])
    >>> screen(sqlglot.parse_one("SELECT b, count(*) FROM t", read="sqlite"), cat).hazards
    ['bare column b in an aggregate query: SQLite takes its value from an arbitrary row of the group \
(non-deterministic unless the group determines it)']
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.optimizer.qualify import qualify
from sqlglot.schema import MappingSchema

from sqlsluice.databases import Catalog, Column, Table
from sqlsluice.verifiers.sqlparse import sqlite_quoted_strings

# value classes: int, real, num (NUMERIC affinity: integer or real at run time), text, any, null
_PROOF_TYPE = {"INTEGER": "BIGINT", "REAL": "DOUBLE", "TEXT": "TEXT", "NUMERIC": "DECIMAL(38, 10)", "BLOB": "BLOB"}
# the screen's own column types: the class of the stored values (a DATE column holds text under
# NUMERIC affinity: CHAR marks it)
_SCREEN_TYPE = {"INTEGER": "BIGINT", "REAL": "DOUBLE", "TEXT": "TEXT", "NUMERIC": "DECIMAL", "BLOB": "VARBINARY"}
_CLASS_OF_TYPE = {"BIGINT": "int", "DOUBLE": "real", "TEXT": "text", "DECIMAL": "num", "VARBINARY": "any",
                  "CHAR": "date"}
_NUMBER = re.compile(r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$")
_BOOLEAN = (exp.Predicate, exp.Not, exp.And, exp.Or, exp.Exists, exp.In, exp.Boolean, exp.Is)
_TEXT_FUNCS = (exp.Upper, exp.Lower, exp.Substring, exp.Trim, exp.DPipe, exp.Concat, exp.TimeToStr)
_INT_FUNCS = (exp.Length, exp.StrPosition, exp.Count)


def affinity(declared: str) -> str:
    """SQLite's column affinity of a declared type (the rules of section 3.1 of "Datatypes In SQLite").

    >>> [affinity(t) for t in ("INT(11)", "varchar(20)", "BLOB", "", "DOUBLE", "DATE", "decimal(5,2)")]
    ['INTEGER', 'TEXT', 'BLOB', 'BLOB', 'REAL', 'NUMERIC', 'NUMERIC']
    """
    t = declared.upper()
    if "INT" in t:
        return "INTEGER"
    if "CHAR" in t or "CLOB" in t or "TEXT" in t:
        return "TEXT"
    if "BLOB" in t or not t.strip():
        return "BLOB"
    if "REAL" in t or "FLOA" in t or "DOUB" in t:
        return "REAL"
    return "NUMERIC"


def _is_date(declared: str) -> bool:
    return affinity(declared) == "NUMERIC" and ("DATE" in declared.upper() or "TIME" in declared.upper())


def _proof_type(declared: str) -> str:
    # SQLite keeps dates as text ('2000-01-01 12:30:00' in a DATE column)
    return "TEXT" if _is_date(declared) else _PROOF_TYPE[affinity(declared)]


def _screen_type(declared: str) -> str:
    return "CHAR" if _is_date(declared) else _SCREEN_TYPE[affinity(declared)]


def proof_catalog(catalog: Catalog) -> Catalog:
    """The catalog with each column's type as SQLite stores its values (DuckDB spelling)."""
    return Catalog(dialect="duckdb", tables=[
        Table(name=t.name, schema_name=t.schema_name, primary_key=list(t.primary_key), unique=[list(u) for u in t.unique],
              foreign_keys=[fk.model_copy() for fk in t.foreign_keys], row_count=t.row_count,
              columns=[Column(name=c.name, type=_proof_type(c.type), nullable=c.nullable) for c in t.columns])
        for t in catalog.tables])


@dataclass
class Screen:
    """One SQLite query screened for the proof tiers."""

    form: exp.Expression | None  # the query with DuckDB semantics and SQLite's meaning; None: declined
    modelled: list[str] = field(default_factory=list)  # constructs translated exactly
    hazards: list[str] = field(default_factory=list)  # why no proof is attempted
    nondeterministic: bool = False  # bare columns the group does not determine

    def describe(self) -> str:
        parts = []
        if self.hazards:
            parts.append("no proof: " + "; ".join(dict.fromkeys(self.hazards)))
        if self.modelled:
            parts.append("modelled: " + ", ".join(dict.fromkeys(self.modelled)))
        return "; ".join(parts) or "same meaning in DuckDB"


def screen(e: exp.Expression, catalog: Catalog) -> Screen:
    """Screen one parsed SQLite query (see the module's docstring)."""
    q = sqlite_quoted_strings(e, catalog)
    modelled = ["double-quoted string"] if q != e else []
    types: dict[str, object] = {t.name: {c.name: _screen_type(c.type) for c in t.columns} for t in catalog.tables}
    try:
        schema = MappingSchema(dict(types), dialect="sqlite")
        q = qualify(q, schema=schema, dialect="sqlite", validate_qualify_columns=False, expand_stars=True)
        q = annotate_types(q, schema=schema, dialect="sqlite")
    except Exception as err:  # sqlglot raises many kinds; the query then gets no proof
        return Screen(None, modelled, [f"cannot resolve the query's columns ({type(err).__name__})"])
    s = _Screener(catalog, modelled)
    q = s.run(q)
    return Screen(None if s.hazards else q, s.modelled, s.hazards, s.nondet)


class _Screener:
    def __init__(self, catalog: Catalog, modelled: list[str]) -> None:
        self.catalog = catalog
        self.modelled = modelled
        self.hazards: list[str] = []
        self.nondet = False

    def run(self, q: exp.Expression) -> exp.Expression:
        if not any(isinstance(t.this, exp.Identifier) for t in q.find_all(exp.Table)) and q.find(exp.Like, exp.ILike):
            self.hazards.append("LIKE in a query that reads no table (evaluated on DuckDB, case-sensitive)")
        for sel in list(q.find_all(exp.Select)):
            self._bare_columns(sel)
        for setop in q.find_all(exp.Union, exp.Intersect, exp.Except):
            left, right = setop.left, setop.right
            if isinstance(left, exp.Query) and isinstance(right, exp.Query) and len(left.selects) == len(right.selects):
                for a, b in zip(left.selects, right.selects, strict=True):
                    ca, cb = self.cls(a), self.cls(b)
                    if ca != cb and "null" not in (ca, cb) and not {ca, cb} <= {"int", "real", "num"}:
                        self.hazards.append(f"{type(setop).__name__.upper()} of {ca} with {cb} (1 and '1' differ in SQLite)")
        for node in list(q.find_all(exp.Where, exp.Having, exp.Join, exp.If)):
            cond = node.this if not isinstance(node, exp.Join) else node.args.get("on")
            if cond is not None and not self._boolean(cond):
                self.hazards.append(f"non-boolean condition {cond.sql('sqlite')[:40]} (SQLite's truthiness)")
        # children first: a node's class is computed from its (already rewritten) children
        for n in reversed(list(q.walk(bfs=False))):
            self._visit(n)
        return q

    # -- classes ---------------------------------------------------------------------------------
    def cls(self, e: exp.Expr) -> str:
        if isinstance(e, exp.Paren):
            return self.cls(e.this)
        if isinstance(e, exp.Null):
            return "null"
        if isinstance(e, exp.Literal):
            if e.is_string:
                return "text"
            return "real" if "." in e.this or "e" in e.this.lower() else "int"
        if isinstance(e, exp.Boolean) or isinstance(e, _BOOLEAN):
            return "int"
        if isinstance(e, exp.Column):
            t = e.type
            return _CLASS_OF_TYPE.get(t.this.name if t is not None else "", "any") if t is not None else "any"
        if isinstance(e, exp.Cast):
            return _cast_class(e.to)
        if isinstance(e, exp.Neg | exp.Abs):
            return self.cls(e.this)
        if isinstance(e, exp.Add | exp.Sub | exp.Mul):
            return _arith(self.cls(e.this), self.cls(e.expression))
        if isinstance(e, exp.IntDiv):
            return "int"
        if isinstance(e, exp.Div):
            return "real"  # left a Div only when an operand is real
        if isinstance(e, exp.Avg | exp.Round):
            return "real"
        if isinstance(e, _INT_FUNCS):
            return "int"
        if isinstance(e, exp.Sum | exp.Min | exp.Max) and not e.expressions:
            return self.cls(e.this)
        if isinstance(e, _TEXT_FUNCS):
            return "text"
        if isinstance(e, exp.Subquery) and isinstance(e.this, exp.Select) and len(e.this.selects) == 1:
            return self.cls(e.this.selects[0])
        if isinstance(e, exp.Alias):
            return self.cls(e.this)
        if isinstance(e, exp.Case):
            kinds = {self.cls(x) for x in [*(i.args["true"] for i in e.args.get("ifs") or []),
                                            e.args.get("default") or exp.Null()]} - {"null"}
            return kinds.pop() if len(kinds) == 1 else "any"
        return "any"

    def has_affinity(self, e: exp.Expr) -> bool:
        """A column of a base table (a derived table's column may be an expression: no affinity) or a CAST."""
        while isinstance(e, exp.Paren):
            e = e.this
        if isinstance(e, exp.Cast):
            return True
        sel = e.find_ancestor(exp.Select)
        return isinstance(e, exp.Column) and isinstance(sel, exp.Select) and e.table in from_tables(sel, self.catalog)

    # -- rewriting -------------------------------------------------------------------------------
    def _visit(self, node: exp.Expr) -> None:
        if isinstance(node, exp.Div):
            a, b = self.cls(node.this), self.cls(node.expression)
            if a == "int" and b == "int":
                node.replace(exp.IntDiv(this=node.this.copy(), expression=node.expression.copy()))
                self.modelled.append("integer division")
            elif not ({a, b} <= {"int", "real", "null"} and "real" in {a, b}):
                self.hazards.append(f"division {node.sql('sqlite')[:40]} of operands of unknown type "
                                    "(SQLite divides integers as integers)")
        elif isinstance(node, exp.Mod):
            if not {self.cls(node.this), self.cls(node.expression)} <= {"int", "null"}:
                self.hazards.append(f"% on non-integers {node.sql('sqlite')[:40]} (SQLite casts to integer)")
        elif isinstance(node, exp.EQ | exp.NEQ | exp.GT | exp.GTE | exp.LT | exp.LTE):
            self._compare(node, node.this, [node.expression])
        elif isinstance(node, exp.Between):
            self._compare(node, node.this, [node.args["low"], node.args["high"]])
        elif isinstance(node, exp.In) and node.expressions:
            self._compare(node, node.this, list(node.expressions))
        elif isinstance(node, exp.In) and isinstance(node.args.get("query"), exp.Query):
            sub = node.args["query"]
            sub = sub.this if isinstance(sub, exp.Subquery) else sub
            a, b = self.cls(node.this), self.cls(sub.selects[0]) if len(sub.selects) == 1 else "any"
            if a != b and "null" not in (a, b) and not {a, b} <= {"int", "real", "num"} and {a, b} != {"date", "text"}:
                self.hazards.append(f"IN of {a} with a subquery of {b} (SQLite's type affinity)")
        elif isinstance(node, exp.Cast):
            self._cast(node)
        elif isinstance(node, exp.DPipe):
            for side in (node.this, node.expression):
                if self.cls(side) not in ("text", "int", "null"):
                    self.hazards.append(f"|| on {side.sql('sqlite')[:40]} (SQLite's text of a number)")
        elif isinstance(node, exp.If) and not isinstance(node.parent, exp.Case):
            self.modelled.append("IIF as CASE")

    def _compare(self, node: exp.Expression, left: exp.Expression, rights: list[exp.Expression]) -> None:
        for right in rights:
            a, b = self.cls(left), self.cls(right)
            if "null" in (a, b):
                continue
            num, la, ra = {"int", "real", "num"}, self.has_affinity(left), self.has_affinity(right)
            if a in num and b in num:
                continue
            if "date" in (a, b):
                other = right if a == "date" else left
                if {a, b} == {"date"} or (isinstance(other, exp.Literal) and other.is_string
                                           and not _NUMBER.match(other.this)):
                    continue  # text compared with text: NUMERIC affinity leaves non-numbers alone
                self.hazards.append(f"comparison of a date column with {b if a == 'date' else a} in "
                                    f"{node.sql('sqlite')[:60]} (SQLite's NUMERIC affinity)")
                continue
            if a == b and a in ("text", "any") and (a == "text" or (la and ra)):
                continue
            # a literal converted by the other side's affinity, as SQLite converts it
            for lit, col_cls, col_aff in ((right, a, la), (left, b, ra)):
                new = _convert(lit, col_cls) if col_aff else None
                if new is not None:
                    lit.replace(new)
                    self.modelled.append(f"{col_cls if col_cls != 'text' else 'text'} affinity converts "
                                         f"the {'number' if col_cls == 'text' else 'string'} {lit.sql('sqlite')}")
                    break
            else:
                const = self._number_vs_text(node, left, right, a, b, la, ra) if len(rights) == 1 else None
                if const is not None:
                    node.replace(const)
                    self.modelled.append("a number compared with text (a number is less than any text)")
                    return
                self.hazards.append(f"comparison of {a} with {b} in {node.sql('sqlite')[:60]} "
                                    "(SQLite's type affinity)")

    def _number_vs_text(self, node: exp.Expression, left: exp.Expression, right: exp.Expression, a: str, b: str,
                        la: bool, ra: bool) -> exp.Expression | None:
        """A number compared with a string literal that stays text (no affinity, or a numeric
        affinity that cannot convert it: :func:`_convert` has declined): in SQLite a number is less
        than any text, so the comparison is a constant unless the number is NULL."""
        num = {"int", "real", "num"}
        if a in num and isinstance(right, exp.Literal) and right.is_string and not (la and _NUMBER.match(right.this)):
            number, less = left, True  # number < text
        elif b in num and isinstance(left, exp.Literal) and left.is_string and not (ra and _NUMBER.match(left.this)):
            number, less = right, False  # text > number
        else:
            return None
        truth = {exp.EQ: False, exp.NEQ: True, exp.LT: less, exp.LTE: less, exp.GT: not less, exp.GTE: not less}.get(
            type(node))  # type: ignore[arg-type]
        if truth is None:
            return None
        return exp.Paren(this=exp.Case(ifs=[exp.If(this=exp.Is(this=number.copy(), expression=exp.Null()),
                                                    true=exp.Null())], default=exp.Boolean(this=truth)))

    def _cast(self, node: exp.Cast) -> None:
        target, src = _cast_class(node.to), self.cls(node.this)
        ok = (src == "null" or target == src or (target == "real" and src in ("int", "num"))
              or (target == "text" and src == "int"))
        if not ok:
            self.hazards.append(f"{node.sql('sqlite')[:50]}: SQLite's CAST of {src} to {target} differs from DuckDB's")
        elif target == "real" and src != "real":
            self.modelled.append("CAST AS REAL")

    def _boolean(self, cond: exp.Expression) -> bool:
        while isinstance(cond, exp.Paren):
            cond = cond.this
        if isinstance(cond, exp.And | exp.Or):
            return self._boolean(cond.this) and self._boolean(cond.expression)
        if isinstance(cond, exp.Not):
            return self._boolean(cond.this)
        return isinstance(cond, _BOOLEAN)

    def _bare_columns(self, sel: exp.Select) -> None:
        group = sel.args.get("group")
        aggs = [a for x in sel.selects for a in x.find_all(exp.AggFunc) if _same_select(a, sel)]
        having = sel.args.get("having")
        if having is not None:
            aggs += [a for a in having.find_all(exp.AggFunc) if _same_select(a, sel)]
        if group is None and not aggs:
            return
        keys = {k.sql() for k in (group.expressions if group is not None else [])}
        sources = from_tables(sel, self.catalog)
        places = [*sel.selects, *([having] if having is not None else []),
                  *(sel.args["order"].expressions if sel.args.get("order") else [])]
        for place in places:
            for col in place.find_all(exp.Column):
                if not _same_select(col, sel) or col.sql() in keys or _inside_agg(col, sel):
                    continue
                if isinstance(col.parent, exp.Ordered) and col.name in {s.alias_or_name for s in sel.selects}:
                    continue  # ORDER BY an output name
                table = sources.get(col.table)
                grouped = {k.split(".")[-1].strip('"').lower() for k in keys if k.startswith(f'"{col.table}".')}
                if table is not None and any(key and {c.lower() for c in key} <= grouped for key in table.keys):
                    if group is not None:
                        group.append("expressions", col.copy())
                        keys.add(col.sql())
                        self.modelled.append(f"bare column {col.name} determined by its table's key")
                    continue
                self.nondet = True
                self.hazards.append(f"bare column {col.name} in an aggregate query: SQLite takes its value from an "
                                    "arbitrary row of the group (non-deterministic unless the group determines it)")


def _same_select(node: exp.Expr, sel: exp.Select) -> bool:
    return node.find_ancestor(exp.Select) is sel


def _inside_agg(node: exp.Expr, sel: exp.Select) -> bool:
    p = node.parent
    while p is not None and p is not sel:
        if isinstance(p, exp.AggFunc | exp.Window):
            return True
        p = p.parent
    return False


def from_tables(sel: exp.Select, catalog: Catalog) -> dict[str, Table]:
    """The catalog tables ``sel``'s FROM and JOINs read, by alias (as written)."""
    out: dict[str, Table] = {}
    frm = sel.args.get("from_") or sel.args.get("from")
    for src in ([frm.this] if frm is not None else []) + [j.this for j in sel.args.get("joins") or []]:
        if isinstance(src, exp.Table) and isinstance(src.this, exp.Identifier):
            t = catalog.table(src.name)
            if t is not None:
                out[src.alias_or_name] = t
    return out


def _arith(a: str, b: str) -> str:
    if "null" in (a, b):
        return b if a == "null" else a
    if a == b and a in ("int", "real", "num"):
        return a
    if {a, b} <= {"int", "real"}:
        return "real"
    if {a, b} <= {"int", "real", "num"}:
        return "num"
    return "any"


def _cast_class(to: exp.DataType) -> str:
    return {"INTEGER": "int", "REAL": "real", "TEXT": "text", "NUMERIC": "num", "BLOB": "any"}[
        affinity(to.sql("sqlite"))]


def _convert(lit: exp.Expression, col_cls: str) -> exp.Expression | None:
    """``lit`` as SQLite converts it when compared with a column of class ``col_cls``; None when
    the conversion leaves the kinds different (or the literal is not a plain literal)."""
    neg = isinstance(lit, exp.Neg) and isinstance(lit.this, exp.Literal) and not lit.this.is_string
    if not isinstance(lit, exp.Literal) and not neg:
        return None
    if col_cls == "text" and (neg or not lit.is_string):
        text = (lit.this.this if neg else lit.this)  # type: ignore[union-attr]
        if not re.fullmatch(r"\d+", text):
            return None  # reals: SQLite's text form (1.50 -> '1.5') is not the literal's
        return exp.Literal.string(("-" if neg else "") + str(int(text)))
    if col_cls in ("int", "real", "num") and isinstance(lit, exp.Literal) and lit.is_string and _NUMBER.match(lit.this):
        t = lit.this.strip().lstrip("+")
        return exp.Literal.number(t) if not t.startswith("-") else exp.Neg(this=exp.Literal.number(t[1:]))
    return None


def tables_read(sql: str, catalog: Catalog) -> set[str]:
    """The tables SQLite itself reads for ``sql`` on an empty database of ``catalog`` (its authorizer
    reports every column read at prepare time): for queries sqlglot cannot parse.  Raises
    :class:`sqlite3.Error` when SQLite rejects the query.

    >>> cat = Catalog.from_ddl("CREATE TABLE t (a INTEGER); CREATE TABLE u (b TEXT)", "sqlite")
    >>> sorted(tables_read("SELECT DATETIME() - a FROM t JOIN u ON 1", cat))
    ['t', 'u']
    """
    import sqlite3

    con = sqlite3.connect(":memory:")
    seen: set[str] = set()
    try:
        for stmt in catalog.to_ddl("sqlite"):
            con.execute(stmt)

        def note(action: int, arg1: str | None, arg2: str | None, db: str | None, trigger: str | None) -> int:
            if action == sqlite3.SQLITE_READ and arg1 and catalog.table(arg1) is not None:
                seen.add(arg1.lower())
            return sqlite3.SQLITE_OK

        con.set_authorizer(note)
        con.execute("EXPLAIN " + sql)
    finally:
        con.close()
    return seen


def sql(e: exp.Expression) -> str:
    """A screened query as DuckDB SQL."""
    return e.sql("duckdb")


__all__ = ["Screen", "affinity", "proof_catalog", "screen", "sql", "sqlglot"]
