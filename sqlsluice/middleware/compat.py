"""PostgreSQL compatibility over DuckDB: GUCs, catalog functions, transaction semantics.

Real clients send PostgreSQL-only statements at connect time and for reflection
(``SET extra_float_digits``, ``SHOW transaction isolation level``, ``select
pg_catalog.version()``, ``'t'::regclass``, psql's ``\\d`` queries).  This module answers
what DuckDB cannot, in three cheap steps, none of which touch the hot path of a plain
``SELECT``:

1. :meth:`Compat.intercept`: a few keywords (SET/SHOW/BEGIN/RESET/DISCARD...) answered
   locally or normalised;
2. :meth:`Compat.translate`: for statements that mention ``pg_catalog``, ``::reg*`` or
   ``pg_`` functions, regex rewrites of known PostgreSQL-isms, then sqlglot
   (``read="postgres", write="duckdb"``) if DuckDB still rejects them (cached per string);
3. per-session temporary macros (``version()``, ``set_config``, ``current_setting``,
   ``pg_get_userbyid``...) created once per session in :meth:`Compat.setup`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import duckdb

from sqlsluice.databases.base import ColumnInfo, MaterializedResult, Result
from sqlsluice.databases.duckdb_backend import DuckDBSession, command_words
from sqlsluice.errors import BackendError, SluiceError
from sqlsluice.middleware import pgsemantics, types
from sqlsluice.middleware.pipeline import Reply

log = logging.getLogger("sqlsluice.compat")
PG_VERSION = "PostgreSQL 15.0 (sqlsluice over DuckDB {duck}) on x86_64-pc-linux-gnu, compiled by gcc, 64-bit"

# GUCs reported by SHOW / current_setting, and accepted (and ignored) by SET
GUCS: dict[str, str] = {
    "server_version": "15.0 (sqlsluice)", "server_version_num": "150000", "server_encoding": "UTF8",
    "client_encoding": "UTF8", "datestyle": "ISO, MDY", "timezone": "UTC", "intervalstyle": "postgres",
    "integer_datetimes": "on", "standard_conforming_strings": "on", "transaction_isolation": "read committed",
    "default_transaction_isolation": "read committed", "transaction_read_only": "off",
    "default_transaction_read_only": "off", "max_identifier_length": "63", "search_path": '"$user", public',
    "is_superuser": "on", "application_name": "", "lc_collate": "C", "lc_ctype": "C", "lc_messages": "C",
    "lc_monetary": "C", "lc_numeric": "C", "lc_time": "C", "extra_float_digits": "1", "statement_timeout": "0",
    "lock_timeout": "0", "idle_in_transaction_session_timeout": "0", "bytea_output": "hex",
    "client_min_messages": "notice", "jit": "off", "escape_string_warning": "on", "default_with_oids": "off",
    "row_security": "on", "synchronous_commit": "on", "work_mem": "4MB", "max_connections": "100",
    "block_size": "8192", "session_authorization": "", "role": "none", "plan_cache_mode": "auto",
    "enable_seqscan": "on", "geqo": "on", "default_tablespace": "", "check_function_bodies": "on",
    "xmloption": "content", "array_nulls": "on", "backslash_quote": "safe_encoding",
    "quote_all_identifiers": "off", "max_index_keys": "32", "cursor_tuple_fraction": "0.1", "gin_fuzzy_search_limit": "0",
}
_SET = re.compile(r"^\s*SET\s+(?:SESSION\s+|LOCAL\s+)?([A-Za-z_][\w.]*)\s*(?:=|\s+TO\s+)\s*(.*?)\s*;?\s*$",
                  re.I | re.S)
_SET_TZ = re.compile(r"^\s*SET\s+(?:SESSION\s+|LOCAL\s+)?TIME\s+ZONE\s+(.*?)\s*;?\s*$", re.I | re.S)
_SET_TX = re.compile(r"^\s*SET\s+(?:SESSION\s+CHARACTERISTICS\s+AS\s+)?TRANSACTION\b", re.I)
_SET_NAMES = re.compile(r"^\s*SET\s+NAMES\b", re.I)
_SHOW = re.compile(r"^\s*SHOW\s+([A-Za-z_][\w.]*(?:\s+[A-Za-z_]\w*)*)\s*;?\s*$", re.I)
_RESET = re.compile(r"^\s*RESET\s+(ALL|[A-Za-z_][\w.]*)\s*;?\s*$", re.I)
_BEGIN = re.compile(r"^\s*(BEGIN|START\s+TRANSACTION)\b(.*)$", re.I | re.S)
_NOOP = re.compile(r"^\s*(DISCARD\s+\w+|LISTEN\s+\w+|UNLISTEN\s+[\w*]+|DEALLOCATE\s+(?:PREPARE\s+)?(?:ALL|\w+)"
                   r"|SAVEPOINT\s+(?:\w+|\"[^\"]+\")|RELEASE\s+(?:SAVEPOINT\s+)?(?:\w+|\"[^\"]+\"))"
                   r"\s*;?\s*$", re.I)
_ROLLBACK_TO = re.compile(r"^\s*ROLLBACK\s+(?:WORK\s+|TRANSACTION\s+)?TO\s+(?:SAVEPOINT\s+)?(?:\w+|\"[^\"]+\")\s*;?\s*$",
                          re.I)
_GUC_DISPLAY = {"timezone": "TimeZone", "datestyle": "DateStyle", "intervalstyle": "IntervalStyle"}  # SHOW's column
_SHOW_ALIASES = {"transaction isolation level": "transaction_isolation", "time zone": "timezone",
                 "session authorization": "session_authorization"}

# statements that mention any of these go through translate()
_PG_MARKERS = re.compile(r"pg_catalog\.|\b(?:current_user|session_user|current_role)\b|\bpg_(?:roles|user|database|settings|namespace|inherits|authid|constraint|auth_members|index|type|class|attribute|am|opclass|extension|trigger|rewrite|policy|language|operator|collation|enum|proc|description|attrdef|stat_user_tables)\b|::\s*(?:pg_catalog\.)?reg\w+|\bpg_\w+\s*\(|\boid\b|information_schema"
                         r"|::\s*(?:pg_catalog\.)?(?:name|oid|text\[\])|\bany\s*\(|json_build_object|\bcollate\b|OPERATOR\(",
                         re.I)
_CREATE_TABLE = re.compile(r"^\s*CREATE\s+(?:TEMP\w*\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?((?:\"[^\"]+\"|\w+)"
                           r"(?:\.(?:\"[^\"]+\"|\w+))?)", re.I)
_CREATE_PUBLIC = re.compile(r'^\s*CREATE\s+SCHEMA\s+(IF\s+NOT\s+EXISTS\s+)?(?:public|"public")\s*;?\s*$', re.I)
_SERIAL_COL = re.compile(r"(\"[^\"]+\"|\b\w+)\s+(BIG|SMALL)?SERIAL\b", re.I)
_EMPTY_CATALOG = re.compile(r"sluice_pg_(?:publication|policy|trigger|statistic_ext|event_trigger|rewrite)\b")
_ROW_WORDS = frozenset({"SELECT", "WITH", "VALUES", "TABLE", "FROM", "SHOW", "DESCRIBE", "EXPLAIN", "PRAGMA",
                        "SUMMARIZE", "CALL"})


# DuckDB's format_type() spelling -> PostgreSQL's (SQLAlchemy maps the latter to types)
_PG_TYPE_NAMES = {
    "int4": "integer", "int8": "bigint", "int2": "smallint", "tinyint": "smallint", "utinyint": "smallint",
    "usmallint": "integer", "uinteger": "bigint", "ubigint": "numeric", "hugeint": "numeric",
    "uhugeint": "numeric", "varchar": "character varying", "bool": "boolean", "float8": "double precision",
    "float4": "real", "timestamp": "timestamp without time zone", "timestamp_s": "timestamp without time zone",
    "timestamp_ms": "timestamp without time zone", "timestamp_ns": "timestamp without time zone",
    "timestamptz": "timestamp with time zone", "time": "time without time zone",
    "timetz": "time with time zone", "null": "unknown", "bignum": "numeric",
}


# The OID of a constraint (and of its index: PostgreSQL has a pg_class and a pg_index row for each
# primary key and unique constraint, DuckDB none): CON_OID_BASE + its place in duckdb_constraints().
# DuckDB's own pg_constraint.oid is table_oid * 1000000 + that place, past int4 and PostgreSQL's
# uint32 oids (pgjdbc, DBeaver read oids as int4); the base lies far above the OIDs DuckDB hands
# out. Like DuckDB's, the number changes when an earlier table is dropped.
CON_OID_BASE = 1_500_000_000
_CON_OID = f"({CON_OID_BASE} + {{0}}.oid % 1000000)::BIGINT"

# The row (composite) type of a table or view, as PostgreSQL has one for each: ROW_TYPE_BASE + 2 * the
# relation's oid (its array: + 1; an enum's array: ROW_TYPE_BASE + 2 * the enum's oid + 1); int4 while
# DuckDB's oids stay below 273 million
ROW_TYPE_BASE = 1_600_000_000
_ROW_TYPE_OID = f"({ROW_TYPE_BASE} + 2 * {{0}})::BIGINT"

# a DuckDB schema name as clients see it: main (DuckDB's default) is PostgreSQL's public
_PG_SCHEMA = "(CASE {0} WHEN 'main' THEN 'public' ELSE {0} END)"

_PARSE_IDENT = ("list_transform(string_split(s, '.'), x -> CASE WHEN x LIKE '\"%\"' THEN replace(x[2:-2], "
                "'\"\"', '\"') ELSE lower(x) END)")


def _pg_display_names() -> list[tuple[int, str]]:
    """(PostgreSQL type OID, format_type's name) for the types sluice maps to, arrays too."""
    out = []
    for oid, name in sorted(types.PG_NAME.items()):
        out.append((oid, name))
        arr = types.ARRAY_OF.get(oid)
        if arr:
            out.append((arr, name + "[]"))
    return out


# DuckDB type (duckdb_columns().data_type) -> PostgreSQL type OID, for pg_attribute.atttypid
_DUCK_TYPE_OIDS = {
    "BOOLEAN": 16, "TINYINT": 21, "UTINYINT": 21, "SMALLINT": 21, "USMALLINT": 23, "INTEGER": 23, "UINTEGER": 20,
    "BIGINT": 20, "UBIGINT": 1700, "HUGEINT": 1700, "UHUGEINT": 1700, "FLOAT": 700, "DOUBLE": 701,
    "VARCHAR": 1043, "DATE": 1082, "TIME": 1083, "TIMESTAMP": 1114, "TIMESTAMP_S": 1114, "TIMESTAMP_MS": 1114,
    "TIMESTAMP_NS": 1114, "TIMESTAMP WITH TIME ZONE": 1184, "TIME WITH TIME ZONE": 1266, "INTERVAL": 1186,
    "BLOB": 17, "UUID": 2950, "JSON": 114,
}


# an enum type of duckdb_types() as DuckDB writes a column's type (``ENUM('a', 'b')``): the
# column type names no enum, so a column of an enum type is told by its labels (the first such type)
_ENUM_TYPE_TEXT = ("'ENUM(' || array_to_string(list_transform(labels, _l -> '''' || replace(_l, '''', '''''') "
                   "|| ''''), ', ') || ')'")
_ENUM_OIDS_SQL = (f"SELECT {_ENUM_TYPE_TEXT} AS t, min(type_oid) FROM duckdb_types() WHERE logical_type = 'ENUM' "
                  "AND NOT internal AND type_oid IS NOT NULL GROUP BY 1")


def _duck_type_oid_case(expr: str, *, enums: bool = True) -> str:
    """SQL: the PostgreSQL type OID of the DuckDB type named by ``expr`` (an enum's own OID, as
    PostgreSQL has it, unless ``enums`` is false (a subquery: not in a lambda); 25 for types
    without one)."""
    scalar = " ".join(f"WHEN {_sql_str(k)} THEN {v}" for k, v in _DUCK_TYPE_OIDS.items())
    arrays = " ".join(f"WHEN {_sql_str(k + '[]')} THEN {types.ARRAY_OF.get(v, 1009)}"
                      for k, v in _DUCK_TYPE_OIDS.items() if types.ARRAY_OF.get(v))
    return (f"CASE WHEN {expr} LIKE 'DECIMAL%[]' THEN 1231 WHEN {expr} LIKE 'DECIMAL%' THEN 1700 "
            + (f"WHEN {expr} LIKE 'ENUM(%' AND {expr} NOT LIKE '%[]' THEN COALESCE((SELECT min(type_oid) "
               f"FROM duckdb_types() WHERE logical_type = 'ENUM' AND NOT internal AND {_ENUM_TYPE_TEXT} = {expr}), "
               "25) " if enums else "")
            + f"ELSE CASE {expr} {scalar} {arrays} ELSE 25 END END")


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def _parse_duration(raw: str) -> float | None:
    """PostgreSQL's ``statement_timeout`` value in seconds (plain numbers are milliseconds);
    ``0`` turns the timeout off (0.0); unparsable -> None (keep the server's)."""
    m = re.match(r"^\s*(\d+(?:\.\d+)?)\s*(us|ms|s|min|h|d)?\s*$", raw.strip().lower())
    if not m:
        return None
    return float(m.group(1)) * _UNITS[m.group(2) or "ms"]


def _unquote(v: str) -> str:
    v = v.strip()
    if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"":
        return v[1:-1].replace(v[0] * 2, v[0])
    return v


def _sql_str(v: str) -> str:
    return "'" + v.replace("'", "''") + "'"


class Compat:
    """PostgreSQL behaviour for one DuckDB session (see module docstring)."""

    def __init__(self, session: DuckDBSession, params: dict[str, str]) -> None:
        self.session = session
        self.gucs = dict(GUCS)
        self.gucs["application_name"] = params.get("application_name", "")
        self.gucs["session_authorization"] = params.get("user", "")
        self.user = params.get("user", "sluice")
        self.notices: list[tuple[str, str, str]] = []  # (severity, sqlstate, message) for the client
        self.client_set: set[str] = set()  # GUCs this client SET
        self._timeout_raw = ""
        self._timeout_s: float | None = None  # None: unparsable, the server's applies
        self._meta: Any = None  # a second DuckDB connection for catalog look-ups
        self._col_types: dict[tuple[str | None, str], str | None] = {}
        self._enum_oids: dict[str, int] = {}  # DuckDB's ENUM('a', 'b') column type -> the enum's OID
        self.unguarded = 0  # statements run without the division guard (sqlglot's text did not bind)
        self._client_sql: dict[str, str] = {}  # statement run -> the client's text (see written_as)
        # result column OIDs where PostgreSQL's type differs, per (sql, DuckDB types, names)
        self._oid_overrides: dict[tuple[str, tuple[str, ...], tuple[str, ...]], dict[int, int]] = {}

    def written_as(self, sql: str, client_sql: str) -> None:
        """Remember that ``sql`` (a rewrite, a normalised form) stands for the client's
        ``client_sql``: PostgreSQL names and types the result from what the client wrote."""
        if len(self._client_sql) >= 1024:
            self._client_sql.clear()
        self._client_sql[sql] = client_sql

    # --- setup (worker thread) ---------------------------------------------------------
    def setup(self) -> None:
        con = self.session._con
        version = PG_VERSION.format(duck=duckdb.__version__)
        cases = " ".join(f"WHEN {_sql_str(k)} THEN {_sql_str(v)}" for k, v in GUCS.items())
        macros = [
            f"CREATE OR REPLACE TEMP MACRO version() AS {_sql_str(version)}",
            "CREATE OR REPLACE TEMP MACRO set_config(name, value, is_local) AS value",
            f"CREATE OR REPLACE TEMP MACRO current_setting(name) AS CASE lower(name) {cases} ELSE NULL END, "
            f"(name, missing_ok) AS CASE lower(name) {cases} ELSE NULL END",
            f"CREATE OR REPLACE TEMP MACRO pg_get_userbyid(id) AS {_sql_str(self.user)}",
            "CREATE OR REPLACE TEMP MACRO to_regtype(name) AS NULL::BIGINT",
            "CREATE OR REPLACE TEMP MACRO to_regclass(name) AS "
            "(SELECT oid FROM pg_catalog.pg_class WHERE relname = split_part(name, '.', -1) LIMIT 1)",
            # DuckDB's default schema main is presented as PostgreSQL's public (search_path
            # "$user", public; the $user schema does not exist, as in a fresh PostgreSQL)
            "CREATE OR REPLACE TEMP MACRO current_schema() AS 'public'",
            "CREATE OR REPLACE TEMP MACRO current_schemas(implicit) AS "
            "CASE WHEN implicit THEN ['pg_catalog', 'public'] ELSE ['public'] END",
            "CREATE OR REPLACE TEMP MACRO pg_encoding_to_char(enc) AS 'UTF8'",
            "CREATE OR REPLACE TEMP MACRO pg_backend_pid() AS 1",
            "CREATE OR REPLACE TEMP MACRO pg_postmaster_start_time() AS now()",
            "CREATE OR REPLACE TEMP MACRO inet_server_addr() AS '127.0.0.1'",
            "CREATE OR REPLACE TEMP MACRO inet_server_port() AS 5432",
            "CREATE OR REPLACE TEMP MACRO pg_get_statisticsobjdef_columns(oid) AS NULL",
            "CREATE OR REPLACE TEMP MACRO pg_relation_is_publishable(oid) AS false",
            "CREATE OR REPLACE TEMP MACRO pg_get_partkeydef(oid) AS NULL",
            "CREATE OR REPLACE TEMP MACRO pg_partition_ancestors(rel) AS TRY_CAST(rel AS BIGINT)",
            # PostgreSQL's text: psql prints what follows " USING "; col > 0: that column only
            "CREATE OR REPLACE TEMP MACRO sluice_indexdef(idx, col) AS COALESCE("
            "(SELECT CASE WHEN col > 0 THEN trim(split_part(trim(expressions, '[]'), ',', col)) ELSE 'CREATE ' || "
            "CASE WHEN is_unique THEN 'UNIQUE ' ELSE '' END || 'INDEX ' || index_name || ' ON ' || "
            + _PG_SCHEMA.format("schema_name") + " || '.' || table_name || ' USING btree (' || "
            "trim(expressions, '[]') || ')' END "
            "FROM duckdb_indexes() WHERE index_oid = idx), "
            "(SELECT CASE WHEN col > 0 THEN d.constraint_column_names[col] ELSE 'CREATE UNIQUE INDEX ' || "
            "CASE d.constraint_type WHEN 'PRIMARY KEY' THEN d.table_name || '_pkey' ELSE d.table_name || '_' || "
            "array_to_string(d.constraint_column_names, '_') || '_key' END || ' ON ' || "
            + _PG_SCHEMA.format("d.schema_name") + " || '.' || d.table_name || ' USING btree (' || "
            "array_to_string(d.constraint_column_names, ', ') || ')' END "
            f"FROM duckdb_constraints() d WHERE d.constraint_index = idx - {CON_OID_BASE} "
            "AND d.constraint_type IN ('PRIMARY KEY', 'UNIQUE')))",
            "CREATE OR REPLACE TEMP MACRO pg_get_indexdef(idx) AS sluice_indexdef(idx, 0), "
            "(idx, col, pretty) AS sluice_indexdef(idx, col)",
            "CREATE OR REPLACE TEMP MACRO sluice_condef(con) AS (SELECT CASE d.constraint_type "
            "WHEN 'PRIMARY KEY' THEN 'PRIMARY KEY (' || array_to_string(d.constraint_column_names, ', ') || ')' "
            "WHEN 'UNIQUE' THEN 'UNIQUE (' || array_to_string(d.constraint_column_names, ', ') || ')' "
            "WHEN 'CHECK' THEN 'CHECK ' || CASE WHEN d.expression LIKE '(%' THEN d.expression "
            "ELSE '(' || d.expression || ')' END ELSE d.constraint_text END "
            f"FROM duckdb_constraints() d WHERE d.constraint_index = con - {CON_OID_BASE})",
            "CREATE OR REPLACE TEMP MACRO pg_get_constraintdef(con) AS sluice_condef(con), "
            "(con, pretty) AS sluice_condef(con)",
            # the query only, as PostgreSQL prints it (DuckDB keeps the CREATE VIEW statement)
            "CREATE OR REPLACE TEMP MACRO pg_get_viewdef(v) AS (SELECT ' ' || regexp_replace(sql, "
            "'^\\s*CREATE\\s+(OR\\s+REPLACE\\s+)?(TEMP(ORARY)?\\s+)?VIEW\\s+.*?\\s+AS\\s+', '', 'is') "
            "FROM duckdb_views() WHERE view_oid = v)",
            "CREATE OR REPLACE TEMP MACRO pg_total_relation_size(oid) AS 0::BIGINT",
            "CREATE OR REPLACE TEMP MACRO pg_database_size(db) AS 0::BIGINT",
            "CREATE OR REPLACE TEMP MACRO pg_get_function_sqlbody(oid) AS NULL::VARCHAR",
            "CREATE OR REPLACE TEMP MACRO pg_tablespace_location(oid) AS ''",
            "CREATE OR REPLACE TEMP MACRO pg_relation_size(oid) AS 0::BIGINT",
            "CREATE OR REPLACE TEMP MACRO pg_table_size(oid) AS 0::BIGINT",
            "CREATE OR REPLACE TEMP MACRO pg_size_pretty(n) AS format_bytes(n::BIGINT)",
            "CREATE OR REPLACE TEMP MACRO pg_get_function_identity_arguments(oid) AS ''",
            "CREATE OR REPLACE TEMP MACRO pg_get_function_result(oid) AS ''",
            "CREATE OR REPLACE TEMP MACRO pg_get_function_arguments(oid) AS ''",
            "CREATE OR REPLACE TEMP MACRO pg_get_triggerdef(oid, pretty) AS ''",
            "CREATE OR REPLACE TEMP MACRO pg_get_ruledef(oid, pretty) AS ''",
            # quoted only where needed, as PostgreSQL does (keywords aside)
            "CREATE OR REPLACE TEMP MACRO quote_ident(s) AS CASE WHEN regexp_full_match(s, '[a-z_][a-z0-9_$]*') "
            "THEN s ELSE '\"' || replace(s, '\"', '\"\"') || '\"' END",
            "CREATE OR REPLACE TEMP MACRO pg_is_in_recovery() AS false",
            # PostgreSQL's type OIDs (the pg_type and pg_attribute shims carry them), with
            # typmods as PostgreSQL encodes them; other (user) types by DuckDB's name
            "CREATE OR REPLACE TEMP MACRO sluice_format_type(type_oid, typemod) AS CASE "
            "WHEN type_oid = 1700 AND typemod > 4 THEN 'numeric(' || ((typemod - 4) // 65536) || ',' || "
            "((typemod - 4) % 65536) || ')' "
            "WHEN type_oid IN (1043, 1042) AND typemod > 4 THEN CASE type_oid WHEN 1043 THEN 'character varying' "
            "ELSE 'character' END || '(' || (typemod - 4) || ')' "
            + " ".join(f"WHEN type_oid = {o} THEN {_sql_str(n)}"
                       for o, n in [*_pg_display_names(), (27, "tid"), (28, "xid"), (29, "cid")])  # system columns
            + " ELSE (SELECT typname FROM pg_catalog.pg_type WHERE oid = type_oid LIMIT 1) END",
            "CREATE OR REPLACE TEMP MACRO pg_get_serial_sequence(tab, col) AS NULL::VARCHAR",
            "CREATE OR REPLACE TEMP MACRO pg_collation_is_visible(oid) AS true",
            "CREATE OR REPLACE TEMP MACRO pg_opclass_is_visible(oid) AS true",
            "CREATE OR REPLACE TEMP MACRO pg_conversion_is_visible(oid) AS true",
            "CREATE OR REPLACE TEMP MACRO array_upper(arr, dim) AS len(arr)",
            "CREATE OR REPLACE TEMP MACRO array_lower(arr, dim) AS CASE WHEN len(arr) > 0 THEN 1 END",
            "CREATE OR REPLACE TEMP MACRO txid_current() AS 1::BIGINT",
            # parse_ident('a.b') -> ['a', 'b'] (quoted parts unquoted; dots inside quotes not kept)
            "CREATE OR REPLACE TEMP MACRO parse_ident(s) AS " + _PARSE_IDENT + ", (s, strict) AS " + _PARSE_IDENT,
            # PostgreSQL's information_schema._pg_expandarray: a row (x, n) per element
            "CREATE OR REPLACE TEMP MACRO _pg_expandarray(arr) AS "
            "unnest(list_transform(range(1, len(arr) + 1), i -> {'x': arr[i], 'n': i::INTEGER}))",
            "CREATE OR REPLACE TEMP MACRO pg_current_xact_id() AS 1::BIGINT",
        ]
        # PostgreSQL's int / int truncates (DuckDB's / is float division); per connection
        macros.append("SET integer_division = true")
        for m in macros:
            try:
                con.execute(m)
            except duckdb.Error:
                continue  # an older/newer DuckDB without one of these is still usable
        order_catalog_columns(con)

    def statement_timeout(self, default_s: float) -> float:
        """Seconds a statement may run: the session's ``SET statement_timeout`` (PostgreSQL units,
        0 = off) when set, else the server's ``statement_timeout_s``."""
        if "statement_timeout" not in self.client_set:
            return default_s
        raw = self.gucs["statement_timeout"]
        if raw != self._timeout_raw:
            self._timeout_raw = raw
            self._timeout_s = _parse_duration(raw)
        return self._timeout_s if self._timeout_s is not None else default_s

    # --- local answers -------------------------------------------------------------------
    def intercept(self, sql: str) -> str | Reply:
        """A local Reply for GUC statements and no-ops, else the SQL to run (maybe normalised)."""
        head = sql.lstrip()[:5].upper()
        if head.startswith("WITH") and "typeinfo_tree" in sql:
            return ASYNCPG_INTROSPECT
        if head.startswith("SELEC") and "t.typname = $1 AND ns.nspname = $2" in sql:
            return ASYNCPG_TYPE_BY_NAME
        if head.startswith("SET"):
            if _SET_TX.match(sql) or _SET_NAMES.match(sql):
                return Reply([], [], "SET")
            m = _SET_TZ.match(sql)
            if m:
                self.gucs["timezone"] = _unquote(m.group(1))
                return Reply([], [], "SET")
            m = _SET.match(sql)
            if m:
                name = m.group(1).lower()
                if name in GUCS or name.startswith(("pg_", "plpgsql.", "auto_explain.")):
                    self.gucs[name] = _unquote(m.group(2))
                    self.client_set.add(name)
                    return Reply([], [], "SET")
            return sql
        if head.startswith("SHOW"):
            m = _SHOW.match(sql)
            if m:
                raw = " ".join(m.group(1).lower().split())
                name = _SHOW_ALIASES.get(raw, raw)
                if name == "all":
                    return Reply([ColumnInfo("name", "VARCHAR"), ColumnInfo("setting", "VARCHAR")],
                                 sorted(self.gucs.items()), "SHOW")
                if name in self.gucs:
                    return Reply([ColumnInfo(_GUC_DISPLAY.get(name, name), "VARCHAR")], [(self.gucs[name],)], "SHOW")
            return sql
        if head.startswith("RESET"):
            m = _RESET.match(sql)
            if m:
                name = m.group(1).lower()
                if name == "all":
                    self.gucs.update(GUCS)
                    self.client_set.clear()
                elif name in GUCS:
                    self.gucs[name] = GUCS[name]
                    self.client_set.discard(name)
                return Reply([], [], "RESET")
            return sql
        if head.startswith(("BEGIN", "START")):
            m = _BEGIN.match(sql)
            if m and m.group(2).strip(" ;\n\t"):
                # isolation levels / READ ONLY: DuckDB has one (snapshot) level
                return "START TRANSACTION" if m.group(1).upper().startswith("START") else "BEGIN"
            return sql
        if head.startswith("ROLLB") and _ROLLBACK_TO.match(sql):
            # DuckDB has no savepoints: clear the error state so the transaction goes on;
            # changes made since the savepoint are NOT undone (documented limitation)
            self.session._failed = False
            return Reply([], [], "ROLLBACK")
        if _NOOP.match(sql):
            w1, w2 = command_words(sql)
            return Reply([], [], {"DISCARD": "DISCARD ALL", "DEALLOCATE": "DEALLOCATE ALL" if w2 == "ALL"
                                  else "DEALLOCATE", "RELEASE": "RELEASE"}.get(w1, w1))
        return sql

    # --- execution (worker thread) --------------------------------------------------------
    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Result:
        w1, _ = command_words(sql)
        s = self.session
        if s.transaction_failed:
            if w1 in ("COMMIT", "END"):
                s.execute("ROLLBACK")
                return MaterializedResult(status="ROLLBACK")
            if w1 not in ("ROLLBACK", "ABORT"):
                raise BackendError("current transaction is aborted, commands ignored until end of transaction "
                                   "block", sqlstate="25P02")
        if w1 in ("BEGIN", "START") and s.in_transaction:
            self.notices.append(("WARNING", "25001", "there is already a transaction in progress"))
            return MaterializedResult(status=pgsemantics.command_tag(sql, 0))
        if w1 in ("COMMIT", "END", "ROLLBACK", "ABORT") and not s.in_transaction:
            self.notices.append(("WARNING", "25P01", "there is no transaction in progress"))
            return MaterializedResult(status="COMMIT" if w1 in ("COMMIT", "END") else "ROLLBACK")
        public = _CREATE_PUBLIC.match(sql) if w1 == "CREATE" else None
        if public is not None:
            # public is DuckDB's main, which exists (migration tools create it "if not exists")
            if public.group(1):
                self.notices.append(("NOTICE", "42P06", 'schema "public" already exists, skipping'))
                return MaterializedResult(status="CREATE SCHEMA")
            raise BackendError('schema "public" already exists', sqlstate="42P06")
        run_sql = pgsemantics.duckdb_schema(sql)  # public.t: DuckDB's main.t
        if w1 in ("CREATE", "ALTER", "DROP") and (self._col_types or self._oid_overrides or self._enum_oids):
            self._col_types.clear()
            self._oid_overrides.clear()
            self._enum_oids.clear()
        if w1 == "CREATE" and "SERIAL" in sql.upper():
            run_sql = self._serial(run_sql)
        if len(sql) <= 65536 and _PG_MARKERS.search(sql):
            run_sql = translate(run_sql)
        elif "/" in sql or "%" in sql or "\\" in sql:
            if "\\" in sql and len(sql) <= 65536:
                # LIKE 'a\_%': PostgreSQL's default escape character is the backslash
                run_sql = _LIKE_BACKSLASH.sub(_LIKE_ESCAPE, run_sql)
            guarded = pgsemantics.guard_division(run_sql)
            if guarded is not run_sql:
                try:
                    return self._pg_result(sql, w1, s.execute(guarded, params))
                except SluiceError as e:
                    if not e.sqlstate.startswith("42"):
                        raise
                    # sqlglot's DuckDB text does not bind: run the client's text as it is, and
                    # say so when that works (a zero divisor then answers NULL, not 22012)
                    s._failed = False
                    result = self._pg_result(sql, w1, self._run(run_sql, params))
                    self.unguarded += 1
                    log.warning("division by zero not guarded (%s) for: %s", e.message.splitlines()[0],
                                " ".join(sql.split())[:200])
                    return result
        return self._pg_result(sql, w1, self._run(run_sql, params))

    def _pg_result(self, sql: str, w1: str, result: Result) -> Result:
        """PostgreSQL's shape for a result: no rows and its own tag for commands (DuckDB
        answers DDL and transaction control with a "Count"/"Success" column), PostgreSQL's
        column names for queries."""
        if w1 in pgsemantics.COMMAND_WORDS:
            n = 0
            if result.columns and w1 == "CREATE":
                row = result.fetchmany(1)
                n = int(row[0][0]) if row and isinstance(row[0][0], int) else 0
            elif result.columns and w1 not in ("CREATE", "DROP", "ALTER", "TRUNCATE") and \
                    [c.name for c in result.columns] not in (["Success"], ["Count"]):
                return result  # a DuckDB statement that answers rows of its own
            result.close()
            return MaterializedResult(status=pgsemantics.command_tag(sql, n), rowcount=n)
        if w1 == "EXPLAIN" and [c.name for c in result.columns] == ["explain_key", "explain_value"]:
            # PostgreSQL: one text column "QUERY PLAN", a row per line, tag EXPLAIN
            lines = [line for _, plan in result.fetchall() for line in str(plan).splitlines()]
            return MaterializedResult(columns=[ColumnInfo("QUERY PLAN", "VARCHAR")], rows=[(x,) for x in lines],
                                      status="EXPLAIN", rowcount=len(lines))
        if result.columns:
            names = pgsemantics.rename(self._client_sql.get(sql, sql), [c.name for c in result.columns])
            if names is not None:
                result.columns = [ColumnInfo(n, c.type) for n, c in zip(names, result.columns, strict=True)]
        return result

    def _run(self, run_sql: str, params: Sequence[Any] | None) -> Result:
        s = self.session
        try:
            return s.execute(run_sql, params)
        except SluiceError as first:
            # only statements DuckDB could not parse or bind are retried (42xxx): nothing ran
            if not first.sqlstate.startswith("42"):
                raise
            was_failed = s._failed
            if s.in_transaction:
                s._failed = False  # the first attempt must not poison the transaction
            alt = transpile(run_sql)
            if alt is not None and alt != run_sql:
                try:
                    return s.execute(alt, params)
                except SluiceError:
                    s._failed = False
            if _EMPTY_CATALOG.search(run_sql):
                # psql asks about publications, policies, triggers, extended statistics:
                # DuckDB has none of these, and the answer is "no rows" (with the query's columns)
                names = pgsemantics.column_names(run_sql)
                cols = [ColumnInfo(n or "?column?", "VARCHAR") for n in names] \
                    if names and pgsemantics.STAR not in names else [ColumnInfo("none", "VARCHAR")]
                return MaterializedResult(columns=cols, status="SELECT 0")
            s._failed = was_failed
            raise first from None

    def _serial(self, sql: str) -> str:
        """``col SERIAL`` -> ``col INTEGER DEFAULT nextval('<table>_<col>_seq')`` (with the sequence)."""
        m = _CREATE_TABLE.match(sql)
        if not m:
            return sql
        table = m.group(1).replace('"', "").split(".")[-1]

        def repl(cm: re.Match[str]) -> str:
            col = cm.group(1).replace('"', "")
            seq = f"{table}_{col}_seq"
            self.session.execute(f'CREATE SEQUENCE IF NOT EXISTS "{seq}"')
            typ = {"BIG": "BIGINT", "SMALL": "SMALLINT"}.get((cm.group(2) or "").upper(), "INTEGER")
            return f"{cm.group(1)} {typ} DEFAULT nextval('{seq}')"

        return _SERIAL_COL.sub(repl, sql)

    def _described(self, probe: str, sql: str, args: Any = None) -> list[ColumnInfo]:
        """The columns a ``DESCRIBE`` probe of ``sql`` reports, named as PostgreSQL names them
        from the client's own text."""
        r = self.execute(probe, args)
        cols = [ColumnInfo(str(row[0]), str(row[1])) for row in r.fetchall()]
        names = pgsemantics.rename(self._client_sql.get(sql, sql), [c.name for c in cols])
        if names is not None:
            cols = [ColumnInfo(n, c.type) for n, c in zip(names, cols, strict=True)]
        return cols

    def describe(self, sql: str, declared: Sequence[int]) -> tuple[list[int], list[ColumnInfo]]:
        """(parameter type OIDs, result columns) of a statement without running it.

        Parameters the client did not type and that cannot be inferred are described as
        text, so the probe binds them as strings (DuckDB would type a NULL as INTEGER).
        """
        nparams = len(declared)
        ptypes = self.param_types(sql, declared)
        w1, _ = command_words(sql)
        nulls: list[Any] = [None] * nparams
        if w1 not in _ROW_WORDS and " RETURNING " not in sql.upper():
            return ptypes, []
        if w1 in ("SELECT", "WITH", "VALUES", "TABLE", "FROM"):
            # DESCRIBE binds without running: no side effects, no runtime errors that
            # would abort the client's transaction
            probe = "DESCRIBE " + sql.rstrip().rstrip(";")
            typed: list[Any] = ["" if not t or t in (types.TEXT, types.VARCHAR) else None for t in ptypes]
            was_failed = self.session._failed
            try:
                for args in (typed, nulls) if any(a is not None for a in typed) else (nulls,):
                    try:
                        return ptypes, self._described(probe, sql, args or None)
                    except SluiceError:
                        continue  # fall through: run it as is
            finally:
                self.session._failed = was_failed
        if w1 in ("SELECT", "WITH", "VALUES", "TABLE", "FROM", "SHOW", "DESCRIBE", "EXPLAIN", "SUMMARIZE"):
            r = self.execute(sql, nulls or None)
            cols = list(r.columns)
            r.close()
            return ptypes, cols
        if w1 in ("INSERT", "UPDATE", "DELETE"):
            # DML ... RETURNING: describe SELECT <returning list> FROM <target> (runs nothing)
            probe_sql = pgsemantics.returning_select(self._client_sql.get(sql, sql))
            if probe_sql is not None:
                was_failed = self.session._failed
                try:
                    return ptypes, self._described("DESCRIBE " + probe_sql, sql)
                except SluiceError:
                    pass
                finally:
                    self.session._failed = was_failed
        return ptypes, []  # not described: the portal's Describe (at Execute) sends the columns

    def column_oids(self, sql: str, columns: Sequence[ColumnInfo]) -> list[int]:
        """Result column OIDs: from the DuckDB types, with PostgreSQL's where they differ
        (``sum(int)`` int8, ``avg(int)`` numeric, ``current_user`` name) and those pinned
        for known client statements."""
        oids = [types.oid_for(c.type) for c in columns]
        for pos, c in enumerate(columns):
            if c.type.startswith("ENUM(") and not c.type.endswith("]"):
                oids[pos] = self._enum_oid(c.type) or oids[pos]  # PostgreSQL sends the enum type's OID
        pinned = COLUMN_OIDS.get(sql)
        if pinned:
            return [pinned.get(c.name, o) for c, o in zip(columns, oids, strict=True)]
        sql = self._client_sql.get(sql, sql)
        catalog = len(sql) <= 65536 and pgsemantics.is_catalog_query(sql)
        if len(sql) <= 65536 and (catalog or pgsemantics.may_retype(sql)):
            key = (sql, tuple(c.type for c in columns), tuple(c.name for c in columns))
            overrides = self._oid_overrides.get(key)
            if overrides is None:
                if len(self._oid_overrides) >= 2048:
                    self._oid_overrides.clear()
                overrides = pgsemantics.result_oid_overrides(sql, key[1], self._column_type, key[2]) \
                    if pgsemantics.may_retype(sql) else {}
                if catalog:
                    # pg_catalog / information_schema columns: PostgreSQL's name, oid, "char", int2
                    overrides = {**overrides, **pgsemantics.catalog_oid_overrides(sql, key[1], key[2])}
                self._oid_overrides[key] = overrides
            for pos, oid in overrides.items():
                oids[pos] = oid
        return oids

    def param_types(self, sql: str, declared: Sequence[int]) -> list[int]:
        """Parameter OIDs: the client's, else inferred (see :func:`infer_param_types`), else 0."""
        inferred = infer_param_types(sql, len(declared), self._column_type)
        return [d or i for d, i in zip(declared, inferred, strict=True)]

    def _meta_cursor(self) -> Any:
        if self._meta is None:
            # not the session's own connection: that one may hold a result a portal still reads
            self._meta = self.session.backend._db.cursor()  # type: ignore[attr-defined]
        return self._meta

    def _enum_oid(self, duck_type: str) -> int | None:
        """The OID of the enum type a column of DuckDB type ``ENUM('a', ...)`` has (None: unknown)."""
        if duck_type not in self._enum_oids:
            try:  # (re)read the enum types: one may have been created since, by any session
                self._enum_oids = {str(t): int(o) for t, o in self._meta_cursor().execute(_ENUM_OIDS_SQL).fetchall()}
            except duckdb.Error:
                return None
            self._enum_oids.setdefault(duck_type, 0)  # none such (dropped since): not read again
        return self._enum_oids.get(duck_type) or None

    def _column_type(self, table: str | None, column: str) -> str | None:
        key = (table.lower() if table else None, column.lower())
        if key in self._col_types:
            return self._col_types[key]
        con = self._meta_cursor()
        try:
            if table and column.startswith("#"):
                row = con.execute("SELECT data_type FROM duckdb_columns() WHERE lower(table_name) = lower(?) "
                                  "AND column_index = ? LIMIT 1", [table, int(column[1:]) + 1]).fetchone()
            elif table:
                row = con.execute("SELECT data_type FROM duckdb_columns() WHERE lower(table_name) = lower(?) "
                                  "AND lower(column_name) = lower(?) LIMIT 1", [table, column]).fetchone()
            else:
                row = con.execute("SELECT data_type FROM duckdb_columns() WHERE lower(column_name) = lower(?) "
                                  "AND NOT internal LIMIT 1", [column]).fetchone()
        except duckdb.Error:
            return None
        self._col_types[key] = str(row[0]) if row else None
        return self._col_types[key]


# --- PostgreSQL's own type catalogue (asyncpg introspects types by PostgreSQL OID) ------------
def _pg_types_values() -> str:
    rows = []
    for oid, name in sorted(types.PG_NAME.items()):
        typname = {types.INT2: "int2", types.INT4: "int4", types.INT8: "int8", types.FLOAT4: "float4",
                   types.FLOAT8: "float8", types.BOOL: "bool", types.VARCHAR: "varchar", types.BPCHAR: "bpchar",
                   types.TIMESTAMP: "timestamp", types.TIMESTAMPTZ: "timestamptz", types.TIME: "time",
                   types.CHAR: "char"}.get(oid, name)
        rows.append((oid, typname, "b", 0, name))
        arr = types.ARRAY_OF.get(oid)
        if arr:
            rows.append((arr, "_" + typname, "b", oid, name + "[]"))
    return ", ".join(f"({o}::BIGINT, {_sql_str(n)}, {_sql_str(k)}, {e}::BIGINT, {_sql_str(d)}, 'pg_catalog')"
                     for o, n, k, e, d in rows)


# PostgreSQL's built-in types sluice sends, and DuckDB's enum types (kind 'e', their schema)
_PG_TYPES = (f"(SELECT * FROM (VALUES {_pg_types_values()}) AS v(oid, name, kind, elemtype, display, ns) "
             "UNION ALL SELECT e.oid::BIGINT, e.typname, 'e', 0::BIGINT, e.typname, n.nspname "
             "FROM pg_catalog.pg_type e JOIN pg_catalog.pg_namespace n ON n.oid = e.typnamespace "
             "WHERE e.typtype = 'e' AND e.oid IS NOT NULL) AS pgt")
# asyncpg's INTRO_LOOKUP_TYPES, answered from the catalogue above (arrays first need their element);
# kind and elemdelim are "char" as in PostgreSQL (asyncpg reads them as bytes)
ASYNCPG_INTROSPECT = (
    "SELECT t.oid, t.ns, t.name, t.kind, NULL::BIGINT AS basetype, "
    "CASE WHEN t.elemtype = 0 THEN NULL ELSE t.elemtype END AS elemtype, "
    "CASE WHEN t.elemtype = 0 THEN NULL ELSE ',' END AS elemdelim, NULL::BIGINT AS range_subtype, "
    "NULL::BIGINT[] AS attrtypoids, NULL::VARCHAR[] AS attrnames, "
    "CASE WHEN list_contains($1::BIGINT[], t.oid) THEN 0 ELSE 1 END AS depth, NULL::VARCHAR AS basetype_name, "
    "e.display AS elemtype_name, NULL::VARCHAR AS range_subtype_name "
    f"FROM {_PG_TYPES.replace('pgt', 't')} LEFT JOIN {_PG_TYPES.replace('pgt', 'e')} ON e.oid = t.elemtype "
    "WHERE list_contains($1::BIGINT[], t.oid) OR t.oid IN "
    f"(SELECT x.elemtype FROM {_PG_TYPES.replace('pgt', 'x')} WHERE list_contains($1::BIGINT[], x.oid)) "
    "ORDER BY depth DESC")
# asyncpg's TYPE_BY_NAME
ASYNCPG_TYPE_BY_NAME = (
    "SELECT t.oid, CASE WHEN t.elemtype = 0 THEN NULL ELSE t.elemtype END AS elemtype, t.kind "
    f"FROM {_PG_TYPES.replace('pgt', 't')} WHERE t.name = $1::VARCHAR AND t.ns = $2::VARCHAR")

# statements whose parameter / result column OIDs are PostgreSQL types DuckDB cannot name
# (asyncpg decodes its own introspection with built-in codecs only: oid, oid[], text[], name, "char")
PARAM_OIDS: dict[str, list[int]] = {ASYNCPG_INTROSPECT: [1028], ASYNCPG_TYPE_BY_NAME: [types.NAME, types.NAME]}
_OID_COLS = {"oid": types.OID, "basetype": types.OID, "elemtype": types.OID, "range_subtype": types.OID,
             "attrtypoids": 1028, "name": types.NAME, "ns": types.NAME, "kind": types.CHAR, "elemdelim": types.CHAR}
COLUMN_OIDS: dict[str, dict[str, int]] = {ASYNCPG_INTROSPECT: _OID_COLS, ASYNCPG_TYPE_BY_NAME: _OID_COLS}

# --- pg_catalog shim: CTEs adding what DuckDB's emulation lacks ---------------------------
# constraints with the names PostgreSQL gives them (<table>_pkey, <table>_<columns>_key|_fkey|_check)
_CON_FROM = ("pg_catalog.pg_constraint k LEFT JOIN pg_catalog.pg_class c ON c.oid = k.conrelid "
             "LEFT JOIN duckdb_constraints() d ON d.table_oid = k.conrelid AND d.constraint_index = k.oid % 1000000")
_CON_NAME = ("CASE k.contype WHEN 'p' THEN c.relname || '_pkey' ELSE c.relname || '_' || "
             "array_to_string(d.constraint_column_names, '_') || CASE k.contype WHEN 'u' THEN '_key' "
             "WHEN 'f' THEN '_fkey' ELSE '_check' END END")
# information_schema views and their columns naming a schema (main shown as public)
_INFO_SCHEMA_COLUMNS = {
    "tables": ("table_schema",), "columns": ("table_schema", "udt_schema"), "views": ("table_schema",),
    "table_constraints": ("constraint_schema", "table_schema"), "check_constraints": ("constraint_schema",),
    "key_column_usage": ("constraint_schema", "table_schema"),
    "referential_constraints": ("constraint_schema", "unique_constraint_schema"),
    "constraint_column_usage": ("table_schema", "constraint_schema"),
    "constraint_table_usage": ("table_schema", "constraint_schema"),
}


def _pg_opclass_shim() -> str:
    """pg_opclass as PostgreSQL 15 has it (SQLAlchemy's get_indexes reads the non-default ones)."""
    from sqlsluice.middleware.pgcatalog_types import PG_OPCLASSES

    rows = []
    for item in PG_OPCLASSES.split():
        oid, method, name, family, intype, default, keytype = item.split(":")
        rows.append(f"({oid}, {method}, '{name}', {family}, {intype}, {default == 't'}, {keytype})")
    return ("SELECT v.oid::BIGINT AS oid, v.opcmethod::BIGINT AS opcmethod, v.opcname, 11::BIGINT AS opcnamespace, "
            "10::BIGINT AS opcowner, v.opcfamily::BIGINT AS opcfamily, v.opcintype::BIGINT AS opcintype, "
            "v.opcdefault, v.opckeytype::BIGINT AS opckeytype FROM (VALUES " + ", ".join(rows)
            + ") AS v(oid, opcmethod, opcname, opcfamily, opcintype, opcdefault, opckeytype)")


def _pg_type_shim() -> str:
    """pg_type as PostgreSQL 15 has it (its built-in types, numbered as PostgreSQL numbers them;
    clients look types up by the OIDs sluice sends), DuckDB's enum types, the row types of
    PostgreSQL's catalogs and of the database's tables and views, and an array type for each."""
    from sqlsluice.middleware.pgcatalog_types import PG_ROW_TYPES, PG_TYPES

    rows = []
    for item in PG_TYPES.split():
        oid, name, ln, tt, cat, elem, arr, inp, base, ns = item.split(":")
        rows.append(f"({oid}, '{name}', {ln}, '{tt}', '{cat}', {elem}, {arr}, '{inp}', {base}, '{ns}')")
    rowtypes = []
    for item in PG_ROW_TYPES.split():
        oid, name, arr, rel, ns = item.split(":")
        rowtypes.append(f"({oid}, '{name}', {arr}, {rel}, '{ns}')")
    nsp = ("COALESCE((SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = '{0}' LIMIT 1), {1})")
    ns_case = ("(CASE v.ns WHEN 'p' THEN " + nsp.format("pg_catalog", 11) + " ELSE "
               + nsp.format("information_schema", 13000) + " END)::BIGINT AS typnamespace")
    enums = "FROM pg_catalog.pg_type WHERE typtype = 'e' AND oid IS NOT NULL"
    return (
        # the row types: PostgreSQL's catalogs' (their OIDs), the database's tables and views'
        "WITH sluice_row_types AS (SELECT v.oid::BIGINT AS oid, v.typname, " + ns_case + ", "
        "v.typrelid::BIGINT AS typrelid, v.typarray::BIGINT AS typarray FROM (VALUES " + ", ".join(rowtypes)
        + ") AS v(oid, typname, typarray, typrelid, ns) UNION ALL SELECT " + _ROW_TYPE_OID.format("c.oid")
        + ", c.relname, c.relnamespace::BIGINT, c.oid::BIGINT, " + _ROW_TYPE_OID.format("c.oid") + " + 1 "
        "FROM pg_catalog.pg_class c WHERE c.relkind IN ('r', 'v') "
        "AND c.relnamespace IN (SELECT oid FROM pg_catalog.pg_namespace)) "
        "SELECT v.oid::BIGINT AS oid, v.typname, " + ns_case + ", "
        "10::BIGINT AS typowner, v.typlen::SMALLINT AS typlen, v.typlen IN (1, 2, 4, 8) AS typbyval, "
        "v.typtype, v.typcategory, false AS typispreferred, true AS typisdefined, ',' AS typdelim, "
        "0::BIGINT AS typrelid, CASE WHEN v.typelem > 0 THEN 'array_subscript_handler' ELSE '-' END "
        "AS typsubscript, v.typelem::BIGINT AS typelem, v.typarray::BIGINT AS typarray, v.typinput, "
        "replace(v.typinput, '_in', '_out') AS typoutput, '-' AS typreceive, '-' AS typsend, '-' AS typmodin, "
        "'-' AS typmodout, '-' AS typanalyze, 'i' AS typalign, 'p' AS typstorage, false AS typnotnull, "
        "v.typbasetype::BIGINT AS typbasetype, -1 AS typtypmod, 0 AS typndims, 0::BIGINT AS typcollation, "
        "NULL::VARCHAR AS typdefaultbin, NULL::VARCHAR AS typdefault, NULL::VARCHAR[] AS typacl "
        "FROM (VALUES " + ", ".join(rows) + ") AS v(oid, typname, typlen, typtype, typcategory, typelem, "
        "typarray, typinput, typbasetype, ns) UNION ALL BY NAME "
        "SELECT oid, typname, typnamespace, 10::BIGINT AS typowner, 4::SMALLINT AS typlen, true AS typbyval, "
        "'e' AS typtype, 'E' AS typcategory, false AS typispreferred, true AS typisdefined, ',' AS typdelim, "
        "0::BIGINT AS typrelid, '-' AS typsubscript, 0::BIGINT AS typelem, "
        + _ROW_TYPE_OID.format("oid") + " + 1 AS typarray, 'enum_in' AS typinput, 'enum_out' AS typoutput, "
        "false AS typnotnull, 0::BIGINT AS typbasetype, -1 AS typtypmod " + enums + " UNION ALL BY NAME "
        "SELECT oid, typname, typnamespace, 10::BIGINT AS typowner, -1::SMALLINT AS typlen, false AS typbyval, "
        "'c' AS typtype, 'C' AS typcategory, false AS typispreferred, true AS typisdefined, ',' AS typdelim, "
        "typrelid, '-' AS typsubscript, 0::BIGINT AS typelem, typarray, 'record_in' AS typinput, "
        "'record_out' AS typoutput, false AS typnotnull, 0::BIGINT AS typbasetype, -1 AS typtypmod "
        "FROM sluice_row_types UNION ALL BY NAME "
        # the arrays of the row types and of the enums
        "SELECT typarray AS oid, '_' || typname AS typname, typnamespace, 10::BIGINT AS typowner, "
        "-1::SMALLINT AS typlen, false AS typbyval, 'b' AS typtype, 'A' AS typcategory, "
        "false AS typispreferred, true AS typisdefined, ',' AS typdelim, 0::BIGINT AS typrelid, "
        "'array_subscript_handler' AS typsubscript, oid AS typelem, 0::BIGINT AS typarray, "
        "'array_in' AS typinput, 'array_out' AS typoutput, false AS typnotnull, 0::BIGINT AS typbasetype, "
        "-1 AS typtypmod FROM (SELECT oid, typname, typnamespace, typarray FROM sluice_row_types UNION ALL "
        "SELECT oid, typname, typnamespace, " + _ROW_TYPE_OID.format("oid") + " + 1 " + enums + ")")


SHIM_VIEWS: dict[str, str] = {
    "pg_type": _pg_type_shim(),
    # read as they are, but with PostgreSQL's columns (see _PG_ORDERED)
    # PostgreSQL's column types: costs are float4, types OIDs (DuckDB names the types)
    "pg_proc": "SELECT * REPLACE (procost::FLOAT AS procost, prorows::FLOAT AS prorows, "
               "COALESCE(TRY_CAST(provariadic AS BIGINT), 0)::BIGINT AS provariadic, "
               "(" + _duck_type_oid_case("prorettype") + ")::BIGINT AS prorettype, "
               "list_transform(proargtypes, _t -> (" + _duck_type_oid_case("_t", enums=False) + ")::BIGINT) "
               "AS proargtypes) "
               "FROM pg_catalog.pg_proc",
    "pg_description": "SELECT * FROM pg_catalog.pg_description",
    "pg_attrdef": "SELECT * FROM pg_catalog.pg_attrdef",
    "pg_enum": "SELECT * FROM pg_catalog.pg_enum",
    # Metabase's table sync reads the row estimate
    "pg_stat_user_tables": "SELECT t.table_oid::BIGINT AS relid, t.schema_name AS schemaname, t.table_name AS relname, "
                           "t.estimated_size::BIGINT AS n_live_tup FROM duckdb_tables() t "
                           "WHERE t.database_name = current_database()",
    # the current database's schemata only, as PostgreSQL lists them (DuckDB: every attached one)
    "information_schema.schemata": "SELECT * REPLACE (" + _PG_SCHEMA.format("schema_name") + " AS schema_name) "
                                   "FROM information_schema.schemata WHERE catalog_name = current_database()",
    **{f"information_schema.{view}": f"SELECT * REPLACE ({', '.join(_PG_SCHEMA.format(c) + ' AS ' + c for c in cols)}) "
       f"FROM information_schema.{view}" for view, cols in _INFO_SCHEMA_COLUMNS.items()},
    # reloptions: DuckDB's column is typed NULL, and psql's \\d+ unnests it
    # access methods as PostgreSQL names them (heap, btree), replica identity "default", and a
    # row (an index) for each primary key and unique constraint, as PostgreSQL has
    "pg_class": "SELECT * REPLACE (NULL::VARCHAR[] AS reloptions, 'd' AS relreplident, "
                "CASE WHEN relkind IN ('r', 'v') AND relnamespace IN (SELECT oid FROM pg_catalog.pg_namespace) "
                "THEN " + _ROW_TYPE_OID.format("oid") + " ELSE 0::BIGINT END AS reltype, "
                # PostgreSQL implements foreign keys with triggers (psql lists them only then)
                "relhastriggers OR oid IN (SELECT conrelid FROM pg_catalog.pg_constraint WHERE contype = 'f') "
                "OR relname IN (SELECT referenced_table FROM duckdb_constraints() WHERE constraint_type = "
                "'FOREIGN KEY') AS relhastriggers, "
                "(CASE relkind WHEN 'r' THEN 2 WHEN 'i' THEN 403 ELSE 0 END)::BIGINT AS relam), "
                "false AS relforcerowsecurity FROM pg_catalog.pg_class UNION ALL BY NAME "
                "SELECT " + _CON_OID.format("k") + " AS oid, " + _CON_NAME + " AS relname, c.relnamespace, 'i' AS relkind, 403::BIGINT AS relam, "
                "'p' AS relpersistence, 'd' AS relreplident, false AS relforcerowsecurity, false AS relhasindex, "
                "false AS relispartition, false AS relhasrules, false AS relhastriggers, false AS relrowsecurity, "
                "0::BIGINT AS relchecks, len(k.conkey)::BIGINT AS relnatts, 0 AS reltablespace, 0 AS reloftype, "
                "0 AS relowner, 0::BIGINT AS reltype, NULL::VARCHAR[] AS reloptions "
                "FROM " + _CON_FROM + " WHERE k.contype IN ('p', 'u')",
    # PostgreSQL always lists pg_catalog (oid 11): psql's tab completion excludes its tables
    # with relnamespace <> (SELECT oid ... WHERE nspname = 'pg_catalog'), NULL without the row
    # DuckDB's main as PostgreSQL's public (same oid: pg_class.relnamespace etc. point at it)
    "pg_namespace": "SELECT oid, " + _PG_SCHEMA.format("nspname") + " AS nspname, nspowner, nspacl "
                    "FROM pg_catalog.pg_namespace UNION ALL "
                    "SELECT 11::BIGINT, 'pg_catalog', 10, NULL WHERE NOT EXISTS "
                    "(SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = 'pg_catalog') UNION ALL "
                    # as PostgreSQL lists it (pgjdbc's getSchemas, SQLAlchemy's get_schema_names)
                    "SELECT 13000::BIGINT, 'information_schema', 10, NULL WHERE NOT EXISTS "
                    "(SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = 'information_schema')",
    # PostgreSQL's columns (psql's SET completion filters on context)
    "pg_settings": "SELECT name, setting, NULL::VARCHAR AS unit, 'Sluice' AS category, '' AS short_desc, "
                   "NULL::VARCHAR AS extra_desc, 'user' AS context, 'string' AS vartype, 'default' AS source, "
                   "NULL::VARCHAR AS min_val, NULL::VARCHAR AS max_val, NULL::VARCHAR[] AS enumvals, "
                   "setting AS boot_val, setting AS reset_val, NULL::VARCHAR AS sourcefile, NULL::INTEGER AS "
                   "sourceline, false AS pending_restart FROM (VALUES "
                   + ", ".join(f"({_sql_str(k)}, {_sql_str(v)})" for k, v in sorted(GUCS.items()))
                   + ") AS g(name, setting)",
    "pg_database": "SELECT oid, datname, datallowconn, datistemplate, 10::BIGINT AS datdba, 6 AS encoding, "
                   "'C' AS datcollate, 'C' AS datctype, 'c' AS datlocprovider, NULL AS daticulocale, "
                   "NULL AS daticurules, -1 AS datconnlimit, 0::BIGINT AS dattablespace, NULL::VARCHAR[] AS datacl "
                   "FROM pg_catalog.pg_database",
    "pg_roles": "SELECT 10::BIGINT AS oid, pg_get_userbyid(10) AS rolname, true AS rolsuper, "
                "true AS rolinherit, true AS rolcreaterole, true AS rolcreatedb, true AS rolcanlogin, "
                "false AS rolreplication, true AS rolbypassrls, -1 AS rolconnlimit, NULL::TIMESTAMP AS rolvaliduntil, "
                "NULL::VARCHAR[] AS rolconfig, '********' AS rolpassword",
    "pg_user": "SELECT pg_get_userbyid(10) AS usename, 10::BIGINT AS usesysid, "
               "true AS usecreatedb, true AS usesuper, false AS userepl, true AS usebypassrls, "
               "'********' AS passwd, NULL::TIMESTAMP AS valuntil, NULL::VARCHAR[] AS useconfig",
    "pg_authid": "SELECT 10::BIGINT AS oid, pg_get_userbyid(10) AS rolname, true AS rolsuper",
    "pg_inherits": "SELECT 0::BIGINT AS inhrelid, 0::BIGINT AS inhparent, 0 AS inhseqno, false AS inhdetachpending "
                   "WHERE false",
    "pg_collation": "SELECT oid, collname, 11::BIGINT AS collnamespace, 10::BIGINT AS collowner, "
                    "'c' AS collprovider, true AS collisdeterministic, -1 AS collencoding, "
                    "'C' AS collcollate, 'C' AS collctype FROM pg_catalog.pg_collation",
    "pg_policy": "SELECT 0::BIGINT AS oid, '' AS polname, 0::BIGINT AS polrelid, '' AS polcmd, "
                 "true AS polpermissive, NULL::BIGINT[] AS polroles, NULL AS polqual, NULL AS polwithcheck WHERE false",
    "pg_trigger": "SELECT 0::BIGINT AS oid, 0::BIGINT AS tgrelid, '' AS tgname, 0::BIGINT AS tgfoid, 0 AS tgtype, "
                  "'O' AS tgenabled, false AS tgisinternal, 0::BIGINT AS tgconstraint, 0::BIGINT AS tgparentid "
                  "WHERE false",
    "pg_rewrite": "SELECT 0::BIGINT AS oid, '' AS rulename, 0::BIGINT AS ev_class, '' AS ev_type WHERE false",
    "pg_statistic_ext": "SELECT 0::BIGINT AS oid, 0::BIGINT AS stxrelid, '' AS stxname, 0::BIGINT AS stxnamespace, "
                        "NULL::VARCHAR[] AS stxkind, 0 AS stxstattarget, NULL::INTEGER[] AS stxkeys WHERE false",
    "pg_publication": "SELECT 0::BIGINT AS oid, '' AS pubname, false AS puballtables, false AS pubinsert, "
                      "false AS pubupdate, false AS pubdelete, false AS pubtruncate, false AS pubviaroot "
                      "WHERE false",
    "pg_publication_rel": "SELECT 0::BIGINT AS oid, 0::BIGINT AS prpubid, 0::BIGINT AS prrelid, NULL AS prqual, "
                          "NULL::INTEGER[] AS prattrs WHERE false",
    "pg_publication_namespace": "SELECT 0::BIGINT AS oid, 0::BIGINT AS pnpubid, 0::BIGINT AS pnnspid WHERE false",
    "pg_partitioned_table": "SELECT 0::BIGINT AS partrelid, '' AS partstrat WHERE false",
    "pg_foreign_table": "SELECT 0::BIGINT AS ftrelid, 0::BIGINT AS ftserver WHERE false",
    "pg_extension": "SELECT 0::BIGINT AS oid, '' AS extname, 10::BIGINT AS extowner, 0::BIGINT AS extnamespace, "
                    "'' AS extversion WHERE false",
    "pg_event_trigger": "SELECT 0::BIGINT AS oid, '' AS evtname WHERE false",
    "pg_opclass": _pg_opclass_shim(),
    # DuckDB lists no index rows for primary keys and unique constraints; PostgreSQL has one
    # per constraint (SQLAlchemy joins pg_constraint.conindid = pg_index.indexrelid)
    # (DuckDB leaves an index's indkey NULL: its columns' numbers, as pgjdbc's getIndexInfo reads them)
    "pg_index": "SELECT i.* REPLACE (COALESCE(x.n, i.indnatts) AS indnatts, COALESCE(x.n, i.indnkeyatts) "
                "AS indnkeyatts, COALESCE(x.keys, i.indkey) AS indkey, COALESCE(i.indoption, "
                # no DESC / NULLS FIRST flags (SQLAlchemy's get_indexes iterates indoption)
                "list_transform(COALESCE(x.keys, i.indkey), _k -> 0)) AS indoption), false AS indnullsnotdistinct "
                "FROM pg_catalog.pg_index i LEFT JOIN "
                "(SELECT d.index_oid, len(string_split(trim(d.expressions, '[]'), ', '))::SMALLINT AS n, "
                "(SELECT list(c.column_index::INTEGER ORDER BY list_position(string_split(trim(d.expressions, "
                "'[]'), ', '), c.column_name)) FROM duckdb_columns() c WHERE c.table_oid = d.table_oid AND "
                "list_contains(string_split(trim(d.expressions, '[]'), ', '), c.column_name)) AS keys "
                "FROM duckdb_indexes() d) x ON x.index_oid = i.indexrelid UNION ALL BY NAME "
                "SELECT " + _CON_OID.format("k") + " AS indexrelid, k.conrelid AS indrelid, len(k.conkey)::SMALLINT AS indnatts, "
                "len(k.conkey)::SMALLINT AS indnkeyatts, true AS indisunique, k.contype = 'p' AS indisprimary, "
                "false AS indisexclusion, true AS indimmediate, false AS indisclustered, true AS indisvalid, "
                "false AS indcheckxmin, true AS indisready, true AS indislive, false AS indisreplident, "
                "list_transform(k.conkey, x -> x + 1) AS indkey, list_transform(k.conkey, x -> 0) AS indoption, "
                "false AS indnullsnotdistinct "
                "FROM pg_catalog.pg_constraint k WHERE k.contype IN ('p', 'u')",
    "pg_auth_members": "SELECT 0::BIGINT AS oid, 0::BIGINT AS roleid, 0::BIGINT AS member, 0::BIGINT AS grantor, "
                       "false AS admin_option, true AS inherit_option, true AS set_option WHERE false",
    # DuckDB numbers conkey from 0 (PostgreSQL: attnum, from 1), names constraints by their
    # definition, lists NOT NULL as contype 'x' (PostgreSQL: exclusion constraints) and
    # leaves confrelid 0 (psql's "Referenced by:" looks it up)
    "pg_constraint": "SELECT k.* REPLACE (" + _CON_OID.format("k") + " AS oid, " + _CON_NAME + " AS conname, "
                     "c.relnamespace AS connamespace, "
                     "list_transform(k.conkey, x -> x + 1) AS conkey, "
                     # a foreign key's index: the referenced table's primary key (pgjdbc joins it)
                     "CASE WHEN k.contype IN ('p', 'u') THEN " + _CON_OID.format("k") + " WHEN k.contype = 'f' "
                     "THEN COALESCE((SELECT " + _CON_OID.format("p") + " FROM pg_catalog.pg_constraint p JOIN pg_catalog.pg_class r ON r.oid = p.conrelid "
                     "WHERE r.relname = d.referenced_table AND p.contype = 'p' LIMIT 1), k.conindid) "
                     "ELSE k.conindid END AS conindid, "
                     "COALESCE((SELECT r.oid FROM pg_catalog.pg_class r WHERE r.relname = d.referenced_table "
                     "AND r.relnamespace = c.relnamespace LIMIT 1), k.confrelid) AS confrelid, "
                     # the referenced columns' numbers (DuckDB's confkey is NULL)
                     "COALESCE((SELECT list(rc.column_index::INTEGER ORDER BY list_position("
                     "d.referenced_column_names, rc.column_name)) FROM duckdb_columns() rc WHERE "
                     "rc.table_name = d.referenced_table AND rc.schema_name = d.schema_name AND "
                     "list_contains(d.referenced_column_names, rc.column_name)), "
                     "list_transform(k.confkey, x -> x + 1)) AS confkey) "
                     "FROM " + _CON_FROM + " WHERE k.contype <> 'x'",
    # PostgreSQL's storage kinds (psql's \\d+ "Storage"), no statistics target, no compression
    # atttypid / atttypmod as PostgreSQL has them (DuckDB's are its own type ids), from the column's
    # DuckDB type; the table's own columns and an index's columns (below)
    "pg_attribute": "SELECT x.* EXCLUDE (_tab) REPLACE (CASE WHEN x.attnum < 0 THEN x.atttypid ELSE COALESCE("
                    + _duck_type_oid_case("dc.data_type") + ", 25) END::BIGINT AS atttypid, "
                    "CASE WHEN dc.data_type LIKE 'DECIMAL(%' THEN ((x.atttypmod // 1000) * 65536 + "
                    "x.atttypmod % 1000 + 4) ELSE -1 END::INTEGER AS atttypmod) FROM (" +
                    "SELECT * REPLACE (CASE WHEN pg_catalog.format_type(atttypid, atttypmod) LIKE 'numeric%' "
                    "THEN 'm' WHEN pg_catalog.format_type(atttypid, atttypmod) IN ('varchar', 'bytea', 'json', "
                    "'list', 'struct', 'map', 'union') THEN 'x' ELSE 'p' END AS attstorage, -1 AS attstattarget, "
                    "'' AS attcompression), attrelid AS _tab FROM pg_catalog.pg_attribute "
                    # an index's columns (PostgreSQL lists them under the index's oid: psql's \\d <index>)
                    "UNION ALL BY NAME SELECT " + _CON_OID.format("k") + " AS attrelid, k.conrelid AS _tab, a.attname, a.atttypid, a.atttypmod, "
                    "list_position(k.conkey, a.attnum - 1)::INTEGER AS attnum, false AS attisdropped, "
                    "a.attnotnull, 'p' AS attstorage, -1 AS attstattarget, '' AS attcompression, false AS atthasdef "
                    "FROM pg_catalog.pg_constraint k JOIN pg_catalog.pg_attribute a ON a.attrelid = k.conrelid "
                    "AND list_contains(k.conkey, a.attnum - 1) WHERE k.contype IN ('p', 'u') "
                    "UNION ALL BY NAME SELECT x.index_oid AS attrelid, x.table_oid AS _tab, a.attname, a.atttypid, "
                    "a.atttypmod, "
                    "x.pos::INTEGER AS attnum, false AS attisdropped, a.attnotnull, 'p' AS attstorage, "
                    "-1 AS attstattarget, '' AS attcompression, false AS atthasdef "
                    "FROM (SELECT index_oid, table_oid, unnest(string_split(trim(expressions, '[]'), ', ')) AS col, "
                    "generate_subscripts(string_split(trim(expressions, '[]'), ', '), 1) AS pos "
                    "FROM duckdb_indexes()) x JOIN pg_catalog.pg_attribute a ON a.attrelid = x.table_oid "
                    "AND a.attname = x.col "
                    # a table's system columns, as PostgreSQL 15 lists them (negative attnum)
                    "UNION ALL BY NAME SELECT r.oid AS attrelid, r.oid AS _tab, s.attname, s.atttypid::BIGINT AS "
                    "atttypid, -1 AS atttypmod, s.attnum::INTEGER AS attnum, false AS attisdropped, true AS attnotnull, "
                    "'p' AS attstorage, 0 AS attstattarget, '' AS attcompression, false AS atthasdef "
                    "FROM pg_catalog.pg_class r, (VALUES ('tableoid', 26, -6), ('cmax', 29, -5), ('xmax', 28, -4), "
                    "('cmin', 29, -3), ('xmin', 28, -2), ('ctid', 27, -1)) s(attname, atttypid, attnum) "
                    "WHERE r.relkind = 'r') x LEFT JOIN duckdb_columns() dc ON dc.table_oid = x._tab "
                    "AND dc.column_name = x.attname AND x.attnum > 0",
    "pg_am": "SELECT 2::BIGINT AS oid, 'heap' AS amname, 3::BIGINT AS amhandler, 't' AS amtype "
             "UNION ALL SELECT 403, 'btree', 330, 'i'",
    "pg_range": "SELECT 0::BIGINT AS rngtypid, 0::BIGINT AS rngsubtype WHERE false",
    # psql's \\df+, \\do, \\dc: languages as PostgreSQL lists them, no operators or conversions
    "pg_language": "SELECT * FROM (VALUES (12::BIGINT, 'internal', 10::BIGINT, false, false, 0::BIGINT, "
                   "0::BIGINT, 0::BIGINT, NULL::VARCHAR[]), (13, 'c', 10, false, false, 0, 0, 0, NULL), "
                   "(14, 'sql', 10, false, true, 0, 0, 0, NULL)) AS l(oid, lanname, lanowner, lanispl, lanpltrusted, "
                   "lanplcallfoid, laninline, lanvalidator, lanacl)",
    "pg_operator": "SELECT 0::BIGINT AS oid, '' AS oprname, 0::BIGINT AS oprnamespace, 10::BIGINT AS oprowner, "
                   "'b' AS oprkind, 0::BIGINT AS oprleft, 0::BIGINT AS oprright, 0::BIGINT AS oprresult, "
                   "0::BIGINT AS oprcode WHERE false",
    "pg_conversion": "SELECT 0::BIGINT AS oid, '' AS conname, 0::BIGINT AS connamespace, 10::BIGINT AS conowner, "
                     "0 AS conforencoding, 0 AS contoencoding, 0::BIGINT AS conproc, false AS condefault "
                     "WHERE false",
}
_SHIM_REF = re.compile(r"\b(?:pg_catalog\.)?(" + "|".join(re.escape(k) for k in sorted(SHIM_VIEWS, key=len, reverse=True))
                       + r")\b(?!\s*\()", re.I)


# --- translation of PostgreSQL catalog idioms ------------------------------------------------
# a LIKE / ILIKE pattern literal holding a backslash, without ESCAPE
_LIKE_BACKSLASH = re.compile(r"(\bI?LIKE\s+(?:(?:pg_catalog\.)?lower\(\s*)?E?'(?:[^'\\]|'')*\\(?:[^']|'')*'\)?)"
                             r"(?!\s*ESCAPE\b)", re.I)
_LIKE_ESCAPE = r"\1 ESCAPE '\\'"


def _regex_match(m: re.Match[str]) -> str:
    """``a ~ 'p'`` matches anywhere in PostgreSQL; DuckDB's ``~`` must match the whole string."""
    flags = ", 'i'" if m.group(3) else ""
    return f"{'NOT ' if m.group(2) else ''}regexp_matches({m.group(1)}, {m.group(4)}{flags})"


_RULES: list[tuple[re.Pattern[str], Any]] = [
    # "pg_catalog"."pg_class" (HoneySQL, Metabase) -> pg_catalog.pg_class, so the shims apply
    (re.compile(r'"(pg_catalog|information_schema)"\s*\.\s*"(\w+)"'), r"\1.\2"),
    (re.compile(r'(?<![\w."])"(pg_[a-z_]+)"(?=\s+(?:AS\s+)?"?\w)', re.I), r"\1"),
    # '16390'::regclass (psql passes oids so) -> the number
    (re.compile(r"'(\d+)'\s*::\s*(?:pg_catalog\.)?regclass", re.I), r"\1::BIGINT"),
    # 'name'::regclass -> the table's oid
    (re.compile(r"'((?:[^']|'')*)'\s*::\s*(?:pg_catalog\.)?regclass", re.I),
     r"(SELECT oid FROM pg_catalog.pg_class WHERE relname = "
     r"split_part('\1', '.', -1) LIMIT 1)"),
    (re.compile(r"CAST\(\s*(\$\d+|'(?:[^']|'')*')\s+AS\s+(?:pg_catalog\.)?regclass\s*\)", re.I),
     r"(SELECT oid FROM pg_catalog.pg_class WHERE relname = split_part(\1, '.', -1) LIMIT 1)"),
    (re.compile(r"(\$\d+)\s*::\s*(?:pg_catalog\.)?regclass", re.I),
     r"(SELECT oid FROM pg_catalog.pg_class WHERE relname = split_part(\1, '.', -1) LIMIT 1)"),
    (re.compile(r"'((?:[^']|'')*)'\s*::\s*(?:pg_catalog\.)?regtype", re.I),
     r"(SELECT oid FROM pg_catalog.pg_type WHERE typname = '\1' LIMIT 1)"),
    (re.compile(r"'((?:[^']|'')*)'\s*::\s*(?:pg_catalog\.)?regnamespace", re.I),
     r"(SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = '\1' LIMIT 1)"),
    # c.oid::pg_catalog.regclass AS x in a select list (psql's "Referenced by:") -> the table's name
    (re.compile(r"(?<![\w.])([a-z_]\w*(?:\.[a-z_]\w*)?)::pg_catalog\.regclass\s+AS\s+", re.I),
     r"(SELECT relname FROM pg_catalog.pg_class WHERE oid = \1) AS "),
    # 'pg_catalog.array_in'::regproc (pgjdbc) -> the function's name, as the pg_type shim lists it
    (re.compile(r"'(?:pg_catalog\.)?(\w+)'\s*::\s*(?:pg_catalog\.)?regproc\b", re.I), r"'\1'"),
    # information_schema._pg_expandarray(a): a temporary macro of the session
    (re.compile(r"\binformation_schema\._pg_expandarray\s*\(", re.I), "_pg_expandarray("),
    # x::regclass / ::regtype / ::regproc / ::oid in output position -> keep the number
    (re.compile(r"::\s*(?:pg_catalog\.)?(?:regclass|regtype|regproc|regprocedure|regnamespace|regrole|oid)\b",
                re.I), "::BIGINT"),
    (re.compile(r"\bAS\s+(?:pg_catalog\.)?(?:regclass|regtype|regproc|regprocedure|regnamespace|regrole|oid)\s*\)",
                re.I), "AS BIGINT)"),
    (re.compile(r"::\s*(?:pg_catalog\.)?name\b", re.I), "::VARCHAR"),
    (re.compile(r"::\s*(?:pg_catalog\.)?text\[\]", re.I), "::VARCHAR[]"),
    (re.compile(r"::\s*pg_catalog\.", re.I), "::"),
    (re.compile(r"(?<![\w.\"'])(?:current_user|session_user|current_role)\b(?!\s*\()", re.I), "pg_get_userbyid(10)"),
    (re.compile(r"\bjson_build_object\s*\(", re.I), "json_object("),
    (re.compile(r"\bjsonb_build_object\s*\(", re.I), "json_object("),
    (re.compile(r"\bpg_get_viewdef\(([^(),]+),\s*(?:true|false)\s*\)", re.I), r"pg_get_viewdef(\1)"),
    (re.compile(r"\bpg_get_expr\(([^(),]+),([^(),]+),\s*(?:true|false)\s*\)", re.I), r"pg_get_expr(\1,\2)"),
    # schema-qualified function calls: pg_catalog.f( -> f(
    (re.compile(r"\bpg_catalog\.(?=\w+\s*\()", re.I), ""),
    (re.compile(r"(?<![\w.])format_type\s*\(", re.I), "sluice_format_type("),
    (re.compile(r"\bOPERATOR\s*\(\s*pg_catalog\.([^)]+)\)", re.I), r"\1"),
    # PostgreSQL's LIKE escapes with a backslash by default, DuckDB's only with ESCAPE
    (_LIKE_BACKSLASH, _LIKE_ESCAPE),
    (re.compile(r"\s+COLLATE\s+(?:pg_catalog\.)?\"?default\"?", re.I), ""),
    (re.compile(r"\bCOLLATE\s+(?:pg_catalog\.)?\"?C\"?", re.I), ""),
    (re.compile(r"(?<![\w.\":])((?:\w+\.)?\w+)\s*(!?)~(\*?)(?!~)\s*('(?:[^']|'')*')"), _regex_match),
    # FROM ..., string_to_array(...) s (Grafana): a function in FROM is a one-row table in PostgreSQL
    (re.compile(r",\s*string_to_array\s*\(((?:[^()]|\((?:[^()]|\([^()]*\))*\))*)\)\s+(?:AS\s+)?([a-z_]\w*)\b",
                re.I), r", (SELECT string_to_array(\1) AS \2) AS \2(\2)"),
    # FROM generate_series(...) s, ... prattrs[s]: PostgreSQL's s is the value, DuckDB's a row
    (re.compile(r"(\bgenerate_series\s*\((?:[^()]|\((?:[^()]|\((?:[^()]|\([^()]*\))*\))*\))*\))\s+(?:AS\s+)?"
                r"([a-z_]\w*)(?=\s*,)", re.I),
     r"\1 AS \2(\2)"),
]


_LEAD = re.compile(r"^\s*(?:(DESCRIBE|EXPLAIN(?:\s+ANALYZE)?)\s+)?(WITH(?:\s+RECURSIVE)?\s+)?", re.I)


# The catalog tables tools read with ``SELECT *`` (DBeaver) or by PostgreSQL's column names:
# served with PostgreSQL 15's columns in its order (columns DuckDB lacks are NULL), see
# :func:`order_catalog_columns`
_PG_ORDERED = ("pg_class", "pg_attribute", "pg_constraint", "pg_index", "pg_proc", "pg_collation", "pg_extension",
               "pg_namespace", "pg_type", "pg_description", "pg_attrdef", "pg_database", "pg_am", "pg_inherits",
               "pg_stat_user_tables", "pg_trigger", "pg_language", "pg_opclass", "pg_enum")
_ORDERED: dict[str, str] = {}
_NUMBER_OIDS = frozenset({types.INT2, types.INT4, types.INT8, types.OID, types.FLOAT4, types.FLOAT8, types.NUMERIC,
                          types.BOOL})


def order_catalog_columns(con: Any) -> None:
    """Build (once per process) the ``SELECT`` that gives each catalog table of
    :data:`_PG_ORDERED` PostgreSQL's column list, from what DuckDB's (shimmed) table has."""
    if _ORDERED:
        return
    from sqlsluice.middleware.pgsemantics import _catalog_types

    cat = _catalog_types()
    built: dict[str, str] = {}
    nulls: dict[str, frozenset[str]] = {}
    for name in _PG_ORDERED:
        pg_cols = cat.get("pg_catalog." + name)
        inner = SHIM_VIEWS.get(name) or f"SELECT * FROM pg_catalog.{name}"
        if not pg_cols:
            continue
        try:
            have = {str(r[0]): str(r[1]) for r in con.execute(f"DESCRIBE {inner}").fetchall()}
        except duckdb.Error:
            continue
        # DuckDB lists the columns it does not fill as INTEGER NULLs (relacl, conbin, attalign...)
        absent = frozenset(c for c, oid in pg_cols.items()
                           if c not in have or (have[c] == "INTEGER" and oid not in _NUMBER_OIDS))
        items = [f'NULL AS "{c}"' if c in absent else f'_s."{c}"' for c in pg_cols]
        built[name] = f"SELECT {', '.join(items)} FROM ({inner}) AS _s"
        nulls[f"pg_catalog.{name}"] = absent
    pgsemantics.set_catalog_null_columns(nulls)
    _ORDERED.update(built)
    translate.cache_clear()


@lru_cache(maxsize=2048)
def translate(sql: str) -> str:
    """Regex rewrites of PostgreSQL catalog idioms DuckDB does not know (cached).

    Catalog tables DuckDB lacks or lists differently are supplied as CTEs named
    ``sluice_pg_*`` in front of the statement (nothing is created in the database, so tools
    listing tables or views never see them).
    """
    for pat, rep in _RULES:
        sql = pat.sub(rep, sql)
    used: list[str] = []

    def ref(m: re.Match[str]) -> str:
        name = m.group(1).lower()
        if name not in used:
            used.append(name)
        return "sluice_" + name.replace(".", "_")

    sql = _SHIM_REF.sub(ref, sql)
    if not used:
        return sql
    ctes = ", ".join(f"sluice_{n.replace('.', '_')} AS ({_ORDERED.get(n) or SHIM_VIEWS[n]})" for n in used)
    m = _LEAD.match(sql)
    assert m is not None  # the pattern matches the empty string
    rest = sql[m.end():]
    body = f"{m.group(2)}{ctes}, {rest}" if m.group(2) else f"WITH {ctes} {rest}"
    return f"{m.group(1)} {body}" if m.group(1) else body


@lru_cache(maxsize=1024)
def transpile(sql: str) -> str | None:
    """sqlglot postgres -> duckdb, or None when sqlglot cannot parse it."""
    import sqlglot
    from sqlglot.errors import SqlglotError

    try:
        out = sqlglot.transpile(sql, read="postgres", write="duckdb")
    except SqlglotError:
        return None
    return out[0] if len(out) == 1 else None


@lru_cache(maxsize=1024)
def _param_slots(sql: str, nparams: int) -> tuple[tuple[str, str | None, str | None], ...]:
    """Per parameter: ("cast", type, None) | ("col", table, column) | ("limit", None, None) | ("", None, None)."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import SqlglotError

    slots: list[tuple[str, str | None, str | None]] = [("", None, None)] * nparams
    try:
        tree = sqlglot.parse_one(sql, read="postgres")
    except SqlglotError:
        return tuple(slots)
    aliases: dict[str, str] = {}
    tables = list(tree.find_all(exp.Table))
    for t in tables:
        if t.alias:
            aliases[t.alias.lower()] = t.name
    single = tables[0].name if len(tables) == 1 else None

    def index(node: Any) -> int | None:
        if isinstance(node, exp.Parameter) or isinstance(node, exp.Placeholder):
            text = node.sql(dialect="postgres").lstrip("$")
            if text.isdigit():
                return int(text) - 1
        return None

    for node in tree.walk():
        i = index(node)
        if i is None or not 0 <= i < nparams or slots[i][0]:
            continue
        parent = node.parent
        if isinstance(parent, exp.Cast):
            slots[i] = ("cast", parent.to.sql(dialect="duckdb"), None)
        elif isinstance(parent, exp.Limit | exp.Offset | exp.Fetch):
            slots[i] = ("limit", None, None)
        elif isinstance(parent, exp.Binary | exp.In | exp.Between):
            others = [c for c in parent.iter_expressions() if c is not node]
            for o in others:
                if isinstance(o, exp.Column):
                    tab = aliases.get(o.table.lower(), o.table) if o.table else single
                    slots[i] = ("col", tab, o.name)
                    break
            if not slots[i][0]:
                # $1 + 1, $1 = 1.5: PostgreSQL types the parameter as the number beside it
                for o in others:
                    if isinstance(o, exp.Literal) and not o.is_string:
                        slots[i] = ("cast", "INTEGER" if o.this.isdigit() and int(o.this) < 2**31 else
                                    "BIGINT" if o.this.isdigit() else "DECIMAL", None)
                        break
    if isinstance(tree, exp.Insert):
        target = tree.this
        cols = [c.name for c in target.expressions] if isinstance(target, exp.Schema) else []
        tname = target.this.name if isinstance(target, exp.Schema) else getattr(target, "name", None)
        values = tree.expression
        if isinstance(values, exp.Values) and tname:
            for row in values.expressions:
                for j, v in enumerate(row.expressions):
                    k = index(v)
                    if k is None or not 0 <= k < nparams or slots[k][0]:
                        continue
                    if not cols:
                        slots[k] = ("col", tname, f"#{j}")  # by position
                    elif j < len(cols):
                        slots[k] = ("col", tname, cols[j])
    return tuple(slots)


def infer_param_types(sql: str, nparams: int, column_type: Any) -> list[int]:
    """Parameter type OIDs from explicit casts, compared/inserted columns and LIMIT; 0 = unknown."""
    if nparams == 0:
        return []
    if len(sql) > 65536:
        return [0] * nparams  # bulk statements: not worth parsing (and caching) for types
    out = []
    for kind, a, b in _param_slots(sql, nparams):
        if kind == "cast" and a:
            out.append(types.oid_for(a))
        elif kind == "limit":
            out.append(types.INT8)
        elif kind == "col" and b:
            t = column_type(a, b)
            out.append(types.oid_for(t) if t else 0)
        else:
            out.append(0)
    return out
