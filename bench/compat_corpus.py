"""The statements PostgreSQL tools send for metadata and typed parameters, replayed on
PostgreSQL 15 and on sluice over DuckDB (same TPC-DS SF 0.01 data and the same extra schema).

Two commands:

    .venv/bin/python bench/compat_corpus.py capture   # rewrite tests/fixtures/<tool>/statements.sql
    .venv/bin/python bench/compat_corpus.py compare   # replay every record, print the shares

``capture`` starts a throwaway PostgreSQL (PgCluster) with ``log_statement = all`` and
``log_line_prefix = '@@ %a|'``, loads the data, runs the real tools (pgjdbc from Debian's
libpostgresql-jdbc-java, SQLAlchemy ``inspect()``, asyncpg, node-postgres), each step on its own
connection whose ``application_name`` is ``<tool>:<step>``, and writes what the server logged,
with the parameters it logged. Table and type OIDs become ``{oid:<name>}``. The statements of
Metabase, Grafana's PostgreSQL data source and DBeaver's navigator are taken from their
sources (file and commit in each record) in tests/fixtures/{metabase,grafana,dbeaver}/.

``compare`` sends each record over the extended protocol when the tool did (parameters as
text of unknown type, as the log shows them) and compares column names, type OIDs, command
tag and row count. varchar (1043) and text (25), and their arrays, count as the same: DuckDB has one
string type.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
TOOLS_DIR = Path(__file__).resolve().parent / "compat_tools"
CAPTURED = ("pgjdbc", "sqlalchemy", "asyncpg", "node-postgres")
FROM_SOURCES = ("metabase", "grafana", "dbeaver")
TOOLS = CAPTURED + FROM_SOURCES
DB = "tpcds"
NODE_DIR = Path("/tmp/sluice-node-pg")

# besides TPC-DS (tables with primary keys only): a foreign key, a unique constraint, an
# index, a view and an enum type; runs on PostgreSQL and on DuckDB alike
EXTRA_SCHEMA = (
    "CREATE TYPE cc_mood AS ENUM ('sad', 'ok', 'happy')",
    "CREATE TABLE cc_dept (d_id INTEGER PRIMARY KEY, d_name VARCHAR(30) NOT NULL UNIQUE)",
    "CREATE TABLE cc_emp (e_id INTEGER PRIMARY KEY, e_dept INTEGER REFERENCES cc_dept (d_id), "
    "e_name VARCHAR(40) NOT NULL, e_salary DECIMAL(9,2), e_mood cc_mood, e_tags VARCHAR[])",
    "CREATE INDEX cc_emp_name_idx ON cc_emp (e_name)",
    "CREATE VIEW cc_emp_v AS SELECT e_id, e_name, d_name FROM cc_emp JOIN cc_dept ON e_dept = d_id",
    "INSERT INTO cc_dept VALUES (1, 'sales'), (2, 'ops')",
    "INSERT INTO cc_emp VALUES (1, 1, 'ann', 100.50, 'happy', string_to_array('a,b', ',')), "
    "(2, 2, 'bob', 90.00, 'ok', NULL), (3, 1, 'cy', NULL, NULL, string_to_array('c', ','))",
)


@dataclass
class Record:
    tool: str
    step: str
    sql: str
    params: list[str | None] | None = None  # None: simple protocol; a list: extended
    source: str = ""

    def render(self) -> str:
        head = f"-- {self.tool}: {self.step}\n"
        if self.source:
            head += f"-- source: {self.source}\n"
        if self.params is not None:
            head += f"-- params: {json.dumps(self.params)}\n"
        return head + self.sql.rstrip() + "\n;;\n"


def corpus_path(tool: str) -> Path:
    return FIXTURES / tool / "statements.sql"


def load(tool: str) -> list[Record]:
    """The records of tests/fixtures/<tool>/statements.sql."""
    out: list[Record] = []
    for block in corpus_path(tool).read_text().split("\n;;\n"):
        lines = block.strip("\n").splitlines()
        while lines and not lines[0].startswith(f"-- {tool}: "):
            lines.pop(0)
        if not lines:
            continue
        rec = Record(tool, lines[0][len(f"-- {tool}: "):], "")
        i = 1
        while i < len(lines) and lines[i].startswith(("-- source: ", "-- params: ")):
            if lines[i].startswith("-- source: "):
                rec.source = lines[i][len("-- source: "):]
            else:
                rec.params = json.loads(lines[i][len("-- params: "):])
            i += 1
        rec.sql = "\n".join(lines[i:])
        out.append(rec)
    return out


# --- the same data in both ---------------------------------------------------------------------
def build_duckdb(path: Path) -> list[tuple[str, list[str]]]:
    """TPC-DS SF 0.01 with the primary keys its data allows, and the extra schema; returns the keys."""
    import duckdb

    from sqlsluice.databases.tpcds import generate_tpcds_duckdb, tpcds_keys

    generate_tpcds_duckdb(path, sf=0.01, progress=False)  # declares the keys its data allows
    with duckdb.connect(str(path)) as con:
        declared = {str(t) for (t,) in con.execute(
            "SELECT table_name FROM duckdb_constraints() WHERE constraint_type = 'PRIMARY KEY'").fetchall()}
        for table, cols in sorted(tpcds_keys().items()):
            if table in declared:
                continue
            try:
                con.execute(f"ALTER TABLE {table} ADD PRIMARY KEY ({', '.join(cols)})")
            except duckdb.Error:
                pass  # duplicates in generated data: no key on either side
        # the keys DuckDB holds, in the key's column order (PostgreSQL gets the same ones)
        rows = con.execute("SELECT table_name, constraint_column_names FROM duckdb_constraints() "
                           "WHERE constraint_type = 'PRIMARY KEY' ORDER BY table_name").fetchall()
    return [(str(t), list(c)) for t, c in rows]


def build_postgres(dsn: str, duck: Path, keys: Sequence[tuple[str, list[str]]]) -> None:
    import psycopg

    from sqlsluice.bench.tpcds_load import copy_duckdb_to_postgres
    from sqlsluice.databases.postgres_backend import settle_statistics

    copy_duckdb_to_postgres(duck, dsn, primary_keys=False)
    with psycopg.connect(dsn, autocommit=True) as c:
        for table, cols in keys:
            c.execute(f"ALTER TABLE {table} ADD PRIMARY KEY ({', '.join(cols)})")  # type: ignore[arg-type]
        for s in EXTRA_SCHEMA:
            c.execute(s)  # type: ignore[arg-type]
        settle_statistics(c)


def extra_duckdb(path: Path) -> None:
    import duckdb

    with duckdb.connect(str(path)) as con:
        for s in EXTRA_SCHEMA:
            con.execute(s)


def prepare(pg: Any, work: Path, db: str = DB) -> tuple[str, Path]:
    """(PostgreSQL dsn, DuckDB file) holding the same data, both named ``db``."""
    duck = work / f"{db}.duckdb"
    keys = build_duckdb(duck)
    dsn = pg.create_database(db)
    build_postgres(dsn, duck, keys)
    extra_duckdb(duck)
    return dsn, duck


# --- capture -----------------------------------------------------------------------------------
def run_pgjdbc(port: int) -> None:
    jars = sorted(Path("/usr/share/java").glob("postgresql*.jar"))
    if shutil.which("java") is None or not jars:
        raise SystemExit("pgjdbc: java or /usr/share/java/postgresql.jar (libpostgresql-jdbc-java) missing")
    jar = str(Path("/usr/share/java/postgresql.jar") if Path("/usr/share/java/postgresql.jar").exists() else jars[-1])
    with tempfile.TemporaryDirectory() as d:
        subprocess.run(["javac", "-cp", jar, "-d", d, str(TOOLS_DIR / "MetaCapture.java")], check=True)
        r = subprocess.run(["java", "-cp", f"{jar}:{d}", "MetaCapture", f"jdbc:postgresql://127.0.0.1:{port}/{DB}"],
                           capture_output=True, text=True, timeout=300)
    print(r.stdout + r.stderr, file=sys.stderr)
    r.check_returncode()


def node_pg_dir() -> Path:
    if not (NODE_DIR / "node_modules" / "pg").exists():
        NODE_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "pg"], cwd=NODE_DIR, check=True,
                       capture_output=True, timeout=180)
    return NODE_DIR


def run_node(port: int) -> None:
    d = node_pg_dir()
    script = d / "compat_capture.js"
    shutil.copy(TOOLS_DIR / "node_capture.js", script)
    r = subprocess.run(["node", str(script), str(port), DB], cwd=d, capture_output=True, text=True, timeout=120)
    print(r.stdout + r.stderr, file=sys.stderr)
    r.check_returncode()


def run_sqlalchemy(port: int) -> None:
    import sqlalchemy as sa

    steps = {
        "get_schema_names": lambda i: i.get_schema_names(),
        "get_table_names": lambda i: i.get_table_names(),
        "get_view_names": lambda i: i.get_view_names(),
        "get_columns": lambda i: (i.get_columns("cc_emp"), i.get_columns("store_sales")),
        "get_pk_constraint": lambda i: i.get_pk_constraint("cc_emp"),
        "get_foreign_keys": lambda i: i.get_foreign_keys("cc_emp"),
        "get_indexes": lambda i: i.get_indexes("cc_emp"),
        "get_unique_constraints": lambda i: i.get_unique_constraints("cc_dept"),
        "get_check_constraints": lambda i: i.get_check_constraints("cc_emp"),
        "get_table_comment": lambda i: i.get_table_comment("cc_emp"),
        "get_view_definition": lambda i: i.get_view_definition("cc_emp_v"),
        "has_table": lambda i: i.has_table("item"),
        "get_multi_columns": lambda i: i.get_multi_columns(),
        "reflect": None,
    }
    for step, fn in steps.items():
        eng = sa.create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{port}/{DB}",
                               connect_args={"application_name": f"sqlalchemy:{step}"}, poolclass=sa.NullPool)
        try:
            if fn is None:
                md = sa.MetaData()
                md.reflect(eng, only=["cc_emp", "cc_dept", "item"])
                with eng.connect() as c:
                    t = md.tables["cc_emp"]
                    c.execute(sa.select(t.c.e_name).where(t.c.e_id == sa.bindparam("x")), {"x": 1}).fetchall()
            else:
                fn(sa.inspect(eng))
        finally:
            eng.dispose()


def run_asyncpg(port: int) -> None:
    import asyncio
    import decimal
    import json as _json

    import asyncpg

    async def step(name: str, fn: Any) -> None:
        c = await asyncpg.connect(host="127.0.0.1", port=port, user="postgres", database=DB,
                                  server_settings={"application_name": f"asyncpg:{name}"})
        try:
            await fn(c)
        finally:
            await c.close()

    async def params(c: Any) -> None:
        await c.fetchval("SELECT $1::int + 1", 41)
        await c.fetch("SELECT ss_item_sk, ss_net_paid FROM store_sales WHERE ss_item_sk = $1 ORDER BY 2 LIMIT 5", 1)
        await c.fetchval("SELECT count(*) FROM customer WHERE c_birth_year > $1", 1950)
        await c.fetch("SELECT e_name FROM cc_emp WHERE e_salary > $1", decimal.Decimal("10"))
        await c.fetch("SELECT d_date FROM date_dim WHERE d_date_sk = $1", 2450816)

    async def arrays(c: Any) -> None:
        await c.fetchval("SELECT $1::int[]", [1, 2])
        await c.fetch("SELECT e_id, e_tags FROM cc_emp WHERE e_id = ANY($1::int[])", [1, 2])
        await c.fetchval("SELECT ARRAY['a', 'b']::text[]")

    async def custom(c: Any) -> None:
        await c.fetch("SELECT e_id, e_mood FROM cc_emp ORDER BY e_id")
        await c.fetch("SELECT e_name FROM cc_emp WHERE e_mood = $1", "happy")

    async def codec(c: Any) -> None:
        await c.set_type_codec("json", encoder=_json.dumps, decoder=_json.loads, schema="pg_catalog")
        await c.fetchval("SELECT $1::json", {"a": 1})

    async def prepared(c: Any) -> None:
        st = await c.prepare("SELECT i_item_id FROM item WHERE i_item_sk = $1")
        await st.fetch(1)
        await st.fetch(2)

    async def main() -> None:
        for name, fn in (("parameters", params), ("arrays", arrays), ("custom_types", custom),
                         ("set_type_codec", codec), ("prepare", prepared)):
            try:
                await step(name, fn)
            except Exception as e:
                print(f"asyncpg {name}: {e}", file=sys.stderr)

    asyncio.run(main())


_PARAM = re.compile(r"\$(\d+) = (NULL|'(?:[^']|'')*')")


def parse_log(log: str) -> list[Record]:
    """Records of every statement logged by a connection named ``<tool>:<step>``."""
    out: list[Record] = []
    parts = re.split(r"^@@ ", log, flags=re.M)
    for i, part in enumerate(parts):
        m = re.match(r"([\w-]+):([\w.]+)\|LOG:  (statement|execute [^:]+): (.*)", part, re.S)
        if not m or m.group(1) not in CAPTURED:
            continue
        sql = m.group(4).rstrip()
        params: list[str | None] | None = None
        if m.group(3) != "statement":
            params = []
            nxt = parts[i + 1] if i + 1 < len(parts) else ""
            d = re.match(r"[\w:.-]*\|DETAIL:  parameters: (.*)", nxt, re.S)
            if d:
                got = {int(n): (None if v == "NULL" else v[1:-1].replace("''", "'"))
                       for n, v in _PARAM.findall(d.group(1))}
                params = [got.get(k) for k in range(1, max(got) + 1)] if got else []
        out.append(Record(m.group(1), m.group(2), sql, params, "captured from the tool on PostgreSQL 15"))
    return out


_TX = ("BEGIN", "COMMIT", "ROLLBACK", "END", "START")


def dedupe(records: list[Record]) -> list[Record]:
    seen: set[tuple[str, str, str]] = set()
    out = []
    for r in records:
        key = (r.tool, r.sql, json.dumps(r.params))
        if key in seen and not r.sql.lstrip().upper().startswith(_TX):
            continue
        seen.add(key)
        out.append(r)
    return out


def name_oids(records: list[Record], oids: dict[str, str]) -> None:
    """Replace the OIDs of our tables and indexes by ``{oid:<name>}``, of our types by ``{typeoid:<name>}``."""
    if not oids:
        return
    pat = re.compile(r"(?<!\d)(" + "|".join(sorted(oids, key=len, reverse=True)) + r")(?!\d)")

    def sub(s: str) -> str:
        return pat.sub(lambda m: "{" + oids[m.group(1)] + "}", s)

    for r in records:
        r.sql = sub(r.sql)
        if r.params:
            r.params = [None if p is None else sub(p) for p in r.params]


def capture(tools: Sequence[str]) -> None:
    import psycopg

    from sqlsluice.databases.pgcluster import PgCluster

    with tempfile.TemporaryDirectory() as tmp, \
            PgCluster(settings={"log_statement": "'all'", "log_line_prefix": "'@@ %a|'"}) as pg:
        dsn, _ = prepare(pg, Path(tmp))
        with psycopg.connect(dsn, autocommit=True) as c:
            oids = {str(o): n for o, n in c.execute(
                "SELECT oid, 'oid:' || relname FROM pg_class WHERE relnamespace = 'public'::regnamespace UNION ALL "
                "SELECT oid, 'typeoid:' || typname FROM pg_type WHERE typnamespace = 'public'::regnamespace "
                "AND typtype <> 'c' AND typname NOT IN (SELECT '_' || relname FROM pg_class)").fetchall()}
        runners = {"pgjdbc": run_pgjdbc, "sqlalchemy": run_sqlalchemy, "asyncpg": run_asyncpg,
                   "node-postgres": run_node}
        for tool in tools:
            runners[tool](pg.port)
        time.sleep(1.0)  # the logging collector writes asynchronously
        log = (pg.base / "log.txt").read_text()
    records = parse_log(log)
    name_oids(records, oids)
    for tool in tools:
        recs = dedupe([r for r in records if r.tool == tool])
        path = corpus_path(tool)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w") as f:
            f.write(f"-- The statements {tool} sent on PostgreSQL 15 (log_statement = all), captured by\n"
                    "-- bench/compat_corpus.py capture; {oid:<name>} / {typeoid:<name>} stand for oids.\n"
                    "-- Do not edit by hand.\n\n")
            for r in recs:
                f.write(r.render() + "\n")
        print(f"{tool}: {len(recs)} statements -> {path}", file=sys.stderr)


# --- compare -----------------------------------------------------------------------------------
_ONE_STRING: dict[int | str, int | str] = {1043: 25, 1015: 1009}  # varchar (and varchar[]) and text: DuckDB has one string type


@dataclass
class Shape:
    names: list[str] = field(default_factory=list)
    oids: list[int | str] = field(default_factory=list)  # a type of the browsed schema by its name
    tag: str = ""
    rows: int = 0
    error: str = ""  # "SQLSTATE message" when the statement failed

    def key(self) -> tuple[Any, ...]:
        if self.error:
            return ("error", self.error.split()[0])
        return (self.names, [_ONE_STRING.get(o, o) for o in self.oids], self.tag, self.rows)


def differences(pg: Shape, sl: Shape) -> list[str]:
    """What differs, in words (empty: the same)."""
    if pg.error or sl.error:
        if pg.error and sl.error and pg.error.split()[0] == sl.error.split()[0]:
            return []
        return [f"error: postgresql {pg.error or 'none'}; sluice {sl.error or 'none'}"]
    out = []
    if pg.names != sl.names:
        out.append(f"names {pg.names} vs {sl.names}")
    a, b = pg.key()[1], sl.key()[1]
    if a != b:
        out.append("oids " + ", ".join(f"{n}: {x} vs {y}" for n, x, y in zip(pg.names, a, b, strict=False)
                                       if x != y))
    if pg.tag != sl.tag and pg.tag.split()[0] != "SELECT":
        out.append(f"tag {pg.tag!r} vs {sl.tag!r}")
    if pg.rows != sl.rows:
        out.append(f"rows {pg.rows} vs {sl.rows}")
    return out


class Target:
    """One server (PostgreSQL or sluice), one libpq connection per tool."""

    def __init__(self, host: str, port: int, oids: dict[str, str], db: str = DB) -> None:
        self.host, self.port, self.oids, self.db = host, port, oids, db
        self.conn: Any = None

    def connect(self) -> None:
        import psycopg

        self.close()
        self.conn = psycopg.pq.PGconn.connect(
            f"host={self.host} port={self.port} user=postgres dbname={self.db} connect_timeout=10".encode())
        if self.conn.status != psycopg.pq.ConnStatus.OK:
            raise SystemExit(f"cannot connect to {self.port}: {self.conn.get_error_message()!r}")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.finish()
            self.conn = None

    def fill(self, s: str) -> str:
        return re.sub(r"\{((?:type|nsp)?oid:\w+|nsp:current)\}", lambda m: self.oids.get(m.group(1), "0"), s)

    def run(self, rec: Record) -> Shape:
        from psycopg import pq

        sql = self.fill(rec.sql).encode()
        if rec.params is None:
            res = self.conn.exec_(sql)
        else:
            res = self.conn.exec_params(sql, [None if p is None else self.fill(p).encode() for p in rec.params])
        # a result per statement: simple-protocol strings with several statements keep the last
        shape = Shape()
        if res.status in (pq.ExecStatus.FATAL_ERROR, pq.ExecStatus.NONFATAL_ERROR):
            state = (res.error_field(pq.DiagnosticField.SQLSTATE) or b"").decode()
            msg = (res.error_field(pq.DiagnosticField.MESSAGE_PRIMARY) or b"").decode()
            shape.error = f"{state} {msg}"
            if self.conn.transaction_status == pq.TransactionStatus.INERROR:
                self.conn.exec_(b"ROLLBACK")
            return shape
        shape.names = [(res.fname(i) or b"").decode() for i in range(res.nfields)]
        # our own types (the enum) have an OID of each server's choosing: compared by name
        shape.oids = [self.oids.get(f"nsptype:{res.ftype(i)}", res.ftype(i)) for i in range(res.nfields)]
        shape.tag = (res.command_status or b"").decode()
        shape.rows = res.ntuples
        return shape


def catalog_oids(host: str, port: int, db: str = DB) -> dict[str, str]:
    import psycopg

    with psycopg.connect(host=host, port=port, user="postgres", dbname=db, autocommit=True) as c:
        rows = c.execute("SELECT 'oid:' || relname, oid::text FROM pg_catalog.pg_class UNION ALL "
                         "SELECT 'typeoid:' || typname, oid::text FROM pg_catalog.pg_type").fetchall()
        # the schema a tool browses: its connection's current schema (public; DuckDB's main)
        rows += c.execute("SELECT 'nspoid:current', oid::text FROM pg_catalog.pg_namespace "
                          "WHERE nspname = current_schema()").fetchall()
        rows += [("nsp:current", str(c.execute("SELECT current_schema()").fetchone()[0]))]  # type: ignore[index]
        rows += c.execute("SELECT 'nsptype:' || t.oid::text, t.typname FROM pg_catalog.pg_type t JOIN "
                          "pg_catalog.pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = current_schema()"
                          ).fetchall()
    return {str(n): str(o) for n, o in rows}


@dataclass
class Outcome:
    record: Record
    diffs: list[str]


def replay(pg_port: int, sl_port: int, tools: Sequence[str], db: str = DB) -> dict[str, list[Outcome]]:
    """Every record of each tool's corpus on PostgreSQL and on sluice, with what differs."""
    pg_oids = catalog_oids("127.0.0.1", pg_port, db)
    sl_oids = catalog_oids("127.0.0.1", sl_port, db)
    out: dict[str, list[Outcome]] = {}
    for tool in tools:
        pg, sl = Target("127.0.0.1", pg_port, pg_oids, db), Target("127.0.0.1", sl_port, sl_oids, db)
        pg.connect()
        sl.connect()
        res = []
        try:
            for rec in load(tool):
                res.append(Outcome(rec, differences(pg.run(rec), sl.run(rec))))
        finally:
            pg.close()
            sl.close()
        out[tool] = res
    return out


def served(duck: Path) -> Generator[int, None, None]:
    """``sluice serve`` over the DuckDB file (a subprocess); yields its port."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sluice = Path(sys.executable).with_name("sluice")
    proc = subprocess.Popen([str(sluice), "serve", "--backend", f"duckdb:///{duck}", "--listen", f"127.0.0.1:{port}",
                             "--log-level", "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"sluice serve did not start: {proc.stderr.read() if proc.stderr else ''}") from None
                time.sleep(0.2)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def share_lines(results: dict[str, list[Outcome]]) -> list[str]:
    lines = []
    same_all = total = 0
    for tool, res in results.items():
        same = sum(1 for o in res if not o.diffs)
        same_all += same
        total += len(res)
        lines.append(f"{tool:14s} {same:4d}/{len(res):<4d} {100.0 * same / max(len(res), 1):5.1f}%")
    lines.append(f"{'overall':14s} {same_all:4d}/{total:<4d} {100.0 * same_all / max(total, 1):5.1f}%")
    return lines


def compare(tools: Sequence[str], verbose: bool) -> dict[str, list[Outcome]]:
    from sqlsluice.databases.pgcluster import PgCluster

    with tempfile.TemporaryDirectory() as tmp, PgCluster() as pg:
        _, duck = prepare(pg, Path(tmp))
        gen = served(duck)
        port = next(gen)
        try:
            results = replay(pg.port, port, tools)
        finally:
            gen.close()
    for tool, res in results.items():
        for i, o in enumerate(res):
            if o.diffs and verbose:
                print(f"DIFF {tool} #{i} {o.record.step}: {'; '.join(o.diffs)} {o.record.params or ''}\n    "
                      f"{' '.join(o.record.sql.split())[:300]}")
    print("\n".join(share_lines(results)))
    return results


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=("capture", "compare"))
    ap.add_argument("--tool", action="append", help="only this tool (repeatable)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print each difference")
    a = ap.parse_args(argv)
    os.environ.setdefault("PGCONNECT_TIMEOUT", "10")
    if a.command == "capture":
        capture([t for t in (a.tool or CAPTURED) if t in CAPTURED])
    else:
        compare([t for t in (a.tool or TOOLS) if corpus_path(t).exists()], a.verbose)


if __name__ == "__main__":
    main()
