"""PostgreSQL's meaning for what clients send, over DuckDB: column names, command tags,
division, result types.

The functions here work on the client's SQL text (read as PostgreSQL with sqlglot, parsed
once per string and cached) and, for result types, on column types looked up through a
callback; :mod:`sqlsluice.middleware.compat` applies them.

- :func:`column_names`: PostgreSQL's ``FigureColname`` (parse_target.c) for the outermost
  SELECT list: ``count(*)`` -> ``count``, ``1 + 1`` -> ``?column?``, ``'1'::int`` -> ``int4``.
- :func:`command_tag`: the CommandComplete tag PostgreSQL sends (``CREATE TABLE``,
  ``START TRANSACTION``, ``TRUNCATE TABLE``, ``SELECT n`` for CREATE TABLE AS ...).
- :func:`guard_division`: every ``a / b`` and ``a % b`` raises 22012 when ``b`` is zero
  (DuckDB answers NULL or Infinity); integer division itself truncates through DuckDB's
  ``integer_division`` setting, set per session.
- :func:`result_oid_overrides`: PostgreSQL's numeric typing where DuckDB's differs
  (``sum(int)`` int8 and ``avg(int)`` numeric, DuckDB: HUGEINT and DOUBLE; ``numeric / int``
  numeric, DuckDB: DOUBLE), through CTEs and derived tables; ``current_user`` is ``name``.
- :func:`returning_select`: the query that describes a DML statement's RETURNING rows.

>>> column_names("SELECT count(*), x AS y, 1 + 1, '1'::int, t.a, version() FROM t")
('count', 'y', '?column?', 'int4', 'a', 'version')
>>> command_tag("CREATE UNIQUE INDEX i ON t (a)", 0), command_tag("TRUNCATE t", 3)
('CREATE INDEX', 'TRUNCATE TABLE')
>>> guard_division("SELECT a / b FROM t")
"SELECT a / CASE WHEN b = 0 THEN ERROR('division by zero') ELSE b END FROM t"
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from sqlsluice.databases.duckdb_backend import command_words
from sqlsluice.errors import BackendError, SluiceError
from sqlsluice.middleware import types

DIVISION_BY_ZERO = "division by zero"
_MAX_SQL = 65536  # longer statements (bulk INSERTs) are not parsed here
STAR = ""  # column_names() entry for a ``*`` / ``t.*`` projection

# --- command tags --------------------------------------------------------------------------
# statements that return no rows in PostgreSQL (DuckDB answers a "Count"/"Success" column)
COMMAND_WORDS = frozenset({
    "BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT", "CREATE", "DROP", "ALTER", "TRUNCATE", "SET",
    "RESET", "ANALYZE", "VACUUM", "CHECKPOINT", "COMMENT", "GRANT", "REVOKE", "DEALLOCATE", "PREPARE", "LOCK",
    "USE", "ATTACH", "DETACH", "LOAD", "INSTALL", "EXPORT", "IMPORT", "DISCARD", "LISTEN", "NOTIFY", "UNLISTEN",
    "DO", "SAVEPOINT", "RELEASE", "REINDEX", "CLUSTER", "REFRESH",
})
_CREATE_AS = re.compile(r"^\s*CREATE\s+(?:OR\s+REPLACE\s+)?(?:(?:GLOBAL|LOCAL)\s+)?(?:TEMP|TEMPORARY|UNLOGGED)?\s*"
                        r"TABLE\b[^(]*?\bAS\s*\(?\s*(?:SELECT|WITH|VALUES|TABLE|FROM)\b", re.I | re.S)
_OBJECT = re.compile(r"^\s*(CREATE|DROP|ALTER)\s+(?:OR\s+REPLACE\s+)?(?:(?:GLOBAL|LOCAL)\s+)?"
                     r"(?:TEMP\s+|TEMPORARY\s+|UNLOGGED\s+|UNIQUE\s+|MATERIALIZED\s+|RECURSIVE\s+)*"
                     r"([A-Za-z]+)", re.I)
_TWO_WORD = {"FOREIGN": "FOREIGN TABLE", "EVENT": "EVENT TRIGGER", "ACCESS": "ACCESS METHOD"}


def command_tag(sql: str, rowcount: int) -> str:
    """The tag PostgreSQL completes a statement with (see the module docstring)."""
    w1, w2 = command_words(sql)
    n = max(rowcount, 0)
    if w1 in ("SELECT", "WITH", "VALUES", "TABLE", "FROM", "SHOW", "DESCRIBE", "PRAGMA", "SUMMARIZE"):
        return f"SELECT {n}" if w1 != "SHOW" else "SHOW"
    if w1 == "INSERT":
        return f"INSERT 0 {n}"
    if w1 in ("UPDATE", "DELETE", "MERGE", "COPY", "FETCH", "MOVE"):
        return f"{w1} {n}"
    if w1 == "START":
        return "START TRANSACTION"
    if w1 in ("COMMIT", "END"):
        return "COMMIT"
    if w1 in ("ROLLBACK", "ABORT"):
        return "ROLLBACK"
    if w1 == "TRUNCATE":
        return "TRUNCATE TABLE"
    if w1 == "LOCK":
        return "LOCK TABLE"
    if w1 in ("CREATE", "DROP", "ALTER"):
        if w1 == "CREATE" and _CREATE_AS.match(sql):
            return f"SELECT {n}"
        m = _OBJECT.match(sql)
        if m:
            obj = m.group(2).upper()
            if obj == "MACRO":  # DuckDB's macros are PostgreSQL's functions
                obj = "FUNCTION"
            if obj == "VIEW" and re.search(r"\bMATERIALIZED\b", sql[:m.end()], re.I):
                obj = "MATERIALIZED VIEW"
            return f"{w1} {_TWO_WORD.get(obj, obj)}"
        return f"{w1} {w2}".strip()
    return w1 or "OK"


@lru_cache(maxsize=4096)
def _parsed(sql: str) -> Any:
    """The statement's sqlglot tree (shared and cached: never modify it), or None."""
    import sqlglot
    from sqlglot.errors import SqlglotError

    try:
        trees = sqlglot.parse(sql, read="postgres")
    except (SqlglotError, ValueError, RecursionError):
        return None
    return trees[0] if len(trees) == 1 else None


# --- column names (FigureColname) --------------------------------------------------------------
# PostgreSQL's internal type names, as FigureColname reports a cast of a constant
_PG_TYPNAME = {
    "INT": "int4", "INTEGER": "int4", "INT4": "int4", "SERIAL": "int4", "BIGINT": "int8", "INT8": "int8",
    "SMALLINT": "int2", "INT2": "int2", "DOUBLE PRECISION": "float8", "DOUBLE": "float8", "FLOAT8": "float8",
    "FLOAT": "float8", "REAL": "float4", "FLOAT4": "float4", "BOOLEAN": "bool", "BOOL": "bool",
    "VARCHAR": "varchar", "CHARACTER VARYING": "varchar", "CHAR": "bpchar", "CHARACTER": "bpchar",
    "BPCHAR": "bpchar", "TEXT": "text", "NUMERIC": "numeric", "DECIMAL": "numeric", "DATE": "date",
    "TIME": "time", "TIMETZ": "timetz", "TIMESTAMP": "timestamp", "TIMESTAMPTZ": "timestamptz",
    "INTERVAL": "interval", "JSON": "json", "JSONB": "jsonb", "UUID": "uuid", "BYTEA": "bytea", "NAME": "name",
    "OID": "oid", "REGCLASS": "regclass", "REGTYPE": "regtype", "REGPROC": "regproc",
}
# sqlglot nodes without a source position, by class name -> the name PostgreSQL reports
_NODE_NAME = {
    "CurrentTimestamp": "current_timestamp", "CurrentDate": "current_date", "CurrentTime": "current_time",
    "CurrentUser": "current_user", "SessionUser": "session_user", "CurrentSchema": "current_schema",
    "CurrentCatalog": "current_catalog", "CurrentRole": "current_role", "Localtime": "localtime",
    "Localtimestamp": "localtimestamp", "Array": "array", "Exists": "exists", "Case": "case",
    "Coalesce": "coalesce", "Nullif": "nullif", "Greatest": "greatest", "Least": "least", "Extract": "extract",
    "StrPosition": "position", "Trim": "btrim", "Substring": "substring", "Ceil": "ceil", "Struct": "row",
    "Overlay": "overlay", "GroupConcat": "string_agg",
}
_PLAIN = re.compile(r"^[a-z_][a-z0-9_$]*$")
# without any of these, no projection can differ in type from DuckDB's mapping (no parse needed)
_MAY_RETYPE = re.compile(r"[(/%]|::|\bnull\b|\buser\b|current_|session_user", re.I)
_STRENGTH_NAMED = 2  # FigureColnameInternal: 2 = a real name, 1 = a fallback (case), 0 = none


def _typname(to: Any) -> str | None:
    text = to.sql(dialect="postgres").upper()
    text = re.sub(r"\(.*\)|\[\d*\]", "", text).strip()
    if text.startswith("TIMESTAMP") and "WITH TIME ZONE" in text:
        return "timestamptz"
    if text.startswith("TIME") and "WITH TIME ZONE" in text:
        return "timetz"
    text = text.replace(" WITHOUT TIME ZONE", "")
    return _PG_TYPNAME.get(text, text.lower().split(".")[-1] or None)


def _figure(node: Any, sql: str) -> tuple[str | None, int]:
    """(name, strength) of one expression, after FigureColnameInternal."""
    from sqlglot import exp

    if isinstance(node, exp.Paren):
        return _figure(node.this, sql)
    if isinstance(node, exp.Column):
        return (None, 0) if isinstance(node.this, exp.Star) else (node.name if node.this.quoted
                                                                  else node.name.lower(), _STRENGTH_NAMED)
    if isinstance(node, exp.Dot):
        return _figure(node.expression, sql)
    if isinstance(node, exp.Cast | exp.TryCast):
        name, strength = _figure(node.this, sql)
        if strength <= 1:
            typ = _typname(node.to)
            if typ:
                return typ, 1
        return name, strength
    if isinstance(node, exp.Collate | exp.Window | exp.Filter | exp.WithinGroup | exp.Bracket):
        return _figure(node.this, sql)
    if isinstance(node, exp.Trim):
        # PostgreSQL rewrites TRIM(...) to btrim / ltrim / rtrim and names the column so
        pos = str(node.args.get("position") or "").upper()
        return {"TRAILING": "rtrim", "LEADING": "ltrim"}.get(pos, "btrim"), _STRENGTH_NAMED
    if isinstance(node, exp.Case):
        # named by its ELSE branch when that has a real name (CASE ... ELSE c.reloftype END)
        default = node.args.get("default")
        if default is not None:
            name, strength = _figure(default, sql)
            if strength > 1:
                return name, strength
        return "case", 1
    if isinstance(node, exp.Subquery):
        inner = node.this
        sel = inner.selects[0] if isinstance(inner, exp.Query) and inner.selects else None
        if isinstance(sel, exp.Alias):
            return sel.alias, _STRENGTH_NAMED
        return _figure(sel, sql) if sel is not None else (None, 0)
    if isinstance(node, exp.Interval):
        return "interval", 1
    if isinstance(node, exp.Anonymous) and node.name.upper() == "ROW":
        return "row", _STRENGTH_NAMED
    if isinstance(node, exp.Array) or isinstance(node, exp.Tuple):
        return ("array" if isinstance(node, exp.Array) else "row"), _STRENGTH_NAMED
    if isinstance(node, exp.Func) and not isinstance(node, exp.Mod):
        meta = node.meta if node.meta else {}
        start, end = meta.get("start"), meta.get("end")
        if isinstance(start, int) and isinstance(end, int) and 0 <= start <= end < len(sql):
            word = sql[start:end + 1]
            if re.fullmatch(r'[A-Za-z_][\w$]*|"(?:[^"]|"")+"', word):
                return (word[1:-1].replace('""', '"') if word.startswith('"') else word.lower()), _STRENGTH_NAMED
        name = _NODE_NAME.get(type(node).__name__)
        if name:
            return name, _STRENGTH_NAMED
        if isinstance(node, exp.Anonymous):
            return node.name.lower(), _STRENGTH_NAMED
        return None, 0  # an operator sqlglot models as a function: keep DuckDB's name
    name = _NODE_NAME.get(type(node).__name__)
    if name:
        return name, _STRENGTH_NAMED
    return None, 0


@lru_cache(maxsize=4096)
def _select_list(sql: str) -> tuple[tuple[str, str | None], ...] | None:
    """Per projection of the outermost SELECT: (kind, name); kinds: "star", "named", "anon",
    "unknown" (keep DuckDB's name).  None when the statement is not a plain query."""
    from sqlglot import exp

    tree = _parsed(sql)
    if tree is None:
        return None
    if isinstance(tree, exp.Values):
        n = len(tree.expressions[0].expressions) if tree.expressions else 0
        return tuple(("named", f"column{i + 1}") for i in range(n))
    returning = tree.args.get("returning") if isinstance(tree, exp.Insert | exp.Update | exp.Delete) else None
    if returning is not None:
        selects = returning.expressions
    elif not isinstance(tree, exp.Query) or isinstance(tree, exp.Subquery):
        return None
    else:
        selects = tree.selects
    out: list[tuple[str, str | None]] = []
    for e in selects:
        if isinstance(e, exp.Star) or (isinstance(e, exp.Column) and isinstance(e.this, exp.Star)):
            out.append(("star", None))
        elif isinstance(e, exp.Alias):
            ident = e.args.get("alias")
            out.append(("named", e.alias if ident is not None and ident.quoted else e.alias.lower()))
        else:
            name, strength = _figure(e, sql)
            if name:
                out.append(("named", name))
            elif isinstance(e, exp.Func) and not isinstance(e, exp.Binary | exp.Mod):
                out.append(("unknown", None))
            else:
                out.append(("anon", "?column?"))
    return tuple(out)


def column_names(sql: str) -> tuple[str, ...] | None:
    """PostgreSQL's result column names for a query (``STAR`` for a ``*``, ``""`` where
    DuckDB's name is kept), or None when ``sql`` is not a plain query."""
    if len(sql) > _MAX_SQL:
        return None
    shape = _select_list(sql)
    if shape is None:
        return None
    return tuple(STAR if k == "star" else (n or "") for k, n in shape)


def _folded(sql: str, name: str) -> str:
    """A ``*`` column's name as PostgreSQL reports it: DuckDB keeps the case of an unquoted
    alias in a subquery (``AS B1_CNT``), PostgreSQL folds it to lower case."""
    if name == name.lower() or f'"{name}"' in sql or not re.search(rf"(?<![\w\"]){re.escape(name)}(?![\w\"])", sql):
        return name  # quoted, or not written in this statement (a table's own column name)
    return name.lower()


def rename(sql: str, names: Sequence[str]) -> list[str] | None:
    """PostgreSQL's names for a result whose DuckDB column names are ``names`` (None: keep)."""
    w1, _ = command_words(sql)
    if w1 not in ("SELECT", "WITH", "VALUES", "TABLE", "FROM", "(", "INSERT", "UPDATE", "DELETE") \
            or len(sql) > _MAX_SQL:
        return None
    if w1 != "VALUES" and all(_PLAIN.match(n) and n not in ("true", "false") for n in names):
        # DuckDB names a column reference or a lower-case alias as PostgreSQL does: no parse
        return None
    shape = _select_list(sql)
    if not shape:
        return None
    stars = sum(1 for k, _ in shape if k == "star")
    extra = len(names) - (len(shape) - stars)
    if stars > 1 or extra < 0 or (stars == 0 and extra != 0):
        return None  # several stars or a count that does not match: keep DuckDB's names
    out: list[str] = []
    pos = 0
    for kind, name in shape:
        if kind == "star":
            out.extend(_folded(sql, n) for n in names[pos:pos + extra])
            pos += extra
        else:
            out.append(name if kind != "unknown" and name else names[pos])
            pos += 1
    return out


def returning_select(sql: str) -> str | None:
    """``SELECT <RETURNING list> FROM <target>`` for a DML statement with RETURNING (to
    describe its result without running it), else None.

    >>> returning_select("UPDATE t AS x SET a = 1 RETURNING x.a, upper(b) AS u")
    'SELECT x.a, UPPER(b) AS u FROM t AS x'
    """
    from sqlglot import exp

    if len(sql) > _MAX_SQL:
        return None
    tree = _parsed(sql)
    if not isinstance(tree, exp.Insert | exp.Update | exp.Delete) or tree.args.get("returning") is None:
        return None
    target = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
    if not isinstance(target, exp.Table):
        return None
    query = exp.select(*[e.copy() for e in tree.args["returning"].expressions]).from_(target.copy())
    return str(query.sql(dialect="duckdb"))


# --- result types ------------------------------------------------------------------------------
_NAME_FUNCS = frozenset({"current_user", "session_user", "user", "current_role", "current_schema",
                         "current_catalog"})
# functions whose PostgreSQL result type differs from DuckDB's (applied to integral DuckDB results)
_FUNC_OIDS = {"length": types.INT4, "char_length": types.INT4, "character_length": types.INT4,
              "octet_length": types.INT4, "bit_length": types.INT4, "strpos": types.INT4,
              "position": types.INT4, "ascii": types.INT4, "array_length": types.INT4,
              "extract": types.NUMERIC, "date_part": types.FLOAT8, "grouping": types.INT4}
_DUCK_INTS = frozenset({"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
                        "UINTEGER", "UBIGINT"})


_CATEGORY_OID = {"INTEGER": types.INT4, "BIGINT": types.INT8, "DECIMAL": types.NUMERIC, "DOUBLE": types.FLOAT8}
_NUMERIC_OIDS = frozenset({types.INT2, types.INT4, types.INT8, types.NUMERIC, types.FLOAT4, types.FLOAT8})


def _category(duck_type: str) -> str:
    """A type name reduced to PostgreSQL's numeric ladder: INTEGER (int2/int4), BIGINT, DECIMAL
    (numeric; DuckDB's HUGEINT too), DOUBLE; other types keep their name."""
    t = duck_type.strip().upper()
    if t in ("TINYINT", "SMALLINT", "INTEGER", "INT", "INT2", "INT4", "UTINYINT", "USMALLINT", "SERIAL"):
        return "INTEGER"
    if t in ("BIGINT", "INT8", "UINTEGER", "BIGSERIAL"):
        return "BIGINT"
    if t.startswith(("DECIMAL", "NUMERIC")) or t in ("HUGEINT", "UBIGINT", "UHUGEINT"):
        return "DECIMAL"
    if t in ("DOUBLE", "DOUBLE PRECISION", "FLOAT", "FLOAT8", "REAL", "FLOAT4"):
        return "DOUBLE"
    return t


_LADDER = ("INTEGER", "BIGINT", "DECIMAL", "DOUBLE")


def _unify(kinds: Sequence[str | None]) -> str | None:
    """PostgreSQL's result type of arithmetic over these operand types (None: unknown)."""
    if not kinds or any(k not in _LADDER for k in kinds):
        return None
    return max(kinds, key=_LADDER.index)  # type: ignore[arg-type]


class _Columns:
    """Column types for :func:`_static_type`: base tables through ``column_type`` (DuckDB's
    catalog), CTEs and derived tables through the static type of their projections."""

    def __init__(self, tree: Any, column_type: Callable[[str | None, str], str | None]) -> None:
        from sqlglot import exp

        self.column_type = column_type
        self.derived: dict[str, Any] = {}
        for cte in tree.find_all(exp.CTE):
            self.derived.setdefault(cte.alias_or_name.lower(), cte.this)
        for sq in tree.find_all(exp.Subquery):
            if sq.alias:
                self.derived.setdefault(sq.alias.lower(), sq.this)
        self.depth = 0

    def _sources(self, select: Any) -> list[tuple[str, str, Any]]:
        """(alias, "table", name) / (alias, "query", tree) for the FROM and JOIN items of one SELECT."""
        from sqlglot import exp

        out: list[tuple[str, str, Any]] = []
        if not isinstance(select, exp.Select):
            return out
        items = [select.args.get("from_") or select.args.get("from")] + list(select.args.get("joins") or [])
        for item in items:
            src = item.this if item is not None else None
            if isinstance(src, exp.Table):
                q = self.derived.get(src.name.lower()) if not src.args.get("db") else None
                alias = src.alias_or_name.lower()
                out.append((alias, "query", q) if q is not None else (alias, "table", src.name))
            elif isinstance(src, exp.Subquery):
                out.append((src.alias.lower(), "query", src.this))
        return out

    def of_query(self, query: Any, name: str) -> str | None:
        """The type of output column ``name`` of a query (its first branch for set operations)."""
        from sqlglot import exp

        if self.depth > 8:
            return None
        while isinstance(query, exp.SetOperation):
            query = query.left
        if not isinstance(query, exp.Select):
            return None
        self.depth += 1
        try:
            star = False
            for e in query.selects:
                if isinstance(e, exp.Star) or (isinstance(e, exp.Column) and isinstance(e.this, exp.Star)):
                    star = True
                elif e.alias_or_name.lower() == name.lower():
                    return _static_type(e, self)
            return self.in_sources(query, name) if star else None
        finally:
            self.depth -= 1

    def in_sources(self, select: Any, name: str) -> str | None:
        for _, kind, src in self._sources(select):
            t = self.of_query(src, name) if kind == "query" else self._base(src, name)
            if t:
                return t
        return None

    def _base(self, table: str | None, name: str) -> str | None:
        t = self.column_type(table, name)
        return _category(t) if t else None

    def column(self, node: Any) -> str | None:
        from sqlglot import exp

        qualifier = node.table.lower()
        select = node.find_ancestor(exp.Select)
        if qualifier:
            for alias, kind, src in self._sources(select):
                if alias == qualifier:
                    return self.of_query(src, node.name) if kind == "query" else self._base(src, node.name)
            if qualifier in self.derived:
                return self.of_query(self.derived[qualifier], node.name)
            tables = {t.alias_or_name.lower(): t.name for t in (select.find_all(exp.Table) if select else [])}
            return self._base(tables.get(qualifier, node.table), node.name)
        return self.in_sources(select, node.name) if select is not None else self._base(None, node.name)


def _static_type(node: Any, cols: _Columns) -> str | None:
    """PostgreSQL's type of an expression, as a :func:`_category`, from literals, casts,
    column types, arithmetic and aggregates (None where it cannot tell)."""
    from sqlglot import exp

    def st(n: Any) -> str | None:
        return _static_type(n, cols)

    if isinstance(node, exp.Paren | exp.Neg | exp.Abs | exp.Window | exp.Filter | exp.Alias):
        return st(node.this)
    if isinstance(node, exp.Literal):
        if node.is_string:
            return None
        text = node.this.lstrip("-")
        return ("INTEGER" if int(text) < 2**31 else "BIGINT" if int(text) < 2**63 else "DECIMAL") \
            if text.isdigit() else "DECIMAL"
    if isinstance(node, exp.Cast):
        return _category(str(node.to.sql(dialect="duckdb")))
    if isinstance(node, exp.Column) and not isinstance(node.this, exp.Star):
        return cols.column(node)
    if isinstance(node, exp.Grouping):
        return "INTEGER"
    if isinstance(node, exp.Subquery):  # a scalar subquery: its single column's type
        return st(node.this.selects[0]) if isinstance(node.this, exp.Query) and node.this.selects else None
    if isinstance(node, exp.Stddev | exp.StddevSamp | exp.StddevPop | exp.Variance | exp.VariancePop):
        return {"INTEGER": "DECIMAL", "BIGINT": "DECIMAL", "DECIMAL": "DECIMAL", "DOUBLE": "DOUBLE"}.get(
            st(node.this) or "")
    if isinstance(node, exp.Add | exp.Sub | exp.Mul | exp.Div | exp.Mod):
        return _unify([st(node.this), st(node.expression)])
    if isinstance(node, exp.Count):
        return "BIGINT"
    if isinstance(node, exp.Sum):
        return {"INTEGER": "BIGINT", "BIGINT": "DECIMAL", "DECIMAL": "DECIMAL", "DOUBLE": "DOUBLE"}.get(
            st(node.this) or "")
    if isinstance(node, exp.Avg):
        return {"INTEGER": "DECIMAL", "BIGINT": "DECIMAL", "DECIMAL": "DECIMAL", "DOUBLE": "DOUBLE"}.get(
            st(node.this) or "")
    if isinstance(node, exp.Min | exp.Max):
        return st(node.this)
    if isinstance(node, exp.Case):
        branches = [i.args.get("true") for i in node.args.get("ifs") or []]
        if node.args.get("default") is not None:
            branches.append(node.args["default"])
        return _unify([st(b) for b in branches if not isinstance(b, exp.Null)])
    if isinstance(node, exp.Coalesce):
        return _unify([st(a) for a in [node.this, *node.expressions] if not isinstance(a, exp.Null)])
    if isinstance(node, exp.Round | exp.Ceil | exp.Floor):
        arg = st(node.this)
        return arg if arg in ("DECIMAL", "DOUBLE") else None
    return None


def _override(node: Any, duck: str, sql: str, cols: _Columns) -> int | None:
    from sqlglot import exp

    while isinstance(node, exp.Alias | exp.Paren):
        node = node.this
    duck = duck.upper()
    if isinstance(node, exp.Null):
        return types.TEXT
    if isinstance(node, exp.Cast):
        to = str(node.to.sql(dialect="postgres")).upper()
        return types.VARCHAR if to.startswith(("VARCHAR", "CHARACTER VARYING")) and "[" not in to \
            and duck == "VARCHAR" else None
    name, _ = _figure(node, sql)
    if name in _NAME_FUNCS and not isinstance(node, exp.Column):
        return types.NAME
    if name in _FUNC_OIDS and isinstance(node, exp.Func) and duck in _DUCK_INTS:
        return _FUNC_OIDS[name]
    if types.oid_for(duck) not in _NUMERIC_OIDS:
        return None  # only numbers differ between the engines (a base column keeps its type)
    oid = _CATEGORY_OID.get(_static_type(node, cols) or "")
    if oid is None or oid == types.oid_for(duck):
        return None
    return oid


def may_retype(sql: str) -> bool:
    """False when no result column of ``sql`` can differ in type from DuckDB's (no parse)."""
    return _MAY_RETYPE.search(sql) is not None


def result_oid_overrides(sql: str, duck_types: Sequence[str],
                         column_type: Callable[[str | None, str], str | None],
                         names: Sequence[str] = ()) -> dict[int, int]:
    """{result position: OID} where PostgreSQL's type differs from the DuckDB type's mapping:
    ``sum(int)`` int8, ``avg(int)`` and ``numeric / int`` numeric, ``length()`` int4,
    ``current_user`` name, ``NULL`` text, ``::varchar`` varchar."""
    from sqlglot import exp

    w1, _ = command_words(sql)
    if w1 not in ("SELECT", "WITH") or len(sql) > _MAX_SQL or not _MAY_RETYPE.search(sql):
        return {}
    tree = _parsed(sql)
    if not isinstance(tree, exp.Query) or isinstance(tree, exp.Subquery):
        return {}
    selects = tree.selects
    stars = [i for i, e in enumerate(selects)
             if isinstance(e, exp.Star) or (isinstance(e, exp.Column) and isinstance(e.this, exp.Star))]
    extra = len(duck_types) - (len(selects) - len(stars))
    if len(stars) > 1 or extra < 0 or (not stars and extra != 0):
        return {}
    cols = _Columns(tree, column_type)
    out: dict[int, int] = {}
    pos = 0
    first = tree
    while isinstance(first, exp.SetOperation):
        first = first.left
    for i, e in enumerate(selects):
        if i in stars:
            if len(names) == len(duck_types):  # a * over a derived table: type its columns by name
                for j in range(pos, pos + extra):
                    duck = duck_types[j].upper()
                    if types.oid_for(duck) in _NUMERIC_OIDS:
                        oid = _CATEGORY_OID.get(cols.in_sources(first, names[j]) or "")
                        if oid is not None and oid != types.oid_for(duck):
                            out[j] = oid
            pos += extra
            continue
        oid = _override(e, duck_types[pos], sql, cols)
        if oid is not None:
            out[pos] = oid
        pos += 1
    return out


# --- catalog result types ------------------------------------------------------------------------
# PostgreSQL's catalogs have name, oid, "char" and int2 columns where DuckDB's emulation has
# VARCHAR and BIGINT: tools (pgjdbc, SQLAlchemy, DBeaver) read these types from RowDescription.
_CATALOG_SQL = re.compile(r"\bpg_[a-z_]+\b|information_schema", re.I)
_CAST_OIDS = {"NAME": types.NAME, "OID": types.OID, '"CHAR"': types.CHAR, "SMALLINT": types.INT2,
              "INT2": types.INT2, "INTEGER": types.INT4, "INT": types.INT4, "INT4": types.INT4,
              "TEXT": types.TEXT, "NAME[]": 1003, "OID[]": 1028, "TEXT[]": 1009, "SMALLINT[]": 1005,
              "REAL": types.FLOAT4, "FLOAT4": types.FLOAT4}
_NULL = -1  # a NULL projection: PostgreSQL types it text, DuckDB INTEGER
_FUNC_RESULT = {"format_type": types.TEXT, "pg_get_expr": types.TEXT, "pg_get_indexdef": types.TEXT,
                "pg_get_constraintdef": types.TEXT, "pg_get_viewdef": types.TEXT, "col_description": types.TEXT,
                "obj_description": types.TEXT, "shobj_description": types.TEXT, "quote_ident": types.TEXT,
                "pg_get_userbyid": types.NAME, "pg_encoding_to_char": types.NAME, "array_to_string": types.TEXT,
                "pg_get_function_result": types.TEXT, "pg_get_function_arguments": types.TEXT,
                "pg_get_triggerdef": types.TEXT, "pg_get_ruledef": types.TEXT, "array_upper": types.INT4,
                "array_lower": types.INT4, "array_length": types.INT4, "pg_get_serial_sequence": types.TEXT}
_STRINGS_OIDS = frozenset({types.NAME, types.CHAR, types.TEXT, types.VARCHAR})
_INT_OIDS = frozenset({types.OID, types.INT2, types.INT4, types.INT8})
_PG_NODE_TREE = 194  # conbin, indexprs, prosqlbody: text


@lru_cache(maxsize=1)
def _catalog_types() -> dict[str, dict[str, int]]:
    from sqlsluice.middleware.pgcatalog_types import _TYPES

    return {k: {c.split(":")[0]: int(c.split(":")[1]) for c in v.split()} for k, v in _TYPES.items()}


_NULL_COLUMNS: dict[str, frozenset[str]] = {}  # "pg_catalog.<table>" -> columns DuckDB has not (NULL)


def set_catalog_null_columns(columns: dict[str, frozenset[str]]) -> None:
    """Columns served as NULL because DuckDB's catalog lacks them: their PostgreSQL type is
    announced whatever DuckDB types the NULL (see compat.order_catalog_columns)."""
    _NULL_COLUMNS.update(columns)
    _catalog_view.cache_clear()


@lru_cache(maxsize=256)
def _catalog_view(key: str) -> dict[str, int] | None:
    """A catalog table's column OIDs; columns DuckDB lacks as ``-oid``."""
    cols = _catalog_types().get(key)
    if cols is None:
        return None
    nulls = _NULL_COLUMNS.get(key, frozenset())
    return {c: -o if c in nulls else o for c, o in cols.items()}


def is_catalog_query(sql: str) -> bool:
    """True when ``sql`` may read PostgreSQL's catalogs (no parse)."""
    return _CATALOG_SQL.search(sql) is not None


def _catalog_table(t: Any) -> dict[str, int] | None:
    db = (t.args.get("db").name.lower() if t.args.get("db") is not None else "")
    name = t.name.lower()
    if db in ("", "pg_catalog"):
        found = _catalog_view("pg_catalog." + name)
        if found is not None or db:
            return found
    return _catalog_view("information_schema." + name) if db == "information_schema" else None


class _CatalogColumns:
    """Resolves result expressions to PostgreSQL catalog column types through derived tables."""

    def __init__(self, tree: Any) -> None:
        from sqlglot import exp

        self.derived: dict[str, Any] = {}
        for cte in tree.find_all(exp.CTE):
            self.derived.setdefault(cte.alias_or_name.lower(), cte.this)
        self.depth = 0

    def sources(self, select: Any) -> list[tuple[str, Any]]:
        """(alias, source) of a SELECT's FROM and JOIN items: a catalog type map or a query."""
        from sqlglot import exp

        out: list[tuple[str, Any]] = []
        if not isinstance(select, exp.Select):
            return out
        items = [select.args.get("from_") or select.args.get("from")] + list(select.args.get("joins") or [])
        for item in items:
            src = item.this if item is not None else None
            if isinstance(src, exp.Table) and isinstance(src.this, exp.GenerateSeries | exp.ExplodingGenerateSeries):
                # generate_series(1, 32) pos(n): int4 over int4 bounds (pgjdbc's KEY_SEQ)
                alias = src.args.get("alias")
                cols = [c.name.lower() for c in (alias.columns if alias is not None else [])] or [src.alias_or_name]
                ints = all(isinstance(a, exp.Literal) and not a.is_string and a.this.lstrip("-").isdigit()
                           and abs(int(a.this)) < 2**31 for a in (src.this.args.get("start"), src.this.args.get("end")))
                out.append((src.alias_or_name.lower(), {c: types.INT4 if ints else types.INT8 for c in cols}))
            elif isinstance(src, exp.Table):
                q = self.derived.get(src.name.lower()) if src.args.get("db") is None else None
                out.append((src.alias_or_name.lower(), q if q is not None else _catalog_table(src)))
            elif isinstance(src, exp.Subquery):
                out.append((src.alias.lower(), src.this))
        return out

    def of(self, src: Any, name: str) -> int | None:
        from sqlglot import exp

        if src is None:
            return None
        if isinstance(src, dict):
            return src.get(name.lower())
        if self.depth > 8:
            return None
        while isinstance(src, exp.SetOperation):
            src = src.left
        if not isinstance(src, exp.Select):
            return None
        self.depth += 1
        try:
            star = False
            for e in src.selects:
                if isinstance(e, exp.Star) or (isinstance(e, exp.Column) and isinstance(e.this, exp.Star)):
                    star = True
                elif e.alias_or_name.lower() == name.lower():
                    return self.expr(e)
            if star:
                for _, s in self.sources(src):
                    t = self.of(s, name)
                    if t:
                        return t
            return None
        finally:
            self.depth -= 1

    def expr(self, node: Any) -> int | None:
        from sqlglot import exp

        while isinstance(node, exp.Alias | exp.Paren | exp.Min | exp.Max | exp.Nullif):
            node = node.this
        if isinstance(node, exp.Null):
            return _NULL
        if isinstance(node, exp.Column) and not isinstance(node.this, exp.Star):
            select = node.find_ancestor(exp.Select)
            q = node.table.lower()
            for alias, src in self.sources(select):
                if not q or alias == q:
                    t = self.of(src, node.name)
                    if t or q:
                        return t
            return None
        if isinstance(node, exp.Cast):
            return _CAST_OIDS.get(str(node.to.sql(dialect="postgres")).upper())
        if isinstance(node, exp.Case):
            for i in node.args.get("ifs") or []:
                if not isinstance(i.args.get("true"), exp.Null):
                    return self.expr(i.args.get("true"))
            return None
        if isinstance(node, exp.Coalesce):
            return self.expr(node.this)
        if isinstance(node, exp.ArrayAgg):
            elem = self.expr(node.this.this if isinstance(node.this, exp.Order) else node.this)
            return types.ARRAY_OF.get(elem) if elem is not None and elem > 0 else None
        if isinstance(node, exp.Subquery) and isinstance(node.this, exp.Select) and node.this.selects:
            return self.expr(node.this.selects[0])
        if isinstance(node, exp.Dot) and node.name.lower() == "n":
            return types.INT4  # (information_schema._pg_expandarray(a)).n
        if isinstance(node, exp.Dot) and isinstance(node.expression, exp.Func):
            node = node.expression  # pg_catalog.pg_get_expr(...)
        if isinstance(node, exp.Func):
            fname = (node.name if isinstance(node, exp.Anonymous) else node.sql_name()).lower()
            return _FUNC_RESULT.get(fname.rsplit(".", 1)[-1])
        return None


def catalog_oid_overrides(sql: str, duck_types: Sequence[str], names: Sequence[str]) -> dict[int, int]:
    """{result position: OID} for result columns read from PostgreSQL's catalogs, typed as
    PostgreSQL types them (``relname`` name, ``oid`` oid, ``relkind`` "char", ``attnum`` int2)
    where DuckDB's type is of the same family (strings, integers)."""
    from sqlglot import exp

    w1, _ = command_words(sql)
    if w1 not in ("SELECT", "WITH") or len(sql) > _MAX_SQL:
        return {}
    tree = _parsed(sql)
    if not isinstance(tree, exp.Query) or isinstance(tree, exp.Subquery):
        return {}
    first = tree
    while isinstance(first, exp.SetOperation):
        first = first.left
    if not isinstance(first, exp.Select):
        return {}
    cols = _CatalogColumns(tree)
    selects = first.selects
    stars = [i for i, e in enumerate(selects)
             if isinstance(e, exp.Star) or (isinstance(e, exp.Column) and isinstance(e.this, exp.Star))]
    extra = len(duck_types) - (len(selects) - len(stars))
    if len(stars) > 1 or extra < 0 or (not stars and extra != 0):
        return {}
    wanted: list[int | None] = []
    for i, e in enumerate(selects):
        if i in stars:
            wanted += [cols.of(first, names[j]) if j < len(names) else None
                       for j in range(len(wanted), len(wanted) + extra)]
        else:
            wanted.append(cols.expr(e))
    out: dict[int, int] = {}
    for pos, (oid, duck) in enumerate(zip(wanted, duck_types, strict=False)):
        if oid is None:
            continue
        have = types.oid_for(duck)
        if oid <= -16:
            out[pos] = -oid  # a column DuckDB's catalog lacks (always NULL): PostgreSQL's type
            continue
        if oid == _NULL:
            if have != types.TEXT:
                out[pos] = types.TEXT
            continue
        if oid == have:
            out[pos] = oid  # the catalog's type wins over result_oid_overrides' numeric typing
            continue
        if (oid == types.TEXT and have in _INT_OIDS) or (oid == types.FLOAT4 and have == types.FLOAT8) \
                or (oid in _STRINGS_OIDS and have in _STRINGS_OIDS) or (oid in _INT_OIDS and have in _INT_OIDS) \
                or (oid == _PG_NODE_TREE and have in _STRINGS_OIDS) \
                or (oid in (types.INT2VECTOR, types.OIDVECTOR) and duck.upper().endswith("[]") and have != types.TEXT) \
                or (oid in (1003, 1009) and duck.upper().startswith("VARCHAR[")) \
                or (oid in (1028, 1005) and duck.upper().endswith("[]") and have != types.TEXT):
            out[pos] = oid
    return out


# --- division -------------------------------------------------------------------------------
_STRINGS = re.compile(r"'(?:[^']|'')*'")
_ARITH = re.compile(r"(?<![/*])/(?![/*])|%")
_DIV_WORDS = frozenset({"SELECT", "WITH", "VALUES", "TABLE", "FROM", "INSERT", "UPDATE", "DELETE"})


@lru_cache(maxsize=4096)
def _guard(sql: str) -> str | None:
    from sqlglot import exp
    from sqlglot.errors import SqlglotError

    shared = _parsed(sql)  # the parse that names the columns (shared: modify a copy only)
    if shared is None or shared.find(exp.Div, exp.Mod) is None:
        return None
    tree = shared.copy()
    nodes = list(tree.find_all(exp.Div, exp.Mod))
    for node in nodes:
        b = node.expression
        if isinstance(b, exp.Literal) and not b.is_string:
            try:
                if float(b.this) != 0:
                    continue  # a non-zero constant divisor cannot raise
            except ValueError:
                pass
        guard = exp.Case(ifs=[exp.If(this=exp.EQ(this=b.copy(), expression=exp.Literal.number(0)),
                                     true=exp.Anonymous(this="error",
                                                        expressions=[exp.Literal.string(DIVISION_BY_ZERO)]))],
                         default=b.copy())
        b.replace(guard)
    try:
        return tree.sql(dialect="duckdb")
    except SqlglotError:
        return None


def guard_division(sql: str) -> str:
    """``sql`` with every divisor guarded to raise 22012 on zero, as PostgreSQL does (the SQL
    comes back unchanged when it has no division or sqlglot cannot read it)."""
    if ("/" not in sql and "%" not in sql) or len(sql) > _MAX_SQL or not _ARITH.search(_STRINGS.sub("", sql)):
        return sql  # no division outside string literals and comments (LIKE 'a%' is not one)
    w1, _ = command_words(sql)
    if w1 not in _DIV_WORDS:
        return sql  # DDL keeps its text: a view must not store the guard
    return _guard(sql) or sql


def pg_error(e: SluiceError) -> SluiceError:
    """The guard's error (DuckDB: "Invalid Input Error: division by zero") as SQLSTATE 22012."""
    if e.sqlstate != "22012" and e.message.endswith(DIVISION_BY_ZERO) and "Error: " in e.message:
        return BackendError(DIVISION_BY_ZERO, sqlstate="22012")
    if e.sqlstate == "22012" and e.message != DIVISION_BY_ZERO:
        return BackendError(DIVISION_BY_ZERO, sqlstate="22012")
    return e


# --- the default schema -----------------------------------------------------------------------
# PostgreSQL's default schema is ``public``; DuckDB's is ``main``. Clients see ``public`` (the
# catalog shims rename it) and write ``public.t`` / ``"public"."t"``, which DuckDB reads as main.t.
PUBLIC_SCHEMA = "public"
DUCKDB_SCHEMA = "main"
_HAS_PUBLIC = re.compile(r"public\"?\s*\.", re.I)
# a string literal (kept as it is) or the schema name ``public`` before a dot (not a column of
# a table aliased ``x``: ``x.public`` is preceded by a dot, but ``db.public.t`` is a schema too)
_PUBLIC_REF = re.compile(r"(?:[eE]'(?:[^'\\]|\\.|'')*'|'(?:[^']|'')*'|\"(?!public\")(?:[^\"]|\"\")*\""
                         r"|--[^\n]*|(?<![\w$])(\"public\"|(?i:public))(?=\s*\.\s*[\"A-Za-z_]))")


def _main_for_public(m: re.Match[str]) -> str:
    if m.group(1) is None:
        return m.group(0)
    return '"main"' if m.group(1).startswith('"') else DUCKDB_SCHEMA


def duckdb_schema(sql: str) -> str:
    """``public.t`` (and ``"public"."t"``, ``db.public.t``) in the client's SQL as DuckDB names
    it, ``main.t``; string literals, quoted identifiers and comments are left alone.

    >>> duckdb_schema('SELECT public.t.a FROM "public"."t", x WHERE s = \\'public.t\\'')
    'SELECT main.t.a FROM "main"."t", x WHERE s = \\'public.t\\''
    """
    if not _HAS_PUBLIC.search(sql):
        return sql
    return _PUBLIC_REF.sub(_main_for_public, sql)
