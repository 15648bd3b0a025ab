"""PostgreSQL backend through psycopg 3 (a connection pool for one-off statements,
one dedicated connection per :class:`PostgresSession`)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from sqlsluice.databases.base import Backend, ColumnInfo, MaterializedResult, Plan, Result, Session
from sqlsluice.databases.catalog import Catalog, Column, ForeignKey, Table
from sqlsluice.errors import BackendError, QueryCanceled

_CATALOG_SQL = {
    "tables": """
        SELECT n.nspname, c.relname, c.reltuples::bigint, c.oid
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND n.nspname NOT LIKE 'pg_toast%%' AND n.nspname <> 'sluice'
        ORDER BY 1, 2""",
    "columns": """
        SELECT a.attrelid, a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p')
          AND n.nspname NOT IN ('pg_catalog', 'information_schema')
        ORDER BY a.attrelid, a.attnum""",
    "constraints": """
        SELECT con.conrelid, con.contype,
               ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(n, i)
                     JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.i),
               fc.relname, fn.nspname,
               ARRAY(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(n, i)
                     JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.i)
        FROM pg_constraint con
        LEFT JOIN pg_class fc ON fc.oid = con.confrelid
        LEFT JOIN pg_namespace fn ON fn.oid = fc.relnamespace
        WHERE con.contype IN ('p', 'u', 'f')""",
}


def _map_error(e: psycopg.Error) -> BackendError:
    code = getattr(e, "sqlstate", None) or "XX000"
    diag = getattr(e, "diag", None)
    msg = (diag.message_primary if diag is not None else None) or str(e).strip()
    detail = diag.message_detail if diag is not None else None
    hint = diag.message_hint if diag is not None else None
    if code == "57014":
        return QueryCanceled(msg, detail=detail, hint=hint)
    return BackendError(msg, sqlstate=code, detail=detail, hint=hint)


class PostgresResult(Result):
    def __init__(self, cur: psycopg.Cursor[Any]) -> None:
        self._cur = cur
        desc = cur.description
        self.columns = [ColumnInfo(d.name, d.type_display or str(d.type_code)) for d in desc] if desc else []
        self.status = cur.statusmessage or ""
        self.rowcount = cur.rowcount

    def fetchmany(self, n: int = 1000) -> list[tuple[Any, ...]]:
        if not self.columns:
            return []
        try:
            return self._cur.fetchmany(n)
        except psycopg.Error as e:
            raise _map_error(e) from e

    def close(self) -> None:
        self._cur.close()


class PostgresSession(Session):
    """A dedicated autocommit connection: BEGIN/COMMIT from the client pass through."""

    def __init__(self, backend: PostgresBackend) -> None:
        self.backend = backend
        try:
            self._conn = psycopg.connect(backend.url, autocommit=True)
        except psycopg.Error as e:
            raise _map_error(e) from e
        self._lock = threading.Lock()

    def execute(self, sql: str, params: Sequence[Any] | None = None, *,
                timeout: float | None = None) -> Result:
        cur = psycopg.RawCursor(self._conn)
        try:
            if timeout:
                cur.execute(f"SET statement_timeout = {int(timeout * 1000)}")
            try:
                cur.execute(sql.encode(), list(params) if params else None)  # type: ignore[arg-type]
            finally:
                if timeout and self._conn.info.transaction_status != psycopg.pq.TransactionStatus.INERROR:
                    reset = psycopg.RawCursor(self._conn)
                    reset.execute("RESET statement_timeout")
                    reset.close()
        except psycopg.Error as e:
            raise _map_error(e) from e
        return PostgresResult(cur)

    def cancel(self) -> None:
        try:
            self._conn.cancel_safe(timeout=5)
        except (psycopg.Error, AttributeError):
            self._conn.cancel()

    @property
    def in_transaction(self) -> bool:
        return self._conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE

    @property
    def transaction_failed(self) -> bool:
        return self._conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR

    def close(self) -> None:
        self._conn.close()


class PostgresBackend(Backend):
    dialect = "postgres"

    def __init__(self, url: str, *, pool_size: int = 4) -> None:
        self.url = url
        self._pool: ConnectionPool | None = None
        self._pool_size = pool_size
        self._closed = False
        try:  # fail early with a clear message when the server is unreachable
            with psycopg.connect(url, connect_timeout=10) as c:
                self.server_version = c.info.server_version
        except psycopg.Error as e:
            raise BackendError(f"cannot connect to {redact(url)}: {str(e).strip()}", sqlstate="08006") from e

    @property
    def pool(self) -> ConnectionPool:
        if self._pool is None:
            if self._closed:  # (a worker still running after close must not open a pool nobody closes)
                raise BackendError("the backend connection pool is closed", sqlstate="08003")
            self._pool = ConnectionPool(self.url, min_size=1, max_size=self._pool_size,
                                        kwargs={"autocommit": True}, open=True)
        return self._pool

    def session(self) -> PostgresSession:
        return PostgresSession(self)

    def catalog(self, *, row_counts: bool = True) -> Catalog:
        with self.pool.connection() as conn:
            tabs = conn.execute(_CATALOG_SQL["tables"]).fetchall()
            cols = conn.execute(_CATALOG_SQL["columns"]).fetchall()
            cons = conn.execute(_CATALOG_SQL["constraints"]).fetchall()
            by_oid: dict[int, Table] = {}
            for schema, name, reltuples, oid in tabs:
                t = Table(name=name, schema_name=schema)
                if row_counts:
                    if reltuples is not None and reltuples >= 0:
                        t.row_count = int(reltuples)
                    else:  # never analyzed: count
                        q = psycopg.sql.SQL("SELECT count(*) FROM {}.{}").format(
                            psycopg.sql.Identifier(schema), psycopg.sql.Identifier(name))
                        t.row_count = int(conn.execute(q).fetchone()[0])  # type: ignore[index]
                by_oid[oid] = t
            for relid, name, typ, nullable in cols:
                if relid in by_oid:
                    by_oid[relid].columns.append(Column(name=name, type=typ, nullable=nullable))
            for relid, ctype, ccols, ftab, fschema, fcols in cons:
                ct = by_oid.get(relid)
                if ct is None:
                    continue
                if ctype == "p":
                    ct.primary_key = list(ccols)
                elif ctype == "u":
                    ct.unique.append(list(ccols))
                elif ctype == "f":
                    ct.foreign_keys.append(ForeignKey(columns=list(ccols), ref_table=ftab,
                                                     ref_columns=list(fcols), ref_schema=fschema))
            return Catalog(tables=list(by_oid.values()), dialect="postgres")

    def explain(self, sql: str) -> Plan:
        with self.pool.connection() as conn:
            try:
                row = conn.execute("EXPLAIN (FORMAT JSON) " + sql).fetchone()  # type: ignore[arg-type]
            except psycopg.Error as e:
                raise _map_error(e) from e
        raw = row[0] if row else []  # type: ignore[index]
        top = raw[0]["Plan"]
        return Plan(cost=float(top["Total Cost"]), rows=float(top.get("Plan Rows", 0)), raw=raw,
                    backend="postgres")

    @contextlib.contextmanager
    def _readonly(self, timeout: float, isolation: str = "") -> Iterator[psycopg.RawCursor[Any]]:
        """A cursor inside ``BEGIN [ISOLATION LEVEL ...] READ ONLY`` with a statement timeout,
        rolled back at the end whatever happened (nothing run in it can change the database)."""
        with self.pool.connection() as conn:
            cur = psycopg.RawCursor(conn)
            try:
                cur.execute(f"BEGIN TRANSACTION {isolation} READ ONLY".replace("  ", " "))
                cur.execute(f"SET LOCAL statement_timeout = {max(1, int(timeout * 1000))}")
                yield cur
            except psycopg.Error as e:
                raise _map_error(e) from e
            finally:
                with contextlib.suppress(psycopg.Error):
                    conn.execute("ROLLBACK")
                cur.close()

    def execute_readonly(self, sql: str, *, timeout: float) -> MaterializedResult:
        with self._readonly(timeout) as cur:
            cur.execute(sql.encode())  # type: ignore[arg-type]
            res = PostgresResult(cur)
            rows = res.fetchall() if res.columns else []
            return MaterializedResult(columns=res.columns, rows=rows, status=res.status, rowcount=res.rowcount)

    def readonly_snapshot(self, sqls: Sequence[str], *, timeout: float) -> list[list[tuple[Any, ...]]]:
        with self._readonly(timeout, "ISOLATION LEVEL REPEATABLE READ") as cur:
            out = []
            for q in sqls:
                cur.execute(q.encode())  # type: ignore[arg-type]
                out.append(cur.fetchall() if cur.description else [])
            return out

    def function_volatility(self, names: Sequence[str]) -> dict[str, str]:
        wanted = sorted({n.lower() for n in names})
        if not wanted:
            return {}
        with self.pool.connection() as conn:
            rows = conn.execute(
                "SELECT lower(proname), max(CASE provolatile WHEN 'v' THEN 3 WHEN 's' THEN 2 ELSE 1 END) "
                "FROM pg_proc WHERE lower(proname) = ANY(%s) GROUP BY 1", [wanted]).fetchall()
        return {str(n): {3: "v", 2: "s"}.get(int(v), "i") for n, v in rows}

    def output_columns(self, sql: str) -> list[ColumnInfo]:
        with self.pool.connection() as conn:
            pg = conn.pgconn
            r = pg.prepare(b"", sql.encode())
            if r.status != psycopg.pq.ExecStatus.COMMAND_OK:
                raise BackendError((r.error_message or b"").decode(errors="replace").strip() or "prepare failed")
            d = pg.describe_prepared(b"")
            if d.status != psycopg.pq.ExecStatus.COMMAND_OK:
                raise BackendError((d.error_message or b"").decode(errors="replace").strip() or "describe failed")
            return [ColumnInfo((d.fname(i) or b"").decode(), f"{int(d.ftype(i))}:{int(d.fmod(i))}")
                    for i in range(d.nfields)]

    def schema_version(self) -> str:
        """One digest of what the rewriter's soundness rests on: relations, columns (types,
        NOT NULL), constraints, view definitions and user functions (volatility, body).
        Temporary objects (other sessions' ``pg_temp_N``) and schema ``sluice`` are left out."""
        with self.pool.connection() as conn:
            row = conn.execute(_SCHEMA_VERSION_SQL).fetchone()
        return str(row[0]) if row else ""

    def stats_version(self) -> str:
        """:meth:`schema_version` and the planner statistics (row estimates, analyze times)."""
        with self.pool.connection() as conn:
            schema = conn.execute(_SCHEMA_VERSION_SQL).fetchone()
            row = conn.execute(
                # reltuples only in factor-of-two buckets: VACUUM replaces ANALYZE's estimate with an
                # exact count, which is not a change of statistics worth dropping rewrites for.
                "SELECT md5(string_agg(c.relname || ':' || round(log(2, greatest(c.reltuples, 1)::numeric))::text"
                " || ':' || c.relnatts::text"
                " || ':' || coalesce(s.last_analyze::text, '') || coalesce(s.last_autoanalyze::text, ''),"
                " ',' ORDER BY c.oid)) FROM pg_class c LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid"
                " JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE c.relkind IN ('r','p','i') AND n.nspname NOT IN ('pg_catalog','information_schema')"
                " AND n.nspname <> 'sluice'").fetchone()
        return (str(schema[0]) if schema else "") + ":" + (str(row[0]) if row else "")

    def close(self) -> None:
        self._closed = True
        if self._pool is not None:
            self._pool.close()
            self._pool = None


_USER_NS = ("n.nspname NOT IN ('pg_catalog', 'information_schema', 'sluice') AND n.nspname NOT LIKE 'pg\\_toast%'"
            " AND n.nspname NOT LIKE 'pg\\_temp\\_%'")
_SCHEMA_VERSION_SQL = (
    "SELECT md5(coalesce(string_agg(x, ',' ORDER BY x), '')) FROM ("
    " SELECT 'r:' || c.oid || ':' || n.nspname || '.' || c.relname || ':' || c.relkind::text AS x"
    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    f" WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'i') AND {_USER_NS}"
    " UNION ALL SELECT 'a:' || a.attrelid || ':' || a.attnum || ':' || a.attname || ':' || a.atttypid || ':'"
    " || a.atttypmod || ':' || a.attnotnull"
    " FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
    f" WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND {_USER_NS}"
    " UNION ALL SELECT 'c:' || co.oid || ':' || co.conrelid || ':' || co.contype::text || ':' || co.convalidated || ':'"
    " || pg_get_constraintdef(co.oid)"
    f" FROM pg_constraint co JOIN pg_namespace n ON n.oid = co.connamespace WHERE {_USER_NS}"
    " UNION ALL SELECT 'v:' || c.oid || ':' || md5(coalesce(pg_get_viewdef(c.oid), ''))"
    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    f" WHERE c.relkind IN ('v', 'm') AND {_USER_NS}"
    " UNION ALL SELECT 'f:' || p.oid || ':' || p.proname || ':' || p.provolatile::text || ':' || md5(coalesce(p.prosrc, ''))"
    f" FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE {_USER_NS}"
    ") s")


def settle_statistics(conn: psycopg.Connection[Any]) -> None:
    """``VACUUM ANALYZE`` after flushing this backend's pending statistics (PostgreSQL 15 flushes a
    backend's row counters only every few seconds: counters of a load flushed after the ANALYZE
    count as changes since it, autovacuum analyzes again a moment later, ``stats_version``
    changes and the rewrites stored meanwhile are dropped)."""
    with contextlib.suppress(psycopg.Error):
        conn.execute("SELECT pg_stat_force_next_flush()")  # PostgreSQL 15+; flushed as this ends
    conn.execute("VACUUM ANALYZE")
    with contextlib.suppress(psycopg.Error):
        conn.execute("SELECT pg_stat_force_next_flush()")


def redact(url: str) -> str:
    """The URL with its password replaced by ``***``."""
    from urllib.parse import urlsplit, urlunsplit

    p = urlsplit(url)
    if p.password:
        netloc = p.netloc.replace(":" + p.password + "@", ":***@")
        return urlunsplit(p._replace(netloc=netloc))
    return url
