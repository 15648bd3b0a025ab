"""Generated SQL: extract it from an LLM reply, check it parses, and run it read-only.

Three layers stand between a model's reply and the database:

1. :func:`extract_sql` pulls one SQL text out of a reply (a fenced block, or plain text
   from the first ``SELECT``/``WITH``), dropping prose around it.
2. :func:`check_readonly` parses it with sqlglot (and, on DuckDB, with DuckDB's own parser)
   and allows exactly one statement that is a ``SELECT`` (or ``WITH ... SELECT``, or a set
   operation of selects): no ``SELECT ... INTO``, no DML/DDL anywhere in the tree (data
   modifying CTEs), no row locks, no functions with side effects or file access.  Anything
   else raises :class:`~sqlsluice.errors.InsufficientPrivilege` (SQLSTATE 42501) with the
   reason.
3. :func:`run_readonly` runs the checked query inside a READ ONLY transaction
   (``BEGIN TRANSACTION READ ONLY`` on DuckDB, ``BEGIN READ ONLY`` plus
   ``SET LOCAL statement_timeout`` on PostgreSQL), fetches at most ``row_limit`` rows and
   rolls back.  Even a statement that slipped past the parser cannot write: the engine
   refuses writes in a read-only transaction.

>>> extract_sql("Here you go:\\n```sql\\nSELECT name FROM singer;\\n```")
'SELECT name FROM singer'
>>> check_readonly("SELECT 1; DROP TABLE singer")
Traceback (most recent call last):
...
sqlsluice.errors.InsufficientPrivilege: generated SQL refused: 2 statements (only one read-only query is allowed)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sqlglot
from sqlglot import exp

from sqlsluice.databases import Backend, ColumnInfo
from sqlsluice.errors import BackendError, InsufficientPrivilege, SluiceError, SyntaxErrorSQL

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_-]*)[ \t]*\n(.*?)```", re.S)
_OPEN_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_-]*)[ \t]*\n(.*)$", re.S)
_FILEISH = re.compile(r"[/\\:]|\.(csv|tsv|parquet|json|ndjson|jsonl|txt|gz|zst|xlsx|db|sqlite|duckdb)$", re.I)
_KEYWORDS = ("WITH|SELECT|INSERT|UPDATE|DELETE|DROP|CREATE|ALTER|TRUNCATE|MERGE|GRANT|REVOKE|COPY|ATTACH|"
             "DETACH|INSTALL|LOAD|PRAGMA|SET|CALL|EXPORT|IMPORT|VACUUM|CHECKPOINT|BEGIN|COMMIT|REPLACE|UPSERT")
# a statement starts at an upper-case keyword anywhere, or at any-case keyword at a line start
_START_UPPER = re.compile(rf"\b({_KEYWORDS})\b")
_START_LINE = re.compile(rf"(?im)^\s*({_KEYWORDS})\b")

# Statement nodes that change data or schema; none may appear anywhere in the tree.
_WRITE_NODES: tuple[type[exp.Expression], ...] = tuple(
    getattr(exp, n) for n in (
        "Insert", "Update", "Delete", "Merge", "Create", "Drop", "Alter", "AlterTable", "TruncateTable",
        "Copy", "Command", "Into", "Lock", "Set", "Use", "Grant", "Revoke", "Transaction", "Commit",
        "Rollback", "Pragma", "Attach", "Detach", "Install", "Load", "Analyze", "Refresh", "Cache",
        "Uncache", "Describe", "Kill", "Comment", "LoadData", "Export",
    ) if hasattr(exp, n))

# Functions with side effects (sequences, settings, sessions) or that read files/network.
_FORBIDDEN_FUNCS = frozenset({
    "nextval", "setval", "currval", "set_config", "pg_sleep", "pg_terminate_backend", "pg_cancel_backend",
    "pg_reload_conf", "pg_rotate_logfile", "pg_read_file", "pg_read_binary_file", "pg_ls_dir", "pg_stat_file",
    "lo_import", "lo_export", "lo_create", "lo_unlink", "lo_put", "lo_from_bytea", "dblink", "dblink_exec",
    "pg_advisory_lock", "pg_advisory_xact_lock", "pg_notify", "txid_current", "query_to_xml",
    "read_csv", "read_csv_auto", "read_parquet", "read_json", "read_json_auto", "read_json_objects",
    "read_ndjson", "read_ndjson_auto", "read_text", "read_blob", "read_xlsx", "parquet_scan", "glob",
    "sniff_csv", "parquet_metadata", "parquet_schema", "csv_scan", "sqlite_scan", "postgres_scan",
    "postgres_query", "mysql_query", "getenv", "current_setting", "delta_scan", "iceberg_scan",
    "load_extension", "writefile", "readfile", "system", "duckdb_secrets", "query", "query_table",
})
_TABLE_FUNCS_OK = frozenset({"GenerateSeries", "ExplodingGenerateSeries", "Unnest", "GenerateDateArray"})
_FILE_FUNC_NODES: tuple[type[exp.Expression], ...] = tuple(
    getattr(exp, n) for n in ("ReadCSV", "ReadParquet") if hasattr(exp, n))


@dataclass
class GuardedResult:
    """Rows of a guarded read-only run; ``truncated`` when more than ``row_limit`` existed."""

    sql: str
    columns: list[ColumnInfo]
    rows: list[tuple[object, ...]]
    truncated: bool = False


def extract_sql(text: str) -> str:
    """The SQL inside an LLM reply: the last fenced ``sql`` block (or any fenced block),
    else the text from the first statement keyword (upper case, or any case at a line start:
    a reply that is ``DROP TABLE ...`` must reach the guard, not be skipped); trailing
    ``;`` and prose after a blank line are dropped.  Raises :class:`SyntaxErrorSQL` when there is no SQL at all.

    >>> extract_sql("SELECT 1;\\n\\nThis query returns one.")
    'SELECT 1'
    """
    body = text.strip()
    blocks = _FENCE.findall(body)
    if blocks:
        sql_blocks = [b for lang, b in blocks if lang.lower() in ("sql", "sqlite", "postgresql", "duckdb")]
        body = (sql_blocks or [b for _, b in blocks])[-1].strip()
    else:
        m = _OPEN_FENCE.search(body)  # a reply cut off before its closing fence
        if m:
            body = m.group(2).strip()
        m2 = _START_UPPER.search(body) or _START_LINE.search(body)
        if m2 is None:
            raise SyntaxErrorSQL("no SQL query found in the model's reply")
        body = body[m2.start(1):]
        # prose after the query: cut at the first blank line
        body = re.split(r"\n\s*\n", body, maxsplit=1)[0]
    body = body.strip().rstrip(";").strip()
    if not body:
        raise SyntaxErrorSQL("empty SQL in the model's reply")
    return body


def check_readonly(sql: str, dialect: str = "duckdb") -> exp.Query:
    """Parse ``sql`` and allow exactly one read-only query; return its tree.

    Raises :class:`InsufficientPrivilege` (42501) for anything but one SELECT, and
    :class:`SyntaxErrorSQL` (42601) when it does not parse.
    """
    try:
        stmts = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    except sqlglot.errors.ParseError as e:
        # DML/DDL that sqlglot cannot parse is still not a SELECT: refuse, do not just "fail"
        words = sql.lstrip("( \n\t").split(None, 1)
        first = words[0].upper() if words else ""
        if first not in ("SELECT", "WITH", "VALUES", "TABLE", "FROM"):
            raise _refuse(f"{first or 'empty'} statement (only SELECT is allowed)") from e
        msg = str(e).splitlines()[0] if str(e) else "parse error"
        raise SyntaxErrorSQL(f"generated SQL does not parse: {msg}") from e
    if len(stmts) != 1:
        raise _refuse(f"{len(stmts)} statements (only one read-only query is allowed)")
    tree = stmts[0]
    if not isinstance(tree, exp.Query):
        raise _refuse(f"{tree.key.upper()} statement (only SELECT is allowed)")
    for node in tree.walk():
        if isinstance(node, _WRITE_NODES):
            what = "SELECT ... INTO" if isinstance(node, exp.Into) else node.key.upper()
            raise _refuse(f"{what} inside the query (only reads are allowed)")
        if isinstance(node, _FILE_FUNC_NODES):
            raise _refuse(f"function {node.key} reads files")
        if isinstance(node, exp.Func):
            name = (node.name if isinstance(node, exp.Anonymous) else node.sql_name()).lower()
            if name in _FORBIDDEN_FUNCS:
                raise _refuse(f"function {name}() has side effects or reads outside the database")
        if isinstance(node, exp.Table) and isinstance(node.this, exp.Func) and \
                type(node.this).__name__ not in _TABLE_FUNCS_OK:
            fname = node.this.name if isinstance(node.this, exp.Anonymous) else node.this.sql_name()
            if fname.lower() in ("range", "generate_series", "unnest"):
                continue
            raise _refuse(f"table function {fname.lower()}() (only tables, range and generate_series)")
        if isinstance(node, exp.Table) and (isinstance(node.this, exp.Literal) or _FILEISH.search(node.name)):
            raise _refuse(f"reading a file path as a table ({node.name})")
    if dialect == "duckdb":
        _duckdb_statement_check(sql)
    return tree


def _duckdb_statement_check(sql: str) -> None:
    """DuckDB's own parser must agree: one statement of type SELECT."""
    import duckdb

    try:
        stmts = duckdb.extract_statements(sql)
    except duckdb.Error as e:
        msg = str(e).splitlines()[0]
        if "INTO" in msg.upper():
            raise _refuse("SELECT ... INTO (only reads are allowed)") from e
        raise SyntaxErrorSQL(f"generated SQL does not parse: {msg}") from e
    if len(stmts) != 1:
        raise _refuse(f"{len(stmts)} statements (only one read-only query is allowed)")
    if stmts[0].type != duckdb.StatementType.SELECT:
        raise _refuse(f"{stmts[0].type.name} statement (only SELECT is allowed)")


def _refuse(reason: str) -> InsufficientPrivilege:
    return InsufficientPrivilege(f"generated SQL refused: {reason}")


def run_readonly(backend: Backend, sql: str, *, row_limit: int = 1000,
                 timeout_s: float = 30.0) -> GuardedResult:
    """Check ``sql`` and run it in a READ ONLY transaction with a statement timeout;
    fetch at most ``row_limit`` rows, then roll back."""
    check_readonly(sql, backend.dialect)
    with backend.session() as s:
        if backend.dialect == "postgres":
            s.execute("BEGIN READ ONLY")
            s.execute(f"SET LOCAL statement_timeout = {max(int(timeout_s * 1000), 1)}")
        else:
            s.execute("BEGIN TRANSACTION READ ONLY")
        try:
            r = s.execute(sql, timeout=timeout_s)
            rows = r.fetchmany(row_limit + 1) if r.columns else []
            cols = list(r.columns)
            r.close()
        except BackendError as e:
            if e.sqlstate in ("25006", "25P02") and "read-only" in e.message.lower():
                raise _refuse(f"the database refused a write: {e.message}") from e
            raise
        finally:
            try:
                s.execute("ROLLBACK")
            except SluiceError:
                pass
    return GuardedResult(sql=sql, columns=cols, rows=rows[:row_limit], truncated=len(rows) > row_limit)
